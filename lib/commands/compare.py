"""``compare``: two eval versions (or offline runs) compared, a CI gate (design §6).

The Quality page's comparison (:func:`lib.metrics.quality.compare_versions`: paired by test
case where the versions share 30 or more, else independent samples; the verdicts decided
together by Benjamini–Hochberg), for scripts as design §6's JSON, for people as text. Exit
status 1 when a metric regressed significantly, so ``compare … || exit 1`` gates a release.
"""

from __future__ import annotations

import sys

import polars as pl

from lib.commands.base import (
    UsageError,
    filter_values,
    finite_or_none,
    parse_time,
    print_json,
    read_store,
)
from lib.filters import URL_TIMES, Filters
from lib.formatting import cut, terminal_text

# (lib.metrics.quality and lib.stats are imported where they are used: SciPy is a second of
# every other command's start)

WRITES = False  # (a Ctrl-C has no batch to speak of)
NAME = "compare"
HELP = ("compare two eval versions or offline runs metric by metric; exit 1 on a significant "
        "regression (a CI gate)")

# The sources in the Quality page's order: without --source, the first in which both the
# baseline and the candidate are found (the page opens on the first source with evals).
SOURCES = ("online", "offline", "feedback")
LISTED = 20  # versions or runs named in an error, at most


def add_arguments(p) -> None:
    p.add_argument("--baseline", required=True, metavar="RUN_OR_VERSION",
                   help="A: a version the evals name, or the id of an offline run")
    p.add_argument("--candidate", required=True, metavar="RUN_OR_VERSION",
                   help="B, compared with A (every difference is B − A)")
    p.add_argument("--metric", action="append", metavar="M",
                   help="only this metric (repeatable; default: every metric both were scored "
                        "on). The p-values are adjusted over the metrics compared")
    p.add_argument("--source", choices=SOURCES,
                   help="the evals' source (default: the first of online, offline, feedback "
                        "with both, as the Quality page opens; a run id is offline)")
    p.add_argument("--min-effect", type=float, metavar="X",
                   help="the smallest change that earns a verdict, in the metric's units (a "
                        "fraction for pass rates; default 0.02, the Quality page's), for the "
                        "metrics without their own in the metrics settings ($SIGHTLINE_METRICS, "
                        "else metrics.yaml, which also say which scores are better lower)")
    p.add_argument("--from", dest="start", help="only evals from this time (ISO, UTC if no "
                                                "offset; default: all)")
    p.add_argument("--to", dest="end", help="only evals before this time (exclusive)")
    p.add_argument("--where", metavar="KEY=VALUE", action="append", default=[],
                   help="keep only evals of requests where KEY equals VALUE (model: the eval's "
                        "own model too), as the Quality page's sidebar filters them")


def run(args) -> int:
    from lib.metrics import quality
    from lib.stats.compare import DEFAULT_MIN_EFFECT

    start, end = parse_time(args.start), parse_time(args.end)
    if start and end and start >= end:
        raise UsageError("--from must be before --to")
    if args.min_effect is None:
        args.min_effect = DEFAULT_MIN_EFFECT
    if not 0 <= args.min_effect < float("inf"):  # (NaN and infinity too: no verdict, no JSON)
        raise UsageError(f"--min-effect must be a number 0 or more, got {args.min_effect}")
    filters = Filters.between(start or URL_TIMES[0], end or URL_TIMES[1],
                              **filter_values(args.where))
    engine, problems = read_store(args.store)
    source, (version_a, run_a), (version_b, run_b), (metrics, only_a, only_b) = resolve(
        engine, filters, args.baseline, args.candidate, args.source)
    if version_a == version_b:
        raise UsageError(f"the baseline and the candidate are both version "
                         f"{terminal_text(version_a)}: compare two different versions")
    chosen = None
    if args.metric:
        chosen = list(dict.fromkeys(args.metric))
        missing = [m for m in chosen if m not in metrics]
        if missing:
            raise UsageError(
                f"no metric {', '.join(terminal_text(repr(m)) for m in missing)} scored on "
                f"both {terminal_text(version_a)} and {terminal_text(version_b)} ({source}); "
                f"they share: {_listed(metrics) or 'none'}")
    from lib.metric_settings import load_metric_settings, metric_key, metrics_path

    try:  # (the page's settings: a toxicity score that fell must not fail the gate)
        settings = load_metric_settings()
    except ValueError as exc:
        raise UsageError(f"the metrics settings cannot be read: {exc}") from exc
    table = quality.compare_versions(engine, filters, source, version_a, version_b,
                                     min_effect=args.min_effect, metrics=chosen,
                                     settings=settings)
    unreachable = quality.unreachable_min_effects(table)
    if unreachable:  # (a gate that cannot fail is a configuration error, not a pass)
        # where the value came from: a metric's own in the settings file is not replaced by a
        # --min-effect, and "set it in the metrics settings (or --min-effect)" sent a user
        # who had given --min-effect 1 to a file without it, or one with the file to the flag
        own = {metric_key(m) for m, _ in settings.min_effects}
        fixes = [f"set it as a fraction in {metrics_path()}"] if any(
            metric_key(m) in own for m in quality.unreachable_metrics(table)) else []
        if any(metric_key(m) not in own for m in quality.unreachable_metrics(table)):
            fixes.append(f"give --min-effect as a fraction (--min-effect "
                         f"{args.min_effect / 100:g} for {args.min_effect:g} "
                         f"point{'' if args.min_effect == 1 else 's'})")
        raise UsageError("; ".join(terminal_text(u) for u in unreachable)
                         + ": " + terminal_text("; ".join(fixes)))
    doc = document(table, version_a, version_b)
    # A metric one side has no result of is not compared: said, not left out unsaid (a scorer
    # that failed on every case of the candidate, its rows quarantined, passed the gate without
    # a word of the metric it lost). --metric names only metrics both have (else exit 2).
    doc.update(baseline_only=[] if chosen else only_a, candidate_only=[] if chosen else only_b)
    doc.update(source=source, baseline_run=run_a, candidate_run=run_b,
               min_effect=args.min_effect, problems=problems,
               **{"from": start.isoformat() if start else None,
                  "to": end.isoformat() if end else None})
    # (a reader that stops early, `compare … | head` under `set -o pipefail`, does not pass the
    # gate: lib.cli keeps the exit status of a command whose output's pipe broke)
    if args.json:
        print_json(doc)
    else:
        print(_text(doc, table, version_a, version_b))
    if doc["verdict"] == "regression":
        return 1  # the gate
    return 1 if problems else 0


def resolve(engine, filters: Filters, baseline: str, candidate: str, source: str | None
            ) -> tuple[str, tuple[str, str | None], tuple[str, str | None],
                       tuple[list[str], list[str], list[str]]]:
    """``(source, (version A, its run id or None), (version B, …), (the metrics both were
    scored on, those only A was, those only B was))``: each argument a version of the source's
    evals, as the Quality page lists them, else the id of an offline run, which stands for its
    version. A usage error (exit 2) when neither matches, naming what there is."""
    from lib.metrics import quality

    found: dict[str, tuple] = {}
    for src in ([source] if source else SOURCES):
        byv = quality.evals_by_version(engine, filters, src)
        versions = [v for v in byv["version"].unique(maintain_order=True).to_list()
                    if v != quality.NONE_LABEL]  # (the page cannot pick a null version)
        runs = quality.eval_runs(engine, filters, "offline") if src == "offline" else None
        a = _one(baseline, versions, runs)
        b = _one(candidate, versions, runs)
        found[src] = (versions, runs)
        if a and b:
            metric_sets = {v: set(ms) for v, ms in byv.group_by("version").agg("metric")
                           .iter_rows()}
            of_a, of_b = metric_sets.get(a[0], set()), metric_sets.get(b[0], set())
            others = [s for s in SOURCES if s != src and not source and _has(
                engine, filters, s, a[0], b[0])]
            if others:
                print(f"note: compared the {src} evals; {' and '.join(others)} evals of both "
                      f"are there too (--source {others[0]})", file=sys.stderr)
            return src, a, b, (sorted(of_a & of_b), sorted(of_a - of_b), sorted(of_b - of_a))
    said = []
    for src, (versions, runs) in found.items():
        said.append(f"{src} versions: {_listed(versions) or 'none'}")
        if runs is not None:
            said.append(f"offline runs: {_listed(runs['run_id'].unique(maintain_order=True))}"
                        if runs.height else "offline runs: none")
    missing = [v for v in dict.fromkeys((baseline, candidate))
               if not any(_one(v, versions, runs) or _run_versions(v, runs)
                          for versions, runs in found.values())]
    what = (f"no version or offline run id {', '.join(terminal_text(repr(m)) for m in missing)}"
            if missing else f"{terminal_text(baseline)} and {terminal_text(candidate)} are not "
            "found in one source")
    window = "" if filters.start == URL_TIMES[0] and filters.end == URL_TIMES[1] else \
        " in this window"
    raise UsageError(f"{what}{window}{' with these filters' if filters.values else ''}; "
                     + "; ".join(said))


def _one(value: str, versions: list[str], runs: pl.DataFrame | None
         ) -> tuple[str, str | None] | None:
    """``(version, run id or None)`` that ``value`` names, or None. A version first (as the
    page lists them); a run id stands for its version when the comparison of that version is
    the run's alone: a run over several versions, or a version other runs also scored, is a
    usage error saying which version to name (a version's test case counts once, by its
    latest result over all its runs: the run would not be what was compared)."""
    from lib.metrics import quality

    if value in versions:
        return value, None
    mine = _run_versions(value, runs)
    if not mine:
        return None
    if len(mine) > 1:
        raise UsageError(f"run {terminal_text(value)} scored several versions "
                         f"({_listed(mine)}): name the version to compare")
    version = mine[0]
    others = runs.filter((pl.col("version") == version) & (pl.col("run_id") != value))
    if others.height:
        raise UsageError(
            f"run {terminal_text(value)} is version {terminal_text(version)}, which other runs "
            f"also scored ({_listed(others['run_id'].unique(maintain_order=True))}): a "
            "comparison counts each test case of a version once, by its latest result over "
            f"all its runs. Name the version {terminal_text(version)}, or narrow --from/--to "
            "to this run's evals")
    if version == quality.NONE_LABEL:
        raise UsageError(f"run {terminal_text(value)}'s evals name no version, and a "
                         "comparison is of versions")
    return version, value


def _run_versions(value: str, runs: pl.DataFrame | None) -> list[str]:
    """The versions the offline run ``value`` scored (none: no such run)."""
    if runs is None or not runs.height:
        return []
    return runs.filter(pl.col("run_id") == value)["version"].unique(maintain_order=True) \
        .to_list()


def _has(engine, filters: Filters, source: str, a: str, b: str) -> bool:
    """Whether ``source``'s evals have both versions ``a`` and ``b``."""
    from lib.metrics import quality

    versions = set(quality.evals_by_version(engine, filters, source)["version"].to_list())
    return a in versions and b in versions


def _listed(values) -> str:
    values = [terminal_text(v) for v in values]
    return ", ".join(values[:LISTED]) + (f" … ({len(values)} in all)"
                                         if len(values) > LISTED else "")


VERDICTS = {"regression": "regression", "improvement": "improvement",
            "no significant change": "no_significant_change",
            "insufficient data": "insufficient_data"}


def document(table: pl.DataFrame, version_a: str, version_b: str) -> dict:
    """Design §6's ``compare --json`` of :func:`lib.metrics.quality.compare_versions`'
    ``table``, with each run's own counts and the comparison's note beside its fields."""
    from lib.metrics import quality

    # The table's test names back to lib.stats.compare's (``mcnemar_exact``): a script matches
    # on a name, not on a page's wording.
    tests = {shown: name for name, shown in quality.TESTS_SHOWN.items()}
    metrics = []
    for r in table.iter_rows(named=True):
        paired = r["kind"] in ("pass_paired", "score_paired")
        metrics.append({k: finite_or_none(v) for k, v in {
            "metric": r["metric"], "kind": r["kind"],
            # Runs without enough test cases in common are compared as independent samples:
            # there are no pairs, and n_baseline / n_candidate count each side.
            "n_pairs": r["n_a"] if paired else None,
            "baseline_mean": r["a_value"], "candidate_mean": r["b_value"],
            "delta": r["difference"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
            "test": tests.get(r["test"], r["test"]), "p_value": r["p_value"],
            "p_adjusted": r["p_adjusted"],
            # (counted for paired pass rates only: null otherwise, as on the page)
            "regressions": r["regressions"], "fixes": r["fixes"], "mde": r["mde"],
            # (the metric's own from the metrics settings, else --min-effect: a verdict of no
            # change beside p < 0.001 said nothing of the minimum it missed)
            "min_effect": r["min_effect"],
            "verdict": VERDICTS.get(r["verdict"], r["verdict"]),
            "n_baseline": r["n_a"], "n_candidate": r["n_b"],
            # results that errored (neither a pass nor a score), left out of the figures
            "unscored_baseline": r["a_unscored"], "unscored_candidate": r["b_unscored"],
            "note": r["note"]}.items()})
    return {"baseline": version_a, "candidate": version_b, "metrics": metrics,
            "verdict": overall(m["verdict"] for m in metrics)}


def overall(verdicts) -> str:
    """One verdict of several metrics': a regression of any (the gate fails), else an
    improvement of any, else no significant change where some metric could be tested, else
    insufficient data (also with no metric at all)."""
    verdicts = set(verdicts)
    for v in ("regression", "improvement", "no_significant_change"):
        if v in verdicts:
            return v
    return "insufficient_data"


def _text(doc: dict, table: pl.DataFrame, version_a: str, version_b: str) -> str:
    from lib.metrics import quality

    a, b = terminal_text(version_a), terminal_text(version_b)
    runs = "".join(f" ({side} run {terminal_text(doc[f'{side}_run'])})"
                   for side in ("baseline", "candidate") if doc[f"{side}_run"])
    out = [f"baseline (A) {a} → candidate (B) {b}, {doc['source']} evals{runs}"]
    for side, version in (("baseline", a), ("candidate", b)):
        if doc[f"{side}_only"]:
            out.append(f"not compared, scored on {version} alone: "
                       f"{_listed(doc[f'{side}_only'])}")
    if table.is_empty():
        out.append("the two versions share no metric")
        return "\n".join(out)
    for row in table.iter_rows(named=True):  # (the page's sentences: metric names are logs')
        out.append(terminal_text(quality.comparison_sentence(row, a, b)))
    shown = quality.comparison_table(table)
    width = {c: max(len(c), *(len(v) for v in shown[c].to_list())) for c in shown.columns}
    width["Metric"] = min(width["Metric"], 28)
    out.append("  ".join(f"{c:<{width[c]}}" for c in shown.columns).rstrip())
    for r in shown.iter_rows(named=True):
        out.append("  ".join(f"{cut(terminal_text(r[c]), width[c]):<{width[c]}}"
                             for c in shown.columns).rstrip())
    out.append(f"verdict: {doc['verdict'].replace('_', ' ')}"
               + (" (exit status 1)" if doc["verdict"] == "regression" else ""))
    return "\n".join(out)
