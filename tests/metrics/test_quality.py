"""Quality metrics: Wilson intervals against scipy, eval rates by bucket and version, feedback,
guardrails, finish reasons, error types, and the request-filter join for evals."""

from __future__ import annotations

import json
from datetime import timedelta

import polars as pl
import pyarrow as pa
import pytest
from scipy.stats import binomtest, mannwhitneyu

from lib import schema
from lib.filters import Filters
from lib.metrics import quality
from tests.conftest import T0, make_request, requests_table


@pytest.mark.parametrize("k,n", [(780, 1000), (0, 10), (10, 10), (1, 3), (37, 200)])
def test_wilson_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = quality.wilson(k, n)
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_wilson_reference_value():
    assert quality.wilson(780, 1000) == pytest.approx((0.753280508637, 0.804576506611),
                                                      abs=1e-12)
    assert quality.wilson(0, 0) == (None, None)


def evals_table(rows: list[dict]) -> pa.Table:
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema.EVALS}
    return schema.conform(pa.table({k: pa.array(v, schema.EVALS.field(k).type)
                                    for k, v in cols.items()}), schema.EVALS)


@pytest.fixture
def judged(lake, engine):
    reqs = [make_request(i, feature="chat" if i < 20 else "search") for i in range(40)]
    evals = []
    for i in range(40):  # hour 1: 30 of 40 pass; scores 0.5 / 1.0
        ok = i % 4 != 0
        evals.append({"eval_id": f"e{i}", "ts": T0 + timedelta(minutes=i), "source": "online",
                      "request_id": f"r{i}", "version": "v1" if i < 20 else "v2",
                      "metric": "groundedness", "score": 1.0 if ok else 0.5, "passed": ok})
    for i in range(10):  # hour 2: 2 of 10 pass
        evals.append({"eval_id": f"h2-{i}", "ts": T0 + timedelta(minutes=60 + i),
                      "source": "online", "request_id": f"r{i}", "version": "v1",
                      "metric": "groundedness", "score": 0.2, "passed": i < 2})
    for i in range(5):  # feedback: 4 up, 1 down on chat requests
        evals.append({"eval_id": f"fb{i}", "ts": T0 + timedelta(minutes=i), "source": "feedback",
                      "request_id": f"r{i}", "metric": "thumbs_up", "score": float(i != 0),
                      "passed": i != 0})
    lake.append({"requests": requests_table(reqs), "evals": evals_table(evals)}, source="t")
    engine.refresh(force=True)
    return engine, Filters.between(T0, T0 + timedelta(hours=2))


def test_evals_over_time_and_by_version(judged):
    engine, f = judged
    t = quality.evals_over_time(engine, f, "online", seconds=3600)
    assert t["n"].to_list() == [40, 10] and t["passed"].to_list() == [30, 2]
    assert t["pass_rate"].to_list() == pytest.approx([0.75, 0.2])
    assert t["mean_score"].to_list() == pytest.approx([(30 * 1.0 + 10 * 0.5) / 40, 0.2])
    ci = binomtest(30, 40).proportion_ci(method="wilson")
    assert (t["pass_low"][0], t["pass_high"][0]) == pytest.approx((ci.low, ci.high))
    v = quality.evals_by_version(engine, f, "online")
    got = {r["version"]: (r["passed"], r["n"]) for r in v.iter_rows(named=True)}
    assert got == {"v1": (15 + 2, 30), "v2": (15, 20)}


def test_eval_filters_join_requests(judged):
    engine, f = judged
    chat = f.with_value("feature", ["chat"])
    v = quality.evals_by_version(engine, chat, "online")
    # chat = requests r0..r19: hour-1 evals e0..e19 (v1) and the hour-2 evals on r0..r9 (v1)
    assert v["n"].to_list() == [30]


def test_the_model_filter_keeps_evals_without_a_model_by_the_request_they_judge(lake, engine):
    # Langfuse scores and feedback carry no model: under ?model=gpt-4o they were all left out
    # (the judge tile and the Quality page read "no evals") though every judged request was
    # gpt-4o. An eval with a model of its own (an offline test-set run) is still kept by it.
    reqs = [make_request(i, model="gpt-4o" if i % 2 else "claude") for i in range(8)]
    evals = [{"eval_id": f"e{i}", "ts": T0 + timedelta(minutes=i + 1), "source": "online",
              "request_id": f"r{i}", "metric": "groundedness", "passed": i < 4}
             for i in range(8)]
    evals += [{"eval_id": "offline-1", "ts": T0, "source": "test_set", "model": "gpt-4o",
               "metric": "exact_match", "passed": True},
              {"eval_id": "offline-2", "ts": T0, "source": "test_set", "model": "claude",
               "metric": "exact_match", "passed": False}]
    lake.append({"requests": requests_table(reqs), "evals": evals_table(evals)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0, T0 + timedelta(hours=1)).with_value("model", ["gpt-4o"])
    where, params = quality.evals_where(f)
    kept = engine.query(f"SELECT eval_id FROM evals WHERE {where} ORDER BY eval_id", params)
    # gpt-4o answered r1, r3, r5, r7
    assert kept["eval_id"].to_list() == ["e1", "e3", "e5", "e7", "offline-1"]
    online = quality.evals_by_version(engine, f, "online")
    assert (online["passed"].sum(), online["n"].sum()) == (2, 4)  # e1, e3 of e1 e3 e5 e7
    both = f.with_value("model", ["gpt-4o", "claude"])
    where, params = quality.evals_where(both)
    assert engine.scalar(f"SELECT count(*) FROM evals WHERE {where}", params) == 10


def test_feedback(judged):
    engine, f = judged
    tot = quality.feedback_totals(engine, f)
    assert (tot["n"], tot["up"], tot["up_share"]) == (5, 4, 0.8)
    ci = binomtest(4, 5).proportion_ci(method="wilson")
    assert (tot["up_low"], tot["up_high"]) == pytest.approx((ci.low, ci.high))
    t = quality.feedback_over_time(engine, f, seconds=3600)
    assert t["n"].to_list() == [5, 0] and t["up_share"].to_list() == [0.8, None]


def test_two_feedback_metrics_are_given_one_at_a_time_never_pooled(lake, engine):
    # thumbs_up: 3 up of 4; resolved: 1 of 6 (and a 1-5 rating without pass/fail, not listed)
    evals = [{"eval_id": f"t{i}", "ts": T0 + timedelta(minutes=i), "source": "feedback",
              "metric": "thumbs_up", "passed": i != 0} for i in range(4)]
    evals += [{"eval_id": f"r{i}", "ts": T0 + timedelta(minutes=i), "source": "feedback",
               "metric": "resolved", "passed": i == 0} for i in range(6)]
    evals += [{"eval_id": "s0", "ts": T0, "source": "feedback", "metric": "stars", "score": 4.0}]
    lake.append({"evals": evals_table(evals)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0, T0 + timedelta(hours=1))
    m = quality.feedback_metrics(engine, f)
    assert m.rows() == [("resolved", 6, 1), ("thumbs_up", 4, 3)]
    thumbs = quality.feedback_totals(engine, f, "thumbs_up")
    assert (thumbs["n"], thumbs["up"], thumbs["up_share"]) == (4, 3, 0.75)
    ci = binomtest(3, 4).proportion_ci(method="wilson")
    assert (thumbs["up_low"], thumbs["up_high"]) == pytest.approx((ci.low, ci.high))
    t = quality.feedback_over_time(engine, f, seconds=3600, metric="resolved")
    assert (t["n"].to_list(), t["up"].to_list()) == ([6], [1])
    # without a metric, every feedback rating (what the page showed before: 4 of 10)
    assert quality.feedback_totals(engine, f)["up"] == 4


def test_guardrails_finish_reasons_errors(lake, engine):
    rows = [make_request(0, guardrail="pii", guardrail_action="redacted", finish_reason="stop"),
            make_request(1, guardrail="pii", guardrail_action="redacted", finish_reason="stop"),
            make_request(2, guardrail="jailbreak", guardrail_action="blocked",
                         finish_reason="content_filter"),
            make_request(3, finish_reason="length"),
            make_request(4, status="error", error_type="timeout"),
            make_request(70, status="error", error_type="529"),
            make_request(71, status="error", error_type="529")]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0, T0 + timedelta(hours=2))
    g = quality.guardrails(engine, f)
    assert g.select("guardrail", "action", "triggers").rows() == [
        ("pii", "redacted", 2), ("jailbreak", "blocked", 1)]
    assert g["share_of_requests"].to_list() == pytest.approx([2 / 7, 1 / 7])
    fr = dict(quality.finish_reasons(engine, f).select("finish_reason", "requests").rows())
    assert fr == {"stop": 2, "(none)": 3, "content_filter": 1, "length": 1}
    e = quality.errors_over_time(engine, f, seconds=3600, top=1)
    got = {(b.hour, t): (n, r) for b, t, n, r in
           e.select("bucket", "error_type", "errors", "error_rate").iter_rows()}
    assert got == {(12, "529"): (0, 0.0), (12, "(other)"): (1, 1 / 5),
                   (13, "529"): (2, 1.0), (13, "(other)"): (0, 0.0)}
    # each row repeats its bucket's requests, under a name that says so: a download's
    # "requests" column summed to twice the 7 requests
    assert "requests" not in e.columns
    assert {(b.hour, n) for b, n in e.select("bucket", "requests_in_bucket").iter_rows()} == {
        (12, 5), (13, 2)}


def test_prompt_versions_are_named_with_their_prompt(lake, engine):
    lake.append({"requests": requests_table([
        make_request(0, prompt_name="chat-prompt", prompt_version="v13"),
        make_request(1, prompt_name="chat-prompt", prompt_version="v13"),
        make_request(2, prompt_name="search-prompt", prompt_version="v2"),
        make_request(3, prompt_name="chat-prompt", prompt_version="v2"),
        make_request(4, prompt_name=None, prompt_version="v9")])}, source="t")
    f = Filters.between(T0, T0 + timedelta(hours=1))
    assert quality.prompt_labels(engine, f, ("v13", "v2", "v9", "v404")) == {
        "v13": "chat-prompt v13", "v2": "chat-prompt / search-prompt v2", "v9": "v9",
        "v404": "v404"}


def _offline(version: str, passes: set[int], n: int = 40, start: int = 0) -> list[dict]:
    return [{"eval_id": f"{version}-{i}", "run_id": version, "ts": T0 + timedelta(minutes=start),
             "source": "offline", "dataset": "qa", "case_id": str(i), "epoch": 1,
             "version": version, "metric": "correct", "score": float(i in passes),
             "passed": i in passes} for i in range(n)]


def _two_runs(lake, engine) -> Filters:
    """Two test runs of 40 cases: A (v1) passes cases 0-34; B (v2) passes 0-19 and 35-39, and
    case 0 again later, failed: 16 regressions (0 and 20-34), 5 fixes (35-39). The window."""
    a, b = set(range(35)), set(range(20)) | set(range(35, 40))
    # A case scored twice by B: its latest result counts (a pass, made a failure later)
    again = [{**_offline("v2", {0}, n=1, start=1)[0], "eval_id": "v2-0-again", "passed": False,
              "score": 0.0}]
    lake.append({"evals": evals_table(_offline("v1", a) + _offline("v2", b) + again)},
                source="t")
    engine.refresh(force=True)
    return Filters.between(T0 - timedelta(hours=1), T0 + timedelta(hours=1))


def test_two_test_runs_are_compared_case_by_case(lake, engine):
    f = _two_runs(lake, engine)
    row = quality.compare_versions(engine, f, "offline", "v1", "v2").row(0, named=True)
    assert (row["kind"], row["regressions"], row["fixes"], row["n_a"]) == ("pass_paired", 16, 5,
                                                                          40)
    assert row["p_value"] == pytest.approx(binomtest(5, 21, 0.5).pvalue, rel=1e-12)
    assert (row["a_value"], row["b_value"]) == (35 / 40, 24 / 40)
    assert row["difference"] == pytest.approx(-11 / 40)
    assert row["ci_high"] < 0 and row["verdict"] == "regression"
    assert row["test"] == "McNemar exact (paired)"


def test_online_versions_are_compared_as_independent_samples(judged):
    engine, f = judged
    row = quality.compare_versions(engine, f, "online", "v1", "v2").row(0, named=True)
    # v1: 15 of 20 in hour 1 and 2 of 10 in hour 2; v2: 15 of 20 (no case ids: unpaired)
    assert row["kind"] == "pass_unpaired" and (row["n_a"], row["n_b"]) == (30, 20)
    assert (row["a_value"], row["b_value"]) == (17 / 30, 15 / 20)
    # fewer than 30 evals on a side: never "no significant change", and no test
    assert (row["verdict"], row["p_value"]) == ("insufficient data", None)


def test_the_default_pair_is_the_newest_version_and_the_one_before_it_of_its_prompt():
    labels = {"v7": "search-prompt v7", "v12": "chat-prompt v12", "v8": "search-prompt v8",
              "v13": "chat-prompt v13"}
    assert quality.default_pair(["v7", "v12", "v8", "v13"], labels) == ("v12", "v13")
    # the newest version with an earlier one of its prompt (a day of traffic: chat v13 alone is
    # new, summarize v4 and search v8 have nothing to compare with), never two prompts' versions
    short = {"v4": "summarize-prompt v4", "v8": "search-prompt v8", "v13": "chat-prompt v13",
             "v12": "chat-prompt v12"}
    assert quality.default_pair(["v12", "v4", "v8", "v13"], short) == ("v12", "v13")
    assert quality.default_pair(["v4", "v8", "v13"], short) is None
    assert quality.default_pair(["v12", "v13", "v4", "v8"], short) == ("v12", "v13")
    assert quality.default_pair(["v2.1.0", "v2.2.0"], {}) == ("v2.1.0", "v2.2.0")
    assert quality.default_pair(["v1"], {}) is None
    # offline runs of two tools: the newest run against the newest that shares a metric with
    # it, not against the other tool's (review: "The two versions share no metric")
    metrics = {"pf-v1": {"overall", "accuracy"}, "pf-v2": {"overall", "accuracy"},
               "arith@mockllm/model": {"match", "includes"}}
    assert quality.default_pair(["pf-v1", "pf-v2", "arith@mockllm/model"], {}, metrics) == (
        "pf-v1", "pf-v2")
    assert quality.default_pair(["pf-v2", "arith@mockllm/model"], {}, metrics) is None


def test_a_comparison_reads_as_a_sentence():
    row = {"metric": "groundedness", "kind": "pass_unpaired", "a_value": 0.932,
           "b_value": 0.559, "difference": -0.373, "ci_low": -0.404, "ci_high": -0.344,
           "p_value": 1e-200, "p_adjusted": 2e-200, "verdict": "regression",
           "test": "two-proportion z"}
    assert quality.comparison_sentence(row, "chat v12", "chat v13") == (
        "groundedness: 93.2% → 55.9%, −37.3 points (95% CI −40.4 to −34.4): a regression of "
        "chat v13 against chat v12 (two-proportion z, p < 0.001).")
    few = {**row, "verdict": "insufficient data", "ci_low": None, "ci_high": None}
    assert quality.comparison_sentence(few, "a", "b").endswith("too few evals to say.")


def test_the_comparison_table_reads_as_the_sentences_do():
    cmp = pl.DataFrame([{"metric": "correct", "kind": "pass_paired", "a_value": 0.8033,
                         "b_value": 0.69, "difference": -0.1133, "ci_low": -0.1767,
                         "ci_high": -0.05, "test": "McNemar exact (paired)", "p_value": 0.0008,
                         "p_adjusted": 0.00077, "regressions": 66, "fixes": 32, "n_a": 300,
                         "n_b": 300, "mde": 0.0924, "verdict": "regression", "note": None},
                        {"metric": "tone", "kind": "pass_unpaired", "a_value": 0.9,
                         "b_value": None, "difference": None, "ci_low": None, "ci_high": None,
                         "test": "two-proportion z", "p_value": None, "p_adjusted": None,
                         "regressions": None, "fixes": None, "n_a": 40, "n_b": 0, "mde": None,
                         "verdict": "insufficient data", "note": None}])
    rows = quality.comparison_table(cmp).to_dicts()
    assert rows[0] == {"Metric": "correct", "A": "80.3%", "B": "69.0%", "B − A": "−11.3 pts",
                       "95% CI": "−17.7 pts to −5.0 pts", "Verdict": "regression",
                       "Test": "McNemar exact (paired)", "p (BH)": "0.00077",
                       "Regressions / fixes": "66 / 32", "n (A / B)": "300 / 300",
                       "Detectable": "9.2 pts"}
    assert "None" not in str(rows[1]) and rows[1]["B"] == rows[1]["95% CI"] == "–"


def test_a_case_run_several_times_is_one_case(lake, engine):
    # 20 shared cases, each scored 3 times per version: 20 cases a side (too few to pair, and
    # too few as independent samples), not 60 vs 60 evals
    rows = []
    for run in range(3):
        for version, passes in (("v1", set(range(20))), ("v2", set(range(5)))):
            for r in _offline(version, passes, n=20, start=run):
                rows.append({**r, "eval_id": f"{r['eval_id']}-{run}"})
    lake.append({"evals": evals_table(rows)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    row = quality.compare_versions(engine, f, "offline", "v1", "v2").row(0, named=True)
    assert (row["kind"], row["n_a"], row["n_b"], row["shared"], row["verdict"]) == (
        "pass_unpaired", 20, 20, 20, "insufficient data")


def test_a_case_s_latest_result_is_one_whole_row(lake, engine):
    # the newest eval of case 0 by v2 has a score and no pass: its pass is not taken from an
    # older row (no row said "passed, score 0.0")
    older = _offline("v2", set(range(40)))
    newest = [{**older[0], "eval_id": "v2-0-new", "ts": T0 + timedelta(minutes=5),
               "passed": None, "score": 0.0}]
    lake.append({"evals": evals_table(_offline("v1", set(range(40))) + older + newest)},
                source="t")
    engine.refresh(force=True)
    f = Filters.between(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    pairs, totals = quality.comparison_inputs(engine, f, "offline", "v1", "v2")
    case0 = pairs.filter(pl.col("b_score") == 0.0)
    assert case0.height == 1 and case0["b_pass"][0] is None
    assert totals.filter(pl.col("version") == "v2")["n"][0] == 39  # case 0: no pass/fail


def test_scores_without_common_cases_are_compared_as_independent_samples(lake, engine):
    # an online judge's scores of two versions' requests: no case to pair on. They read "too
    # few pairs to say" with 40 a side, 0.8 against 0.6 (review): Mann–Whitney U for a scale
    evals = [{"eval_id": f"{v}-{i}", "ts": T0 + timedelta(minutes=i), "source": "online",
              "version": v, "metric": "helpfulness", "score": s}
             for v, s in (("v1", 0.8), ("v2", 0.6)) for i in range(40)]
    lake.append({"evals": evals_table(evals)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    row = quality.compare_versions(engine, f, "online", "v1", "v2").row(0, named=True)
    assert (row["metric"], row["kind"], row["verdict"], row["n_a"], row["n_b"]) == (
        "helpfulness", "score_unpaired", "regression", 40, 40)
    assert (row["a_value"], row["b_value"]) == (pytest.approx(0.8), pytest.approx(0.6))
    assert row["test"] == "Mann–Whitney U"
    assert row["p_value"] == pytest.approx(mannwhitneyu([0.6] * 40, [0.8] * 40).pvalue)


def test_an_online_judge_s_continuous_scores_are_compared_with_welch_s_t(lake, engine):
    import numpy as np
    from scipy.stats import ttest_ind

    rng = np.random.default_rng(1)
    scores = {"v1": rng.normal(0.8, 0.1, 300), "v2": rng.normal(0.5, 0.1, 280)}
    evals = [{"eval_id": f"{v}-{i}", "ts": T0 + timedelta(seconds=i), "source": "online",
              "request_id": f"{v}-r{i}", "version": v, "metric": "helpfulness",
              "score": float(s)} for v, ss in scores.items() for i, s in enumerate(ss)]
    lake.append({"evals": evals_table(evals)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    row = quality.compare_versions(engine, f, "online", "v1", "v2").row(0, named=True)
    want = ttest_ind(scores["v2"], scores["v1"], equal_var=False)
    ci = want.confidence_interval()
    assert (row["kind"], row["test"], row["verdict"], row["n_a"], row["n_b"]) == (
        "score_unpaired", "Welch's t", "regression", 300, 280)
    assert row["p_value"] == pytest.approx(want.pvalue, rel=1e-9, abs=1e-300)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert row["difference"] == pytest.approx(scores["v2"].mean() - scores["v1"].mean())
    sentence = quality.comparison_sentence(row, "v1", "v2")
    assert "a regression of v2 against v1 (Welch's t, p < 0.001)" in sentence
    assert "scores as independent samples of 300 and 280 evals" in \
        quality.comparison_caption(quality.compare_versions(engine, f, "online", "v1", "v2"))
    # the evidence: v2's scores, the lowest first, each judged request named
    rows, total = quality.lowest_scores(engine, f, "online", "v2", "v1", "helpfulness")
    assert total == 280 and rows["score"][0] == pytest.approx(scores["v2"].min())
    assert rows["request_id"][0] == f"v2-r{int(scores['v2'].argmin())}"


def test_the_failed_evals_behind_a_comparison_put_its_regressions_first(lake, engine):
    # 16 regressions (A passed, B failed: 20-34, and case 0 by B's later result); A's failures
    # 35-39 B passed (fixes): B failed exactly the 16 regressions
    f = _two_runs(lake, engine)
    rows, total = quality.failed_evals(engine, f, "offline", "v2", "v1")
    want = quality.compare_versions(engine, f, "offline", "v1", "v2")["regressions"][0]
    assert total == rows.height == want == 16
    assert set(rows["case_id"]) == {str(i) for i in [0, *range(20, 35)]}
    assert rows["baseline_passed"].to_list() == [True] * 16
    # the other way round, A's failures are B's fixes, which B never failed
    rows, total = quality.failed_evals(engine, f, "offline", "v1", "v2")
    assert total == 5 and rows["baseline_passed"].to_list() == [True] * 5
    # and a limit keeps the regressions first, with the count of all
    rows, total = quality.failed_evals(engine, f, "offline", "v2", "v1", limit=3)
    assert (rows.height, total) == (3, 16)


def test_online_failed_evals_name_the_requests_they_judged(judged):
    engine, f = judged
    rows, total = quality.failed_evals(engine, f, "online", "v1", "v2")
    # v1 failed r0, r4, … r16 in hour 1 (i % 4 == 0) and r2-r9 in hour 2: no pairs (online)
    assert total == 5 + 8 == rows.height
    assert rows["baseline_passed"].null_count() == 13
    assert rows["ts"].to_list() == sorted(rows["ts"].to_list(), reverse=True)  # newest first
    assert set(rows["request_id"]) == {f"r{i}" for i in range(0, 20, 4)} | {
        f"r{i}" for i in range(2, 10)}


def _by_model(version: str, model: str, passes: set[int]) -> list[dict]:
    return [{**r, "eval_id": f"{r['eval_id']}-{model}", "model": model}
            for r in _offline(version, passes)]


def test_a_version_scored_for_two_models_is_compared_model_by_model(lake, engine):
    # a promptfoo run over two providers: each case is scored once per model. v2 fails cases
    # 0-19 on "mini" only. Paired by case alone, a v1 row of one model met a v2 row of the
    # other (picked by eval_id), half the results were left out and the regression read as
    # noise (review). By hand: 80 pairs (40 a model), 20 regressions, no fix.
    everything = set(range(40))
    lake.append({"evals": evals_table(
        _by_model("v1", "mini", everything) + _by_model("v1", "big", everything)
        + _by_model("v2", "mini", set(range(20, 40))) + _by_model("v2", "big", everything))},
        source="t")
    engine.refresh(force=True)
    f = Filters.between(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    pairs, _ = quality.comparison_inputs(engine, f, "offline", "v1", "v2")
    assert pairs.height == 80
    row = quality.compare_versions(engine, f, "offline", "v1", "v2").row(0, named=True)
    assert (row["regressions"], row["fixes"], row["n_a"], row["n_b"]) == (20, 0, 80, 80)
    assert row["verdict"] == "regression"
    rows, total = quality.failed_evals(engine, f, "offline", "v2", "v1")
    assert total == 20 and set(rows["model"]) == {"mini"}
    assert rows["baseline_passed"].to_list() == [True] * 20


def test_a_version_that_is_a_model_change_is_still_paired_across_the_models(lake, engine):
    # task@gpt-4o against task@gpt-4.1: one model a version, the cases paired across them
    lake.append({"evals": evals_table(_by_model("v1", "gpt-4o", set(range(40)))
                                      + _by_model("v2", "gpt-4.1", set(range(20, 40))))},
                source="t")
    engine.refresh(force=True)
    f = Filters.between(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    row = quality.compare_versions(engine, f, "offline", "v1", "v2").row(0, named=True)
    assert (row["kind"], row["regressions"], row["n_a"]) == ("pass_paired", 20, 40)


def test_a_score_regression_shows_the_cases_that_scored_lower(lake, engine):
    # a metric without pass/fail (a similarity) regressed: failed_evals has nothing to show
    # ("vB failed no sim eval" stood under the regression, review); score_drops lists the
    # cases B scored below A, the largest drop first, each case once by its latest result
    t = T0 - timedelta(minutes=30)
    rows = [{"eval_id": f"{v}-{i}", "run_id": v, "ts": t, "source": "offline", "dataset": "qa",
             "case_id": str(i), "epoch": 1, "version": v, "metric": "sim",
             "score": 0.8 if v == "v1" else 0.8 - 0.01 * (i % 5)} for v in ("v1", "v2")
            for i in range(40)]
    rows.append({**rows[45], "eval_id": "v2-5-again", "ts": t + timedelta(minutes=1),
                 "score": 0.5})  # case 5 run again by v2: its latest result counts
    lake.append({"evals": evals_table(rows)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    cmp = quality.compare_versions(engine, f, "offline", "v1", "v2")
    assert cmp.row(0, named=True)["kind"] == "score_paired"
    assert quality.failed_evals(engine, f, "offline", "v2", "v1")[1] == 0
    drops, total = quality.score_drops(engine, f, "offline", "v2", "v1", "sim")
    assert total == drops.height == 32 + 1  # i % 5 != 0 (32 cases), and case 5
    assert drops["case_id"][0] == "5" and drops["change"][0] == pytest.approx(-0.3)
    assert drops["change"].to_list() == sorted(drops["change"].to_list())
    assert drops["baseline_score"].to_list() == pytest.approx([0.8] * 33)


def test_the_model_filter_keeps_an_eval_naming_the_snapshot_that_answered(lake, engine):
    # an OpenTelemetry judge's eval names the span's response model (gpt-4o-2024-08-06), the
    # sidebar the model requested (gpt-4o): filtered on gpt-4o, every such eval was gone (review)
    reqs = [make_request(i, response_model="gpt-4o-2024-08-06") for i in range(10)]
    reqs.append(make_request(10, model="claude-sonnet-4", provider="anthropic"))
    evals = [{"eval_id": f"e{i}", "ts": T0 + timedelta(minutes=i, seconds=30), "source": "online",
              "request_id": f"r{i}", "version": "v1", "metric": "relevance",
              "model": "gpt-4o-2024-08-06" if i < 10 else "claude-sonnet-4-20250514",
              "passed": i % 2 == 0} for i in range(11)]
    lake.append({"requests": requests_table(reqs), "evals": evals_table(evals)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0, T0 + timedelta(hours=1))
    got = quality.evals_by_version(engine, f.with_value("model", ["gpt-4o"]), "online")
    assert (got["n"].to_list(), got["passed"].to_list()) == ([10], [5])
    claude = quality.evals_by_version(engine, f.with_value("model", ["claude-sonnet-4"]), "online")
    assert claude["n"].to_list() == [1]
    # an eval naming the model the filter names needs no request
    own = quality.evals_by_version(engine, f.with_value("model", ["gpt-4o-2024-08-06"]), "online")
    assert own["n"].to_list() == [10]


def test_feedback_on_a_whole_trace_is_kept_by_the_filters_its_trace_matches(lake, engine,
                                                                             tmp_path):
    # Langfuse user feedback is usually a score of a trace (no observation): it has no
    # request_id, and every sidebar filter dropped it (customer acme: 1 of its 3 feedback
    # scores, review). Its trace's requests decide now, as an observation's request does.
    import json
    import shutil
    from pathlib import Path

    from lib.ingest.pipeline import ingest_paths

    fixture = Path(__file__).parents[1] / "ingest" / "fixtures" / "langfuse_observations.jsonl"
    shutil.copy(fixture, tmp_path / "observations.jsonl")
    (tmp_path / "scores.json").write_text(json.dumps([
        {"id": "fb1", "projectId": "p", "traceId": "t1", "observationId": None,
         "name": "user-feedback", "value": 1, "dataType": "BOOLEAN", "source": "API",
         "timestamp": "2026-03-02T10:05:00Z"},
        {"id": "fb2", "projectId": "p", "traceId": "t1", "observationId": "g1",
         "name": "helpful", "value": 0, "dataType": "BOOLEAN", "source": "API",
         "timestamp": "2026-03-02T10:05:00Z"}]))
    ingest_paths(lake, [str(tmp_path / "observations.jsonl"), str(tmp_path / "scores.json")])
    engine.refresh(force=True)
    f = Filters.between(T0.replace(month=3, day=1), T0.replace(month=3, day=5))
    everything = quality.evals_by_version(engine, f, "feedback")
    # trace t1 (customer acme; gpt-4o-mini and claude): user-feedback and user_feedback on the
    # trace, helpful on g1; tone judges g3, of trace t2 (gpt-4o, no customer)
    assert sorted(everything["metric"]) == ["helpful", "tone", "user-feedback", "user_feedback"]
    for column, value in (("customer_id", "acme"), ("model", "gpt-4o-mini")):
        kept = quality.evals_by_version(engine, f.with_value(column, [value]), "feedback")
        assert sorted(kept["metric"]) == ["helpful", "user-feedback", "user_feedback"], column
    kept = quality.evals_by_version(engine, f.with_value("model", ["gpt-4o"]), "feedback")
    assert kept["metric"].to_list() == ["tone"]
    assert quality.feedback_totals(engine, f.with_value("customer_id", ["acme"]))["n"] == 3


def test_an_evaluation_of_an_agent_step_is_kept_by_its_trace_under_filters(lake, engine):
    # An OpenTelemetry evaluation of an invoke_agent span, or a Langfuse score of a SPAN
    # observation, names that step as its request_id: no request has it. It was kept without a
    # filter and gone under any (review); it belongs to its trace's requests. An eval whose
    # request_id is a request decides by that request alone, whatever else its trace holds.
    reqs = [make_request(0, request_id="r0", trace_id="t1", feature="chat"),
            make_request(1, request_id="r1", trace_id="t1", feature="search"),
            make_request(2, request_id="r2", trace_id="t2", feature="search")]
    on = {"ts": T0 + timedelta(minutes=5), "source": "online", "metric": "task_done",
          "passed": True}
    evals = [{**on, "eval_id": "agent", "request_id": "span-agent-1",
              "attributes": json.dumps({"trace_id": "t1"})},
             {**on, "eval_id": "lf-span", "request_id": "obs-span-2",
              "attributes": json.dumps({"trace_id": "t2"})},
             {**on, "eval_id": "on-r1", "request_id": "r1",
              "attributes": json.dumps({"trace_id": "t1"})},
             {**on, "eval_id": "no-trace", "request_id": "span-x"}]
    lake.append({"requests": requests_table(reqs), "evals": evals_table(evals)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0, T0 + timedelta(hours=1))

    def kept(filters):
        where, params = quality.evals_where(filters)
        return engine.query(f"SELECT eval_id FROM evals WHERE {where} ORDER BY eval_id",
                            params)["eval_id"].to_list()

    assert kept(f) == ["agent", "lf-span", "no-trace", "on-r1"]
    # chat: t1's agent step; r1's eval is of a search request, though its trace holds r0
    assert kept(f.with_value("feature", ["chat"])) == ["agent"]
    assert kept(f.with_value("feature", ["search"])) == ["agent", "lf-span", "on-r1"]
    assert kept(f.with_value("model", ["gpt-4o"])) == ["agent", "lf-span", "on-r1"]
