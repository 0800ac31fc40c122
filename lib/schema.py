"""The canonical tables (design §3) as Arrow schemas: the one definition readers and writers use.

Units are in the column names and documented once here:
- times are UTC instants (`timestamp[us, tz=UTC]`);
- ``*_ms`` are milliseconds, ``*_usd`` are US dollars, ``*_tokens`` are token counts;
- ``input_tokens`` includes ``cached_input_tokens`` and ``cache_write_tokens``, which includes
  ``cache_write_1h_tokens`` (the writes to Anthropic's one-hour cache, priced higher);
- ``output_tokens`` includes ``reasoning_tokens``; ``web_searches`` counts searches, billed apart;
- ``attributes`` is a JSON object serialized as text, so any key a user logs can be sliced on.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

LINEAGE = [
    pa.field("source_file", pa.string()),
    pa.field("batch_id", pa.string()),
    pa.field("ingested_at", TS),
]

REQUESTS = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("trace_id", pa.string()),
        pa.field("parent_id", pa.string()),
        pa.field("ts", TS, nullable=False),
        pa.field("latency_ms", pa.float64()),
        pa.field("ttft_ms", pa.float64()),
        pa.field("provider", pa.string()),
        pa.field("model", pa.string()),
        pa.field("response_model", pa.string()),
        pa.field("operation", pa.string()),
        pa.field("input_tokens", pa.int64()),
        pa.field("cached_input_tokens", pa.int64()),
        pa.field("cache_write_tokens", pa.int64()),
        pa.field("output_tokens", pa.int64()),
        pa.field("reasoning_tokens", pa.int64()),
        pa.field("cost_usd", pa.float64()),
        pa.field("logged_cost_usd", pa.float64()),
        pa.field("status", pa.string()),
        pa.field("error_type", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("finish_reason", pa.string()),
        pa.field("service", pa.string()),
        pa.field("environment", pa.string()),
        pa.field("feature", pa.string()),
        pa.field("app_version", pa.string()),
        pa.field("prompt_name", pa.string()),
        pa.field("prompt_version", pa.string()),
        pa.field("user_id", pa.string()),
        pa.field("customer_id", pa.string()),
        pa.field("session_id", pa.string()),
        pa.field("guardrail", pa.string()),
        pa.field("guardrail_action", pa.string()),
        pa.field("cache_hit", pa.bool_()),
        pa.field("input_text", pa.string()),
        pa.field("output_text", pa.string()),
        pa.field("attributes", pa.string()),
        # (added after the others: the part of cache_write_tokens written to a one-hour cache)
        pa.field("cache_write_1h_tokens", pa.int64()),
        # (added after the others: web searches a call made, billed per search)
        pa.field("web_searches", pa.int64()),
        *LINEAGE,
    ]
)

EVALS = pa.schema(
    [
        pa.field("eval_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string()),
        pa.field("ts", TS, nullable=False),
        pa.field("source", pa.string()),  # offline | online | feedback
        pa.field("dataset", pa.string()),
        pa.field("case_id", pa.string()),
        pa.field("epoch", pa.int64()),
        pa.field("request_id", pa.string()),
        pa.field("version", pa.string()),
        pa.field("model", pa.string()),
        pa.field("metric", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("passed", pa.bool_()),
        pa.field("judge", pa.string()),
        pa.field("label", pa.string()),
        pa.field("explanation", pa.string()),
        pa.field("attributes", pa.string()),
        *LINEAGE,
    ]
)

EVENTS = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("kind", pa.string()),  # deploy | prompt_change | model_change | incident | note
        pa.field("service", pa.string()),
        pa.field("version", pa.string()),
        pa.field("title", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("author", pa.string()),
        # the other keys of an event as logged (JSON object text): "nothing a user logged is
        # lost" (they were dropped silently; added 2026-11-27, null in files before)
        pa.field("attributes", pa.string()),
        *LINEAGE,
    ]
)

# Spans that are not model calls (agent steps, tools, retrieval): kept so a request's trace can be
# drawn as a waterfall, never counted as requests.
SPANS = pa.schema(
    [
        pa.field("span_id", pa.string(), nullable=False),
        pa.field("trace_id", pa.string()),
        pa.field("parent_id", pa.string()),
        pa.field("ts", TS, nullable=False),
        pa.field("duration_ms", pa.float64()),
        pa.field("name", pa.string()),
        pa.field("kind", pa.string()),  # llm | agent | tool | retrieval | chain | other
        pa.field("status", pa.string()),
        pa.field("attributes", pa.string()),
        *LINEAGE,
    ]
)

QUARANTINE = pa.schema(
    [
        pa.field("quarantine_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),  # when it was quarantined (partition key)
        pa.field("source_file", pa.string()),
        pa.field("line", pa.int64()),
        pa.field("raw", pa.string()),  # truncated to RAW_MAX_CHARS
        pa.field("reason", pa.string()),
        pa.field("batch_id", pa.string()),
        pa.field("ingested_at", TS),
    ]
)

RAW_MAX_CHARS = 2000

TABLES: dict[str, pa.Schema] = {
    "requests": REQUESTS,
    "evals": EVALS,
    "events": EVENTS,
    "spans": SPANS,
    "quarantine": QUARANTINE,
}

# The unique key of each table: a row whose key is already in the lake is a duplicate.
KEYS: dict[str, str] = {
    "requests": "request_id",
    "evals": "eval_id",
    "events": "event_id",
    "spans": "span_id",
    "quarantine": "quarantine_id",
}

# In a span's attributes: the request a span that recorded the same model call around it is
# counted as (lib/ingest/nesting.py); such a span is no request of its own.
COUNTED_AS = "sightline.counted_as"

# SQL: the trace an eval judges, from its attributes (``{row}``: a table alias and a dot, or
# nothing). A judgement of a whole trace (a Langfuse score on a trace) or of a step that is no
# model call (an agent's span) has no request of its own: its trace ties it to the requests.
EVAL_TRACE_SQL = "try(json_extract_string({row}attributes, '$.trace_id'))"

def sql_identifier(name: str) -> str:
    """``name`` (a column) quoted as a DuckDB identifier: ``"input_tokens"``."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(text) -> str:
    """``text`` as a DuckDB string literal: ``'it''s'``."""
    return "'" + str(text).replace("'", "''") + "'"


_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN",
    TS: "TIMESTAMPTZ",
}


def duckdb_type(arrow_type: pa.DataType) -> str:
    """The DuckDB SQL type that holds values of ``arrow_type`` without loss."""
    return _DUCKDB_TYPES[arrow_type]


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Return ``table`` with exactly ``schema``'s columns, in order; missing columns are null.

    Raises ``pyarrow.ArrowInvalid`` when a present column cannot be cast safely.
    """
    columns = []
    for field in schema:
        if field.name in table.column_names:
            col = table.column(field.name)
            if col.type != field.type:
                col = col.cast(field.type)
            columns.append(col)
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=_nullable(schema))


def _nullable(schema: pa.Schema) -> pa.Schema:
    # Parquet round-trips keep nullability; we validate required fields ourselves and keep the
    # physical schema permissive so one stray null quarantines a row instead of failing a batch.
    return pa.schema([f.with_nullable(True) for f in schema])


def empty(name: str) -> pa.Table:
    """An empty table of the named canonical schema."""
    return _nullable(TABLES[name]).empty_table()
