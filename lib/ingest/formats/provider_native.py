"""Provider-native request logs (formats ``openai`` and ``anthropic``): the response objects an
application got from the provider's API and logged as they were, one request row per response.
User documentation: docs/provider-logs.md.

Records (JSON lines; also one JSON array of them, or one pretty-printed object):

- OpenAI Chat Completions (``"object": "chat.completion"``), legacy Completions
  (``"text_completion"``), Responses API objects (``"object": "response"``) and embeddings
  responses (``"object": "list"`` with ``usage`` and ``model``);
- OpenAI Batch API output lines: ``{"id": "batch_req_…", "custom_id": …, "response":
  {"status_code", "request_id", "body": <one of the above, or {"error": …}>}, "error": …}``;
- Anthropic Messages (``"type": "message"``), Anthropic errors (``"type": "error"``) and Message
  Batches results lines ``{"custom_id": …, "result": {"type": "succeeded", "message": …} |
  {"type": "errored", "error": …} | {"type": "canceled" | "expired"}}``;
- any of the provider objects inside an application's wrapper record (below).

Both formats read all of these (a file mixing the providers is read whole); they differ only in
which provider's objects their detector looks for, so each file is reported under the provider
it starts with. ``provider`` is the object's (openai / anthropic); a wrapper's ``provider`` key
overrides it (an OpenAI-compatible server such as vLLM answers with the same objects).

Token semantics (design §3):
- OpenAI: ``prompt_tokens`` / Responses ``input_tokens`` already INCLUDE
  ``*_tokens_details.cached_tokens`` (and ``cache_write_tokens``), ``completion_tokens`` /
  ``output_tokens`` include ``reasoning_tokens``: taken as they are.
- Anthropic: ``usage.input_tokens`` EXCLUDES the cache, so input_tokens = usage.input_tokens +
  cache_read_input_tokens + cache_creation_input_tokens; cached_input_tokens = the reads,
  cache_write_tokens = the writes; reasoning_tokens = ``output_tokens_details.thinking_tokens``.
  The same field name as OpenAI's Responses API, with the opposite meaning.
- Usage fields not mapped to a column (audio tokens, the cache TTL split, server tool uses,
  ``service_tier``) are kept in ``attributes`` as ``usage.<path>`` when not null, zero or empty.

Price context (lib/pricing.py): Batch API lines (OpenAI's and Anthropic's) get
``attributes.processing = "batch"`` (beside ``attributes.batch = true``), and so does an Anthropic
message whose ``usage.service_tier`` is ``"batch"``; an OpenAI object's top-level ``service_tier``
(``"default"``, ``"flex"``, ``"priority"``…) is kept as ``attributes.service_tier``, and so is an
Anthropic message's other ``usage.service_tier`` (``"standard"``, ``"priority"``). The cost
engine prices each row with them (Batch API and flex rates).

Ids: ``request_id`` is the provider's id (``chatcmpl-…``, ``resp_…``, ``msg_…``). A batch line
whose body has none (a failed line, an embeddings body) takes the batch line's ``id``
(``batch_req_…``: unique per line, where ``custom_id`` is only unique within one batch), then
the HTTP envelope's ``request_id``; what has none of them (an Anthropic batch failure, a failed
call an application logged) gets a stable hash of the record, so reading it again stores nothing
twice. ``response_model`` is the model that answered (the object's ``model``, often a dated
snapshot); ``model`` is the model asked for (design §3), a wrapper's ``request.model`` else its
own ``model``, and the object's when the record names none (a bare response), else ``unknown``.
``cost_usd`` is the cost engine's (lib/pricing.py), never the file's.

Times: ``created`` (chat) / ``created_at`` (Responses) are unix seconds. Anthropic objects and
embeddings responses carry no time: it comes from a wrapper key (``TS_KEYS``: ISO 8601 text, UTC
when without offset, or epoch numbers in s, ms, µs or ns told apart by size), else the record is
quarantined with a reason saying so (never the file's mtime, never an invented time). The
provider's own time wins over a wrapper's (so one response gives the same row however it was
logged; an unused wrapper time stays in ``attributes``). One exception, Batch API output: a line
without a time of its own (a failed request, an embeddings body) takes the time of the nearest
line before it that has one (the first one after it at the start of the file), marked
``"ts_source": "batch"`` in ``attributes`` (a batch's lines all ran in its window); with no
dated line in the file it is quarantined.

Status: a Chat Completions / Messages object is ``ok``; a Responses object ``completed`` or
``incomplete`` is ``ok`` (finish_reason ``stop``, ``tool_calls`` when it ends in a function call,
or the incomplete reason such as ``max_output_tokens``), ``failed`` / ``cancelled`` is ``error``,
``in_progress`` / ``queued`` is quarantined (no final usage yet). A batch line with
``status_code`` >= 400 or a non-null ``error``, an Anthropic ``errored`` / ``canceled`` /
``expired`` result, an error body, and a wrapper's non-null ``error`` are requests with status
``error``; ``error_type`` is the provider's error ``code``, else its ``type`` (an application's
``{"type": "RateLimitError"}``, Anthropic's ``rate_limit_error``), else the HTTP status code,
else ``canceled`` / ``expired`` / ``cancelled``.

Wrappers (``WRAPPER_KEYS``): a record whose ``response``, ``body``, ``output``, ``completion`` or
``message`` is a provider object (or an HTTP envelope ``{"status_code", "body"}`` holding one),
or, without any, that has a non-null ``error`` (a failed call). Its other keys:
- a time under one of ``TS_KEYS``; a latency under one of ``LATENCY_KEYS``, whose names carry
  the unit (``latency``, ``duration`` and ``elapsed`` alone do not, and are kept in
  attributes);
- ``request``: the request sent; its ``messages`` (or ``input``, ``prompt``) become
  ``input_text``, its ``model`` is the row's ``model`` (the model asked for), ``user`` a fallback
  ``user_id``, its ``metadata`` is read as below, and all its other parameters are kept in
  ``attributes.request``;
- scalar keys named like a canonical column the provider object does not set
  (``WRAPPER_COLUMNS``: feature, customer_id, user_id, session_id, service, environment,
  app_version, prompt_name, prompt_version, trace_id, parent_id, ttft_ms, latency_ms,
  logged_cost_usd, guardrail, guardrail_action, cache_hit, provider, input_text, output_text);
  ``cost_usd`` is taken as ``logged_cost_usd``;
- ``metadata`` (of the wrapper, the request or the response object): the usual user keys
  (lib/ingest/formats/otlp_common.py ``USER_KEYS``: feature, customer_id, user_id, session_id…)
  fill those columns when the record left them empty; it is kept in attributes too;
- everything else, and the wrapper's own values of columns the provider object sets (its
  ``request_id``, ``model``…), in ``attributes`` under their own names.
A record with a token column (``input_tokens``, ``output_tokens``…) at its top level is a
canonical row, never a wrapper: the detector leaves such files to the canonical format.

Bad values quarantine their record with the line and a reason naming the field and the value
(lib/ingest/values.py reads counts and numbers as every format does): a count that is not a
non-negative integer, usage missing or not an object, a time that is no time, text that is not
valid UTF-8, a line that is not JSON or not an object. Cached tokens above the input are left to
validation (lib/ingest/validate.py), which quarantines the row with its reason.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from lib.ingest.base import BadValue, Chunk, Format
from lib.ingest.formats import otlp_common as oc
from lib.ingest.formats.json_values import array_head, boolean
from lib.ingest.values import INT64_MAX, bad_text, count, number, shown

CHUNK_ROWS = oc.CHUNK_ROWS
WRAPPER_KEYS = ("response", "body", "output", "completion", "message")
TS_KEYS = ("ts", "timestamp", "@timestamp", "time", "created_at")
# Latency keys whose name says the unit -> factor to milliseconds.
LATENCY_KEYS = {"latency_ms": 1.0, "duration_ms": 1.0, "elapsed_ms": 1.0,
                "latency_s": 1000.0, "duration_s": 1000.0, "elapsed_s": 1000.0,
                "latency_seconds": 1000.0, "duration_seconds": 1000.0}
# Canonical columns a wrapper may give (the provider object never sets them), by type.
_TEXT_COLUMNS = ("feature", "customer_id", "user_id", "session_id", "service", "environment",
                 "app_version", "prompt_name", "prompt_version", "trace_id", "parent_id",
                 "guardrail", "guardrail_action", "input_text", "output_text")
_NUMBER_COLUMNS = ("ttft_ms", "logged_cost_usd")
WRAPPER_COLUMNS = (*_TEXT_COLUMNS, *_NUMBER_COLUMNS, "latency_ms", "cache_hit", "provider")
# Columns of a canonical row: a record holding one at its top level is not a wrapper.
_CANONICAL_TOKENS = frozenset({"input_tokens", "output_tokens", "cached_input_tokens",
                               "cache_write_tokens", "reasoning_tokens"})
_REQUEST_CONTENT = ("messages", "input", "prompt")  # a request's first of them: input_text
_METADATA_COLUMNS = ("feature", "customer_id", "user_id", "session_id", "service",
                     "environment", "app_version")

OPENAI_KINDS = frozenset({"chat", "text_completion", "responses", "embeddings", "openai_batch"})
ANTHROPIC_KINDS = frozenset({"message", "anthropic_error", "anthropic_batch"})
_API = {"chat": "chat.completions", "text_completion": "completions", "responses": "responses",
        "embeddings": "embeddings", "message": "messages"}
_OPERATION = {"chat": "chat", "text_completion": "text_completion", "responses": "chat",
              "embeddings": "embeddings", "message": "chat"}
_WHAT = {"message": "an Anthropic message", "anthropic_error": "an Anthropic error",
         "anthropic_batch": "an Anthropic batch result", "embeddings":
         "an OpenAI embeddings response", "error": "a failed call's record"}
_TIMELESS = {"message", "embeddings"}  # provider objects that carry no time of their own
_RESPONSE_ERROR_STATUS = {"failed", "cancelled"}
_RESPONSE_OK_STATUS = {"completed", "incomplete", None}
_TOOL_CALL_ITEMS = ("function_call", "custom_tool_call")  # a tuple: `in` never hashes
# OpenAI usage objects: {column: dotted path}. Chat Completions' prompt_tokens and the Responses
# API's input_tokens both INCLUDE the cached tokens (unlike Anthropic's input_tokens); output
# counts include reasoning. The first two are the required ones (usage_counts).
OPENAI_CHAT_USAGE = {"input_tokens": "prompt_tokens", "output_tokens": "completion_tokens",
                     "cached_input_tokens": "prompt_tokens_details.cached_tokens",
                     "cache_write_tokens": "prompt_tokens_details.cache_write_tokens",
                     "reasoning_tokens": "completion_tokens_details.reasoning_tokens"}
OPENAI_RESPONSES_USAGE = {"input_tokens": "input_tokens", "output_tokens": "output_tokens",
                          "cached_input_tokens": "input_tokens_details.cached_tokens",
                          "cache_write_tokens": "input_tokens_details.cache_write_tokens",
                          "reasoning_tokens": "output_tokens_details.reasoning_tokens"}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


# ---------------------------------------------------------------------------------------------
# What a record is


def kind_of(obj: Any) -> str | None:
    """The kind of provider object ``obj`` is (``chat``, ``text_completion``, ``responses``,
    ``embeddings``, ``message``, ``anthropic_error``, ``openai_batch``, ``anthropic_batch``),
    or None. Decided by the objects' own markers, never by field names alone."""
    if not isinstance(obj, dict):
        return None
    marker = obj.get("object")
    if marker == "chat.completion":
        return "chat"
    if marker == "text_completion":
        return "text_completion"
    if marker == "response" and ("output" in obj or "status" in obj):
        return "responses"
    if marker == "list" and "usage" in obj and "model" in obj and isinstance(obj.get("data"),
                                                                             list):
        return "embeddings"
    kind = obj.get("type")
    if kind == "message" and "usage" in obj:
        return "message"
    if kind == "error" and isinstance(obj.get("error"), dict):
        return "anthropic_error"
    if "custom_id" in obj:
        if "response" in obj and "error" in obj and (obj["response"] is None
                                                    or isinstance(obj["response"], dict)):
            return "openai_batch"
        result = obj.get("result")
        if isinstance(result, dict) and isinstance(result.get("type"), str):
            return "anthropic_batch"
    return None


def _envelope_body(value: Any) -> Any:
    """The body of an HTTP envelope ``{"status_code": …, "body": …}``, else None."""
    if isinstance(value, dict) and "status_code" in value and "body" in value:
        return value["body"]
    return None


def provider_of_record(rec: Any) -> str | None:
    """``openai`` or ``anthropic`` when ``rec`` is, or wraps, that provider's object; None for
    anything else, including a canonical row (token columns at its top level)."""
    if not isinstance(rec, dict) or not _CANONICAL_TOKENS.isdisjoint(rec):
        return None
    kind = kind_of(rec)
    if kind is None:
        for key in WRAPPER_KEYS:
            value = rec.get(key)
            kind = kind_of(value) or kind_of(_envelope_body(value))
            if kind in OPENAI_KINDS or kind in ANTHROPIC_KINDS:
                break
    if kind in OPENAI_KINDS:
        return "openai"
    if kind in ANTHROPIC_KINDS:
        return "anthropic"
    return None


# ---------------------------------------------------------------------------------------------
# Detection

MAX_HEAD_RECORDS = 5
# When no whole record fits in the head (a line longer than 64 KiB): the ids the providers'
# objects start with, as the API and the SDKs' model_dump_json write them.
_FIRST_ID = re.compile(rb'^\s*\[?\s*\{\s*"id"\s*:\s*"(chatcmpl-|cmpl-|resp_|batch_req_|msg_)')
_WRAPPED_ID = re.compile(rb'"(?:response|body|output|completion|message)"\s*:\s*\{\s*"id"\s*:'
                         rb'\s*"(chatcmpl-|cmpl-|resp_|msg_)')


def _head_records(head: bytes) -> list:
    """The first whole records of ``head`` (at most ``MAX_HEAD_RECORDS``): JSON lines, the
    elements at the start of a JSON array, or one whole document."""
    text = head.lstrip().removeprefix(oc.UTF8_BOM).lstrip()
    out: list = []
    if text.startswith(b"["):
        return array_head(text.decode("utf-8", "replace"), MAX_HEAD_RECORDS)
    if oc.opens_document(text, (b"{",)):
        try:
            return [oc.loads(text)]
        except ValueError:
            return []
    for line in text.split(b"\n", MAX_HEAD_RECORDS * 2)[:MAX_HEAD_RECORDS * 2]:
        if not line.strip():
            continue
        try:
            out.append(oc.loads(line))
        except ValueError:
            continue
        if len(out) == MAX_HEAD_RECORDS:
            break
    return out


def detected_provider(head: bytes) -> str | None:
    """The provider whose objects the file starts with (the first record that is or wraps one,
    among the first few); None when none is, or when one of them is a canonical row."""
    text = head.lstrip().removeprefix(oc.UTF8_BOM).lstrip()
    if text[:1] not in (b"{", b"[") or oc.head_has_otlp_envelope(head):
        return None
    records = _head_records(head)
    if not records:  # the first record is longer than the head
        first_line = text.split(b"\n", 1)[0]
        found = _FIRST_ID.match(text) or _WRAPPED_ID.search(first_line)
        if found is None:
            return None
        return "anthropic" if found.group(1) == b"msg_" else "openai"
    providers = []
    for rec in records:
        if isinstance(rec, dict) and not _CANONICAL_TOKENS.isdisjoint(rec):
            return None  # a canonical file (its rows have token columns): not ours
        providers.append(provider_of_record(rec))
    return next((p for p in providers if p), None)


def detect_openai(head: bytes, filename: str) -> bool:
    """A JSON / JSONL file starting with OpenAI response objects, Batch API output lines, or an
    application's records wrapping them."""
    return detected_provider(head) == "openai"


def detect_anthropic(head: bytes, filename: str) -> bool:
    """A JSON / JSONL file starting with Anthropic Messages objects, Message Batches results
    lines, or an application's records wrapping them."""
    return detected_provider(head) == "anthropic"


# ---------------------------------------------------------------------------------------------
# Values


def _text(value: Any) -> str | None:
    """Text for a string column: text as is, any other JSON value as its JSON text."""
    if value is None or isinstance(value, str):
        return value
    return oc.json_text(value)


def _obj(value: Any, field: str) -> dict:
    """A JSON object; an absent one (None) is empty."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise BadValue(f"{field} is not an object: {shown(value)}")


def _unix_seconds_us(value: Any, field: str) -> int | None:
    """A provider's ``created`` / ``created_at`` (unix seconds, by the API's definition) as
    epoch microseconds; None when absent."""
    if value is None:
        return None
    if value.__class__ is int:
        if abs(value) < 1 << 40:
            return value * 1_000_000
    elif value.__class__ is float and abs(value) < 1 << 40:
        return round(value * 1_000_000)
    raise BadValue(f"{field} is not a time in unix seconds: {shown(value)}")


def _ts_us(value: Any, field: str) -> int | None:
    """A wrapper's time: ISO 8601 text (UTC when it has no offset) or an epoch number (or its
    text) in s, ms, µs or ns told apart by size, as validation reads them; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            seconds = float(value) if value.strip().isascii() and "_" not in value else None
        except ValueError:
            seconds = None
        if seconds is None:
            try:
                dt = datetime.fromisoformat(value.strip())
            except ValueError:
                raise BadValue(f"{field} is not a timestamp: {shown(value)}") from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            try:
                return (dt - _EPOCH) // _ONE_US
            except OverflowError:
                raise BadValue(f"{field} is not a timestamp: {shown(value)}") from None
        value = seconds
    if value.__class__ not in (int, float) or value - value != 0:
        raise BadValue(f"{field} is not a timestamp: {shown(value)}")
    size = abs(value)
    for limit, per_us in ((1e11, 1e-6), (1e14, 1e-3), (1e17, 1), (1e19, 1e3)):
        if size < limit:
            if value.__class__ is int:  # exactly
                return value * round(1 / per_us) if per_us < 1 else value // round(per_us)
            return round(value / per_us)
    raise BadValue(f"{field} is not a timestamp: {shown(value)}")


def _error_info(value: Any) -> tuple[str | None, str | None]:
    """(error_type, error_message) of an error as providers and applications write one: an
    OpenAI error object (``code``, ``type``, ``message``), Anthropic's ``{"type": "error",
    "error": {...}}``, a body ``{"error": {...}}``, an application's ``{"type":
    "RateLimitError", "status_code": 429, "message": ...}``, or a class name or message text."""
    if isinstance(value, str):
        text = value.strip()
        if text and " " not in text and len(text) <= 120:
            return oc.norm_error_type(text), None
        return None, value
    if isinstance(value, dict):
        inner = value.get("error")
        if isinstance(inner, dict):
            kind, message = _error_info(inner)
            return kind, message or _text(value.get("message"))
        kind = None
        for key in ("code", "type", "name"):
            candidate = value.get(key)
            if isinstance(candidate, str) and candidate.strip():
                kind = oc.norm_error_type(candidate)
                break
        if kind is None:
            status = value.get("status_code", value.get("status"))
            if isinstance(status, int) and not isinstance(status, bool):
                kind = str(status)
        message = value.get("message")
        if message is None and isinstance(inner, str):
            message = inner
        return kind, _text(message)
    return _text(value), None


def _usage_extras(usage: dict, mapped: set[str], out: dict) -> None:
    """Usage fields not mapped to a column (``mapped``: their dotted paths), as
    ``usage.<path>`` in ``out``, when not null, zero or empty."""
    stack = [("", usage)]
    while stack:
        prefix, node = stack.pop()
        for key, value in node.items():
            path = f"{prefix}{key}"
            if path in mapped or value is None or value == 0 or value == "" or value == {}:
                continue
            if isinstance(value, dict):
                stack.append((path + ".", value))
            else:
                out[f"usage.{path}"] = value


def usage_counts(usage: dict, fields: dict[str, str], required: int = 2
                 ) -> dict[str, int | None]:
    """{column: count} of the dotted usage ``fields`` ({column: path}), each read as a count
    (a bad one raises BadValue naming ``usage.<path>``); the first ``required`` must be
    there."""
    out = {}
    for i, (column, path) in enumerate(fields.items()):
        node: Any = usage
        *parents, leaf = path.split(".")
        for j, part in enumerate(parents):
            node = _obj(node.get(part), "usage." + ".".join(parents[:j + 1]))
        out[column] = count(node.get(leaf), f"usage.{path}")
        if out[column] is None and i < required:
            raise BadValue(f"usage.{path} is missing: the response carries no token count")
    return out


def _usage(obj: dict, required: bool) -> dict | None:
    usage = obj.get("usage")
    if usage is None:
        if required:
            raise BadValue("usage is missing: the response carries no token counts")
        return None
    if not isinstance(usage, dict):
        raise BadValue(f"usage is not an object: {shown(usage)}")
    return usage


def _first_choice(obj: dict) -> dict:
    choices = obj.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def _joined(parts: Any, kind: str, key: str = "text") -> str | None:
    """The text of the ``kind`` parts of a content list, joined; None when there is none."""
    if not isinstance(parts, list):
        return None
    texts = [p[key] for p in parts
             if isinstance(p, dict) and p.get("type") == kind and isinstance(p.get(key), str)]
    return "".join(texts) if texts else None


# ---------------------------------------------------------------------------------------------
# Provider objects -> row fields


def _reasoning_beside(usage: dict, row: dict, total_key: str = "total_tokens") -> None:
    """The output count with the reasoning tokens in it, where the usage proves it left them out
    (xAI's: otlp_common.inclusive_output)."""
    reasoning = row.get("reasoning_tokens")
    # (the total read as the spans' is: one that is no count is none, never a reason to
    # quarantine the call, which total_tokens "abc" was once this check read it)
    row["output_tokens"] = oc.inclusive_output(
        row.get("output_tokens"), reasoning,
        oc.total_of(usage, (total_key,)) if reasoning else None, row.get("input_tokens"))


def _openai_chat(obj: dict, row: dict, attrs: dict, kind: str) -> None:
    usage = _usage(obj, required=True)
    row.update(usage_counts(usage, OPENAI_CHAT_USAGE))
    _reasoning_beside(usage, row)
    _usage_extras(usage, {"total_tokens", *OPENAI_CHAT_USAGE.values()}, attrs)
    row["ts"] = _unix_seconds_us(obj.get("created"), "created")
    choice = _first_choice(obj)
    row["finish_reason"] = _text(choice.get("finish_reason"))
    if kind == "chat":
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        row["output_text"] = content if isinstance(content, str) else _joined(content, "text")
    else:
        row["output_text"] = _text(choice.get("text"))
    choices = obj.get("choices")
    if isinstance(choices, list) and len(choices) > 1:
        attrs["choices"] = len(choices)
    for key in ("service_tier", "system_fingerprint"):
        if obj.get(key) is not None:
            attrs[key] = obj[key]


def _openai_responses(obj: dict, row: dict, attrs: dict) -> None:
    status = obj.get("status")
    if status is not None and not isinstance(status, str):
        raise BadValue(f"status is not a Responses API status: {shown(status)}")
    if status in ("in_progress", "queued"):
        raise BadValue(f"status is {status}: the response was logged before it finished, so it "
                       "has no final usage")
    if status not in _RESPONSE_OK_STATUS and status not in _RESPONSE_ERROR_STATUS:
        raise BadValue(f"status is not a Responses API status: {shown(status)}")
    usage = _usage(obj, required=status not in _RESPONSE_ERROR_STATUS)
    if usage is not None:
        # input_tokens INCLUDES input_tokens_details.cached_tokens (unlike Anthropic's)
        row.update(usage_counts(usage, OPENAI_RESPONSES_USAGE,
                                required=2 if status not in _RESPONSE_ERROR_STATUS else 0))
        _reasoning_beside(usage, row)
        _usage_extras(usage, {"total_tokens", *OPENAI_RESPONSES_USAGE.values()}, attrs)
    row["ts"] = _unix_seconds_us(obj.get("created_at"), "created_at")
    output = obj.get("output")
    items = [i for i in output if isinstance(i, dict)] if isinstance(output, list) else []
    # each web search the response made is billed, beside the tokens
    row["web_searches"] = sum(1 for i in items if i.get("type") == "web_search_call")
    if status in _RESPONSE_ERROR_STATUS:
        kind, message = _error_info(obj.get("error"))
        row["status"], row["error_type"] = "error", kind or status
        row["error_message"] = message
    elif status == "incomplete":
        details = obj.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        row["finish_reason"] = _text(reason) or "incomplete"
    else:
        row["finish_reason"] = "tool_calls" if any(i.get("type") in _TOOL_CALL_ITEMS
                                                   for i in items) else "stop"
    texts = [t for i in items if i.get("type") == "message"
             for t in [_joined(i.get("content"), "output_text")] if t is not None]
    row["output_text"] = "".join(texts) if texts else None
    if obj.get("user") is not None:
        row["user_id"] = _text(obj["user"])
    for key in ("service_tier", "completed_at", "previous_response_id"):
        if obj.get(key) is not None:
            attrs[key] = obj[key]


def _openai_embeddings(obj: dict, row: dict, attrs: dict) -> None:
    usage = _usage(obj, required=True)
    row.update(usage_counts(usage, {"input_tokens": "prompt_tokens"}, required=1))
    row["output_tokens"] = 0
    _usage_extras(usage, {"prompt_tokens", "total_tokens"}, attrs)
    attrs["embeddings"] = len(obj["data"])


def _anthropic_message(obj: dict, row: dict, attrs: dict) -> None:
    usage = _usage(obj, required=True)
    counts = usage_counts(usage, {"uncached": "input_tokens",
                                  "output_tokens": "output_tokens",
                                  "cached_input_tokens": "cache_read_input_tokens",
                                  "cache_write_tokens": "cache_creation_input_tokens",
                                  "reasoning_tokens": "output_tokens_details.thinking_tokens",
                                  # the writes to the one-hour cache (priced higher), of them
                                  "cache_write_1h_tokens":
                                      "cache_creation.ephemeral_1h_input_tokens",
                                  # billed per search, beside the tokens
                                  "web_searches": "server_tool_use.web_search_requests"})
    uncached = counts.pop("uncached")
    row.update(counts)
    if uncached is not None:
        # Anthropic's input_tokens EXCLUDES the cache reads and writes: ours includes them
        total = uncached + (counts["cached_input_tokens"] or 0) + (counts["cache_write_tokens"]
                                                                   or 0)
        if total > INT64_MAX:
            raise BadValue(f"input tokens with the cache reads and writes add up to more than "
                           f"{INT64_MAX}: {total}")
        row["input_tokens"] = total
    _usage_extras(usage, {"input_tokens", "output_tokens", "cache_read_input_tokens",
                          "cache_creation_input_tokens", "output_tokens_details.thinking_tokens",
                          "cache_creation.ephemeral_1h_input_tokens",
                          "server_tool_use.web_search_requests"},
                  attrs)
    # The price context (lib/pricing.py): Anthropic names the tier that served the message in
    # usage.service_tier ("standard", "priority", or "batch" for a Message Batches request).
    tier = usage.get("service_tier")
    if tier == "batch":
        attrs["processing"] = "batch"
    elif isinstance(tier, str) and tier:
        attrs["service_tier"] = tier
    row["finish_reason"] = _text(obj.get("stop_reason"))
    row["output_text"] = _joined(obj.get("content"), "text")
    if obj.get("stop_sequence") is not None:
        attrs["stop_sequence"] = obj["stop_sequence"]


# ---------------------------------------------------------------------------------------------
# Records -> rows


class _Row:
    """One record's row being built: ``row`` (columns), ``attrs`` (attributes), what kind of
    object it came from, and whether its time may be taken from the batch's other lines."""

    __slots__ = ("row", "attrs", "kind", "batch_line")

    def __init__(self) -> None:
        self.row: dict[str, Any] = {}
        self.attrs: dict[str, Any] = {}
        self.kind = "error"
        self.batch_line = False


def _unwrap(rec: dict) -> tuple[str | None, dict | None, dict, dict | None, str | None]:
    """(kind of the provider object or None, the object, the wrapper's other keys, the HTTP
    envelope, the record's own kind when it is a batch line)."""
    kind = kind_of(rec)
    if kind == "openai_batch":
        envelope = rec["response"]
        body = envelope.get("body") if isinstance(envelope, dict) else None
        wrapper = {k: v for k, v in rec.items() if k != "response"}
        return kind_of(body), body if isinstance(body, dict) else None, wrapper, envelope, kind
    if kind == "anthropic_batch":
        result = rec["result"]
        wrapper = {k: v for k, v in rec.items() if k != "result"}
        message = result.get("message") if result["type"] == "succeeded" else None
        return kind_of(message), message, wrapper, None, kind
    if kind is not None:
        # An object without a time of its own (an Anthropic message, an embeddings list) takes
        # the one written beside its fields, as the docs' jq recipe writes it: a bare message
        # with a ts was quarantined saying the record had no ts (review)
        dated = {k: rec[k] for k in TS_KEYS if k in rec} if kind in _TIMELESS else {}
        return kind, rec, dated, None, None
    for key in WRAPPER_KEYS:
        value = rec.get(key)
        inner = kind_of(value)
        if inner is not None:
            return inner, value, {k: v for k, v in rec.items() if k != key}, None, None
        body = _envelope_body(value)
        if body is not None or (isinstance(value, dict) and "status_code" in value):
            return (kind_of(body), body if isinstance(body, dict) else None,
                    {k: v for k, v in rec.items() if k != key}, value, None)
    return None, None, rec, None, None


def _build(rec: Any, default_provider: str) -> _Row:
    """The row of one record (BadValue: the reason it is quarantined)."""
    if not isinstance(rec, dict):
        raise BadValue(f"not an OpenAI or Anthropic response (expected a JSON object): "
                       f"{shown(rec)}")
    kind, obj, wrapper, envelope, line_kind = _unwrap(rec)
    out = _Row()
    row, attrs = out.row, out.attrs
    row["status"] = "ok"
    if kind in _API:
        out.kind = kind
        attrs["api"] = _API[kind]
        row["operation"] = _OPERATION[kind]
        row["provider"] = "anthropic" if kind == "message" else "openai"
        if kind == "chat" or kind == "text_completion":
            _openai_chat(obj, row, attrs, kind)
        elif kind == "responses":
            _openai_responses(obj, row, attrs)
        elif kind == "embeddings":
            _openai_embeddings(obj, row, attrs)
        else:
            _anthropic_message(obj, row, attrs)
        row["model"] = row["response_model"] = _text(obj.get("model")) or None
        row["request_id"] = _text(obj.get("id")) or None
        _metadata(obj.get("metadata"), row, attrs, "response.metadata")
    elif kind == "anthropic_error":
        out.kind = kind
        row["provider"] = "anthropic"
        row["status"] = "error"
        row["error_type"], row["error_message"] = _error_info(obj)
        row["request_id"] = _text(obj.get("request_id")) or None
    if line_kind is not None:
        out.batch_line = line_kind == "openai_batch"
        row.setdefault("provider", "openai" if line_kind == "openai_batch" else "anthropic")
        attrs["batch"] = True
        attrs["processing"] = "batch"  # the price context: Batch API rates (lib/pricing.py)
    if line_kind == "anthropic_batch":
        result = rec["result"]
        if result["type"] == "succeeded" and kind != "message":
            raise BadValue(f"result.message is not an Anthropic message: "
                           f"{shown(result.get('message'))}")
        if result["type"] != "succeeded":
            out.kind = line_kind
            row["status"] = "error"
            if result["type"] == "errored":
                row["error_type"], row["error_message"] = _error_info(result.get("error"))
            row["error_type"] = row.get("error_type") or _text(result["type"])
    if envelope is not None:
        status_code = envelope.get("status_code")
        if status_code is not None and (status_code.__class__ is not int):
            raise BadValue(f"response.status_code is not an HTTP status: {shown(status_code)}")
        attrs["status_code"] = status_code
        if envelope.get("request_id") is not None:
            attrs["http_request_id"] = envelope["request_id"]
        if status_code is not None and status_code >= 400:
            row["status"] = "error"
            error_type, message = _error_info(envelope.get("body"))
            row["error_type"], row["error_message"] = error_type or str(status_code), message
    error = wrapper.get("error")
    if error not in (None, False, "", {}):
        row["status"] = "error"
        error_type, message = _error_info(error)
        row["error_type"] = error_type or row.get("error_type")
        row["error_message"] = message or row.get("error_message")
        attrs["error"] = error
    if kind not in _API and row["status"] != "error":
        if envelope is not None:
            raise BadValue(f"response.body is not an OpenAI response: "
                           f"{shown(envelope.get('body'))}")
        keys = ", ".join(list(rec)[:12])
        raise BadValue("not an OpenAI or Anthropic response: no chat.completion, response, "
                       "embeddings list or message object at the top or under "
                       f"{', '.join(WRAPPER_KEYS)}, and no error (keys: {keys})")
    _wrapper(wrapper, out, default_provider, rec, envelope)
    return out


def _metadata(metadata: Any, row: dict, attrs: dict, name: str) -> None:
    """The usual user keys of a ``metadata`` object fill the columns left empty; the object is
    kept in attributes as ``name``."""
    if not isinstance(metadata, dict) or not metadata:
        return
    attrs[name] = metadata
    oc.user_columns(metadata, row)
    for column in _METADATA_COLUMNS:
        if row.get(column) is None and metadata.get(column) not in (None, ""):
            row[column] = _text(metadata[column])


def _wrapper(wrapper: dict, out: _Row, default_provider: str, rec: dict,
             envelope: dict | None) -> None:
    """Apply the wrapper's keys (the record without the provider object) to the row: its time
    when the object has none, latency, request, canonical columns, metadata, the rest to
    attributes; then the fallbacks of provider, model and request_id."""
    row, attrs = out.row, out.attrs
    consumed = {"error"}
    # the time: the provider object's own, else the wrapper's
    if row.get("ts") is None:
        for key in TS_KEYS:
            if wrapper.get(key) not in (None, ""):
                row["ts"] = _ts_us(wrapper[key], key)
                consumed.add(key)
                break
    for key, factor in LATENCY_KEYS.items():
        if wrapper.get(key) is not None:
            row["latency_ms"] = number(wrapper[key], key) * factor
            consumed.add(key)
            break
    request = wrapper.get("request")
    # The model asked for (design §3: ``model`` is the model requested, ``response_model`` the
    # one that answered, a dated snapshot): the request's, else the wrapper's own ``model``.
    asked = _model_name(request.get("model")) if isinstance(request, dict) else None
    if asked is None:
        asked = _model_name(wrapper.get("model"))
        if asked is not None:
            consumed.add("model")
    if isinstance(request, dict):
        consumed.add("request")
        content = next((k for k in _REQUEST_CONTENT if request.get(k) is not None), None)
        if content is not None:
            row["input_text"] = _text(request[content])
        params = {k: v for k, v in request.items() if k != content}
        if params:
            attrs["request"] = params
        if request.get("user") is not None and row.get("user_id") is None:
            row["user_id"] = _text(request["user"])
        _metadata(request.get("metadata"), row, {}, "")
    for key, value in wrapper.items():
        if key in consumed or value is None:
            continue
        if key in _TEXT_COLUMNS and not isinstance(value, (dict, list)):
            row[key] = _text(value)
        elif key in _NUMBER_COLUMNS:
            row[key] = number(value, key)
        elif key == "cost_usd" and wrapper.get("logged_cost_usd") is None:
            row["logged_cost_usd"] = number(value, key)
        elif key == "cache_hit":
            row["cache_hit"] = boolean(key, value)
        elif key == "provider" and isinstance(value, str) and value.strip():
            row["provider"] = oc.norm_provider(value)
        elif key == "metadata":
            _metadata(value, row, attrs, "metadata")
            if not isinstance(value, dict) or not value:
                attrs[key] = value
        else:
            attrs[key] = value
    if row.get("provider") is None:
        row["provider"] = default_provider
    if asked is not None:
        row["model"] = asked
    elif row.get("model") is None:  # a failed call that names no model
        row["model"] = "unknown"
    if row.get("request_id") is None:
        row["request_id"] = _fallback_id(wrapper, rec, row["provider"], envelope)


def _model_name(value) -> str | None:
    """``value`` if it is a model's name (text, not blank), else None (none given)."""
    return value if isinstance(value, str) and value.strip() else None


def _fallback_id(wrapper: dict, rec: dict, provider: str, envelope: dict | None) -> str:
    """The id of a record whose provider object has none: the batch line's (or wrapper's)
    ``id``, then the HTTP request id the envelope or the error names, else a stable hash of
    the record."""
    error = wrapper.get("error")
    for value in (wrapper.get("id"),
                  envelope.get("request_id") if envelope is not None else None,
                  error.get("request_id") if isinstance(error, dict) else None):
        if isinstance(value, str) and value.strip():
            return value
    return "sha:" + oc.stable_id(provider, json.dumps(rec, sort_keys=True, default=str))


# ---------------------------------------------------------------------------------------------
# Reading records


def _lenient(raw: bytes) -> Any:
    """A line orjson refused (``NaN``, a number past 64 bits, bytes that are not UTF-8), read
    by Python's json; ValueError when it is no JSON at all."""
    return json.loads(raw.decode("utf-8", "surrogateescape"))


def _records(stream: BinaryIO) -> Iterator[tuple[int, Any, str | None, bytes | str, bool]]:
    """(line, record, error, raw, lenient) for each record: JSON lines; or one JSON document (a
    lone ``{`` or a ``[`` opening the file), read whole up to ``otlp_common.MAX_DOCUMENT_BYTES``,
    an array's elements numbered by their position. ``lenient``: read by Python's json (orjson
    refused it), so its text may hold bytes that are not UTF-8."""
    buffered = stream if isinstance(stream, io.BufferedReader) \
        else io.BufferedReader(stream, oc.READ_BYTES)
    if buffered.peek(3).startswith(oc.UTF8_BOM):
        buffered.read(3)
    data = buffered.read(oc.BLOCK_BYTES)
    if data.lstrip().startswith(b"[") or oc.opens_document(data, (b"{",)):
        whole = oc.read_document(data, buffered, "write one response per line (JSONL) instead")
        lenient = False
        try:
            doc = oc.loads(whole)
        except ValueError as exc:
            try:
                doc, lenient = _lenient(whole), True
            except (ValueError, RecursionError):
                yield 1, None, f"not valid JSON: {exc}", whole, False
                return
        for i, item in enumerate(doc if isinstance(doc, list) else [doc], 1):
            yield i, item, None, "", lenient
        return
    for line_no, raw, doc, error in oc.block_documents(oc.json_line_blocks(data, buffered)):
        lenient = False
        if error is not None and isinstance(raw, bytes) and error.startswith("not valid JSON"):
            try:
                doc, error, lenient = _lenient(raw), None, True
            except (ValueError, RecursionError):
                pass
        yield line_no, doc, error, raw, lenient


class _Parser:
    def __init__(self, default_provider: str) -> None:
        self.default_provider = default_provider
        self.batch = oc.Batch()
        self.batch_ts: int | None = None  # the time of the last batch line that had one
        self.waiting: list[tuple[_Row, int, bytes | str]] = []  # batch lines waiting for one

    def record(self, line: int, rec: Any, raw: bytes | str, lenient: bool) -> None:
        try:
            bad = bad_text(rec) if lenient else None
            if bad:
                raise BadValue(bad)
            built = _build(rec, self.default_provider)
        except BadValue as exc:
            self.batch.reject(line, raw or _raw_of(rec), str(exc))
            return
        except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError,
                RecursionError) as exc:
            self.batch.reject(line, raw or _raw_of(rec), f"provider record not usable: {exc}")
            return
        if built.batch_line:
            if built.row.get("ts") is not None:
                self.batch_ts = built.row["ts"]
                waiting, self.waiting = self.waiting, []
                for other, other_line, other_raw in waiting:
                    self.add(other, other_line, other_raw)
            elif self.batch_ts is None:
                self.waiting.append((built, line, raw))
                return
        self.add(built, line, raw)

    def add(self, built: _Row, line: int, raw: bytes | str) -> None:
        row, attrs = built.row, built.attrs
        if row.get("ts") is None:
            if built.batch_line and self.batch_ts is not None:
                row["ts"] = self.batch_ts
                attrs["ts_source"] = "batch"
            else:
                what = _WHAT.get(built.kind, "this record")
                self.batch.reject(line, raw or _raw_of(row), (
                    f"missing ts: {what} carries no time of its own, and the record has none of "
                    f"the keys {', '.join(TS_KEYS)} (docs/provider-logs.md)"))
                return
        try:
            row["attributes"] = oc.json_text(attrs) if attrs else None
        except (TypeError, ValueError, RecursionError) as exc:
            self.batch.reject(line, raw, f"attributes not storable: {exc}")
            return
        self.batch.requests.append(tuple(row.get(c) for c in oc.REQUEST_COLUMNS))
        self.batch.request_lines.append(line)

    def finish(self) -> Chunk:
        """The last chunk: batch lines still waiting for a time found none in the file."""
        for built, line, raw in self.waiting:
            self.batch.reject(line, raw or _raw_of(built.row), (
                "missing ts: a batch line without a body time (a failed request, an embeddings "
                "body) takes the time of the file's other lines, and none of them has one"))
        self.waiting = []
        return self.batch.flush()


def _raw_of(rec: Any) -> str:
    try:
        return oc.json_text(rec)
    except (TypeError, ValueError, RecursionError):
        return ""


def _parse(stream: BinaryIO, default_provider: str, chunk_rows: int) -> Iterator[Chunk]:
    parser = _Parser(default_provider)
    for line, rec, error, raw, lenient in _records(stream):
        if error is not None:
            parser.batch.reject(line, raw, error)
            continue
        parser.record(line, rec, raw, lenient)
        if len(parser.batch) >= chunk_rows:
            yield parser.batch.flush()
    yield parser.finish()


def parse_openai(stream: BinaryIO, filename: str, chunk_rows: int = CHUNK_ROWS
                 ) -> Iterator[Chunk]:
    """Chunks of ``requests`` (with ``_line``) plus rejects; see the module's docstring."""
    return oc.without_cyclic_gc(_parse(stream, "openai", chunk_rows))


def parse_anthropic(stream: BinaryIO, filename: str, chunk_rows: int = CHUNK_ROWS
                    ) -> Iterator[Chunk]:
    """Chunks of ``requests`` (with ``_line``) plus rejects; see the module's docstring."""
    return oc.without_cyclic_gc(_parse(stream, "anthropic", chunk_rows))


# After OTLP (15-30), Langfuse (25), promptfoo and Inspect (40); before the canonical formats (90),
# which would otherwise take a wrapper with a top-level request_id as a canonical row.
PRIORITY = 45

FORMATS = [
    Format(name="openai", detect=detect_openai, parse=parse_openai, priority=PRIORITY,
           doc="OpenAI responses as logged: Chat Completions, Responses, embeddings, Batch API "
               "output lines; bare or in an app's wrapper record; JSONL/JSON"),
    Format(name="anthropic", detect=detect_anthropic, parse=parse_anthropic, priority=PRIORITY,
           doc="Anthropic Messages objects as logged and Message Batches results lines; bare or "
               "in an app's wrapper record (with a time); JSONL/JSON"),
]
