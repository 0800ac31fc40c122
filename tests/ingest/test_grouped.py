"""Small files read in groups (lib/ingest/grouped.py): one DuckDB pass for many files, and for
each file what the fast path reading it alone, in the same run order, stores and reports: rows,
prices, duplicates, quarantine, lineage, commits. The oracle is the same run with groups turned
off (SIGHTLINE_INGEST_GROUP=0)."""

from __future__ import annotations

import gzip
import hashlib
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from lib import pricing
from lib.ingest import fastpath, grouped
from lib.ingest.pipeline import ingest_paths
from lib.store import Lake
from tests.conftest import T0, kill_9_at, leftovers
from tests.ingest import groups_oracle
from tests.ingest.conftest import canonical_request, jsonl_bytes

# the oracle (tests/ingest/groups_oracle.py)
_file = groups_oracle.aged_file
_rows = groups_oracle.rows_of
_run = groups_oracle.ingest_as
_same_as_one_at_a_time = groups_oracle.same_as_one_at_a_time


def _lineage(lake: Lake) -> list[tuple]:
    files = [str(lake.root / p) for p in lake.snapshot().files["requests"]]
    return duckdb.sql("SELECT DISTINCT batch_id, source_file, ingested_at FROM read_parquet($f) "
                      "ORDER BY source_file", params={"f": files}).fetchall()


def test_a_folder_of_small_files_is_read_in_one_pass_and_committed_file_by_file(
        tmp_path, monkeypatch):
    d = tmp_path / "in"
    paths = [_file(d, f"part-{k:02d}.jsonl", _rows(10 * k, 10)) for k in range(12)]
    passes, lake, _ = _same_as_one_at_a_time(tmp_path, monkeypatch, [d])
    assert passes == [12]
    commits = lake.commits()  # in the files' order
    assert [c.content_hash for c in commits] == \
        [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert all(c.info["ingest_path"] == "group" for c in commits)
    # each row's lineage is its own file's batch: id, source and time of its commit
    by_source = {c.source: c for c in commits}
    lineage = _lineage(lake)
    assert len(lineage) == 12
    for batch_id, source, ingested_at in lineage:
        c = by_source[source]
        assert batch_id == c.commit_id
        assert ingested_at.isoformat() == c.committed_at


def test_prices_contexts_tiers_and_time_of_day_in_one_group(tmp_path, monkeypatch):
    d = tmp_path / "in"
    night = T0.replace(hour=2)  # a DeepSeek peak hour
    sources = [
        _file(d, "a.jsonl", _rows(0, 4, provider="anthropic", model="claude-haiku-4-5",
                                  attributes={"processing": "batch"})),
        _file(d, "b.jsonl", _rows(100, 4, provider="anthropic", model="claude-haiku-4-5")),
        _file(d, "c.jsonl", _rows(200, 4, provider="google", model="gemini-1.5-pro",
                                  input_tokens=300_000)),
        _file(d, "d.jsonl", [canonical_request(300 + i, provider="deepseek",
                                               model="deepseek-v4-pro",
                                               ts=(night + timedelta(hours=i)).isoformat())
                             for i in range(6)]),
        _file(d, "e.jsonl", _rows(400, 4, provider="nobody", model="unpriced-model")),
    ]
    passes, lake, _ = _same_as_one_at_a_time(tmp_path, monkeypatch, sources)
    assert passes == [5]
    costs = dict(duckdb.sql(
        "SELECT source_file, sum(cost_usd) FROM read_parquet($f) GROUP BY ALL",
        params={"f": [str(lake.root / p) for p in lake.snapshot().files["requests"]]}
    ).fetchall())
    assert costs[str(sources[4])] is None  # unpriced: null, never $0
    # past a price tier, and by the time of day: as priced one call at a time
    tier = 4 * pricing.request_cost("google", "gemini-1.5-pro", T0, 300_000, output_tokens=500)
    hours = sum(pricing.request_cost("deepseek", "deepseek-v4-pro", night + timedelta(hours=i),
                                     1000, output_tokens=500) for i in range(6))
    assert costs[str(sources[2])] == pytest.approx(tier, rel=1e-12)
    assert costs[str(sources[3])] == pytest.approx(hours, rel=1e-12)


def test_files_the_group_cannot_prove_clean_are_read_alone_at_their_turn(tmp_path, monkeypatch):
    d = tmp_path / "in"
    sources = [
        _file(d, "01-good.jsonl", _rows(0, 5)),
        _file(d, "02-bad-row.jsonl", _rows(100, 3) + [canonical_request(103, input_tokens=-5)]),
        _file(d, "03-good.jsonl", _rows(200, 5)),
        _file(d, "04-malformed.jsonl", jsonl_bytes(_rows(300, 2)) + b"{not json\n"),
        _file(d, "05-key-twice.jsonl", _rows(400, 3) + _rows(400, 1)),
        _file(d, "06.csv", b"request_id,ts,provider,model,input_tokens,output_tokens\n"
                           b"r600,2026-01-01T00:00:00Z,openai,gpt-4o,10,5\n"),
        _file(d, "07-empty.jsonl", b""),
        _file(d, "08-good.jsonl", _rows(800, 5)),
        _file(d, "09-same-as-01.jsonl", _rows(0, 5)),
        _file(d, "10-gz.jsonl.gz", _rows(1000, 5), gz=True),
        _file(d, "11-evals.jsonl", [{"eval_id": f"e{i}", "ts": T0.isoformat(),
                                     "metric": "accuracy", "score": 0.5} for i in range(3)]),
        _file(d, "12-bad-gz.jsonl.gz", gzip.compress(jsonl_bytes(_rows(1200, 40)))[:60]),
        _file(d, "13-good.jsonl", _rows(1300, 5)),
    ]
    passes, lake, _ = _same_as_one_at_a_time(tmp_path, monkeypatch, sources)
    # the plain requests files before the empty one are read together, then in halves down to
    # the malformed one; after it, plain and gzip requests and evals are read apart
    assert passes == [5, 2, 3, 1, 2, 1, 1, 2, 1, 1]


def test_keys_in_the_lake_or_in_earlier_files_are_duplicates_as_one_at_a_time(
        tmp_path, monkeypatch):
    d = tmp_path / "in"
    day = timedelta(days=1)
    k = canonical_request

    def prepare(lake):
        ingest_paths(lake, [str(_file(tmp_path / "before", "old.jsonl",
                                      [k(1), k(2, ts=(T0 + 5 * day).isoformat())]))],
                     compact_min_files=0)

    sources = [
        _file(d, "a.jsonl", [k(1), k(10), k(11)]),  # r1: stored before
        # r2 stored five days later: no duplicate (only the day and either side are checked)
        _file(d, "b.jsonl", [k(2), k(20)]),
        _file(d, "c.jsonl", [k(10, latency_ms=1.0), k(30)]),  # r10: in a, an earlier file
        # a chain: r40 in d is stored; e's r40 is two days later, so is stored too; f's is
        # one day after e's
        _file(d, "d.jsonl", [k(40), k(41)]),
        _file(d, "e.jsonl", [k(40, ts=(T0 + 2 * day).isoformat())]),
        _file(d, "f.jsonl", [k(40, ts=(T0 + 3 * day).isoformat()), k(60)]),
    ]
    passes, lake, _ = _same_as_one_at_a_time(tmp_path, monkeypatch, sources, prepare=prepare)
    assert passes == [6]
    report = [c.rows for c in lake.commits()[1:]]
    assert report == [{"requests": 2}, {"requests": 2}, {"requests": 1}, {"requests": 2},
                      {"requests": 1}, {"requests": 1}]


def test_a_file_read_alone_stores_keys_a_later_group_file_then_finds_stored(
        tmp_path, monkeypatch):
    d = tmp_path / "in"
    sources = [
        _file(d, "a.jsonl", _rows(0, 3)),
        _file(d, "b.jsonl", _rows(10, 3) + [canonical_request(13, input_tokens=-1)]),  # alone
        _file(d, "c.jsonl", _rows(10, 2) + _rows(20, 2)),  # r10, r11: stored by b
    ]
    _, lake, _ = _same_as_one_at_a_time(tmp_path, monkeypatch, sources)
    assert {Path(c.source).name: c.rows for c in lake.commits()} == {
        "a.jsonl": {"requests": 3}, "b.jsonl": {"requests": 3, "quarantine": 1},
        "c.jsonl": {"requests": 2}}


def test_a_repeated_run_reads_nothing_and_a_dry_run_matches(tmp_path, monkeypatch):
    d = tmp_path / "in"
    for k in range(5):
        _file(d, f"{k}.jsonl", _rows(10 * k, 4))
    _file(d, "dup.jsonl", _rows(0, 2))
    checked = _same_as_one_at_a_time(tmp_path, monkeypatch, [d],
                                     prepare=lambda lake: None)[1]
    store, reports, passes = _run(Lake(checked.root), [d], monkeypatch, group=True)
    assert passes == [] and all(r[9] for r in reports)  # skipped: unchanged since read
    # a dry run reports what a run would do, with the group and without; nothing is written
    dry = {}
    for group in (False, True):
        lake = Lake(tmp_path / "dry-store").checking()
        dry[group] = _run(lake, [d], monkeypatch, group)[1]
        assert not (tmp_path / "dry-store").exists()
    assert dry[True] == dry[False]
    assert [r[2] for r in dry[True]] == [{"requests": 4}] * 5 + [{"requests": 0}]


def test_groups_stop_at_their_limits_and_large_files_go_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(grouped, "GROUP_FILES", 3)
    monkeypatch.setattr(grouped, "FILE_BYTES", 2_000)
    d = tmp_path / "in"
    for k in range(7):
        _file(d, f"{k}.jsonl", _rows(10 * k, 2))
    _file(d, "7-large.jsonl", _rows(100, 20))  # over FILE_BYTES: the fast path alone
    _file(d, "8.jsonl", _rows(200, 2))
    _file(d, "9.jsonl", _rows(300, 2))
    passes, _, _ = _same_as_one_at_a_time(tmp_path, monkeypatch, [d])
    assert passes == [3, 3, 2]  # 0-2, 3-5, then 8-9 after 6 and 7 alone


def test_progress_is_reported_for_each_file(tmp_path, monkeypatch):
    d = tmp_path / "in"
    for k in range(4):
        _file(d, f"{k}.jsonl", _rows(10 * k, 3))
    seen = []
    ingest_paths(Lake(tmp_path / "store"), [str(d)], compact_min_files=0,
                 progress=lambda p: seen.append((p.files_done, p.files_total, p.rows)))
    assert (3, 4, 3) in seen and {s[0] for s in seen} == {0, 1, 2, 3}


def test_files_that_match_one_another_as_globs_are_not_grouped(tmp_path, monkeypatch):
    d = tmp_path / "in"
    names = ("a1.jsonl", "a2.jsonl", "c1.jsonl", "c[1].jsonl")  # "c[1]" matches "c1" as a glob
    for k, n in enumerate(names):
        _file(d, n, _rows(10 * k, 2))
    passes, lake, _ = _same_as_one_at_a_time(tmp_path, monkeypatch, [d])
    assert passes == [3]
    assert sorted(s for _, s, _ in _lineage(lake)) == [str(d / n) for n in names]


@pytest.mark.parametrize("stage, committed", [
    ("after_group_read", 0),  # the group's files written in scratch, nothing committed
    ("before_publish", 0),    # the first file's data files in place, its commit not written
    ("after_commit", 1),      # the first file committed, the others not
])
def test_kill_9_during_a_group_leaves_whole_files_committed_or_not(tmp_path, stage, committed):
    d = tmp_path / "in"
    for k in range(3):
        _file(d, f"{k}.jsonl", _rows(100 * k, 10))
    lake = Lake(tmp_path / "store")
    kill_9_at(stage, [str(lake.root), str(d)], tmp_path / "paused")

    def count() -> int:
        files = [str(lake.root / p) for p in Lake(lake.root).snapshot().files["requests"]]
        return duckdb.sql("SELECT count(DISTINCT request_id) FROM read_parquet($f)",
                          params={"f": files}).fetchone()[0] if files else 0

    assert count() == 10 * committed
    assert leftovers(lake.root), "the killed writer left nothing: the test proves nothing"
    report = ingest_paths(Lake(lake.root), [str(d)], compact_min_files=0)
    assert sum(f.skipped is not None for f in report.files) == committed
    assert count() == 30 and len(Lake(lake.root).commits()) == 3
    assert leftovers(lake.root) == []
    assert fastpath.LAST.get("group") is True


def test_small_s3_objects_are_read_in_one_pass_as_each_alone_would_be(
        tmp_path, monkeypatch, s3_server):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="grouped-fh")
    bodies = {
        "fh/01.jsonl": jsonl_bytes(_rows(0, 5)),
        "fh/02.jsonl.gz": gzip.compress(jsonl_bytes(_rows(100, 5)), mtime=0),
        "fh/03.jsonl": jsonl_bytes(_rows(200, 2) + [canonical_request(202, input_tokens=-1)]),
        "fh/04.jsonl": jsonl_bytes(_rows(0, 2) + _rows(300, 2)),  # r0, r1: in 01
        "fh/05.jsonl": jsonl_bytes(_rows(400, 3)),
        "fh/06.jsonl": jsonl_bytes(_rows(400, 3)),  # 05's content again
        "fh/07.jsonl": b"{not json\n",
        "fh/08.jsonl.gz": gzip.compress(jsonl_bytes(_rows(800, 5)), mtime=0),
    }
    for key, body in bodies.items():
        s3.put_object(Bucket="grouped-fh", Key=key, Body=body)
    results = {}
    for group in (False, True):
        lake = Lake(tmp_path / f"store-{group}")
        results[group] = (lake, _run(lake, ["s3://grouped-fh/fh/"], monkeypatch, group,
                                     s3_endpoint_url=s3_server))
    (lake0, (store0, reports0, _)), (lake1, (store1, reports1, passes)) = \
        results[False], results[True]
    assert reports1 == reports0
    assert store1 == store0
    assert store1["requests"] and len(store1["quarantine"]) == 1  # 07 is no JSONL at all

    def commits(lake):  # the exact path (S3 objects alone) records no ingest path
        return sorted(((c.kind, c.source, c.content_hash, c.rows, len(c.added),
                        {k: v for k, v in c.info.items() if k != "ingest_path"})
                       for c in lake.commits()), key=repr)

    assert commits(lake1) == commits(lake0)
    assert passes and max(passes) >= 4  # read together, the objects alone read apart
    assert not list((lake1.root / "_tmp").glob("*"))


def test_an_s3_object_gone_before_its_get_is_reported_and_the_others_stored(
        tmp_path, monkeypatch, s3_server):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="grouped-gone")
    for k in range(6):
        s3.put_object(Bucket="grouped-gone", Key=f"fh/{k}.jsonl",
                      Body=jsonl_bytes(_rows(10 * k, 3)))
    real = grouped._fetch

    def fetch(src):  # deleted between the listing and the GETs, as a lifecycle rule might
        if src.name.endswith("/3.jsonl"):
            s3.delete_object(Bucket="grouped-gone", Key="fh/3.jsonl")
        return real(src)

    monkeypatch.setattr(grouped, "_fetch", fetch)
    lake = Lake(tmp_path / "store")
    store, reports, passes = _run(lake, ["s3://grouped-gone/fh/"], monkeypatch, group=True,
                                  s3_endpoint_url=s3_server)
    assert passes == [5]
    by_name = {Path(r[0]).name: r for r in reports}
    assert "gone before it was read" in by_name["3.jsonl"][9] and by_name["3.jsonl"][2] == {}
    assert [by_name[f"{k}.jsonl"][2] for k in (0, 1, 2, 4, 5)] == [{"requests": 3}] * 5
    assert len(store["requests"]) == 15


def test_a_group_spanning_more_partitions_than_one_copy_keeps_open_is_read_in_halves(
        tmp_path, monkeypatch):
    monkeypatch.setattr(grouped, "OPEN_FILES", 4)
    d = tmp_path / "in"
    for k in range(4):  # each file over two days: 8 (file, day) partitions
        _file(d, f"{k}.jsonl", _rows(10 * k, 2) + [
            canonical_request(10 * k + 5, ts=(T0 + timedelta(days=1)).isoformat())])
    passes, lake, _ = _same_as_one_at_a_time(tmp_path, monkeypatch, [d])
    assert passes == [4, 2, 2]
    assert len(lake.commits()) == 4
