"""Monthly budgets from a reviewed YAML file (``budgets.yaml`` at the repo root, or
``$SIGHTLINE_BUDGETS``), evaluated by :func:`lib.metrics.cost.month_to_date`.

Format::

    budgets:
      - name: Chat feature
        monthly_usd: 900
        warn_at: 0.8          # optional, share of the budget that flags a projection
        where:                # optional scope: URL filter keys (feature, customer, attr.plan …)
          feature: chat       # a value or a list of values
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from lib.filters import column_for_key
from lib.yaml_files import AsWrittenLoader, read_yaml, section

DEFAULT_BUDGETS_FILE = Path(__file__).resolve().parents[1] / "budgets.yaml"


@dataclass(frozen=True)
class Budget:
    name: str
    monthly_usd: float
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (column, values)
    warn_at: float = 0.8

    def where_values(self) -> dict[str, tuple[str, ...]]:
        return dict(self.where)

    def describe(self) -> str:
        if not self.where:
            return "all traffic"
        return " · ".join(f"{c} = {', '.join(v)}" for c, v in self.where)


def budgets_path() -> Path:
    return Path(os.environ.get("SIGHTLINE_BUDGETS") or DEFAULT_BUDGETS_FILE)


BUDGET_KEYS = ("name", "monthly_usd", "warn_at", "where")


def load_budgets(path: str | os.PathLike | None = None) -> list[Budget]:
    """Budgets from ``path`` (default :func:`budgets_path`); a missing ``path`` or default file
    means none, a missing file ``$SIGHTLINE_BUDGETS`` names does not. Raises ValueError naming
    the file (and the entry) when it cannot be read or is malformed: an unknown key (a budget's
    ``wher:`` was no scope, so "Chat feature" counted all traffic; ``budget:`` was no budget), a
    key written twice."""
    named = not path and bool(os.environ.get("SIGHTLINE_BUDGETS"))
    path = Path(path) if path else budgets_path()
    doc = read_yaml(path, AsWrittenLoader, required=named)
    items = section(doc, "budgets", path, "a list of budgets") or []
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected `budgets:` and a list of budgets")
    out = []
    for i, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ValueError(f"expected a mapping of {', '.join(BUDGET_KEYS)}, not {item!r}")
            unknown = sorted(map(str, set(item) - set(BUDGET_KEYS)))
            if unknown:
                raise ValueError(f"unknown key(s) {', '.join(unknown)} (known: "
                                 f"{', '.join(BUDGET_KEYS)})")
            missing = [k for k in ("name", "monthly_usd") if item.get(k) is None]
            if missing:  # (a KeyError's text was the bare key: "'name'")
                raise ValueError(f"no {missing[0]}: each budget has a name and a monthly_usd")
            where = []
            for key, vals in (item.get("where") or {}).items():
                column = column_for_key(str(key))
                if column is None:
                    raise ValueError(f"unknown filter key {key!r}")
                vals = [vals] if isinstance(vals, (str, int, float)) else list(vals or [])
                # (an empty scope was no scope: the budget counted all traffic; a null was
                # the text "None", which no request has: found in review)
                if not vals or any(v is None for v in vals):
                    raise ValueError(f"{key}: no value (give a value or a list of values)")
                where.append((column, tuple(sorted(str(v) for v in vals))))
            amount = float(item["monthly_usd"])
            # (nan was always "over", inf always "ok"; a warn_at of 80, meant as 80%, never
            # warned: found in review)
            if not math.isfinite(amount) or amount <= 0:
                raise ValueError(f"monthly_usd must be a positive number of dollars, not "
                                 f"{item['monthly_usd']!r}")
            warn_at = float(item.get("warn_at", 0.8))
            if not 0 < warn_at <= 1:  # (False for nan)
                raise ValueError(f"warn_at must be a share of the budget above 0 and at most 1 "
                                 f"(0.8 for 80%), not {item['warn_at']!r}")
            out.append(Budget(name=str(item["name"]), monthly_usd=amount,
                              where=tuple(sorted(where)), warn_at=warn_at))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: budgets[{i}] is not a valid budget: {exc}") from exc
    return out
