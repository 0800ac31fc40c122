"""Per-metric settings for evaluation comparisons, from a reviewed YAML file (``metrics.yaml`` at
the repo root, or ``$SIGHTLINE_METRICS``); a missing file means the defaults.

Format::

    metrics:
      toxicity:
        better: lower       # a score where lower is better: its fall is an improvement
        min_effect: 0.05    # smallest change worth a verdict, in the metric's units

A score's direction cannot be told from its values: without this, a toxicity or hallucination
score that fell was called a regression, and a CI gate on ``compare`` failed on an improvement.
Pass/fail results need none (passing is better).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from lib.budgets import AsWrittenLoader

DEFAULT_METRICS_FILE = Path(__file__).resolve().parents[1] / "metrics.yaml"


@dataclass(frozen=True)
class MetricSettings:
    """``lower_is_better``: the metrics whose scores are better lower; ``min_effects``: (metric,
    smallest change worth a verdict) pairs, in the metric's units. Hashable (a cache key)."""
    lower_is_better: frozenset[str] = frozenset()
    min_effects: tuple[tuple[str, float], ...] = ()

    def min_effect(self, metric: str, default: float) -> float:
        return dict(self.min_effects).get(metric, default)


def metrics_path() -> Path:
    return Path(os.environ.get("SIGHTLINE_METRICS") or DEFAULT_METRICS_FILE)


def load_metric_settings(path: str | os.PathLike | None = None) -> MetricSettings:
    """The settings in ``path`` (default :func:`metrics_path`); a missing file gives the
    defaults. Raises ValueError naming the file and metric when an entry is malformed."""
    path = Path(path) if path else metrics_path()
    if not path.exists():
        return MetricSettings()
    try:
        doc = yaml.load(path.read_text(), Loader=AsWrittenLoader) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics") or {}, dict):
        raise ValueError(f"{path}: expected `metrics:` and a mapping of metric names")
    lower, effects = set(), []
    for name, item in (doc.get("metrics") or {}).items():
        try:
            item = item or {}
            unknown = set(item) - {"better", "min_effect"}
            if unknown:
                raise ValueError(f"unknown setting {sorted(unknown)[0]!r} (better, min_effect)")
            better = str(item.get("better", "higher"))
            if better not in ("higher", "lower"):
                raise ValueError(f"better must be higher or lower, not {better!r}")
            if better == "lower":
                lower.add(str(name))
            if "min_effect" in item:
                effect = float(item["min_effect"])
                if not (math.isfinite(effect) and effect >= 0):
                    raise ValueError(f"min_effect must be a number >= 0, not "
                                     f"{item['min_effect']!r}")
                effects.append((str(name), effect))
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: metrics.{name} is not valid: {exc}") from exc
    return MetricSettings(frozenset(lower), tuple(sorted(effects)))
