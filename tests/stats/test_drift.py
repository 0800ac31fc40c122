"""Drift statistics against design.md §5's reference values and against computations written
out here independently of the module (by formula, by brute force, or with a different scipy
routine)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from lib.stats import (
    STAT_TESTS,
    DriftResult,
    apply_bh,
    benjamini_hochberg,
    categorical_drift,
    choose_test,
    classify_psi,
    numeric_drift,
    numeric_drift_from_summary,
    psi,
    psi_bin_counts,
    psi_bin_edges,
    psi_bin_edges_levels,
    psi_no_drift_p99,
    quantile_levels,
    two_proportion_z,
)
from lib.stats import drift as psi_drift
from lib.stats.drift import psi_no_drift_p99_formula, psi_no_drift_p99_simulated

CHI2_99_9DF = 21.665994333461924  # χ²₀.₉₉ with 9 degrees of freedom (printed tables: 21.666)
REQUIRED_KEYS = {"column", "kind", "n_ref", "n_cur", "method", "statistic", "threshold",
                 "p_value", "p_adjusted", "status"}


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _bins_by_definition(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The documented rule spelled out: a value's bin is the number of edges strictly below."""
    bins = [sum(1 for e in edges if e < v) for v in values]
    return np.bincount(bins, minlength=len(edges) + 1)


def _summary_args(ref: np.ndarray, cur: np.ndarray, k: int = 1000) -> dict:
    """What the SQL would send, computed with numpy (quantile_cont = numpy's linear method)."""
    levels = quantile_levels(k)
    edges = np.quantile(ref, psi_bin_edges_levels())
    return {
        "n_ref": ref.size, "n_cur": cur.size, "ref_std": float(np.std(ref)),
        "ref_quantiles": np.quantile(ref, levels), "cur_quantiles": np.quantile(cur, levels),
        "ref_bin_counts": _bins_by_definition(ref, edges),
        "cur_bin_counts": _bins_by_definition(cur, edges),
    }


# --- reference values of design.md §5 --------------------------------------------------------


def test_psi_reference_value():
    assert psi([0.25] * 4, [0.10, 0.20, 0.30, 0.40]) == pytest.approx(0.228217409573, abs=1e-12)


def test_psi_takes_counts_or_shares_and_any_number_of_bins():
    assert psi([250] * 4, [100, 200, 300, 400]) == pytest.approx(0.228217409573, abs=1e-12)
    r, c = np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.4, 0.2])
    by_hand = sum((ci - ri) * math.log(ci / ri) for ri, ci in zip(r, c))
    assert psi(r * 70, c * 30) == pytest.approx(by_hand, abs=1e-12)


def test_psi_replaces_empty_shares_with_eps():
    # reference bin 0 empty: its share becomes 1e-4; the other shares are left as they are.
    r, c = [0.0, 0.5, 0.5], [0.1, 0.45, 0.45]
    by_hand = ((0.1 - 1e-4) * math.log(0.1 / 1e-4)
               + 2 * (0.45 - 0.5) * math.log(0.45 / 0.5))
    assert psi(r, c) == pytest.approx(by_hand, abs=1e-12)
    assert psi([0, 1, 1], [0, 1, 1]) == 0.0  # empty on both sides contributes nothing


@pytest.mark.parametrize("r,c", [
    ([1, 2], [1, 2, 3]), ([], []), ([-1, 2], [1, 2]), ([0, 0], [1, 1]),
])
def test_psi_rejects_bad_bins(r, c):
    with pytest.raises(ValueError):
        psi(r, c)


def test_jensen_shannon_reference_value():
    ref = {"a": 2500, "b": 2500, "c": 2500, "d": 2500}
    cur = {"a": 1000, "b": 2000, "c": 3000, "d": 4000}
    res = categorical_drift("language", ref, cur)
    assert res.method == "jensenshannon"
    assert res.statistic == pytest.approx(0.200503322531, abs=1e-12)
    # by the definition: sqrt of the mean KL divergence (bits) of each side to the mixture
    p, q = np.array([0.25] * 4), np.array([0.1, 0.2, 0.3, 0.4])
    m = (p + q) / 2
    js = math.sqrt(0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m)))
    assert res.statistic == pytest.approx(js, abs=1e-12)
    assert res.p_value is None and res.threshold == 0.1 and res.status == "drift"


def test_ks_reference_value():
    res = numeric_drift("latency_ms", np.linspace(0, 1, 200), np.linspace(0.1, 1.1, 200))
    assert res.method == "ks"
    assert res.statistic == pytest.approx(0.1, abs=1e-12)
    assert res.p_value == pytest.approx(0.270474383280, abs=1e-12)
    assert res.status == "no drift"


def test_bh_reference_values():
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.060, 0.074, 0.205, 0.212, 0.216]
    expected = [0.01, 0.04, 0.084, 0.084, 0.084, 0.1, 0.105714, 0.216, 0.216, 0.216]
    assert [round(x, 6) for x in benjamini_hochberg(p)] == expected


def test_bh_matches_its_definition_and_scipy_in_any_order():
    p = _rng(3).uniform(0, 0.2, size=25)
    p[4] = p[9]  # a tie
    m = len(p)
    ranked = sorted(p)
    # brute force: p̃ of the i-th smallest = min over j >= i of m/j · p_(j), capped at 1
    brute = {i: min(1.0, min(m / j * ranked[j - 1] for j in range(i, m + 1)))
             for i in range(1, m + 1)}
    got = benjamini_hochberg(list(p))
    for x, adj in zip(p, got):
        rank = ranked.index(x) + 1  # first rank of x; a tie has equal adjusted values
        assert adj == pytest.approx(brute[rank], abs=1e-15)
    np.testing.assert_allclose(got, stats.false_discovery_control(p, method="bh"), atol=1e-15)


def test_bh_edge_cases():
    assert benjamini_hochberg([]) == []
    assert benjamini_hochberg([0.03]) == [0.03]
    assert benjamini_hochberg([0.9, 0.95]) == [0.95, 0.95]
    with pytest.raises(ValueError):
        benjamini_hochberg([0.1, 1.5])
    with pytest.raises(ValueError):
        benjamini_hochberg([float("nan")])


def test_two_proportion_z_reference_value():
    z, p = two_proportion_z(780, 1000, 810, 1000)
    assert z == pytest.approx(1.661673760721, abs=1e-12)
    assert p == pytest.approx(0.096578205004, abs=1e-12)
    # by hand: pooled standard error, two-sided normal tail via erfc
    pooled = (780 + 810) / 2000
    z_hand = (0.81 - 0.78) / math.sqrt(pooled * (1 - pooled) * (2 / 1000))
    assert z == pytest.approx(z_hand, abs=1e-12)
    assert p == pytest.approx(math.erfc(z_hand / math.sqrt(2)), abs=1e-12)


@pytest.mark.parametrize("names", [("pass", "fail"), ("fail", "pass"), ("a", "b")])
def test_categorical_two_values_use_z_whatever_the_order(names):
    yes, no = names
    res = categorical_drift("passed", {yes: 780, no: 220}, {yes: 810, no: 190})
    assert res.method == "z"
    assert res.statistic == pytest.approx(1.661673760721, abs=1e-12)
    assert res.p_value == pytest.approx(0.096578205004, abs=1e-12)
    assert res.status == "no drift"


def test_chi_square_p_equals_the_contingency_table_test():
    ref = {"stop": 400, "length": 250, "tool_calls": 150, "content_filter": 20}
    cur = {"stop": 330, "length": 300, "tool_calls": 170, "content_filter": 40}
    res = categorical_drift("finish_reason", ref, cur)
    assert res.method == "chisquare"
    table = np.array([[ref[k] for k in ref], [cur[k] for k in ref]], dtype=float)
    # by hand: expected = row total × column total / grand total, dof = (2 − 1)(k − 1)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    assert res.statistic == pytest.approx(chi2, rel=1e-12)
    assert res.p_value == pytest.approx(stats.chi2.sf(chi2, 3), rel=1e-10)
    assert res.p_value == pytest.approx(stats.chi2_contingency(table).pvalue, rel=1e-10)
    assert res.status == ("drift" if res.p_value < 0.05 else "no drift")


# --- the selection rule ----------------------------------------------------------------------


# The rule is on the smaller side (min(n_ref, n_cur)), not on n_ref alone as design §5's table
# says: a distance only when both sides have over 1000 rows (lib/stats/stattests.py says why).
@pytest.mark.parametrize("kind,n_ref,n_cur,n_categories,name", [
    ("numeric", 1000, 1001, None, "ks"),
    ("numeric", 1001, 1001, None, "wasserstein"),
    ("numeric", 5000, 1000, None, "ks"),
    ("numeric", 5000, 30, None, "ks"),
    ("numeric", 1000, 5000, None, "ks"),
    ("categorical", 1000, 1001, 3, "chisquare"),
    ("categorical", 1000, 1001, None, "chisquare"),
    ("categorical", 1000, 1001, 2, "z"),
    ("categorical", 1000, 1001, 1, "z"),
    ("categorical", 1001, 1001, 3, "jensenshannon"),
    ("categorical", 1001, 1001, 2, "jensenshannon"),
    ("categorical", 5000, 1000, 3, "chisquare"),
    ("categorical", 5000, 100, 2, "z"),
    ("categorical", 1000, 5000, 3, "chisquare"),
])
def test_choose_test_at_the_boundary(kind, n_ref, n_cur, n_categories, name):
    assert choose_test(kind, n_ref, n_cur, n_categories=n_categories).name == name


def test_choose_test_rejects_an_unknown_kind():
    with pytest.raises(ValueError):
        choose_test("text", 10, 10)


@pytest.mark.parametrize("n_ref,n_cur,method", [
    (1000, 1500, "ks"), (1001, 1001, "wasserstein"), (5000, 1000, "ks"), (5000, 100, "ks"),
])
def test_numeric_entry_point_follows_the_rule(n_ref, n_cur, method):
    rng = _rng()
    res = numeric_drift("tokens", rng.normal(size=n_ref), rng.normal(size=n_cur))
    assert res.method == method
    assert (res.p_value is None) == (method == "wasserstein")


@pytest.mark.parametrize("n_ref,n_cur,method", [
    (1000, 1200, "chisquare"), (1001, 1200, "jensenshannon"), (5000, 300, "chisquare"),
])
def test_categorical_entry_point_follows_the_rule(n_ref, n_cur, method):
    ref = {"a": n_ref - 600, "b": 300, "c": 300}
    cur = {"a": n_cur - 2 * (n_cur // 3), "b": n_cur // 3, "c": n_cur // 3}
    res = categorical_drift("model", ref, cur)
    assert (res.n_ref, res.n_cur, res.method) == (n_ref, n_cur, method)


# --- insufficient data -----------------------------------------------------------------------


@pytest.mark.parametrize("n_ref,n_cur", [(29, 30), (30, 29), (0, 500), (5000, 0)])
def test_fewer_than_30_rows_is_insufficient_never_no_drift(n_ref, n_cur):
    rng = _rng()
    ref, cur = rng.normal(size=n_ref), rng.normal(size=n_cur)
    results = [
        numeric_drift("x", ref, cur),
        numeric_drift_from_summary("x", n_ref, n_cur, None, None, None, None, None),
        categorical_drift("c", {"a": n_ref // 2, "b": n_ref - n_ref // 2},
                          {"a": n_cur // 2, "b": n_cur - n_cur // 2}),
    ]
    for res in results:
        assert res.status == "insufficient data"
        assert (res.n_ref, res.n_cur) == (n_ref, n_cur)
        assert res.statistic is None and res.p_value is None and res.psi is None
        assert res.note and "30" in res.note


def test_30_rows_on_each_side_is_enough():
    rng = _rng()
    assert numeric_drift("x", rng.normal(size=30), rng.normal(size=30)).status != \
        "insufficient data"
    assert categorical_drift("c", {"a": 15, "b": 15}, {"a": 10, "b": 20}).status != \
        "insufficient data"


def test_insufficient_data_is_not_touched_by_bh():
    res = numeric_drift("x", np.arange(29.0), np.arange(30.0))
    assert apply_bh([res]) == [res]


# --- also shown: unseen categories, largest change, PSI status --------------------------------


def test_unseen_categories_alert_just_over_one_percent():
    ref = {"en": 6000, "de": 4000}
    over = categorical_drift("language", ref, {"en": 5899, "de": 4000, "fr": 60, "ja": 41})
    assert over.unseen_share == pytest.approx(101 / 10000) and over.unseen_status == "alert"
    assert over.unseen_values == ("fr", "ja")  # most frequent first
    at = categorical_drift("language", ref, {"en": 5900, "de": 4000, "fr": 100})
    assert at.unseen_share == pytest.approx(0.01) and at.unseen_status == "ok"
    none = categorical_drift("language", ref, {"en": 6000, "de": 4000})
    assert none.unseen_share == 0 and none.unseen_status == "ok" and none.unseen_values == ()


def test_a_value_with_zero_reference_count_is_unseen():
    res = categorical_drift("x", {"a": 500, "b": 500, "c": 0}, {"a": 480, "b": 500, "c": 20})
    assert res.unseen_share == pytest.approx(0.02) and res.unseen_values == ("c",)


def test_largest_share_change():
    res = categorical_drift("model", {"gpt": 500, "claude": 300, "llama": 200},
                            {"gpt": 350, "claude": 450, "llama": 200})
    assert res.largest_change is not None
    # gpt and claude both moved 0.15; the tie goes to the first value in sorted order
    assert res.largest_change.value == "claude"
    assert res.largest_change.ref_share == pytest.approx(0.3)
    assert res.largest_change.cur_share == pytest.approx(0.45)


def test_psi_no_drift_p99_formula():
    assert psi_no_drift_p99_formula(1000, 500) == pytest.approx(
        (1 / 1000 + 1 / 500) * CHI2_99_9DF, rel=1e-12)
    assert psi_no_drift_p99_formula(100, 100, n_bins=4) == pytest.approx(
        0.02 * stats.chi2.ppf(0.99, 3), rel=1e-12)


@pytest.mark.parametrize("n_ref,n_cur", [(5000, 30), (30, 30), (50, 50), (1000, 500),
                                         (2000, 2000), (10000, 10000)])
def test_psi_no_drift_p99_is_the_formula_or_the_simulation_whichever_is_larger(n_ref, n_cur):
    formula = psi_no_drift_p99_formula(n_ref, n_cur)
    simulated = psi_no_drift_p99_simulated(n_ref, n_cur, [0.1] * 10)
    assert psi_no_drift_p99(n_ref, n_cur) == max(formula, simulated) >= formula
    if min(n_ref, n_cur) >= 500:  # large windows: the simulation agrees with the formula
        assert simulated == pytest.approx(formula, rel=0.1)


def test_psi_no_drift_simulation_is_seeded_and_takes_counts_or_shares():
    shares = [0.7, 0, 0, 0, 0, 0, 0, 0.1, 0.1, 0.1]  # tied deciles: bins empty on both sides
    first = psi_no_drift_p99_simulated(40, 60, shares)
    psi_drift._simulated_p99.cache_clear()
    assert psi_no_drift_p99_simulated(40, 60, shares) == first
    assert psi_no_drift_p99_simulated(40, 60, [70, 0, 0, 0, 0, 0, 0, 10, 10, 10]) == first
    with pytest.raises(ValueError):
        psi_no_drift_p99(40, 60, ref_shares=[0.5, 0.5])  # 2 shares for 10 bins
    with pytest.raises(ValueError):
        psi_no_drift_p99_simulated(40, 60, [-0.1, 1.1])


def test_psi_no_drift_p99_is_exceeded_about_1pct_of_the_time_without_drift():
    rng = _rng(7)
    n, reps = 2000, 1000
    p99 = psi_no_drift_p99(n, n)
    above = 0
    for _ in range(reps):
        ref, cur = rng.normal(size=n), rng.normal(size=n)
        edges = psi_bin_edges(ref)
        above += psi(psi_bin_counts(ref, edges), psi_bin_counts(cur, edges)) > p99
    assert 0.001 <= above / reps <= 0.03


@pytest.mark.parametrize("value,n,status", [
    (0.30, 100, "ok"),     # p99 = 0.50 (simulated; the formula's 0.433 is low at 100 rows)
    (0.60, 100, "alert"),
    (0.20, 200, "ok"),     # p99 = 0.235 (formula 0.217)
    (0.12, 300, "ok"),     # p99 = 0.148 (formula 0.144)
    (0.20, 300, "warn"),
    (0.05, 10000, "ok"),   # p99 = 0.0044: above the noise, but under the 0.1 cut-off
    (0.10, 10000, "warn"),
    (0.2499, 10000, "warn"),
    (0.25, 10000, "alert"),
])
def test_psi_is_graded_only_above_the_no_drift_p99(value, n, status):
    assert classify_psi(value, n, n) == status


def test_psi_status_in_a_result_respects_the_noise_level():
    # 40 rows a side, a clear shift: PSI is well over 0.25 but so is the noise level (1.08)
    rng = _rng(1)
    res = numeric_drift("x", rng.normal(size=40), rng.normal(0.6, 1, size=40))
    assert 0.25 < res.psi < res.psi_no_drift_p99
    assert res.psi_status == "ok"
    big = numeric_drift("x", rng.normal(size=800), rng.normal(1.0, 1, size=800))
    assert big.psi > big.psi_no_drift_p99 and big.psi_status == "alert"


# --- Wasserstein on large references ---------------------------------------------------------


def test_shifted_normal_drifts_by_wasserstein():
    rng = _rng()
    res = numeric_drift("latency_ms", rng.normal(0, 1, 5000), rng.normal(0.5, 1, 5000))
    assert res.method == "wasserstein" and res.p_value is None and res.threshold == 0.1
    # W1 between N(0,1) and N(0.5,1) is exactly the shift, 0.5; the reference std is ≈ 1
    assert res.statistic == pytest.approx(0.5, abs=0.05)
    assert res.status == "drift"


def test_unshifted_normal_does_not_drift():
    rng = _rng()
    res = numeric_drift("latency_ms", rng.normal(0, 1, 5000), rng.normal(0, 1, 5000))
    assert res.statistic < 0.05 and res.status == "no drift"


def test_wasserstein_is_divided_by_the_population_std():
    ref = np.tile([0.0, 1.0], 600)  # 1200 rows, population std exactly 0.5 (ddof 1: 0.50021)
    res = numeric_drift("score", ref, ref + 0.2)  # every value moved by 0.2: W1 = 0.2
    assert res.method == "wasserstein"
    assert res.statistic == pytest.approx(0.2 / 0.5, rel=1e-12)


def test_constant_reference_makes_any_change_drift():
    res = numeric_drift("retries", np.zeros(2000), np.r_[np.zeros(1990), np.ones(10)])
    assert res.statistic == math.inf and res.status == "drift" and res.note
    assert res.to_dict()["statistic"] is None  # strict JSON has no Infinity
    same = numeric_drift("retries", np.zeros(2000), np.zeros(1500))
    assert same.method == "wasserstein"
    assert same.statistic == 0 and same.status == "no drift"


def test_nan_and_inf_are_dropped_before_counting():
    rng = _rng()
    ref_finite, cur_finite = rng.normal(size=100), rng.normal(0.3, 1, size=50)
    res = numeric_drift("x", np.r_[ref_finite, [np.nan, np.inf]], np.r_[cur_finite, [-np.inf]])
    assert (res.n_ref, res.n_cur) == (100, 50)
    assert res.p_value == pytest.approx(stats.ks_2samp(ref_finite, cur_finite).pvalue,
                                        rel=1e-12)


# --- the summary path agrees with the sample path --------------------------------------------


def _pairs():
    rng = _rng(11)
    return {
        "normal shifted": (rng.normal(0, 1, 5000), rng.normal(0.5, 1, 5000)),
        "normal same": (rng.normal(0, 1, 5000), rng.normal(0, 1, 7000)),
        "lognormal latency": (rng.lognormal(6, 1, 20000), rng.lognormal(6.1, 1.1, 8000)),
        "lognormal same": (rng.lognormal(6, 1, 20000), rng.lognormal(6, 1, 8000)),
        "integer tokens (ties)": (rng.poisson(300, 5000).astype(float),
                                  rng.poisson(310, 3000).astype(float)),
        "many ties at zero": (np.r_[np.zeros(3000), rng.exponential(1, 2000)],
                              np.r_[np.zeros(1000), rng.exponential(1, 2000)]),
    }


@pytest.mark.parametrize("name", list(_pairs()))
def test_summary_path_agrees_with_the_sample_path(name):
    ref, cur = _pairs()[name]
    from_samples = numeric_drift("x", ref, cur)
    from_summary = numeric_drift_from_summary("x", **_summary_args(ref, cur))
    assert from_summary.method == from_samples.method == "wasserstein"
    exact_w = stats.wasserstein_distance(ref, cur)
    approx_w = from_summary.statistic * np.std(ref)
    # in the statistic's own units (reference stds) the quantile approximation is off by far
    # less than the 0.1 threshold; relative to W itself, by a few % at most
    assert abs(from_summary.statistic - from_samples.statistic) < 0.005
    assert approx_w == pytest.approx(exact_w, rel=0.08)
    assert from_summary.status == from_samples.status
    # the same bins give the same PSI, to the last bit
    assert from_summary.psi == from_samples.psi
    assert from_summary.psi_status == from_samples.psi_status


def test_summary_wasserstein_on_a_clean_shift_is_within_1pct():
    ref, cur = _pairs()["normal shifted"]
    res = numeric_drift_from_summary("x", **_summary_args(ref, cur))
    assert res.statistic * np.std(ref) == pytest.approx(stats.wasserstein_distance(ref, cur),
                                                        rel=0.01)


def test_sql_recipe_in_duckdb_agrees_with_the_sample_path():
    duckdb = pytest.importorskip("duckdb")
    rng = _rng(5)
    ref = rng.poisson(300, 4000).astype(float)  # integer values: ties on the edges
    cur = rng.poisson(320, 2500).astype(float)
    con = duckdb.connect()
    for name, values in (("ref", ref), ("cur", cur)):
        con.execute(f"CREATE TABLE {name} AS SELECT unnest($1::DOUBLE[]) AS x", [values.tolist()])
    levels = quantile_levels()
    n_ref, std, ref_q, edges = con.execute(
        "SELECT count(x), stddev_pop(x), quantile_cont(x, $1::DOUBLE[]), "
        "quantile_cont(x, $2::DOUBLE[]) FROM ref WHERE isfinite(x)",
        [levels, psi_bin_edges_levels()]).fetchone()
    n_cur, cur_q = con.execute("SELECT count(x), quantile_cont(x, $1::DOUBLE[]) FROM cur "
                               "WHERE isfinite(x)", [levels]).fetchone()
    bin_sql = " + ".join(f"(x > $1[{i}])::INT" for i in range(1, 10))

    def bins(table: str) -> list[int]:
        rows = dict(con.execute(f"SELECT {bin_sql} AS bin, count(*) FROM {table} "
                                "WHERE isfinite(x) GROUP BY bin", [edges]).fetchall())
        return [rows.get(i, 0) for i in range(10)]

    res = numeric_drift_from_summary("output_tokens", n_ref, n_cur, std, ref_q, cur_q,
                                     bins("ref"), bins("cur"))
    expected = numeric_drift("output_tokens", ref, cur)
    assert res.psi == expected.psi
    assert res.statistic == pytest.approx(expected.statistic, abs=0.005)
    assert res.status == expected.status == "drift"


@pytest.mark.parametrize("n_ref,n_cur", [(1000, 1000), (5000, 300), (300, 5000)])
def test_summary_path_needs_samples_when_the_test_is_ks(n_ref, n_cur):
    ref, cur = _rng().normal(size=n_ref), _rng(1).normal(size=n_cur)
    with pytest.raises(ValueError, match="numeric_drift"):
        numeric_drift_from_summary("x", **_summary_args(ref, cur))


@pytest.mark.parametrize("broken", [
    {"ref_bin_counts": [1] * 10},
    {"cur_bin_counts": [300] * 9},
    {"cur_quantiles": np.zeros(999)},
    {"ref_std": None},
])
def test_summary_path_rejects_inconsistent_inputs(broken):
    rng = _rng()
    args = _summary_args(rng.normal(size=3000), rng.normal(size=3000)) | broken
    with pytest.raises(ValueError):
        numeric_drift_from_summary("x", **args)


# --- the PSI bin rule and the levels SQL uses ------------------------------------------------


def test_psi_bin_rule_sends_ties_to_the_lower_bin():
    edges = np.array([1.0, 2.0, 2.0, 3.0])
    values = np.array([0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0])
    # number of edges strictly below: 0, 0, 1, 1, 3, 3, 4
    assert psi_bin_counts(values, edges).tolist() == [2, 2, 0, 2, 1]
    rng = _rng(2)
    data = rng.poisson(5, 3000).astype(float)
    edges = psi_bin_edges(data)
    assert psi_bin_counts(data, edges).tolist() == _bins_by_definition(data, edges).tolist()


def test_levels():
    assert psi_bin_edges_levels() == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert quantile_levels(4) == [0.125, 0.375, 0.625, 0.875]
    assert len(quantile_levels()) == 1000 and quantile_levels()[0] == 0.0005
    np.testing.assert_array_equal(psi_bin_edges(np.arange(1.0, 12.0)), np.arange(2.0, 11.0))
    with pytest.raises(ValueError):
        quantile_levels(0)


# --- Benjamini–Hochberg across columns -------------------------------------------------------


def _ks_result(column: str, p: float) -> DriftResult:
    return DriftResult(column=column, kind="numeric", n_ref=500, n_cur=500, method="ks",
                       statistic=0.1, threshold=0.05, p_value=p,
                       status="drift" if p < 0.05 else "no drift")


def test_apply_bh_decides_on_adjusted_p_and_keeps_the_raw_one():
    distance = numeric_drift("cost", _rng().normal(size=3000), _rng(1).normal(size=3000))
    results = [_ks_result("a", 0.01), _ks_result("b", 0.04), _ks_result("c", 0.045),
               distance]
    assert [r.status for r in results[:3]] == ["drift"] * 3
    adjusted = apply_bh(results)
    # BH over the three p-values: 0.03, 0.045, 0.045 → all still under 0.05
    assert [r.p_adjusted for r in adjusted[:3]] == pytest.approx([0.03, 0.045, 0.045])
    assert [r.p_value for r in adjusted[:3]] == [0.01, 0.04, 0.045]
    assert adjusted[3] == distance  # no p-value: untouched
    more = apply_bh(results[:3] + [_ks_result("d", 0.9), _ks_result("e", 0.8)])
    # five tests: 0.04·5/2 = 0.1 and 0.045·5/3 = 0.075 → no longer drift; 0.01·5 = 0.05 neither
    assert [r.status for r in more] == ["no drift"] * 5
    assert [r.p_value for r in more] == [0.01, 0.04, 0.045, 0.9, 0.8]


def test_apply_bh_twice_is_apply_bh_once():
    results = [_ks_result(c, p) for c, p in zip("abcd", [0.001, 0.02, 0.03, 0.5])]
    once = apply_bh(results)
    assert apply_bh(once) == once


# --- the registry ----------------------------------------------------------------------------


def _numeric(shift: float, n: int, seed: int = 0):
    rng = _rng(seed)
    return rng.normal(0, 1, n), rng.normal(shift, 1, n)


# One (drifted, not drifted) pair of inputs per registered test: a new test without a case here
# fails test_every_registered_test_has_a_case.
CASES = {
    "ks": (_numeric(1.0, 300), _numeric(0.0, 300)),
    "wasserstein": (_numeric(0.5, 2000), _numeric(0.0, 2000)),
    "chisquare": ((np.array([100, 100, 100.0]), np.array([50, 100, 150.0])),
                  (np.array([100, 100, 100.0]), np.array([98, 101, 101.0]))),
    "z": ((np.array([500, 500.0]), np.array([400, 600.0])),
          (np.array([500, 500.0]), np.array([505, 495.0]))),
    "jensenshannon": ((np.array([2500.0] * 4), np.array([1000, 2000, 3000, 4000.0])),
                      (np.array([2500.0] * 4), np.array([2500, 2500, 2600, 2400.0]))),
}


def test_every_registered_test_has_a_case():
    assert set(CASES) == set(STAT_TESTS)


@pytest.mark.parametrize("name", list(STAT_TESTS))
def test_registered_test_is_documented_and_separates_drift_from_none(name):
    test = STAT_TESTS[name]
    assert test.name == name and test.display_name and test.doc.strip()
    assert test.kind in ("numeric", "categorical")
    assert 0 < test.default_threshold < 1
    drifted, steady = CASES[name]
    for (ref, cur), expected in ((drifted, True), (steady, False)):
        outcome = test.compute(ref, cur)
        assert (outcome.p_value is not None) == test.has_p_value
        assert test.is_drift(outcome, test.default_threshold) is expected


def test_every_test_the_rule_can_choose_is_registered():
    chosen = {choose_test(kind, n, n, n_categories=k).name
              for kind in ("numeric", "categorical") for n in (30, 1000, 1001)
              for k in (1, 2, 3, None)}
    assert chosen == set(STAT_TESTS)


# --- the result ------------------------------------------------------------------------------


def test_result_is_frozen_and_serialises():
    res = categorical_drift("model", {"a": 600, "b": 400, "c": 100},
                            {"a": 500, "b": 450, "c": 120, "z": 30})
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.status = "no drift"  # type: ignore[misc]
    d = res.to_dict()
    assert REQUIRED_KEYS <= d.keys()
    assert d["largest_change"] == {"value": "a", "ref_share": pytest.approx(600 / 1100),
                                   "cur_share": pytest.approx(500 / 1100)}
    assert d["unseen_values"] == ["z"]
    assert d["psi"] is None  # numeric-only fields are empty for a categorical column
    num = numeric_drift("x", _rng().normal(size=100), _rng(1).normal(size=100)).to_dict()
    assert REQUIRED_KEYS <= num.keys() and num["psi_status"] in ("ok", "warn", "alert")
    assert num["largest_change"] is None and num["unseen_share"] is None
