"""A Gemini model named by its API resource name (``models/gemini-2.5-flash``, as the google-genai
SDK and LangChain pass it and the OpenTelemetry instrumentations record it as
gen_ai.request.model; Vertex AI's ``publishers/google/models/...`` and
``projects/P/locations/L/publishers/google/models/...``) is that model: priced as it, on every
ingest path, not left unpriced."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lib import pricing
from lib.store import Engine, Lake
from tests.ingest.conftest import INGEST_PATHS, canonical_request, ingest_on_path, jsonl_bytes

T = datetime(2026, 3, 2, 12, tzinfo=UTC)
NAMES = ["models/gemini-2.5-flash", "publishers/google/models/gemini-2.5-flash",
         "projects/my-project/locations/us-central1/publishers/google/models/gemini-2.5-flash"]


@pytest.mark.parametrize("name", NAMES)
def test_a_resource_name_costs_what_its_model_costs(name):
    bare = pricing.request_cost("gcp.gemini", "gemini-2.5-flash", T, 10000, 8000, 0, 2000,
                                overrides={})
    assert bare == pytest.approx(0.00584)  # 2,000 x $0.30 + 8,000 x $0.03 + 2,000 x $2.50 / M
    assert pricing.request_cost("gcp.gemini", name, T, 10000, 8000, 0, 2000,
                                overrides={}) == bare
    assert pricing.unit_prices("gcp.gemini", name, T, {}) == \
        pricing.unit_prices("gcp.gemini", "gemini-2.5-flash", T, {})


def test_a_name_that_only_looks_like_one_stays_unpriced():
    assert pricing.request_cost("gcp.gemini", "models/no-such-model", T, 10, 0, 0, 1,
                                overrides={}) is None


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_every_ingest_path_prices_a_resource_name(tmp_path, monkeypatch, path):
    rows = [canonical_request(i, provider="gcp.gemini", model=name, input_tokens=10000,
                              cached_input_tokens=8000, output_tokens=2000)
            for i, name in enumerate(NAMES + ["gemini-2.5-flash"])]
    (tmp_path / "in").mkdir()
    files = [tmp_path / "in" / f"{n}.jsonl" for n in range(2)]
    for file, part in zip(files, (rows[:2], rows[2:]), strict=True):
        file.write_bytes(jsonl_bytes(part))
    lake = Lake(tmp_path / "store")
    report = ingest_on_path(lake, files, path, monkeypatch, overrides={})
    assert [f.error for f in report.files] == [None, None]
    engine = Engine(lake)
    costs = [c for (c,) in engine.query("SELECT cost_usd FROM requests").rows()]
    engine.close()
    assert costs == pytest.approx([0.00584] * 4)
