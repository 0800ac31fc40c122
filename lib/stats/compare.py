"""Version comparison: eval run (or version) A, the baseline, against B, the candidate, on one
metric (design.md §5). Every difference is B − A, so a negative difference is a drop.

Entry points, each returning a ``Comparison``:

- ``compare_pass_paired(metric, a, b)``: pass/fail per case, both runs on the same cases;
- ``compare_pass_unpaired(metric, a_pass, a_n, b_pass, b_n)``: pass counts of runs with no case
  in common;
- ``compare_pass_repeated(metric, a_rates, b_rates, ...)``: pass/fail per case run several times
  (epochs) by both runs: each case's pass rate over its epochs, the case the unit;
- ``compare_pass_unpaired_repeated(metric, a_rates, b_rates, ...)``: the same of runs without
  cases in common, as independent samples of cases;
- ``compare_scores_paired(metric, a, b)``: numeric scores per case, both runs on the same cases;
- ``compare_scores_unpaired(metric, a, b)``: numeric scores of runs without cases in common
  (online judges score different requests): Welch's t, or Mann–Whitney U for ordinal scores.

Then ``apply_bh(comparisons)`` over the metrics or slices compared together.

"Paired" means the caller has already matched the two runs' results by (dataset, case_id, epoch)
and passes them in the same order: ``a[i]`` and ``b[i]`` are one case. Cases run by only one side
are left out by the caller.

The verdict (same rule for every kind):

- fewer than ``MIN_PAIRS`` pairs (unpaired: rows on either side): "insufficient data", never
  "no significant change";
- "regression" when the 95% CI of B − A lies entirely below 0, the test's two-sided p-value is
  below 0.05, **and** the drop is at least the metric's ``min_effect`` (in the metric's units: a
  fraction for pass rates, score units for scores); "improvement" mirrors it;
- otherwise "no significant change" (a ``note`` says why when the CI and the test disagree);
- after ``apply_bh``, the p-value that counts is the Benjamini–Hochberg adjusted one.

The CI and the test are computed separately and can disagree at the edge. For paired pass rates
the CI is Newcombe's score interval for paired data (``newcombe_paired``), not a bootstrap: a
percentile bootstrap of the −1/0/+1 per-case differences excluded 0 with 4 fixes and no
regression in 100 cases, where McNemar's exact p is 0.125 (found in review). The score interval
excludes 0 wherever McNemar exact rejects, but also at some exact p-values a little above 0.05
(5 fixes and no regression: p = 0.0625), which is why the verdict asks for both.

Minimum detectable effect (``mde``, in the metric's units), at α = 0.05 two-sided and power 0.8,
with ``MDE_Z`` = z₀.₉₇₅ + z₀.₈ = 2.8016:

- pass rates, unpaired: ``MDE_Z · √(p₀(1 − p₀)(1/n_a + 1/n_b))`` with p₀ the baseline (A)
  pass rate (see ``mde_proportions``);
- pass rates, paired: ``MDE_Z · √(max(b + c, 1)) / n``, from the discordant pairs (b + c of
  n): under no change the per-case differences have variance (b + c)/n, and two runs that agree
  on most cases detect much smaller changes than independent runs would (the unpaired formula
  said 0.057 where McNemar found 0.015 at p = 0.036); one discordant pair at least, so runs that
  agree on every case do not claim an MDE of 0;
- scores: ``MDE_Z · sd(B − A) / √n`` (sample sd, ddof 1);
- scores, unpaired: ``MDE_Z · √(s_a²/n_a + s_b²/n_b)`` (sample variances, ddof 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
from scipy import stats

from lib.stats.drift import benjamini_hochberg
from lib.stats.stattests import two_proportion_z

Kind = Literal["pass_paired", "pass_unpaired", "score_paired", "score_unpaired"]
Verdict = Literal["regression", "improvement", "no significant change", "insufficient data"]

ALPHA = 0.05  # two-sided level of every test and CI (95% intervals)
Z_975 = 1.959963984540054  # standard normal 0.975 quantile: the 95% two-sided z
Z_POWER = 0.8416212335729143  # standard normal 0.8 quantile: power 0.8
MDE_Z = Z_975 + Z_POWER  # ≈ 2.8
MIN_PAIRS = 30  # fewer pairs (unpaired: rows on a side): "insufficient data"
DEFAULT_MIN_EFFECT = 0.02  # smallest change worth a verdict, in the metric's units
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
ORDINAL_MAX_LEVELS = 10  # scores with at most this many distinct values count as ordinal
# Slack on the min-effect comparison: a drop of exactly min_effect, computed as 0.81 − 0.83,
# comes out as 0.01999…98 and would otherwise miss the cut by rounding alone.
_EFFECT_TOL = 1e-9
# The bootstrap draws its indices in blocks of at most this many, so 10,000 resamples of a large
# run do not need a 10,000 × n index array at once; blocks consume the generator in the same order
# as one draw would, so the result does not depend on the block size.
_BOOTSTRAP_BLOCK_DRAWS = 2_000_000

TEST_DOCS: dict[str, str] = {
    "mcnemar_exact": "McNemar exact: two-sided binomial test (p 0.5) of the fixes among the "
                     "b + c discordant pairs; statistic = fixes (c).",
    "two_proportion_z": "pooled two-proportion z (standard errors, positive when B is higher) "
                        "and its two-sided p-value.",
    "paired_t": "paired t of B − A (n − 1 degrees of freedom, positive when B is higher) and "
                "its two-sided p-value.",
    "wilcoxon": "Wilcoxon signed-rank of B − A, zero differences dropped, normal approximation "
                "with tie correction when there are ties; statistic = min(R+, R−), two-sided p.",
    "welch_t": "Welch's t of mean B − mean A (unequal variances, Welch–Satterthwaite degrees "
               "of freedom, positive when B is higher) and its two-sided p-value.",
    "mann_whitney": "Mann–Whitney U of B against A (exact without ties for small samples, else "
                    "the normal approximation with tie correction); statistic = U of B, "
                    "two-sided p.",
}


@dataclass(frozen=True)
class Comparison:
    """The comparison of run B (candidate) with run A (baseline) on one metric.

    ``a_value`` / ``b_value`` are pass rates (fractions, 0..1) or mean scores (score units);
    ``difference`` is B − A in the same units, and ``ci_low`` / ``ci_high`` its 95% interval
    (paired pass rates: Newcombe's for paired data; unpaired: Newcombe's hybrid score; scores:
    percentile bootstrap of the pairs). ``n_a`` / ``n_b`` count the
    rows of each side (equal, the number of pairs, when paired). ``test`` names the test (see
    ``TEST_DOCS``) whose ``statistic`` and raw two-sided ``p_value`` are given; ``p_adjusted`` is
    the Benjamini–Hochberg one, set by ``apply_bh`` (None before). ``regressions`` (A pass, B
    fail) and ``fixes`` (A fail, B pass) only for paired pass rates; ``a_interval`` /
    ``b_interval`` are each run's Wilson 95% interval (pass rates only). ``mde`` is the minimum
    detectable effect at this sample size (module docstring), ``min_effect`` the smallest change
    that earns a verdict, both in the metric's units. With insufficient data the CI and test
    fields are None; values and ``mde`` are still given where defined.
    """

    metric: str
    kind: Kind
    n_a: int
    n_b: int
    a_value: float | None
    b_value: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    test: str
    statistic: float | None
    p_value: float | None
    verdict: Verdict
    min_effect: float
    mde: float | None
    p_adjusted: float | None = None
    regressions: int | None = None
    fixes: int | None = None
    a_interval: tuple[float, float] | None = None
    b_interval: tuple[float, float] | None = None
    note: str | None = None  # why a result looks odd (too few pairs, dropped pairs, low power)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field; intervals become lists. A non-finite ``statistic``
        (a t with constant differences) becomes None, since strict JSON has no Infinity."""
        out = asdict(self)
        for key in ("a_interval", "b_interval"):
            if out[key] is not None:
                out[key] = list(out[key])
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        return out


# --- intervals and tests ---------------------------------------------------------------------


def wilson(k: int, n: int, z: float = Z_975) -> tuple[float, float]:
    """Wilson score interval for the proportion k/n (fractions, within [0, 1]); 95% by default.
    The bounds are the p with |k/n − p| = z·√(p(1 − p)/n)."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"wilson needs 0 <= k <= n and n > 0 (got k={k}, n={n})")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At k = 0 or k = n one bound is 0 or 1 in exact arithmetic; clip the rounding residue.
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Newcombe's hybrid score interval (Newcombe 1998, method 10) for k1/n1 − k2/n2 (a
    difference of fractions, within [−1, 1]), 95%, from each proportion's Wilson interval:
    d − √((p₁ − l₁)² + (u₂ − p₂)²) .. d + √((u₁ − p₁)² + (p₂ − l₂)²)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1)
    l2, u2 = wilson(k2, n2)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def newcombe_paired(both: int, first_only: int, second_only: int, neither: int
                    ) -> tuple[float, float]:
    """Newcombe's score interval for the difference of two paired proportions (Newcombe 1998,
    "Improved confidence intervals for the difference between binomial proportions based on
    paired data", Statistics in Medicine 17:2635–2650, method 10), 95%: for n pairs, of which
    ``both`` have the event under both conditions, ``first_only`` under the first only,
    ``second_only`` under the second only and ``neither`` under none, the interval of
    θ = p₁ − p₂ = (first_only − second_only)/n (a difference of fractions, within [−1, 1]).

    With p₁ = (both + first_only)/n and p₂ = (both + second_only)/n, (l₁, u₁) and (l₂, u₂) their
    Wilson intervals, and φ the correlation of the two outcomes::

        L = θ − √((p₁ − l₁)² − 2φ(p₁ − l₁)(u₂ − p₂) + (u₂ − p₂)²)
        U = θ + √((u₁ − p₁)² − 2φ(u₁ − p₁)(p₂ − l₂) + (p₂ − l₂)²)

    φ = C/√(efgh), e f g h the four margins (φ = 0 when one is 0), with C = AD − BC (A = both,
    B = first_only, C = second_only, D = neither) when it is negative, AD − BC − n/2 when that
    is positive, and 0 in between (Newcombe's correction of φ). With φ = 0 this is ``newcombe``
    on the two margins."""
    a, b, c, d = both, first_only, second_only, neither
    if min(a, b, c, d) < 0:
        raise ValueError("cell counts must be non-negative")
    n = a + b + c + d
    if n == 0:
        raise ValueError("newcombe_paired needs at least one pair")
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n)
    l2, u2 = wilson(a + c, n)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    ad_bc = a * d - b * c
    if margins == 0 or 0 <= ad_bc <= n / 2:
        phi = 0.0
    else:
        phi = (ad_bc - n / 2 if ad_bc > 0 else ad_bc) / math.sqrt(margins)
    theta = (b - c) / n  # the same as p1 − p2, without the rounding of two fractions
    below = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    above = (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2
    # |φ| ≤ 1 keeps both sums ≥ 0 but for rounding; at θ = ±1 a bound is ±1 in exact arithmetic.
    return (max(-1.0, theta - math.sqrt(max(below, 0.0))),
            min(1.0, theta + math.sqrt(max(above, 0.0))))


def mcnemar_exact(b: int, c: int) -> float:
    """McNemar's exact test: the two-sided p-value of the binomial test of c successes in
    b + c trials with p = 0.5, b and c the two discordant counts (1 when b + c = 0)."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    # p = 0.5 makes the null distribution symmetric, so the two-sided p-value (outcomes no more
    # likely than the one observed) is twice the smaller tail, capped at 1 when b == c.
    return min(1.0, 2.0 * float(stats.binom.cdf(min(b, c), n, 0.5)))


def paired_bootstrap_ci(diffs: Sequence[float], *, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of the per-pair differences (their units):
    ``resamples`` resamples of the n pairs with replacement from ``numpy.random.default_rng(
    seed)``, then the 2.5th and 97.5th percentiles (numpy's linear method) of their means."""
    d = np.asarray(diffs, dtype=float)
    n = d.size
    if d.ndim != 1 or n == 0:
        raise ValueError("paired_bootstrap_ci needs a non-empty 1-d sequence")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    block = max(1, _BOOTSTRAP_BLOCK_DRAWS // n)
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        means[start:stop] = d[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    low, high = np.percentile(means, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(low), float(high)


def mde_proportions(baseline_rate: float, n_a: int, n_b: int) -> float:
    """Minimum detectable difference of two pass rates (a fraction) at α = 0.05 two-sided and
    power 0.8, normal approximation: ``MDE_Z · √(p₀(1 − p₀)(1/n_a + 1/n_b))``, p₀ the baseline
    rate. p₀ is kept at least half a case away from 0 and 1 (1/(2·n_a)), where the formula would
    claim that any change is detectable."""
    half_case = 1 / (2 * n_a)
    p0 = min(max(baseline_rate, half_case), 1 - half_case)
    return MDE_Z * math.sqrt(p0 * (1 - p0) * (1 / n_a + 1 / n_b))


# --- verdicts --------------------------------------------------------------------------------


def _verdict(difference: float, ci_low: float, ci_high: float, min_effect: float,
             p: float) -> Verdict:
    """The verdict of module docstring; ``p`` is the test's p-value (raw, or BH adjusted)."""
    if not p < ALPHA:
        return "no significant change"
    big_enough = abs(difference) + _EFFECT_TOL >= min_effect
    if ci_high < 0 and difference < 0 and big_enough:
        return "regression"
    if ci_low > 0 and difference > 0 and big_enough:
        return "improvement"
    return "no significant change"


CI_ONLY, TEST_ONLY = "ci_only", "test_only"  # which of the two says "a change" alone


def disagreement(ci_low: float, ci_high: float, p: float) -> str | None:
    """When the 95% CI and the test disagree about 0: :data:`CI_ONLY` (the CI excludes 0, the
    test's ``p`` is not below 0.05), :data:`TEST_ONLY` (the reverse), else None."""
    clear = ci_high < 0 or ci_low > 0
    if clear and not p < ALPHA:
        return CI_ONLY
    if not clear and p < ALPHA:
        return TEST_ONLY
    return None


def _disagreement_note(ci_low: float, ci_high: float, p: float) -> str | None:
    """Why there is no verdict when the CI and the test disagree about 0 (raw p-value)."""
    which = disagreement(ci_low, ci_high, p)
    if which == CI_ONLY:
        return (f"the 95% CI excludes 0 but the test does not reject (p = {p:.3g}, not below "
                f"{ALPHA:g}): not significant")
    if which == TEST_ONLY:
        return f"p = {p:.3g} but the 95% CI includes 0: not significant"
    return None


def _join(*notes: str | None) -> str | None:
    kept = [n for n in notes if n]
    return "; ".join(kept) if kept else None


def _power_note(mde: float, min_effect: float) -> str | None:
    if mde <= min_effect:
        return None
    return (f"at this sample size only changes of about {mde:.3g} or more are detected "
            f"reliably (80% power), above min_effect {min_effect:g}")


def _check_min_effect(min_effect: float) -> None:
    if not min_effect >= 0:
        raise ValueError("min_effect must be >= 0")


# --- pass rates ------------------------------------------------------------------------------


def _as_pass(values: Sequence[bool], side: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{side} must be a flat sequence of pass/fail values")
    # Refuse anything but booleans or 0/1: a score passed here by mistake would otherwise be
    # read as "pass" whenever it is non-zero.
    if arr.dtype != bool and arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{side} holds values other than True/False (or 1/0)")
    return arr.astype(bool)


def compare_pass_paired(metric: str, a: Sequence[bool], b: Sequence[bool], *,
                        min_effect: float = DEFAULT_MIN_EFFECT) -> Comparison:
    """Paired pass rates: ``a[i]`` and ``b[i]`` are one case's pass (True) / fail in the
    baseline and the candidate. Test: McNemar exact on the regressions b (A pass, B fail) and
    fixes c (A fail, B pass). Difference = (c − b)/n, the change in pass rate, with Newcombe's
    95% score interval for paired data (``newcombe_paired``)."""
    _check_min_effect(min_effect)
    av, bv = _as_pass(a, "a"), _as_pass(b, "b")
    if av.size != bv.size:
        raise ValueError(f"a and b must be aligned pairs (lengths {av.size} and {bv.size})")
    n = int(av.size)
    regressions = int(np.sum(av & ~bv))
    fixes = int(np.sum(~av & bv))
    common: dict[str, Any] = {"metric": metric, "kind": "pass_paired", "n_a": n, "n_b": n,
                              "test": "mcnemar_exact", "min_effect": min_effect,
                              "regressions": regressions, "fixes": fixes}
    if n == 0:
        return Comparison(**common, a_value=None, b_value=None, difference=None, ci_low=None,
                          ci_high=None, statistic=None, p_value=None, mde=None,
                          verdict="insufficient data", note=f"no pairs (need {MIN_PAIRS})")
    k_a, k_b = int(av.sum()), int(bv.sum())
    # (c − b)/n rather than rate_b − rate_a: the same number, without the rounding of two rates.
    difference = (fixes - regressions) / n
    mde = MDE_Z * math.sqrt(max(regressions + fixes, 1)) / n
    common.update(a_value=k_a / n, b_value=k_b / n, difference=difference, mde=mde,
                  a_interval=wilson(k_a, n), b_interval=wilson(k_b, n))
    if n < MIN_PAIRS:
        return Comparison(**common, ci_low=None, ci_high=None, statistic=None, p_value=None,
                          verdict="insufficient data",
                          note=f"fewer than {MIN_PAIRS} pairs ({n})")
    both = int(np.sum(av & bv))
    ci_low, ci_high = newcombe_paired(both, fixes, regressions, n - both - fixes - regressions)
    p = mcnemar_exact(regressions, fixes)
    return Comparison(**common, ci_low=ci_low, ci_high=ci_high, statistic=float(fixes),
                      p_value=p, verdict=_verdict(difference, ci_low, ci_high, min_effect, p),
                      note=_join(_disagreement_note(ci_low, ci_high, p),
                                 _power_note(mde, min_effect)))


def compare_pass_unpaired(metric: str, a_pass: int, a_n: int, b_pass: int, b_n: int, *,
                          min_effect: float = DEFAULT_MIN_EFFECT) -> Comparison:
    """Pass counts of two runs with no case in common: pooled two-proportion z test and the
    Newcombe (hybrid score) 95% interval of the difference of pass rates B − A."""
    _check_min_effect(min_effect)
    for k, n, side in ((a_pass, a_n, "a"), (b_pass, b_n, "b")):
        if not 0 <= k <= n:
            raise ValueError(f"{side}: need 0 <= passes <= n (got {k} of {n})")
    common: dict[str, Any] = {"metric": metric, "kind": "pass_unpaired", "n_a": a_n,
                              "n_b": b_n, "test": "two_proportion_z", "min_effect": min_effect}
    a_value = a_pass / a_n if a_n else None
    b_value = b_pass / b_n if b_n else None
    common.update(
        a_value=a_value, b_value=b_value,
        difference=b_value - a_value if a_value is not None and b_value is not None else None,
        a_interval=wilson(a_pass, a_n) if a_n else None,
        b_interval=wilson(b_pass, b_n) if b_n else None,
        mde=mde_proportions(a_value, a_n, b_n) if a_value is not None and b_n else None,
    )
    if a_n < MIN_PAIRS or b_n < MIN_PAIRS:
        return Comparison(**common, ci_low=None, ci_high=None, statistic=None, p_value=None,
                          verdict="insufficient data",
                          note=f"fewer than {MIN_PAIRS} rows on a side (A {a_n}, B {b_n})")
    z, p = two_proportion_z(a_pass, a_n, b_pass, b_n)
    ci_low, ci_high = newcombe(b_pass, b_n, a_pass, a_n)
    return Comparison(**common, ci_low=ci_low, ci_high=ci_high, statistic=z, p_value=p,
                      verdict=_verdict(common["difference"], ci_low, ci_high, min_effect, p),
                      note=_join(_disagreement_note(ci_low, ci_high, p),
                                 _power_note(common["mde"], min_effect)))


# --- scores ----------------------------------------------------------------------------------


def is_ordinal(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when the two runs' scores together take at most ``ORDINAL_MAX_LEVELS`` distinct
    values (a grading scale such as {0, 0.5, 1} or 1..5, not a continuous score)."""
    values = np.concatenate([np.asarray(a, dtype=float), np.asarray(b, dtype=float)])
    return np.unique(values[np.isfinite(values)]).size <= ORDINAL_MAX_LEVELS


def _paired_t(d: np.ndarray) -> tuple[float, float]:
    n = d.size
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        # Every pair moved by the same amount: no spread to test against. No change is p 1; a
        # constant non-zero shift is as certain as the data can make it.
        return (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
    t = mean / (sd / math.sqrt(n))
    return t, float(2 * stats.t.sf(abs(t), n - 1))


def _wilcoxon(d: np.ndarray) -> tuple[float, float]:
    if not d.any():
        # scipy has no non-zero difference left to rank and returns NaN; nothing changed.
        return 0.0, 1.0
    # zero_method="wilcox" (drop zero differences) is the textbook test; method="auto" is exact
    # without ties or zeros up to 50 pairs, else the normal approximation with tie correction.
    res = stats.wilcoxon(d, zero_method="wilcox", correction=False, method="auto")
    return float(res.statistic), float(res.pvalue)


def compare_scores_paired(metric: str, a: Sequence[float], b: Sequence[float], *,
                          ordinal: bool | None = None,
                          min_effect: float = DEFAULT_MIN_EFFECT) -> Comparison:
    """Paired numeric scores: ``a[i]`` and ``b[i]`` are one case's score in the baseline and
    the candidate (score units). Difference = mean of B − A, with a 95% paired bootstrap CI
    (``paired_bootstrap_ci``). Test: paired t, or Wilcoxon signed-rank for ordinal scores
    (``ordinal`` True, or None and ``is_ordinal``). Pairs with a missing (NaN) or non-finite
    score on either side are dropped and counted in ``note``; ``n_a`` = ``n_b`` = pairs kept."""
    _check_min_effect(min_effect)
    av, bv = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if av.ndim != 1 or av.shape != bv.shape:
        raise ValueError(f"a and b must be aligned pairs (shapes {av.shape} and {bv.shape})")
    keep = np.isfinite(av) & np.isfinite(bv)
    dropped = int(av.size - keep.sum())
    av, bv = av[keep], bv[keep]
    n = int(av.size)
    if ordinal is None:
        ordinal = is_ordinal(av, bv)
    dropped_note = f"{dropped} pairs dropped for a missing score" if dropped else None
    d = bv - av
    mde = MDE_Z * float(d.std(ddof=1)) / math.sqrt(n) if n >= 2 else None
    common: dict[str, Any] = {
        "metric": metric, "kind": "score_paired", "n_a": n, "n_b": n,
        "test": "wilcoxon" if ordinal else "paired_t", "min_effect": min_effect,
        "a_value": float(av.mean()) if n else None, "b_value": float(bv.mean()) if n else None,
        "difference": float(d.mean()) if n else None, "mde": mde,
    }
    if n < MIN_PAIRS:
        return Comparison(**common, ci_low=None, ci_high=None, statistic=None, p_value=None,
                          verdict="insufficient data",
                          note=_join(f"fewer than {MIN_PAIRS} pairs ({n})", dropped_note))
    ci_low, ci_high = paired_bootstrap_ci(d)
    statistic, p_value = _wilcoxon(d) if ordinal else _paired_t(d)
    return Comparison(**common, ci_low=ci_low, ci_high=ci_high, statistic=statistic,
                      p_value=p_value,
                      verdict=_verdict(common["difference"], ci_low, ci_high, min_effect,
                                       p_value),
                      note=_join(dropped_note, _disagreement_note(ci_low, ci_high, p_value),
                                 _power_note(mde, min_effect)))


def compare_scores_unpaired(metric: str, a: Sequence[float], b: Sequence[float], *,
                            ordinal: bool | None = None,
                            min_effect: float = DEFAULT_MIN_EFFECT) -> Comparison:
    """Numeric scores of two runs with no case in common (an online judge's scores of two
    versions' requests), as independent samples (score units). Difference = mean B − mean A,
    with Welch's 95% interval. Test: Welch's t, or Mann–Whitney U for ordinal scores
    (``ordinal`` True, or None and ``is_ordinal``). Missing or non-finite scores are left out;
    ``n_a`` / ``n_b`` count the scores kept. Without this, 300 scores a side read "too few
    pairs to say" beside a drop from 0.80 to 0.50 (found in review)."""
    _check_min_effect(min_effect)
    av, bv = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if av.ndim != 1 or bv.ndim != 1:
        raise ValueError("a and b must be flat sequences of scores")
    av, bv = av[np.isfinite(av)], bv[np.isfinite(bv)]
    n_a, n_b = int(av.size), int(bv.size)
    if ordinal is None:
        ordinal = is_ordinal(av, bv)
    mde = (MDE_Z * math.sqrt(av.var(ddof=1) / n_a + bv.var(ddof=1) / n_b)
           if n_a >= 2 and n_b >= 2 else None)
    common: dict[str, Any] = {
        "metric": metric, "kind": "score_unpaired", "n_a": n_a, "n_b": n_b,
        "test": "mann_whitney" if ordinal else "welch_t", "min_effect": min_effect,
        "a_value": float(av.mean()) if n_a else None, "b_value": float(bv.mean()) if n_b else None,
        "difference": float(bv.mean() - av.mean()) if n_a and n_b else None, "mde": mde}
    if n_a < MIN_PAIRS or n_b < MIN_PAIRS:
        return Comparison(**common, ci_low=None, ci_high=None, statistic=None, p_value=None,
                          verdict="insufficient data",
                          note=f"fewer than {MIN_PAIRS} scores on a side (A {n_a}, B {n_b})")
    if av.var() == 0 and bv.var() == 0:
        # no spread on either side: scipy's interval and p are NaN; the means alone decide
        d = common["difference"]
        ci_low = ci_high = d
        statistic, p_value = (0.0, 1.0) if d == 0 else (math.copysign(math.inf, d), 0.0)
    else:
        welch = stats.ttest_ind(bv, av, equal_var=False)
        ci = welch.confidence_interval(1 - ALPHA)
        ci_low, ci_high = float(ci.low), float(ci.high)
        statistic, p_value = float(welch.statistic), float(welch.pvalue)
    if ordinal:
        u = stats.mannwhitneyu(bv, av, alternative="two-sided", method="auto")
        statistic, p_value = float(u.statistic), float(u.pvalue)
        if not math.isfinite(p_value):  # every score equal on both sides
            p_value = 1.0
    return Comparison(**common, ci_low=ci_low, ci_high=ci_high, statistic=statistic,
                      p_value=p_value,
                      verdict=_verdict(common["difference"], ci_low, ci_high, min_effect,
                                       p_value),
                      note=_join(_disagreement_note(ci_low, ci_high, p_value),
                                 _power_note(mde, min_effect)))


def compare_pass_repeated(metric: str, a_rates: Sequence[float], b_rates: Sequence[float], *,
                          regressions: int, fixes: int, runs: int,
                          min_effect: float = DEFAULT_MIN_EFFECT) -> Comparison:
    """Paired pass rates of test cases that both versions ran several times (epochs):
    ``a_rates[i]`` / ``b_rates[i]`` are case i's pass rate (a fraction) over its epochs paired
    on both sides; ``regressions`` / ``fixes`` count the epochs (A pass, B fail / the reverse)
    and ``runs`` the paired epochs, for people. A case's epochs are no independent trials (the
    same question, the same difficulty), so the case is the unit, as Inspect AI reduces its
    epochs: the per-case rates are compared as paired scores (``compare_scores_paired``:
    Wilcoxon signed-rank, or paired t past 10 levels; paired bootstrap CI over the cases; the
    MDE from their spread), ``n_a`` = ``n_b`` = the cases, and "insufficient data" under
    ``MIN_PAIRS`` of them. Difference = the mean of the per-case changes (the change in pass
    rate when every case has as many epochs)."""
    c = compare_scores_paired(metric, a_rates, b_rates, min_effect=min_effect)
    cases = len(a_rates)
    return replace(c, kind="pass_paired", regressions=regressions, fixes=fixes, note=_join(
        f"{runs:,} paired epochs of {cases:,} test cases: each case's pass rate over its epochs "
        "is one pair, since repeats of a case are no independent trials", c.note))


REPEATED_CASES_NOTE = "each case's results over its epochs are one sample"


def compare_pass_unpaired_repeated(metric: str, a_rates: Sequence[float],
                                   b_rates: Sequence[float], *, runs: tuple[int, int],
                                   min_effect: float = DEFAULT_MIN_EFFECT) -> Comparison:
    """Pass rates of two runs without enough cases in common to pair, where a case was run in
    several epochs: ``a_rates`` / ``b_rates`` hold each of a run's cases' pass rate (a
    fraction) over its epochs (an eval without a case: its own 1 or 0), ``runs`` the two runs'
    results with a pass/fail, for people. A case's epochs are no independent trials, so the
    case is the unit: the rates are compared as independent samples of scores
    (``compare_scores_unpaired``: Mann–Whitney U, or Welch's t past 10 levels; Welch's CI),
    ``n_a`` / ``n_b`` the cases."""
    c = compare_scores_unpaired(metric, a_rates, b_rates, min_effect=min_effect)
    return replace(c, kind="pass_unpaired", note=_join(
        f"{runs[0]:,} and {runs[1]:,} results of {len(a_rates):,} and {len(b_rates):,} test "
        f"cases: {REPEATED_CASES_NOTE}, since repeats of a case are no independent trials",
        c.note))


# --- several metrics or slices ---------------------------------------------------------------

_BH_NOTE = "not significant after Benjamini–Hochberg"


def apply_bh(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons with ``p_adjusted`` set by Benjamini–Hochberg over every comparison that
    has a p-value (insufficient data is returned unchanged). The verdict is then decided on
    ``p_adjusted``: a regression or improvement whose raw p-value was below 0.05 and whose
    adjusted one is not becomes "no significant change", with a note naming Benjamini–Hochberg
    (only then: a change that was not significant before the adjustment keeps its own note).
    ``p_value`` keeps the raw p-value and the verdict is re-derived from the raw fields, so
    applying it twice gives the same results."""
    tested = [i for i, c in enumerate(comparisons) if c.p_value is not None]
    adjusted = benjamini_hochberg([comparisons[i].p_value for i in tested])
    out = list(comparisons)
    for i, p_adj in zip(tested, adjusted):
        c = comparisons[i]
        unadjusted = _verdict(c.difference, c.ci_low, c.ci_high, c.min_effect, c.p_value)
        verdict = _verdict(c.difference, c.ci_low, c.ci_high, c.min_effect, p_adj)
        # Drop the note of an earlier apply_bh: the family, and so p_adjusted, may differ now.
        kept = [part for part in (c.note or "").split("; ") if not part.startswith(_BH_NOTE)]
        note = _join(*kept)
        if verdict != unadjusted:  # (the same fields but p: BH moved it across 0.05)
            note = _join(note, f"{_BH_NOTE} over {len(tested)} comparisons (p {c.p_value:.3g}, "
                               f"adjusted {p_adj:.3g})")
        out[i] = replace(c, p_adjusted=p_adj, verdict=verdict, note=note)
    return out
