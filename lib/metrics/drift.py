"""Drift of the requests' columns between a reference window and the current one (design §5).

DuckDB computes what the tests need without returning rows: per numeric column, each side's
count, the reference's population std, 1,000 quantiles of each side (Wasserstein), a reservoir
sample of at most 2,000 values of each side (Wasserstein's no-drift floor) and the counts in the
reference's decile bins (PSI); per categorical column, each side's value counts. A
whole-number column (tokens, characters) is read as its value counts, a few thousand rows, from
which the quantiles and bins follow exactly; a float column is sorted once per side. Only a
column with 1,000 rows or fewer on either side (where the test is KS on the values) is read as
values, each side sampled down to :data:`MAX_VALUES`. lib.stats decides.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from lib.filters import Filters
from lib.formatting import number
from lib.metrics.dims import OTHER_LABEL
from lib.metrics.overview import window_coverage
from lib.stats import drift as stats
from lib.stats.stattests import SMALL_SAMPLE_MAX, STAT_TESTS
from lib.store import Engine

# Numeric columns, as SQL over ``requests`` (DOUBLE), and how a page names them (with units).
NUMERIC = {
    "input_tokens": ("CAST(input_tokens AS DOUBLE)", "Input tokens"),
    "output_tokens": ("CAST(output_tokens AS DOUBLE)", "Output tokens"),
    "latency_ms": ("latency_ms", "Latency (ms)"),
    "cost_usd": ("cost_usd", "Cost per request (USD)"),
    "input_chars": ("CAST(length(input_text) AS DOUBLE)", "Prompt length (characters)"),
    "output_chars": ("CAST(length(output_text) AS DOUBLE)", "Response length (characters)"),
}
CATEGORICAL = {"model": "Model", "provider": "Provider", "feature": "Feature",
               "finish_reason": "Finish reason", "error_type": "Error type", "status": "Status"}
NONE_VALUE = "(none)"
# KS takes each side's values; past this many on a side, a fixed sample of them. (A small
# current window against a reference of millions of rows is a KS case too: lib.stats chooses on
# the smaller side.)
MAX_VALUES = 50_000
# Float columns: NaN and infinities are no values to test (the others are integers or lengths,
# whose distinct values are few: they are read as value counts, not sorted).
FLOATS = {"latency_ms", "cost_usd"}


# The reference windows a page offers: name → (how it is named, how far before the current
# window it lies; None: the period of equal length just before it).
REFERENCES: dict[str, tuple[str, timedelta | None]] = {
    "previous": ("The period just before", None),
    "week": ("The same window a week earlier", timedelta(days=7)),
    "four_weeks": ("The same window four weeks earlier", timedelta(days=28)),
}


def reference_window(current: Filters, kind: str) -> Filters:
    """The reference window ``kind`` (:data:`REFERENCES`) of ``current``, same filters."""
    back = REFERENCES[kind][1]
    return current.previous() if back is None else current.with_window(
        current.start - back, current.end - back)


def reference_overlap(current: Filters, reference: Filters) -> timedelta:
    """How long the two windows share (zero when apart). "A week earlier" of a window longer
    than a week is partly the window itself: the requests of the overlap are on both sides,
    compared with themselves, and a drift is diluted by them (30 days against a week earlier
    share 23 days)."""
    return max(timedelta(0), min(current.end, reference.end)
               - max(current.start, reference.start))


def reference_coverage(engine: Engine, reference: Filters) -> tuple[float, datetime | None]:
    """The share (0..1) of ``reference``'s window after the store's first request, and that
    request's time (None on an empty store): "four weeks earlier" of a store five weeks old
    holds a week's days only in part, and its few days (their weekdays, their hours) stood for
    the whole week unsaid. The dimension filters are ignored, as the Overview's coverage."""
    return window_coverage(engine, reference)


def label(column: str) -> str:
    """How a page names ``column``."""
    return NUMERIC[column][1] if column in NUMERIC else CATEGORICAL.get(column, column)


def _finite(column: str) -> str:
    """SQL: ``column``'s value is one to test (not null; for a float, not NaN or infinite)."""
    expr, _ = NUMERIC[column]
    return f"isfinite({expr})" if column in FLOATS else f"{expr} IS NOT NULL"


def _counts_and_std(engine: Engine, side: Filters, prefix: str) -> dict:
    """Per numeric column of ``side``: (values to test, their population std), one scan."""
    where, params = side.where("requests", prefix=prefix)
    cols = ", ".join(f"count(*) FILTER (WHERE {_finite(c)}), "
                     f"stddev_pop({NUMERIC[c][0]}) FILTER (WHERE {_finite(c)})" for c in NUMERIC)
    row = engine.query(f"SELECT {cols} FROM requests WHERE {where}", params).row(0)
    return {c: (int(row[2 * i]), row[2 * i + 1]) for i, c in enumerate(NUMERIC)}


def _value_counts_of(engine: Engine, side: Filters, prefix: str, column: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    """A whole-number column's distinct finite values in ``side``, ascending, and the rows of
    each: a hash aggregate over a few thousand values, where sorting every row took 0.3-0.9 s
    a column-side at 2.3M rows (text lengths most)."""
    expr = NUMERIC[column][0]
    where, params = side.where("requests", prefix=prefix)
    frame = engine.query(f"SELECT {expr} AS x, count(*) AS n FROM requests "
                         f"WHERE {where} AND {_finite(column)} GROUP BY ALL ORDER BY x", params)
    return frame["x"].to_numpy().astype(float), frame["n"].to_numpy().astype(np.int64)


def _histogram_quantiles(values: np.ndarray, counts: np.ndarray, levels: list[float]
                         ) -> list[float]:
    """``quantile_cont`` (type 7) at ``levels`` of the rows that ``values``/``counts`` (distinct
    values ascending, rows of each) describe: the order statistic of rank i is the first value
    whose running count passes i."""
    upto = np.cumsum(counts)
    n = int(upto[-1])
    h = np.asarray(levels) * (n - 1)
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    xl = values[np.searchsorted(upto, lo, side="right")]
    xh = values[np.searchsorted(upto, hi, side="right")]
    return (xl + (h - lo) * (xh - xl)).tolist()


def _histogram_bins(values: np.ndarray, counts: np.ndarray, edges: list[float]) -> list[int]:
    """The rows in each of the bins cut at ``edges`` (a value's bin is the number of edges
    strictly below it, as :func:`_bin_counts`)."""
    at = np.searchsorted(np.asarray(edges, dtype=float), values, side="left")
    return np.bincount(at, weights=counts, minlength=len(edges) + 1).astype(np.int64).tolist()


def _quantiles(engine: Engine, side: Filters, prefix: str, column: str, n: int,
               levels: list[float]) -> list[float]:
    """A float ``column``'s values in ``side`` (``n`` of them) at ``levels``, interpolated as
    ``quantile_cont`` (type 7). DuckDB sorts them once (in parallel) and returns only the ~2,000
    order statistics the levels fall between: ``quantile_cont`` with 1,000 levels took 0.66 s a
    column at 70k rows, sorting a list in SQL 0.3 s at 2.3M, this 0.15 s."""
    h = np.asarray(levels) * (n - 1)
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    where, params = side.where("requests", prefix=prefix)
    params["ranks"] = sorted(set(lo.tolist()) | set(hi.tolist()))
    expr = NUMERIC[column][0]
    rows = engine.query(
        f"SELECT i, x FROM (SELECT {expr} AS x, row_number() OVER (ORDER BY {expr}) - 1 AS i "
        f"FROM requests WHERE {where} AND {_finite(column)}) "
        "WHERE i IN (SELECT unnest($ranks::BIGINT[]))", params)
    at = dict(zip(rows["i"].to_list(), rows["x"].to_list(), strict=True))
    xl = np.array([at[i] for i in lo.tolist()], dtype=float)
    xh = np.array([at[i] for i in hi.tolist()], dtype=float)
    return (xl + (h - lo) * (xh - xl)).tolist()


def _histogram_sample(values: np.ndarray, counts: np.ndarray, size: int) -> np.ndarray:
    """The rows that ``values``/``counts`` describe, or a fixed sample of ``size`` of them
    (without replacement) when there are more: a side's sample for the noise floor."""
    if counts.sum() > size:
        counts = np.random.default_rng(0).multivariate_hypergeometric(counts, size)
    return np.repeat(values, counts)


def _bin_counts(engine: Engine, side: Filters, prefix: str, edges: dict[str, list]) -> dict:
    """Per column of ``edges``, the rows of ``side`` in each of the 10 bins cut at them (a
    value's bin is the number of edges strictly below it: lib.stats.drift's rule); one scan."""
    if not edges:
        return {}
    where, params = side.where("requests", prefix=prefix)
    bins = []
    for j, (column, cuts) in enumerate(edges.items()):
        params[f"e{j}"] = [float(e) for e in cuts]
        parts = " + ".join(f"({NUMERIC[column][0]} > $e{j}[{i + 1}])::INT"
                           for i in range(len(cuts)))
        # one histogram aggregate a column: UNPIVOT to (column, bin) rows took twice as long
        bins.append(f"histogram({parts}) FILTER (WHERE {_finite(column)})")
    row = engine.query(f"SELECT {', '.join(bins)} FROM requests WHERE {where}", params).row(0)
    out = {}
    for (column, cuts), found in zip(edges.items(), row, strict=True):
        out[column] = [0] * (len(cuts) + 1)
        for b, count in (found or {}).items():
            out[column][int(b)] = int(count)
    return out


def _values(engine: Engine, side: Filters, prefix: str, column: str, limit: int | None
            ) -> np.ndarray:
    """The finite values of ``column`` in ``side`` (a fixed sample of ``limit`` when more)."""
    expr = NUMERIC[column][0]
    where, params = side.where("requests", prefix=prefix)
    sample = f" USING SAMPLE reservoir({int(limit)} ROWS) REPEATABLE (0)" if limit else ""
    frame = engine.query(f"SELECT x FROM (SELECT {expr} AS x FROM requests "
                         f"WHERE {where} AND {_finite(column)}){sample}", params)
    return frame["x"].to_numpy().astype(float)


def _value_counts(engine: Engine, side: Filters, prefix: str) -> dict[str, dict[str, int]]:
    """Per categorical column, the rows of ``side`` per value (null as :data:`NONE_VALUE`)."""
    where, params = side.where("requests", prefix=prefix)
    # one histogram aggregate a column (it skips nulls, counted beside it): UNPIVOT to
    # (column, value) rows took twice as long
    cols = ", ".join(f"histogram(CAST({c} AS VARCHAR)), count(*) - count({c})"
                     for c in CATEGORICAL)
    row = engine.query(f"SELECT {cols} FROM requests WHERE {where}", params).row(0)
    out: dict[str, dict[str, int]] = {}
    for i, column in enumerate(CATEGORICAL):
        counts = {str(v): int(n) for v, n in (row[2 * i] or {}).items()}
        if row[2 * i + 1]:
            counts[NONE_VALUE] = counts.get(NONE_VALUE, 0) + int(row[2 * i + 1])
        out[column] = counts
    return out


def _large_summaries(engine: Engine, current: Filters, reference: Filters, columns: list,
                     counts: dict) -> dict:
    """Per numeric column of ``columns``, what lib.stats.numeric_drift_from_summary takes from
    each side: quantiles at its levels, the reference's decile edges, the bin counts and a
    sample of at most ``WASSERSTEIN_NOISE_SAMPLE`` values (the noise floor's)."""
    levels = stats.quantile_levels()
    deciles = stats.psi_bin_edges_levels()
    size = stats.WASSERSTEIN_NOISE_SAMPLE
    out, edges, histograms = {}, {}, {}
    for name in columns:
        (n_ref, _), (n_cur, _) = counts["r"][name], counts["c"][name]
        # (and each side's median, for people: "49 → 159 characters")
        if name in FLOATS:
            ref_q = _quantiles(engine, reference, "r", name, n_ref, levels + deciles + [0.5])
            cur_q = _quantiles(engine, current, "c", name, n_cur, levels + [0.5])
            samples = tuple(_values(engine, side, prefix, name, size if n > size else None)
                            for side, prefix, n in ((reference, "r", n_ref),
                                                    (current, "c", n_cur)))
        else:  # one read of each side's value counts gives the quantiles and, below, the bins
            histograms[name] = (_value_counts_of(engine, reference, "r", name),
                                _value_counts_of(engine, current, "c", name))
            ref_q = _histogram_quantiles(*histograms[name][0], levels + deciles + [0.5])
            cur_q = _histogram_quantiles(*histograms[name][1], levels + [0.5])
            samples = tuple(_histogram_sample(*h, size) for h in histograms[name])
        out[name] = {"ref_q": ref_q[:len(levels)], "cur_q": cur_q[:len(levels)],
                     "medians": (ref_q[-1], cur_q[-1]), "samples": samples}
        edges[name] = ref_q[len(levels):-1]
    scanned = {c: e for c, e in edges.items() if c not in histograms}
    ref_bins = _bin_counts(engine, reference, "r", scanned)
    cur_bins = _bin_counts(engine, current, "c", scanned)
    for name, ((rv, rc), (cv, cc)) in histograms.items():
        ref_bins[name] = _histogram_bins(rv, rc, edges[name])
        cur_bins[name] = _histogram_bins(cv, cc, edges[name])
    for name in columns:
        out[name].update(ref_bins=ref_bins[name], cur_bins=cur_bins[name], edges=edges[name])
    return out


def results(engine: Engine, current: Filters, reference: Filters
            ) -> tuple[list[stats.DriftResult], dict[str, tuple]]:
    """The drift of every column of :data:`NUMERIC` and :data:`CATEGORICAL` from ``reference``
    to ``current``, the p-value tests decided together (Benjamini–Hochberg); and each numeric
    column's (reference, current) median, in its units, where there are values to test."""
    counts = {"r": _counts_and_std(engine, reference, "r"),
              "c": _counts_and_std(engine, current, "c")}
    # both sides over 1,000 rows: Wasserstein/std from SQL summaries; else KS on the values
    # (lib.stats.stattests.choose_test's rule)
    large = [c for c in NUMERIC
             if min(counts["r"][c][0], counts["c"][c][0]) > SMALL_SAMPLE_MAX]
    summary = _large_summaries(engine, current, reference, large, counts)
    out, medians = [], {}
    for name in NUMERIC:
        (n_ref, ref_std), (n_cur, _) = counts["r"][name], counts["c"][name]
        if min(n_ref, n_cur) < stats.MIN_ROWS:  # "insufficient data": nothing else is read
            out.append(stats.numeric_drift_from_summary(name, n_ref, n_cur, None, None, None,
                                                        None, None))
        elif name in summary:
            m = summary[name]
            medians[name] = m["medians"]
            out.append(stats.numeric_drift_from_summary(
                name, n_ref, n_cur, ref_std, m["ref_q"], m["cur_q"], m["ref_bins"],
                m["cur_bins"], ref_sample=m["samples"][0], cur_sample=m["samples"][1]))
        else:
            ref = _values(engine, reference, "r", name,
                          MAX_VALUES if n_ref > MAX_VALUES else None)
            cur = _values(engine, current, "c", name,
                          MAX_VALUES if n_cur > MAX_VALUES else None)
            medians[name] = (float(np.median(ref)), float(np.median(cur)))
            result = stats.numeric_drift(name, ref, cur)
            sampled = [f"{MAX_VALUES:,} of the {n:,} {side} values"
                       for side, n in (("reference", n_ref), ("current", n_cur))
                       if n > MAX_VALUES]
            if sampled:  # the table counts every row; the test says what it read
                result = replace(result, n_ref=n_ref, n_cur=n_cur, note=(
                    "KS and PSI on a fixed sample of " + " and of ".join(sampled)))
            out.append(result)
    ref_counts = _value_counts(engine, reference, "r")
    cur_counts = _value_counts(engine, current, "c")
    for name in CATEGORICAL:
        out.append(stats.categorical_drift(name, ref_counts[name], cur_counts[name]))
    return stats.apply_bh(out), medians


STATUS_ORDER = {"drift": 0, "insufficient data": 1, "no drift": 2}


def drift_table(engine: Engine, current: Filters, reference: Filters) -> pl.DataFrame:
    """One row per column, drifting ones first: ``column, label, kind, status, method,
    statistic, threshold, p_value, p_adjusted, psi, psi_status, largest_change, unseen_share,
    unseen_status, unseen_values, median_ref, median_cur, n_ref, n_cur, note`` (shares and
    p-values as fractions; medians in the column's units; the statistic in the method's units:
    a distance, KS's D, or |z|/chi-square)."""
    rows = []
    found, medians = results(engine, current, reference)
    for r in found:
        change = r.largest_change
        median = medians.get(r.column, (None, None))
        rows.append({
            "column": r.column, "label": label(r.column), "kind": r.kind, "status": r.status,
            "method": STAT_TESTS[r.method].display_name
            if r.method in STAT_TESTS else r.method,
            "statistic": None if r.statistic is None or not math.isfinite(r.statistic)
            else r.statistic,
            "threshold": r.threshold, "p_value": r.p_value, "p_adjusted": r.p_adjusted,
            "psi": r.psi, "psi_status": r.psi_status,
            "largest_change": None if change is None else
            f"{change.value}: {change.ref_share:.1%} → {change.cur_share:.1%}",
            "unseen_share": r.unseen_share, "unseen_status": r.unseen_status,
            "unseen_values": ", ".join(r.unseen_values) or None,
            "median_ref": median[0], "median_cur": median[1],
            "n_ref": r.n_ref, "n_cur": r.n_cur, "note": r.note})
    frame = pl.DataFrame(rows, schema={
        "column": pl.String, "label": pl.String, "kind": pl.String, "status": pl.String,
        "method": pl.String, "statistic": pl.Float64, "threshold": pl.Float64,
        "p_value": pl.Float64, "p_adjusted": pl.Float64, "psi": pl.Float64,
        "psi_status": pl.String, "largest_change": pl.String, "unseen_share": pl.Float64,
        "unseen_status": pl.String, "unseen_values": pl.String, "median_ref": pl.Float64,
        "median_cur": pl.Float64,
        "n_ref": pl.Int64, "n_cur": pl.Int64, "note": pl.String})
    return frame.with_columns(pl.col("status").replace_strict(STATUS_ORDER, default=3)
                              .alias("_o")).sort("_o", maintain_order=True).drop("_o")


def distribution(engine: Engine, current: Filters, reference: Filters, column: str
                 ) -> pl.DataFrame:
    """What a chart of one column's drift draws: ``bucket, reference_share, current_share``
    (fractions). Numeric: the reference's 10 decile bins (bucket: "≤ 1,200", "1,200 – 1,500",
    …, "> 9,000", in the column's units), as PSI reads them; categorical: the 12 values largest
    on either side, the rest as :data:`lib.metrics.dims.OTHER_LABEL`."""
    if column in NUMERIC:
        n = _counts_and_std(engine, reference, "r")[column][0]
        if not n:
            return pl.DataFrame(schema={"bucket": pl.String, "reference_share": pl.Float64,
                                        "current_share": pl.Float64})
        if column in FLOATS:
            edges = _quantiles(engine, reference, "r", column, n, stats.psi_bin_edges_levels())
            ref = _bin_counts(engine, reference, "r", {column: edges})[column]
            cur = _bin_counts(engine, current, "c", {column: edges})[column]
        else:
            rv, rc = _value_counts_of(engine, reference, "r", column)
            edges = _histogram_quantiles(rv, rc, stats.psi_bin_edges_levels())
            ref = _histogram_bins(rv, rc, edges)
            cur = _histogram_bins(*_value_counts_of(engine, current, "c", column), edges)
        # Equal edges (tied values) leave the bins between them empty on both sides: drawn,
        # they would share one label and one place on the axis.
        keep = [0] + [i for i in range(1, len(edges)) if edges[i] > edges[i - 1]] + [len(edges)]
        names = [f"≤ {number(edges[0])}"] + [f"{number(edges[i - 1])} – {number(edges[i])}"
                                              for i in range(1, len(edges))] \
            + [f"> {number(edges[-1])}"]
        names = [names[i] for i in keep]
        ref, cur = [ref[i] for i in keep], [cur[i] for i in keep]
    else:
        rc = _value_counts(engine, reference, "r")[column]
        cc = _value_counts(engine, current, "c")[column]
        top = sorted(set(rc) | set(cc), key=lambda v: (-max(
            rc.get(v, 0) / max(sum(rc.values()), 1), cc.get(v, 0) / max(sum(cc.values()), 1)),
            v))
        names = top[:12]
        ref = [rc.get(v, 0) for v in names]
        cur = [cc.get(v, 0) for v in names]
        if len(top) > 12:
            names.append(OTHER_LABEL)
            ref.append(sum(rc.values()) - sum(ref))
            cur.append(sum(cc.values()) - sum(cur))
    rt, ct = sum(ref), sum(cur)
    return pl.DataFrame({"bucket": names,
                         "reference_share": [n / rt if rt else None for n in ref],
                         "current_share": [n / ct if ct else None for n in cur]})


def where_it_moved(engine: Engine, current: Filters, reference: Filters, column: str,
                   by: str = "feature") -> pl.DataFrame:
    """Where a numeric column moved: per value of the dimension ``by`` (null as "(none)"),
    ``value, n_ref, n_cur, median_ref, median_cur`` (the column's units), the values with the
    most current rows first; the place a drift happened ("search" prompts got longer)."""
    from lib.metrics.dims import dimension_sql

    expr, dim = NUMERIC[column][0], dimension_sql(by)
    sides = []
    for side, prefix in ((reference, "r"), (current, "c")):
        where, params = side.where("requests", prefix=prefix)
        sides.append(engine.query(
            f"SELECT coalesce(CAST({dim} AS VARCHAR), '{NONE_VALUE}') AS value, count(*) AS n, "
            f"quantile_cont({expr}, 0.5) AS median FROM requests "
            f"WHERE {where} AND {_finite(column)} GROUP BY 1", params))
    ref, cur = (s.rename({"n": f"n_{k}", "median": f"median_{k}"})
                for s, k in zip(sides, ("ref", "cur"), strict=True))
    return (ref.join(cur, on="value", how="full", coalesce=True)
            .with_columns(pl.col("n_ref", "n_cur").fill_null(0))
            .sort(["n_cur", "value"], descending=[True, False])
            .select("value", "n_ref", "n_cur", "median_ref", "median_cur"))

