"""A store written before a column was added (cache_write_1h_tokens) still opens: the column
reads as null where no file has it, and as stored where some files do; costs, the token mix and
compaction go on over it."""

from __future__ import annotations

from datetime import timedelta

import pyarrow.parquet as pq

from lib.filters import Filters
from lib.metrics import cost
from lib.store import Engine, Lake
from lib.store.compact import compact
from tests.conftest import T0, make_request, requests_table

ADDED = "cache_write_1h_tokens"


def _without_added(lake: Lake) -> None:
    """Rewrite every stored requests file without the added column, as older writers wrote."""
    for rel in lake.snapshot().files["requests"]:
        path = lake.root / rel
        table = pq.read_table(path)
        pq.write_table(table.drop_columns([ADDED]), path)


def test_a_store_of_files_without_the_column_reads_it_as_null(tmp_path):
    lake = Lake(tmp_path / "store")
    lake.append({"requests": requests_table([make_request(i) for i in range(3)])}, source="old")
    _without_added(lake)
    assert ADDED not in pq.read_schema(lake.root / lake.snapshot().files["requests"][0]).names
    engine = Engine(lake)
    try:
        assert engine.query(f"SELECT count(*) AS n, count({ADDED}) AS k, sum(cost_usd) AS c "
                            "FROM requests").row(0) == (3, 0, 3 * 0.0075)
        mix = cost.token_mix(engine, Filters.between(T0, T0 + timedelta(hours=1)))
        assert dict(zip(mix["kind"], mix["tokens"], strict=True))["cache_write_1h"] == 0
        # a newer file beside the old ones: its values, and null for the old rows
        lake.append({"requests": requests_table([make_request(
            9, cache_write_tokens=100, **{ADDED: 60})])}, source="new")
        engine.refresh(force=True)
        assert engine.query(f"SELECT list({ADDED} ORDER BY request_id) AS v FROM requests"
                            ).row(0)[0] == [None, None, None, 60]
    finally:
        engine.close()
    # compaction merges old and new files into the canonical columns
    compact(lake, min_files=1)
    assert len(lake.snapshot().files["requests"]) == 1
    engine = Engine(lake)
    try:
        assert engine.query(f"SELECT count(*), sum({ADDED}) FROM requests").row(0) == (4, 60)
    finally:
        engine.close()
