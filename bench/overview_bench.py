"""Demo generation rate, and the Overview's queries at 1M and 10M requests against plain DuckDB.

Sightline's side is exactly what the page runs (lib.metrics.overview through the Engine, returning
Polars frames); the plain side is the same question asked with one DuckDB query over a
`read_parquet` glob of the lake, fetched as Arrow. Warm: each is run once first, then the
median of 5 runs is kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

import duckdb

from bench.common import BENCH_END, demo_store, machine, warm_median, write_section
from lib.filters import Filters
from lib.metrics import overview
from lib.metrics.buckets import bucket_seconds
from lib.store import Engine, Lake

SIZES = [1_000_000, 10_000_000]


def plain_queries(con, glob: str, f: Filters, seconds: int):
    """The plainest DuckDB SQL answering the Overview's questions (KPIs for both periods, the
    bucketed series, the events)."""
    prev_start = f.start - f.duration
    con.execute(f"""
        SELECT ts >= $s, count(*), avg((status = 'error')::INT), quantile_cont(latency_ms, 0.95),
               sum(cost_usd), sum(cached_input_tokens) / sum(input_tokens), count(guardrail)
        FROM read_parquet('{glob}') WHERE ts >= $p AND ts < $e GROUP BY 1""",
                {"s": f.start, "p": prev_start, "e": f.end}).to_arrow_table()
    con.execute(f"""
        SELECT ts >= $s, avg(passed::INT) FROM read_parquet('{glob.replace('requests', 'evals')}')
        WHERE ts >= $p AND ts < $e AND passed IS NOT NULL AND source = 'online' GROUP BY 1""",
                {"s": f.start, "p": prev_start, "e": f.end}).to_arrow_table()
    con.execute(f"""
        SELECT time_bucket(INTERVAL '{seconds} seconds', ts) AS b, count(*),
               count(*) FILTER (WHERE status = 'error'), quantile_cont(latency_ms, 0.5),
               quantile_cont(latency_ms, 0.95), sum(cost_usd), count(latency_ms),
               count(*) - count(cost_usd)
        FROM read_parquet('{glob}') WHERE ts >= $s AND ts < $e GROUP BY 1 ORDER BY 1""",
                {"s": f.start, "e": f.end}).to_arrow_table()


def sightline_queries(engine: Engine, f: Filters, seconds: int):
    overview.kpis(engine, f)
    overview.timeseries(engine, f, seconds)
    overview.events(engine, f)


def main() -> None:
    # (no options: --help says what it measures, and anything else is refused)
    argparse.ArgumentParser(description=__doc__).parse_args()
    rows = []
    for n in SIZES:
        root = demo_store(n)
        engine = Engine(Lake(root))
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        glob = str(root / "requests" / "**" / "*.parquet")
        for label, days in (("last 7 days", 7), ("last 30 days", 30)):
            f = Filters.between(BENCH_END - timedelta(days=days), BENCH_END)
            seconds = bucket_seconds(f.duration)
            ours = warm_median(lambda e=engine, f=f, s=seconds: sightline_queries(e, f, s))
            plain = warm_median(lambda c=con, g=glob, f=f, s=seconds: plain_queries(c, g, f, s))
            rows.append((n, label, ours, plain))
            print(f"{n:>11,} requests, {label:<13} Sightline {ours * 1000:7.0f} ms   "
                  f"plain DuckDB {plain * 1000:7.0f} ms   ratio {ours / plain:.2f}", flush=True)
        engine.close()
    # Demo generation, generated and stored, into a fresh folder: the 1M-in-10-s target.
    import tempfile

    from lib import demo
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = demo.write(Lake(tmp), days=30, requests_per_day=1_000_000 // 30 + 1, seed=1,
                            end=BENCH_END)
        gen_s = time.perf_counter() - t0
    print(f"demo: {result.requests:,} requests generated and stored in {gen_s:.1f} s")
    table = "\n".join(
        f"| {n:,} | {label} | {ours * 1000:.0f} | {plain * 1000:.0f} | {ours / plain:.2f} |"
        for n, label, ours, plain in rows)
    write_section("Overview", f"""
Command: `python -m bench.overview_bench` · machine: {machine()} · {time.strftime('%Y-%m-%d')}

The Overview's queries (KPIs for the window and the previous period, bucketed requests / errors /
p50 / p95 / cost, events), warm, median of 5, against the plainest DuckDB SQL over a
`read_parquet` glob of the same lake. Goal: ≤ 1.3× plain DuckDB, ≤ 1 s at 10M.

| requests in store | window | Sightline (ms) | plain DuckDB (ms) | ratio |
|---|---|---|---|---|
{table}

Demo generation: {result.requests:,} requests (plus their evals, events and spans) generated
and stored in {gen_s:.1f} s ({result.requests / gen_s:,.0f} requests/s). Target: 1M in ≤ 10 s.

The 30-day window at 10M is over the 1 s goal for Sightline and plain DuckDB alike: exact
`quantile_cont` over 10M rows on 2 cores is the floor. Pre-aggregated rollups would be the way
under it; they are not built yet.
""")


if __name__ == "__main__":
    main()
    sys.exit(0)
