"""The lake (design §2): Hive partitions per day, idempotent batches, row dedupe, atomic rewrites,
and readers that see only what the manifest lists; corrupt files are problems, not tracebacks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import duckdb
import pyarrow.parquet as pq
import pytest

from lib.store import Engine, Lake
from tests.conftest import T0, make_request, requests_table


def _files_on_disk(lake: Lake, table: str = "requests") -> set[str]:
    base = lake.root / table
    if not base.exists():
        return set()
    return {str(p.relative_to(lake.root)) for p in base.rglob("*") if p.is_file()}


def _ids(engine: Engine) -> list[str]:
    return engine.query("SELECT request_id FROM requests ORDER BY request_id")["request_id"] \
        .to_list()


# -- partitions -----------------------------------------------------------------------------------
def test_append_writes_one_hive_partition_per_utc_day(lake, engine):
    rows = [
        make_request(0, ts=datetime(2026, 3, 2, 0, 0, tzinfo=UTC)),
        make_request(1, ts=datetime(2026, 3, 2, 23, 59, 59, 999999, tzinfo=UTC)),
        # 01:00 at +02:00 is 23:00 UTC the day before: partitioned by the UTC day.
        make_request(2, ts=datetime(2026, 3, 3, 1, 0, tzinfo=timezone(timedelta(hours=2)))),
        make_request(3, ts=datetime(2026, 3, 3, 0, 0, tzinfo=UTC)),
        make_request(4, ts=datetime(2026, 3, 5, 8, 0, tzinfo=UTC)),
    ]
    result = lake.append({"requests": requests_table(rows)}, source="t.jsonl")
    commit = result.commit
    assert result.stored == {"requests": 5} and result.duplicate_rows == {"requests": 0}
    by_day = {}
    for f in commit.added:
        assert f["table"] == "requests"
        parts = f["path"].split("/")
        assert parts[0] == "requests" and parts[1].startswith("date=")
        assert parts[2].endswith(".parquet") and not parts[2].startswith(".")
        by_day[parts[1][5:]] = f
    assert sorted(by_day) == ["2026-03-02", "2026-03-03", "2026-03-05"]
    assert {d: f["rows"] for d, f in by_day.items()} == {"2026-03-02": 3, "2026-03-03": 1,
                                                          "2026-03-05": 1}
    # Every row of a partition file lies in that UTC day, sorted by time.
    for day, f in by_day.items():
        t = pq.read_table(lake.root / f["path"])
        assert t.num_rows == f["rows"]
        stamps = t.column("ts").to_pylist()
        assert stamps == sorted(stamps)
        assert {s.astimezone(UTC).strftime("%Y-%m-%d") for s in stamps} == {day}
    # Nothing but the listed files (no temporaries left behind).
    assert _files_on_disk(lake) == {f["path"] for f in commit.added}
    assert commit.rows == {"requests": 5} and commit.source == "t.jsonl"
    assert engine.row_count("requests") == 5


def test_manifest_entry_is_complete_json_named_by_content_hash(lake):
    result = lake.append({"requests": requests_table([make_request(0)])}, source="s",
                         content_hash="abc123")
    entry = lake.manifest_dir / "abc123.json"
    doc = json.loads(entry.read_text())
    assert doc["commit_id"] == "abc123" and doc["content_hash"] == "abc123"
    assert doc["added"] == result.commit.added
    assert not [p for p in lake.manifest_dir.iterdir() if p.name.endswith(".tmp")]
    assert [c.commit_id for c in lake.commits()] == ["abc123"]


# -- idempotency ----------------------------------------------------------------------------------
def test_repeated_batch_with_same_content_hash_is_a_no_op(lake, engine):
    batch = requests_table([make_request(i) for i in range(3)])
    first = lake.append({"requests": batch}, source="a.jsonl", content_hash="h1")
    assert first.commit is not None and not first.duplicate_batch
    version, files = lake.version(), _files_on_disk(lake)
    assert lake.has_content("h1")

    again = lake.append({"requests": batch}, source="a-copy.jsonl", content_hash="h1")
    assert again.duplicate_batch and again.commit is None and again.stored == {}
    assert lake.version() == version
    assert _files_on_disk(lake) == files
    assert len(lake.commits()) == 1
    assert engine.row_count("requests") == 3


def test_duplicate_keys_within_a_batch_keep_the_first_row_and_are_counted(lake, engine):
    rows = [make_request(0), make_request(1), make_request(0, latency_ms=999.0),
            make_request(2), make_request(1, latency_ms=888.0), make_request(3)]
    result = lake.append({"requests": requests_table(rows)}, source="dupes.jsonl")
    assert result.stored == {"requests": 4}
    assert result.duplicate_rows == {"requests": 2}
    got = engine.query("SELECT request_id, latency_ms FROM requests ORDER BY request_id")
    assert got.rows() == [("r0", 100.0), ("r1", 101.0), ("r2", 102.0), ("r3", 103.0)]
    assert result.commit.rows == {"requests": 4}


def test_duplicate_keys_against_the_lake_are_dropped_and_counted(lake, engine):
    lake.append({"requests": requests_table([make_request(i) for i in range(4)])}, source="a")
    # Overlaps r2, r3 (other values, which must not win); adds r4, r5 and r6 on another day.
    overlap = [make_request(2, latency_ms=1.0), make_request(3, latency_ms=1.0),
               make_request(4), make_request(5),
               make_request(6, ts=T0 + timedelta(days=3))]
    result = lake.append({"requests": requests_table(overlap)}, source="b")
    assert result.stored == {"requests": 3}
    assert result.duplicate_rows == {"requests": 2}
    assert engine.row_count("requests") == 7
    got = engine.query("SELECT request_id, latency_ms FROM requests WHERE request_id IN "
                       "('r2', 'r3') ORDER BY 1")
    assert got.rows() == [("r2", 102.0), ("r3", 103.0)]

    # A batch made only of known rows stores nothing but still commits (its hash is remembered).
    only_dupes = lake.append({"requests": requests_table([make_request(4), make_request(5)])},
                             source="c", content_hash="h-dupes")
    assert only_dupes.stored == {} and only_dupes.duplicate_rows == {"requests": 2}
    assert engine.row_count("requests") == 7
    assert lake.has_content("h-dupes")


def test_a_key_on_the_next_day_is_a_duplicate_one_two_days_later_is_not(lake, engine):
    midnight = T0.replace(hour=0) + timedelta(days=1)
    lake.append({"requests": requests_table([
        make_request(1, ts=midnight - timedelta(seconds=1))])}, source="a")
    # The same call logged by another source, on the other side of midnight.
    result = lake.append({"requests": requests_table([
        make_request(1, ts=midnight + timedelta(seconds=1))])}, source="b")
    assert result.duplicate_rows == {"requests": 1} and result.stored == {}
    assert engine.query("SELECT count(*) FROM requests").item() == 1
    later = lake.append({"requests": requests_table([
        make_request(1, ts=midnight + timedelta(days=2))])}, source="c")
    assert later.stored == {"requests": 1} and engine.row_count("requests") == 2


def test_dedupe_off_keeps_every_row(lake, engine):
    rows = [make_request(0), make_request(0)]
    result = lake.append({"requests": requests_table(rows)}, source="x", dedupe=False)
    assert result.stored == {"requests": 2}
    assert engine.row_count("requests") == 2


# -- rewrite and snapshot -------------------------------------------------------------------------
def _two_days(lake: Lake) -> tuple[str, str]:
    day1 = [make_request(i) for i in range(3)]
    day2 = [make_request(10 + i, ts=T0 + timedelta(days=1, minutes=i)) for i in range(2)]
    lake.append({"requests": requests_table(day1)}, source="a")
    lake.append({"requests": requests_table(day2)}, source="b")
    return T0.strftime("%Y-%m-%d"), (T0 + timedelta(days=1)).strftime("%Y-%m-%d")


def test_rewrite_atomically_replaces_one_partition(lake):
    d1, d2 = _two_days(lake)
    old_d1 = [p for p in lake.snapshot().files["requests"] if f"date={d1}" in p]
    old_d2 = [p for p in lake.snapshot().files["requests"] if f"date={d2}" in p]
    reader = Engine(lake)  # opened before the rewrite
    try:
        assert reader.row_count("requests") == 5
        versions_before = len(lake.commits())
        replacement = requests_table([make_request(i, cost_usd=1.0) for i in range(3)]
                                     + [make_request(3, cost_usd=1.0)])
        commit = lake.rewrite("requests", {d1: replacement}, kind="reprice", source="test")
        assert len(lake.commits()) == versions_before + 1  # one manifest entry, all at once
        assert sorted(commit.removed) == sorted(old_d1)
        assert commit.rows == {"requests": 4} and commit.kind == "reprice"

        snap = lake.snapshot()
        live = snap.files["requests"]
        assert not set(old_d1) & set(live)  # the snapshot excludes removed files
        assert set(old_d2) <= set(live)  # other days untouched
        assert set(live) == set(old_d2) | {f["path"] for f in commit.added}
        # Removed files stay on disk for readers in flight, but nobody reads them.
        assert all((lake.root / p).exists() for p in old_d1)

        # The reader sees the new state on its next query (views refreshed on manifest change).
        assert reader.row_count("requests") == 6
        got = reader.query("SELECT request_id, cost_usd FROM requests ORDER BY ts")
        assert got.rows() == [("r0", 1.0), ("r1", 1.0), ("r2", 1.0), ("r3", 1.0),
                              ("r10", 0.0075), ("r11", 0.0075)]
        fresh = Engine(lake)
        assert fresh.row_count("requests") == 6
        fresh.close()
    finally:
        reader.close()


def test_rewrite_of_named_files_refuses_files_no_longer_live(lake):
    d1, _ = _two_days(lake)
    old_d1 = [p for p in lake.snapshot().files["requests"] if f"date={d1}" in p]
    lake.rewrite("requests", {d1: requests_table([make_request(0)])}, kind="compact",
                 source="t", files={d1: old_d1})
    with pytest.raises(ValueError, match="no longer live"):
        lake.rewrite("requests", {d1: requests_table([make_request(0)])}, kind="compact",
                     source="t", files={d1: old_d1})
    assert Engine(lake).row_count("requests") == 3  # 1 on day 1 + 2 on day 2


def test_snapshot_lists_added_minus_removed_per_table(lake):
    d1, d2 = _two_days(lake)
    snap = lake.snapshot()
    assert set(snap.files) >= {"requests", "evals", "events", "spans", "quarantine"}
    assert len(snap.files["requests"]) == 2 and snap.files["evals"] == []
    assert snap.version == lake.version() != "empty"
    lake.rewrite("requests", {d2: requests_table([make_request(10, ts=T0 + timedelta(days=1))])},
                 kind="compact", source="t")
    removed = {p for c in lake.commits() for p in c.removed}
    assert removed and not removed & set(lake.snapshot().files["requests"])


def test_version_changes_with_each_commit_and_engine_refreshes(lake, engine):
    assert lake.version() == "empty" and engine.row_count("requests") == 0
    v0 = lake.version()
    lake.append({"requests": requests_table([make_request(0)])}, source="a")
    v1 = lake.version()
    assert v1 != v0
    assert engine.row_count("requests") == 1 and engine.version == v1
    assert engine.refresh() is False  # nothing changed
    lake.append({"requests": requests_table([make_request(1)])}, source="b")
    assert lake.version() != v1
    assert engine.row_count("requests") == 2


# -- foreign, orphan and corrupt files ------------------------------------------------------------
def test_orphan_and_foreign_files_are_invisible_to_readers(lake, engine):
    lake.append({"requests": requests_table([make_request(i) for i in range(3)])}, source="a")
    part = lake.root / "requests" / f"date={T0:%Y-%m-%d}"
    # A valid Parquet file nobody committed (e.g. a writer killed after the rename) ...
    pq.write_table(requests_table([make_request(100 + i) for i in range(5)]),
                   part / "orphan.parquet")
    # ... a temporary file of a writer in flight, and unrelated junk.
    (part / ".x.parquet.123.tmp").write_bytes(b"PAR1 half a file")
    (part / "notes.txt").write_text("not data")
    (lake.root / "requests" / "date=2026-01-01").mkdir()
    pq.write_table(requests_table([make_request(200)]),
                   lake.root / "requests" / "date=2026-01-01" / "foreign.parquet")
    # A manifest-looking file that is not JSON: reported, not fatal.
    (lake.manifest_dir / "garbage.json").write_text("{not json")

    fresh = Engine(lake)
    try:
        for e in (engine, fresh):
            assert e.row_count("requests") == 3
            assert _ids(e) == ["r0", "r1", "r2"]
        problems = fresh.problems()
        assert problems == [f"{lake.manifest_dir / 'garbage.json'}: unreadable manifest entry"]
        # Housekeeping lists what readers ignore, by path.
        orphans = {str(p) for p in lake.orphans(older_than_s=0)}
        assert {str(part / "orphan.parquet"), str(part / "notes.txt"),
                str(part / ".x.parquet.123.tmp"),
                str(lake.root / "requests" / "date=2026-01-01" / "foreign.parquet")} == orphans
        assert lake.orphans(older_than_s=3600) == []  # young files may belong to a live writer
    finally:
        fresh.close()


def test_a_corrupt_live_file_is_a_problem_with_its_path_and_the_rest_still_reads(lake):
    lake.append({"requests": requests_table([make_request(i) for i in range(3)])}, source="a")
    lake.append({"requests": requests_table([make_request(10 + i, ts=T0 + timedelta(days=1))
                                             for i in range(4)])}, source="b")
    lake.append({"requests": requests_table([make_request(20 + i, ts=T0 + timedelta(days=2))
                                             for i in range(2)])}, source="c")
    victim = lake.root / lake.commits()[1].added[0]["path"]
    size = victim.stat().st_size
    with open(victim, "r+b") as fh:
        fh.truncate(size // 2)

    engine = Engine(lake)  # no traceback on open
    try:
        assert engine.row_count("requests") == 5
        assert _ids(engine) == ["r0", "r1", "r2", "r20", "r21"]
        problems = engine.problems()
        assert len(problems) == 1 and problems[0].startswith(f"{victim}: ")
        assert "not a readable Parquet file" in problems[0]
        # Aggregates over the remaining files work too.
        assert engine.scalar("SELECT sum(latency_ms) FROM requests") == \
            sum(100.0 + i for i in (0, 1, 2, 20, 21))
    finally:
        engine.close()

    # A file emptied entirely (zero bytes) is reported too, beside the first one.
    victim2 = lake.root / lake.commits()[2].added[0]["path"]
    victim2.write_bytes(b"")
    engine = Engine(lake)
    try:
        assert engine.row_count("requests") == 3
        assert sorted(p.split(": ")[0] for p in engine.problems()) == sorted(
            [str(victim), str(victim2)])
    finally:
        engine.close()


def test_plain_duckdb_reads_the_live_files_like_the_engine(lake, engine):
    """Files are ordinary Hive-partitioned Parquet: another engine reads them without Sightline."""
    _two_days(lake)
    files = [str(lake.root / p) for p in lake.snapshot().files["requests"]]
    con = duckdb.connect()
    try:
        n, days = con.execute(
            "SELECT count(*), count(DISTINCT date) FROM read_parquet($f, hive_partitioning=true)",
            {"f": files}).fetchone()
    finally:
        con.close()
    assert (n, days) == (5, 2) == (engine.row_count("requests"), 2)


def test_a_writer_behind_another_says_it_is_waiting(tmp_path, caplog):
    # (an ingest from cron behind a long one printed nothing while it waited)
    import logging
    import threading
    import time

    holder, waiter = Lake(tmp_path / "s"), Lake(tmp_path / "s")
    held, releasing = threading.Event(), threading.Event()

    def hold():
        with holder.writer_lock():
            held.set()
            time.sleep(0.5)
            releasing.set()  # (still holding: set after the release, it raced the waiter)

    threading.Thread(target=hold).start()
    held.wait(5)
    with caplog.at_level(logging.WARNING, logger="lib.store.lake"), waiter.writer_lock():
        assert releasing.is_set()  # it waited for the holder
    assert any("another writer" in r.message and "waiting for it to finish" in r.message
               for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lib.store.lake"), waiter.writer_lock():
        pass
    assert not caplog.records  # a free store says nothing
