"""A bad value in a promptfoo output or an Inspect log quarantines the record holding it (one
promptfoo result, one Inspect sample or score), never the file: the quarantine row names the
record's position in the document (from 1) as its line and the field and value in its reason,
and the other records are stored as they are. A text field takes any JSON value, kept as its JSON
text; a value every row of the document holds is stored that way, or quarantines every record.
"""

from __future__ import annotations

import json

import pytest

from lib.ingest.pipeline import ingest_paths
from lib.ingest.validate import derive_eval_id
from lib.store import Engine

ROWS = ("SELECT list([case_id, CAST(epoch AS VARCHAR), metric, model, version, dataset, "
        "CAST(passed AS VARCHAR), CAST(score AS VARCHAR), judge, explanation] "
        "ORDER BY case_id, epoch, metric) FROM evals")


def ingest(lake, path, doc, *, raw: bytes | None = None):
    """Ingest ``doc`` (or the bytes ``raw``) as one file; its report and quarantine rows
    [line, reason] in line order."""
    path.write_bytes(raw if raw is not None else json.dumps(doc).encode())
    report = ingest_paths(lake, [str(path)], compact_min_files=0).files[0]
    assert report.error is None
    eng = Engine(lake)
    try:
        quarantine = eng.query("SELECT line, reason FROM quarantine ORDER BY line, reason").rows()
    finally:
        eng.close()
    return report, [list(r) for r in quarantine]


# -- promptfoo -----------------------------------------------------------------------------------
def pf_result(test: int, **changes) -> dict:
    result = {"testIdx": test, "promptIdx": 0, "prompt": {"raw": "Q", "label": "v1"},
              "provider": {"id": "openai:gpt-4o"}, "success": True, "score": 1.0,
              "testCase": {"vars": {"q": str(test)}},
              "gradingResult": {"pass": True, "score": 1.0, "reason": "r",
                                "componentResults": [
                                    {"pass": True, "score": 1, "reason": "ok",
                                     "assertion": {"type": "contains", "metric": "m"}}]}}
    for path, value in changes.items():
        *head, last = path.split("__")
        target = result
        for part in head:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    return result


def pf_doc(*results, **document) -> dict:
    return {"evalId": "eval-abc", "createdAt": "2026-03-02T12:00:00Z",
            "results": {"version": 3, "timestamp": "2026-03-02T12:00:00Z",
                        "results": list(results)},
            "config": {"description": "smoke"}, **document}


def pf_rows(test: int, model="openai:gpt-4o", version="v1", dataset="smoke") -> list[list]:
    """The rows of ``pf_result(test)``: overall and the assertion ``m``."""
    return [[f"q={test}", "1", metric, model, version, dataset, "true", "1.0", None, why]
            for metric, why in (("m", "ok"), ("overall", "r"))]


def test_promptfoo_a_pass_that_is_no_boolean_quarantines_its_result(lake, tmp_path, totals):
    doc = pf_doc(pf_result(0), pf_result(1, gradingResult__pass="yes"),
                 pf_result(2, gradingResult__componentResults__0__pass=1), pf_result(3))
    report, quarantine = ingest(lake, tmp_path / "pf.json", doc)
    assert quarantine == [
        [2, "gradingResult.pass is not a boolean: yes"],
        [3, "gradingResult.componentResults[0].pass is not a boolean: 1"]]
    assert totals(ROWS)[0] == pf_rows(0) + pf_rows(3)


def test_promptfoo_results_of_the_wrong_shape_are_quarantined(lake, tmp_path, totals):
    doc = pf_doc(pf_result(0), pf_result(1, gradingResult__componentResults=5),
                 pf_result(2, gradingResult__componentResults=[7]),
                 pf_result(3, gradingResult__score="high"),
                 pf_result(4, latencyMs=float("inf")), pf_result(5))
    report, quarantine = ingest(lake, tmp_path / "pf.json", doc)
    assert quarantine == [
        [2, "gradingResult.componentResults is not a list: 5"],
        [3, "gradingResult.componentResults[0] is not an object: 7"],
        [4, "gradingResult.score is not a finite number: high"],
        [5, "latencyMs is not a finite number: Infinity"]]
    assert totals(ROWS)[0] == pf_rows(0) + pf_rows(5)


def test_promptfoo_scores_may_be_booleans_negative_or_numeric_text(lake, tmp_path, totals):
    # numeric text is a number as in every other format (json_values refused it)
    doc = pf_doc(pf_result(0, gradingResult__score=True,
                           gradingResult__componentResults__0__score=False),
                 pf_result(1, gradingResult__score=" 0.25 ",
                           gradingResult__componentResults__0__score=-2),
                 pf_result(2, gradingResult__score=10**400),
                 pf_result(3, gradingResult__score="1_0"))
    report, quarantine = ingest(lake, tmp_path / "pf.json", doc)
    assert quarantine == [[3, "gradingResult.score is out of range: " + "1" + "0" * 56 + "..."],
                          [4, "gradingResult.score is not a finite number: 1_0"]]
    assert totals("SELECT list([case_id, metric, CAST(score AS VARCHAR)] ORDER BY case_id, "
                  "metric) FROM evals")[0] == [["q=0", "m", "0.0"], ["q=0", "overall", "1.0"],
                                               ["q=1", "m", "-2.0"], ["q=1", "overall", "0.25"]]


def test_promptfoo_text_fields_keep_any_json_value_as_its_text(lake, tmp_path, totals):
    doc = pf_doc(pf_result(0, provider={"id": ["a", "b"]}),
                 pf_result(1, prompt={"label": 10**30}),
                 pf_result(2, gradingResult__componentResults__0__assertion={"metric": {"k": 1}},
                           gradingResult__reason=False),
                 pf_result(3))
    report, quarantine = ingest(lake, tmp_path / "pf.json", doc)
    assert quarantine == []
    assert totals(ROWS)[0] == [
        ["q=0", "1", "m", '["a", "b"]', "v1", "smoke", "true", "1.0", None, "ok"],
        ["q=0", "1", "overall", '["a", "b"]', "v1", "smoke", "true", "1.0", None, "r"],
        *pf_rows(1, version="1000000000000000000000000000000"),
        ["q=2", "1", "overall", "openai:gpt-4o", "v1", "smoke", "true", "1.0", None, "false"],
        ["q=2", "1", '{"k": 1}', "openai:gpt-4o", "v1", "smoke", "true", "1.0", None, "ok"],
        *pf_rows(3)]


def test_promptfoo_text_that_is_not_utf8_quarantines_its_result(lake, tmp_path, totals):
    text = json.dumps(pf_doc(pf_result(0), pf_result(1, prompt={"label": "ab@@cd"}),
                             pf_result(2, testIdx="\ud800"), pf_result(3)))
    report, quarantine = ingest(lake, tmp_path / "pf.json", None,
                                raw=text.encode().replace(b"@@", b"\xff\xfe"))
    # the value is quoted made valid (U+FFFD), as the quarantine must store it
    assert quarantine == [[2, "prompt.label is not valid UTF-8 text: ab\ufffd\ufffdcd"],
                          [3, "testIdx is not valid UTF-8 text: \ufffd"]]
    assert totals(ROWS)[0] == pf_rows(0) + pf_rows(3)


def test_promptfoo_document_values(lake, tmp_path, totals):
    # a description that is no text is kept as its JSON text
    report, quarantine = ingest(lake, tmp_path / "number.json",
                                pf_doc(pf_result(0), config={"description": 10**30}))
    assert quarantine == []
    assert totals(ROWS)[0] == pf_rows(0, dataset="1000000000000000000000000000000")
    # a timestamp that is not UTF-8 text: every result, each on its line
    report, quarantine = ingest(lake, tmp_path / "surrogate.json", pf_doc(
        pf_result(1), pf_result(2), results={"timestamp": "\ud800",
                                             "results": [pf_result(1), pf_result(2)]}))
    assert quarantine == [[1, "results.timestamp is not valid UTF-8 text: \ufffd"],
                          [2, "results.timestamp is not valid UTF-8 text: \ufffd"]]


def test_promptfoo_identical_bad_results_are_each_quarantined(lake, tmp_path):
    bad = pf_result(0, gradingResult__pass="yes")
    report, quarantine = ingest(lake, tmp_path / "pf.json", pf_doc(bad, bad, bad))
    assert quarantine == [[n, "gradingResult.pass is not a boolean: yes"] for n in (1, 2, 3)]


def test_promptfoo_an_assertions_judge_is_stored(lake, tmp_path, totals):
    doc = pf_doc(pf_result(0, gradingResult__componentResults__0__assertion={
        "type": "llm-rubric", "provider": "openai:gpt-4o-mini"}))
    ingest(lake, tmp_path / "pf.json", doc)
    assert totals("SELECT list(judge ORDER BY metric) FROM evals")[0] == \
        ["openai:gpt-4o-mini", None]


# -- Inspect -------------------------------------------------------------------------------------
def sample(i: int, epoch=1, **scores) -> dict:
    return {"id": i, "epoch": epoch, "input": "q", "target": "a",
            "scores": scores or {"match": {"value": "C", "answer": "a", "explanation": "e"}}}


def inspect_log(*samples, **changes) -> dict:
    log = {"version": 2, "status": "success",
           "eval": {"run_id": "run-9", "task": "arith", "created": "2026-03-02T12:00:00+00:00",
                    "model": "openai/gpt-4o", "dataset": {"name": "arith-100"},
                    "metadata": {"version": "v1"}},
           "stats": {"completed_at": "2026-03-02T12:05:00+00:00"}, "samples": list(samples)}
    for path, value in changes.items():
        *head, last = path.split("__")
        target = log
        for part in head:
            target = target[part]
        target[last] = value
    return log


def inspect_rows(i: int, epoch: int = 1, model="openai/gpt-4o", explanation="e") -> list:
    """The row of ``sample(i, epoch)``."""
    return [[str(i), str(epoch), "match", model, "v1", "arith-100", "true", "1.0", None,
             explanation]]


@pytest.mark.parametrize("epoch, reason", [
    ("abc", "is not an integer: abc"), ("", 'is not an integer: ""'),
    ("1.5", "is not an integer: 1.5"), (1.5, "is not an integer: 1.5"),
    ("0x10", "is not an integer: 0x10"), ("1_000", "is not an integer: 1_000"),
    ([1, 2], "is not an integer: [1,2]"), ({"a": 1}, 'is not an integer: {"a":1}'),
    (True, "is not an integer: true"), (float("inf"), "is not an integer: Infinity"),
    (10**30, "is out of range: 1000000000000000000000000000000")])
def test_inspect_an_epoch_that_is_no_integer_quarantines_its_sample(lake, tmp_path, totals,
                                                                     epoch, reason):
    log = inspect_log(sample(1), sample(2, epoch), sample(3, epoch=2))
    report, quarantine = ingest(lake, tmp_path / "log.json", log)
    assert quarantine == [[2, f"epoch {reason}"]]
    assert totals(ROWS)[0] == inspect_rows(1) + inspect_rows(3, epoch=2)


def test_inspect_an_epoch_written_as_integral_text_or_float_is_that_integer(lake, tmp_path,
                                                                             totals):
    # lib/ingest/values.py reads integers alike in every format (json_values refused these)
    log = inspect_log(sample(1, epoch="2"), sample(2, epoch=3.0), sample(3, epoch=" 4 "))
    report, quarantine = ingest(lake, tmp_path / "log.json", log)
    assert quarantine == []
    assert totals(ROWS)[0] == inspect_rows(1, epoch=2) + inspect_rows(2, epoch=3) + \
        inspect_rows(3, epoch=4)


def test_inspect_a_negative_epoch_is_quarantined_on_its_line(lake, tmp_path, totals):
    report, quarantine = ingest(lake, tmp_path / "log.json",
                                inspect_log(sample(1), sample(2, -1), sample(3)))
    assert quarantine == [[2, "epoch is negative: -1"]]
    assert totals(ROWS)[0] == inspect_rows(1) + inspect_rows(3)


def test_inspect_a_bad_score_is_quarantined_alone(lake, tmp_path, totals):
    text = json.dumps(inspect_log(
        sample(1),
        sample(2, match={"value": "C", "explanation": "e"}, f1={"value": "@INF@"}),
        sample(3, match={"value": "C", "explanation": "ab@@cd"}),
        sample(4, match={"value": "C", "explanation": {"why": 10**30}})))
    raw = text.replace('"@INF@"', "1e400").encode().replace(b"@@", b"\xff\xfe")
    report, quarantine = ingest(lake, tmp_path / "log.json", None, raw=raw)
    assert quarantine == [
        [2, "scores.f1.value is not a finite number: Infinity"],
        [3, "scores.match.explanation is not valid UTF-8 text: ab\ufffd\ufffdcd"]]
    assert totals(ROWS)[0] == inspect_rows(1) + inspect_rows(2) + inspect_rows(
        4, explanation='{"why": 1000000000000000000000000000000}')


def test_inspect_document_values(lake, tmp_path, totals):
    # a model that is no text is kept as its JSON text
    report, quarantine = ingest(lake, tmp_path / "model.json",
                                inspect_log(sample(1), sample(2), eval__model=10**30))
    assert quarantine == []
    assert totals(ROWS)[0] == inspect_rows(1, model="1000000000000000000000000000000") + \
        inspect_rows(2, model="1000000000000000000000000000000")
    # a model that is not UTF-8 text: every sample, each on its line
    report, quarantine = ingest(lake, tmp_path / "surrogate.json",
                                inspect_log(sample(1), sample(2), eval__model="\ud800"))
    assert quarantine == [[1, "eval.model is not valid UTF-8 text: \ufffd"],
                          [2, "eval.model is not valid UTF-8 text: \ufffd"]]


def test_inspect_a_document_time_that_is_no_time_quarantines_every_row(lake, tmp_path):
    report, quarantine = ingest(lake, tmp_path / "log.json", inspect_log(
        sample(1), sample(2), stats={"completed_at": 10**30}))
    assert quarantine == [[n, "ts is not a timestamp: 1000000000000000000000000000000"]
                          for n in (1, 2)]


def test_derive_eval_id_refuses_an_epoch_that_is_no_integer():
    assert derive_eval_id("run", "case", "m", 2) != derive_eval_id("run", "case", "m", None)
    for epoch in (1.5, "1", True):
        with pytest.raises(ValueError, match="epoch is not an integer"):
            derive_eval_id("run", "case", "m", epoch)
