"""No single value fails a file, in any format besides canonical rows (test_bad_values.py does
those): OTLP GenAI and OpenInference spans (both JSON encodings), Langfuse exports (JSONL and a JSON
array), promptfoo and Inspect documents, and a user's YAML mapping (JSONL, CSV and a JSON
document). Each file holds records that each replace ONE field of a valid record with a hostile
value (fields grouped by kind, one file per group), between two valid records; a field of a whole
document (promptfoo, Inspect) gets one document per value. For every file: no error and no
exception escaping the ingest, the valid records are stored, every record (a model-call span, a
generation, a score, an eval sample) is stored or quarantined (found by its line or its marker),
or counted as a duplicate, and no bytes that are not UTF-8 reach the lake.

Project rule: bad input gets a clear message naming the file and line, is kept in quarantine with
its reason, and never stops the good rows.
"""

from __future__ import annotations

import base64
import copy
import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib.ingest.pipeline import ingest_paths
from lib.store import Engine, Lake

# -- hostile values ------------------------------------------------------------------------------
RAW_PREFIX = "\x1eRAW:"


def raw(text: str) -> str:
    """A value written into the file as the JSON text ``text`` (json.dumps cannot write 1e400)."""
    return f"{RAW_PREFIX}{text}\x1e"


BAD = "\x1fBAD\x1f"  # replaced by bytes that are not UTF-8 once the file is encoded
BAD_UTF8 = raw(f'"ab{BAD}cd"')
HOSTILE = [
    "", "abc", "1e400", raw("1e400"), -1, "-1", "NaN", raw("NaN"), "Infinity", raw("-Infinity"),
    1e308, -1e308, 10**30, -(10**30), "99999999999999999999999", 1.5, "1.5", True, False, [1, 2],
    {"a": 1}, None, "x" * 5000, "\u0000", "\ud800", 1e20, "1e20", -1e20, "2026-13-45",
    "18446744073709551616", 18446744073709551616, -9223372036854775809, "-9223372036854775809",
    "9223372036854775807999", 0, "  12  ", "0x10", "0e99999999999999999999",
    "1e-99999999999999999999",
]
# For a field of the whole document (one file per value): fewer, the ones that differ most.
DOC_HOSTILE = ["", raw("1e400"), 10**30, True, {"a": 1}, None, "x" * 5000, "\ud800",
               "2026-13-45"]
# A falsy "attributes" or "spans" is proto3 JSON's default: no attributes (a span that is no
# model call, stored in spans) or no spans; such records are not lost.
TRUTHY = [v for v in HOSTILE if v not in ("", False, None, 0)]
# What a field holding JSON as text (OpenInference llm.invocation_parameters, metadata) may hold.
JSON_TEXTS = [
    "{", "{}", "[]", "null", '{"model": 1e400}', '{"model": 100000000000000000000000000000}',
    '{"model": [1, 2]}', '{"model": {"a": 1}}', '{"model": null}', '{"model": true}',
    '{"model": ""}', '{"model": "\\u0000"}', '{"model": "\\ud800"}', '{"a": 1, "a": 2}',
    '{"feature": 1e400}', '{"feature": 100000000000000000000000000000}', '{"feature": [1]}',
    '{"session_id": {"a": 1}}', '{"user_id": 18446744073709551616}', '{"service": true}',
    '{"prompt_version": -1e308}', "[1e400]",
]
_RAW_RE = re.compile(r'"\\u001eRAW:(?:[^"\\]|\\.)*?\\u001e"')


def json_text(obj) -> str:
    """JSON text of ``obj`` with the raw(...) values spliced in as written."""
    return _RAW_RE.sub(lambda m: json.loads(m.group(0))[len(RAW_PREFIX):-1], json.dumps(obj))


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass").replace(BAD.encode(), b"\xff\xfe")


def jsonl(records: list) -> tuple[bytes, list[int]]:
    return encode("".join(json_text(r) + "\n" for r in records)), list(range(1, len(records) + 1))


def json_array(records: list) -> tuple[bytes, list[int]]:
    """A JSON array, one element per line: element i starts on line i + 2."""
    return (encode("[\n" + ",\n".join(json_text(r) for r in records) + "\n]\n"),
            list(range(2, len(records) + 2)))


def mark(n: int) -> str:
    return f"rec{n:05d}x"


MARKER = re.compile(r"rec[0-9]{5,}x")


# -- cases ---------------------------------------------------------------------------------------
@dataclass
class Spec:
    """One format: a valid record ``base(n, marker)``, the fields to spoil, a file writer.

    ``fields``: name -> (setter(record, value), values); ``group(name)`` names the file the
    field's records go to. ``document``: fields of the document, not of a record: one file per
    value. ``write(records, hostile)`` -> (bytes, the line of each record or None); ``hostile`` is
    (setter, value) for a document field.
    """

    suffix: str
    base: Callable[[int, str], dict]
    fields: dict[str, tuple[Callable, list]]
    write: Callable[..., tuple[bytes, list]]
    document: dict[str, tuple[Callable, list]] = field(default_factory=dict)
    mapping: str | None = None
    group: Callable[[str], str] = lambda name: name


def _setter(path: str, drop: tuple[str, ...] = ()):
    """A setter of the dotted ``path`` in a record (dicts; a digit indexes a list), removing the
    dotted paths in ``drop`` first."""
    def _walk(rec, parts):
        for p in parts:
            rec = rec[int(p)] if p.isdigit() else rec.setdefault(p, {})
        return rec

    def set_(rec, value):
        for d in drop:
            *head, last = d.split(".")
            _walk(rec, head).pop(last, None)
        *head, last = path.split(".")
        target = _walk(rec, head)
        target[int(last) if isinstance(target, list) else last] = value
    return set_


# OTLP: both JSON encodings (the Collector's: camelCase, hex ids, int64 as text; protobuf's
# printer with preserving_proto_field_name: snake_case, base64 ids, enum names; ints as numbers).
T0_NS = 1772452800_000_000_000  # 2026-03-02T12:00:00Z
WRAPPERS = ("stringValue", "intValue", "doubleValue", "boolValue", "arrayValue")


def _k(enc: str, name: str) -> str:
    """``name`` in encoding ``enc`` (protobuf's snake_case: startTimeUnixNano ->
    start_time_unix_nano)."""
    return name if enc == "collector" else re.sub(r"[A-Z]", lambda m: "_" + m[0].lower(), name)


def _int(enc: str, n: int):
    return str(n) if enc == "collector" else n


def _hex_id(enc: str, n: int, size: int) -> str:
    h = f"{n + 1:0{size * 2}x}"
    return h if enc == "collector" else base64.b64encode(bytes.fromhex(h)).decode()


def _any(enc: str, kind: str, v):
    if kind == "arrayValue":
        return {_k(enc, kind): {"values": [{_k(enc, "intValue"): v}]}}
    return {_k(enc, kind): v}


def _kv(enc: str, key: str, value) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": _any(enc, "boolValue", value)}
    if isinstance(value, int):
        return {"key": key, "value": _any(enc, "intValue", _int(enc, value))}
    if isinstance(value, float):
        return {"key": key, "value": _any(enc, "doubleValue", value)}
    if isinstance(value, list):
        return {"key": key, "value": {_k(enc, "arrayValue"): {"values": [
            _any(enc, "stringValue", v) for v in value]}}}
    return {"key": key, "value": _any(enc, "stringValue", value)}


GENAI_ATTRS = {
    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 500,
    "gen_ai.usage.cache_read.input_tokens": 100, "gen_ai.usage.cache_creation.input_tokens": 0,
    "gen_ai.usage.reasoning.output_tokens": 10, "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.response.time_to_first_chunk": 0.25, "user.id": "u1", "app.feature": "chat",
    "custom.key": "v",
}
OI_ATTRS = {
    "openinference.span.kind": "LLM", "llm.provider": "openai", "llm.system": "openai",
    "llm.model_name": "gpt-4o-2024-08-06",
    "llm.invocation_parameters": '{"model": "gpt-4o", "max_tokens": 256}',
    "llm.token_count.prompt": 1000, "llm.token_count.completion": 500,
    "llm.token_count.total": 1500, "llm.token_count.prompt_details.cache_read": 100,
    "llm.token_count.prompt_details.cache_write": 0,
    "llm.token_count.completion_details.reasoning": 10, "llm.cost.total": 0.0075,
    "llm.finish_reason": "stop", "input.value": "hi", "output.value": "ok",
    "metadata": '{"feature": "faq", "team": "support"}', "user.id": "u1",
    "llm.prompt_template.version": "v1", "custom.key": "v",
}


def _otlp_base(enc: str, attrs: dict, n: int, marker: str) -> dict:
    start = T0_NS + n * 1_000_000_000
    span = {
        _k(enc, "traceId"): _hex_id(enc, n, 16), _k(enc, "spanId"): _hex_id(enc, n, 8),
        _k(enc, "parentSpanId"): _hex_id(enc, 10**6 + n, 8), "name": "chat gpt-4o",
        "kind": 3 if enc == "collector" else "SPAN_KIND_CLIENT",
        _k(enc, "startTimeUnixNano"): _int(enc, start),
        _k(enc, "endTimeUnixNano"): _int(enc, start + 850_000_000),
        "attributes": [_kv(enc, k, v) for k, v in {**attrs, "session.id": marker}.items()],
        "events": [
            {"name": "gen_ai.evaluation.result", _k(enc, "timeUnixNano"): _int(enc, start + 1),
             "attributes": [_kv(enc, "gen_ai.evaluation.name", "relevance"),
                            _kv(enc, "gen_ai.evaluation.score.value", 0.9)]},
            {"name": "First Token Stream Event",
             _k(enc, "timeUnixNano"): _int(enc, start + 200_000_000)},
        ],
        "status": {},
    }
    resource = {"attributes": [_kv(enc, k, v) for k, v in {
        "service.name": "api", "service.version": "1.0", "deployment.environment.name": "prod",
        "k8s.namespace.name": "ai"}.items()]}
    return {_k(enc, "resourceSpans"): [{"resource": resource, _k(enc, "scopeSpans"): [
        {"scope": {"name": "test"}, "spans": [span]}]}]}


def _span_of(enc: str, rec: dict) -> dict:
    return rec[_k(enc, "resourceSpans")][0][_k(enc, "scopeSpans")][0]["spans"][0]


def _wrapped(enc: str) -> list:
    return [_any(enc, w, v) for w in WRAPPERS for v in HOSTILE]


def _set_attr(enc: str, where: Callable[[dict], list], key: str, drop: tuple[str, ...] = ()):
    def set_(rec, any_value):
        items = [a for a in where(rec) if a["key"] not in drop and a["key"] != key]
        items.append({"key": key, "value": any_value})
        where(rec)[:] = items
    return set_


def _otlp_spec(enc: str, attrs: dict) -> Spec:
    span = lambda rec: _span_of(enc, rec)  # noqa: E731
    sattrs = lambda rec: span(rec)["attributes"]  # noqa: E731
    rattrs = lambda rec: rec[_k(enc, "resourceSpans")][0]["resource"]["attributes"]  # noqa: E731

    def span_field(*path: str):
        def set_(rec, value):
            target = span(rec)
            for p in path[:-1]:
                target = target[p] if not isinstance(target, list) else target[int(p)]
            target[path[-1]] = value
        return set_

    def event_attr(i: int, key: str):
        return _set_attr(enc, lambda rec: span(rec)["events"][i]["attributes"], key)

    def error_with_exception(rec, any_value):
        s = span(rec)
        s["status"] = {"code": 2 if enc == "collector" else "STATUS_CODE_ERROR", "message": "x"}
        s["events"].append({"name": "exception", "attributes": [
            {"key": "exception.type", "value": any_value}]})

    wrapped = _wrapped(enc)
    fields = {f"attr {k}": (_set_attr(enc, sattrs, k), wrapped) for k in attrs}
    if "gen_ai.usage.input_tokens" in attrs:  # older names, read when the current one is absent
        fields.update({
            "attr gen_ai.system": (_set_attr(enc, sattrs, "gen_ai.system",
                                             ("gen_ai.provider.name",)), wrapped),
            "attr gen_ai.usage.prompt_tokens": (_set_attr(
                enc, sattrs, "gen_ai.usage.prompt_tokens", ("gen_ai.usage.input_tokens",)),
                wrapped),
            "attr gen_ai.usage.completion_tokens": (_set_attr(
                enc, sattrs, "gen_ai.usage.completion_tokens", ("gen_ai.usage.output_tokens",)),
                wrapped),
            "attr gen_ai.usage.total_tokens": (_set_attr(enc, sattrs,
                                                         "gen_ai.usage.total_tokens"), wrapped),
            "attr error.type": (_set_attr(enc, sattrs, "error.type"), wrapped),
            "attr gen_ai.output.messages": (_set_attr(
                enc, sattrs, "gen_ai.output.messages", ("gen_ai.response.finish_reasons",)),
                wrapped + [_any(enc, "stringValue", t) for t in JSON_TEXTS]),
            "attr gen_ai.input.messages": (_set_attr(enc, sattrs, "gen_ai.input.messages"),
                                           wrapped),
        })
    else:
        for k in ("llm.invocation_parameters", "metadata"):
            fields[f"attr {k}"] = (_set_attr(enc, sattrs, k),
                                   wrapped + [_any(enc, "stringValue", t) for t in JSON_TEXTS])
    fields.update({
        f"resource {k}": (_set_attr(enc, rattrs, k), wrapped)
        for k in ("service.name", "service.version", "deployment.environment.name",
                  "k8s.namespace.name")})
    for name in ("traceId", "spanId", "parentSpanId", "startTimeUnixNano", "endTimeUnixNano"):
        fields[name] = (span_field(_k(enc, name)), HOSTILE)
    fields.update({
        "name": (span_field("name"), HOSTILE),
        "kind": (span_field("kind"), HOSTILE),
        "status": (span_field("status"), HOSTILE),
        "status.code": (span_field("status", "code"), HOSTILE),
        "status.message+error": (lambda rec, v: span(rec).__setitem__("status", {
            "code": 2 if enc == "collector" else "STATUS_CODE_ERROR", "message": v}), HOSTILE),
        "attributes": (span_field("attributes"), TRUTHY),
        "events": (span_field("events"), HOSTILE),
        "event evaluation time": (span_field("events", "0", _k(enc, "timeUnixNano")), HOSTILE),
        "event evaluation score": (event_attr(0, "gen_ai.evaluation.score.value"), wrapped),
        "event evaluation name": (event_attr(0, "gen_ai.evaluation.name"), wrapped),
        "event first token time": (span_field("events", "1", _k(enc, "timeUnixNano")), HOSTILE),
        "event exception.type+error": (error_with_exception, wrapped),
        "spans": (lambda rec, v: rec[_k(enc, "resourceSpans")][0][_k(enc, "scopeSpans")][0]
                  .__setitem__("spans", v), TRUTHY),
        "invalid UTF-8 in a string attribute": (_set_attr(enc, sattrs, "custom.key"),
                                                [_any(enc, "stringValue", BAD_UTF8)]),
        "invalid UTF-8 in the span name": (span_field("name"), [BAD_UTF8]),
    })
    return Spec(".jsonl", lambda n, m: _otlp_base(enc, attrs, n, m), fields,
                lambda recs, hostile=None: jsonl(recs), group=_otlp_group)


def _otlp_group(name: str) -> str:
    if name.startswith("attr ") and ("token" in name or "usage" in name):
        return "token counts"
    for prefix, group in (("attr ", "attributes"), ("resource ", "resource attributes"),
                          ("event ", "events"), ("invalid UTF-8", "invalid UTF-8")):
        if name.startswith(prefix):
            return group
    return "span envelope"


# Langfuse: generations (marker: sessionId -> session_id), scores (marker: comment ->
# explanation) and traces with a nested generation.
def _lf_generation(n: int, marker: str) -> dict:
    return {
        "id": f"g{n}", "traceId": "t1", "type": "GENERATION", "name": "answer",
        "parentObservationId": "span-1", "startTime": "2026-03-02T10:00:00.100Z",
        "endTime": "2026-03-02T10:00:01.600Z", "completionStartTime": "2026-03-02T10:00:00.500Z",
        "model": "gpt-4o-mini", "modelParameters": {"temperature": 0.2},
        "input": [{"role": "user", "content": "hi"}],
        "output": {"role": "assistant", "content": "ok"},
        "usageDetails": {"input": 176, "input_cached_tokens": 1024, "output": 96,
                         "output_reasoning_tokens": 10, "total": 1306},
        "costDetails": {"input": 0.0001, "output": 0.0002, "total": 0.0003},
        "promptName": "support", "promptVersion": 3, "level": "DEFAULT", "statusMessage": None,
        "metadata": {"feature": "chat"}, "environment": "production", "userId": "u",
        "release": "1.0", "sessionId": marker,
    }


def _lf_score(n: int, marker: str) -> dict:
    return {"id": f"sc{n}", "traceId": "t1", "observationId": f"g{n}", "name": "helpfulness",
            "value": 0.9, "dataType": "NUMERIC", "source": "EVAL", "comment": marker,
            "timestamp": "2026-03-02T10:05:00Z", "configId": "cfg"}


def _lf_trace(n: int, marker: str) -> dict:
    gen = _lf_generation(n, marker)
    gen["traceId"] = f"tr{n}"
    return {"id": f"tr{n}", "timestamp": "2026-03-02T09:59:59.000Z", "name": "support-chat",
            "userId": "user-9", "sessionId": "s-9", "release": "2.3.0",
            "environment": "production", "tags": ["beta"], "metadata": {"customer_id": "acme"},
            "observations": [gen]}


LF_GENERATION_FIELDS = [
    "id", "traceId", "parentObservationId", "name", "type", "startTime", "endTime",
    "completionStartTime", "model", "modelParameters", "input", "output", "usageDetails",
    "usageDetails.input", "usageDetails.input_cached_tokens",
    "usageDetails.cache_creation_input_tokens", "usageDetails.output",
    "usageDetails.output_reasoning_tokens", "usageDetails.total", "costDetails",
    "costDetails.total", "promptName", "promptVersion", "level", "metadata", "metadata.feature",
    "metadata.customer_id", "metadata.ls_provider", "environment", "userId", "release",
    "version",
]
LF_SCORE_FIELDS = ["id", "traceId", "observationId", "name", "value", "stringValue", "dataType",
                   "source", "timestamp", "datasetRunId", "configId"]
LF_TRACE_FIELDS = ["name", "userId", "release", "environment", "tags", "metadata",
                   "metadata.customer_id", "metadata.feature"]


def _with(base: Callable[[int, str], dict], setter: Callable) -> Callable:
    """``setter``, for records built by ``base`` (a generation, a score, a trace)."""
    setter.base = base
    return setter


def _langfuse_spec(write) -> Spec:
    fields = {}
    for f in LF_GENERATION_FIELDS:
        fields[f"generation {f}"] = (_with(_lf_generation, _setter(f)), HOSTILE)
    fields.update({
        "generation statusMessage+ERROR": (_with(_lf_generation, lambda r, v: r.update(
            level="ERROR", statusMessage=v)), HOSTILE),
        "generation costDetails.input (no total)": (_with(_lf_generation, _setter(
            "costDetails.input", ("costDetails.total",))), HOSTILE),
        "generation latency (no endTime)": (_with(_lf_generation, _setter(
            "latency", ("endTime",))), HOSTILE),
        "generation timeToFirstToken (no completionStartTime)": (_with(_lf_generation, _setter(
            "timeToFirstToken", ("completionStartTime",))), HOSTILE),
        "generation usage.input (no usageDetails)": (_with(_lf_generation, _setter(
            "usage.input", ("usageDetails",))), HOSTILE),
        "generation usage.unit (no usageDetails)": (_with(_lf_generation, lambda r, v: (
            r.pop("usageDetails"), r.update(usage={"input": 10, "output": 5, "unit": v}))),
            HOSTILE),
        "generation promptTokens (no usage)": (_with(_lf_generation, _setter(
            "promptTokens", ("usageDetails",))), HOSTILE),
    })
    for f in LF_SCORE_FIELDS:
        fields[f"score {f}"] = (_with(_lf_score, _setter(f)), HOSTILE)
    fields.update({
        "score value BOOLEAN": (_with(_lf_score, lambda r, v: r.update(dataType="BOOLEAN",
                                                                       value=v)), HOSTILE),
        "score stringValue CATEGORICAL": (_with(_lf_score, lambda r, v: r.update(
            dataType="CATEGORICAL", value=None, stringValue=v)), HOSTILE),
        "score createdAt (no timestamp)": (_with(_lf_score, _setter(
            "createdAt", ("timestamp",))), HOSTILE),
    })
    for f in LF_TRACE_FIELDS:
        fields[f"trace {f}"] = (_with(_lf_trace, _setter(f)), HOSTILE)
    fields["trace observation usageDetails.input"] = (_with(_lf_trace, _setter(
        "observations.0.usageDetails.input")), HOSTILE)
    fields["invalid UTF-8 in generation model"] = (_with(_lf_generation, _setter("model")),
                                                   [BAD_UTF8])
    fields["invalid UTF-8 in score name"] = (_with(_lf_score, _setter("name")), [BAD_UTF8])
    return Spec(".json", _lf_generation, fields, lambda recs, hostile=None: write(recs),
                group=_lf_group)


def _lf_group(name: str) -> str:
    kind, _, rest = name.partition(" ")
    if kind != "generation":
        return "invalid UTF-8" if kind == "invalid" else kind + "s"
    if any(w in rest for w in ("Time", "latency")):
        return "generation times"
    if any(w in rest for w in ("usage", "Details", "Tokens")):
        return "generation usage and cost"
    return "generation fields"


# promptfoo: one document; a result's marker is its test's description (in attributes).
def _pf_result(n: int, marker: str) -> dict:
    return {"id": f"pf{n}", "testIdx": n, "promptIdx": 0, "prompt": {"raw": "Q", "label": "v1"},
            "provider": {"id": "openai:gpt-4o"}, "success": True, "score": 1.0, "latencyMs": 120,
            "cost": 0.001, "response": {"tokenUsage": {"total": 30}},
            "testCase": {"description": marker, "vars": {"q": "x"}},
            "gradingResult": {"pass": True, "score": 1.0, "reason": "r", "componentResults": [
                {"pass": True, "score": 1, "reason": "ok",
                 "assertion": {"type": "contains", "metric": "m"}}]}}


def _pf_write(results: list, hostile=None) -> tuple[bytes, list]:
    doc = {"evalId": "eval-abc", "createdAt": "2026-03-02T12:00:00Z",
           "results": {"version": 3, "timestamp": "2026-03-02T12:00:00Z", "results": results},
           "config": {"description": "smoke"}}
    if hostile:
        hostile[0](doc, hostile[1])
    return encode(json_text(doc)), [None] * len(results)


PF_FIELDS = ["id", "testIdx", "promptIdx", "prompt", "prompt.label", "promptId", "provider",
             "provider.id", "success", "score", "latencyMs", "cost", "response", "vars", "error",
             "gradingResult", "gradingResult.score", "gradingResult.pass", "gradingResult.reason",
             "gradingResult.componentResults", "gradingResult.componentResults.0",
             "gradingResult.componentResults.0.score", "gradingResult.componentResults.0.pass",
             "gradingResult.componentResults.0.reason",
             "gradingResult.componentResults.0.assertion",
             "gradingResult.componentResults.0.assertion.type",
             "gradingResult.componentResults.0.assertion.metric",
             "gradingResult.componentResults.0.assertion.provider", "testCase.vars"]
PF_DOCUMENT = {"results.timestamp": _setter("results.timestamp"),
               "config.description": _setter("config.description")}


# Inspect: one document; a sample's marker is its target (in attributes).
def _inspect_sample(n: int, marker: str) -> dict:
    return {"id": n, "epoch": 1, "input": "q", "target": marker,
            "completed_at": "2026-03-02T12:04:00+00:00",
            "scores": {"match": {"value": "C", "answer": "a", "explanation": "e"}}}


def _inspect_write(samples: list, hostile=None) -> tuple[bytes, list]:
    doc = {"version": 2, "status": "success",
           "eval": {"run_id": "run-9", "task": "arith", "created": "2026-03-02T12:00:00+00:00",
                    "model": "openai/gpt-4o", "dataset": {"name": "arith-100"},
                    "metadata": {"version": "v1"}},
           "stats": {"completed_at": "2026-03-02T12:05:00+00:00"}, "samples": samples}
    if hostile:
        hostile[0](doc, hostile[1])
    return encode(json_text(doc)), [None] * len(samples)


INSPECT_FIELDS = ["id", "epoch", "completed_at", "scores.match", "scores.match.value",
                  "scores.match.explanation", "scores.match.answer", "input"]


def _inspect_doc_setter(path: str):
    """A setter of a document time the samples fall back on (theirs removed)."""
    inner = _setter(path)

    def set_(doc, value):
        for sample in doc["samples"]:
            sample.pop("completed_at", None)
        inner(doc, value)
    return set_


INSPECT_DOCUMENT = {
    "eval.model": _setter("eval.model"),
    "eval.metadata.version": _setter("eval.metadata.version"),
    "stats.completed_at (no sample time)": _inspect_doc_setter("stats.completed_at"),
}


# A YAML mapping onto requests; marker: sid -> session_id.
MAPPING = """
table: requests
input: {input}
{records}columns:
  request_id: id
  ts: {ts}
  latency_ms: {{path: duration, unit: s}}
  ttft_ms: {{path: ttft, unit: ms}}
  provider: {{value: openai}}
  model: model
  input_tokens: {{sum: [usage_in, cache_read, cache_write]}}
  cached_input_tokens: cache_read
  cache_write_tokens: cache_write
  output_tokens: usage.completion
  logged_cost_usd: {{path: cost_cents, scale: 0.01}}
  status: status
  session_id: sid
  user_id: uid
"""
TS_RULES = {"unit s": "{path: started, unit: s}", "unit ns": "{path: started_ns, unit: ns}",
            "format": '{path: when, format: "%Y-%m-%d %H:%M:%S"}', "plain": "when"}
TS_FIELDS = {"unit s": "started", "unit ns": "started_ns", "format": "when", "plain": "when"}


def _map_record(n: int, marker: str) -> dict:
    return {"id": f"m{n}", "started": 1772452800 + n, "started_ns": (1772452800 + n) * 10**9,
            "when": "2026-03-02 12:00:00", "duration": 1.5, "ttft": 200, "model": "gpt-4o",
            "usage_in": 1000, "cache_read": 100, "cache_write": 0, "usage": {"completion": 500},
            "cost_cents": 0.75, "status": "ok", "sid": marker, "uid": "u1", "team": "x"}


MAP_FIELDS = ["id", "duration", "ttft", "model", "usage_in", "cache_read", "cache_write",
              "usage", "usage.completion", "cost_cents", "status", "team"]


def _csv_cell(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value[len(RAW_PREFIX):-1] if value.startswith(RAW_PREFIX) else value
    return json_text(value)


def _csv(records: list, hostile=None) -> tuple[bytes, list]:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in records for k in r)))
    writer.writeheader()
    lines, line = [], 2
    for r in records:
        row = {k: _csv_cell(v) for k, v in r.items()}
        writer.writerow(row)
        lines.append(line)
        line += sum(str(v).count("\n") for v in row.values() if v is not None) + 1
    return encode(buf.getvalue()), lines


def _json_doc(records: list, hostile=None) -> tuple[bytes, list]:
    return encode(json_text({"data": records})), list(range(1, len(records) + 1))


def _mapping_spec(kind: str, ts: str = "unit s") -> Spec:
    write = {"jsonl": lambda recs, hostile=None: jsonl(recs), "csv": _csv, "json": _json_doc}[kind]
    fields = {f: (_setter(f), HOSTILE) for f in MAP_FIELDS} if ts == "unit s" else {}
    if ts == "unit s":
        fields.update({f"invalid UTF-8 in {f}": (_setter(f), [BAD_UTF8])
                       for f in ("id", "model", "status", "uid", "team")})
    fields[f"ts ({ts}): {TS_FIELDS[ts]}"] = (_setter(TS_FIELDS[ts]), HOSTILE)
    text = MAPPING.format(input=kind, ts=TS_RULES[ts],
                          records="records: data\n" if kind == "json" else "")
    return Spec("." + kind, _map_record, fields, write, mapping=text, group=_map_group)


def _map_group(name: str) -> str:
    if name.startswith("invalid"):  # one file each: they fail in different ways
        return name
    if name.startswith("ts "):
        return "ts"
    return "text fields" if name in ("id", "model", "status", "team") else "number fields"


SPECS: dict[str, Spec] = {
    "otlp-genai-collector": _otlp_spec("collector", GENAI_ATTRS),
    "otlp-genai-protobuf": _otlp_spec("protobuf", GENAI_ATTRS),
    "openinference-collector": _otlp_spec("collector", OI_ATTRS),
    "openinference-protobuf": _otlp_spec("protobuf", OI_ATTRS),
    "langfuse-jsonl": _langfuse_spec(jsonl),
    "langfuse-array": _langfuse_spec(json_array),
    "promptfoo": Spec(
        ".json", _pf_result, {f: (_setter(f), HOSTILE) for f in PF_FIELDS} | {
            "invalid UTF-8 in prompt.label": (_setter("prompt.label"), [BAD_UTF8])},
        _pf_write, {f: (s, DOC_HOSTILE) for f, s in PF_DOCUMENT.items()},
        group=lambda name: "grading" if name.startswith(("gradingResult", "success", "score"))
        else "invalid UTF-8" if name.startswith("invalid") else "result fields"),
    "inspect": Spec(
        ".json", _inspect_sample, {f: (_setter(f), HOSTILE) for f in INSPECT_FIELDS} | {
            "invalid UTF-8 in an explanation": (_setter("scores.match.explanation"),
                                                [BAD_UTF8])},
        _inspect_write, {f: (s, DOC_HOSTILE) for f, s in INSPECT_DOCUMENT.items()},
        group=lambda name: "invalid UTF-8" if name.startswith("invalid") else "samples"),
    **{f"mapping-{kind}-ts-{ts.replace(' ', '-')}": _mapping_spec(kind, ts)
       for kind in ("jsonl", "csv", "json") for ts in TS_RULES},
}


# -- files and checks ----------------------------------------------------------------------------
@dataclass
class File:
    name: str
    data: bytes
    markers: list[str]       # every record's marker, anchors (first and last) included
    lines: list               # every record's line, or None where the format gives none
    document: bool = False    # one hostile value for the whole document


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)[:80]


def record_file(spec: Spec, name: str, fields: list[tuple[Callable, list]], start: int) -> File:
    """A file of a valid record, one record per (field, hostile value) (the field's setter
    spoils it), and a valid record; records are numbered from ``start`` (ids and markers unique
    in the lake)."""
    jobs = [(None, None)] + [(s, v) for s, values in fields for v in values] + [(None, None)]
    records, markers = [], []
    for i, (setter, value) in enumerate(jobs):
        marker = mark(start + i)
        rec = getattr(setter, "base", spec.base)(start + i, marker)
        if setter is not None:
            setter(rec, copy.deepcopy(value))
        records.append(rec)
        markers.append(marker)
    data, lines = spec.write(records)
    return File(_safe(name) + spec.suffix, data, markers, lines)


def document_file(spec: Spec, name: str, setter: Callable, value, i: int, start: int) -> File:
    """A document of three valid records whose document field is spoiled by ``value``."""
    markers = [mark(start + n) for n in range(3)]
    data, lines = spec.write([spec.base(start + n, m) for n, m in enumerate(markers)],
                             (setter, copy.deepcopy(value)))
    return File(f"{_safe(name)}-{i}{spec.suffix}", data, markers, lines, document=True)


def files_of(spec: Spec, only: dict | None = None, start: int = 0) -> list[File]:
    """The files of a format: one per group of record fields (``spec.group``), one per
    (document field, value); with ``only``, one per field of ``only``."""
    groups: dict[str, list] = {}
    for name, job in (only if only is not None else spec.fields).items():
        if name not in spec.document:
            groups.setdefault(name if only is not None else spec.group(name), []).append(job)
    out: list[File] = []
    for name, jobs in groups.items():
        out.append(record_file(spec, name, jobs, start))
        start += len(out[-1].markers)
    for name, (setter, values) in (only if only is not None else spec.document).items():
        if name in spec.document:
            for i, v in enumerate(values):
                out.append(document_file(spec, name, setter, v, i, start))
                start += len(out[-1].markers)
    return out


def ingest(lake: Lake, write: Callable, spec: Spec, files: list[File]) -> list:
    """Ingest each file (one call each: an exception escaping one call must not hide the other
    files); per file, its FileReport or the exception that escaped."""
    mapping = None
    if spec.mapping:
        mapping = write("mapping.yaml", spec.mapping.encode())
    reports = []
    for f in files:
        path = write(f.name, f.data)
        try:
            reports.append(ingest_paths(lake, [str(path)], mapping=mapping, compact_min_files=0,
                                        overrides={}).files[0])
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # pyo3's PanicException is a BaseException
            reports.append(exc)
    return reports


def not_utf8(lake: Lake) -> list[str]:
    """The stored string columns holding bytes that are not UTF-8 (readers fail on them)."""
    out = []
    for path in sorted(lake.root.rglob("*.parquet")):
        table = pq.read_table(path)
        for name in table.column_names:
            if pa.types.is_string(table.schema.field(name).type) or \
                    pa.types.is_large_string(table.schema.field(name).type):
                try:
                    table.column(name).validate(full=True)
                except pa.ArrowInvalid:
                    out.append(f"{path.relative_to(lake.root).parts[0]}.{name}")
    return sorted(set(out))


def problems(lake: Lake, reports: list, files: list[File]) -> list[str]:
    """What breaks the rule, one line per file: an error (or an exception escaping the ingest),
    a valid record not stored, a record neither stored nor quarantined (beyond the file's
    duplicates); and text that is not UTF-8 stored in the lake."""
    bad_text = not_utf8(lake)
    if bad_text:  # the queries below would fail on them
        return [f"bytes that are not UTF-8 stored in {', '.join(bad_text)}"] + [
            f"{f.name}: {_failure(r)}" for f, r in zip(files, reports, strict=True)
            if _failure(r)]
    markers = f"regexp_extract_all(coalesce(%s, ''), '{MARKER.pattern}')"
    evals_text = "concat_ws(' ', explanation, attributes)"
    eng = Engine(lake)
    try:
        stored: dict[str, set] = {}
        for sql in ("SELECT source_file, list(session_id) FROM requests GROUP BY 1",
                    # a span that is no model call (operation, kind) is stored as a span only
                    f"SELECT source_file, flatten(list({markers % 'attributes'})) FROM spans "
                    "GROUP BY 1",
                    f"SELECT source_file, flatten(list({markers % evals_text})) "
                    "FROM evals GROUP BY 1"):
            for source, found in eng.query(sql).rows():
                stored.setdefault(source, set()).update(found)
        quarantined: dict[str, tuple[set, set, int]] = {}
        for source, lines, found, named in eng.query(
                f"SELECT source_file, list(line), flatten(list({markers % 'raw'})), "
                f"count(*) FILTER (len({markers % 'raw'}) > 0) FROM quarantine "
                "GROUP BY 1").rows():
            quarantined[source] = (set(lines), set(found), named)
    finally:
        eng.close()
    out = []
    for f, rep in zip(files, reports, strict=True):
        if _failure(rep):
            out.append(f"{f.name}: {_failure(rep)}")
            continue
        kept = stored.get(rep.source, set())
        q_lines, q_raw, named = quarantined.get(rep.source, (set(), set(), 0))
        # quarantined rows whose raw text names no record (cut at RAW_MAX_CHARS before it)
        anonymous = rep.quarantined - named
        anchors = [f.markers[0], f.markers[-1]]
        if not f.document and not all(m in kept for m in anchors):
            out.append(f"{f.name}: a valid record was not stored ({rep.reasons[:2]})")
        lost = [i for i, (m, line) in enumerate(zip(f.markers, f.lines, strict=True))
                if m not in kept and m not in q_raw and (line is None or line not in q_lines)]
        # a record without a line may be one of the quarantine rows that name none
        unnamed = sum(1 for i in lost if f.lines[i] is None)
        if len(lost) - min(unnamed, anonymous) > sum(rep.duplicates.values()):
            out.append(f"{f.name}: records {lost} neither stored nor quarantined "
                       f"(stored {rep.stored}, duplicates {rep.duplicates}, "
                       f"quarantined {rep.quarantined})")
    return out


def _failure(rep) -> str | None:
    if isinstance(rep, BaseException):
        return f"the ingest raised {type(rep).__name__}: {str(rep)[:200]}"
    return f"file failed: {rep.error}" if rep.error is not None else None


@pytest.mark.parametrize("case", list(SPECS))
def test_one_hostile_value_never_fails_a_file(lake, write, monkeypatch, case):
    monkeypatch.setenv("SIGHTLINE_PARSE_WORKERS", "1")  # OTLP parsed here: no worker processes
    spec = SPECS[case]
    files = files_of(spec)
    reports = ingest(lake, write, spec, files)
    found = problems(lake, reports, files)  # a file's first failure hides its others
    assert not found, f"{len(found)} of {len(files)} files break the rule:\n" + "\n".join(found)
