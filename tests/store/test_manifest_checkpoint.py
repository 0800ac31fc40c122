"""Manifest checkpoints: every CHECKPOINT_EVERY commits a writer also writes them in one file, so a
process that starts reads one file, not one per commit (a month of ingests every minute is
45,000). A checkpoint is only a cache of the commit files, which are never rewritten."""

from __future__ import annotations

import json
import logging
import math

from lib.store import Engine, Lake
from lib.store import lake as lake_module
from lib.store.lake import Commit
from tests.conftest import make_request, requests_table


def _ingest(lake: Lake, n: int, first: int = 0) -> None:
    for i in range(first, first + n):
        lake.append({"requests": requests_table([make_request(i)])}, source=f"batch-{i}",
                    content_hash=f"hash-{i}", info={"n": i})


def _checkpoints(lake: Lake) -> list[str]:
    return sorted(p.name for p in lake.manifest_dir.glob("checkpoint-*.ckpt"))


def _commits_from_files(lake: Lake) -> list[dict]:
    """The commits as their own files say, read with json alone, oldest first."""
    out = [json.loads(p.read_text()) for p in lake.manifest_dir.glob("*.json")]
    return sorted(out, key=lambda d: (d["committed_at"], d["commit_id"]))


def _as_dicts(commits: list[Commit]) -> list[dict]:
    return [json.loads(c.to_json()) for c in commits]


def _files_read_one_by_one(monkeypatch) -> list[str]:
    read: list[str] = []
    original = Lake._read_commit

    def counting(path):
        read.append(str(path))
        return original(path)

    monkeypatch.setattr(Lake, "_read_commit", staticmethod(counting))
    return read


def test_a_new_process_reads_the_checkpoint_and_only_the_commits_after_it(
        lake, small_checkpoints, monkeypatch):
    _ingest(lake, 10)
    # Written at the 4th and 8th commit; both kept (a reader may be opening the older one).
    assert [name.split("-")[1] for name in _checkpoints(lake)] == ["000000004", "000000008"]

    read = _files_read_one_by_one(monkeypatch)
    fresh = Lake(lake.root)
    assert _as_dicts(fresh.commits()) == _commits_from_files(lake)
    assert len(read) == 2  # the 9th and 10th; the first 8 came from the checkpoint
    assert Engine(fresh).query("SELECT count(*) FROM requests").row(0) == (10,)


def test_only_the_newest_checkpoints_are_kept(lake, small_checkpoints):
    _ingest(lake, 17)
    assert [name.split("-")[1] for name in _checkpoints(lake)] == ["000000012", "000000016"]


def test_a_damaged_checkpoint_is_passed_over_for_the_one_before(
        lake, small_checkpoints, monkeypatch, caplog):
    _ingest(lake, 9)
    older, newest = _checkpoints(lake)
    path = lake.manifest_dir / newest
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit flipped: no longer the bytes its name hashes
    path.write_bytes(bytes(data))

    read = _files_read_one_by_one(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="lib.store.lake"):
        commits = Lake(lake.root).commits()
    assert _as_dicts(commits) == _commits_from_files(lake)
    assert len(read) == 5  # the older checkpoint gave the first 4
    assert newest in caplog.text and "does not match its hash" in caplog.text

    (lake.manifest_dir / older).write_bytes(b"{not json")
    (lake.manifest_dir / newest).unlink()
    assert _as_dicts(Lake(lake.root).commits()) == _commits_from_files(lake)  # all one by one


def test_the_commit_files_are_the_truth(lake, small_checkpoints):
    """A commit in a checkpoint whose file is gone (deleted by hand) is not a commit; a file
    the checkpoint does not hold is read."""
    _ingest(lake, 5)
    first = _commits_from_files(lake)[0]
    (lake.manifest_dir / f"{first['commit_id']}.json").unlink()
    assert _as_dicts(Lake(lake.root).commits()) == _commits_from_files(lake)
    assert len(_commits_from_files(lake)) == 4


def test_nan_and_integers_past_64_bits_come_back_as_they_were(lake, small_checkpoints):
    """A commit's info may hold NaN or an integer past 64 bits (json writes both); read from its
    file or from a checkpoint, it is the same commit."""
    _ingest(lake, 2)
    lake._publish(Commit(commit_id="odd", kind="ingest", source="odd", content_hash=None,
                         committed_at="2026-03-02T13:00:00+00:00", rows={}, added=[],
                         info={"nan": math.nan, "big": 2**70}))
    _ingest(lake, 2, first=2)
    assert _checkpoints(lake)
    for fresh in (Lake(lake.root), lake):
        odd = next(c for c in fresh.commits() if c.commit_id == "odd")
        assert odd.info["big"] == 2**70 and math.isnan(odd.info["nan"])


def test_a_checkpoint_being_written_when_its_writer_died_is_not_read(lake, small_checkpoints):
    _ingest(lake, 3)
    # What _maybe_checkpoint leaves if killed before its rename: a hidden temporary name.
    (lake.manifest_dir / ".checkpoint-000000099-0123456789abcdef.ckpt.1.tmp").write_bytes(
        b'{"commits": []}')
    assert _as_dicts(Lake(lake.root).commits()) == _commits_from_files(lake)
    (lake.manifest_dir / lake_module.WRITING_MARKER).write_text("")  # as a dead writer's
    with lake.writer_lock():  # the next writer clears it
        pass
    assert not list(lake.manifest_dir.glob(".*.tmp"))


def test_a_removed_batch_is_forgotten_by_the_same_lake_object(lake):
    """has_content keeps an index of the commits; a commit added since (a remove) renews it."""
    _ingest(lake, 2)
    batch = next(c for c in lake.commits() if c.content_hash == "hash-1")
    assert lake.has_content("hash-1")
    lake.remove_batch(batch.commit_id)
    assert not lake.has_content("hash-1") and lake.has_content("hash-0")
    _ingest(lake, 1, first=1)  # the same content goes in again
    assert lake.has_content("hash-1")


def test_a_dry_run_writes_no_checkpoint(tmp_path, small_checkpoints):
    from lib.ingest.pipeline import ingest_paths
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    store = Lake(tmp_path / "store")
    _ingest(store, 3)
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(6):
        (folder / f"{i}.jsonl").write_bytes(jsonl_bytes([canonical_request(100 + i)]))
    before = sorted(p.name for p in store.manifest_dir.iterdir())
    report = ingest_paths(Lake(store.root, dry_run=True), [str(folder)])
    assert sum(f.stored.get("requests", 0) for f in report.files) == 6
    assert sorted(p.name for p in store.manifest_dir.iterdir()) == before


def test_a_large_load_is_put_out_of_the_cyclic_collectors_sight_only_past_its_size(
        lake, small_checkpoints, monkeypatch):
    import gc

    _ingest(lake, 10)
    monkeypatch.setattr(lake_module, "FREEZE_MIN", 11)
    frozen = gc.get_freeze_count()
    try:
        assert len(Lake(lake.root).commits()) == 10 and gc.get_freeze_count() == frozen
        monkeypatch.setattr(lake_module, "FREEZE_MIN", 10)
        fresh = Lake(lake.root)
        assert _as_dicts(fresh.commits()) == _commits_from_files(lake)
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()  # (the rest of the test session collects as before)
