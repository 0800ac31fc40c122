"""promptfoo's output JSON (``promptfoo eval -o results.json``): format ``promptfoo``.

Each entry of ``results.results[]`` is one (test case, prompt, provider) evaluation. It becomes one
eval row with metric ``overall`` (``gradingResult.score`` / ``success``) plus one row per assertion
in ``gradingResult.componentResults`` (metric = the assertion's ``metric`` name, else
``assert:<type>``, ``#2``, ``#3``… for the same type again; an ``assert-set``'s own result
``assert:assert-set``), except that the assertions sharing one ``metric`` name are one row of that
metric, as promptfoo scores a named metric: score its ``namedScores`` value (their weighted mean),
passed when all of them passed. Mapping: run_id = ``evalId``; case_id = what the test is (its
description and variables, ``_case_id``, and, when the output has other tests of them, a hash of its
assertions; ``testIdx`` numbers repeats and moves when tests are added), dataset = the config's
description; version = the prompt label (else its id, index, or, in an older output that has none of
them, its text); model = the provider's label (one configuration of a provider, such as a
temperature), else its id; epoch = the repeat number of the same (test, prompt, provider); ts =
``results.timestamp``. A result that errored (promptfoo's ``failureReason`` 2: a provider's 429, a
timeout) is no grade: its ``overall`` row has label ``error`` and no score or pass. Latency, cost
and token usage go into ``attributes``. The eval_id hashes (run_id|model|version, case_id, metric,
epoch), so providers and prompts of one run never collide.

Bad values: a result holding a value it cannot be stored with is quarantined whole, its line
being its position in ``results.results`` (from 1), its reason naming the field and the value
("gradingResult.pass is not a boolean: yes"); the other results go on. A bad value of the
document itself (``config`` not an object, say) quarantines every result with that reason. A text
field takes any JSON value: one that is not text is kept as its JSON text. Text that is not valid
UTF-8 (bytes that are not, or a lone surrogate escape such as ``"\\ud800"``) quarantines the
result that stores it.

The document is read whole (promptfoo writes one JSON object), so memory grows with the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa

from lib.ingest.base import Chunk, Format
from lib.ingest.formats.json_values import (
    BadValue,
    array,
    boolean,
    json_value,
    obj,
    read_json,
    reject,
    text,
)
from lib.ingest.streams import text_start
from lib.ingest.validate import derive_eval_id
from lib.ingest.values import number

CHUNK_ROWS = 50_000
# promptfoo's ResultFailureReason: 0 none, 1 an assertion failed, 2 an error.
FAILURE_ERROR = 2


# -- the format ---------------------------------------------------------------------------------
def _detect(head: bytes, filename: str) -> bool:
    return text_start(head).startswith(b"{") and b'"results"' in head and (
        b'"evalId"' in head or b'"gradingResult"' in head or b'"promptfoo' in head)


def _parse(stream: BinaryIO, filename: str) -> Iterator[Chunk]:
    doc = read_json(stream)
    results = (doc.get("results") or {}) if isinstance(doc, dict) else {}
    items = results.get("results") if isinstance(results, dict) else None
    if not isinstance(items, list):
        raise ValueError("not a promptfoo output: no results.results list")
    try:
        shared, problem = {**_document(doc, results, filename),
                           "several_tests": _several_tests(items)}, None
    except BadValue as exc:  # a value every row would hold: no row can be stored
        shared, problem = None, str(exc)
    rows, rejects, repeats = [], [], {}
    for i, item in enumerate(items):
        reason = problem or (None if isinstance(item, dict) else f"results[{i}] is not an object")
        if reason is None:
            try:
                rows.extend(_rows(item, i, shared, repeats))
            except BadValue as exc:
                reason = str(exc)
        if reason is not None:
            rejects.append(reject(i + 1, item, reason))
        if len(rows) >= CHUNK_ROWS:
            yield Chunk(tables={"evals": pa.Table.from_pylist(rows)}, rejects=rejects)
            rows, rejects = [], []
    yield Chunk(tables={"evals": pa.Table.from_pylist(rows)} if rows else {}, rejects=rejects)


def _document(doc: dict, results: dict, filename: str) -> dict:
    """The values every row of the document shares: run_id, ts, dataset."""
    stamp, config = results.get("timestamp"), obj("config", doc.get("config"))
    return {"run_id": text("evalId", doc.get("evalId")) or text("results.timestamp", stamp)
            or filename,
            "ts": text("results.timestamp", stamp) or text("createdAt", doc.get("createdAt")),
            "dataset": text("config.description", config.get("description"))}


def _case_id(item: dict, test_case: dict, index: int) -> str:
    """A test case's id: what the test is, its description and variables ("capital of France ·
    country=France"; a long one cut, with a hash of the whole), so a repeat of it (``--repeat``)
    is an epoch of one case and a run after tests were added pairs with the one before.
    ``testIdx`` is no such id: promptfoo numbers every run of a test, each repeat too, and a
    test added in the middle moves every later number (found in review). A test with neither
    (an older layout): its index, as before."""
    variables = item.get("vars") or test_case.get("vars")
    description = text("testCase.description", test_case.get("description"))
    parts = [description] if description else []
    if isinstance(variables, dict) and variables:
        parts.append(", ".join(
            f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
            for k, v in sorted(variables.items())))
    elif variables:
        parts.append(json.dumps(variables, ensure_ascii=False, sort_keys=True, default=str))
    if not parts:
        return str(index) if item.get("testIdx") is None else text("testIdx", item["testIdx"])
    return _cut(" · ".join(parts))


def _several_tests(items: list) -> set[str]:
    """The case ids (:func:`_case_id`) that more than one test of the document has: tests of
    the same description and variables but other assertions. A repeat (``--repeat``) is the
    same test again, the same assertions; two tests that only check the same input differently
    were one case, each the other's "epoch" (found in review). Such cases are then told apart by
    their assertions, the others keep their id."""
    first: dict[str, str] = {}
    several = set()
    for index, item in enumerate(items):
        try:
            test_case = obj("testCase", item.get("testCase")) if isinstance(item, dict) else {}
            case_id = _case_id(item, test_case, index) if isinstance(item, dict) else None
        except BadValue:  # (the result is quarantined with its reason where it is read)
            continue
        if case_id is not None and \
                first.setdefault(case_id, _assertions(test_case)) != _assertions(test_case):
            several.add(case_id)
    return several


def _assertions(test_case: dict) -> str:
    """A test's assertions as one text (what tells two tests of one input apart)."""
    return json.dumps(test_case.get("assert"), ensure_ascii=False, sort_keys=True, default=str)


def _digest(whole: str) -> str:
    return hashlib.sha256(whole.encode("utf-8", "surrogatepass")).hexdigest()[:10]


def _cut(whole: str) -> str:
    """``whole``, or when longer than :data:`CASE_ID_CHARS` its start with a hash of the whole
    (two long texts that start alike stay apart)."""
    if len(whole) <= CASE_ID_CHARS:
        return whole
    return f"{whole[:CASE_ID_CHARS - 12]}… #{_digest(whole)}"


CASE_ID_CHARS = 120


def _rows(item: dict, index: int, shared: dict, repeats: dict) -> list[dict]:
    """The eval rows of one result; :class:`BadValue` if a value of it cannot be stored."""
    provider = item.get("provider")
    if isinstance(provider, dict):
        # A label names one configuration of a provider (promptfoo's way to compare two
        # temperatures of one model): the model under test, or the two would read as one.
        model = text("provider.label", provider.get("label")) \
            or text("provider.id", provider.get("id"))
    else:
        model = text("provider", provider)
    prompt = obj("prompt", item.get("prompt"))
    # An older output (version 2) names a prompt by neither label, id nor index: its text
    # tells the prompts apart ("" made one version of them all, each prompt's result of a test
    # another epoch of it; found in review).
    version = text("prompt.label", prompt.get("label")) or text("promptId", item.get("promptId")) \
        or text("promptIdx", item.get("promptIdx")) \
        or _cut(text("prompt.display", prompt.get("display"))
                or text("prompt.raw", prompt.get("raw")) or "") or None
    test_case = obj("testCase", item.get("testCase"))
    case_id = _case_id(item, test_case, index)
    if case_id in shared["several_tests"]:
        case_id = f"{case_id} · asserts #{_digest(_assertions(test_case))}"
    key = (case_id, model, version)
    repeats[key] = epoch = repeats.get(key, 0) + 1  # counted even if the result is quarantined
    grading = obj("gradingResult", item.get("gradingResult"))
    response = obj("response", item.get("response"))
    vars_field = "vars" if item.get("vars") else "testCase.vars"
    attributes = {name: json_value(field, value) for name, field, value in [
        ("latency_ms", "latencyMs", item.get("latencyMs")), ("cost_usd", "cost", item.get("cost")),
        ("token_usage", "response.tokenUsage", response.get("tokenUsage")),
        ("description", "testCase.description", test_case.get("description")),
        ("vars", vars_field, item.get("vars") or test_case.get("vars")),
        ("error", "error", item.get("error")), ("promptfoo_id", "id", item.get("id")),
        ("test_index", "testIdx", item.get("testIdx")),
        ("provider_id", "provider.id",
         provider.get("id") if isinstance(provider, dict) and provider.get("label") else None),
    ] if value is not None}
    # promptfoo keeps errors (a provider's 429, a timeout: failureReason 2) apart from failed
    # assertions (1): an error is no answer to grade, not a wrong one
    errored = item.get("failureReason") == FAILURE_ERROR or (
        item.get("error") is not None and not grading)
    base = {"run_id": shared["run_id"], "ts": shared["ts"], "source": "offline",
            "dataset": shared["dataset"], "case_id": case_id, "epoch": epoch, "version": version,
            "model": model, "attributes": json.dumps(attributes), "_line": index + 1}
    id_run = f"{shared['run_id']}|{model}|{version}"
    score_field = "gradingResult.score" if "score" in grading else "score"
    pass_field = "gradingResult.pass" if "pass" in grading else "success"
    out = [{**base, "eval_id": derive_eval_id(id_run, case_id, "overall", epoch),
            "metric": "overall",
            # a score may be a boolean (1 or 0); one below 0 is kept, as it always was
            "score": None if errored else number(grading.get("score", item.get("score")),
                                                 score_field, signed=True, booleans=True),
            "passed": None if errored else boolean(pass_field,
                                                   grading.get("pass", item.get("success"))),
            "label": "error" if errored else None,
            "judge": None,  # every row has every column: from_pylist reads the first row's keys
            "explanation": text("gradingResult.reason", grading.get("reason"))
            or text("error", item.get("error"))}]
    # One row per assertion, but one per named metric: assertions that share a ``metric`` are
    # one score to promptfoo (its namedScores, their weighted mean), as its web view shows it.
    # Numbered apart ("accuracy", "accuracy#2"), "accuracy" was the first such assertion of
    # each test alone (2 of them, one passed, one failed: accuracy 100% and accuracy#2 0%
    # where promptfoo says 0.5; found in review).
    named: dict[str, list[dict]] = {}
    seen: dict[str, int] = {}
    components = array("gradingResult.componentResults", grading.get("componentResults"))
    for j, comp in enumerate(components):
        at = f"gradingResult.componentResults[{j}]"
        if comp is None:  # nothing in it to store
            continue
        comp = obj(at, comp)
        assertion = obj(f"{at}.assertion", comp.get("assertion"))
        read = {"score": number(comp.get("score"), f"{at}.score", signed=True, booleans=True),
                "passed": boolean(f"{at}.pass", comp.get("pass")), "label": None,
                "judge": text(f"{at}.assertion.provider", assertion.get("provider")),
                "explanation": text(f"{at}.reason", comp.get("reason"))}
        name = text(f"{at}.assertion.metric", assertion.get("metric"))
        if name and (name == "overall" or name.startswith("assert:")):
            # (the names this module gives the test's own result and unnamed assertions: a
            # metric named "overall" took the overall row's eval_id, and one was dropped as
            # the other's duplicate)
            name = f"{name} (named metric)"
        if name:
            if name not in named:
                named[name] = []
                out.append({**base, "metric": name, "_parts": named[name]})
            named[name].append({**read, "_weight": assertion.get("weight", 1)})
            continue
        metric = f"assert:{_assertion_type(at, comp, assertion)}"
        seen[metric] = n = seen.get(metric, 0) + 1
        if n > 1:  # the same assertion type twice on one test: keep both, apart
            metric = f"{metric}#{n}"
        out.append({**base, "eval_id": derive_eval_id(id_run, case_id, metric, epoch),
                    "metric": metric, **read})
    scores = obj("gradingResult.namedScores", grading.get("namedScores")
                 if grading.get("namedScores") is not None else item.get("namedScores"))
    for row in out:
        parts = row.pop("_parts", None)
        if parts is not None:
            row.update(eval_id=derive_eval_id(id_run, case_id, row["metric"], epoch),
                       **_named_score(row["metric"], parts, scores))
    return out


def _assertion_type(at: str, comp: dict, assertion: dict) -> str:
    """What kind of assertion a component result is: its ``assertion.type``; an ``assert-set``'s
    result has no assertion, its type is in ``metadata.assertionSet`` (it read "unknown")."""
    kind = assertion.get("type")
    if kind is None:
        metadata = comp.get("metadata")
        group = metadata.get("assertionSet") if isinstance(metadata, dict) else None
        kind = group.get("type") if isinstance(group, dict) else None
    return text(f"{at}.assertion.type", kind) or "unknown"


def _named_score(metric: str, parts: list[dict], scores: dict) -> dict:
    """The columns of a named metric's row from its assertions' results (``parts``, each with
    its assertion's ``_weight``): one assertion's as they are; several as promptfoo scores them:
    its ``namedScores`` value, else their mean weighted as promptfoo weighs them; passed when all
    passed, failed when one failed; their reasons joined."""
    weights = [p.pop("_weight") for p in parts]
    if len(parts) == 1:
        return parts[0]
    score = number(scores.get(metric), f"gradingResult.namedScores.{metric}", signed=True,
                   booleans=True)
    if score is None:
        known = [(p["score"], w) for p, w in zip(parts, weights, strict=True)
                 if p["score"] is not None and isinstance(w, int | float)]
        total = sum(w for _, w in known)
        score = sum(v * w for v, w in known) / total if total else None
    passes = [p["passed"] for p in parts]
    judges = {p["judge"] for p in parts}
    return {"score": score,
            "passed": False if False in passes else None if None in passes else True,
            "label": None, "judge": judges.pop() if len(judges) == 1 else None,
            "explanation": "; ".join(p["explanation"] for p in parts if p["explanation"])
            or None}


FORMAT = Format(name="promptfoo", detect=_detect, parse=_parse, priority=40,
                doc="promptfoo eval output JSON (results.results[]) → eval rows.")
