"""The analysis pages' queries at 1M and 10M requests, warm, against plain DuckDB.

For each page (Cost, Latency, Quality, Explore, Request), Sightline's side is exactly the metric
calls the page makes (lib.metrics.* through the Engine, Polars frames out, Python post-processing
included); the plain side asks the same questions with the plainest DuckDB SQL over a
``read_parquet`` glob of the lake, fetched as Arrow. Window: the pages' default, the last 7 days
of the store (Explore: that window against the 7 days before). Warm: one run first, then the
fastest of 7, alternating the two sides (the machine is shared with other work).
Run: ``python -m bench.pages_bench [--browse]`` (not part of pytest).
"""

from __future__ import annotations

import resource
from datetime import timedelta
from pathlib import Path

import duckdb

from bench.common import BENCH_END, demo_store, machine, write_section
from lib.budgets import load_budgets
from lib.filters import Filters
from lib.metrics import cost, explore, latency, overview, quality
from lib.metrics import requests as rq
from lib.metrics.buckets import bucket_seconds
from lib.metrics.dims import attribute_keys
from lib.store import Engine, Lake

SIZES = [1_000_000, 10_000_000]


# -- Sightline: what each page calls -----------------------------------------------------------
def ours_cost(e: Engine, f: Filters, s: int):
    cost._PER_MODEL_DAY.clear()  # measure the page's first load: no result memoized yet
    cost.totals(e, f)
    cost.cache_savings(e, f)
    attribute_keys(e, f)
    cost.spend_over_time(e, f, "model", 8, s)
    cost.token_mix(e, f)
    cost.breakdown(e, f, "model", 10)
    cost.breakdown(e, f, "customer", 10)
    cost.breakdown(e, f, "feature", 10)
    cost.month_to_date(e, f, load_budgets())
    cost.whatif_targets(e, f)
    cost.what_if(e, f, "openai", "gpt-4o-mini")
    overview.events(e, f)


def ours_latency(e: Engine, f: Filters, s: int):
    latency.overall(e, f, 2000)
    latency.percentiles_over_time(e, f, s, 2000)
    overview.events(e, f)
    attribute_keys(e, f)
    latency.by_dimension(e, f, "model", 2000)
    latency.distribution(e, f)
    latency.slowest(e, f, 50)


def ours_quality(e: Engine, f: Filters, s: int):
    qs = bucket_seconds(f.duration, max_buckets=60)
    quality.eval_metrics(e, f)
    quality.feedback_totals(e, f)
    overview.events(e, f)
    quality.finish_reasons(e, f)
    quality.guardrails(e, f)
    quality.evals_by_version(e, f, "online")
    quality.evals_over_time(e, f, "online", qs)
    quality.feedback_over_time(e, f, qs)
    quality.guardrails_over_time(e, f, qs)
    quality.errors_over_time(e, f, qs)


def ours_explore(e: Engine, f: Filters, s: int):
    base = f.previous()
    explore.changes(e, f, base, "error_rate")
    span = f.with_window(base.start, f.end)
    overview.timeseries(e, span, bucket_seconds(span.duration))
    overview.events(e, span)
    explore.fingerprints(e, f)
    explore.request_count(e, f, None)
    explore.request_page(e, f, None, "ts", True, 50, 0)


def ours_request(e: Engine, rid: str):
    r = rq.detail(e, rid)
    rq.trace(e, r["trace_id"])
    rq.evals_for(e, rid)
    rq.session_requests(e, r["session_id"])


# -- plain DuckDB: the same questions ----------------------------------------------------------
def q(con, sql: str, params: dict | None = None):
    used = {k: v for k, v in (params or {}).items() if f"${k}" in sql}
    return con.execute(sql, used).to_arrow_table()


def paired(ours, plain, repeat: int = 7) -> tuple[float, float]:
    """Fastest of ``repeat`` warm runs (s) of each, alternating ours and plain so both see the
    same background load: the machine is shared, and the minimum is the figure least disturbed
    by other work."""
    import time

    ours(), plain()
    a, b = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ours()
        a.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        plain()
        b.append(time.perf_counter() - t0)
    return min(a), min(b)


def plain_cost(con, g: dict, f: Filters, s: int):
    p = {"s": f.start, "e": f.end}
    r, w = g["requests"], "ts >= $s AND ts < $e"
    q(con, f"SELECT count(*), count(cost_usd), sum(cost_usd) FROM {r} WHERE {w}", p)
    q(con, f"SELECT provider, model, ts::DATE, sum(cached_input_tokens) FROM {r} WHERE {w} "
           "AND cached_input_tokens > 0 GROUP BY ALL", p)
    q(con, f"SELECT DISTINCT unnest(json_keys(attributes)) FROM {r} WHERE {w}", p)
    q(con, f"SELECT time_bucket(INTERVAL '{s} seconds', ts), model, sum(cost_usd), count(*), "
           f"count(*) - count(cost_usd) FROM {r} WHERE {w} GROUP BY ALL", p)
    q(con, f"SELECT provider, model, ts::DATE, count(*), sum(cost_usd), sum(input_tokens), "
           "sum(cached_input_tokens), sum(cache_write_tokens), sum(cache_write_1h_tokens), "
           "sum(output_tokens), "
           f"sum(reasoning_tokens) FROM {r} WHERE {w} GROUP BY ALL", p)
    q(con, f"SELECT model, count(*), sum(cost_usd) FROM {r} WHERE {w} GROUP BY 1", p)
    q(con, f"SELECT customer_id, count(*), sum(cost_usd) FROM {r} WHERE {w} GROUP BY 1", p)
    q(con, f"SELECT feature, count(*), sum(cost_usd) FROM {r} WHERE {w} GROUP BY 1", p)
    # the budgets' month: the one holding the window's last instant (the end is not in it)
    month = (f.end - timedelta(microseconds=1)).replace(day=1, hour=0, minute=0, second=0,
                                                        microsecond=0)
    for extra in ("", " AND feature = 'chat'", " AND provider = 'anthropic'",
                  " AND json_extract_string(attributes, '$.plan') = 'enterprise'"):
        q(con, f"SELECT sum(cost_usd) FROM {r} WHERE ts >= $m AND ts < $e{extra}",
          {"m": month, "e": f.end})
    q(con, f"SELECT DISTINCT provider, model FROM {r}")
    q(con, f"SELECT * FROM {g['events']} WHERE {w}", p)


def plain_latency(con, g: dict, f: Filters, s: int):
    p = {"s": f.start, "e": f.end}
    r, w = g["requests"], "ts >= $s AND ts < $e"
    pct = ", ".join(f"quantile_cont(latency_ms, {x})" for x in (0.5, 0.9, 0.95, 0.99))
    speed = ("median(output_tokens / ((latency_ms - coalesce(ttft_ms, 0)) / 1000)) FILTER (WHERE "
             "status = 'ok' AND output_tokens > 0 AND latency_ms > coalesce(ttft_ms, 0))")
    q(con, f"SELECT count(*), {pct}, median(ttft_ms), {speed}, "
           f"avg((latency_ms <= 2000)::INT) FROM {r} WHERE {w}", p)
    q(con, f"SELECT time_bucket(INTERVAL '{s} seconds', ts), count(*), {pct}, "
           f"quantile_cont(ttft_ms, 0.5), quantile_cont(ttft_ms, 0.95), {speed}, "
           f"count(*) FILTER (WHERE latency_ms <= 2000), count(latency_ms) FROM {r} WHERE {w} "
           "GROUP BY 1", p)
    q(con, f"SELECT * FROM {g['events']} WHERE {w}", p)
    q(con, f"SELECT DISTINCT unnest(json_keys(attributes)) FROM {r} WHERE {w}", p)
    q(con, f"SELECT model, count(*), {pct}, median(ttft_ms), {speed}, "
           f"avg((latency_ms <= 2000)::INT) FROM {r} WHERE {w} GROUP BY 1", p)
    q(con, f"SELECT floor(log10(greatest(latency_ms, 1)) * 10), count(*) FROM {r} WHERE {w} "
           "GROUP BY 1", p)
    q(con, f"SELECT * FROM {r} WHERE {w} ORDER BY latency_ms DESC LIMIT 50", p)


def plain_quality(con, g: dict, f: Filters, s: int):
    qs = bucket_seconds(f.duration, max_buckets=60)
    p = {"s": f.start, "e": f.end}
    r, ev, w = g["requests"], g["evals"], "ts >= $s AND ts < $e"
    q(con, f"SELECT source, metric, count(*) FROM {ev} WHERE {w} GROUP BY ALL", p)
    q(con, f"SELECT count(passed), count(*) FILTER (WHERE passed) FROM {ev} WHERE {w} "
           "AND source = 'feedback'", p)
    q(con, f"SELECT * FROM {g['events']} WHERE {w}", p)
    q(con, f"SELECT finish_reason, count(*) FROM {r} WHERE {w} GROUP BY 1", p)
    q(con, f"SELECT guardrail, guardrail_action, count(*) FROM {r} WHERE {w} "
           "AND guardrail IS NOT NULL GROUP BY ALL", p)
    # (with the independent trials a pass rate's interval counts: its test cases, or its evals)
    units = ("count(DISTINCT (model, dataset, case_id)) FILTER (WHERE case_id IS NOT NULL AND "
             "passed IS NOT NULL) + count(passed) FILTER (WHERE case_id IS NULL)")
    q(con, f"SELECT version, metric, count(passed), count(*) FILTER (WHERE passed), avg(score), "
           f"{units} FROM {ev} WHERE {w} AND source = 'online' GROUP BY ALL", p)
    q(con, f"SELECT time_bucket(INTERVAL '{qs} seconds', ts), metric, count(passed), "
           f"count(*) FILTER (WHERE passed), avg(score), {units} FROM {ev} WHERE {w} "
           "AND source = 'online' GROUP BY ALL", p)
    q(con, f"SELECT time_bucket(INTERVAL '{qs} seconds', ts), count(passed), "
           f"count(*) FILTER (WHERE passed) FROM {ev} WHERE {w} AND source = 'feedback' "
           "GROUP BY 1", p)
    q(con, f"SELECT time_bucket(INTERVAL '{qs} seconds', ts), guardrail, count(*) FROM {r} "
           f"WHERE {w} AND guardrail IS NOT NULL GROUP BY ALL", p)
    q(con, f"SELECT time_bucket(INTERVAL '{qs} seconds', ts), error_type, count(*) FROM {r} "
           f"WHERE {w} AND status = 'error' GROUP BY ALL", p)
    q(con, f"SELECT time_bucket(INTERVAL '{qs} seconds', ts), count(*) FROM {r} WHERE {w} "
           "GROUP BY 1", p)


def plain_explore(con, g: dict, f: Filters, s: int):
    base = f.previous()
    p = {"bs": base.start, "s": f.start, "e": f.end}
    r = g["requests"]
    dims = ["model", "provider", "feature", "customer_id", "prompt_version", "app_version",
            "environment", "service", "json_extract_string(attributes, '$.region')",
            "json_extract_string(attributes, '$.plan')"]
    cols = ", ".join(f"{d} AS d{i}" for i, d in enumerate(dims))
    sets = ", ".join(f"(w, d{i})" for i in range(len(dims)))
    q(con, f"SELECT DISTINCT unnest(json_keys(attributes)) FROM {r} WHERE ts >= $s AND ts < $e",
      {"s": f.start, "e": f.end})
    q(con, f"SELECT ts >= $s AS w, count(*), count(*) FILTER (WHERE status = 'error') FROM {r} "
           "WHERE ts >= $bs AND ts < $e GROUP BY 1", p)
    q(con, f"SELECT w, {', '.join(f'd{i}' for i in range(len(dims)))}, count(*), "
           f"count(*) FILTER (WHERE status = 'error') FROM (SELECT ts >= $s AS w, status, {cols} "
           f"FROM {r} WHERE ts >= $bs AND ts < $e) GROUP BY GROUPING SETS ({sets})", p)
    span_s = bucket_seconds(f.end - base.start)
    q(con, f"SELECT time_bucket(INTERVAL '{span_s} seconds', ts), count(*), "
           "count(*) FILTER (WHERE status = 'error'), quantile_cont(latency_ms, 0.5), "
           "quantile_cont(latency_ms, 0.95), sum(cost_usd) "
           f"FROM {r} WHERE ts >= $bs AND ts < $e GROUP BY 1", p)
    q(con, f"SELECT * FROM {g['events']} WHERE ts >= $bs AND ts < $e",
      {"bs": base.start, "e": f.end})
    w = {"s": f.start, "e": f.end}
    q(con, f"SELECT error_type, regexp_replace(error_message, '[0-9]+', '<n>', 'g'), count(*), "
           f"min(ts), max(ts) FROM {r} WHERE ts >= $s AND ts < $e AND status = 'error' "
           "GROUP BY 1, 2", w)
    q(con, f"SELECT count(*) FROM {r} WHERE ts >= $s AND ts < $e", w)
    q(con, f"SELECT * FROM {r} WHERE ts >= $s AND ts < $e ORDER BY ts DESC LIMIT 50", w)


def plain_request(con, g: dict, rid: str):
    r = q(con, f"SELECT * FROM {g['requests']} WHERE request_id = $i", {"i": rid})
    t, sess = r.column("trace_id")[0].as_py(), r.column("session_id")[0].as_py()
    q(con, f"SELECT * FROM {g['spans']} WHERE trace_id = $t", {"t": t})
    q(con, f"SELECT * FROM {g['requests']} WHERE trace_id = $t", {"t": t})
    q(con, f"SELECT * FROM {g['evals']} WHERE request_id = $i", {"i": rid})
    q(con, f"SELECT * FROM {g['requests']} WHERE session_id = $s ORDER BY ts", {"s": sess})


PAGES = [("Cost", ours_cost, plain_cost), ("Latency", ours_latency, plain_latency),
         ("Quality", ours_quality, plain_quality), ("Explore", ours_explore, plain_explore)]


def browse(root, days_end=BENCH_END) -> list[str]:
    """Start ``streamlit run app.py`` on ``root``, open every page in headless Chromium (first
    visit, then a second visit served from the result cache) and report load times and the
    Streamlit process's peak resident memory (VmHWM)."""
    import os
    import subprocess
    import sys
    import time

    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, free_port, wait_for_app

    port = free_port()
    env = {**os.environ, "SIGHTLINE_STORE": str(root), "SIGHTLINE_DEMO": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false"],
        cwd=str(Path(__file__).resolve().parents[1]), env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT)
    frm = (days_end - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    to = days_end.strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = []

    def peak_mib() -> float:
        for line in open(f"/proc/{proc.pid}/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
        return float("nan")

    try:
        time.sleep(5)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            pg = b.new_page(viewport={"width": 1400, "height": 1000})
            pg.goto(f"http://127.0.0.1:{port}/?range=custom&from={frm}&to={to}")
            wait_for_app(pg, timeout_ms=180_000)
            for visit in ("first", "second"):
                for path in ("cost", "latency", "quality", "explore", "request"):
                    extra = "&request=demo0-100" if path == "request" else ""
                    t0 = time.perf_counter()
                    pg.goto(f"http://127.0.0.1:{port}/{path}?range=custom&from={frm}&to={to}"
                            f"{extra}")
                    wait_for_app(pg, timeout_ms=180_000)
                    lines.append(f"| {path} | {visit} | {time.perf_counter() - t0:.1f} | "
                                 f"{peak_mib():,.0f} |")
            b.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return lines


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--browse", action="store_true",
                    help="also open each page of the 10M store in headless Chromium")
    browsing = ap.parse_args().browse
    rows = []
    for n in SIZES:
        root = demo_store(n)
        engine = Engine(Lake(root))
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        globs = {t: f"read_parquet('{root / t / '**' / '*.parquet'}')"
                 for t in ("requests", "evals", "events", "spans")}
        f = Filters.between(BENCH_END - timedelta(days=7), BENCH_END)
        s = bucket_seconds(f.duration)
        for name, ours_fn, plain_fn in PAGES:
            ours, plain = paired(lambda fn=ours_fn, e=engine, f=f, s=s: fn(e, f, s),
                                 lambda fn=plain_fn, c=con, g=globs, f=f, s=s: fn(c, g, f, s))
            rows.append((n, name, ours, plain))
            print(f"{n:>11,} requests  {name:<8} Sightline {ours * 1000:7.0f} ms   "
                  f"plain DuckDB {plain * 1000:7.0f} ms   ratio {ours / plain:.2f}", flush=True)
        rid = engine.scalar("SELECT trace_id FROM spans ORDER BY span_id LIMIT 1")
        ours, plain = paired(lambda e=engine, r=rid: ours_request(e, r),
                             lambda c=con, g=globs, r=rid: plain_request(c, g, r))
        rows.append((n, "Request", ours, plain))
        print(f"{n:>11,} requests  Request  Sightline {ours * 1000:7.0f} ms   "
              f"plain DuckDB {plain * 1000:7.0f} ms   ratio {ours / plain:.2f}", flush=True)
        engine.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    browse_table = ""
    if browsing:
        lines = browse(demo_store(SIZES[-1]))
        browse_table = (
            "\nBrowsing the 10M store in headless Chromium (`--browse`): `streamlit run app.py`, "
            "each page opened by URL with the last 7 days, first visit (queries run) then second "
            "visit (results cached); time until the script finished and the page was drawn, and "
            "the Streamlit process's peak resident memory so far. Goal: ≤ 2 GiB.\n\n"
            "| page | visit | load (s) | peak RSS (MiB) |\n|---|---|---|---|\n"
            + "\n".join(lines) + "\n")
    table = "\n".join(f"| {n:,} | {page} | {o * 1000:.0f} | {p * 1000:.0f} | {o / p:.2f} |"
                      for n, page, o, p in rows)
    from datetime import date
    body = f"""
Command: `python -m bench.pages_bench --browse` · machine: {machine()} · {date.today()}

Each analysis page's queries — exactly the lib.metrics calls the page makes, Polars frames and
Python post-processing included — warm, fastest of 7 runs alternating with the plain side
(shared machine), against the plainest DuckDB SQL asking the same questions over a
`read_parquet` glob of the same lake. Window: the pages' default, the store's last 7 days
(Explore: that week against the week before, error rate ranked over 10 dimensions incl. 2
attribute keys). Request: one request with its trace, evals and session.
Goal (issue 5): every page ≤ 1 s at 10M and ≤ 1.3× plain DuckDB.

| requests in store | page | Sightline (ms) | plain DuckDB (ms) | ratio |
|---|---|---|---|---|
{table}

Peak resident memory of the benchmark process (both stores, both engines): {peak:,.0f} MiB.
The figures move by ±30% between runs on this shared 2-core machine; ratios below 1 mean the
plain SQL (no column pruning through the views, more separate scans) was the slower one.
{browse_table}"""
    write_section("Analysis pages", body)
    print(body)


if __name__ == "__main__":
    main()
