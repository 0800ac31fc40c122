"""The manifest after a month of ingests every minute: what a new process pays to read it.

A cron job that ingests every minute commits 1,440 batches a day, and every run of it (and every
dashboard process that starts) reads every commit before it does anything. The bench builds a
store whose manifest is that month, 45,000 commits, shaped exactly as a real ingest and a real
automatic compaction write them (their templates are taken from a real run; the data files are
not written: only the manifest is read). Then, in new processes, best of 3, page cache warm (as
it is for a job that runs every minute):

* the commits read by ``Lake.commits()``, with the manifest checkpoint and without it, against
  DuckDB reading the same commit files (``read_json_objects`` over the folder: the plainest query
  that reads them all);
* the cron run itself: ``python -m lib ingest`` of one new 20-row file, with and without the
  checkpoint and on an empty store, against a new process converting the same file with DuckDB
  (``read_json`` → Parquet).

Run: ``python -m bench.manifest_bench [--commits N] [--no-write]``. Results go into the
"## Manifest after a month of ingests every minute" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import ROOT, machine, write_section

TITLE = "Manifest after a month of ingests every minute"
T0 = datetime(2026, 10, 1, tzinfo=UTC)
# Launches the command line in a new process; with "off", as if there were no checkpoints (none
# read, none written).
LAUNCH = """
import sys, time
t = time.perf_counter()
import lib.store.lake as lake
if sys.argv[1] == "off":
    lake.CHECKPOINT_EVERY = lake.CHECKPOINT_LOAD_MIN = 10 ** 12
from lib.cli import main
code = main(sys.argv[2:])
print(f"{time.perf_counter() - t:.4f}", file=sys.stderr)
sys.exit(code)
"""
READ_COMMITS = """
import sys, time
import lib.store.lake as lake
if sys.argv[1] == "off":
    lake.CHECKPOINT_EVERY = lake.CHECKPOINT_LOAD_MIN = 10 ** 12
t = time.perf_counter()
n = len(lake.Lake(sys.argv[2]).commits())
print(n, f"{time.perf_counter() - t:.4f}")
"""
DUCKDB_COMMITS = """
import sys, time, duckdb
t = time.perf_counter()
n = duckdb.sql(f"SELECT count(*) FROM read_json_objects('{sys.argv[1]}/_manifest/*.json')"
               ).fetchone()[0]
print(n, f"{time.perf_counter() - t:.4f}")
"""
DUCKDB_CONVERT = """
import sys, time
t = time.perf_counter()
import duckdb
duckdb.sql(f"COPY (SELECT * FROM read_json('{sys.argv[1]}')) TO '{sys.argv[2]}' (FORMAT parquet)")
print(f"{time.perf_counter() - t:.4f}")
"""


def _rows(i: int, n: int = 20) -> str:
    start = T0 + timedelta(minutes=i)
    return "".join(json.dumps({
        "request_id": f"m{i}-{j}", "ts": (start + timedelta(seconds=j)).isoformat(),
        "provider": "openai", "model": "gpt-4o", "input_tokens": 1200, "output_tokens": 300,
        "latency_ms": 850.0, "status": "ok", "service": "api", "feature": "chat"}) + "\n"
        for j in range(n))


def _old_file(path: Path, i: int) -> Path:
    path.write_text(_rows(i))
    os.utime(path, (time.time() - 600,) * 2)  # not a file still being written
    return path


def templates(work: Path) -> tuple[dict, dict]:
    """A real ingest commit and a real automatic compaction commit, as the pipeline writes them."""
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Lake

    lake = Lake(work / "template-store")
    (work / "template-in").mkdir()
    for i in range(17):
        ingest_paths(lake, [str(_old_file(work / "template-in" / f"minute-{i}.jsonl", i))])
    commits = lake.commits()
    return (next(c for c in commits if c.kind == "ingest").__dict__,
            next(c for c in commits if c.kind == "compact").__dict__)


def build(root: Path, n: int, ingest: dict, compaction: dict, logs: Path,
          every: int = 17) -> None:
    """``n`` commits: an ingest a minute of a new file in the folder ``logs`` (written there, so
    a run over the folder skips each by its stat, as it would have), and a compaction of the
    day's small files each time ``every`` of them are there (as automatic compaction does)."""
    folder = root / "_manifest"
    folder.mkdir(parents=True)
    logs.mkdir(parents=True, exist_ok=True)
    small: dict[str, list[str]] = {}
    for i in range(n):
        at = T0 + timedelta(minutes=i)
        day = at.strftime("%Y-%m-%d")
        cid = hashlib.md5(f"c{i}".encode()).hexdigest()
        c = copy.deepcopy(ingest)
        path = f"requests/date={day}/{cid}-0.parquet"
        source = _old_file(logs / f"minute-{i:06d}.jsonl", i)
        st = source.stat()
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        c.update(commit_id=cid, content_hash=digest, source=str(source),
                 committed_at=(at + timedelta(seconds=5)).isoformat(timespec="microseconds"),
                 added=[{**c["added"][0], "path": path}])
        c["info"]["file"].update(path=str(source), ino=st.st_ino, size=st.st_size,
                                 mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns)
        c["info"]["read"].update(sha256=digest, end=st.st_size)
        c["info"]["bytes"] = st.st_size
        (folder / f"{cid}.json").write_text(json.dumps(c, indent=1, sort_keys=True))
        small.setdefault(day, []).append(path)
        if len(small[day]) >= every:
            k = copy.deepcopy(compaction)
            kid = hashlib.md5(f"k{i}".encode()).hexdigest()
            merged = f"requests/date={day}/{kid}-0.parquet"
            k.update(commit_id=kid, removed=small[day],
                     committed_at=(at + timedelta(seconds=6)).isoformat(timespec="microseconds"),
                     added=[{**k["added"][0], "path": merged}])
            (folder / f"{kid}.json").write_text(json.dumps(k, indent=1, sort_keys=True))
            small[day] = [merged]


def _best(cmd: list[str], runs: int = 3, env: dict | None = None) -> tuple[float, str]:
    """Best wall time (s) of ``cmd`` in a new process, and its last output."""
    best, out = float("inf"), ""
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        if proc.returncode:
            raise SystemExit(f"{cmd} failed: {proc.stderr[-2000:]}")
        best, out = min(best, wall), proc.stdout + proc.stderr
    return best, out


def _best_inside(cmd: list[str], runs: int = 3) -> tuple[float, float, int]:
    """Best in-process time, best wall time and the count a READ_COMMITS-like child prints."""
    inside, wall, count = float("inf"), float("inf"), 0
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
        wall = min(wall, time.perf_counter() - t)
        n, s = out.split()
        inside, count = min(inside, float(s)), int(n)
    return inside, wall, count


def _cron_runs(store: Path, inbox: Path, mode: str, first: int, runs: int = 3,
               folder: bool = False) -> float:
    """Best wall time of ``runs`` cron runs, each ingesting one new file of ``inbox`` into
    ``store``: given that file, or (``folder``) the whole folder."""
    best = float("inf")
    for r in range(runs):
        path = _old_file(inbox / f"{mode}-{r}.jsonl", first + r)
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", LAUNCH, mode, "ingest",
                               str(inbox if folder else path), "--store", str(store)],
                              cwd=ROOT, capture_output=True, text=True)
        best = min(best, time.perf_counter() - t)
        if proc.returncode or "stored 20 requests" not in proc.stdout:
            raise SystemExit(f"cron run failed: {proc.stdout} {proc.stderr[-2000:]}")
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=45_000)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    from lib.store import Lake

    with tempfile.TemporaryDirectory(prefix="sightline-manifest-") as tmp:
        work = Path(tmp)
        ingest, compaction = templates(work)
        store = work / "store"
        t = time.perf_counter()
        logs = work / "logs"
        build(store, args.commits, ingest, compaction, logs)
        lake = Lake(store)
        with lake.writer_lock():
            checkpoint = lake._maybe_checkpoint()
        total = len(lake.commits())
        print(f"built {total:,} commits in {time.perf_counter() - t:.1f} s; checkpoint "
              f"{checkpoint.stat().st_size / 2**20:.0f} MB; manifest folder "
              f"{sum(p.stat().st_size for p in (store / '_manifest').iterdir()) / 2**20:.0f} MB")

        results = {}
        for mode in ("on", "off"):
            results[f"read_{mode}"] = _best_inside(
                [sys.executable, "-c", READ_COMMITS, mode, str(store)])
        results["read_duckdb"] = _best_inside([sys.executable, "-c", DUCKDB_COMMITS, str(store)])
        for key in ("read_on", "read_off", "read_duckdb"):
            if results[key][2] != total:
                raise SystemExit(f"{key} read {results[key][2]} commits, not {total}")

        inbox = work / "inbox"
        inbox.mkdir()
        first = args.commits + 4 * 1440  # days no commit touched: no data file is read
        results["cron_on"] = _cron_runs(store, inbox, "on", first)
        results["cron_off"] = _cron_runs(store, inbox, "off", first + 10)
        results["cron_empty"] = _cron_runs(work / "empty-store", inbox, "on", first + 20)
        results["cron_folder"] = _cron_runs(store, logs, "on", first + 40, folder=True)
        sample = _old_file(inbox / "sample.jsonl", first + 30)
        results["cron_duckdb"] = _best([sys.executable, "-c", DUCKDB_CONVERT, str(sample),
                                        str(work / "sample.parquet")])[0]

    on, off, duck = results["read_on"], results["read_off"], results["read_duckdb"]
    for name, r in (("checkpoint", on), ("one file per commit", off), ("DuckDB", duck)):
        print(f"read {total:,} commits ({name}): {r[0]:.2f} s in the process, {r[1]:.2f} s "
              "with its start")
    for key in ("cron_on", "cron_off", "cron_empty", "cron_folder", "cron_duckdb"):
        print(f"{key}: {results[key]:.2f} s")
    if args.no_write:
        return
    cron, duck_cron = results, results["cron_duckdb"]
    read_rows = "\n".join(
        f"| {label} | {r[0]:.2f} s | {r[1]:.2f} s | {r[0] / duck[0]:.2f}× |" for label, r in (
            ("`Lake.commits()`, checkpoint + commits after it", on),
            ("`Lake.commits()`, one file per commit (no checkpoint)", off),
            ("DuckDB `read_json_objects('_manifest/*.json')`, count", duck)))
    cron_rows = "\n".join(
        f"| {label} | {cron[key]:.2f} s | {cron[key] / duck_cron:.1f}× |" for label, key in (
            (f"store of {total:,} commits, checkpoint", "cron_on"),
            (f"store of {total:,} commits, no checkpoint", "cron_off"),
            ("empty store", "cron_empty"),
            (f"store of {total:,} commits, checkpoint, the run given the folder of the "
             f"{args.commits:,} files read before and the new one", "cron_folder"),
            ("DuckDB `read_json` → Parquet of the same file, in a new process", "cron_duckdb")))
    body = f"""Command: `python -m bench.manifest_bench` · machine: {machine()} · \
{datetime.now(UTC):%Y-%m-%d}

A store whose manifest is a month of a cron job ingesting a new file every minute: {total:,}
commits (ingests, and the automatic compactions of each day's small files), each shaped exactly as
the pipeline writes it (templates from a real run). New processes, best of 3, page cache warm.

| reading every commit in a new process | in the process | with the process's start | vs DuckDB |
|---|---|---|---|
{read_rows}

| the cron run: `python -m lib ingest` of one new 20-row file | wall time | vs DuckDB |
|---|---|---|
{cron_rows}

A checkpoint (every {_every()} commits, lib/store/lake.py) holds the commits in one file; it is a
cache of the commit files, which stay the truth. The rest of the cron run over the empty store's
is the process start (Python and the libraries) and the passes over every commit that the run
makes once: what earlier runs read (lib/ingest/memo.py), the reads a growing file goes on from
(lib/ingest/appended.py), the live files.
"""
    write_section(TITLE, body)


def _every() -> int:
    from lib.store import lake

    return lake.CHECKPOINT_EVERY


if __name__ == "__main__":
    main()
