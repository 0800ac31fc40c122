"""OTLP JSON traces with the OpenTelemetry GenAI semantic conventions (format ``otlp-json``).

Reads what the Collector's file exporter writes (one ExportTraceServiceRequest per line; the
envelope, both JSON encodings, ids and resource attributes are handled in ``otlp_common``).

Model calls: a span whose ``gen_ai.operation.name`` is chat, text_completion, generate_content or
embeddings (or that has no operation but names a model or reports usage) becomes a ``requests``
row. Agent, tool, retrieval and workflow spans (``invoke_agent``, ``execute_tool``...) and spans
without ``gen_ai.*`` attributes go to ``spans`` only: an ``invoke_agent`` span may carry the
agent's summed usage, and counting it would double-count its model calls.

Attribute names, current first, then the older ones still emitted by instrumentations in use:

| column              | attributes                                                              |
|---------------------|-------------------------------------------------------------------------|
| provider            | gen_ai.provider.name, gen_ai.system                                     |
| model               | gen_ai.request.model (else the response model)                          |
| response_model      | gen_ai.response.model                                                   |
| input_tokens        | gen_ai.usage.input_tokens, gen_ai.usage.prompt_tokens                   |
| output_tokens       | gen_ai.usage.output_tokens, gen_ai.usage.completion_tokens              |
| cached_input_tokens | gen_ai.usage.cache_read.input_tokens, gen_ai.usage.cache_read_input_tokens |
| cache_write_tokens  | gen_ai.usage.cache_creation.input_tokens, ..._creation_input_tokens     |
| reasoning_tokens    | gen_ai.usage.reasoning.output_tokens, gen_ai.usage.reasoning_tokens     |
| ttft_ms             | gen_ai.response.time_to_first_chunk (seconds) x 1000                    |
| finish_reason       | gen_ai.response.finish_reasons[0], else the first finish_reason inside  |
|                     | gen_ai.output.messages (streamed calls record it only there)            |
| error_type          | error.type, else the exception event's exception.type                   |
| input/output_text   | gen_ai.input.messages / gen_ai.output.messages (JSON text as logged),   |
|                     | gen_ai.prompt / gen_ai.completion (older)                               |

What opentelemetry-instrumentation-openai-v2 2.4b0 (with opentelemetry-util-genai 1.1b0) emits for
chat completions: gen_ai.operation.name, gen_ai.request.model, gen_ai.provider.name,
server.address/port, gen_ai.request.temperature/max_tokens, gen_ai.response.model/id/
finish_reasons (not for streams), gen_ai.usage.input_tokens/output_tokens (no cache or reasoning
counts), openai.response.service_tier/system_fingerprint, error.type as "<class '...'>" on errors,
and with content capture gen_ai.input.messages/gen_ai.output.messages. Embeddings: operation
embeddings, gen_ai.usage.input_tokens, gen_ai.embeddings.dimension.count.

Token semantics: the GenAI conventions count cached tokens inside ``input_tokens`` (and
reasoning inside ``output_tokens``), as design §3 does, so no addition is made, except when the
cached parts exceed the input count, which proves a source copied Anthropic's raw usage
(see ``otlp_common.inclusive_input``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from lib.ingest.base import Chunk, Format
from lib.ingest.formats import otlp_common as oc

MODEL_OPERATIONS = {"chat", "text_completion", "generate_content", "embeddings", "completion",
                    "responses"}
SPAN_KIND_BY_OPERATION = {
    "invoke_agent": "agent", "create_agent": "agent", "execute_tool": "tool",
    "retrieval": "retrieval", "retrieve": "retrieval", "invoke_workflow": "chain",
}

_NAMES = {  # column -> attribute names, current first; all consumed (not copied to attributes)
    "provider": ("gen_ai.provider.name", "gen_ai.system"),
    "model": ("gen_ai.request.model",),
    "response_model": ("gen_ai.response.model",),
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "cached": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"),
    "cache_write": ("gen_ai.usage.cache_creation.input_tokens",
                    "gen_ai.usage.cache_creation_input_tokens"),
    "reasoning": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens"),
    "input_text": ("gen_ai.input.messages", "gen_ai.prompt"),
    "output_text": ("gen_ai.output.messages", "gen_ai.completion"),
}
CONSUMED = frozenset(
    {k for keys in _NAMES.values() for k in keys}
    | {"gen_ai.operation.name", "gen_ai.response.time_to_first_chunk",
       "gen_ai.response.finish_reasons", "error.type", "gen_ai.usage.total_tokens",
       "llm.usage.total_tokens"}
    | oc.USER_KEY_SET
)


as_int, as_text = oc.as_int, oc.as_text


def _finish_from_messages(output_messages: str) -> str | None:
    """The first finish_reason in gen_ai.output.messages (streamed calls record it only there)."""
    if not output_messages.startswith("["):
        return None
    try:
        messages = oc.loads(output_messages)
    except ValueError:
        return None
    for message in messages:
        if isinstance(message, dict) and message.get("finish_reason"):
            return str(message["finish_reason"])
    return None


def map_span(span: oc.Span) -> tuple[str, dict[str, Any] | None, frozenset[str]]:
    """GenAI conventions: (span kind, request columns or None, consumed attribute keys)."""
    a = span.attrs
    get = a.get
    operation = get("gen_ai.operation.name")
    if operation is not None:
        if operation not in MODEL_OPERATIONS:
            return SPAN_KIND_BY_OPERATION.get(operation, "other"), None, CONSUMED
    elif not ("gen_ai.request.model" in a or "gen_ai.usage.input_tokens" in a
              or "gen_ai.usage.prompt_tokens" in a):
        return "other", None, CONSUMED
    cached = get("gen_ai.usage.cache_read.input_tokens")
    if cached is None:
        cached = get("gen_ai.usage.cache_read_input_tokens")
    cache_write = get("gen_ai.usage.cache_creation.input_tokens")
    if cache_write is None:
        cache_write = get("gen_ai.usage.cache_creation_input_tokens")
    input_tokens = get("gen_ai.usage.input_tokens")
    if input_tokens is None:
        input_tokens = get("gen_ai.usage.prompt_tokens")
    output_tokens = get("gen_ai.usage.output_tokens")
    if output_tokens is None:
        output_tokens = get("gen_ai.usage.completion_tokens")
    reasoning = get("gen_ai.usage.reasoning.output_tokens")
    if reasoning is None:
        reasoning = get("gen_ai.usage.reasoning_tokens")
    # ints and strings, the usual types, skip the converters (which return them unchanged)
    if input_tokens is not None:
        cached = (cached if cached.__class__ is int else as_int(cached)) or 0
        cache_write = (cache_write if cache_write.__class__ is int else as_int(cache_write)) or 0
        if input_tokens.__class__ is not int:
            input_tokens = as_int(input_tokens)
        input_tokens = oc.inclusive_input(input_tokens, cached, cache_write)
    else:
        cached, cache_write = as_int(cached), as_int(cache_write)
    if output_tokens is not None:
        if output_tokens.__class__ is not int:
            output_tokens = as_int(output_tokens)
        reasoning = (reasoning if reasoning.__class__ is int else as_int(reasoning)) or 0
    else:
        reasoning = as_int(reasoning)
    response_model = get("gen_ai.response.model")
    if response_model.__class__ is not str:
        response_model = as_text(response_model)
    finish = get("gen_ai.response.finish_reasons")
    if isinstance(finish, list):  # the first non-empty reason
        reasons, finish = finish, None
        for reason in reasons:
            if reason:
                finish = reason
                break
    output_text = get("gen_ai.output.messages") or get("gen_ai.completion")
    if output_text.__class__ is not str:
        output_text = as_text(output_text)
    if finish is None and output_text:
        finish = _finish_from_messages(output_text)
    ttft_s = get("gen_ai.response.time_to_first_chunk")
    error_type = get("error.type")
    model = get("gen_ai.request.model") or response_model
    input_text = get("gen_ai.input.messages") or get("gen_ai.prompt")
    request = {
        "provider": oc.norm_provider(get("gen_ai.provider.name") or get("gen_ai.system")),
        "model": model if model.__class__ is str else as_text(model),
        "response_model": response_model,
        "operation": (operation if operation.__class__ is str else as_text(operation))
        or "chat",
        "input_tokens": input_tokens,
        "cached_input_tokens": cached,
        "cache_write_tokens": cache_write,
        "output_tokens": output_tokens,
        "reasoning_tokens": reasoning,
        "ttft_ms": oc.as_float(ttft_s) * 1000.0 if ttft_s is not None else None,
        "finish_reason": finish if finish.__class__ is str else as_text(finish),
        "error_type": oc.norm_error_type(error_type) if error_type is not None else None,
        "input_text": input_text if input_text.__class__ is str else as_text(input_text),
        "output_text": output_text,
    }
    oc.user_columns(a, request)
    return "llm", request, CONSUMED


def choose_mapper(attrs: dict[str, Any]) -> str:
    """Per span: OpenInference spans keep their own mapping even inside a GenAI file."""
    return "openinference" if "openinference.span.kind" in attrs else "genai"


def mappers() -> dict[str, oc.SpanMapper]:
    from lib.ingest.formats import openinference  # the two modules map each other's spans

    return {"genai": map_span, "openinference": openinference.map_span}


def detect(head: bytes, filename: str) -> bool:
    return oc.head_has_otlp_envelope(head)


def parse(stream: BinaryIO, filename: str) -> Iterator[Chunk]:
    """Yield Chunks of ``requests``, ``spans`` and ``evals`` (each with ``_line``) plus rejects."""
    return oc.parse_otlp(stream, filename, mappers(), choose_mapper)


FORMAT = Format(
    name="otlp-json",
    detect=detect,
    parse=parse,
    priority=30,  # after openinference (20), which claims OTLP files with its own attributes
    doc="OTLP JSON traces (Collector file exporter) with OpenTelemetry GenAI conventions",
)
