"""promptfoo's output JSON (``promptfoo eval -o results.json``): format ``promptfoo``.

Each entry of ``results.results[]`` is one (test case, prompt, provider) evaluation. It becomes
one eval row with metric ``overall`` (``gradingResult.score`` / ``success``) plus one row per
assertion in ``gradingResult.componentResults`` (metric = the assertion's ``metric`` name, else
``assert:<type>``). Mapping: run_id = ``evalId``; case_id = the test's index (``testIdx``),
dataset = the config's description; version = the prompt label; model = the provider id; epoch =
the repeat number of the same (test, prompt, provider); ts = ``results.timestamp``. Latency, cost
and token usage go into ``attributes``. The eval_id hashes (run_id|model|version, case_id, metric,
epoch), so providers and prompts of one run never collide.

The document is read whole (promptfoo writes one JSON object), so memory grows with the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa

from lib.ingest.base import Chunk, Format, Reject
from lib.ingest.validate import derive_eval_id

CHUNK_ROWS = 50_000


def _detect(head: bytes, filename: str) -> bool:
    text = head.lstrip()
    return text.startswith(b"{") and b'"results"' in head and (
        b'"evalId"' in head or b'"gradingResult"' in head or b'"promptfoo' in head)


def _parse(stream: BinaryIO, filename: str) -> Iterator[Chunk]:
    doc = json.load(stream)
    results = (doc.get("results") or {}) if isinstance(doc, dict) else {}
    items = results.get("results") if isinstance(results, dict) else None
    if not isinstance(items, list):
        raise ValueError("not a promptfoo output: no results.results list")
    run_id = str(doc.get("evalId") or results.get("timestamp") or filename)
    ts = results.get("timestamp") or doc.get("createdAt")
    dataset = ((doc.get("config") or {}).get("description")) if isinstance(doc.get("config"),
                                                                          dict) else None
    rows, rejects, repeats = [], [], {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            rejects.append(Reject(None, json.dumps(item)[:2000], f"results[{i}] is not an object"))
            continue
        rows.extend(_rows(item, i, run_id, ts, dataset, repeats))
        if len(rows) >= CHUNK_ROWS:
            yield Chunk(tables={"evals": pa.Table.from_pylist(rows)}, rejects=rejects)
            rows, rejects = [], []
    yield Chunk(tables={"evals": pa.Table.from_pylist(rows)} if rows else {}, rejects=rejects)


def _rows(item: dict, index: int, run_id: str, ts, dataset, repeats: dict) -> list[dict]:
    provider = item.get("provider")
    model = provider.get("id") or provider.get("label") if isinstance(provider, dict) \
        else provider
    prompt = item.get("prompt") if isinstance(item.get("prompt"), dict) else {}
    version = prompt.get("label") or item.get("promptId") or str(item.get("promptIdx", ""))
    test_case = item.get("testCase") if isinstance(item.get("testCase"), dict) else {}
    case_id = str(item.get("testIdx", index))
    key = (case_id, model, version)
    repeats[key] = epoch = repeats.get(key, 0) + 1
    grading = item.get("gradingResult") if isinstance(item.get("gradingResult"), dict) else {}
    response = item.get("response") if isinstance(item.get("response"), dict) else {}
    attributes = {k: v for k, v in {
        "latency_ms": item.get("latencyMs"), "cost_usd": item.get("cost"),
        "token_usage": response.get("tokenUsage"), "description": test_case.get("description"),
        "vars": item.get("vars") or test_case.get("vars"), "error": item.get("error"),
        "promptfoo_id": item.get("id"),
    }.items() if v is not None}
    base = {"run_id": run_id, "ts": ts, "source": "offline", "dataset": dataset,
            "case_id": case_id, "epoch": epoch, "version": version, "model": model,
            "attributes": json.dumps(attributes, default=str)}
    id_run = f"{run_id}|{model}|{version}"
    score = grading.get("score", item.get("score"))
    passed = grading.get("pass", item.get("success"))
    out = [{**base, "eval_id": derive_eval_id(id_run, case_id, "overall", epoch),
            "metric": "overall", "score": _num(score), "passed": passed,
            "explanation": grading.get("reason") or item.get("error")}]
    seen: dict[str, int] = {}
    for comp in grading.get("componentResults") or []:
        if not isinstance(comp, dict):
            continue
        assertion = comp.get("assertion") if isinstance(comp.get("assertion"), dict) else {}
        metric = assertion.get("metric") or f"assert:{assertion.get('type', 'unknown')}"
        seen[metric] = n = seen.get(metric, 0) + 1
        if n > 1:  # the same assertion type twice on one test: keep both, apart
            metric = f"{metric}#{n}"
        out.append({**base, "eval_id": derive_eval_id(id_run, case_id, metric, epoch),
                    "metric": metric, "score": _num(comp.get("score")), "passed": comp.get("pass"),
                    "judge": assertion.get("provider") if isinstance(assertion.get("provider"),
                                                                     str) else None,
                    "explanation": comp.get("reason")})
    return out


def _num(value) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    return float(value) if isinstance(value, int | float) else None


FORMAT = Format(name="promptfoo", detect=_detect, parse=_parse, priority=40,
                doc="promptfoo eval output JSON (results.results[]) → eval rows.")
