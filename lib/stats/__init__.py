"""Statistics: pure functions on numbers the metrics layer has already computed in SQL (or, for
small samples, on the values it pulled). No Streamlit, no DuckDB.

- ``drift``: per-column drift between a reference and a current window (design.md §5).
- ``stattests``: the registered drift tests (``STAT_TESTS``) and the selection rule.
"""

from lib.stats.drift import (
    DriftResult,
    ShareChange,
    apply_bh,
    benjamini_hochberg,
    categorical_drift,
    classify_psi,
    numeric_drift,
    numeric_drift_from_summary,
    psi,
    psi_bin_counts,
    psi_bin_edges,
    psi_bin_edges_levels,
    psi_no_drift_p99,
    quantile_levels,
)
from lib.stats.stattests import STAT_TESTS, StatTest, TestOutcome, choose_test, two_proportion_z

__all__ = [
    "STAT_TESTS",
    "DriftResult",
    "ShareChange",
    "StatTest",
    "TestOutcome",
    "apply_bh",
    "benjamini_hochberg",
    "categorical_drift",
    "choose_test",
    "classify_psi",
    "numeric_drift",
    "numeric_drift_from_summary",
    "psi",
    "psi_bin_counts",
    "psi_bin_edges",
    "psi_bin_edges_levels",
    "psi_no_drift_p99",
    "quantile_levels",
    "two_proportion_z",
]
