"""Jensen–Shannon's cut-off allows for sampling noise at the windows' sizes.

Both windows over 1,000 rows get a distance (design §5), drift from 0.1. With many rare values
two samples of one distribution lie further apart than that: 41 values at 1,001 / 1,001 rows
passed 0.1 in 95% of no-drift windows. Drift now starts at the larger of 0.1 and the distance
noise reaches 1% of the time at those sizes (simulated, as PSI's grading floor is).
"""

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from lib.stats.drift import categorical_drift, jensen_shannon_no_drift_p99

# 5 common values (75% of rows) and 36 rare ones (25%): a feature or error type column.
MANY_RARE = np.array([0.15] * 5 + [0.25 / 36] * 36)
FEW = np.array([0.3, 0.2, 0.15, 0.15, 0.1, 0.05, 0.05])


def _counts(rng, n, shares):
    return dict(zip((f"v{i:02d}" for i in range(len(shares))), rng.multinomial(n, shares)))


def _scipy_distances(rng, n_ref, n_cur, shares, draws):
    out = []
    for _ in range(draws):
        r = rng.multinomial(n_ref, shares)
        c = rng.multinomial(n_cur, shares)
        out.append(jensenshannon(r / n_ref, c / n_cur, base=2))
    return np.array(out)


def test_the_floor_is_the_no_drift_99th_percentile_of_scipys_distance():
    # An independent simulation (another seed, scipy's distance) exceeds the floor ~1% of the
    # time, while it exceeds the old fixed 0.1 in most windows.
    distances = _scipy_distances(np.random.default_rng(7), 1001, 1001, MANY_RARE, 2000)
    floor = jensen_shannon_no_drift_p99(1001, 1001, MANY_RARE)
    assert (distances >= 0.1).mean() > 0.8
    assert 0.1 < floor < 0.2
    assert 0.002 <= (distances > floor).mean() <= 0.025


def test_the_floor_shrinks_with_the_windows_and_counts_work_as_shares():
    small = jensen_shannon_no_drift_p99(1001, 1001, MANY_RARE)
    large = jensen_shannon_no_drift_p99(20_000, 20_000, MANY_RARE)
    assert large < small / 3  # noise falls as 1/sqrt(n)
    # (shares from counts differ in their last bits, and so do the draws: within 5%)
    assert jensen_shannon_no_drift_p99(1001, 1001, MANY_RARE * 1000) == pytest.approx(small,
                                                                                     rel=0.05)


def test_same_distribution_windows_with_many_rare_values_are_rarely_called_drift():
    rng = np.random.default_rng(11)
    results = [categorical_drift("feature", _counts(rng, 1001, MANY_RARE),
                                 _counts(rng, 1001, MANY_RARE)) for _ in range(300)]
    assert {r.method for r in results} == {"jensenshannon"}
    drifted = sum(r.status == "drift" for r in results)
    assert drifted <= 9  # ≤ 3%; with drift from 0.1 it was ~95%
    raised = [r for r in results if r.threshold > 0.1]
    assert len(raised) == 300
    assert raised[0].note.startswith(f"drift from {raised[0].threshold:.3f}, not 0.1")
    assert "41 values" in raised[0].note


def test_a_real_shift_is_still_drift_over_the_raised_floor():
    rng = np.random.default_rng(12)
    shifted = MANY_RARE.copy()
    shifted[0], shifted[1] = 0.30, 0.0  # one common value's rows go to another
    results = [categorical_drift("feature", _counts(rng, 1001, MANY_RARE),
                                 _counts(rng, 1001, shifted)) for _ in range(100)]
    assert all(r.status == "drift" for r in results)
    assert all(r.threshold > 0.1 for r in results)


def test_few_values_in_large_windows_keep_drift_from_0_1_and_no_note():
    rng = np.random.default_rng(13)
    result = categorical_drift("model", _counts(rng, 5000, FEW), _counts(rng, 5000, FEW))
    assert result.method == "jensenshannon"
    assert jensen_shannon_no_drift_p99(5000, 5000, FEW) < 0.1
    assert result.threshold == 0.1 and result.note is None
    assert result.status == "no drift"


@pytest.mark.parametrize("n_ref, n_cur", [(1001, 1001), (1500, 40_000)])
def test_the_simulated_distance_is_scipys(n_ref, n_cur):
    # The simulation's own distance must be the test's: same counts, same value.
    from lib.stats.drift import _jensen_shannon_rows
    rng = np.random.default_rng(14)
    r = rng.multinomial(n_ref, MANY_RARE, size=50) / n_ref
    c = rng.multinomial(n_cur, MANY_RARE, size=50) / n_cur
    ours = _jensen_shannon_rows(r, c)
    theirs = np.array([jensenshannon(a, b, base=2) for a, b in zip(r, c)])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
