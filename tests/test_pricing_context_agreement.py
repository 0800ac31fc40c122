"""The price context (lib/pricing.py): the three readers of a request's context (Python
``context_key``, Polars ``context_keys``, DuckDB ``context_sql``) read the same key from the same
attributes text, so an ingest (fast, exact SQL or Arrow path), ``reprice`` and the Cost page
never disagree on what a request cost.

A JSON object may write a key twice. Python's ``json`` and Polars read the last value (and so does
the Arrow path, which stores the attributes normalized); DuckDB's ``json_extract_string`` reads
the first. The SQL ingest paths store the attributes text as written, so a request whose
attributes name ``processing`` twice was priced in one context at ingest and in the other by
``reprice``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl
import pytest

from lib import pricing
from lib.cli import main
from lib.ingest import fastpath
from lib.store import Lake
from tests.ingest.conftest import canonical_request
from tests.test_pricing_context import _costs, model_request

DAY = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # the batch and tier variants apply

# Attributes JSON text, and the context key each must give (a key written twice: its last value).
ODD_ATTRIBUTES = [
    ('{"processing": "x", "processing": "batch"}', "processing=batch"),
    ('{"processing": "batch", "processing": "x"}', ""),
    ('{"processing": "batch", "processing": null}', ""),
    ('{"processing": "batch", "n": {"processing": "x"}, "processing": "BATCH"}',
     "processing=batch"),
    ('{"service_tier": "flex", "processing": "batch", "service_tier": "priority"}',
     "processing=batch;service_tier=priority"),
    ('{"\\u0070rocessing": "x", "processing": "\\u0062atch"}', "processing=batch"),
    # single keys, nesting, strings, other types: as before
    ('{"x": {"processing": "batch"}}', ""),
    ('{"note": "processing batch"}', ""),
    ('{"processing": ["batch"]}', ""),
    ('{"processing": null}', ""),
    ('{"processing": " batch"}', ""),
    ('{"processing": "\\u0062atch"}', "processing=batch"),
    ('{"processing": "BATCH", "service_tier": "Flex"}', "processing=batch;service_tier=flex"),
    # the tier under its OpenTelemetry names (CONTEXT_ALIASES): the served tier over the asked
    ('{"openai.response.service_tier": "Priority"}', "service_tier=priority"),
    ('{"gen_ai.openai.response.service_tier": "flex"}', "service_tier=flex"),
    ('{"openai.request.service_tier": "flex", "openai.response.service_tier": "default"}',
     "service_tier=default"),
    ('{"openai.request.service_tier": "auto"}', ""),
    ('{"service_tier": "scale", "openai.response.service_tier": "flex"}', "service_tier=flex"),
    ('{"service_tier": "priority", "openai.response.service_tier": "flex"}',
     "service_tier=priority"),
    ('{"openai.response.service_tier": "x", "openai.response.service_tier": "flex"}',
     "service_tier=flex"),
    ('{"openai": {"response": {"service_tier": "flex"}}}', ""),
    # JSON DuckDB reads (so ingestion stores it) that Python's json or Polars refuse: DuckDB's
    # reading counts, as the SQL ingest paths price with it
    ('{"service_tier": "flex",}', "service_tier=flex"),
    ('{"x": NaN, "service_tier": "flex"}', "service_tier=flex"),
    ('{"x": Infinity, "processing": "batch"}', "processing=batch"),
    ('{"x": 1e999, "openai.response.service_tier": "priority",}', "service_tier=priority"),
    ('[{"processing": "batch"}]', ""),
    ('["processing", "batch"]', ""),
    ('[]', ""),
    (None, ""),
]


def _duckdb_keys(texts: list[str | None]) -> list[str]:
    con = duckdb.connect()
    try:
        return [con.execute(f"SELECT {pricing.context_sql('a')} FROM (SELECT ?::VARCHAR AS a)",
                            [t]).fetchone()[0] for t in texts]
    finally:
        con.close()


def test_the_three_readers_agree_on_odd_attributes_and_a_key_written_twice():
    texts = [t for t, _ in ODD_ATTRIBUTES]
    want = [k for _, k in ODD_ATTRIBUTES]
    assert [pricing.context_key(t) for t in texts] == want  # Python (json: last value)
    assert pricing.context_keys(pl.Series(texts, dtype=pl.String)).to_list() == want  # Polars
    assert _duckdb_keys(texts) == want  # DuckDB: the ingest paths and the Cost page


def test_the_hints_that_let_small_files_skip_the_context_sql_never_miss_a_context():
    """A few-KB file whose text holds no hint prices without the context SQL (its planning is
    ~11 ms a statement, a sixth of such a file's ingest); the hint must hold wherever a reader
    finds a context, in the attributes or as a line's top-level key."""
    con = duckdb.connect()
    try:
        for text, key in ODD_ATTRIBUTES:
            hinted = con.execute(f"SELECT {pricing.context_hint_sql('a')} "
                                 "FROM (SELECT ?::VARCHAR AS a)", [text]).fetchone()[0]
            line = json.dumps({"request_id": "r", "attributes": text}).encode()
            assert hinted is (text is not None and pricing.may_hold_context(text.encode()))
            if key:
                assert hinted and pricing.may_hold_context(line), text
    finally:
        con.close()
    assert pricing.may_hold_context(b'{"processing": "batch"}')
    assert pricing.may_hold_context(b'{"\\u0070rocessing": "batch"}')
    assert not pricing.may_hold_context(b'{"model": "gpt-4o", "attributes": {"team": "a"}}')


def test_the_sql_context_reads_a_line_s_top_level_keys_over_a_key_written_twice():
    con = duckdb.connect()
    try:
        sql = pricing.context_sql("a", {"processing": "p"})
        got = con.execute(f"SELECT {sql} FROM (SELECT ?::VARCHAR AS a, ?::VARCHAR AS p)",
                          ['{"processing": "batch", "processing": "x"}', "Batch"]).fetchone()[0]
        assert got == "processing=batch"
    finally:
        con.close()


def _duplicate_key_rows() -> list[str]:
    """Canonical JSONL lines (raw text: a JSON object cannot be built with a key twice) whose
    attributes write ``processing`` twice, object or JSON text, with and without a tier."""
    forms = ['"attributes": {"processing": "x", "processing": "batch"}',
             '"attributes": {"processing": "batch", "processing": "x"}',
             '"attributes": "{\\"processing\\": \\"x\\", \\"processing\\": \\"batch\\"}"',
             '"attributes": {"processing": "batch"}',
             '"attributes": {"region": "eu"}']
    models = [("anthropic", "claude-haiku-4-5", 4000), ("openai", "gpt-5-mini", 3000),
              ("anthropic", "claude-sonnet-4-5", 250_000)]  # past the 200k tier
    return [json.dumps(model_request(i, models))[:-1] + ", " + forms[i // len(models)] + "}"
            for i in range(len(forms) * len(models))]


@pytest.mark.parametrize("mode", ["fast", "exact-sql", "exact-arrow"])
def test_reprice_changes_nothing_after_an_ingest_of_a_key_written_twice(
        tmp_path, monkeypatch, capsys, mode):
    (tmp_path / "none.yaml").write_text("models: []\n")  # no overrides
    monkeypatch.setenv("SIGHTLINE_PRICES", str(tmp_path / "none.yaml"))
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "1")
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", "0" if mode == "exact-arrow" else "1")
    lines = _duplicate_key_rows() + ([] if mode == "fast" else ['{"request_id": "bad"}'])
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    lake = Lake(tmp_path / "store")
    assert main(["ingest", str(path), "--store", str(lake.root)]) == 0
    assert (fastpath.LAST["outcome"] == "fast") == (mode == "fast")
    costs = _costs(lake)
    # a batch (last value "batch") costs what the plain batch row costs, per model
    assert [costs[f"r{i}"] for i in (0, 1, 2, 6, 7, 8)] == \
        [costs[f"r{i}"] for i in (9, 10, 11, 9, 10, 11)]
    assert [costs[f"r{i}"] for i in (3, 4, 5)] == [costs[f"r{i}"] for i in (12, 13, 14)]
    capsys.readouterr()
    assert main(["reprice", "--store", str(lake.root)]) == 0
    assert "changed 0 of 15 requests" in capsys.readouterr().out


def test_context_key_of_attributes_text_that_is_not_an_object_is_no_context():
    # as context_keys and context_sql read it, rather than "not a price context key"
    for text in ('[{"processing": "batch"}]', "[]", '"processing=batch"', "null", "1"):
        assert pricing.context_key(text) == ""
        assert pricing.request_cost("anthropic", "claude-haiku-4-5", DAY, 1000,
                                    context=text, overrides={}) == \
            pricing.request_cost("anthropic", "claude-haiku-4-5", DAY, 1000, overrides={})


@pytest.mark.parametrize("mode", ["fast", "exact-sql", "exact-arrow"])
def test_attributes_only_duckdb_reads_price_alike_on_every_path(tmp_path, monkeypatch, capsys,
                                                                mode):
    """Attributes given as JSON text with a trailing comma or NaN: the SQL paths store and price
    them as DuckDB reads them, and the Arrow path and reprice now read them the same way."""
    (tmp_path / "none.yaml").write_text("models: []\n")  # no overrides
    monkeypatch.setenv("SIGHTLINE_PRICES", str(tmp_path / "none.yaml"))
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "1")
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", "0" if mode == "exact-arrow" else "1")
    texts = [None, '{"service_tier": "flex"}', '{"service_tier": "flex",}',
             '{"x": NaN, "service_tier": "flex"}']
    lines = [json.dumps(canonical_request(i, ts=(DAY + timedelta(minutes=i)).isoformat(),
                                          model="gpt-5-mini", input_tokens=100_000,
                                          output_tokens=1000,
                                          **({"attributes": t} if t else {})))
             for i, t in enumerate(texts)]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines + ([] if mode == "fast" else ['{"request_id": "x"}'])) + "\n")
    lake = Lake(tmp_path / "store")
    assert main(["ingest", str(path), "--store", str(lake.root)]) == 0
    assert (fastpath.LAST["outcome"] == "fast") == (mode == "fast")
    costs = _costs(lake)
    assert costs["r1"] < costs["r0"]  # flex is cheaper than the standard tier
    assert costs["r2"] == costs["r3"] == costs["r1"]
    capsys.readouterr()
    assert main(["reprice", "--store", str(lake.root)]) == 0
    assert "changed 0 of 4 requests" in capsys.readouterr().out
