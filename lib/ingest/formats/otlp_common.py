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
"""

from __future__ import annotations

import base64
import binascii
import gc
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

import pyarrow as pa

from lib import schema
from lib.ingest.base import Chunk, Reject

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


def _any_value(value: dict | None) -> Any:
    """An OTLP ``AnyValue`` (either JSON encoding) as a plain Python value."""
    if not value:
        return None
    for kind, inner in value.items():  # exactly one member is set
        decode = _VALUE_DECODERS.get(kind)
        return decode(inner) if decode is not None else None
    return None


def _bool(inner: Any) -> bool:
    return inner if isinstance(inner, bool) else str(inner).lower() == "true"


def _array(inner: dict | None) -> list:
    return [_any_value(v) for v in (inner or {}).get("values", ())]


def _kvlist(inner: dict | None) -> dict:
    return decode_attributes((inner or {}).get("values"))


_VALUE_DECODERS: dict[str, Callable[[Any], Any]] = {
    "stringValue": str, "intValue": int, "doubleValue": float, "boolValue": _bool,
    "arrayValue": _array, "kvlistValue": _kvlist, "bytesValue": str,  # base64 text, kept
}
# protobuf's JSON printer with preserving_proto_field_name writes snake_case members
_VALUE_DECODERS.update({re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), k): f
                        for k, f in list(_VALUE_DECODERS.items())})


def decode_attributes(items: Iterable[dict] | None) -> dict[str, Any]:
    """OTLP ``KeyValue`` list -> ``{key: value}``; strings and ints take a fast path."""
    out: dict[str, Any] = {}
    if not items:
        return out
    for item in items:
        value = item.get("value")
        if value:
            v = value.get("stringValue")
            if v is None:
                v = value.get("intValue")
                v = _any_value(value) if v is None else int(v)
        else:
            v = None
        out[item["key"]] = v
    return out


def as_int(value: Any) -> int | None:
    """A token count from an attribute that may be an int, a float or a numeric string."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def as_text(value: Any) -> str | None:
    """Text for a string column: strings as is, anything else as compact JSON."""
    if value is None or isinstance(value, str):
        return value
    return dumps(value)


# ---------------------------------------------------------------------------------------------
# Ids, enums, normalisation

_HEX_LENGTHS = (32, 16)  # trace id (16 bytes), span id (8 bytes) as hex; base64 is 24 / 12


_ZERO_IDS = frozenset({"0" * 16, "0" * 32})


def norm_id(value: Any) -> str | None:
    """A trace or span id as lowercase hex, from hex or base64 (protobuf JSON) text.

    Hex ids are 16 or 32 characters; the same ids in base64 are 12 or 24, so the length tells
    the encoding. An all-zero id means "none" (a root span's parent) and becomes None.
    """
    if not value:
        return None
    if len(value) in _HEX_LENGTHS:
        return None if value in _ZERO_IDS else value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value  # neither encoding: keep the source's text rather than lose the link
    return raw.hex() if raw.strip(b"\0") else None


_STATUS_ERROR = {2, "2", "STATUS_CODE_ERROR", "ERROR", "Error", "error"}


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


def norm_provider(value: Any) -> str | None:
    if not value:
        return None
    text = str(value).strip().lower()
    return _PROVIDER_ALIASES.get(text, text)


_CLASS_REPR = re.compile(r"^<class '([\w.]+)'>$")


def norm_error_type(value: Any) -> str | None:
    """``openai.RateLimitError`` or ``<class 'openai.RateLimitError'>`` -> ``RateLimitError``.

    opentelemetry-instrumentation-openai-v2 2.4b0 records the exception class itself, which the
    SDK stringifies as ``<class '...'>``; the module path is noise when grouping errors.
    """
    if value is None:
        return None
    text = str(value).strip()
    match = _CLASS_REPR.match(text)
    if match:
        text = match.group(1)
    if "." in text and " " not in text:
        text = text.rsplit(".", 1)[1]
    return text or None


def inclusive_input(input_tokens: int | None, cached: int | None,
                    cache_write: int | None) -> int | None:
    """Input tokens including cache reads and writes (design §3), from a count that should.

    OTel GenAI and OpenInference define the input count as including cached tokens, and this is
    trusted. One case proves a source reported them outside (Anthropic's raw ``input_tokens``
    copied straight into the attribute): the cached parts exceed the whole. Then they are added.
    """
    if input_tokens is None:
        return None
    parts = (cached or 0) + (cache_write or 0)
    return input_tokens + parts if parts > input_tokens else input_tokens


def stable_id(*parts: Any) -> str:
    """A deterministic id from parts (idempotent re-ingest): 32 hex chars of SHA-256."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


_PASS_LABELS = {"pass", "passed", "true", "yes", "correct", "good", "relevant", "faithful"}
_FAIL_LABELS = {"fail", "failed", "false", "no", "incorrect", "bad", "irrelevant",
                "unfaithful", "hallucinated"}


def passed_from_label(label: Any) -> bool | None:
    if label is None:
        return None
    text = str(label).strip().lower()
    if text in _PASS_LABELS:
        return True
    if text in _FAIL_LABELS:
        return False
    return None


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
                out[column] = str(value)
                break


# ---------------------------------------------------------------------------------------------
# Rows -> Arrow tables

REQUEST_COLUMNS = (
    "request_id", "trace_id", "parent_id", "ts", "latency_ms", "ttft_ms", "provider", "model",
    "response_model", "operation", "input_tokens", "cached_input_tokens", "cache_write_tokens",
    "output_tokens", "reasoning_tokens", "logged_cost_usd", "status", "error_type",
    "error_message", "finish_reason", "service", "environment", "feature", "app_version",
    "prompt_name", "prompt_version", "user_id", "customer_id", "session_id", "guardrail",
    "guardrail_action", "input_text", "output_text", "attributes",
)
SPAN_COLUMNS = ("span_id", "trace_id", "parent_id", "ts", "duration_ms", "name", "kind", "status",
                "attributes")
EVAL_COLUMNS = ("eval_id", "run_id", "ts", "source", "dataset", "case_id", "epoch", "request_id",
                "version", "model", "metric", "score", "passed", "judge", "label", "explanation",
                "attributes")


def rows_to_table(rows: list[tuple], columns: tuple[str, ...], arrow_schema: pa.Schema,
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
        self.requests: list[tuple] = []
        self.request_lines: list[int] = []
        self.spans: list[tuple] = []
        self.span_lines: list[int] = []
        self.evals: list[tuple] = []
        self.eval_lines: list[int] = []
        self.rejects: list[Reject] = []

    def __len__(self) -> int:
        return len(self.spans) + len(self.requests) + len(self.evals) + len(self.rejects)

    def reject(self, line: int | None, raw: bytes | str, reason: str) -> None:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        self.rejects.append(Reject(line, raw[: schema.RAW_MAX_CHARS], reason))

    def flush(self) -> Chunk:
        tables: dict[str, pa.Table] = {}
        if self.requests:
            tables["requests"] = rows_to_table(self.requests, REQUEST_COLUMNS, schema.REQUESTS,
                                               self.request_lines)
        if self.spans:
            tables["spans"] = rows_to_table(self.spans, SPAN_COLUMNS, schema.SPANS,
                                            self.span_lines)
        if self.evals:
            tables["evals"] = rows_to_table(self.evals, EVAL_COLUMNS, schema.EVALS,
                                            self.eval_lines)
        chunk = Chunk(tables=tables, rejects=self.rejects)
        self.__init__()
        return chunk


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
        "span_id",
        "start_ns",
        "status_message",
        "trace_id",
    )

    def __init__(self, raw: dict, resource: Resource) -> None:
        get = raw.get
        self.span_id = norm_id(get("spanId") or get("span_id"))
        if not self.span_id:
            raise ValueError("span has no spanId")
        self.trace_id = norm_id(get("traceId") or get("trace_id"))
        self.parent_id = norm_id(get("parentSpanId") or get("parent_span_id"))
        self.name = get("name")
        start = get("startTimeUnixNano") or get("start_time_unix_nano")
        if start is None:
            raise ValueError("span has no startTimeUnixNano")
        self.start_ns = int(start)
        end = get("endTimeUnixNano") or get("end_time_unix_nano")
        self.end_ns = int(end) or None if end else None  # "0" means unset
        status = get("status")
        self.error = is_error_status(status)
        self.status_message = status.get("message") if status else None
        self.attrs = decode_attributes(get("attributes"))
        self.events = get("events") or ()
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
        return (int(t) - self.start_ns) / 1e6 if t else None

    def exception_type(self) -> str | None:
        """The type of the last ``exception`` event, normalised (``RateLimitError``)."""
        found = None
        for event in self.events:
            if event.get("name") == "exception":
                attrs = decode_attributes(event.get("attributes"))
                found = attrs.get("exception.type") or found
        return norm_error_type(found)


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


def _documents(stream: BinaryIO) -> Iterator[tuple[int, bytes, Any, str | None]]:
    """(line number, raw line, parsed document or None, error) for each non-blank line.

    One ``ExportTraceServiceRequest`` per line is the Collector's layout. A file that is one
    pretty-printed document (an OTLP/HTTP JSON payload saved by hand) is read whole, as line 1.
    """
    first = True
    stream = buffered(stream)
    for line_no, raw in enumerate(stream, 1):
        if not raw.strip():
            continue
        try:
            doc = loads(raw)
        except ValueError as exc:
            if first and raw.strip() in (b"{", b"["):
                whole = raw + stream.read()
                try:
                    doc = loads(whole)
                except ValueError as exc2:
                    yield line_no, whole, None, f"not valid JSON: {exc2}"
                    return
                for item in doc if isinstance(doc, list) else [doc]:
                    yield line_no, whole, item, None
                return
            yield line_no, raw, None, f"not valid JSON: {exc}"
            first = False
            continue
        first = False
        yield line_no, raw, doc, None


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
               chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """Stream an OTLP JSON trace file into Chunks of requests, spans and evals.

    ``choose(attrs)`` names the mapper for a span; ``mappers[name](span)`` maps it.
    A line that is not JSON, or not an ``ExportTraceServiceRequest``, is one Reject; a span that
    cannot be read (no id, bad timestamp) is one Reject with the same line number; its siblings
    go on.
    """
    batch = Batch()
    for line_no, raw, doc, error in _documents(stream):
        if error is not None:
            batch.reject(line_no, raw, error)
            continue
        resource_spans = doc.get("resourceSpans", doc.get("resource_spans")) \
            if isinstance(doc, dict) else None
        if not isinstance(resource_spans, list):
            batch.reject(line_no, raw, "not an OTLP ExportTraceServiceRequest "
                                       "(no resourceSpans list)")
            continue
        for rs in resource_spans:
            try:
                resource = Resource(decode_attributes((rs.get("resource") or {}).get("attributes")))
                scopes = (rs.get("scopeSpans") or rs.get("scope_spans")
                          or rs.get("instrumentationLibrarySpans") or ())
                for scope in scopes:
                    for raw_span in scope.get("spans") or ():
                        _add_span(batch, raw_span, resource, line_no, mappers, choose)
            except (AttributeError, TypeError, KeyError, ValueError) as exc:
                batch.reject(line_no, dumps(rs), f"malformed resourceSpans entry: {exc}")
        if len(batch) >= chunk_rows:
            yield batch.flush()
    yield batch.flush()


def _add_span(batch: Batch, raw_span: dict, resource: Resource, line_no: int,
              mappers: dict[str, SpanMapper], choose: Callable[[dict[str, Any]], str]) -> None:
    try:
        span = Span(raw_span, resource)
        kind, request, consumed = mappers[choose(span.attrs)](span)
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        batch.reject(line_no, dumps(raw_span), f"span not usable: {exc}")
        return
    status = "error" if span.error else "ok"
    if request is not None:
        extra = {k: v for k, v in span.attrs.items() if k not in consumed}
        if resource.extra:
            extra = {**resource.extra, **extra}
        r = request.get
        batch.requests.append((
            span.span_id, span.trace_id, span.parent_id, span.ts_us, span.duration_ms,
            r("ttft_ms"), r("provider"), r("model"), r("response_model"), r("operation"),
            r("input_tokens"), r("cached_input_tokens"), r("cache_write_tokens"),
            r("output_tokens"), r("reasoning_tokens"), r("logged_cost_usd"), status,
            r("error_type") or (span.exception_type() if span.error else None),
            span.status_message if span.error else None, r("finish_reason"),
            r("service") or resource.service, r("environment") or resource.environment,
            r("feature"), r("app_version") or resource.app_version, r("prompt_name"),
            r("prompt_version"), r("user_id"), r("customer_id"), r("session_id"),
            r("guardrail"), r("guardrail_action"), r("input_text"), r("output_text"),
            dumps(extra) if extra else None,
        ))
        batch.request_lines.append(line_no)
        span_attrs = None  # the details are in requests: join on span_id = request_id
    else:
        attrs = span.attrs
        if resource.service is not None:
            attrs = {"service.name": resource.service, **attrs}
        span_attrs = dumps(attrs) if attrs else None
    batch.spans.append((span.span_id, span.trace_id, span.parent_id, span.ts_us,
                        span.duration_ms, span.name, kind, status, span_attrs))
    batch.span_lines.append(line_no)
    if span.events:
        _add_evaluations(batch, span, request, line_no)


EVALUATION_EVENT = "gen_ai.evaluation.result"


def _add_evaluations(batch: Batch, span: Span, request: dict | None, line_no: int) -> None:
    """``gen_ai.evaluation.result`` span events -> online eval rows judging this span."""
    seen: dict[str, int] = {}
    for event in span.events:
        if event.get("name") != EVALUATION_EVENT:
            continue
        a = decode_attributes(event.get("attributes"))
        metric = as_text(a.pop("gen_ai.evaluation.name", None)) or "evaluation"
        epoch = seen.get(metric, 0)  # the same metric twice on one span: two rows
        seen[metric] = epoch + 1
        t = event.get("timeUnixNano") or event.get("time_unix_nano")
        ts_us = int(t) // 1000 if t else span.ts_us
        label = as_text(a.pop("gen_ai.evaluation.score.label", None))
        score = as_float(a.pop("gen_ai.evaluation.score.value", None))
        explanation = as_text(a.pop("gen_ai.evaluation.explanation", None))
        judge = as_text(a.pop("gen_ai.evaluation.judge", None) or a.pop("gen_ai.evaluator.name",
                                                                         None))
        model = (request or {}).get("response_model") or (request or {}).get("model") \
            or as_text(span.attrs.get("gen_ai.response.model")
                       or span.attrs.get("gen_ai.request.model"))
        run_id = "online:" + (span.resource.service or "unknown")
        batch.evals.append((
            stable_id(run_id, span.span_id, metric, epoch), run_id, ts_us, "online", None,
            span.span_id, epoch, span.span_id, span.resource.app_version, model, metric, score,
            passed_from_label(label), judge, label, explanation, dumps(a) if a else None,
        ))
        batch.eval_lines.append(line_no)


def head_has_otlp_envelope(head: bytes) -> bool:
    """True when the first bytes look like an OTLP JSON trace export."""
    text = head.lstrip()
    return text[:1] in (b"{", b"[") and (b'"resourceSpans"' in head or b'"resource_spans"' in head)
