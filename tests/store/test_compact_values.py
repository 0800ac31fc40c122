"""Compaction reads a partition's small files in one DuckDB pass (lib/store/compact.py _read):
every value of every column of every table comes back exactly as written, files written before a
column existed included; files DuckDB cannot read as one are read a file at a time."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lib import demo, schema
from lib.store import Lake
from lib.store.compact import _read, compact


def _rows(lake: Lake, table: str) -> list[tuple]:
    files = [str(lake.root / p) for p in lake.snapshot().files[table]]
    if not files:
        return []
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        return con.execute("SELECT * FROM read_parquet($f, hive_partitioning = false) "
                           "ORDER BY ALL", {"f": files}).fetchall()
    finally:
        con.close()


def test_every_value_of_every_table_survives_compaction(tmp_path):
    tables = demo.generate(1, 300, 7, datetime(2026, 3, 2, tzinfo=UTC))
    lake = Lake(tmp_path / "store")
    for k in range(20):  # twenty small batches of every table
        lake.append({name: t.slice(k * t.num_rows // 20, (k + 1) * t.num_rows // 20 -
                                   k * t.num_rows // 20)
                     for name, t in tables.items() if t.num_rows}, source=f"part-{k}")
    before = {t: _rows(lake, t) for t in schema.TABLES}
    assert all(before[t] for t in tables if tables[t].num_rows)
    report = compact(lake, min_files=4)
    assert report.merged and all(m["files"] > 4 for m in report.merged)
    assert {t: _rows(lake, t) for t in schema.TABLES} == before


def test_a_file_written_before_a_column_existed_reads_it_as_null(tmp_path):
    lake = Lake(tmp_path / "store")
    full = schema.empty("requests").schema
    rows = {"request_id": ["a"], "ts": [datetime(2026, 3, 2, tzinfo=UTC)], "model": ["m"]}
    old = pa.table({k: pa.array(v, full.field(k).type) for k, v in rows.items()})
    new = schema.conform(pa.table({**{k: pa.array(v, full.field(k).type)
                                      for k, v in rows.items()},
                                   "request_id": ["b"], "feature": ["chat"]}), full)
    day = lake.root / "requests" / "date=2026-03-02"
    day.mkdir(parents=True)
    pq.write_table(old, day / "old.parquet")
    pq.write_table(new, day / "new.parquet")
    merged = _read(lake, "requests", ["requests/date=2026-03-02/old.parquet",
                                      "requests/date=2026-03-02/new.parquet"])
    assert merged.schema == schema.conform(merged, full).schema
    assert merged.column("request_id").to_pylist() == ["a", "b"]
    assert merged.column("feature").to_pylist() == [None, "chat"]
    assert merged.column("input_tokens").to_pylist() == [None, None]


def test_files_duckdb_cannot_read_as_one_are_read_one_at_a_time_with_the_same_result(
        tmp_path, monkeypatch):
    tables = demo.generate(1, 100, 3, datetime(2026, 3, 2, tzinfo=UTC))
    lake = Lake(tmp_path / "store")
    for k in range(5):
        t = tables["requests"]
        lake.append({"requests": t.slice(k * 20, 20)}, source=f"part-{k}")
    files = lake.snapshot().files["requests"]
    assert len(files) >= 5
    together = _read(lake, "requests", files)

    class Refusing:
        def __init__(self, *a, **k):
            pass

        def execute(self, *a, **k):
            raise duckdb.IOException("cannot read these files as one")

        def close(self):
            pass

    calls = []
    real = pq.read_table
    monkeypatch.setattr(duckdb, "connect", Refusing)
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: calls.append(a) or real(*a, **k))
    apart = _read(lake, "requests", files)
    assert len(calls) == len(files)
    assert apart.equals(together)
