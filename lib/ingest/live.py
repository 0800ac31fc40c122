"""Files still being written.

A cron job that ingests a folder every minute finds the file a writer is appending to: the
OpenTelemetry Collector's file exporter (like any buffered writer) flushes its buffer wherever it
fills, mid-line or mid-request. Such a file's unfinished last record is left for a later run
(:func:`unfinished_tail`), not quarantined; the pipeline reads the file up to it
(lib/ingest/pipeline.py ``_file_source``) and records the bytes left (``memo.HELD_BACK``), so the
file is not skipped as unchanged while a record waits.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import BinaryIO

import orjson

from lib.ingest.formats import otlp_proto
from lib.ingest.streams import HEAD_BYTES, MAX_LINE_BYTES, UTF8_BOM

# A local file of JSON lines changed less than this long ago, whose last line has no newline and
# is a JSON value cut short, is being written: the OpenTelemetry Collector's file exporter (and
# any buffered writer) flushes its buffer wherever it fills, mid-line, and a cron run reading
# the folder every minute often finds such a line (or, in an OTLP protobuf file, such a
# request). It is left for a later run, not quarantined; once the file has not changed for this
# long, a record still cut short is read, and quarantined.
LIVE_SECONDS = 300
UNFINISHED_NOTE = ("byte(s) of an unfinished last record, left for a later run: the file "
                   f"changed less than {LIVE_SECONDS // 60} minutes ago and seems to be still "
                   "being written (a later run reads the record once it is complete, or once "
                   f"the file has not changed for {LIVE_SECONDS // 60} minutes).")


def unfinished_tail(path: Path, st: os.stat_result, now: float | None = None) -> int:
    """How many bytes at the end of a local file are an unfinished record of a file still being
    written, to be left for a later run, in a file changed less than ``LIVE_SECONDS`` ago: in a
    file of JSON lines (its first line a JSON object, so neither compressed, CSV nor one
    pretty-printed document; a byte order mark and blank lines may come first), the bytes after
    the last newline when they are a JSON value cut short (all of the file when its one record
    is); in an OTLP protobuf file, a last request the file ends inside. 0 otherwise."""
    if not st.st_size or not is_being_written(st.st_mtime, now):
        return 0
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
            if otlp_proto.looks_like_otlp_proto(head):
                return _unfinished_request(f, st.st_size)
            if len(head) < otlp_proto.LENGTH_BYTES + 2 and head[:1] in _SMALL_LENGTHS:
                return len(head)  # a protobuf file's first length, being written
            f.seek(0)
            first = f.readline(MAX_LINE_BYTES + 1).removeprefix(UTF8_BOM)
            for _ in range(_BLANK_LINES):  # blank lines before the first record
                if first.strip() or not first.endswith(b"\n"):
                    break
                first = f.readline(MAX_LINE_BYTES + 1)
            if first.lstrip()[:1] != b"{" or len(first) > MAX_LINE_BYTES:
                return 0
            if not first.endswith(b"\n"):  # the one record, at the file's end: all of it waits
                return st.st_size if _cut_short(first) else 0
            if not _is_json(first):
                return 0  # not JSON lines
            tail = b""
            end = st.st_size
            while b"\n" not in tail and end > 0 and len(tail) <= MAX_LINE_BYTES:
                start = max(end - (1 << 20), 0)
                f.seek(start)
                tail = f.read(end - start) + tail
                end = start
    except OSError:
        return 0
    cut = tail.rfind(b"\n")
    if cut < 0:
        return 0
    tail = tail[cut + 1:]
    # a last record without its newline is complete, and broken JSON is broken: read now
    return len(tail) if _cut_short(tail) else 0


# How many blank lines may come before a file of JSON lines' first record
_BLANK_LINES = 1000

# The first byte of a protobuf file's first length (requests are under 64 MiB)
_SMALL_LENGTHS = (b"\x00", b"\x01", b"\x02", b"\x03")


def is_being_written(mtime: float, now: float | None = None) -> bool:
    """True when a local file last changed at ``mtime`` (seconds) changed less than
    ``LIVE_SECONDS`` ago (a time up to that far ahead is a clock a little ahead, as on a network
    file system; further ahead is no write of now)."""
    age = (time.time() if now is None else now) - mtime
    return -LIVE_SECONDS < age < LIVE_SECONDS


def _unfinished_request(f: BinaryIO, size: int) -> int:
    """The bytes of an OTLP protobuf file's last request when the file ends inside it (each
    request is after its length: the lengths are followed, not the requests read); 0 when the
    file ends after a whole request."""
    at = 0
    while at < size:
        f.seek(at)
        length = f.read(otlp_proto.LENGTH_BYTES)
        if len(length) < otlp_proto.LENGTH_BYTES:
            return size - at
        end = at + otlp_proto.LENGTH_BYTES + int.from_bytes(length, "big")
        if end > size:
            return size - at
        at = end
    return 0


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except ValueError:
        return False
    return True


def _cut_short(data: bytes) -> bool:
    """True when ``data`` is the start of a JSON value that the parser ran out of (a writer
    stopped mid-value, perhaps mid-character), not a whole value nor broken JSON (a bad byte, a
    syntax error)."""
    part = data[:len(data) - _unfinished_character(data)]
    try:
        orjson.loads(part)
    except orjson.JSONDecodeError as exc:
        # (the position counts characters, not bytes)
        return exc.pos >= len(part.decode("utf-8", "replace")) and bool(part.strip())
    return False


def _unfinished_character(data: bytes) -> int:
    """How many bytes at the end of ``data`` begin a UTF-8 character that is not all there."""
    for n in range(1, min(len(data), 3) + 1):
        byte = data[-n]
        if byte & 0xC0 == 0x80:  # a continuation byte: its lead is further back
            continue
        need = 2 if 0xC0 <= byte < 0xE0 else 3 if 0xE0 <= byte < 0xF0 else \
            4 if 0xF0 <= byte < 0xF8 else 0
        return n if n < need else 0
    return 0
