"""Per-metric settings for evaluation comparisons, from a reviewed YAML file (``metrics.yaml`` at
the repo root, or ``$SIGHTLINE_METRICS``); a missing ``metrics.yaml`` means the defaults, a
missing file that ``$SIGHTLINE_METRICS`` names is an error.

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

from lib.yaml_files import AsWrittenLoader, read_yaml, section

DEFAULT_METRICS_FILE = Path(__file__).resolve().parents[1] / "metrics.yaml"


@dataclass(frozen=True)
class MetricSettings:
    """``lower_is_better``: the metrics whose scores are better lower; ``min_effects``: (metric,
    smallest change worth a verdict) pairs, in the metric's units; each metric by
    :func:`metric_key`. Hashable (a cache key)."""
    lower_is_better: frozenset[str] = frozenset()
    min_effects: tuple[tuple[str, float], ...] = ()

    def is_lower_better(self, metric: str) -> bool:
        return metric_key(metric) in self.lower_is_better

    def min_effect(self, metric: str, default: float) -> float:
        return dict(self.min_effects).get(metric_key(metric), default)


def metric_key(name) -> str:
    """How a metric of the settings is matched with the evals' metric names: without case or
    surrounding spaces, as price overrides match model names. ``Toxicity: {better: lower}``
    over evals logging ``toxicity`` matched nothing, and a toxicity score's fall failed the
    CI gate again."""
    return str(name).strip().casefold()


def metrics_path() -> Path:
    return Path(os.environ.get("SIGHTLINE_METRICS") or DEFAULT_METRICS_FILE)


def load_metric_settings(path: str | os.PathLike | None = None) -> MetricSettings:
    """The settings in ``path`` (default :func:`metrics_path`); a missing ``path`` or default
    file gives the defaults, a missing file ``$SIGHTLINE_METRICS`` names does not (a typo in it
    turned every score better lower round again: a CI gate failed on a fall of toxicity, and
    passed its rise). Raises ValueError naming the file (and the metric) when it cannot be read
    or is malformed: an unknown key at the top (``metric:``) or in a metric, a key written
    twice (YAML keeps the last: a second ``toxicity:`` dropped the first's ``better: lower``)."""
    named = not path and bool(os.environ.get("SIGHTLINE_METRICS"))
    path = Path(path) if path else metrics_path()
    doc = read_yaml(path, AsWrittenLoader, required=named)
    metrics = section(doc, "metrics", path, "a mapping of metric names") or {}
    if not isinstance(metrics, dict):
        raise ValueError(f"{path}: expected `metrics:` and a mapping of metric names")
    lower, effects, seen = set(), [], {}
    for name, item in metrics.items():
        key = metric_key(name)
        if key in seen:
            raise ValueError(f"{path}: metrics.{name} is metrics.{seen[key]} again (metric names "
                             "match without case or surrounding spaces)")
        seen[key] = name
        try:
            item = item or {}
            if not isinstance(item, dict):  # (`toxicity: lower` read "unknown setting 'e'")
                raise ValueError(f"expected its settings (better, min_effect), not {item!r}")
            unknown = set(item) - {"better", "min_effect"}
            if unknown:
                raise ValueError(f"unknown setting {sorted(unknown)[0]!r} (better, min_effect)")
            better = str(item.get("better", "higher"))
            if better not in ("higher", "lower"):
                raise ValueError(f"better must be higher or lower, not {better!r}")
            if better == "lower":
                lower.add(key)
            if "min_effect" in item:
                effect = float(item["min_effect"])
                if not (math.isfinite(effect) and effect >= 0):
                    raise ValueError(f"min_effect must be a number >= 0, not "
                                     f"{item['min_effect']!r}")
                effects.append((key, effect))
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: metrics.{name} is not valid: {exc}") from exc
    return MetricSettings(frozenset(lower), tuple(sorted(effects)))
