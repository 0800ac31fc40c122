"""Version comparison against design.md §5's reference values and against computations written
out here independently of the module (by formula, by root finding, by brute force, or with a
different scipy routine)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import optimize, stats

from lib.stats.compare import (
    MDE_Z,
    MIN_PAIRS,
    Comparison,
    apply_bh,
    compare_pass_paired,
    compare_pass_unpaired,
    compare_scores_paired,
    compare_scores_unpaired,
    is_ordinal,
    mcnemar_exact,
    mde_proportions,
    newcombe,
    paired_bootstrap_ci,
    wilson,
)

REQUIRED_KEYS = {"metric", "kind", "n_a", "n_b", "a_value", "b_value", "difference", "ci_low",
                 "ci_high", "test", "statistic", "p_value", "p_adjusted", "regressions", "fixes",
                 "a_interval", "b_interval", "mde", "min_effect", "verdict", "note"}


def _pairs(n_both: int, regressions: int, fixes: int, n_neither: int = 0):
    """Aligned pass/fail lists with the given numbers of each kind of pair."""
    a = [True] * n_both + [True] * regressions + [False] * fixes + [False] * n_neither
    b = [True] * n_both + [False] * regressions + [True] * fixes + [False] * n_neither
    return a, b


def _bootstrap_by_hand(d: np.ndarray, seed: int = 0, resamples: int = 10_000):
    """The design's bootstrap in one draw: resample n of the n pairs, 10,000 times."""
    idx = np.random.default_rng(seed).integers(0, d.size, size=(resamples, d.size))
    means = d[idx].mean(axis=1)
    return tuple(np.percentile(means, [2.5, 97.5]))


# --- reference values of design.md §5 --------------------------------------------------------


def test_mcnemar_reference_value():
    assert mcnemar_exact(15, 30) == pytest.approx(0.035697803555, abs=1e-12)
    assert mcnemar_exact(30, 15) == pytest.approx(0.035697803555, abs=1e-12)


def test_wilson_reference_value():
    low, high = wilson(780, 1000)
    assert low == pytest.approx(0.753280508637, abs=1e-12)
    assert high == pytest.approx(0.804576506611, abs=1e-12)


def test_unpaired_reference_values():
    c = compare_pass_unpaired("pass", 780, 1000, 810, 1000)
    assert c.kind == "pass_unpaired" and c.test == "two_proportion_z"
    assert (c.n_a, c.n_b) == (1000, 1000)
    assert c.statistic == pytest.approx(1.661673760721, abs=1e-12)
    assert c.p_value == pytest.approx(0.096578205004, abs=1e-12)
    assert c.a_interval == pytest.approx((0.753280508637, 0.804576506611), abs=1e-12)
    assert c.difference == pytest.approx(0.03, abs=1e-15)
    assert c.ci_low < 0 < c.ci_high  # p > 0.05: the interval straddles 0
    assert c.verdict == "no significant change"


# --- intervals and tests against independent computations ------------------------------------


@pytest.mark.parametrize("b,c", [(0, 0), (0, 1), (1, 0), (3, 3), (7, 2), (15, 30), (40, 61),
                                 (0, 25), (250, 300), (1000, 1100)])
def test_mcnemar_matches_scipy_binomtest(b, c):
    expected = 1.0 if b + c == 0 else stats.binomtest(c, b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("b,c", [(2, 9), (12, 5), (6, 6)])
def test_mcnemar_by_enumeration(b, c):
    # Two-sided exact p: total probability of the outcomes no more likely than the one seen.
    n = b + c
    probs = [math.comb(n, k) / 2**n for k in range(n + 1)]
    expected = sum(p for p in probs if p <= probs[c] * (1 + 1e-12))
    assert mcnemar_exact(b, c) == pytest.approx(min(1.0, expected), rel=1e-12)


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (1, 7), (780, 1000), (3, 40), (55, 56)])
def test_wilson_solves_the_score_equation(k, n):
    # The Wilson bounds are the roots of (k/n − p)² = z²·p(1 − p)/n, found here numerically.
    z = stats.norm.ppf(0.975)
    p_hat = k / n

    def f(p):
        return (p_hat - p) ** 2 - z * z * p * (1 - p) / n

    low, high = wilson(k, n)
    # f(0) > 0 > f(p̂) for the lower root; f(p̂) < 0 < f(1) for the upper (nudged off p̂ = 0 or 1,
    # where f itself is 0).
    expected_low = 0.0 if k == 0 else optimize.brentq(f, 0.0, min(p_hat, 1 - 1e-12), xtol=1e-15)
    expected_high = 1.0 if k == n else optimize.brentq(f, max(p_hat, 1e-12), 1.0, xtol=1e-15)
    assert low == pytest.approx(expected_low, abs=1e-12)
    assert high == pytest.approx(expected_high, abs=1e-12)


# Newcombe (1998), Statistics in Medicine 17:873–890, Table II, method 10, printed to 4 places.
@pytest.mark.parametrize("k1,n1,k2,n2,low,high", [
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0000),
    (10, 10, 0, 10, 0.6075, 1.0000),
])
def test_newcombe_table_ii(k1, n1, k2, n2, low, high):
    got = newcombe(k1, n1, k2, n2)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_unpaired_ci_is_newcombe_of_b_minus_a():
    c = compare_pass_unpaired("pass", 48, 80, 56, 70)  # B − A = 56/70 − 48/80
    assert (c.ci_low, c.ci_high) == pytest.approx((0.0524, 0.3339), abs=5e-5)
    assert c.difference == pytest.approx(56 / 70 - 48 / 80)


def test_paired_t_matches_scipy_ttest_rel():
    rng = np.random.default_rng(7)
    a = rng.normal(0.6, 0.15, 80)
    b = a + rng.normal(0.03, 0.1, 80)
    c = compare_scores_paired("score", a, b)
    ref = stats.ttest_rel(b, a)
    assert c.test == "paired_t"
    assert c.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert c.difference == pytest.approx(np.mean(b - a), rel=1e-12)
    assert (c.a_value, c.b_value) == pytest.approx((a.mean(), b.mean()), rel=1e-12)


def _wilcoxon_by_hand(d: np.ndarray) -> tuple[float, float]:
    """Signed-rank test written out: zeros dropped, average ranks of |d|, normal approximation
    with the tie correction Σ(t³ − t)/48 in the variance."""
    d = d[d != 0]
    n = d.size
    ranks = stats.rankdata(np.abs(d))
    r_plus, r_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    _, ties = np.unique(np.abs(d), return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - np.sum(ties**3 - ties) / 48
    z = (r_plus - n * (n + 1) / 4) / math.sqrt(var)
    return min(r_plus, r_minus), 2 * stats.norm.sf(abs(z))


def test_ordinal_scores_are_detected_and_use_wilcoxon():
    rng = np.random.default_rng(3)
    a = rng.choice([0.0, 0.5, 1.0], size=120, p=[0.2, 0.3, 0.5])
    # Moves both ways, by one or two grades, and many unchanged cases (zero differences).
    b = np.clip(a + rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], 120, p=[.05, .1, .5, .25, .1]), 0, 1)
    assert set(np.unique(b - a)) == {-1.0, -0.5, 0.0, 0.5, 1.0}
    assert is_ordinal(a, b)
    c = compare_scores_paired("grade", a, b)
    statistic, p = _wilcoxon_by_hand(b - a)
    assert c.test == "wilcoxon"
    assert c.statistic == pytest.approx(statistic)
    assert c.p_value == pytest.approx(p, rel=1e-10)
    # The flag overrides detection both ways.
    assert compare_scores_paired("grade", a, b, ordinal=False).test == "paired_t"
    cont = rng.normal(size=60)
    assert not is_ordinal(cont, cont + 0.1)


def test_wilcoxon_on_continuous_scores_matches_scipy_two_sample_form():
    rng = np.random.default_rng(11)
    a = rng.normal(size=45)
    b = a + rng.normal(0.3, 1, 45)
    c = compare_scores_paired("s", a, b, ordinal=True)
    ref = stats.wilcoxon(b, a)  # n ≤ 50, no ties or zeros: scipy's exact distribution
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert c.statistic == pytest.approx(ref.statistic)


def test_ordinal_with_no_change_has_p_one():
    a = np.tile([0.0, 0.5, 1.0], 20)
    c = compare_scores_paired("grade", a, a.copy())
    assert c.test == "wilcoxon"
    assert (c.statistic, c.p_value) == (0.0, 1.0)
    assert (c.difference, c.ci_low, c.ci_high) == (0.0, 0.0, 0.0)
    assert c.verdict == "no significant change"


# --- bootstrap -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [40, 500])  # 500 pairs: drawn in several blocks
def test_bootstrap_is_the_design_bootstrap(n):
    d = np.random.default_rng(5).normal(0.01, 0.2, n)
    assert paired_bootstrap_ci(d) == pytest.approx(_bootstrap_by_hand(d), abs=1e-15)


def test_bootstrap_is_deterministic_and_seeded():
    d = np.random.default_rng(1).normal(0, 1, 60)
    assert paired_bootstrap_ci(d) == paired_bootstrap_ci(d)
    assert paired_bootstrap_ci(d, seed=1) != paired_bootstrap_ci(d)
    a = np.random.default_rng(2).normal(0.5, 0.2, 60)
    first, second = compare_scores_paired("s", a, a + d / 10), compare_scores_paired("s", a,
                                                                                    a + d / 10)
    assert (first.ci_low, first.ci_high) == (second.ci_low, second.ci_high)


def test_bootstrap_covers_a_zero_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(2024)
    runs = 200
    covered = 0
    for _ in range(runs):
        low, high = paired_bootstrap_ci(rng.normal(0.0, 1.0, 40))
        covered += low <= 0 <= high
    # Nominal 95%; the percentile bootstrap runs a little under it at n = 40. The band is about
    # ±3 binomial standard errors around 0.94 — a 90% or 99% interval would fall outside it.
    assert 0.90 <= covered / runs <= 0.985


# --- paired pass rates -----------------------------------------------------------------------


def test_paired_pass_counts_and_fields():
    a, b = _pairs(700, 15, 30, 255)
    c = compare_pass_paired("pass", a, b)
    assert (c.regressions, c.fixes) == (15, 30)
    assert (c.n_a, c.n_b) == (1000, 1000)
    assert c.a_value == pytest.approx(0.715) and c.b_value == pytest.approx(0.73)
    assert c.p_value == pytest.approx(0.035697803555, abs=1e-12)
    assert c.test == "mcnemar_exact" and c.statistic == 30
    assert c.a_interval == pytest.approx(wilson(715, 1000))
    assert c.b_interval == pytest.approx(wilson(730, 1000))
    # Order of the pairs does not matter, only which pairs there are.
    perm = np.random.default_rng(0).permutation(1000)
    shuffled = compare_pass_paired("pass", np.array(a)[perm], np.array(b)[perm])
    assert (shuffled.regressions, shuffled.fixes, shuffled.p_value) == (15, 30, c.p_value)


def test_paired_pass_rejects_bad_input():
    with pytest.raises(ValueError):
        compare_pass_paired("pass", [True] * 30, [True] * 31)
    with pytest.raises(ValueError):
        compare_pass_paired("pass", [0.7] * 30, [1] * 30)
    # 0/1 integers are accepted as pass/fail.
    assert compare_pass_paired("pass", [1] * 30, [0] * 30).regressions == 30


# --- verdicts --------------------------------------------------------------------------------


def test_significant_drop_below_min_effect_is_no_significant_change():
    a, b = _pairs(2000, 30, 0, 970)  # −0.01, p ≈ 2e-9
    c = compare_pass_paired("pass", a, b)
    assert c.difference == pytest.approx(-0.01) and c.ci_high < 0 and c.p_value < 1e-6
    assert c.verdict == "no significant change"
    assert compare_pass_paired("pass", a, b, min_effect=0.005).verdict == "regression"


def test_significant_drop_above_min_effect_is_regression_and_mirror_is_improvement():
    a, b = _pairs(700, 50, 0, 250)
    assert compare_pass_paired("pass", a, b).verdict == "regression"
    assert compare_pass_paired("pass", b, a).verdict == "improvement"


def test_drop_of_exactly_min_effect_counts():
    a, b = _pairs(700, 20, 0, 280)  # exactly −0.02, CI below 0
    c = compare_pass_paired("pass", a, b)
    assert c.ci_high < 0 and c.verdict == "regression"
    a, b = _pairs(700, 19, 0, 281)  # −0.019
    assert compare_pass_paired("pass", a, b).verdict == "no significant change"


def test_min_effect_boundary_survives_rounding():
    # 3002/10000 − 3202/10000 is −0.019999999999999962 in floating point: still a 0.02 drop.
    c = compare_pass_unpaired("pass", 3202, 10_000, 3002, 10_000)
    assert abs(c.difference) < 0.02
    assert c.ci_high < 0 and c.verdict == "regression"


def test_large_drop_with_a_ci_crossing_zero_is_no_significant_change():
    c = compare_pass_unpaired("pass", 24, 40, 20, 40)  # −0.10 on 40 per side
    assert c.difference == pytest.approx(-0.1)
    assert c.ci_low < 0 < c.ci_high
    assert c.verdict == "no significant change"
    assert "0.3" in c.note  # the MDE (~0.31) is named: this sample cannot see a 0.1 change


def test_score_verdicts_at_the_min_effect_boundary():
    rng = np.random.default_rng(9)
    a = rng.uniform(0.4, 0.9, 400)
    noise = rng.normal(0, 0.01, 400)
    small = compare_scores_paired("score", a, a - 0.01 + noise, ordinal=False)
    assert small.ci_high < 0 and small.p_value < 1e-6
    assert small.verdict == "no significant change"
    big = compare_scores_paired("score", a, a - 0.05 + noise, ordinal=False)
    assert big.verdict == "regression"
    assert compare_scores_paired("score", a, a + 0.05 + noise).verdict == "improvement"


# --- insufficient data -----------------------------------------------------------------------


def test_insufficient_data_at_29_pairs_not_at_30():
    assert MIN_PAIRS == 30
    for n, expected in ((29, "insufficient data"), (30, "regression")):
        a, b = [True] * n, [False] * n  # every case regressed: as clear as a drop gets
        c = compare_pass_paired("pass", a, b)
        assert c.verdict == expected, n
        s = compare_scores_paired("s", np.linspace(0.5, 1, n), np.linspace(0, 0.5, n))
        assert s.verdict == expected, n
    c = compare_pass_paired("pass", [True] * 29, [True] * 29)
    assert c.verdict == "insufficient data"  # not "no significant change"
    assert c.p_value is None and c.ci_low is None and c.ci_high is None
    assert c.a_value == 1.0 and c.regressions == 0 and "29" in c.note


def test_insufficient_data_unpaired_per_side():
    assert compare_pass_unpaired("pass", 29, 29, 0, 30).verdict == "insufficient data"
    assert compare_pass_unpaired("pass", 30, 30, 0, 29).verdict == "insufficient data"
    assert compare_pass_unpaired("pass", 30, 30, 0, 30).verdict == "regression"
    empty = compare_pass_unpaired("pass", 0, 0, 5, 10)
    assert empty.verdict == "insufficient data" and empty.a_value is None


def test_missing_scores_drop_their_pair():
    a = np.r_[np.linspace(0, 1, 30), np.nan]
    b = np.r_[np.linspace(0, 1, 30) + 0.1, 0.5]
    c = compare_scores_paired("s", a, b)
    assert c.n_a == 30 and "1 pairs dropped" in c.note
    b[0] = np.inf
    assert compare_scores_paired("s", a, b).verdict == "insufficient data"


# --- minimum detectable effect ---------------------------------------------------------------


def _power(effect: float, se: float) -> float:
    z = stats.norm.ppf(0.975)
    return stats.norm.sf(z - effect / se) + stats.norm.cdf(-z - effect / se)


@pytest.mark.parametrize("p0,n_a,n_b", [(0.78, 1000, 1000), (0.5, 200, 300), (0.95, 60, 60)])
def test_mde_proportions_has_80_percent_power(p0, n_a, n_b):
    mde = mde_proportions(p0, n_a, n_b)
    se = math.sqrt(p0 * (1 - p0) * (1 / n_a + 1 / n_b))
    assert _power(mde, se) == pytest.approx(0.8, abs=1e-3)  # the far tail adds < 1e-3


def test_mde_of_each_kind():
    z_sum = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert MDE_Z == pytest.approx(z_sum, rel=1e-15)
    c = compare_pass_unpaired("pass", 780, 1000, 810, 1000)
    assert c.mde == pytest.approx(z_sum * math.sqrt(0.78 * 0.22 * 2 / 1000), rel=1e-12)
    a, b = _pairs(700, 15, 30, 255)
    p = compare_pass_paired("pass", a, b)
    # paired: from the 45 discordant pairs of 1,000 (runs that agree on most cases detect
    # less than independent ones would: 0.057 by the unpaired formula)
    assert p.mde == pytest.approx(z_sum * math.sqrt(45) / 1000, rel=1e-12)
    # the difference McNemar finds here (+0.015, p = 0.036) is then about at the MDE
    assert p.p_value < 0.05 and p.mde < 0.02
    # runs that agree on every case: one discordant pair at least, never an MDE of 0
    same = compare_pass_paired("pass", a, a)
    assert same.mde == pytest.approx(z_sum / 1000, rel=1e-12)
    # the paired MDE has 80% power under the null's variance of the differences
    assert _power(p.mde, math.sqrt(45) / 1000) == pytest.approx(0.8, abs=1e-3)
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=90), rng.normal(size=90)
    s = compare_scores_paired("s", x, y)
    assert s.mde == pytest.approx(z_sum * np.std(y - x, ddof=1) / math.sqrt(90), rel=1e-12)
    # A baseline of 0 or 1 still leaves something undetectable.
    assert mde_proportions(1.0, 100, 100) > 0 and mde_proportions(0.0, 100, 100) > 0


# --- several metrics or slices ---------------------------------------------------------------


def test_apply_bh_matches_scipy_false_discovery_control():
    rng = np.random.default_rng(8)
    comparisons = []
    for i, shift in enumerate([0.0, 0.02, 0.05, 0.1, 0.0, 0.01, 0.3]):
        a = rng.normal(0.5, 0.2, 50 + 10 * i)
        comparisons.append(compare_scores_paired(f"m{i}", a, a + rng.normal(shift, 0.2, a.size)))
    comparisons.insert(3, compare_pass_paired("tiny", [True] * 5, [False] * 5))
    out = apply_bh(comparisons)
    tested = [c for c in comparisons if c.p_value is not None]
    expected = stats.false_discovery_control([c.p_value for c in tested])
    assert [c.p_adjusted for c in out if c.p_value is not None] == pytest.approx(expected)
    assert out[3] == comparisons[3]  # insufficient data: untouched
    assert [c.p_value for c in out] == [c.p_value for c in comparisons]
    assert apply_bh(out) == out


def test_apply_bh_downgrades_a_verdict_the_family_does_not_support():
    a, b = _pairs(200, 15, 30, 55)  # +0.05, McNemar p = 0.0357
    lone = compare_pass_paired("pass", a, b)
    assert lone.ci_low > 0 and lone.verdict == "improvement"
    null_a, null_b = _pairs(100, 10, 10, 80)  # p = 1
    family = [lone] + [compare_pass_paired(f"slice{i}", null_a, null_b) for i in range(4)]
    out = apply_bh(family)
    assert out[0].p_adjusted == pytest.approx(min(1.0, 0.035697803555 * 5))
    assert out[0].verdict == "no significant change"
    assert "Benjamini" in out[0].note
    assert apply_bh(out) == out
    # Alone, the adjusted p is the raw one and the verdict stands.
    assert apply_bh([lone])[0].verdict == "improvement"


# --- serialisation ---------------------------------------------------------------------------


def test_to_dict_is_strict_json():
    a = np.arange(40) / 4  # quarters: b − a is exactly 0.5 for every pair
    c = compare_scores_paired("s", a, a + 0.5, ordinal=False)  # constant shift: t = inf
    assert math.isinf(c.statistic) and c.p_value == 0.0
    d = c.to_dict()
    assert set(d) == REQUIRED_KEYS
    assert d["statistic"] is None
    json.dumps(d, allow_nan=False)
    p = compare_pass_unpaired("pass", 780, 1000, 810, 1000).to_dict()
    assert isinstance(p["a_interval"], list)
    json.dumps(p, allow_nan=False)
    assert isinstance(c, Comparison)


def test_unpaired_scores_match_scipy():
    # two online judges' scores of different requests: Welch's t and its interval; on a scale
    # of 10 values or fewer, Mann–Whitney U (both two-sided, B against A)
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.70, 0.15, 120), rng.normal(0.64, 0.2, 90)
    c = compare_scores_unpaired("helpfulness", a, b)
    want = stats.ttest_ind(b, a, equal_var=False)
    ci = want.confidence_interval(0.95)
    assert (c.kind, c.test, c.n_a, c.n_b) == ("score_unpaired", "welch_t", 120, 90)
    assert (c.statistic, c.p_value) == pytest.approx((want.statistic, want.pvalue), rel=1e-12)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert c.difference == pytest.approx(b.mean() - a.mean())
    assert c.mde == pytest.approx(MDE_Z * math.sqrt(a.var(ddof=1) / 120
                                                           + b.var(ddof=1) / 90))
    assert c.verdict == ("regression" if c.ci_high < 0 and c.p_value < 0.05 else
                         "no significant change")
    la, lb = rng.integers(1, 6, 80), np.clip(rng.integers(1, 6, 70) - 1, 1, 5)
    o = compare_scores_unpaired("rating", la, lb)
    u = stats.mannwhitneyu(lb, la, alternative="two-sided")
    assert (o.test, o.statistic, o.p_value) == ("mann_whitney", u.statistic,
                                                pytest.approx(u.pvalue, rel=1e-12))
    assert o.verdict == "regression"  # a point lower on a 1-5 scale, 80 and 70 ratings
    few = compare_scores_unpaired("x", a[:29], b)
    assert (few.verdict, few.p_value, few.n_a) == ("insufficient data", None, 29)
    assert few.note == "fewer than 30 scores on a side (A 29, B 90)"
    same = compare_scores_unpaired("x", [0.5] * 40, [0.5, np.nan] * 40)
    assert (same.verdict, same.p_value, same.n_b, same.difference) == (
        "no significant change", 1.0, 40, 0.0)
