"""What a killed writer leaves behind is cleared by the next writer, and nothing else is.

The next writer knows the last lock holder died from the ``_manifest/.writing`` marker it left
(a writer that ends normally removes it). The kill -9 tests of real ingests are in
tests/ingest/test_crash.py; these build the leftovers by hand to check what is spared.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from lib.store import Lake
from tests.conftest import make_request, requests_table

REPO = Path(__file__).resolve().parents[2]


def _store_with_a_batch(lake: Lake) -> str:
    """Commit one request (2026-03-02 in tests.conftest's T0 day); returns its file's path."""
    lake.append({"requests": requests_table([make_request(0)])}, source="first")
    return lake.snapshot().files["requests"][0]


def _crash_leftovers(lake: Lake, day: str) -> dict[str, Path]:
    """The files a writer killed mid-batch leaves, and the marker saying it died holding the
    lock."""
    batch = uuid.uuid4().hex
    part = lake.root / "requests" / f"date={day}"
    part.mkdir(parents=True, exist_ok=True)
    made = {
        "scratch": lake.root / "_tmp" / f"fast-{batch}" / "spill" / "duckdb_temp_block-1.block",
        "hidden": part / f".{batch}-0.parquet.{uuid.uuid4().hex}.tmp",
        "unpublished": part / f"{batch}-1.parquet",
        "manifest_tmp": lake.manifest_dir / f".{batch}.{uuid.uuid4().hex}.tmp",
    }
    for path in made.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (lake.manifest_dir / ".writing").touch()
    return made


def test_the_next_writer_clears_a_dead_writers_leftovers_and_keeps_the_rest(lake):
    kept_file = _store_with_a_batch(lake)
    made = _crash_leftovers(lake, "2026-03-02")
    # Not ours by name: a user's file in a partition, and a data file another tool wrote.
    foreign = [lake.root / "requests" / "date=2026-03-02" / "notes.txt",
               lake.root / "requests" / "date=2026-03-02" / "export-0.parquet"]
    for path in foreign:
        path.write_bytes(b"mine")

    lake.append({"requests": requests_table([make_request(1)])}, source="second")

    assert [name for name, path in made.items() if path.exists()] == []
    assert all(path.exists() for path in foreign)
    assert (lake.root / kept_file).exists()
    assert not (lake.manifest_dir / ".writing").exists()
    assert kept_file in lake.snapshot().files["requests"]


def test_a_writer_that_ended_normally_leaves_no_marker_and_nothing_is_cleared(lake):
    _store_with_a_batch(lake)
    assert not (lake.manifest_dir / ".writing").exists()
    # Without the marker nobody died holding the lock: a file in _tmp is not touched (it may be
    # a newer writer's in another store layout; clearing only follows a death).
    scratch = lake.root / "_tmp" / "note"
    scratch.parent.mkdir(parents=True, exist_ok=True)
    scratch.write_bytes(b"x")
    lake.append({"requests": requests_table([make_request(1)])}, source="second")
    assert scratch.exists()


def test_files_an_older_commit_listed_are_left_for_gc(lake):
    """A file a compaction replaced may still be read through a reader's older snapshot."""
    _store_with_a_batch(lake)
    lake.append({"requests": requests_table([make_request(1)])}, source="second")
    old = set(lake.snapshot().files["requests"])
    from lib.store.compact import compact
    compact(lake, min_files=1)
    assert set(lake.snapshot().files["requests"]).isdisjoint(old)
    (lake.manifest_dir / ".writing").touch()
    lake.append({"requests": requests_table([make_request(2)])}, source="third")
    assert all((lake.root / p).exists() for p in old)
    assert {str(p.relative_to(lake.root)) for p in lake.orphans(older_than_s=0)} == old


def test_an_unreadable_manifest_entry_spares_the_tables(lake):
    _store_with_a_batch(lake)
    made = _crash_leftovers(lake, "2026-03-02")
    (lake.manifest_dir / f"{uuid.uuid4().hex}.json").write_text("{ cut")
    lake.append({"requests": requests_table([make_request(1)])}, source="second")
    # The unreadable entry may be the one listing these: only the scratch and the manifest's own
    # temporary file go.
    assert not made["scratch"].exists() and not made["manifest_tmp"].exists()
    assert made["hidden"].exists() and made["unpublished"].exists()


DRY_RUN = (
    "import sys, time; from lib.store import Lake; "
    "check = Lake(sys.argv[1]).checking(); print(check.tmp_dir, flush=True); time.sleep(60)")


def test_a_running_dry_runs_folder_is_kept_and_a_killed_ones_cleared(lake):
    _store_with_a_batch(lake)
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
    (lake.manifest_dir / ".writing").touch()

    lake.append({"requests": requests_table([make_request(1)])}, source="second")

    assert running_dir.is_dir() and (running_dir / "requests").is_dir()
    assert not killed_dir.exists()
    del running  # the run ends: its folder goes with it
    assert not running_dir.exists()
