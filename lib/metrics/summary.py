"""``summary``: totals for a window (design §6), the CLI's and the report's headline numbers."""

from __future__ import annotations

from datetime import datetime

from lib.filters import column_for_key, column_sql
from lib.metrics.buckets import percentiles_sql
from lib.store.engine import Engine

LATENCY_PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
TOKEN_SUMS = ["input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens"]


def summary(engine: Engine, start: datetime | None = None, end: datetime | None = None,
            where: dict[str, str | list[str]] | None = None,
            group_by: str | None = None) -> dict:
    """Totals over requests in ``[start, end)`` (all data when None) matching ``where``: every
    column, each equal to its value or to any of its list of values.

    Returns design §6's document: counts, token sums, ``cost_usd`` (sum of priced requests,
    USD; null when there are requests and none is priced: unknown, not $0),
    ``unpriced_requests``, ``latency_ms`` percentiles (type 7, over all requests, errors
    included), ``from``/``to`` as given (ISO strings or None), and ``groups`` keyed by the value of
    ``group_by`` when given (no value is the key ``"null"``, shared with the text "null").
    Raises KeyError for a column that cannot be filtered or grouped on.
    """
    clauses, params = [], {}
    if start is not None:
        clauses.append("ts >= $start")
        params["start"] = start
    if end is not None:
        clauses.append("ts < $end")
        params["end"] = end
    for i, (col, value) in enumerate((where or {}).items()):
        expr = _column(col)
        names = [f"w{i}_{j}" for j in range(len(value))] if isinstance(value, list) else [f"w{i}"]
        clauses.append(f"{expr} IN ({', '.join('$' + n for n in names)})")
        params.update(zip(names, value if isinstance(value, list) else [value], strict=True))
    cond = " AND ".join(clauses) or "true"
    pct = percentiles_sql("latency_ms", LATENCY_PERCENTILES)
    sums = ", ".join(f"coalesce(sum({c}), 0)::BIGINT AS {c}" for c in TOKEN_SUMS)
    select = (f"count(*) AS requests, count(*) FILTER (WHERE status = 'error') AS errors, {sums}, "
              # unknown (not $0) when every request is unpriced; $0 when there is none
              f"CASE WHEN count(*) = 0 THEN 0 ELSE sum(cost_usd) END AS cost_usd, "
              f"count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced_requests, {pct}")
    total = engine.query(f"SELECT {select} FROM requests WHERE {cond}", params)
    doc = _doc(total.row(0, named=True))
    doc["from"] = start.isoformat() if start else None
    doc["to"] = end.isoformat() if end else None
    if group_by:
        g = _column(group_by)
        # A JSON object's keys are text: no value is keyed "null", and rows without one share
        # that key with any whose value is the text "null" (grouped together in SQL, so the
        # groups still add up to the total).
        frame = engine.query(
            f"SELECT coalesce({g}::VARCHAR, 'null') AS grp, {select} FROM requests "
            f"WHERE {cond} GROUP BY 1 ORDER BY requests DESC, grp", params)
        doc["groups"] = {r["grp"]: _doc(r) for r in frame.iter_rows(named=True)}
    return doc


def _column(name: str) -> str:
    if name.startswith("attributes."):
        name = "attr." + name[len("attributes."):]
    expr = column_sql(column_for_key(name) or name)
    if expr is None:
        raise KeyError(name)
    return expr


def _doc(row: dict) -> dict:
    n = int(row["requests"])
    return {
        "requests": n,
        "errors": int(row["errors"]),
        "error_rate": (row["errors"] / n) if n else None,
        **{c: int(row[c]) for c in TOKEN_SUMS},
        "cost_usd": None if row["cost_usd"] is None else float(row["cost_usd"]),
        "unpriced_requests": int(row["unpriced_requests"]),
        "latency_ms": {k: row[k] for k in LATENCY_PERCENTILES},
    }
