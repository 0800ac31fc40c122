"""Quality's comparison of two versions: sentences that say why a change whose CI clears 0 gets
no verdict.

Found in review: 4 fixes and no regression in 100 cases read "+4.0 points (95% CI +1.0 to
+8.0): no significant change (p = 0.12)" on the page, the interval and the test disagreeing,
with a note blaming Benjamini–Hochberg, which had changed nothing.
"""

from __future__ import annotations

from lib.metrics import quality
from lib.stats.compare import apply_bh, compare_pass_paired

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
