"""Large files stream: peak memory must not grow with the file.

Each ingest runs in its own process (peak RSS is per process). The JSONL path works in segments
(lib.ingest.pipeline.SEGMENT_BYTES); with 4 MiB segments a 40 MB and a 160 MB file both span many
segments (past the first few, where DuckDB's and the allocators' caches warm up), so their peaks
must be close. Before segmenting, peak RSS grew ~1.4 MB per MB of input: 120 MB more input cost
~170 MB, which this test catches (measured after: +23 MB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.ingest_bench import generate

ROOT = Path(__file__).resolve().parents[2]
ROWS_PER_MB = 2700  # bench.ingest_bench.generate writes about 390 bytes a row
CODE = ("import json, resource, sys; from lib.store import Lake; "
        "from lib.ingest.pipeline import ingest_paths; "
        "r = ingest_paths(Lake(sys.argv[1]), [sys.argv[2]], compact_min_files=0); "
        "print(json.dumps({'totals': r.totals(), "
        "'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))")


def _ingest_peak(store: Path, path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "SIGHTLINE_INGEST_SEGMENT_BYTES": str(4 * 2**20)}
    proc = subprocess.run([sys.executable, "-c", CODE, str(store), str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_peak_rss_does_not_grow_with_file_size(tmp_path):
    peaks = {}
    for mb in (40, 160):
        path = tmp_path / f"{mb}.jsonl"
        generate(path, mb * ROWS_PER_MB, seed=mb)
        out = _ingest_peak(tmp_path / f"store{mb}", path)
        assert out["totals"]["errors"] == 0
        assert out["totals"]["stored"] == {"requests": mb * ROWS_PER_MB}
        peaks[mb] = out["peak_rss_mb"]
    # 120 MB more input may cost a little (the keys kept for dedupe), never the file itself.
    assert peaks[160] - peaks[40] < 60, peaks
