"""Latency: percentiles over time, TTFT, output speed, by dimension, the distribution, the share
within an objective, and the slowest requests.

Percentiles are DuckDB ``quantile_cont`` (type 7, numpy's default) over the raw rows of each
bucket or group, never averaged across buckets. A bucket or group with fewer rows than a
percentile needs (p50 < 20, p90 < 100, p95 < 200, p99 < 1000) carries ``<p>_uncertain = true``.
Units: milliseconds (``*_ms``), output tokens per second (``tokens_per_s``). Errors are included
(a timeout is latency users felt) unless ``ok_only``.

Output speed of a request = output_tokens / generation seconds, where generation time is
``latency_ms − ttft_ms`` when the call streamed (TTFT known) and ``latency_ms`` otherwise; only
successful requests with output tokens and positive generation time count, and not those the
application answered from its own cache (``cache_hit``): nothing was generated, and a hit logged
with the cached answer's usage (LiteLLM's) read as 20,000 tokens a second, moving the median.
"""

from __future__ import annotations

import polars as pl

from lib import pricing
from lib.filters import Filters
from lib.metrics.buckets import (
    MIN_REQUESTS_FOR_RATE,
    MIN_ROWS_FOR_PERCENTILE,
    bucket_seconds,
    bucket_sql,
    grid_sql,
    percentiles_sql,
)
from lib.metrics.dims import NONE_LABEL, dimension_sql
from lib.store.engine import Engine

PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
SPEED_SQL = ("CASE WHEN status = 'ok' AND output_tokens > 0 "
             f"AND NOT {pricing.cache_hit_sql('')} "
             "AND latency_ms - coalesce(ttft_ms, 0) > 0 THEN output_tokens / "
             "((latency_ms - coalesce(ttft_ms, 0)) / 1000.0) END")


def _pct_cols(column: str = "latency_ms", suffix: str = "_ms") -> str:
    return percentiles_sql(column, {f"{k}{suffix}": q for k, q in PERCENTILES.items()})


def _uncertain_cols(n: str, percentiles: dict[str, float] = PERCENTILES) -> str:
    """Flags ``{name}_uncertain`` per percentile of ``percentiles`` (name → fraction): ``n``
    (SQL: the count of requests with the value, a latency by default) is too small for it."""
    return ", ".join(f"coalesce({n}, 0) < {MIN_ROWS_FOR_PERCENTILE[q]} AS {k}_uncertain"
                     for k, q in percentiles.items())


def percentiles_over_time(engine: Engine, filters: Filters, seconds: int | None = None,
                          objective_ms: float | None = None) -> pl.DataFrame:
    """Per bucket: ``bucket, requests, p50_ms, p90_ms, p95_ms, p99_ms``, the ``*_uncertain``
    flags (too few requests with a latency for that percentile), TTFT ``ttft_p50_ms,
    ttft_p95_ms, ttft_requests`` and their ``ttft_p50_uncertain, ttft_p95_uncertain`` (too few
    with a TTFT), ``tokens_per_s_p50`` and ``tokens_per_s_p50_uncertain`` and, with
    ``objective_ms``,
    ``within_objective`` (count), ``within_share`` (of the requests with a latency) and
    ``within_share_uncertain`` (fewer than :data:`MIN_REQUESTS_FOR_RATE` with a latency). Empty
    buckets have zero requests and null percentiles."""
    seconds = seconds or bucket_seconds(filters.duration)
    clock = filters.bucket_clock(seconds)
    where, params = filters.where("requests")
    params.update(bstart=filters.start, bend=filters.end)
    obj = ""
    if objective_ms is not None:
        params["objective"] = float(objective_ms)
        obj = ", count(*) FILTER (WHERE latency_ms <= $objective) AS within_objective"
    frame = engine.query(
        f"""
        WITH grid AS ({grid_sql(clock)}),
        agg AS (
            SELECT {bucket_sql(clock)} AS bucket, count(*) AS requests,
                   count(latency_ms) AS timed, {_pct_cols()},
                   {percentiles_sql("ttft_ms", {"ttft_p50_ms": 0.5, "ttft_p95_ms": 0.95})},
                   count(ttft_ms) AS ttft_requests, count({SPEED_SQL}) AS speed_requests,
                   quantile_cont({SPEED_SQL}, 0.5) AS tokens_per_s_p50 {obj}
            FROM requests WHERE {where} GROUP BY ALL)
        SELECT grid.bucket, coalesce(requests, 0) AS requests,
               p50_ms, p90_ms, p95_ms, p99_ms, {_uncertain_cols("timed")},
               ttft_p50_ms, ttft_p95_ms, coalesce(ttft_requests, 0) AS ttft_requests,
               {_uncertain_cols("ttft_requests", {"ttft_p50": 0.5, "ttft_p95": 0.95})},
               tokens_per_s_p50,
               {_uncertain_cols("speed_requests", {"tokens_per_s_p50": 0.5})}
               {", coalesce(within_objective, 0) AS within_objective" if obj else ""},
               coalesce(timed, 0) AS timed
        FROM grid LEFT JOIN agg USING (bucket) ORDER BY grid.bucket
        """, params)
    if objective_ms is not None:
        # of the requests with a latency, as overall() and by_dimension() count it
        frame = frame.with_columns(
            (pl.col("within_objective") / pl.when(pl.col("timed") > 0)
             .then(pl.col("timed"))).alias("within_share"),
            # a share of 2 requests is 0%, 50% or 100%: drawn hollow, as the error rate's
            (pl.col("timed") < MIN_REQUESTS_FOR_RATE).alias("within_share_uncertain"))
    return frame.drop("timed")


def overall(engine: Engine, filters: Filters, objective_ms: float | None = None) -> dict:
    """Window totals: ``requests, timed`` (those with a latency), ``p50_ms … p99_ms,
    ttft_p50_ms, tokens_per_s_p50`` and, with
    ``objective_ms``, ``within_share`` (share of requests with latency ≤ the objective)."""
    where, params = filters.where("requests")
    params["objective"] = float(objective_ms) if objective_ms is not None else None
    return engine.query(
        f"""SELECT count(*) AS requests, count(latency_ms) AS timed, {_pct_cols()},
               quantile_cont(ttft_ms, 0.5) AS ttft_p50_ms,
               quantile_cont({SPEED_SQL}, 0.5) AS tokens_per_s_p50,
               count(*) FILTER (WHERE latency_ms <= $objective) / nullif(count(latency_ms), 0)
                   AS within_share
            FROM requests WHERE {where}""", params).row(0, named=True) | (
        {} if objective_ms is not None else {"within_share": None})


def by_dimension(engine: Engine, filters: Filters, by: str = "model",
                 objective_ms: float | None = None) -> pl.DataFrame:
    """Per value of ``by`` (every value, most requests first): ``group, requests, p50_ms …
    p99_ms``, ``*_uncertain``, ``ttft_p50_ms``, ``tokens_per_s_p50``, ``within_share``."""
    expr = dimension_sql(by)
    where, params = filters.where("requests")
    params["objective"] = float(objective_ms) if objective_ms is not None else None
    return engine.query(
        f"""SELECT coalesce({expr}, '{NONE_LABEL}') AS "group", count(*) AS requests,
               {_pct_cols()}, {_uncertain_cols("count(latency_ms)")},
               quantile_cont(ttft_ms, 0.5) AS ttft_p50_ms,
               quantile_cont({SPEED_SQL}, 0.5) AS tokens_per_s_p50,
               count(*) FILTER (WHERE latency_ms <= $objective) / nullif(count(latency_ms), 0)
                   AS within_share
            FROM requests WHERE {where} GROUP BY 1 ORDER BY requests DESC, "group" """, params)


def distribution(engine: Engine, filters: Filters, bins_per_decade: int = 10) -> pl.DataFrame:
    """Histogram on log-spaced bins: ``bin_start_ms, bin_end_ms, requests, share`` where bin k
    holds latencies in ``[10^(k/b), 10^((k+1)/b))`` ms (b = bins per decade); latencies ≤ 1 ms
    fall in the first bin at 1 ms."""
    b = int(bins_per_decade)
    where, params = filters.where("requests")
    return engine.query(
        f"""SELECT pow(10, k / {b}.0) AS bin_start_ms, pow(10, (k + 1) / {b}.0) AS bin_end_ms,
               requests, requests / sum(requests) OVER () AS share
            FROM (SELECT floor(log10(greatest(latency_ms, 1)) * {b})::INT AS k,
                         count(*) AS requests
                  FROM requests WHERE {where} AND latency_ms IS NOT NULL GROUP BY 1)
            ORDER BY k""", params)


def slowest(engine: Engine, filters: Filters, limit: int = 50) -> pl.DataFrame:
    """The ``limit`` slowest requests: ``ts, request_id, latency_ms, ttft_ms, provider, model,
    feature, status, error_type, output_tokens``."""
    where, params = filters.where("requests")
    return engine.query(
        f"""SELECT ts, request_id, latency_ms, ttft_ms, provider, model, feature, status,
               error_type, output_tokens FROM requests WHERE {where} AND latency_ms IS NOT NULL
            ORDER BY latency_ms DESC, request_id LIMIT {int(limit)}""", params)
