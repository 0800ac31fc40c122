"""``python -m lib ingest -`` reads standard input, and a pipe given by name is read as a stream:
``zcat old.jsonl.gz | python -m lib ingest -``, ``python -m lib ingest <(kubectl logs app)``.

Read once, the format told by the content; the same guarantees as a file: bad lines quarantined
with their line number, the same bytes piped again add nothing."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from lib.ingest.pipeline import ingest_paths
from lib.store import Engine, Lake
from tests.ingest.conftest import canonical_request, fed_fifo, jsonl_bytes

ROOT = Path(__file__).resolve().parents[2]


def _cli(store: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib", "ingest", *args, "--store", str(store),
                           "--json"], input=stdin, capture_output=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "SIGHTLINE_DEMO": "0"})


def test_standard_input_is_ingested_once_bad_lines_quarantined(tmp_path):
    data = gzip.compress(jsonl_bytes([canonical_request(i) for i in range(3)]) + b"{oops\n"
                         + jsonl_bytes([canonical_request(3)]))
    first = _cli(tmp_path / "store", "-", stdin=data)
    assert first.returncode == 0, first.stderr.decode()
    (f,) = json.loads(first.stdout)["files"]
    assert (f["source"], f["format"], f["stored"], f["quarantined"]) == (
        "stdin", "jsonl", {"requests": 4}, 1)
    assert f["reasons"][0].startswith("line 4: not valid JSON")
    again = _cli(tmp_path / "store", "-", stdin=data)  # the same bytes piped again
    (f,) = json.loads(again.stdout)["files"]
    assert (f["stored"], f["duplicate_file"]) == ({}, True)  # "already ingested (same content)"
    engine = Engine(Lake(tmp_path / "store"))
    assert engine.query("SELECT count(*), sum(input_tokens) FROM requests").row(0) == (4, 4000)
    assert engine.query("SELECT DISTINCT source_file FROM requests").rows() == [("stdin",)]
    engine.close()


def test_an_empty_standard_input_is_an_error_naming_it(tmp_path):
    done = _cli(tmp_path / "store", "-", stdin=b"")
    assert done.returncode == 2
    (f,) = json.loads(done.stdout)["files"]
    assert (f["source"], f["error"]) == ("stdin", "empty file")


def test_a_named_pipe_is_read_as_a_stream(lake, tmp_path):
    rows = jsonl_bytes([canonical_request(i) for i in range(5)])
    with fed_fifo(tmp_path / "calls.pipe", rows) as fifo:
        (report,) = ingest_paths(lake, [str(fifo)]).files
    assert (report.source, report.error, report.stored) == (str(fifo), None, {"requests": 5})


def test_a_device_is_no_input_and_says_so(lake):
    (report,) = ingest_paths(lake, ["/dev/null"]).files
    assert report.error == "not a file, folder or pipe (a device or a socket): nothing to read"
    assert lake.commits() == []


def test_a_folder_passes_over_its_pipes_and_sockets_saying_so(lake, tmp_path):
    import socket

    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(jsonl_bytes([canonical_request(0)]))
    os.utime(folder / "a.jsonl", (1e9, 1e9))  # not a file still being written
    os.mkfifo(folder / "app.pipe")  # no writer: opening it would wait for ever
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "agent.sock"))
    try:
        report = ingest_paths(lake, [str(folder)])
    finally:
        server.close()
    by_name = {Path(f.source).name: f for f in report.files}
    assert by_name["a.jsonl"].stored == {"requests": 1} and report.ok
    assert by_name["app.pipe"].skipped == ("a named pipe, not a file: not read in a folder (a "
                                           "pipe given by name is read as a stream)")
    assert by_name["agent.sock"].skipped.startswith("a socket, not a file")
