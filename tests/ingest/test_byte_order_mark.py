"""A UTF-8 byte order mark before the first record (PowerShell's and Notepad's UTF-8) is not part
of it: a file with one gives exactly the rows of the same file without."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lib.ingest import fastpath, live
from lib.ingest.pipeline import ingest_paths
from lib.ingest.streams import UTF8_BOM
from lib.store import Lake
from tests.ingest.conftest import canonical_request, jsonl_bytes, stored_rows

LINEAGE = ("batch_id", "ingested_at", "source_file")


def _old(path: Path) -> Path:
    t = time.time() - 2 * live.LIVE_SECONDS
    os.utime(path, (t, t))
    return path


def _ingest(tmp_path: Path, name: str, data: bytes, **kw):
    path = tmp_path / name
    path.write_bytes(data)
    _old(path)
    lake = Lake(tmp_path / f"store-{name}")
    report = ingest_paths(lake, [str(path)], compact_min_files=0, **kw).files[0]
    return report, lake


@pytest.mark.parametrize("sql", ["1", "0"])  # DuckDB's line reader, and Python's
def test_canonical_json_lines_after_a_byte_order_mark(tmp_path, monkeypatch, sql):
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", sql)
    data = jsonl_bytes([canonical_request(i) for i in range(3)]) + b"not json\n"
    plain, plain_lake = _ingest(tmp_path, "plain.jsonl", data)
    marked, marked_lake = _ingest(tmp_path, "marked.jsonl", UTF8_BOM + data)
    assert marked.error is None and marked.format == "jsonl"
    assert (marked.stored, marked.reasons) == (plain.stored, plain.reasons) == (
        {"requests": 3}, ["line 4: not valid JSON: Expecting value (column 1)"])
    assert stored_rows(marked_lake, "requests", LINEAGE) == \
        stored_rows(plain_lake, "requests", LINEAGE)


def test_the_fast_path_leaves_a_byte_order_mark_to_the_exact_path(tmp_path):
    data = UTF8_BOM + jsonl_bytes([canonical_request(i) for i in range(3)])
    report, _ = _ingest(tmp_path, "marked.jsonl", data)
    assert report.stored == {"requests": 3}
    assert fastpath.LAST["reason"].startswith("a byte order mark")


def test_a_mapping_guesses_json_lines_after_a_byte_order_mark(tmp_path):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("table: requests\ncolumns:\n  request_id: id\n  ts: t\n"
                       "  provider: {value: openai}\n  model: {value: gpt-4o}\n")
    data = b'{"id": "a", "t": "2026-03-01T00:00:00Z"}\n{"id": "b", "t": 5}\n'
    # (before, the mark made it read as CSV: one header line, no rows and no word of why)
    report, _ = _ingest(tmp_path, "mine.jsonl", UTF8_BOM + data, mapping=str(mapping))
    assert report.stored == {"requests": 1} and report.reasons[0].startswith("line 2: ")


def test_canonical_csv_after_a_byte_order_mark(tmp_path):
    data = (b"request_id,ts,provider,model,input_tokens,output_tokens\n"
            b"r1,2026-03-01T00:00:00Z,openai,gpt-4o,10,5\n")
    report, lake = _ingest(tmp_path, "r.csv", UTF8_BOM + data)
    assert report.stored == {"requests": 1}
    assert stored_rows(lake, "requests", LINEAGE)[0][0] == "r1"


@pytest.mark.parametrize("start", [UTF8_BOM, b"\n\n", b"  \n", UTF8_BOM + b"\n"])
def test_a_file_being_written_may_start_with_a_mark_or_blank_lines(tmp_path, start):
    """lib/ingest/live.py: the unfinished last line of such a file waits too."""
    rows = jsonl_bytes([canonical_request(i) for i in range(3)])
    path = tmp_path / "live.jsonl"
    path.write_bytes(start + rows + b'{"request_id": "r9", "ts"')
    assert live.unfinished_tail(path, path.stat()) == len(b'{"request_id": "r9", "ts"')
    report = ingest_paths(Lake(tmp_path / "store"), [str(path)]).files[0]
    assert (report.stored, report.quarantined) == ({"requests": 3}, 0)
    # its one record, unfinished: all of the file waits
    path.write_bytes(start + b'{"request_id": "r9", "ts"')
    assert live.unfinished_tail(path, path.stat()) == path.stat().st_size


FIXTURES = Path(__file__).parent / "fixtures"


def _promptfoo() -> bytes:
    import json

    return json.dumps({"evalId": "e1", "results": {"timestamp": "2026-03-01T00:00:00Z", "results": [
        {"id": "x", "promptIdx": 0, "testIdx": 0, "success": True, "score": 1,
         "provider": {"id": "openai:gpt-4o"}, "prompt": {"raw": "hi"}, "vars": {},
         "response": {"output": "ok"}, "latencyMs": 5}]}}).encode()


def _canonical_array() -> bytes:
    import json

    return json.dumps([canonical_request(i) for i in range(3)]).encode()


@pytest.mark.parametrize("name, read", [
    ("genai_handwritten.jsonl", lambda: (FIXTURES / "genai_handwritten.jsonl").read_bytes()),
    ("openinference_handwritten.jsonl",
     lambda: (FIXTURES / "openinference_handwritten.jsonl").read_bytes()),
    ("langfuse_observations.jsonl",
     lambda: (FIXTURES / "langfuse_observations.jsonl").read_bytes()),
    ("langfuse_traces.json", lambda: (FIXTURES / "langfuse_traces.json").read_bytes()),
    ("inspect.json", lambda: __import__("gzip").decompress(
        (FIXTURES / "inspect" / "arith.json.gz").read_bytes())),
    ("promptfoo.json", _promptfoo),
    ("array.json", _canonical_array),
])
def test_every_text_format_reads_the_same_after_a_byte_order_mark(tmp_path, name, read):
    data = read()
    plain, plain_lake = _ingest(tmp_path, "plain-" + name, data)
    marked, marked_lake = _ingest(tmp_path, "marked-" + name, UTF8_BOM + data)
    assert plain.error is None and sum(plain.stored.values()) > 0
    assert (marked.error, marked.format, marked.stored, marked.quarantined) == (
        None, plain.format, plain.stored, plain.quarantined)
    for table in plain.stored:
        assert stored_rows(marked_lake, table, LINEAGE) == stored_rows(plain_lake, table, LINEAGE)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
@pytest.mark.parametrize("name, read", [
    ("canonical.jsonl", lambda: jsonl_bytes([canonical_request(i) for i in range(3)])),
    ("canonical.csv", lambda: b"request_id,ts,provider,model,input_tokens,output_tokens\r\n"
     b"c1,2026-03-02T12:00:00Z,openai,gpt-4o,10,5\r\nc2,2026-03-02T12:00:01Z,openai,gpt-4o,7,1"
     b"\r\n"),
    ("genai_handwritten.jsonl", lambda: (FIXTURES / "genai_handwritten.jsonl").read_bytes()),
    ("array.json", _canonical_array),
])
def test_utf16_text_reads_as_its_utf8_does(tmp_path, name, read, encoding):
    # Windows PowerShell's ">" writes UTF-16 with a byte order mark: it was "binary data that is
    # not a known format"
    data = read()
    text = data.decode("utf-8")
    wide = (b"\xfe\xff" + text.encode("utf-16-be")) if encoding == "utf-16-be" \
        else text.encode("utf-16")  # (little-endian, its mark first)
    plain, plain_lake = _ingest(tmp_path, "plain-" + name, data)
    marked, marked_lake = _ingest(tmp_path, f"{encoding}-" + name, wide)
    assert plain.error is None and sum(plain.stored.values()) > 0
    assert (marked.error, marked.format, marked.stored, marked.quarantined) == (
        None, plain.format, plain.stored, plain.quarantined)
    for table in plain.stored:
        assert stored_rows(marked_lake, table, LINEAGE) == stored_rows(plain_lake, table, LINEAGE)
    # gzipped too; and the same text in either encoding is the same content
    import gzip

    again, _ = _ingest(tmp_path, f"{encoding}-{name}.gz", gzip.compress(wide))
    assert (again.error, again.stored) == (None, plain.stored)
    assert marked.content_hash == plain.content_hash
