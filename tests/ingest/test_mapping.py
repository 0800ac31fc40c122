"""A user's YAML mapping: paths, constants, s → ms, epoch timestamps; bad rows quarantined."""

from __future__ import annotations

import json

import pytest

from lib.ingest.mapping import MappingError, load
from lib.ingest.pipeline import ingest_paths

MAPPING = """
table: requests
columns:
  request_id: id
  ts: {path: started, unit: s}
  latency_ms: {path: timing.duration, unit: s}
  provider: {value: openai}
  model: llm.name
  input_tokens: usage.prompt
  output_tokens: usage.completion
  logged_cost_usd: {path: cost_cents, scale: 0.01}
"""


def test_mapping_converts_units_and_constants(lake, tmp_path, totals):
    spec = tmp_path / "my.yaml"
    spec.write_text(MAPPING)
    rows = [{"id": "a", "started": 1772452800, "timing": {"duration": 1.5},
             "llm": {"name": "gpt-4o"}, "usage": {"prompt": 1000, "completion": 500},
             "cost_cents": 0.75, "team": "x"},
            {"id": "b", "started": 1772452860, "timing": {"duration": 0.25},
             "llm": {"name": "gpt-4o"}, "usage": {"prompt": 10, "completion": -1}}]
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 1}, 1)
    assert f.reasons == ["line 2: output_tokens is negative: -1"]
    assert totals("SELECT request_id, strftime(ts, '%Y-%m-%dT%H:%M:%S'), latency_ms, provider, "
                  "cost_usd, logged_cost_usd, attributes FROM requests") == \
        ("a", "2026-03-02T12:00:00", 1500.0, "openai", 0.0075, 0.0075, '{"team":"x"}')


def test_mapping_reads_csv_too(lake, tmp_path, totals):
    spec = tmp_path / "m.yaml"
    spec.write_text("table: requests\ncolumns:\n  request_id: rid\n  ts: when\n  model: m\n"
                    "  latency_ms: {path: secs, unit: s}\n")
    data = tmp_path / "x.csv"
    data.write_text("rid,when,m,secs\n1,2026-03-02 12:00:00,gpt-4o,0.5\n")
    assert ingest_paths(lake, [str(data)], mapping=spec).files[0].stored == {"requests": 1}
    assert totals("SELECT latency_ms FROM requests") == (500.0,)


@pytest.mark.parametrize("text, message", [
    ("table: nope\ncolumns: {a: b}", "table must be"),
    ("table: requests\ncolumns: {nope: x}", "not a column of requests"),
    ("table: requests\ncolumns: {model: {unit: s}}", "needs a path or a value"),
    ("table: requests\ncolumns: {input_tokens: {path: x, unit: s}}", "not allowed"),
])
def test_malformed_mapping_names_the_problem(tmp_path, text, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    with pytest.raises(MappingError, match=message):
        load(spec)
