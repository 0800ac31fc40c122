"""A hostile user's YAML mappings and files (docs/mapping.md is the contract).

Expected values are computed here by hand or from the raw input with plain Python (and prices
with genai_prices.calc_price directly), never with the code under review.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta, timezone

import pytest
from genai_prices import Usage, calc_price

from lib.cli import main
from lib.ingest.mapping import MappingError, load, loads
from lib.ingest.pipeline import ingest_paths
from lib.store import Engine
from tests.ingest import test_mapping

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
T0_EPOCH = 1772452800  # 2026-03-02T12:00:00Z
T0_US = T0_EPOCH * 1_000_000
ISO = "2026-03-02T12:00:00Z"

# request_id, ts and model from the user's own names: id, at, m.
BASE = "table: requests\ncolumns:\n  request_id: id\n  ts: at\n  model: m\n"


def _row(rid: str = "a", **fields) -> dict:
    return {"id": rid, "at": ISO, "m": "gpt-4o", **fields}


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _ingest(lake, tmp_path, mapping: str, content: str | bytes, name: str = "d.jsonl",
            spec_name: str = "m.yaml"):
    """Ingest one file ``name`` holding ``content`` under ``mapping``; its FileReport."""
    spec = tmp_path / spec_name
    spec.write_text(mapping)
    data = tmp_path / name
    if isinstance(content, str):
        content = content.encode()
    data.write_bytes(content)
    return ingest_paths(lake, [str(data)], mapping=spec, overrides={}).files[0]


def _rows(lake, sql: str) -> list[tuple]:
    """All rows of ``sql`` over a fresh engine ([] when the store has no such table yet)."""
    eng = Engine(lake)
    try:
        return [tuple(r) for r in eng.query(sql).rows()]
    finally:
        eng.close()


# -- the mapping file itself ---------------------------------------------------------------------

def _missing(tmp_path):
    return tmp_path / "no-such-mapping.yaml"


def _empty(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("")
    return p


def _directory(tmp_path):
    p = tmp_path / "a-folder.yaml"
    p.mkdir()
    return p


def _binary(tmp_path):
    # The classic slip: the data file (gzip) given as --mapping.
    p = tmp_path / "logs.jsonl.gz"
    p.write_bytes(gzip.compress(_jsonl([_row()]).encode()))
    return p


def _a_list(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- table: requests\n- columns: {model: m}\n")
    return p


@pytest.mark.parametrize("make", [_missing, _empty, _directory, _binary, _a_list],
                         ids=["missing", "empty", "directory", "binary-gzip", "yaml-list"])
def test_an_unusable_mapping_file_is_a_clear_error_naming_it_and_stores_nothing(
        tmp_path, lake, capsys, monkeypatch, make):
    """A mapping file that does not exist, is empty, is a directory, is binary (the data file
    passed as --mapping) or is not a YAML object: load() raises MappingError whose message names
    the file; the CLI exits 2 with that message on stderr and nothing is stored."""
    spec = make(tmp_path)
    with pytest.raises(MappingError, match=str(spec)):
        load(spec)
    prices = tmp_path / "prices.yaml"
    prices.write_text("models: []\n")
    monkeypatch.setenv("SIGHTLINE_PRICES", str(prices))
    data = tmp_path / "d.jsonl"
    data.write_text(_jsonl([_row()]))
    rc = main(["ingest", "--store", str(lake.root), str(data), "--mapping", str(spec)])
    assert rc == 2
    assert str(spec) in capsys.readouterr().err
    assert not lake.commits() if lake.root.exists() else True


@pytest.mark.parametrize("text, names", [
    # the same column twice: YAML keeps the last silently, the first rule is lost
    (BASE + "  model: llm.name\n", "model"),
    # a misspelled rule key: the value in seconds would be stored as milliseconds
    (BASE + "  latency_ms: {path: took, units: s}\n", "units"),
    (BASE + "  logged_cost_usd: {path: cents, sacle: 0.01}\n", "sacle"),
    # a misspelled top-level key: unmapped fields would be kept against the user's wish
    (BASE + "keep_unmaped: false\n", "keep_unmaped"),
    # a path and a value: which one counts is a guess (sum with path is refused already)
    (BASE + "  provider: {path: vendor, value: openai}\n", "provider"),
    # a path that is not text: every row silently null
    (BASE + "  input_tokens: {path: [usage, prompt]}\n", "input_tokens"),
    # a scale that is not a finite number: fails every file at ingest instead of at load
    (BASE + "  logged_cost_usd: {path: cents, scale: lots}\n", "logged_cost_usd"),
    (BASE + "  logged_cost_usd: {path: cents, scale: .nan}\n", "logged_cost_usd"),
    # text where a boolean is meant: bool("false") is True
    (BASE + "keep_unmapped: 'false'\n", "keep_unmapped"),
    # format applies to ts only: elsewhere it is silently ignored
    (BASE + "  latency_ms: {path: took, format: '%S'}\n", "format"),
], ids=["column-twice", "units-typo", "scale-typo", "top-level-typo", "path-and-value",
        "path-a-list", "scale-text", "scale-nan", "keep_unmapped-text", "format-not-on-ts"])
def test_a_mapping_that_would_silently_do_something_else_is_refused(text, names):
    """A mapping whose intent is unclear or misspelled raises MappingError at load, naming the
    key, rather than being read in a way the user did not write (a typo'd ``unit`` stores seconds
    as milliseconds; a column given twice keeps only one rule)."""
    with pytest.raises(MappingError, match=names):
        loads(text, "Mapping")


def test_a_constant_of_the_wrong_type_is_never_stored_as_null_or_zero(lake, tmp_path, totals):
    """``input_tokens: {value: lots}`` is no number: every row is quarantined with a reason naming
    input_tokens (or the mapping is refused at load); nothing is stored as null or 0."""
    text = BASE + "  input_tokens: {value: lots}\n"
    try:
        loads(text, "M")
    except MappingError as exc:
        assert "input_tokens" in str(exc)
        return
    f = _ingest(lake, tmp_path, text, _jsonl([_row("a"), _row("b")]))
    assert (f.stored.get("requests", 0), f.quarantined) == (0, 2)
    assert all("input_tokens" in r and "lots" in r for r in f.reasons)


def test_a_constant_object_for_attributes_is_stored_as_json(lake, tmp_path, totals):
    """``attributes: {value: {team: search}}`` (tag every row) stores the JSON object
    ``{"team":"search"}`` (or the mapping is refused at load with a MappingError); it is never
    Python's repr ``{'team': 'search'}``, which quarantines every row as not a JSON object."""
    text = "table: requests\nkeep_unmapped: false\ncolumns:\n  request_id: id\n  ts: at\n" \
           "  model: m\n  attributes: {value: {team: search}}\n"
    try:
        loads(text, "M")
    except MappingError as exc:
        assert "attributes" in str(exc)
        return
    f = _ingest(lake, tmp_path, text, _jsonl([_row("a")]))
    assert (f.stored, f.quarantined) == ({"requests": 1}, 0), f.reasons
    assert json.loads(totals("SELECT attributes FROM requests")[0]) == {"team": "search"}


# -- numbers -------------------------------------------------------------------------------------

def test_numbers_written_as_text_are_converted(lake, tmp_path, totals):
    """Numeric text ("1.5", "1e3", " 2 ") converts like the number; s → ms multiplies by 1000."""
    text = BASE + "  latency_ms: {path: took, unit: s}\n  input_tokens: tok\n"
    rows = [_row("a", took="1.5", tok="12"), _row("b", took="1e3", tok="1e3"),
            _row("c", took=" 2 ", tok=7), _row("d", took=0.25, tok="3.0")]
    f = _ingest(lake, tmp_path, text, _jsonl(rows))
    assert (f.stored, f.quarantined) == ({"requests": 4}, 0), f.reasons
    assert _rows(lake, "SELECT request_id, latency_ms, input_tokens FROM requests ORDER BY 1") == [
        ("a", 1500.0, 12), ("b", 1_000_000.0, 1000), ("c", 2000.0, 7), ("d", 250.0, 3)]


def test_values_that_are_not_numbers_are_quarantined_with_their_line_and_text(lake, tmp_path,
                                                                             totals):
    """NaN, Infinity, empty text, hex and fractional tokens are quarantined, each with its line
    and its own text; a negative after conversion (-0.5 s) is quarantined as negative; the good
    line is stored."""
    text = BASE + "  latency_ms: {path: took, unit: s}\n  input_tokens: tok\n"
    rows = [_row("ok", took=1, tok=1), _row("b", took="NaN"), _row("c", took="Infinity"),
            _row("d", took=""), _row("e", took="0x10"), _row("f", took=-0.5),
            _row("g", tok=1.5)]
    f = _ingest(lake, tmp_path, text, _jsonl(rows))
    assert (f.stored, f.quarantined) == ({"requests": 1}, 6)
    got = {line: reason for line, reason in
           _rows(lake, "SELECT line, reason FROM quarantine ORDER BY line")}
    assert sorted(got) == [2, 3, 4, 5, 6, 7]
    assert got[2].startswith("latency_ms is not a finite number") and "nan" in got[2].lower()
    assert got[3].startswith("latency_ms is not a finite number") and "inf" in got[3].lower()
    assert got[4].startswith("latency_ms is not a finite number")
    assert got[5] == "latency_ms is not a finite number: 0x10"
    assert got[6] == "latency_ms is negative: -500.0"
    assert got[7] == "input_tokens is not an integer: 1.5"
    assert totals("SELECT request_id, latency_ms FROM requests") == ("ok", 1000.0)


def test_a_boolean_is_not_a_number_even_with_a_unit_or_scale(lake, tmp_path, totals):
    """``true`` in a numeric field is quarantined as not a number, as it is without a
    conversion; with ``unit: s`` it must not become 1000 ms (nor 0.01 $ with ``scale: 0.01``)."""
    text = BASE + ("  latency_ms: {path: took, unit: s}\n"
                   "  logged_cost_usd: {path: cents, scale: 0.01}\n  input_tokens: tok\n")
    # (no other value in these fields: a column of booleans only, as a log of them gives)
    rows = [_row("a", took=True), _row("b", cents=True), _row("c", tok=True), _row("ok")]
    f = _ingest(lake, tmp_path, text, _jsonl(rows))
    assert (f.stored, f.quarantined) == ({"requests": 1}, 3), \
        _rows(lake, "SELECT request_id, latency_ms, logged_cost_usd FROM requests")
    assert _rows(lake, "SELECT line FROM quarantine ORDER BY line") == [(1,), (2,), (3,)]


@pytest.mark.parametrize("rule, value, expected", [
    ("{path: v, unit: s}", 0.1, 100.0),
    ("{path: v, unit: s}", 1.001, 1001.0),     # 1.001 * 1000.0 is 1000.9999999999999
    ("{path: v, unit: s}", 0.57, 570.0),
    ("{path: v, unit: us}", 9, 0.009),         # 9 * 1e-3 is 0.009000000000000001
    ("{path: v, unit: ns}", 15, 0.000015),     # 15 * 1e-6 is 1.4999999999999999e-05
    ("{path: v, unit: min}", 2.5, 150000.0),
    ("{path: v, unit: h}", 0.5, 1800000.0),
], ids=["0.1s", "1.001s", "0.57s", "9us", "15ns", "2.5min", "0.5h"])
def test_a_unit_conversion_gives_the_decimal_result(lake, tmp_path, totals, rule, value,
                                                    expected):
    """A latency converted to ms is the number the decimal conversion gives (1.001 s is 1001 ms,
    15 ns is 0.000015 ms), not one ulp off it (what multiplying by an inexact factor gives)."""
    f = _ingest(lake, tmp_path, BASE + f"  latency_ms: {rule}\n", _jsonl([_row(v=value)]))
    assert f.stored == {"requests": 1}
    assert totals("SELECT latency_ms FROM requests") == (expected,)


@pytest.mark.parametrize("cents, dollars", [(75, 0.75), (57, 0.57), (0.75, 0.0075), (35, 0.35)])
def test_cents_scaled_to_dollars_give_the_decimal_result(lake, tmp_path, totals, cents,
                                                         dollars):
    """``scale: 0.01`` (the documented cents → dollars) gives 57 cents as 0.57 $, not
    0.5700000000000001."""
    f = _ingest(lake, tmp_path, BASE + "  logged_cost_usd: {path: c, scale: 0.01}\n",
                _jsonl([_row(c=cents)]))
    assert f.stored == {"requests": 1}
    assert totals("SELECT logged_cost_usd FROM requests") == (dollars,)


def test_a_sum_of_text_numbers_adds_them_and_a_bad_part_is_named(lake, tmp_path, totals):
    """``sum`` parts written as text ("1e3") add as numbers; a part that is NaN, a boolean or past
    int64 quarantines its row, and a non-number part is named by its path."""
    text = BASE + "  input_tokens: {sum: [u.a, u.b]}\n"
    rows = [_row("a", u={"a": "1e3", "b": 5}), _row("b", u={"a": "NaN", "b": 1}),
            _row("c", u={"a": True, "b": 1}), _row("d", u={"a": 2 ** 63 + 5, "b": 1})]
    f = _ingest(lake, tmp_path, text, _jsonl(rows))
    assert (f.stored, f.quarantined) == ({"requests": 1}, 3), f.reasons
    assert totals("SELECT input_tokens FROM requests") == (1005,)
    reasons = dict(_rows(lake, "SELECT line, reason FROM quarantine"))
    assert "(u.a)" in reasons[2] and "(u.a)" in reasons[3]
    assert reasons[4].startswith("input_tokens")


# -- timestamps ----------------------------------------------------------------------------------

@pytest.mark.parametrize("unit, value, expected_us", [
    ("s", T0_EPOCH, T0_US),
    ("s", T0_EPOCH + 0.5, T0_US + 500_000),
    ("ms", T0_EPOCH * 1000 + 123, T0_US + 123_000),
    ("us", T0_US + 123_456, T0_US + 123_456),
    ("ns", T0_US * 1000 + 123_456_000, T0_US + 123_456),
    ("s", str(T0_EPOCH), T0_US),                                    # epoch as text
    ("s", "2026-03-02T14:00:00+02:00", T0_US),                      # ISO text with an offset
    ("ms", "2026-03-02T07:00:00-05:00", T0_US),
], ids=["s", "s-fraction", "ms", "us", "ns", "s-text", "iso+02", "iso-05"])
def test_timestamps_in_each_documented_unit(lake, tmp_path, totals, unit, value, expected_us):
    """``ts: {path, unit}`` reads epoch seconds, ms, µs and ns exactly (to the µs), and ISO text
    with an offset as that instant in UTC."""
    text = ("table: requests\ncolumns:\n  request_id: id\n  model: m\n"
            f"  ts: {{path: t, unit: {unit}}}\n")
    f = _ingest(lake, tmp_path, text, _jsonl([{"id": "a", "m": "gpt-4o", "t": value}]))
    assert (f.stored, f.quarantined) == ({"requests": 1}, 0), f.reasons
    assert totals("SELECT epoch_us(ts) FROM requests") == (expected_us,)


def test_a_format_with_an_offset_gives_the_utc_instant(lake, tmp_path, totals):
    """``format`` with ``%z``: 02/03/2026 14:00 +0200 is 2026-03-02T12:00Z."""
    text = ("table: requests\ncolumns:\n  request_id: id\n  model: m\n"
            "  ts: {path: t, format: '%d/%m/%Y %H:%M %z'}\n")
    f = _ingest(lake, tmp_path, text,
                _jsonl([{"id": "a", "m": "gpt-4o", "t": "02/03/2026 14:00 +0200"}]))
    assert f.stored == {"requests": 1}
    expected = datetime(2026, 3, 2, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert totals("SELECT epoch_us(ts) FROM requests") == (
        int(expected.timestamp()) * 1_000_000,)


@pytest.mark.parametrize("unit, value", [
    ("s", T0_EPOCH * 1000),          # milliseconds under unit: s → year ~58000
    ("ms", T0_US),                   # microseconds under unit: ms
    ("us", T0_US * 1000),            # nanoseconds under unit: us
    ("ms", T0_EPOCH),                # seconds under unit: ms → 1970
], ids=["ms-as-s", "us-as-ms", "ns-as-us", "s-as-ms"])
def test_an_epoch_in_the_wrong_unit_is_quarantined_not_reinterpreted(lake, tmp_path, unit,
                                                                     value):
    """The declared unit is what the number counts: an epoch too large (or too small) for it
    is a time out of range, quarantined ("an epoch too large for its unit", docs/mapping.md),
    never silently re-read in another unit guessed from its magnitude."""
    text = ("table: requests\ncolumns:\n  request_id: id\n  model: m\n"
            f"  ts: {{path: t, unit: {unit}}}\n")
    rows = [{"id": "bad", "m": "gpt-4o", "t": value}, {"id": "ok", "m": "gpt-4o", "t": None}]
    rows[1]["t"] = {"s": T0_EPOCH, "ms": T0_EPOCH * 1000, "us": T0_US}[unit]
    f = _ingest(lake, tmp_path, text, _jsonl(rows))
    assert (f.stored, f.quarantined) == ({"requests": 1}, 1), \
        _rows(lake, "SELECT request_id, ts FROM requests")
    assert f.reasons[0].startswith("line 1: ts ")


# -- paths and keys ------------------------------------------------------------------------------

def test_a_field_missing_from_some_lines_is_null_there(lake, tmp_path):
    """A path absent from a line (or through a null) gives null on that line only."""
    text = BASE + "  input_tokens: usage.prompt\n  output_tokens: usage.completion\n"
    rows = [_row("a", usage={"prompt": 10, "completion": 2}), _row("b"),
            _row("c", usage=None), _row("d", usage={"prompt": 4})]
    f = _ingest(lake, tmp_path, text, _jsonl(rows))
    assert (f.stored, f.quarantined) == ({"requests": 4}, 0)
    assert _rows(lake, "SELECT request_id, input_tokens, output_tokens FROM requests "
                       "ORDER BY 1") == [("a", 10, 2), ("b", None, None), ("c", None, None),
                                         ("d", 4, None)]


def test_a_key_with_a_dot_is_not_a_path_and_is_kept_in_attributes(lake, tmp_path):
    """Dots go into nested objects (docs): ``usage.prompt`` reads {"usage": {"prompt": 7}}, not
    a top-level key "usage.prompt", which is kept (unmapped) in attributes, not lost."""
    text = BASE + "  input_tokens: usage.prompt\n"
    rows = [{**_row("a"), "usage.prompt": 5, "usage": {"prompt": 7}},
            {**_row("b"), "usage.prompt": 5}]
    f = _ingest(lake, tmp_path, text, _jsonl(rows))
    assert f.stored == {"requests": 2}
    got = _rows(lake, "SELECT request_id, input_tokens, attributes FROM requests ORDER BY 1")
    assert [(r, n, json.loads(a)) for r, n, a in got] == [
        ("a", 7, {"usage.prompt": 5}), ("b", None, {"usage.prompt": 5})]


def test_keys_that_differ_only_in_case_are_different_fields(lake, tmp_path):
    """JSON keys are case-sensitive: ``u.p`` reads "p", not "P"; a mapped ``M`` reads "M", and
    the unmapped "m" keeps its own value in attributes."""
    text = ("table: requests\ncolumns:\n  request_id: id\n  ts: at\n  model: M\n"
            "  input_tokens: u.p\n")
    row = {"id": "a", "at": ISO, "m": "gpt-4o", "M": "gpt-4o-mini", "u": {"P": 5, "p": 7}}
    f = _ingest(lake, tmp_path, text, _jsonl([row]))
    assert f.stored == {"requests": 1}, (f.error, f.reasons)
    got = _rows(lake, "SELECT model, input_tokens, attributes FROM requests")
    assert [(m, n, json.loads(a)) for m, n, a in got] == [("gpt-4o-mini", 7, {"m": "gpt-4o"})]


def test_unmapped_keys_are_kept_with_their_own_values(lake, tmp_path):
    """keep_unmapped (the default) keeps every other top-level field with its value: the
    unmapped "ID" keeps "X", not the mapped "id"'s value."""
    f = _ingest(lake, tmp_path, BASE, _jsonl([_row("a", ID="X", team="search")]))
    assert f.stored == {"requests": 1}, (f.error, f.reasons)
    (attrs,), = _rows(lake, "SELECT attributes FROM requests")
    assert json.loads(attrs) == {"ID": "X", "team": "search"}


def test_unmapped_keys_join_a_mapped_attributes_object(lake, tmp_path):
    """With ``attributes`` mapped to an object and keep_unmapped true, the other top-level fields
    still go into attributes, merged with the mapped object (docs: "other top-level fields go
    into attributes"); "team" is not dropped."""
    text = BASE + "  attributes: meta\n"
    f = _ingest(lake, tmp_path, text, _jsonl([_row("a", meta={"tier": 2}, team="search")]))
    assert f.stored == {"requests": 1}
    (attrs,), = _rows(lake, "SELECT attributes FROM requests")
    assert json.loads(attrs) == {"tier": 2, "team": "search"}


def test_keep_unmapped_false_drops_the_other_fields(lake, tmp_path):
    """``keep_unmapped: false``: unmapped fields are not stored (attributes null)."""
    f = _ingest(lake, tmp_path, BASE + "keep_unmapped: false\n", _jsonl([_row(team="x")]))
    assert f.stored == {"requests": 1}
    assert _rows(lake, "SELECT attributes FROM requests") == [(None,)]


def test_user_keys_that_start_with_an_underscore_are_kept_and_break_nothing(lake, tmp_path):
    """A user's own "_meta", "_line" or "_raw" (MongoDB-style exports use "_id") is just another
    field: mapped ones read, unmapped ones kept in attributes; the file is not failed by a key
    that happens to be named like an internal column, and line numbers stay the file's."""
    text = ("table: requests\ncolumns:\n  request_id: _id\n  ts: at\n  model: m\n"
            "  input_tokens: tok\n")
    rows = [{"_id": "a", "at": ISO, "m": "gpt-4o", "_meta": "x", "_line": "zz", "_raw": 1},
            {"_id": "b", "at": ISO, "m": "gpt-4o", "tok": -1}]
    f = _ingest(lake, tmp_path, text, _jsonl(rows))
    assert (f.error, f.stored, f.quarantined) == (None, {"requests": 1}, 1)
    assert f.reasons == ["line 2: input_tokens is negative: -1"]
    (rid, attrs), = _rows(lake, "SELECT request_id, attributes FROM requests")
    assert (rid, json.loads(attrs)) == ("a", {"_meta": "x", "_line": "zz", "_raw": 1})


# -- text is stored as written -------------------------------------------------------------------

def test_text_that_looks_like_a_date_is_stored_as_written(lake, tmp_path):
    """A text field is text: "2026-03-01" mapped to prompt_version, an ISO time mapped to
    input_text, and an unmapped "released": "2026-03-01" are stored exactly as written, not as
    timestamps re-printed ("2026-03-01 00:00:00")."""
    text = BASE + "  prompt_version: pv\n  input_text: q\n  app_version: meta.v\n"
    row = _row("a", pv="2026-03-01", q="2026-03-02T12:00:00Z", meta={"v": "2026-01-31"},
               released="2026-03-01")
    f = _ingest(lake, tmp_path, text, _jsonl([row]))
    assert f.stored == {"requests": 1}
    (pv, q, av, attrs), = _rows(lake, "SELECT prompt_version, input_text, app_version, "
                                      "attributes FROM requests")
    assert (pv, q, av, json.loads(attrs)) == ("2026-03-01", "2026-03-02T12:00:00Z", "2026-01-31",
                                              {"released": "2026-03-01"})


HOSTILE_TEXT = "<script>alert('x')</script><b>&amp;</b>\x1b[31mred\x07\u202eevil\r\n\ttab \u00e9"


def test_html_and_control_characters_are_stored_verbatim(lake, tmp_path):
    """HTML, ANSI escapes, BEL, a right-to-left override, CR/LF and tabs in a log field are
    stored byte for byte (the UI escapes; the store must not), through a top-level path, a
    nested path and in a CSV cell holding JSON."""
    text = BASE + "  input_text: t\n  error_message: e.msg\n"
    f = _ingest(lake, tmp_path, text, _jsonl([_row("a", t=HOSTILE_TEXT,
                                                   e={"msg": HOSTILE_TEXT})]))
    assert f.stored == {"requests": 1}
    assert _rows(lake, "SELECT input_text, error_message FROM requests") == [
        (HOSTILE_TEXT, HOSTILE_TEXT)]


def test_html_in_a_csv_json_cell_is_stored_verbatim(lake, tmp_path):
    """In a CSV, a path through a cell holding JSON text reads the decoded string verbatim."""
    cell = json.dumps({"msg": "<img src=x onerror=alert(1)>\u0007"}).replace('"', '""')
    data = f'id,at,m,e\na,{ISO},gpt-4o,"{cell}"\n'
    f = _ingest(lake, tmp_path, BASE + "  error_message: e.msg\n", data, name="d.csv")
    assert f.stored == {"requests": 1}
    assert _rows(lake, "SELECT error_message FROM requests") == [
        ("<img src=x onerror=alert(1)>\u0007",)]


# -- bad lines never stop the good ones ----------------------------------------------------------

def test_a_malformed_first_line_is_quarantined_and_the_rest_stored(lake, tmp_path):
    """JSON lines whose first line is cut off (a crash mid-write) with no ``input:`` given (it is
    optional, "guessed from the content"): line 1 is quarantined with its line number, lines 2
    and 3 are stored; the file is not failed as one broken JSON document."""
    data = '{"id": "x", "at": "2026-03-02T1\n' + _jsonl([_row("a"), _row("b")])
    f = _ingest(lake, tmp_path, BASE, data)
    assert (f.error, f.stored, f.quarantined) == (None, {"requests": 2}, 1)
    assert f.reasons[0].startswith("line 1: ")


def test_a_long_first_line_is_still_json_lines(lake, tmp_path, totals):
    """A first line longer than the 64 KiB the input kind is guessed from (a big prompt) is still
    JSON lines: both lines are stored, the file is not failed."""
    big = "x" * 70_000
    f = _ingest(lake, tmp_path, BASE + "  input_text: q\n", _jsonl([_row("a", q=big),
                                                                     _row("b")]))
    assert (f.error, f.stored) == (None, {"requests": 2})
    assert totals("SELECT max(length(input_text)) FROM requests") == (70_000,)


def test_a_bad_line_is_quarantined_with_file_line_raw_and_reason(lake, tmp_path):
    """A line failing validation after mapping: the quarantine row names the source file, the
    line, the line as written and the reason; the good lines around it are stored."""
    text = BASE + "  output_tokens: usage.out\n"
    bad = json.dumps(_row("b", usage={"out": -3}))
    data = _jsonl([_row("a")]) + bad + "\n" + _jsonl([_row("c")])
    f = _ingest(lake, tmp_path, text, data, name="mine.jsonl")
    assert (f.stored, f.quarantined) == ({"requests": 2}, 1)
    assert _rows(lake, "SELECT source_file, line, raw, reason FROM quarantine") == [
        (str(tmp_path / "mine.jsonl"), 2, bad, "output_tokens is negative: -3")]


def test_csv_gzip_and_a_quoted_multiline_cell(lake, tmp_path, totals):
    """A gzip CSV through a mapping: a quoted cell spanning two lines stays one record; a bad
    record is quarantined with the line it starts on (4: header, a's two lines, then b); an empty
    cell is absent (null), not a bad number."""
    text = BASE + "  input_text: t\n  input_tokens: n\n  latency_ms: {path: s, unit: s}\n"
    data = (f'id,at,m,t,n,s\na,{ISO},gpt-4o,"two\nlines",1,\n'
            f"b,{ISO},gpt-4o,x,-1,0.5\nc,{ISO},gpt-4o,,,0.5\n")
    f = _ingest(lake, tmp_path, text, gzip.compress(data.encode()), name="d.csv.gz")
    assert (f.error, f.stored, f.quarantined) == (None, {"requests": 2}, 1)
    assert f.reasons == ["line 4: input_tokens is negative: -1"]
    assert _rows(lake, "SELECT request_id, input_text, input_tokens, latency_ms FROM requests "
                       "ORDER BY 1") == [("a", "two\nlines", 1, None), ("c", None, None, 500.0)]


def test_a_truncated_gzip_stores_nothing_and_says_so(lake, tmp_path):
    """A gzip cut short (a truncated upload) is an error naming it; nothing of it is stored."""
    whole = gzip.compress(_jsonl([_row(str(i)) for i in range(200)]).encode())
    f = _ingest(lake, tmp_path, BASE, whole[: len(whole) // 2], name="cut.jsonl.gz")
    assert f.error and "truncated" in f.error
    assert f.stored == {} and _rows(lake, "SELECT count(*) FROM requests") in ([(0,)], [])


# -- the same data twice -------------------------------------------------------------------------

def test_the_same_data_twice_is_stored_once(lake, tmp_path, totals):
    """The same file again, a copy under another name, and its gzip: nothing new is stored;
    a request id twice in one file is stored once (with other values, the repeat is quarantined)."""
    rows = [_row("a", took=1), _row("b", took=2), _row("a", took=9), _row("a", took=1)]
    text = BASE + "  latency_ms: took\n"
    f = _ingest(lake, tmp_path, text, _jsonl(rows), name="x.jsonl")
    assert (f.stored, f.duplicates, f.quarantined) == ({"requests": 2}, {"requests": 1}, 1)
    assert f.reasons == ['line 3: request_id already in this file with other values '
                         '(the first is stored): "a"']
    spec = tmp_path / "m.yaml"
    again = ingest_paths(lake, [str(tmp_path / "x.jsonl")], mapping=spec, overrides={}).files[0]
    shutil.copy(tmp_path / "x.jsonl", tmp_path / "copy.jsonl")
    (tmp_path / "x.jsonl.gz").write_bytes(gzip.compress((tmp_path / "x.jsonl").read_bytes()))
    later = ingest_paths(lake, [str(tmp_path / "copy.jsonl"), str(tmp_path / "x.jsonl.gz")],
                         mapping=spec, overrides={}).files
    for r in [again, *later]:
        assert r.stored == {} and r.error is None
    assert _rows(lake, "SELECT request_id, latency_ms FROM requests ORDER BY 1") == [
        ("a", 1.0), ("b", 2.0)]


def test_a_changed_mapping_rereads_the_file_but_skips_stored_ids(lake, tmp_path):
    """Docs: a file ingested again under a corrected mapping is read again, but rows whose ids are
    already stored are skipped as duplicates (the first values stay; remove the batch first);
    rows quarantined under the first mapping and fixed by the second are stored."""
    first = BASE + "  latency_ms: took\n  input_tokens: tok\n"
    rows = [_row("a", took=1.5, tok=10), _row("b", took=2, tok="5 tokens", n=5)]
    f = _ingest(lake, tmp_path, first, _jsonl(rows), name="x.jsonl")
    assert (f.stored, f.quarantined) == ({"requests": 1}, 1)
    second = BASE + "  latency_ms: {path: took, unit: s}\n  input_tokens: n\n"
    g = _ingest(lake, tmp_path, second, _jsonl(rows), name="x.jsonl", spec_name="m2.yaml")
    assert (g.stored, g.duplicates, g.quarantined) == ({"requests": 1}, {"requests": 1}, 0)
    assert _rows(lake, "SELECT request_id, latency_ms, input_tokens FROM requests "
                       "ORDER BY 1") == [("a", 1.5, 10), ("b", 2000.0, 5)]


def test_a_grown_file_adds_only_its_new_lines(lake, tmp_path):
    """A log that grew since it was ingested: only the new line is stored, and the bad line
    read before is not quarantined a second time."""
    text = BASE + "  input_tokens: tok\n"
    f = _ingest(lake, tmp_path, text, _jsonl([_row("a"), _row("b", tok=-1)]), name="g.jsonl")
    assert (f.stored, f.quarantined) == ({"requests": 1}, 1)
    with open(tmp_path / "g.jsonl", "a") as fh:
        fh.write(_jsonl([_row("c", tok=3)]))
    g = ingest_paths(lake, [str(tmp_path / "g.jsonl")], mapping=tmp_path / "m.yaml",
                     overrides={}).files[0]
    assert g.stored == {"requests": 1}
    assert _rows(lake, "SELECT request_id FROM requests ORDER BY 1") == [("a",), ("c",)]
    assert _rows(lake, "SELECT count(*) FROM quarantine") == [(1,)]


# -- tokens and cost -----------------------------------------------------------------------------

# the documented Anthropic mapping (docs/mapping.md), as tests/ingest/test_mapping.py has it
ANTHROPIC = test_mapping.ANTHROPIC


def _price(model, provider, inp, cached=0, write=0, out=0) -> float:
    return float(calc_price(Usage(input_tokens=inp, cache_read_tokens=cached,
                                  cache_write_tokens=write, output_tokens=out), model,
                            provider_id=provider, genai_request_timestamp=T0).total_price)


def test_the_documented_anthropic_example_is_priced_as_genai_prices_does(lake, tmp_path):
    """The docs' Anthropic example: 1000 + 800 + 200 = 2000 input tokens (800 read, 200 written),
    50 output, priced $0.00474 = calc_price of those counts; cached tokens are counted once."""
    row = {"id": "msg_01", "started": T0_EPOCH, "model": "claude-3-5-sonnet",
           "usage": {"input_tokens": 1000, "cache_read_input_tokens": 800,
                     "cache_creation_input_tokens": 200, "output_tokens": 50}}
    f = _ingest(lake, tmp_path, ANTHROPIC, _jsonl([row]))
    assert (f.stored, f.quarantined) == ({"requests": 1}, 0)
    (i, c, w, o, cost), = _rows(lake, "SELECT input_tokens, cached_input_tokens, "
                                      "cache_write_tokens, output_tokens, cost_usd FROM requests")
    assert (i, c, w, o) == (2000, 800, 200, 50)
    expected = _price("claude-3-5-sonnet", "anthropic", 2000, 800, 200, 50)
    assert expected == pytest.approx(0.00474)
    assert cost == pytest.approx(expected, rel=1e-9)


def test_anthropic_usage_mapped_without_the_sum_is_quarantined_not_underpriced(lake, tmp_path):
    """The trap the docs describe: raw usage.input_tokens (uncached only) mapped straight, with
    cache reads above it, is quarantined as cached exceeding input; the row whose counts are
    consistent is stored."""
    text = ANTHROPIC.replace(
        "{sum: [usage.input_tokens, usage.cache_read_input_tokens,\n"
        "                       usage.cache_creation_input_tokens]}", "usage.input_tokens")
    assert "sum" not in text
    rows = [{"id": "a", "started": T0_EPOCH, "model": "claude-3-5-sonnet",
             "usage": {"input_tokens": 5, "cache_read_input_tokens": 3000, "output_tokens": 1}},
            {"id": "b", "started": T0_EPOCH, "model": "claude-3-5-sonnet",
             "usage": {"input_tokens": 50, "output_tokens": 1}}]
    f = _ingest(lake, tmp_path, text, _jsonl(rows))
    assert (f.stored, f.quarantined) == ({"requests": 1}, 1)
    assert f.reasons[0].startswith("line 1: ") and "exceed input_tokens" in f.reasons[0]


def test_openai_usage_with_cached_and_reasoning_tokens_is_counted_once(lake, tmp_path):
    """OpenAI's prompt_tokens includes cached_tokens and completion_tokens includes
    reasoning_tokens: mapped as is, the row keeps 3000 / 1000 / 700 / 400 and is priced as
    calc_price(3000 input with 1000 cache reads, 700 output) for o3-mini; the source's own cost
    goes to logged_cost_usd."""
    text = """
table: requests
columns:
  request_id: id
  ts: {path: created, unit: s}
  provider: {value: openai}
  model: model
  input_tokens: usage.prompt_tokens
  cached_input_tokens: usage.prompt_tokens_details.cached_tokens
  output_tokens: usage.completion_tokens
  reasoning_tokens: usage.completion_tokens_details.reasoning_tokens
  logged_cost_usd: {path: billing.microdollars, scale: 0.000001}
"""
    row = {"id": "chatcmpl-1", "created": T0_EPOCH, "model": "o3-mini",
           "usage": {"prompt_tokens": 3000, "completion_tokens": 700,
                     "prompt_tokens_details": {"cached_tokens": 1000},
                     "completion_tokens_details": {"reasoning_tokens": 400}},
           "billing": {"microdollars": 5830}}
    f = _ingest(lake, tmp_path, text, _jsonl([row]))
    assert (f.stored, f.quarantined) == ({"requests": 1}, 0)
    (i, c, o, r, cost, logged), = _rows(
        lake, "SELECT input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, "
              "cost_usd, logged_cost_usd FROM requests")
    assert (i, c, o, r) == (3000, 1000, 700, 400)
    assert cost == pytest.approx(_price("o3-mini", "openai", 3000, 1000, 0, 700), rel=1e-9)
    assert logged == pytest.approx(5830 / 1e6, rel=1e-12)


def test_a_cost_mapped_to_cost_usd_is_not_taken_as_sightlines_own(lake, tmp_path):
    """Docs: "Do not map a cost to cost_usd: Sightline computes it from the tokens". If a user
    does, cost_usd is still the cost engine's (1000 in + 500 out of gpt-4o) and their figure is
    not lost: it is the logged cost (or the mapping is refused)."""
    text = BASE + ("  provider: {value: openai}\n  input_tokens: i\n  output_tokens: o\n"
                   "  cost_usd: c\n")
    try:
        loads(text, "M")
    except MappingError as exc:
        assert "cost_usd" in str(exc)
        return
    f = _ingest(lake, tmp_path, text, _jsonl([_row(i=1000, o=500, c=99)]))
    assert f.stored == {"requests": 1}
    (cost, logged), = _rows(lake, "SELECT cost_usd, logged_cost_usd FROM requests")
    assert cost == pytest.approx(_price("gpt-4o", "openai", 1000, 0, 0, 500), rel=1e-9)
    assert logged == 99.0


# -- other tables and documents ------------------------------------------------------------------

def test_an_evals_mapping_derives_the_eval_id(lake, tmp_path):
    """An evals mapping with run_id + case_id + metric derives eval_id as documented
    (sha256 of the parts joined by \\x1f, epoch empty, 32 hex digits); a percent scaled to 0..1;
    a line with no metric is quarantined naming it."""
    text = ("table: evals\ncolumns:\n  run_id: r\n  case_id: c\n  metric: k\n"
            "  ts: {path: t, unit: ms}\n  score: {path: pct, scale: 0.01}\n  passed: ok\n")
    rows = [{"r": "run1", "c": "case1", "k": "accuracy", "t": T0_EPOCH * 1000, "pct": 50,
             "ok": True},
            {"r": "run1", "c": "case2", "t": T0_EPOCH * 1000, "pct": 25}]
    f = _ingest(lake, tmp_path, text, _jsonl(rows))
    assert (f.stored, f.quarantined) == ({"evals": 1}, 1)
    assert "missing metric" in f.reasons[0] and f.reasons[0].startswith("line 2: ")
    expected_id = hashlib.sha256("\x1f".join(["run1", "case1", "accuracy", ""]).encode()
                                 ).hexdigest()[:32]
    assert _rows(lake, "SELECT eval_id, epoch_us(ts), score, passed FROM evals") == [
        (expected_id, T0_US, 0.5, True)]


def test_a_json_document_with_records_reports_positions(lake, tmp_path):
    """``records: data.items``: each record's "line" is its position from 1; a records path that
    is not a list fails the file with a message saying so and stores nothing."""
    text = BASE.replace("ts: at", "ts: {path: at, unit: s}") + "records: data.items\n"
    doc = {"data": {"items": [{"id": "a", "at": T0_EPOCH, "m": "gpt-4o"},
                              {"id": "b", "at": "soon", "m": "gpt-4o"},
                              {"id": "c", "at": T0_EPOCH, "m": "gpt-4o"}]}}
    f = _ingest(lake, tmp_path, text, json.dumps(doc), name="d.json")
    assert (f.stored, f.quarantined) == ({"requests": 2}, 1)
    assert f.reasons == ["line 2: ts is not a timestamp: soon"]
    g = _ingest(lake, tmp_path, text, json.dumps({"data": {"items": {"id": "z"}}}),
                name="e.json")
    assert g.error and "data.items" in g.error and "not a list" in g.error
    assert _rows(lake, "SELECT count(*) FROM requests") == [(2,)]


# -- the command line ----------------------------------------------------------------------------

def test_the_cli_dry_run_stores_nothing_then_ingest_stores_and_names_bad_lines(
        lake, tmp_path, capsys, monkeypatch):
    """``ingest FILE --mapping M --dry-run`` exits 0, says what would be stored and stores
    nothing; the real run afterwards stores the good line and prints the bad one's line and
    reason."""
    prices = tmp_path / "prices.yaml"
    prices.write_text("models: []\n")
    monkeypatch.setenv("SIGHTLINE_PRICES", str(prices))
    spec = tmp_path / "m.yaml"
    spec.write_text(BASE + "  output_tokens: o\n")
    data = tmp_path / "d.jsonl"
    data.write_text(_jsonl([_row("a", o=1), _row("b", o=-2)]))
    argv = ["ingest", "--store", str(lake.root), str(data), "--mapping", str(spec)]
    assert main(argv + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would store 1 request" in out and "dry run: nothing was stored" in out
    assert _rows(lake, "SELECT count(*) FROM requests") in ([(0,)], [])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "stored 1 request" in out and "line 2: output_tokens is negative: -2" in out
    assert _rows(lake, "SELECT request_id FROM requests") == [("a",)]


def test_a_format_beside_a_unit_keeps_the_unit_for_epochs(lake, tmp_path, totals):
    """``unit`` and ``format`` on one ``ts`` (a log mixing text times and epochs): text the
    format parses is that time, a number goes by the unit, and milliseconds under ``unit: s``
    are quarantined as docs/mapping.md says ("never read as milliseconds"), not re-read in a
    unit guessed from their size because the format was there."""
    text = ("table: requests\ncolumns:\n  request_id: id\n  model: m\n"
            "  ts: {path: t, unit: s, format: '%d/%m/%Y %H:%M'}\n")
    rows = [{"id": "text", "m": "gpt-4o", "t": "02/03/2026 12:00"},
            {"id": "epoch", "m": "gpt-4o", "t": T0_EPOCH},
            {"id": "ms", "m": "gpt-4o", "t": T0_EPOCH * 1000}]
    f = _ingest(lake, tmp_path, text, _jsonl(rows))
    assert (f.stored, f.quarantined) == ({"requests": 2}, 1), \
        _rows(lake, "SELECT request_id, ts FROM requests")
    assert f.reasons[0].startswith("line 3: ts "), f.reasons
    assert "out of range for unit s" in f.reasons[0]
    assert totals("SELECT min(epoch_us(ts)), max(epoch_us(ts)) FROM requests") == (
        T0_US, T0_US)


def test_a_mapping_may_share_rules_through_yaml_anchors_and_merge_keys(lake, tmp_path):
    # A merge key (<<: *anchor) was refused as "could not determine a constructor for the tag
    # 'tag:yaml.org,2002:merge'": the key-written-twice check built the merge key itself
    mapping = (BASE + "  input_tokens: &tokens {path: usage.in, scale: 1}\n"
               "  output_tokens: {<<: *tokens, path: usage.out}\n")
    report = _ingest(lake, tmp_path, mapping, _jsonl([_row(usage={"in": 12, "out": 5})]))
    assert report.quarantined == 0
    assert _rows(lake, "SELECT input_tokens, output_tokens FROM requests") == [(12, 5)]
    with pytest.raises(MappingError, match="line 4, column 3: 'a' is written twice"):
        loads("table: requests\ncolumns:\n  a: x\n  a: y\n", "m.yaml")


def test_a_scale_written_with_an_exponent_is_a_number(lake, tmp_path):
    # micro-dollars to dollars: scale 1e-6 was the text "1e-6" to YAML 1.1 ("scale must be a
    # finite number, not '1e-6'")
    report = _ingest(lake, tmp_path, BASE + "  logged_cost_usd: {path: micros, scale: 1e-6}\n",
                     _jsonl([_row(micros=2_500_000)]))
    assert report.quarantined == 0
    assert _rows(lake, "SELECT logged_cost_usd FROM requests") == [(2.5,)]


@pytest.mark.parametrize("values, says", [
    ("{429: rate_limit, 429: server}", "line 6, column 54: 429 is written twice"),
    ("{true: ok, 'true': error}", "values lists the logged value true twice")])
def test_a_logged_value_renamed_twice_is_refused(values, says):
    # YAML kept the last 429; compared as text, true and 'true' are one logged value: either
    # way the first rename was dropped unsaid
    with pytest.raises(MappingError, match=says):
        loads(BASE + f"  error_type: {{path: code, values: {values}}}\n", "m.yaml")
