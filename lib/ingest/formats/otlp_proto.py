"""OTLP protobuf files, as the Collector's file exporter writes them with ``format: proto``
(format ``otlp-proto``).

Layout (exporter/fileexporter/file_writer.go, ``exportMessageAsBuffer``): each export request
is its binary protobuf encoding preceded by its length as a big-endian uint32. With
``compression: zstd`` the whole file is a zstd stream of that layout, or (the exporter's layout
before its native-compression gate) each request is a zstd frame after its compressed length;
lib/ingest/streams.py undoes both, giving the layout above.

Like the JSON files (lib/ingest/formats/otlp.py), a file may hold the three signals of a file
exporter shared by several pipelines: traces give requests and spans, logs give their
``gen_ai.evaluation.result`` events as evals, metrics are counted and not read. Protobuf does
not say which message a record is, so each is decoded as traces, then logs, then metrics, and
taken as the first whose entries decode without unknown fields anywhere inside them (and, for
spans, with a start time): a log record read as a span leaves its times as unknown fields, a
span read as a log record its ids.

Each request is converted to the JSON form the JSON reader takes (trace requests by a direct
walk, ``trace_request_dict``; logs by ``google.protobuf.json_format.MessageToDict``) and mapped
by the same code: the GenAI, OpenInference and Langfuse conventions, token semantics and checks are
those of ``otlp-json``. Quarantined records and reasons count export requests ("request 3"),
not lines. A request that is not protobuf of a known kind, a length past ``MAX_MESSAGE_BYTES``
and a file cut inside a request are each one quarantined record naming the request and (in an
uncompressed file) its byte offset; the requests before and after it go on. Text that is not
UTF-8, which protobuf refuses, is read with U+FFFD in place of each bad byte (``NOT_UTF8_NOTE``).
"""

from __future__ import annotations

import base64
import codecs
import io
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message_factory,
    unknown_fields,
)
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from lib.ingest.base import Chunk, Format, Reject
from lib.ingest.formats import otlp
from lib.ingest.formats import otlp_common as oc
from lib.ingest.nesting import finish_spans

LENGTH_BYTES = 4
# A request longer than this is not read (protobuf parses a message whole, so it would be held
# in memory several times over); the Collector's own gRPC receiver refuses requests over 4 MiB.
MAX_MESSAGE_BYTES = oc.MAX_DOCUMENT_BYTES
_SKIP_BYTES = 1 << 20
_SAMPLE = 8  # entries of a request looked at to tell its signal
_RAW_BYTES = 3072  # of a request that cannot be decoded, kept (base64) in the quarantine


def framed_messages(stream: BinaryIO) -> Iterator[tuple[int, int, bytes | None, str | None]]:
    """(request number from 1, byte offset of its length, its bytes or None, error or None) for
    each length-prefixed request of ``stream``. A length past ``MAX_MESSAGE_BYTES`` is skipped
    (read in pieces, never held) with an error; a stream that ends inside a length or a request
    ends with an error saying how much of it was there."""
    stream = oc.buffered(stream)
    number, offset = 0, 0
    while True:
        size = stream.read(LENGTH_BYTES)
        if not size:
            return
        number += 1
        if len(size) < LENGTH_BYTES:
            yield number, offset, None, (f"the file ends inside the request's length "
                                         f"({len(size)} of {LENGTH_BYTES} bytes): truncated")
            return
        length = int.from_bytes(size, "big")
        if length > MAX_MESSAGE_BYTES:
            left = length
            while left and (piece := stream.read(min(left, _SKIP_BYTES))):
                left -= len(piece)
            yield number, offset, None, (
                f"the request is {length:,} bytes long, over the "
                f"{MAX_MESSAGE_BYTES / 2**20:g} MiB a request may have: not read"
                + (f", and the file ends {left:,} bytes before the request does"
                   if left else ""))
            if left:
                return
            offset += LENGTH_BYTES + length
            continue
        data = stream.read(length)
        if len(data) < length:
            yield number, offset, data, (f"the file ends inside the request "
                                         f"({len(data):,} of {length:,} bytes): truncated")
            return
        yield number, offset, data, None
        offset += LENGTH_BYTES + length


def _clean(message: Any) -> bool:
    """No unknown fields in ``message`` nor in any message inside it: what a message read as
    another with the same field numbers (a log record as a span) leaves somewhere."""
    if len(unknown_fields.UnknownFieldSet(message)):
        return False
    for fd, value in message.ListFields():
        if fd.message_type is not None:
            if not all(_clean(v) for v in (value if fd.is_repeated else (value,))):
                return False
    return True


def _leaves(request: Any, outer: str, inner: str, leaf: str) -> list:
    """The first ``_SAMPLE`` leaf messages (spans, log records, metrics) of a request."""
    out: list = []
    for resource in getattr(request, outer):
        for scope in getattr(resource, inner):
            out.extend(getattr(scope, leaf)[: _SAMPLE - len(out)])
            if len(out) >= _SAMPLE:
                return out
    return out


def _is_traces(request: Any) -> bool:
    # a span has a start time (the spec requires it): a metric without one, read as a span
    # (its name as the trace id, its gauge as the span's name), is no span
    spans = _leaves(request, "resource_spans", "scope_spans", "spans")
    return not spans or any(s.start_time_unix_nano and _clean(s) for s in spans)


def _is_logs(request: Any) -> bool:
    records = _leaves(request, "resource_logs", "scope_logs", "log_records")
    return bool(records) and any(_clean(r) for r in records)


def _is_metrics(request: Any) -> bool:
    metrics = _leaves(request, "resource_metrics", "scope_metrics", "metrics")
    return bool(metrics) and any(_clean(m) for m in metrics)


_SIGNALS = ((ExportTraceServiceRequest, _is_traces), (ExportLogsServiceRequest, _is_logs),
            (ExportMetricsServiceRequest, _is_metrics))


# Text that is not UTF-8. The Collector writes Go strings as they are, and protobuf refuses the
# whole request for one bad byte: the request is read again with its strings as bytes, and each
# bad byte becomes U+FFFD, as the Collector's own JSON encoder writes it (the same data in a JSON
# file gives the same rows). The report counts such requests.
NOT_UTF8_NOTE = ("request(s) with text that is not UTF-8: read with U+FFFD in place of each bad "
                 "byte, as the Collector's JSON encoder writes it.")
_LENIENT: dict[str, Any] = {}
# Go's encoders (utf8.DecodeRune gives RuneError for one byte at a time) write one U+FFFD per
# bad byte; Python's "replace" writes one per bad sequence.
_PER_BYTE = "sightline-replace-each-byte"
codecs.register_error(_PER_BYTE, lambda exc: ("\ufffd" * (exc.end - exc.start), exc.end))


def _lenient_class(message_type: Any) -> Any:
    """``message_type`` with every string field a bytes field (a pool of its own)."""
    name = message_type.DESCRIPTOR.full_name
    if name not in _LENIENT:
        pool = descriptor_pool.DescriptorPool()
        added: set[str] = set()

        def add(file: Any) -> None:
            for dependency in file.dependencies:
                if dependency.name not in added:
                    add(dependency)
            proto = descriptor_pb2.FileDescriptorProto()
            file.CopyToProto(proto)
            stack = list(proto.message_type)
            while stack:
                message = stack.pop()
                stack.extend(message.nested_type)
                for f in message.field:
                    if f.type == f.TYPE_STRING:
                        f.type = f.TYPE_BYTES
            pool.Add(proto)
            added.add(file.name)

        add(message_type.DESCRIPTOR.file)
        _LENIENT[name] = message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    return _LENIENT[name]


def _replace_bad_text(message: Any, strict: Any) -> None:
    """In a lenient message, each string field of ``strict`` (its descriptor) made valid UTF-8."""
    for fd, value in message.ListFields():
        original = strict.fields_by_name[fd.name]
        if original.type == original.TYPE_STRING:
            if fd.is_repeated:
                value[:] = [v.decode("utf-8", _PER_BYTE).encode() for v in value]
            else:
                setattr(message, fd.name, value.decode("utf-8", _PER_BYTE).encode())
        elif fd.message_type is not None:
            for v in value if fd.is_repeated else (value,):
                _replace_bad_text(v, original.message_type)


def _with_valid_text(data: bytes, message_type: Any) -> Any | None:
    """``data`` as ``message_type`` with its text that is not UTF-8 replaced, or None when it
    is no such message at all."""
    try:
        lenient = _lenient_class(message_type).FromString(data)
    except DecodeError:
        return None
    _replace_bad_text(lenient, message_type.DESCRIPTOR)
    try:
        return message_type.FromString(lenient.SerializeToString())
    except DecodeError:
        return None


# ---------------------------------------------------------------------------------------------
# Trace requests to the JSON reader's input, directly: json_format.MessageToDict spends ~26 µs a
# span (it is written for any message), more than the whole JSON parse (~15 µs); this walk of
# the OTLP trace messages gives the Collector's JSON form (hex ids, integer enums) in a few µs.
# Fields are left out when unset, as MessageToDict leaves them; tests/ingest/test_otlp_proto.py
# checks that both give the same rows.

def _non_finite(value: float) -> Any:
    # proto3 JSON writes these as text; JSON has no such numbers (otlp_common._double keeps them)
    return value if math.isfinite(value) else ("NaN" if value != value else
                                               "Infinity" if value > 0 else "-Infinity")


def _value(value: Any) -> Any:
    """An ``AnyValue`` as ``otlp_common.decode_attributes`` decodes its JSON form."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return _non_finite(value.double_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return dict(_attributes(value.kvlist_value.values))
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()  # as JSON carries bytes: base64
    return None


def _attributes(items: Any) -> oc.DecodedAttributes:
    out = oc.DecodedAttributes()
    for kv in items:
        value = kv.value
        kind = value.WhichOneof("value")  # strings and ints, nearly all attributes, inline
        out[kv.key] = value.string_value if kind == "string_value" else \
            value.int_value if kind == "int_value" else _value(value)
    return out


# (JSON name, protobuf field) of the scalar fields copied when set
_SPAN_SCALARS = (("traceState", "trace_state"), ("name", "name"), ("kind", "kind"),
                 ("startTimeUnixNano", "start_time_unix_nano"),
                 ("endTimeUnixNano", "end_time_unix_nano"))
_EVENT_SCALARS = (("timeUnixNano", "time_unix_nano"), ("name", "name"))


def _set_scalars(out: dict[str, Any], message: Any, fields: tuple[tuple[str, str], ...]) -> None:
    for key, name in fields:
        value = getattr(message, name)
        if value:
            out[key] = value


def _span(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if span.trace_id:
        out["traceId"] = span.trace_id.hex()
    if span.span_id:
        out["spanId"] = span.span_id.hex()
    if span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id.hex()
    _set_scalars(out, span, _SPAN_SCALARS)
    if span.attributes:
        out["attributes"] = _attributes(span.attributes)
    if span.events:
        out["events"] = [_event(e) for e in span.events]
    if span.links:
        out["links"] = [_link(link) for link in span.links]
    if span.HasField("status"):
        status = span.status
        out["status"] = {k: v for k, v in (("code", status.code),
                                           ("message", status.message)) if v}
    if span.flags:
        out["flags"] = span.flags
    return out


def _event(event: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _set_scalars(out, event, _EVENT_SCALARS)
    if event.attributes:
        out["attributes"] = _attributes(event.attributes)
    return out


def _link(link: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"traceId": link.trace_id.hex(), "spanId": link.span_id.hex()}
    if link.attributes:
        out["attributes"] = _attributes(link.attributes)
    return out


def trace_request_dict(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """A trace request as the JSON reader takes it (the Collector's JSON form)."""
    resource_spans = []
    for rs in request.resource_spans:
        entry: dict[str, Any] = {"scopeSpans": [
            {"scope": {"name": ss.scope.name, "version": ss.scope.version},
             "spans": [_span(span) for span in ss.spans]} for ss in rs.scope_spans]}
        if rs.HasField("resource"):
            entry["resource"] = {"attributes": _attributes(rs.resource.attributes)}
        resource_spans.append(entry)
    return {"resourceSpans": resource_spans}


NOT_A_REQUEST = "not an OTLP export request in protobuf"


def decode_request(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(the request as the JSON reader takes it, None) or (None, why it cannot be read). A
    request read with its bad text replaced (``NOT_UTF8_NOTE``) says so in its document's
    ``NOT_UTF8_NOTE`` key."""
    refused = None
    parsed = False
    for message_type, fits in _SIGNALS:
        repaired = False
        try:
            request = message_type.FromString(data)
        except DecodeError as exc:
            # "Error parsing message with type '...': String field had bad UTF-8"
            why = str(exc).rpartition("': ")[2] or type(exc).__name__
            request = _with_valid_text(data, message_type) if "UTF-8" in why else None
            if request is None:
                refused = refused or why
                continue
            repaired = True
        parsed = True
        if fits(request):
            doc = (trace_request_dict(request) if message_type is ExportTraceServiceRequest else
                   {"resourceMetrics": []} if message_type is ExportMetricsServiceRequest else
                   json_format.MessageToDict(request))  # (metrics: counted, not read)
            if repaired:
                doc[NOT_UTF8_NOTE] = 1
            return doc, None
    why = ("its entries are none of spans, log records or metrics" if parsed or not refused
           else refused)
    return None, f"{NOT_A_REQUEST}: {why}"


def _raw(data: bytes | None) -> str:
    return "base64:" + base64.b64encode(data[:_RAW_BYTES]).decode() if data else ""


def _documents(framed: Iterable[tuple[int, int | None, bytes | None, str | None]],
               repaired: list[int]) -> Iterator[tuple[int, str, Any, str | None]]:
    """Requests as :func:`otlp_common.documents` gives JSON lines: (request number, raw text for
    the quarantine, document or None, error or None). An offset of None (a decompressed file,
    whose offsets are not the file's) is not named in reasons; ``repaired`` counts the requests
    whose bad text was replaced."""
    for number, offset, data, error in framed:
        if error is None:
            doc, error = decode_request(data)
            if doc is not None:
                if doc.pop(NOT_UTF8_NOTE, None):
                    repaired[0] += 1
                yield number, "", doc, None
                continue
        yield number, _raw(data), None, _located(error, offset)


def _located(error: str, offset: int | None) -> str:
    """A request's reason with its byte offset, when it has one (an uncompressed file)."""
    return error if offset is None else f"{error} (at byte {offset:,})"


@dataclass
class RequestBlock:
    """Consecutive whole requests of a file, as the worker pool takes blocks: ``first_line`` is
    (number of the first request, its byte offset, or None in a decompressed file), ``data``
    the requests with their lengths, ``rejects`` the requests before them that could not be
    read at all (cut short, too long)."""

    first_line: tuple[int, int | None]
    data: bytes
    rejects: list[Reject] = field(default_factory=list)


def request_blocks(stream: BinaryIO, block_bytes: int = oc.BLOCK_BYTES
                   ) -> Iterator[RequestBlock]:
    """The requests of ``stream`` in blocks of about ``block_bytes``."""
    # offsets into what a decompressor gave (the older zstd layout even rebuilt) are no file's
    offsets = not getattr(stream, "compressed", False)
    origin = getattr(stream, "origin", 0)  # where in its file the stream starts
    parts: list[bytes] = []
    size, first, rejects = 0, None, []
    for number, offset, data, error in framed_messages(stream):
        at = offset + origin if offsets else None
        if error is not None:  # the requests before it go first: numbers stay in order
            if parts:
                yield RequestBlock(first, b"".join(parts), rejects)
                parts, size, rejects = [], 0, []
            rejects.append(Reject(number, _raw(data), _located(error, at)))
            first = None
            continue
        if first is None:
            first = (number, at)
        parts.append(len(data).to_bytes(LENGTH_BYTES, "big") + data)
        size += LENGTH_BYTES + len(data)
        if size >= block_bytes:
            yield RequestBlock(first, b"".join(parts), rejects)
            parts, size, first, rejects = [], 0, None, []
    if parts or rejects:
        yield RequestBlock(first or (0, None), b"".join(parts), rejects)


def parse_request_block(first: tuple[int, int | None], data: bytes, mappers: dict,
                        choose: Callable[[dict[str, Any]], str]) -> Chunk:
    """One :class:`RequestBlock`'s requests -> one Chunk (run by a parse worker, or here)."""
    number, offset = first

    def framed() -> Iterator[tuple[int, int | None, bytes | None, str | None]]:
        for i, (_, at, message, error) in enumerate(framed_messages(io.BytesIO(data))):
            yield number + i, None if offset is None else offset + at, message, error

    repaired = [0]
    chunks = list(oc.parse_documents(_documents(framed(), repaired), mappers, choose,
                                     chunk_rows=1 << 62))
    if repaired[0]:
        chunks[-1].not_read[NOT_UTF8_NOTE] = repaired[0]
    return chunks[-1]


def looks_like_otlp_proto(head: bytes) -> bool:
    """True when ``head`` starts with a length-prefixed OTLP export request: a plausible length,
    then field 1 (resource spans, logs or metrics) as a length-delimited entry that fits in it."""
    if len(head) < LENGTH_BYTES + 2:
        return False
    length = int.from_bytes(head[:LENGTH_BYTES], "big")
    if not 2 <= length <= MAX_MESSAGE_BYTES or head[LENGTH_BYTES] != 0x0A:
        return False
    if (LENGTH_BYTES + length <= len(head)
            and decode_request(head[LENGTH_BYTES:LENGTH_BYTES + length])[0] is not None):
        return True
    # (a first request cut by the head, or one protobuf refuses, as for text that is not UTF-8:
    # claimed on its shape, so the file's other requests are read and that one is quarantined)
    entry, shift, i = 0, 0, LENGTH_BYTES + 1
    while i < len(head) and shift < 35:  # the first entry's varint length fits the request
        entry |= (head[i] & 0x7F) << shift
        shift += 7
        if not head[i] & 0x80:
            return entry + (i - LENGTH_BYTES) <= length
        i += 1
    return False


def detect(head: bytes, filename: str) -> bool:
    return looks_like_otlp_proto(head)


def parse(stream: BinaryIO, filename: str) -> Iterator[Chunk]:
    """Chunks of ``requests``, ``spans`` and ``evals`` (``_line``: the request number) plus
    rejects, as ``otlp-json`` gives them."""
    return oc.without_cyclic_gc(oc.parse_blocks(request_blocks(stream), parse_request_block,
                                                otlp.mappers(), otlp.choose_mapper))


FORMAT = Format(
    name="otlp-proto",
    detect=detect,
    parse=parse,
    priority=25,
    doc="OTLP protobuf (Collector file exporter, format: proto): traces with the GenAI, "
        "OpenInference and Langfuse conventions, evaluation log events",
    finish=finish_spans,
    unit="request",
    appendable=lambda head: True,  # length-prefixed requests, nothing else
)
