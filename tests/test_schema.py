"""Canonical schemas (design §3): Parquet round-trips keep every type; conform() fills, casts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib import schema
from lib.store import Engine, Lake

T0 = datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=UTC)  # microseconds on purpose
LINEAGE_FILLED = {"batch_id", "ingested_at"}  # set by the lake on every write
# DESCRIBE spells types out; the schema uses DuckDB's short aliases.
_SPELLED = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}


def _duck_types(sch: pa.Schema) -> list[str]:
    return [_SPELLED.get(t, t) for t in (schema.duckdb_type(f.type) for f in sch)]


def _value(field: pa.Field, i: int):
    """A distinct, non-null value of ``field``'s type for row ``i``."""
    t = field.type
    if t == pa.string():
        return f"{field.name}-{i}-'quoted' é"
    if t == pa.float64():
        return 0.1 * (i + 1) + 1e-9
    if t == pa.int64():
        return 2**40 + i  # beyond int32
    if t == pa.bool_():
        return i % 2 == 0
    if t == schema.TS:
        return T0 + timedelta(hours=7 * i, microseconds=i)
    raise AssertionError(f"no sample for {t}")


def _sample(name: str, n: int = 4) -> pa.Table:
    """``n`` rows of table ``name`` with every column set, except the last row, where every
    nullable column is null (the key and ts never are)."""
    sch = schema.TABLES[name]
    key = schema.KEYS[name]
    cols = {}
    for f in sch:
        vals = [_value(f, i) for i in range(n)]
        if f.name not in (key, "ts"):
            vals[-1] = None
        cols[f.name] = pa.array(vals, f.type)
    return pa.table(cols, schema=pa.schema([f.with_nullable(True) for f in sch]))


@pytest.mark.parametrize("name", sorted(schema.TABLES))
def test_round_trip_through_lake_engine_and_pyarrow(tmp_path, name):
    sch = schema.TABLES[name]
    table = _sample(name)
    lake = Lake(tmp_path / "store")
    result = lake.append({name: table}, source="roundtrip.parquet")
    assert result.stored == {name: table.num_rows}
    commit = result.commit

    # Every file on disk has exactly the canonical columns and types, in order.
    paths = [lake.root / f["path"] for f in commit.added]
    assert paths and all(p.exists() for p in paths)
    for p in paths:
        file_schema = pq.read_schema(p)
        assert file_schema.names == sch.names
        assert [f.type for f in file_schema] == [f.type for f in sch]
    back = pa.concat_tables(pq.read_table(p, schema=pq.read_schema(p)) for p in paths)
    back = back.sort_by(schema.KEYS[name])
    expected = table.sort_by(schema.KEYS[name])
    for col in sch.names:
        if col in LINEAGE_FILLED or col == "source_file":
            continue
        assert back.column(col).to_pylist() == expected.column(col).to_pylist(), col
    assert set(back.column("batch_id").to_pylist()) == {commit.commit_id}
    assert back.column("ingested_at").null_count == 0
    # A given source_file is kept; a missing one is filled with the batch's source.
    assert back.column("source_file").to_pylist() == \
        expected.column("source_file").to_pylist()[:-1] + ["roundtrip.parquet"]

    # Through the engine: the view's DuckDB types are the canonical ones, and values match.
    engine = Engine(lake)
    try:
        described = engine.query(f"DESCRIBE {name}")
        assert described["column_name"].to_list() == sch.names
        assert described["column_type"].to_list() == _duck_types(sch)
        cur = engine.con.cursor()
        arrow = cur.execute(f"SELECT * FROM {name} ORDER BY {schema.KEYS[name]}") \
            .to_arrow_table()
        cur.close()
        for f in sch:
            if f.type == schema.TS:  # DuckDB names the zone Etc/UTC: the same zone
                got = arrow.schema.field(f.name).type
                assert (got.unit, got.tz in ("UTC", "Etc/UTC")) == ("us", True), f.name
        for col in sch.names:
            if col in LINEAGE_FILLED:
                continue
            assert arrow.column(col).to_pylist() == back.column(col).to_pylist(), col
        # Microseconds and the UTC zone survive.
        assert arrow.column("ts")[0].as_py() == T0
    finally:
        engine.close()


def test_empty_engine_views_have_canonical_types(engine):
    for name, sch in schema.TABLES.items():
        described = engine.query(f"DESCRIBE {name}")
        assert described["column_name"].to_list() == sch.names
        assert described["column_type"].to_list() == _duck_types(sch)
        assert engine.row_count(name) == 0


def test_conform_fills_missing_columns_with_nulls_and_orders_them():
    t = pa.table({"ts": pa.array([T0], schema.TS), "request_id": ["a"], "unknown": [1]})
    out = schema.conform(t, schema.REQUESTS)
    assert out.schema.names == schema.REQUESTS.names  # canonical order, extra column dropped
    assert [f.type for f in out.schema] == [f.type for f in schema.REQUESTS]
    assert all(f.nullable for f in out.schema)
    assert out.column("request_id").to_pylist() == ["a"]
    for col in schema.REQUESTS.names:
        if col not in ("ts", "request_id"):
            assert out.column(col).null_count == 1, col


def test_conform_casts_compatible_types():
    t = pa.table({
        "request_id": ["a", "b"],
        "ts": pa.array(["2026-03-02T12:00:00+00:00", "2026-03-02T14:30:00+02:00"]),
        "input_tokens": pa.array([1, 2], pa.int32()),
        "latency_ms": pa.array([1, 2], pa.int64()),
        "cache_hit": pa.array([True, None]),
    })
    out = schema.conform(t, schema.REQUESTS)
    assert out.column("input_tokens").type == pa.int64()
    assert out.column("input_tokens").to_pylist() == [1, 2]
    assert out.column("latency_ms").type == pa.float64()
    assert out.column("latency_ms").to_pylist() == [1.0, 2.0]
    assert out.column("ts").type == schema.TS
    assert out.column("ts").to_pylist() == [datetime(2026, 3, 2, 12, tzinfo=UTC),
                                            datetime(2026, 3, 2, 12, 30, tzinfo=UTC)]
    assert out.column("cache_hit").to_pylist() == [True, None]


def test_conform_refuses_lossy_casts():
    t = pa.table({"request_id": ["a"], "ts": pa.array([T0], schema.TS),
                  "input_tokens": pa.array([1.5])})
    with pytest.raises(pa.ArrowInvalid):
        schema.conform(t, schema.REQUESTS)
    with pytest.raises(pa.ArrowInvalid):
        schema.conform(pa.table({"request_id": ["a"], "ts": pa.array([T0], schema.TS),
                                 "output_tokens": ["many"]}), schema.REQUESTS)


def test_empty_tables_and_keys():
    for name, sch in schema.TABLES.items():
        e = schema.empty(name)
        assert e.num_rows == 0 and e.schema.names == sch.names
        assert schema.KEYS[name] in sch.names and "ts" in sch.names
