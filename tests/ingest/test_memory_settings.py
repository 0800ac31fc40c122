"""SIGHTLINE_INGEST_MEMORY and SIGHTLINE_INGEST_FAST_MEMORY (README's configuration table): a
value that is no memory size is named in each file's report, on every path. DuckDB's own message
("Memory must have a number") named no setting, and the fast path, which falls back to the exact
one on any DuckDB error, ignored its variable without a word."""

from __future__ import annotations

import pytest

from lib.ingest.pipeline import ingest_paths
from lib.store import Lake
from tests.ingest.conftest import canonical_request, jsonl_bytes


@pytest.mark.parametrize("variable, path", [
    ("SIGHTLINE_INGEST_FAST_MEMORY", "file"),   # the fast path of a clean canonical file
    ("SIGHTLINE_INGEST_MEMORY", "stdin-like"),  # the exact path (a file the fast path skips)
])
def test_a_memory_setting_that_is_no_size_is_named(monkeypatch, tmp_path, variable, path):
    monkeypatch.setenv(variable, "lots")
    data = tmp_path / "a.jsonl"
    data.write_bytes(jsonl_bytes([canonical_request(i) for i in range(3)]))
    if path == "stdin-like":
        monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "0")  # (what stdin and uploads take)
    lake = Lake(tmp_path / "store")
    (report,) = ingest_paths(lake, [str(data)]).files
    assert report.error is not None and variable in report.error and "'lots'" in report.error
    assert not report.stored


def test_a_memory_size_passes_as_written():
    from lib.store.connections import memory_limit

    for value in ("320MB", "1.5 GiB", "512mb", " 2GB "):
        assert memory_limit("SIGHTLINE_TEST_UNSET_VARIABLE", value) == value.strip()


def test_a_size_duckdb_takes_is_taken():
    # the README calls the variables DuckDB's memory limit: DuckDB's own shorthands ran before
    # they were checked, and a pattern of our own refused them (an ingest with 2G ended, exit 2)
    import duckdb

    from lib.store.connections import memory_limit

    for value in ("2G", "512m", "1000 bytes", "4gb"):
        duckdb.connect(config={"memory_limit": value}).close()  # (DuckDB's: it takes them)
        assert memory_limit("SIGHTLINE_TEST_UNSET_VARIABLE", value) == value
    with pytest.raises(ValueError, match="SIGHTLINE_TEST_UNSET_VARIABLE must be a memory size"):
        memory_limit("SIGHTLINE_TEST_UNSET_VARIABLE", "80%")
