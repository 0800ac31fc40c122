"""Inspect AI eval logs in JSON (``inspect eval --log-format json``): format ``inspect``.

One eval row per (sample, epoch, scorer). A score's value may be a letter — C (correct), I
(incorrect), P (partial), N (no answer) — mapped to passed True / False / None / False and score
1 / 0 / 0.5 / 0 (Inspect's own value_to_float); a number (score); a boolean (passed); or a dict of
several values (one row each, metric ``<scorer>/<key>``). Mapping: run_id = ``eval.run_id``,
dataset = ``eval.dataset.name``, case_id = sample ``id``, epoch = sample ``epoch``, model =
``eval.model``, version = ``eval.metadata.version`` if given, else the task name and model;
ts = the sample's ``completed_at`` if present, else ``stats.completed_at``, else ``eval.created``.
Older logs with a single ``score`` per sample are read too. The binary ``.eval`` (zip) format is
not read: convert it with ``inspect log convert --to json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa

from lib.ingest.base import Chunk, Format, Reject
from lib.ingest.validate import derive_eval_id

LETTERS = {"C": (True, 1.0), "I": (False, 0.0), "P": (None, 0.5), "N": (False, 0.0)}
CHUNK_ROWS = 50_000


def _detect(head: bytes, filename: str) -> bool:
    return head.lstrip().startswith(b"{") and b'"eval"' in head and b'"run_id"' in head \
        and (b'"task"' in head or b'"samples"' in head)


def _parse(stream: BinaryIO, filename: str) -> Iterator[Chunk]:
    doc = json.load(stream)
    if not isinstance(doc, dict) or not isinstance(doc.get("eval"), dict):
        raise ValueError("not an Inspect eval log: no 'eval' object")
    ev = doc["eval"]
    stats = doc.get("stats") if isinstance(doc.get("stats"), dict) else {}
    dataset = ev.get("dataset") if isinstance(ev.get("dataset"), dict) else {}
    metadata = ev.get("metadata") if isinstance(ev.get("metadata"), dict) else {}
    run_id = str(ev.get("run_id") or ev.get("eval_id") or filename)
    model = ev.get("model")
    version = metadata.get("version") or f"{ev.get('task')}@{model}"
    default_ts = stats.get("completed_at") or ev.get("created")
    rows, rejects = [], []
    for i, sample in enumerate(doc.get("samples") or []):
        if not isinstance(sample, dict):
            rejects.append(Reject(None, json.dumps(sample)[:2000],
                                  f"samples[{i}] is not an object"))
            continue
        scores = sample.get("scores")
        if not isinstance(scores, dict):
            scores = {"score": sample["score"]} if isinstance(sample.get("score"), dict) else {}
        case_id = str(sample.get("id", i))
        epoch = sample.get("epoch", 1)
        base = {"run_id": run_id, "ts": sample.get("completed_at") or default_ts,
                "source": "offline", "dataset": dataset.get("name"), "case_id": case_id,
                "epoch": epoch, "version": version, "model": model}
        for scorer, score in scores.items():
            if not isinstance(score, dict):
                score = {"value": score}
            value = score.get("value")
            parts = value.items() if isinstance(value, dict) else [(None, value)]
            for key, v in parts:
                metric = scorer if key is None else f"{scorer}/{key}"
                passed, num, label = _interpret(v)
                rows.append({**base, "eval_id": derive_eval_id(run_id, case_id, metric, epoch),
                             "metric": metric, "score": num, "passed": passed, "label": label,
                             "explanation": score.get("explanation"),
                             "attributes": json.dumps({"answer": score.get("answer"),
                                                       "target": sample.get("target")},
                                                      default=str)})
        if len(rows) >= CHUNK_ROWS:
            yield Chunk(tables={"evals": pa.Table.from_pylist(rows)}, rejects=rejects)
            rows, rejects = [], []
    yield Chunk(tables={"evals": pa.Table.from_pylist(rows)} if rows else {}, rejects=rejects)


def _interpret(value) -> tuple[bool | None, float | None, str | None]:
    """(passed, score, label) of one Inspect score value."""
    if isinstance(value, str) and value.upper() in LETTERS:
        passed, num = LETTERS[value.upper()]
        return passed, num, value.upper()
    if isinstance(value, bool):
        return value, 1.0 if value else 0.0, None
    if isinstance(value, int | float):
        return None, float(value), None
    return None, None, None if value is None else str(value)


FORMAT = Format(name="inspect", detect=_detect, parse=_parse, priority=40,
                doc="Inspect AI eval log JSON (samples[].scores) → eval rows.")
