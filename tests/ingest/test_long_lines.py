"""Over-long input in the OTLP / OpenInference and Langfuse readers: memory stays bounded.

A JSON line longer than lib.ingest.streams.MAX_LINE_BYTES is skipped unread and quarantined with
its line number, the other lines go on (as canonical JSONL does); a file that is one JSON document
larger than otlp_common.MAX_DOCUMENT_BYTES fails alone with a one-line error. The limits are
lowered here (64 KiB) so the files stay small; one test ingests a real 100 MB line in a
subprocess and checks the peak memory (it was 1.37 GB before lines were bounded).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import PEAK_RSS_MB_EXPR
from lib import schema
from lib.ingest import streams
from lib.ingest.formats import openinference
from lib.ingest.formats import otlp_common as oc
from lib.ingest.pipeline import ingest_paths
from tests.ingest.chunks import collect

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
# genai_handwritten.jsonl: line 1 -> 2 requests + 2 spans, line 2 -> 2 requests, 2 spans,
# 2 evals, line 3 -> 3 spans (no model call)
OTLP = (FIXTURES / "genai_handwritten.jsonl").read_bytes().splitlines()
# langfuse_observations.jsonl: lines 1-11 are good (4 requests, 7 spans, 3 evals), 12-13 bad
LANGFUSE = (FIXTURES / "langfuse_observations.jsonl").read_bytes().splitlines()[:11]
LIMIT = 64 * 1024
QUARANTINE = "SELECT list(line ORDER BY line), list(reason ORDER BY line) FROM quarantine"


@pytest.fixture
def small_limits(monkeypatch):
    monkeypatch.setattr(streams, "MAX_LINE_BYTES", LIMIT)
    monkeypatch.setattr(oc, "MAX_DOCUMENT_BYTES", LIMIT)


def _too_long(line: bytes) -> str:
    return f"line of {len(line):,}+ bytes is longer than the limit of {LIMIT:,} bytes"


def _padded_otlp(line: bytes, size: int) -> bytes:
    """An OTLP line that would be valid (and give rows) but for its size."""
    doc = json.loads(line)
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"].append(
        {"key": "padding", "value": {"stringValue": "x" * size}})
    return json.dumps(doc).encode()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_otlp_line_over_the_limit_is_quarantined_and_the_others_go_on(
        lake, write, totals, small_limits, monkeypatch, workers):
    # 32 KiB blocks: with workers, the blocks around the long line go through the worker pool
    monkeypatch.setattr(oc, "BLOCK_BYTES", 32 * 1024)
    monkeypatch.setenv("SIGHTLINE_PARSE_WORKERS", workers)
    long = _padded_otlp(OTLP[2], 3 * LIMIT)
    path = write("traces.jsonl", OTLP[0] + b"\n" + long + b"\n" + OTLP[1] + b"\n")
    f = ingest_paths(lake, [str(path)], compact_min_files=0).files[0]
    assert f.error is None
    assert f.format == "otlp-json"
    assert f.stored == {"requests": 4, "spans": 4, "evals": 2}  # lines 1 and 3, none of line 2
    assert f.quarantined == 1
    assert totals(QUARANTINE) == ([2], [_too_long(long)])
    raw = totals("SELECT raw FROM quarantine")[0]
    assert raw == long[: schema.RAW_MAX_CHARS].decode()


def test_long_line_inside_a_block_and_as_the_last_line_without_newline(small_limits):
    # openinference: the same reader as otlp-json; the stream is a BytesIO, as an upload gives
    long = _padded_otlp(OTLP[2], 2 * LIMIT)
    data = OTLP[0] + b"\n" + long + b"\n\n" + OTLP[1] + b"\n" + long
    tables, rejects, _ = collect(list(openinference.parse(io.BytesIO(data), "t.jsonl")))
    assert {k: t.num_rows for k, t in tables.items() if t is not None} == \
        {"requests": 4, "spans": 4, "evals": 2}
    assert sorted(set(tables["spans"]["_line"].to_pylist())) == [1, 4]
    assert [(r.line, r.reason) for r in rejects] == [(2, _too_long(long)), (5, _too_long(long))]


def test_langfuse_line_over_the_limit_is_quarantined_and_the_others_go_on(
        lake, write, totals, small_limits):
    long_obs = {"id": "g-long", "traceId": "t9", "type": "GENERATION", "name": "huge",
                "startTime": "2026-03-02T13:00:00Z", "endTime": "2026-03-02T13:00:01Z",
                "model": "gpt-4o", "usageDetails": {"input": 10, "output": 2},
                "input": "x" * (3 * LIMIT)}
    long = json.dumps(long_obs).encode()
    lines = [LANGFUSE[0], long, *LANGFUSE[1:]]
    path = write("export.jsonl", b"\n".join(lines) + b"\n")
    f = ingest_paths(lake, [str(path)], compact_min_files=0).files[0]
    assert f.error is None
    assert f.format == "langfuse"
    assert f.stored == {"requests": 4, "spans": 7, "evals": 3}  # g-long is not among them
    assert f.quarantined == 1
    assert totals(QUARANTINE) == ([2], [_too_long(long)])
    assert totals("SELECT count(*) FROM requests WHERE request_id = 'g-long'") == (0,)


def _langfuse_array(long_input: int) -> tuple[bytes, int]:
    """A pretty-printed Langfuse JSON array: the 11 good records, with one generation whose input
    is ``long_input`` characters second; returns the bytes and that element's first line."""
    big = {"id": "g-long", "traceId": "t9", "type": "GENERATION", "name": "huge",
           "startTime": "2026-03-02T13:00:00Z", "endTime": "2026-03-02T13:00:01Z",
           "model": "gpt-4o", "usageDetails": {"input": 10, "output": 2},
           "input": 'x" \\ ] } [ {' * (long_input // 14)}
    records = [json.loads(LANGFUSE[0]), big, *(json.loads(ln) for ln in LANGFUSE[1:])]
    text = "[\n" + ",\n".join(json.dumps(r, indent=1) for r in records) + "\n]\n"
    first = json.dumps(records[0], indent=1).count("\n") + 3  # "[", record 1, then g-long
    return text.encode(), first


def test_langfuse_array_element_over_the_limit_is_skipped_and_the_others_go_on(
        lake, write, totals, monkeypatch):
    from lib.ingest.formats import langfuse

    monkeypatch.setattr(langfuse, "MAX_ELEMENT_CHARS", LIMIT)
    data, line = _langfuse_array(3 * LIMIT)  # quotes, backslashes, brackets: all in a string
    path = write("export.json", data)
    f = ingest_paths(lake, [str(path)], compact_min_files=0).files[0]
    assert f.error is None and f.format == "langfuse"
    assert f.stored == {"requests": 4, "spans": 7, "evals": 3}
    got_lines, got_reasons = totals(QUARANTINE)
    assert got_lines == [line]
    assert got_reasons[0].startswith("element of ") and got_reasons[0].endswith(
        f"characters is longer than the limit of {LIMIT:,}")
    assert totals("SELECT count(*) FROM requests WHERE request_id = 'g-long'") == (0,)


def test_a_100_mb_langfuse_array_element_is_skipped_in_bounded_memory(tmp_path):
    data, _ = _langfuse_array(100 * 10**6)
    path = tmp_path / "huge-export.json"
    try:
        path.write_bytes(data)
        del data
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(
            [sys.executable, "-c", PEAK_CODE, str(tmp_path / "store"), str(path)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["error"] is None and out["quarantined"] == 1
        assert out["stored"] == {"requests": 4, "spans": 7, "evals": 3}
        assert out["self_mb"] < 600, out  # was 1.23 GB when the element was read whole
    finally:
        path.unlink(missing_ok=True)


def test_document_over_the_limit_fails_its_file_and_the_others_are_stored(
        lake, tmp_path, small_limits):
    def pretty(name: str, doc) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(doc, indent=2) + "\n")
        return path

    big_otlp = pretty("big-otlp.json", json.loads(_padded_otlp(OTLP[2], 2 * LIMIT)))
    observations = [json.loads(line) for line in LANGFUSE[1:8]]
    observations[0]["input"] = "x" * (2 * LIMIT)
    big_langfuse = pretty("big-langfuse.json", {"data": observations, "meta": {"page": 1}})
    small_otlp = pretty("small-otlp.json", json.loads(OTLP[0]))  # a document within the limit
    lines = tmp_path / "lines.jsonl"
    lines.write_bytes(OTLP[1] + b"\n")
    report = ingest_paths(lake, [str(p) for p in (big_otlp, small_otlp, big_langfuse, lines)],
                          compact_min_files=0)
    by_name = {Path(f.source).name: f for f in report.files}
    assert by_name["big-otlp.json"].format == "otlp-json"
    assert by_name["big-otlp.json"].error == (
        "a single JSON document larger than 0.0625 MiB is too large to read whole; "
        "write one OTLP export request (traces or logs) per line (JSON lines) instead")
    assert by_name["big-langfuse.json"].format == "langfuse"
    assert by_name["big-langfuse.json"].error == (
        "a single JSON document larger than 0.0625 MiB is too large to read whole; "
        "export as JSONL or as a JSON array instead")
    for name in ("big-otlp.json", "big-langfuse.json"):
        assert (by_name[name].stored, by_name[name].quarantined) == ({}, 0)
    assert (by_name["small-otlp.json"].error, by_name["small-otlp.json"].stored) == \
        (None, {"requests": 2, "spans": 2})
    assert (by_name["lines.jsonl"].error, by_name["lines.jsonl"].stored) == \
        (None, {"requests": 2, "spans": 2, "evals": 2})


# ---------------------------------------------------------------------------------------------
# A real 100 MB line, in a process of its own (peak RSS is per process)

PEAK_CODE = (
    "import json, resource, sys; from lib.store import Lake; "
    "from lib.ingest.pipeline import ingest_paths; "
    "from lib.ingest.formats import otlp_common as oc; "
    "r = ingest_paths(Lake(sys.argv[1]), [sys.argv[2]], compact_min_files=0); "
    "oc._POOL is not None and oc._POOL.close(); "  # reap the workers: their peak is counted
    "f = r.files[0]; "
    "print(json.dumps({'error': f.error, 'stored': f.stored, 'quarantined': f.quarantined, "
    "'reasons': f.reasons, "
    f"'self_mb': {PEAK_RSS_MB_EXPR}, "
    "'workers_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")


def _write_100mb_line_file(path: Path) -> int:
    """Line 1 and 3 good; line 2 one ExportTraceServiceRequest of ~100 MB (52,000 copies of a
    resourceSpans entry: parsed, it took 1.37 GB). Written in pieces; returns line 2's size."""
    entry = json.dumps(json.loads(OTLP[0])["resourceSpans"][0]).encode()
    copies = 100 * 2**20 // (len(entry) + 2)
    with open(path, "wb") as f:
        f.write(OTLP[0] + b"\n")
        f.write(b'{"resourceSpans": [' + entry)
        piece = (b", " + entry) * 1000
        for _ in range((copies - 1) // 1000):
            f.write(piece)
        f.write((b", " + entry) * ((copies - 1) % 1000))
        f.write(b"]}\n" + OTLP[1] + b"\n")
    return len(b'{"resourceSpans": [') + copies * len(entry) + (copies - 1) * 2 + 2


def test_a_100_mb_otlp_line_is_quarantined_in_bounded_memory(tmp_path):
    path = tmp_path / "huge-line.jsonl"
    try:
        size = _write_100mb_line_file(path)
        assert size > 100 * 10**6 and path.stat().st_size > size
        for workers in ("1", "2"):
            env = {**os.environ, "PYTHONPATH": str(ROOT), "SIGHTLINE_PARSE_WORKERS": workers}
            proc = subprocess.run(
                [sys.executable, "-c", PEAK_CODE, str(tmp_path / f"store{workers}"), str(path)],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True)
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            assert out["error"] is None
            assert out["stored"] == {"requests": 4, "spans": 4, "evals": 2}
            assert out["quarantined"] == 1
            assert out["reasons"] == [f"line 2: line of {size:,}+ bytes is longer than the "
                                      f"limit of {streams.MAX_LINE_BYTES:,} bytes"]
            assert out["self_mb"] < 600 and out["workers_mb"] < 600, (workers, out)
    finally:
        path.unlink(missing_ok=True)

