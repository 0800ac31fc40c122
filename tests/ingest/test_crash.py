"""kill -9 of a real ingest process at several points leaves the store exactly before or after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lib.ingest.pipeline import ingest_paths
from lib.store import Lake
from tests.conftest import wait_for_marker
from tests.ingest.conftest import canonical_request

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ("import sys; from lib.store import Lake; from lib.ingest.pipeline import ingest_paths; "
          "ingest_paths(Lake(sys.argv[1]), sys.argv[2:])")


@pytest.mark.parametrize("stage, after", [
    ("after_first_chunk", False),  # data files half written, invisible
    ("before_publish", False),     # data files complete and renamed, manifest entry not written
    ("after_commit", True),        # committed: the kill comes too late to undo anything
])
def test_kill_9_leaves_store_before_or_after(lake, write, totals, tmp_path, stage, after):
    ingest_paths(lake, [str(write("old.jsonl", [canonical_request(i) for i in range(3)]))])
    new = write("new.jsonl", [canonical_request(i) for i in range(100, 150)])
    marker = tmp_path / "paused"
    env = {**os.environ, "SIGHTLINE_TEST_PAUSE_AT": stage,
           "SIGHTLINE_TEST_PAUSE_MARKER": str(marker), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(lake.root), str(new)], env=env,
                            cwd=ROOT)
    try:
        wait_for_marker(proc, marker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    expected = 53 if after else 3
    assert totals("SELECT count(*), count(DISTINCT request_id) FROM requests") == \
        (expected, expected)
    # The lock died with the process; finishing the job later gives exactly the full result
    # (committed, the file is known unchanged and skipped).
    report = ingest_paths(Lake(lake.root), [str(new)])
    assert (report.files[0].skipped is not None) == after
    assert totals("SELECT count(*), sum(input_tokens) FROM requests") == (53, 53_000)
