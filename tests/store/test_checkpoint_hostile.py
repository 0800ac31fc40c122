"""Hostile review of manifest checkpoints (95265e7) and gc_replaced (0aabb01).

Each test states the expected behaviour. The first group failed on 95265e7 (each showed one
defect, fixed since); the rest passed there and are kept as regression tests. The reference for
"what commits() should return" is: every ``<id>.json`` file read with json alone, oldest first.
(Two more findings were design choices, kept: a checkpoint holds the commits as they were written,
so a commit file changed by hand or damaged after a checkpoint took it is not read again by a
process that loads the checkpoint; the lake never rewrites a commit file.)
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lib.store import Engine, Lake
from lib.store import compact as compaction
from lib.store import lake as lake_module
from lib.store.lake import Commit
from tests.conftest import make_request, requests_table, wait_for_marker
from tests.store.test_manifest_checkpoint import _as_dicts, _checkpoints, _ingest

REPO = Path(__file__).resolve().parents[2]
OLD = "2020-01-01T00:00:00.000000+00:00"  # a commit time long past every GC age


def _truth(lake: Lake) -> list[dict]:
    """The commits as their own files say, read with json alone, oldest first."""
    out = []
    for p in lake.manifest_dir.glob("*.json"):
        try:
            out.append(json.loads(p.read_text()))
        except ValueError:
            continue
    return sorted(out, key=lambda d: (d["committed_at"], d["commit_id"]))


def _rows(lake: Lake) -> tuple:
    eng = Engine(lake)
    try:
        return eng.query("SELECT count(*), count(DISTINCT request_id) FROM requests").row(0)
    finally:
        eng.close()


def _write_checkpoint(lake: Lake, data: bytes, count: int = 999) -> str:
    """A checkpoint of raw ``data`` whose name matches its SHA-256 (the hash check accepts it)."""
    name = f"checkpoint-{count:09d}-{hashlib.sha256(data).hexdigest()[:16]}.ckpt"
    (lake.manifest_dir / name).write_bytes(data)
    return name


def _forge_checkpoint(lake: Lake, commits: list[Commit], monkeypatch, count: int = 999) -> str:
    """A checkpoint of ``commits`` written by the code under test itself (so in whatever format
    it writes, its hash matching), renamed to hold ``count`` (the count is not hashed)."""
    forger = Lake(lake.root)
    forger.commits = lambda: list(commits)
    monkeypatch.setattr(lake_module, "CHECKPOINT_EVERY", -10**9)  # write one now
    path = forger._maybe_checkpoint()
    monkeypatch.setattr(lake_module, "CHECKPOINT_EVERY", 4)
    assert path is not None
    digest = path.name[len("checkpoint-"):-len(".ckpt")].split("-")[1]
    name = f"checkpoint-{count:09d}-{digest}.ckpt"
    path.rename(lake.manifest_dir / name)
    return name


def _hand_commit(commit_id: str, **fields) -> Commit:
    base = dict(commit_id=commit_id, kind="compact", source="hand-edited", content_hash=None,
                committed_at=OLD, rows={}, added=[], removed=[], info={})
    base.update(fields)
    return Commit(**base)


# ================================================================================================
# FOUND IN REVIEW: these failed on 95265e7
# ================================================================================================

def test_an_integer_past_64_bits_comes_back_as_it_was(lake, small_checkpoints):
    """Found in review, fixed. _loads relies on orjson raising for integers past 64 bits; the pinned
    orjson 3.13.0 returns a float instead (no error, no fallback to json). A commit whose info holds
    such an integer (and no NaN, which is what made the existing test fall back to json) is changed
    on read, in the writer and in a new process, and copied lossily into checkpoints."""
    big, small = 2**64 + 1, -(2**63) - 1
    _ingest(lake, 1)
    lake._publish(_hand_commit("odd", kind="ingest", committed_at="2026-03-02T13:00:00+00:00",
                               info={"big": big, "small": small}))
    _ingest(lake, 3, first=1)
    assert _checkpoints(lake)
    for fresh in (Lake(lake.root), lake):
        odd = next(c for c in fresh.commits() if c.commit_id == "odd")
        assert odd.info["big"] == big and isinstance(odd.info["big"], int)
        assert odd.info["small"] == small and isinstance(odd.info["small"], int)


def test_a_checkpoint_name_with_a_non_ascii_digit_is_passed_over(
        lake, small_checkpoints):
    """Found in review, fixed. _checkpoint_count tests str.isdigit(), which is true for '²' (and
    other Unicode digits) that int() refuses: the ValueError escapes _load_checkpoint (it is raised
    outside its try), so commits() -- every page, every ingest -- crashes on one stray file name,
    and the writer silently stops writing checkpoints (_maybe_checkpoint swallows it)."""
    _ingest(lake, 3)
    (lake.manifest_dir / "checkpoint-²-0123456789abcdef.ckpt").write_bytes(b"{}")
    assert _as_dicts(Lake(lake.root).commits()) == _truth(lake)
    _ingest(lake, 5, first=3)  # a writer still writes checkpoints
    assert any(n.startswith("checkpoint-0000") for n in _checkpoints(lake))


@pytest.mark.parametrize("bad", [
    {"committed_at": 12345},                  # sorting mixes int and str: TypeError in commits()
    {"committed_at": None},
    {"added": None},                          # snapshot(): 'NoneType' is not iterable
    {"removed": [["a"]]},                     # snapshot(): unhashable list
])
def test_a_hash_valid_checkpoint_with_a_malformed_commit_is_passed_over(
        lake, small_checkpoints, monkeypatch, bad):
    """Found in review, fixed. The hash only proves the bytes are the ones the name was made from,
    not that they are commits: Commit(**d) checks no type, so a checkpoint (hand-made, or written by
    a buggy or other version) holding a listed commit with a non-string committed_at, or ``added:
    null``, is taken: commits() raises TypeError in every new process (committed_at), or returns a
    commit its file does not hold, on which snapshot() raises (added/removed). Expected: such a
    checkpoint is passed over like a damaged one (the commit files are fine)."""
    _ingest(lake, 3)
    commits = Lake(lake.root).commits()
    forged = [Commit(**{**commits[0].__dict__, **bad})] + commits[1:]
    _forge_checkpoint(lake, forged, monkeypatch)
    fresh = Lake(lake.root)
    assert _as_dicts(fresh.commits()) == _truth(lake)
    assert len(fresh.snapshot().files["requests"]) == 3


def test_a_deeply_nested_checkpoint_is_passed_over(lake, small_checkpoints):
    """Found in review, fixed. orjson refuses nesting past 1024 levels, _loads then hands the text
    to json, which raises RecursionError -- not a ValueError, so it escapes _load_checkpoint and
    commits() crashes instead of passing the checkpoint over."""
    _ingest(lake, 3)
    _write_checkpoint(lake, b"[" * 100_000 + b"]" * 100_000)
    assert _as_dicts(Lake(lake.root).commits()) == _truth(lake)


def test_a_bogus_checkpoint_count_does_not_stop_checkpoints(lake, small_checkpoints):
    """Found in review, fixed. The writer compares the number of commit files with the largest count
    among checkpoint *names*, valid or not: one damaged or stray checkpoint named with a large count
    means no checkpoint is written again (and it is never pruned): every new process is back to
    reading every commit file. Expected: only a checkpoint that reads counts."""
    _ingest(lake, 2)
    (lake.manifest_dir / "checkpoint-000999999-0123456789abcdef.ckpt").write_bytes(b"junk")
    _ingest(lake, 10, first=2)
    assert [n for n in _checkpoints(lake) if not n.startswith("checkpoint-000999999")]


def _racing_commits(lake: Lake, interleave) -> None:
    """Make the next call of lake._commit_state() behave as if another thread of this process (a
    second Streamlit session: lib/ui/store.py shares one Lake per process) ran ``interleave`` and
    then its own lake.commits() just after ours returned."""
    real = lake._commit_state

    def once():
        out = real()
        del lake._commit_state  # back to the method
        interleave()
        real()  # the other thread: moves lake._sorted to the new set of names
        return out

    lake._commit_state = once


def test_snapshot_index_is_filed_under_the_commits_it_was_built_from(lake, small_checkpoints):
    """Found in review, fixed. snapshot() builds its live-file index from the commits it got, but
    stores it under ``self._sorted`` read *after* building; if another thread moved _sorted
    meanwhile, the index of the old commits is filed under the new set and served until the next
    commit: the dashboard misses a batch (or, after a compaction elsewhere, compaction/rewrite in
    this process is offered files no longer live -> rows merged twice)."""
    _ingest(lake, 2)
    other = Lake(lake.root)
    _racing_commits(lake, lambda: _ingest(other, 1, first=50))
    lake.snapshot()
    assert len(lake.snapshot().files["requests"]) == 3


def test_has_content_index_is_filed_under_the_commits_it_was_built_from(lake, small_checkpoints):
    """Found in review, fixed. Same race in has_content: a streamed batch (BatchWriter: its commit
    is named by its batch id, not by its content hash, so the '<hash>.json exists' fallback does not
    catch it) committed by another process is not found: the same file is ingested again."""
    _ingest(lake, 2)
    other = Lake(lake.root)

    def streamed():
        with other.begin("streamed", content_hash="streamed-hash") as w:
            w.add({"requests": requests_table([make_request(60)])})
            w.commit()

    _racing_commits(lake, streamed)
    lake.has_content("hash-0")
    assert lake.has_content("streamed-hash")


def test_a_commit_with_an_unhashable_content_hash_is_unreadable_not_a_crash(lake):
    """Found in review, fixed. has_content used to compare with ==; it now puts every content_hash
    in a set, so one hand-edited commit whose content_hash is a list or dict makes every has_content
    (every ingest) raise TypeError. Expected: treated as not matching."""
    _ingest(lake, 1)
    lake._publish(_hand_commit("weird", kind="ingest", content_hash=["a", "b"],
                               committed_at="2026-03-02T13:00:00+00:00"))
    assert lake.has_content("hash-0") and not Lake(lake.root).has_content("nope")


@pytest.mark.parametrize("where", ["parent", "absolute", "manifest"])
def test_gc_replaced_deletes_nothing_outside_the_tables(lake, tmp_path, where):
    """Found in review, fixed. gc_replaced joins every removed path of every commit to the root and
    deletes it: a hand-edited (or corrupt, or foreign) commit removing '../x', an absolute path, or
    '_manifest/<id>.json' makes the next ingest delete a file outside the store, or a commit file
    (whose batch then vanishes). gc() only looks under the table folders. Expected: only files under
    the table folders (schema.TABLES) are ever deleted."""
    _ingest(lake, 2)
    victim = {
        "parent": tmp_path / "precious.txt",
        "absolute": tmp_path / "elsewhere" / "precious.txt",
        "manifest": lake.manifest_dir / f"{_truth(lake)[0]['commit_id']}.json",
    }[where]
    victim.parent.mkdir(parents=True, exist_ok=True)
    if not victim.exists():
        victim.write_text("keep me")
    rel = {"parent": "../precious.txt", "absolute": str(victim),
           "manifest": f"_manifest/{victim.name}"}[where]
    lake._publish(_hand_commit("hand", removed=[rel]))
    deleted = compaction.gc_replaced(lake)
    assert victim.exists(), f"gc_replaced deleted {deleted}"
    assert _rows(lake) == (2, 2)


# ================================================================================================
# HOSTILE CASES THAT PASSED on 95265e7 (regression tests)
# ================================================================================================

def test_checkpoints_interleaved_with_removes_and_compactions_equal_the_files(
        lake, small_checkpoints):
    _ingest(lake, 6)
    lake.remove_batch(next(c.commit_id for c in lake.commits() if c.content_hash == "hash-2"))
    compaction.compact(lake, min_files=1)
    _ingest(lake, 5, first=6)
    lake.remove_batch(next(c.commit_id for c in lake.commits() if c.content_hash == "hash-7"))
    _ingest(lake, 1, first=2)  # a removed batch ingested again
    assert len(_checkpoints(lake)) == 2
    for reader in (Lake(lake.root), Lake(lake.root, dry_run=True), lake):
        assert _as_dicts(reader.commits()) == _truth(lake)
        assert not reader.manifest_problems()
    assert _rows(Lake(lake.root)) == (10, 10)
    fresh = Lake(lake.root)
    assert fresh.has_content("hash-2") and not fresh.has_content("hash-7")


def test_a_half_filled_cache_takes_the_checkpoint_without_duplicates(lake, small_checkpoints):
    _ingest(lake, 3)
    reader = Lake(lake.root)
    reader.commits()  # 3 cached, one by one
    _ingest(lake, 9, first=3)  # 9 new names, checkpoints at 4, 8, 12
    got = _as_dicts(reader.commits())
    assert got == _truth(lake) and len({c["commit_id"] for c in got}) == 12


def test_a_commit_arriving_with_an_older_time_is_put_in_order(lake, small_checkpoints):
    _ingest(lake, 5)
    lake.commits()
    Lake(lake.root)._publish(_hand_commit("late", kind="ingest",
                                          committed_at="2026-03-02T00:00:00+00:00"))
    assert _as_dicts(lake.commits()) == _truth(lake)
    assert _as_dicts(Lake(lake.root).commits()) == _truth(lake)


def test_caches_follow_commits_of_another_process(lake, small_checkpoints):
    """has_content / snapshot / commits of a long-lived Lake after another Lake object (as
    another process) ingests, removes a batch and compacts."""
    _ingest(lake, 5)
    assert lake.has_content("hash-1") and len(lake.snapshot().files["requests"]) == 5
    other = Lake(lake.root)
    other.remove_batch(next(c.commit_id for c in other.commits() if c.content_hash == "hash-1"))
    assert not lake.has_content("hash-1")
    assert len(lake.snapshot().files["requests"]) == 4
    compaction.compact(other, min_files=1)
    assert len(lake.snapshot().files["requests"]) == 1
    _ingest(other, 1, first=1)
    assert lake.has_content("hash-1") and len(lake.snapshot().files["requests"]) == 2
    assert _as_dicts(lake.commits()) == _truth(lake)


@pytest.mark.parametrize("data", [
    b"", b"\n", b"[]", b"null", b"7\n", b'"commits"\n', b"{}\n", b'{"commits": {"a": 1}}',
    b'{"commits": "abc"}', b'{"commits": null}', b'{"commits": [1]}', b'{"commits": [[]]}',
    b'{"commits": [{}]}', b'{"commit_id": "hash-0"}\n', b'{"commits": [{"commit_id": "x"}]}',
    b"\xff\xfe{",
], ids=lambda d: repr(d[:24]))
def test_a_hash_valid_checkpoint_that_holds_no_commits_is_passed_over(
        lake, small_checkpoints, data):
    _ingest(lake, 3)
    _write_checkpoint(lake, data)
    assert _as_dicts(Lake(lake.root).commits()) == _truth(lake)


def test_a_checkpoint_of_another_store_gives_nothing_unlisted(
        lake, tmp_path, small_checkpoints):
    """A checkpoint copied from another store (its commits' files are not here) adds nothing."""
    other = Lake(tmp_path / "other")
    for i in range(9):
        other.append({"requests": requests_table([make_request(i, request_id=f"o{i}")])},
                     source=f"o{i}", content_hash=f"other-{i}")
    _ingest(lake, 3)
    for name in _checkpoints(other):
        (lake.manifest_dir / name).write_bytes((other.manifest_dir / name).read_bytes())
    assert _as_dicts(Lake(lake.root).commits()) == _truth(lake)
    assert _rows(Lake(lake.root)) == (3, 3)


@pytest.mark.parametrize("name", [
    "checkpoint-abc-0123456789abcdef.ckpt", "checkpoint--0123456789abcdef.ckpt",
    "checkpoint-000000099.ckpt", "checkpoint-000000099-.ckpt",
    "checkpoint-000000099-0123456789abcdef-x.ckpt", "checkpoint-+5-0123456789abcdef.ckpt",
    "checkpoint- 5-0123456789abcdef.ckpt", "checkpoint-000000099-0123456789ABCDEF.ckpt",
])
def test_checkpoint_names_that_do_not_parse_are_passed_over(lake, small_checkpoints, name):
    _ingest(lake, 5)
    (lake.manifest_dir / name).write_bytes(b'{"commits": []}')
    assert _as_dicts(Lake(lake.root).commits()) == _truth(lake)


def test_a_folder_named_like_a_checkpoint_is_passed_over(lake, small_checkpoints):
    _ingest(lake, 3)
    (lake.manifest_dir / "checkpoint-000000099-0123456789abcdef.ckpt").mkdir()
    assert _as_dicts(Lake(lake.root).commits()) == _truth(lake)
    _ingest(lake, 5, first=3)
    assert _as_dicts(Lake(lake.root).commits()) == _truth(lake)


def test_a_reader_whose_checkpoints_are_deleted_under_it_reads_the_files(
        lake, small_checkpoints, monkeypatch):
    """A reader lists the folder, a writer then writes two checkpoints (deleting the ones the
    reader listed), then the reader opens them: passed over, the files are read."""
    _ingest(lake, 9)
    writer = Lake(lake.root)
    real = lake_module._checkpoints
    fired = []

    def racing(entries):
        out = real(entries)
        if not fired:
            fired.append(1)
            _ingest(writer, 8, first=100)
            assert not set(out) & set(_checkpoints(lake))  # all the reader saw are gone
        return out

    monkeypatch.setattr(lake_module, "_checkpoints", racing)
    reader = Lake(lake.root)
    first = _as_dicts(reader.commits())
    assert fired and len(first) == 9  # the names it listed, read one by one
    assert _as_dicts(reader.commits()) == _truth(lake)


def test_a_dry_run_reads_checkpoints_and_writes_nothing(lake, small_checkpoints):
    _ingest(lake, 9)
    before = sorted(p.name for p in lake.manifest_dir.iterdir())
    dry = Lake(lake.root, dry_run=True)
    assert _as_dicts(dry.commits()) == _truth(lake)
    with pytest.raises(RuntimeError):
        dry.append({"requests": requests_table([make_request(99)])}, source="x")
    assert sorted(p.name for p in lake.manifest_dir.iterdir()) == before


def test_gc_replaced_keeps_live_and_recent_files(lake):
    """Files replaced just now stay (a reader may be reading them); an hour later only the
    replaced ones go, never a live one, and the rows are as they were."""
    _ingest(lake, 3)
    compaction.compact(lake, min_files=1)
    _ingest(lake, 1, first=3)
    live = set(lake.snapshot().files["requests"])
    assert compaction.gc_replaced(lake) == []
    assert compaction.gc_replaced(Lake(lake.root), now=time.time() + 3000) == []
    deleted = compaction.gc_replaced(Lake(lake.root), now=time.time() + 3601)
    assert len(deleted) == 3 and not {str(p.relative_to(lake.root)) for p in deleted} & live
    assert all((lake.root / p).exists() for p in live)
    assert _rows(Lake(lake.root)) == (4, 4)


def test_an_ingest_survives_gc_replaced_failing(lake, tmp_path, monkeypatch):
    """A commit whose time does not read is passed over by gc_replaced (its files' age is not
    known), and the ingest and its compaction go on."""
    from lib.ingest.pipeline import ingest_paths
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    _ingest(lake, 1)
    lake._publish(_hand_commit("bad-time", committed_at="yesterday", removed=["requests/x"]))
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl_bytes([canonical_request(7)]))
    os.utime(path, (time.time() - 600,) * 2)
    report = ingest_paths(lake, [str(path)], compact_min_files=1)
    assert sum(f.stored.get("requests", 0) for f in report.files) == 1
    assert "error" not in report.compaction and report.compaction["merged"]
    assert _rows(Lake(lake.root)) == (2, 2)


# -- real processes ------------------------------------------------------------------------------

KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import lib.store.lake as L
    from tests.conftest import make_request, requests_table

    store, stage, marker = sys.argv[1:4]
    L.CHECKPOINT_EVERY = 3

    def pause():
        Path(marker).write_text(stage)
        time.sleep(60)

    real_write, real_unlink = Path.write_bytes, Path.unlink
    if stage == "tmp_half_written":
        def write_bytes(self, data):
            if self.name.startswith(".checkpoint-"):
                with open(self, "wb") as fh:
                    fh.write(data[: len(data) // 2])
                pause()
            return real_write(self, data)
        Path.write_bytes = write_bytes
    elif stage == "before_pruning":
        def unlink(self, missing_ok=False):
            if self.name.startswith("checkpoint-"):
                pause()
            return real_unlink(self, missing_ok=missing_ok)
        Path.unlink = unlink
    lake = L.Lake(store)
    for i in range(int(sys.argv[4])):
        lake.append({"requests": requests_table([make_request(i)])}, source=f"b{i}",
                    content_hash=f"{stage}-{i}")
    """
)


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_TEST_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.parametrize("stage,expected_commits,checkpoints_left", [
    ("tmp_half_written", 3, 0),  # killed writing the first checkpoint's temporary file
    ("before_pruning", 9, 3),    # killed after the third checkpoint's rename, before pruning
])
def test_kill_9_inside_maybe_checkpoint_leaves_the_store_readable(
        lake, tmp_path, monkeypatch, stage, expected_commits, checkpoints_left):
    monkeypatch.setattr(lake_module, "CHECKPOINT_EVERY", 3)
    monkeypatch.setattr(lake_module, "CHECKPOINT_LOAD_MIN", 2)
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    marker = tmp_path / "paused"
    proc = subprocess.Popen([sys.executable, str(script), str(lake.root), stage, str(marker),
                             "20"], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_marker(proc, marker, why=lambda: proc.stderr.read() if proc.poll() else "")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    assert len(_checkpoints(lake)) == checkpoints_left
    for reader in (Lake(lake.root), Lake(lake.root, dry_run=True)):
        assert _as_dicts(reader.commits()) == _truth(lake)
        assert len(reader.commits()) == expected_commits
    assert _rows(Lake(lake.root)) == (expected_commits,) * 2
    # The next writer clears the dead one's temporary file and checkpoints as usual.
    _ingest(Lake(lake.root), 6, first=1000)
    assert not list(lake.manifest_dir.glob(".*.tmp"))
    assert len(_checkpoints(lake)) == 2
    assert _as_dicts(Lake(lake.root).commits()) == _truth(lake)
    assert _rows(Lake(lake.root)) == (expected_commits + 6,) * 2


TWO_WRITERS = textwrap.dedent(
    """
    import sys
    import lib.store.lake as L
    from tests.conftest import make_request, requests_table

    L.CHECKPOINT_EVERY, L.CHECKPOINT_LOAD_MIN = 3, 2
    store, prefix = sys.argv[1:3]
    lake = L.Lake(store)
    for i in range(12):
        lake.append({"requests": requests_table([make_request(i, request_id=f"{prefix}{i}")])},
                    source=f"{prefix}{i}", content_hash=f"{prefix}-{i}")
        L.Lake(store).commits()  # a new reader each time, loading whatever checkpoint is there
    """
)


def test_two_writer_processes_checkpointing_at_once(lake, tmp_path, small_checkpoints,
                                                    monkeypatch):
    script = tmp_path / "two.py"
    script.write_text(TWO_WRITERS)
    procs = [subprocess.Popen([sys.executable, str(script), str(lake.root), p], cwd=REPO,
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for p in ("a", "b")]
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert len(_truth(lake)) == 24 and len(_checkpoints(lake)) == 2
    read: list[str] = []
    real = Lake._read_commit
    monkeypatch.setattr(Lake, "_read_commit", staticmethod(lambda p: read.append(p) or real(p)))
    newest = max(_checkpoints(lake), key=lambda n: int(n.split("-")[1]))
    fresh = Lake(lake.root)
    assert _as_dicts(fresh.commits()) == _truth(lake)
    assert len(read) == 24 - int(newest.split("-")[1])  # the rest came from the checkpoint
    assert _as_dicts(Lake(lake.root).commits()) == _truth(lake)
    assert _rows(Lake(lake.root)) == (24, 24)
