"""Cross-format agreement on token semantics and cost (design §3).

One small set of logical model calls with known true totals (``CALLS``) is rendered by hand into
every input format Sightline reads that can carry usage; each rendering is ingested into its own
fresh store, and the stored rows must be the same in every format AND equal the hand-computed
truth: (ts, model, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens,
reasoning_tokens, status) per call, and cost_usd per call and in total.

The rule (design §3, lib/schema.py): stored ``input_tokens`` INCLUDES cache reads
(``cached_input_tokens``) and cache writes (``cache_write_tokens``); ``output_tokens`` INCLUDES
``reasoning_tokens``. The formats disagree on where they put those, and each rendering below
writes them where its own convention does:

| rendering                      | input count holds cache reads / writes? | output: reasoning? |
|--------------------------------|-----------------------------------------|--------------------|
| canonical jsonl/csv/json/pq    | yes (design §3)                         | yes                |
| OTLP GenAI, both names, proto  | yes (semconv: "SHOULD include cached")  | yes                |
| OpenInference                  | yes (llm.token_count.prompt)            | yes                |
| Langfuse usageDetails          | NO: exclusive buckets summing to total  | NO: buckets        |
| ... before langfuse#10592      | yes, told by total = input + output     | yes                |
| OpenAI raw usage (chat, resp.) | yes (prompt_tokens / input_tokens)      | yes                |
| Anthropic raw usage            | NO: input_tokens is the uncached part   | yes (no split)     |
| YAML mapping (docs/mapping.md) | as mapped; Anthropic's sum (the docs')  | yes                |

Double-counting cached tokens (adding OpenAI's cached_tokens to prompt_tokens) or
under-counting them (taking Anthropic's or Langfuse's ``input`` as the whole) changes the stored
numbers and the cost of calls c1, c2, c4 and c5 below, so every rendering's test fails on
either mistake (test_the_double_counting_mistakes_change_the_asserted_numbers).

The canonical JSONL is also ingested through each of its code paths (fast path, exact SQL path,
Python reader, a group of small files): four pricing implementations, which must agree to the
bit. What a format cannot carry is said where it is rendered: the provider (Langfuse exports
have none unless LangChain's metadata names it; Langfuse SDK spans name one only for the SDK's
OpenAI wrapper's spans) is compared only where the rendering carries it; the cost engine
prices these models the same with or without a provider. Hand-written inputs are fine here:
the real instrumentations are exercised by tests/ingest/test_otlp.py, test_openinference.py,
test_langfuse_spans.py...

A second, smaller table of calls asks for an alias answered by a dated snapshot
(test_requested_alias_and_answering_snapshot): design §3's model is the one requested.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from lib import pricing
from lib.ingest.pipeline import ingest_paths
from lib.store import Engine, Lake

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, noon UTC (as tests/conftest.py's)


# ---------------------------------------------------------------------------------------------
# The truth


@dataclass(frozen=True)
class Call:
    """One logical model call, in design §3's terms (the totals INCLUDE their parts)."""

    key: str
    minute: int  # ts = T0 + minute
    provider: str
    model: str  # the model that answered (a dated snapshot)
    input_tokens: int | None = None  # every prompt token, cache reads and writes included
    cached: int = 0  # cache reads (subset of input_tokens)
    cache_write: int = 0  # cache writes (subset of input_tokens)
    output_tokens: int | None = None  # every completion token, reasoning included
    reasoning: int = 0  # subset of output_tokens
    error_type: str | None = None
    latency_ms: int = 900
    requested_model: str | None = None  # the model asked for, when not the snapshot itself

    @property
    def requested(self) -> str:
        return self.requested_model or self.model

    @property
    def ok(self) -> bool:
        return self.error_type is None

    @property
    def status(self) -> str:
        return "ok" if self.ok else "error"

    @property
    def uncached(self) -> int:
        """Anthropic's raw ``usage.input_tokens``: the input read neither from nor into cache."""
        return self.input_tokens - self.cached - self.cache_write

    @property
    def visible(self) -> int:
        """The output that is not reasoning (Langfuse's ``output`` bucket)."""
        return self.output_tokens - self.reasoning

    @property
    def ts(self) -> datetime:
        return T0 + timedelta(minutes=self.minute)

    @property
    def iso(self) -> str:
        return self.ts.isoformat().replace("+00:00", "Z")

    @property
    def epoch_s(self) -> int:
        return int(self.ts.timestamp())

    @property
    def start_ns(self) -> int:
        return self.epoch_s * 1_000_000_000

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.latency_ms * 1_000_000


# The calls ask for the dated snapshots themselves, so "the model" is one name in every format
# (test_requested_alias_and_answering_snapshot covers an alias answered by a snapshot).
GPT4O, O4MINI, GPT4OMINI = "gpt-4o-2024-08-06", "o4-mini-2025-04-16", "gpt-4o-mini-2024-07-18"
SONNET4 = "claude-sonnet-4-20250514"
CALLS = [
    # OpenAI, two thirds of the prompt read from cache (prompt_tokens 12000 incl. 8000 cached)
    Call("c1", 1, "openai", GPT4O, input_tokens=12_000, cached=8_000, output_tokens=500),
    # OpenAI reasoning model: cache AND reasoning (completion_tokens 3000 incl. 2200 reasoning)
    Call("c2", 2, "openai", O4MINI, input_tokens=5_000, cached=1_024, output_tokens=3_000,
         reasoning=2_200),
    # no cache, no reasoning: every convention agrees here
    Call("c3", 3, "openai", GPT4OMINI, input_tokens=1_500, output_tokens=300),
    # Anthropic, cache reads and writes dwarf the uncached input (raw usage.input_tokens = 200):
    # the usual shape of a long cached prompt
    Call("c4", 4, "anthropic", SONNET4, input_tokens=7_700, cached=6_000, cache_write=1_500,
         output_tokens=800),
    # Anthropic, cache reads + writes (3000) BELOW the uncached input (raw 5000): a count that
    # left them out cannot be told from one that holds them by size alone
    Call("c5", 5, "anthropic", SONNET4, input_tokens=8_000, cached=1_000, cache_write=2_000,
         output_tokens=400),
    # a rejected call (429): no usage logged; providers do not bill it
    Call("c6", 6, "openai", GPT4O, error_type="RateLimitError", latency_ms=150),
]
assert all(c.uncached >= 0 and c.visible >= 0 for c in CALLS if c.ok)

# Hand-computed cost, USD, from the published per-million-token prices (genai-prices' snapshot):
#   gpt-4o-2024-08-06        $2.50 input, $1.25 cached input, $10.00 output
#   o4-mini-2025-04-16       $1.10 input, $0.275 cached input, $4.40 output
#   gpt-4o-mini-2024-07-18   $0.15 input, $0.075 cached input, $0.60 output
#   claude-sonnet-4-20250514 $3.00 input, $0.30 cache read, $3.75 cache write (5 min), $15 output
# Each token is priced once, at its own kind's price: uncached = input - cached - cache writes.
TRUE_COST = {
    # 4000 uncached × 2.50 + 8000 cached × 1.25 + 500 output × 10 = 10000 + 10000 + 5000
    "c1": (4_000 * 2.50 + 8_000 * 1.25 + 500 * 10.00) / 1e6,  # $0.025
    # 3976 × 1.10 + 1024 × 0.275 + 3000 × 4.40 = 4373.6 + 281.6 + 13200 (reasoning is output)
    "c2": (3_976 * 1.10 + 1_024 * 0.275 + 3_000 * 4.40) / 1e6,  # $0.0178552
    # 1500 × 0.15 + 300 × 0.60 = 225 + 180
    "c3": (1_500 * 0.15 + 300 * 0.60) / 1e6,  # $0.000405
    # 200 × 3 + 6000 × 0.30 + 1500 × 3.75 + 800 × 15 = 600 + 1800 + 5625 + 12000
    "c4": (200 * 3.00 + 6_000 * 0.30 + 1_500 * 3.75 + 800 * 15.00) / 1e6,  # $0.020025
    # 5000 × 3 + 1000 × 0.30 + 2000 × 3.75 + 400 × 15 = 15000 + 300 + 7500 + 6000
    "c5": (5_000 * 3.00 + 1_000 * 0.30 + 2_000 * 3.75 + 400 * 15.00) / 1e6,  # $0.0288
    "c6": 0.0,  # a failed call without usage costs nothing
}
TRUE_TOTAL_COST = 0.0920852
# What the classic mistakes would store, for the record: c1 with cached tokens added to OpenAI's
# prompt_tokens (20000 input, 8000 cached) costs $0.045, not $0.025; c4 with Anthropic's raw
# input_tokens taken as the whole (200 input, 6000 cached) breaks cached <= input and is
# quarantined; c5 taken that way (5000 input) costs $0.0198, not $0.0288.


def truth_row(call: Call) -> tuple:
    """(ts, model, input, cached, cache write, output, reasoning, status) as stored: a call
    without usage has null totals and 0 parts (lib/ingest/validate.py ZERO_IF_NULL)."""
    return (call.ts, call.model, call.input_tokens, call.cached, call.cache_write,
            call.output_tokens, call.reasoning, call.status)


# ---------------------------------------------------------------------------------------------
# Renderings: each writes the calls as its format logs them and says how to ingest the files


@dataclass
class Rendering:
    """Files of one rendering: ``files`` are (path, extra ``ingest_paths`` arguments), each
    ingested by its own call (a folder: all its files in one call); ``formats`` the format each
    file's report must name, in order; ``env`` what the ingest runs under (a code path switch)."""

    files: list[tuple[Path, dict]]
    formats: list[str]
    carries_provider: Callable[[Call], bool] = lambda call: True
    env: dict[str, str] = field(default_factory=dict)


def _aged(path: Path) -> Path:
    """``path`` with its mtime 10 minutes back: not a file still being written."""
    old = time.time() - 600
    os.utime(path, (old, old))
    return path


def _write(folder: Path, name: str, data: bytes | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return _aged(path)


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


# -- canonical ---------------------------------------------------------------------------------

CANONICAL_COLUMNS = ["request_id", "ts", "provider", "model", "response_model", "operation",
                     "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
                     "reasoning_tokens", "latency_ms", "status", "error_type", "service"]


def canonical_row(call: Call) -> dict:
    row = {"request_id": f"req-{call.key}", "ts": call.iso, "provider": call.provider,
           "model": call.requested, "response_model": call.model if call.ok else None,
           "operation": "chat", "latency_ms": float(call.latency_ms),
           "status": call.status, "error_type": call.error_type, "service": "agreement"}
    if call.ok:  # a failed call's logger writes no token counts at all
        row.update(input_tokens=call.input_tokens, cached_input_tokens=call.cached,
                   cache_write_tokens=call.cache_write, output_tokens=call.output_tokens,
                   reasoning_tokens=call.reasoning)
    return row


def render_canonical_jsonl(folder: Path) -> Rendering:
    rows = [{k: v for k, v in canonical_row(c).items() if v is not None} for c in CALLS]
    return Rendering([(_write(folder, "requests.jsonl", _jsonl(rows)), {})], ["jsonl"])


def render_canonical_jsonl_exact(folder: Path) -> Rendering:
    """The same file through the exact SQL path (the fast path off) ..."""
    rendering = render_canonical_jsonl(folder)
    rendering.env = {"SIGHTLINE_INGEST_FAST": "0"}
    return rendering


def render_canonical_jsonl_python(folder: Path) -> Rendering:
    """... and through the Python reader (Arrow blocks, validation and pricing in Python)."""
    rendering = render_canonical_jsonl(folder)
    rendering.env = {"SIGHTLINE_INGEST_FAST": "0", "SIGHTLINE_INGEST_SQL": "0"}
    return rendering


def render_canonical_jsonl_grouped(folder: Path) -> Rendering:
    """One small file per call, ingested as one folder: read together (lib/ingest/grouped.py),
    priced in one SQL pass, committed one batch per file."""
    for call in CALLS:
        row = {k: v for k, v in canonical_row(call).items() if v is not None}
        _write(folder, f"{call.key}.jsonl", _jsonl([row]))
    return Rendering([(folder, {})], ["jsonl"] * len(CALLS))


def render_canonical_csv(folder: Path) -> Rendering:
    out = io.StringIO()
    writer = csv.DictWriter(out, CANONICAL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for call in CALLS:
        writer.writerow({k: "" if v is None else v for k, v in canonical_row(call).items()})
    return Rendering([(_write(folder, "requests.csv", out.getvalue()), {})], ["csv"])


def render_canonical_json(folder: Path) -> Rendering:
    rows = [canonical_row(c) for c in CALLS]  # nulls written as null, as json.dump does
    return Rendering([(_write(folder, "requests.json", json.dumps(rows, indent=2)), {})],
                     ["json"])


def render_canonical_parquet(folder: Path) -> Rendering:
    rows = [canonical_row(c) for c in CALLS]
    types = {"ts": pa.timestamp("us", tz="UTC"), "latency_ms": pa.float64(),
             **{k: pa.int64() for k in CANONICAL_COLUMNS if k.endswith("_tokens")}}
    columns = {}
    for name in CANONICAL_COLUMNS:
        values = [r.get(name) for r in rows]
        if name == "ts":
            values = [datetime.fromisoformat(v) for v in values]
        columns[name] = pa.array(values, types.get(name, pa.string()))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "requests.parquet"
    pq.write_table(pa.table(columns), path)
    return Rendering([(_aged(path), {})], ["parquet"])


# -- OTLP envelope (GenAI current / older names, OpenInference, Langfuse SDK spans, protobuf) ----


def _any_value(value) -> dict:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 as decimal text, as the Collector writes it
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    return {"stringValue": value}


def _attributes(attrs: dict) -> list[dict]:
    return [{"key": k, "value": _any_value(v)} for k, v in attrs.items() if v is not None]


def _hex_id(call: Call, what: str, n: int) -> str:
    return hashlib.sha256(f"{what}:{call.key}".encode()).hexdigest()[:n]


def _span(call: Call, name: str, attrs: dict, *, protobuf_json: bool = False,
          events: tuple[dict, ...] = ()) -> dict:
    """One client span of ``call``. ``protobuf_json``: protobuf's JSON printer's encoding
    (base64 ids, enum names) instead of the OTLP spec's (hex ids, integer enums)."""
    trace_id, span_id = _hex_id(call, "trace", 32), _hex_id(call, "span", 16)
    status: dict = {}
    if not call.ok:
        status = {"code": 2, "message": f"Error code: 429 - {call.error_type}"}
    span = {"traceId": trace_id, "spanId": span_id, "name": name, "kind": 3,
            "startTimeUnixNano": str(call.start_ns), "endTimeUnixNano": str(call.end_ns),
            "attributes": _attributes(attrs), "status": status}
    if events:
        span["events"] = list(events)
    if protobuf_json:
        span["traceId"] = base64.b64encode(bytes.fromhex(trace_id)).decode()
        span["spanId"] = base64.b64encode(bytes.fromhex(span_id)).decode()
        span["kind"] = "SPAN_KIND_CLIENT"
        if status:
            status["code"] = "STATUS_CODE_ERROR"
    return span


def _envelope(spans: list[dict], scope: str) -> dict:
    return {"resourceSpans": [{
        "resource": {"attributes": _attributes({"service.name": "agreement"})},
        "scopeSpans": [{"scope": {"name": scope}, "spans": spans}]}]}


def _exception_event(call: Call, module: str) -> dict:
    return {"name": "exception", "timeUnixNano": str(call.end_ns),
            "attributes": _attributes({"exception.type": f"{module}.{call.error_type}",
                                       "exception.message": "Error code: 429"})}


def genai_current_attributes(call: Call) -> dict:
    """Current GenAI semconv names: gen_ai.usage.input_tokens includes cached tokens, the
    cache parts are gen_ai.usage.cache_read.input_tokens / cache_creation.input_tokens."""
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": call.provider,
             "gen_ai.request.model": call.requested}
    if call.ok:
        attrs.update({
            "gen_ai.response.model": call.model,
            "gen_ai.usage.input_tokens": call.input_tokens,
            "gen_ai.usage.output_tokens": call.output_tokens,
            "gen_ai.usage.cache_read.input_tokens": call.cached or None,
            "gen_ai.usage.cache_creation.input_tokens": call.cache_write or None,
            "gen_ai.usage.reasoning.output_tokens": call.reasoning or None,
            "gen_ai.response.finish_reasons": ["stop"],
        })
    else:
        attrs["error.type"] = call.error_type
    return attrs


def genai_older_attributes(call: Call) -> dict:
    """The older names instrumentations in use still emit (OpenLLMetry style): gen_ai.system,
    gen_ai.usage.prompt_tokens / completion_tokens (inclusive, as the current ones),
    gen_ai.usage.cache_read_input_tokens / cache_creation_input_tokens,
    gen_ai.usage.reasoning_tokens; no gen_ai.operation.name (llm.request.type instead)."""
    attrs = {"gen_ai.system": call.provider, "llm.request.type": "chat",
             "gen_ai.request.model": call.requested}
    if call.ok:
        attrs.update({
            "gen_ai.response.model": call.model,
            "gen_ai.usage.prompt_tokens": call.input_tokens,
            "gen_ai.usage.completion_tokens": call.output_tokens,
            "gen_ai.usage.cache_read_input_tokens": call.cached or None,
            "gen_ai.usage.cache_creation_input_tokens": call.cache_write or None,
            "gen_ai.usage.reasoning_tokens": call.reasoning or None,
            "llm.usage.total_tokens": call.input_tokens + call.output_tokens,
        })
    return attrs


def render_otlp_genai_current(folder: Path) -> Rendering:
    lines = [_envelope([_span(c, f"chat {c.model}", genai_current_attributes(c))],
                       f"opentelemetry.instrumentation.{c.provider}") for c in CALLS]
    return Rendering([(_write(folder, "traces.jsonl", _jsonl(lines)), {})], ["otlp-json"])


def render_otlp_genai_older(folder: Path) -> Rendering:
    # protobuf's JSON encoding (base64 ids, enum names) and an exception event for the error
    lines = [_envelope([_span(c, f"{c.provider}.chat", genai_older_attributes(c),
                              protobuf_json=True,
                              events=() if c.ok else (_exception_event(c, c.provider),))],
                       f"opentelemetry.instrumentation.{c.provider}") for c in CALLS]
    return Rendering([(_write(folder, "traces.jsonl", _jsonl(lines)), {})], ["otlp-json"])


def render_otlp_proto(folder: Path) -> Rendering:
    """The current names, as the Collector's file exporter writes them with ``format: proto``:
    each ExportTraceServiceRequest's length (big-endian uint32), then its bytes."""
    parts = []
    for c in CALLS:
        doc = _envelope([_span(c, f"chat {c.model}", genai_current_attributes(c),
                               protobuf_json=True)], "opentelemetry.instrumentation.genai")
        data = json_format.ParseDict(doc, ExportTraceServiceRequest()).SerializeToString()
        parts.append(struct.pack(">I", len(data)) + data)
    return Rendering([(_write(folder, "traces.pb", b"".join(parts)), {})], ["otlp-proto"])


def openinference_attributes(call: Call) -> dict:
    """OpenInference: llm.token_count.prompt includes cache reads and writes (its Anthropic
    instrumentor adds them to Anthropic's input_tokens), completion includes reasoning."""
    attrs = {"openinference.span.kind": "LLM", "llm.provider": call.provider,
             "llm.system": call.provider, "llm.model_name": call.model,
             "llm.invocation_parameters": json.dumps({"model": call.requested}),
             "input.value": "hello", "input.mime_type": "text/plain"}
    if call.ok:
        attrs.update({
            "llm.token_count.prompt": call.input_tokens,
            "llm.token_count.completion": call.output_tokens,
            "llm.token_count.total": call.input_tokens + call.output_tokens,
            "llm.token_count.prompt_details.cache_read": call.cached or None,
            "llm.token_count.prompt_details.cache_write": call.cache_write or None,
            "llm.token_count.completion_details.reasoning": call.reasoning or None,
            "output.value": "hi",
        })
    return attrs


def render_openinference(folder: Path) -> Rendering:
    lines = [_envelope([_span(c, "ChatCompletion" if c.provider == "openai" else "Messages",
                              openinference_attributes(c),
                              events=() if c.ok else (_exception_event(c, c.provider),))],
                       f"openinference.instrumentation.{c.provider}") for c in CALLS]
    return Rendering([(_write(folder, "traces.jsonl", _jsonl(lines)), {})], ["openinference"])


# -- Langfuse ----------------------------------------------------------------------------------


def langfuse_usage_details(call: Call) -> dict:
    """``usageDetails`` as Langfuse stores them: mutually exclusive buckets whose sum is
    ``total``. OpenAI usage goes through the server's OpenAI schema (every *_tokens_details key
    split out of input / output: packages/shared/src/server/ingestion/types.ts); Anthropic's
    raw keys are kept beside ``input`` (c4 with Langfuse's own names, c5 with Anthropic's)."""
    if not call.ok:
        return {}  # Langfuse stores no usage for a level ERROR generation
    if call.provider == "openai":
        if not (call.cached or call.reasoning):
            return {"input": call.input_tokens, "output": call.output_tokens,
                    "total": call.input_tokens + call.output_tokens}
        return {"input": call.uncached, "input_cached_tokens": call.cached,
                "input_audio_tokens": 0, "output": call.visible,
                "output_reasoning_tokens": call.reasoning, "output_audio_tokens": 0,
                "output_accepted_prediction_tokens": 0, "output_rejected_prediction_tokens": 0,
                "total": call.input_tokens + call.output_tokens}
    if call.key == "c4":
        return {"input": call.uncached, "input_cache_read": call.cached,
                "input_cache_creation": call.cache_write, "output": call.output_tokens,
                "total": call.input_tokens + call.output_tokens}
    return {"input": call.uncached, "cache_read_input_tokens": call.cached,
            "cache_creation_input_tokens": call.cache_write, "output": call.output_tokens,
            "total": call.input_tokens + call.output_tokens}


def langfuse_observation(call: Call) -> dict:
    """One GENERATION of the UI's observations export (the fields the importer reads, in the
    export's names). Langfuse observations carry no provider."""
    end = call.ts + timedelta(milliseconds=call.latency_ms)
    cost = {} if not call.ok else {"total": TRUE_COST[call.key]}
    return {
        "id": f"gen-{call.key}", "traceId": f"trace-{call.key}", "type": "GENERATION",
        "name": "answer", "startTime": call.ts.isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"), "endTime": end.isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"), "model": call.model, "level": "DEFAULT" if call.ok else "ERROR",
        "statusMessage": None if call.ok else f"{call.error_type}: Error code: 429",
        "usageDetails": langfuse_usage_details(call), "costDetails": cost, "metadata": {},
    }


def render_langfuse_jsonl(folder: Path) -> Rendering:
    rows = [langfuse_observation(c) for c in CALLS]
    return Rendering([(_write(folder, "observations.jsonl", _jsonl(rows)), {})], ["langfuse"],
                     carries_provider=lambda call: False)


def langchain_usage_details(call: Call) -> dict:
    """``usageDetails`` of a generation recorded by langfuse-python's LangChain CallbackHandler
    (5.0.4, ``_parse_usage``/``_parse_usage_model``), worked out by hand:
    - ChatOpenAI: the message's ``usage_metadata`` (langchain-openai: input_tokens = prompt_tokens
      INCLUDING cached, input_token_details {audio, cache_read}, output_token_details {audio,
      reasoning}); the handler renames each detail ``input_<key>`` / ``output_<key>`` and
      subtracts it from ``input`` / ``output``: exclusive buckets again;
    - ChatAnthropic: the raw Anthropic ``usage`` of response_metadata (input_tokens EXCLUDING the
      cache) renamed input / output, cache_read_input_tokens and cache_creation_input_tokens
      kept, the ``cache_creation`` TTL object flattened to ``cache_creation_ephemeral_*``
      beside them (a breakdown of cache_creation_input_tokens, not more tokens), non-integers
      (service_tier) dropped; no total."""
    if not call.ok:
        return {}
    if call.provider == "openai":
        details_in = {"audio": 0, "cache_read": call.cached}
        details_out = {"audio": 0, "reasoning": call.reasoning}
        usage = {"input": call.input_tokens, "output": call.output_tokens,
                 "total": call.input_tokens + call.output_tokens}
        for key, value in details_in.items():
            usage[f"input_{key}"] = value
            usage["input"] = max(0, usage["input"] - value)
        for key, value in details_out.items():
            usage[f"output_{key}"] = value
            usage["output"] = max(0, usage["output"] - value)
        return usage
    return {"input": call.uncached, "output": call.output_tokens,
            "cache_read_input_tokens": call.cached,
            "cache_creation_input_tokens": call.cache_write,
            "cache_creation_ephemeral_5m_input_tokens": call.cache_write,
            "cache_creation_ephemeral_1h_input_tokens": 0}


def render_langfuse_langchain(folder: Path) -> Rendering:
    """Generations traced through LangChain: usage as above, and the handler's metadata
    (``ls_provider``, which names the provider)."""
    rows = []
    for call in CALLS:
        row = langfuse_observation(call)
        row["usageDetails"] = langchain_usage_details(call)
        row["metadata"] = {"ls_provider": call.provider, "ls_model_name": call.requested,
                           "ls_model_type": "chat"}
        rows.append(row)
    return Rendering([(_write(folder, "observations.jsonl", _jsonl(rows)), {})], ["langfuse"])


def render_langfuse_legacy_inclusive(folder: Path) -> Rendering:
    """Generations from instrumentors before langfuse/langfuse#10592 (e.g. @langfuse/openai <
    4.4.6): ``input`` / ``output`` already HOLD the detail keys beside them, which ``total``
    (= input + output) tells. The Anthropic calls keep the buckets."""
    rows = []
    for call in CALLS:
        row = langfuse_observation(call)
        if call.ok and call.provider == "openai":
            row["usageDetails"] = {"input": call.input_tokens, "input_cached_tokens": call.cached,
                                   "output": call.output_tokens,
                                   "output_reasoning_tokens": call.reasoning,
                                   "total": call.input_tokens + call.output_tokens}
        rows.append(row)
    return Rendering([(_write(folder, "observations.jsonl", _jsonl(rows)), {})], ["langfuse"],
                     carries_provider=lambda call: False)


def render_langfuse_v4_events(folder: Path) -> Rendering:
    """The observations export of a Langfuse v4 project (the events table): the model as
    ``providedModelName``, ClickHouse times in UTC, usage counts as quoted numbers
    (output_format_json_quote_64bit_integers), latency in ``latencyMs``."""
    rows = []
    for call in CALLS:
        end = call.ts + timedelta(milliseconds=call.latency_ms)
        usage = {k: str(v) for k, v in langfuse_usage_details(call).items()}
        rows.append({
            "id": f"ev-{call.key}", "traceId": f"trace-{call.key}", "type": "GENERATION",
            "name": "answer", "startTime": call.ts.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "endTime": end.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "level": "DEFAULT" if call.ok else "ERROR",
            "statusMessage": None if call.ok else f"{call.error_type}: Error code: 429",
            "providedModelName": call.model, "usageDetails": usage,
            "costDetails": {"total": TRUE_COST[call.key]} if call.ok else {},
            "latencyMs": str(call.latency_ms), "metadata": {}})
    return Rendering([(_write(folder, "events.jsonl", _jsonl(rows)), {})], ["langfuse"],
                     carries_provider=lambda call: False)


def render_langfuse_api_page(folder: Path) -> Rendering:
    """One page of ``GET /api/public/observations`` (v1): ``usageDetails`` beside the derived
    ``usage`` (input = every input bucket summed), ``promptTokens`` / ``completionTokens`` and
    ``latency`` in seconds."""
    data = []
    for call in CALLS:
        obs = langfuse_observation(call)
        details = obs["usageDetails"]
        inp = sum(v for k, v in details.items() if "input" in k or k.startswith("cache"))
        out = sum(v for k, v in details.items() if "output" in k)
        obs.update(usage={"input": inp, "output": out, "total": inp + out, "unit": "TOKENS"},
                   promptTokens=inp, completionTokens=out, totalTokens=inp + out,
                   latency=call.latency_ms / 1000,
                   calculatedTotalCost=TRUE_COST[call.key] if call.ok else None)
        data.append(obs)
    page = {"data": data, "meta": {"page": 1, "limit": 50, "totalItems": len(data),
                                   "totalPages": 1}}
    return Rendering([(_write(folder, "observations.json", json.dumps(page, indent=2)), {})],
                     ["langfuse"], carries_provider=lambda call: False)


def render_langfuse_csv(folder: Path) -> Rendering:
    """The batch export's CSV (transformStreamToCsv.ts): the first row's keys as the header,
    every field quoted, objects and Dates as JSON text (a Date with its quotes), null as ""."""
    rows = [langfuse_observation(c) for c in CALLS]
    times = {"startTime", "endTime"}

    def field(key, value) -> str:
        if value is None:
            text = ""
        elif isinstance(value, str) and key not in times:
            text = value
        else:
            text = json.dumps(value, separators=(",", ":"))
        return '"' + text.replace('"', '""') + '"'

    header = list(rows[0])
    lines = [",".join(f'"{k}"' for k in header)]
    lines += [",".join(field(k, row.get(k)) for k in header) for row in rows]
    return Rendering([(_write(folder, "observations.csv", "\n".join(lines) + "\n"), {})],
                     ["langfuse"], carries_provider=lambda call: False)


def openai_chat_usage(call: Call) -> dict:
    """OpenAI's Chat Completions ``usage`` object: prompt_tokens INCLUDE cached_tokens,
    completion_tokens INCLUDE reasoning_tokens."""
    return {"prompt_tokens": call.input_tokens, "completion_tokens": call.output_tokens,
            "total_tokens": call.input_tokens + call.output_tokens,
            "prompt_tokens_details": {"cached_tokens": call.cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": call.reasoning, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def openai_responses_usage(call: Call) -> dict:
    """The Responses API's ``usage``: input_tokens INCLUDE input_tokens_details.cached_tokens
    (the opposite of Anthropic's field of the same name)."""
    return {"input_tokens": call.input_tokens,
            "input_tokens_details": {"cached_tokens": call.cached},
            "output_tokens": call.output_tokens,
            "output_tokens_details": {"reasoning_tokens": call.reasoning},
            "total_tokens": call.input_tokens + call.output_tokens}


def anthropic_usage(call: Call) -> dict:
    """Anthropic's Messages ``usage``: input_tokens EXCLUDES cache reads and writes."""
    return {"input_tokens": call.uncached, "cache_read_input_tokens": call.cached,
            "cache_creation_input_tokens": call.cache_write,
            "cache_creation": {"ephemeral_5m_input_tokens": call.cache_write,
                               "ephemeral_1h_input_tokens": 0},
            "output_tokens": call.output_tokens, "service_tier": "standard"}


def langfuse_sdk_attributes(call: Call) -> dict:
    """A Langfuse SDK (v3+) generation span: OpenAI calls as its OpenAI wrapper records them
    (the provider's usage object: prompt_tokens / input_tokens inclusive), Anthropic calls as a
    user's ``usage_details`` in Langfuse's buckets (``input`` without the cache)."""
    attrs = {"langfuse.observation.type": "generation",
             "langfuse.observation.model.name": call.model}
    if not call.ok:
        attrs["langfuse.observation.level"] = "ERROR"
        attrs["langfuse.observation.status_message"] = f"{call.error_type}: Error code: 429"
    elif call.provider == "openai":  # c2 from the Responses API, the others Chat Completions
        usage = openai_responses_usage(call) if call.reasoning else openai_chat_usage(call)
        attrs["langfuse.observation.usage_details"] = json.dumps(usage)
    else:
        attrs["langfuse.observation.usage_details"] = json.dumps(
            {"input": call.uncached, "cache_read_input_tokens": call.cached,
             "cache_creation_input_tokens": call.cache_write, "output": call.output_tokens})
    return attrs


def render_langfuse_sdk_spans(folder: Path) -> Rendering:
    # The SDK names no provider; the importer infers openai from its OpenAI wrapper's span name.
    lines = [_envelope([_span(c, "OpenAI-generation" if c.provider == "openai" else "messages",
                              langfuse_sdk_attributes(c))], "langfuse-sdk") for c in CALLS]
    return Rendering([(_write(folder, "traces.jsonl", _jsonl(lines)), {})], ["otlp-json"],
                     carries_provider=lambda call: call.provider == "openai")


# -- provider-native logs ------------------------------------------------------------------------


def anthropic_message(call: Call) -> dict:
    return {"id": f"msg_{call.key}", "type": "message", "role": "assistant", "model": call.model,
            "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": anthropic_usage(call)}


def failed_call_record(call: Call) -> dict:
    """An application's record of a call that raised: the request, the error, no response."""
    return {"ts": call.iso, "latency_ms": call.latency_ms, "provider": call.provider,
            "request": {"model": call.requested,
                        "messages": [{"role": "user", "content": "hello"}]},
            "error": {"type": call.error_type, "message": "Error code: 429"}}


def render_provider_chat(folder: Path) -> Rendering:
    """OpenAI Chat Completions objects as logged (``response.model_dump()``), Anthropic Messages
    objects in the application's wrapper (they carry no time), and the failed call's record."""
    records = []
    for c in CALLS:
        if not c.ok:
            records.append(failed_call_record(c))
        elif c.provider == "openai":
            records.append({
                "id": f"chatcmpl-{c.key}", "object": "chat.completion", "created": c.epoch_s,
                "model": c.model, "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant",
                                                           "content": "hi"}}],
                "usage": openai_chat_usage(c)})
        else:
            records.append({"ts": c.iso, "latency_ms": c.latency_ms,
                            "response": anthropic_message(c)})
    return Rendering([(_write(folder, "responses.jsonl", _jsonl(records)), {})], ["openai"])


def render_provider_responses(folder: Path) -> Rendering:
    """OpenAI Responses API objects (a failed one for the 429) and Anthropic messages, all in
    the application's wrapper."""
    records = []
    for c in CALLS:
        if c.provider == "anthropic":
            obj = anthropic_message(c)
        else:
            obj = {"id": f"resp_{c.key}", "object": "response", "created_at": c.epoch_s,
                   "model": c.model, "output": []}
            if c.ok:
                obj.update(status="completed", usage=openai_responses_usage(c), output=[
                    {"type": "message", "role": "assistant",
                     "content": [{"type": "output_text", "text": "hi"}]}])
            else:
                obj.update(status="failed", usage=None,
                           error={"code": "rate_limit_exceeded", "message": "Error code: 429"})
        records.append({"ts": c.iso, "latency_ms": c.latency_ms, "response": obj})
    return Rendering([(_write(folder, "responses.jsonl", _jsonl(records)), {})], ["openai"])


# -- a user's own shape with a YAML mapping (docs/mapping.md) -----------------------------------

# OpenAI's usage.prompt_tokens already INCLUDES prompt_tokens_details.cached_tokens: as is.
OPENAI_MAPPING = """
table: requests
input: jsonl
columns:
  request_id: id
  ts: at
  provider: {value: openai}
  model: model
  status: status
  error_type: error
  input_tokens: usage.prompt_tokens
  cached_input_tokens: usage.prompt_tokens_details.cached_tokens
  output_tokens: usage.completion_tokens
  reasoning_tokens: usage.completion_tokens_details.reasoning_tokens
"""
# Anthropic's usage.input_tokens EXCLUDES cache reads and writes: a sum (docs/mapping.md).
ANTHROPIC_MAPPING = """
table: requests
input: jsonl
columns:
  request_id: id
  ts: at
  provider: {value: anthropic}
  model: model
  status: status
  input_tokens: {sum: [usage.input_tokens, usage.cache_read_input_tokens,
                       usage.cache_creation_input_tokens]}
  cached_input_tokens: usage.cache_read_input_tokens
  cache_write_tokens: usage.cache_creation_input_tokens
  output_tokens: usage.output_tokens
"""


def render_mapping(folder: Path) -> Rendering:
    """The application logs each call with the provider's raw usage object, one file per
    provider, each ingested with its mapping (the two of docs/mapping.md)."""
    files, formats = [], []
    for provider, mapping, usage in (("openai", OPENAI_MAPPING, openai_chat_usage),
                                     ("anthropic", ANTHROPIC_MAPPING, anthropic_usage)):
        records = [{"id": f"{provider}-{c.key}", "at": c.iso, "model": c.model,
                    "status": c.status, "error": c.error_type,
                    "usage": usage(c) if c.ok else None}
                   for c in CALLS if c.provider == provider]
        spec = _write(folder, f"{provider}.yaml", mapping)
        files.append((_write(folder, f"{provider}.jsonl", _jsonl(records)), {"mapping": spec}))
        formats.append(f"mapping:{provider}.yaml")
    return Rendering(files, formats)


RENDERERS: dict[str, Callable[[Path], Rendering]] = {
    "canonical-jsonl": render_canonical_jsonl,
    "canonical-jsonl-exact-path": render_canonical_jsonl_exact,
    "canonical-jsonl-python-path": render_canonical_jsonl_python,
    "canonical-jsonl-grouped-files": render_canonical_jsonl_grouped,
    "canonical-csv": render_canonical_csv,
    "canonical-json": render_canonical_json,
    "canonical-parquet": render_canonical_parquet,
    "otlp-genai-current": render_otlp_genai_current,
    "otlp-genai-older": render_otlp_genai_older,
    "otlp-proto": render_otlp_proto,
    "openinference": render_openinference,
    "langfuse-export-jsonl": render_langfuse_jsonl,
    "langfuse-export-csv": render_langfuse_csv,
    "langfuse-export-legacy-inclusive": render_langfuse_legacy_inclusive,
    "langfuse-export-langchain": render_langfuse_langchain,
    "langfuse-export-v4-events": render_langfuse_v4_events,
    "langfuse-api-page": render_langfuse_api_page,
    "langfuse-sdk-spans": render_langfuse_sdk_spans,
    "provider-chat-completions": render_provider_chat,
    "provider-responses-api": render_provider_responses,
    "yaml-mapping": render_mapping,
}


# ---------------------------------------------------------------------------------------------
# Ingest each rendering into its own store (once per module)

STORED = ("SELECT ts, model, input_tokens, cached_input_tokens, cache_write_tokens, "
          "output_tokens, reasoning_tokens, status, provider, cost_usd FROM requests "
          "ORDER BY ts")


@dataclass
class Ingested:
    reports: list  # lib.ingest.pipeline.FileReport, one per file
    rendering: Rendering
    rows: list[tuple]  # STORED's rows


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """ingested(name) -> Ingested: the rendering ``name`` ingested into a fresh store of its
    own; each rendering is ingested once per module run."""
    done: dict[str, Ingested] = {}

    def get(name: str) -> Ingested:
        if name not in done:
            root = tmp_path_factory.mktemp(name)
            rendering = RENDERERS[name](root / "in")
            lake = Lake(root / "store")
            reports = []
            with pytest.MonkeyPatch.context() as mp:
                for key, value in rendering.env.items():
                    mp.setenv(key, value)
                for path, extra in rendering.files:
                    reports += ingest_paths(lake, [str(path)], overrides={},
                                            compact_min_files=0, **extra).files
            engine = Engine(lake)
            try:
                rows = engine.query(STORED).rows()
            finally:
                engine.close()
            done[name] = Ingested(reports, rendering, rows)
        return done[name]

    return get


# ---------------------------------------------------------------------------------------------
# The truth itself


def test_hand_computed_costs_match_the_cost_engine():
    assert sum(TRUE_COST.values()) == pytest.approx(TRUE_TOTAL_COST, rel=1e-12)
    for call in CALLS:
        engine_cost = pricing.request_cost(
            call.provider, call.model, call.ts, call.input_tokens or 0, call.cached,
            call.cache_write, call.output_tokens or 0, overrides={})
        assert engine_cost == pytest.approx(TRUE_COST[call.key], rel=1e-9), call.key
        # the same without a provider (Langfuse renderings carry none): same catalogue price
        assert pricing.request_cost(
            None, call.model, call.ts, call.input_tokens or 0, call.cached, call.cache_write,
            call.output_tokens or 0, overrides={}) == pytest.approx(TRUE_COST[call.key],
                                                                    rel=1e-9), call.key


def test_the_double_counting_mistakes_change_the_asserted_numbers():
    """The comparison can fail: the two classic mistakes give other tokens and other costs."""
    c1, c4, c5 = (next(c for c in CALLS if c.key == k) for k in ("c1", "c4", "c5"))
    # OpenAI's cached tokens added to prompt_tokens (which already holds them)
    doubled = pricing.request_cost("openai", c1.model, c1.ts, c1.input_tokens + c1.cached,
                                   c1.cached, 0, c1.output_tokens, overrides={})
    assert doubled == pytest.approx(0.045) and doubled != pytest.approx(TRUE_COST["c1"])
    # Anthropic's raw input_tokens taken as the whole: c4's counts contradict (no price, and
    # ingestion quarantines the row), c5 is under-priced
    assert c4.cached + c4.cache_write > c4.uncached
    assert pricing.request_cost("anthropic", c4.model, c4.ts, c4.uncached, c4.cached,
                                c4.cache_write, c4.output_tokens, overrides={}) is None
    short = pricing.request_cost("anthropic", c5.model, c5.ts, c5.uncached, c5.cached,
                                 c5.cache_write, c5.output_tokens, overrides={})
    assert short == pytest.approx(0.0198) and short != pytest.approx(TRUE_COST["c5"])


# ---------------------------------------------------------------------------------------------
# Each format against the truth


@pytest.mark.parametrize("name", RENDERERS)
def test_format_stores_the_true_tokens_and_cost(ingested, name):
    result = ingested(name)
    rendering = result.rendering
    for report, fmt in zip(result.reports, rendering.formats, strict=True):
        assert report.error is None, report.error
        assert (report.format, report.quarantined, report.reasons) == (fmt, 0, [])
    assert sum(r.stored.get("requests", 0) for r in result.reports) == len(CALLS)
    assert len(result.rows) == len(CALLS)
    for call, row in zip(CALLS, result.rows, strict=True):
        *tokens, provider, cost = row
        assert tuple(tokens) == truth_row(call), call.key
        if rendering.carries_provider(call):
            assert provider == call.provider, call.key
        assert cost == pytest.approx(TRUE_COST[call.key], rel=1e-9, abs=1e-15), call.key
    assert sum(row[-1] for row in result.rows) == pytest.approx(TRUE_TOTAL_COST, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# The formats against each other


def test_every_format_stores_the_same_rows(ingested):
    """Every rendering (but the known bugs') stores the same tuples and bit-for-bit the same
    costs as the canonical JSONL, which states design §3's counts directly: the four pricing
    paths (the fast path's SQL, the exact SQL path, a group's SQL, Python's price_table) agree
    exactly, so totals summed over formats never drift apart."""
    reference = [row[:-2] for row in ingested("canonical-jsonl").rows]
    reference_costs = [row[-1] for row in ingested("canonical-jsonl").rows]
    assert reference == [truth_row(c) for c in CALLS]
    differing = {}
    for name in RENDERERS:
        rows = ingested(name).rows
        tokens, costs = [row[:-2] for row in rows], [row[-1] for row in rows]
        if tokens != reference or costs != reference_costs:
            differing[name] = (tokens, costs)
    assert differing == {}


# ---------------------------------------------------------------------------------------------
# A requested alias answered by a dated snapshot: model = the one requested (design §3),
# response_model = the one that answered, in every format that carries both names. (Langfuse
# observations carry one ``model``, whichever the integration recorded: not compared here.)

ALIASED = [
    Call("a1", 1, "openai", GPT4O, requested_model="gpt-4o", input_tokens=12_000,
         cached=8_000, output_tokens=500),
    Call("a2", 2, "anthropic", SONNET4, requested_model="claude-sonnet-4-0",
         input_tokens=7_700, cached=6_000, cache_write=1_500, output_tokens=800),
]
ALIASED_COST = [TRUE_COST["c1"], TRUE_COST["c4"]]  # the same tokens and prices as c1 and c4


def aliased_provider_native(folder: Path) -> Path:
    """Each response object in the application's wrapper, beside the request it answered."""
    records = []
    for call in ALIASED:
        if call.provider == "openai":
            obj = {"id": f"chatcmpl-{call.key}", "object": "chat.completion",
                   "created": call.epoch_s, "model": call.model,
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "hi"}}],
                   "usage": openai_chat_usage(call)}
        else:
            obj = anthropic_message(call)
        records.append({"ts": call.iso, "latency_ms": call.latency_ms,
                        "request": {"model": call.requested, "max_tokens": 1024,
                                    "messages": [{"role": "user", "content": "hello"}]},
                        "response": obj})
    return _write(folder, "responses.jsonl", _jsonl(records))


ALIAS_RENDERERS: dict[str, Callable[[Path], Path]] = {
    "canonical-jsonl": lambda folder: _write(folder, "requests.jsonl", _jsonl(
        [canonical_row(c) for c in ALIASED])),
    "otlp-genai-current": lambda folder: _write(folder, "traces.jsonl", _jsonl(
        [_envelope([_span(c, "chat", genai_current_attributes(c))], "genai") for c in ALIASED])),
    "otlp-genai-older": lambda folder: _write(folder, "traces.jsonl", _jsonl(
        [_envelope([_span(c, "chat", genai_older_attributes(c))], "genai") for c in ALIASED])),
    "openinference": lambda folder: _write(folder, "traces.jsonl", _jsonl(
        [_envelope([_span(c, "llm", openinference_attributes(c))], "oi") for c in ALIASED])),
    "provider-native-wrapped": aliased_provider_native,
}


@pytest.mark.parametrize("name", ALIAS_RENDERERS)
def test_requested_alias_and_answering_snapshot(tmp_path, name):
    path = ALIAS_RENDERERS[name](tmp_path / "in")
    lake = Lake(tmp_path / "store")
    report = ingest_paths(lake, [str(path)], overrides={}, compact_min_files=0).files[0]
    assert (report.error, report.quarantined, report.stored.get("requests")) == (None, 0, 2)
    engine = Engine(lake)
    try:
        rows = engine.query("SELECT model, response_model, input_tokens, cached_input_tokens, "
                            "cache_write_tokens, output_tokens, cost_usd FROM requests "
                            "ORDER BY ts").rows()
    finally:
        engine.close()
    # the tokens and the cost do not depend on the name (the alias and the snapshot have the
    # same price on that day)...
    assert [r[2:6] for r in rows] == [(c.input_tokens, c.cached, c.cache_write,
                                       c.output_tokens) for c in ALIASED]
    assert [r[6] for r in rows] == pytest.approx(ALIASED_COST, rel=1e-9)
    # ...and the names are the design's
    assert [r[:2] for r in rows] == [(c.requested, c.model) for c in ALIASED]
