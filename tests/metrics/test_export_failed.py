"""An export of every matching request that fails (here: a data file gone from the disk) leaves
no file behind: the download deletes the temporary file once read, and one it never got back
stayed in the temporary folder, a long-running server's failed downloads piling up there."""

from __future__ import annotations

import tempfile
from datetime import timedelta

import duckdb
import pytest

from lib.filters import Filters
from lib.metrics import explore
from tests.conftest import T0, make_request, requests_table


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_failed_export_leaves_no_temporary_file(lake, engine, tmp_path, monkeypatch, fmt):
    lake.append({"requests": requests_table([make_request(i) for i in range(3)])}, source="a")
    engine.refresh()
    (lake.root / lake.commits()[0].added[0]["path"]).unlink()  # (a disk's trouble)
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    with pytest.raises(duckdb.Error):
        explore.export_requests(engine, Filters.between(T0, T0 + timedelta(hours=1)), fmt=fmt)
    assert list(spool.iterdir()) == []
