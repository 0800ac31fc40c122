"""The fast path for canonical JSONL (lib/ingest/fastpath.py) stores exactly what the exact path
stores, and hands every file it cannot prove clean to the exact path."""

from __future__ import annotations

import glob
import json
import os
from datetime import timedelta

import duckdb
import pyarrow.parquet as pq
import pytest

from lib import schema
from lib.ingest import fastpath, pipeline
from lib.ingest.pipeline import ingest_paths
from lib.store import Lake
from tests.conftest import T0
from tests.ingest.conftest import canonical_request, jsonl_bytes, stored_rows

LINEAGE_RUN = ("batch_id", "ingested_at")  # differ between any two ingests


def _varied(n: int = 60) -> list[dict]:
    """Clean rows with every loose form the exact path accepts."""
    rows = []
    for i in range(n):
        row = canonical_request(i, ts=(T0 + timedelta(hours=7 * i)).isoformat())
        if i % 5 == 0:
            row.update(input_tokens=str(1000 + i), output_tokens=500.0, cache_hit="true")
        if i % 7 == 0:
            row.update(ts=int((T0 + timedelta(hours=i)).timestamp()), status="success")
        if i % 4 == 0:
            row.update(attributes={"region": "eu", "n": i, "deep": {"x": [1, 2.5]}},
                       cached_input_tokens=100, trace_id=None)
        if i % 6 == 0:
            row.update(model="claude-3-5-sonnet", provider="anthropic", cost_usd=0.5,
                       error_type="rate_limit", status=None)
        if i % 9 == 0:  # past the first price tier (128k input tokens) on some rows
            row.update(provider="google", model="gemini-1.5-pro",
                       input_tokens=300_000 if i % 2 else 1000, cached_input_tokens=0)
        rows.append(row)
    return rows


def _tables(lake: Lake, name: str = "requests") -> list[tuple]:
    return stored_rows(lake, name, LINEAGE_RUN)


def _ingest(lake: Lake, path, monkeypatch, fast: bool):
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "1" if fast else "0")
    return ingest_paths(lake, [str(path)], compact_min_files=0).files[0]


@pytest.mark.parametrize("gz", [False, True])
def test_clean_file_stores_exactly_what_the_exact_path_stores(tmp_path, write, monkeypatch, gz):
    path = write("clean.jsonl" + (".gz" if gz else ""), _varied(), gz=gz)
    exact, fast = Lake(tmp_path / "exact"), Lake(tmp_path / "fast")
    e = _ingest(exact, path, monkeypatch, fast=False)
    f = _ingest(fast, path, monkeypatch, fast=True)
    assert fastpath.LAST["outcome"] == "fast"
    assert (f.stored, f.duplicates, f.quarantined, f.error, f.rows_read, f.content_hash) == \
        (e.stored, e.duplicates, e.quarantined, e.error, e.rows_read, e.content_hash)
    assert f.stored == {"requests": 60}
    got, want = _tables(fast), _tables(exact)
    assert got == want
    costs = {r[0]: r[15] for r in got}  # cost_usd
    assert costs["r9"] > 0.3 and costs["r18"] > 0 and None not in costs.values()
    # Lineage: one batch, the commit's, and the file as source.
    commit = [c for c in fast.commits() if c.kind == "ingest"][0]
    assert commit.content_hash == f.content_hash and commit.info["ingest_path"] == "fast"
    con = duckdb.connect()
    files = [str(fast.root / a["path"]) for a in commit.added]
    assert con.execute("SELECT list(DISTINCT batch_id), list(DISTINCT source_file), "
                       "count(*) FILTER (ingested_at IS NULL) FROM read_parquet($f)",
                       {"f": files}).fetchone() == ([commit.commit_id], [str(path)], 0)
    # Per-day files in the lake's layout, with the schema the exact path writes.
    for a in commit.added:
        day = a["path"].split("/")[1]
        assert a["path"].startswith("requests/date=") and day.startswith("date=")
        assert con.execute("SELECT count(*) FILTER (strftime(ts AT TIME ZONE 'UTC', "
                           "'date=%Y-%m-%d') <> $d) FROM read_parquet($f)",
                           {"d": day, "f": str(fast.root / a["path"])}).fetchone() == (0,)
    exact_file = glob.glob(str(exact.root / "requests" / "*" / "*.parquet"))[0]
    want_schema = pq.read_schema(exact_file).remove_metadata()
    for a in commit.added:
        got_schema = pq.read_schema(fast.root / a["path"]).remove_metadata()
        assert [(x.name, x.type) for x in got_schema] == [(x.name, x.type) for x in want_schema]
    assert not list((fast.root / "_tmp").glob("*"))


@pytest.mark.parametrize("name, rows", [
    ("evals", [{"run_id": "run1", "case_id": f"c{i}", "metric": "exact_match", "epoch": i % 2,
                "score": i / 10, "passed": i % 3 == 0, "ts": (T0 + timedelta(hours=i)).isoformat(),
                "attributes": {"k": i}} for i in range(30)]),
    ("events", [{"ts": (T0 + timedelta(days=i)).isoformat(), "kind": "deploy", "service": "api",
                 "version": f"v{i}", "title": f"deploy {i}"} for i in range(12)]),
])
def test_other_tables_store_exactly_what_the_exact_path_stores(tmp_path, write, monkeypatch,
                                                                name, rows):
    path = write(f"{name}.jsonl", rows)
    exact, fast = Lake(tmp_path / "exact"), Lake(tmp_path / "fast")
    e = _ingest(exact, path, monkeypatch, fast=False)
    f = _ingest(fast, path, monkeypatch, fast=True)
    assert fastpath.LAST["outcome"] == "fast"
    assert f.stored == e.stored == {name: len(rows)} and f.error is None
    assert _tables(fast, name) == _tables(exact, name)


def test_rows_already_in_the_lake_are_dropped_as_on_the_exact_path(tmp_path, write, monkeypatch):
    first = write("a.jsonl", [canonical_request(i) for i in range(10)])
    second = write("b.jsonl", [canonical_request(i) for i in range(5, 20)])
    reports = {}
    for fast in (False, True):
        lake = Lake(tmp_path / str(fast))
        _ingest(lake, first, monkeypatch, fast)
        reports[fast] = _ingest(lake, second, monkeypatch, fast)
        assert fastpath.LAST["outcome"] == ("fast" if fast else "exact")
    assert reports[True].stored == reports[False].stored == {"requests": 10}
    assert reports[True].duplicates == reports[False].duplicates == {"requests": 5}
    assert _tables(Lake(tmp_path / "True")) == _tables(Lake(tmp_path / "False"))


def _bad_line(rows):
    return jsonl_bytes(rows[:6]) + b'{"request_id": "r-bad", "ts": \n' + jsonl_bytes(rows[6:])


@pytest.mark.parametrize("case, content, line, reason", [
    ("bad JSON", lambda rows: _bad_line(rows), 7, "not valid JSON"),
    ("bad row", lambda rows: jsonl_bytes(rows[:3] + [canonical_request(99, input_tokens=-5)]
                                         + rows[3:]), 4, "input_tokens is negative: -5"),
    ("not an object", lambda rows: jsonl_bytes(rows[:9]) + b"[1, 2]\n" + jsonl_bytes(rows[9:]),
     10, "not a JSON object"),
])
def test_an_unclean_file_falls_back_and_quarantines_with_the_line(
        tmp_path, write, monkeypatch, case, content, line, reason):
    path = write("u.jsonl", content([canonical_request(i) for i in range(20)]))
    exact, fast = Lake(tmp_path / "exact"), Lake(tmp_path / "fast")
    e = _ingest(exact, path, monkeypatch, fast=False)
    f = _ingest(fast, path, monkeypatch, fast=True)
    assert fastpath.LAST["outcome"] == "fallback"
    assert f.stored == e.stored == {"requests": 20} and f.quarantined == e.quarantined == 1
    assert f.reasons == e.reasons and f.reasons[0].startswith(f"line {line}: {reason}")
    assert _tables(fast) == _tables(exact)
    assert _tables(fast, "quarantine")[0][3] == line  # quarantine_id, ts, source_file, line
    assert not [c for c in fast.commits() if c.info.get("ingest_path") == "fast"]


def test_a_key_repeated_in_the_file_falls_back(tmp_path, write, monkeypatch):
    rows = [canonical_request(i) for i in range(10)] + [canonical_request(3, latency_ms=999.0),
                                                        canonical_request(3)]
    path = write("d.jsonl", rows)
    f = _ingest(Lake(tmp_path / "fast"), path, monkeypatch, fast=True)
    assert fastpath.LAST == {**fastpath.LAST, "outcome": "fallback",
                             "reason": "a key repeated within the file"}
    # the same again: a duplicate; other values: quarantined (tests/ingest/test_conflicting_repeats)
    assert (f.stored, f.duplicates, f.quarantined) == ({"requests": 10}, {"requests": 1}, 1)
    assert [r[0] for r in _tables(Lake(tmp_path / "fast"))].count("r3") == 1
    assert not list((tmp_path / "fast" / "_tmp").glob("*"))


def test_extra_keys_are_folded_into_attributes_as_on_the_exact_path(tmp_path, write,
                                                                    monkeypatch):
    rows = [canonical_request(i) for i in range(10)]
    rows[4].update(tenant_tier="gold", attributes={"region": "eu"}, zone={"a": [1, 2.5]})
    rows[6]["tenant_tier"] = None  # an explicit null adds nothing
    path = write("x.jsonl", rows)
    exact, fast = Lake(tmp_path / "exact"), Lake(tmp_path / "fast")
    e = _ingest(exact, path, monkeypatch, fast=False)
    f = _ingest(fast, path, monkeypatch, fast=True)
    assert fastpath.LAST["outcome"] == "fast"
    assert f.stored == e.stored == {"requests": 10} and f.quarantined == 0
    assert _tables(fast) == _tables(exact)
    at = [n for n in schema.REQUESTS.names if n not in LINEAGE_RUN].index("attributes")
    attrs = {r[0]: r[at] for r in _tables(fast)}
    assert json.loads(attrs["r4"]) == {"region": "eu", "tenant_tier": "gold",
                                       "zone": {"a": [1, 2.5]}}
    assert attrs["r6"] is None


def test_blank_lines_are_skipped_as_on_the_exact_path(tmp_path, write, monkeypatch):
    rows = [canonical_request(i) for i in range(6)]
    content = jsonl_bytes(rows[:2]) + b"\n  \n\t\r\n" + jsonl_bytes(rows[2:]) + b"\n"
    path = write("b.jsonl", content)
    exact, fast = Lake(tmp_path / "exact"), Lake(tmp_path / "fast")
    e = _ingest(exact, path, monkeypatch, fast=False)
    f = _ingest(fast, path, monkeypatch, fast=True)
    assert fastpath.LAST["outcome"] == "fast"
    assert f.stored == e.stored == {"requests": 6} and f.quarantined == e.quarantined == 0
    assert _tables(fast) == _tables(exact)


def test_a_bad_row_after_blank_lines_is_quarantined_with_its_own_line(tmp_path, write,
                                                                      monkeypatch):
    rows = [canonical_request(i) for i in range(6)]
    rows[4]["input_tokens"] = -1
    path = write("b.jsonl", jsonl_bytes(rows[:2]) + b"\n\n" + jsonl_bytes(rows[2:]))
    f = _ingest(Lake(tmp_path / "fast"), path, monkeypatch, fast=True)
    assert fastpath.LAST["outcome"] == "fallback"
    assert f.stored == {"requests": 5} and f.reasons[0].startswith("line 7: ")


def test_a_file_of_one_day_and_one_of_many_days_store_the_same_rows(tmp_path, write,
                                                                    monkeypatch):
    """One day is written as a single file, several days through PARTITION_BY: same rows."""
    for days in (1, 3):
        rows = [canonical_request(i, ts=(T0.replace(hour=0) + timedelta(hours=i * 24 * days / 30))
                                   .isoformat())
                for i in range(30)]
        path = write(f"d{days}.jsonl", rows)
        exact, fast = Lake(tmp_path / f"exact{days}"), Lake(tmp_path / f"fast{days}")
        _ingest(exact, path, monkeypatch, fast=False)
        f = _ingest(fast, path, monkeypatch, fast=True)
        assert fastpath.LAST["outcome"] == "fast" and f.stored == {"requests": 30}
        assert _tables(fast) == _tables(exact)
        assert len({p.split("/")[1] for p in fast.snapshot().files["requests"]}) == days


def test_a_repeated_file_is_a_no_op_before_any_parsing(tmp_path, write, monkeypatch, lake):
    path = write("r.jsonl", [canonical_request(i) for i in range(10)])
    first = _ingest(lake, path, monkeypatch, fast=True)
    assert first.stored == {"requests": 10} and fastpath.LAST["outcome"] == "fast"
    copy = write("same-content-other-name.jsonl", path.read_bytes())

    def no_parsing(*a, **k):
        raise AssertionError("parsed a file already ingested")

    monkeypatch.setattr(fastpath, "_load", no_parsing)
    monkeypatch.setattr(pipeline, "_ingest_jsonl_sql", no_parsing)
    monkeypatch.setattr(fastpath, "_connection", no_parsing)
    os.utime(path)  # no longer known unchanged by its stat: read, hashed, found known
    again = ingest_paths(lake, [str(path), str(copy)], compact_min_files=0)
    # (the touched file is hashed and found to be the bytes read before: lib/ingest/appended.py)
    assert again.files[0].skipped.startswith(
        "already ingested: nothing appended since the last read")
    assert again.files[1].duplicate_file
    assert [f.error for f in again.files] == [None, None]
    assert fastpath.LAST["outcome"] == "duplicate"
    assert again.totals()["stored"] == {} and [c.kind for c in lake.commits()] == [
        "ingest", "seen", "seen"]


# -- one connection per run ------------------------------------------------------------------------

@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "exact-sql-path"])
def test_the_files_of_a_run_share_one_connection_and_each_spills_into_its_own_scratch(
        tmp_path, monkeypatch, fast):
    """A run's files share a DuckDB connection (a new one costs 20-25 ms, a third of a few-KB
    file's ingest); each file points its spill folder into its own scratch folder, deleted before
    its commit, so nothing of the run stays in _tmp. A connection that spilled cannot switch
    folders: the next file gets a new one."""
    opened = []
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "1" if fast else "0")
    name, module = ("_connection", fastpath) if fast else ("_new_sql_connection", pipeline)
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda tmp: opened.append(tmp) or real(tmp))
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(4):
        (folder / f"{k}.jsonl").write_bytes(jsonl_bytes(
            [canonical_request(10 * k + i) for i in range(3)]))
        os.utime(folder / f"{k}.jsonl", (0, 1_000_000_000))
    lake = Lake(tmp_path / "store")
    report = ingest_paths(lake, [str(folder)], compact_min_files=0)
    assert [f.stored for f in report.files] == [{"requests": 3}] * 4
    assert len(opened) == 1 and (fastpath.LAST["outcome"] == "fast") == fast
    assert list(lake.tmp_dir.iterdir()) == []
    # a connection that has spilled is replaced
    with fastpath.reused_connection(lake):
        first, own = fastpath.shared_or_own(lake.tmp_dir / "fast-a",
                                            lake.tmp_dir / "fast-a" / "spill")
        assert not own
        first.execute("SET memory_limit = '64MB'")
        first.execute("SELECT s, count(*) FROM (SELECT md5(range::VARCHAR) AS s "
                      "FROM range(5000000)) GROUP BY s ORDER BY s LIMIT 1").fetchall()
        assert (lake.tmp_dir / "fast-a" / "spill").is_dir()  # it spilled there
        second, _ = fastpath.shared_or_own(lake.tmp_dir / "fast-b",
                                           lake.tmp_dir / "fast-b" / "spill")
        assert second is not first
        again, _ = fastpath.shared_or_own(lake.tmp_dir / "fast-c",
                                          lake.tmp_dir / "fast-c" / "spill")
        assert again is second
    # outside a run, a file's own connection
    con, own = fastpath.shared_or_own(lake.tmp_dir / "fast-d", lake.tmp_dir / "fast-d")
    assert own
    con.close()


@pytest.mark.parametrize("name", ["c?.jsonl", "c*.jsonl", "c[x].jsonl"])
def test_a_name_duckdb_would_read_as_a_glob_is_read_alone_by_the_exact_path(
        tmp_path, monkeypatch, name):
    # DuckDB's read_json reads "c?.jsonl" as a pattern: it also matched the neighbour "cx.jsonl"
    # and stored its rows under the other file's name.
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / name).write_bytes(jsonl_bytes([canonical_request(1)]))
    (folder / "cx.jsonl").write_bytes(jsonl_bytes([canonical_request(2)]))
    lake = Lake(tmp_path / "store")
    f = _ingest(lake, folder / name, monkeypatch, fast=True)
    assert fastpath.LAST["outcome"] == "exact" and "glob" in fastpath.LAST["reason"]
    assert f.stored == {"requests": 1}
    files = [str(lake.root / p) for p in lake.snapshot().files["requests"]]
    assert duckdb.sql("SELECT request_id, source_file FROM read_parquet($f)",
                      params={"f": files}).fetchall() == [("r1", str(folder / name))]


def test_progress_says_what_the_fast_path_does_once_the_bytes_are_read(tmp_path, write,
                                                                        monkeypatch):
    # it read the file whole first: "100%, 0 rows" until the end, with nothing said
    from tests.ingest.conftest import canonical_request

    path = write("a.jsonl", [canonical_request(i) for i in range(50)])
    os.utime(path, (0, 0))  # (not a file still being written)
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "1")
    seen = []
    ingest_paths(Lake(tmp_path / "s"), [str(path)], compact_min_files=0,
                 progress=lambda p: seen.append((p.stage, p.rows)))
    assert fastpath.LAST["outcome"] == "fast"
    stages = [s for s, _ in seen]
    assert stages.index("checking") < stages.index("writing") < stages.index("committing")
    assert seen[-1] == (None, 50)  # done: no stage, every row
    assert all(rows == 0 for s, rows in seen if s == "checking")
