"""Files still being written: a cron run that reads a folder every minute finds the file a
writer is appending to (the OpenTelemetry Collector's file exporter flushes its buffer wherever
it fills, mid-line). Its unfinished last line is left for a later run, not quarantined; the run
that finds the line complete stores it, and a line still cut short once the file has not changed
for ``LIVE_SECONDS`` is quarantined as before (lib/ingest/live.py).
"""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pytest

from lib.ingest import live, pipeline
from lib.ingest.live import LIVE_SECONDS, unfinished_tail
from lib.ingest.pipeline import ingest_paths
from lib.store import Lake
from tests.ingest.conftest import canonical_request, stored_rows
from tests.ingest.fake_openai import proto_path, record_spans, scenario_truth

LINEAGE = ("batch_id", "ingested_at", "source_file", "source_line")


def _age(path: Path, seconds: float) -> None:
    """Make ``path`` look last written ``seconds`` ago."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def _ingest(lake: Lake, path: Path):
    report = ingest_paths(lake, [str(path)])
    return report.files[0]


def _requests(lake: Lake) -> list:
    return stored_rows(lake, "requests", LINEAGE)


@pytest.fixture
def rows() -> list[bytes]:
    return [json.dumps(canonical_request(i)).encode() + b"\n" for i in range(5)]


def test_an_unfinished_last_line_waits_for_the_run_that_finds_it_complete(tmp_path, rows):
    path = tmp_path / "requests.jsonl"
    lake = Lake(tmp_path / "store")
    path.write_bytes(b"".join(rows[:3]) + rows[3][:20])  # the writer is mid-line
    first = _ingest(lake, path)
    assert first.stored == {"requests": 3} and first.quarantined == 0
    assert [n.split(" byte(s) of an unfinished last record")[0] for n in first.notes] == ["20"]
    # unchanged: hashed again (not skipped by its stat as already ingested), adding nothing
    again = _ingest(lake, path)
    assert again.skipped == ("already ingested: nothing appended since the last read (its "
                             "bytes are the ones read then: same SHA-256); 20 byte(s) of an "
                             "unfinished last record wait for a later run")
    # the writer finished the line and wrote one more: read from the unfinished line on
    path.write_bytes(b"".join(rows))
    done = _ingest(lake, path)
    assert (done.stored, done.duplicates, done.quarantined) == (
        {"requests": 2}, {"requests": 0}, 0)
    assert done.continued_from == {"byte": len(b"".join(rows[:3])), "line": 4}
    assert [n.split(":")[0] for n in done.notes] == [
        "read only what was appended since the last read"]
    whole = Lake(tmp_path / "whole")
    ingest_paths(whole, [str(path)])
    assert _requests(lake) == _requests(whole)
    assert _ingest(lake, path).skipped.startswith("already ingested")


def test_a_line_still_cut_short_after_the_writer_stopped_is_quarantined(tmp_path, rows):
    path = tmp_path / "requests.jsonl"
    lake = Lake(tmp_path / "store")
    path.write_bytes(b"".join(rows[:3]) + rows[3][:20])
    assert _ingest(lake, path).quarantined == 0
    _age(path, LIVE_SECONDS + 1)  # nobody wrote to it since: it is truncated
    later = _ingest(lake, path)
    assert later.quarantined == 1 and later.reasons[0].startswith("line 4: ")
    assert later.stored.get("requests", 0) == 0 and later.continued_from["line"] == 4


def test_a_new_file_with_no_complete_line_is_skipped_until_it_has_one(tmp_path, rows):
    path = tmp_path / "requests.jsonl"
    lake = Lake(tmp_path / "store")
    path.write_bytes(rows[0][:30])
    report = _ingest(lake, path)
    assert report.skipped.startswith("being written: no complete record yet")
    assert lake.commits() == []  # nothing recorded: the next run reads it
    path.write_bytes(rows[0])
    assert _ingest(lake, path).stored == {"requests": 1}


@pytest.mark.parametrize("name, data", [
    # a last record without its newline is complete: read now
    ("complete.jsonl", lambda rows: b"".join(rows)[:-1]),
    # one pretty-printed document: its last line ("}") alone is no JSON, but it is no JSON lines
    ("document.json", lambda rows: json.dumps([canonical_request(0)], indent=2).encode()),
    ("requests.csv", lambda rows: b"request_id,ts,model,input_tokens,output_tokens\n"
                                  b"r1,2026-03-02T12:00:00Z,gpt-4o,5,6\nr2,2026-03-02T1"),
    ("requests.jsonl.gz", lambda rows: gzip.compress(b"".join(rows))[:-3]),
])
def test_what_is_not_an_unfinished_json_line_is_read_now(tmp_path, rows, name, data):
    path = tmp_path / name
    path.write_bytes(data(rows))
    assert unfinished_tail(path, path.stat()) == 0
    report = _ingest(Lake(tmp_path / "store"), path)
    assert not any("unfinished" in n for n in report.notes)


def test_only_a_recent_file_is_taken_as_being_written(tmp_path, rows):
    path = tmp_path / "requests.jsonl"
    path.write_bytes(rows[0] + rows[1][:10])
    assert unfinished_tail(path, path.stat()) == 10
    assert unfinished_tail(path, path.stat(), now=path.stat().st_mtime + LIVE_SECONDS) == 0


def test_a_long_last_line_is_found_behind_many_blocks(tmp_path, rows):
    """The newline before an unfinished line several MiB long is found reading backwards."""
    path = tmp_path / "requests.jsonl"
    long_text = "x" * (3 * 2**20)
    path.write_bytes(rows[0] + json.dumps(canonical_request(1, input_text=long_text)).encode()
                     [:-5])
    assert unfinished_tail(path, path.stat()) == path.stat().st_size - len(rows[0])


def test_real_collector_spans_cut_mid_line_lose_and_repeat_nothing(tmp_path):
    """openai-v2 spans in the Collector's JSON, the file read at every cut a writer could leave:
    the store ends exactly as one read of the whole file leaves it, with nothing quarantined."""
    _, collector, _ = record_spans("otel-genai", tmp_path / "spans")
    data = collector.read_bytes()
    path = tmp_path / "live" / "traces.json"
    path.parent.mkdir()
    lake = Lake(tmp_path / "store")
    for cut in range(len(data) // 7, len(data), len(data) // 7):
        path.write_bytes(data[:cut])
        report = ingest_paths(lake, [str(path.parent)])
        assert report.files[0].error is None and report.files[0].quarantined == 0
    path.write_bytes(data)
    ingest_paths(lake, [str(path.parent)])
    whole = Lake(tmp_path / "whole")
    ingest_paths(whole, [str(collector)])
    assert _requests(lake) == _requests(whole)
    assert len(_requests(lake)) == scenario_truth()["requests"]
    assert not any(lake.snapshot().files["quarantine"])


def test_an_otlp_protobuf_file_cut_inside_a_request_waits_too(tmp_path):
    """The file exporter's ``format: proto``: a file that ends inside a request (or its length)
    keeps that request for a later run; none is quarantined, none lost."""
    _, collector, _ = record_spans("otel-genai", tmp_path / "spans")
    data = proto_path(collector).read_bytes()
    path = tmp_path / "live" / "traces.pb"
    path.parent.mkdir()
    lake = Lake(tmp_path / "store")
    first = int.from_bytes(data[:4], "big") + 4
    for cut in (first // 2, first + 2, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        report = ingest_paths(lake, [str(path.parent)]).files[0]
        assert report.error is None and report.quarantined == 0, cut
        assert (report.skipped or "").startswith("being written") == (cut < first)
    path.write_bytes(data)
    assert [n.split(":")[0] for n in ingest_paths(lake, [str(path.parent)]).files[0].notes] == [
        "read only what was appended since the last read"]
    assert len(_requests(lake)) == scenario_truth()["requests"]
    assert not any(lake.snapshot().files["quarantine"])
    _age(path, LIVE_SECONDS + 1)
    path.write_bytes(data[:-3])  # (writing makes it new again)
    _age(path, LIVE_SECONDS + 1)
    assert ingest_paths(lake, [str(path.parent)]).files[0].quarantined == 1


def test_the_fast_path_leaves_a_held_back_file_to_the_stream_reader(tmp_path, rows, monkeypatch):
    path = tmp_path / "requests.jsonl"
    path.write_bytes(b"".join(rows[:3]) + rows[3][:20])
    src = pipeline._file_source(path.resolve(), pipeline.memo.Readers.of(None))
    assert src.path is None and src.size == path.stat().st_size - 20
    with src.open() as f:
        assert f.read() == b"".join(rows[:3])


@pytest.mark.parametrize("data, cut_short", [
    (b'{"a": "x', True),
    (b'{"a": 1', True),
    ('{"a": "é"'.encode(), True),  # (orjson counts characters, not bytes)
    ('{"a": "é'.encode()[:-1], True),  # cut inside a character
    ('{"a": "€'.encode()[:-1], True),
    (b'{"a": 1}', False),  # whole
    (b'{"a": 1} {', False),  # broken: something after a value
    (b'{"a": "x\xff"', False),  # a byte that is no UTF-8 anywhere
    (b'{"a": "x\xff', False),
    (b'{"a": [1, 2, x', False),  # a syntax error, not a cut
    (b"   ", False),
])
def test_a_cut_is_told_from_broken_json(data, cut_short):
    assert live._cut_short(data) is cut_short


@pytest.mark.parametrize("name", ["requests.jsonl", "spans.json"])
def test_a_flush_during_the_read_is_not_read(tmp_path, rows, name):
    """The size looked at when the file was listed bounds the read, by the exact path and the
    fast path alike: a writer's flush mid-line during the ingest waits for the next run."""
    path = tmp_path / name
    if name == "spans.json":
        _, collector, _ = record_spans("otel-genai", tmp_path / "spans")
        lines = collector.read_bytes().splitlines(keepends=True)
        whole, extra = b"".join(lines[:-1]), lines[-1]
    else:
        whole, extra = b"".join(rows[:3]), rows[3]
    path.write_bytes(whole)
    lake = Lake(tmp_path / "store")
    src = pipeline._file_source(path.resolve(), pipeline.memo.Readers.of(None))
    with open(path, "ab") as f:  # the writer flushes half a line after the listing
        f.write(extra[:len(extra) // 2])
    report = pipeline._ingest_source(lake, src, None, None, {})
    assert report.error is None and report.quarantined == 0
    reference = Lake(tmp_path / "reference")
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / name).write_bytes(whole)
    ingest_paths(reference, [str(tmp_path / "ref" / name)])
    assert _requests(lake) == _requests(reference)


def test_a_protobuf_file_shorter_than_its_first_length_is_being_written(tmp_path):
    path = tmp_path / "traces.pb"
    path.write_bytes(b"\x00\x00\x0c")
    report = _ingest(Lake(tmp_path / "store"), path)
    assert report.skipped.startswith("being written") and report.error is None


def test_a_time_far_ahead_is_no_write_of_now(tmp_path, rows):
    path = tmp_path / "requests.jsonl"
    path.write_bytes(rows[0] + rows[1][:10])
    now = time.time()
    _age(path, -60)  # a clock a minute ahead: being written
    assert unfinished_tail(path, path.stat(), now) == 10
    _age(path, -2 * 86400)  # two days ahead: read now, the cut line quarantined
    assert unfinished_tail(path, path.stat(), now) == 0
    assert _ingest(Lake(tmp_path / "store"), path).quarantined == 1


def test_a_compressed_file_being_written_is_an_error_that_says_so(tmp_path, rows):
    """A truncated compressed file is an error (nothing of it stored); one changed lately may
    be a file the Collector still adds frames to: the message says a later run reads it."""
    from backports import zstd

    path = tmp_path / "traces.jsonl.zst"
    data = zstd.compress(b"".join(rows))
    path.write_bytes(data[:-5])
    lake = Lake(tmp_path / "store")
    report = _ingest(lake, path)
    assert report.error.startswith("truncated zstd stream") and report.error.endswith(
        "if it is still being written, a run after it is complete reads it")
    _age(path, LIVE_SECONDS + 1)
    assert "being written" not in _ingest(lake, path).error
    path.write_bytes(data)
    assert _ingest(lake, path).stored == {"requests": 5}


def test_the_batch_keeps_the_note_of_what_was_left(tmp_path, rows):
    from lib.metrics import inventory

    path = tmp_path / "requests.jsonl"
    path.write_bytes(b"".join(rows[:3]) + rows[3][:20])
    lake = Lake(tmp_path / "store")
    _ingest(lake, path)
    info = lake.commits()[-1].info
    assert info["not_read"] == {live.UNFINISHED_NOTE: 20}
    assert inventory._note(info).startswith("20 byte(s) of an unfinished last record")


def test_a_file_truncated_while_it_is_read_is_skipped_not_half_read(tmp_path, monkeypatch):
    """logrotate's copytruncate copies the log, then empties it in place: a run reading it then
    met the end before the size it listed, and quarantined the cut last line, a line the file
    never held (found in review, beside the rows the copy then stored). The read is a skip;
    the next run reads the copy and what the log holds then, and quarantines nothing."""
    import shutil

    from lib.ingest import streams

    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "0")  # (the fast path reads by name)
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    log.write_bytes(b"".join(json.dumps(canonical_request(i)).encode() + b"\n"
                             for i in range(6000)))  # past the first block read
    _age(log, 600)

    class Rotated(streams.FirstBytes):
        def readinto(self, buf):
            n = super().readinto(buf)
            if not (tmp_path / "logs" / "app.log.1").exists():
                shutil.copyfile(log, logs / "app.log.1")
                os.truncate(log, 0)
                log.write_bytes(json.dumps(canonical_request(9000)).encode() + b"\n")
            return n

    monkeypatch.setattr(pipeline, "FirstBytes", Rotated)
    lake = Lake(tmp_path / "store")
    f = _ingest(lake, log)
    assert f.skipped.startswith("it was cut short while this run read it (truncated in place")
    assert (f.stored, f.quarantined, f.error, lake.commits()) == ({}, 0, None, [])
    monkeypatch.undo()
    for path in (log, logs / "app.log.1"):
        _age(path, 600)
    again = ingest_paths(lake, [str(logs)])
    assert sorted(r.stored["requests"] for r in again.files) == [1, 6000]
    assert sum(r.quarantined for r in again.files) == 0
