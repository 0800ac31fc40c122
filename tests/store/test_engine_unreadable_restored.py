"""A server runs for weeks: a data file found unreadable once is checked again when it changes on
disk (restored from a backup, as the commands advise) or leaves the lake. It stayed out of every
page, and listed as a problem, until the server restarted."""

from __future__ import annotations

import shutil
from datetime import timedelta

from lib.store import Engine
from tests.conftest import T0, make_request, requests_table


def _corrupt_second_batch(lake, tmp_path):
    lake.append({"requests": requests_table([make_request(i) for i in range(3)])}, source="a")
    lake.append({"requests": requests_table([make_request(10 + i, ts=T0 + timedelta(days=1))
                                             for i in range(4)])}, source="b")
    victim = lake.root / lake.commits()[1].added[0]["path"]
    backup = tmp_path / "backup.parquet"
    shutil.copy(victim, backup)
    with open(victim, "r+b") as fh:
        fh.truncate(victim.stat().st_size // 2)
    return victim, backup


def test_a_file_restored_from_a_backup_is_read_again_on_the_next_run(lake, tmp_path):
    victim, backup = _corrupt_second_batch(lake, tmp_path)
    engine = Engine(lake, auto_refresh=False)  # as the app's: refreshed once per page run
    try:
        assert engine.row_count("requests") == 3
        assert [p.split(": ")[0] for p in engine.problems()] == [str(victim)]
        assert not engine.refresh()  # nothing changed: nothing is rebuilt

        shutil.copy(backup, victim)
        assert engine.refresh()  # (no new batch: the restored file alone)
        assert engine.row_count("requests") == 7
        assert engine.problems() == []
    finally:
        engine.close()


def test_an_unreadable_file_that_leaves_the_lake_is_no_longer_a_problem(lake, tmp_path):
    victim, backup = _corrupt_second_batch(lake, tmp_path)
    engine = Engine(lake, auto_refresh=False)
    try:
        assert len(engine.problems()) == 1
        shutil.copy(backup, victim)
        lake.remove_batch(lake.commits()[1].commit_id)
        victim.write_bytes(b"")  # (as gone: no longer live, whatever is on disk)
        engine.refresh()
        assert engine.row_count("requests") == 3
        assert engine.problems() == []
    finally:
        engine.close()


def test_files_that_left_the_lake_are_forgotten(lake):
    """(a server running for weeks kept the path of every file an ingest ever wrote)"""
    from lib.store.compact import compact

    for i in range(5):
        lake.append({"requests": requests_table([make_request(i)])}, source=f"cron-{i}")
    engine = Engine(lake, auto_refresh=False)
    try:
        compact(lake, min_files=2)
        engine.refresh()
        live = [str(lake.root / p) for p in lake.snapshot().files["requests"]]
        assert len(live) == 1 and engine.row_count("requests") == 5
        assert engine._good_files == set(live)
    finally:
        engine.close()
