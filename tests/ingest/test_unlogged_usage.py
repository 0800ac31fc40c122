"""A call that did not fail and logged no token count has an unknown cost, on every ingest path.

Priced as zero tokens it would be a silent $0 inside every cost total. A failed call without usage
costs $0 (providers do not bill a 429 or a 500), unless it timed out: the client gave up, the
provider may have finished and billed it (found in review: an openai APITimeoutError of 20,000
tokens the provider answered was stored at $0); a call with input tokens only (an embedding) is
priced on them.
"""

from __future__ import annotations

import os

import pytest

from lib.ingest.pipeline import ingest_paths
from lib.pricing import NO_PRICE, NO_USAGE, TIMED_OUT, unpriced_models
from lib.store import Engine
from tests.ingest.conftest import INGEST_PATHS, canonical_request, ingest_on_path


def _rows() -> list[dict]:
    no_usage = {"input_tokens": None, "output_tokens": None}
    return [
        canonical_request(0),  # 1000 in + 500 out of gpt-4o: $0.0075
        {k: v for k, v in canonical_request(1).items() if not k.endswith("_tokens")},
        canonical_request(2, **no_usage),
        canonical_request(3, **no_usage, status="error", error_type="RateLimitError"),
        # gpt-4o's input price alone, $2.50 per M tokens: 1000 tokens cost $0.0025
        canonical_request(4, output_tokens=None),
        canonical_request(5, model="acme-finetune-7"),
        # failed calls without usage cost $0 whatever the model: an Anthropic batch's errored
        # line names none ("unknown"); one with tokens is priced, so unpriced here
        canonical_request(6, **no_usage, model="unknown", status="error",
                          error_type="overloaded_error"),
        canonical_request(7, model="unknown", status="error"),
        canonical_request(8, **no_usage, status="error", error_type="APITimeoutError"),
        canonical_request(9, **no_usage, status="error", error_type="DEADLINE_EXCEEDED"),
        canonical_request(10, **no_usage, status="error", error_type="APIConnectionError"),
    ]


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_a_successful_call_without_token_counts_has_no_cost_on_every_path(
        lake, write, monkeypatch, path):
    rows = _rows()
    files = [write("a.jsonl", rows[:4]), write("b.jsonl", rows[4:])]  # two: groups need several
    report = ingest_on_path(lake, files, path, monkeypatch)
    assert [(f.error, f.stored, f.quarantined) for f in report.files] == [
        (None, {"requests": 4}, 0), (None, {"requests": 7}, 0)]
    engine = Engine(lake)
    costs = dict(engine.query("SELECT request_id, round(cost_usd, 9) FROM requests").rows())
    assert costs == {"r0": 0.0075, "r1": None, "r2": None, "r3": 0.0, "r4": 0.0025, "r5": None,
                     "r6": 0.0, "r7": None, "r8": None, "r9": None, "r10": 0.0}
    listed = unpriced_models(engine).select("model", "reason", "requests").rows()
    assert listed == [("gpt-4o", NO_USAGE, 2), ("gpt-4o", TIMED_OUT, 2),
                      ("acme-finetune-7", NO_PRICE, 1), ("unknown", NO_PRICE, 1)]
    engine.close()


def test_reprice_keeps_a_call_without_token_counts_unpriced(lake, write):
    from lib.pricing import reprice

    file = write("calls.jsonl", _rows())
    old = os.stat(file).st_mtime - 600
    os.utime(file, (old, old))
    ingest_paths(lake, [str(file)])
    doc = reprice(lake, overrides={})
    assert (doc["changed_rows"], doc["unpriced_after"]) == (0, 6)
