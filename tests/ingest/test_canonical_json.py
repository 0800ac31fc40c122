"""Canonical rows written as ONE JSON array (``json.dump(rows, f, indent=2)``, ``jq -s``, a
database tool's "export as JSON"): format ``json`` (lib/ingest/formats/canonical_json.py).

Each item is read exactly as its JSONL line would be (the same parser, checks and reasons); its
"line" is its 1-based position in the array. A break in the array's structure stores what comes
before it and is one reject at the position of the first item that cannot be read.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from lib import schema
from lib.ingest import streams
from lib.ingest.formats import canonical_json
from lib.ingest.pipeline import detect_format, ingest_paths, ingest_stream
from lib.store import Engine, Lake
from tests.conftest import T0
from tests.ingest.chunks import collect
from tests.ingest.conftest import canonical_request, jsonl_bytes, stored_rows
from tests.ingest.test_eval_formats import _inspect_log, _promptfoo_doc

FIXTURES = Path(__file__).parent / "fixtures"
LINEAGE = ("batch_id", "ingested_at", "source_file")  # differ between the ingests compared
QUARANTINE = "SELECT list(line ORDER BY line), list(reason ORDER BY line) FROM quarantine"


# -- the data -------------------------------------------------------------------------------------
def _requests() -> list[dict]:
    """Requests with cached and reasoning tokens, a key that is no column (folded into
    attributes), a nested attributes object, loosely typed values."""
    return [
        canonical_request(1, cached_input_tokens=200, reasoning_tokens=50),
        canonical_request(2, team="search", attributes={"region": "eu", "tier": {"n": 1}}),
        canonical_request(3, input_tokens="1200", cost_usd=0.5, status=None),
        canonical_request(4, provider="anthropic", model="claude-3-5-sonnet", latency_ms=12.5,
                          ts=int((T0 + timedelta(hours=1)).timestamp())),
    ]


def _evals() -> list[dict]:
    return [{"run_id": "run1", "case_id": f"c{i}", "metric": "correctness", "score": i / 4,
             "passed": i > 1, "ts": "2026-03-02T12:00:00Z", "grader": "human"}
            for i in range(4)]


def _events() -> list[dict]:
    return [{"ts": "2026-03-02T12:00:00Z", "kind": "deploy", "title": "v2", "service": "api",
             "attributes": {"sha": "abc"}},
            {"ts": "2026-03-02T13:00:00Z", "kind": "incident", "title": "outage"}]


def _array(rows: list[dict], layout: str) -> bytes:
    """``rows`` as one JSON array: pretty-printed (indent=2), compact on one line, or
    pretty-printed with Windows line ends."""
    if layout == "compact":
        return json.dumps(rows).encode()
    doc = json.dumps(rows, indent=2).encode()
    return doc.replace(b"\n", b"\r\n") if layout == "crlf" else doc


def _items_array(items: list[bytes]) -> bytes:
    """Items given as their JSON text, pretty-printed into one array."""
    return b"[\n" + b",\n".join(items) + b"\n]\n"


def _item(row: dict) -> bytes:
    return json.dumps(row, indent=2).encode()


def _write(tmp_path: Path, name: str, data: bytes, gz: bool = False) -> Path:
    path = tmp_path / "in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _ingest(tmp_path: Path, store: str, path: Path, **kwargs):
    lake = Lake(tmp_path / store)
    return lake, ingest_paths(lake, [str(path)], compact_min_files=0, **kwargs).files[0]


def _tables(lake: Lake, name: str) -> list[tuple]:
    return stored_rows(lake, name, LINEAGE)


def _query(lake: Lake, sql: str) -> list[tuple]:
    """Rows of ``sql`` over a fresh engine on ``lake``."""
    engine = Engine(lake)
    try:
        return engine.query(sql).rows()
    finally:
        engine.close()


def _location(doc: bytes, offset: int) -> str:
    """"line L column C" of byte ``offset`` of ``doc``, as a text editor counts (from 1)."""
    line = doc.count(b"\n", 0, offset) + 1
    column = offset - doc.rfind(b"\n", 0, offset)
    return f"line {line} column {column}"


# -- the same rows as JSONL and as a JSON array --------------------------------------------------
@pytest.mark.parametrize("layout,gz", [("pretty", False), ("compact", False), ("crlf", False),
                                       ("pretty", True)])
def test_requests_as_an_array_are_stored_exactly_as_their_jsonl(tmp_path, layout, gz):
    rows = _requests()
    as_jsonl = _write(tmp_path, "rows.jsonl", jsonl_bytes(rows))
    as_array = _write(tmp_path, "rows.json" + (".gz" if gz else ""), _array(rows, layout), gz)
    jsonl_lake, j = _ingest(tmp_path, "jsonl", as_jsonl)
    array_lake, a = _ingest(tmp_path, "array", as_array)
    assert (j.format, j.stored, j.quarantined) == ("jsonl", {"requests": 4}, 0)
    assert (a.format, a.stored, a.quarantined, a.error) == ("json", {"requests": 4}, 0, None)
    stored = _tables(array_lake, "requests")
    assert stored == _tables(jsonl_lake, "requests")
    # What the rows say, not what the code does: tokens, and attributes with the extra key.
    assert _query(array_lake, "SELECT sum(input_tokens), sum(cached_input_tokens), "
                              "sum(reasoning_tokens), sum(output_tokens) FROM requests")[0] == (
        sum(int(r["input_tokens"]) for r in rows), 200, 50, sum(r["output_tokens"] for r in rows))
    attributes = dict(_query(array_lake, "SELECT request_id, attributes FROM requests"))
    assert json.loads(attributes["r2"]) == {**rows[1]["attributes"], "team": "search"}
    assert attributes["r1"] is None


@pytest.mark.parametrize("name,rows", [("evals", _evals()), ("events", _events())])
@pytest.mark.parametrize("layout", ["pretty", "compact"])
def test_evals_and_events_as_an_array_are_stored_exactly_as_their_jsonl(tmp_path, name, rows,
                                                                        layout):
    jsonl_lake, j = _ingest(tmp_path, "jsonl", _write(tmp_path, "rows.jsonl", jsonl_bytes(rows)))
    array_lake, a = _ingest(tmp_path, "array", _write(tmp_path, "rows.json", _array(rows, layout)))
    assert (a.format, a.stored, a.quarantined, a.error) == ("json", {name: len(rows)}, 0, None)
    assert j.stored == {name: len(rows)}
    assert _tables(array_lake, name) == _tables(jsonl_lake, name)


# -- bad items ------------------------------------------------------------------------------------
def _bad_items() -> list[bytes]:
    """Items 1, 11 and 12 are good; the others are bad, each as a JSONL line would be."""
    def edited(i: int, old: bytes, new: bytes) -> bytes:
        text = _item(canonical_request(i))
        assert old in text
        return text.replace(old, new)

    return [
        _item(canonical_request(1, cached_input_tokens=200, team="search")),
        b"5",  # 2: not an object
        b"[1, 2]",  # 3: not an object
        _item(canonical_request(4, input_tokens=-5)),
        _item(canonical_request(5, output_tokens=12.5)),
        edited(6, b'"latency_ms": 106.0', b'"latency_ms": NaN'),
        edited(7, b'"service": "api"', b'"service": "api", "service": "web"'),
        edited(8, b'"service": "api"', b'"service": "ap\xff\xfei"'),  # not UTF-8
        edited(9, b'"latency_ms": 109.0', b'"latency_ms": 1e400'),
        edited(10, b'"input_tokens": 1000', b'"input_tokens": 123456789012345678901234'),
        edited(11, b'"latency_ms": 111.0', b'"latency_ms": 12.50'),  # good, as written
        edited(12, b'"service": "api"', b'"service": "api", "cost_usd": 0.50'),  # good
        edited(13, b'"request_id": "r13"', b'"request_id": "r13", "x": tru'),  # not JSON
    ]


def test_bad_items_are_quarantined_by_position_with_the_jsonl_reasons(tmp_path, monkeypatch):
    items = _bad_items()
    array_lake, a = _ingest(tmp_path, "array", _write(tmp_path, "bad.json", _items_array(items)))
    assert (a.format, a.stored, a.quarantined, a.error) == ("json", {"requests": 3}, 10, None)
    lines, reasons = _query(array_lake, QUARANTINE)[0]
    assert lines == [2, 3, 4, 5, 6, 7, 8, 9, 10, 13]
    assert reasons[:4] == ["not a JSON object", "not a JSON object",
                           "input_tokens is negative: -5", "output_tokens is not an integer: 12.5"]
    assert reasons[5] == ('key "service" appears twice in the object: which value is meant is '
                          "ambiguous")
    assert reasons[6].startswith("not valid UTF-8 text")
    assert reasons[9].startswith("not valid JSON")
    assert _query(array_lake, "SELECT list(request_id ORDER BY request_id), "
                              "list(latency_ms ORDER BY request_id), "
                              "list(logged_cost_usd ORDER BY request_id) FROM requests")[0] == (
        ["r1", "r11", "r12"], [101.0, 12.5, 112.0], [None, None, 0.5])
    # The same items as JSON lines, through the parser the array's items go through: the same
    # lines, reasons and raw text, and the same stored rows.
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", "0")
    lines_file = b"".join(i.replace(b"\n", b" ") + b"\n" for i in items)
    jsonl_lake, j = _ingest(tmp_path, "jsonl", _write(tmp_path, "bad.jsonl", lines_file))
    assert (j.stored, j.quarantined) == (a.stored, a.quarantined)
    same = "SELECT line, reason, raw FROM quarantine ORDER BY line"
    assert _query(array_lake, same) == _query(jsonl_lake, same)
    assert _tables(array_lake, "requests") == _tables(jsonl_lake, "requests")


# -- a broken array -------------------------------------------------------------------------------
def _four() -> list[bytes]:
    return [_item(canonical_request(i)) for i in range(1, 5)]


def test_missing_comma_keeps_the_items_before_and_is_one_reject(tmp_path):
    items = _four()
    doc = b"[\n" + items[0] + b",\n" + items[1] + b"\n" + items[2] + b",\n" + items[3] + b"\n]"
    lake, f = _ingest(tmp_path, "store", _write(tmp_path, "nocomma.json", doc))
    third = doc.index(items[2])
    assert (f.format, f.stored, f.quarantined, f.error) == ("json", {"requests": 2}, 1, None)
    assert _query(lake, "SELECT list(request_id ORDER BY ts) FROM requests")[0][0] == ["r1", "r2"]
    assert _query(lake, QUARANTINE)[0] == ([3], [
        f"not valid JSON: expected ',' or ']' after item 2 ({_location(doc, third)} of the "
        "file); the rest of the file is not read"])
    assert f.reasons == [f"line 3: {_query(lake, QUARANTINE)[0][1][0]}"]


@pytest.mark.parametrize("cut,what", [
    (b'"model": "gp', "the file ends inside a string of item 3"),
    (b'"latency_ms": 103.0,', "the file ends inside item 3"),
])
def test_truncated_array_keeps_the_items_before_and_is_one_reject(tmp_path, cut, what):
    items = _four()
    whole = _items_array(items)
    at = whole.index(items[2]) + items[2].index(cut) + len(cut)
    doc = whole[:at]
    lake, f = _ingest(tmp_path, "store", _write(tmp_path, "cut.json", doc))
    assert (f.stored, f.quarantined, f.error) == ({"requests": 2}, 1, None)
    assert _query(lake, QUARANTINE)[0] == (
        [3], [f"not valid JSON: {what} ({_location(doc, len(doc))} of the file)"])
    raw = _query(lake, "SELECT raw FROM quarantine")[0][0]
    assert raw == doc[whole.index(items[2]):].decode().replace("\n", " ")


def test_missing_closing_bracket_and_text_after_it_keep_every_item(tmp_path):
    items = _four()
    unclosed = b"[\n" + b",\n".join(items) + b"\n"
    trailing = _items_array(items) + b"garbage\n"
    lake_u, u = _ingest(tmp_path, "unclosed", _write(tmp_path, "unclosed.json", unclosed))
    lake_t, t = _ingest(tmp_path, "trailing", _write(tmp_path, "trailing.json", trailing))
    assert (u.stored, u.quarantined, t.stored, t.quarantined) == (
        {"requests": 4}, 1, {"requests": 4}, 1)
    assert _query(lake_u, QUARANTINE)[0] == ([5], [
        "not valid JSON: the file ends after item 4, before the array's closing ']' "
        f"({_location(unclosed, len(unclosed))} of the file)"])
    assert _query(lake_t, QUARANTINE)[0] == ([5], [
        "not valid JSON: text after the array's closing ']' "
        f"({_location(trailing, trailing.index(b'garbage'))} of the file); the rest of the file "
        "is not read"])


def test_text_between_items_and_a_trailing_comma_are_breaks(tmp_path):
    items = _four()
    between = b"[\n" + items[0] + b" oops,\n" + b",\n".join(items[1:]) + b"\n]"
    trailing_comma = b"[\n" + b",\n".join(items[:2]) + b",\n]"
    lake_b, b = _ingest(tmp_path, "between", _write(tmp_path, "between.json", between))
    lake_c, c = _ingest(tmp_path, "comma", _write(tmp_path, "comma.json", trailing_comma))
    assert (b.stored, c.stored) == ({"requests": 1}, {"requests": 2})
    assert _query(lake_b, QUARANTINE)[0] == ([2], [
        "not valid JSON: expected ',' or ']' after item 1 "
        f"({_location(between, between.index(b'oops'))} of the file); the rest of the file is "
        "not read"])
    assert _query(lake_c, QUARANTINE)[0] == ([3], [
        "not valid JSON: expected an item before ']' "
        f"({_location(trailing_comma, len(trailing_comma) - 1)} of the file); the rest of the "
        "file is not read"])


def test_a_raw_line_break_inside_a_string_rejects_only_its_item(tmp_path):
    # Not valid JSON (a JSONL reader would cut the line there); turning it into a space, as
    # between tokens, would make it valid, so the item is rejected before.
    items = _four()
    items[1] = items[1].replace(b'"service": "api"', b'"service": "a\nb"')
    lake, f = _ingest(tmp_path, "store", _write(tmp_path, "nl.json", _items_array(items)))
    assert (f.stored, f.quarantined, f.error) == ({"requests": 3}, 1, None)
    assert _query(lake, QUARANTINE)[0] == ([2], ["not valid JSON: a line break inside a string"])


def test_a_document_that_is_no_array_is_a_clear_error_when_the_format_is_forced(tmp_path):
    path = _write(tmp_path, "object.json", json.dumps({"rows": _requests()}).encode())
    _, f = _ingest(tmp_path, "store", path, fmt="json")
    assert f.stored == {} and f.error.startswith("not a JSON array: the document starts with")


# -- an item past the size limit -----------------------------------------------------------------
LIMIT = 64 * 1024


def test_items_longer_than_the_limit_are_rejected_by_position_and_the_rest_go_on(
        tmp_path, monkeypatch):
    monkeypatch.setattr(streams, "MAX_LINE_BYTES", LIMIT)
    # Item 2 spans the end of the first read (the 64 KiB head), so it is skipped unread; item 4
    # lies within one read.
    items = [_item(canonical_request(i, attributes={"padding": "x" * (3 * LIMIT)}) if i % 2 == 0
                   else canonical_request(i)) for i in range(1, 6)]
    lake, f = _ingest(tmp_path, "store", _write(tmp_path, "long.json", _items_array(items)))
    assert (f.stored, f.quarantined, f.error) == ({"requests": 3}, 2, None)
    assert _query(lake, "SELECT list(request_id ORDER BY ts) FROM requests")[0][0] == [
        "r1", "r3", "r5"]
    assert _query(lake, QUARANTINE)[0] == ([2, 4], [
        f"item of {len(items[i]):,} bytes is longer than the limit of {LIMIT:,} bytes"
        for i in (1, 3)])
    raws = _query(lake, "SELECT list(raw ORDER BY line) FROM quarantine")[0][0]
    assert raws == [items[i][: schema.RAW_MAX_CHARS].decode().replace("\n", " ") for i in (1, 3)]


class _Generated(io.RawIOBase):
    """A document made on the fly from ``parts`` (bytes, or (byte, count): a long run of one
    byte), so the test itself never holds it."""

    def __init__(self, parts: list):
        self._pieces, self._pending = self._made(parts), b""

    @staticmethod
    def _made(parts: list) -> Iterator[bytes]:
        for part in parts:
            if isinstance(part, bytes):
                yield part
                continue
            byte, count = part
            while count:
                n = min(count, 1 << 20)
                yield byte * n
                count -= n

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self._pending:
            self._pending = next(self._pieces, None)
            if self._pending is None:
                self._pending = b""
                return 0
        n = min(len(buf), len(self._pending))
        buf[:n], self._pending = self._pending[:n], self._pending[n:]
        return n


def test_an_item_past_the_limit_is_never_held(monkeypatch):
    limit, padding = 1 << 20, 32 << 20  # a 32 MiB item, a 1 MiB limit
    monkeypatch.setattr(streams, "MAX_LINE_BYTES", limit)
    monkeypatch.setattr(canonical_json, "CHUNK_BYTES", 256 * 1024)
    first = json.dumps(canonical_request(1)).encode()
    last = json.dumps(canonical_request(3)).encode()
    head = b'{"request_id": "r2", "padding": "'
    doc = _Generated([b"[", first, b", ", head, (b"x", padding), b'"}, ', last, b"]"])
    tracemalloc.start()
    try:
        tables, rejects, _ = collect(list(canonical_json.FORMAT.parse(
            io.BufferedReader(doc, 1 << 16), "big.json")))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert tables["requests"].column("request_id").to_pylist() == ["r1", "r3"]
    assert [(r.line, r.reason) for r in rejects] == [
        (2, f"item of {len(head) + padding + 2:,} bytes is longer than the limit of "
            f"{limit:,} bytes")]
    assert peak < 8 << 20, f"peak {peak:,} bytes"


# -- the same array again -------------------------------------------------------------------------
def test_the_same_array_twice_or_renamed_stores_nothing_the_second_time(tmp_path):
    doc = _array(_requests(), "pretty")
    first = _write(tmp_path, "a.json", doc)
    renamed = _write(tmp_path, "copy/b.json.gz", doc, gz=True)
    lake = Lake(tmp_path / "store")
    once = ingest_paths(lake, [str(first)], compact_min_files=0).files[0]
    again = ingest_paths(lake, [str(first), str(renamed)], compact_min_files=0).files
    assert once.stored == {"requests": 4}
    assert again[0].skipped and again[1].duplicate_file and again[1].stored == {}
    streamed = ingest_stream(lake, doc, "upload.json").files[0]
    assert streamed.duplicate_file
    assert _query(lake, "SELECT count(*) FROM requests")[0] == (4,)


# -- detection ------------------------------------------------------------------------------------
@pytest.mark.parametrize("rows,table", [(_requests(), "requests"), (_evals(), "evals"),
                                        (_events(), "events")])
@pytest.mark.parametrize("prefix", [b"", b"\xef\xbb\xbf", b" \r\n\t "])
def test_arrays_of_canonical_rows_are_detected(rows, table, prefix):
    for layout in ("pretty", "compact"):
        fmt = detect_format(prefix + _array(rows, layout), "export.txt")
        assert fmt is not None and fmt.name == "json", (layout, fmt)


def test_an_array_cut_off_by_the_head_is_judged_by_its_top_level_keys():
    long = canonical_request(1, attributes={"padding": "x" * 100_000})
    head = json.dumps([long]).encode()[: streams.HEAD_BYTES]
    assert detect_format(head, "rows.json").name == "json"
    # Canonical names nested in an object of the first item are not its keys.
    nested = [{"id": 1, "meta": {"request_id": "r1", "model": "gpt-4o", "input_tokens": 3},
               "padding": "x" * 100_000}]
    head = json.dumps(nested).encode()[: streams.HEAD_BYTES]
    assert not canonical_json.FORMAT.detect(head, "rows.json")
    assert canonical_json.first_item_keys(head[1:]) == {"id", "meta", "padding"}


def test_other_documents_are_not_claimed(tmp_path):
    rows = _requests()
    otlp = [{"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": []}]}]
    unrelated = [{"name": "a", "value": 1}, {"name": "b", "value": 2}]
    assert detect_format(jsonl_bytes(rows), "rows.jsonl").name == "jsonl"
    assert not canonical_json.FORMAT.detect(json.dumps(otlp).encode(), "traces.json")
    assert detect_format(json.dumps(otlp).encode(), "traces.json").name == "otlp-json"
    for doc in (json.dumps(unrelated).encode(), b"[]", b"[\n]\n", b"[1, 2]",
                json.dumps(rows[0]).encode()):
        assert not canonical_json.FORMAT.detect(doc, "x.json"), doc
        assert detect_format(doc, "x.json") is None or doc.startswith(b"{"), doc
    langfuse = (FIXTURES / "langfuse_traces.json").read_bytes()
    for doc, name in ((langfuse, "langfuse"), (json.dumps(_promptfoo_doc()).encode(), "promptfoo"),
                      (json.dumps(_inspect_log()).encode(), "inspect")):
        assert not canonical_json.FORMAT.detect(doc[: streams.HEAD_BYTES], "x.json"), name
        assert detect_format(doc[: streams.HEAD_BYTES], "x.json").name == name
    _, f = _ingest(tmp_path, "store", _write(tmp_path, "empty.json", b"[]\n"))
    assert f.error.startswith("not a recognized format")


# -- the upload path ------------------------------------------------------------------------------
@pytest.mark.parametrize("as_stream", [False, True])
def test_an_uploaded_array_is_stored_like_the_file(tmp_path, as_stream):
    doc = _array(_requests(), "pretty")
    file_lake, f = _ingest(tmp_path, "file", _write(tmp_path, "rows.json", doc))
    upload_lake = Lake(tmp_path / "upload")
    data = gzip.compress(doc)
    report = ingest_stream(upload_lake, io.BytesIO(data) if as_stream else data, "rows.json.gz",
                           compact_min_files=0)
    u = report.files[0]
    assert (u.format, u.stored, u.quarantined, u.error) == ("json", {"requests": 4}, 0, None)
    assert _tables(upload_lake, "requests") == _tables(file_lake, "requests")


# -- the scanner ----------------------------------------------------------------------------------
def test_item_boundaries_do_not_depend_on_where_the_chunks_end():
    """Strings holding brackets, commas, escaped quotes and runs of backslashes; nested lists
    and objects; text that is not ASCII: every chunk size gives the same lines."""
    items = [{"request_id": 'a,"}]\\', "x": [1, {"y": "\\\\\"{["}, []], "z": "é日本"},
             {"request_id": "\\\\", "k": {"l": [[{}]]}}, 7, "s,]}", [1, [2]], None]
    doc = json.dumps(items, indent=2, ensure_ascii=False).encode()
    expected = None
    for size in (1, 2, 3, 5, 16, len(doc)):
        rejects: list = []
        lines = b"".join(canonical_json.json_lines(io.BytesIO(doc), rejects, size)).split(b"\n")
        assert rejects == [] and lines[-1] == b""
        assert [json.loads(line) for line in lines[:-1]] == items
        expected = expected or lines
        assert lines == expected, size


def test_two_values_with_no_comma_between_are_a_break_wherever_they_are():
    after_item_2 = "expected ',' or ']' after item 2"
    for doc, kept, bad, position, what in (
            (b'[{"a": 1}, 5 6, {"b": 2}]', [b'{"a": 1}', b"5"], b"6", 3, after_item_2),
            (b'[{"a": 1}, {"b": [2]} {"c": 3}]', [b'{"a": 1}', b'{"b": [2]}'], b'{"c"', 3,
             after_item_2),
            (b'[{"a": 1}, "x" {"c": 3}]', [b'{"a": 1}'], b'"x"', 2,
             "unexpected text at the start of item 2")):
        rejects: list = []
        lines = b"".join(canonical_json.json_lines(io.BytesIO(doc), rejects)).split(b"\n")
        assert lines[:len(kept)] == kept and not any(lines[len(kept):]), doc
        assert [(r.line, r.reason) for r in rejects] == [(
            position, f"not valid JSON: {what} ({_location(doc, doc.index(bad))} of the file); "
                      "the rest of the file is not read")], doc


def test_an_item_nested_past_what_arrow_survives_is_rejected_alone(tmp_path):
    # Arrow's JSON reader crashes the process some 20,000 levels down: run in a child process,
    # so a regression fails this test instead of killing the test run.
    rows = [_item(dict(canonical_request(i), ts=(T0 + timedelta(minutes=i)).isoformat()))
            for i in range(300)]
    deep = json.dumps(dict(canonical_request(999), ts=T0.isoformat()))[:-1].encode()
    rows.append(deep + b', "x": ' + b"[" * 30000 + b"]" * 30000 + b"}")
    path = _write(tmp_path, "hostile.json", _items_array(rows))
    code = ("import sys, json; from lib.store import Lake; "
            "from lib.ingest.pipeline import ingest_paths; "
            "f = ingest_paths(Lake(sys.argv[1]), [sys.argv[2]], compact_min_files=0).files[0]; "
            "print(json.dumps([f.stored, f.reasons, f.error]))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s"), str(path)],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    stored, reasons, error = json.loads(done.stdout)
    assert (stored, error) == ({"requests": 300}, None)
    assert reasons == ["line 301: nested 30,001 levels deep: this reader takes 512 at most"]


@pytest.mark.parametrize(("depth", "stored"), [(511, True), (513, False)])
def test_the_json_lines_reader_takes_512_levels_and_says_so_past_them(tmp_path, monkeypatch,
                                                                      depth, stored):
    # The chunked JSON lines path (JSON arrays, mappings, SIGHTLINE_INGEST_SQL=0) parses with
    # Arrow or Python's json, which fail past some depth; the line alone is rejected.
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", "0")
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "0")
    row = json.dumps(dict(canonical_request(1), ts=T0.isoformat()))[:-1]
    line = row + ', "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"  # the object is one
    path = _write(tmp_path, "d.jsonl", jsonl_bytes([dict(canonical_request(2),
                                                         ts=T0.isoformat())])
                  + line.encode() + b"\n")
    _, f = _ingest(tmp_path, "s", path)
    assert f.stored == {"requests": 2 if stored else 1}
    assert f.reasons == ([] if stored else
                         [f"line 2: nested {depth:,} levels deep: this reader takes 512 at most"])


def test_max_depth_counts_brackets_outside_strings_only():
    from lib.ingest.json_structure import max_depth

    assert max_depth(b'{"a": "[[[{{{", "b": [[1], {"c": [2]}], "d": "\\\\"}') == 4
    assert max_depth(b'"just [ a string"') == 0
    assert max_depth(b"[[[[[") == 5  # unbalanced: its opening brackets


@pytest.mark.parametrize("after", [b"\n", b" " * 40 + b"\n", b"\r\n  "])
def test_an_item_of_exactly_the_limit_is_kept_whatever_whitespace_follows_it(monkeypatch,
                                                                             after):
    # Whitespace after an item's last token is not part of it, even when it falls in the next
    # chunk (json.dump with indent writes "}\n]" after the last item).
    monkeypatch.setattr(streams, "MAX_LINE_BYTES", 20)
    item = b'{"a":"' + b"x" * 12 + b'"}'
    assert len(item) == 20
    for doc in (b"[" + item + after + b"]", b"[" + item + after + b',{"b":1}]'):
        for size in (1, 5, 8, 21, 22, 25, 30, 64):
            rejects: list = []
            lines = b"".join(canonical_json.json_lines(io.BytesIO(doc), rejects, size))
            assert rejects == [], (doc, size)
            assert lines.split(b"\n")[0] == item, (doc, size)


def test_a_short_array_of_one_item_a_line_is_an_array_not_json_lines(tmp_path):
    """One item a line, as DuckDB's ``COPY ... (FORMAT json, ARRAY true)`` writes: its last item,
    alone on its line without a comma, is a JSON line, and the lines before it (``[``, then items
    ending in ``,``) passed for a banner, so an array of up to 9 rows was read as JSON lines: the
    last row stored, the others and both brackets quarantined as not valid JSON (found in
    review)."""
    rows = _requests()
    doc = b"[\n" + b",\n".join(b"\t" + json.dumps(r).encode() for r in rows) + b"\n]\n"
    assert detect_format(doc, "export.json").name == "json"
    _, f = _ingest(tmp_path, "store", _write(tmp_path, "export.json", doc))
    assert (f.format, f.stored, f.quarantined) == ("json", {"requests": len(rows)}, 0)
