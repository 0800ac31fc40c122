"""zstd, as the OpenTelemetry Collector's file exporter writes it with ``compression: zstd``.

Two layouts (exporter/fileexporter/file_writer.go and compression_writer.go): under its
native-compression feature gate, one zstd stream of JSON lines (one frame per write when it
rotates files), which ``zstd -d`` reads; before that gate, each export request is its own zstd
frame preceded by its length as a big-endian uint32. Both are built here from spans recorded with
the real openai-v2 instrumentation, framed as the Go code frames them, and must store exactly
what the plain file stores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from backports import zstd

from lib.ingest.pipeline import ingest_paths
from lib.store import Lake
from lib.store.engine import Engine
from tests.ingest.conftest import canonical_request
from tests.ingest.fake_openai import record_spans, scenario_truth

TOTALS = ("SELECT count(*), count(*) FILTER (status = 'error'), sum(input_tokens), "
          "sum(cached_input_tokens), sum(output_tokens), sum(cost_usd) FROM requests")


@pytest.fixture(scope="module")
def spans_file(tmp_path_factory):
    _, collector_file, _ = record_spans("otel-genai", tmp_path_factory.mktemp("zstd-spans"))
    return collector_file


def skippable(data: bytes) -> bytes:
    """``data`` behind a skippable frame (magic 0x184D2A50, 4 bytes of length, payload)."""
    return b"\x50\x2a\x4d\x18" + (3).to_bytes(4, "little") + b"xyz" + data


def native(lines: list[bytes], frames: int = 1) -> bytes:
    """One zstd stream of the lines, in ``frames`` frames (a frame per write when rotating)."""
    size = -(-len(lines) // frames)
    return b"".join(zstd.compress(b"".join(line + b"\n" for line in lines[i:i + size]))
                    for i in range(0, len(lines), size))


def framed(lines: list[bytes]) -> bytes:
    """Each line its own zstd frame after its length (big-endian uint32), as the exporter's
    exportMessageAsBuffer writes a compressed request."""
    return b"".join(len(c).to_bytes(4, "big") + c for c in (zstd.compress(x) for x in lines))


def _stored(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    lake = Lake(tmp_path / f"store-{name}")
    report = ingest_paths(lake, [str(path)])
    engine = Engine(lake)
    return report.files[0], engine.query(TOTALS).row(0)


@pytest.mark.parametrize("layout, name", [
    (lambda lines: native(lines), "traces.json.zst"),
    (lambda lines: native(lines, frames=3), "traces-2026-11-26T05-02-14.173.json"),
    (framed, "traces.json"),  # the exporter keeps the name it is given
])
def test_collector_zstd_files_store_what_the_plain_file_stores(spans_file, tmp_path, layout,
                                                               name):
    lines = spans_file.read_bytes().splitlines()
    plain, expected = _stored(tmp_path, "plain.jsonl", spans_file.read_bytes())
    report, got = _stored(tmp_path, name, layout(lines))
    assert report.error is None and report.format == plain.format == "otlp-json"
    assert got == expected and report.stored == plain.stored
    truth = scenario_truth()
    # (openai-v2 2.4b0 records no cached tokens: tests/ingest/test_otlp.py)
    assert got[:3] + got[4:5] == (truth["requests"], truth["errors"], truth["input_tokens"],
                                  truth["output_tokens"])


@pytest.mark.parametrize("wrap", [lambda data: data, skippable])
def test_a_canonical_jsonl_zst_file_is_read_too(tmp_path, wrap):
    rows = [json.dumps(canonical_request(i)).encode() for i in range(3)]
    report, got = _stored(tmp_path, "requests.jsonl.zst", wrap(native(rows)))
    assert (report.format, report.stored, got[0]) == ("jsonl", {"requests": 3}, 3)


def test_a_framed_request_of_many_lines_is_read_in_bounded_memory(tmp_path):
    """One frame of 64 MiB of lines: decompressed a piece at a time, not held whole (and not
    copied once per read)."""
    import subprocess
    import sys

    line = json.dumps(canonical_request(0)).encode()
    body = b"\n".join(line.replace(b'"r0"', f'"r{i}"'.encode())
                      for i in range(64 * 1024 * 1024 // len(line)))
    path = tmp_path / "big.json"
    path.write_bytes(framed([body]))
    # VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's (this test's) peak.
    probe = ("import re, sys; from lib.ingest.streams import SourceStream; "
             "s = SourceStream(open(sys.argv[1], 'rb')); n = 0\n"
             "while chunk := s.read(1 << 20): n += len(chunk)\n"
             "peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())\n"
             "print(n, int(peak.group(1)) // 1024)")
    out = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    size, peak_mb = map(int, out.split())
    assert size == len(body) + 1  # the request and its newline
    assert peak_mb < 120, peak_mb  # the 64 MiB frame is never held whole


def _corrupt(frame: bytes) -> bytes:
    """``frame`` with its first block's header flipped: zstd reports the data corrupt."""
    return frame[:7] + bytes([frame[7] ^ 0xFF]) + frame[8:]


@pytest.mark.parametrize("data, error", [
    (native([b'{"a": 1}'] * 50)[:-5], "truncated zstd stream"),
    (framed([b'{"a": 1}', b'{"b": 2}'])[:-3], "truncated zstd stream"),
    (framed([b'{"a": 1}']) + b"\x00\x00", "truncated zstd stream (a frame's length is cut short)"),
    # a length far past the file's end: read as far as the file goes, never reserved
    (framed([b'{"a": 1}']) + b"\xff\xff\xff\xff" + zstd.compress(b"x")[:5],
     "truncated zstd stream"),
    (_corrupt(zstd.compress(b"hello world " * 100)), "corrupt zstd stream"),
])
def test_a_broken_zstd_file_is_a_clear_error_and_the_others_go_on(tmp_path, data, error):
    bad, good = tmp_path / "bad.json.zst", tmp_path / "good.jsonl"
    bad.write_bytes(data)
    good.write_text(json.dumps(canonical_request(1)) + "\n")
    report = ingest_paths(Lake(tmp_path / "store"), [str(bad), str(good)])
    errors = {f.source: f.error for f in report.files}
    assert error in errors[str(bad)] and errors[str(good)] is None
    assert report.files[1].stored == {"requests": 1}
