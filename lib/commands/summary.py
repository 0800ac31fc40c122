"""``summary``: totals for a window (design §6)."""

from __future__ import annotations

from lib.commands.base import (
    UsageError,
    parse_time,
    print_json,
    read_store,
)
from lib.formatting import cut, terminal_text
from lib.metrics.summary import summary

WRITES = False  # (a Ctrl-C has no batch to speak of)
NAME = "summary"
HELP = "totals for a window: requests, errors, tokens, cost and latency percentiles"


def add_arguments(p) -> None:
    p.add_argument("--from", dest="start", help="window start, ISO date or time (UTC if no offset)")
    p.add_argument("--to", dest="end", help="window end (exclusive)")
    p.add_argument("--group-by", metavar="COL", help="also break the totals down by COL")
    p.add_argument("--where", metavar="COL=VALUE", action="append", default=[],
                   help="keep only rows where COL equals VALUE (repeatable: columns all match, "
                        "a column given twice matches either value)")


def run(args) -> int:
    start, end = parse_time(args.start), parse_time(args.end)
    if start and end and start >= end:
        raise UsageError("--from must be before --to")
    where: dict[str, list[str]] = {}
    for item in args.where:
        if "=" not in item:
            raise UsageError(f"--where takes COL=VALUE, got {item!r}")
        col, value = item.split("=", 1)
        # A column given twice keeps both values (either matches), as `changes` and the URL
        # filters do: the second one replaced the first, and the totals were one value's alone.
        where.setdefault(col.strip(), []).append(value)
    engine, problems = read_store(args.store)
    try:
        doc = summary(engine, start, end, where, args.group_by)
    except KeyError as exc:
        raise UsageError(f"cannot filter or group on column {exc.args[0]!r}") from exc
    # Totals that leave rows out are a failed check (exit 1), said in the document too: a
    # weekly script reading the JSON alone mailed numbers 13% short.
    doc["problems"] = problems
    if args.json:
        print_json(doc)
    else:
        print(_text(doc))
    return 1 if problems else 0


def _text(doc: dict) -> str:
    def line(label, d):
        lat = d["latency_ms"]
        er = "–" if d["error_rate"] is None else f"{d['error_rate']:.2%}"
        p = " ".join(f"{k}={'–' if v is None else f'{v:,.0f}'}" for k, v in lat.items())
        cost = "$–" if d["cost_usd"] is None else f"${d['cost_usd']:,.2f}"
        return (f"{label:<24} {d['requests']:>10,} req  {d['errors']:>7,} err ({er})  "
                f"{cost}  unpriced {d['unpriced_requests']:,}  latency ms {p}")

    window = (f"{doc['from'] or 'the first request'} → {doc['to'] or 'the last'}"
              if doc["from"] or doc["to"] else "all requests (no --from or --to)")
    out = [f"window: {window}", line("total", doc),
           f"tokens: input {doc['input_tokens']:,} (cached {doc['cached_input_tokens']:,}), "
           f"output {doc['output_tokens']:,} (reasoning {doc['reasoning_tokens']:,})"]
    for key, g in doc.get("groups", {}).items():
        out.append(line(cut(terminal_text(key), 24), g))  # a value from the logs
    return "\n".join(out)
