"""Many small files: what a cron job's folder or a bucket of Firehose objects costs per file.

A file of a few KB is mostly fixed cost: a DuckDB connection, a dozen statements to plan, a commit.
The bench writes ``--files`` canonical JSONL files of 10 rows (~3 KB each) and ingests them in
one run, in this process:

* from a local folder: in groups (the default), on the fast path a file at a time
  (``SIGHTLINE_INGEST_GROUP=0``) and on the exact SQL path (``SIGHTLINE_INGEST_FAST=0``);
* from S3: the same files as objects of a moto server started here on 127.0.0.1, in groups and
  an object at a time (the exact SQL path); moto answers in this process, so its own time is
  counted too: its GETs alone are measured as a floor;

against DuckDB in the same process converting each file to its own Parquet file (``COPY (SELECT
* FROM read_json(f)) TO …``, one statement per file: the plainest conversion that keeps files
apart, as an ingest must to name each one and skip it next time), and, for scale, one
statement over the whole folder. Automatic compaction runs as in production.

Run: ``python -m bench.small_files_bench [--files N] [--no-write]``. Results go into the
"## Small files" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import machine, write_section
from bench.ingest_bench import generate

ROWS_PER_FILE = 10


def _files(folder: Path, n: int) -> list[Path]:
    """``n`` files of ROWS_PER_FILE requests, file k holding minute k (as a Firehose delivery
    stream or a cron job writes them: a day is 1,440 files)."""
    folder.mkdir(parents=True)
    old = time.time() - 3600  # not "still being written" (lib/ingest/live.py)
    paths = []
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    for k in range(n):
        p = folder / f"part-{k:05d}.jsonl"
        generate(p, ROWS_PER_FILE, seed=k, spacing_s=60 / ROWS_PER_FILE,
                 start=t0 + timedelta(minutes=k))
        os.utime(p, (old, old))
        paths.append(p)
    return paths


def _ingest(lake_root: Path, sources: list[str], fast: bool, group: bool = True,
            **kw) -> tuple[float, int]:
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Lake

    os.environ["SIGHTLINE_INGEST_FAST"] = "1" if fast else "0"
    os.environ["SIGHTLINE_INGEST_GROUP"] = "1" if group else "0"
    try:
        t0 = time.perf_counter()
        report = ingest_paths(Lake(lake_root), sources, **kw)
        seconds = time.perf_counter() - t0
    finally:
        os.environ.pop("SIGHTLINE_INGEST_FAST", None)
        os.environ.pop("SIGHTLINE_INGEST_GROUP", None)
    stored = sum(sum(f.stored.values()) for f in report.files if f.stored)
    return seconds, stored


def _duckdb_per_file(paths: list[Path], out: Path) -> float:
    import duckdb

    out.mkdir()
    con = duckdb.connect()
    t0 = time.perf_counter()
    for i, p in enumerate(paths):
        con.execute(f"COPY (SELECT * FROM read_json('{p}')) TO '{out / f'{i}.parquet'}' "
                    "(FORMAT parquet)")
    seconds = time.perf_counter() - t0
    con.close()
    return seconds


def _duckdb_one_statement(folder: Path, out: Path) -> float:
    import duckdb

    con = duckdb.connect()
    t0 = time.perf_counter()
    con.execute(f"COPY (SELECT * FROM read_json('{folder}/*.jsonl')) TO '{out}' "
                "(FORMAT parquet)")
    seconds = time.perf_counter() - t0
    con.close()
    return seconds


def _s3(paths: list[Path], work: Path, alone: bool = True
        ) -> tuple[float, float | None, float, int]:
    """(ingest seconds in groups, one object at a time (None unless ``alone``), seconds of the
    GETs alone, rows stored) for the files as S3 objects."""
    import boto3
    from moto.server import ThreadedMotoServer

    for k, v in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(k, v)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=url)
        client.create_bucket(Bucket="logs")
        for p in paths:
            client.put_object(Bucket="logs", Key=f"firehose/{p.name}", Body=p.read_bytes())
        t0 = time.perf_counter()
        for p in paths:
            client.get_object(Bucket="logs", Key=f"firehose/{p.name}")["Body"].read()
        gets = time.perf_counter() - t0
        seconds, stored = _ingest(work / "s3-store", ["s3://logs/firehose/"], fast=True,
                                  s3_endpoint_url=url)
        if not alone:
            return seconds, None, gets, stored
        one_at_a_time, stored_alone = _ingest(work / "s3-alone", ["s3://logs/firehose/"],
                                              fast=True, group=False, s3_endpoint_url=url)
        assert stored == stored_alone, (stored, stored_alone)
        return seconds, one_at_a_time, gets, stored
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--groups-only", action="store_true",
                    help="only the default runs (in groups) and DuckDB's: for thousands of files, "
                         "where a file at a time takes minutes; prints, writes nothing")
    args = ap.parse_args(argv)  # (None: the command line's, [] under the runner)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    work = Path(tempfile.mkdtemp(prefix="sightline-small-"))
    try:
        n = args.files
        paths = _files(work / "in", n)
        kb = sum(p.stat().st_size for p in paths) / n / 1024
        _ingest(work / "warm", [str(paths[0])], fast=True)  # imports, first connection
        rows = n * ROWS_PER_FILE
        group_s, group_rows = _ingest(work / "group-store", [str(work / "in")], fast=True)
        if args.groups_only:
            s3_s, _, gets_s, s3_rows = _s3(paths, work, alone=False)
            assert group_rows == s3_rows == rows, (group_rows, s3_rows)
            per_file = _duckdb_per_file(paths, work / "duck")
            print(f"{n} files of {ROWS_PER_FILE} rows ({kb:.1f} KB each), a minute apart; "
                  f"ms per file: in groups {group_s / n * 1000:.1f} (local), "
                  f"{s3_s / n * 1000:.1f} (S3, moto); moto's GETs alone "
                  f"{gets_s / n * 1000:.1f}; DuckDB a statement per file "
                  f"{per_file / n * 1000:.1f}; total s: {group_s:.1f} local, {s3_s:.1f} S3")
            return
        fast_s, fast_rows = _ingest(work / "fast-store", [str(work / "in")], fast=True,
                                    group=False)
        exact_s, exact_rows = _ingest(work / "exact-store", [str(work / "in")], fast=False)
        s3_s, s3_alone_s, gets_s, s3_rows = _s3(paths, work)
        assert group_rows == fast_rows == exact_rows == s3_rows == rows, \
            (group_rows, fast_rows, exact_rows, s3_rows)
        per_file = _duckdb_per_file(paths, work / "duck")
        one = _duckdb_one_statement(work / "in", work / "all.parquet")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    from lib.ingest import grouped

    def ms(seconds: float) -> str:
        return f"{seconds / n * 1000:.1f}"

    table = "\n".join([
        "| run | s | ms per file | vs DuckDB, a statement per file |",
        "|---|---|---|---|",
        f"| DuckDB `read_json` → Parquet, a statement per file | {per_file:.2f} | "
        f"{ms(per_file)} | 1.00 |",
        f"| DuckDB, one statement over the folder | {one:.2f} | {ms(one)} | {one / per_file:.2f} |",
        f"| Sightline, local folder, in groups (the default) | {group_s:.2f} | "
        f"{ms(group_s)} | {group_s / per_file:.2f} |",
        f"| Sightline, local folder, fast path a file at a time (`SIGHTLINE_INGEST_GROUP=0`) | "
        f"{fast_s:.2f} | {ms(fast_s)} | {fast_s / per_file:.2f} |",
        f"| Sightline, local folder, exact SQL path | {exact_s:.2f} | {ms(exact_s)} | "
        f"{exact_s / per_file:.2f} |",
        f"| Sightline, S3 prefix (moto on 127.0.0.1), in groups (the default) | {s3_s:.2f} | "
        f"{ms(s3_s)} | {s3_s / per_file:.2f} |",
        f"| Sightline, S3 prefix, an object at a time (`SIGHTLINE_INGEST_GROUP=0`) | "
        f"{s3_alone_s:.2f} | {ms(s3_alone_s)} | {s3_alone_s / per_file:.2f} |",
        f"| moto's GETs of the same objects alone | {gets_s:.2f} | {ms(gets_s)} | "
        f"{gets_s / per_file:.2f} |",
    ])
    body = (f"Command: `python -m bench.small_files_bench --files {n}` · machine: {machine()} · "
            f"{time.strftime('%Y-%m-%d')}\n\n"
            f"{n} canonical JSONL files of {ROWS_PER_FILE} rows ({kb:.1f} KB each), ingested in "
            "one run in this process (automatic compaction included), against DuckDB converting "
            "each file to its own Parquet file in the same process.\n\n" + table + "\n\n"
            "A file this small is fixed cost: a dozen statements to plan (validation, dedup, "
            "pricing, the write), the commit and the report. In groups (lib/ingest/grouped.py) "
            f"up to {grouped.GROUP_FILES} files share one pre-pass and one write; each is still "
            "committed and reported as its own batch.")
    print(body)
    if not args.no_write:
        write_section("Small files", body)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
