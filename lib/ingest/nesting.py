"""Model calls recorded twice: counted once, as the innermost call.

Two instrumentations often record the same model call: a framework's or an SDK's span (LangChain's
LLM span, a Vercel AI SDK ``generateText`` summing its steps, a gateway) around the client
library's span of the HTTP call (opentelemetry-instrumentation-openai-v2, OpenInference's OpenAI
instrumentor), both with the model and the token counts. Summing both doubles the requests, the
tokens and the cost (Datadog's LangChain + Anthropic spans, Phoenix's LlamaIndex + OpenAI spans
are well-known cases). So a model-call span with another model-call span below it in its trace
(a child, or further down through other spans) that starts before it ends is an envelope: only
the calls with none below them are requests. An envelope around a failed call and its retry
counts as both of those, not three. A call below that starts after the span above it ended is
work that followed it, not the same call: both count.

The envelope stays in the trace (the spans table), with what it recorded (model, tokens, cost,
its attributes) as its span's attributes and ``sightline.counted_as``, the call it is counted
as: the last of the innermost calls below it. That call takes from the envelope what it lacks:
who and what it was for (user, session, feature, customer, prompt, version), and the usage and
cost when it recorded none. Evals that judged the envelope (``gen_ai.evaluation.result`` events
on it) are moved to that call.

Done per file, once its rows are written and before its batch commits (Format.finish), over the
file's spans and the store's spans of the same traces: an envelope whose inner call came in an
earlier file is found; one stored before its inner call arrives stays counted.
"""

from __future__ import annotations

import shutil

from lib import schema
from lib.ingest.formats.canonical import json_object_sql

NOTE = ("model-call span(s) around another model call of their trace (two instrumentations "
        "recording one call, such as a framework's span and the client library's): kept in the "
        "trace, not counted as requests, their calls counted once.")

# How far up a model call's ancestors are walked: parent links that loop stop here.
MAX_DEPTH = 256

# What an envelope's request row recorded, as its span's attributes.
_KEPT = [c for c in schema.TABLES["requests"].names
         if c not in {"request_id", "trace_id", "parent_id", "ts", "latency_ms", "status",
                      "source_file", "batch_id", "ingested_at"}]
# What the call an envelope counts as takes from it where it has none.
_ATTRIBUTION = ["user_id", "session_id", "feature", "customer_id", "prompt_name",
                "prompt_version", "app_version", "environment", "service"]
_USAGE = ["input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
          "reasoning_tokens", "cost_usd", "logged_cost_usd"]


def count_nested_calls_once(batch) -> dict[str, int]:
    """Drop from the batch's requests the model calls with another model call below them in
    their trace (see the module's docstring); returns ``{NOTE: n}``, or ``{}`` when none."""
    import duckdb

    spans, requests = batch.written_files("spans"), batch.written_files("requests")
    if not requests:
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
        days = [r[0] for r in con.execute(
            f"SELECT DISTINCT strftime(ts, '%Y-%m-%d') FROM {_read('$requests')}",
            {"requests": files["requests"]}).fetchall()]
        stored = {name: batch.lake._files_of_days(name, days) for name in ("requests", "spans")}
        found = _envelopes(con, files, stored)
        if not found:
            return {}
        _rewrite(batch, con, files)
        return {NOTE: found}
    finally:
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _read(files: str) -> str:
    # Not hive_partitioning: the date=... folder is no column of the files.
    return f"read_parquet({files}, hive_partitioning = false)"


def _envelopes(con, files: dict[str, list[str]], stored: dict[str, list[str]]) -> int:
    """How many of the batch's calls are envelopes, listed in the temp table ``envelopes``
    (``outer_id``: the envelope, ``inner_id``: the call it counts as). Each model call's
    ancestors are walked up one level per query through the spans (joins DuckDB can spill,
    where a recursive query's working set must fit in memory). The calls and spans are the
    batch's and the store's of the same traces; only traces with two calls can hold an
    envelope."""
    con.execute(
        "CREATE TEMP TABLE calls AS SELECT trace_id, request_id AS span_id, parent_id, ts, "
        "ts + to_microseconds(CAST(round(coalesce(latency_ms, 0) * 1000) AS BIGINT)) AS ends, "
        f"true AS new FROM {_read('$requests')} WHERE trace_id IS NOT NULL",
        {"requests": files["requests"]})
    if stored["requests"]:
        con.execute(
            "INSERT INTO calls SELECT trace_id, request_id, parent_id, ts, ts + to_microseconds("
            "CAST(round(coalesce(latency_ms, 0) * 1000) AS BIGINT)), false "
            f"FROM {_read('$stored')} WHERE trace_id IN (SELECT trace_id FROM calls) "
            "AND request_id NOT IN (SELECT span_id FROM calls)", {"stored": stored["requests"]})
    con.execute("DELETE FROM calls WHERE trace_id IN (SELECT trace_id FROM calls "
                "GROUP BY trace_id HAVING count(*) = 1)")
    if not con.execute("SELECT count(*) FROM calls WHERE parent_id IS NOT NULL").fetchone()[0]:
        return 0
    con.execute("CREATE TEMP TABLE links (trace_id VARCHAR, span_id VARCHAR, parent_id VARCHAR)")
    span_files = files["spans"] + stored["spans"]
    if span_files:
        con.execute(
            "INSERT INTO links SELECT DISTINCT trace_id, span_id, parent_id "
            f"FROM {_read('$spans')} WHERE parent_id IS NOT NULL "
            "AND trace_id IN (SELECT trace_id FROM calls)", {"spans": span_files})
    con.execute("CREATE TEMP TABLE pairs (trace_id VARCHAR, outer_id VARCHAR, inner_id VARCHAR)")
    con.execute("CREATE TEMP TABLE up AS SELECT trace_id, parent_id AS id, span_id AS inner_id "
                "FROM calls WHERE parent_id IS NOT NULL")
    for _ in range(MAX_DEPTH):
        # An ancestor that is a call, and the call below started before it ended.
        con.execute(
            "INSERT INTO pairs SELECT c.trace_id, c.span_id, up.inner_id FROM up "
            "JOIN calls c ON c.trace_id = up.trace_id AND c.span_id = up.id "
            "JOIN calls i ON i.trace_id = up.trace_id AND i.span_id = up.inner_id "
            "WHERE up.inner_id <> c.span_id AND (c.ends = c.ts OR i.ts < c.ends)")
        con.execute("CREATE OR REPLACE TEMP TABLE up AS SELECT up.trace_id, l.parent_id AS id, "
                    "up.inner_id FROM up JOIN links l ON l.trace_id = up.trace_id "
                    "AND l.span_id = up.id")
        if not con.execute("SELECT count(*) FROM up").fetchone()[0]:
            break
    # The call an envelope counts as: the last of the innermost calls below it. Calls whose
    # parent links loop are each above another: with no innermost call below them, they count.
    con.execute(
        "CREATE TEMP TABLE envelopes AS SELECT p.outer_id, arg_max(p.inner_id, "
        "(i.ts, p.inner_id)) AS inner_id FROM pairs p "
        "JOIN calls i ON i.trace_id = p.trace_id AND i.span_id = p.inner_id "
        "JOIN calls o ON o.trace_id = p.trace_id AND o.span_id = p.outer_id "
        "WHERE o.new AND p.inner_id NOT IN (SELECT outer_id FROM pairs) GROUP BY p.outer_id")
    return con.execute("SELECT count(*) FROM envelopes").fetchone()[0]


def _rewrite(batch, con, files: dict[str, list[str]]) -> None:
    """Apply the ``envelopes`` to the batch's files: the envelopes' request rows go, their spans
    get what they recorded as attributes, the calls they count as take what they lack, their
    evals move."""
    entries = ", ".join(
        [f"{{'k': {_lit(c)}, 'v': "
         + (f"coalesce(try_cast(r.{_q(c)} AS JSON), to_json(r.{_q(c)}))"
            if c == "attributes" else f"to_json(r.{_q(c)})") + "}" for c in _KEPT]
        + ["{'k': 'sightline.counted_as', 'v': to_json(e.inner_id)}"])
    con.execute(
        "CREATE TEMP TABLE recorded AS SELECT r.*, e.inner_id, "
        + json_object_sql(f"list_filter([{entries}], "
                          "x -> x.v IS NOT NULL AND json_type(x.v) <> 'NULL')")
        + f" AS span_attrs FROM {_read('$requests')} r "
        "JOIN envelopes e ON e.outer_id = r.request_id", {"requests": files["requests"]})
    # Several envelopes around one call (three deep): the innermost (last started) one's values.
    con.execute("CREATE TEMP TABLE lent AS SELECT inner_id, "
                + ", ".join(f"arg_max({_q(c)}, ts) FILTER ({_q(c)} IS NOT NULL) AS {_q(c)}"
                            for c in _ATTRIBUTION)
                + ", arg_max({" + ", ".join(f"{_q(c)}: {_q(c)}" for c in _USAGE)
                + "}, ts) FILTER (input_tokens IS NOT NULL OR output_tokens IS NOT NULL) AS usage"
                " FROM recorded GROUP BY inner_id")
    no_usage = "w.input_tokens IS NULL AND w.output_tokens IS NULL AND l.usage IS NOT NULL"
    lent = ", ".join([f"coalesce(w.{_q(c)}, l.{_q(c)}) AS {_q(c)}" for c in _ATTRIBUTION]
                     + [f"CASE WHEN {no_usage} THEN l.usage.{_q(c)} ELSE w.{_q(c)} END "
                        f"AS {_q(c)}" for c in _USAGE])
    batch.replace_written(
        "requests", con,
        f"SELECT w.* REPLACE ({lent}) FROM written w LEFT JOIN lent l ON l.inner_id = "
        "w.request_id WHERE w.request_id NOT IN (SELECT outer_id FROM envelopes)",
        "request_id IN (SELECT outer_id FROM envelopes) OR request_id IN "
        "(SELECT inner_id FROM lent)", {})
    batch.replace_written(
        "spans", con, "SELECT w.* REPLACE (coalesce(r.span_attrs, w.attributes) AS attributes) "
        "FROM written w LEFT JOIN recorded r ON r.request_id = w.span_id",
        "span_id IN (SELECT request_id FROM recorded)", {})
    if batch.written_files("evals"):
        moved = ("CASE WHEN w.{c} = e.outer_id THEN e.inner_id ELSE w.{c} END AS {c}")
        batch.replace_written(
            "evals", con,
            f"SELECT w.* REPLACE ({moved.format(c='request_id')}, {moved.format(c='case_id')}) "
            "FROM written w LEFT JOIN envelopes e ON e.outer_id = w.request_id",
            "request_id IN (SELECT outer_id FROM envelopes)", {})


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
