"""What benchmarks share: cached demo stores, warm timing, the machine, and docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
DOC = ROOT / "docs" / "benchmarks.md"
BENCH_END = datetime(2026, 11, 1, tzinfo=UTC)

# A Python expression giving the peak resident memory of the process that evaluates it, in MiB:
# VmHWM, reset by exec. Not ``getrusage().ru_maxrss``: Linux carries that over a fork + exec, so
# a child started by a big parent (pytest, or a benchmark that just ran DuckDB) reports at least
# the parent's size (measured: a child of a 600 MB process said 614 MB instead of 13 MB).
PEAK_RSS_MB_EXPR = ("int(next(ln.split()[1] for ln in open('/proc/self/status') "
                    "if ln.startswith('VmHWM'))) / 1024")


def demo_store(requests: int, days: int = 30) -> Path:
    """A store with ``requests`` demo requests over ``days`` days, generated once and kept in
    bench/out/ (git-ignored)."""
    from lib import demo
    from lib.store import Lake

    root = OUT / f"demo-{requests}"
    if not (root / "_manifest").exists():
        t0 = time.perf_counter()
        demo.write(Lake(root), days=days, requests_per_day=requests // days, seed=0,
                   end=BENCH_END)
        print(f"generated {requests:,} requests in {time.perf_counter() - t0:.1f} s -> {root}")
    return root


def warm_median(fn, repeat: int = 5) -> float:
    """Median wall time (s) of ``fn()`` over ``repeat`` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine() -> str:
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def write_section(title: str, body: str) -> None:
    """Replace (or add) the ``## title`` section of docs/benchmarks.md with ``body``."""
    DOC.parent.mkdir(exist_ok=True)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    header = f"## {title}\n"
    section = f"{header}\n{body.strip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    DOC.write_text(text)
