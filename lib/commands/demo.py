"""``demo``: write realistic demo data into the store."""

from __future__ import annotations

import sys

from lib import demo, pricing
from lib.commands.base import UsageError, open_store_lake, parse_time, print_json
from lib.formatting import terminal_text

NAME = "demo"
HELP = "write realistic demo data (a month of traffic with planted incidents) into the store"


def add_arguments(p) -> None:
    p.add_argument("--days", type=int, default=30, help="days of data up to --end (default 30)")
    p.add_argument("--requests-per-day", type=int, default=10_000,
                   help="average requests per day (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--end", help="end of the data, ISO time (default: now)")


def run(args) -> int:
    if args.days <= 0 or args.requests_per_day <= 0:
        raise UsageError("--days and --requests-per-day must be positive")
    problem = pricing.overrides_problem()  # demo costs are priced like ingested ones
    if problem:
        raise UsageError(problem)
    lake = open_store_lake(args.store)
    own = []
    if (lake.root / "_manifest").is_dir():
        from lib.store.lake import removed_batches

        commits = lake.commits()
        gone = removed_batches(commits)  # (as `remove` tells the batches still in the store)
        own = [c for c in commits if c.kind == "ingest" and c.commit_id not in gone]
    if own:  # (demo rows mixed into real ones silently: totals no one can trust)
        print(f"warning: {terminal_text(lake.root)} holds {len(own):,} ingested batch(es) of "
              "your own; the "
              "demo's rows are added beside them (`python -m lib remove BATCH` takes a batch "
              "out, the Data page lists them)", file=sys.stderr)
    result = demo.write(lake, days=args.days, requests_per_day=args.requests_per_day,
                        seed=args.seed, end=parse_time(args.end))
    doc = {"store": str(lake.root), **result.__dict__}
    if args.json:
        print_json(doc)
    elif result.committed:
        print(f"wrote {result.requests:,} requests, {result.evals:,} evals, {result.events} events "
              f"and {result.spans:,} spans to {lake.root} in {result.seconds:.1f} s")
    else:
        print(f"demo data with these settings is already in {lake.root}: nothing written")
    return 0
