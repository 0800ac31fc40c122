"""Shared fixtures: tiny exact datasets, a lake in a temporary folder, a demo store."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from lib import schema
from lib.store import Engine, Lake

# Tests never touch the developer's data/store.
os.environ.pop("SIGHTLINE_STORE", None)


def _scan_installed_components_once() -> None:
    """Every AppTest scans every installed package's metadata for Streamlit components (0.4 s
    of e-mail header parsing over this suite's 150-odd packages, before its first run): the
    packages do not change during the suite, so the scan's answer is kept. ``streamlit run``
    scans once per server too."""
    from streamlit.components.v2 import manifest_scanner

    manifest_scanner.scan_component_manifests = functools.cache(
        manifest_scanner.scan_component_manifests)


_scan_installed_components_once()

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, noon UTC


def wait_for_marker(proc, marker: Path, timeout_s: float = 30, why=lambda: "") -> None:
    """Block until the child process ``proc`` writes ``marker`` (it reached the point a
    kill -9 test stops it at); fail if it ends first (``why()`` says more, e.g. its stderr) or
    ``timeout_s`` seconds pass."""
    deadline = time.monotonic() + timeout_s
    while not marker.exists():
        assert proc.poll() is None, f"the process ended before writing {marker.name} {why()}"
        assert time.monotonic() < deadline, f"the process never wrote {marker.name}"
        time.sleep(0.02)


ROOT = Path(__file__).resolve().parents[1]
INGEST_SCRIPT = ("import sys; from lib.store import Lake; "
                 "from lib.ingest.pipeline import ingest_paths; "
                 "ingest_paths(Lake(sys.argv[1]), sys.argv[2:], compact_min_files=0)")


def kill_9_at(stage: str, argv: list[str], marker: Path, script: str = INGEST_SCRIPT) -> None:
    """Run ``python -c script *argv`` until it reaches the crash-test pause ``stage``
    (lib.store.lake._pause_for_tests), then kill -9 it."""
    env = {**os.environ, "SIGHTLINE_TEST_PAUSE_AT": stage,
           "SIGHTLINE_TEST_PAUSE_MARKER": str(marker), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script, *argv], env=env, cwd=ROOT)
    try:
        wait_for_marker(proc, marker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()


def leftovers(root: Path) -> list[str]:
    """What writers left on disk that no commit lists: scratch, unlisted data files, the marker
    of a lock holder that died."""
    scratch = root / "_tmp"
    found = [str(p) for p in scratch.iterdir()] if scratch.is_dir() else []
    found += [str(p) for p in Lake(root).orphans(older_than_s=0)]
    found += [str(p) for p in (root / "_manifest").glob(".*") if p.name != ".lock"]
    return found


def requests_table(rows: list[dict]) -> pa.Table:
    """A canonical requests table from a few dicts (missing columns are null)."""
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema.REQUESTS}
    return schema.conform(pa.table({k: pa.array(v, schema.REQUESTS.field(k).type)
                                    for k, v in cols.items()}), schema.REQUESTS)


def make_request(i: int, **overrides) -> dict:
    """One plausible request ``i`` minutes after T0; override any column."""
    row = {
        "request_id": f"r{i}", "ts": T0 + timedelta(minutes=i), "latency_ms": 100.0 + i,
        "provider": "openai", "model": "gpt-4o", "operation": "chat", "input_tokens": 1000,
        "cached_input_tokens": 0, "cache_write_tokens": 0, "output_tokens": 500,
        "reasoning_tokens": 0, "cost_usd": 0.0075, "status": "ok", "service": "api",
        "environment": "prod", "feature": "chat", "customer_id": "c1",
    }
    row.update(overrides)
    return row


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(tmp_path / "store")


@pytest.fixture
def engine(lake) -> Engine:
    eng = Engine(lake)
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory):
    """A store with 7 days of demo data (seed 0) ending at a fixed time; shared, read-only."""
    from lib import demo

    root = tmp_path_factory.mktemp("demo") / "store"
    demo.write(Lake(root), days=7, requests_per_day=4000, seed=0, end=DEMO_END)
    return root


DEMO_END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

PROJECT_DIR = Path(__file__).resolve().parents[1]
APP = str(PROJECT_DIR / "app.py")  # AppTest.from_file(APP): absolute, whatever the cwd
