"""Keys that are not canonical columns are folded into ``attributes``: a row's extras are the extra
keys it has with a non-null value, whatever rows share its block and whichever path reads it (the
exact SQL path, the chunked Arrow path, the fast path). Keys are written sorted.
An explicit ``"key": null`` is dropped like an absent key (lib/ingest/validate.py extras_sql)."""

from __future__ import annotations

import functools
import json

import duckdb
import pyarrow as pa
import pytest

from lib import schema
from lib.ingest import fastpath, streams
from lib.ingest.formats import canonical
from lib.ingest.pipeline import ingest_paths
from lib.ingest.validate import EXTRAS_COLUMN, validate
from lib.store import Lake
from tests.ingest.conftest import canonical_request

LINEAGE = ("batch_id", "ingested_at", "source_file")  # differ between the ingests compared
PATHS = ("fast", "sql", "chunked")


def _rows() -> list[dict]:
    """Requests with extra keys on some rows only, of kinds Arrow would type per block."""
    return [
        canonical_request(1, team="search"),
        canonical_request(2, attributes={"region": "eu"}),
        canonical_request(3),
        canonical_request(4, attributes={"k": 1}, tenant_tier="gold", meta={"a": 1}),
        canonical_request(5, meta={"b": [1, 2]}, n=1),
        canonical_request(6, n=1.5, created="2026-03-01"),
        canonical_request(7, attributes={"team": "kept"}),  # a key only neighbours have as extra
        canonical_request(8, team=None, attributes={"x": {"y": 2}}),  # explicit null: dropped
        canonical_request(9, team=None),
        canonical_request(10, cfg={"deep": {"z": None}}, created=5),
        canonical_request(11, _note="x", _extras={"u": 1}),  # "_" keys are user keys here
    ]


def _ingest(tmp_path, monkeypatch, rows: list[dict], path: str, *, tag: str = "",
            block_bytes: int | None = None, first: dict | None = None) -> list[tuple]:
    """Ingest ``rows`` (after ``first``, when given) through ``path``; the stored requests."""
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "1" if path == "fast" else "0")
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", "0" if path == "chunked" else "1")
    if block_bytes:  # blocks of a line or two: rows land in different Arrow tables
        monkeypatch.setattr(canonical, "line_blocks",
                            functools.partial(streams.line_blocks, block_bytes=block_bytes))
    lines = ([first] if first else []) + rows
    src = tmp_path / "in" / f"{path}{tag}.jsonl"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text("".join(json.dumps(r) + "\n" for r in lines))
    lake = Lake(tmp_path / f"store-{path}{tag}")
    f = ingest_paths(lake, [str(src)], compact_min_files=0).files[0]
    assert f.error is None and f.quarantined == 0 and f.stored == {"requests": len(lines)}
    if path == "fast":  # the fast path folds extra keys itself, with the exact path's text
        assert fastpath.LAST["outcome"] == "fast", fastpath.LAST
    monkeypatch.setattr(canonical, "line_blocks", streams.line_blocks)
    return _stored(lake, exclude={first["request_id"]} if first else set())


def _stored(lake: Lake, exclude=frozenset()) -> list[tuple]:
    files = [str(lake.root / p) for p in lake.snapshot().files["requests"]]
    cols = ", ".join(f'"{c}"' for c in schema.REQUESTS.names if c not in LINEAGE)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        return con.execute(f"SELECT {cols} FROM read_parquet($f) "
                           f"WHERE NOT list_contains($x, request_id) ORDER BY request_id",
                           {"f": files, "x": sorted(exclude)}).fetchall()
    finally:
        con.close()


def _attributes(stored: list[tuple]) -> dict:
    i = [c for c in schema.REQUESTS.names if c not in LINEAGE].index("attributes")
    return {r[0]: None if r[i] is None else json.loads(r[i]) for r in stored}


EXPECTED = {
    "r1": {"team": "search"},
    "r2": {"region": "eu"},
    "r3": None,
    "r4": {"k": 1, "tenant_tier": "gold", "meta": {"a": 1}},
    "r5": {"meta": {"b": [1, 2]}, "n": 1},
    "r6": {"n": 1.5, "created": "2026-03-01"},
    "r7": {"team": "kept"},
    "r8": {"x": {"y": 2}},
    "r9": None,
    "r10": {"cfg": {"deep": {"z": None}}, "created": 5},
    "r11": {"_note": "x", "_extras": {"u": 1}},
}


def test_the_same_rows_store_the_same_attributes_in_any_order_and_blocks(tmp_path, monkeypatch):
    rows = _rows()
    whole = _ingest(tmp_path, monkeypatch, rows, "chunked", tag="-whole")
    assert _attributes(whole) == EXPECTED
    # Reversed, and in blocks of a line or two: the same rows, other neighbours.
    assert _ingest(tmp_path, monkeypatch, rows[::-1], "chunked", tag="-reversed") == whole
    assert _ingest(tmp_path, monkeypatch, rows, "chunked", tag="-split", block_bytes=300) == whole
    assert _ingest(tmp_path, monkeypatch, rows[::-1], "chunked", tag="-split-reversed",
                   block_bytes=500) == whole
    # Also in the exact SQL path's segments, in either order.
    assert _ingest(tmp_path, monkeypatch, rows[::-1], "sql", tag="-reversed") == whole


def test_a_first_line_over_64_kib_takes_the_sql_path_and_stores_the_same(tmp_path,
                                                                         monkeypatch):
    calls = []
    own_values = canonical._own_values
    monkeypatch.setattr(canonical, "_own_values",
                        lambda *a: calls.append(a[1]) or own_values(*a))
    monkeypatch.delenv("SIGHTLINE_INGEST_SQL", raising=False)
    big = canonical_request(0, input_text="x" * (streams.HEAD_BYTES + 10))
    rows = _rows()
    runs = []
    for tag, order in (("-1", rows), ("-2", rows[::-1]), ("-3", rows[5:] + rows[:5])):
        monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "0")
        src = tmp_path / f"long{tag}.jsonl"
        src.write_text("".join(json.dumps(r) + "\n" for r in [big, *order]))
        lake = Lake(tmp_path / f"long-store{tag}")
        f = ingest_paths(lake, [str(src)], compact_min_files=0).files[0]
        assert f.error is None and f.stored == {"requests": 12}
        runs.append(_stored(lake, exclude={"r0"}))
    assert not calls  # the SQL path (the table is told from the keys seen in the long line)
    assert runs[0] == runs[1] == runs[2]
    assert _attributes(runs[0]) == EXPECTED


def test_exact_chunked_and_fast_paths_agree_on_extra_keys_on_some_rows(tmp_path, monkeypatch):
    rows = _rows()
    stored = {p: _ingest(tmp_path, monkeypatch, rows, p) for p in PATHS}
    assert stored["fast"] == stored["sql"] == stored["chunked"]
    assert _attributes(stored["sql"]) == EXPECTED
    # One row per block on the chunked path: still the same.
    assert _ingest(tmp_path, monkeypatch, rows, "chunked", tag="-split",
                   block_bytes=200) == stored["sql"]


@pytest.mark.parametrize("path", PATHS)
def test_explicit_nulls_are_dropped_and_no_extras_add_nothing(tmp_path, monkeypatch, path):
    rows = [canonical_request(1, team=None),
            canonical_request(2, team=None, tier="gold"),
            canonical_request(3, team=None, attributes={"a": 1}),
            canonical_request(4, attributes={"team": "x"}, tier=None),
            canonical_request(5, team={"lead": None})]  # a null inside a value stays
    got = _attributes(_ingest(tmp_path, monkeypatch, rows, path))
    assert got == {"r1": None, "r2": {"tier": "gold"}, "r3": {"a": 1}, "r4": {"team": "x"},
                   "r5": {"team": {"lead": None}}}


@pytest.mark.parametrize("path", PATHS)
def test_a_key_written_twice_quarantines_its_line_on_every_path(tmp_path, monkeypatch, path):
    # Which value counts differs between parsers (DuckDB the first, Arrow and Python the last).
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "1" if path == "fast" else "0")
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", "0" if path == "chunked" else "1")
    line = json.dumps(canonical_request(1))[:-1] + ', "team": "a", "team": "b"}\n'
    src = tmp_path / "twice.jsonl"
    src.write_text(line + json.dumps(canonical_request(2)) + "\n")
    lake = Lake(tmp_path / "store")
    f = ingest_paths(lake, [str(src)], compact_min_files=0).files[0]
    assert f.error is None and (f.stored, f.quarantined) == ({"requests": 1}, 1)
    assert f.reasons == ['line 1: key "team" appears twice in the object: which value is meant '
                         'is ambiguous']
    assert _attributes(_stored(lake)) == {"r2": None}


@pytest.mark.parametrize("path", PATHS)
def test_a_key_named_like_an_internal_column_is_a_key_like_any_other(tmp_path, monkeypatch,
                                                                     path):
    """A log's own "_line" or "_raw" (names the readers use inside) goes into attributes with its
    value on every path; on the Arrow path it collided with the line-number column, and the
    whole file failed ('Field "_line" exists 2 times')."""
    rows = [canonical_request(1, _line="zz", _raw=1), canonical_request(2, _meta="m")]
    got = _attributes(_ingest(tmp_path, monkeypatch, rows, path))
    assert got == {"r1": {"_line": "zz", "_raw": 1}, "r2": {"_meta": "m"}}


def test_csv_columns_starting_with_an_underscore_are_kept(tmp_path):
    """A CSV's own "_line", "_raw" or "_id" column: "_line" failed the whole file (two fields of
    that name), and every column starting with "_" was dropped without a word, being taken for
    an internal one. Each goes into attributes with its text, as other extra columns do."""
    src = tmp_path / "x.csv"
    src.write_text("request_id,ts,model,_line,_raw,_id,team\n"
                   "r1,2026-03-02T12:00:00Z,gpt-4o,zz,1,abc,search\n"
                   "r2,2026-03-02T12:00:00Z,gpt-4o,,,,\n"
                   "r3,2026-03-02T12:00:00Z,gpt-4o,,,,\n"
                   "r4,2026-03-02T12:00:00Z,,,,x,\n")  # no model: quarantined, line 5
    lake = Lake(tmp_path / "store")
    f = ingest_paths(lake, [str(src)], compact_min_files=0).files[0]
    assert (f.error, f.stored, f.quarantined) == (None, {"requests": 3}, 1)
    assert f.reasons[0].startswith("line 5: ")
    assert _attributes(_stored(lake)) == {
        "r1": {"_line": "zz", "_raw": "1", "_id": "abc", "team": "search"}, "r2": None,
        "r3": None}


def test_csv_extra_columns_fold_only_their_non_empty_cells(tmp_path, monkeypatch):
    src = tmp_path / "x.csv"
    src.write_text("request_id,ts,model,input_tokens,output_tokens,team,tier,attributes\n"
                   "r1,2026-03-02T12:00:00Z,gpt-4o,10,1,search,,\n"
                   "r2,2026-03-02T12:00:00Z,gpt-4o,10,1,,,\n"
                   'r3,2026-03-02T12:00:00Z,gpt-4o,10,1,,gold,"{""a"": 1}"\n')
    lake = Lake(tmp_path / "store")
    f = ingest_paths(lake, [str(src)], compact_min_files=0).files[0]
    assert f.error is None and f.stored == {"requests": 3}
    assert _attributes(_stored(lake)) == {"r1": {"team": "search"}, "r2": None,
                                          "r3": {"a": 1, "tier": "gold"}}


def test_validate_merges_gathered_extras_with_extra_columns():
    table = pa.table({
        "request_id": ["r1", "r2", "r3", "r4"],
        "ts": ["2026-03-02T12:00:00Z"] * 4,
        "model": ["gpt-4o"] * 4,
        "attributes": ['{"a": 1}', None, None, '{"a": 1}'],
        "team": ["x", None, None, None],
        EXTRAS_COLUMN: ['{"tier":"gold"}', '{"tier":"gold"}', None, None],
        "_line": [1, 2, 3, 4],
    })
    got = validate("requests", table, source_file="t").table
    attrs = [None if a is None else json.loads(a) for a in got.column("attributes").to_pylist()]
    assert attrs == [{"a": 1, "team": "x", "tier": "gold"}, {"tier": "gold"}, None, {"a": 1}]


def test_a_line_duckdb_cannot_read_keeps_its_keys_as_parsed():
    # Python's parser (the line-by-line fallback) takes a lone surrogate escape; DuckDB does not.
    data = (json.dumps({"request_id": "r1", "team": "x"}) + "\n"
            + '{"request_id": "r2", "team": "\\ud800y"}\n').encode()
    table = pa.table({"request_id": ["r1", "r2"], "team": ["x", "y"], "_line": [1, 2]})
    out = canonical._own_values(table, "requests", streams.LineBlock(1, data))
    assert out.column("team").to_pylist() == [None, "y"]
    assert out.column(EXTRAS_COLUMN).to_pylist() == ['{"team":"x"}', None]
