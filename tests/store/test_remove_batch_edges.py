"""``remove BATCH_ID`` (Lake.remove_batch) at its edges: rows of other batches never leave with it,
whatever files they share; a removed batch's content and sources are really read again; a remove
killed before it publishes changes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib import demo, schema
from lib.ingest import fastpath
from lib.ingest.pipeline import ingest_paths
from lib.pricing import Override, reprice
from lib.store import Engine
from lib.store import compact as compaction
from tests.conftest import wait_for_marker
from tests.ingest.conftest import canonical_request, jsonl_bytes, stored_rows

REPO = Path(__file__).resolve().parents[2]
LINEAGE = ("batch_id", "ingested_at", "source_file")


def _ingest(lake, path: Path, rows: list[dict], **kw):
    path.write_bytes(jsonl_bytes(rows))
    return ingest_paths(lake, [str(path)], compact_min_files=0, **kw).files[0]


def _ids(lake) -> list[str]:
    return sorted(r[0] for r in stored_rows(lake, "requests", LINEAGE))


def _file_of(lake, batch_id: str) -> str:
    return next(f["path"] for c in lake.commits() if c.commit_id == batch_id for f in c.added
                if f["table"] == "requests")


def test_other_batches_keep_their_rows_when_two_files_of_one_day_hold_the_batch(lake, tmp_path):
    """Two live files of one day partition, each holding rows of the removed batch and rows of
    another batch: both rewritten files must survive (they were both named <commit>-0.parquet,
    the second overwrote the first, and the manifest listed that path twice)."""
    a = _ingest(lake, tmp_path / "a.jsonl", [canonical_request(i) for i in range(0, 3)])
    x = _ingest(lake, tmp_path / "x.jsonl", [canonical_request(i) for i in range(10, 14)])
    b = _ingest(lake, tmp_path / "b.jsonl", [canonical_request(i) for i in range(20, 23)])
    day = "2026-03-02"
    fa, fx, fb = (_file_of(lake, c.batch_id) for c in (a, x, b))
    ta, tx, tb = (pq.read_table(lake.root / f) for f in (fa, fx, fb))
    # A layout the manifest allows (Lake.rewrite of chosen files, as compaction does): the
    # batch's rows split over two files of the day, each shared with another batch.
    lake.rewrite("requests", {day: pa.concat_tables([ta, tx.slice(0, 2)])}, kind="compact",
                 source="compact", files={day: [fa, fx]})
    lake.rewrite("requests", {day: pa.concat_tables([tb, tx.slice(2)])}, kind="compact",
                 source="compact", files={day: [fb]})
    assert len(_ids(lake)) == 10

    commit = lake.remove_batch(x.batch_id)
    assert commit.info["removed_rows"] == {"requests": 4}
    paths = [f["path"] for f in commit.added]
    assert len(paths) == len(set(paths)) == 2
    assert _ids(lake) == sorted(f"r{i}" for i in (0, 1, 2, 20, 21, 22))
    assert commit.rows == {"requests": 6}


def test_rows_with_no_batch_id_and_repriced_rows_are_handled(lake, tmp_path):
    """Rows without a batch id (foreign or old files) stay; rows repriced since their ingest
    (one rewritten file per day, all batches in it) still leave with their batch."""
    keep = _ingest(lake, tmp_path / "keep.jsonl", [canonical_request(i) for i in range(3)])
    wrong = _ingest(lake, tmp_path / "wrong.jsonl",
                    [canonical_request(i) for i in range(10, 14)])
    f = _file_of(lake, keep.batch_id)
    t = pq.read_table(lake.root / f)
    orphan_rows = t.set_column(t.schema.get_field_index("batch_id"), "batch_id",
                               pa.nulls(t.num_rows, pa.string()))
    orphan_rows = orphan_rows.set_column(
        orphan_rows.schema.get_field_index("request_id"), "request_id",
        pa.array([f"n{i}" for i in range(t.num_rows)]))
    lake.rewrite("requests", {"2026-03-02": pa.concat_tables([t, orphan_rows])}, kind="compact",
                 source="compact", files={"2026-03-02": [f]})
    price = Override(provider="openai", model="gpt-4o", input_per_mtok=1.0, output_per_mtok=1.0,
                     cached_input_per_mtok=None, cache_write_per_mtok=None)
    assert reprice(lake, overrides={("openai", "gpt-4o"): price})["days_rewritten"] == 1
    assert len(lake.snapshot().files["requests"]) == 1  # one repriced file holds every batch

    lake.remove_batch(wrong.batch_id)
    assert _ids(lake) == ["n0", "n1", "n2", "r0", "r1", "r2"]


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "exact path"])
def test_remove_ingest_again_remove_again(lake, tmp_path, monkeypatch, fast):
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "1" if fast else "0")
    path = tmp_path / "a.jsonl"
    rows = [canonical_request(i) for i in range(3)]
    for round_ in range(3):
        done = _ingest(lake, path, rows)
        assert done.stored == {"requests": 3}, round_
        assert fastpath.LAST["outcome"] == ("fast" if fast else "exact")
        assert lake.has_content(done.content_hash)
        assert ingest_paths(lake, [str(path)]).files[0].skipped  # remembered while stored
        lake.remove_batch(done.batch_id)
        assert not lake.has_content(done.content_hash)
        assert _ids(lake) == []
    engine = Engine(lake)
    try:
        assert engine.row_count("requests") == 0
    finally:
        engine.close()


def test_a_copy_seen_as_a_duplicate_of_a_removed_batch_is_read_again(lake, tmp_path):
    """b.jsonl had the content of a.jsonl: a "seen" commit records it, and later runs skip it.
    Once a.jsonl's batch is removed, that content is no longer stored: b.jsonl must be read."""
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    data = jsonl_bytes([canonical_request(i) for i in range(3)])
    a.write_bytes(data)
    b.write_bytes(data)
    first = ingest_paths(lake, [str(a), str(b)])
    assert [f.duplicate_file for f in first.files] == [False, True]
    assert ingest_paths(lake, [str(b)]).files[0].skipped  # seen: same content

    lake.remove_batch(first.files[0].batch_id)
    again = ingest_paths(lake, [str(b)]).files[0]
    assert (again.skipped, again.stored) == (None, {"requests": 3})
    assert _ids(lake) == ["r0", "r1", "r2"]
    # and it is remembered again from now on
    assert ingest_paths(lake, [str(b)]).files[0].skipped


def test_a_removed_demo_batch_can_be_written_again_and_removed_again(lake):
    """Demo batches commit under their content hash (Lake.append): after its removal the same
    demo is written again (it failed: the commit's name was taken), and can be removed again."""
    end = datetime(2026, 3, 5, tzinfo=UTC)
    demo.write(lake, days=1, requests_per_day=40, end=end)
    first = next(c for c in lake.commits() if c.kind == "demo")
    n = sum(first.rows.values())
    lake.remove_batch(first.commit_id)
    assert not lake.has_content(first.content_hash)

    again = demo.write(lake, days=1, requests_per_day=40, end=end)
    assert again.committed
    second = next(c for c in lake.commits()
                  if c.kind == "demo" and c.commit_id != first.commit_id)
    assert second.content_hash == first.content_hash
    assert lake.has_content(first.content_hash)
    assert not demo.write(lake, days=1, requests_per_day=40, end=end).committed  # a no-op
    total = sum(len(stored_rows(lake, t, LINEAGE)) for t in schema.TABLES)
    assert total == n
    lake.remove_batch(second.commit_id)
    assert sum(len(stored_rows(lake, t, LINEAGE)) for t in schema.TABLES) == 0
    assert not lake.has_content(first.content_hash)


REMOVER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from lib.store import Lake
    from lib.store import lake as lake_mod

    store, batch, marker = sys.argv[1:4]

    def stall(self, commit):
        Path(marker).write_text("files written")
        time.sleep(60)

    lake_mod.Lake._publish = stall
    Lake(store).remove_batch(batch)
    """
)


def test_a_remove_killed_before_it_publishes_changes_nothing(lake, tmp_path):
    keep = _ingest(lake, tmp_path / "a.jsonl", [canonical_request(i) for i in range(3)])
    wrong = _ingest(lake, tmp_path / "b.jsonl", [canonical_request(i) for i in range(3, 6)])
    compaction.compact(lake, min_files=1)  # one shared file: the remove rewrites it
    before = (lake.version(), _ids(lake))
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", REMOVER, str(lake.root), wrong.batch_id,
                             str(marker)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        wait_for_marker(proc, marker, timeout_s=60)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert (lake.version(), _ids(lake)) == before
    assert lake.has_content(wrong.content_hash)  # not forgotten: the batch is still there
    assert lake.orphans(older_than_s=0)  # the rewritten file, listed by no commit
    lake.remove_batch(wrong.batch_id)  # the lock was released with the process
    assert _ids(lake) == ["r0", "r1", "r2"]
    assert {r[-1] for r in stored_rows(lake, "requests", ("ingested_at", "source_file"))
            } == {keep.batch_id}
