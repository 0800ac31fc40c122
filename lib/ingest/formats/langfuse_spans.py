"""Spans written by the Langfuse SDK (v3 and later, built on OpenTelemetry), in OTLP JSON.

The Langfuse Python and JS SDKs record every observation as an OpenTelemetry span with
``langfuse.*`` attributes (langfuse-python ``_client/attributes.py``), exported to Langfuse's OTLP
endpoint; a team that also sends them to an OpenTelemetry Collector has them as OTLP JSON files.
They carry no ``gen_ai.*`` attributes, so the GenAI mapping would keep them as plain spans; this
mapping is chosen per span by ``langfuse.observation.type`` (see ``otlp.CONVENTIONS``), in files
read as ``otlp-json``.

``generation`` and ``embedding`` observations are model calls -> ``requests`` (and a ``spans`` row
of kind ``llm``); ``agent``, ``tool``, ``chain``, ``retriever``, ``span``, ``event``, ``evaluator``,
``guardrail`` -> ``spans``.

| column              | attribute                                                              |
|---------------------|------------------------------------------------------------------------|
| model               | langfuse.observation.model.name (the wrapper writes the answering model)|
| provider            | none is written; ``openai`` for the SDK's OpenAI wrapper's spans        |
|                     | (named ``OpenAI-generation`` / ``OpenAI-embedding``)                   |
| tokens              | langfuse.observation.usage_details (JSON text), see below              |
| logged_cost_usd     | langfuse.observation.cost_details (JSON text): ``total``, else the sum  |
| ttft_ms             | langfuse.observation.completion_start_time (JSON-quoted ISO time) - start|
| status, error_type  | span status ERROR or level ``ERROR``; the status message's exception   |
|                     | class, else its HTTP code ("Error code: 429 - ..." -> ``429``)          |
| error_message       | the span's status message, else langfuse.observation.status_message    |
| finish_reason       | metadata ``finish_reason``                                             |
| input/output_text   | langfuse.observation.input / output                                    |
| prompt_name/version | langfuse.observation.prompt.name / .version                            |
| environment         | langfuse.environment (else the resource's)                             |
| app_version         | langfuse.release (else the resource's)                                 |
| user, session       | user.id, session.id (and canonical names in metadata)                  |

``usage_details`` comes in two shapes (both accepted by Langfuse's server):
- a provider's usage object, as the SDK's OpenAI wrapper passes it: Chat Completions
  (``prompt_tokens`` including ``prompt_tokens_details.cached_tokens``) or the Responses API
  (``input_tokens`` with ``input_tokens_details``), read as the ``openai`` format reads them;
- Langfuse's own keys, as a user's ``usage_details={...}`` gives them: mutually exclusive buckets
  (``input`` beside ``cache_read_input_tokens``...), read as the ``langfuse`` export format reads
  ``usageDetails``.
Metadata (``langfuse.observation.metadata.<key>`` / ``langfuse.trace.metadata.<key>``, each value
JSON-encoded by SDK v5) is stored in ``attributes`` as the objects ``langfuse.observation.metadata``
and ``langfuse.trace.metadata``, and ``langfuse.observation.model.parameters`` as an object too;
its ``service_tier`` (the wrapper writes the tier that served the call there) is also
``attributes.service_tier``, the price context of lib/pricing.py. A level ``ERROR`` makes any
observation an error, model call or not.

Bad values: a token count that is not an integer in 0 .. 2^63-1, a cost that is not a finite
number, ``usage_details`` that is not a JSON object, or a completion start time that is not a
time: the span is quarantined naming the attribute, as in ``otlp-json``.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import Any

from lib.ingest.base import BadValue
from lib.ingest.formats import langfuse as langfuse_exports
from lib.ingest.formats import otlp_common as oc
from lib.ingest.formats import provider_native
from lib.ingest.values import count, shown

MARKER = "langfuse.observation.type"
MODEL_TYPES = {"generation": "chat", "embedding": "embeddings"}
SPAN_KIND = {"agent": "agent", "tool": "tool", "retriever": "retrieval", "chain": "chain"}
PREFIX = "langfuse.observation."
OBSERVATION_METADATA = "langfuse.observation.metadata"
TRACE_METADATA = "langfuse.trace.metadata"
PARAMETERS = "langfuse.observation.model.parameters"
# Span names the SDK's wrappers give, and the provider they call.
WRAPPER_PROVIDERS = {"OpenAI-": "openai"}

CONSUMED = frozenset({
    MARKER, "langfuse.observation.model.name", "langfuse.observation.usage_details",
    "langfuse.observation.cost_details", "langfuse.observation.completion_start_time",
    "langfuse.observation.level", "langfuse.observation.status_message",
    "langfuse.observation.input", "langfuse.observation.output",
    "langfuse.observation.prompt.name", "langfuse.observation.prompt.version",
    "langfuse.environment", "langfuse.release",
}) | oc.USER_KEY_SET
DROPPED_PREFIXES = ("langfuse.internal.",)  # the SDK's own bookkeeping (as_root, is_app_root)
METADATA_COLUMNS = ("feature", "customer_id", "user_id", "session_id", "prompt_name",
                    "prompt_version", "app_version", "environment", "service")


def _json(value: Any) -> Any:
    """A JSON-encoded attribute's value (the SDK writes objects as JSON text); text that is not
    JSON stays text (older SDKs wrote plain strings)."""
    if value.__class__ is not str:
        return value
    try:
        return oc.loads(value)
    except ValueError:
        pass
    try:  # NaN, Infinity, 1e400: read, so the value's own check names it ("is not an integer")
        return json.loads(value)
    except (ValueError, RecursionError):
        return value


def _object(value: Any, field: str) -> dict | None:
    value = _json(value)
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        raise BadValue(f"{field} is not a JSON object: {shown(value)}")
    return value


def _metadata(attrs: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The metadata the SDK flattened into ``<prefix>.<key>`` attributes (or wrote whole at
    ``prefix``), values decoded, as one object; the flattened keys leave ``attrs``."""
    out: dict[str, Any] = {}
    whole = attrs.get(prefix)
    if whole is not None:
        decoded = _json(whole)
        out.update(decoded if isinstance(decoded, dict) else {"value": decoded})
    dotted = prefix + "."
    for key in [k for k in attrs if k.startswith(dotted)]:
        out[key[len(dotted):]] = _json(attrs.pop(key))
    return out


# Keys of Langfuse's usage buckets (and of providers' flat usage objects read as such, Gemini's
# usage_metadata among them: candidates_token_count, thoughtsTokenCount...): the rest
# (Anthropic's service_tier, server_tool_use...) is no token count.
_BUCKET_PREFIXES = ("input", "prompt", "cache", "output", "completion", "total", "candidates",
                    "thoughts", "tool_use", "tooluse")


def _tokens(details: dict) -> dict[str, int | None]:
    """Token columns from ``usage_details`` (either shape, see the module's doc)."""
    if "prompt_tokens" in details or "completion_tokens" in details:
        fields = provider_native.OPENAI_CHAT_USAGE
    elif "input_tokens_details" in details or "output_tokens_details" in details:
        fields = provider_native.OPENAI_RESPONSES_USAGE
    else:
        # Buckets. An object or list inside is a breakdown of a bucket beside it (Anthropic's
        # cache_creation of cache_creation_input_tokens), not more tokens.
        buckets = {k: v for k, v in details.items() if k.lower().startswith(_BUCKET_PREFIXES)
                   and not isinstance(v, (dict, list))}
        with _named("usageDetails.", "langfuse.observation.usage_details."):
            inp, cached, write, out, reasoning, write_1h = \
                langfuse_exports.usage_details(buckets)[0]
            tiers = details.get("cache_creation")
            if not write_1h and isinstance(tiers, dict) and write:
                # raw Anthropic usage: the one-hour writes are in the breakdown object
                write_1h = min(count(tiers.get("ephemeral_1h_input_tokens"),
                                     "cache_creation.ephemeral_1h_input_tokens") or 0, write)
        return {"input_tokens": inp, "cached_input_tokens": cached, "cache_write_tokens": write,
                "cache_write_1h_tokens": write_1h, "output_tokens": out,
                "reasoning_tokens": reasoning}
    try:
        counts = provider_native.usage_counts(details, fields, required=0)
    except BadValue as exc:  # name the attribute, not the provider's "usage"
        raise BadValue(f"langfuse.observation.usage_details: {exc}") from None
    if counts["input_tokens"] is not None:
        counts["cached_input_tokens"] = counts["cached_input_tokens"] or 0
        counts["cache_write_tokens"] = counts["cache_write_tokens"] or 0
    if counts["output_tokens"] is not None:
        counts["reasoning_tokens"] = counts["reasoning_tokens"] or 0
    return counts


@contextlib.contextmanager
def _named(export_field: str, attribute: str):
    """Reasons from the export format's readers name the span's attribute instead."""
    try:
        yield
    except BadValue as exc:
        raise BadValue(str(exc).replace(export_field, attribute, 1)) from None


def _cost(costs: dict) -> float | None:
    with _named("costDetails.", "langfuse.observation.cost_details."):
        return langfuse_exports.cost_of({"costDetails": costs})


def _ttft_ms(span: oc.Span, value: Any) -> float | None:
    value = _json(value)
    if value is None or value == "":
        return None
    field = "langfuse.observation.completion_start_time"
    if not isinstance(value, str):
        raise BadValue(f"{field} is not a time: {shown(value)}")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadValue(f"{field} is not a time: {shown(value)}") from None
    if t.tzinfo is None:
        raise BadValue(f"{field} has no time zone: {shown(value)}")
    return (t.timestamp() * 1e9 - span.start_ns) / 1e6


def map_span(span: oc.Span) -> tuple[str, dict[str, Any] | None, frozenset[str] | set[str]]:
    """Langfuse SDK span: (span kind, request columns or None, consumed attribute keys)."""
    a = span.attrs
    kind = str(a.get(MARKER) or "").lower()
    level = str(a.get("langfuse.observation.level") or "").upper()
    if level == "ERROR" and not span.error:
        span.error = True  # the observation's level says so even where the span's status does not
    if kind not in MODEL_TYPES:
        return SPAN_KIND.get(kind, "other"), None, {MARKER}
    metadata = _metadata(a, OBSERVATION_METADATA)
    trace_metadata = _metadata(a, TRACE_METADATA)
    details = _object(a.get("langfuse.observation.usage_details"),
                      "langfuse.observation.usage_details")
    tokens = _tokens(details) if details else {}
    costs = _object(a.get("langfuse.observation.cost_details"),
                    "langfuse.observation.cost_details")
    parameters = _object(a.get(PARAMETERS), PARAMETERS)
    message = oc.as_text(a.get("langfuse.observation.status_message"))
    if span.error and span.status_message is None:
        span.status_message = message
    model = oc.as_text(a.get("langfuse.observation.model.name"))
    provider = next((p for prefix, p in WRAPPER_PROVIDERS.items()
                     if span.name and span.name.startswith(prefix)), None)
    request = {
        "provider": provider,
        "model": model,
        "response_model": model,
        "operation": MODEL_TYPES[kind],
        **tokens,
        "logged_cost_usd": _cost(costs) if costs else None,
        "ttft_ms": _ttft_ms(span, a.get("langfuse.observation.completion_start_time")),
        "error_type": langfuse_exports.error_type_of(span.status_message) if span.error else None,
        "finish_reason": oc.as_text(metadata.get("finish_reason")),
        "input_text": oc.as_text(a.get("langfuse.observation.input")),
        "output_text": oc.as_text(a.get("langfuse.observation.output")),
        "prompt_name": oc.as_text(a.get("langfuse.observation.prompt.name")),
        "prompt_version": oc.as_text(a.get("langfuse.observation.prompt.version")),
        "environment": oc.as_text(a.get("langfuse.environment")),
        "app_version": oc.as_text(a.get("langfuse.release")),
    }
    if kind == "embedding" and request.get("input_tokens") is not None \
            and request.get("output_tokens") is None:
        request["output_tokens"] = request["reasoning_tokens"] = 0
    oc.user_columns(a, request)
    for meta in (metadata, trace_metadata):
        for column in METADATA_COLUMNS:
            if request.get(column) is None and meta.get(column) is not None:
                request[column] = oc.as_text(meta[column])
        oc.user_columns(meta, request)
    # The SDK's OpenAI wrapper puts the tier that served the call (the response's) into the
    # model parameters: as attributes.service_tier it selects the tier's price (lib/pricing.py).
    tier = parameters.get("service_tier") if parameters else None
    if isinstance(tier, str) and "service_tier" not in a:
        a["service_tier"] = tier
    # kept in attributes under the SDK's names, as objects rather than escaped text
    for key, value in ((OBSERVATION_METADATA, metadata), (TRACE_METADATA, trace_metadata),
                       (PARAMETERS, parameters)):
        if value:
            a[key] = value
        else:
            a.pop(key, None)
    consumed = CONSUMED | {k for k in a if k.startswith(DROPPED_PREFIXES)}
    if level in ("DEBUG", "WARNING"):
        consumed = consumed - {"langfuse.observation.level"}  # worth keeping; the rest say no more
    return "llm", request, consumed

