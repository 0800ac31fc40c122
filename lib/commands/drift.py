"""``drift``: the drift table of two windows, from the terminal (design §6).

The Drift page's table (:func:`lib.metrics.drift.drift_table`: every column of the requests
tested from the reference window to the current one, the p-values adjusted together by
Benjamini–Hochberg), for scripts as design §6's JSON, for people as text.
"""

from __future__ import annotations

import sys

from lib.commands.base import (
    UsageError,
    filter_values,
    finite_or_none,
    parse_window,
    print_json,
    read_store,
)
from lib.filters import Filters
from lib.formatting import cut, duration, number, terminal_text

# (lib.metrics.drift is imported where it is used: it loads SciPy, a second of every other
# command's start)

WRITES = False  # (a Ctrl-C has no batch to speak of)
NAME = "drift"
HELP = "the drift table: each request column tested from a reference window to the current one"

# Design §6's statuses, as `compare`'s verdicts are spelled (a word a shell script matches).
STATUSES = {"drift": "drift", "no drift": "no_drift", "insufficient data": "insufficient_data"}
COLUMN_KEYS = ("column", "kind", "method", "statistic", "p_value", "p_adjusted", "threshold",
               "psi", "n_ref", "n_cur", "status")


def add_arguments(p) -> None:
    p.add_argument("--reference", required=True, metavar="FROM..TO",
                   help="the reference window, half-open, ISO dates or times (UTC if no offset)")
    p.add_argument("--current", required=True, metavar="FROM..TO",
                   help="the current window, compared with the reference")
    p.add_argument("--columns", nargs="+", metavar="COL", type=lambda v: v.strip(),
                   help="only these columns (default: every column the Drift page tests: "
                        "input_tokens, latency_ms, model, feature …); the p-values are adjusted "
                        "over all of them, as the Drift page adjusts them")
    p.add_argument("--where", metavar="KEY=VALUE", action="append", default=[],
                   help="keep only requests where KEY (a filter key or attr.<key>) equals VALUE, "
                        "on both sides (repeatable)")


def run(args) -> int:
    from lib.metrics import drift

    cur_start, cur_end = parse_window(args.current)
    ref_start, ref_end = parse_window(args.reference)
    known = [*drift.NUMERIC, *drift.CATEGORICAL]
    columns = list(dict.fromkeys(c for item in args.columns or [] for c in item.split(",")
                                 if c)) or known
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise UsageError(f"no drift column {', '.join(map(repr, unknown))}; the columns are "
                         + ", ".join(known))
    current = Filters.between(cur_start, cur_end, **filter_values(args.where))
    reference = current.with_window(ref_start, ref_end)
    engine, problems = read_store(args.store)
    _warn_about_the_reference(engine, current, reference)
    table = drift.drift_table(engine, current, reference)
    doc = document(table, current, reference, columns)
    doc["problems"] = problems
    if args.json:
        print_json(doc)
    else:
        print(_text(doc, table))
    return 1 if problems else 0


def document(table, current: Filters, reference: Filters, columns: list[str]) -> dict:
    """Design §6's ``drift --json`` of :func:`lib.metrics.drift.drift_table`'s ``table``, its
    rows of ``columns`` (in the table's order: drifting first)."""
    from lib.stats.stattests import STAT_TESTS

    # The table's method names back to the test registry's (``ks``, ``jensenshannon``): a
    # script matches on a name, not on a page's wording ("K-S p-value").
    methods = {t.display_name: name for name, t in STAT_TESTS.items()}
    # A window's rows: a categorical column counts every request (a null as "(none)").
    n = {side: int(table.filter(table["kind"] == "categorical")[f"n_{side}"].max() or 0)
         for side in ("ref", "cur")}
    rows = []
    for r in table.iter_rows(named=True):
        if r["column"] not in columns:
            continue
        row = {k: finite_or_none(r[k]) for k in COLUMN_KEYS}
        row["method"] = methods.get(r["method"], r["method"])
        row["status"] = STATUSES.get(r["status"], r["status"])
        # (a threshold of infinity, "no cut-off: a few rare values", has no JSON number: null)
        rows.append(row)
    tested = [r for r in rows if r["status"] != "insufficient_data"]
    drifted = sum(r["status"] == "drift" for r in tested)
    return {
        "reference": {"from": reference.start.isoformat(), "to": reference.end.isoformat(),
                      "n": n["ref"]},
        "current": {"from": current.start.isoformat(), "to": current.end.isoformat(),
                    "n": n["cur"]},
        "columns": rows,
        # Of the columns tested: one with too few rows is no "no drift" (design §5), so it
        # counts on neither side; null when none could be tested.
        "drift_share": drifted / len(tested) if tested else None,
        # The Drift page's headline ("Drifted: …" / "No column drifted"): a column drifted.
        # (Design §6 names the field without a rule; a share cut-off, as some tools use, would
        # be a number of our own.) Null when no column could be tested.
        "dataset_drift": drifted > 0 if tested else None,
    }


def _warn_about_the_reference(engine, current: Filters, reference: Filters) -> None:
    """On stderr, what the Drift page warns of: a reference that overlaps the current window
    (a drift shows smaller), or that the store covers only in part."""
    from lib.metrics import drift

    if shared := drift.reference_overlap(current, reference):
        print(f"warning: the reference overlaps the current window by {duration(shared)}: "
              "those requests are on both sides, so a drift shows smaller than it is",
              file=sys.stderr)
    covered, first = drift.reference_coverage(engine, reference)
    if first is None or covered >= 0.9:  # (the page's rule: 90% is like-for-like)
        return
    if covered <= 0:  # ("only 0 s of the reference's 1 day")
        print(f"warning: the reference has no data: the store's requests begin at "
              f"{first.isoformat()}, after it ends", file=sys.stderr)
    else:
        print(f"warning: only {duration(reference.duration * covered)} of the reference's "
              f"{duration(reference.duration)} have data (the store's requests begin at "
              f"{first.isoformat()}): that part stands for the whole reference",
              file=sys.stderr)


def _text(doc: dict, table) -> str:
    ref, cur = doc["reference"], doc["current"]
    out = [f"reference {ref['from']} → {ref['to']}  n={ref['n']:,}",
           f"current   {cur['from']} → {cur['to']}  n={cur['n']:,}"]
    drifted = [r["column"] for r in doc["columns"] if r["status"] == "drift"]
    tested = [r for r in doc["columns"] if r["status"] != "insufficient_data"]
    if drifted:
        out.append(f"drifted: {', '.join(drifted)} ({len(drifted)} of {len(tested)} tested)")
    elif not tested:
        out.append("too few rows to test any column (at least 30 a side)")
    else:
        out.append(f"no column drifted ({len(tested)} tested)")
    out.append(f"{'column':<14} {'status':<18} {'test':<13} {'statistic':>10} {'cut-off':>9} "
               f"{'p (BH)':>9} {'PSI':>7} {'rows ref → cur':>22}")
    notes = dict(zip(table["column"].to_list(), table["note"].to_list(), strict=True))
    for r in doc["columns"]:
        def num(v, digits=4):
            return "–" if v is None else number(v, digits)

        tried = r["status"] != "insufficient_data"
        # (a distance against a constant reference is infinite, null in the JSON)
        statistic = ("∞" if r["statistic"] is None and tried and r["p_value"] is None
                     else num(r["statistic"]))
        p = "–" if r["p_adjusted"] is None else f"{r['p_adjusted']:.3g}"
        psi = "–" if r["psi"] is None else f"{r['psi']:.3f}"
        out.append(f"{r['column']:<14} {r['status']:<18} {(r['method'] if tried else '–'):<13} "
                   f"{statistic:>10} {num(r['threshold'], 3):>9} {p:>9} {psi:>7} "
                   f"{r['n_ref']:>10,} → {r['n_cur']:,}")
        if notes.get(r["column"]) and tried:  # (too few rows: the status says it)
            out.append(f"  {cut(terminal_text(notes[r['column']]), 100)}")
    return "\n".join(out)
