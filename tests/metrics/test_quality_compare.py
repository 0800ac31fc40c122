"""Quality's comparison of two versions: when runs are paired and when they are independent
samples, what the caption says about it, and sentences that say why a change whose CI clears 0
gets no verdict.

Found in review: the caption said pass rates are paired "where the versions share 30 or more
[cases], else as independent samples", but any shared case forced the paired path: two runs of
200 cases with 10 in common (90% → 50%) read "0.0% → 100.0%: too few pairs to say", the rates of
the 10 common cases alone. And 4 fixes and no regression in 100 cases read "+4.0 points (95% CI
+1.0 to +8.0): no significant change (p = 0.12)", with a note blaming Benjamini–Hochberg, which
had changed nothing.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from scipy import stats

from lib import schema
from lib.filters import Filters
from lib.metric_settings import MetricSettings, load_metric_settings
from lib.metrics import quality
from lib.stats.compare import apply_bh, compare_pass_paired
from tests.conftest import T0

WINDOW = Filters.between(T0 - timedelta(hours=1), T0 + timedelta(hours=1))


def _evals(rows: list[dict]) -> pa.Table:
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema.EVALS}
    return schema.conform(pa.table({k: pa.array(v, schema.EVALS.field(k).type)
                                    for k, v in cols.items()}), schema.EVALS)


def _run(version: str, cases: range, passes: int) -> list[dict]:
    """A test run of ``cases`` that passes the first ``passes`` of them."""
    return [{"eval_id": f"{version}-{c}", "run_id": version, "ts": T0, "source": "offline",
             "dataset": "qa", "case_id": f"c{c}", "epoch": 0, "version": version,
             "metric": "correct", "passed": j < passes} for j, c in enumerate(cases)]


def _compare(lake, engine, *runs):
    lake.append({"evals": _evals([r for run in runs for r in run])}, source="t")
    engine.refresh(force=True)
    return quality.compare_versions(engine, WINDOW, "offline", "v1", "v2")


def _wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


def test_runs_with_few_cases_in_common_are_independent_samples_of_all_their_cases(lake,
                                                                                   engine):
    # v1 ran c0-c39 and passed 36; v2 ran c30-c69 and passed 20: 10 cases in common
    cmp = _compare(lake, engine, _run("v1", range(0, 40), 36), _run("v2", range(30, 70), 20))
    row = cmp.row(0, named=True)
    assert (row["kind"], row["n_a"], row["n_b"]) == ("pass_unpaired", 40, 40)
    assert row["shared"] == 10
    assert (row["a_value"], row["b_value"]) == (0.9, 0.5)  # all of each run's cases
    assert row["difference"] == pytest.approx(-0.4, abs=1e-15)
    assert row["regressions"] is None and row["fixes"] is None
    # pooled two-proportion z by hand, and its p from scipy's chi-square on the 2×2 table
    # (without Yates' correction, chi² = z²)
    z = (20 / 40 - 36 / 40) / math.sqrt(56 / 80 * 24 / 80 * (1 / 40 + 1 / 40))
    chi2, p, _, _ = stats.chi2_contingency([[36, 4], [20, 20]], correction=False)
    assert chi2 == pytest.approx(z * z, rel=1e-12)
    assert row["p_value"] == pytest.approx(p, rel=1e-9)
    assert row["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-12)
    # Newcombe's interval of 20/40 − 36/40 from scipy's Wilson intervals, squared and added
    lb, ub = _wilson(20, 40)
    la, ua = _wilson(36, 40)
    low = -0.4 - math.sqrt((0.5 - lb) ** 2 + (ua - 0.9) ** 2)
    high = -0.4 + math.sqrt((ub - 0.5) ** 2 + (0.9 - la) ** 2)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=1e-12)
    assert row["verdict"] == "regression" and row["test"] == "two-proportion z"
    assert row["note"].startswith("10 test cases in common, fewer than 30 to pair on")
    assert quality.comparison_sentence(row, "v1", "v2") == (
        f"correct: 90.0% → 50.0%, −40.0 points (95% CI −{-low * 100:.1f} to "
        f"−{-high * 100:.1f}): a regression of v2 against v1 (two-proportion z, p < 0.001).")
    assert quality.comparison_caption(cmp).endswith(
        " Here: correct: independent samples of 40 and 40 evals (10 test cases in common, too "
        "few to pair).")


@pytest.mark.parametrize("shared,kind,n", [(29, "pass_unpaired", 60), (30, "pass_paired", 30)])
def test_thirty_cases_in_common_are_paired_twenty_nine_are_not(lake, engine, shared, kind, n):
    # two runs of 60 cases: v1 passes 50, v2 passes 40 (of its own)
    cmp = _compare(lake, engine, _run("v1", range(0, 60), 50),
                   _run("v2", range(60 - shared, 120 - shared), 40))
    row = cmp.row(0, named=True)
    assert (row["kind"], row["n_a"], row["n_b"]) == (kind, n, n)
    assert row["shared"] == shared
    if kind == "pass_unpaired":
        assert (row["a_value"], row["b_value"]) == (50 / 60, 40 / 60)
        assert quality.comparison_caption(cmp).endswith(
            "correct: independent samples of 60 and 60 evals (29 test cases in common, too few "
            "to pair).")
    else:
        # the 30 cases in common: v1's c30-c59 (it passed c30-c49), v2's first 30 (all passed)
        assert (row["a_value"], row["b_value"], row["regressions"], row["fixes"]) == (
            20 / 30, 1.0, 0, 10)
        assert quality.comparison_caption(cmp).endswith(
            " Here: correct: paired on 30 test cases in common.")


def test_the_caption_states_the_rule_the_code_follows():
    caption = quality.comparison_caption(_empty_comparison())
    assert "where the versions share 30 or more" in caption
    assert "bootstrap" not in caption  # the paired CI is Newcombe's score interval now
    assert "Newcombe's score CI for paired data" in caption
    assert "all their cases, as independent samples" in caption
    assert "Here:" not in caption  # nothing compared, nothing to list


def _empty_comparison() -> pl.DataFrame:
    return pl.DataFrame(schema={"metric": pl.String, "kind": pl.String, "n_a": pl.Int64,
                                "n_b": pl.Int64, "shared": pl.Int64, "test": pl.String})


# --- sentences that say why a CI clear of 0 is no verdict --------------------------------------


ROW = {"metric": "correctness", "kind": "pass_paired", "a_value": 0.95, "b_value": 1.0,
       "difference": 0.05, "ci_low": 0.0033, "ci_high": 0.1117, "test": "McNemar exact (paired)",
       "p_value": 0.0625, "p_adjusted": 0.0625, "verdict": "no significant change"}


def test_the_review_case_reads_as_no_change_with_an_interval_that_agrees():
    # 4 fixes, no regression in 100 cases, one metric: McNemar exact p = 0.125; the interval
    # read "+1.0 to +8.0" (a bootstrap) beside "no significant change"
    (c,) = apply_bh([compare_pass_paired("correctness", [False] * 4 + [True] * 96, [True] * 100)])
    row = {**c.to_dict(), "test": quality.TESTS_SHOWN[c.test]}
    assert quality.comparison_sentence(row, "v1", "v2") == (
        "correctness: 96.0% → 100.0%, +4.0 points (95% CI −0.4 to +9.8): no significant change "
        "(McNemar exact (paired), p = 0.12).")


def test_a_ci_clear_of_zero_and_a_test_that_does_not_reject():
    assert quality.comparison_sentence(ROW, "v1", "v2") == (
        "correctness: 95.0% → 100.0%, +5.0 points (95% CI +0.3 to +11.2): no significant change "
        "(the CI excludes 0 but the test does not reject: McNemar exact (paired), p = 0.062).")


def test_benjamini_hochberg_is_named_when_it_took_the_verdict_away():
    row = {**ROW, "a_value": 0.7, "b_value": 0.75, "ci_low": 0.004, "ci_high": 0.096,
           "p_value": 0.0357, "p_adjusted": 0.178}
    assert quality.comparison_sentence(row, "v1", "v2") == (
        "correctness: 70.0% → 75.0%, +5.0 points (95% CI +0.4 to +9.6): no significant change "
        "after Benjamini–Hochberg over the metrics (McNemar exact (paired), p = 0.036, adjusted "
        "0.18).")


def test_a_significant_test_with_a_ci_that_keeps_zero():
    row = {**ROW, "kind": "pass_unpaired", "a_value": 0.0, "b_value": 4 / 30,
           "difference": 4 / 30, "ci_low": -0.0057, "ci_high": 0.2968,
           "test": "two-proportion z", "p_value": 0.0384, "p_adjusted": 0.0384}
    assert quality.comparison_sentence(row, "v1", "v2") == (
        "correctness: 0.0% → 13.3%, +13.3 points (95% CI −0.6 to +29.7): no significant change "
        "(p below 0.05 but the CI includes 0: two-proportion z, p = 0.038).")


def test_a_significant_change_below_the_minimum_effect_says_so(lake, engine):
    # 2,000 cases, 30 regressions and 10 fixes: −1 point, McNemar p 0.002 and a CI clear of 0,
    # but under the 2-point minimum effect. The sentence read "no significant change (McNemar
    # exact (paired), p = 0.0022)" beside that CI, why unsaid (review).
    v1 = _run("v1", range(2000), 1900)
    v2 = [{**r, "eval_id": f"v2-{i}", "run_id": "v2", "version": "v2",
           "passed": r["passed"] != (i < 30 or 1900 <= i < 1910)} for i, r in enumerate(v1)]
    row = _compare(lake, engine, v1, v2).row(0, named=True)
    assert (row["regressions"], row["fixes"], row["verdict"]) == (
        30, 10, "no significant change")
    assert row["p_value"] == pytest.approx(stats.binomtest(10, 40).pvalue, rel=1e-12)
    assert row["ci_high"] < 0 and row["min_effect"] == 0.02
    assert quality.comparison_sentence(row, "v1", "v2").endswith(
        ": a change smaller than the minimum effect of 2 points, too small to call "
        "(McNemar exact (paired), p = 0.0022).")


# --- epochs: a case run several times is one pair, not several ---------------------------------


def _epochs(version: str, cases: int, epochs: int, fails) -> list[dict]:
    """A test run of ``cases`` cases, each run in ``epochs`` epochs (1..epochs); ``fails(case,
    epoch)`` says which fail."""
    return [{"eval_id": f"{version}-{c}-{e}", "run_id": version, "ts": T0, "source": "offline",
             "dataset": "qa", "case_id": f"c{c}", "epoch": e, "version": version,
             "metric": "correct", "passed": not fails(c, e)}
            for c in range(cases) for e in range(1, epochs + 1)]


def test_ten_cases_of_five_epochs_are_ten_pairs_not_fifty(lake, engine):
    # Found in review: B fails 3 of 10 cases, in each of their 5 epochs. The 50 case-epochs were
    # taken for 50 independent pairs: "a regression (McNemar exact, p < 0.001), paired on 50
    # test cases in common"; 3 bad cases of 10 are p = 0.25 by McNemar on the cases, and 10 are
    # under the 30 pairs a verdict needs.
    cmp = _compare(lake, engine, _epochs("v1", 10, 5, lambda c, e: False),
                   _epochs("v2", 10, 5, lambda c, e: c < 3))
    row = cmp.row(0, named=True)
    assert (row["kind"], row["n_a"], row["n_b"], row["shared"]) == ("pass_paired", 10, 10, 10)
    assert row["verdict"] == "insufficient data"
    assert (row["a_value"], row["b_value"]) == (1.0, 0.7)
    assert (row["regressions"], row["fixes"]) == (15, 0)  # (the epochs, for people)
    assert quality.comparison_caption(cmp).endswith("correct: paired on 10 test cases in common.")


def test_cases_of_several_epochs_are_compared_on_their_pass_rates(lake, engine):
    # 40 cases of 3 epochs: B fails c0-c11 every time and c12-c19 in epoch 1; per case, B − A
    # is −1 (12 cases), −1/3 (8) and 0 (20)
    cmp = _compare(lake, engine, _epochs("v1", 40, 3, lambda c, e: False),
                   _epochs("v2", 40, 3, lambda c, e: c < 12 or (c < 20 and e == 1)))
    row = cmp.row(0, named=True)
    # (in the cases' order, c0, c1, c10, …: the bootstrap resamples them by position)
    d = np.array([-1.0 if c < 12 else -1 / 3 if c < 20 else 0.0
                  for c in sorted(range(40), key=lambda c: f"c{c}")])
    assert (row["kind"], row["n_a"], row["shared"]) == ("pass_paired", 40, 40)
    assert row["difference"] == pytest.approx(d.mean(), rel=1e-12)
    assert row["b_value"] == pytest.approx(1 + d.mean(), rel=1e-12)
    # Wilcoxon signed-rank on the per-case changes (zeros dropped, ties: normal approximation)
    w = stats.wilcoxon(d, zero_method="wilcox", correction=False, method="approx")
    assert row["test"] == "Wilcoxon signed-rank (paired)"
    assert row["p_value"] == pytest.approx(w.pvalue, rel=1e-9)
    # the percentile bootstrap of the cases (10,000 resamples, seed 0), by hand
    rng = np.random.default_rng(0)
    means = d[rng.integers(0, 40, size=(10_000, 40))].mean(axis=1)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        tuple(np.percentile(means, [2.5, 97.5])), rel=1e-12)
    assert row["verdict"] == "regression"
    assert row["note"].startswith("120 paired epochs of 40 test cases")


def test_scores_of_several_epochs_are_compared_on_each_case_mean(lake, engine):
    # 40 cases of 3 epochs, scores only: B scores c0-c14 lower by 0.25 in every epoch
    def run(version, drop):
        return [{"eval_id": f"{version}-{c}-{e}", "run_id": version, "ts": T0,
                 "source": "offline", "dataset": "qa", "case_id": f"c{c}", "epoch": e,
                 "version": version, "metric": "sim",
                 "score": 0.5 + 0.125 * e - (0.25 if drop and c < 15 else 0.0)}
                for c in range(40) for e in (1, 2, 3)]
    row = _compare(lake, engine, run("v1", False), run("v2", True)).row(0, named=True)
    assert (row["kind"], row["n_a"], row["n_b"], row["shared"]) == ("score_paired", 40, 40, 40)
    d = np.array([-0.25] * 15 + [0.0] * 25)
    assert row["difference"] == pytest.approx(d.mean(), abs=1e-15)
    w = stats.wilcoxon(d, zero_method="wilcox", correction=False, method="approx")
    assert row["p_value"] == pytest.approx(w.pvalue, rel=1e-9)


def test_runs_without_cases_in_common_count_a_case_of_several_epochs_once(lake, engine):
    # Found in review: two runs of 40 cases (none in common) of 5 epochs each, the same result
    # in every epoch, v1 passing 32 cases and v2 28: "a regression (two-proportion z,
    # p = 0.021)" on 200 and 200 "independent" results, where the cases say p ≈ 0.3.
    def run(version, first, passing):
        return [{"eval_id": f"{version}-{j}-{e}", "run_id": version, "ts": T0,
                 "source": "offline", "dataset": "qa", "case_id": f"c{first + j}", "epoch": e,
                 "version": version, "metric": "correct", "passed": j < passing}
                for j in range(40) for e in range(1, 6)]
    cmp = _compare(lake, engine, run("v1", 0, 32), run("v2", 100, 28))
    row = cmp.row(0, named=True)
    assert (row["kind"], row["n_a"], row["n_b"], row["shared"]) == ("pass_unpaired", 40, 40, 0)
    assert (row["a_value"], row["b_value"]) == (0.8, 0.7)
    a, b = [1.0] * 32 + [0.0] * 8, [1.0] * 28 + [0.0] * 12
    u = stats.mannwhitneyu(b, a, alternative="two-sided")
    assert row["test"] == "Mann–Whitney U" and row["p_value"] == pytest.approx(u.pvalue, rel=1e-9)
    welch = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((welch.low, welch.high), rel=1e-9)
    assert row["verdict"] == "no significant change"
    assert quality.comparison_caption(cmp).endswith(
        "correct: independent samples of 40 and 40 test cases.")


def test_scores_without_cases_in_common_count_a_case_of_several_epochs_once(lake, engine):
    def run(version, first, shift):
        return [{"eval_id": f"{version}-{j}-{e}", "run_id": version, "ts": T0,
                 "source": "offline", "dataset": "qa", "case_id": f"c{first + j}", "epoch": e,
                 "version": version, "metric": "sim", "score": j / 40 + e / 100 + shift}
                for j in range(40) for e in (1, 2, 3)]
    row = _compare(lake, engine, run("v1", 0, 0.0), run("v2", 100, -0.05)).row(0, named=True)
    means_a = [j / 40 + 0.02 for j in range(40)]
    means_b = [m - 0.05 for m in means_a]
    welch = stats.ttest_ind(means_b, means_a, equal_var=False)
    assert (row["kind"], row["n_a"], row["n_b"]) == ("score_unpaired", 40, 40)
    assert row["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)


def _scored(version: str, metric: str, rise: float) -> list[dict]:
    """40 cases scored once on ``metric``: 0.1 each, ``rise`` more on c0-c19."""
    return [{"eval_id": f"{version}-{metric}-{c}", "run_id": version, "ts": T0,
             "source": "offline", "dataset": "qa", "case_id": f"c{c}", "epoch": 0,
             "version": version, "metric": metric,
             "score": 0.1 + (rise if c < 20 else 0.0) + 0.001 * c} for c in range(40)]


def test_a_score_better_lower_is_improved_by_its_fall(lake, engine, tmp_path):
    # toxicity falls by 0.3 on half the cases, helpfulness rises by 0.3: both get better. Without
    # a direction the fall of toxicity read "a regression" (and `compare` failed a CI gate).
    (tmp_path / "metrics.yaml").write_text(
        "metrics:\n  toxicity:\n    better: lower\n  helpfulness:\n    min_effect: 0.5\n")
    settings = load_metric_settings(tmp_path / "metrics.yaml")
    lake.append({"evals": _evals(_scored("v1", "toxicity", 0.3) + _scored("v2", "toxicity", 0.0)
                                 + _scored("v1", "helpfulness", 0.0)
                                 + _scored("v2", "helpfulness", 0.3))}, source="t")
    engine.refresh(force=True)
    plain = {r["metric"]: r for r in quality.compare_versions(
        engine, WINDOW, "offline", "v1", "v2").iter_rows(named=True)}
    assert plain["toxicity"]["verdict"] == "regression"  # higher taken as better by default
    assert plain["helpfulness"]["verdict"] == "improvement"
    set_ = {r["metric"]: r for r in quality.compare_versions(
        engine, WINDOW, "offline", "v1", "v2", settings=settings).iter_rows(named=True)}
    tox, helpful = set_["toxicity"], set_["helpfulness"]
    assert tox["verdict"] == "improvement" and "lower is better" in tox["note"]
    # the numbers stay B − A: a fall of 0.3 on 20 of 40 cases
    assert tox["difference"] == pytest.approx(-0.15) == plain["toxicity"]["difference"]
    assert (tox["ci_low"], tox["p_value"]) == (plain["toxicity"]["ci_low"],
                                               plain["toxicity"]["p_value"])
    assert "improvement of v2 on v1" in quality.comparison_sentence(tox, "v1", "v2")
    # helpfulness' own minimum effect, 0.5: its rise of 0.15 is too small to call
    assert (helpful["min_effect"], helpful["verdict"]) == (0.5, "no significant change")


def test_metrics_settings_are_read_as_written_and_refused_when_wrong(tmp_path):
    path = tmp_path / "metrics.yaml"
    assert load_metric_settings(tmp_path / "none.yaml") == MetricSettings()
    path.write_text("metrics:\n  on:\n    better: lower\n  f1:\n    min_effect: 0.05\n")
    s = load_metric_settings(path)
    assert s.lower_is_better == {"on"}  # (YAML 1.1 reads a bare on as True)
    assert (s.min_effect("f1", 0.02), s.min_effect("other", 0.02)) == (0.05, 0.02)
    for bad, why in (("better: down", "better must be higher or lower"),
                     ("min_effect: -1", "min_effect must be a number >= 0"),
                     ("min_effect: nan", "min_effect must be a number >= 0"),
                     ("direction: lower", "unknown setting 'direction'")):
        path.write_text(f"metrics:\n  tox:\n    {bad}\n")
        with pytest.raises(ValueError, match=f"metrics.tox is not valid: {why}"):
            load_metric_settings(path)
    path.write_text("metrics: [tox]\n")
    with pytest.raises(ValueError, match="a mapping of metric names"):
        load_metric_settings(path)


def test_a_version_s_interval_counts_a_case_of_several_epochs_once(lake, engine):
    # 10 cases of 5 epochs, 8 cases passed in every epoch: 40 of 50 evals, but 10 independent
    # questions. Counted as 50 trials, the interval was Wilson(40, 50), as narrow as 50 cases'.
    rows = [{"eval_id": f"v1-{c}-{e}", "run_id": "v1", "ts": T0, "source": "offline",
             "dataset": "qa", "case_id": f"c{c}", "epoch": e, "version": "v1",
             "metric": "correct", "passed": c < 8} for c in range(10) for e in range(5)]
    # and 30 online judgements without a case, 20 passed: each its own trial
    rows += [{"eval_id": f"j{i}", "run_id": "judge", "ts": T0, "source": "online",
              "version": "v1", "metric": "judge", "passed": i < 20} for i in range(30)]
    lake.append({"evals": _evals(rows)}, source="t")
    engine.refresh(force=True)
    byv = {r["metric"]: r for r in quality.evals_by_version(engine, WINDOW).iter_rows(
        named=True)}
    correct, judge = byv["correct"], byv["judge"]
    assert (correct["n"], correct["passed"], correct["units"]) == (50, 40, 10)
    assert correct["pass_rate"] == pytest.approx(0.8)
    assert (correct["pass_low"], correct["pass_high"]) == pytest.approx(_wilson(8, 10))
    assert (judge["units"], judge["pass_low"], judge["pass_high"]) == pytest.approx(
        (30, *_wilson(20, 30)))
    over_time = quality.evals_over_time(engine, WINDOW, "offline", seconds=86_400)
    assert over_time.select("units", "pass_low", "pass_high").row(0) == pytest.approx(
        (10, *_wilson(8, 10)))


def test_cases_a_version_errored_on_are_not_cases_in_common(lake, engine):
    """v2 errored on each of the 40 cases v1 ran (neither a pass nor a score): the note read
    "40 test cases in common, fewer than 30 to pair on" and the caption "40 test cases in
    common, too few to pair", of two runs with no result in common to pair."""
    errored = [{**r, "passed": None} for r in _run("v2", range(0, 40), 0)]
    for r in errored[30:]:  # (and 10 it scored, too few to pair on)
        r["passed"] = True
    cmp = _compare(lake, engine, _run("v1", range(0, 40), 20), errored)
    row = cmp.row(0, named=True)
    assert (row["kind"], row["n_a"], row["n_b"], row["b_unscored"]) == (
        "pass_unpaired", 40, 10, 30)
    assert row["shared"] == 10
    assert "40 test cases" not in row["note"], row["note"]
    assert "10 test cases in common, fewer than 30 to pair on" in row["note"]
    assert "40 test cases" not in quality.comparison_caption(cmp)
