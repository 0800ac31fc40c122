"""A real promptfoo output (tests/ingest/fixtures/promptfoo/, written by promptfoo 0.121.20
itself: its README says how) becomes the eval rows promptfoo's own figures say. Expected values
are computed here from the JSON promptfoo wrote, never copied from a reader's output."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from lib.ingest.pipeline import ingest_paths
from lib.store import Engine

OUTPUT = Path(__file__).parent / "fixtures" / "promptfoo" / "out.json.gz"


def stored(lake, sql: str) -> list[tuple]:
    eng = Engine(lake)
    try:
        return eng.query(sql).rows()
    finally:
        eng.close()


def real_output() -> dict:
    return json.loads(gzip.decompress(OUTPUT.read_bytes()))


@pytest.fixture
def ingested(lake):
    report = ingest_paths(lake, [str(OUTPUT)]).files[0]
    assert (report.error, report.format, report.quarantined) == (None, "promptfoo", 0)
    return report


def test_overall_rows_count_what_promptfoo_counts(ingested, totals):
    stats = real_output()["results"]["stats"]
    # promptfoo's successes, failures and errors (a provider that failed: no grade)
    assert totals("SELECT count(*) FILTER (passed), count(*) FILTER (NOT passed), "
                  "count(*) FILTER (label = 'error' AND passed IS NULL AND score IS NULL) "
                  "FROM evals WHERE metric = 'overall'") == (
        stats["successes"], stats["failures"], stats["errors"])


def test_an_assert_set_is_named_by_its_type(ingested, totals):
    # an assert-set's own result has no `assertion`: its type is in metadata.assertionSet
    sets = [c for r in real_output()["results"]["results"]
            for c in (r.get("gradingResult") or {}).get("componentResults") or []
            if "assertion" not in c]
    assert sets and {c["metadata"]["assertionSet"]["type"] for c in sets} == {"assert-set"}
    assert totals("SELECT count(*) FILTER (metric = 'assert:assert-set'), "
                  "count(*) FILTER (metric LIKE '%unknown%'), "
                  "list(DISTINCT score) FILTER (metric = 'assert:assert-set') FROM evals") == (
        len(sets), 0, sorted({c["score"] for c in sets}))


def test_a_named_metric_of_several_assertions_is_the_score_promptfoo_gives_it(lake, ingested):
    # Two weighted assertions share the metric "accuracy" (3:1): promptfoo's namedScores is
    # their weighted mean. Numbered apart, "accuracy" was the first assertion alone and
    # "accuracy#2" the second: neither was the figure promptfoo shows.
    results = [r for r in real_output()["results"]["results"]
               if "accuracy" in ((r.get("gradingResult") or {}).get("namedScores") or {})]
    parts = [[c for c in r["gradingResult"]["componentResults"]
              if (c.get("assertion") or {}).get("metric") == "accuracy"] for r in results]
    assert {len(p) for p in parts} == {2}
    expected = sorted((r["provider"]["label"], r["prompt"]["label"],
                       r["gradingResult"]["namedScores"]["accuracy"],
                       all(c["pass"] for c in p)) for r, p in zip(results, parts, strict=True))
    assert 0 < min(e[2] for e in expected) < 1  # (one passed, one failed: the mean is no 0 or 1)
    assert stored(lake, "SELECT model, version, score, passed FROM evals "
                        "WHERE metric LIKE 'accuracy%' ORDER BY ALL") == expected
    # promptfoo's figure for each prompt and provider: its namedScores over their weights
    means = dict(((model, version), mean) for model, version, mean in stored(
        lake, "SELECT model, version, avg(score) FROM evals WHERE metric = 'accuracy' "
              "GROUP BY ALL"))
    assert means == pytest.approx({
        (p["provider"], p["label"]): p["metrics"]["namedScores"]["accuracy"]
        / p["metrics"]["namedScoreWeights"]["accuracy"]
        for p in real_output()["results"]["prompts"]})


def one_result(components: list[dict], score: float) -> dict:
    """A promptfoo output (version 3) of one failed test graded by ``components``."""
    return {"evalId": "eval-x", "results": {
        "version": 3, "timestamp": "2026-03-02T12:00:00Z", "results": [{
            "provider": {"id": "echo"}, "success": False, "score": score,
            "testCase": {"vars": {"q": "1"}}, "prompt": {"label": "v1"},
            "gradingResult": {"pass": False, "score": score, "componentResults": components}}]}}


def test_a_named_metric_without_named_scores_is_its_assertions_weighted_mean(lake, tmp_path):
    # (an output without namedScores: promptfoo's own formula, sum(score * weight) / sum(weight))
    comps = [{"pass": True, "score": 1, "reason": "a",
              "assertion": {"type": "contains", "metric": "tone", "weight": 3}},
             {"pass": False, "score": 0, "reason": "b",
              "assertion": {"type": "llm-rubric", "metric": "tone"}}]
    path = tmp_path / "named.json"
    path.write_text(json.dumps(one_result(comps, score=0.75)))
    assert ingest_paths(lake, [str(path)]).files[0].stored == {"evals": 2}
    assert stored(lake, "SELECT metric, score, passed, explanation FROM evals "
                        "WHERE metric <> 'overall'") == [("tone", 0.75, False, "a; b")]


def test_tests_of_one_input_with_other_assertions_are_cases_apart(lake, totals):
    # Two tests check one input two ways (no description, the same vars); run twice each
    # (--repeat 2). They were one case of 4 "epochs", a pass and a fail averaged as one test.
    path = OUTPUT.with_name("same_input.json.gz")
    doc = json.loads(gzip.decompress(path.read_bytes()))
    tests = {(json.dumps(r["vars"], sort_keys=True), json.dumps(r["testCase"]["assert"]))
             for r in doc["results"]["results"]}
    assert len(tests) == 3 and len({v for v, _ in tests}) == 2
    assert ingest_paths(lake, [str(path)]).files[0].quarantined == 0
    assert totals("SELECT count(DISTINCT case_id), list(DISTINCT epoch ORDER BY epoch), "
                  "count(*) FILTER (case_id = 'q=bye') FROM evals WHERE metric = 'overall'") == (
        3, [1, 2], 2)  # (a test alone keeps its id)
    # each case is one test: its results all passed or all failed, as that test did
    assert totals("SELECT count(*) FROM (SELECT case_id FROM evals WHERE metric = 'overall' "
                  "GROUP BY case_id HAVING count(DISTINCT passed) > 1)") == (0,)


@pytest.mark.parametrize("name", ["overall", "assert:contains"])
def test_a_named_metric_of_one_of_sightline_s_own_names_is_kept_apart(lake, tmp_path, name):
    # A metric named "overall" took the eval_id of the test's own overall row: one of the two
    # was dropped as the other's duplicate, without a word.
    comps = [{"pass": False, "score": 0, "reason": "a",
              "assertion": {"type": "contains", "metric": name}},
             {"pass": True, "score": 1, "reason": "b", "assertion": {"type": "contains"}}]
    path = tmp_path / "own_names.json"
    path.write_text(json.dumps(one_result(comps, score=0.5)))
    report = ingest_paths(lake, [str(path)]).files[0]
    assert (report.stored, report.duplicates) == ({"evals": 3}, {"evals": 0})
    assert stored(lake, "SELECT metric, passed FROM evals ORDER BY metric") == sorted([
        ("overall", False), ("assert:contains", True), (f"{name} (named metric)", False)])
