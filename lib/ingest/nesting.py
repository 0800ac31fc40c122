"""Model calls recorded twice: counted once, as the innermost call.

Two instrumentations of one process often record the same model call: a framework's or an SDK's
span (LangChain's LLM span, a Langfuse generation, a LiteLLM call) around the client library's
span of the HTTP call (opentelemetry-instrumentation-openai-v2, OpenInference's OpenAI
instrumentor), both with the model and the token counts. Summing both doubles the requests, the
tokens and the cost (Datadog's LangChain + Anthropic spans, Phoenix's LlamaIndex + OpenAI spans
are well-known cases). So a model-call span with another model-call span below it in its trace
(a child, or further down through other spans) is an envelope: only the calls with none below
them are requests. An envelope around a failed call and its retry counts as both of those, not
three.

The envelope stays in the trace (the spans table), with what it recorded (model, tokens, cost,
its attributes) as its span's attributes and ``sightline.counted_as``, the call it is counted
as; evals that judged it (``gen_ai.evaluation.result`` events on it) are moved to that call, the
last one below it.

Done per file, once the file's rows are written and before its batch commits (Format.finish):
an envelope whose inner call is in another file (or already in the store) is not seen.
"""

from __future__ import annotations

import shutil

from lib import schema
from lib.ingest.formats.canonical import json_object_sql

NOTE = ("model-call span(s) around another model call of their trace (two instrumentations "
        "recording one call, such as a framework's span and the client library's): kept in the "
        "trace, not counted as requests, their calls counted once.")

# How far up a model call's ancestors are walked: parent links that loop stop here.
MAX_DEPTH = 64

# What an envelope's request row recorded, as its span's attributes.
_KEPT = [c for c in schema.TABLES["requests"].names
         if c not in {"request_id", "trace_id", "parent_id", "ts", "latency_ms", "status",
                      "source_file", "batch_id", "ingested_at"}]


def count_nested_calls_once(batch) -> dict[str, int]:
    """Drop from the batch's requests the model calls with another model call below them in
    their trace (see the module's docstring); returns ``{NOTE: n}``, or ``{}`` when none."""
    import duckdb

    spans, requests = batch.written_files("spans"), batch.written_files("requests")
    if not spans or not requests:
        return {}
    scratch = batch.lake.tmp_dir / f"nest-{batch.batch_id}"
    scratch.mkdir(parents=True, exist_ok=True)
    # Bounded like the rest of an ingest: the walk's tables and joins spill to the scratch folder.
    con = duckdb.connect(config={
        "memory_limit": "256MB", "threads": 2, "temp_directory": str(scratch),
        "preserve_insertion_order": False,
        "autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.execute("SET TimeZone = 'UTC'")
        files = {"spans": [str(p) for p in spans], "requests": [str(p) for p in requests]}
        found = _envelopes(con, files)
        if not found:
            return {}
        # What each envelope's request row recorded becomes its span's attributes.
        entries = ", ".join(
            [f"{{'k': {_lit(c)}, 'v': "
             + (f"coalesce(try_cast(r.{_q(c)} AS JSON), to_json(r.{_q(c)}))"
                if c == "attributes" else f"to_json(r.{_q(c)})") + "}" for c in _KEPT]
            + ["{'k': 'sightline.counted_as', 'v': to_json(e.inner_id)}"])
        con.execute(
            "CREATE TEMP TABLE envelope_attrs AS SELECT r.request_id AS span_id, "
            + json_object_sql(f"list_filter([{entries}], "
                              "x -> x.v IS NOT NULL AND json_type(x.v) <> 'NULL')")
            + " AS attrs FROM read_parquet($requests) r "
            "JOIN envelopes e ON e.outer_id = r.request_id", {"requests": files["requests"]})
        batch.replace_written(
            "requests", con, "SELECT * FROM written WHERE request_id NOT IN "
            "(SELECT outer_id FROM envelopes)",
            "request_id IN (SELECT outer_id FROM envelopes)", {})
        batch.replace_written(
            "spans", con, "SELECT w.* REPLACE (coalesce(a.attrs, w.attributes) AS attributes) "
            "FROM written w LEFT JOIN envelope_attrs a ON a.span_id = w.span_id",
            "span_id IN (SELECT span_id FROM envelope_attrs)", {})
        if batch.written_files("evals"):
            batch.replace_written(
                "evals", con, "SELECT w.* REPLACE (coalesce(e.inner_id, w.request_id) AS "
                "request_id) FROM written w LEFT JOIN envelopes e ON e.outer_id = w.request_id",
                "request_id IN (SELECT outer_id FROM envelopes)", {})
        return {NOTE: found}
    finally:
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _envelopes(con, files: dict[str, list[str]]) -> int:
    """How many envelopes the batch has, listed in the temp table ``envelopes`` (outer_id: the
    envelope's span id, inner_id: the call it counts as): each model call's ancestors,
    walked up one level per query through the spans (joins DuckDB can spill, where a recursive
    query's working set must fit in memory). Only traces with two calls or more can hold an
    envelope."""
    con.execute(
        "CREATE TEMP TABLE calls AS SELECT trace_id, request_id AS span_id, parent_id, ts "
        "FROM read_parquet($requests) WHERE trace_id IN (SELECT trace_id FROM "
        "read_parquet($requests) GROUP BY trace_id HAVING count(*) > 1)",
        {"requests": files["requests"]})
    if not con.execute("SELECT count(*) FROM calls WHERE parent_id IS NOT NULL").fetchone()[0]:
        return 0
    con.execute(
        "CREATE TEMP TABLE links AS SELECT DISTINCT trace_id, span_id, parent_id "
        "FROM read_parquet($spans) WHERE parent_id IS NOT NULL "
        "AND trace_id IN (SELECT trace_id FROM calls)", {"spans": files["spans"]})
    con.execute("CREATE TEMP TABLE pairs (trace_id VARCHAR, outer_id VARCHAR, inner_id VARCHAR)")
    con.execute("CREATE TEMP TABLE up AS SELECT trace_id, parent_id AS id, span_id AS inner_id "
                "FROM calls WHERE parent_id IS NOT NULL")
    for _ in range(MAX_DEPTH):
        con.execute("INSERT INTO pairs SELECT c.trace_id, c.span_id, up.inner_id FROM up "
                    "JOIN calls c ON c.trace_id = up.trace_id AND c.span_id = up.id "
                    "WHERE up.inner_id <> c.span_id")
        con.execute("CREATE OR REPLACE TEMP TABLE up AS SELECT up.trace_id, l.parent_id AS id, "
                    "up.inner_id FROM up JOIN links l ON l.trace_id = up.trace_id "
                    "AND l.span_id = up.id")
        if not con.execute("SELECT count(*) FROM up").fetchone()[0]:
            break
    # The call an envelope counts as: the last of the innermost calls below it.
    con.execute(
        "CREATE TEMP TABLE envelopes AS SELECT p.outer_id, "
        "arg_max(p.inner_id, (i.ts, p.inner_id)) AS inner_id FROM pairs p "
        "JOIN calls i ON i.trace_id = p.trace_id AND i.span_id = p.inner_id "
        "WHERE p.inner_id NOT IN (SELECT outer_id FROM pairs) GROUP BY p.outer_id")
    return con.execute("SELECT count(*) FROM envelopes").fetchone()[0]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
