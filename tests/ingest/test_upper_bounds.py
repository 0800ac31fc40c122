"""A value no real call has (a latency of 1e308 ms, a trillion tokens, a million-dollar call) is a
logging fault: quarantined with its bound, on every ingest path, while the value at the bound and
the other rows are stored."""

from __future__ import annotations

import pytest

from lib.ingest.validate import UPPER_BOUNDS
from lib.store import Engine
from tests.ingest.conftest import canonical_request, ingest_on_path

WEEK_MS = 7 * 86400 * 1000


def _rows() -> list[dict]:
    return [
        canonical_request(0, latency_ms=WEEK_MS),  # a week exactly: a batch job, stored
        canonical_request(1, latency_ms=WEEK_MS + 1),
        canonical_request(2, latency_ms=1e308),
        canonical_request(3, input_tokens=10**9, output_tokens=10),  # stored
        canonical_request(4, input_tokens=10**12, output_tokens=10),
        canonical_request(5, logged_cost_usd=2_000_000.0),
        canonical_request(6, ttft_ms=WEEK_MS * 2),
        canonical_request(7),
    ]


@pytest.mark.parametrize("path", ["exact", "arrow"])
def test_values_beyond_any_real_call_are_quarantined_with_their_bound(lake, write, monkeypatch,
                                                                      path):
    rows = _rows()
    files = [write("a.jsonl", rows[:4]), write("b.jsonl", rows[4:])]
    report = ingest_on_path(lake, files, path, monkeypatch)
    assert [(f.stored, f.quarantined) for f in report.files] == [
        ({"requests": 2}, 2), ({"requests": 1}, 3)]
    engine = Engine(lake)
    try:
        stored = sorted(r[0] for r in engine.query("SELECT request_id FROM requests").rows())
        reasons = dict(engine.query(
            "SELECT regexp_extract(raw, '\"request_id\": *\"(r[0-9]+)\"', 1), reason "
            "FROM quarantine").rows())
    finally:
        engine.close()
    assert stored == ["r0", "r3", "r7"]
    assert reasons == {
        "r1": "latency_ms is beyond any real call: 604800001.0 (at most 604,800,000 ms, 7 days)",
        "r2": "latency_ms is beyond any real call: 1e+308 (at most 604,800,000 ms, 7 days)",
        "r4": "input_tokens is beyond any real call: 1000000000000 "
              "(at most 1,000,000,000 tokens)",
        "r5": "logged_cost_usd is beyond any real call: 2000000.0 (at most 1,000,000 USD)",
        "r6": "ttft_ms is beyond any real call: 1209600000.0 (at most 604,800,000 ms, 7 days)"}


@pytest.mark.parametrize("path", ["group", "fast"])
def test_the_fast_paths_store_values_at_the_bounds_and_leave_the_others_to_the_exact_one(
        lake, write, monkeypatch, path):
    rows = _rows()
    at_bounds = [rows[0], rows[3], rows[7]]
    files = [write("a.jsonl", at_bounds[:2]), write("b.jsonl", at_bounds[2:])]
    report = ingest_on_path(lake, files, path, monkeypatch)  # (asserts the path was taken)
    assert [f.stored for f in report.files] == [{"requests": 2}, {"requests": 1}]
    # a file with a row past a bound fails the fast path's validation (the same SQL): the
    # exact path then quarantines that row with its line
    from lib.ingest import fastpath
    from lib.ingest.pipeline import ingest_paths

    report = ingest_paths(lake, [str(write("c.jsonl", [rows[2], canonical_request(8)]))])
    assert fastpath.LAST["outcome"] == "fallback"
    assert (report.files[0].stored, report.files[0].quarantined) == ({"requests": 1}, 1)


def test_every_bounded_column_is_a_column_of_its_table():
    from lib import schema

    for table, bounds in UPPER_BOUNDS.items():
        names = set(getattr(schema, table.upper()).names)
        assert set(bounds) <= names, table
