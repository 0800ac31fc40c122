"""One engine serves every session of the server: a page run pins the version it started on, and
another session's run (or a download) refreshing the engine to a batch that landed meanwhile does
not move it (its tiles counted one version, the table below them the next)."""

from __future__ import annotations

import threading

import duckdb
import pytest

from lib.store import Engine
from tests.conftest import make_request, requests_table


def _in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def _count(engine: Engine) -> int:
    return engine.row_count("requests")


def test_a_run_keeps_its_version_while_another_session_refreshes(lake):
    lake.append({"requests": requests_table([make_request(i) for i in range(3)])}, source="a")
    engine = Engine(lake, auto_refresh=False)  # as the app's
    try:
        engine.refresh()
        engine.pin()  # this thread's run (lib/ui/store.refresh_for_run)
        version = engine.version
        assert _count(engine) == 3
        lake.append({"requests": requests_table([make_request(10 + i) for i in range(4)])},
                    source="b")

        def other_session():
            engine.refresh()
            engine.pin()
            return _count(engine), engine.version, len(engine.commits())

        assert _in_thread(other_session)[0] == 7  # the other session sees the new batch
        assert _in_thread(lambda: _count(engine)) == 7  # so does a download (no pin)
        # ... and this run still reads, lists and caches under the version it started on
        assert (_count(engine), engine.version, len(engine.commits())) == (3, version, 1)
        with engine.executed("SELECT count(*) FROM requests") as cur:
            assert cur.fetchone()[0] == 3
        # its next run (a refresh of its own) moves on
        engine.refresh()
        assert (_count(engine), len(engine.commits())) == (7, 2)
    finally:
        engine.close()


def test_versions_no_run_reads_any_more_are_dropped(lake):
    lake.append({"requests": requests_table([make_request(0)])}, source="a")
    engine = Engine(lake, auto_refresh=False)
    try:
        engine.pin()
        for i in range(1, 4):  # three more batches, each picked up by another session's run
            lake.append({"requests": requests_table([make_request(i)])}, source=f"b{i}")
            _in_thread(lambda: (engine.refresh(), engine.pin()))
        assert _count(engine) == 1
        schemas = "SELECT count(*) FROM duckdb_schemas() WHERE schema_name LIKE 'lake_%'"
        assert engine.scalar(schemas) == 1  # this run's version; not one per batch
        engine.refresh()  # this thread's next run: nothing older is read
        assert _count(engine) == 4
        assert engine.scalar(schemas) == 0
    finally:
        engine.close()


def test_the_pins_of_ended_runs_are_let_go(lake):
    """(Streamlit runs each page run in a new thread: one pin a run, kept until a batch landed,
    each holding its thread and what the thread holds)"""
    lake.append({"requests": requests_table([make_request(0)])}, source="a")
    engine = Engine(lake, auto_refresh=False)
    try:
        for _ in range(20):
            _in_thread(lambda: (engine.refresh(), engine.pin(), _count(engine)))
        assert len(engine._pins) <= 1
    finally:
        engine.close()


def test_a_refresh_that_fails_leaves_the_version_runs_read(lake, monkeypatch):
    """A rebuild that fails after the newest views were copied aside for a run pinning them (a
    force refresh, or a restored file, hitting an I/O error as the views bind) leaves those
    views the newest, read from the copy: letting the copy go with its run dropped what every
    later run pinned ("SET schema: No catalog + schema named lake_1 found" on every page until
    a batch landed)."""
    lake.append({"requests": requests_table([make_request(i) for i in range(3)])}, source="a")
    engine = Engine(lake, auto_refresh=False)
    try:
        engine.pin()  # this thread's run
        pinned, done = threading.Event(), threading.Event()
        other = threading.Thread(target=lambda: (engine.pin(), pinned.set(), done.wait()))
        other.start()  # another session's run, on the same version
        pinned.wait()
        create = Engine._create_views

        def failing(self, cur, views):
            if views.schema == "main":
                raise duckdb.IOException("IO Error: Too many open files")
            return create(self, cur, views)

        monkeypatch.setattr(Engine, "_create_views", failing)
        with pytest.raises(duckdb.IOException):
            engine.refresh(force=True)  # (an upload's)
        monkeypatch.setattr(Engine, "_create_views", create)
        done.set()
        other.join()
        engine.refresh()  # this session's next run: nothing new
        assert _count(engine) == 3
        assert _in_thread(lambda: (engine.refresh(), engine.pin(), _count(engine))[2]) == 3
    finally:
        engine.close()
