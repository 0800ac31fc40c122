"""Shared machinery for span formats in the OTLP JSON envelope (GenAI conventions, OpenInference).

The envelope is what the OpenTelemetry Collector's file exporter writes: one
``ExportTraceServiceRequest`` per line, ``resourceSpans`` -> ``scopeSpans`` -> ``spans``. Two JSON
encodings exist in the wild and both are read:

- the OTLP spec / Collector pdata encoding: hex trace and span ids, integer enums (``"kind": 3``,
  ``"code": 2``), int64 values as decimal strings (``"intValue": "42"``);
- protobuf's JSON printer (``google.protobuf.json_format``): base64 ids, enum names
  (``SPAN_KIND_CLIENT``, ``STATUS_CODE_ERROR``); with ``preserving_proto_field_name`` also
  snake_case keys (``resource_spans``, ``string_value``).

A span's conventions are recognised per span, not per file: a span carrying
``openinference.span.kind`` is read with the OpenInference mapping, any other span with the GenAI
mapping (which sends spans without ``gen_ai.*`` attributes to the ``spans`` table as ``other``).
So a file mixing both instrumentations ingests whole under either format name; the two formats
differ only in what they detect.

Model-call spans become ``requests`` rows AND ``spans`` rows (kind ``llm``, attributes null), so
the trace waterfall is drawn from ``spans`` alone and joins to ``requests`` on
``span_id = request_id`` for details. Every other span is a ``spans`` row only, with its
attributes (and ``service.name``) as JSON.

Speed: files larger than one block (4 MiB) are parsed by worker processes, one block of whole
lines each, and put back in file order, with the same rows, line numbers and rejects as a
single-process parse (see ``parse_otlp``; tests/ingest/test_otlp_fastpath.py checks it);
bench/otlp_bench.py measures it.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import collections
import gc
import hashlib
import heapq
import io
import itertools
import json
import math
import os
import pickle
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from lib import schema
from lib.ingest import streams
from lib.ingest.base import BadValue, Chunk, Reject
from lib.ingest.formats.json_values import is_text
from lib.ingest.streams import InputError, LineBlock
from lib.ingest.values import (
    INT64_MAX,
    INT64_MIN,
    UINT64_MAX,
    count,
    integer,
    number,
    shown,
    valid_text,
)

try:  # orjson is ~3x faster than json on span-sized documents; json is the fallback
    import orjson

    def loads(data: bytes | str) -> Any:
        return orjson.loads(data)

    def dumps(obj: Any) -> str:
        return orjson.dumps(obj, default=str).decode()

except ImportError:  # pragma: no cover - orjson ships with the image
    def loads(data: bytes | str) -> Any:
        return json.loads(data)

    def dumps(obj: Any) -> str:
        return json.dumps(obj, separators=(",", ":"), default=str, ensure_ascii=False)


CHUNK_ROWS = 50_000  # spans per yielded Chunk: bounds memory on large files

# ---------------------------------------------------------------------------------------------
# Attribute values
#
# The decoders keep what they are given when it is not their type's encoding (an ``intValue`` of
# "abc" or 1.5, a ``boolValue`` of "yes", a ``doubleValue`` of "NaN"): such a value is stored as
# written in ``attributes``, and a column that needs a number (a token count, a time) rejects the
# span naming the attribute and the value (lib/ingest/values.py: ``count``, ``number``). Nothing
# is rounded, coerced or dropped on the way: text that is no int64 or double as the checkers read
# one ("1_000", digits that are not ASCII) is kept as text too.


def _any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` (either JSON encoding) as a plain Python value."""
    if not value:
        return None
    if value.__class__ is not dict:
        return value  # not an AnyValue: kept as written
    for kind, inner in value.items():  # exactly one member is set
        decode = _VALUE_DECODERS.get(kind)
        return decode(inner) if decode is not None else value
    return None


def _string(inner: Any) -> Any:
    return inner  # a string, or (rarely) another JSON value: kept as written


def _int(inner: Any) -> Any:
    """int64: decimal text (the Collector's encoding) or a JSON number (protobuf's printer)."""
    cls = inner.__class__
    if cls is int:
        return inner
    if cls is str:
        try:
            n = int(inner)
        except ValueError:
            return inner
        # int() also reads Python's "1_000" and other scripts' digits: no int64 text, kept
        return n if inner.isascii() and "_" not in inner else inner
    if cls is float and inner.is_integer() and INT64_MIN <= inner <= INT64_MAX:
        return int(inner)
    return inner  # 1.5, true, a list...: not an integer, kept as written


def _double(inner: Any) -> Any:
    """A double: a JSON number, or text ("1.5"; proto3 JSON writes "NaN", "Infinity" as text,
    which stay text: JSON has no such numbers)."""
    cls = inner.__class__
    if cls is float:
        return inner
    if cls is int:
        return float(inner) if -(1 << 53) <= inner <= 1 << 53 else inner
    if cls is str:
        try:
            f = float(inner)
        except ValueError:
            return inner
        return f if math.isfinite(f) and inner.isascii() and "_" not in inner else inner
    return inner


def _bool(inner: Any) -> Any:
    if inner.__class__ is bool:
        return inner
    if inner.__class__ is str and inner.lower() in ("true", "false"):
        return inner.lower() == "true"
    return inner


def _array(inner: Any) -> Any:
    values = inner.get("values") if inner.__class__ is dict else () if inner is None else inner
    if not values:
        return [] if inner is None or inner.__class__ in (dict, list) else inner
    if values.__class__ is not list:
        return inner  # not an ArrayValue: kept as written
    return [_any_value(v) for v in values]


def _kvlist(inner: Any) -> Any:
    values = inner.get("values") if inner.__class__ is dict else () if inner is None else inner
    if not values:
        return {} if inner is None or inner.__class__ in (dict, list) else inner
    if values.__class__ is not list:
        return inner  # not a KeyValueList: kept as written
    return decode_attributes(values)


_VALUE_DECODERS: dict[str, Callable[[Any], Any]] = {
    "stringValue": _string, "intValue": _int, "doubleValue": _double, "boolValue": _bool,
    "arrayValue": _array, "kvlistValue": _kvlist, "bytesValue": _string,  # base64 text, kept
}
# protobuf's JSON printer with preserving_proto_field_name writes snake_case members
_VALUE_DECODERS.update({re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), k): f
                        for k, f in list(_VALUE_DECODERS.items())})


class DecodedAttributes(dict):
    """Attributes already decoded to ``{key: value}`` as :func:`decode_attributes` decodes them
    (the OTLP protobuf reader's, which reads typed values and need not write them out as JSON
    ``KeyValue`` lists first); :func:`decode_attributes` gives a copy."""

    __slots__ = ()


def decode_attributes(items: Iterable[dict] | None) -> dict[str, Any]:
    """OTLP ``KeyValue`` list -> ``{key: value}``; strings and ints take a fast path."""
    if items.__class__ is DecodedAttributes:
        return dict(items)  # a copy: mappers take keys out of what they are given
    out: dict[str, Any] = {}
    if not items:
        return out
    item = None
    try:
        for item in items:
            value = item.get("value")
            if value:
                v = value.get("stringValue")
                if v is None:
                    v = value.get("intValue")
                    if v is None:
                        v = _any_value(value)
                    elif v.__class__ is not int:
                        v = _int(v)
            else:
                v = None
            out[item["key"]] = v
    except (AttributeError, KeyError, TypeError):
        raise BadValue(f"not an OTLP attribute (key and value): {shown(item)}") from None
    return out


def count_of(attrs: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """``values.count`` of the first of ``keys`` that ``attrs`` has (not null)."""
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            return count(value, key)
    return None


def json_text(value: Any) -> str:
    """Compact JSON text of ``value``; ints beyond 64 bits (which orjson refuses) written too."""
    try:
        return dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)


def as_text(value: Any) -> str | None:
    """Text for a string column: strings as is, anything else as compact JSON (42 -> "42")."""
    if value is None or value.__class__ is str:
        return value
    if value.__class__ is float and not math.isfinite(value):
        return repr(value)  # JSON would say null
    return json_text(value)


# ---------------------------------------------------------------------------------------------
# Ids, enums, normalisation

_HEX_LENGTHS = (32, 16)  # trace id (16 bytes), span id (8 bytes) as hex; base64 is 24 / 12


_ZERO_IDS = frozenset({"0" * 16, "0" * 32})
_ZERO_SPAN, _ZERO_TRACE = "0" * 16, "0" * 32


def norm_id(value: Any, key: str = "id") -> str | None:
    """A trace or span id as lowercase hex, from hex or base64 (protobuf JSON) text.

    Hex ids are 16 or 32 characters; the same ids in base64 are 12 or 24, so the length tells
    the encoding. An all-zero id means "none" (a root span's parent) and becomes None. An id that
    is not text (1.5, a list) raises :class:`BadValue` naming ``key``.
    """
    if not value:
        return None
    if value.__class__ is not str:
        raise BadValue(f"{key} is not text: {shown(value)}")
    if len(value) in _HEX_LENGTHS:
        return None if value in _ZERO_IDS else value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value  # neither encoding: keep the source's text rather than lose the link
    return raw.hex() if raw.strip(b"\0") else None


_STATUS_ERROR = {2, "2", "STATUS_CODE_ERROR", "ERROR", "Error", "error"}
# Every status code either encoding writes (unset, ok, error); None: no code, which is unset.
_STATUS_CODES = _STATUS_ERROR | {None, 0, 1, "0", "1", "", "STATUS_CODE_UNSET", "UNSET", "Unset",
                                 "unset", "STATUS_CODE_OK", "OK", "Ok", "ok"}


def is_error_status(status: dict | None) -> bool:
    """OTLP status ``{"code": 2}`` or ``{"code": "STATUS_CODE_ERROR"}`` (either encoding)."""
    return bool(status) and status.get("code") in _STATUS_ERROR


_PROVIDER_ALIASES = {
    # older gen_ai.system values and OpenInference llm.provider values -> gen_ai.provider.name
    "az.ai.openai": "azure.ai.openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "aws": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "mistralai": "mistral_ai",
    "xai": "x_ai",
    "ibm.watsonx.ai": "ibm.watsonx.ai",
}


_PROVIDERS: dict[str, str] = {}  # memo of norm_provider for the few names seen


def norm_provider(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if value.__class__ is str:
        known = _PROVIDERS.get(value)
        if known is not None:
            return known
    text = as_text(value).strip().lower()
    text = _PROVIDER_ALIASES.get(text, text)
    if value.__class__ is str and len(_PROVIDERS) < 1024:
        _PROVIDERS[value] = text
    return text


_CLASS_REPR = re.compile(r"^<class '([\w.]+)'>$")


def norm_error_type(value: Any) -> str | None:
    """``openai.RateLimitError`` or ``<class 'openai.RateLimitError'>`` -> ``RateLimitError``.

    opentelemetry-instrumentation-openai-v2 2.4b0 records the exception class itself, which the
    SDK stringifies as ``<class '...'>``; the module path is noise when grouping errors.
    """
    if value is None:
        return None
    text = as_text(value).strip()
    match = _CLASS_REPR.match(text)
    if match:
        text = match.group(1)
    if "." in text and " " not in text:
        tail = text.rsplit(".", 1)[1]
        if tail.isidentifier():  # a module path; "1.5" is no class name
            text = tail
    return text or None


# The OpenAI and Anthropic SDKs' str() of an API error, "Error code: 429 - {...}" (the pattern
# of langfuse._HTTP_CODE, which reads Langfuse's ERROR observations the same way).
_HTTP_ERROR = re.compile(r"^\s*Error code: (\d{3})\b")


def http_error_code(message: str | None) -> str | None:
    """The HTTP status of an SDK's API error in a span's status message, as text ("429").

    Traceloop OpenLLMetry 0.40 records a failed call with neither ``error.type`` nor an exception
    event: only the span status, whose description is the SDK error's text
    (``Error code: 429 - {'error': ...}``). Any other message gives None.
    """
    if not message:
        return None
    match = _HTTP_ERROR.match(message)
    return match.group(1) if match else None


def inclusive_input(input_tokens: int | None, cached: int | None,
                    cache_write: int | None) -> int | None:
    """Input tokens including cache reads and writes (design §3), from a count that should.

    OTel GenAI and OpenInference define the input count as including cached tokens, and this is
    trusted. One case proves a source reported them outside (Anthropic's raw ``input_tokens``
    copied straight into the attribute): the cached parts exceed the whole. Then they are added.
    """
    if input_tokens is None:
        return None
    if (cached or 0) + (cache_write or 0) <= input_tokens:
        return input_tokens
    return input_with_cache(input_tokens, cached, cache_write)


def input_with_cache(input_tokens: int, cached: int | None, cache_write: int | None) -> int:
    """``input_tokens`` with the cache reads and writes added, for a source known to count them
    apart. Raises BadValue when the sum is past int64."""
    total = input_tokens + (cached or 0) + (cache_write or 0)
    if total > INT64_MAX:
        raise BadValue(f"input_tokens with the cached tokens added is out of range: {total}")
    return total


def output_with_reasoning(output_tokens: int, reasoning: int) -> int:
    """``output_tokens`` with the reasoning tokens added, for a source known to count them
    apart. Raises BadValue when the sum is past int64."""
    total = output_tokens + reasoning
    if total > INT64_MAX:
        raise BadValue(f"output_tokens with the reasoning tokens added is out of range: {total}")
    return total


def total_of(attrs: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """The first of ``keys`` that ``attrs`` has as a count, for :func:`inclusive_output` alone:
    a total that is no count (``"abc"``) is none, never a reason to reject the span (no column
    holds it)."""
    try:
        return count_of(attrs, keys)
    except BadValue:
        return None


def inclusive_output(output_tokens: int | None, reasoning: int | None, total: int | None = None,
                     input_tokens: int | None = None) -> int | None:
    """Output tokens including reasoning (design §3), from a count that should.

    OpenAI's completion_tokens hold the reasoning tokens, and this is trusted. xAI's (its
    OpenAI-compatible Chat Completions) leave them out, its total_tokens being prompt +
    completion + reasoning: a total that adds up only so proves it, as do reasoning tokens
    above the whole. Then they are added (read as a part, a grok-4 call of 1,499 completion and
    2,809 reasoning tokens was quarantined, and one with fewer had its reasoning unpriced)."""
    if output_tokens is None or not reasoning:
        return output_tokens
    if reasoning > output_tokens or (total is not None and input_tokens is not None
                                     and total == input_tokens + output_tokens + reasoning):
        return output_with_reasoning(output_tokens, reasoning)
    return output_tokens


def stable_id(*parts: Any) -> str:
    """A deterministic id from parts (idempotent re-ingest): 32 hex chars of SHA-256."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# Judges' labels that say pass or fail, the semantic conventions' examples ("relevant",
# "not_relevant", "correct", "incorrect", "pass", "fail") and the usual rails of judge libraries
# (Phoenix: factual / hallucinated, relevant / unrelated, non-toxic / toxic). Written with single
# spaces: "not_relevant", "Not-Relevant" and "not relevant" are one label.
_PASS_LABELS = {"pass", "passed", "true", "yes", "correct", "good", "relevant", "faithful",
                "factual", "grounded"}
_FAIL_LABELS = {"fail", "failed", "false", "no", "incorrect", "bad", "irrelevant",
                "unfaithful", "hallucinated", "unrelated", "toxic", "ungrounded"}
# "not relevant" is a fail and "non toxic" a pass: a negation of a label above says the opposite.
# (Unread, "not_relevant" left the failures out of the pass rate: 10 of 100 judged not relevant
# read as 100% passed, found in review.)
_NEGATIONS = ("not ", "non ")


def passed_from_label(label: Any) -> bool | None:
    """Whether a judge's label says pass (True) or fail (False); None when it says neither
    ("partially relevant", "3")."""
    if label is None:
        return None
    text = " ".join(str(label).strip().lower().replace("_", " ").replace("-", " ").split())
    negated = next((text[len(n):] for n in _NEGATIONS if text.startswith(n)), None)
    if negated is not None:
        said = passed_from_label(negated)
        return None if said is None else not said
    if text in _PASS_LABELS:
        return True
    if text in _FAIL_LABELS:
        return False
    return None


EVALUATION_PASSED = "gen_ai.evaluation.passed"  # in the wild (splunk-otel-util-genai), not semconv


def evaluation_passed(attrs: dict[str, Any], label: Any) -> bool | None:
    """Whether an evaluation passed: its boolean ``gen_ai.evaluation.passed`` (taken out of
    ``attrs``), else what its label says (pass, relevant, fail...; None when it says neither).
    A ``passed`` that is not a boolean ("yes") stays in ``attrs``: the label decides."""
    passed = attrs.get(EVALUATION_PASSED)
    if passed.__class__ is bool:
        del attrs[EVALUATION_PASSED]
        return passed
    return passed_from_label(label)


def evaluation_id(run_id: str, subject: str | None, metric: str, time_ns: int,
                  repeat: int = 0) -> str:
    """The eval_id of an evaluation of ``subject`` (the judged span's id, else its response id)
    at ``time_ns``: the same whether it came as a span event or as a log record, from any file
    or encoding, so one evaluation exported both ways is stored once. ``repeat`` tells apart
    evaluations of one metric on one span at the same instant (0 for the first)."""
    if repeat:
        return stable_id(run_id, subject, metric, time_ns, repeat)
    return stable_id(run_id, subject, metric, time_ns)


# Attribute keys that name canonical columns no matter which convention wrote the span (users
# add them by hand, or through OpenInference ``metadata``). First match wins.
USER_KEYS: dict[str, tuple[str, ...]] = {
    "user_id": ("user.id", "enduser.id", "gen_ai.user.id", "user_id"),
    "session_id": ("session.id", "gen_ai.conversation.id", "session_id", "conversation.id"),
    "customer_id": ("customer.id", "tenant.id", "customer_id", "tenant_id", "organization.id"),
    "feature": ("app.feature", "feature", "route", "app.route"),
    "prompt_name": ("gen_ai.prompt.name", "prompt.name", "prompt_name"),
    "prompt_version": ("gen_ai.prompt.version", "prompt.version", "prompt_version",
                       "llm.prompt_template.version"),
    "guardrail": ("guardrail", "guardrail.name"),
    "guardrail_action": ("guardrail.action", "guardrail_action"),
}
USER_KEY_SET = frozenset(k for keys in USER_KEYS.values() for k in keys)


def user_columns(attrs: dict[str, Any], out: dict[str, Any]) -> None:
    """Fill canonical user-level columns (user, session, customer, feature...) from ``attrs``."""
    if USER_KEY_SET.isdisjoint(attrs):
        return  # the common case, decided in C
    for column, keys in USER_KEYS.items():
        if out.get(column) is not None:
            continue
        for key in keys:
            value = attrs.get(key)
            if value is not None and value != "":
                out[column] = value if value.__class__ is str else as_text(value)
                break


# ---------------------------------------------------------------------------------------------
# Rows -> Arrow tables

REQUEST_COLUMNS = (
    "request_id", "trace_id", "parent_id", "ts", "latency_ms", "ttft_ms", "provider", "model",
    "response_model", "operation", "input_tokens", "cached_input_tokens", "cache_write_tokens",
    "output_tokens", "reasoning_tokens", "logged_cost_usd", "status", "error_type",
    "error_message", "finish_reason", "service", "environment", "feature", "app_version",
    "prompt_name", "prompt_version", "user_id", "customer_id", "session_id", "guardrail",
    "guardrail_action", "input_text", "output_text", "attributes", "cache_write_1h_tokens",
    "web_searches",
)
# (rows are built by position in the hot path: a column is only ever added at the end)
assert REQUEST_COLUMNS.index("attributes") == 33 and REQUEST_COLUMNS.index("service") == 20
SPAN_COLUMNS = ("span_id", "trace_id", "parent_id", "ts", "duration_ms", "name", "kind", "status",
                "attributes")
EVAL_COLUMNS = ("eval_id", "run_id", "ts", "source", "dataset", "case_id", "epoch", "request_id",
                "version", "model", "metric", "score", "passed", "judge", "label", "explanation",
                "attributes")


def rows_to_table(rows: list[tuple | list], columns: tuple[str, ...], arrow_schema: pa.Schema,
                  lines: list[int]) -> pa.Table:
    """Row tuples (in ``columns`` order) -> one Arrow table with canonical types and ``_line``.

    Timestamps are given as integer microseconds since the epoch (UTC).
    """
    transposed = list(zip(*rows)) if rows else [()] * len(columns)
    arrays = []
    for name, values in zip(columns, transposed):
        arrow_type = arrow_schema.field(name).type
        if pa.types.is_timestamp(arrow_type):
            # ints -> timestamp directly is ~100x slower than ints -> int64 -> cast
            arrays.append(pa.array(values, type=pa.int64()).cast(arrow_type))
        else:
            arrays.append(pa.array(values, type=arrow_type))
    arrays.append(pa.array(lines, type=pa.int64()))
    return pa.Table.from_arrays(arrays, names=[*columns, "_line"])


class Batch:
    """Accumulates rows of the three tables plus rejects; ``flush`` turns them into a Chunk."""

    def __init__(self) -> None:
        self.requests: list[tuple | list] = []
        self.request_lines: list[int] = []
        self.spans: list[tuple] = []
        self.span_lines: list[int] = []
        self.evals: list[tuple] = []
        self.eval_lines: list[int] = []
        self.rejects: list[Reject] = []
        # what was read but deliberately not stored, by what it is (Chunk.not_read)
        self.not_read: collections.Counter[str] = collections.Counter()

    def __len__(self) -> int:
        return len(self.spans) + len(self.requests) + len(self.evals) + len(self.rejects)

    def reject(self, line: int | None, raw: bytes | str, reason: str) -> None:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        self.rejects.append(Reject(line, valid_text(raw[: schema.RAW_MAX_CHARS]),
                                   valid_text(reason)))

    def flush(self) -> Chunk:
        tables: dict[str, pa.Table] = {}
        for name, rows, lines, columns, arrow_schema in (
                ("requests", self.requests, self.request_lines, REQUEST_COLUMNS, schema.REQUESTS),
                ("spans", self.spans, self.span_lines, SPAN_COLUMNS, schema.SPANS),
                ("evals", self.evals, self.eval_lines, EVAL_COLUMNS, schema.EVALS)):
            if rows:
                table = self._table(rows, lines, columns, arrow_schema)
                if table is not None:
                    tables[name] = table
        chunk = Chunk(tables=tables, rejects=self.rejects, not_read=dict(self.not_read))
        self.__init__()
        return chunk

    def _table(self, rows: list, lines: list[int], columns: tuple[str, ...],
               arrow_schema: pa.Schema) -> pa.Table | None:
        """``rows_to_table``; should a value its column's type cannot hold have come through the
        format's checks (an int beyond int64, a list for a string), its row becomes a reject
        naming the column and the value, instead of failing the file. None: no row is left."""
        try:
            return rows_to_table(rows, columns, arrow_schema, lines)
        except _ARROW_ERRORS:
            bad = unstorable(rows, columns, arrow_schema)
            if not bad:
                raise
        for i, reason in bad.items():
            self.reject(lines[i], json_text(dict(zip(columns, rows[i]))), reason)
        self.rejects.sort(key=lambda r: -1 if r.line is None else r.line)  # in line order
        keep = [i for i in range(len(rows)) if i not in bad]
        if not keep:
            return None
        return rows_to_table([rows[i] for i in keep], columns, arrow_schema,
                             [lines[i] for i in keep])


_ARROW_ERRORS = (pa.ArrowException, OverflowError, TypeError, ValueError)


def unstorable(rows: list, columns: tuple[str, ...], arrow_schema: pa.Schema) -> dict[int, str]:
    """{row index: reason} for the rows holding a value that its column's Arrow type cannot
    hold ("input_tokens cannot be stored as int64: 100000000000000000000000000000")."""
    bad: dict[int, str] = {}
    for name, values in zip(columns, zip(*rows)):
        arrow_type = arrow_schema.field(name).type
        if pa.types.is_timestamp(arrow_type):
            arrow_type = pa.int64()  # microseconds, cast afterwards
        try:
            pa.array(values, type=arrow_type)
            continue
        except _ARROW_ERRORS:
            pass
        for i, value in enumerate(values):
            if i not in bad:
                try:
                    pa.array([value], type=arrow_type)
                except _ARROW_ERRORS:
                    bad[i] = f"{name} cannot be stored as {arrow_type}: {shown(value)}"
    return dict(sorted(bad.items()))


# ---------------------------------------------------------------------------------------------
# The envelope


class Resource:
    """What a ``resourceSpans`` entry says about every span under it."""

    __slots__ = ("app_version", "environment", "extra", "service")

    _MAPPED = ("service.name", "service.version", "deployment.environment.name",
               "deployment.environment")

    def __init__(self, attrs: dict[str, Any]) -> None:
        self.service = as_text(attrs.get("service.name"))
        self.app_version = as_text(attrs.get("service.version"))
        env = attrs.get("deployment.environment.name") or attrs.get("deployment.environment")
        self.environment = as_text(env)
        # telemetry.sdk.* and the instance id describe the exporter, not the application
        self.extra = {k: v for k, v in attrs.items()
                      if k not in self._MAPPED and not k.startswith("telemetry.")
                      and k != "service.instance.id"}


class Span:
    """One span's envelope fields, decoded; ``attrs`` are its attributes as a dict."""

    __slots__ = (
        "attrs",
        "end_ns",
        "error",
        "events",
        "name",
        "parent_id",
        "resource",
        "scope",
        "span_id",
        "start_ns",
        "status_message",
        "trace_id",
    )

    def __init__(self, raw: dict, resource: Resource,
                 scope: tuple[str | None, str | None] | None = None) -> None:
        self.scope = scope  # (name, version) of the instrumentation scope that recorded it
        get = raw.get
        # lowercase hex ids (the Collector's encoding) take a fast path; norm_id does the rest
        span_id = get("spanId") or get("span_id")
        self.span_id = span_id if (span_id.__class__ is str and len(span_id) == 16
                                   and span_id.islower() and span_id != _ZERO_SPAN) \
            else norm_id(span_id, "spanId")
        if not self.span_id:
            raise ValueError("span has no spanId")
        trace_id = get("traceId") or get("trace_id")
        self.trace_id = trace_id if (trace_id.__class__ is str and len(trace_id) == 32
                                     and trace_id.islower() and trace_id != _ZERO_TRACE) \
            else norm_id(trace_id, "traceId")
        parent_id = get("parentSpanId") or get("parent_span_id")
        self.parent_id = None if not parent_id else parent_id if (
            parent_id.__class__ is str and len(parent_id) == 16 and parent_id.islower()
            and parent_id != _ZERO_SPAN) else norm_id(parent_id, "parentSpanId")
        name = get("name")
        self.name = name if name.__class__ is str else as_text(name)  # 42 -> "42"
        start = get("startTimeUnixNano") or get("start_time_unix_nano")
        if start is None:
            raise ValueError("span has no startTimeUnixNano")
        # unix_nano without its call: decimal text (the usual encoding) or a JSON number;
        # "1.5", "1e400", "yesterday" raise a reason naming the field
        self.start_ns = integer(start, "startTimeUnixNano", 0, UINT64_MAX)
        end = get("endTimeUnixNano") or get("end_time_unix_nano")
        self.end_ns = (integer(end, "endTimeUnixNano", 0, UINT64_MAX) or None  # "0": unset
                       if end else None)
        status = get("status")
        if status:
            if status.__class__ is not dict:
                raise BadValue(f"status is not an object: {shown(status)}")
            code = status.get("code")
            # An unknown code (7, "STATUS_CODE_BOGUS") would otherwise read as ok.
            if code.__class__ in (list, dict, float, bool) or code not in _STATUS_CODES:
                raise BadValue(f"status.code is not a status code: {shown(code)}")
            self.error = code in _STATUS_ERROR
            message = status.get("message")
            self.status_message = message if message.__class__ is str else as_text(message)
        else:
            self.error, self.status_message = False, None
        attributes = get("attributes")
        if attributes and attributes.__class__ is not list \
                and attributes.__class__ is not DecodedAttributes:
            raise BadValue(f"attributes is not a list: {shown(attributes)}")
        self.attrs = decode_attributes(attributes)
        events = get("events")
        if events and (events.__class__ is not list
                       or any(e.__class__ is not dict for e in events)):
            raise BadValue(f"events is not a list of events: {shown(events)}")
        self.events = events or ()
        self.resource = resource

    @property
    def ts_us(self) -> int:
        return self.start_ns // 1000

    @property
    def duration_ms(self) -> float | None:
        if self.end_ns is None:
            return None
        return (self.end_ns - self.start_ns) / 1e6

    def event_ms(self, event: dict) -> float | None:
        """Milliseconds from the span's start to an event."""
        t = event.get("timeUnixNano") or event.get("time_unix_nano")
        return (event_time(event, t) - self.start_ns) / 1e6 if t else None

    def exception_type(self) -> str | None:
        """The type of the last ``exception`` event, normalised (``RateLimitError``)."""
        found = None
        for event in self.events:
            if event.get("name") == "exception":
                attrs = decode_attributes(event.get("attributes"))
                found = attrs.get("exception.type") or found
        return norm_error_type(found)


def unix_nano(value: Any, key: str) -> int:
    """An OTLP time (fixed64 nanoseconds since the epoch: decimal text or a JSON number) as an
    int, else :class:`BadValue` ("startTimeUnixNano is out of range: 1e+308"): ``values.integer``
    in 0 .. 2^64-1."""
    return integer(value, key, 0, UINT64_MAX)


def event_time(event: dict, t: Any) -> int:
    """``unix_nano`` of an event's time ``t``; a reason names the event."""
    return unix_nano(t, f"timeUnixNano of event {shown(event.get('name'))}")


# A span mapper reads one span's attributes under one convention and returns
# (span kind, request columns or None, attribute keys it consumed or dropped).
SpanMapper = Callable[[Span], tuple[str, dict[str, Any] | None, frozenset[str] | set[str]]]


READ_BYTES = 1 << 20


def buffered(stream: BinaryIO) -> BinaryIO:
    """``stream`` with a real read buffer, so iterating lines does not read byte by byte.

    The pipeline hands a raw stream (``io.RawIOBase``) whose line iteration is unbuffered.
    """
    if isinstance(stream, (io.BufferedReader, io.BytesIO)):
        return stream
    return io.BufferedReader(stream, READ_BYTES)


# A file that is one JSON document (pretty-printed, not one record per line) can only be parsed
# whole, and parsed JSON takes ~10x its size in memory (a 100 MB document peaked at 1.4 GB). Such
# files are hand-saved payloads (an OTLP/HTTP request body, an API page), small in practice; one
# larger than this fails with a one-line error asking for JSON lines, which stream.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024


def opens_document(data: bytes, openers: tuple[bytes, ...] = (b"{", b"[")) -> bool:
    """True when the first non-blank line of ``data`` (the start of a file) is a lone ``{`` (or
    another of ``openers``): the file is one pretty-printed JSON document, not JSON lines."""
    stripped = data.lstrip()
    end = stripped.find(b"\n")
    return (stripped if end < 0 else stripped[:end]).strip() in openers


def lines_not_document(head: bytes) -> bool:
    """True when a file starting with ``head`` is JSON lines, not one pretty-printed document:
    its lines can be read from any line's start (lib/ingest/appended.py)."""
    return not opens_document(head.removeprefix(UTF8_BOM))


def read_document(head: bytes, stream: BinaryIO, advice: str) -> bytes:
    """``head`` (the start of a file, already read) + the rest of ``stream``: a whole JSON
    document of at most ``MAX_DOCUMENT_BYTES``. A larger one raises :class:`InputError` (the file
    fails with that one line) ending with ``advice``; memory stays within the limit."""
    limit = MAX_DOCUMENT_BYTES
    rest = stream.read(max(limit - len(head), 0) + 1)
    if len(head) + len(rest) > limit:
        raise InputError(f"a single JSON document larger than {limit / 2**20:g} MiB is too large "
                         f"to read whole; {advice}")
    return head + rest if rest else head


class _Replay:
    """``head`` (bytes already read) followed by the rest of ``stream``, read forward once."""

    # Not a file's start for lib.ingest.streams.line_blocks: the caller read the head and
    # removed a byte order mark only if the head is the file's start.
    origin = -1

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head, self._stream = head, stream

    def read(self, n: int = -1) -> bytes:
        if not self._head:
            return self._stream.read(n)
        if n is None or n < 0:
            out, self._head = self._head + self._stream.read(), b""
        elif n >= len(self._head):
            out, self._head = self._head, b""  # a short read: the caller reads again
        else:
            out, self._head = self._head[:n], self._head[n:]
        return out


def json_line_blocks(head: bytes, stream: BinaryIO) -> Iterator[LineBlock]:
    """Blocks of whole lines (about ``BLOCK_BYTES`` each) of ``head`` + the rest of ``stream``.

    A line longer than ``lib.ingest.streams.MAX_LINE_BYTES`` is never held in memory: it is
    skipped to its end and left as an empty line, numbering kept, with its reject in the block's
    ``rejects`` (see :func:`lib.ingest.streams.line_blocks`).
    """
    return streams.line_blocks(_Replay(head, stream), BLOCK_BYTES, streams.MAX_LINE_BYTES)


def block_documents(blocks: Iterable[LineBlock], lenient: bool = False,
                    ) -> Iterator[tuple[int, bytes | str, Any, str | None]]:
    """:func:`_documents` of each block's lines, the blocks' over-long lines among them as
    errors (raw = their first bytes), in line order."""
    for block in blocks:
        docs = _documents(io.BytesIO(block.data), block.first_line, lenient=lenient)
        if block.rejects:
            docs = heapq.merge(((r.line, r.raw, None, r.reason) for r in block.rejects), docs,
                               key=lambda d: d[0])
        yield from docs


def _documents(lines: Iterable[bytes], start: int = 1,
               read_rest: Callable[[], bytes] | None = None, lenient: bool = False,
               ) -> Iterator[tuple[int, bytes, Any, str | None]]:
    """(line number, raw line, parsed document or None, error) for each non-blank line.

    One ``ExportTraceServiceRequest`` per line is the Collector's layout. A file that is one
    pretty-printed document (an OTLP/HTTP JSON payload saved by hand) is read whole, as line 1:
    when the first non-blank line is a lone ``{`` or ``[``, ``read_rest()`` gives the remainder
    of the file (``None``: the lines are a block from the middle of a file, never whole).
    ``lenient`` (OTLP): a line orjson refuses is tried by :func:`_lenient`.
    """
    first = read_rest is not None
    for line_no, raw in enumerate(lines, start):
        if not raw.strip():
            continue
        try:
            doc = loads(raw)
        except ValueError as exc:
            if first and raw.strip() in (b"{", b"["):
                whole = raw + read_rest()
                try:
                    doc = loads(whole)
                except ValueError as exc2:
                    yield line_no, whole, None, f"not valid JSON: {exc2}"
                    return
                for item in doc if isinstance(doc, list) else [doc]:
                    yield line_no, whole, item, None
                return
            doc = _lenient(raw) if lenient else None
            first = False
            if doc is None:
                yield line_no, raw, None, f"not valid JSON: {exc}"
                continue
        first = False
        yield line_no, raw, doc, None


# The public name of ``_documents``, for the other formats in OTLP's envelope (otlp_logs).
documents = _documents


class NotText:
    """A span whose text is not valid UTF-8 (bytes that are not, or a lone surrogate escape),
    put in place of the span by :func:`_lenient`: :func:`_add_span` rejects it alone."""

    def __init__(self, raw: dict) -> None:
        self.raw = raw


def _lenient(raw: bytes) -> Any:
    """A line orjson refused because some text in it is not valid UTF-8, parsed by Python's
    json instead, with each span holding such text replaced by :class:`NotText`, so only those
    spans are quarantined; None when the line is not JSON at all."""
    try:  # NaN and Infinity stay errors, as for orjson
        doc = json.loads(raw.decode("utf-8", "surrogateescape"), parse_constant=_no_constant)
    except (ValueError, RecursionError):  # nested past orjson's limit (1,024) is no span either
        return None
    for request in doc if isinstance(doc, list) else (doc,):  # (a line may hold an array)
        resource_spans = request.get("resourceSpans", request.get("resource_spans")) \
            if isinstance(request, dict) else None
        for rs in resource_spans if isinstance(resource_spans, list) else ():
            scopes = (rs.get("scopeSpans") or rs.get("scope_spans") or ()) \
                if isinstance(rs, dict) else ()
            for scope in scopes if isinstance(scopes, list) else ():
                spans = scope.get("spans") if isinstance(scope, dict) else None
                for i, span in enumerate(spans if isinstance(spans, list) else ()):
                    if not is_text(span):
                        spans[i] = NotText(span)
    return doc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")




def without_cyclic_gc(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """Run a chunk generator with Python's cyclic garbage collector paused.

    Parsing allocates millions of small dicts and tuples; the collector's repeated scans of them
    cost ~30% of the time and free nothing (parsed JSON has no reference cycles, reference
    counting frees it). The collector runs again while the consumer handles each chunk.
    """
    enabled = gc.isenabled()
    while True:
        gc.disable()
        try:
            chunk = next(chunks, None)
        finally:
            if enabled:
                gc.enable()
        if chunk is None:
            return
        yield chunk


def parse_otlp(stream: BinaryIO, filename: str, mappers: dict[str, SpanMapper],
               choose: Callable[[dict[str, Any]], str],
               chunk_rows: int = CHUNK_ROWS, workers: int | None = None) -> Iterator[Chunk]:
    """Stream an OTLP JSON trace file into Chunks of requests, spans and evals.

    Lines of the Collector's other signals, as a file exporter shared by several pipelines
    writes them, are read too: an ``ExportLogsServiceRequest`` gives its
    ``gen_ai.evaluation.result`` events as evals (lib/ingest/formats/otlp_logs.py; its other
    records are counted in ``Chunk.not_read``), an ``ExportMetricsServiceRequest`` is counted.

    ``choose(attrs)`` names the mapper for a span; ``mappers[name](span)`` maps it.
    A line that is not JSON, or not an ``ExportTraceServiceRequest``, is one Reject; a span that
    cannot be read (no id, a time or a token count that is no integer or out of range) is one
    Reject with the same line number, its reason naming the field and the value
    ("span not usable: startTimeUnixNano is out of range: 1e+308"); its siblings go on. An
    evaluation event that cannot be read is a Reject of its own; its span is kept. A line
    longer than ``lib.ingest.streams.MAX_LINE_BYTES`` is skipped unread and is one
    Reject; a file that is one pretty-printed document larger than ``MAX_DOCUMENT_BYTES`` raises
    :class:`InputError` (the pipeline fails that file alone).

    A file larger than one block (``BLOCK_BYTES``) is parsed by ``workers`` worker processes
    (default: one per core, up to 4; ``SIGHTLINE_PARSE_WORKERS=1`` turns them off), a block of
    whole lines each, and the results are put back in file order: the rows, their ``_line``
    numbers and the rejects are exactly those of the single-process parse.
    """
    return without_cyclic_gc(_parse_stream(stream, mappers, choose, chunk_rows, workers))


NOT_READ_METRICS = "line(s) of OTLP metrics (resourceMetrics)"
# Spans that name a model or token counts under attributes no mapping reads (OpenLLMetry's older
# llm.*, the Vercel AI SDK's ai.*...): stored as spans, which would say nothing of why a file of
# model calls gave no requests. A sentence of its own (it ends with a period: base.not_read_notes).
UNMAPPED_MODEL_SPANS = ("span(s) naming a model or token counts in attributes no convention "
                        "Sightline reads (it reads gen_ai.*, OpenInference and the Langfuse "
                        "SDK's): kept as spans, not counted as requests.")
# Spans whose input count proved to hold no cached tokens (see inclusive_input): said in the
# report, since their input was changed from what was logged.
CACHED_OUTSIDE_INPUT = ("span(s) whose cache reads and writes exceeded their input token count, "
                        "a count without them (as Anthropic's raw input_tokens): they were added "
                        "to it, since input includes cached tokens.")
# The request column flagging such a span (read by the batch, not stored).
CACHE_ADDED = "_cache_added"
# Spans of a release known to have counted the cached tokens twice in its input count (see
# openinference.CACHED_TWICE): said in the report, since their input was changed too.
CACHED_COUNTED_TWICE = ("span(s) of openinference-instrumentation-google-genai 0.1.12 to 0.1.15, "
                        "whose llm.token_count.prompt counted the cached tokens twice "
                        "(Arize-ai/openinference#3013): they were taken out once.")
CACHE_TAKEN_OUT = "_cache_taken_out"
# Spans whose output count proved to hold no reasoning tokens (see inclusive_output): said, since
# their output was changed from what was logged.
REASONING_OUTSIDE_OUTPUT = ("span(s) whose reasoning tokens were beside their output token "
                            "count (as xAI's completion_tokens leave them out): they were added "
                            "to it, since output includes reasoning.")
REASONING_ADDED = "_reasoning_added"
_MODEL_KEY = re.compile(r"(?:^|\.)(?:model|modelname|modelid|prompttokens|completiontokens|"
                        r"inputtokens|outputtokens|totaltokens|tokencount)(?:\.|$)")


def looks_like_model_call(attrs: dict[str, Any]) -> bool:
    """True when a span no mapping made a request still names a model or token counts outside
    ``gen_ai.*`` (``llm.request.model``, ``ai.usage.promptTokens``). Not the Vercel AI SDK's
    envelope of a call (``ai.generateText``, ``ai.streamText``...): it sums the usage of its
    steps (``ai.generateText.doGenerate``...), which carry gen_ai.* and are the requests; said
    of it, every call of an AI SDK app was reported "not counted as requests" (review)."""
    operation = attrs.get("ai.operationId")
    if operation.__class__ is str and operation.startswith("ai.") and ".do" not in operation:
        return False
    return any(_MODEL_KEY.search(k.lower().replace("_", "")) for k in attrs
               if not k.startswith("gen_ai."))


def _other_signal(doc: Any) -> tuple[str | None, list]:
    """("logs", its entries) or ("metrics", its entries) for a document of the Collector's
    other signals (a list under ``resourceLogs`` or ``resourceMetrics``, either spelling), else
    (None, [])."""
    if not isinstance(doc, dict):
        return None, []
    logs = doc.get("resourceLogs", doc.get("resource_logs"))
    if isinstance(logs, list):
        return "logs", logs
    if isinstance(doc.get("resourceMetrics", doc.get("resource_metrics")), list):
        return "metrics", []
    return None, []


def parse_documents(docs: Iterable[tuple[int, bytes | str, Any, str | None]],
                    mappers: dict[str, SpanMapper], choose: Callable[[dict[str, Any]], str],
                    chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """Chunks of already parsed export requests, given as ``_documents`` gives JSON lines
    (number, raw, document or None, error or None): the OTLP protobuf files' way in."""
    return _parse_docs(docs, mappers, choose, chunk_rows)


def _parse_docs(docs: Iterable[tuple[int, bytes, Any, str | None]],
                mappers: dict[str, SpanMapper], choose: Callable[[dict[str, Any]], str],
                chunk_rows: int) -> Iterator[Chunk]:
    """The documents of ``_documents`` -> Chunks of about ``chunk_rows`` rows."""
    batch = Batch()
    for line_no, raw, line_doc, error in docs:
        if error is not None:
            batch.reject(line_no, raw, error)
            continue
        # A line holding a JSON array of export requests (`jq -c -s .` of a Collector file) is
        # read as the pretty-printed array is: its requests one by one
        requests = line_doc if line_doc.__class__ is list and line_doc \
            and all(d.__class__ is dict for d in line_doc) else (line_doc,)
        for doc in requests:
            yield from _parse_doc(batch, line_no, raw, doc, mappers, choose, chunk_rows)
    yield batch.flush()


def _parse_doc(batch: Batch, line_no: int, raw: bytes | str, doc: Any,
               mappers: dict[str, SpanMapper], choose: Callable[[dict[str, Any]], str],
               chunk_rows: int) -> Iterator[Chunk]:
    """One export request of line ``line_no`` into ``batch``; a Chunk when ``batch`` is full."""
    resource_spans = doc.get("resourceSpans", doc.get("resource_spans")) \
        if isinstance(doc, dict) else None
    if not isinstance(resource_spans, list):
        # The Collector's file exporter may be shared by the traces, logs and metrics
        # pipelines: a logs line gives its evaluation events, a metrics line is counted.
        other, entries = _other_signal(doc)
        if other == "logs":
            from lib.ingest.formats.otlp_logs import add_resource_logs  # (imports this one)
            seen: dict = {}  # evaluations of one line, to number repeats as span events do
            for entry in entries:
                add_resource_logs(batch, entry, line_no, seen)
        elif other == "metrics":
            batch.not_read[NOT_READ_METRICS] += 1
        elif isinstance(doc, dict) and ("resourceLogs" in doc or "resource_logs" in doc):
            batch.reject(line_no, raw, "not an OTLP ExportLogsServiceRequest "
                                       "(no resourceLogs list)")
        else:
            batch.reject(line_no, raw, "not an OTLP ExportTraceServiceRequest "
                                       "(no resourceSpans list)")
    else:
        for rs in resource_spans:
            try:
                resource = Resource(decode_attributes((rs.get("resource") or {}).get("attributes")))
                scopes = (rs.get("scopeSpans") or rs.get("scope_spans")
                          or rs.get("instrumentationLibrarySpans") or ())
                for scope in scopes:
                    spans = scope.get("spans") or ()
                    if spans.__class__ is not list and spans != ():
                        raise BadValue(f"spans is not a list: {shown(spans)}")
                    named = scope_of(scope.get("scope") or scope.get("instrumentationLibrary"))
                    for raw_span in spans:
                        _add_span(batch, raw_span, resource, line_no, mappers, choose, named)
            except (AttributeError, TypeError, KeyError, ValueError, OverflowError) as exc:
                batch.reject(line_no, json_text(rs), f"malformed resourceSpans entry: {exc}")
    if len(batch) >= chunk_rows:
        yield batch.flush()


def scope_of(scope: Any) -> tuple[str | None, str | None] | None:
    """(name, version) of an instrumentation scope object, None for none."""
    if scope.__class__ is not dict:
        return None
    name, version = scope.get("name"), scope.get("version")
    return (name if name.__class__ is str else None,
            version if version.__class__ is str else None)


def _add_span(batch: Batch, raw_span: dict, resource: Resource, line_no: int,
              mappers: dict[str, SpanMapper], choose: Callable[[dict[str, Any]], str],
              scope: tuple[str | None, str | None] | None = None) -> None:
    try:
        if raw_span.__class__ is not dict:
            if raw_span.__class__ is NotText:
                batch.reject(line_no, json.dumps(raw_span.raw),
                             "span not usable: not valid UTF-8 text")
                return
            raise BadValue(f"not a span object: {shown(raw_span)}")
        span = Span(raw_span, resource, scope)
        kind, request, consumed = mappers[choose(span.attrs)](span)
        if request is None and kind == "other" and looks_like_model_call(span.attrs):
            batch.not_read[UNMAPPED_MODEL_SPANS] += 1
        error = span.error
        # an error with no error type of its own: the exception event's, else the HTTP status of
        # an SDK's API error in the status message (rare: the hot path only tests the flags)
        error_type = (span.exception_type() or http_error_code(span.status_message)) \
            if error and request is not None and not request.get("error_type") else None
    except (AttributeError, TypeError, KeyError, ValueError, OverflowError) as exc:
        batch.reject(line_no, json_text(raw_span), f"span not usable: {exc}")
        return
    # `error.type` is set only when the operation ended in an error (GenAI semantic
    # conventions), whatever the span's status says: an error, as validate.py reads a row with
    # an error type and no status.
    if not error and request is not None and request.get("error_type"):
        error = True
    status = "error" if error else "ok"
    ts_us = span.start_ns // 1000
    duration_ms = None if span.end_ns is None else (span.end_ns - span.start_ns) / 1e6
    if request is not None:
        extra = {k: v for k, v in span.attrs.items() if k not in consumed}
        if resource.extra:
            extra = {**resource.extra, **extra}
        # the mapper's columns in REQUEST_COLUMNS order (one C loop), then the envelope's
        if request.get(CACHE_ADDED):
            batch.not_read[CACHED_OUTSIDE_INPUT] += 1
        elif request.get(CACHE_TAKEN_OUT):
            batch.not_read[CACHED_COUNTED_TWICE] += 1
        if request.get(REASONING_ADDED):
            batch.not_read[REASONING_OUTSIDE_OUTPUT] += 1
        row = list(map(request.get, REQUEST_COLUMNS))
        row[0], row[1], row[2], row[3], row[4] = (span.span_id, span.trace_id, span.parent_id,
                                                  ts_us, duration_ms)
        row[16] = status
        row[17] = row[17] or error_type
        # (the span's status message, else the mapper's: a Responses API object's own error)
        row[18] = (span.status_message or row[18]) if error else None
        row[20] = row[20] or resource.service
        row[21] = row[21] or resource.environment
        row[23] = row[23] or resource.app_version
        row[33] = json_text(extra) if extra else None  # an odd key or int: not a file failure
        batch.requests.append(row)
        batch.request_lines.append(line_no)
        span_attrs = None  # the details are in requests: join on span_id = request_id
    else:
        attrs = span.attrs
        if resource.service is not None:
            attrs = {"service.name": resource.service, **attrs}
        span_attrs = json_text(attrs) if attrs else None
    batch.spans.append((span.span_id, span.trace_id, span.parent_id, ts_us,
                        duration_ms, span.name, kind, status, span_attrs))
    batch.span_lines.append(line_no)
    if span.events:
        _add_evaluations(batch, span, request, line_no)


EVALUATION_EVENT = "gen_ai.evaluation.result"


def _add_evaluations(batch: Batch, span: Span, request: dict | None, line_no: int) -> None:
    """``gen_ai.evaluation.result`` span events -> online eval rows judging this span.

    An event with a value its eval row cannot hold (a time out of range, a score that is no
    number) is a reject of its own, naming the span, the field and the value; the span's rows
    and its other evaluations are kept."""
    seen: dict[tuple[str, int], int] = {}
    for event in span.events:
        if event.get("name") != EVALUATION_EVENT:
            continue
        try:
            a = decode_attributes(event.get("attributes"))
            metric = as_text(a.pop("gen_ai.evaluation.name", None)) or "evaluation"
            t = event.get("timeUnixNano") or event.get("time_unix_nano")
            # no time, or 0 (a printer writing default values): the span's start
            time_ns = (unix_nano(t, "timeUnixNano") if t else 0) or span.start_ns
            label = as_text(a.pop("gen_ai.evaluation.score.label", None))
            score = number(a.pop("gen_ai.evaluation.score.value", None),
                           "gen_ai.evaluation.score.value", signed=True)
            passed = evaluation_passed(a, label)
            explanation = as_text(a.pop("gen_ai.evaluation.explanation", None))
            judge = as_text(a.pop("gen_ai.evaluation.judge", None)
                            or a.pop("gen_ai.evaluator.name", None))
            model = (request or {}).get("response_model") or (request or {}).get("model") \
                or as_text(span.attrs.get("gen_ai.response.model")
                           or span.attrs.get("gen_ai.request.model"))
            # the span's trace: Quality's filters find an evaluation of a step that is no
            # model call (an invoke_agent span: no request) through it (quality._judges)
            if span.trace_id:
                a["trace_id"] = span.trace_id
            extra = json_text(a) if a else None
        except (AttributeError, TypeError, KeyError, ValueError) as exc:
            batch.reject(line_no, json_text(event),
                         f"{EVALUATION_EVENT} event of span {span.span_id} not usable: {exc}")
            continue
        run_id = "online:" + (span.resource.service or "unknown")
        # the same metric twice on one span at one instant: two rows (counted among the
        # accepted events only, so a quarantined sibling does not shift the ids)
        repeat = seen.get((metric, time_ns), 0)
        seen[(metric, time_ns)] = repeat + 1
        batch.evals.append((
            evaluation_id(run_id, span.span_id, metric, time_ns, repeat), run_id,
            time_ns // 1000, "online", None, span.span_id, None, span.span_id,
            span.resource.app_version, model, metric, score, passed, judge, label, explanation,
            extra,
        ))
        batch.eval_lines.append(line_no)


UTF8_BOM = streams.UTF8_BOM


def head_has_otlp_envelope(head: bytes) -> bool:
    """True when the first bytes look like an OTLP JSON trace export."""
    text = streams.text_start(head)
    return text[:1] in (b"{", b"[") and (b'"resourceSpans"' in head or b'"resource_spans"' in head)


# ---------------------------------------------------------------------------------------------
# Streaming, in blocks of whole lines, through worker processes

BLOCK_BYTES = 4 << 20  # input per worker task: ~4,500 GenAI spans


def _parse_stream(stream: BinaryIO, mappers: dict[str, SpanMapper],
                  choose: Callable[[dict[str, Any]], str], chunk_rows: int,
                  workers: int | None) -> Iterator[Chunk]:
    start = streams.at_file_start(stream)
    stream = buffered(stream)
    data = stream.read(BLOCK_BYTES)
    if start:
        data = data.removeprefix(UTF8_BOM)  # (Windows tools write one)
    # (a stream from inside its file goes on reading the lines its file's start opened)
    if start and opens_document(data):
        # one pretty-printed document: read whole (within MAX_DOCUMENT_BYTES), parsed here
        rest = io.BytesIO(read_document(data, stream, "write one OTLP export request (traces or "
                                                      "logs) per line (JSON lines) instead"))
        del data
        yield from _parse_docs(_documents(rest, 1, rest.read, lenient=True), mappers, choose,
                               chunk_rows)
        return
    small = len(data) < BLOCK_BYTES
    blocks = json_line_blocks(data, stream)
    del data
    pool = None if small else _acquire_pool(workers, mappers, choose)
    if pool is None:  # a small file, or no workers: one pass in this process
        yield from _parse_docs(block_documents(blocks, lenient=True), mappers, choose,
                               chunk_rows)
        return
    yield from _pooled(pool, blocks, _parse_block, mappers, choose, chunk_rows)


# ``(first, data, mappers, choose) -> Chunk``: one block of a file parsed, in a worker or here.
BlockParser = Callable[[Any, bytes, dict[str, SpanMapper], Callable[[dict[str, Any]], str]],
                       Chunk]


def parse_blocks(blocks: Iterator[Any], parse_block: BlockParser,
                 mappers: dict[str, SpanMapper], choose: Callable[[dict[str, Any]], str],
                 workers: int | None = None, chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """Chunks of ``blocks`` (each with ``first_line``, ``data`` and the ``rejects`` before or
    within it, as :class:`LineBlock`), each parsed by ``parse_block`` (a module-level function,
    so the workers can import it): by the worker pool when there is more than one block, in
    this process otherwise, in file order either way (the OTLP protobuf files' way in)."""
    first = next(blocks, None)
    if first is None:
        return
    second = next(blocks, None)
    pool = None if second is None else _acquire_pool(workers, mappers, choose)
    rest = itertools.chain([first], [second] if second is not None else [], blocks)
    if pool is None:
        yield from _merge((_with_rejects(parse_block(b.first_line, b.data, mappers, choose),
                                         b.rejects) for b in rest), chunk_rows)
        return
    yield from _pooled(pool, rest, parse_block, mappers, choose, chunk_rows)


def _pooled(pool: _Pool, blocks: Iterator[Any], parse_block: BlockParser,
            mappers: dict[str, SpanMapper], choose: Callable[[dict[str, Any]], str],
            chunk_rows: int) -> Iterator[Chunk]:
    """Chunks of ``blocks`` parsed by ``pool`` (:func:`_parallel_blocks`), merged to about
    ``chunk_rows`` rows; the pool is released however the consumer stops."""
    chunks = _parallel_blocks(pool, blocks, parse_block, mappers, choose)
    try:
        yield from _merge(chunks, chunk_rows)
    finally:
        chunks.close()
        _release_pool(pool)


def _parse_block(first: int, data: bytes, mappers: dict[str, SpanMapper],
                 choose: Callable[[dict[str, Any]], str]) -> Chunk:
    """One block of whole lines, the first being line ``first`` -> one Chunk."""
    chunks = list(_parse_docs(_documents(io.BytesIO(data), first, lenient=True), mappers, choose,
                              chunk_rows=1 << 62))
    return chunks[-1]


def _with_rejects(chunk: Chunk, rejects: list[Reject]) -> Chunk:
    """``chunk`` with its block's over-long lines among its rejects, in line order."""
    if rejects:
        chunk.rejects = list(heapq.merge(rejects, chunk.rejects, key=lambda r: r.line))
    return chunk


def _parallel_blocks(pool: _Pool, blocks: Iterator[LineBlock], parse_block: BlockParser,
                     mappers: dict[str, SpanMapper], choose: Callable[[dict[str, Any]], str],
                     ) -> Iterator[Chunk]:
    """Chunks of ``blocks``, in file order, parsed by ``pool``.

    At most two blocks per worker are in flight, so memory stays bounded. If the workers fail
    (one died, a pipe broke), the blocks they held and the rest are parsed here: a failure
    inside the parse itself then surfaces exactly as it would without workers.
    """
    pending: collections.deque[tuple[int, LineBlock]] = collections.deque()
    block = next(blocks, None)
    turn = 0
    try:
        while True:
            while block is not None and pool.ok and len(pending) < 2 * len(pool.procs):
                worker = turn % len(pool.procs)
                turn += 1
                if not pool.send(worker, parse_block, mappers, choose, block.first_line,
                                 block.data):
                    break
                pending.append((worker, block))
                block = next(blocks, None)
            if not pending:
                if block is None:
                    return
                # no worker took it (the pool broke): parse here from now on
                yield _with_rejects(parse_block(block.first_line, block.data, mappers, choose),
                                    block.rejects)
                block = next(blocks, None)
                continue
            worker, sent = pending.popleft()
            chunk = pool.receive(worker) if pool.ok else None
            if chunk is None:
                chunk = parse_block(sent.first_line, sent.data, mappers, choose)
            yield _with_rejects(chunk, sent.rejects)
    finally:
        if pending:
            pool.ok = False  # results still in the pipes: this pool cannot be reused


def _merge(chunks: Iterator[Chunk], chunk_rows: int) -> Iterator[Chunk]:
    """Chunks -> Chunks of at least ``chunk_rows`` rows (except the last), order kept."""
    parts: list[Chunk] = []
    rows = 0
    merged = 0
    for chunk in chunks:
        parts.append(chunk)
        rows += sum(t.num_rows for t in chunk.tables.values()) + len(chunk.rejects)
        if rows >= chunk_rows:
            yield _concat(parts)
            parts, rows, merged = [], 0, merged + 1
    if parts or not merged:
        yield _concat(parts)


def _concat(parts: list[Chunk]) -> Chunk:
    if not parts:
        return Chunk()
    if len(parts) == 1:
        return parts[0]
    tables: dict[str, pa.Table] = {}
    for name in ("requests", "spans", "evals"):
        found = [p.tables[name] for p in parts if name in p.tables]
        if found:
            tables[name] = pa.concat_tables(found) if len(found) > 1 else found[0]
    not_read: collections.Counter[str] = collections.Counter()
    for p in parts:
        not_read.update(p.not_read)
    return Chunk(tables=tables, rejects=[r for p in parts for r in p.rejects],
                 not_read=dict(not_read))


def default_workers() -> int:
    """Parse worker processes for large files: ``SIGHTLINE_PARSE_WORKERS``, else one per core
    (up to 4); 1 or less parses in the ingesting process."""
    env = os.environ.get("SIGHTLINE_PARSE_WORKERS", "").strip()
    if env:
        try:
            return int(env)
        except ValueError:
            pass
    return min(os.cpu_count() or 1, 4)


class _Pool:
    """Worker processes (``python -c ... _worker_main()``) fed blocks over their stdin.

    A message is framed by 8-byte lengths: a small pickle (mappers, choose, first line number),
    then the block's bytes; the answer is one pickle. A worker does one thing at a time (read,
    parse, write), and in this process a feeder and a collector thread per worker move the
    bytes, so neither side waits on the other's GIL. A worker exits when its stdin closes, so
    workers never outlive the ingesting process, even if it is killed with SIGKILL.
    """

    def __init__(self, n: int) -> None:
        root = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        code = "from lib.ingest.formats.otlp_common import _worker_main; _worker_main()"
        self.ok = True
        self.owner = os.getpid()  # a forked child must not use (or stop) its parent's workers
        self.procs: list[subprocess.Popen] = []
        self.inboxes: list[queue.Queue] = []
        self.results: list[queue.Queue] = []
        for _ in range(n):
            proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, env=env, cwd=root)
            self.procs.append(proc)
            _widen_pipe(proc.stdin)
            _widen_pipe(proc.stdout)
            inbox, results = queue.Queue(), queue.Queue()
            self.inboxes.append(inbox)
            self.results.append(results)
            threading.Thread(target=_feed, args=(proc, inbox), daemon=True,
                             name="otlp-parse-feed").start()
            threading.Thread(target=_collect, args=(proc, results), daemon=True,
                             name="otlp-parse-collect").start()

    def alive(self) -> bool:
        return self.ok and all(p.poll() is None for p in self.procs)

    def send(self, worker: int, parse_block: BlockParser, mappers: dict[str, SpanMapper],
             choose: Callable[[dict[str, Any]], str], first: Any, data: bytes) -> bool:
        if not self.ok:
            return False
        try:
            meta = pickle.dumps((mappers, choose, first, parse_block),
                                protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError):
            self.ok = False
            return False
        self.inboxes[worker].put((meta, data))
        return True

    def receive(self, worker: int) -> Chunk | None:
        payload = self.results[worker].get()
        if payload is None:  # the worker is gone
            self.results[worker].put(None)  # (and will be for any later call)
            self.ok = False
            return None
        try:
            status, tables, rejects, not_read = pickle.loads(payload)
        except Exception:  # noqa: BLE001 - any failure: the block is parsed in-process
            status = "error"
        if status != "ok":
            self.ok = False  # the parse failed in the worker: redo it here, where it raises
            return None
        return Chunk(tables=tables, rejects=rejects, not_read=not_read)

    def close(self) -> None:
        """Stop the workers: idle ones exit as their stdin closes, busy or broken ones are
        killed (their results would be stale)."""
        if os.getpid() != self.owner:
            return
        kill = not self.ok
        self.ok = False
        for proc, inbox in zip(self.procs, self.inboxes):
            if kill:
                proc.kill()
            inbox.put(None)  # the feeder closes the worker's stdin
        for proc in self.procs:
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _widen_pipe(pipe: Any) -> None:
    """1 MiB pipe buffers (Linux; default 64 KiB): fewer round trips per 4 MiB block."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError, ValueError):
        pass


def _feed(proc: subprocess.Popen, inbox: queue.Queue) -> None:
    pipe = proc.stdin
    try:
        while (message := inbox.get()) is not None:
            meta, data = message
            pipe.write(_FRAME.pack(len(meta)))
            pipe.write(meta)
            pipe.write(_FRAME.pack(len(data)))
            pipe.write(data)
            pipe.flush()
    except (OSError, ValueError):
        proc.kill()  # a half-written message: the collector sees the worker end
    finally:
        try:
            pipe.close()
        except (OSError, ValueError):
            pass


def _collect(proc: subprocess.Popen, results: queue.Queue) -> None:
    pipe = proc.stdout
    try:
        while (payload := _read_frame(pipe)) is not None:
            results.put(payload)
    except (OSError, ValueError):
        pass
    finally:
        results.put(None)
        try:
            pipe.close()
        except (OSError, ValueError):
            pass


def _read_frame(pipe: BinaryIO) -> bytes | None:
    header = pipe.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(header)
    payload = pipe.read(size)
    return payload if len(payload) == size else None


_FRAME = struct.Struct("<Q")
_POOL: _Pool | None = None
_POOL_LOCK = threading.Lock()


def _acquire_pool(workers: int | None, mappers: dict[str, SpanMapper],
                  choose: Callable[[dict[str, Any]], str]) -> _Pool | None:
    """The shared worker pool (started on first use, kept for the next files), or None when
    workers are off, busy with another file, or cannot be used."""
    global _POOL
    n = default_workers() if workers is None else workers
    if n <= 1:
        return None
    try:
        pickle.dumps((mappers, choose))  # functions of a module: workers import them
    except (pickle.PicklingError, AttributeError, TypeError):
        return None
    if not _POOL_LOCK.acquire(blocking=False):
        return None
    try:
        if _POOL is not None and (not _POOL.alive() or len(_POOL.procs) != n):
            _POOL.close()
            _POOL = None
        if _POOL is None:
            _POOL = _Pool(n)
            atexit.register(_POOL.close)
        return _POOL
    except Exception:  # noqa: BLE001 - no interpreter to start: parse in this process
        _POOL = None
        _POOL_LOCK.release()
        return None


def _forget_pool_in_child() -> None:
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _release_pool(pool: _Pool) -> None:
    global _POOL
    try:
        if not pool.ok:
            pool.close()
            if _POOL is pool:
                _POOL = None
    finally:
        _POOL_LOCK.release()


def _work(meta: bytes, data: bytes) -> bytes:
    """One message of a worker -> its pickled answer."""
    gc.disable()
    try:
        mappers, choose, first, parse_block = pickle.loads(meta)
        chunk = parse_block(first, data, mappers, choose)
        result = ("ok", chunk.tables, chunk.rejects, chunk.not_read)
    except Exception as exc:  # noqa: BLE001 - reported; the parent redoes the block
        result = ("error", f"{type(exc).__name__}: {exc}", None, None)
    finally:
        gc.enable()
    return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)


def _worker_main() -> None:
    """A parse worker: reads (mappers, choose, first line) + block messages from stdin, writes
    ("ok", tables, rejects) or ("error", reason, None) to stdout, until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent; stdin then closes
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the protocol
    pipe = sys.stdin.buffer
    while (meta := _read_frame(pipe)) is not None and (data := _read_frame(pipe)) is not None:
        payload = _work(meta, data)
        del data
        try:
            out.write(_FRAME.pack(len(payload)))
            out.write(payload)
            out.flush()
        except OSError:  # the parent is gone (or gave up on this pool)
            return
