"""``demo``: write realistic demo data into the store."""

from __future__ import annotations

import sys

from lib import demo, pricing
from lib.commands.base import UsageError, open_store_lake, parse_time, print_json
from lib.formatting import terminal_text

INTERRUPTED = "nothing was written (the demo is one batch); run it again"
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
    end = parse_time(args.end)
    own = []
    if (lake.root / "_manifest").is_dir():
        from lib.store.lake import removed_batches

        commits = lake.commits()
        gone = removed_batches(commits)  # (as `remove` tells the batches still in the store)
        own = [c for c in commits if c.kind == "ingest" and c.commit_id not in gone]
        earlier = _earlier_demo(commits, gone, args, end)
        if earlier is not None:
            raise UsageError(
                f"{terminal_text(lake.root)} already holds demo data of seed {args.seed} (batch "
                f"{earlier.commit_id}, ending {earlier.info.get('end')}): a second one would "
                "repeat its request ids and count its traffic twice; take it out first "
                f"(python -m lib remove {earlier.commit_id}), or give another --seed")
    if own:  # (demo rows mixed into real ones silently: totals no one can trust)
        print(f"warning: {terminal_text(lake.root)} holds {len(own):,} ingested batch(es) of "
              "your own; the "
              "demo's rows are added beside them (`python -m lib remove BATCH` takes a batch "
              "out, the Data page lists them)", file=sys.stderr)
    result = demo.write(lake, days=args.days, requests_per_day=args.requests_per_day,
                        seed=args.seed, end=end)
    doc = {"store": str(lake.root), **result.__dict__}
    if args.json:
        print_json(doc)
    elif result.committed:
        print(f"wrote {result.requests:,} requests, {result.evals:,} evals, {result.events} events "
              f"and {result.spans:,} spans to {lake.root} in {result.seconds:.1f} s")
    else:
        print(f"demo data with these settings is already in {lake.root}: nothing written")
    return 0


def _earlier_demo(commits, gone, args, end):
    """A live demo batch of ``args.seed`` that this run would not merely repeat (another end,
    size or length), or None. Its request ids are the seed's and the request's number
    (``demo0-17``), whatever the end: a second `demo` without --end a minute later stored every
    id twice and doubled every total, found in review. The same arguments and end stay a
    no-op (lib/demo.py's content hash)."""
    from datetime import UTC, datetime

    same = {"days": args.days, "requests_per_day": args.requests_per_day, "seed": args.seed,
            # (lib/demo.py ends the data on a whole minute)
            "end": (end or datetime.now(UTC)).replace(second=0, microsecond=0).isoformat()}
    for c in commits:
        if c.kind != "demo" or c.commit_id in gone or c.info.get("seed") != args.seed:
            continue
        if {k: c.info.get(k) for k in same} == same:
            continue  # (written again as it is: lib/demo.py commits nothing)
        return c
    return None
