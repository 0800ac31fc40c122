"""docs/mapping.md's examples, copied from the page as a reader copies them: each sample record
and the YAML after it, ingested as written, give the rows the page says. (Its records were
printed over two or three lines: copied, every half was quarantined "not valid JSON", found in
review.)"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from lib.ingest.pipeline import ingest_paths
from lib.store import Engine, Lake

DOC = Path(__file__).resolve().parents[2] / "docs" / "mapping.md"


def examples() -> list[tuple[str, str]]:
    """(the JSON block, the first YAML block after it) of each example, as the page has them."""
    blocks = re.findall(r"```(json|yaml)\n(.*?)```", DOC.read_text(), flags=re.S)
    out = []
    for i, (kind, text) in enumerate(blocks):
        if kind == "json":
            out.append((text, next(t for k, t in blocks[i + 1:] if k == "yaml")))
    return out


def _ingest(tmp_path: Path, record: str, mapping: str):
    data, spec = tmp_path / "app.log", tmp_path / "my-mapping.yaml"
    data.write_text(record)
    spec.write_text(mapping)
    old = time.time() - 600
    os.utime(data, (old, old))
    lake = Lake(tmp_path / "store")
    return lake, ingest_paths(lake, [str(data)], mapping=str(spec), overrides={}).files[0]


def _row(lake: Lake) -> dict:
    engine = Engine(lake)
    try:
        return engine.query("SELECT * FROM requests").to_dicts()[0]
    finally:
        engine.close()


def test_the_page_has_its_two_examples():
    assert len(examples()) == 2


def test_the_first_example_gives_the_row_the_page_describes(tmp_path):
    record, mapping = examples()[0]
    lake, f = _ingest(tmp_path, record, mapping)
    assert (f.error, f.stored, f.quarantined) == (None, {"requests": 1}, 0)
    row = _row(lake)
    # "request_id = a1, ts = 2026-03-02T12:00:00Z, latency_ms = 1500, provider = openai, model
    # = gpt-4o, 1000 / 500 tokens, cost_usd = 0.0075, logged_cost_usd = 0.0075, attributes =
    # {"team": "search"}"
    assert (row["request_id"], row["ts"].isoformat().replace("+00:00", "Z"), row["latency_ms"],
            row["provider"], row["model"], row["input_tokens"], row["output_tokens"]) == (
        "a1", "2026-03-02T12:00:00Z", 1500.0, "openai", "gpt-4o", 1000, 500)
    assert row["cost_usd"] == pytest.approx(0.0075)  # 1000 × $2.50/M + 500 × $10/M
    assert row["logged_cost_usd"] == pytest.approx(0.0075)
    assert json.loads(row["attributes"]) == {"team": "search"}


def test_the_anthropic_example_sums_its_input_and_costs_what_the_page_says(tmp_path):
    record, mapping = examples()[1]
    lake, f = _ingest(tmp_path, record, mapping)
    assert (f.error, f.stored, f.quarantined) == (None, {"requests": 1}, 0)
    row = _row(lake)
    assert (row["input_tokens"], row["cached_input_tokens"], row["cache_write_tokens"],
            row["output_tokens"]) == (2000, 800, 200, 50)
    # claude-3-5-sonnet, $3 / $0.30 / $3.75 / $15 per M: 1000 × 3 + 800 × 0.3 + 200 × 3.75
    # + 50 × 15 = 4,740 per M
    assert row["cost_usd"] == pytest.approx(0.00474)
