"""No value silently changed, no row silently absorbed, on every ingest path (a group of small
files, the fast path, the exact SQL path, the chunked Arrow path; CSV where it applies), with
the same result on each. Found by a review:

- an invalid ``cache_hit`` ("maybe", 2, [true]) was stored as false (``coalesce`` ran before the
  type check);
- a top-level key overwrote the same key of ``attributes`` ("tier": "free" over "gold");
- an eval line in a file of requests was counted a duplicate of the request it judged, or
  stored as a request with its metric in attributes;
- after a time with a zone name, DuckDB's ICU cast read later times without an offset in that
  zone (4 hours off), not as UTC;
- a line of a form feed or vertical tab vanished on the fast path, and one with a form feed
  around its object was stored, where the exact path quarantines them (not JSON whitespace);
- one line of ~2,000 extra keys failed the whole file on the exact path (out of memory).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import duckdb
import pytest

from lib.ingest import fastpath
from lib.ingest.pipeline import ingest_paths
from tests.ingest.conftest import INGEST_PATHS, canonical_request, live_rows

PATHS = list(INGEST_PATHS)  # group, fast, exact, arrow
TS = "2026-03-02T12:00:00Z"


def _req(rid: str, **kw) -> dict:
    return {"request_id": rid, "ts": TS, "provider": "openai", "model": "gpt-4o",
            "input_tokens": 10, "output_tokens": 5, **kw}


def _ingest(tmp_path: Path, monkeypatch, path: str, name: str, data: bytes, *,
            taken: bool = False):
    """Ingest the file ``name`` holding ``data`` on ``path`` (with a small clean file after
    it, so a group has two); returns (its FileReport, the lake). With ``taken``, asserts the
    group or the fast path read it (its rows are all good)."""
    from lib.store import Lake

    for var in {n for env in INGEST_PATHS.values() for n in env}:
        monkeypatch.delenv(var, raising=False)
    for var, value in INGEST_PATHS[path].items():
        monkeypatch.setenv(var, value)
    folder = tmp_path / "in"
    folder.mkdir(parents=True, exist_ok=True)
    first, other = folder / name, folder / "zz-other.jsonl"
    first.write_bytes(data)
    other.write_text(json.dumps(canonical_request(900)) + "\n")
    old = time.time() - 600  # not a file still being written
    for f in (first, other):
        os.utime(f, (old, old))
    lake = Lake(tmp_path / f"store-{path}")
    fastpath.LAST.clear()
    report = ingest_paths(lake, [str(first), str(other)], compact_min_files=0)
    f = report.files[0]
    assert f.error is None, f.error
    assert report.files[1].stored == {"requests": 1}
    if taken and path in ("group", "fast") and not name.endswith(".csv"):
        commits = [json.loads(p.read_text()) for p in (lake.root / "_manifest").glob("*.json")]
        (way,) = [c["info"].get("ingest_path") for c in commits if c["source"] == str(first)]
        assert way == path
    return f, lake


def _rows(lake, table: str, cols: str, where: str = "") -> list[tuple]:
    return live_rows(lake, table, cols, where)


def _quarantine(lake) -> list[tuple]:
    return _rows(lake, "quarantine", "line, reason")


def _jsonl(rows: list) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


# -- 1. cache_hit ---------------------------------------------------------------------------------
# What reads as a boolean is what ``passed`` of an eval takes: true/false, t/f, yes/no, y/n, 1/0
# (any case, trimmed; a spreadsheet's "yes" is deliberate); anything else is quarantined.
CACHE_HIT = [(True, True), (False, False), ("yes", True), ("t", True), (1, True), (0, False),
             ("no", False), ("true ", True), (None, False), ("maybe", "maybe"), (2, "2"),
             ("2", "2"), ([True], "[true]"), ({"x": 1}, '{"x":1}'), (0.5, "0.5")]


@pytest.mark.parametrize("path", PATHS)
def test_a_cache_hit_that_is_no_boolean_is_quarantined_not_stored_false(
        tmp_path, monkeypatch, path):
    rows = [_req(f"c{i}", cache_hit=v) for i, (v, _) in enumerate(CACHE_HIT)]
    rows.append(_req("absent"))
    f, lake = _ingest(tmp_path, monkeypatch, path, "c.jsonl", _jsonl(rows))
    stored = dict(_rows(lake, "requests", "request_id, cache_hit", "WHERE request_id <> 'r900'"))
    assert stored == {**{f"c{i}": want for i, (_, want) in enumerate(CACHE_HIT)
                         if isinstance(want, bool)}, "absent": False}
    assert _quarantine(lake) == sorted(
        (i + 1, f"cache_hit is not a boolean: {want}")
        for i, (_, want) in enumerate(CACHE_HIT) if not isinstance(want, bool))
    assert (f.rows_read, f.quarantined) == (len(rows), 6)


def test_a_cache_hit_that_is_no_boolean_is_quarantined_in_csv(tmp_path, monkeypatch):
    head = "request_id,ts,provider,model,input_tokens,output_tokens,cache_hit\n"
    body = "".join(f"k{i},{TS},openai,gpt-4o,10,5,{v}\n"
                   for i, v in enumerate(["maybe", "2", "yes", "no", "y", "", "0.5"]))
    f, lake = _ingest(tmp_path, monkeypatch, "exact", "c.csv", (head + body).encode())
    assert _rows(lake, "requests", "request_id, cache_hit", "WHERE request_id <> 'r900'") == [
        ("k2", True), ("k3", False), ("k4", True), ("k5", False)]
    assert _quarantine(lake) == [(2, "cache_hit is not a boolean: maybe"),
                                 (3, "cache_hit is not a boolean: 2"),
                                 (8, "cache_hit is not a boolean: 0.5")]


# -- 2. a top-level key and the same key of attributes --------------------------------------------
@pytest.mark.parametrize("path", PATHS)
def test_a_top_level_key_never_overwrites_another_value_in_attributes(
        tmp_path, monkeypatch, path):
    rows = [_req("clash", attributes={"tier": "gold", "region": "eu"}, tier="free"),
            _req("same", attributes={"tier": "gold"}, tier="gold"),
            _req("was_null", attributes={"tier": None}, tier="free"),
            _req("apart", attributes={"a": 1}, b=2),
            _req("nested", attributes={"cfg": {"x": 1}}, cfg={"x": 2})]
    f, lake = _ingest(tmp_path, monkeypatch, path, "a.jsonl", _jsonl(rows))
    stored = {rid: json.loads(a) for rid, a in _rows(
        lake, "requests", "request_id, attributes", "WHERE request_id <> 'r900'")}
    assert stored == {"same": {"tier": "gold"}, "was_null": {"tier": "free"},
                      "apart": {"a": 1, "b": 2}}
    clash = ("key {} is both a top-level key and a key of attributes, with different values: "
             "which value is meant is ambiguous")
    assert _quarantine(lake) == [(1, clash.format('"tier"')), (5, clash.format('"cfg"'))]
    assert (f.rows_read, f.quarantined) == (5, 2)


# -- 3. another table's row in a file of one table ------------------------------------------------
MIXED = [_req("r1"),
         {"eval_id": "e1", "request_id": "r1", "ts": TS, "model": "gpt-4o",
          "metric": "helpfulness", "score": 0.2, "passed": False},
         {"eval_id": "e2", "request_id": "r2", "ts": TS, "model": "gpt-4o",
          "metric": "helpfulness", "score": 0.9, "passed": True},
         {"event_id": "v1", "ts": TS, "kind": "deploy", "title": "v2"},
         _req("r3", eval="not an id", event="neither")]
OTHER = "in a file of requests: give each table a file of its own"


@pytest.mark.parametrize("path", PATHS)
def test_an_eval_line_in_a_file_of_requests_is_quarantined_not_absorbed(
        tmp_path, monkeypatch, path):
    f, lake = _ingest(tmp_path, monkeypatch, path, "m.jsonl", _jsonl(MIXED))
    assert _rows(lake, "requests", "request_id", "WHERE request_id <> 'r900'") == [
        ("r1",), ("r3",)]
    assert _rows(lake, "evals", "eval_id") == []
    assert _quarantine(lake) == [(2, f"an evals row (eval_id) {OTHER}"),
                                 (3, f"an evals row (eval_id) {OTHER}"),
                                 (4, f"an events row (event_id) {OTHER}")]
    assert (f.rows_read, f.stored, f.duplicates, f.quarantined) == (
        5, {"requests": 2}, {"requests": 0}, 3)


@pytest.mark.parametrize("path", PATHS)
def test_a_request_line_in_a_file_of_events_is_quarantined(tmp_path, monkeypatch, path):
    rows = [{"event_id": "v1", "ts": TS, "kind": "deploy", "title": "v2"},
            _req("r1"),  # a request: its id, none of an event's own fields
            {"ts": TS, "kind": "incident", "title": "slow", "request_id": "r7"}]  # a reference
    f, lake = _ingest(tmp_path, monkeypatch, path, "v.jsonl", _jsonl(rows))
    assert [r[1] for r in _rows(lake, "events", "event_id, title")] == ["slow", "v2"]
    assert _quarantine(lake) == [
        (2, "a requests row (request_id) in a file of events: give each table a file of "
            "its own")]
    assert (f.rows_read, f.quarantined) == (3, 1)


# -- 4. a time's zone is its own ------------------------------------------------------------------
TZ = [("a", "2024-06-01T12:00", "2024-06-01T12:00:00+00:00"),
      ("b", "2024-06-01T09:00:00 America/New_York", "2024-06-01T13:00:00+00:00"),
      ("c", "2024-06-01T12:00", "2024-06-01T12:00:00+00:00"),
      ("d", "2024-06-01", "2024-06-01T00:00:00+00:00"),
      ("e", "2024-06-01T12:00:00+02:00", "2024-06-01T10:00:00+00:00"),
      ("f", "2024-06-01T12:00:00 Europe/Paris", "2024-06-01T10:00:00+00:00"),
      ("g", "2024-06-01 12:00:00.5", "2024-06-01T12:00:00.500000+00:00"),
      ("h", "2024-06-01T12:00:00Z", "2024-06-01T12:00:00+00:00"),
      ("i", "2024-06-01T12:00:00-0730", "2024-06-01T19:30:00+00:00"),
      ("j", "2024-06-01T12:00:00 UTC", "2024-06-01T12:00:00+00:00"),
      ("k", "1717243200", "2024-06-01T12:00:00+00:00"),
      # hours and minutes, then an offset (Java's OffsetDateTime on the minute): were
      # quarantined as no timestamp, where "2024-06-01T12:00" alone is read (review)
      ("l", "2024-06-01T12:00Z", "2024-06-01T12:00:00+00:00"),
      ("m", "2024-06-01T12:00+02:00", "2024-06-01T10:00:00+00:00"),
      ("n", "2024-06-01 12:00-0730", "2024-06-01T19:30:00+00:00"),
      # a zone's name in brackets after the offset (Java's ZonedDateTime): were quarantined
      ("o", "2024-06-01T12:00:00.5+02:00[Europe/Paris]", "2024-06-01T10:00:00.500000+00:00"),
      ("p", "2024-06-01T12:00Z[UTC]", "2024-06-01T12:00:00+00:00")]


def _ts(lake) -> dict:
    return {rid: ts.isoformat() for rid, ts in _rows(lake, "requests", "request_id, ts",
                                                     "WHERE request_id <> 'r900'")}


@pytest.mark.parametrize("path", PATHS)
def test_a_time_without_an_offset_is_utc_whatever_zone_came_before(
        tmp_path, monkeypatch, path):
    rows = [_req(rid, ts=ts) for rid, ts, _ in TZ]
    f, lake = _ingest(tmp_path, monkeypatch, path, "t.jsonl", _jsonl(rows), taken=True)
    assert _ts(lake) == {rid: want for rid, _, want in TZ}
    assert f.quarantined == 0


def test_a_time_without_an_offset_is_utc_whatever_zone_came_before_in_csv(
        tmp_path, monkeypatch):
    data = "request_id,ts,provider,model,input_tokens,output_tokens\n" + "".join(
        f"{rid},{ts},openai,gpt-4o,10,5\n" for rid, ts, _ in TZ)
    f, lake = _ingest(tmp_path, monkeypatch, "exact", "t.csv", data.encode())
    assert _ts(lake) == {rid: want for rid, _, want in TZ}


# -- 5. form feeds and vertical tabs are not JSON whitespace --------------------------------------
def _line(i: int) -> str:
    return json.dumps(_req(f"b{i}"))


FORM_FEEDS = {"ff_line": [_line(1), "\f", _line(2)], "vt_line": [_line(1), "\v", _line(2)],
              "ff_prefix": [_line(1), "\f" + _line(3), _line(2)],
              "ff_suffix": [_line(1), _line(3) + "\f", _line(2)],
              "vt_inside": [_line(1), _line(3).replace(", ", ",\v"), _line(2)]}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", list(FORM_FEEDS))
def test_a_form_feed_or_vertical_tab_line_is_quarantined_on_every_path(
        tmp_path, monkeypatch, path, case):
    data = ("\n".join(FORM_FEEDS[case]) + "\n").encode()
    f, lake = _ingest(tmp_path, monkeypatch, path, "f.jsonl", data)
    assert (f.rows_read, f.stored, f.quarantined) == (3, {"requests": 2}, 1)
    assert _rows(lake, "requests", "request_id", "WHERE request_id <> 'r900'") == [
        ("b1",), ("b2",)]
    ((line, reason),) = _quarantine(lake)
    assert line == 2 and reason.startswith("not valid JSON"), reason


# -- 6. a wide row on the exact path --------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
def test_a_row_of_thousands_of_extra_keys_is_stored_on_every_path(tmp_path, monkeypatch, path):
    wide = _req("wide", **{f"k{j}": j for j in range(2500)})
    bad = {"request_id": "bad", "ts": TS, "model": "gpt-4o", "input_tokens": -1}
    rows = [_req(f"n{i}") for i in range(5)] + [wide, bad]
    f, lake = _ingest(tmp_path, monkeypatch, path, "w.jsonl", _jsonl(rows))
    assert (f.stored, f.quarantined) == ({"requests": 6}, 1)
    (attrs,) = _rows(lake, "requests", "attributes", "WHERE request_id = 'wide'")[0]
    assert json.loads(attrs) == {f"k{j}": j for j in range(2500)}
    assert _quarantine(lake) == [(7, "input_tokens is negative: -1")]


def test_the_one_parse_extras_are_the_text_the_per_key_ones_were(tmp_path):
    """The extras built from one parse of a line (canonical._EXTRAS_SQL, which every path
    shares) give the text the per-key expression gave: each extra key extracted from the line
    by its JSON pointer, null values dropped, keys sorted (the reference, written out here)."""
    import pyarrow as pa

    from lib.ingest.formats.canonical import json_object_sql, jsonl_rows_sql

    per_key = json_object_sql(
        "list_filter(list_transform(_extra_keys, "
        "k -> {'k': k, 'v': json_extract(line, '/' || replace(replace(k, '~', '~0'), '/', "
        "'~1'))}), (e, i) -> json_type(e.v) <> 'NULL' AND list_position(_extra_keys, e.k) = i)")
    lines = ['{"request_id":"a","ts":"x","model":"m","tier":"gold","n":1.0,"e":1e5,'
             '"big":123456789012345678901234567890,"s":"h\\u00e9\\n\\"q","nested":'
             '{"b":[1,{"c":null}],"a":2},"z":null,"a/b~c":true,"":0}',
             '{"request_id":"b","ts":"x","model":"m"}', '{"request_id":"c","x":null}',
             '{"request_id":"e","k":-0.0, "f": 1.5E-7, "arr":[], "o":{}, "w":"\\ud83d\\ude00"}']
    con = duckdb.connect()
    con.register("blocks", pa.table({"first_line": [1], "pieces": [len(lines)],
                                     "text": pa.array(["\n".join(lines)], pa.large_string())}))
    sql, _, extras = jsonl_rows_sql("requests", "blocks")
    got = con.execute(f"SELECT {extras}, CASE WHEN len(_extra_keys) > 0 THEN {per_key} END "
                      f"FROM ({sql})").fetchall()
    assert [a for a, _ in got] == [b for _, b in got]
    assert got[0][0] is not None and got[1][0] is None
    assert json.loads(got[0][0])["tier"] == "gold" and "z" not in json.loads(got[0][0])


@pytest.mark.parametrize("path", PATHS)
def test_a_request_row_that_logs_its_span_id_is_a_request(tmp_path, monkeypatch, path):
    # span_id tells another table's row only in a row without the file's own id: a failed call
    # logged with its span and no tokens was quarantined as "a spans row"
    rows = [{"request_id": f"r{i}", "ts": "2026-03-02T12:00:00Z", "model": "gpt-4o",
             "status": "error", "service": "api", "trace_id": "t", "span_id": f"s{i}"}
            for i in range(3)]
    report, _ = _ingest(tmp_path, monkeypatch, path, "spans.jsonl", _jsonl(rows))
    assert (report.stored, report.quarantined) == ({"requests": 3}, 0)


@pytest.mark.parametrize("path", PATHS)
def test_one_value_written_two_ways_is_no_clash(tmp_path, monkeypatch, path):
    # 1 and 1.0, 100 and 1e2, "2" and 2: one value each
    rows = [{"request_id": "a", "ts": "2026-03-02T12:00:00Z", "model": "gpt-4o",
             "retries": 1, "attributes": {"retries": 1.0}},
            {"request_id": "b", "ts": "2026-03-02T12:00:00Z", "model": "gpt-4o",
             "n": 100, "attributes": {"n": 1e2}},
            {"request_id": "c", "ts": "2026-03-02T12:00:00Z", "model": "gpt-4o",
             "k": "2", "attributes": {"k": 2}},
            {"request_id": "d", "ts": "2026-03-02T12:00:00Z", "model": "gpt-4o",
             "tier": "free", "attributes": {"tier": "gold"}}]
    report, _ = _ingest(tmp_path, monkeypatch, path, "two_ways.jsonl", _jsonl(rows))
    assert (report.stored, report.quarantined) == ({"requests": 3}, 1)
    assert report.reasons[0].startswith('line 4: key "tier" is both a top-level key')
