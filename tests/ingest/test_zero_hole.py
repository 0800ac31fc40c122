"""A log truncated in place (logrotate's ``copytruncate``) whose writer keeps its offset (a log
not opened in append mode) starts again with a hole of zero bytes as long as the file was, then
the writer's next lines. The hole was "binary data that is not a known format" on every run (or,
a short one, a first line quarantined "not valid JSON"), so the lines after it were never stored
(found in review). The hole is skipped and counted in a note; the lines are read; the next run
reads only what is appended after them; the bytes of a binary layout that start with zeros (the
Collector's protobuf requests after their length) are not touched.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time

import pytest

from lib.ingest.pipeline import ingest_paths
from lib.ingest.streams import ZERO_HOLE, SourceStream
from lib.store import Lake
from tests.ingest.conftest import INGEST_PATHS, canonical_request, live_rows
from tests.ingest.fake_openai import record_spans


def _aged(path, seconds=600):
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


def _line(i: int) -> bytes:
    return json.dumps(canonical_request(i)).encode() + b"\n"


def _rotate_under_a_writer(logs, first: range, then: range) -> None:
    """Write ``first`` as a writer without O_APPEND does, copytruncate the log to app.log.1, and
    write ``then`` at the writer's offset: app.log is a hole, then ``then``'s lines."""
    fd = os.open(logs / "app.log", os.O_WRONLY | os.O_CREAT)  # (no O_APPEND)
    try:
        os.write(fd, b"".join(_line(i) for i in first))
        shutil.copyfile(logs / "app.log", logs / "app.log.1")
        os.truncate(logs / "app.log", 0)
        os.write(fd, b"".join(_line(i) for i in then))
    finally:
        os.close(fd)


@pytest.mark.parametrize("path", ["fast", "exact", "arrow"])
def test_the_lines_after_a_copytruncate_hole_are_stored_once(tmp_path, monkeypatch, path):
    for name in {n for env in INGEST_PATHS.values() for n in env}:
        monkeypatch.delenv(name, raising=False)
    for name, value in INGEST_PATHS[path].items():
        monkeypatch.setenv(name, value)
    logs = tmp_path / "logs"
    logs.mkdir()
    _rotate_under_a_writer(logs, range(0, 3000), range(3000, 3010))
    hole = (logs / "app.log.1").stat().st_size
    assert (logs / "app.log").read_bytes()[:hole] == b"\0" * hole
    lake = Lake(tmp_path / "store")
    report = ingest_paths(lake, [str(_aged(logs / "app.log")), str(_aged(logs / "app.log.1"))])
    by_name = {os.path.basename(f.source): f for f in report.files}
    log = by_name["app.log"]
    assert (log.error, log.quarantined, log.stored) == (None, 0, {"requests": 10})
    assert log.not_read == {ZERO_HOLE: hole}
    assert f"{hole:,} zero byte(s) at the file's start skipped: it was truncated in place" \
        in " ".join(log.notes)
    assert by_name["app.log.1"].stored == {"requests": 3000}
    ids = [r[0] for r in live_rows(lake, "requests", "request_id")]
    assert sorted(ids) == sorted(f"r{i}" for i in range(3010))  # each once, none lost
    assert live_rows(lake, "quarantine") == []

    # the writer goes on: the next run reads only what it appended after the lines read (the
    # Python reader, a switch for tests, reads a grown file whole)
    with open(logs / "app.log", "ab") as f:
        f.write(_line(3010))
    again = ingest_paths(lake, [str(_aged(logs / "app.log"))]).files[0]
    assert again.stored == {"requests": 1}
    if path != "arrow":
        assert again.continued_from == {"byte": hole + 10 * len(_line(3000)), "line": 11}
        assert again.not_read == {}


def test_a_csv_log_after_a_hole_is_read_too(tmp_path):
    header = b"request_id,ts,model,input_tokens,output_tokens,latency_ms\n"
    rows = b"".join(f"c{i},2026-11-20T10:0{i}:00Z,gpt-4o,100,{i},50\n".encode() for i in range(3))
    log = tmp_path / "requests.csv"
    log.write_bytes(b"\0" * 70_000 + header + rows)  # (a hole past the 64 KiB head)
    lake = Lake(tmp_path / "store")
    f = ingest_paths(lake, [str(_aged(log))]).files[0]
    assert (f.format, f.error, f.stored, f.quarantined) == ("csv", None, {"requests": 3}, 0)
    assert live_rows(lake, "requests", "request_id, output_tokens") == [
        ("c0", 0), ("c1", 1), ("c2", 2)]


def test_collector_spans_after_a_hole_are_read_with_their_true_totals(tmp_path):
    # spans from the real OpenTelemetry instrumentation, as the Collector's file exporter writes
    _, collector, _ = record_spans("otel-genai", tmp_path / "spans")
    whole = Lake(tmp_path / "whole")
    ingest_paths(whole, [str(_aged(collector))])
    holed = tmp_path / "holed.jsonl"
    holed.write_bytes(b"\0" * 5000 + collector.read_bytes())
    lake = Lake(tmp_path / "store")
    f = ingest_paths(lake, [str(_aged(holed))]).files[0]
    assert (f.format, f.error, f.quarantined, f.not_read.get(ZERO_HOLE)) == (
        "otlp-json", None, 0, 5000)
    totals = "count(*), sum(input_tokens), sum(output_tokens)"
    assert live_rows(lake, "requests", totals) == live_rows(whole, "requests", totals)
    assert live_rows(lake, "requests", totals)[0][0] > 0


def test_a_file_of_only_zero_bytes_says_so(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"\0" * 3000)
    f = ingest_paths(Lake(tmp_path / "store"), [str(_aged(log))]).files[0]
    assert f.error == ("no records: the file holds only zero bytes (truncated in place, a hole "
                       "left for lines to come)")
    # (changed a minute ago: a hole the writer has not written after yet is waited for)
    f = ingest_paths(Lake(tmp_path / "store2"), [str(_aged(log, 60))]).files[0]
    assert f.error is None and f.skipped


@pytest.mark.parametrize("content, given", [
    # a binary layout's length in 4 bytes (123 is "{"), then its request: not a hole
    (b"\0\0\0{\x0a\x05hello", b"\0\0\0{\x0a\x05hello"),
    (b"\0" * 15 + b"{}\n", b"\0" * 15 + b"{}\n"),  # fewer zeros than a hole has
    (b"\0" * 20 + b"\x01\x02", b"\0" * 20 + b"\x01\x02"),  # zeros before binary bytes
    (b"\0" * 16 + b"{}\n", b"{}\n"),
    (b"\0" * 3_000_000 + b"\x01\x02", b"\x01\x02"),  # a hole past a megabyte is one whatever
    (b"", b""),
])
def test_only_a_hole_before_text_is_skipped(content, given):
    stream = SourceStream(io.BytesIO(content))
    assert stream.peek(8) == given[:8]
    assert stream.read() == given
    assert stream.zero_bytes_skipped == len(content) - len(given)
    assert stream.bytes_out == len(content)  # the file's bytes: where a later read goes on
