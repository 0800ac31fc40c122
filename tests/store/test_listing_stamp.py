"""A reader (no writer lock held) lists the manifest folder again only when the folder's stat
changed: a dashboard rerun at a year of commits spent 0.45 s listing 558,000 names that had not
changed. The stat is trusted only once the folder has been unchanged for SETTLED_NS (a change in
the same tick of the file system's clock leaves its times as they were); a writer always lists."""

from __future__ import annotations

import os
import time

import pyarrow as pa
import pytest

from lib.store import Engine, Lake
from lib.store import lake as lake_module
from tests.conftest import make_request, requests_table

SETTLED_S = 0.1  # the tests' settling time, instead of 3 s; they wait longer than it


def _batch(i: int) -> dict[str, pa.Table]:
    return {"requests": requests_table([make_request(i)])}


@pytest.fixture
def listings(monkeypatch):
    """How many times the manifest folder has been listed (a callable)."""
    counted = []
    real = os.listdir

    def listdir(path="."):
        if str(path).endswith(lake_module.MANIFEST_DIR):
            counted.append(path)
        return real(path)

    monkeypatch.setattr(lake_module.os, "listdir", listdir)
    return lambda: len(counted)


@pytest.fixture
def quick_settling(monkeypatch):
    monkeypatch.setattr(lake_module, "SETTLED_NS", int(SETTLED_S * 1e9))


def test_a_reader_lists_a_settled_unchanged_manifest_once_and_sees_the_next_commit(
        tmp_path, listings, quick_settling):
    writer = Lake(tmp_path / "store")
    writer.append(_batch(0), source="a")
    time.sleep(3 * SETTLED_S)
    reader = Lake(writer.root)
    before = listings()
    first = reader.version()
    assert [reader.version() for _ in range(3)] == [first] * 3
    assert len(reader.commits()) == 1 and listings() - before == 1  # for the first only
    writer.append(_batch(1), source="b")  # moves the folder's mtime on
    assert reader.version() != first and len(reader.commits()) == 2
    assert reader.version() == Lake(writer.root).version()


def test_a_manifest_changed_just_now_is_listed_on_each_read(tmp_path, listings):
    writer = Lake(tmp_path / "store")
    writer.append(_batch(0), source="a")  # the folder changed less than SETTLED_NS ago
    reader = Lake(writer.root)
    before = listings()
    reader.version()
    reader.version()
    assert listings() - before == 2


def test_a_writer_lists_under_its_lock_whatever_the_stamp(tmp_path, listings, quick_settling):
    Lake(tmp_path / "store").append(_batch(0), source="a")
    time.sleep(3 * SETTLED_S)
    lake = Lake(tmp_path / "store")
    before = listings()
    lake.version()
    lake.version()
    assert listings() - before == 1
    with lake.writer_lock():
        lake.commits()
    assert listings() - before == 2


def test_a_dashboard_engine_sees_another_writers_commit(tmp_path, quick_settling):
    writer = Lake(tmp_path / "store")
    writer.append(_batch(0), source="a")
    time.sleep(3 * SETTLED_S)
    engine = Engine(Lake(writer.root))
    assert engine.scalar("SELECT count(*) FROM requests") == 1
    assert engine.scalar("SELECT count(*) FROM requests") == 1  # no listing: nothing changed
    writer.append(_batch(1), source="b")
    assert engine.scalar("SELECT count(*) FROM requests") == 2
    engine.close()
