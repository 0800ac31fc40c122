"""Ingestion benchmark: ``python -m bench.ingest_bench [--rows N] [--big-mb M]``.

1. Canonical JSONL, N rows (default 1M): Sightline's full ingest (parse, validate, price, dedupe,
   Parquet) against plain DuckDB ``read_json`` → Parquet of the same file; prints the ratio.
2. Peak RSS of a separate process ingesting a large generated JSONL file (default 2 GB... of
   ``--big-mb``), against the file's size: memory must stay bounded, not grow with the file.

Results are printed and written into the "## Ingestion" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from bench.common import PEAK_RSS_MB_EXPR

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-3-5-sonnet"),
          ("self-hosted", "llama-3.1-8b-instruct")]


def generate(path: Path, rows: int, seed: int = 0, spacing_s: float = 2.5,
             start: datetime | None = None) -> int:
    """Write ``rows`` canonical requests as JSONL, ``spacing_s`` seconds apart (the default spreads
    1M rows over 29 days) from ``start`` (default 2026-03-01); returns the file size in bytes."""
    rng = random.Random(seed)
    t0 = start or datetime(2026, 3, 1, tzinfo=UTC)
    with open(path, "w") as fh:
        buf = []
        for i in range(rows):
            provider, model = MODELS[i % len(MODELS)]
            inp = rng.randint(50, 4000)
            out = rng.randint(10, 800)
            buf.append(json.dumps({
                "request_id": f"req-{seed}-{i}",
                "ts": (t0 + timedelta(seconds=i * spacing_s)).isoformat().replace("+00:00", "Z"),
                "provider": provider, "model": model, "operation": "chat",
                "input_tokens": inp, "cached_input_tokens": inp // 4, "output_tokens": out,
                "latency_ms": round(rng.uniform(80, 4000), 1), "status": "ok",
                "service": "api", "environment": "prod", "feature": f"f{i % 7}",
                "customer_id": f"c{i % 50}", "attributes": {"region": "eu"}}))
            if len(buf) == 10_000:
                fh.write("\n".join(buf) + "\n")
                buf = []
        if buf:
            fh.write("\n".join(buf) + "\n")
    return path.stat().st_size


def bench_jsonl(rows: int, work: Path, spacing_s: float = 2.5) -> dict:
    path = work / "requests.jsonl"
    size = generate(path, rows, spacing_s=spacing_s)
    # Write the new file out first: an fsync during the ingest (of its Parquet files) would
    # otherwise also wait for these hundreds of MB of dirty pages (ext4 orders data before the
    # journal), which the baseline, never fsyncing, does not.
    os.sync()
    con = duckdb.connect()
    t = time.perf_counter()
    con.execute(f"COPY (SELECT * FROM read_json('{path}')) TO '{work / 'plain.parquet'}' "
                "(FORMAT parquet, COMPRESSION zstd)")
    duck_s = time.perf_counter() - t
    con.close()
    t = time.perf_counter()
    # A fresh store per run: both runs' files hold the same request ids, so a shared store would
    # make the second run a re-ingest whose rows are duplicates (and time the dedupe rewrite).
    store = work / f"store-{spacing_s:g}"
    out = _ingest_in_subprocess(store, path)
    ours_s = time.perf_counter() - t  # whole process: interpreter, imports, ingest
    inner_s = out["seconds"]  # the ingest call alone, like the DuckDB baseline
    path.unlink()
    shutil.rmtree(store)
    if out["stored"].get("requests") != rows:
        raise SystemExit(f"the benchmark's ingest stored {out['stored']}, not {rows} requests")
    return {"rows": rows, "days": math.ceil(rows * spacing_s / 86400), "file_mb": size / 2**20,
            "duckdb_s": duck_s, "sightline_s": ours_s,
            "ingest_s": inner_s, "ratio": ours_s / duck_s, "ratio_ingest": inner_s / duck_s,
            "stored": out["stored"], "rows_per_s": rows / inner_s,
            "peak_rss_mb": out["peak_rss_mb"], "path": out["path"], "phases": out["phases"]}


def bench_grown(rows: int, added: int, work: Path) -> dict:
    """A file read once, then grown by ``added`` rows (a cron run over a log being appended to):
    the run after, against DuckDB reading the grown file into Parquet (it cannot start in the
    middle of a file) and reading only the added rows (the floor for reading them)."""
    path, tail = work / "grows.jsonl", work / "added.jsonl"
    generate(path, rows, seed=3)
    generate(tail, added, seed=4)
    store = work / "store-grows"
    _ingest_in_subprocess(store, path)
    with open(path, "ab") as fh:
        fh.write(tail.read_bytes())
    os.sync()
    con = duckdb.connect()
    baselines = {}
    for what, source in (("whole", path), ("added", tail)):
        t = time.perf_counter()
        con.execute(f"COPY (SELECT * FROM read_json('{source}')) TO '{work / 'plain.parquet'}' "
                    "(FORMAT parquet, COMPRESSION zstd)")
        baselines[what] = time.perf_counter() - t
    con.close()
    out = _ingest_in_subprocess(store, path)
    size = path.stat().st_size
    path.unlink()
    tail.unlink()
    shutil.rmtree(store)
    if out["stored"].get("requests") != added:
        raise SystemExit(f"the grown file's run stored {out['stored']}, not {added} requests")
    return {"rows": rows, "added": added, "file_mb": size / 2**20, "ingest_s": out["seconds"],
            "whole_s": baselines["whole"], "added_s": baselines["added"]}


def _ingest_in_subprocess(store: Path, path: Path) -> dict:
    code = ("import json, resource, sys, time; from lib.store import Lake; "
            "from lib.ingest.pipeline import ingest_paths; from lib.ingest import fastpath; "
            "t = time.perf_counter(); "
            "r = ingest_paths(Lake(sys.argv[1]), [sys.argv[2]], compact_min_files=0); "
            "print(json.dumps({'stored': r.totals()['stored'], 'errors': r.totals()['errors'], "
            "'seconds': time.perf_counter() - t, 'path': fastpath.LAST.get('outcome'), "
            "'phases': {k: round(v, 2) for k, v in fastpath.LAST.items() if k.endswith('_s')}, "
            f"'peak_rss_mb': {PEAK_RSS_MB_EXPR}}}))")
    proc = subprocess.run([sys.executable, "-c", code, str(store), str(path)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_memory(mb: int, work: Path, name: str = "big") -> dict:
    path = work / f"{name}.jsonl"
    rows_per_mb = 2940  # generate() writes about 357 bytes a row
    size = generate(path, mb * rows_per_mb, seed=1)
    out = _ingest_in_subprocess(work / f"store-{name}", path)
    path.unlink()
    idle = subprocess.run([sys.executable, "-c", "import lib.ingest.pipeline, "
                           f"lib.ingest.formats.canonical; print({PEAK_RSS_MB_EXPR})"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return {"file_mb": size / 2**20, "peak_rss_mb": out["peak_rss_mb"],
            "imports_rss_mb": float(idle.stdout.strip()), "seconds": out["seconds"],
            "stored": out["stored"]}


def _phases(phases: dict) -> str:
    names = {"hashed_s": "hashed", "prepass_s": "keys and prices read",
             "copy_s": "validated, priced and written", "load_s": "deduplicated"}
    return ", ".join(f"{names.get(k, k)} {v:.2f}" for k, v in phases.items())


def write_section(text: str) -> None:
    """Replace (or append) the "## Ingestion" section of docs/benchmarks.md."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    lines = current.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == "## Ingestion"), None)
    if start is None:
        new = current.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        tail = [""] + lines[end:] if end < len(lines) else []
        new = "\n".join(lines[:start] + text.rstrip("\n").splitlines() + tail) + "\n"
    DOC.write_text(new if new.endswith("\n") else new + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--big-mb", type=int, default=2048)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sightline-bench-") as tmp:
        work = Path(tmp)
        # The same row count over 29 days (a backfill) and in one day (a daily log file).
        runs = [bench_jsonl(args.rows, work, spacing_s) for spacing_s in (2.5, 86_400 / args.rows)]
        for j in runs:
            print(f"JSONL {j['rows']:,} rows over {j['days']} day(s) ({j['file_mb']:.0f} MB): "
                  f"DuckDB read_json→Parquet {j['duckdb_s']:.2f} s, Sightline ingest "
                  f"{j['ingest_s']:.2f} s ({j['rows_per_s']:,.0f} rows/s), ratio "
                  f"{j['ratio_ingest']:.2f}×; whole process {j['sightline_s']:.2f} s, ratio "
                  f"{j['ratio']:.2f}×; {j['path']} path, peak RSS {j['peak_rss_mb']:,.0f} MB; "
                  f"phases (s since start) {j['phases']}")
        grown = bench_grown(args.rows, max(args.rows // 100, 1), work)
        print(f"a {grown['rows']:,}-row file grown by {grown['added']:,} rows: the run after "
              f"{grown['ingest_s']:.2f} s; DuckDB read_json→Parquet of the grown file "
              f"{grown['whole_s']:.2f} s, of the added rows alone {grown['added_s']:.2f} s")
        small = bench_memory(max(args.big_mb // 8, 16), work, "small")
        m = bench_memory(args.big_mb, work)
        for r in (small, m):
            print(f"file {r['file_mb']:,.0f} MB: peak RSS {r['peak_rss_mb']:,.0f} MB "
                  f"(imports alone {r['imports_rss_mb']:,.0f} MB), {r['seconds']:.1f} s")
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, "
               f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB RAM, "
               f"Python {platform.python_version()}, DuckDB {duckdb.__version__}")
    rows1 = "\n".join(
        f"| canonical JSONL, {j['rows']:,} rows over {j['days']} day(s) ({j['file_mb']:.0f} MB) "
        f"→ Parquet | {j['duckdb_s']:.2f} s (`read_json` → `COPY … TO parquet`) "
        f"| {j['ingest_s']:.2f} s ({j['rows_per_s']:,.0f} rows/s: hash, parse, validate, "
        f"price, dedupe, commit; {j['path']} path, peak RSS {j['peak_rss_mb']:,.0f} MB; phases "
        f"in s since the start: {_phases(j['phases'])}); {j['sightline_s']:.2f} s as a whole "
        f"new process | {j['ratio_ingest']:.2f}× ({j['ratio']:.2f}× with process start) |"
        for j in runs)
    rows1 += (
        f"\n| canonical JSONL of {grown['rows']:,} rows read before, grown by "
        f"{grown['added']:,} rows ({grown['file_mb']:.0f} MB): the run after (a cron run over a "
        f"log being appended to) | {grown['whole_s']:.2f} s (`read_json` → `COPY … TO parquet` "
        f"of the grown file: DuckDB cannot start mid-file); {grown['added_s']:.2f} s of the added "
        f"rows alone, as a file of their own | {grown['ingest_s']:.2f} s (hash of the bytes "
        "read before, to prove they are unchanged, then only the added ones are read: "
        f"lib/ingest/appended.py) | {grown['ingest_s'] / grown['whole_s']:.2f}× "
        f"({grown['ingest_s'] / grown['added_s']:.1f}× the added rows alone) |")
    row2 = "\n".join(
        f"| canonical JSONL | {r['file_mb']:,.0f} MB | {r['peak_rss_mb']:,.0f} MB "
        f"| {r['imports_rss_mb']:,.0f} MB | {r['seconds']:.1f} s |" for r in (small, m))
    load = os.getloadavg()[0]
    worst = max(j["ratio_ingest"] for j in runs)
    verdict = ("The ≤ 1.5× target is met." if worst <= 1.5 else
               f"The ≤ 1.5× target is not met (up to {worst:.1f}×). Beyond the baseline's one "
               "read and write of the columns the file has, the fast path hashes the file, reads "
               "it once more (every line's keys, which must all be canonical, and the (provider, "
               "model, day) to price), reads every value as text and types and checks it with "
               "the exact path's validation SQL (a number the baseline would truncate or a "
               "boolean it would turn into 1 must not pass), prices, and writes the canonical "
               "columns one file per day.")
    verdict += (f" The machine is shared (1-minute load average {load:.1f} at the end of the "
                "run on 2 cores), so wall times, the baseline's most of all, vary between runs.")
    verdict = textwrap.fill(verdict, 100)
    text = f"""## Ingestion

Command: `python -m bench.ingest_bench --rows {args.rows} --big-mb {args.big_mb}`
({datetime.now(UTC).strftime('%Y-%m-%d')}, {machine}).

| measure | DuckDB baseline | Sightline | ratio |
|---|---|---|---|
{rows1}

| large file | size | peak RSS of the ingest process | RSS after imports only | time |
|---|---|---|---|---|
{row2}

How: a local canonical JSONL file (plain or gzip) takes the optimistic fast path
(lib/ingest/fastpath.py): SHA-256 of the content first (a file seen before is a no-op before any
parsing), then DuckDB reads it itself: one `read_json` pass of each line as a map (its keys, the
prices to look up), then one `read_json` → validation SQL → pricing → `COPY … TO` Parquet pass
(`PARTITION_BY` day when the file spans several days), files adopted into one manifest commit. Keys
that are not canonical columns are read as JSON values and folded into `attributes` with the exact
path's text (1M rows with two extra keys, measured 2026-11-25: 3.7 s, against 16.0 s on the exact
path). A file it cannot prove clean (a bad line or row, a key twice) goes to the exact path: parsed,
typed, checked, deduplicated and priced by DuckDB in segments of 32 MiB of text with numbered lines
for the quarantine. The fast path keeps the price tables as the hashed side of its joins
(`disabled_optimizers = 'build_side_probe_side'`): not knowing `read_json`'s row count, DuckDB
swapped them past ~1M rows and hashed the file's rows (the 2 GiB file: 42.6 s before, measured
2026-11-25). Either way memory is bounded (DuckDB memory limits, spilling under the lake's
`_tmp`): peak RSS grows far slower than the file (tests/ingest/test_memory.py checks it).
{verdict}

Where the floor is (measured 2026-11-25 on the 1-day file, one statement at a time): reading
the file's 15 keys as text and writing them to one Parquet file, with no check at all, takes
1.1 s (1.3× the baseline); the key pre-pass 0.5-0.7 s (`read_json` into a map, or `json_keys`:
any way DuckDB has to see a line's keys parses the line); the validation SQL +0.4 s; pricing
+0.05 s; `PARTITION_BY` day +0.4 s; SHA-256 0.24 s. DuckDB's typed reading, which makes the
baseline fast, cannot stand in for the checks: past its sample it reads 12.5 into an integer
column as 12 and `true` as 1, silently, and its `maximum_depth = 1` mode (keys checked for free)
costs as much again to unquote the values. So with these guarantees the fast path stays near 3×.

"""
    if not args.no_write:
        write_section(text)
        print(f"wrote the Ingestion section of {DOC}")


if __name__ == "__main__":
    main()
