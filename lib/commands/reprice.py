"""``reprice [--prices FILE] [--dry-run]``: recompute every request's cost_usd atomically."""

from __future__ import annotations

from lib.commands.base import UsageError, open_existing_lake, print_json
from lib.formatting import terminal_text
from lib.pricing import load_overrides, reprice

INTERRUPTED = ("nothing was changed (the new costs are one commit, published only once every "
               "day is repriced); run it again")
NAME = "reprice"
HELP = "recompute cost_usd of all requests after prices or overrides changed; report the change"


def add_arguments(p) -> None:
    p.add_argument("--prices", metavar="FILE",
                   help="price overrides YAML (default: $SIGHTLINE_PRICES, else prices.yaml)")
    p.add_argument("--dry-run", action="store_true", help="report the change, write nothing")


def run(args) -> int:
    lake = open_existing_lake(args.store)
    try:
        overrides = load_overrides(args.prices)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    doc = reprice(lake, overrides=overrides, dry_run=args.dry_run)
    if args.json:
        print_json(doc)
        return 0
    verb = "would change" if args.dry_run else "changed"
    print(f"{verb} {doc['changed_rows']:,} of {doc['rows']:,} requests; total cost "
          f"${doc['before_usd']:,.6f} → ${doc['after_usd']:,.6f} "
          f"({doc['after_usd'] - doc['before_usd']:+,.6f}); unpriced "
          f"{doc['unpriced_before']:,} → {doc['unpriced_after']:,}")
    if doc["overrides_matching_nothing"]:
        print("note: price override(s) that match no stored request (a typo in the model name?): "
              + ", ".join(terminal_text(n) for n in doc["overrides_matching_nothing"]))
    return 0
