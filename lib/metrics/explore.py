"""Incident investigation: "what changed" between a window and a baseline, error fingerprints, and
the request table (paged and searched on the server).

What changed — definition
-------------------------
Each metric is a ratio of sums over requests, M = Σ_v num_v / Σ_v den_v, for the segments v of a
dimension (one value each, e.g. provider = anthropic):

================  ================================  ==========================================
metric            num_v / den_v                      segment value shown
================  ================================  ==========================================
error_rate        errors / requests                  the segment's error rate
cost_per_request  cost_usd / priced requests         the segment's cost per priced request
p95_latency       requests slower than the           the segment's p95 latency (ms)
                  *baseline's overall p95* / requests
                  with a latency
================  ================================  ==========================================

p95 is not additive, so its change is measured by the proxy in the table: the share of requests
slower than the baseline's p95 (5% in the baseline by construction, more when latency got worse).

With W = the window and B = the baseline, N = Σ den, the contribution of segment v is

    contribution_v = (s_v(W) · (m_v(W) − M(B)) − s_v(B) · (m_v(B) − M(B))) / (M(W) − M(B))

with s_v the segment's share of the side's N and m_v its own value (num_v / den_v): the change
in the segment's part of the total measured from the baseline's overall value, as a fraction of
the total change. It counts both a rate change inside the segment and a mix change (the segment
growing or shrinking), the latter by how far the segment's value is from the overall one: a
version a deploy replaced, whose error rate was the overall rate, explains nothing by leaving
(measured from 0 instead, it "explained 424%" of a decrease that happened inside its successor).
Within one dimension the contributions of all its values (including "not set") sum to exactly 1
(the M(B) terms cancel, the shares of a side summing to 1), so "explains 92% of the increase"
reads directly; for a segment of equal shares on both sides it is s · (m(W) − m(B)) / change.
A negative contribution moved against the overall change; above 1 means other segments moved
the other way. When M(W) = M(B) contributions are null and segments are ordered by the size of
their change.

Ranking. All dimensions (model, provider, feature, customer, prompt version, app version, error
type, finish reason, environment, service and the ``attributes`` keys found in the window) are
ranked in one list by *contribution beyond size*, ``contribution_v − window_share_v``: how much
more of the change a segment explains than it would if the change were spread over all requests
in proportion to their number. Raw contribution alone would rank the trivial segments first (a
dimension with one value in the window — the app version everyone runs, ``environment = prod`` —
explains ~100% of any change without saying anything). The ``contribution`` reported is still the
fraction of the change explained, as defined above.

Two exclusions, both documented in the output's absence rather than hidden in the totals:
segments where the dimension is not set (null) are not listed (they are in the totals but are not
something one can act on), so a dimension's listed contributions may sum to less than 1; and for
``error_rate`` the dimensions defined by the outcome itself — ``error_type`` and
``finish_reason`` (every error has an error type and no finish reason) — are not ranked: they
would restate "there are more errors" instead of saying where. The error fingerprints say which
errors grew.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from datetime import datetime

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from lib import formatting
from lib.filters import Filters
from lib.metrics.dims import DIMENSIONS, attribute_keys, dimension_sql
from lib.store.engine import Engine

METRICS = {"error_rate": "error rate", "p95_latency": "p95 latency",
           "cost_per_request": "cost per request"}
CHANGE_DIMENSIONS = ["model", "provider", "feature", "customer", "prompt_version", "app_version",
                     "error_type", "finish_reason", "environment", "service"]
MAX_ATTRIBUTE_KEYS = 10
# Dimensions that describe a metric's outcome rather than where it happened (see module doc).
OUTCOME_DIMENSIONS = {"error_rate": {"error_type", "finish_reason"}}


def _fmt(metric: str, v, extra: int = 0) -> str:
    """``v`` as the headline shows ``metric``; ``extra`` more digits (rates and dollars)."""
    if metric == "error_rate":
        return formatting.pct(v, (1 if v is not None and v >= 0.01 else 2) + extra)
    if metric == "p95_latency":
        return formatting.ms(v)
    return formatting.usd(v, extra)


def _fmt_pair(metric: str, before, after) -> tuple[str, str]:
    """``before`` and ``after`` as the headline shows them, with more digits where the usual
    ones read the same for different values ("from $0.0045 to $0.0045" beside -1.1%)."""
    extra = 0
    while True:
        pair = _fmt(metric, before, extra), _fmt(metric, after, extra)
        if pair[0] != pair[1] or before == after or None in (before, after) or extra == 4 \
                or metric == "p95_latency":
            return pair
        extra += 1


def changes(engine: Engine, window: Filters, baseline: Filters | None, metric: str,
            dimensions: Sequence[str] | None = None, attributes: bool = True) -> dict:
    """The "what changed" document for ``metric`` between ``window`` and ``baseline`` (default:
    the period of equal length just before the window, same filters). Shape::

        {"metric", "window": {"from", "to", "value", "n"}, "baseline": {…},
         "contributors": [{"dimension", "value", "window_value", "baseline_value",
                           "window_share", "baseline_share", "contribution"}]}

    ``value`` is the metric over the window (error rate in [0, 1], p95 in ms, USD per priced
    request); ``n`` the requests it is computed on; shares are the segment's part of ``n``.
    Raises KeyError for an unknown metric or dimension.
    """
    if metric not in METRICS:
        raise KeyError(metric)
    baseline = baseline or window.previous()
    dims = [d for d in (dimensions or CHANGE_DIMENSIONS)
            if d not in OUTCOME_DIMENSIONS.get(metric, set())]
    if attributes:
        keys = attribute_keys(engine, window, limit=MAX_ATTRIBUTE_KEYS)
        dims += [k for k in keys if k not in dims]
    exprs = [dimension_sql(d) for d in dims]
    wwhere, wparams = window.where("requests", prefix="w")
    bwhere, bparams = baseline.where("requests", prefix="b")
    params = {**wparams, **bparams}
    cols = ", ".join(f"{e} AS d{i}" for i, e in enumerate(exprs))
    need = {"error_rate": "status", "cost_per_request": "cost_usd",
            "p95_latency": "latency_ms"}[metric]
    base = (f"SELECT true AS in_window, {need}, {cols} FROM requests WHERE {wwhere} "
            f"UNION ALL SELECT false, {need}, {cols} FROM requests WHERE {bwhere}")
    # Only the aggregates the metric needs: a p95 per segment is costly at 10M rows.
    aggs = {"error_rate": "count(*) FILTER (WHERE status = 'error') AS errors",
            "cost_per_request": "count(cost_usd) AS priced, coalesce(sum(cost_usd), 0) AS cost, "
                                "var_samp(cost_usd) AS cost_var",
            "p95_latency": "count(latency_ms) AS timed, "
                           "quantile_cont(latency_ms, 0.95) AS p95"}[metric]
    slim = (f"SELECT true AS in_window, {need} FROM requests WHERE {wwhere} "
            f"UNION ALL SELECT false, {need} FROM requests WHERE {bwhere}")
    totals = engine.query(
        f"SELECT in_window, count(*) AS n, {aggs} FROM ({slim}) GROUP BY in_window", params)
    side = {r["in_window"]: r for r in totals.iter_rows(named=True)}
    empty = {"n": 0, "errors": 0, "priced": 0, "cost": 0.0, "cost_var": None, "timed": 0,
             "p95": None}
    w = {**empty, **side.get(True, {})}
    b = {**empty, **side.get(False, {})}
    threshold = b["p95"]

    num, den = {"error_rate": ("errors", "n"), "cost_per_request": ("cost", "priced"),
                "p95_latency": ("above", "timed")}[metric]
    sets = ", ".join(f"(in_window, d{i})" for i in range(len(dims)))
    groupings = ", ".join(f"GROUPING(d{i}) AS g{i}" for i in range(len(dims)))
    params["threshold"] = threshold
    seg_aggs = aggs if metric != "p95_latency" else (
        aggs + ", count(*) FILTER (WHERE latency_ms > $threshold) AS above")
    if metric != "p95_latency":
        del params["threshold"]
    seg = engine.query(
        f"""SELECT in_window, {", ".join(f"d{i}" for i in range(len(dims)))}, {groupings},
               count(*) AS n, {seg_aggs}
            FROM ({base}) GROUP BY GROUPING SETS ({sets})""", params)
    for col, dtype in (("errors", pl.Int64), ("priced", pl.Int64), ("cost", pl.Float64),
                       ("cost_var", pl.Float64), ("timed", pl.Int64), ("above", pl.Int64),
                       ("p95", pl.Float64)):
        if col not in seg.columns:
            seg = seg.with_columns(pl.lit(0 if col != "p95" else None, dtype).alias(col))

    def total_value(s: dict) -> float | None:
        if metric == "error_rate":
            return s["errors"] / s["n"] if s["n"] else None
        if metric == "cost_per_request":
            return s["cost"] / s["priced"] if s["priced"] else None
        return s["p95"]

    w_den, b_den = w[den], b[den]
    if metric == "p95_latency":
        w_above = (seg.filter(pl.col("in_window") & (pl.col("g0") == 0))["above"].sum()
                   if seg.height else 0)
        b_above = (seg.filter(~pl.col("in_window") & (pl.col("g0") == 0))["above"].sum()
                   if seg.height else 0)
        w_tot = w_above / w_den if w_den else 0.0
        b_tot = b_above / b_den if b_den else 0.0
    else:
        w_tot = w[num] / w_den if w_den else 0.0
        b_tot = b[num] / b_den if b_den else 0.0
    change = w_tot - b_tot
    if metric == "p95_latency":
        significance = overall_significance(metric, w_above, w_den, b_above, b_den)
    elif metric == "error_rate":
        significance = overall_significance(metric, w["errors"], w["n"], b["errors"], b["n"])
    else:
        significance = overall_significance(metric, w["cost"], w["priced"], b["cost"],
                                            b["priced"], w["cost_var"], b["cost_var"])

    contributors = []
    for i, dim in enumerate(dims):
        part = seg.filter(pl.col(f"g{i}") == 0).select(
            "in_window", pl.col(f"d{i}").alias("value"), "n", "errors", "priced", "cost",
            "timed", "above", "p95")
        ws = {r["value"]: r for r in part.filter(pl.col("in_window")).iter_rows(named=True)}
        bs = {r["value"]: r for r in part.filter(~pl.col("in_window")).iter_rows(named=True)}
        for value in set(ws) | set(bs):
            if value is None:
                continue
            sw, sb = ws.get(value), bs.get(value)
            term_w = (sw[num] / w_den) if sw and w_den else 0.0
            term_b = (sb[num] / b_den) if sb and b_den else 0.0
            share_w = (sw[den] / w_den) if sw and w_den else 0.0
            share_b = (sb[den] / b_den) if sb and b_den else 0.0
            # from the baseline's overall value: growing or shrinking counts by how far the
            # segment's value is from it (see the module's docstring)
            delta = term_w - term_b - b_tot * (share_w - share_b)
            contributors.append({
                "dimension": dim, "value": value,
                "window_value": _seg_value(metric, sw), "baseline_value": _seg_value(metric, sb),
                "window_share": share_w, "baseline_share": share_b,
                "contribution": (delta / change) if change else None,
                "_delta": delta,
            })
    sign = 1 if change >= 0 else -1

    def rank(c):
        if c["contribution"] is None:  # no overall change: the largest moves first
            return (1, -abs(c["_delta"]), 0.0, c["dimension"], str(c["value"]))
        return (0, -(c["contribution"] - c["window_share"]), -sign * c["_delta"],
                c["dimension"], str(c["value"]))

    contributors.sort(key=rank)
    for c in contributors:
        c.pop("_delta")
    return {
        "metric": metric,
        "window": {"from": window.start.isoformat(), "to": window.end.isoformat(),
                   "value": total_value(w), "n": w[den]},
        "baseline": {"from": baseline.start.isoformat(), "to": baseline.end.isoformat(),
                     "value": total_value(b), "n": b[den]},
        "contributors": contributors,
        "significance": significance,
    }


MIN_TESTED = 30  # requests a side needs for the overall change to be tested (design §5)


def overall_significance(metric: str, w_num: float, w_den: int, b_num: float, b_den: int,
                         w_var: float | None = None, b_var: float | None = None) -> dict:
    """Is the overall change more than noise? ``{"test", "statistic", "p_value", "significant"}``
    (p < 0.05). Rates (error rate; the p95 proxy, a share of requests) use the pooled
    two-proportion z-test; cost per request uses Welch's t-test from the two sides' means and
    sample variances. Too few requests on a side (< :data:`MIN_TESTED`): test null, not
    significant (design §5: "insufficient data", see :func:`untested`)."""
    from scipy import stats

    out = {"test": None, "statistic": None, "p_value": None, "significant": False}
    if w_den < MIN_TESTED or b_den < MIN_TESTED:
        return out
    if metric == "cost_per_request":
        if w_var is None or b_var is None:
            return out
        if w_var == b_var == 0:
            # every request of each side cost the same (a flat price): t is 0/0, and the
            # headline read "p = nan"; the means are equal or certainly not
            same = abs(w_num / w_den - b_num / b_den) <= 1e-12
            out.update(test="welch_t", statistic=0.0 if same else None,
                       p_value=1.0 if same else 0.0)
        else:
            res = stats.ttest_ind_from_stats(w_num / w_den, w_var ** 0.5, w_den,
                                             b_num / b_den, b_var ** 0.5, b_den,
                                             equal_var=False)
            out.update(test="welch_t", statistic=float(res.statistic),
                       p_value=float(res.pvalue))
    else:
        pooled = (w_num + b_num) / (w_den + b_den)
        se = (pooled * (1 - pooled) * (1 / w_den + 1 / b_den)) ** 0.5
        if se == 0:
            out.update(test="two_proportion_z", statistic=0.0, p_value=1.0)
            return out
        z = (w_num / w_den - b_num / b_den) / se
        out.update(test="two_proportion_z", statistic=float(z),
                   p_value=float(2 * stats.norm.sf(abs(z))))
    out["significant"] = out["p_value"] is not None and out["p_value"] < 0.05
    return out


def excess(contributor: dict) -> float | None:
    """Contribution beyond size (the ranking key): contribution − window share."""
    c = contributor["contribution"]
    return None if c is None else c - contributor["window_share"]


def _seg_value(metric: str, s: dict | None):
    if s is None:
        return None
    if metric == "error_rate":
        return s["errors"] / s["n"] if s["n"] else None
    if metric == "cost_per_request":
        return s["cost"] / s["priced"] if s["priced"] else None
    return s["p95"]


THIN_BASELINE = 0.1  # a baseline this many times the window's request rate, or less, is thin


def thin_baseline(doc: dict) -> bool:
    """Whether the baseline of a :func:`changes` document holds too few requests to compare
    with: its requests per hour at most THIN_BASELINE times the window's (a baseline from
    before the store's data began, or from when the service barely ran)."""
    w, b = doc["window"], doc["baseline"]
    hours = [(datetime.fromisoformat(d["to"]) - datetime.fromisoformat(d["from"])
              ).total_seconds() / 3600 for d in (w, b)]
    if not w["n"] or min(hours) <= 0:
        return False
    return b["n"] / hours[1] <= THIN_BASELINE * w["n"] / hours[0]


def within_noise(doc: dict) -> bool:
    """Whether the overall change of a :func:`changes` document was tested and is not
    significant (so what its values "explain" is noise too)."""
    sig = doc.get("significance") or {}
    return bool(sig.get("test")) and not sig.get("significant")


def untested(doc: dict) -> bool:
    """Whether both sides of a :func:`changes` document have requests but the overall change
    could not be tested (under :data:`MIN_TESTED` on a side, or a cost without a spread): too
    little to tell a change from noise, which the headline says rather than calling it one."""
    sig = doc.get("significance") or {}
    return bool(doc["window"]["n"] and doc["baseline"]["n"]) and not sig.get("test")


# What each metric is computed on (a document's ``n``): a baseline of unpriced requests has
# requests, but none to give a cost per request.
COUNTED = {"error_rate": "requests", "cost_per_request": "priced requests",
           "p95_latency": "requests with a latency"}


def headline(doc: dict) -> str:
    """The first line an engineer reads, e.g. "provider anthropic's error rate went from 0.8% to
    31% and explains 92% of the increase"."""
    metric, label = doc["metric"], METRICS[doc["metric"]]
    w, b = doc["window"]["value"], doc["baseline"]["value"]
    counted = COUNTED[metric]
    if not doc["window"]["n"]:
        return f"No {counted} in the window."
    if not doc["baseline"]["n"]:
        return f"No {counted} in the baseline to compare with ({label} now {_fmt(metric, w)})."
    overall = "Overall {} went from {} to {}".format(label, *_fmt_pair(metric, b, w))
    if within_noise(doc):
        return (f"{overall}: not a significant change "
                f"(p = {doc['significance']['p_value']:.2g}). The values "
                "that moved most are listed below, but the difference is within noise.")
    if untested(doc):
        # 0 errors in 10 requests, then 2 in 10, read as "explains 100% of the increase" in red
        return (f"{overall}, on too few {counted} to tell a change from noise (under "
                f"{MIN_TESTED} on a side: {doc['baseline']['n']:,} in the baseline, "
                f"{doc['window']['n']:,} in the window). The values that moved most are listed "
                "below.")
    top = doc["contributors"][0] if doc["contributors"] else None
    if top is None or top["contribution"] is None:
        return overall + "; no segment explains a change."
    direction = "increase" if (w or 0) >= (b or 0) else "decrease"
    if metric == "p95_latency":
        direction += " in requests slower than the baseline p95"
    before, after = _fmt_pair(metric, top["baseline_value"], top["window_value"])
    from lib.metrics.dims import label as dim_label

    name = dim_label(top["dimension"])  # "app version", not the column's "app_version"
    who = f"{name[:1].lower()}{name[1:]} {top['value']}"
    share = top["contribution"]
    # Above 100%, other values moved the other way: "explains 440%" says nothing by itself.
    explains = (f"explains {share:.0%} of the {direction}" if share <= 1 else
                f"accounts for all of the {direction} and more ({share:.0%}: other values "
                "moved the other way)")
    # A value that is in one side only changed the mix, not its own rate (a version that a
    # deploy replaced): say that, not "went from 0.82% to –".
    if top["window_value"] is None:
        return (f"{who} had no {counted} in the window (it had {top['baseline_share']:.0%} of "
                f"the baseline's, at {before}): a change of mix that {explains}. ({overall}.)")
    if top["baseline_value"] is None:
        return (f"{who} is new in the window ({top['window_share']:.0%} of its {counted}, at "
                f"{after}): a change of mix that {explains}. ({overall}.)")
    return f"{who}'s {label} went from {before} to {after} and {explains}. ({overall}.)"


def changes_frame(doc: dict) -> pl.DataFrame:
    """The contributors as a frame (for tables and downloads)."""
    return pl.DataFrame(doc["contributors"], schema={
        "dimension": pl.String, "value": pl.String, "window_value": pl.Float64,
        "baseline_value": pl.Float64, "window_share": pl.Float64, "baseline_share": pl.Float64,
        "contribution": pl.Float64})


# -- error fingerprints ----------------------------------------------------------------------------
# The message without a leading "<error type>: ": OpenTelemetry's Python SDK (and OpenInference)
# describe a span ended by an exception as "RateLimitError: Error code: 429 - ...", while
# openai-v2's instrumentation and the Langfuse SDK give the exception's text alone; one error made
# two fingerprints of the same type by the instrumentation that recorded it.
_MESSAGE_WITHOUT_TYPE = (
    "CASE WHEN starts_with(error_message, error_type || ': ') "
    "THEN substr(error_message, length(error_type) + 3) ELSE coalesce(error_message, '') END")
FINGERPRINT_SQL = (
    "trim(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace("
    "regexp_replace(" + _MESSAGE_WITHOUT_TYPE + ", "
    "'[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}', "
    "'<uuid>', 'g'), "
    "'0x[0-9a-fA-F]+|\\b[0-9a-fA-F]{16,}\\b', '<hex>', 'g'), "
    "'\"[^\"]*\"', '<str>', 'g'), "
    # a single-quoted string starts and ends outside a word: an apostrophe is none ("This
    # model's ... isn't" read "This model<str>t")
    "'(^|[^[:alnum:]_])''[^'']*''([^[:alnum:]_]|$)', '\\1<str>\\2', 'g'), "
    "'[0-9]+(\\.[0-9]+)?', '<n>', 'g'), "
    "'\\s+', ' ', 'g'))")


def fingerprints(engine: Engine, filters: Filters, limit: int | None = None) -> pl.DataFrame:
    """Errors grouped by error type and normalized message (ids, numbers, quoted strings and hex
    replaced by placeholders): ``error_type, fingerprint, errors, share, first_seen, last_seen,
    providers, example_request_id``, most errors first."""
    where, params = filters.where("requests")
    lim = f"LIMIT {int(limit)}" if limit else ""
    return engine.query(
        f"""SELECT coalesce(error_type, 'unknown') AS error_type, {FINGERPRINT_SQL} AS fingerprint,
               count(*) AS errors, count(*) / sum(count(*)) OVER () AS share,
               min(ts) AS first_seen, max(ts) AS last_seen,
               string_agg(DISTINCT provider, ', ' ORDER BY provider) AS providers,
               arg_min(request_id, ts) AS example_request_id
            FROM requests WHERE {where} AND status = 'error'
            GROUP BY 1, 2 ORDER BY errors DESC, error_type, fingerprint {lim}""", params)


# -- request table ---------------------------------------------------------------------------------
SORTABLE = {"ts": "Time", "latency_ms": "Latency", "cost_usd": "Cost",
            "input_tokens": "Input tokens", "output_tokens": "Output tokens",
            "ttft_ms": "TTFT"}
# Every column the table sorts by is among them (sorted by TTFT, the table did not show it).
TABLE_COLUMNS = ["ts", "request_id", "status", "error_type", "provider", "model", "feature",
                 "customer_id", "latency_ms", "ttft_ms", "cost_usd", "input_tokens",
                 "output_tokens", "prompt_version", "app_version", "session_id"]
EXPORT_COLUMNS = None  # every column


def _table_where(filters: Filters, q: str | None) -> tuple[str, dict]:
    where, params = filters.where("requests")
    if q:
        params["q"] = q.lower()
        # an id pasted with the space or line break around it (a chat's, a terminal's) is the id
        params["q_exact"] = q.strip()
        # (the error message too: an engineer on call searches the error first, found in review)
        where += (" AND (contains(lower(input_text), $q) OR contains(lower(output_text), $q) "
                  "OR contains(lower(error_message), $q) OR request_id = $q_exact)")
    return where, params


def _order(sort: str, descending: bool) -> str:
    if sort not in SORTABLE:
        raise KeyError(sort)
    return f"{sort} {'DESC' if descending else 'ASC'} NULLS LAST, request_id"


def request_count(engine: Engine, filters: Filters, q: str | None = None) -> int:
    """Requests matching the filters and the text search ``q`` (case-insensitive substring of the
    prompt, response or error message, or an exact request id)."""
    where, params = _table_where(filters, q)
    return int(engine.scalar(f"SELECT count(*) FROM requests WHERE {where}", params))


def request_page(engine: Engine, filters: Filters, q: str | None = None, sort: str = "ts",
                 descending: bool = True, limit: int = 50, offset: int = 0) -> pl.DataFrame:
    """One page of the request table (``LIMIT``/``OFFSET`` on the server): TABLE_COLUMNS plus
    ``prompt`` (the first 200 characters of the prompt)."""
    where, params = _table_where(filters, q)
    return engine.query(
        f"""SELECT {", ".join(TABLE_COLUMNS)}, left(input_text, 200) AS prompt
            FROM requests WHERE {where} ORDER BY {_order(sort, descending)}
            LIMIT {int(limit)} OFFSET {int(offset)}""", params)


def export_requests(engine: Engine, filters: Filters, q: str | None = None, sort: str = "ts",
                    descending: bool = True, fmt: str = "csv", path: str | None = None) -> str:
    """Write every matching request (all columns, no cap) to a CSV or Parquet file, streamed in
    record batches from DuckDB, times in ``filters.tz`` (CSV: with their UTC offset); returns
    the path (a temporary file unless ``path``)."""
    where, params = _table_where(filters, q)
    if path is not None:
        _export_to(engine, filters, where, params, sort, descending, fmt, path)
        return path
    fd, path = tempfile.mkstemp(suffix=f".{fmt}", prefix="sightline-requests-")
    os.close(fd)
    try:
        _export_to(engine, filters, where, params, sort, descending, fmt, path)
    except BaseException:
        # (the caller deletes the file once read: one it never got back stayed in /tmp, a
        # server's downloads that failed piling up there for weeks)
        os.unlink(path)
        raise
    return path


def _export_to(engine: Engine, filters: Filters, where: str, params: dict, sort: str,
               descending: bool, fmt: str, path: str) -> None:
    engine.refresh()
    # (closing the cursor on the way out stops the query of an export cut short, rather than
    # waiting for it)
    with engine.executed(f"SELECT * FROM requests WHERE {where} "
                         f"ORDER BY {_order(sort, descending)}", params) as cur:
        reader = cur.to_arrow_reader(100_000)
        # the same instants, in the zone the page shows them in
        schema = pa.schema([f.with_type(pa.timestamp(f.type.unit, filters.tz))
                            if pa.types.is_timestamp(f.type) and f.type.tz else f
                            for f in reader.schema])
        writer = (pq.ParquetWriter(path, schema) if fmt == "parquet"
                  else _PolarsCsvWriter(path, schema))
        try:
            for batch in reader:
                writer.write_table(pa.Table.from_batches([batch]).cast(schema))
        finally:
            writer.close()


class _PolarsCsvWriter:
    """CSV written by Polars a batch at a time: times as the page's other downloads write them
    ("2026-11-23T19:04:18.000000-0500"; pyarrow's writer has no "T")."""

    def __init__(self, path: str, schema: pa.Schema):
        self._fh = open(path, "wb")  # noqa: SIM115 (closed by close(), as pyarrow's writers)
        self._schema, self._header = schema, True

    def write_table(self, table: pa.Table) -> None:
        # text a spreadsheet would run as a formula made inert, as the pages' CSVs are
        formatting.csv_safe(pl.from_arrow(table)).write_csv(self._fh,
                                                            include_header=self._header)
        self._header = False

    def close(self) -> None:
        if self._header:  # no row: still the header
            self.write_table(self._schema.empty_table())
        self._fh.close()


def window_label(start: datetime, end: datetime) -> str:
    return f"{start.isoformat()} → {end.isoformat()}"


__all__ = ["METRICS", "CHANGE_DIMENSIONS", "DIMENSIONS", "changes", "headline", "fingerprints",
           "request_page", "request_count", "export_requests", "changes_frame"]
