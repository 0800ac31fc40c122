"""Fixtures for ingestion tests: canonical rows as files, a store, a moto S3 server."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from lib import schema
from lib.store import Engine
from tests.conftest import T0


def canonical_request(i: int, **overrides) -> dict:
    """Request ``i``, JSON-ready: gpt-4o, 1000 input + 500 output tokens ($0.0075 each)."""
    row = {"request_id": f"r{i}", "ts": (T0 + timedelta(minutes=i)).isoformat(),
           "provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 500,
           "latency_ms": 100.0 + i, "status": "ok", "service": "api"}
    row.update(overrides)
    return row


def jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


# Environment that sends canonical JSON lines down each ingest path (lib/ingest/pipeline.py):
# groups of small files, the fast path a file at a time, the exact SQL path, the Arrow path.
INGEST_PATHS = {
    "group": {},
    "fast": {"SIGHTLINE_INGEST_GROUP": "0"},
    "exact": {"SIGHTLINE_INGEST_FAST": "0", "SIGHTLINE_INGEST_GROUP": "0"},
    "arrow": {"SIGHTLINE_INGEST_FAST": "0", "SIGHTLINE_INGEST_GROUP": "0",
              "SIGHTLINE_INGEST_SQL": "0"},
}


def ingest_on_path(lake, files: list[Path], path: str, monkeypatch, **kw):
    """Ingest ``files`` on the ingest ``path`` (a key of INGEST_PATHS; a group needs two files
    or more), aged ten minutes first (not files still being written); asserts the fast path or a
    group took them where asked. Returns the IngestReport; ``kw`` goes to ingest_paths."""
    from lib.ingest import fastpath
    from lib.ingest.pipeline import ingest_paths

    for name in {n for env in INGEST_PATHS.values() for n in env}:
        monkeypatch.delenv(name, raising=False)
    for name, value in INGEST_PATHS[path].items():
        monkeypatch.setenv(name, value)
    old = time.time() - 600
    for f in files:
        os.utime(f, (old, old))
    fastpath.LAST.clear()
    report = ingest_paths(lake, [str(f) for f in files], **kw)
    if path in ("group", "fast"):
        assert ("group" if fastpath.LAST.get("group") else fastpath.LAST.get("outcome")) == path
    return report


@contextlib.contextmanager
def fed_fifo(fifo: Path, data: bytes):
    """A named pipe made at ``fifo`` that a thread writes ``data`` into once a reader opens it."""
    os.mkfifo(fifo)

    def writer():
        with open(fifo, "wb") as out:  # blocks until the reader opens it
            out.write(data)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    yield fifo
    thread.join(timeout=30)


def stored_rows(lake, name: str, without: tuple[str, ...]) -> list[tuple]:
    """The rows of table ``name`` in ``lake``'s live files, without the columns ``without``
    (lineage that differs between the ingests compared), in a fixed order; [] when none."""
    return live_rows(lake, name, ", ".join(f'"{c}"' for c in schema.TABLES[name].names
                                           if c not in without))


def live_rows(lake, name: str, cols: str = "*", where: str = "") -> list[tuple]:
    """``cols`` (SQL) of table ``name``'s rows in ``lake``'s live files (``where``: a clause),
    read by DuckDB in UTC, in a fixed order; [] when none."""
    files = [str(lake.root / p) for p in lake.snapshot().files[name]]
    if not files:
        return []
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        return con.execute(f"SELECT {cols} FROM read_parquet($f) {where} ORDER BY ALL",
                           {"f": files}).fetchall()
    finally:
        con.close()


@pytest.fixture
def write(tmp_path):
    """write(name, rows_or_bytes, gz=False) -> Path: a JSONL (or raw bytes) file in tmp_path."""

    def _write(name: str, content, gz: bool = False) -> Path:
        data = content if isinstance(content, bytes) else jsonl_bytes(content)
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(data) if gz else data)
        return path

    return _write


@pytest.fixture
def totals(lake):
    """totals(sql) -> first row of ``sql`` over a fresh engine on the test lake, as a tuple."""

    def _totals(sql: str) -> tuple:
        eng = Engine(lake)
        try:
            return eng.query(sql).row(0)
        finally:
            eng.close()

    return _totals


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_server(monkeypatch):
    """A moto S3 server on 127.0.0.1; yields its endpoint URL. Credentials are fake."""
    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
