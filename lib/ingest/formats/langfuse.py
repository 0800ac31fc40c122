"""Langfuse exports (format ``langfuse``): observations, traces and scores, as JSON, JSONL or CSV.

The blob storage export (observations_v2/, observations/, traces/, scores/) has the same records
in ClickHouse's snake_case names: read as these (see "The blob storage export" below).

What a Langfuse user has (checked against langfuse/langfuse and langfuse/langfuse-python):
- the UI's batch export (worker/src/features/batchExport/handleBatchExportJob.ts, written by
  packages/shared/src/server/utils/transforms/transformStreamTo{Json,Jsonl,Csv}.ts): JSON is one
  array on a single line, JSONL one record per line, CSV a header of the first row's keys with
  every field quoted, objects (``usageDetails``, ``metadata``, ...) as JSON text, times as JSON
  strings (``"2026-03-02T10:00:00.100Z"`` with its quotes), null as an empty field. Observations
  come in two shapes: the observations table (``model``, ``latency`` / ``timeToFirstToken`` in
  seconds, ``traceName``, ``traceTags``, ``userId``) and, for Langfuse v4 projects, the events
  table (``providedModelName``, ``latencyMs`` / ``timeToFirstTokenMs``, ``tags``, times as
  ClickHouse text ``2026-03-02 10:00:00.100`` in UTC, counts possibly as numeric text); scores
  flat (``traceId``, ``observationId``, ``sessionId``, ``datasetRunId``, ``dataType``, ``value``,
  ``stringValue``); both with one extra key per score name;
- the public API: ``GET /api/public/observations`` (v1: ``usageDetails``, ``costDetails``, the
  derived ``usage`` / ``promptTokens`` / ``calculatedTotalCost``, ``latency`` in seconds),
  ``/api/public/v2/observations`` (field groups, ``providedModelName`` or ``model``),
  ``/api/public/traces/{id}`` (a trace with its ``observations`` and ``scores``), scores v1/v2
  and v3 (one ``value`` of the data type's kind and a ``subject``), as pages
  ``{"data": [...], "meta": ...}``.

Accepted layouts, all streamed: JSONL; a JSON array (read element by element, so a large export
does not need its size in memory); a public-API page; the batch export's CSV; records that are
observations (``type`` + ``startTime``), traces (with their ``observations`` and ``scores``
nested, or alone: their user, session, release and environment then apply to the observations
of that trace met later in the same chunk or after), or scores.

Observations of type GENERATION (and EMBEDDING) are model calls -> ``requests``; other
observation types (SPAN, EVENT, AGENT, TOOL, CHAIN, RETRIEVER, ...) -> ``spans``. A GENERATION
around another of the same call (LangChain's callback handler around the OpenAI wrapper's) counts
once, as in the span formats (lib/ingest/nesting.py). Scores ->
``evals``: source ``online`` for Langfuse's own evaluators (EVAL), ``feedback`` for
human annotations and API scores (user feedback is what the API is mostly used for), and
``offline`` when the score belongs to a dataset run. NUMERIC and BOOLEAN scores keep their value;
a CATEGORICAL score's ``value`` is a number only when a score config maps its category (a config
is required for ANNOTATION scores), else Langfuse stores 0 there, so the score is null and the
category its label; a TEXT score's text is its explanation; CORRECTION scores (a corrected
output, not a metric) are counted as not read.

Token semantics: Langfuse's ``usageDetails`` are mutually exclusive buckets whose total is their
sum (langfuse/langfuse IngestionService.getUsageUnits; the UI sums every key holding "input"):
``input`` is what remains after ``input_cached_tokens`` / ``input_cache_read`` /
``cache_read_input_tokens`` / ``input_cache_creation`` / ``input_audio_tokens`` ... were split out
(the server's OpenAI usage schema, its OTel mapping, langfuse-python's LangChain handler), and
``output`` what remains after ``output_reasoning_tokens`` ... So design §3's ``input_tokens`` is
the sum of the input-side keys and ``output_tokens`` the sum of the output-side keys, except
keys that break a bucket down again: ``input_priority`` / ``output_priority`` (LangChain's
OpenAI priority tier: the same tokens as ``input``; its ``..._cache_read`` / ``..._reasoning``
are the cached / reasoning part of them) and ``cache_creation_ephemeral_*`` beside
``cache_creation_input_tokens`` (LangChain's raw Anthropic usage). When a record's ``total``
equals ``input + output`` with the detail keys left out, its ``input`` (or ``output``) already
held them (instrumentors before the fix of langfuse/langfuse#10592, e.g. @langfuse/openai
< 4.4.6): they are then not added again, and ``attributes.usage_details_inclusive`` says so.
Gemini's usage_metadata keys alone (``prompt_token_count``, ``candidates_token_count``...,
stored by Langfuse as given) are Gemini's counts, not buckets (``_gemini_buckets``).
The older ``usage`` object (``input``/``output``, or ``promptTokens``/``completionTokens``)
carries provider totals and is used as is when there are no ``usageDetails`` (beside
``usageDetails`` it is derived from them; all zero beside empty ones, it means unknown). Times:
``startTime``/``endTime``/``completionStartTime`` ISO 8601 (UTC when no offset); ``latency`` and
``timeToFirstToken`` are seconds, ``latencyMs`` and ``timeToFirstTokenMs`` milliseconds.
``costDetails.total`` (USD) -> ``logged_cost_usd``.

Bad values (the project's rule: one bad value quarantines its record, never the file, and nothing
is silently changed or dropped):
- a token count that is not a non-negative integer below 2**63 (``"abc"``, ``1.5``, ``true``,
  ``1e400``, ``-1``, ``10**30``), a cost, latency or score that is not a finite number, a time
  that is not ISO 8601 text or epoch milliseconds a timestamp can hold: the record is quarantined
  with a reason naming the field and the value (``usageDetails.input is not an integer: abc``),
  counts and numbers read as every format reads them (lib/ingest/values.py);
- any other JSON value where text is expected (``"model": 42``) is stored as its JSON text
  (``"42"``); integers beyond 64 bits inside ``attributes`` are kept, as the numbers they are;
- text that is not valid UTF-8 (bytes that are not, or a lone ``\\ud800`` escape): the record is
  quarantined (``model is not valid UTF-8 text: ...``);
- what orjson refuses in a JSON line or document (``NaN``, ``Infinity``, ``1e400``, lone
  surrogates, bytes that are not UTF-8) is read again with Python's json, as JSON arrays are, so
  the record's fields are judged one by one; ``NaN``, ``Infinity`` and numbers beyond a double's
  range are kept as their text (where orjson would write them as null).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from lib import schema
from lib.ingest.base import BadValue, Chunk, Format
from lib.ingest.formats import otlp_common as oc
from lib.ingest.nesting import ScratchConnection, days_of_files, finish_spans, parquet_sql
from lib.ingest.values import INT64_MAX, bad_text, count, number, numeric_text, shown

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
# The OpenAI and Anthropic SDKs' str() of an API error: "Error code: 429 - {...}".
_HTTP_CODE = re.compile(r"^\s*Error code: (\d{3})\b")

# Observation keys mapped to columns (or judged noise) and so not copied to ``attributes``.
_CONSUMED = frozenset({
    "id", "traceId", "parentObservationId", "type", "startTime", "endTime", "completionStartTime",
    "model", "input", "output", "usage", "usageDetails", "costDetails", "level", "statusMessage",
    "promptName", "promptVersion", "metadata", "promptTokens", "completionTokens", "totalTokens",
    "calculatedInputCost", "calculatedOutputCost", "calculatedTotalCost", "latency",
    "timeToFirstToken", "userId", "sessionId", "release", "environment", "unit", "inputPrice",
    "outputPrice", "totalPrice", "inputCost", "outputCost", "totalCost", "createdAt", "updatedAt",
    "projectId",
    # the batch export's and API v2's names for what is read above, and what is derived from it
    "providedModelName", "latencyMs", "timeToFirstTokenMs", "traceName", "traceTags", "tags",
    "inputUsage", "outputUsage", "totalUsage",
})
# Export keys kept in ``attributes`` only when they hold something (the export writes [] / {}).
_EMPTY_IS_NOTHING = frozenset({"comments", "toolDefinitions", "toolCalls", "toolCallNames",
                               "providedUsageDetails", "providedCostDetails"})
_METADATA_COLUMNS = ("feature", "customer_id", "user_id", "session_id", "service", "environment",
                     "app_version", "provider", "error_type")
_SCORE_TYPES = frozenset({"NUMERIC", "BOOLEAN", "CATEGORICAL", "TEXT"})
CORRECTIONS = "Langfuse CORRECTION score(s) (corrected outputs, not metrics)"
# Generations whose usageDetails ``total`` is more than their input and output buckets: tokens of
# no kind said (Langfuse's own Vertex AI fixture: input 5, output 845, total 2023, the thinking
# tokens left out by the integration), which no column nor cost can hold. Said, and their number
# kept in attributes.usage_details_unaccounted, rather than silently dropped.
TOTAL_ABOVE_BUCKETS = ("Langfuse generation(s) whose usageDetails total is more than their input "
                       "and output tokens: the tokens of no bucket (Gemini's thinking, when an "
                       "integration leaves it out) are in no token count nor cost; "
                       "attributes.usage_details_unaccounted holds how many.")
# A trace applies its user, session, release and environment to its observations in the same
# file; Langfuse's blob storage export (legacy mode) writes traces to a file of their own.
TRACES_ALONE = ("Langfuse trace record(s) without their observations in this file (a blob storage "
                "export's traces/): their user, session and release are not applied to "
                "observations from other files (the export's enriched observations, "
                "observations_v2/, carry them)")
# A v3 score's ``subject`` kind -> the v1/v2 key it stands for
_SUBJECT_KEYS = {"observation": "observationId", "trace": "traceId", "session": "sessionId",
                 "experiment": "datasetRunId"}
_INF = float("inf")


# ---------------------------------------------------------------------------------------------
# Bad values


class _JsonNumber(str):
    """A JSON number a Python float cannot hold (``1e400``; ``NaN`` and ``Infinity``, which
    Python's json accepts), kept as the text it was written as: a text column or ``attributes``
    keeps that text, a numeric field quarantines its record."""

    __slots__ = ()


def _parse_float(text: str) -> float | _JsonNumber:
    value = float(text)
    return value if value - value == 0 else _JsonNumber(text)


# Python's json reads JSON arrays, and what orjson refused; orjson would write inf / nan as null.
_DECODER = json.JSONDecoder(parse_float=_parse_float, parse_constant=_JsonNumber)
# A lone surrogate in decoded text: a byte that was not UTF-8 (decoded with surrogateescape), or
# a \uD800-\uDFFF escape (paired ones, an emoji's, are fine: the walk then finds nothing).
_SUSPECT = re.compile("[\\ud800-\\udfff]|\\\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # searched by its literal prefix: fast


def _raw_of(rec: Any) -> str:
    """The raw text of a quarantined record that came without its own."""
    try:
        return oc.json_text(rec)
    except (TypeError, ValueError, RecursionError):
        return ""


def _text(value: Any) -> str | None:
    """Text for a string column: text as is, any other JSON value as its JSON text (42 -> "42")."""
    if value is None or value.__class__ is str:
        return value
    return str(value) if isinstance(value, str) else oc.json_text(value)


def _suspect(text: str) -> bool:
    """Whether ``text`` (a read buffer) may hold a lone surrogate; decided at C speed."""
    if _SURROGATE_ESCAPE.search(text):
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _lenient(raw: bytes) -> Any:
    """A line or document orjson refused, read by Python's json (see ``_DECODER``), bytes that
    are not UTF-8 kept as lone surrogates (lib.ingest.values.bad_text finds them); raises
    ValueError or RecursionError when Python's json cannot read it either."""
    return _DECODER.decode(raw.decode("utf-8", "surrogateescape"))


def _retried(raw: Any, error: str) -> tuple[Any, str | None]:
    """(record, None) for a JSON line orjson refused with ``error`` that Python's json reads and
    that holds only valid text; else (None, the reason)."""
    if not isinstance(raw, bytes) or not error.startswith("not valid JSON"):
        return None, error  # e.g. a line over the length limit, of which only the start is kept
    try:
        doc = _lenient(raw)
    except (ValueError, RecursionError):
        return None, error
    bad = bad_text(doc)
    return (None, bad) if bad else (doc, None)


# ---------------------------------------------------------------------------------------------
# Reading records


def _records(stream: BinaryIO) -> Iterator[tuple[int, Any, str | None, str | bytes]]:
    """(line, record, error, raw) for each record of a JSON array, JSONL, single-document or CSV
    file.

    A JSONL line longer than ``lib.ingest.streams.MAX_LINE_BYTES`` is skipped unread and rejected,
    as is a CSV record longer than ``MAX_ELEMENT_CHARS``; a single document larger than
    ``otlp_common.MAX_DOCUMENT_BYTES`` fails the file.
    """
    buffered = stream if isinstance(stream, io.BufferedReader) \
        else io.BufferedReader(stream, oc.READ_BYTES)
    head = buffered.peek(4096).lstrip()
    if head.startswith(oc.UTF8_BOM):
        buffered.read(3)
        head = head[3:].lstrip()
    if head.startswith(b"["):
        # bytes that are not UTF-8 are kept (as lone surrogates) so their record is quarantined
        yield from _array_records(io.TextIOWrapper(buffered, encoding="utf-8",
                                                   errors="surrogateescape"))
        return
    if not head.startswith(b"{") and _csv_header(head) is not None:  # the batch export's CSV
        yield from _csv_records(io.TextIOWrapper(buffered, encoding="utf-8",
                                                 errors="surrogateescape", newline=""))
        return
    data = buffered.read(oc.BLOCK_BYTES)
    if oc.opens_document(data, (b"{",)):  # one pretty-printed document
        line_no = 1 + data.count(b"\n", 0, len(data) - len(data.lstrip()))  # the "{" line
        whole = oc.read_document(data, buffered, "export as JSONL or as a JSON array instead")
        del data
        try:
            doc = oc.loads(whole)
        except ValueError as exc:
            yield from _lenient_document(line_no, whole, f"not valid JSON: {exc}")
            return
        yield line_no, doc, None, whole
        return
    for line_no, raw, doc, error in oc.block_documents(oc.json_line_blocks(data, buffered)):
        if error is not None:
            doc, error = _retried(raw, error)
        yield line_no, doc, error, raw


def _lenient_document(line_no: int, whole: bytes, error: str,
                      ) -> Iterator[tuple[int, Any, str | None, str | bytes]]:
    """A document orjson refused with ``error``, read by Python's json: an API page's records
    one by one (one with text that is not UTF-8 is quarantined, not the page), else the document
    as one record; ``error`` when Python's json cannot read it either."""
    try:
        doc = _lenient(whole)
    except (ValueError, RecursionError):
        yield line_no, None, error, whole
        return
    page = isinstance(doc, dict) and isinstance(doc.get("data"), list) and "type" not in doc
    for item in doc["data"] if page else [doc]:
        bad = bad_text(item)
        yield line_no, None if bad else item, bad, _raw_of(item) if bad else ""


_SKIP = re.compile(r"[\s,]*")
_IN_STRING = re.compile(r'["\\]')
_OUTSIDE = re.compile(r'["{}\[\]]')


def _too_long(size: int, what: str = "element") -> str:
    return f"{what} of {size:,} characters is longer than the limit of {MAX_ELEMENT_CHARS:,}"


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
    decoder = _DECODER
    buf = text.read(1 << 20)
    suspect = _suspect(buf)  # may the buffer hold text that is not UTF-8? (rarely)
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
            suspect = _suspect(buf)
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
                suspect = _suspect(buf)
                continue
            # longer than the limit: skip to its end, keeping one chunk at a time
            skipped = None if eof else _skip_value(buf[pos:], text)
            if skipped is None:
                yield line_base, None, f"not valid JSON: {exc.msg}", \
                    buf[pos:pos + schema.RAW_MAX_CHARS]
                return
            reason = _too_long(skipped[0])
        except (ValueError, RecursionError) as exc:
            # read but not held: an integer of over 4,300 digits, nesting too deep for Python
            skipped = _skip_value(buf[pos:], text) if buf[pos] in "{[" else None
            if skipped is None:
                yield line_base, None, f"not valid JSON: {exc}", buf[pos:pos + schema.RAW_MAX_CHARS]
                return
            reason = f"element not readable: {exc}"
        else:
            skipped = None
        if skipped is not None:  # an element skipped unread: go on after it
            _, lines, rest = skipped
            yield line_base, None, reason, buf[pos:pos + schema.RAW_MAX_CHARS]
            buf, line_base = rest, line_base + lines
            pos = counted = 0
            read_size = 1 << 20
            eof = False
            suspect = _suspect(buf)
            continue
        if end - pos > MAX_ELEMENT_CHARS:  # it fit the buffer, but is over the limit all the same
            yield line_base, None, _too_long(end - pos), buf[pos:pos + schema.RAW_MAX_CHARS]
        elif suspect and _SUSPECT.search(buf, pos, end) and (bad := bad_text(record)):
            yield line_base, None, bad, buf[pos:min(end, pos + schema.RAW_MAX_CHARS)]
        else:
            yield line_base, record, None, buf[pos:end] if len(buf) - pos < 1 << 16 else ""
        pos = end
        if pos > 1 << 20:  # drop what was decoded so the buffer stays small
            line_base += buf.count("\n", counted, pos)
            buf, pos, counted = buf[pos:], 0, 0


# ---------------------------------------------------------------------------------------------
# The batch export's CSV (packages/shared/src/server/utils/transforms/transformStreamToCsv.ts)

# Columns of times, which the export writes as JSON strings (a Date through JSON.stringify:
# with quotes) or, from the events table, as ClickHouse text; columns of free text, written as
# they are (input and output too: the export leaves them the stored text for CSV). Any other
# field holding a JSON object or array (usageDetails, metadata, traceTags, a score's column...)
# is JSON text: stringifyForCsv writes objects that way.
_CSV_TIMES = frozenset({"startTime", "endTime", "completionStartTime", "createdAt", "updatedAt",
                        "traceTimestamp", "timestamp"})
_CSV_TEXT = frozenset({"input", "output", "name", "statusMessage", "comment", "stringValue",
                       "traceName", "promptName",
                       # the blob storage export's names
                       "status_message", "string_value", "trace_name", "prompt_name"})


def _csv_cells(text: str) -> list[str]:
    """The fields of one CSV record (which may span lines); raises csv.Error. The field size
    limit is raised for this call only (a record is at most MAX_ELEMENT_CHARS long) and put
    back, so no other reader in the process sees it changed."""
    old = csv.field_size_limit(MAX_ELEMENT_CHARS + 1)
    try:
        return next(csv.reader([text]), [])
    finally:
        csv.field_size_limit(old)


def _csv_header(head: bytes) -> list[str] | None:
    """The column names of a CSV file's first line when it looks like a Langfuse export's
    (fields separated by commas, one named ``id``); else None."""
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    if b"," not in first:
        return None
    try:
        names = _csv_cells(first.decode("utf-8", "replace"))
    except csv.Error:
        return None
    return names if "id" in names else None


def _csv_value(name: str, field: str) -> Any:
    """A CSV field as the value the JSON export has: empty -> None (the export writes null as an
    empty field), a JSON object or array -> its value, a time written as a JSON string -> the
    string; anything else (free text, numbers, JSON that does not decode) -> the text as is."""
    if not field:
        return None
    first = field[0]
    if (name in _CSV_TIMES and first == '"') or (first in "{[" and name not in _CSV_TEXT):
        try:
            value = _DECODER.decode(field)
        except (ValueError, RecursionError):
            return field
        return value if isinstance(value, str if first == '"' else (dict, list)) else field
    return field


def _csv_raw_records(text: io.TextIOBase) -> Iterator[tuple[int, str, str | None]]:
    """(start line, raw text, error) of each CSV record: lines are joined while a quoted field is
    open (an odd number of quotes so far). A record longer than MAX_ELEMENT_CHARS is skipped
    without being held (its first characters are kept for the reject)."""
    line = start = 1
    parts: list[str] = []
    size = quotes = 0
    over: str | None = None  # the start of a record too long to hold
    while True:
        piece = text.readline(1 << 20)
        if not piece:
            if parts or over is not None:
                error = _too_long(size, "CSV record") if over is not None else (
                    "not valid CSV: unterminated quoted field" if quotes % 2 else None)
                yield start, over if over is not None else "".join(parts), error
            return
        quotes += piece.count('"')
        size += len(piece)
        if over is None:
            parts.append(piece)
            if size > MAX_ELEMENT_CHARS:
                over, parts = "".join(parts)[:schema.RAW_MAX_CHARS], []
        if piece[-1] not in "\r\n":
            continue  # a line longer than the piece: read on
        line += 1
        if quotes % 2 == 0:
            yield start, over if over is not None else "".join(parts), \
                _too_long(size, "CSV record") if over is not None else None
            start, parts, size, quotes, over = line, [], 0, 0, None


def _csv_records(text: io.TextIOBase) -> Iterator[tuple[int, Any, str | None, str]]:
    """(line, record, error, raw) for each record of a CSV export: a dict of the header's names
    to :func:`_csv_value` of the fields."""
    header: list[str] | None = None
    for line, raw, error in _csv_raw_records(text):
        if error is not None:
            yield line, None, error, raw
            continue
        if not raw.strip():
            continue
        try:
            fields = _csv_cells(raw)
        except csv.Error as exc:
            yield line, None, f"not valid CSV: {exc}", raw
            continue
        if header is None:
            header = fields
            continue
        if len(fields) != len(header):
            yield line, None, (f"CSV record has {len(fields)} field(s) where the header has "
                               f"{len(header)}"), raw
            continue
        record = {name: _csv_value(name, field) for name, field in zip(header, fields)}
        bad = bad_text(record) if _suspect(raw) else None
        if bad:
            yield line, None, bad, raw
        else:
            yield line, record, None, raw


# ---------------------------------------------------------------------------------------------
# Field helpers


def _ts_us(value: Any, field: str) -> int | None:
    """ISO 8601 text (UTC when no offset) or epoch milliseconds -> epoch microseconds; None when
    absent (or empty); :class:`BadValue` naming ``field`` when it is no time."""
    if value is None or value == "":
        return None
    if value.__class__ is str:
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise BadValue(f"{field} is not a timestamp: {shown(value)}") from None
    elif value.__class__ is int or value.__class__ is float:
        if -9e15 < value < 9e15:  # milliseconds whose microseconds fit in 64 bits (not nan)
            return int(value * 1000)
        raise BadValue(f"{field} is not a timestamp: {shown(value)}")
    else:
        try:
            dt = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            dt = None
        if dt is None:
            raise BadValue(f"{field} is not a timestamp: {shown(value)}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return (dt - _EPOCH) // _ONE_US
    except OverflowError:  # year 1 or 9999 moved by its offset beyond datetime's range
        raise BadValue(f"{field} is not a timestamp: {shown(value)}") from None


def _usage_count(usage: dict, obs: dict, keys: tuple[str, str]) -> int | None:
    """The first of ``keys`` that ``usage`` has (``input``, then the older ``promptTokens``),
    else the observation's own older field ``keys[1]``; as :func:`values.count` reads it."""
    for key in keys:
        if key in usage:
            return count(usage[key], f"usage.{key}")
    return count(obs.get(keys[1]), keys[1])


# (input incl. cache, cached, cache write, output incl. reasoning, reasoning, one-hour cache
# writes: a part of the cache writes)
Tokens = tuple[int | None, int | None, int | None, int | None, int | None, int | None]


def _tokens(obs: dict) -> tuple[Tokens, list[str], int | None]:
    """((input incl. cache, cached, cache write, output incl. reasoning, reasoning), the sides
    whose ``usageDetails`` base count already held its detail keys (see the module's doc), and
    the ``usageDetails`` total, None when it gives none)."""
    details = obs.get("usageDetails")
    if isinstance(details, dict):
        if details:
            return usage_details(details)
    elif details is not None:
        raise BadValue(f"usageDetails is not a JSON object: {shown(details)}")
    usage = obs.get("usage")
    if usage is None:
        usage = {}
    elif not isinstance(usage, dict):
        raise BadValue(f"usage is not a JSON object: {shown(usage)}")
    if usage.get("unit") not in (None, "TOKENS"):
        return (None,) * 6, [], None  # characters, images, seconds: not tokens
    inp = _usage_count(usage, obs, ("input", "promptTokens"))
    out = _usage_count(usage, obs, ("output", "completionTokens"))
    if details is not None and not inp and not out:
        # beside (empty) usageDetails the legacy counts are derived from them (the public API
        # writes 0 when nothing is known): no count
        inp = out = None
    return (inp, 0 if inp is not None else None, 0 if inp is not None else None, out,
            0 if out is not None else None, 0 if inp is not None else None), [], None


_BASE_KEYS = {"input": ("input", "input_tokens", "prompt_tokens", "prompt"),
              "output": ("output", "output_tokens", "completion_tokens", "completion")}


def usage_details(details: dict) -> tuple[Tokens, list[str], int | None]:
    """((input incl. cache, cached, cache write, output incl. reasoning, reasoning) from a
    ``usageDetails`` object of Langfuse's buckets, the sides whose base count already held its
    detail keys (see the module's doc), and its total (Gemini's ``total_token_count`` included),
    None when it has none). Raises BadValue naming a key that is no count."""
    counts: dict[str, int] = {}
    for key, value in details.items():
        if value.__class__ is int and 0 <= value <= INT64_MAX:
            counts[key] = value
        elif value is not None:
            counts[key] = count(value, f"usageDetails.{key}")  # raises unless a count
    counts = _gemini_buckets(counts)
    total = counts.pop("total", None)  # the sum of the buckets: read (so a bad one is seen)
    # Anthropic's cache-write tiers (ephemeral_5m / _1h) are a breakdown of the writes, which
    # may be listed beside them: raw Anthropic usage (cache_creation_input_tokens beside
    # cache_creation_ephemeral_*), and langfuse-python's LangChain handler, which writes an
    # input_<key> per langchain-anthropic input_token_details key (input_cache_creation beside
    # input_ephemeral_*_input_tokens; older langchain-anthropic releases kept the sum there
    # too, newer ones set it to 0). The writes are the larger of the sum and the tiers' total,
    # counted once.
    tier_writes = write_1h = 0
    sums = {"input": 0, "output": 0}
    base = {"input": None, "output": None}
    cached = write = reasoning = 0
    seen = {"input": False, "output": False}
    for key, n in counts.items():
        k = key.lower()
        if k.startswith(("output", "completion", "reasoning")):
            # (Mastra's exporter writes a bare "reasoning" key beside output: a part of it)
            side = "output"
        elif k.startswith(("input", "prompt", "cache")):
            side = "input"
        else:
            continue  # e.g. the AI SDK's accepted_prediction_tokens: already inside output
        seen[side] = True
        if side == "input":
            if "cache_read" in k or "cached" in k:
                cached += n
            elif "ephemeral" in k:
                tier_writes += n
                if "1h" in k:
                    write_1h += n
                continue
            elif "cache_creation" in k or "cache_write" in k:
                write += n
                if "1h" in k:
                    # Langfuse's own bucket of one-hour writes (input_cache_creation_1h, beside
                    # input_cache_creation and _5m; its OTel mapping writes it): priced higher
                    write_1h += n
        elif "reasoning" in k:
            reasoning += n
        if k.startswith(("input_priority", "output_priority")):
            # LangChain's OpenAI priority tier: the same tokens as input / output again
            # (langfuse-python CallbackHandler._parse_usage_model does not subtract them)
            continue
        if key in _BASE_KEYS[side] and base[side] is None:
            base[side] = n
        sums[side] += n
    if tier_writes > write:
        sums["input"] += tier_writes - write
        write = tier_writes
    inclusive = _inclusive_sides(total, sums, base)
    if "input" in inclusive:
        sums["input"] = base["input"]
    if "output" in inclusive:
        sums["output"] = base["output"]
    inp, out = sums["input"], sums["output"]
    if inp > INT64_MAX or out > INT64_MAX:
        side = "input" if inp > INT64_MAX else "output"
        raise BadValue(f"usageDetails {side} tokens add up to more than {INT64_MAX}: "
                       f"{inp if side == 'input' else out}")
    tokens = ((inp if seen["input"] else None), (cached if seen["input"] else None),
              (write if seen["input"] else None), (out if seen["output"] else None),
              (reasoning if seen["output"] else None), (write_1h if seen["input"] else None))
    return tokens, inclusive, total


# Gemini's usage_metadata, as an integration passes it (Langfuse stores an object it does not know
# as given, and its price table lists these keys for every Gemini model), snake or camel case:
# key in lower case -> its part. Not Langfuse's buckets: prompt_token_count already holds
# cached_content_token_count, and candidates_token_count does not hold thoughts_token_count, nor
# prompt_token_count tool_use_prompt_token_count (Gemini's total is prompt + candidates +
# thoughts + tool use prompt). Read as buckets, the cached tokens counted twice and the answer
# and thinking tokens not at all (no key starts with output): an output count of none.
_GEMINI_KEYS = {"prompt_token_count": "prompt", "prompttokencount": "prompt",
                "cached_content_token_count": "cached", "cachedcontenttokencount": "cached",
                "tool_use_prompt_token_count": "tool_use", "tooluseprompttokencount": "tool_use",
                "candidates_token_count": "candidates", "candidatestokencount": "candidates",
                "thoughts_token_count": "thoughts", "thoughtstokencount": "thoughts",
                "total_token_count": "total", "totaltokencount": "total"}


def _gemini_buckets(counts: dict[str, int]) -> dict[str, int]:
    """``counts`` with Gemini's usage_metadata keys (``_GEMINI_KEYS``) turned into Langfuse's
    buckets (``input`` the prompt without its cached part, plus the tool use prompt;
    ``input_cached_tokens``; ``output`` the candidates; ``output_reasoning`` the thoughts;
    ``total``). Only for a usage object that is Gemini's alone: beside Langfuse's own base
    counts (``input``, ``output``...) they may be aliases of those, and are read as before."""
    parts = {_GEMINI_KEYS[k.lower()]: k for k in counts if k.lower() in _GEMINI_KEYS}
    if not parts or any(k in counts for names in _BASE_KEYS.values() for k in names) \
            or "total" in counts:
        return counts
    out = {k: n for k, n in counts.items() if k.lower() not in _GEMINI_KEYS}
    n = {part: counts[key] for part, key in parts.items()}
    if {"prompt", "cached", "tool_use"} & n.keys():
        prompt, cached = n.get("prompt", 0), n.get("cached", 0)
        # (a cached count above the prompt's says this prompt count left it out)
        out["input"] = (prompt - cached if prompt >= cached else prompt) + n.get("tool_use", 0)
        out["input_cached_tokens"] = cached
    if {"candidates", "thoughts"} & n.keys():
        out["output"] = n.get("candidates", 0)
        out["output_reasoning"] = n.get("thoughts", 0)
    if "total" in n:
        out["total"] = n["total"]
    return out


def _inclusive_sides(total: int | None, sums: dict[str, int], base: dict[str, int | None],
                     ) -> list[str]:
    """The sides whose base count (``input``, ``output``) already holds the side's other keys,
    told by a ``total`` that equals the buckets' sum only when those are left out; [] when the
    buckets add up to it (Langfuse's own rule), when there is no total, or when the total fits
    more than one reading."""
    if total is None or base["input"] is None or base["output"] is None \
            or total == sums["input"] + sums["output"]:
        return []
    # only a side with other keys can have held them
    sides = [side for side in ("input", "output") if sums[side] > base[side]]
    readings = [[side] for side in sides]
    if len(sides) == 2:
        readings.append(sides)
    readings = [held for held in readings
                if all(base[side] >= sums[side] - base[side] for side in held)
                and total == sum(base[side] if side in held else sums[side]
                                 for side in ("input", "output"))]
    return readings[0] if len(readings) == 1 else []


def _unaccounted(total: int | None, inp: int | None, out: int | None) -> int:
    """Tokens of the ``usageDetails`` total in neither the input nor the output count (0 for
    none, or no total): see TOTAL_ABOVE_BUCKETS."""
    if total is None or inp is None or out is None:
        return 0
    return max(total - inp - out, 0)


def cost_of(obs: dict) -> float | None:
    """USD: ``costDetails.total``, else the sum of its parts, else the older cost fields."""
    details = obs.get("costDetails")
    if isinstance(details, dict):
        if details:
            total = parts = None
            for key, value in details.items():
                if value.__class__ is float and 0 <= value < _INF:
                    amount = value
                elif value is None:
                    continue
                else:  # each is read, so a bad one is seen even beside a good total
                    amount = number(value, f"costDetails.{key}")
                if key == "total":
                    total = amount
                else:
                    parts = amount if parts is None else parts + amount
            return total if total is not None else parts
    elif details is not None:
        raise BadValue(f"costDetails is not a JSON object: {shown(details)}")
    usage = obs.get("usage")
    for name, value in (("calculatedTotalCost", obs.get("calculatedTotalCost")),
                        ("totalCost", obs.get("totalCost")),
                        ("usage.totalCost",
                         usage.get("totalCost") if isinstance(usage, dict) else None)):
        if value is not None:
            return number(value, name)
    return None


def error_type_of(message: str | None) -> str | None:
    """The exception class a status message starts with (``openai.RateLimitError: ...``), else
    the HTTP status of an SDK's API error (``Error code: 429 - ...`` → ``429``)."""
    if not message:
        return None
    match = _ERROR_NAME.match(message) or _HTTP_CODE.match(message)
    return match.group(1) if match else None


# ---------------------------------------------------------------------------------------------
# Records -> rows


# ---------------------------------------------------------------------------------------------
# The blob storage export (Project Settings > Integrations > Blob Storage: observations_v2/,
# observations/, traces/ and scores/ files of JSON, JSONL or CSV, ClickHouse's snake_case names,
# times as "2026-03-02 10:00:00.100000" in UTC, "" for what is not set). Its records are read as
# the same records in the API's names; a bad value's reason names the file's own field.

_BLOB_KEYS = {
    "trace_id": "traceId", "parent_observation_id": "parentObservationId",
    "start_time": "startTime", "end_time": "endTime",
    "completion_start_time": "completionStartTime",
    "status_message": "statusMessage", "provided_model_name": "providedModelName",
    "model_parameters": "modelParameters", "usage_details": "usageDetails",
    "cost_details": "costDetails", "prompt_name": "promptName", "prompt_version": "promptVersion",
    "prompt_id": "promptId", "total_cost": "totalCost", "time_to_first_token": "timeToFirstToken",
    "model_id": "modelId", "created_at": "createdAt", "updated_at": "updatedAt",
    "project_id": "projectId", "tool_calls": "toolCalls", "tool_call_names": "toolCallNames",
    "tool_definitions": "toolDefinitions", "usage_pricing_tier_name": "usagePricingTierName",
    "input_price": "inputPrice", "output_price": "outputPrice", "total_price": "totalPrice",
    "user_id": "userId", "session_id": "sessionId", "trace_name": "traceName",
    "observation_id": "observationId", "dataset_run_id": "datasetRunId",
    "data_type": "dataType", "string_value": "stringValue",
}
_BLOB_NAMES = {camel: snake for snake, camel in _BLOB_KEYS.items()}
_CAMEL_NAME = re.compile(r"\b(" + "|".join(sorted(_BLOB_NAMES, key=len, reverse=True)) + r")\b")
# The export's ``latency`` and ``time_to_first_token`` are seconds, or milliseconds for an
# integration created before 2026-04-01: never read (the times they are computed from are).
_BLOB_UNREAD = frozenset({"latency", "time_to_first_token"})


def _is_blob_record(rec: dict) -> bool:
    return "project_id" in rec or "start_time" in rec or "data_type" in rec


def _from_blob(rec: dict) -> dict:
    """A blob export record in the API's names; "" (what the export writes for not set) and
    the ambiguous durations left out."""
    return {_BLOB_KEYS.get(k, k): v for k, v in rec.items()
            if v != "" and k not in _BLOB_UNREAD}


def _blob_reason(reason: str) -> str:
    """A reason naming API fields (``usageDetails.input is not an integer``) in the blob export's
    names (``usage_details.input ...``)."""
    return _CAMEL_NAME.sub(lambda m: _BLOB_NAMES[m.group(1)], reason)


class _Parser:
    def __init__(self) -> None:
        self.batch = oc.Batch()
        self.pending: list[tuple[dict, int]] = []  # request rows waiting for trace info
        self.traces: dict[str, dict] = {}
        self.traces_applied: set[str] = set()  # (the others are counted in a note)

    def __len__(self) -> int:
        return len(self.batch) + len(self.pending)

    def record(self, line: int, rec: Any, raw: str | bytes, trace: dict | None = None) -> None:
        if not isinstance(rec, dict):
            self.batch.reject(line, raw or _raw_of(rec),
                              "not a Langfuse record (expected a JSON object)")
            return
        if _is_blob_record(rec):
            self._blob_record(line, rec, raw)
            return
        try:
            kind = rec.get("type")
            if isinstance(rec.get("data"), list) and "type" not in rec:  # an API page
                for item in rec["data"]:
                    self.record(line, item, "", trace)
            elif kind.__class__ is str and kind in OBSERVATION_TYPES and "startTime" in rec:
                self.observation(line, rec, trace)
            elif "dataType" in rec or ("value" in rec and "name" in rec and "traceId" in rec):
                self.score(line, rec, trace)
            elif "observations" in rec or "scores" in rec or ("timestamp" in rec and "id" in rec):
                self.trace(line, rec)
            elif kind is not None and "startTime" in rec:
                raise BadValue(f"type is not a Langfuse observation type: {shown(kind)}")
            else:
                self.batch.reject(line, raw, "not a Langfuse observation, trace or score")
        except BadValue as exc:
            self.batch.reject(line, raw if raw else _raw_of(rec), str(exc))
        except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError,
                RecursionError) as exc:
            self.batch.reject(line, raw if raw else _raw_of(rec),
                              f"Langfuse record not usable: {exc}")

    def _blob_record(self, line: int, rec: dict, raw: str | bytes) -> None:
        """A record of the blob storage export, read as the API's, its rejects renamed."""
        first = len(self.batch.rejects)
        self.record(line, _from_blob(rec), raw or _raw_of(rec))
        for reject in self.batch.rejects[first:]:
            reject.reason = _blob_reason(reject.reason)

    def trace(self, line: int, rec: dict) -> None:
        for key in ("observations", "scores"):
            if rec.get(key) is not None and not isinstance(rec[key], list):
                raise BadValue(f"{key} is not a JSON array: {shown(rec[key])}")
        info = {k: rec.get(k) for k in TRACE_FIELDS if rec.get(k) is not None}
        if isinstance(rec.get("metadata"), dict):
            info["metadata"] = rec["metadata"]
        if rec.get("id"):
            self.traces[_text(rec["id"])] = info
            if rec.get("observations"):
                self.traces_applied.add(_text(rec["id"]))
        for obs in rec.get("observations") or ():
            if isinstance(obs, dict):  # the public API lists ids only: nothing to read there
                self.record(line, obs, "", info)
        for score in rec.get("scores") or ():
            if isinstance(score, dict):
                self.record(line, score, "", info)

    def observation(self, line: int, obs: dict, trace: dict | None) -> None:
        # Every value is read (and a bad one raises BadValue) before any row is added.
        obs_id = obs.get("id")
        if not obs_id:
            raise ValueError("observation has no id")
        start = _ts_us(obs["startTime"], "startTime")
        if start is None:
            raise BadValue("missing startTime")
        end = _ts_us(obs.get("endTime"), "endTime")
        latency_ms = (end - start) / 1000 if end is not None else None
        if latency_ms is None and obs.get("latency") is not None:
            latency_ms = number(obs["latency"], "latency") * 1000  # seconds in the public API
        if latency_ms is None and obs.get("latencyMs") is not None:  # the v4 events export
            latency_ms = number(obs["latencyMs"], "latencyMs")
        error = str(obs.get("level") or "").upper() == "ERROR"
        metadata = obs.get("metadata")
        extra = {k: v for k, v in obs.items() if k not in _CONSUMED and v is not None
                 and not (k in _EMPTY_IS_NOTHING and v in ([], {}))}
        # the trace's name and tags, as a trace record gives them (see _apply_trace)
        if obs.get("traceName") not in (None, ""):
            extra["trace_name"] = obs["traceName"]
        tags = obs.get("traceTags") if obs.get("traceTags") is not None else obs.get("tags")
        if tags not in (None, [], ""):
            extra["tags"] = tags
        if isinstance(metadata, dict):
            if metadata:
                extra["metadata"] = metadata
        else:
            if metadata is not None:  # not an object: nothing to map to columns, kept as is
                extra["metadata"] = metadata
            metadata = {}
        kind = obs["type"]
        obs_id, trace_id = _text(obs_id), _text(obs.get("traceId"))
        parent_id, name = _text(obs.get("parentObservationId")), _text(obs.get("name"))
        if kind not in MODEL_TYPES:
            self.batch.spans.append((
                obs_id, trace_id, parent_id, start, latency_ms, name,
                SPAN_KIND.get(kind, "other"), "error" if error else "ok",
                oc.json_text(extra) if extra else None))
            self.batch.span_lines.append(line)
            return
        (inp, cached, write, out, reasoning, write_1h), inclusive, total = _tokens(obs)
        if inclusive:
            extra["usage_details_inclusive"] = inclusive
        unaccounted = _unaccounted(total, inp, out)
        if unaccounted:
            extra["usage_details_unaccounted"] = unaccounted
            self.batch.not_read[TOTAL_ABOVE_BUCKETS] += 1
        cost = cost_of(obs)
        first_token = _ts_us(obs.get("completionStartTime"), "completionStartTime")
        ttft_ms = (first_token - start) / 1000 if first_token is not None else None
        if ttft_ms is None and obs.get("timeToFirstToken") is not None:
            ttft_ms = number(obs["timeToFirstToken"], "timeToFirstToken") * 1000
        if ttft_ms is None and obs.get("timeToFirstTokenMs") is not None:
            ttft_ms = number(obs["timeToFirstTokenMs"], "timeToFirstTokenMs")
        model = obs.get("model")
        if model is None:  # API v2 (as documented) and the v4 events export
            model = obs.get("providedModelName")
        prompt_version = obs.get("promptVersion")
        message = _text(obs.get("statusMessage")) if error else None
        row = {
            "request_id": obs_id, "trace_id": trace_id, "parent_id": parent_id, "ts": start,
            "latency_ms": latency_ms, "ttft_ms": ttft_ms, "model": _text(model),
            "operation": MODEL_TYPES[kind], "input_tokens": inp, "cached_input_tokens": cached,
            "cache_write_tokens": write, "cache_write_1h_tokens": write_1h,
            "output_tokens": out, "reasoning_tokens": reasoning,
            "logged_cost_usd": cost, "status": "error" if error else "ok",
            "error_message": message, "error_type": error_type_of(message),
            "prompt_name": _text(obs.get("promptName")),
            "prompt_version": None if prompt_version is None else _text(prompt_version),
            "user_id": _text(obs.get("userId")), "session_id": _text(obs.get("sessionId")),
            "app_version": _text(obs.get("release") or obs.get("version")),
            "environment": _text(obs.get("environment")),
            "input_text": _text(obs.get("input")),
            # an embedding's output is its vectors when OpenInference's spans reached Langfuse
            # (32 KB a text), no response text: none, as the other formats store an embedding
            "output_text": _text(obs.get("output")) if kind != "EMBEDDING" else None,
            "attributes": extra,
        }
        for column in _METADATA_COLUMNS:
            if row.get(column) is None and metadata.get(column) is not None:
                row[column] = _text(metadata[column])
        oc.user_columns(metadata, row)
        row["provider"] = oc.norm_provider(row.get("provider")
                                           or _text(metadata.get("ls_provider"))
                                           or _text(metadata.get("gen_ai.system")))
        if trace is not None:
            _apply_trace(row, trace)
        self.pending.append((row, line))
        self.batch.spans.append((
            obs_id, trace_id, parent_id, start, latency_ms, name, "llm", row["status"],
            oc.json_text({k: v for k, v in (("model", row["model"]), ("input_tokens", inp),
                                            ("output_tokens", out)) if v is not None})))
        self.batch.span_lines.append(line)

    def score(self, line: int, rec: dict, trace: dict | None) -> None:
        data_type = str(rec.get("dataType") or "NUMERIC").upper()
        if data_type == "CORRECTION":
            self.batch.not_read[CORRECTIONS] += 1
            return
        metric = _text(rec.get("name") or "score")
        ids = {key: rec.get(key) for key in _SUBJECT_KEYS.values()}
        subject = rec.get("subject")  # API v3: {"kind": "observation", "id": ..., "traceId": ...}
        if isinstance(subject, dict) and subject.get("kind") in _SUBJECT_KEYS:
            ids[_SUBJECT_KEYS[subject["kind"]]] = ids[_SUBJECT_KEYS[subject["kind"]]] \
                or subject.get("id")
            ids["traceId"] = ids["traceId"] or subject.get("traceId")
        source_name = _text(rec.get("source") or "API").upper()
        run_id = ids["datasetRunId"]
        source = "offline" if run_id else SCORE_SOURCE.get(source_name, "feedback")
        run_id = _text(run_id) if run_id else f"langfuse:{source_name.lower()}"
        case_id = _text(ids["observationId"] or ids["traceId"] or ids["sessionId"]
                        or ids["datasetRunId"])
        when = "timestamp" if rec.get("timestamp") else "createdAt"
        ts = _ts_us(rec.get(when), when)
        if ts is None:
            raise ValueError("score has no timestamp")
        consumed = {"id", "name", "value", "stringValue", "dataType", "source", "comment",
                    "timestamp", "createdAt", "updatedAt", "traceId", "observationId",
                    "datasetRunId", "projectId", "subject"}
        extra = {k: v for k, v in rec.items() if k not in consumed and v is not None}
        label = _text(rec.get("stringValue"))
        explanation = _text(rec.get("comment"))
        value = rec.get("value")
        passed = None
        if data_type == "TEXT":
            # free text (API v1/v2: stringValue, no value; v3: value; the export: value 0, the
            # placeholder Langfuse stores): the judgement, so the explanation
            text = label if label is not None else (value if isinstance(value, str) else None)
            if explanation is not None and text is not None:
                extra["comment"] = explanation
            value, label, explanation = None, None, text if text is not None else explanation
        elif value.__class__ is bool and data_type == "BOOLEAN":  # API v3
            value = 1.0 if value else 0.0
        elif data_type == "CATEGORICAL" and isinstance(value, str) and not numeric_text(value):
            # the ingestion API's and API v3's string value of a category
            label = label if label is not None else value
            value = None
        else:
            value = number(value, "value", signed=True)
        if data_type == "BOOLEAN":
            passed = oc.passed_from_label(label) if value is None else value >= 0.5
            if value is not None:  # "True" / "False" as the API writes it, or none (v3)
                label = "true" if passed else "false"
        elif data_type == "CATEGORICAL":
            passed = oc.passed_from_label(label)
            if value is not None and not rec.get("configId") and source_name != "ANNOTATION":
                # without a score config Langfuse stores 0 here: no score; kept as written
                extra["value"] = rec["value"]
                value = None
        if data_type not in _SCORE_TYPES:  # read as NUMERIC; the type it claims is kept
            extra["dataType"] = rec["dataType"]
        extra["trace_id"] = ids["traceId"]
        eval_id = oc.stable_id("langfuse", rec["id"]) if rec.get("id") \
            else oc.stable_id(run_id, case_id, metric, ts)
        version = (trace or self.traces.get(_text(ids["traceId"]), {})).get("release")
        if version is None and ids["datasetRunId"]:
            # a dataset run (a Langfuse experiment) is the version it tested: without one, every
            # run's scores were pooled under no version, never to be compared (review)
            version = ids["datasetRunId"]
        self.batch.evals.append((
            eval_id, run_id, ts, source, None, case_id, 0, _text(ids["observationId"]),
            _text(version), None, metric, value, passed,
            "human" if source_name == "ANNOTATION" else None, label, explanation,
            oc.json_text(extra)))
        self.batch.eval_lines.append(line)

    def flush(self) -> Chunk:
        for row, line in self.pending:
            try:
                trace = self.traces.get(row.get("trace_id"))
                if trace:
                    _apply_trace(row, trace)
                    self.traces_applied.add(row["trace_id"])
                row["attributes"] = oc.json_text(row["attributes"]) if row["attributes"] else None
            except (TypeError, ValueError, RecursionError) as exc:
                self.batch.reject(line, "", f"Langfuse record not usable: {exc}")
                continue
            self.batch.requests.append(tuple(row.get(c) for c in oc.REQUEST_COLUMNS))
            self.batch.request_lines.append(line)
        self.pending = []
        return self.batch.flush()


def _apply_trace(row: dict, trace: dict) -> None:
    """Trace-level user, session, release and environment fill what the observation left empty."""
    for column, key in (("user_id", "userId"), ("session_id", "sessionId"),
                        ("app_version", "release"), ("environment", "environment")):
        if row.get(column) is None and trace.get(key) is not None:
            row[column] = _text(trace[key])
    metadata = trace.get("metadata")
    if isinstance(metadata, dict):
        oc.user_columns(metadata, row)
        for column in ("feature", "customer_id"):
            if row.get(column) is None and metadata.get(column) is not None:
                row[column] = _text(metadata[column])
    if trace.get("name") and isinstance(row.get("attributes"), dict):
        row["attributes"].setdefault("trace_name", trace["name"])
    if trace.get("tags") and isinstance(row.get("attributes"), dict):
        row["attributes"].setdefault("tags", trace["tags"])


# ---------------------------------------------------------------------------------------------
# Scores exported apart from their traces

# How far before a score the requests it judges are looked for: a human annotates a trace days
# after it ran, seldom more than a month.
JUDGED_LOOKBACK_DAYS = 30
VERSIONED_NOTE = ("Langfuse score(s) without their trace's release in the file: given the version "
                  "of the stored request they judge (its observation's, else its trace's).")


def versions_of_judged_requests(batch) -> dict[str, int]:
    """The format's pass before the commit (Format.finish): the batch's scores without a
    version take the ``app_version`` of the stored request they judge (the observation's, else
    that of the trace's requests when they name one version), and without a model the judged
    observation's ``model`` (a score names none: the model filter of Quality found it only
    through its request).

    Langfuse exports scores apart from their traces (the UI's scores export, the blob storage
    export's scores/), so a score's trace release is seldom in its file; without this every such
    score had no version and Quality's comparison by version had nothing to compare. Requests of
    this file and stored ones from ``JUDGED_LOOKBACK_DAYS`` before a score's day on are searched;
    a score ingested before the requests it judges keeps no version. Returns
    ``{VERSIONED_NOTE: n}`` or ``{}``."""
    evals = [str(p) for p in batch.written_files("evals")]
    if not evals:
        return {}
    with ScratchConnection(batch) as con:
        con.execute(f"CREATE TEMP TABLE pending AS SELECT request_id, "
                    f"{schema.EVAL_TRACE_SQL.format(row='e.')} AS trace_id "
                    f"FROM {parquet_sql('$evals')} e WHERE version IS NULL OR model IS NULL",
                    {"evals": evals})
        if not con.execute("SELECT count(*) FROM pending").fetchone()[0]:
            return {}
        days = {(datetime.fromisoformat(d) - timedelta(days=k)).date().isoformat()
                for d in days_of_files(con, evals) for k in range(JUDGED_LOOKBACK_DAYS + 1)}
        requests = [str(p) for p in batch.written_files("requests")] \
            + batch.lake._files_of_days("requests", days)
        if not requests:
            return {}
        con.execute(
            f"CREATE TEMP TABLE judged AS SELECT request_id, trace_id, app_version, model "
            f"FROM {parquet_sql('$requests')} WHERE request_id IN (SELECT request_id FROM pending) "
            "OR trace_id IN (SELECT trace_id FROM pending)", {"requests": requests})
        con.execute("CREATE TEMP TABLE by_request AS SELECT request_id, any_value(app_version) "
                    "AS app_version, any_value(model) AS model FROM judged GROUP BY request_id")
        # a trace's version only when its requests agree on one
        con.execute("CREATE TEMP TABLE by_trace AS SELECT trace_id, min(app_version) AS "
                    "app_version FROM judged WHERE app_version IS NOT NULL GROUP BY trace_id "
                    "HAVING count(DISTINCT app_version) = 1")
        trace = schema.EVAL_TRACE_SQL.format(row="w.")
        versioned = con.execute(
            f"SELECT count(*) FROM {parquet_sql('$evals')} w LEFT JOIN by_request r USING "
            f"(request_id) LEFT JOIN by_trace t ON t.trace_id = {trace} WHERE w.version IS "
            "NULL AND coalesce(r.app_version, t.app_version) IS NOT NULL",
            {"evals": evals}).fetchone()[0]
        batch.replace_written(
            "evals", con,
            "SELECT w.* REPLACE (coalesce(w.version, r.app_version, t.app_version) AS version, "
            "coalesce(w.model, r.model) AS model) FROM written w LEFT JOIN by_request r "
            f"ON r.request_id = w.request_id LEFT JOIN by_trace t ON t.trace_id = {trace}",
            f"(version IS NULL OR model IS NULL) AND (request_id IN (SELECT request_id "
            f"FROM by_request) OR "
            f"{schema.EVAL_TRACE_SQL.format(row='')} IN (SELECT trace_id FROM by_trace))")
    return {VERSIONED_NOTE: versioned} if versioned else {}


def finish(batch) -> dict[str, int]:
    """The format's pass before the commit: a GENERATION around another of one call (LangChain's
    callback handler around the OpenAI wrapper's, a framework's around openai-v2's exported to
    Langfuse) counts once, as the span formats count the same observations sent as the Langfuse
    SDK's spans (lib/ingest/nesting.py); then :func:`versions_of_judged_requests`."""
    notes = finish_spans(batch)
    return {**notes, **versions_of_judged_requests(batch)}


# ---------------------------------------------------------------------------------------------
# The format

_MARKERS = (b'"usageDetails"', b'"costDetails"', b'"completionStartTime"', b'"GENERATION"',
            b'"parentObservationId"', b'"promptVersion"', b'"observations"')


_CSV_OBSERVATION_MARKERS = frozenset({"usageDetails", "costDetails", "completionStartTime",
                                      "parentObservationId", "promptVersion"})
_SCORE_LINKS = frozenset({"traceId", "observationId", "sessionId", "datasetRunId"})
_BLOB_MARKERS = (b'"usage_details"', b'"cost_details"', b'"completion_start_time"',
                 b'"parent_observation_id"', b'"provided_model_name"')


def detect(head: bytes, filename: str) -> bool:
    """A JSON / JSONL file whose first bytes carry Langfuse observation or score field names, or
    a CSV file whose header is a Langfuse observations or scores export's; in the API's names or
    the blob storage export's (each of its tables has ``project_id``)."""
    text = head.lstrip().removeprefix(oc.UTF8_BOM).lstrip()
    if text[:1] not in (b"{", b"["):
        names = set(_csv_header(text) or ())
        if "project_id" in names:
            names = {_BLOB_KEYS.get(n, n) for n in names} | {"blob"}
        return ({"id", "type", "startTime"} <= names and bool(names & _CSV_OBSERVATION_MARKERS)) \
            or ({"id", "name", "value", "dataType"} <= names and bool(names & _SCORE_LINKS)) \
            or {"id", "timestamp", "bookmarked", "blob"} <= names
    if oc.head_has_otlp_envelope(head):
        return False
    if b'"startTime"' in head and any(marker in head for marker in _MARKERS):
        return True
    if b'"project_id"' in head:  # the blob storage export: observations, traces or scores
        return (b'"start_time"' in head and any(m in head for m in _BLOB_MARKERS)) \
            or (b'"data_type"' in head and b'"value"' in head) \
            or (b'"timestamp"' in head and b'"bookmarked"' in head)
    # a scores-only export (API v3 scores name what they judge in a "subject")
    return b'"dataType"' in head and b'"value"' in head \
        and (b'"traceId"' in head or b'"subject"' in head)


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
    last = parser.flush()
    alone = len(parser.traces.keys() - parser.traces_applied)
    if alone:
        last.not_read[TRACES_ALONE] = alone
    yield last


FORMAT = Format(
    name="langfuse",
    detect=detect,
    parse=parse,
    priority=25,
    doc="Langfuse exports: observations (GENERATION -> requests), traces and scores; "
        "JSON/JSONL/CSV",
    finish=finish,
)
