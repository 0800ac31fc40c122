"""promptfoo output and Inspect AI logs become eval rows with exact scores and pass/fail."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from lib.ingest.pipeline import ingest_paths
from lib.ingest.validate import derive_eval_id


def _promptfoo_doc() -> dict:
    def result(test, provider, ok, comps):
        return {"testIdx": test, "promptIdx": 0, "prompt": {"raw": "Q: {{q}}", "label": "v1"},
                "provider": {"id": provider}, "success": ok, "score": 1.0 if ok else 0.0,
                "latencyMs": 120, "cost": 0.001, "response": {"tokenUsage": {"total": 30}},
                "testCase": {"vars": {"q": str(test)}},
                "gradingResult": {"pass": ok, "score": 1.0 if ok else 0.0, "reason": "r",
                                  "componentResults": comps}}
    comp = [{"pass": True, "score": 1, "reason": "has it", "assertion": {"type": "contains"}},
            {"pass": False, "score": 0.25, "reason": "meh",
             "assertion": {"type": "llm-rubric", "metric": "tone"}}]
    return {"evalId": "eval-abc", "results": {"version": 3, "timestamp": "2026-03-02T12:00:00Z",
                                             "results": [result(0, "openai:gpt-4o", True, comp),
                                                         result(0, "openai:gpt-4o-mini", False,
                                                                []),
                                                         result(1, "openai:gpt-4o", True, [])]},
            "config": {"description": "smoke"}}


def test_promptfoo_results_become_eval_rows(lake, tmp_path, totals):
    path = tmp_path / "promptfoo.json"
    path.write_text(json.dumps(_promptfoo_doc()))
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.format, f.stored, f.quarantined) == ("promptfoo", {"evals": 5}, 0)
    assert totals("SELECT count(*) FILTER (metric = 'overall'), "
                  "count(*) FILTER (metric = 'overall' AND passed), "
                  "sum(score) FILTER (metric = 'tone'), list(DISTINCT model ORDER BY model), "
                  "min(run_id), min(dataset) FROM evals") == \
        (3, 2, 0.25, ["openai:gpt-4o", "openai:gpt-4o-mini"], "eval-abc", "smoke")


def test_promptfoo_labelled_configurations_of_one_provider_are_two_models(lake, tmp_path,
                                                                           totals):
    doc = _promptfoo_doc()
    first, second = doc["results"]["results"][0], dict(doc["results"]["results"][0])
    first["provider"] = {"id": "openai:gpt-4o", "label": "gpt-4o temp=0"}
    second.update(provider={"id": "openai:gpt-4o", "label": "gpt-4o temp=1"}, success=False,
                  gradingResult={"pass": False, "score": 0.0, "reason": "r"})
    doc["results"]["results"] = [first, second]
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(doc))
    assert ingest_paths(lake, [str(path)]).files[0].stored == {"evals": 4}
    # each at epoch 1 (not one model that passed, then failed a repeat)
    assert totals("SELECT list({model: model, epoch: epoch, passed: passed} ORDER BY model), "
                  "list(DISTINCT attributes->>'provider_id') FROM evals "
                  "WHERE metric = 'overall'") == (
        [{"model": "gpt-4o temp=0", "epoch": 1, "passed": True},
         {"model": "gpt-4o temp=1", "epoch": 1, "passed": False}], ["openai:gpt-4o"])


def test_promptfoo_errors_are_no_grade(lake, tmp_path, totals):
    # promptfoo's stats count errors apart from failures: a 429 is no wrong answer
    doc = _promptfoo_doc()
    failed = doc["results"]["results"][1]
    failed.update(error="API error: 429 Too Many Requests", failureReason=2, gradingResult=None,
                  success=False, score=0)
    doc["results"]["results"].append({**doc["results"]["results"][2], "testIdx": 2,
                                      "error": "timed out", "gradingResult": None,
                                      "success": False, "score": 0})
    path = tmp_path / "errors.json"
    path.write_text(json.dumps(doc))
    assert ingest_paths(lake, [str(path)]).files[0].quarantined == 0
    assert totals("SELECT count(*) FILTER (label = 'error'), count(passed), "
                  "count(*) FILTER (passed), count(score), "
                  "list(explanation ORDER BY case_id) FILTER (label = 'error') "
                  "FROM evals WHERE metric = 'overall'") == (
        2, 2, 2, 2, ["API error: 429 Too Many Requests", "timed out"])


def _inspect_log() -> dict:
    def sample(i, value, epoch=1):
        return {"id": i, "epoch": epoch, "input": "q", "target": "a",
                "scores": {"match": {"value": value, "answer": "a", "explanation": "e"}}}
    return {"version": 2, "status": "success",
            "eval": {"run_id": "run-9", "task": "arith", "created": "2026-03-02T12:00:00+00:00",
                     "model": "openai/gpt-4o", "dataset": {"name": "arith-100"}},
            "stats": {"completed_at": "2026-03-02T12:05:00+00:00"},
            "samples": [sample(1, "C"), sample(2, "I"), sample(3, "P"), sample(4, "N"),
                        sample(1, "C", epoch=2),
                        {"id": 5, "epoch": 1, "scores": {"f1": {"value": {"p": 0.5, "r": 1}}}}]}


def test_inspect_letter_scores_map_to_pass_fail_partial(lake, tmp_path, totals):
    path = tmp_path / "log.json"
    path.write_text(json.dumps(_inspect_log()))
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.format, f.stored) == ("inspect", {"evals": 7})
    got = totals("SELECT list({case_id: case_id, epoch: epoch, label: label, passed: passed, "
                 "score: score} ORDER BY case_id, epoch) "
                 "FILTER (metric = 'match'), sum(score) FILTER (metric LIKE 'f1/%') FROM evals")
    assert got[0] == [
        {"case_id": "1", "epoch": 1, "label": "C", "passed": True, "score": 1.0},
        {"case_id": "1", "epoch": 2, "label": "C", "passed": True, "score": 1.0},
        {"case_id": "2", "epoch": 1, "label": "I", "passed": False, "score": 0.0},
        {"case_id": "3", "epoch": 1, "label": "P", "passed": None, "score": 0.5},
        {"case_id": "4", "epoch": 1, "label": "N", "passed": False, "score": 0.0}]
    assert got[1] == 1.5
    # a log without its own eval_id: its run, task and model tell it apart
    assert totals("SELECT eval_id FROM evals WHERE case_id = '2'")[0] == \
        derive_eval_id("run-9|arith|openai/gpt-4o", "2", "match", 1)


def test_inspect_text_values_read_as_its_value_to_float_reads_them(lake, tmp_path, totals):
    # a model-graded scorer's "yes"/"no", a "true", a number as text: stored as labels without
    # a score or pass/fail, they dropped out of the pass rate and the mean (review). Inspect's
    # value_to_float (inspect_ai.scorer) reads yes/true 1, no/false 0, digits their number.
    log = _inspect_log()
    values = ["yes", "No", "TRUE", "false", "0.75", "maybe"]
    log["samples"] = [{"id": i, "epoch": 1, "scores": {"graded": {"value": v}}}
                      for i, v in enumerate(values)]
    path = tmp_path / "log.json"
    path.write_text(json.dumps(log))
    assert ingest_paths(lake, [str(path)]).files[0].stored == {"evals": 6}
    assert totals("SELECT list({label: label, passed: passed, score: score} ORDER BY case_id) "
                  "FROM evals")[0] == [
        {"label": "yes", "passed": True, "score": 1.0},
        {"label": "No", "passed": False, "score": 0.0},
        {"label": "TRUE", "passed": True, "score": 1.0},
        {"label": "false", "passed": False, "score": 0.0},
        {"label": "0.75", "passed": None, "score": 0.75},
        {"label": "maybe", "passed": None, "score": None}]


def test_each_log_of_a_run_over_several_models_is_kept(lake, tmp_path, totals):
    # `inspect eval task.py --model a,b` writes a log per model, all with the run's run_id and
    # the same sample ids and scorer: none is a duplicate of another
    paths = []
    for n, (model, value) in enumerate([("openai/gpt-4o", "C"), ("anthropic/claude", "I")]):
        log = _inspect_log()
        log["eval"].update(model=model, eval_id=f"log-{n}")
        for sample in log["samples"]:
            if "match" in sample["scores"]:
                sample["scores"]["match"]["value"] = value
        paths.append(tmp_path / f"log{n}.json")
        paths[-1].write_text(json.dumps(log))
    report = ingest_paths(lake, [str(p) for p in paths])
    assert [(f.stored, f.duplicates.get("evals", 0)) for f in report.files] == \
        [({"evals": 7}, 0), ({"evals": 7}, 0)]
    assert totals("SELECT list({model: model, run_id: run_id, n: n, passed: p} ORDER BY model) "
                  "FROM (SELECT model, run_id, count(*) AS n, count(*) FILTER (passed) AS p "
                  "FROM evals WHERE metric = 'match' GROUP BY ALL)")[0] == [
        {"model": "anthropic/claude", "run_id": "run-9", "n": 5, "passed": 0},
        {"model": "openai/gpt-4o", "run_id": "run-9", "n": 5, "passed": 5}]
    # the same log read again adds nothing
    again = tmp_path / "again.json"
    again.write_text(paths[0].read_text() + "\n")
    assert ingest_paths(lake, [str(again)]).files[0].duplicates == {"evals": 7}


def test_canonical_evals_of_one_run_over_datasets_and_models_are_not_duplicates(
        lake, tmp_path, totals):
    # no eval_id: derived from run, case, metric and epoch, and the dataset, model and version
    # when given (case ids restart per dataset; one run may test several models)
    csv = tmp_path / "evals.csv"
    csv.write_text("run_id,ts,dataset,case_id,model,metric,score\n"
                   "r1,2026-03-02T12:00:00Z,math,1,gpt-4o,accuracy,1\n"
                   "r1,2026-03-02T12:00:00Z,code,1,gpt-4o,accuracy,0\n"
                   "r1,2026-03-02T12:00:00Z,math,1,claude,accuracy,0.5\n"
                   "r1,2026-03-02T12:00:00Z,math,2,gpt-4o,accuracy,1\n"
                   "r1,2026-03-02T12:00:00Z,math,2,gpt-4o,accuracy,1\n")
    f = ingest_paths(lake, [str(csv)]).files[0]
    # the last line repeats the one before it: that one is a duplicate
    assert (f.stored, f.duplicates) == ({"evals": 4}, {"evals": 1})
    assert totals("SELECT sum(score), count(DISTINCT eval_id) FROM evals") == (2.5, 4)
    assert totals("SELECT eval_id FROM evals WHERE dataset = 'code'")[0] == \
        derive_eval_id("r1", "1", "accuracy", None, "code", "gpt-4o", None)
    # rows without a dataset, model or version keep the ids of design §3's four parts
    plain = tmp_path / "plain.csv"
    plain.write_text("run_id,ts,case_id,metric,score\nr2,2026-03-02T12:00:00Z,7,accuracy,1\n")
    ingest_paths(lake, [str(plain)])
    assert totals("SELECT eval_id FROM evals WHERE run_id = 'r2'")[0] == \
        derive_eval_id("r2", "7", "accuracy", None)


def _pf_run(version: str, tests: list[tuple[str, bool]], repeat: int = 1) -> dict:
    """A promptfoo run of prompt ``version`` over ``tests`` (variable q, passed), ``repeat``
    times: promptfoo numbers every run of a test (testIdx), each repeat too."""
    results, idx = [], 0
    for _ in range(repeat):
        for q, ok in tests:
            results.append({"testIdx": idx, "promptIdx": 0,
                            "prompt": {"raw": "Q: {{q}}", "label": version},
                            "provider": {"id": "openai:gpt-4o"}, "success": ok,
                            "score": float(ok), "testCase": {"vars": {"q": q}},
                            "gradingResult": {"pass": ok, "score": float(ok), "reason": "r"}})
            idx += 1
    return {"evalId": f"eval-{version}", "results": {
        "version": 3, "timestamp": "2026-03-02T12:00:00Z", "results": results},
        "config": {"description": "smoke"}}


def test_promptfoo_repeats_are_epochs_and_runs_pair_on_what_the_test_is(lake, tmp_path, totals):
    # testIdx as the case: a --repeat 2 run stored 80 cases of epoch 1, and a run with one test
    # added at the start paired every test with its neighbour (review)
    from lib.filters import Filters
    from lib.metrics import quality
    from lib.store import Engine

    tests = [(f"question {i}", i % 4 != 0) for i in range(40)]
    one, two = tmp_path / "v1.json", tmp_path / "v2.json"
    one.write_text(json.dumps(_pf_run("v1", tests, repeat=2)))
    two.write_text(json.dumps(_pf_run("v2", [("a new test", True), *tests])))
    ingest_paths(lake, [str(one), str(two)])
    assert totals("SELECT count(DISTINCT case_id), list(DISTINCT epoch ORDER BY epoch) "
                  "FROM evals WHERE version = 'v1'") == (40, [1, 2])
    assert totals("SELECT case_id FROM evals WHERE version = 'v2' AND "
                  "(attributes->>'test_index') = '1'") == ("q=question 0",)
    engine = Engine(lake)
    try:
        f = Filters.between(datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC))
        row = quality.compare_versions(engine, f, "offline", "v1", "v2").row(0, named=True)
    finally:
        engine.close()
    # v2's one epoch of each test met v1's epoch 1 of the same test: same outcomes
    assert (row["regressions"], row["fixes"], row["n_a"]) == (0, 0, 40)


def test_an_older_promptfoo_output_keeps_its_prompts_apart(lake, tmp_path, totals):
    # promptfoo's output version 2 (2023) names a result's prompt by its text alone: no label,
    # promptId or promptIdx. Both prompts were one version "", prompt B's result of a test an
    # "epoch 2" of prompt A's.
    def result(prompt, q, ok):
        return {"provider": {"id": "openai:gpt-3.5-turbo"},
                "prompt": {"raw": prompt, "display": prompt}, "vars": {"q": q},
                "response": {"output": "x"}, "success": ok, "score": float(ok),
                "latencyMs": 10, "gradingResult": {"pass": ok, "score": float(ok), "reason": "r"}}
    long = "Answer briefly. " * 20 + "{{q}}"
    results = [result("Prompt A {{q}}", "1", True), result(long, "1", False),
               result("Prompt A {{q}}", "2", True), result(long, "2", False)]
    path = tmp_path / "v2.json"
    path.write_text(json.dumps({"results": {"version": 2, "timestamp": "2023-09-01T10:00:00Z",
                                            "results": results,
                                            "table": {"head": {"prompts": [], "vars": ["q"]},
                                                      "body": []},
                                            "stats": {"successes": 2, "failures": 2}}}))
    assert ingest_paths(lake, [str(path)]).files[0].stored == {"evals": 4}
    versions = totals("SELECT list(DISTINCT version ORDER BY version DESC), "
                      "list(DISTINCT epoch), list(passed ORDER BY version DESC, case_id) "
                      "FROM evals")
    assert versions[0][0] == "Prompt A {{q}}" and versions[0][1].startswith("Answer briefly.")
    assert len(versions[0]) == 2 and len(versions[0][1]) < len(long)  # (a long prompt cut)
    assert versions[1:] == ([1], [True, True, False, False])


@pytest.mark.parametrize("path", ["exact", "arrow"])  # (the fast path hands a bad row to exact)
def test_an_eval_source_other_than_the_three_is_quarantined(lake, write, monkeypatch, totals,
                                                           path):
    # "prod" was stored and shown on no page (the Quality page reads online, offline and
    # feedback), found in review
    from tests.ingest.conftest import ingest_on_path

    rows = [{"eval_id": f"e{i}", "run_id": "r", "ts": "2026-03-02T12:00:00Z", "source": s,
             "metric": "m", "score": 1} for i, s in enumerate(["prod", "offline", "Online"])]
    report = ingest_on_path(lake, [write("e.jsonl", rows)], path, monkeypatch)
    f = report.files[0]
    assert (f.stored, f.quarantined) == ({"evals": 1}, 2)
    assert f.reasons == ["line 1: source must be online, offline or feedback: prod",
                         "line 3: source must be online, offline or feedback: Online"]
    assert totals("SELECT list(eval_id) FROM evals") == (["e1"],)


@pytest.mark.parametrize("path", ["exact", "arrow"])
def test_an_eval_without_any_result_is_quarantined(lake, write, monkeypatch, totals, path):
    # a score or an evaluation event without its value was stored as a row of nothing, and
    # counted as an eval (review); a label alone or an explanation alone is a result
    from tests.ingest.conftest import ingest_on_path

    base = {"run_id": "r", "ts": "2026-03-02T12:00:00Z", "source": "online", "metric": "m"}
    rows = [{**base, "eval_id": "e0"},
            {**base, "eval_id": "e1", "label": "friendly"},
            {**base, "eval_id": "e2", "explanation": "the answer cites no source"},
            {**base, "eval_id": "e3", "score": None, "passed": None, "label": ""}]
    f = ingest_on_path(lake, [write("e.jsonl", rows)], path, monkeypatch).files[0]
    assert (f.stored, f.quarantined) == ({"evals": 2}, 2)
    assert f.reasons == [
        "line 1: no result: score, passed, label and explanation are all empty",
        "line 4: no result: score, passed, label and explanation are all empty"]
    assert totals("SELECT list(eval_id ORDER BY eval_id) FROM evals") == (["e1", "e2"],)


def test_inspect_text_that_only_looks_like_digits_is_a_label(lake, tmp_path, totals):
    # "²" and "①" are digits to str.isdigit, not to float(): the whole file failed on one
    log = _inspect_log()
    log["samples"] = [{"id": i, "epoch": 1, "scores": {"graded": {"value": v}}}
                      for i, v in enumerate(["²", "①", "0.5"])]
    path = tmp_path / "log.json"
    path.write_text(json.dumps(log))
    report = ingest_paths(lake, [str(path)]).files[0]
    assert (report.error, report.stored) == (None, {"evals": 3})
    assert totals("SELECT list(score ORDER BY case_id) FROM evals")[0] == [None, None, 0.5]
