"""Counting the requests an ingest stored without a cost (lib.ingest.pipeline._find_unpriced)
reads the batch's files back: its memory must not grow with them, as the ingest's own does not
(tests/ingest/test_memory.py). A self-hosted model without a price is every row of its files;
read into Polars, each row's batch id, provider and model were held at once: 500 MB more at 20
million rows, after an ingest bounded at about 400 MB (found in review)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from bench.common import PEAK_RSS_MB_EXPR
from lib import schema
from lib.store import Lake

ROOT = Path(__file__).resolve().parents[2]
PART_ROWS = 1_000_000
CODE = ("import json, sys; from lib.store import Lake; "
        "from lib.ingest.pipeline import FileReport, _find_unpriced; "
        "f = FileReport(source='big', batch_id=sys.argv[2], "
        "stored={'requests': int(sys.argv[3])}); "
        "_find_unpriced(Lake(sys.argv[1]), [f]); "
        f"print(json.dumps({{'unpriced': f.unpriced, 'peak_rss_mb': {PEAK_RSS_MB_EXPR}}}))")


def _store(root: Path, parts: int) -> tuple[str, int]:
    """A store with one batch of ``parts`` million requests of a model without a price."""
    lake = Lake(root)
    with lake.begin("big.jsonl") as batch:
        n = PART_ROWS
        columns = {f.name: pa.nulls(n, f.type) for f in schema.TABLES["requests"]}
        columns.update(
            request_id=pa.array([f"r{i}" for i in range(n)]),
            ts=pa.array([datetime(2026, 11, 2, tzinfo=UTC)] * n, schema.TABLES["requests"]
                        .field("ts").type),
            provider=pa.array(["self-hosted"] * n), model=pa.array(["house-llm-70b"] * n),
            input_tokens=pa.array([100] * n, pa.int64()),
            source_file=pa.array(["big.jsonl"] * n), batch_id=pa.array([batch.batch_id] * n))
        table = pa.table(columns, schema=schema.TABLES["requests"])
        for _ in range(parts):
            batch.write_rows("requests", table)
        batch.commit()
    return batch.batch_id, parts * PART_ROWS


def _peak(root: Path, batch_id: str, rows: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "2"}
    proc = subprocess.run([sys.executable, "-c", CODE, str(root), batch_id, str(rows)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_counting_them_does_not_hold_the_rows(tmp_path):
    peaks = {}
    for parts in (1, 5):
        batch_id, rows = _store(tmp_path / f"store{parts}", parts)
        out = _peak(tmp_path / f"store{parts}", batch_id, rows)
        assert out["unpriced"] == [{"provider": "self-hosted", "model": "house-llm-70b",
                                    "requests": rows, "usage_logged": True}]
        peaks[rows] = out["peak_rss_mb"]
    # 4 million rows more: Polars' read held ~25 bytes a row, 100 MB here (8 s for 2 and 8
    # million rows, half that now)
    (small, large) = sorted(peaks)
    assert peaks[large] - peaks[small] < 50, peaks
