"""Dimensions to group and rank by: named columns and any key inside ``attributes``.

A dimension is named as in the URL (``model``, ``customer``, ``attr.region``) or by its column
(``customer_id``); :func:`dimension_sql` turns it into a SQL expression, validated (nothing from a
URL is spliced into SQL unchecked). Grouping shows every value; only charts cap what they draw,
putting the rest under :data:`OTHER_LABEL`.
"""

from __future__ import annotations

from lib.filters import ATTR_PREFIX, Filters, column_for_key, column_sql

# The dimensions offered in pickers and ranked by "what changed" (URL key -> column).
DIMENSIONS: dict[str, str] = {
    "model": "model",
    "provider": "provider",
    "feature": "feature",
    "customer": "customer_id",
    "prompt_version": "prompt_version",
    "app_version": "app_version",
    "error_type": "error_type",
    "finish_reason": "finish_reason",
    "environment": "environment",
    "service": "service",
}
LABELS = {"model": "Model", "provider": "Provider", "feature": "Feature", "customer": "Customer",
          "prompt_version": "Prompt version", "app_version": "App version",
          "error_type": "Error type", "finish_reason": "Finish reason",
          "environment": "Environment", "service": "Service"}
NONE_LABEL = "(none)"
# In parentheses as "(none)": a value logged as "other" (a common error type) is not the rest.
OTHER_LABEL = "(other)"


def dimension_sql(name: str) -> str:
    """SQL expression (VARCHAR) of a dimension; raises KeyError for an unknown one."""
    if name.startswith("attributes."):
        name = ATTR_PREFIX + name[len("attributes."):]
    column = DIMENSIONS.get(name) or column_for_key(name) or name
    expr = column_sql(column)
    if expr is None:
        raise KeyError(name)
    return expr if column.startswith(ATTR_PREFIX) else f"{expr}::VARCHAR"


def label(name: str) -> str:
    if name.startswith(ATTR_PREFIX):
        return f"Attribute {name[len(ATTR_PREFIX):]}"
    return LABELS.get(name, name)


def attribute_keys(engine, filters: Filters | None = None, limit: int = 30) -> list[str]:
    """Keys found in ``attributes`` (of requests in the window when ``filters`` is given), as
    ``attr.<key>`` dimension names, the keys in the most distinct attribute documents first
    (distinct documents are parsed once, not every row). Keys that are not plain identifiers are
    skipped (they could not be filtered on through the URL)."""
    where, params = filters.where("requests") if filters else ("true", {})
    frame = engine.query(
        f"SELECT k, count(*) AS n FROM (SELECT unnest(json_keys(attributes)) AS k FROM "
        f"(SELECT DISTINCT attributes FROM requests WHERE {where} AND attributes IS NOT NULL) "
        f"WHERE json_valid(attributes)) GROUP BY k ORDER BY n DESC, k LIMIT {int(limit)}", params)
    out = []
    for k in frame["k"].to_list():
        name = ATTR_PREFIX + k
        if column_for_key(name):
            out.append(name)
    return out
