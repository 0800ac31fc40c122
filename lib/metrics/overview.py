"""The Overview's numbers: KPI tiles against the previous period, and bucketed time series."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from lib import formatting, pricing
from lib.filters import Filters
from lib.metrics import quality
from lib.metrics.buckets import (
    MIN_REQUESTS_FOR_RATE,
    MIN_ROWS_FOR_PERCENTILE,
    bucket_seconds,
    bucket_sql,
    grid_sql,
    percentiles_sql,
)
from lib.store.engine import Engine

# name, label, unit, and whether a higher value is good (for the delta colour).
KPIS = [
    ("requests", "Requests", "count", True),
    ("error_rate", "Error rate", "ratio", False),
    ("p95_latency_ms", "p95 latency", "ms", False),
    ("cost_usd", "Cost", "usd", False),
    ("cached_token_share", "Cached input tokens", "ratio", True),
    ("eval_pass_rate", "Online judge pass rate", "ratio", True),
    ("guardrail_triggers", "Guardrail triggers", "count", False),
]


def previous_period(filters: Filters, now: datetime | None = None) -> Filters:
    """The period the KPIs of ``filters``' window are compared with: the one of equal length just
    before it or, for a window that has not ended at ``now``, the same stretch of that one as
    the window has behind it (today so far against yesterday until the same time). Against
    the whole of the previous period, a window holding the day to 22:24 read "requests
    −4.4%, cost −4.0%" in green where the hours that happened in both differ by +0.3% and
    +1.2% (found in review)."""
    prev = filters.previous()
    if now is None or not filters.start < now < filters.end:
        return prev
    return prev.with_window(prev.start, prev.start + (now - filters.start))


def kpis(engine: Engine, filters: Filters, now: datetime | None = None) -> pl.DataFrame:
    """One row per KPI: ``kpi, label, unit, higher_is_better, value, previous`` where previous is
    the same KPI over :func:`previous_period` (the period of equal length just before the
    window, or its part up to the time ``now`` is into the window; null if no data); for
    the rates, ``n`` and ``previous_n`` (the requests, or the judged evals, each is of) and
    ``change_low`` / ``change_high``, Newcombe's 95% interval of value − previous; for the
    counts, :func:`count_change_interval`'s of value / previous − 1 (null elsewhere): a change
    whose interval holds 0 is within noise (9 of 12 against 5 of 8 is not "+12.5 points
    better", 1 guardrail trigger against 0 not "−100%"). ``caveat``: why a change cannot be read
    as news though it has no interval holding 0 (null if none): requests without a price in
    either period (their cost is not in the totals: traffic moving to an unpriced model is no
    saving). The judge pass rate pools every metric's evals, several of one request, which are
    not independent trials: its interval is Newcombe's on each period's effective number of
    trials (:func:`effective_trials`), as wide as the requests' evidence.

    Units: counts, ratios in [0, 1], milliseconds, US dollars. One scan of the requests covers
    both periods; the eval pass rate is one query per period (filtered as the Quality page's).
    """
    prev = previous_period(filters, now)
    where, params = prev.with_window(prev.start, filters.end).where("requests")
    params.update(cur_start=filters.start, prev_end=prev.end)
    cache_hit = pricing.cache_hit_sql("")
    req = engine.query(
        f"""
        SELECT ts >= $cur_start AS current,
               count(*) AS requests,
               count(*) FILTER (WHERE status = 'error') AS errors,
               count(*) FILTER (WHERE status = 'error') / nullif(count(*), 0) AS error_rate,
               quantile_cont(latency_ms, 0.95) AS p95_latency_ms,
               count(latency_ms) AS timed,
               sum(cost_usd) AS cost_usd,
               count(*) - count(cost_usd) AS unpriced,
               -- of the calls that reached a provider: a hit of the application's own cache
               -- repeats the usage of the answer it served (LiteLLM's), tokens sent to no one,
               -- as the Cost page's token mix leaves them out
               sum(cached_input_tokens) FILTER (WHERE NOT {cache_hit})
                   / nullif(sum(input_tokens) FILTER (WHERE NOT {cache_hit}), 0)
                   AS cached_token_share,
               count(guardrail) AS guardrail_triggers
        FROM requests WHERE {where} AND (ts >= $cur_start OR ts < $prev_end) GROUP BY ALL
        """,
        params,
    )
    # The Quality page's online judge pass rate, filtered as it filters evals (by model, and
    # through the requests they judge for the other filters), each period on its own as that
    # page would show it: mixing in feedback or ignoring the filters made a figure no other
    # page shows.
    def online_pass_rate(period: Filters) -> tuple[float | None, int, int, float]:
        """(pass rate, passed, judged, effective trials)."""
        ewhere, eparams = quality.evals_where(period)
        row = engine.query(
            f"""SELECT sum(y) / sum(m), sum(y), sum(m), count(*), sum(y * y), sum(y * m),
                       sum(m * m)
                FROM (SELECT count(*) FILTER (WHERE passed) AS y, count(*) AS m FROM evals
                      WHERE {ewhere} AND passed IS NOT NULL AND source = 'online'
                      GROUP BY coalesce(request_id, eval_id))""", eparams).row(0)
        if not row[2]:
            return None, 0, 0, 0.0
        return row[0], int(row[1]), int(row[2]), effective_trials(*map(float, row[1:]))

    def pick(current: bool, col: str):
        row = req.filter(pl.col("current") == current)
        return row[col][0] if row.height else None

    from lib.stats.compare import newcombe

    rows = []
    for name, label, unit, higher in KPIS:
        counts = None  # (k, n) now and before, for a rate
        caveat = None
        effective = None  # (k, n) as effective trials, for the interval
        if name == "eval_pass_rate":
            (value, *now, n_now), (previous, *before, n_before) = \
                online_pass_rate(filters), online_pass_rate(prev)
            counts = (*now, *before)
            if n_now and n_before:
                effective = (value * n_now, n_now, previous * n_before, n_before)
        else:
            value, previous = pick(True, name), pick(False, name)
            if name == "cost_usd":
                unpriced = (int(pick(True, "unpriced") or 0), int(pick(False, "unpriced") or 0))
                if any(unpriced):
                    caveat = (f"{formatting.plural(unpriced[0], 'request')} now and "
                              f"{unpriced[1]:,} before have no "
                              "price: their cost is unknown and not in these totals, so the "
                              "change may be traffic moving to or from them (the Data page "
                              "lists them)")
            if name == "p95_latency_ms" and value is not None and previous is not None:
                low, high = p95_change_interval(engine, filters, int(pick(True, "timed")),
                                                int(pick(False, "timed")), prev)
                rows.append(_kpi_row(name, label, unit, higher, value, previous, None, low,
                                     high, None))
                continue
            if name == "error_rate":
                counts = (int(pick(True, "errors") or 0), int(pick(True, "requests") or 0),
                          int(pick(False, "errors") or 0), int(pick(False, "requests") or 0))
        if name in ("requests", "guardrail_triggers"):
            value, previous = value or 0, previous or 0
        low = high = None
        if counts and counts[1] and counts[3]:
            low, high = newcombe(*(effective or counts))
        elif name in ("requests", "guardrail_triggers") and value + previous:
            low, high = count_change_interval(int(value), int(previous))
        rows.append(_kpi_row(name, label, unit, higher, value, previous, counts, low, high,
                             caveat))
    return pl.DataFrame(rows, schema={"kpi": pl.String, "label": pl.String, "unit": pl.String,
                                      "higher_is_better": pl.Boolean, "value": pl.Float64,
                                      "previous": pl.Float64, "n": pl.Int64,
                                      "previous_n": pl.Int64, "change_low": pl.Float64,
                                      "change_high": pl.Float64, "caveat": pl.String})


def _kpi_row(name, label, unit, higher, value, previous, counts, low, high, caveat) -> dict:
    return {"kpi": name, "label": label, "unit": unit, "higher_is_better": higher,
            "value": None if value is None else float(value),
            "previous": None if previous is None else float(previous),
            "n": counts[1] if counts else None, "previous_n": counts[3] if counts else None,
            "change_low": low, "change_high": high, "caveat": caveat}


def quantile_interval_ranks(n: int, q: float = 0.95, level: float = 0.95
                            ) -> tuple[int | None, int | None]:
    """The ranks (1-based, of ``n`` sorted values) of the distribution-free ``level`` interval
    of the ``q`` quantile: the order statistics X(l) and X(u), with l and u the binomial(n, q)
    tails. None where the interval reaches past the data (too few values: no bound)."""
    from scipy.stats import binom

    tail = (1 - level) / 2
    lo, hi = int(binom.ppf(tail, n, q)), int(binom.ppf(1 - tail, n, q)) + 1
    return (lo if lo >= 1 else None), (hi if hi <= n else None)


def p95_change_interval(engine: Engine, filters: Filters, n_now: int, n_before: int,
                        previous: Filters | None = None) -> tuple[float, float]:
    """Bounds of the p95 latency's change now / before − 1 that each period's exact 95%
    interval of its p95 (:func:`quantile_interval_ranks`) allows: from now's lowest over
    before's highest to now's highest over before's lowest. They hold 0 when the two intervals
    overlap: a change within sampling noise (a p95 of 7,000 requests moves ±5% by chance, and
    "+5.7%" was drawn red as news). An unbounded side (too few requests) gives ±∞.
    ``previous``: the period compared with (default: the one just before)."""
    def levels(n: int) -> list[float]:
        # type 7 at (r − 1) / (n − 1) is exactly the r-th value; (0 and 1: the ends, unused)
        return [0.0 if r is None or n < 2 else (r - 1) / (n - 1)
                for r in quantile_interval_ranks(n)]

    def bounds(n: int, got: list[float] | None) -> tuple[float, float]:
        lo, hi = quantile_interval_ranks(n)
        if not got:
            return 0.0, float("inf")
        return (got[0] if lo is not None else 0.0), (got[1] if hi is not None else float("inf"))

    prev = previous or filters.previous()
    where, params = prev.with_window(prev.start, filters.end).where("requests")
    params.update(cur_start=filters.start, prev_end=prev.end, now=levels(n_now),
                  before=levels(n_before))
    now, before = engine.query(
        f"""SELECT quantile_cont(latency_ms, $now::DOUBLE[]) FILTER (WHERE ts >= $cur_start),
                   quantile_cont(latency_ms, $before::DOUBLE[]) FILTER (WHERE ts < $prev_end)
            FROM requests WHERE {where}""", params).row(0)
    (now_lo, now_hi), (before_lo, before_hi) = bounds(n_now, now), bounds(n_before, before)

    def ratio(a: float, b: float) -> float:
        if a == b:  # (0 ms against 0 ms: no change)
            return 0.0
        return float("inf") if b == 0 or a == float("inf") else a / b - 1

    low = -1.0 if before_hi == float("inf") else ratio(now_lo, before_hi)
    return low, ratio(now_hi, before_lo)


def effective_trials(passed: float, judged: float, units: float, sum_yy: float, sum_ym: float,
                     sum_mm: float) -> float:
    """The number of independent trials ``judged`` evals are worth when they come in ``units``
    (requests) of m evals, y of them passed (the sums of y², y·m and m² over the units given):
    ``judged / deff``, with deff the design effect of the pass rate as a ratio estimator,
    Σ(y − p·m)² / (p(1 − p)·Σm) (Kish), at least 1. One eval per request: ``judged`` itself; each
    request's evals all agreeing (three metrics saying the same): the number of requests. At a
    pass rate of 0 or 1 the spread says nothing: the number of requests, the cautious side."""
    p = passed / judged
    if p in (0.0, 1.0):
        return units
    spread = sum_yy - 2 * p * sum_ym + p * p * sum_mm  # Σ(y − p·m)²
    return judged / max(1.0, spread / (p * (1 - p) * judged))


def count_change_interval(now: int, before: int) -> tuple[float, float]:
    """The exact 95% interval of now / before − 1 (a fraction; the upper bound infinite when
    ``before`` could be 0) for counts of two periods of equal length: with no change, ``now``
    is binomial(now + before, 1/2); its Clopper–Pearson interval p gives the ratio p / (1 − p)."""
    from scipy.stats import binomtest

    ci = binomtest(now, now + before).proportion_ci(0.95, method="exact")

    def ratio(p: float) -> float:
        return p / (1 - p) if p < 1 else float("inf")

    return ratio(ci.low) - 1, ratio(ci.high) - 1


def previous_coverage(engine: Engine, filters: Filters, now: datetime | None = None) -> float:
    """The share (0..1) of the period the KPIs are compared with (:func:`previous_period`) that
    lies after the store's first request: 1 when the store has data for all of it, 0 when its
    data starts with the current window. The KPI changes compare like with like only near 1
    (the dimension filters are ignored: a filter may rightly have no rows in part of the
    period)."""
    return window_coverage(engine, previous_period(filters, now))[0]


def window_coverage(engine: Engine, window: Filters) -> tuple[float, datetime | None]:
    """The share (0..1) of ``window`` after the store's first request, and that request's time
    (None on an empty store); the dimension filters are ignored (:func:`previous_coverage`)."""
    first = engine.query("SELECT min(ts) AS first FROM requests")["first"][0]
    if first is None or first >= window.end:
        return 0.0, first
    return min(1.0, (window.end - max(first, window.start)) / window.duration), first


# A gap at the end of a window shorter than this is the pipeline's normal delay, not a stall.
MIN_STALE = timedelta(minutes=10)
STALE_SHARE = 0.02  # of the window
# Requests stamped later than now by more than this are reported as from a clock ahead of time.
AHEAD_SLACK = timedelta(minutes=5)


def arrivals(engine: Engine, filters: Filters, now: datetime
             ) -> tuple[datetime | None, int, datetime | None]:
    """Whether logs are still arriving, whatever the window and filters, in one scan:
    ``(last, ahead, latest_ahead)``. ``last`` is the time (UTC) of the newest request, leaving
    out those stamped over :data:`AHEAD_SLACK` after ``now`` (a logger's clock ahead must not
    hide a stall; a past window whose end was quiet is no stall when requests came after it);
    ``ahead`` counts those left out (ingest accepts up to a day ahead) and ``latest_ahead`` is
    the latest of their times; None and 0 when there are none. ``filters`` only keys the
    page's cache."""
    row = engine.query(
        "SELECT max(ts) FILTER (WHERE ts <= $until), count(*) FILTER (WHERE ts > $until), "
        "max(ts) FILTER (WHERE ts > $until) FROM requests", {"until": now + AHEAD_SLACK}).row(0)
    return row[0], int(row[1]), row[2]



def requests_span(engine: Engine, filters: Filters) -> tuple[int, datetime | None,
                                                             datetime | None]:
    """The requests matching ``filters``' dimension filters at any time: (how many, the first's
    and the last's time, UTC); (0, None, None) when none does."""
    from lib.filters import URL_TIMES

    where, params = filters.with_window(*URL_TIMES).where("requests")
    row = engine.query(f"SELECT count(*), min(ts), max(ts) FROM requests WHERE {where}",
                       params).row(0)
    return int(row[0]), row[1], row[2]


def stale_gap(last: datetime | None, filters: Filters, now: datetime) -> timedelta | None:
    """How long the end of the window has had no request in the store at all (from ``last``,
    the newest request, to the window's end or ``now``, whichever is first), when that is long
    enough to read as a drop in traffic: at least :data:`MIN_STALE` and :data:`STALE_SHARE` of
    the window; else None. A stalled pipeline then shows as a stall, not as fewer requests."""
    if last is None:
        return None
    end = min(filters.end, now)
    gap = end - max(last, filters.start)
    if last >= end or gap < max(MIN_STALE, filters.duration * STALE_SHARE):
        return None
    return gap


def timeseries(engine: Engine, filters: Filters, seconds: int | None = None) -> pl.DataFrame:
    """Per time bucket: ``bucket`` (UTC start), ``requests``, ``errors``, ``error_rate``,
    ``p50_ms``, ``p95_ms``, ``cost_usd`` (of the priced requests; null when the bucket has
    requests but none priced), ``unpriced_requests``, ``cost_per_request`` (USD, over the
    priced requests, as the KPIs count it), ``p50_uncertain`` / ``p95_uncertain`` when the
    bucket has too few requests with a latency for that percentile, ``rate_uncertain`` when it
    has too few for a rate (:data:`MIN_REQUESTS_FOR_RATE`) and ``cost_per_request_uncertain``
    too few priced ones. Empty buckets are present with zero requests, so gaps show as gaps.
    ``seconds`` defaults to :func:`bucket_seconds` of the window.
    """
    seconds = seconds or bucket_seconds(filters.duration)
    where, params = filters.where("requests")
    params["bstart"] = filters.start
    params["bend"] = filters.end
    clock = filters.bucket_clock(seconds)
    b = bucket_sql(clock)
    return engine.query(
        f"""
        WITH grid AS ({grid_sql(clock)}), agg AS (
            SELECT {b} AS bucket, count(*) AS requests,
                   count(*) FILTER (WHERE status = 'error') AS errors,
                   {percentiles_sql("latency_ms", {"p50_ms": 0.5, "p95_ms": 0.95})},
                   count(latency_ms) AS timed,
                   sum(cost_usd) AS cost_usd, count(*) - count(cost_usd) AS unpriced_requests
            FROM requests WHERE {where} GROUP BY ALL
        )
        SELECT grid.bucket, coalesce(requests, 0) AS requests, coalesce(errors, 0) AS errors,
               errors / nullif(requests, 0) AS error_rate, p50_ms, p95_ms,
               CASE WHEN requests IS NULL THEN 0 ELSE cost_usd END AS cost_usd,
               coalesce(unpriced_requests, 0) AS unpriced_requests,
               -- over the priced requests: over all of them, traffic moving to a model
               -- without a price read as a cheaper request (found in review)
               cost_usd / nullif(requests - unpriced_requests, 0) AS cost_per_request,
               coalesce(timed, 0) < {MIN_ROWS_FOR_PERCENTILE[0.5]} AS p50_uncertain,
               coalesce(timed, 0) < {MIN_ROWS_FOR_PERCENTILE[0.95]} AS p95_uncertain,
               coalesce(requests, 0) < {MIN_REQUESTS_FOR_RATE} AS rate_uncertain,
               coalesce(requests - unpriced_requests, 0) < {MIN_REQUESTS_FOR_RATE}
                   AS cost_per_request_uncertain
        FROM grid LEFT JOIN agg USING (bucket) ORDER BY grid.bucket
        """,
        params,
    )


def events(engine: Engine, filters: Filters) -> pl.DataFrame:
    """Events (deploys, prompt/model changes, incidents) in the window, oldest first:
    ``ts, kind, service, version, title, detail, author``."""
    where, params = filters.where("events")
    return engine.query(
        f"SELECT ts, kind, service, version, title, detail, author FROM events WHERE {where} "
        "ORDER BY ts", params)
