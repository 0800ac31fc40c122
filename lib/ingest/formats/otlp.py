"""OTLP JSON traces with the OpenTelemetry GenAI semantic conventions (format ``otlp-json``).

Reads what the Collector's file exporter writes (one ExportTraceServiceRequest per line; the
envelope, both JSON encodings, ids and resource attributes are handled in ``otlp_common``).

Model calls: a span whose ``gen_ai.operation.name`` is chat, text_completion, generate_content or
embeddings (or that has no operation but names a model or reports usage) becomes a ``requests``
row. Agent, tool, retrieval and workflow spans (``invoke_agent``, ``execute_tool``...) and spans
without ``gen_ai.*`` attributes go to ``spans`` only: an ``invoke_agent`` span may carry the
agent's summed usage, and counting it would double-count its model calls. Spans of another
convention in the same file (OpenInference's, the Langfuse SDK's) are read with that convention's
mapping (``CONVENTIONS``).

Attribute names, current first, then the older ones still emitted by instrumentations in use:

| column              | attributes                                                              |
|---------------------|-------------------------------------------------------------------------|
| provider            | gen_ai.provider.name, gen_ai.system (the Vercel AI SDK's provider ids,  |
|                     | openai.responses, google.vertex.chat..., as the provider: openai...)    |
| model               | gen_ai.request.model (else the response model)                          |
| response_model      | gen_ai.response.model                                                   |
| input_tokens        | gen_ai.usage.input_tokens, gen_ai.usage.prompt_tokens                   |
| output_tokens       | gen_ai.usage.output_tokens, gen_ai.usage.completion_tokens              |
| cached_input_tokens | gen_ai.usage.cache_read.input_tokens, gen_ai.usage.cache_read_input_tokens |
|                     | (Vercel AI SDK: ai.usage.inputTokenDetails.cacheReadTokens,             |
|                     | ai.usage.cachedInputTokens)                                             |
| cache_write_tokens  | gen_ai.usage.cache_creation.input_tokens, ..._creation_input_tokens     |
|                     | (Vercel AI SDK: ai.usage.inputTokenDetails.cacheWriteTokens)            |
| reasoning_tokens    | gen_ai.usage.reasoning.output_tokens, gen_ai.usage.reasoning_tokens,    |
|                     | llm.usage.reasoning_tokens (Vercel AI SDK: ai.usage.outputTokenDetails. |
|                     | reasoningTokens, ai.usage.reasoningTokens)                              |
| operation           | gen_ai.operation.name, else llm.request.type (chat; completion ->       |
|                     | text_completion; embedding -> embeddings; another value as it is)       |
| ttft_ms             | gen_ai.response.time_to_first_chunk (seconds) x 1000                    |
| finish_reason       | gen_ai.response.finish_reasons[0], else the first finish_reason inside  |
|                     | gen_ai.output.messages (streamed calls record it only there), else the  |
|                     | first gen_ai.completion.N.finish_reason                                 |
| error_type          | error.type, else the exception event's exception.type, else on an      |
|                     | error span the HTTP status of a status message "Error code: 429 - ..."  |
|                     | ("429", as the langfuse format reads an SDK's API error)                |
| input/output_text   | gen_ai.input.messages / gen_ai.output.messages (JSON text as logged),   |
|                     | gen_ai.prompt / gen_ai.completion (older), else the flattened           |
|                     | gen_ai.prompt.N.* / gen_ai.completion.N.* (JSON text of the list of     |
|                     | messages; gen_ai.completion.0.tool_calls.0.name nests as                |
|                     | [{"tool_calls": [{"name": ...}]}], indices in numeric order)            |

Traceloop OpenLLMetry (opentelemetry-instrumentation-openai/-anthropic) up to 0.47 writes the older
names: no gen_ai.operation.name but llm.request.type (Anthropic Messages calls are "completion" in a
span named anthropic.chat: read as chat), reasoning as llm.usage.reasoning_tokens, the messages
flattened one attribute a field; 0.40 records a failed call by the span status only ("Error code:
429 - {...}"). These are read only when the current names are absent (a few dict lookups; the
attributes are scanned only when a gen_ai.prompt.0.* or gen_ai.completion.0.* key is present), and
the keys read are consumed (not copied to ``attributes``). Its 0.62 writes the current names
(tests/ingest/test_traceloop.py).

What opentelemetry-instrumentation-openai-v2 2.4b0 (with opentelemetry-util-genai 1.1b0) emits for
chat completions: gen_ai.operation.name, gen_ai.request.model, gen_ai.provider.name,
server.address/port, gen_ai.request.temperature/max_tokens, gen_ai.response.model/id (streams
too: lib/ingest/nesting.py tells two calls apart by the id), gen_ai.response.finish_reasons (not
for streams), gen_ai.usage.input_tokens/output_tokens (no cache or reasoning counts),
openai.response.service_tier/system_fingerprint, error.type as "<class '...'>" on errors,
and with content capture gen_ai.input.messages/gen_ai.output.messages. Embeddings: operation
embeddings, gen_ai.usage.input_tokens, gen_ai.embeddings.dimension.count.

The Vercel AI SDK's telemetry (``experimental_telemetry``; a span with ``ai.operationId``) writes
gen_ai.usage.input_tokens / output_tokens on its step spans (``ai.generateText.doGenerate``...)
as its inputTokens.total / outputTokens.total (ai 6: cache reads and writes included, reasoning
included), and their split only under its own names (ai.usage.inputTokenDetails.*,
ai.usage.outputTokenDetails.reasoningTokens): read when the GenAI names are absent, so cache
reads are priced as cache reads, not as plain input. AI SDK 5 (no inputTokenDetails) gives the
provider's own input count there, which for Anthropic and Bedrock leaves the cache reads
(ai.usage.cachedInputTokens) and writes out: they are added (``_ai_sdk_outside``); for Gemini
its output count leaves the reasoning tokens out: they are added too
(``_ai_sdk_thinking_outside``). What its generateText spans give of these only inside
ai.response.providerMetadata (Anthropic's raw usage, Gemini's usageMetadata) is read there.

Token semantics: the GenAI conventions count cached tokens inside ``input_tokens`` (and
reasoning inside ``output_tokens``), as design §3 does, so no addition is made, except when the
cached parts exceed the input count, which proves a source copied Anthropic's raw usage
(see ``otlp_common.inclusive_input``); and reasoning tokens above the output count, or a total
(gen_ai.usage.total_tokens, llm.usage.total_tokens) of input + output + reasoning, prove a count
without them (xAI's completion_tokens): they are added (``otlp_common.inclusive_output``).

Bad values: a token count must be an integer in 0 .. 2^63-1 (an int, 12.0, or int64's decimal
text "123"); any other value (1.5, "abc", true, 1e400, -1, 10**30) quarantines the span with a
reason naming the attribute ("span not usable: gen_ai.usage.input_tokens is not an integer:
1e400"); so does a time to first chunk that is not a finite number. Nothing is rounded or dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from lib.ingest import values
from lib.ingest.base import Chunk, Format
from lib.ingest.formats import otlp_common as oc
from lib.ingest.nesting import finish_spans

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
    "cached": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
               "ai.usage.inputTokenDetails.cacheReadTokens", "ai.usage.cachedInputTokens"),
    "cache_write": ("gen_ai.usage.cache_creation.input_tokens",
                    "gen_ai.usage.cache_creation_input_tokens",
                    "ai.usage.inputTokenDetails.cacheWriteTokens"),
    "reasoning": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                  "llm.usage.reasoning_tokens", "ai.usage.outputTokenDetails.reasoningTokens",
                  "ai.usage.reasoningTokens"),
    "input_text": ("gen_ai.input.messages", "gen_ai.prompt"),
    "output_text": ("gen_ai.output.messages", "gen_ai.completion"),
}
CONSUMED = frozenset(
    {k for keys in _NAMES.values() for k in keys}
    | {"gen_ai.operation.name", "gen_ai.response.time_to_first_chunk",
       "gen_ai.response.finish_reasons", "error.type", "gen_ai.usage.total_tokens",
       "llm.usage.total_tokens", "llm.request.type"}
    | oc.USER_KEY_SET
)


as_text = oc.as_text
_MAX = values.INT64_MAX

# Traceloop OpenLLMetry (<= 0.47) names the operation llm.request.type; its GenAI name. Another
# value (rerank...) is kept as it is; "unknown" says nothing (the default, chat).
REQUEST_TYPES = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings",
                 "unknown": None}

# Traceloop OpenLLMetry (<= 0.47) writes the messages flattened, one attribute a field:
# gen_ai.prompt.0.role, gen_ai.completion.0.tool_calls.0.name... A span has one of these when it
# has any (indices count from 0; gen_ai.prompt.0.user is the legacy completions API's prompt).
_PROMPT, _COMPLETION = "gen_ai.prompt.", "gen_ai.completion."
_PROMPT_MARKERS = ("gen_ai.prompt.0.role", "gen_ai.prompt.0.content", "gen_ai.prompt.0.user")
_COMPLETION_MARKERS = ("gen_ai.completion.0.role", "gen_ai.completion.0.content",
                       "gen_ai.completion.0.finish_reason")


def _place(tree: dict, path: list[str], value: Any) -> bool:
    """Put ``value`` at ``path`` in nested dicts; False (nothing changed) when the path runs
    into a value already there, or a value would replace a branch."""
    node = tree
    for segment in path[:-1]:
        child = node.get(segment)
        if child is None:
            child = node[segment] = {}
        elif child.__class__ is not dict:
            return False
        node = child
    if path[-1] in node:
        return False
    node[path[-1]] = value
    return True


def _is_index(segment: str) -> bool:
    return segment.isdigit() and segment.isascii()


def _listed(node: Any) -> Any:
    """Nested dicts -> JSON-ready values: a dict whose keys are all indices becomes the list of
    its values in index order."""
    if node.__class__ is not dict:
        return node
    if node and all(_is_index(k) for k in node):
        return [_listed(node[k]) for k in sorted(node, key=int)]
    return {k: _listed(v) for k, v in node.items()}


def flattened_messages(attrs: dict[str, Any]) -> dict[str, tuple[list, list[str]]]:
    """Traceloop's flattened messages, per prefix (``gen_ai.prompt.``, ``gen_ai.completion.``):
    (the list of messages, the attribute keys read). ``gen_ai.completion.0.tool_calls.1.name``
    is ``[{"tool_calls": [{}, {"name": ...}]}]``'s; keys whose first segment is no index
    (gen_ai.prompt.prompt_filter_results) or that clash with another key are not read."""
    trees: dict[str, dict] = {_PROMPT: {}, _COMPLETION: {}}
    read: dict[str, list[str]] = {_PROMPT: [], _COMPLETION: []}
    for key, value in attrs.items():
        if not key.startswith("gen_ai."):
            continue
        if key.startswith(_PROMPT):
            prefix = _PROMPT
        elif key.startswith(_COMPLETION):
            prefix = _COMPLETION
        else:
            continue
        path = key[len(prefix):].split(".")
        if _is_index(path[0]) and all(path) and _place(trees[prefix], path, value):
            read[prefix].append(key)
    return {prefix: (_listed(tree) if tree else [], read[prefix])
            for prefix, tree in trees.items()}


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
        if operation.__class__ is not str:
            operation = as_text(operation)
        if operation not in MODEL_OPERATIONS:
            return SPAN_KIND_BY_OPERATION.get(operation, "other"), None, CONSUMED
    elif not ("gen_ai.request.model" in a or "gen_ai.usage.input_tokens" in a
              or "gen_ai.usage.prompt_tokens" in a):
        return "other", None, CONSUMED
    else:
        request_type = get("llm.request.type")  # Traceloop OpenLLMetry <= 0.47
        if request_type is not None:
            operation = REQUEST_TYPES.get(request_type, request_type) \
                if request_type.__class__ is str else as_text(request_type)
            # its Anthropic Messages calls say "completion" in a span named anthropic.chat
            if operation == "text_completion" and span.name.endswith(".chat"):
                operation = "chat"
    cached = get("gen_ai.usage.cache_read.input_tokens")
    if cached is None:
        cached = get("gen_ai.usage.cache_read_input_tokens")
        if cached is None and "ai.operationId" in a:  # the Vercel AI SDK's (see _AI_SDK_6)
            cached = oc.count_of(a, _NAMES["cached"][2:])
    cache_write = get("gen_ai.usage.cache_creation.input_tokens")
    if cache_write is None:
        cache_write = get("gen_ai.usage.cache_creation_input_tokens")
        if cache_write is None and "ai.operationId" in a:
            cache_write = oc.count_of(a, _NAMES["cache_write"][2:])
    input_tokens = get("gen_ai.usage.input_tokens")
    if input_tokens is None:
        input_tokens = get("gen_ai.usage.prompt_tokens")
    output_tokens = get("gen_ai.usage.output_tokens")
    if output_tokens is None:
        output_tokens = get("gen_ai.usage.completion_tokens")
    reasoning = get("gen_ai.usage.reasoning.output_tokens")
    if reasoning is None:
        reasoning = get("gen_ai.usage.reasoning_tokens")
        if reasoning is None:
            reasoning = get("llm.usage.reasoning_tokens")  # Traceloop OpenLLMetry <= 0.47
            if reasoning is None and "ai.operationId" in a:
                reasoning = oc.count_of(a, _NAMES["reasoning"][3:])
    ai_sdk_5 = "ai.operationId" in a and not any(k in a for k in _AI_SDK_6)
    if ai_sdk_5 and (cached is None or cache_write is None or reasoning is None):
        found = _ai_sdk_5_usage(a)
        cached = found.get("cached") if cached is None else cached
        cache_write = found.get("cache_write") if cache_write is None else cache_write
        reasoning = found.get("reasoning") if reasoning is None else reasoning
    # Counts are ints in 0 .. 2^63-1; anything else (1.5, "abc", true, 1e400, -1, 10**30) is
    # rejected by values.count, naming the attribute. Ints in range, the usual case, skip the
    # call.
    if cached is not None and not (cached.__class__ is int and 0 <= cached <= _MAX):
        cached = oc.count_of(a, _NAMES["cached"])
    if cache_write is not None and not (cache_write.__class__ is int
                                        and 0 <= cache_write <= _MAX):
        cache_write = oc.count_of(a, _NAMES["cache_write"])
    if input_tokens is not None and not (input_tokens.__class__ is int
                                         and 0 <= input_tokens <= _MAX):
        input_tokens = oc.count_of(a, _NAMES["input_tokens"])
    if output_tokens is not None and not (output_tokens.__class__ is int
                                          and 0 <= output_tokens <= _MAX):
        output_tokens = oc.count_of(a, _NAMES["output_tokens"])
    if reasoning is not None and not (reasoning.__class__ is int and 0 <= reasoning <= _MAX):
        reasoning = oc.count_of(a, _NAMES["reasoning"])
    logged_input = input_tokens  # (as logged: a total logged beside it adds up with this one)
    if input_tokens is not None and ai_sdk_5 and _ai_sdk_outside(a):
        cached, cache_write = cached or 0, cache_write or 0
        input_tokens = oc.input_with_cache(input_tokens, cached, cache_write)
        cache_added = False
    elif input_tokens is not None:
        cached = cached or 0
        cache_write = cache_write or 0
        logged, input_tokens = input_tokens, oc.inclusive_input(input_tokens, cached, cache_write)
        cache_added = input_tokens != logged
    else:
        cache_added = False
    reasoning_added = False
    if output_tokens is not None:
        reasoning = reasoning or 0
        total = oc.total_of(a, ("gen_ai.usage.total_tokens", "llm.usage.total_tokens")) \
            if reasoning else None
        logged_output = output_tokens
        output_tokens = oc.inclusive_output(output_tokens, reasoning, total, logged_input)
        reasoning_added = output_tokens != logged_output
        if reasoning and ai_sdk_5 and not reasoning_added and _ai_sdk_thinking_outside(a):
            output_tokens = oc.output_with_reasoning(output_tokens, reasoning)
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
    # current name first; the older one only when it is absent or empty (a false or 0 is kept)
    output_text = get("gen_ai.output.messages")
    if output_text is None or output_text == "":
        output_text = get("gen_ai.completion")
    if output_text.__class__ is not str:
        output_text = as_text(output_text)
    if finish is None and output_text:
        finish = _finish_from_messages(output_text)
    ttft_s = get("gen_ai.response.time_to_first_chunk")
    error_type = get("error.type")
    model = get("gen_ai.request.model")
    if model is None or model == "":
        model = response_model
    input_text = get("gen_ai.input.messages")
    if input_text is None or input_text == "":
        input_text = get("gen_ai.prompt")
    # Neither name: Traceloop's flattened messages, if the span has them (_PROMPT_MARKERS,
    # _COMPLETION_MARKERS: a few lookups, and the attributes read only then)
    consumed = CONSUMED
    if (input_text is None and not a.keys().isdisjoint(_PROMPT_MARKERS)) \
            or (output_text is None and not a.keys().isdisjoint(_COMPLETION_MARKERS)):
        input_text, output_text, finish, consumed = _from_flattened(
            a, input_text, output_text, finish)
    provider = get("gen_ai.provider.name")
    if provider is None or provider == "":
        provider = get("gen_ai.system")
    request = {
        "provider": ai_sdk_provider(provider) if "ai.operationId" in a
        else oc.norm_provider(provider),
        "model": model if model.__class__ is str else as_text(model),
        "response_model": response_model,
        "operation": (operation if operation.__class__ is str else as_text(operation))
        or "chat",
        "input_tokens": input_tokens,
        "cached_input_tokens": cached,
        "cache_write_tokens": cache_write,
        "output_tokens": output_tokens,
        "reasoning_tokens": reasoning,
        "ttft_ms": values.number(ttft_s, "gen_ai.response.time_to_first_chunk") * 1000.0
        if ttft_s is not None else None,
        "finish_reason": finish if finish.__class__ is str else as_text(finish),
        "error_type": oc.norm_error_type(error_type) if error_type is not None else None,
        "input_text": input_text if input_text.__class__ is str else as_text(input_text),
        "output_text": output_text,
    }
    oc.user_columns(a, request)
    if cache_added:
        request[oc.CACHE_ADDED] = True
    if reasoning_added:
        request[oc.REASONING_ADDED] = True
    return "llm", request, consumed


# The Vercel AI SDK's provider ids are "<provider>.<API>" (@ai-sdk/openai `${name}.responses`,
# @ai-sdk/google 'google.generative-ai', @ai-sdk/google-vertex 'vertex.anthropic.messages'...),
# written as gen_ai.system. The APIs they end with, and the providers' names in the GenAI
# conventions where they differ (else the name itself: groq, deepseek, cohere...).
_AI_SDK_APIS = {"chat", "completion", "responses", "messages", "embedding", "embeddings",
                "textembedding", "generative-ai", "interactions", "image", "speech",
                "transcription", "reranking", "language", "video"}
_AI_SDK_NAMES = {"google": "gcp.gemini", "google.vertex": "gcp.vertex_ai",
                 "vertex": "gcp.vertex_ai", "vertex.anthropic": "gcp.vertex_ai",
                 "bedrock": "aws.bedrock", "bedrock.anthropic": "aws.bedrock",
                 "bedrock-mantle": "aws.bedrock", "azure": "azure.ai.openai",
                 "mistral": "mistral_ai", "xai": "x_ai"}


# AI SDK 5 and before (no ai.usage.inputTokenDetails.*, AI SDK 6's) give as inputTokens the
# provider's own input count, and as cachedInputTokens its cache reads: Anthropic's input_tokens
# (@ai-sdk/anthropic 2, also through Vertex AI and Bedrock: provider ids holding "anthropic") and
# Bedrock's Converse inputTokens leave the cache reads and writes out, OpenAI's and Gemini's hold
# them. Their writes are only in ai.response.providerMetadata (JSON text).
_AI_SDK_6 = ("ai.usage.inputTokenDetails.noCacheTokens",
             "ai.usage.inputTokenDetails.cacheReadTokens",
             "ai.usage.inputTokenDetails.cacheWriteTokens")


def _ai_sdk_outside(a: dict[str, Any]) -> bool:
    """Whether an AI SDK 5 span's input count leaves its cached tokens out (see _AI_SDK_6)."""
    system = a.get("gen_ai.system")
    system = system.lower() if system.__class__ is str else ""
    return "anthropic" in system or system.startswith(("bedrock", "amazon-bedrock"))


def _ai_sdk_thinking_outside(a: dict[str, Any]) -> bool:
    """Whether an AI SDK span's output count leaves its reasoning tokens out: AI SDK 5's Gemini
    providers (@ai-sdk/google 2: outputTokens is candidatesTokenCount, reasoningTokens
    thoughtsTokenCount; read as a part, the thinking went unpriced, or the call was quarantined
    as reasoning exceeding output). AI SDK 6 counts them in (inputTokenDetails given)."""
    system = a.get("gen_ai.system")
    system = system.lower() if system.__class__ is str else ""
    return system.startswith(("google", "vertex")) and "anthropic" not in system


# What an AI SDK 5 step span has of its usage only in ai.response.providerMetadata (JSON text):
# {column: [(provider key, path)...]}, the first found counts. Its generateText spans carry no
# ai.usage.cachedInputTokens / reasoningTokens (its streamText spans do).
_AI_SDK_5_METADATA = {
    "cached": [("anthropic", ("usage", "cache_read_input_tokens")),
               ("google", ("usageMetadata", "cachedContentTokenCount"))],
    "cache_write": [("anthropic", ("cacheCreationInputTokens",)),
                    ("anthropic", ("usage", "cache_creation_input_tokens")),
                    ("bedrock", ("usage", "cacheWriteInputTokens"))],
    "reasoning": [("google", ("usageMetadata", "thoughtsTokenCount"))],
}


def _ai_sdk_5_usage(a: dict[str, Any]) -> dict[str, int]:
    """{column: count} of an AI SDK 5 span's ai.response.providerMetadata
    (``_AI_SDK_5_METADATA``); {} when it has none or is no JSON object."""
    text = a.get("ai.response.providerMetadata")
    try:
        metadata = json.loads(text) if text.__class__ is str else None
    except ValueError:
        return {}
    if not isinstance(metadata, dict):
        return {}
    found = {}
    for column, places in _AI_SDK_5_METADATA.items():
        for name, path in places:
            node: Any = metadata.get(name)
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if node is not None:
                found[column] = values.count(
                    node, f"ai.response.providerMetadata.{name}.{'.'.join(path)}")
                break
    return found


def ai_sdk_provider(value: Any) -> str | None:
    """The provider of a Vercel AI SDK span from its provider id (``openai.responses`` ->
    openai, ``google.vertex.chat`` -> gcp.vertex_ai). Stored as it is, one provider was split
    by API in every chart, and a price override for provider ``openai`` did not price its
    ``openai.responses`` calls (review). An id without a known API is read as any provider."""
    text = oc.norm_provider(value)
    if text is None or "." not in text:
        return text
    name, api = text.rsplit(".", 1)
    if api not in _AI_SDK_APIS:
        return text
    return _AI_SDK_NAMES.get(name) or oc.norm_provider(name)


def _from_flattened(attrs: dict[str, Any], input_text: Any, output_text: Any,
                    finish: Any) -> tuple[Any, Any, Any, frozenset[str]]:
    """input_text, output_text (JSON text of the message lists), finish_reason (the first a
    completion has) from Traceloop's flattened messages where the span has no other; and the
    keys consumed, the flattened ones read included."""
    found = flattened_messages(attrs)
    read: list[str] = []
    prompts, prompt_keys = found[_PROMPT]
    if input_text is None and prompts:
        input_text = oc.json_text(prompts)
        read += prompt_keys
    completions, completion_keys = found[_COMPLETION]
    if output_text is None and completions:
        output_text = oc.json_text(completions)
        read += completion_keys
        if finish is None:
            for message in completions:
                if message.__class__ is dict and message.get("finish_reason"):
                    finish = message["finish_reason"]
                    break
    return input_text, output_text, finish, CONSUMED.union(read) if read else CONSUMED


# Span conventions other than GenAI's, by the attribute that marks a span as written under them:
# chosen per span, so a file mixing instrumentations ingests whole. The first marker found wins.
CONVENTIONS = (("openinference.span.kind", "openinference"),
               ("langfuse.observation.type", "langfuse"))


def choose_mapper(attrs: dict[str, Any]) -> str:
    """The mapping of one span: a convention whose marker it carries, else GenAI's."""
    for marker, name in CONVENTIONS:
        if marker in attrs:
            return name
    return "genai"


def mappers() -> dict[str, oc.SpanMapper]:
    # the modules map each other's spans: imported here, not at the top
    from lib.ingest.formats import langfuse_spans, openinference

    return {"genai": map_span, "openinference": openinference.map_span,
            "langfuse": langfuse_spans.map_span}


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
    doc="OTLP JSON traces (Collector file exporter) with OpenTelemetry GenAI conventions "
        "(Langfuse SDK spans in them too)",
    finish=finish_spans,
    appendable=oc.lines_not_document,
)
