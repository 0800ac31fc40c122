"""promptfoo output and Inspect AI logs become eval rows with exact scores and pass/fail."""

from __future__ import annotations

import json

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
    assert totals("SELECT eval_id FROM evals WHERE case_id = '2'")[0] == \
        derive_eval_id("run-9", "2", "match", 1)
