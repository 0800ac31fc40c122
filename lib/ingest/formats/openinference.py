"""OpenInference spans (Arize Phoenix conventions) in the OTLP JSON envelope (``openinference``).

Same envelope as ``otlp-json`` (see ``otlp_common``); detected by ``openinference.span.kind``
among the attributes of the file's first bytes, and asked before ``otlp-json``.

``openinference.span.kind`` = LLM is a model call -> ``requests`` (and a ``spans`` row of kind
``llm``). EMBEDDING is a model call too (it is billed per token), so it is also a request, with
operation ``embeddings``. CHAIN, TOOL, RETRIEVER, RERANKER, AGENT, GUARDRAIL, EVALUATOR... go to
``spans`` only.

| column              | attribute                                                             |
|---------------------|-----------------------------------------------------------------------|
| model               | llm.invocation_parameters (JSON text) "model", else llm.model_name     |
| response_model      | llm.model_name (the model that answered, e.g. a dated snapshot)         |
| provider            | llm.provider, else llm.system                                         |
| input_tokens        | llm.token_count.prompt (includes cache reads, as OpenAI counts them)   |
| cached_input_tokens | llm.token_count.prompt_details.cache_read                             |
| cache_write_tokens  | llm.token_count.prompt_details.cache_write                            |
| output_tokens       | llm.token_count.completion (includes reasoning; xAI's leaves it out,  |
|                     | told by llm.token_count.total: then it is added, and said)            |
| reasoning_tokens    | llm.token_count.completion_details.reasoning                          |
| logged_cost_usd     | llm.cost.total (USD), else llm.cost.prompt + llm.cost.completion      |
| finish_reason       | llm.finish_reason; a Responses API object's outcome (below)           |
| web_searches        | a Responses API object's web_search_call items (below)                |
| ttft_ms             | the "First Token Stream Event" event's time - span start              |
| input/output_text   | input.value / output.value; NULL when hidden (``__REDACTED__``);      |
|                     | NULL output for an EMBEDDING (its output.value is the vectors)        |
| session/user        | session.id, user.id; and canonical names inside ``metadata`` (JSON)    |
| prompt_version      | llm.prompt_template.version                                           |

Releases known to count cached tokens twice: openinference-instrumentation-google-genai 0.1.12
to 0.1.15 (its instrumentation scope names the release) added the cache reads to a prompt count
that already held them; they are taken out once (``CACHED_TWICE``), and the report says so.

Hidden content: with ``OPENINFERENCE_HIDE_INPUTS`` / ``OPENINFERENCE_HIDE_OUTPUTS`` (or
``TraceConfig(hide_inputs=...)``) the instrumentation writes the placeholder ``__REDACTED__``
(openinference.instrumentation.config.REDACTED_VALUE) as input.value / output.value: it is stored
as NULL, content not captured, never as the prompt or the answer (text drift would measure a
constant 12-character string).

Responses API calls (``client.responses.create``): OpenInference sets no ``llm.finish_reason`` and
leaves the span's status OK when the API answered HTTP 200 with ``"status": "failed"``; the
outcome is only in output.value, the response object. When output.value is one (``"object":
"response"``), its status, error type and finish reason are read by the ``openai`` provider-log
format's own code (lib/ingest/formats/provider_native.py), so one response gives the same row
either way: ``failed`` / ``cancelled`` is an error whose error_type is ``error.code`` (else its
type, else the status); ``incomplete`` has finish_reason ``incomplete_details.reason``
(``max_output_tokens``…); ``completed`` has ``stop``, or ``tool_calls`` when it ends in a
function call; each ``web_search_call`` in its output is a web search, billed per search
(``web_searches``), which OpenInference records nowhere else. An object that format quarantines
(``queued`` / ``in_progress``: no outcome yet; a bad value) is left as the span says. A span
whose own status is ERROR stays an error and keeps its own error type (the exception's, the
SDK's HTTP status) where it has one. Token counts stay llm.token_count.* (the same usage): a
failed call with none is free, one with usage is priced on it, as in the provider-log format.
A hidden output (``__REDACTED__``) and a streamed call that did not complete (OpenInference
keeps only a ``response.completed`` event's object) carry no object: only the span's status
tells, and OpenInference leaves it OK.

The flattened message lists (``llm.input_messages.*``, ``llm.output_messages.*``) repeat
input.value / output.value and embedding vectors are large: they are not copied to
``attributes``. ``metadata`` and ``llm.invocation_parameters`` are stored there as JSON objects.

Bad values: a token count that is not an integer in 0 .. 2^63-1, or a cost that is not a finite
number, quarantines the span naming the attribute ("span not usable: llm.token_count.prompt is not
an integer: abc"), as in ``otlp-json``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from lib.ingest.base import BadValue, Chunk, Format
from lib.ingest.formats import otlp
from lib.ingest.formats import otlp_common as oc
from lib.ingest.formats import provider_native as pn
from lib.ingest.nesting import finish_spans
from lib.ingest.values import count, number

SPAN_KIND = {"AGENT": "agent", "TOOL": "tool", "RETRIEVER": "retrieval",
             "RERANKER": "retrieval", "CHAIN": "chain", "LLM": "llm", "EMBEDDING": "llm"}
FIRST_TOKEN_EVENT = "First Token Stream Event"
PROMPT, COMPLETION = "llm.token_count.prompt", "llm.token_count.completion"
CACHE_READ = "llm.token_count.prompt_details.cache_read"
CACHE_WRITE = "llm.token_count.prompt_details.cache_write"
REASONING = "llm.token_count.completion_details.reasoning"
TOTAL = "llm.token_count.total"
# Instrumentation releases whose llm.token_count.prompt counted the cached tokens twice:
# openinference-instrumentation-google-genai 0.1.12 to 0.1.15 added cached_content_token_count
# to Gemini's prompt_token_count, which already holds it (Arize-ai/openinference#2779, fixed by
# #3016 in 0.1.16). Their prompt count is then at least twice the cache reads; the cache reads
# are taken out of it once, else every cached token was priced twice (10,000 prompt tokens,
# 8,000 cached, stored as 18,000).
CACHED_TWICE = frozenset(("openinference.instrumentation.google_genai", version)
                         for version in ("0.1.12", "0.1.13", "0.1.14", "0.1.15"))

CONSUMED = frozenset({
    "openinference.span.kind", "llm.model_name", "llm.provider", "llm.system",
    "llm.token_count.prompt", "llm.token_count.completion", "llm.token_count.total",
    "llm.token_count.prompt_details.cache_read", "llm.token_count.prompt_details.cache_write",
    "llm.token_count.completion_details.reasoning", "llm.cost.total", "llm.finish_reason",
    "input.value", "output.value", "input.mime_type", "output.mime_type",
    "embedding.model_name",
}) | oc.USER_KEY_SET
DROPPED_PREFIXES = ("llm.input_messages.", "llm.output_messages.", "embedding.embeddings.")
# What OpenInference writes in place of a hidden value (openinference.instrumentation.config's
# REDACTED_VALUE; not imported: reading files needs no instrumentation package installed).
REDACTED = "__REDACTED__"
# Canonical columns a user may put in OpenInference ``metadata`` under their own names.
METADATA_COLUMNS = ("feature", "customer_id", "user_id", "session_id", "prompt_name",
                    "prompt_version", "app_version", "environment", "service")


def _json_object(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.startswith("{"):
        try:
            parsed = oc.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def _logged_cost(a: dict) -> float | None:
    """The call's cost as logged (USD): ``llm.cost.total``, else the sum of ``llm.cost.prompt``
    and ``llm.cost.completion`` when both are there (instrumentations that price a call write
    the parts; the total alone was read, so theirs had none, where Langfuse sums them); one
    part alone is no total: None. The parts stay in attributes."""
    total = number(a.get("llm.cost.total"), "llm.cost.total")
    if total is not None:
        return total
    prompt = number(a.get("llm.cost.prompt"), "llm.cost.prompt")
    completion = number(a.get("llm.cost.completion"), "llm.cost.completion")
    return None if prompt is None or completion is None else prompt + completion


def _captured(value: Any) -> str | None:
    """Text of input.value / output.value; None when the instrumentation hid it."""
    text = oc.as_text(value)
    return None if text == REDACTED else text


def _responses_outcome(output: str | None) -> dict[str, Any] | None:
    """The columns the ``openai`` provider-log format reads from the Responses API object in
    output.value (provider_native._openai_responses: status, error_type, finish_reason...), so
    both paths agree on the same response; None when output.value is no Responses object, or
    one that format would quarantine (queued or in_progress, no outcome yet; a bad value)."""
    if output is None or not output.startswith("{") or '"response"' not in output:
        return None
    obj = _json_object(output)
    if pn.kind_of(obj) != "responses":
        return None
    row: dict[str, Any] = {}
    try:
        pn._openai_responses(obj, row, {})
    except BadValue:
        return None
    return row


def map_span(span: oc.Span) -> tuple[str, dict[str, Any] | None, frozenset[str] | set[str]]:
    """OpenInference: (span kind, request columns or None, consumed attribute keys)."""
    a = span.attrs
    kind = str(a.get("openinference.span.kind") or "").upper()
    if kind not in ("LLM", "EMBEDDING"):
        return SPAN_KIND.get(kind, "other"), None, CONSUMED
    params = _json_object(a.get("llm.invocation_parameters")) \
        or _json_object(a.get("embedding.invocation_parameters")) or {}
    if "llm.invocation_parameters" in a and params:
        a["llm.invocation_parameters"] = params  # stored as an object, not as escaped text
    metadata = _json_object(a.get("metadata"))
    if metadata is not None:
        a["metadata"] = metadata
    # counts: ints in 0 .. 2^63-1, else the span is rejected naming the attribute (values.count)
    cached = count(a.get(CACHE_READ), CACHE_READ)
    cache_write = count(a.get(CACHE_WRITE), CACHE_WRITE)
    logged = count(a.get(PROMPT), PROMPT)
    twice = bool(cached) and span.scope in CACHED_TWICE and logged is not None \
        and logged >= 2 * cached
    if twice:
        logged -= cached
    input_tokens = oc.inclusive_input(logged, cached, cache_write)
    output_tokens = count(a.get(COMPLETION), COMPLETION)
    reasoning = count(a.get(REASONING), REASONING)
    completion = output_tokens
    output_tokens = oc.inclusive_output(
        output_tokens, reasoning, oc.total_of(a, (TOTAL,)) if reasoning else None, logged)
    if input_tokens is not None:
        cached = cached or 0
        cache_write = cache_write or 0
    if output_tokens is not None:
        reasoning = reasoning or 0
    response_model = a.get("llm.model_name")
    if response_model is None or response_model == "":
        response_model = a.get("embedding.model_name")
    response_model = oc.as_text(response_model)
    provider = a.get("llm.provider")
    if provider is None or provider == "":
        provider = a.get("llm.system")
    # An embedding's output.value is the response with its vectors (openinference-instrumentation
    # -openai: 640 KB of JSON for one call embedding 20 texts), no response text: it was stored
    # as one, shown on the Request page and measured by the response length's drift. Its input
    # (the texts embedded) is kept, as the other formats keep an embedding's.
    output_text = _captured(a.get("output.value")) if kind == "LLM" else None
    finish_reason = oc.as_text(a.get("llm.finish_reason"))
    error_type = error_message = web_searches = None
    outcome = _responses_outcome(output_text) if kind == "LLM" else None
    if outcome is not None:
        error_type, finish_reason = outcome.get("error_type"), outcome.get("finish_reason")
        error_message, web_searches = outcome.get("error_message"), outcome.get("web_searches")
        if error_type is not None and span.error:
            # the span's own error wins: its exception's type, else the SDK's HTTP status
            error_type = span.exception_type() or oc.http_error_code(span.status_message) \
                or error_type
    ttft_ms = None
    for event in span.events:
        if event.get("name") == FIRST_TOKEN_EVENT:
            ttft_ms = span.event_ms(event)
            break
    request = {
        "provider": oc.norm_provider(provider),
        "model": oc.as_text(params.get("model")) or response_model,
        "response_model": response_model,
        "operation": "embeddings" if kind == "EMBEDDING" else "chat",
        "input_tokens": input_tokens,
        "cached_input_tokens": cached,
        "cache_write_tokens": cache_write,
        "output_tokens": output_tokens,
        "reasoning_tokens": reasoning,
        "logged_cost_usd": _logged_cost(a),
        "ttft_ms": ttft_ms,
        "finish_reason": finish_reason,
        "error_type": error_type,
        "error_message": error_message,
        "input_text": _captured(a.get("input.value")),
        "output_text": output_text,
        "web_searches": web_searches,
    }
    oc.user_columns(a, request)
    if metadata:
        for column in METADATA_COLUMNS:
            if request.get(column) is None and metadata.get(column) is not None:
                request[column] = oc.as_text(metadata[column])
        oc.user_columns(metadata, request)
    consumed = CONSUMED | {k for k in a if k.startswith(DROPPED_PREFIXES)}
    if input_tokens != logged:
        request[oc.CACHE_ADDED] = True
    elif twice:
        request[oc.CACHE_TAKEN_OUT] = True
    if output_tokens != completion:
        request[oc.REASONING_ADDED] = True
    return "llm", request, consumed


def detect(head: bytes, filename: str) -> bool:
    return oc.head_has_otlp_envelope(head) and b'"openinference.span.kind"' in head


def parse(stream: BinaryIO, filename: str) -> Iterator[Chunk]:
    """Yield Chunks of ``requests``, ``spans`` and ``evals`` (each with ``_line``) plus rejects.

    GenAI-convention spans in the same file are read with the ``otlp-json`` mapping.
    """
    return oc.parse_otlp(stream, filename, otlp.mappers(), otlp.choose_mapper)


FORMAT = Format(
    name="openinference",
    detect=detect,
    parse=parse,
    priority=20,
    doc="OpenInference (Arize Phoenix) spans in OTLP JSON",
    finish=finish_spans,
    appendable=oc.lines_not_document,
)
