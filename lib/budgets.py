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

import yaml

from lib.filters import column_for_key
from lib.yaml_files import AsWrittenLoader

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


def load_budgets(path: str | os.PathLike | None = None) -> list[Budget]:
    """Budgets from ``path`` (default :func:`budgets_path`); a missing file means none.
    Raises ValueError naming the file and entry when an entry is malformed."""
    path = Path(path) if path else budgets_path()
    if not path.exists():
        return []
    try:
        doc = yaml.load(path.read_text(), Loader=AsWrittenLoader) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    out = []
    for i, item in enumerate(doc.get("budgets") or []):
        try:
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
