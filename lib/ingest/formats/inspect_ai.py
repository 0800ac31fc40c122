"""Inspect AI eval logs in JSON (``inspect eval --log-format json``): format ``inspect``.

One eval row per (sample, epoch, scorer). A score's value may be a letter — C (correct), I
(incorrect), P (partial), N (no answer) — mapped to passed True / False / None / False and score
1 / 0 / 0.5 / 0 (Inspect's own value_to_float); a number (score); a boolean (passed); or a dict of
several values (one row each, metric ``<scorer>/<key>``); text as value_to_float reads it ("yes" /
"true" pass with score 1, "no" / "false" fail with 0, a number's digits its score; the text kept as
the label). Mapping: run_id = ``eval.run_id``,
dataset = ``eval.dataset.name``, case_id = sample ``id``, epoch = sample ``epoch``, model =
``eval.model``, version = ``eval.metadata.version`` if given, else the task (and its
``task_version``), model and git commit (``_run_version``);
ts = the sample's ``completed_at`` if present, else ``stats.completed_at``, else ``eval.created``.
Older logs with a single ``score`` per sample are read too. A sample's eval ids derive from its
``uuid`` when it has one: ``inspect eval-retry`` writes a new log (new run and eval ids) that copies
the samples the first run completed, uuid and all, so ingesting both logs (the folder Inspect
leaves) counts each of those samples once; without a uuid they derive from the log. A sample that
ended in an error without a score, a sample invalidated in Inspect (``invalidate_samples``: not
stored, as its eval set's retry runs it again), and a log whose run did not succeed, are said in the
report's notes, as is a run of several epochs that Inspect reduces by other than their mean
(``Epochs(3, "mode")``, ``pass_at_2``…): Inspect's metrics are then of each sample's reduced score,
not of its epochs' scores as Sightline's pass rates are. Inspect's default binary ``.eval`` log (a
zip) is format ``inspect-eval`` (lib/ingest/formats/inspect_eval.py): no conversion needed; it
shares :func:`log_chunks` with this reader, so both forms of a log give the same rows and quarantine
lines. Field names checked against logs written by inspect_ai 0.3.285
(tests/ingest/fixtures/inspect/).

Bad values: a sample holding a value none of its rows can be stored with (an ``epoch`` that is
not an integer, say) is quarantined whole; a score holding one (a value that is no finite number,
say) is quarantined alone, its sample's other scores going on. Either way the line is the
sample's position in ``samples`` (from 1) and the reason names the field and the value ("epoch
is not an integer: abc"). A bad value of the document itself (``eval.dataset`` not an object,
say) quarantines every sample with that reason. A text field takes any JSON value: one that is not
text is kept as its JSON text. Text that is not valid UTF-8 (bytes that are not, or a lone
surrogate escape such as ``"\\ud800"``) quarantines the sample or score that stores it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import pyarrow as pa

from lib.ingest.base import Chunk, Format, Reject
from lib.ingest.formats.json_values import (
    BadValue,
    json_value,
    obj,
    read_json,
    reject,
    text,
)
from lib.ingest.streams import text_start
from lib.ingest.validate import derive_eval_id
from lib.ingest.values import integer, number

ERRORED = "sample(s) that ended in an error, without a score"
# A sample invalidated (inspect_ai.log.invalidate_samples: its result is not to be trusted) is
# run again by the eval set's retry, under a new uuid: stored, it counted in every pass rate, and
# twice, with its rerun, once the retry's log was ingested (found in review).
INVALIDATED = ("sample(s) invalidated in Inspect (their results marked as not to be trusted): "
               "not stored; the eval set's retry runs them again and its log adds them.")
LETTERS = {"C": (True, 1.0), "I": (False, 0.0), "P": (None, 0.5), "N": (False, 0.0)}
CHUNK_ROWS = 50_000


def _detect(head: bytes, filename: str) -> bool:
    return text_start(head).startswith(b"{") and b'"eval"' in head \
        and b'"run_id"' in head and (b'"task"' in head or b'"samples"' in head)


def _parse(stream: BinaryIO, filename: str) -> Iterator[Chunk]:
    doc = read_json(stream)
    if not isinstance(doc, dict) or not isinstance(doc.get("eval"), dict):
        raise ValueError("not an Inspect eval log: no 'eval' object")
    samples = doc.get("samples") or []
    if not isinstance(samples, list):
        raise ValueError("not an Inspect eval log: 'samples' is not a list")
    yield from log_chunks(doc, ((i + 1, sample, None) for i, sample in enumerate(samples)),
                          filename)


UNFINISHED = ("log(s) of a run that has not finished (still running, or its process died): the "
              "samples written so far are stored; the finished log, or a retry's, adds the "
              "others.")


def log_chunks(doc: dict, samples: Iterable[tuple[int, object, str | None]], filename: str,
               document: str | None = None) -> Iterator[Chunk]:
    """The chunks of an Inspect log, whatever it was stored as (JSON here, ``.eval`` in
    lib/ingest/formats/inspect_eval.py): eval rows and rejects, at most ``CHUNK_ROWS`` rows each.

    ``doc`` is the log without its samples (``eval``, ``stats``: the values every row shares);
    ``samples`` yields ``(line, sample, member)`` one sample at a time, so only one needs to be in
    memory: ``line`` is the sample's position in the log (from 1, its quarantine line), ``sample``
    the parsed sample or a :class:`Reject` already made for one that could not be read, and
    ``member`` where it was stored when that is not ``samples[line - 1]`` (a ``.eval`` member
    name, which then starts each of the sample's reasons), else None. ``document`` likewise names
    where ``doc`` was (``header.json``) in the reason of a bad value of the document itself.
    """
    try:
        shared, problem = _document(doc, filename), None
    except BadValue as exc:  # a value every row would hold: no row can be stored
        shared, problem = None, _at(document, str(exc))
    rows, rejects, not_read = [], [], {}
    status = doc.get("status")
    if status == "started" or (document or "").startswith("_journal/"):
        # (a .eval log without its header.json, or a JSON log "started": stored as if it were a
        # whole run, unsaid, found in review)
        not_read[UNFINISHED] = 1
    elif isinstance(status, str) and status != "success":
        not_read[f"log(s) of a run that ended as {status!r}: its scored samples are stored, "
                 "a retry's log adds the others."] = 1
    reduced = _reducers(doc)
    if reduced:
        not_read[REDUCED.format(reducers=", ".join(reduced))] = 1
    for line, sample, member in samples:
        if isinstance(sample, Reject):
            rejects.append(sample)
            continue
        if isinstance(sample, dict) and sample.get("error") and not sample.get("scores") \
                and sample.get("score") is None:
            not_read[ERRORED] = not_read.get(ERRORED, 0) + 1
            continue
        if isinstance(sample, dict) and sample.get("invalidation") is not None:
            not_read[INVALIDATED] = not_read.get(INVALIDATED, 0) + 1
            continue
        reason = problem
        if reason is None and not isinstance(sample, dict):
            reason = f"{member or f'samples[{line - 1}]'} is not an object"
        if reason is None:
            try:
                base, target, scores = _sample(sample, line - 1, shared)
            except BadValue as exc:
                reason = _at(member, str(exc))
        if reason is not None:
            rejects.append(reject(line, sample, reason))
            continue
        key = base.pop("_key") or shared["log"]
        for field, scorer, score in scores:
            try:
                rows.extend(_score_rows(base, target, field, scorer, score, key))
            except BadValue as exc:
                rejects.append(reject(line, sample, _at(member, str(exc))))
        if len(rows) >= CHUNK_ROWS:
            yield Chunk(tables={"evals": pa.Table.from_pylist(rows)}, rejects=rejects,
                        not_read=not_read)
            rows, rejects, not_read = [], [], {}
    yield Chunk(tables={"evals": pa.Table.from_pylist(rows)} if rows else {}, rejects=rejects,
                not_read=not_read)


# Inspect reduces a sample's epochs to one score (its ``epochs_reducer``, the mean by default)
# before its metrics: a pass rate over every epoch's score is the mean reducer's figure alone.
# Unsaid, a run of 3 epochs reduced by mode read 46.7% where Inspect says accuracy 0.4 (review).
REDUCED = ("log(s) whose samples' epochs Inspect reduces by {reducers}, not by their mean: "
           "Inspect's metrics are of each sample's reduced score, while each epoch is stored as "
           "its own eval (a test case's pass rate and mean score are over its epochs), so the "
           "figures differ from Inspect's.")


def _reducers(doc: dict) -> list[str]:
    """The reducers other than ``mean`` that the log's run of several epochs used (its
    ``results.scores[].reducer``, else ``eval.config.epochs_reducer``), in order; [] when one
    epoch or the mean alone."""
    config = doc["eval"].get("config")
    config = config if isinstance(config, dict) else {}
    epochs = config.get("epochs")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 2:
        return []
    results = doc.get("results")
    scores = results.get("scores") if isinstance(results, dict) else None
    named = [s.get("reducer") for s in scores if isinstance(s, dict)] \
        if isinstance(scores, list) else []
    listed = config.get("epochs_reducer")
    if not any(named) and isinstance(listed, list):
        named = listed
    return list(dict.fromkeys(r for r in named if isinstance(r, str) and r and r != "mean"))


def _at(where: str | None, reason: str) -> str:
    """``reason`` prefixed with the ``.eval`` member it is about ("samples/2_epoch_1.json: epoch
    is not an integer: abc"); as it is when there is none (a JSON log: the line says where)."""
    return reason if where is None else f"{where}: {reason}"


def _document(doc: dict, filename: str) -> dict:
    """The values every row of the log shares: run_id, model, version, dataset, default ts."""
    ev = doc["eval"]
    stats = obj("stats", doc.get("stats"))
    dataset = obj("eval.dataset", ev.get("dataset"))
    metadata = obj("eval.metadata", ev.get("metadata"))
    model = text("eval.model", ev.get("model"))
    run_id = text("eval.run_id", ev.get("run_id"))
    eval_id = text("eval.eval_id", ev.get("eval_id"))
    task = text("eval.task", ev.get("task"))
    return {"run_id": run_id or eval_id or filename,
            # One `inspect eval` of several models or tasks writes a log for each, all with the
            # run's run_id, and the same sample ids and scorer names: the log's own eval_id
            # (else its task and model) keeps their rows apart.
            "log": eval_id or f"{run_id or filename}|{task}|{model}",
            "model": model,
            "version": text("eval.metadata.version", metadata.get("version"))
            or _run_version(ev, task, model),
            "dataset": text("eval.dataset.name", dataset.get("name")),
            "ts": text("stats.completed_at", stats.get("completed_at"))
            or text("eval.created", ev.get("created"))}


def _run_version(ev: dict, task: str | None, model: str | None) -> str:
    """The version of a run without ``metadata.version``: its task (with ``task_version`` when
    set), model and the git commit it ran at (``+dirty`` with changes not committed), so a run
    after a change is another version to compare ("arith@mockllm/model 6f2ab5f+dirty"). Task
    and model alone made the runs of every commit one version, pooled (found in review)."""
    task_version = ev.get("task_version")
    name = f"{task} v{text('eval.task_version', task_version)}" \
        if task_version not in (None, 0, "0", "") else task
    revision = obj("eval.revision", ev.get("revision"))
    commit = text("eval.revision.commit", revision.get("commit"))
    at = f" {commit[:8]}{'+dirty' if revision.get('dirty') is True else ''}" if commit else ""
    return f"{name}@{model}{at}"


def _sample(sample: dict, index: int, shared: dict) -> tuple[dict, object, list[tuple]]:
    """(the columns the sample's rows share, its target, its scores as (field, scorer, score))."""
    epoch = sample.get("epoch", 1)  # null: no epoch (an eval_id is derived without one)
    base = {"run_id": shared["run_id"],
            "ts": text("completed_at", sample.get("completed_at")) or shared["ts"],
            "source": "offline", "dataset": shared["dataset"],
            "case_id": text("id", sample.get("id", index)),
            "epoch": None if epoch is None else integer(epoch, "epoch"),
            "version": shared["version"], "model": shared["model"], "_line": index + 1,
            # what the sample's eval ids derive from (see the module's docstring)
            "_key": f"sample {uuid}" if (uuid := text("uuid", sample.get("uuid"))) else None}
    target = json_value("target", sample.get("target"))
    if sample.get("scores") is None and sample.get("score") is not None:  # an older log
        return base, target, [("score", "score", sample["score"])]
    return base, target, [(f"scores.{name}", name, score)
                          for name, score in obj("scores", sample.get("scores")).items()]


def _score_rows(base: dict, target, field: str, scorer: str, score, log: str) -> list[dict]:
    """The rows of one score; ``field`` is where it is in the sample, for reasons; ``log`` tells
    the sample apart from those of the run's other logs (eval_ids are derived from it: the
    sample's uuid, else the log's id)."""
    scorer = text(field, scorer)
    if not isinstance(score, dict):
        score, value_field = {"value": score}, field
    else:
        value_field = f"{field}.value"
    value = score.get("value")
    parts = value.items() if isinstance(value, dict) else [(None, value)]
    explanation = text(f"{field}.explanation", score.get("explanation"))
    attributes = json.dumps({"answer": json_value(f"{field}.answer", score.get("answer")),
                             "target": target})
    rows = []
    for key, v in parts:
        at = value_field if key is None else f"{value_field}.{key}"
        metric = scorer if key is None else f"{scorer}/{text(at, key)}"
        passed, num, label = _interpret(at, v)
        rows.append({**base, "eval_id": derive_eval_id(log, base["case_id"], metric,
                                                       base["epoch"]),
                     "metric": metric, "score": num, "passed": passed, "label": label,
                     "explanation": explanation, "attributes": attributes})
    return rows


# A number as text, as value_to_float reads one: digits with at most one decimal point.
_DIGITS = re.compile(r"(?:\d+\.?\d*|\.\d+)", re.ASCII)


def _interpret(field: str, value) -> tuple[bool | None, float | None, str | None]:
    """(passed, score, label) of one Inspect score value."""
    if isinstance(value, str) and value.upper() in LETTERS:
        passed, num = LETTERS[value.upper()]
        return passed, num, value.upper()
    if isinstance(value, bool):
        return value, 1.0 if value else 0.0, None
    if isinstance(value, int | float):
        return None, number(value, field, signed=True), None
    if isinstance(value, str):
        # as Inspect's value_to_float reads a text value (a model-graded "yes", a "0.8"),
        # so its accuracy and ours agree; any other text is a label without a score
        word = value.strip().lower()
        if word in ("yes", "true"):
            return True, 1.0, value
        if word in ("no", "false"):
            return False, 0.0, value
        # ASCII digits only: str.isdigit also passes "²" and "①", which float() refuses (the
        # whole file failed on one such label)
        if _DIGITS.fullmatch(word):
            return None, number(float(word), field, signed=True), value
    return None, None, text(field, value)


FORMAT = Format(name="inspect", detect=_detect, parse=_parse, priority=40,
                doc="Inspect AI eval log JSON (samples[].scores) → eval rows.")
