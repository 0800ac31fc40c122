"""Langfuse exports (format ``langfuse``): observations, traces and scores, as JSON or JSONL.

Accepted layouts, all streamed:
- JSONL, one record per line; a JSON array of records (read element by element, so a large
  export does not need its size in memory); a public-API page ``{"data": [...], "meta": ...}``;
- records that are observations (``type`` + ``startTime``), traces (with their ``observations``
  and ``scores`` nested, or alone: their user, session, release and environment then apply to
  the observations of that trace met later in the same chunk or after), or scores.

Observations of type GENERATION (and EMBEDDING) are model calls -> ``requests``; other
observation types (SPAN, EVENT, AGENT, TOOL, CHAIN, RETRIEVER, ...) -> ``spans``. Scores ->
``evals``: source ``online`` for Langfuse's own evaluators (EVAL), ``feedback`` for
human annotations and API scores (user feedback is what the API is mostly used for), and
``offline`` when the score belongs to a dataset run.

Token semantics: Langfuse's ``usageDetails`` are additive, its total is the sum of all keys:
``input`` is what remains after ``input_cached_tokens`` / ``cache_read_input_tokens`` /
``cache_creation_input_tokens`` (and audio...) were split out, ``output`` what remains after
``output_reasoning_tokens``. So design §3's ``input_tokens`` is the sum of all input-side keys and
``output_tokens`` the sum of all output-side keys. The older ``usage`` object
(``input``/``output``, or ``promptTokens``/``completionTokens``) carries provider totals and is
used as is. Times: ``startTime``/``endTime``/``completionStartTime`` ISO 8601 (UTC when no
offset); ``latency`` and ``timeToFirstToken`` are seconds. ``costDetails.total`` (USD) ->
``logged_cost_usd``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from lib import schema
from lib.ingest.base import Chunk, Format
from lib.ingest.formats import otlp_common as oc

MODEL_TYPES = {"GENERATION": "chat", "EMBEDDING": "embeddings"}
SPAN_KIND = {"AGENT": "agent", "TOOL": "tool", "RETRIEVER": "retrieval", "CHAIN": "chain",
             "GENERATION": "llm", "EMBEDDING": "llm"}
OBSERVATION_TYPES = {"GENERATION", "SPAN", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER",
                     "EVALUATOR", "EMBEDDING", "GUARDRAIL"}
SCORE_SOURCE = {"EVAL": "online", "ANNOTATION": "feedback", "API": "feedback"}
TRACE_FIELDS = ("userId", "sessionId", "release", "version", "environment", "name", "tags")
CHUNK_ROWS = oc.CHUNK_ROWS
# An array element longer than this is rejected and skipped without being held, as a JSON line
# over the limit is (lib.ingest.streams.MAX_LINE_BYTES).
MAX_ELEMENT_CHARS = 16 * 1024 * 1024

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_ERROR_NAME = re.compile(r"^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception|Timeout))\b")

# Observation keys mapped to columns (or judged noise) and so not copied to ``attributes``.
_CONSUMED = frozenset({
    "id", "traceId", "parentObservationId", "type", "startTime", "endTime", "completionStartTime",
    "model", "input", "output", "usage", "usageDetails", "costDetails", "level", "statusMessage",
    "promptName", "promptVersion", "metadata", "promptTokens", "completionTokens", "totalTokens",
    "calculatedInputCost", "calculatedOutputCost", "calculatedTotalCost", "latency",
    "timeToFirstToken", "userId", "sessionId", "release", "environment", "unit", "inputPrice",
    "outputPrice", "totalPrice", "inputCost", "outputCost", "totalCost", "createdAt", "updatedAt",
    "projectId",
})
_METADATA_COLUMNS = ("feature", "customer_id", "user_id", "session_id", "service", "environment",
                     "app_version", "provider", "error_type")


# ---------------------------------------------------------------------------------------------
# Reading records


def _records(stream: BinaryIO) -> Iterator[tuple[int, Any, str | None, str | bytes]]:
    """(line, record, error, raw) for each record of a JSON array, JSONL or single-document file.

    A JSONL line longer than ``lib.ingest.streams.MAX_LINE_BYTES`` is skipped unread and rejected;
    a single document larger than ``otlp_common.MAX_DOCUMENT_BYTES`` fails the file.
    """
    buffered = stream if isinstance(stream, io.BufferedReader) \
        else io.BufferedReader(stream, oc.READ_BYTES)
    head = buffered.peek(4096).lstrip()
    if head.startswith(b"\xef\xbb\xbf"):
        buffered.read(3)
        head = head[3:].lstrip()
    if head.startswith(b"["):
        yield from _array_records(io.TextIOWrapper(buffered, encoding="utf-8", errors="replace"))
        return
    data = buffered.read(oc.BLOCK_BYTES)
    if oc.opens_document(data, (b"{",)):  # one pretty-printed document
        line_no = 1 + data.count(b"\n", 0, len(data) - len(data.lstrip()))  # the "{" line
        whole = oc.read_document(data, buffered, "export as JSONL or as a JSON array instead")
        del data
        try:
            doc = oc.loads(whole)
        except ValueError as exc:
            yield line_no, None, f"not valid JSON: {exc}", whole
            return
        yield line_no, doc, None, whole
        return
    for line_no, raw, doc, error in oc.block_documents(oc.json_line_blocks(data, buffered)):
        yield line_no, doc, error, raw


_SKIP = re.compile(r"[\s,]*")
_IN_STRING = re.compile(r'["\\]')
_OUTSIDE = re.compile(r'["{}\[\]]')


def _too_long(size: int) -> str:
    return f"element of {size:,} characters is longer than the limit of {MAX_ELEMENT_CHARS:,}"


def _skip_value(chunk: str, text: io.TextIOBase) -> tuple[int, int, str] | None:
    """Scan past the JSON object, array or string at the start of ``chunk``, reading ``text`` on
    in chunks and keeping only the current one; returns (characters skipped, newlines in them,
    what follows the value), or None when the input ends first. Only quotes, backslashes and
    brackets are looked at (by regex, at C speed), so a huge string costs one scan."""
    depth, in_string, escaped, size, lines, j = 0, False, False, 0, 0, 0
    while True:
        if escaped:  # a backslash ended the last chunk: its character starts this one
            j, escaped = j + 1, False
        while j < len(chunk):
            m = (_IN_STRING if in_string else _OUTSIDE).search(chunk, j)
            if m is None:
                break
            k, c = m.start(), m.group()
            if in_string:
                if c == "\\":
                    if k + 1 >= len(chunk):
                        escaped, j = True, len(chunk)
                        break
                    j = k + 2
                    continue
                in_string = False
            elif c == '"':
                in_string = True
            elif c in "{[":
                depth += 1
            else:
                depth -= 1
            j = k + 1
            if depth == 0 and not in_string:
                return size + j, lines + chunk.count("\n", 0, j), chunk[j:]
        size += len(chunk)
        lines += chunk.count("\n")
        chunk = text.read(1 << 20)
        if not chunk:
            return None
        j = 0


def _array_records(text: io.TextIOBase) -> Iterator[tuple[int, Any, str | None, str]]:
    """Elements of one top-level JSON array, decoded one at a time with their start line."""
    decoder = json.JSONDecoder()
    buf = text.read(1 << 20)
    pos = buf.index("[") + 1
    line_base, counted = 1, 0  # line number at buf[counted]
    read_size = 1 << 20
    eof = False
    while True:
        pos = _SKIP.match(buf, pos).end()
        if pos >= len(buf) and not eof:
            more = text.read(read_size)
            eof = not more
            line_base += buf.count("\n", counted, pos)
            buf, pos, counted = buf[pos:] + more, 0, 0
            continue
        line_base += buf.count("\n", counted, pos)
        counted = pos
        if pos >= len(buf):
            yield line_base, None, "unterminated JSON array", ""
            return
        if buf[pos] == "]":
            return
        try:
            record, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as exc:
            if not eof and len(buf) - pos < MAX_ELEMENT_CHARS:
                more = text.read(read_size)
                read_size *= 2  # an element larger than the buffer: grow geometrically
                eof = not more
                buf = buf[pos:] + more
                pos = counted = 0
                continue
            if not eof:  # longer than the limit: skip to its end, keeping one chunk at a time
                raw = buf[pos:pos + schema.RAW_MAX_CHARS]
                skipped = _skip_value(buf[pos:], text)
                if skipped is not None:
                    size, lines, buf = skipped
                    yield line_base, None, _too_long(size), raw
                    line_base += lines
                    pos = counted = 0
                    read_size = 1 << 20
                    eof = False
                    continue
            yield line_base, None, f"not valid JSON: {exc.msg}", buf[pos:pos + schema.RAW_MAX_CHARS]
            return
        if end - pos > MAX_ELEMENT_CHARS:  # it fit the buffer, but is over the limit all the same
            yield line_base, None, _too_long(end - pos), buf[pos:pos + schema.RAW_MAX_CHARS]
        else:
            yield line_base, record, None, buf[pos:end] if len(buf) - pos < 1 << 16 else ""
        pos = end
        if pos > 1 << 20:  # drop what was decoded so the buffer stays small
            line_base += buf.count("\n", counted, pos)
            buf, pos, counted = buf[pos:], 0, 0


# ---------------------------------------------------------------------------------------------
# Field helpers


def _ts_us(value: Any) -> int | None:
    """ISO 8601 text (UTC when no offset) or epoch milliseconds -> epoch microseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 1000)
    dt = datetime.fromisoformat(str(value))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _ONE_US


def _tokens(obs: dict) -> tuple[int | None, int | None, int | None, int | None, int | None]:
    """(input incl. cache, cached, cache write, output incl. reasoning, reasoning)."""
    details = obs.get("usageDetails")
    if isinstance(details, dict) and details:
        inp = out = cached = write = reasoning = 0
        seen_in = seen_out = False
        for key, value in details.items():
            n = oc.as_int(value)
            if n is None or key == "total":
                continue
            k = key.lower()
            if k.startswith(("output", "completion")):
                out += n
                seen_out = True
                if "reasoning" in k:
                    reasoning += n
            elif k.startswith(("input", "prompt", "cache")):
                inp += n
                seen_in = True
                if "cache_read" in k or "cached" in k:
                    cached += n
                elif "cache_creation" in k or "cache_write" in k:
                    write += n
        return ((inp if seen_in else None), (cached if seen_in else None),
                (write if seen_in else None), (out if seen_out else None),
                (reasoning if seen_out else None))
    usage = obs.get("usage") if isinstance(obs.get("usage"), dict) else {}
    if usage.get("unit") not in (None, "TOKENS"):
        return None, None, None, None, None  # characters, images, seconds: not tokens
    inp = oc.as_int(usage.get("input", usage.get("promptTokens", obs.get("promptTokens"))))
    out = oc.as_int(usage.get("output",
                              usage.get("completionTokens", obs.get("completionTokens"))))
    return (inp, 0 if inp is not None else None, 0 if inp is not None else None, out,
            0 if out is not None else None)


def _cost(obs: dict) -> float | None:
    details = obs.get("costDetails")
    if isinstance(details, dict) and details:
        if details.get("total") is not None:
            return oc.as_float(details["total"])
        values = [oc.as_float(v) for v in details.values()]
        return sum(v for v in values if v is not None) if any(v is not None for v in values) \
            else None
    for value in (obs.get("calculatedTotalCost"), obs.get("totalCost"),
                  (obs.get("usage") or {}).get("totalCost")
                  if isinstance(obs.get("usage"), dict) else None):
        if value is not None:
            return oc.as_float(value)
    return None


def _error_type(message: Any) -> str | None:
    match = _ERROR_NAME.match(str(message)) if message else None
    return match.group(1) if match else None


# ---------------------------------------------------------------------------------------------
# Records -> rows


class _Parser:
    def __init__(self) -> None:
        self.batch = oc.Batch()
        self.pending: list[tuple[dict, int]] = []  # request rows waiting for trace info
        self.traces: dict[str, dict] = {}

    def __len__(self) -> int:
        return len(self.batch) + len(self.pending)

    def record(self, line: int, rec: Any, raw: str | bytes, trace: dict | None = None) -> None:
        if not isinstance(rec, dict):
            self.batch.reject(line, raw, "not a Langfuse record (expected a JSON object)")
            return
        try:
            if isinstance(rec.get("data"), list) and "type" not in rec:  # an API page
                for item in rec["data"]:
                    self.record(line, item, oc.dumps(item), trace)
            elif rec.get("type") in OBSERVATION_TYPES and "startTime" in rec:
                self.observation(line, rec, trace)
            elif "dataType" in rec or ("value" in rec and "name" in rec and "traceId" in rec):
                self.score(line, rec, trace)
            elif "observations" in rec or "scores" in rec or ("timestamp" in rec and "id" in rec):
                self.trace(line, rec)
            else:
                self.batch.reject(line, raw, "not a Langfuse observation, trace or score")
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            self.batch.reject(line, raw if raw else oc.dumps(rec),
                              f"Langfuse record not usable: {exc}")

    def trace(self, line: int, rec: dict) -> None:
        info = {k: rec.get(k) for k in TRACE_FIELDS if rec.get(k) is not None}
        if isinstance(rec.get("metadata"), dict):
            info["metadata"] = rec["metadata"]
        if rec.get("id"):
            self.traces[str(rec["id"])] = info
        for obs in rec.get("observations") or ():
            if isinstance(obs, dict):  # the public API lists ids only: nothing to read there
                self.record(line, obs, "", info)
        for score in rec.get("scores") or ():
            if isinstance(score, dict):
                self.record(line, score, "", info)

    def observation(self, line: int, obs: dict, trace: dict | None) -> None:
        obs_id = obs.get("id")
        if not obs_id:
            raise ValueError("observation has no id")
        start = _ts_us(obs["startTime"])
        end = _ts_us(obs.get("endTime"))
        latency_ms = (end - start) / 1000 if end is not None else None
        if latency_ms is None and obs.get("latency") is not None:
            latency_ms = oc.as_float(obs["latency"]) * 1000  # seconds in the public API
        error = str(obs.get("level") or "").upper() == "ERROR"
        metadata = obs.get("metadata") if isinstance(obs.get("metadata"), dict) else {}
        extra = {k: v for k, v in obs.items() if k not in _CONSUMED and v is not None}
        if metadata:
            extra["metadata"] = metadata
        kind = str(obs["type"])
        if kind not in MODEL_TYPES:
            self.batch.spans.append((
                str(obs_id), obs.get("traceId"), obs.get("parentObservationId"), start,
                latency_ms, obs.get("name"), SPAN_KIND.get(kind, "other"),
                "error" if error else "ok", oc.dumps(extra) if extra else None))
            self.batch.span_lines.append(line)
            return
        inp, cached, write, out, reasoning = _tokens(obs)
        first_token = _ts_us(obs.get("completionStartTime"))
        ttft_ms = (first_token - start) / 1000 if first_token is not None else None
        if ttft_ms is None and obs.get("timeToFirstToken") is not None:
            ttft_ms = oc.as_float(obs["timeToFirstToken"]) * 1000
        prompt_version = obs.get("promptVersion")
        row = {
            "request_id": str(obs_id), "trace_id": obs.get("traceId"),
            "parent_id": obs.get("parentObservationId"), "ts": start, "latency_ms": latency_ms,
            "ttft_ms": ttft_ms, "model": obs.get("model"), "operation": MODEL_TYPES[kind],
            "input_tokens": inp, "cached_input_tokens": cached, "cache_write_tokens": write,
            "output_tokens": out, "reasoning_tokens": reasoning, "logged_cost_usd": _cost(obs),
            "status": "error" if error else "ok",
            "error_message": obs.get("statusMessage") if error else None,
            "error_type": _error_type(obs.get("statusMessage")) if error else None,
            "prompt_name": obs.get("promptName"),
            "prompt_version": None if prompt_version is None else str(prompt_version),
            "user_id": obs.get("userId"), "session_id": obs.get("sessionId"),
            "app_version": obs.get("release") or obs.get("version"),
            "environment": obs.get("environment"),
            "input_text": oc.as_text(obs.get("input")),
            "output_text": oc.as_text(obs.get("output")),
            "attributes": extra,
        }
        for column in _METADATA_COLUMNS:
            if row.get(column) is None and metadata.get(column) is not None:
                row[column] = oc.as_text(metadata[column])
        oc.user_columns(metadata, row)
        row["provider"] = oc.norm_provider(row.get("provider") or metadata.get("ls_provider")
                                           or metadata.get("gen_ai.system"))
        if trace is not None:
            _apply_trace(row, trace)
        self.pending.append((row, line))
        self.batch.spans.append((
            str(obs_id), obs.get("traceId"), obs.get("parentObservationId"), start, latency_ms,
            obs.get("name"), "llm", row["status"],
            oc.dumps({k: v for k, v in (("model", row["model"]), ("input_tokens", inp),
                                        ("output_tokens", out)) if v is not None})))
        self.batch.span_lines.append(line)

    def score(self, line: int, rec: dict, trace: dict | None) -> None:
        metric = str(rec.get("name") or "score")
        data_type = str(rec.get("dataType") or "NUMERIC").upper()
        source_name = str(rec.get("source") or "API").upper()
        run_id = rec.get("datasetRunId")
        source = "offline" if run_id else SCORE_SOURCE.get(source_name, "feedback")
        run_id = str(run_id) if run_id else f"langfuse:{source_name.lower()}"
        case_id = rec.get("observationId") or rec.get("traceId")
        ts = _ts_us(rec.get("timestamp") or rec.get("createdAt"))
        if ts is None:
            raise ValueError("score has no timestamp")
        value = oc.as_float(rec.get("value"))
        label = oc.as_text(rec.get("stringValue"))
        if data_type == "BOOLEAN":
            passed = None if value is None else value >= 0.5
            label = label or (None if value is None else ("true" if passed else "false"))
        elif data_type == "CATEGORICAL":
            passed = oc.passed_from_label(label)
        else:
            passed = None
        consumed = {"id", "name", "value", "stringValue", "dataType", "source", "comment",
                    "timestamp", "createdAt", "updatedAt", "traceId", "observationId",
                    "datasetRunId", "projectId"}
        extra = {k: v for k, v in rec.items() if k not in consumed and v is not None}
        extra["trace_id"] = rec.get("traceId")
        eval_id = oc.stable_id("langfuse", rec["id"]) if rec.get("id") \
            else oc.stable_id(run_id, case_id, metric, ts)
        version = (trace or self.traces.get(str(rec.get("traceId")), {})).get("release")
        self.batch.evals.append((
            eval_id, run_id, ts, source, None, case_id, 0, rec.get("observationId"), version,
            None, metric, value, passed, "human" if source_name == "ANNOTATION" else None,
            label, oc.as_text(rec.get("comment")), oc.dumps(extra)))
        self.batch.eval_lines.append(line)

    def flush(self) -> Chunk:
        for row, line in self.pending:
            trace = self.traces.get(str(row.get("trace_id")))
            if trace:
                _apply_trace(row, trace)
            row["attributes"] = oc.dumps(row["attributes"]) if row["attributes"] else None
            self.batch.requests.append(tuple(row.get(c) for c in oc.REQUEST_COLUMNS))
            self.batch.request_lines.append(line)
        self.pending = []
        return self.batch.flush()


def _apply_trace(row: dict, trace: dict) -> None:
    """Trace-level user, session, release and environment fill what the observation left empty."""
    for column, key in (("user_id", "userId"), ("session_id", "sessionId"),
                        ("app_version", "release"), ("environment", "environment")):
        if row.get(column) is None and trace.get(key) is not None:
            row[column] = str(trace[key])
    metadata = trace.get("metadata")
    if isinstance(metadata, dict):
        oc.user_columns(metadata, row)
        for column in ("feature", "customer_id"):
            if row.get(column) is None and metadata.get(column) is not None:
                row[column] = oc.as_text(metadata[column])
    if trace.get("name") and isinstance(row.get("attributes"), dict):
        row["attributes"].setdefault("trace_name", trace["name"])
    if trace.get("tags") and isinstance(row.get("attributes"), dict):
        row["attributes"].setdefault("tags", trace["tags"])


# ---------------------------------------------------------------------------------------------
# The format

_MARKERS = (b'"usageDetails"', b'"costDetails"', b'"completionStartTime"', b'"GENERATION"',
            b'"parentObservationId"', b'"promptVersion"', b'"observations"')


def detect(head: bytes, filename: str) -> bool:
    """A JSON / JSONL file whose first bytes carry Langfuse observation or score field names."""
    text = head.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip()
    if text[:1] not in (b"{", b"[") or oc.head_has_otlp_envelope(head):
        return False
    if b'"startTime"' in head and any(marker in head for marker in _MARKERS):
        return True
    # a scores-only export
    return b'"dataType"' in head and b'"traceId"' in head and b'"value"' in head


def parse(stream: BinaryIO, filename: str, chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """Yield Chunks of ``requests``, ``spans`` and ``evals`` (each with ``_line``) plus rejects."""
    return oc.without_cyclic_gc(_parse(stream, chunk_rows))


def _parse(stream: BinaryIO, chunk_rows: int) -> Iterator[Chunk]:
    parser = _Parser()
    for line, rec, error, raw in _records(stream):
        if error is not None:
            parser.batch.reject(line, raw, error)
            continue
        parser.record(line, rec, raw)
        if len(parser) >= chunk_rows:
            yield parser.flush()
    yield parser.flush()


FORMAT = Format(
    name="langfuse",
    detect=detect,
    parse=parse,
    priority=25,
    doc="Langfuse exports: observations (GENERATION -> requests), traces and scores; JSON/JSONL",
)
