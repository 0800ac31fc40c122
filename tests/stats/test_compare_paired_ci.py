"""The paired pass-rate comparison's interval (Newcombe's score interval for paired data) against
published values and a computation written out here, and the verdict rule that goes with it: a
regression or improvement needs the CI clear of 0 *and* the test's p below 0.05.

Found in review: the interval was a percentile bootstrap of the −1/0/+1 per-case differences,
which with few discordant pairs excluded 0 where McNemar's exact test did not reject: 4 fixes and
no regression in 100 cases read "improvement" at p = 0.125, and the page's note then blamed
Benjamini–Hochberg, which had changed nothing (one metric).
"""

from __future__ import annotations

import math
import re

import pytest
from scipy import stats

from lib.stats import compare
from lib.stats.compare import apply_bh, compare_pass_paired, compare_scores_paired


def _pairs(n_both: int, regressions: int, fixes: int, n_neither: int = 0):
    """Aligned pass/fail lists: A then B, with the given numbers of each kind of pair."""
    a = [True] * n_both + [True] * regressions + [False] * fixes + [False] * n_neither
    b = [True] * n_both + [False] * regressions + [True] * fixes + [False] * n_neither
    return a, b


def _wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


# (a, b, c, d): pairs with the event under both conditions, the first only, the second only,
# neither; the interval is of p₁ − p₂ = (b − c)/n, printed to 4 (or 3) decimals.
PUBLISHED = [
    # Newcombe (1998), Statistics in Medicine 17:2635–2650, the paper's example, method 10
    # (as checked in the ratesci R package's tests; its method 8, φ = 0, is 0.0618 to 0.3242)
    ((20, 12, 2, 16), (0.0562, 0.3292), 5e-5),
    # Fagerland, Lydersen & Laake (2014), Statistics in Medicine 33:2850–2875: airway
    # hyper-responsiveness before and after stem cell transplantation (Bentur et al. 2009)
    ((1, 1, 7, 12), (-0.507, -0.026), 5e-4),
    # Fagerland, Lydersen & Laake (2017), Statistical Analysis of Contingency Tables, ch. 8:
    # complete response before and after consolidation therapy (Cavo et al. 2012)
    ((59, 6, 16, 80), (-0.1186, -0.0046), 5e-5),
    # Tang, Ling, Ling & Tian (2010) example (as checked in ratesci's tests)
    ((8, 3, 1, 2), (-0.1574, 0.4136), 5e-5),
    # Chang et al. (2024) example (as checked in ratesci's tests)
    ((7, 25, 2, 68), (0.133, 0.318), 5e-4),
]


@pytest.mark.parametrize("cells,expected,tol", PUBLISHED)
def test_newcombe_paired_matches_published_values(cells, expected, tol):
    assert compare.newcombe_paired(*cells) == pytest.approx(expected, abs=tol)


def test_newcombe_paired_written_out_by_hand():
    # Newcombe's example, each step: the Wilson intervals from scipy, φ with Newcombe's
    # correction (AD − BC = 296 > n/2 = 25, so 296 − 25 over the root of the margins' product).
    a, b, c, d = 20, 12, 2, 16
    n = 50
    p1, p2 = 32 / 50, 22 / 50
    l1, u1 = _wilson(32, 50)
    l2, u2 = _wilson(22, 50)
    phi = (20 * 16 - 12 * 2 - n / 2) / math.sqrt(32 * 18 * 22 * 28)
    assert phi == pytest.approx(0.454954, abs=1e-6)
    low = 0.2 - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    high = 0.2 + math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    assert compare.newcombe_paired(a, b, c, d) == pytest.approx((low, high), abs=1e-12)


def test_the_paired_comparison_uses_it_b_first():
    # B − A: B's passes are the first condition. Cavo et al.'s table as 161 cases: both pass 59,
    # 6 fixes (A fail, B pass), 16 regressions, 80 fail both.
    a, b = _pairs(59, 16, 6, 80)
    c = compare_pass_paired("pass", a, b)
    assert (c.regressions, c.fixes, c.difference) == (16, 6, pytest.approx(-10 / 161))
    assert (c.ci_low, c.ci_high) == pytest.approx((-0.1186, -0.0046), abs=5e-5)
    assert (c.ci_low, c.ci_high) == pytest.approx(compare.newcombe_paired(59, 6, 16, 80),
                                                  abs=1e-15)
    # and Newcombe's example the other way round: the interval mirrors
    a, b = _pairs(20, 12, 2, 16)
    c = compare_pass_paired("pass", a, b)
    assert (c.ci_low, c.ci_high) == pytest.approx((-0.3292, -0.0562), abs=5e-5)


def test_four_fixes_in_a_hundred_cases_is_no_significant_change():
    # The review's case: B fixes 4 of A's failures and breaks nothing; McNemar exact p = 0.125.
    a, b = _pairs(96, 0, 4)
    c = compare_pass_paired("correctness", a, b)
    assert c.p_value == pytest.approx(0.125, abs=1e-15)
    # B passes all: a margin of 0, so φ = 0 and the interval is Wilson(100/100) against
    # Wilson(96/100) squared and added
    lb, _ = _wilson(100, 100)
    la, ua = _wilson(96, 100)
    low, high = 0.04 - math.sqrt((1 - lb) ** 2 + (ua - 0.96) ** 2), 0.04 + (0.96 - la)
    assert (c.ci_low, c.ci_high) == pytest.approx((low, high), abs=1e-12)
    assert c.ci_low < 0 < c.ci_high
    assert c.verdict == "no significant change"
    (alone,) = apply_bh([c])
    assert alone.verdict == "no significant change" and alone.p_adjusted == c.p_value
    # nothing for Benjamini–Hochberg to answer for: one metric, nothing moved
    assert "Benjamini" not in (alone.note or "")


def test_a_ci_clear_of_zero_without_a_significant_test_is_no_verdict_and_says_why():
    # 5 fixes, no regression in 100: the score interval just clears 0 (z = √5 = 2.24 on the
    # discordant pairs), McNemar exact p = 0.0625 does not: the test decides, and the note says
    # so — not Benjamini–Hochberg, which has nothing to do with it.
    a, b = _pairs(95, 0, 5)
    c = compare_pass_paired("correctness", a, b)
    assert c.p_value == pytest.approx(0.0625, abs=1e-15)
    lb, _ = _wilson(100, 100)
    la, ua = _wilson(95, 100)
    assert c.ci_low == pytest.approx(0.05 - math.sqrt((1 - lb) ** 2 + (ua - 0.95) ** 2),
                                     abs=1e-12)
    assert c.ci_low > 0 and c.difference >= c.min_effect
    assert c.verdict == "no significant change"
    assert "the test does not reject (p = 0.0625" in c.note
    (after,) = apply_bh([c])
    assert after.verdict == "no significant change"
    assert "Benjamini" not in after.note and "does not reject" in after.note
    # six fixes: p = 0.03125, and the interval clears 0: an improvement
    a, b = _pairs(94, 0, 6)
    six = compare_pass_paired("correctness", a, b)
    assert six.p_value == pytest.approx(0.03125) and six.ci_low > 0
    assert six.verdict == apply_bh([six])[0].verdict == "improvement"


@pytest.mark.parametrize("n", [30, 60, 100, 250])
def test_wherever_mcnemar_rejects_the_interval_excludes_zero(n):
    # The verdict asks for both, so an interval that kept 0 where the exact test rejects would
    # lose verdicts the test supports; it never does (the other way round it can: 5 fixes).
    for b in range(31):
        for c in range(31 - b if n == 30 else 31):
            rest = n - b - c
            if rest < 0 or compare.mcnemar_exact(b, c) >= 0.05:
                continue
            for both in (0, rest // 2, rest):
                low, high = compare.newcombe_paired(both, c, b, rest - both)
                assert low > 0 or high < 0, (n, b, c, both)


def test_newcombe_paired_stays_within_minus_one_and_one():
    assert compare.newcombe_paired(0, 0, 30, 0)[0] == -1.0  # every case regressed
    assert compare.newcombe_paired(0, 30, 0, 0)[1] == 1.0
    low, high = compare.newcombe_paired(40, 0, 0, 0)  # no change at all
    assert low < 0 < high
    with pytest.raises(ValueError):
        compare.newcombe_paired(0, 0, 0, 0)


def test_benjamini_hochberg_is_named_only_when_it_moved_p_across_005():
    lone = compare_pass_paired("pass", *_pairs(200, 15, 30, 55))  # +0.05, p = 0.0357
    assert lone.verdict == "improvement"
    nulls = [compare_pass_paired(f"slice{i}", *_pairs(100, 10, 10, 80)) for i in range(4)]
    out = apply_bh([lone, *nulls])
    assert out[0].verdict == "no significant change"
    assert re.search(r"not significant after Benjamini–Hochberg over 5 comparisons "
                     r"\(p 0\.0357, adjusted 0\.178\)", out[0].note)
    assert all("Benjamini" not in (c.note or "") for c in out[1:])  # p = 1 before and after
    # with a strong regression beside it instead, its adjusted p stays 0.0357: no note
    strong = compare_pass_paired("other", *_pairs(700, 50, 0, 250))
    both = apply_bh([lone, strong])
    assert both[0].p_adjusted == pytest.approx(lone.p_value)
    assert both[0].verdict == "improvement" and "Benjamini" not in (both[0].note or "")


def test_every_kind_s_verdict_needs_its_test_to_reject():
    # Scores: 30 pairs, three up by 1, one by 2, the rest unchanged (a continuous score, paired
    # t): the bootstrap interval clears 0 but the t test does not reject (p = 0.057).
    base = [0.25 * i for i in range(30)]
    moved = [x + d for x, d in zip(base, [1.0] * 3 + [2.0] + [0.0] * 26)]
    s = compare_scores_paired("score", base, moved, ordinal=False)
    diffs = [m - x for m, x in zip(moved, base)]
    assert s.p_value == pytest.approx(stats.ttest_1samp(diffs, 0.0).pvalue, rel=1e-10)
    assert s.p_value > 0.05 and s.ci_low > 0 and s.difference >= s.min_effect
    assert s.verdict == "no significant change"
    assert "does not reject" in s.note
    # Unpaired pass rates the other way: 0 of 30 against 4 of 30, z p = 0.038, and Newcombe's
    # interval keeps 0: no verdict (as before), and the note says the two disagree.
    u = compare.compare_pass_unpaired("pass", 0, 30, 4, 30)
    z = 4 / 30 / math.sqrt(4 / 60 * 56 / 60 * (2 / 30))
    assert u.p_value == pytest.approx(2 * stats.norm.sf(z), rel=1e-12)
    assert u.p_value < 0.05 < u.ci_high and u.ci_low < 0
    assert u.verdict == "no significant change"
    assert "the 95% CI includes 0" in u.note
