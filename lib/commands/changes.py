"""``changes``: "what changed" between a window and a baseline, from the terminal (design §6).

Every value of every dimension ranked by its contribution to the change of the metric; the
definition is in :mod:`lib.metrics.explore`.
"""

from __future__ import annotations

from lib.commands.base import (
    UsageError,
    filter_values,
    parse_window,
    print_json,
    read_store,
)
from lib.filters import Filters
from lib.formatting import cut, terminal_text
from lib.metrics.explore import METRICS, changes, excess, headline

WRITES = False  # (a Ctrl-C has no batch to speak of)
NAME = "changes"
HELP = "what changed: dimension values ranked by their contribution to a metric's change"


def add_arguments(p) -> None:
    p.add_argument("--window", required=True, metavar="FROM..TO",
                   help="the window under study, half-open, ISO dates or times (UTC if no offset)")
    p.add_argument("--baseline", metavar="FROM..TO",
                   help="the baseline window (default: the period of equal length just before)")
    p.add_argument("--metric", required=True, choices=sorted(METRICS),
                   help="error_rate, p95_latency or cost_per_request")
    p.add_argument("--where", metavar="KEY=VALUE", action="append", default=[],
                   help="keep only requests where KEY (a filter key or attr.<key>) equals VALUE")
    p.add_argument("--top", type=int, default=15, help="contributors printed in text mode")


def run(args) -> int:
    if args.top < 1:  # (a slice [:-3] printed all but the last three, found in review)
        raise UsageError(f"--top takes a number of contributors, 1 or more, not {args.top}")
    start, end = parse_window(args.window)
    values = filter_values(args.where)
    window = Filters.between(start, end, **values)
    baseline = None
    if args.baseline:
        bs, be = parse_window(args.baseline)
        baseline = window.with_window(bs, be)
    engine, problems = read_store(args.store)
    doc = changes(engine, window, baseline, args.metric)
    doc["problems"] = problems
    if args.json:
        print_json(doc)
        return 1 if problems else 0
    print(terminal_text(headline(doc)))  # names the top value, from the logs
    print(f"window   {doc['window']['from']} → {doc['window']['to']}  n={doc['window']['n']:,}")
    print(f"baseline {doc['baseline']['from']} → {doc['baseline']['to']}  "
          f"n={doc['baseline']['n']:,}")
    if not doc["contributors"]:  # (no header over nothing: found in review)
        return 1 if problems else 0
    print(f"{'dimension':<16} {'value':<28} {'baseline':>10} {'window':>10} "
          f"{'share b→w':>13} {'explains':>9} {'beyond size':>11}")
    for c in doc["contributors"][: args.top]:
        def v(x):
            if x is None:
                return "–"
            if args.metric == "error_rate":
                return f"{x:.2%}"
            if args.metric == "p95_latency":
                return f"{x:,.0f} ms"
            return f"${x:.4f}"
        contrib = "–" if c["contribution"] is None else f"{c['contribution']:.0%}"
        ex = excess(c)
        value = cut(terminal_text(c["value"]), 28)  # from the logs
        print(f"{c['dimension'][:16]:<16} {value:<28} {v(c['baseline_value']):>10} "
              f"{v(c['window_value']):>10} "
              f"{c['baseline_share']:>5.0%}→{c['window_share']:<5.0%} {contrib:>9} "
              f"{'–' if ex is None else f'{ex:+.0%}':>11}")
    return 1 if problems else 0
