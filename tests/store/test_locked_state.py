"""While a Lake object holds the writer lock it lists the manifest once and moves its state (and
the indexes made of it: content hashes, live files, version) on with each commit it publishes
(lib/store/lake.py _advance). At every step that state must be what a fresh reader listing the
folder finds; once the lock is released, other writers' commits are seen again."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from lib.store import Lake
from lib.store import lake as lake_module
from tests.conftest import make_request, requests_table


def _view(lake: Lake) -> tuple:
    snap = lake.snapshot()
    return ([c.commit_id for c in lake.commits()], snap.version, lake.version(),
            {t: sorted(paths) for t, paths in snap.files.items()})


def _agrees_with_a_fresh_reader(lake: Lake, hashes: list[str]) -> None:
    fresh = Lake(lake.root)
    assert _view(lake) == _view(fresh)
    assert [lake.has_content(h) for h in hashes] == [fresh.has_content(h) for h in hashes]


def _batch(i: int, n: int = 2) -> dict[str, pa.Table]:
    return {"requests": requests_table([make_request(i * 10 + k) for k in range(n)])}


def test_under_one_lock_every_kind_of_commit_leaves_the_state_a_fresh_reader_finds(tmp_path):
    lake = Lake(tmp_path / "store")
    lake.append(_batch(0), source="before", content_hash="h-before")
    hashes = ["h-before"] + [f"h{i}" for i in range(1, 8)] + ["never"]
    with lake.writer_lock():
        lake.commits()  # listed once here; from now on moved on by each commit
        for i in range(1, 6):
            lake.append(_batch(i), source=f"s{i}", content_hash=f"h{i}")
            _agrees_with_a_fresh_reader(lake, hashes)
        # a batch with its own id, through the streamed writer
        with lake.begin("streamed", batch_id="b" * 32) as batch:
            batch.add(_batch(6))
            batch.commit(content_hash="h6")
        _agrees_with_a_fresh_reader(lake, hashes)
        # a rewrite that removes files (compaction's kind)
        day = lake.snapshot().files["requests"][0].split("date=")[1].split("/")[0]
        old = [p for p in lake.snapshot().files["requests"] if f"date={day}/" in p]
        lake.rewrite("requests", {day: requests_table([make_request(999)])}, kind="compact",
                     source="compact", files={day: old})
        _agrees_with_a_fresh_reader(lake, hashes)
        # taking a batch out forgets its content
        h2 = next(c for c in lake.commits() if c.content_hash == "h2")
        lake.remove_batch(h2.commit_id)
        _agrees_with_a_fresh_reader(lake, hashes)
        assert not lake.has_content("h2")
        lake.append(_batch(7), source="s7", content_hash="h7")
        _agrees_with_a_fresh_reader(lake, hashes)
    _agrees_with_a_fresh_reader(lake, hashes)


def test_after_the_lock_is_released_another_writers_commit_is_seen(tmp_path):
    lake = Lake(tmp_path / "store")
    with lake.writer_lock():
        lake.append(_batch(1), source="mine", content_hash="mine")
        assert lake.has_content("mine")
    other = Lake(tmp_path / "store")
    other.append(_batch(2), source="theirs", content_hash="theirs")
    assert lake.has_content("theirs")  # listed again: the lock was let go
    with lake.writer_lock():
        assert lake.has_content("theirs") and len(lake.commits()) == 2
    _agrees_with_a_fresh_reader(lake, ["mine", "theirs"])


def test_checkpoints_are_written_at_their_counts_under_one_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(lake_module, "CHECKPOINT_EVERY", 5)
    monkeypatch.setattr(lake_module, "CHECKPOINT_LOAD_MIN", 1)
    lake = Lake(tmp_path / "store")
    with lake.writer_lock():
        for i in range(12):
            lake.append(_batch(i, 1), source=f"s{i}", content_hash=f"h{i}")
    names = sorted(p.name for p in lake.manifest_dir.glob("checkpoint-*"))
    assert [lake_module._checkpoint_count(n) for n in names] == [5, 10]
    # a new reader starts from the newest checkpoint and reads the two commits after it
    reads = []
    real = Lake._read_commit
    monkeypatch.setattr(Lake, "_read_commit",
                        staticmethod(lambda path: reads.append(path) or real(path)))
    fresh = Lake(lake.root)
    assert [c.commit_id for c in fresh.commits()] == [c.commit_id for c in lake.commits()]
    assert len(reads) == 2


@pytest.mark.parametrize("names", [["a.json"], ["a.json", "b.json", "c.json"]])
def test_the_version_token_is_the_same_for_the_same_names_however_reached(tmp_path, names):
    x = 0
    for n in names:
        x ^= lake_module._name_hash(n)
    lake = Lake(tmp_path / "store")
    state = (frozenset(names), [])
    assert lake._version_of(state) == f"{len(names)}:{x:016x}"


def test_a_reader_moves_its_indexes_on_over_other_writers_commits_as_a_fresh_reader_builds_them(
        tmp_path):
    reader, writer = Lake(tmp_path / "store"), Lake(tmp_path / "store")
    writer.append(_batch(0), source="s0", content_hash="h0")
    hashes = ["h0", "h1", "h2", "h3", "never"]

    def agrees() -> None:
        fresh = Lake(reader.root)
        assert reader.snapshot().files == fresh.snapshot().files  # in the same order too
        assert _view(reader) == _view(fresh)
        assert [reader.has_content(h) for h in hashes] == [fresh.has_content(h) for h in hashes]

    agrees()  # the reader's indexes are made here; each step below adds commits to its listing
    writer.append(_batch(1), source="s1", content_hash="h1")
    writer.append(_batch(2), source="s2", content_hash="h2")
    agrees()
    day = writer.snapshot().files["requests"][0].split("date=")[1].split("/")[0]
    old = [p for p in writer.snapshot().files["requests"] if f"date={day}/" in p]
    writer.rewrite("requests", {day: requests_table([make_request(999)])}, kind="compact",
                   source="compact", files={day: old})
    agrees()
    writer.remove_batch(next(c for c in writer.commits() if c.content_hash == "h2").commit_id)
    agrees()
    assert not reader.has_content("h2")
    # a commit stamped before the newest one (a clock set back) sorts among them, not last
    with writer.begin("late", ingested_at=datetime(2020, 1, 1, tzinfo=UTC)) as batch:
        batch.add(_batch(3))
        batch.commit(content_hash="h3")
    agrees()
    assert reader.commits()[0].source == "late"


def test_two_threads_moving_the_same_state_on_over_the_same_commits_list_each_file_once(tmp_path):
    reader, writer = Lake(tmp_path / "store"), Lake(tmp_path / "store")
    writer.append(_batch(0), source="s0", content_hash="h0")
    reader.snapshot()  # the reader's state and live files
    seen_by_both = (reader._sorted, reader._live_files, reader._version)
    writer.append(_batch(1), source="s1", content_hash="h1")
    reader.snapshot()  # one thread moves the state on...
    # ...while another had read the same state before it did, and moves it on too
    reader._sorted, reader._live_files, reader._version = seen_by_both
    files = reader.snapshot().files["requests"]
    assert sorted(files) == sorted(set(files)) == sorted(Lake(reader.root).snapshot().files[
        "requests"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_readers_and_writers_interleaved_at_random_each_agree_with_a_fresh_reader(tmp_path,
                                                                                 seed):
    import random

    rng = random.Random(seed)
    lakes = [Lake(tmp_path / "store") for _ in range(3)]  # each both reads and writes
    hashes, n = ["never"], 0

    def append(lake: Lake, **begin) -> None:
        nonlocal n
        n += 1
        h = f"h{n}"
        with lake.begin(f"s{n}", **begin) as batch:
            batch.add({"requests": requests_table([make_request(n * 600 + k)
                                                   for k in range(2)])})
            batch.commit(content_hash=h)
        hashes.append(h)

    for _step in range(30):
        lake, action = rng.choice(lakes), rng.random()
        if action < 0.45:
            append(lake)
        elif action < 0.55:  # a clock set back: sorts before commits already there
            append(lake, ingested_at=datetime(2020, 1, rng.randint(1, 28), tzinfo=UTC))
        elif action < 0.7:  # several commits under one lock (a group, a compaction)
            with lake.writer_lock():
                lake.snapshot()
                for _ in range(rng.randint(1, 3)):
                    append(lake)
        elif action < 0.85 and lake.snapshot().files["requests"]:
            files = lake.snapshot().files["requests"]
            day = rng.choice(files).split("date=")[1].split("/")[0]
            old = [p for p in files if f"date={day}/" in p]
            lake.rewrite("requests", {day: requests_table([make_request(10_000 + _step)])},
                         kind="compact", source="compact", files={day: old})
        else:
            gone = lake_module.removed_batches(lake.commits())
            ingests = [c for c in lake.commits() if c.kind == "ingest" and c.commit_id not in gone]
            if ingests:
                lake.remove_batch(rng.choice(ingests).commit_id)
        fresh = Lake(tmp_path / "store")
        for other in rng.sample(lakes, 2):  # (the third keeps older indexes to move on)
            # (a writer's own commit stamped in the past keeps its files last in its list,
            # where a fresh reader puts them in commit order: nothing reads by that order)
            assert all(len(set(p)) == len(p) for p in other.snapshot().files.values())
            assert _view(other) == _view(fresh)
            assert [other.has_content(h) for h in hashes] == \
                [fresh.has_content(h) for h in hashes]
