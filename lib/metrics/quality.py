"""Quality: eval pass rates and scores over time and by version (with Wilson 95% intervals),
online judge scores, user feedback, guardrail triggers, finish reasons and error types.

Evals are filtered by the window and the ``model`` filter (their own model, or the model of the
request they judge: a Langfuse score or user feedback has none of its own, and an OpenTelemetry
judge's eval names the answering snapshot where the sidebar lists the model requested); other
dimension filters (feature, customer …) keep the online and feedback evals whose ``request_id``
is a request matching them, or, judging a whole trace or a step of it that is no model call
(an agent's span; the trace in ``attributes.trace_id``), a request of that trace (offline
evals, which have no request, are then left out). Ratios are in [0, 1].

Wilson interval for k successes in n trials at z = 1.959964 (95%)::

    centre = (k + z²/2) / (n + z²),  half = z / (n + z²) · sqrt(k (n − k) / n + z²/4)
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import replace
from functools import partial

import polars as pl

from lib.filters import Filters
from lib.metric_settings import MetricSettings
from lib.metrics.buckets import bucket_seconds, bucket_sql, grid_sql
from lib.metrics.dims import NONE_LABEL, OTHER_LABEL
from lib.schema import EVAL_TRACE_SQL
from lib.store.engine import Engine

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | tuple[None, None]:
    """Wilson score interval for k successes in n trials; (None, None) when n = 0."""
    if n <= 0:
        return None, None
    z2 = z * z
    centre = (k + z2 / 2) / (n + z2)
    half = z / (n + z2) * math.sqrt(k * (n - k) / n + z2 / 4)
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_exprs(k: str, n: str, prefix: str, z: float = Z95) -> list[pl.Expr]:
    """Polars expressions ``<prefix>_low`` / ``<prefix>_high``: the Wilson interval of columns
    ``k`` / ``n`` (null where n = 0)."""
    kk, nn, z2 = pl.col(k).cast(pl.Float64), pl.col(n).cast(pl.Float64), z * z
    centre = (kk + z2 / 2) / (nn + z2)
    half = z / (nn + z2) * ((kk * (nn - kk) / nn) + z2 / 4).sqrt()
    ok = pl.col(n) > 0
    return [pl.when(ok).then((centre - half).clip(lower_bound=0.0)).alias(f"{prefix}_low"),
            pl.when(ok).then((centre + half).clip(upper_bound=1.0)).alias(f"{prefix}_high")]


def evals_where(filters: Filters) -> tuple[str, dict]:
    """SQL and parameters keeping the evals ``filters`` select (see the module's docstring)."""
    window = Filters(start=filters.start, end=filters.end)
    where, params = window.where("evals", prefix="e")
    in_window = where
    models = [v for c, vals in filters.values if c == "model" for v in vals]
    if models:
        names = [f"e_model_{j}" for j in range(len(models))]
        params.update(zip(names, models, strict=True))
        listed = ", ".join(f"${n}" for n in names)
        # An eval that judges a request is of that request's model, the one the sidebar lists
        # (requests.model): one without a model of its own (a Langfuse score, user feedback),
        # and one that names the model that answered (an OpenTelemetry judge's eval names the
        # span's response model, "gpt-4o-2024-08-06": under the filter "gpt-4o" every such
        # eval was gone, found in review).
        where += (f" AND (model IN ({listed}) OR " + _judges(
            f"model IN ({listed}) AND {LOOKBACK.format(start='$e_start')} AND ts < $e_end",
            in_window) + ")")
    others = [(c, v) for c, v in filters.values if c != "model"]
    if others:
        sub = Filters(start=filters.start, end=filters.end, values=tuple(others))
        rwhere, rparams = sub.where("requests", prefix="r")
        rwhere = rwhere.replace("ts >= $r_start", LOOKBACK.format(start="$r_start"))
        where += f" AND {_judges(rwhere, in_window)}"
        params.update(rparams)
    return where, params


def _judges(requests_where: str, evals_in_window: str) -> str:
    """SQL: the eval judges a request ``requests_where`` selects: by its ``request_id``, or, a
    judgement of a whole trace or of a step that is no model call (its trace's id in
    ``attributes.trace_id``), by a request of that trace. A trace's judgement is a Langfuse
    score on a trace, as user feedback usually is (no observation: by request_id alone every
    such feedback was gone as soon as a filter was set, review), and a step's an OpenTelemetry
    evaluation of an ``invoke_agent`` span or a Langfuse score of a SPAN observation (its
    request_id is that step's span: no request, so gone under any filter, review). A request_id
    that is a request of its trace decides alone. ``evals_in_window``: the evals among which
    to look for traces (SQL on ``evals``, the window's)."""
    trace, judged = EVAL_TRACE_SQL.format(row="t."), EVAL_TRACE_SQL.format(row="x.")
    # (the requests of the evals' traces, not all: a store of evals without a trace scans none)
    return (f"(request_id IN (SELECT request_id FROM requests WHERE {requests_where}) OR "
            f"eval_id IN (SELECT t.eval_id FROM evals t WHERE {evals_in_window} AND {trace} IN "
            f"(SELECT trace_id FROM requests WHERE {requests_where}) AND "
            "(t.request_id IS NULL OR t.request_id NOT IN (SELECT request_id FROM requests "
            f"WHERE trace_id IN (SELECT {judged} FROM evals x WHERE {evals_in_window})))))")


# Evals are scored after the request: look back a day for the requests they judge.
LOOKBACK = "ts >= {start} - INTERVAL 1 DAY"


def _source_clause(source: str | None, params: dict) -> str:
    if source is None:
        return ""
    params["source"] = source
    return " AND source = $source"


# The independent units of a pass rate's interval: a test case (model, dataset, case_id), however
# many epochs or runs it was scored in (repeats of one question are no independent trials:
# counted as such, 10 cases of 5 epochs gave a version an interval as narrow as 50 cases', and
# "intervals that do not overlap show a difference" said so of a difference the cases do not
# show; found in review); an eval without a case (online judges, feedback) is its own.
_UNITS_SQL = ("count(DISTINCT (model, dataset, case_id)) FILTER (WHERE case_id IS NOT NULL "
              "AND passed IS NOT NULL) + count(passed) FILTER (WHERE case_id IS NULL) AS units")


def evals_over_time(engine: Engine, filters: Filters, source: str | None = None,
                    seconds: int | None = None) -> pl.DataFrame:
    """Per bucket and metric: ``bucket, metric, n, passed, pass_rate, pass_low, pass_high,
    scored, mean_score, units`` (pass counts over evals with a pass/fail; mean over non-null
    scores; the interval over ``units``, :data:`_UNITS_SQL`)."""
    seconds = seconds or bucket_seconds(filters.duration)
    clock = filters.bucket_clock(seconds)
    where, params = evals_where(filters)
    where += _source_clause(source, params)
    frame = engine.query(
        f"""SELECT {bucket_sql(clock)} AS bucket, metric, count(passed) AS n,
               count(*) FILTER (WHERE passed) AS passed, count(score) AS scored,
               avg(score) AS mean_score, {_UNITS_SQL}
            FROM evals WHERE {where} GROUP BY ALL ORDER BY bucket, metric""", params)
    return _rates(frame)


def _rates(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``pass_rate`` (passed / n) and its Wilson interval over the independent
    ``units``: the rate's successes of ``units`` trials (the same as passed of n when every
    eval is its own unit)."""
    rate = pl.col("passed") / pl.when(pl.col("n") > 0).then(pl.col("n"))
    return frame.with_columns(rate.alias("pass_rate"),
                              (rate * pl.col("units")).alias("_unit_passes")).with_columns(
        *wilson_exprs("_unit_passes", "units", "pass")).drop("_unit_passes")


def evals_by_version(engine: Engine, filters: Filters, source: str | None = None
                     ) -> pl.DataFrame:
    """Per version and metric: ``version, metric, n, passed, pass_rate, pass_low, pass_high,
    scored, mean_score, units, first_ts, last_ts``, oldest version first (the interval over
    ``units``, :data:`_UNITS_SQL`)."""
    where, params = evals_where(filters)
    where += _source_clause(source, params)
    frame = engine.query(
        f"""SELECT coalesce(version, '{NONE_LABEL}') AS version, metric, count(passed) AS n,
               count(*) FILTER (WHERE passed) AS passed, count(score) AS scored,
               avg(score) AS mean_score, {_UNITS_SQL}, min(ts) AS first_ts,
               max(ts) AS last_ts
            FROM evals WHERE {where} GROUP BY ALL ORDER BY first_ts, version, metric""", params)
    return _rates(frame)


def eval_runs(engine: Engine, filters: Filters, source: str | None = None) -> pl.DataFrame:
    """``run_id, version, evals, first_ts, last_ts`` of the evals ``filters`` select (of
    ``source`` when given), one row per run and version, oldest run first: what a run id
    names when a comparison is asked of a run (``compare --baseline RUN``) rather than a
    version (a null version as :data:`NONE_LABEL`)."""
    where, params = evals_where(filters)
    where += _source_clause(source, params)
    return engine.query(
        f"""SELECT run_id, coalesce(version, '{NONE_LABEL}') AS version, count(*) AS evals,
               min(ts) AS first_ts, max(ts) AS last_ts
            FROM evals WHERE {where} AND run_id IS NOT NULL
            GROUP BY ALL ORDER BY first_ts, run_id, version""", params)


def feedback_metrics(engine: Engine, filters: Filters) -> pl.DataFrame:
    """The feedback metrics with a pass/fail (thumbs up or down): ``metric, n, up``, most rated
    first. Two of them (thumbs_up and a "resolved" flag) are different questions: their shares
    are given one at a time, never pooled."""
    where, params = evals_where(filters)
    return engine.query(
        f"SELECT metric, count(passed) AS n, count(*) FILTER (WHERE passed) AS up FROM evals "
        f"WHERE {where} AND source = 'feedback' AND passed IS NOT NULL "
        f"GROUP BY metric ORDER BY n DESC, metric", params)


def _feedback_where(filters: Filters, metric: str | None) -> tuple[str, dict]:
    """Feedback evals in the filters, of ``metric`` when given (None: every metric)."""
    where, params = evals_where(filters)
    where += " AND source = 'feedback'"
    if metric is not None:
        where += " AND metric = $feedback_metric"
        params["feedback_metric"] = metric
    return where, params


def feedback_over_time(engine: Engine, filters: Filters, seconds: int | None = None,
                       metric: str | None = None) -> pl.DataFrame:
    """User feedback (``source = 'feedback'``, of ``metric`` when given) per bucket:
    ``bucket, n, up, up_share, up_low, up_high``; every bucket of the window is present."""
    seconds = seconds or bucket_seconds(filters.duration)
    clock = filters.bucket_clock(seconds)
    where, params = _feedback_where(filters, metric)
    params.update(bstart=filters.start, bend=filters.end)
    frame = engine.query(
        f"""WITH grid AS ({grid_sql(clock)}),
            agg AS (SELECT {bucket_sql(clock)} AS bucket, count(passed) AS n,
                           count(*) FILTER (WHERE passed) AS up
                    FROM evals WHERE {where} GROUP BY ALL)
            SELECT grid.bucket, coalesce(n, 0) AS n, coalesce(up, 0) AS up
            FROM grid LEFT JOIN agg USING (bucket) ORDER BY grid.bucket""", params)
    return frame.with_columns(
        (pl.col("up") / pl.when(pl.col("n") > 0).then(pl.col("n"))).alias("up_share"),
        *wilson_exprs("up", "n", "up"))


def feedback_totals(engine: Engine, filters: Filters, metric: str | None = None) -> dict:
    """``n, up, up_share, up_low, up_high`` over the window, of ``metric`` when given."""
    where, params = _feedback_where(filters, metric)
    row = engine.query(
        f"SELECT count(passed) AS n, count(*) FILTER (WHERE passed) AS up FROM evals "
        f"WHERE {where}", params).row(0, named=True)
    low, high = wilson(row["up"], row["n"])
    return {**row, "up_share": row["up"] / row["n"] if row["n"] else None,
            "up_low": low, "up_high": high}


def guardrails(engine: Engine, filters: Filters) -> pl.DataFrame:
    """Guardrail triggers: ``guardrail, action, triggers, share_of_requests``, most first."""
    where, params = filters.where("requests")
    return engine.query(
        f"""SELECT guardrail, coalesce(guardrail_action, '{NONE_LABEL}') AS action,
               count(*) AS triggers,
               count(*) / (SELECT count(*) FROM requests WHERE {where}) AS share_of_requests
            FROM requests WHERE {where} AND guardrail IS NOT NULL
            GROUP BY ALL ORDER BY triggers DESC, guardrail, action""", params)


def guardrails_over_time(engine: Engine, filters: Filters, seconds: int | None = None
                         ) -> pl.DataFrame:
    """``bucket, guardrail, triggers`` (long; buckets without triggers are absent)."""
    seconds = seconds or bucket_seconds(filters.duration)
    clock = filters.bucket_clock(seconds)
    where, params = filters.where("requests")
    return engine.query(
        f"""SELECT {bucket_sql(clock)} AS bucket, guardrail, count(*) AS triggers
            FROM requests WHERE {where} AND guardrail IS NOT NULL GROUP BY ALL
            ORDER BY bucket, guardrail""", params)


def finish_reasons(engine: Engine, filters: Filters) -> pl.DataFrame:
    """``finish_reason, requests, share`` over all requests of the window (null = none given,
    e.g. errors)."""
    where, params = filters.where("requests")
    return engine.query(
        f"""SELECT coalesce(finish_reason, '{NONE_LABEL}') AS finish_reason, count(*) AS requests,
               count(*) / sum(count(*)) OVER () AS share
            FROM requests WHERE {where} GROUP BY 1 ORDER BY requests DESC, 1""", params)


def errors_over_time(engine: Engine, filters: Filters, seconds: int | None = None,
                     top: int = 6) -> pl.DataFrame:
    """Long frame ``bucket, error_type, errors, requests_in_bucket, error_rate`` per bucket for
    the ``top`` error types (the rest as ``(other)``); every bucket is present for every type
    drawn. ``requests_in_bucket`` is the bucket's requests of every type, repeated on each of its
    rows (named so: as ``requests``, a download's column summed to three times the requests)."""
    seconds = seconds or bucket_seconds(filters.duration)
    clock = filters.bucket_clock(seconds)
    where, params = filters.where("requests")
    params.update(bstart=filters.start, bend=filters.end)
    return engine.query(
        f"""WITH base AS (SELECT ts, status, coalesce(error_type, 'unknown') AS et
                          FROM requests WHERE {where}),
            top AS (SELECT et FROM base WHERE status = 'error' GROUP BY et
                    ORDER BY count(*) DESC, et LIMIT {int(top)}),
            grid AS ({grid_sql(clock)}),
            tot AS (SELECT {bucket_sql(clock)} AS bucket, count(*) AS requests
                    FROM base GROUP BY 1),
            agg AS (SELECT {bucket_sql(clock)} AS bucket,
                           CASE WHEN et IN (SELECT et FROM top) THEN et ELSE '{OTHER_LABEL}' END
                               AS error_type, count(*) AS errors
                    FROM base WHERE status = 'error' GROUP BY ALL),
            types AS (SELECT DISTINCT error_type FROM agg)
            SELECT grid.bucket, types.error_type, coalesce(agg.errors, 0) AS errors,
                   coalesce(tot.requests, 0) AS requests_in_bucket,
                   coalesce(agg.errors, 0) / nullif(tot.requests, 0) AS error_rate
            FROM grid CROSS JOIN types LEFT JOIN agg USING (bucket, error_type)
                 LEFT JOIN tot USING (bucket)
            ORDER BY grid.bucket, types.error_type""", params)


def eval_metrics(engine: Engine, filters: Filters) -> pl.DataFrame:
    """``source, metric, evals`` present in the window (to pick from)."""
    where, params = evals_where(filters)
    return engine.query(
        f"SELECT source, metric, count(*) AS evals FROM evals WHERE {where} GROUP BY ALL "
        f"ORDER BY source, evals DESC", params)


def comparison_inputs(engine: Engine, filters: Filters, source: str, version_a: str,
                      version_b: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """What a comparison of two versions' evals of ``source`` needs, per metric:

    - ``pairs``: ``metric, model, dataset, case_id, epoch, a_pass, b_pass, a_score, b_score``
      (model '' unless part of a case's identity, dataset '' and epoch -1 for none), one row per
      test case and epoch both versions were scored on, paired by (dataset, case_id, epoch) as
      design §5 says, and by model where a version scored a case for several models
      (:func:`_cases_by_model`) (a case scored several times by a version in one epoch: its
      latest result);
    - ``totals``: ``metric, version, n, passed, scored, mean_score, unscored`` per version,
      for runs without common cases (online judges and feedback score different requests);
      ``unscored`` counts the results with neither a pass nor a score (a call that errored:
      promptfoo's errors, a scorer that failed).
    """
    rows, params = _results_sql(engine, filters, source, version_a, version_b)
    pairs = engine.query(
        f"""{rows}
            SELECT metric, model, dataset, case_id, epoch, a.passed AS a_pass,
                   b.passed AS b_pass, a.score AS a_score, b.score AS b_score
            FROM latest a JOIN latest b USING (metric, model, dataset, case_id, epoch)
            WHERE a.version = $va AND b.version = $vb
            ORDER BY metric, model, dataset, case_id, epoch""", params)
    totals = engine.query(
        f"""{rows}
            SELECT metric, version, count(passed) AS n, count(*) FILTER (WHERE passed) AS passed,
                   count(score) AS scored, avg(score) AS mean_score,
                   count(*) FILTER (WHERE passed IS NULL AND score IS NULL) AS unscored
            FROM (SELECT version, metric, passed, score FROM latest UNION ALL
                  SELECT * FROM loose) GROUP BY ALL ORDER BY metric, version""", params)
    return pairs, totals


def _results_sql(engine: Engine, filters: Filters, source: str, version_a: str,
                 version_b: str) -> tuple[str, dict]:
    """SQL (CTEs ``latest``: one row per test case and version, and ``loose``: evals without a
    case) and parameters ($va, $vb) of what a comparison of the two versions counts."""
    where, params = evals_where(filters)
    where += _source_clause(source, params)
    params.update(va=version_a, vb=version_b)
    model = _CASE_MODEL if _cases_by_model(engine, where, params, ("$va", "$vb")) else "''"
    # One row per test case and version: its latest result, whole (pass and score of one row;
    # ties by eval_id); evals without a case (online judges, feedback) are each their own.
    return f"""
        WITH e AS (SELECT * FROM evals WHERE {where} AND version IN ($va, $vb)),
        latest AS (
            SELECT version, metric, {model} AS model, coalesce(dataset, '') AS dataset, case_id,
                   coalesce(epoch, -1) AS epoch, passed, score
            FROM e WHERE case_id IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY version, metric, {model},
                                       coalesce(dataset, ''), case_id, coalesce(epoch, -1)
                                       ORDER BY ts DESC, eval_id DESC) = 1),
        loose AS (SELECT version, metric, passed, score FROM e WHERE case_id IS NULL)""", params


def version_scores(engine: Engine, filters: Filters, source: str, version_a: str,
                   version_b: str) -> pl.DataFrame:
    """``metric, version, score``: every score the comparison of the two versions counts (a
    test case once, by its latest result), for scores compared as independent samples."""
    rows, params = _results_sql(engine, filters, source, version_a, version_b)
    return engine.query(
        f"""{rows}
            SELECT metric, version, score
            FROM (SELECT version, metric, score FROM latest UNION ALL
                  SELECT version, metric, score FROM loose)
            WHERE score IS NOT NULL ORDER BY metric, version""", params)


def version_cases(engine: Engine, filters: Filters, source: str, version_a: str,
                  version_b: str) -> pl.DataFrame:
    """``metric, version, pass_rate, mean_score, epochs``: each test case of the two versions
    once, its epochs' pass rate and mean score (an epoch by its latest result; null without
    one), and each eval without a case as its own (1 epoch): the samples of runs compared as
    independent samples when a case was run in several epochs."""
    rows, params = _results_sql(engine, filters, source, version_a, version_b)
    return engine.query(
        f"""{rows}
            SELECT metric, version, avg(passed::DOUBLE) AS pass_rate, avg(score) AS mean_score,
                   count(*) AS epochs
            FROM latest GROUP BY version, metric, model, dataset, case_id
            UNION ALL
            SELECT metric, version, passed::DOUBLE, score, 1 FROM loose
            ORDER BY metric, version""", params)


_CASE_MODEL = "coalesce(model, '')"  # (the model, as part of a test case's identity)


def _cases_by_model(engine: Engine, where: str, params: dict, versions: tuple[str, str]
                    ) -> bool:
    """Whether the model is part of a test case's identity in a comparison of ``versions`` (SQL
    parameters): when a version scored one case for several models (a promptfoo run over two
    providers: its rows of one case were paired with the other version's rows of either model,
    found in review); not otherwise, so a version that is a model change (task@A against
    task@B) is paired across the models."""
    several = engine.query(
        f"SELECT count(*) AS n FROM (SELECT 1 FROM evals WHERE {where} AND version IN "
        f"({', '.join(versions)}) AND case_id IS NOT NULL GROUP BY version, metric, "
        "coalesce(dataset, ''), case_id, coalesce(epoch, -1) "
        "HAVING count(DISTINCT coalesce(model, '')) > 1 LIMIT 1)", params)
    return bool(several["n"][0])


def _against_baseline(engine: Engine, filters: Filters, source: str, version: str,
                      baseline: str, metric: str | None) -> tuple[str, dict]:
    """SQL (CTEs, ending with ``joined``) and parameters: the evals of ``version`` (of
    ``source``, optionally one ``metric``), a test case once by its latest result as the
    comparison counts it, each beside the ``baseline``'s latest result of the same case
    (``baseline_passed``, ``baseline_score``: null without one)."""
    where, params = evals_where(filters)
    where += _source_clause(source, params)
    params.update(v=version, base=baseline)
    metric_clause = ""
    if metric is not None:
        params["metric"] = metric
        metric_clause = " AND metric = $metric"
    by_model = _cases_by_model(engine, where + metric_clause, params, ("$v", "$base"))
    model = _CASE_MODEL if by_model else "''"
    key = f"metric, {model}, coalesce(dataset, ''), case_id, coalesce(epoch, -1)"
    same_model = " AND coalesce(b.model, '') = coalesce(m.model, '')" if by_model else ""
    return f"""
        WITH e AS (SELECT * FROM evals WHERE {where}{metric_clause}),
        latest AS (
            SELECT * FROM e WHERE case_id IS NOT NULL AND version IN ($v, $base)
            QUALIFY row_number() OVER (PARTITION BY version, {key}
                                       ORDER BY ts DESC, eval_id DESC) = 1),
        mine AS (SELECT * FROM latest WHERE version = $v
                 UNION ALL SELECT * FROM e WHERE case_id IS NULL AND version = $v),
        joined AS (
            SELECT m.ts, m.metric, m.model, m.dataset, m.case_id, m.epoch, m.request_id,
                   m.score, m.passed, m.label, m.explanation, m.judge,
                   b.passed AS baseline_passed, b.score AS baseline_score
            FROM mine m LEFT JOIN latest b ON b.version = $base AND m.case_id IS NOT NULL
                 AND b.metric = m.metric AND coalesce(b.dataset, '') = coalesce(m.dataset, '')
                 AND b.case_id = m.case_id AND coalesce(b.epoch, -1) = coalesce(m.epoch, -1)
                 {same_model})""", params


def failed_evals(engine: Engine, filters: Filters, source: str, version: str, baseline: str,
                 metric: str | None = None, limit: int = 500) -> tuple[pl.DataFrame, int]:
    """The evals ``version`` failed (of ``source``, optionally one ``metric``), the evidence
    behind a comparison with ``baseline``: ``ts, metric, model, dataset, case_id, epoch,
    request_id, score, label, explanation, judge, baseline_passed`` (whether ``baseline``
    passed the same test case: its latest result; null without one). A test case counts once,
    by its latest result, as the comparison counts it. Regressions (the baseline passed) first,
    then the newest; at most ``limit`` rows, with how many there are in all."""
    body, params = _against_baseline(engine, filters, source, version, baseline, metric)
    return _shown_with_total(engine, body, params, """SELECT ts, metric, model, dataset,
        case_id, epoch, request_id, score, label, explanation, judge, baseline_passed
        FROM joined WHERE passed = false""",
        "baseline_passed IS NOT TRUE, ts DESC, metric, case_id, request_id", limit)


def _shown_with_total(engine: Engine, body: str, params: dict, select: str, order: str,
                      limit: int) -> tuple[pl.DataFrame, int]:
    """The first ``limit`` rows of ``select`` (SQL over ``body``'s CTEs) in ``order``, with how
    many there are in all, in one pass (a second query redid it all)."""
    # The total is a count over the rows kept once, not `count(*) OVER ()`: DuckDB 1.5.5's
    # parallel window count intermittently fails with an internal error on a small input
    # (duckdb#22846, #25713), and an internal error invalidates the process's whole database.
    rows = engine.query(
        f"""{body}, shown AS MATERIALIZED ({select})
            SELECT shown.*, total._total FROM shown, (SELECT count(*) AS _total FROM shown) total
            ORDER BY {order} LIMIT {int(limit)}""", params)
    total = int(rows["_total"][0]) if rows.height else 0
    return rows.drop("_total"), total


def score_drops(engine: Engine, filters: Filters, source: str, version: str, baseline: str,
                metric: str | None = None, limit: int = 500) -> tuple[pl.DataFrame, int]:
    """The evidence behind a comparison of scores (a metric without pass/fail, where
    :func:`failed_evals` finds nothing to show): the test cases ``version`` scored lower than
    ``baseline`` did, ``ts, metric, model, dataset, case_id, epoch, request_id, score,
    baseline_score, change, label, explanation, judge``, the largest drop first (then the
    newest); a case counts once, by its latest result on each side, as the comparison counts
    it. At most ``limit`` rows, with how many there are in all."""
    return _scores_against_baseline(engine, filters, source, version, baseline, metric,
                                    "score < baseline_score", "change, ts DESC, metric, case_id",
                                    limit)


def lowest_scores(engine: Engine, filters: Filters, source: str, version: str, baseline: str,
                  metric: str | None = None, limit: int = 500) -> tuple[pl.DataFrame, int]:
    """The evidence behind scores compared as independent samples (an online judge's, with no
    case in common to show a drop on): ``version``'s scores, the lowest first (then the
    newest), as :func:`score_drops` gives them (``baseline_score`` where the baseline scored
    the same case). At most ``limit`` rows, with how many there are in all."""
    return _scores_against_baseline(engine, filters, source, version, baseline, metric,
                                    "score IS NOT NULL",
                                    "score, ts DESC, metric, case_id, request_id", limit)


def _scores_against_baseline(engine: Engine, filters: Filters, source: str, version: str,
                             baseline: str, metric: str | None, keep: str, order: str,
                             limit: int) -> tuple[pl.DataFrame, int]:
    """:func:`score_drops`' columns of the rows of ``_against_baseline``'s ``joined`` that
    ``keep`` (SQL) selects, in ``order``: at most ``limit``, with how many there are in all."""
    body, params = _against_baseline(engine, filters, source, version, baseline, metric)
    return _shown_with_total(engine, body, params, f"""SELECT ts, metric, model, dataset,
        case_id, epoch, request_id, score, baseline_score, score - baseline_score AS change,
        label, explanation, judge FROM joined WHERE {keep}""", order, limit)


def prompt_labels(engine: Engine, filters: Filters, versions: tuple[str, ...]
                  ) -> dict[str, str]:
    """``{version: "chat-prompt v13"}``: each prompt version named with the prompt(s) the
    window's requests give it (online judges and feedback are by prompt version, and "v13" alone
    does not say of which prompt); a version no request names stays as it is."""
    if not versions:
        return {}
    window = Filters(start=filters.start, end=filters.end)
    where, params = window.where("requests", prefix="p")
    where = where.replace("ts >= $p_start", LOOKBACK.format(start="$p_start"))
    params["versions"] = list(versions)
    rows = engine.query(
        f"SELECT prompt_version, string_agg(DISTINCT prompt_name, ' / ' ORDER BY prompt_name) "
        f"AS names FROM requests WHERE {where} AND prompt_version IN "
        "(SELECT unnest($versions::VARCHAR[])) AND prompt_name IS NOT NULL GROUP BY 1",
        params).rows()
    named = dict(rows)
    return {v: f"{named[v]} {v}" if named.get(v) else v for v in versions}


TESTS_SHOWN = {"mcnemar_exact": "McNemar exact (paired)", "two_proportion_z": "two-proportion z",
               "paired_t": "paired t", "wilcoxon": "Wilcoxon signed-rank (paired)",
               "welch_t": "Welch's t", "mann_whitney": "Mann–Whitney U"}


def compare_versions(engine: Engine, filters: Filters, source: str, version_a: str,
                     version_b: str, min_effect: float = 0.02,
                     metrics: Collection[str] | None = None,
                     settings: MetricSettings | None = None) -> pl.DataFrame:
    """Version B (candidate) against A (baseline) on each metric both were scored on (design §5):
    ``metric, kind, a_value, b_value, difference, ci_low, ci_high, test, p_value, p_adjusted,
    regressions, fixes, n_a, n_b, shared, mde, min_effect, verdict, note, a_unscored,
    b_unscored`` (each side's results with neither a pass nor a score: errors, left out of its
    figures and named in ``note``). Pass rates where the
    evals have pass/fail: paired by test case when the versions share at least 30 cases with a
    pass/fail on both sides (McNemar exact, Newcombe's CI for paired data, the regressions and
    fixes); else, unless they share 30 cases with a score on both sides (then scores, paired),
    the two versions' own results, all their cases, as independent samples (two-proportion z,
    Newcombe CI), the rates shown being those of all their cases; scores where there is no
    pass/fail, paired likewise, else as independent samples of all their cases (Welch's t, or
    Mann–Whitney U for ordinal scores, Welch's CI). A test case run in several epochs counts
    once either way, by its pass rate or mean score over them, compared as scores are
    (``compare_pass_repeated``, ``compare_pass_unpaired_repeated``). ``shared`` counts the test
    cases both versions were scored on (0 for evals without cases: online judges, feedback). Rates,
    differences, CIs and the MDE are fractions (pass rates) or score units; the verdicts decided
    together (Benjamini–Hochberg). ``metrics``: only these (the family Benjamini–Hochberg adjusts
    over is then theirs: ``compare --metric`` gating on one metric tests one hypothesis); None:
    every metric both versions were scored on, as the Quality page compares them. ``settings``
    (lib.metric_settings): each metric's own ``min_effect`` (else ``min_effect``), and the
    scores better lower, whose fall is the improvement and rise the regression (the difference
    and CI stay B − A).
    """
    from lib.stats import compare

    settings = settings or MetricSettings()
    pairs, totals = comparison_inputs(engine, filters, source, version_a, version_b)
    out, shared, scores, cases = [], {}, None, None
    for metric in sorted(set(totals["metric"].to_list())):
        if metrics is not None and metric not in metrics:
            continue
        sides = {r["version"]: r for r in totals.filter(pl.col("metric") == metric)
                 .iter_rows(named=True)}
        a, b = sides.get(version_a), sides.get(version_b)
        if a is None or b is None:
            continue
        mine = pairs.filter(pl.col("metric") == metric)
        effect = settings.min_effect(metric, min_effect)
        # Cases both versions have a result of (a pass or a score): one a version errored on
        # (neither) is no case in common, or 40 cases of which the candidate errored on every
        # one read "40 test cases in common, fewer than 30 to pair on"
        both = mine.filter((pl.col("a_pass").is_not_null() | pl.col("a_score").is_not_null())
                           & (pl.col("b_pass").is_not_null() | pl.col("b_score").is_not_null()))
        shared[metric] = both.select(_CASE).n_unique() if both.height else 0
        passed = mine.filter(pl.col("a_pass").is_not_null() & pl.col("b_pass").is_not_null())
        scored = mine.filter(pl.col("a_score").is_not_null() & pl.col("b_score").is_not_null())
        enough = compare.MIN_PAIRS
        # Cases both versions ran are compared case by case when there are enough of them; a
        # few shared cases do not make two runs paired: two runs of 200 cases with 10 in common
        # were judged on those 10 alone ("too few pairs", rates of 10 cases; found in review).
        # A case run several times counts once either way (its latest result: ``totals``).
        # A case's epochs are repeats of one question, no independent pairs: 10 cases of 5
        # epochs, 3 failed by B every time, read "a regression (McNemar exact, p < 0.001),
        # paired on 50 test cases in common" (review); the case is then the unit.
        if passed.height >= enough and _repeated(passed):
            per_case = passed.group_by(_CASE).agg(
                pl.col("a_pass").cast(pl.Float64).mean(), pl.col("b_pass").cast(pl.Float64).mean(),
                (pl.col("a_pass") & ~pl.col("b_pass")).sum().alias("regressions"),
                (~pl.col("a_pass") & pl.col("b_pass")).sum().alias("fixes")).sort(_CASE)
            out.append(compare.compare_pass_repeated(
                metric, per_case["a_pass"].to_list(), per_case["b_pass"].to_list(),
                regressions=int(per_case["regressions"].sum()),
                fixes=int(per_case["fixes"].sum()), runs=passed.height, min_effect=effect))
        elif passed.height >= enough:
            out.append(compare.compare_pass_paired(
                metric, passed["a_pass"].to_list(), passed["b_pass"].to_list(),
                min_effect=effect))
        elif scored.height >= enough:
            if _repeated(scored):  # (as pass rates: each case's mean score over its epochs)
                scored = scored.group_by(_CASE).agg(pl.col("a_score", "b_score").mean())
            out.append(compare.compare_scores_paired(
                metric, scored["a_score"].to_list(), scored["b_score"].to_list(),
                min_effect=effect))
        else:
            # Without enough cases in common to pair, the versions' own results, all their
            # cases, as independent samples; a case run in several epochs is one sample (its
            # epochs are repeats of one question: 40 cases of 5 epochs a side, 32 passed
            # against 28, read "a regression, p = 0.021" on 200 "independent" results; review)
            if cases is None:
                cases = version_cases(engine, filters, source, version_a, version_b)
            own = cases.filter(pl.col("metric") == metric)
            repeated = bool(own.height) and int(own["epochs"].max()) > 1
            if a["n"] and b["n"] and repeated:
                rated = own.filter(pl.col("pass_rate").is_not_null())
                out.append(_noted_unpaired(compare.compare_pass_unpaired_repeated(
                    metric, rated.filter(pl.col("version") == version_a)["pass_rate"].to_list(),
                    rated.filter(pl.col("version") == version_b)["pass_rate"].to_list(),
                    runs=(a["n"], b["n"]), min_effect=effect),
                    shared[metric], enough, "results"))
            elif (a["n"] and b["n"]) or ((a["n"] or b["n"]) and not (a["scored"]
                                                                    and b["scored"])):
                # (a pass rate one side has no result of, nor any score, every result of it an
                # error: "too few" beside the other side's rate, not scores compared, which
                # showed the baseline's mean score instead of its pass rate)
                out.append(_noted_unpaired(compare.compare_pass_unpaired(
                    metric, a["passed"], a["n"], b["passed"], b["n"], min_effect=effect),
                    shared[metric], enough, "results"))
            else:
                # Scores without enough cases in common to pair (online judges score different
                # requests): the versions' own scores, all their cases, as independent samples,
                # as pass rates are; "too few pairs to say" stood beside 300 scores a side
                # (review). A case's epochs: its mean score.
                if scores is None:
                    scores = version_scores(engine, filters, source, version_a, version_b)
                mine_scores = scores.filter(pl.col("metric") == metric)
                if repeated:
                    mine_scores = own.filter(pl.col("mean_score").is_not_null()).select(
                        "version", score="mean_score")
                c = compare.compare_scores_unpaired(
                    metric,
                    mine_scores.filter(pl.col("version") == version_a)["score"].to_list(),
                    mine_scores.filter(pl.col("version") == version_b)["score"].to_list(),
                    min_effect=effect)
                if repeated:
                    c = replace(c, note="; ".join(filter(None, (
                        f"{compare.REPEATED_CASES_NOTE} (its mean score), since repeats of a "
                        "case are no independent trials", c.note))))
                out.append(_noted_unpaired(c, shared[metric], enough, "scores"))
    unscored = {(r["metric"], r["version"]): r["unscored"] for r in totals.iter_rows(named=True)}
    rows = [{**c.to_dict(), "test": TESTS_SHOWN.get(c.test, c.test), "shared": shared[c.metric],
             "a_unscored": unscored.get((c.metric, version_a), 0),
             "b_unscored": unscored.get((c.metric, version_b), 0)}
            for c in map(partial(_directed, settings), compare.apply_bh(out))]
    for r in rows:  # results that errored are left out of both sides' figures: said
        left = [f"{side} {r[f'{k}_unscored']:,}" for side, k in (("A", "a"), ("B", "b"))
                if r[f"{k}_unscored"]]
        if left:
            r["note"] = "; ".join(filter(None, (
                f"results with neither a pass nor a score (errors), left out: "
                f"{', '.join(left)}", r["note"])))
    columns = {"metric": pl.String, "kind": pl.String, "a_value": pl.Float64,
               "b_value": pl.Float64, "difference": pl.Float64, "ci_low": pl.Float64,
               "ci_high": pl.Float64, "test": pl.String, "p_value": pl.Float64,
               "p_adjusted": pl.Float64, "regressions": pl.Int64, "fixes": pl.Int64,
               "n_a": pl.Int64, "n_b": pl.Int64, "shared": pl.Int64, "mde": pl.Float64,
               "min_effect": pl.Float64, "verdict": pl.String, "note": pl.String,
               "a_unscored": pl.Int64, "b_unscored": pl.Int64}
    return pl.DataFrame([{k: r.get(k) for k in columns} for r in rows], schema=columns)


_CASE = ["model", "dataset", "case_id"]  # a test case, whatever its epoch (pairs' columns)
_FLIPPED = {"regression": "improvement", "improvement": "regression"}


def _directed(settings: MetricSettings, c):
    """``c`` (a ``lib.stats.compare.Comparison``, whose verdict takes higher as better) with the
    verdict of a score better lower turned round, and a note saying so."""
    if not settings.is_lower_better(c.metric) or not c.kind.startswith("score"):
        return c
    return replace(c, verdict=_FLIPPED.get(c.verdict, c.verdict),
                   note="; ".join(filter(None, ("lower is better (metrics settings)", c.note))))


def _repeated(pairs: pl.DataFrame) -> bool:
    """Whether some test case of ``pairs`` (:func:`comparison_inputs`') is paired in several
    epochs."""
    return pairs.select(_CASE).n_unique() < pairs.height


def _noted_unpaired(c, shared: int, enough: int, what: str):
    """``c`` (a ``lib.stats.compare.Comparison``), compared as independent samples, with a note
    saying why when the versions shared some test cases (``shared``), fewer than ``enough`` to
    pair on; ``what``: results, scores."""
    if not shared:
        return c
    why = (f"{shared:,} test cases in common, fewer than {enough} to pair on: the versions' "
           f"own {what} compared as independent samples")
    return replace(c, note="; ".join(filter(None, (why, c.note))))


def default_pair(versions: list[str], labels: dict[str, str],
                 metrics: dict[str, set[str]] | None = None) -> tuple[str, str] | None:
    """The versions to compare by default, from ``versions`` oldest first: the newest version
    that has an earlier version of the same prompt (``labels``: "chat-prompt v13"; versions
    without a prompt's name are one group) scored on a metric it was (``metrics``: each
    version's metrics; none given: any), against the newest of those: a search prompt's
    version against a summarize prompt's, or a promptfoo run against an Inspect task's, would
    say nothing ("The two versions share no metric", found in review). None when no two
    versions are of one prompt and a metric (the page then starts from the two newest)."""
    def prompt(v: str) -> str:
        label = labels.get(v, v)
        return label[:-len(v) - 1] if label != v and label.endswith(" " + v) else ""

    def alike(a: str, b: str) -> bool:
        return prompt(a) == prompt(b) and (
            metrics is None or bool(metrics.get(a, set()) & metrics.get(b, set())))

    for i in range(len(versions) - 1, 0, -1):
        same = [v for v in versions[:i] if alike(v, versions[i])]
        if same:
            return same[-1], versions[i]
    return None


def _compared_value(v: float | None, rate: bool) -> str:
    """A compared pass rate ('93.2%') or mean score ('0.704'); '–' for none."""
    return "–" if v is None else f"{v:.1%}" if rate else f"{v:.3f}"


def _compared_change(v: float | None, rate: bool, unit: str = "") -> str:
    """A change B − A with its sign: pass rates in points (+ ``unit``: '−37.3 pts'), scores in
    their units ('+0.012'); '–' for none."""
    if v is None:
        return "–"
    return (f"{v * 100:+.1f}{unit}" if rate else f"{v:+.3f}").replace("-", "−")


def comparison_sentence(row: dict, a: str, b: str) -> str:
    """One metric's comparison for people: "groundedness: 93.2% → 55.9%, −37.3 points (95% CI
    −40.4 to −34.4): a regression (two-proportion z, p < 0.001)."; a pass rate in percent and
    points, a score in its units. "No significant change" beside a CI clear of 0, or beside
    p < 0.05, says why (the test does not reject; Benjamini–Hochberg; the CI includes 0)."""
    rate = row["kind"].startswith("pass")

    def value(v):
        return _compared_value(v, rate)

    def diff(v):  # (the unit once, after the difference)
        return _compared_change(v, rate)

    unit = " points" if rate else ""
    head = f"{row['metric']}: {value(row['a_value'])} → {value(row['b_value'])}"
    if row["verdict"] == "insufficient data" or row["difference"] is None:
        paired = row["kind"] in ("pass_paired", "score_paired")
        # (a candidate whose every result errored read only "too few evals to say")
        errored = [f"{name}'s {row[k]:,} {'result has' if row[k] == 1 else 'results have'} "
                   "neither a pass nor a score (errors)"
                   for name, k in ((a, "a_unscored"), (b, "b_unscored")) if row.get(k)]
        return (f"{head}: too few {'pairs' if paired else 'evals'} to say"
                + (f": {'; '.join(errored)}" if errored else "") + ".")
    ci = (f" (95% CI {diff(row['ci_low'])} to {diff(row['ci_high'])})"
          if row["ci_low"] is not None else "")
    raw, adjusted = row["p_value"], row["p_adjusted"]
    p = adjusted if adjusted is not None else raw
    p_text = "" if p is None else _p_text(p)
    verdict = {"regression": f"a regression of {b} against {a}",
               "improvement": f"an improvement of {b} on {a}"}.get(
        row["verdict"], "no significant change")
    why = ""
    if row["verdict"] == "no significant change" and row["ci_low"] is not None and \
            raw is not None:
        # Why not, where the CI and the p-value shown would otherwise seem to disagree: the
        # test does not reject; or it did, and Benjamini–Hochberg over the metrics moved its
        # p-value to 0.05 or above; or it rejects and the CI includes 0.
        from lib.stats import compare

        bounds = row["ci_low"], row["ci_high"]
        if compare.disagreement(*bounds, raw) == compare.CI_ONLY:
            why = "the CI excludes 0 but the test does not reject: "
        elif adjusted is not None and \
                compare.disagreement(*bounds, adjusted) == compare.CI_ONLY:
            verdict += " after Benjamini–Hochberg over the metrics"
            p_text = f"{_p_text(raw)}, adjusted {adjusted:.2g}"
        elif compare.disagreement(*bounds, p) == compare.TEST_ONLY:
            why = "p below 0.05 but the CI includes 0: "
        elif p < compare.ALPHA and row.get("min_effect") is not None:
            # both say a change, too small for a verdict: "no significant change (p < 0.001)"
            # beside a CI clear of 0 said nothing of why (found in review)
            verdict = ("a change smaller than the minimum effect of "
                       + (f"{row['min_effect'] * 100:g} points" if rate else
                          f"{row['min_effect']:g}") + ", too small to call")
    return (f"{head}, {diff(row['difference'])}{unit}{ci}: {verdict} "
            f"({why}{row['test']}{', ' + p_text if p_text else ''}).")


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def unreachable_min_effects(cmp: pl.DataFrame) -> list[str]:
    """For each pass rate of :func:`compare_versions` whose ``min_effect`` is 1 or more: why it
    can never get a verdict. A pass rate's changes are fractions (0.05 is 5 points), so
    ``min_effect: 5`` meant as 5 points asks for a change of 500 points: the metric could
    never fail the gate, whatever the candidate did."""
    out, unreachable = [], set(unreachable_metrics(cmp))
    for r in cmp.iter_rows(named=True):
        if r["metric"] in unreachable:
            # (exactly 1 is a fall from every case passing to none: possible, if barely)
            why = ("which no pass rate can make, so it can never be called a regression"
                   if r["min_effect"] > 1 else "every case passing to none, so it is all but "
                   "never called a regression")
            out.append(f"{r['metric']} is compared as a pass rate, whose changes are fractions "
                       f"(0.05 is 5 points): its min_effect {r['min_effect']:g} asks for a "
                       f"change of {100 * r['min_effect']:,.0f} points, {why}")
    return out


def unreachable_metrics(cmp: pl.DataFrame) -> list[str]:
    """The metrics :func:`unreachable_min_effects` speaks of."""
    return [r["metric"] for r in cmp.iter_rows(named=True)
            if str(r["kind"]).startswith("pass") and r["min_effect"] >= 1]


def comparison_caption(cmp: pl.DataFrame) -> str:
    """How :func:`compare_versions` compared, for under its table: the rule, then each metric's
    pairing ("correctness: 10 test cases in common, too few to pair: independent samples of
    200 and 200 evals")."""
    rule = ("Pass rates: paired by test case (dataset, case, epoch) where the versions share 30 "
            "or more (McNemar exact, Newcombe's score CI for paired data), else the two "
            "versions' own results, all their cases, as independent samples (two-proportion z, "
            "Newcombe CI); scores likewise (paired t, or Wilcoxon for a scale of 10 values or "
            "fewer; unpaired: Welch's t, or Mann–Whitney U); a case run in several epochs "
            "counts once, by its pass rate (or mean score) over them, compared as scores are; "
            "a verdict needs a CI clear of 0, "
            "a change of at least 2 points (0.02 for scores), and "
            "p < 0.05 after Benjamini–Hochberg over the metrics (design §5, "
            "lib/stats/compare.py).")
    from lib.stats.compare import REPEATED_CASES_NOTE

    each = []
    for r in cmp.iter_rows(named=True):
        shared, n = r["shared"] or 0, r["n_a"]

        def cases(k: int) -> str:
            return f"{k:,} test {'case' if k == 1 else 'cases'} in common"

        if r["kind"] in ("pass_unpaired", "score_unpaired"):
            # (a case of several epochs is one sample: cases, not evals)
            unit = "test cases" if REPEATED_CASES_NOTE in (r.get("note") or "") else "evals"
            how = (("" if r["kind"] == "pass_unpaired" else "scores as ")
                   + f"independent samples of {r['n_a']:,} and {r['n_b']:,} {unit}"
                   + (f" ({cases(shared)}, too few to pair)" if shared else ""))
        elif not shared:
            how = "scores, no test cases in common"
        else:  # paired pass rates or scores, on the shared cases with a result on both sides
            how = (("paired" if r["kind"] == "pass_paired" else "scores paired")
                   + f" on {cases(n)}" + (f" (of {shared:,})" if n != shared else ""))
        each.append(f"{r['metric']}: {how}")
    return rule + (" Here: " + "; ".join(each) + "." if each else "")


def comparison_table(cmp: pl.DataFrame) -> pl.DataFrame:
    """:func:`compare_versions` for people, as text: pass rates in %, changes and intervals in
    points (scores in their units), p-values, "–" where a test gives nothing."""
    value = _compared_value

    def change(v, rate):
        return _compared_change(v, rate, " pts")

    rows = []
    for r in cmp.iter_rows(named=True):
        rate = r["kind"].startswith("pass")
        rows.append({
            "Metric": r["metric"], "A": value(r["a_value"], rate), "B": value(r["b_value"], rate),
            "B − A": change(r["difference"], rate),
            "95% CI": "–" if r["ci_low"] is None else
            f"{change(r['ci_low'], rate)} to {change(r['ci_high'], rate)}",
            "Verdict": r["verdict"], "Test": r["test"],
            "p (BH)": "–" if r["p_adjusted"] is None else f"{r['p_adjusted']:.2g}",
            "Regressions / fixes": "–" if r["regressions"] is None else
            f"{r['regressions']:,} / {r['fixes']:,}",
            "n (A / B)": f"{r['n_a']:,} / {r['n_b']:,}",
            "Detectable": change(r["mde"], rate).lstrip("+") if r["mde"] is not None else "–"})
    return pl.DataFrame(rows, schema={k: pl.String for k in (
        "Metric", "A", "B", "B − A", "95% CI", "Verdict", "Test", "p (BH)",
        "Regressions / fixes", "n (A / B)", "Detectable")})

