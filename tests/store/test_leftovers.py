"""What a killed writer leaves behind is cleared by the next writer, and nothing else is.

A writer holding the lake's lock keeps a marker, ``_manifest/.writing``, listing the ids its data
files are named by; it removes the marker when it releases the lock. The next writer that finds
the marker knows the last holder died and clears its leftovers; a writer that raises clears its
own as it releases the lock. The kill -9 tests of real ingests are in tests/ingest/test_crash.py;
these build the leftovers by hand to check what is spared.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from lib.store import Lake
from lib.store import lake as lake_module
from tests.conftest import make_request, requests_table

REPO = Path(__file__).resolve().parents[2]
DAY = "2026-03-02"  # tests.conftest's T0 day


def _append(lake: Lake, i: int) -> None:
    lake.append({"requests": requests_table([make_request(i)])}, source=f"batch {i}")


def _died_writing(lake: Lake, *, listed_ids: bool = True) -> dict[str, Path]:
    """The files a writer killed mid-batch leaves, and its marker (naming its batch id unless
    ``listed_ids`` is False)."""
    batch = uuid.uuid4().hex
    part = lake.root / "requests" / f"date={DAY}"
    made = {
        "scratch": lake.root / "_tmp" / f"fast-{batch}" / "spill" / "duckdb_temp_block-1.block",
        "spill": lake.root / "_tmp" / f"ingest-{batch}" / "x.block",
        "hidden": part / f".{batch}-0.parquet.{uuid.uuid4().hex}.tmp",
        "unpublished": part / f"{batch}-1.parquet",
        "manifest_tmp": lake.manifest_dir / f".{batch}.{uuid.uuid4().hex}.tmp",
    }
    for path in made.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (lake.manifest_dir / ".writing").write_text(batch + "\n" if listed_ids else "")
    return made


def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_the_next_writer_clears_a_dead_writers_leftovers_and_keeps_the_rest(lake):
    _append(lake, 0)
    kept = lake.snapshot().files["requests"][0]
    made = _died_writing(lake)
    part = lake.root / "requests" / f"date={DAY}"
    # Not the dead writer's: a user's file, a data file another tool wrote (pyarrow's datasets
    # name theirs <uuid hex>-<n>.parquet, like ours), something else in _tmp.
    foreign = [part / "notes.txt", part / f"{uuid.uuid4().hex}-0.parquet",
               lake.root / "_tmp" / "notes"]
    for path in foreign:
        path.write_bytes(b"mine")

    _append(lake, 1)

    assert [name for name, path in made.items() if path.exists()] == []
    assert all(path.exists() for path in foreign)
    assert kept in lake.snapshot().files["requests"]
    assert (lake.root / kept).exists() and len(lake.snapshot().files["requests"]) == 2
    assert not (lake.manifest_dir / ".writing").exists()


def test_a_writer_that_ended_normally_leaves_no_marker_and_nothing_is_cleared(lake):
    _append(lake, 0)
    assert not (lake.manifest_dir / ".writing").exists()
    # Without the marker nobody died holding the lock: scratch that looks like ours stays.
    scratch = lake.root / "_tmp" / f"fast-{uuid.uuid4().hex}"
    scratch.mkdir(parents=True)
    _append(lake, 1)
    assert scratch.exists()


def test_without_ids_in_the_marker_no_data_file_is_deleted(lake):
    """A marker naming no id (the writer died before it wrote a file) clears only scratch."""
    _append(lake, 0)
    made = _died_writing(lake, listed_ids=False)
    _append(lake, 1)
    assert not made["scratch"].exists() and not made["manifest_tmp"].exists()
    assert made["hidden"].exists() and made["unpublished"].exists()


def test_files_an_older_commit_listed_are_left_for_gc(lake):
    """A file a compaction replaced may still be read through a reader's older snapshot."""
    from lib.store.compact import compact

    _append(lake, 0)
    _append(lake, 1)
    old = set(lake.snapshot().files["requests"])
    compact(lake, min_files=1)
    assert set(lake.snapshot().files["requests"]).isdisjoint(old)
    # The dead writer's marker names the batches those files belong to.
    ids = {Path(p).name.rsplit("-", 1)[0] for p in old}
    (lake.manifest_dir / ".writing").write_text("\n".join(ids) + "\n")
    _append(lake, 2)
    assert all((lake.root / p).exists() for p in old)
    assert {str(p.relative_to(lake.root)) for p in lake.orphans(older_than_s=0)} == old


def test_an_unreadable_manifest_entry_spares_the_tables(lake):
    _append(lake, 0)
    made = _died_writing(lake)
    (lake.manifest_dir / f"{uuid.uuid4().hex}.json").write_text("{ cut")
    _append(lake, 1)
    # The unreadable entry may be the one listing these: only the scratch and the manifest's own
    # temporary file go.
    assert not made["scratch"].exists() and not made["manifest_tmp"].exists()
    assert made["hidden"].exists() and made["unpublished"].exists()


def test_a_linked_scratch_folder_is_not_cleared(lake, tmp_path):
    """``_tmp`` linked to a scratch disk other lakes may share: their writers' folders are named
    like ours, so nothing there is touched."""
    _append(lake, 0)
    shared = tmp_path / "shared-scratch"
    other = shared / f"fast-{uuid.uuid4().hex}"
    other.mkdir(parents=True)
    (lake.root / "_tmp").symlink_to(shared)
    (lake.manifest_dir / ".writing").write_text("")
    _append(lake, 1)
    assert other.exists()


def test_clearing_that_fails_releases_the_lock(lake, monkeypatch):
    """A clearing error must not leave the lock held by nobody (every later writer would
    wait forever); what cannot be deleted is left, and the writer goes on."""
    _append(lake, 0)
    made = _died_writing(lake)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(lake_module.shutil, "rmtree", refuse)
    _append(lake, 1)  # best effort: the scratch it could not delete stays, the rows go in
    assert made["scratch"].exists() and not made["unpublished"].exists()
    monkeypatch.undo()

    _died_writing(lake)
    monkeypatch.setattr(lake, "_clear_leftovers", lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        _append(lake, 2)
    monkeypatch.undo()
    assert lake._lock_file is None
    _append(lake, 3)  # neither this Lake nor another waits on a lock nobody holds
    _append(Lake(lake.root), 4)
    assert len(lake.snapshot().files["requests"]) == 4


DRY_RUN = (
    "import sys, time; from lib.store import Lake; "
    "check = Lake(sys.argv[1]).checking(); print(check.tmp_dir, flush=True); time.sleep(60)")


def test_a_running_dry_runs_folder_is_kept_and_a_killed_ones_cleared(lake):
    _append(lake, 0)
    running = lake.checking()
    running_dir = running.tmp_dir
    (running_dir / "requests").mkdir()
    proc = subprocess.Popen([sys.executable, "-c", DRY_RUN, str(lake.root)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    try:
        killed_dir = Path(proc.stdout.readline().strip())
        assert killed_dir.is_dir() and killed_dir.parent == lake.root / "_tmp"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    # A folder made under a minute ago counts as alive: its run may not hold its lock yet.
    _died_writing(lake, listed_ids=False)
    _append(lake, 1)
    assert killed_dir.exists()
    for folder in (killed_dir, running_dir):
        _age(folder, 61)

    _append(lake, 2)  # an ordinary write: a killed dry run leaves no marker to find

    assert running_dir.is_dir() and (running_dir / "requests").is_dir()  # its lock is held
    assert not killed_dir.exists()
    del running  # the run ends: its folder goes with it
    assert not running_dir.exists()


def _data_files(lake: Lake) -> list[str]:
    """Every data file (and hidden temporary) under the tables' folders, relative to the root."""
    return sorted(str(p.relative_to(lake.root)) for p in lake.root.glob("*/date=*/*")
                  if p.is_file())


def _fail_on_second_write(monkeypatch) -> None:
    """The second Parquet file a writer writes fails, as on a full disk, once the first is in
    place."""
    real = lake_module.pq.write_table
    calls = []

    def write_table(table, where, **kwargs):
        calls.append(where)
        if len(calls) == 2:
            Path(where).write_bytes(b"PAR1 half")  # what a full disk leaves
            raise OSError(28, "No space left on device", str(where))
        return real(table, where, **kwargs)

    monkeypatch.setattr(lake_module.pq, "write_table", write_table)


def test_an_append_that_raises_midway_clears_what_it_wrote(lake, monkeypatch):
    _append(lake, 0)
    before, version = _data_files(lake), lake.version()
    _fail_on_second_write(monkeypatch)
    two_days = [make_request(1), make_request(2, ts=make_request(0)["ts"] + timedelta(days=1))]

    with pytest.raises(OSError, match="No space left"):
        lake.append({"requests": requests_table(two_days)}, source="two days")

    monkeypatch.undo()
    assert _data_files(lake) == before  # the first day's file and the half-written one are gone
    assert lake.version() == version and not (lake.manifest_dir / ".writing").exists()
    assert lake._lock_file is None
    _append(lake, 3)  # the lake goes on
    assert len(lake.snapshot().files["requests"]) == 2


def test_a_rewrite_that_raises_on_a_later_day_clears_the_days_it_wrote(lake):
    first = make_request(0)
    second = make_request(1, ts=first["ts"] + timedelta(days=1))
    lake.append({"requests": requests_table([first, second])}, source="two days")
    before, version = _data_files(lake), lake.version()
    days = sorted({p.split("/")[1].split("=", 1)[1] for p in before})

    def broken():
        raise RuntimeError("the reprice of the second day failed")

    with pytest.raises(RuntimeError, match="second day"):
        lake.rewrite("requests", {days[0]: requests_table([first]), days[1]: broken},
                     kind="reprice", source="test")

    assert _data_files(lake) == before and lake.version() == version


def test_a_failed_write_spares_files_a_commit_lists(lake, monkeypatch):
    """Clearing after a raise deletes only files no commit lists: an error after the commit is
    published (here, in the caller, still under the lock) loses nothing committed."""
    with pytest.raises(KeyError), lake.writer_lock():
        _append(lake, 0)
        raise KeyError("after the commit")
    files = lake.snapshot().files["requests"]
    assert len(files) == 1 and (lake.root / files[0]).exists()
    assert _data_files(lake) == files
