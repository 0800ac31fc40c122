"""Model calls recorded twice: counted once, as the innermost call.

Two instrumentations often record the same model call: a framework's or an SDK's span (LangChain's
LLM span, a Vercel AI SDK ``generateText`` summing its steps, a gateway) around the client
library's span of the HTTP call (opentelemetry-instrumentation-openai-v2, OpenInference's OpenAI
instrumentor), both with the model and the token counts. Summing both doubles the requests, the
tokens and the cost (Datadog's LangChain + Anthropic spans, Phoenix's LlamaIndex + OpenAI spans
are well-known cases).

The rule: a model call's nearest model-call ancestor in its trace (its parent, or further up
through other spans) that it started before that ancestor ended is around it, unless the two
cannot be one call; a model-call span around another is an envelope, counted as the innermost
calls below it (through envelopes around envelopes): only calls with none below them are
requests. An envelope around a failed call and its retry counts as both of those, not three. A
call that started after the call above it ended is work that followed it (a context left
current by a stream, say): both count. Calls whose parent links loop, with no innermost call
below them, all count.

Two calls cannot be one call, and neither is around the other (both count), when:

- both carry a response id of one kind and the ids differ. The id is ``gen_ai.response.id``
  (GenAI conventions; kept in the row's ``attributes``), else the ``id`` of an output recorded as
  the provider's response object, one with a ``model`` too (OpenInference's ``output.value``, the
  row's ``output_text``). Ids of one kind start with the same letters before a - or _
  (``chatcmpl-``, ``resp_``, ``msg_``): a framework's own id (LangChain's ``run-...``, a UUID)
  beside the provider's is no evidence;
- no name of one's model is a name of the other's: each call's requested and answering models
  (``model``, ``response_model``) are compared lowercased, without a route before a / and
  without a snapshot's date or version after the name (``openai/gpt-4o``, ``gpt-4o-2024-08-06``
  and ``gpt-4o`` are one model, ``gpt-4o-mini`` another; ``anthropic.claude-3-5-sonnet-...-v1:0``
  is ``claude-3-5-sonnet``). A gateway's alias (``fast``) matches through the model that
  answered it.

That is the case of opentelemetry-util-genai 1.1b0 (under openai-v2 2.4b0), which keeps a
streamed call's span current until the stream is read to its end: a call made while reading it
(a moderation call on the answer as it comes), or a second stream opened before the first is
read, is recorded as the streamed call's child. Two calls of one model where either has no
response id (a failed call, a stream closed before its first chunk) cannot be told from one call
recorded twice, and are still taken for one. The instrumentation scope is no evidence: util-genai
records every instrumentation built on it (openai-v2's, LangChain's) under its own scope
(``opentelemetry.util.genai.handler``), as the Langfuse SDK does its LangChain handler's and its
OpenAI wrapper's, so a framework's span and the client library's may share one.

The envelope stays in the trace (the spans table) with what it recorded (model, tokens, cost, its
attributes) as its span's attributes and ``sightline.counted_as``: the call it counts as, the
last of the innermost calls below it. That call takes from the envelope who and what it was for
(user, session, feature, customer, prompt, version) where it has none; its usage and cost stay
its own. Evals of the envelope (``gen_ai.evaluation.result`` events on it, or log records
ingested after it) are moved to that call.

Two spans of one call that are not one inside the other (the Langfuse SDK's OpenAI wrapper
starts its generation in a trace of its own, beside openai-v2's span) are not merged: two calls
that alike may be two calls. Pairs that look like one call (same service, model and token counts,
starting and ending within a few milliseconds) are counted in a note of the report instead.

Done per file, once its rows are written and before its batch commits (Format.finish), over the
file's spans and the store's spans of the same traces (the days of the file's calls, ±1): an
envelope whose inner call came in an earlier file is found (a span is exported when it ends, so
the inner call usually comes first), but that stored call cannot take the envelope's attribution;
an envelope stored before its inner call arrives stays counted.
"""

from __future__ import annotations

import shutil

from lib import schema
from lib.ingest.formats.canonical import json_object_sql
from lib.schema import COUNTED_AS
from lib.schema import sql_identifier as _q
from lib.schema import sql_literal as _lit
from lib.store.connections import close as close_connection
from lib.store.connections import connect

NOTE = ("model-call span(s) around another model call of their trace (two instrumentations "
        "recording one call, such as a framework's span and the client library's): kept in the "
        "trace, not counted as requests, their calls counted once.")
# How close in time two calls of one service, model and token counts must start and end to
# look like one call recorded twice: in one process the two spans are microseconds apart.
TWIN_SLACK_MS = 5
TWINS_NOTE = ("pair(s) of model calls that look like one call recorded twice, neither inside "
              "the other (same service, model and token counts, starting and ending within "
              f"{TWIN_SLACK_MS} ms of each other; e.g. the Langfuse SDK's OpenAI wrapper beside "
              "openai-v2's instrumentation, in two traces): both are counted. Record each call "
              "with one instrumentation.")
EVALS_NOTE = ("eval(s) of a model-call span stored as an envelope around another call: moved to "
              "the call it counts as.")

# Bounds the walks: parent links that loop stop here.
MAX_DEPTH = 256

# What an envelope's request row recorded, as its span's attributes.
_KEPT = [c for c in schema.TABLES["requests"].names
         if c not in {"request_id", "trace_id", "parent_id", "ts", "latency_ms", "status",
                      "source_file", "batch_id", "ingested_at"}]
# What the call an envelope counts as takes from it where it has none.
_ATTRIBUTION = ["user_id", "session_id", "feature", "customer_id", "prompt_name",
                "prompt_version", "app_version", "environment", "service"]


def count_nested_calls_once(batch) -> dict[str, int]:
    """Drop from the batch's requests the envelopes around other model calls (see the module's
    docstring). Returns the report's notes: ``NOTE`` with the envelopes first seen in this batch
    (envelopes whose spans were stored before, the same spans read again, are counted as
    duplicate requests) and ``TWINS_NOTE`` with the look-alike pairs (:func:`_twins`); ``{}``
    when neither."""
    spans, requests = batch.written_files("spans"), batch.written_files("requests")
    if not requests:
        return {}
    with ScratchConnection(batch) as con:
        files = {"spans": [str(p) for p in spans], "requests": [str(p) for p in requests]}
        days = days_of_files(con, files["requests"])
        stored = {name: batch.lake._files_of_days(name, days) for name in ("requests", "spans")}
        if not _envelopes(con, files, stored):
            return _twins(con, files)
        fresh = con.execute(
            f"SELECT count(*) FROM envelopes WHERE outer_id IN (SELECT span_id FROM "
            f"{parquet_sql('$spans')})", {"spans": files["spans"]}).fetchone()[0] \
            if files["spans"] else 0
        total = con.execute("SELECT count(*) FROM envelopes").fetchone()[0]
        _rewrite(batch, con, files)
        batch.count_duplicates("requests", total - fresh)
        files["requests"] = [str(p) for p in batch.written_files("requests")]
        return {**({NOTE: fresh} if fresh else {}), **_twins(con, files)}


def finish_spans(batch) -> dict[str, int]:
    """The span formats' pass before the commit: :func:`count_nested_calls_once`, then
    :func:`move_evals_to_counted_calls` (this file's evals of envelopes an earlier file stored)."""
    notes = count_nested_calls_once(batch)
    return {**notes, **move_evals_to_counted_calls(batch)}


def move_evals_to_counted_calls(batch) -> dict[str, int]:
    """Move the batch's evals of stored envelope spans to the calls they count as (evals sent as
    log records, ingested after the spans): spans stored on the evals' days, ±1, are searched.
    Returns ``{EVALS_NOTE: n}``, or ``{}``."""
    evals = batch.written_files("evals")
    if not evals:
        return {}
    with ScratchConnection(batch) as con:
        files = [str(p) for p in evals]
        stored = batch.lake._files_of_days("spans", days_of_files(con, files))
        if not stored:
            return {}
        con.execute(
            "CREATE TEMP TABLE envelopes AS SELECT DISTINCT outer_id, inner_id FROM ("
            f"SELECT span_id AS outer_id, json_extract_string(attributes, "
            f"'$.\"{COUNTED_AS}\"') AS inner_id FROM {parquet_sql('$stored')} "
            f"WHERE attributes LIKE '%{COUNTED_AS}%' "
            f"AND span_id IN (SELECT request_id FROM {parquet_sql('$evals')})) "
            "WHERE inner_id IS NOT NULL", {"stored": stored, "evals": files})
        moved = con.execute(f"SELECT count(*) FROM {parquet_sql('$evals')} WHERE request_id IN "
                            "(SELECT outer_id FROM envelopes)", {"evals": files}).fetchone()[0]
        if moved:
            _move_evals(batch, con)
        return {EVALS_NOTE: moved} if moved else {}


class ScratchConnection:
    """A DuckDB connection bounded like the rest of an ingest (its tables and joins spill to a
    scratch folder of the batch, removed on exit)."""

    def __init__(self, batch) -> None:
        self.folder = batch.lake.tmp_dir / f"nest-{batch.batch_id}"

    def __enter__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.con = connect(config={
            "memory_limit": "256MB", "threads": 2, "temp_directory": str(self.folder),
            "preserve_insertion_order": False,
            "autoinstall_known_extensions": False, "autoload_known_extensions": False})
        self.con.execute("SET TimeZone = 'UTC'")
        return self.con

    def __exit__(self, *exc) -> None:
        close_connection(self.con)
        shutil.rmtree(self.folder, ignore_errors=True)


def days_of_files(con, files: list[str]) -> list[str]:
    """The days (``YYYY-MM-DD``, UTC) of the rows of ``files``."""
    return [r[0] for r in con.execute(
        f"SELECT DISTINCT strftime(ts, '%Y-%m-%d') FROM {parquet_sql('$files')}",
        {"files": files}).fetchall()]


def parquet_sql(files: str) -> str:
    """SQL reading the Parquet files of the list parameter ``files`` (``'$files'``)."""
    # Not hive_partitioning: the date=... folder is no column of the files.
    return f"read_parquet({files}, hive_partitioning = false)"


def _envelopes(con, files: dict[str, list[str]], stored: dict[str, list[str]]) -> int:
    """How many of the batch's calls are envelopes, listed in the temp table ``envelopes``
    (``outer_id``: the envelope, ``inner_id``: the call it counts as). The calls and spans are
    the batch's and the store's of the same traces; only traces with two calls can hold an
    envelope. Each call's ancestors are walked up one level per query (joins DuckDB can spill,
    where a recursive query's working set must fit in memory), up to the nearest call."""
    ends = ("CASE WHEN latency_ms IS NOT NULL THEN ts + to_microseconds(CAST(round(latency_ms "
            "* 1000) AS BIGINT)) END")
    con.execute(
        f"CREATE TEMP TABLE calls AS SELECT trace_id, request_id AS span_id, parent_id, ts, "
        f"{ends} AS ends, true AS new FROM {parquet_sql('$requests')} WHERE trace_id IS NOT NULL",
        {"requests": files["requests"]})
    if stored["requests"]:
        con.execute(
            f"INSERT INTO calls SELECT trace_id, request_id, parent_id, ts, {ends}, false "
            f"FROM {parquet_sql('$stored')} WHERE trace_id IN (SELECT trace_id FROM calls) "
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
            f"FROM {parquet_sql('$spans')} WHERE parent_id IS NOT NULL "
            "AND trace_id IN (SELECT trace_id FROM calls)", {"spans": span_files})
    # pairs: each call (inner) and its nearest call above (outer), when it started before that
    # one ended (or that one's end is unknown).
    con.execute("CREATE TEMP TABLE pairs (trace_id VARCHAR, outer_id VARCHAR, inner_id VARCHAR)")
    con.execute("CREATE TEMP TABLE up AS SELECT trace_id, parent_id AS id, span_id AS inner_id "
                "FROM calls WHERE parent_id IS NOT NULL")
    for _ in range(MAX_DEPTH):
        con.execute(
            "INSERT INTO pairs SELECT c.trace_id, c.span_id, up.inner_id FROM up "
            "JOIN calls c ON c.trace_id = up.trace_id AND c.span_id = up.id "
            "JOIN calls i ON i.trace_id = up.trace_id AND i.span_id = up.inner_id "
            "WHERE up.inner_id <> c.span_id AND (c.ends IS NULL OR i.ts < c.ends)")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE up AS SELECT up.trace_id, l.parent_id AS id, "
            "up.inner_id FROM up JOIN links l ON l.trace_id = up.trace_id AND l.span_id = up.id "
            "WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.trace_id = up.trace_id "
            "AND c.span_id = up.id)")
        if not con.execute("SELECT count(*) FROM up").fetchone()[0]:
            break
    _drop_pairs_of_two_calls(con, files["requests"] + stored["requests"])
    # counted: each envelope and the call it counts as, the last of the innermost calls below
    # it. An envelope is settled once every envelope right below it is: its candidates are the
    # plain calls right below it and what those envelopes count as. Envelopes in a loop never
    # settle, and count.
    con.execute("CREATE TEMP TABLE outers AS SELECT DISTINCT trace_id, outer_id FROM pairs")
    con.execute("CREATE TEMP TABLE counted (trace_id VARCHAR, outer_id VARCHAR, "
                "inner_id VARCHAR)")
    for _ in range(MAX_DEPTH):
        added = con.execute(
            "INSERT INTO counted SELECT c.trace_id, c.outer_id, "
            "arg_max(c.candidate, (i.ts, c.candidate)) FROM ("
            "  SELECT p.trace_id, p.outer_id, coalesce(k.inner_id, p.inner_id) AS candidate, "
            "  o.outer_id IS NOT NULL AND k.inner_id IS NULL AS unsettled FROM pairs p "
            "  LEFT JOIN outers o ON o.trace_id = p.trace_id AND o.outer_id = p.inner_id "
            "  LEFT JOIN counted k ON k.trace_id = p.trace_id AND k.outer_id = p.inner_id "
            "  WHERE NOT EXISTS (SELECT 1 FROM counted s WHERE s.trace_id = p.trace_id "
            "                    AND s.outer_id = p.outer_id)) c "
            "JOIN calls i ON i.trace_id = c.trace_id AND i.span_id = c.candidate "
            "GROUP BY c.trace_id, c.outer_id HAVING NOT bool_or(c.unsettled)").fetchone()[0]
        if not added:
            break
    con.execute(
        "CREATE TEMP TABLE envelopes AS SELECT k.outer_id, k.inner_id, i.new AS inner_new "
        "FROM counted k JOIN calls o ON o.trace_id = k.trace_id AND o.span_id = k.outer_id "
        "JOIN calls i ON i.trace_id = k.trace_id AND i.span_id = k.inner_id WHERE o.new")
    return con.execute("SELECT count(*) FROM envelopes").fetchone()[0]


# A model name without what tells one snapshot or route of it from another: lowercased, without
# a path before it (openai/gpt-4o, models/gemini-1.5-pro) nor dated or versioned suffixes
# (gpt-4o-2024-08-06, claude-3-5-sonnet-20240620, gpt-4-0613, gemini-1.5-pro-002,
# anthropic.claude-3-5-sonnet-20240620-v1:0, -latest, -preview).
_SNAPSHOT_SUFFIX = (r"(?:[-@_:](?:\d{4}-?\d{2}-?\d{2}|\d{2}-\d{2}|\d{3,4}|v\d+(?::\d+)?"
                    r"|latest|preview|exp)|:\d+)+$")


def _model_base(column: str) -> str:
    return (f"nullif(regexp_replace(regexp_replace(lower(trim({column})), '^.*/', ''), "
            f"{_lit(_SNAPSHOT_SUFFIX)}, ''), '')")


# The id the provider gave the response: gen_ai.response.id (GenAI conventions, kept in the
# row's attributes), else the "id" of an output recorded as the provider's response object (one
# with a "model" too: OpenInference's output.value, the row's output_text).
_RESPONSE_ID = (
    "coalesce("
    "CASE WHEN attributes LIKE '%\"gen_ai.response.id\"%' AND json_valid(attributes) "
    "THEN nullif(json_extract_string(attributes, '$.\"gen_ai.response.id\"'), '') END, "
    "CASE WHEN output_text LIKE '{%' AND json_valid(output_text) "
    "AND json_extract_string(output_text, '$.model') IS NOT NULL "
    "THEN nullif(json_extract_string(output_text, '$.id'), '') END)")


def _same_model(a: str, b: str) -> str:
    """SQL: model bases ``a`` and ``b`` name one model (a Bedrock-style vendor prefix aside:
    anthropic.claude-3-5-sonnet is claude-3-5-sonnet); false when either is null."""
    return (f"coalesce({a} = {b} OR ends_with({a}, '.' || {b}) "
            f"OR ends_with({b}, '.' || {a}), false)")


def _drop_pairs_of_two_calls(con, requests: list[str]) -> None:
    """Remove from ``pairs`` the calls that cannot be one call recorded twice, so neither is an
    envelope of the other (see the module's docstring): both carry a response id of one kind
    (the same letters before its first - or _: chatcmpl-, resp_, msg_) and the ids differ, or
    both name a model and no name of one (requested or answering, as :func:`_model_base` reads
    them) is a name of the other."""
    if not con.execute("SELECT count(*) FROM pairs").fetchone()[0]:
        return
    con.execute(
        "CREATE TEMP TABLE facts AS SELECT trace_id, request_id AS span_id, "
        f"any_value({_model_base('model')}) AS model, "
        f"any_value({_model_base('response_model')}) AS response_model, "
        f"any_value({_RESPONSE_ID}) AS response_id FROM {parquet_sql('$requests')} "
        "WHERE (trace_id, request_id) IN (SELECT trace_id, outer_id FROM pairs "
        "UNION ALL SELECT trace_id, inner_id FROM pairs) GROUP BY trace_id, request_id",
        {"requests": requests})
    kind = "regexp_extract({}, '^([A-Za-z]+)[-_]', 1)"
    other_ids = (f"{kind.format('o.response_id')} <> '' "
                 f"AND {kind.format('o.response_id')} = {kind.format('i.response_id')} "
                 "AND o.response_id <> i.response_id")
    one_model = " OR ".join(_same_model(f"o.{a}", f"i.{b}")
                            for a in ("model", "response_model")
                            for b in ("model", "response_model"))
    other_models = ("coalesce(o.model, o.response_model) IS NOT NULL "
                    f"AND coalesce(i.model, i.response_model) IS NOT NULL AND NOT ({one_model})")
    con.execute(
        "DELETE FROM pairs USING facts o, facts i WHERE o.trace_id = pairs.trace_id "
        "AND o.span_id = pairs.outer_id AND i.trace_id = pairs.trace_id "
        f"AND i.span_id = pairs.inner_id AND (({other_ids}) OR ({other_models}))")


def _twins(con, files: dict[str, list[str]]) -> dict[str, int]:
    """``{TWINS_NOTE: n}`` for the pairs of the batch's calls that look like one call recorded
    twice in two traces (not nested, so not envelopes), or ``{}``. Only counted: two calls that
    alike may also be two calls. Calls are matched within time buckets of the slack, so a
    file of many alike calls (fixed-size embeddings) is not compared all against all."""
    if not files["requests"]:
        return {}
    slack_us = TWIN_SLACK_MS * 1000
    con.execute(
        "CREATE OR REPLACE TEMP TABLE alike AS SELECT request_id, service, "
        "coalesce(response_model, model) AS m, input_tokens, "
        # no output recorded and none produced (an embedding) are alike
        "coalesce(output_tokens, 0) AS output_tokens, epoch_us(ts) AS t0, "
        "epoch_us(ts) + CAST(round(latency_ms * 1000) AS BIGINT) AS t1, "
        f"epoch_us(ts) // {slack_us} AS bucket FROM {parquet_sql('$requests')} "
        "WHERE input_tokens > 0 AND latency_ms IS NOT NULL",
        {"requests": files["requests"]})
    pairs = con.execute(
        "SELECT count(DISTINCT (a.request_id, b.request_id)) FROM alike a "
        "JOIN (SELECT *, bucket + d AS near FROM alike, (VALUES (-1), (0), (1)) v(d)) b "
        "ON b.near = a.bucket AND b.m = a.m AND b.input_tokens = a.input_tokens "
        "AND b.output_tokens = a.output_tokens "
        "AND b.service IS NOT DISTINCT FROM a.service AND a.request_id < b.request_id "
        f"WHERE abs(a.t0 - b.t0) <= {slack_us} AND abs(a.t1 - b.t1) <= {slack_us}"
    ).fetchone()[0]
    return {TWINS_NOTE: pairs} if pairs else {}


def _rewrite(batch, con, files: dict[str, list[str]]) -> None:
    """Apply the ``envelopes`` to the batch's files: the envelopes' request rows go, their spans
    get what they recorded as attributes, the calls they count as take the attribution they lack,
    their evals move."""
    entries = ", ".join(
        [f"{{'k': {_lit(c)}, 'v': "
         + (f"coalesce(try_cast(r.{_q(c)} AS JSON), to_json(r.{_q(c)}))"
            if c == "attributes" else f"to_json(r.{_q(c)})") + "}" for c in _KEPT]
        + [f"{{'k': {_lit(COUNTED_AS)}, 'v': to_json(e.inner_id)}}"])
    con.execute(
        "CREATE TEMP TABLE recorded AS SELECT r.*, e.inner_id, e.inner_new, "
        + json_object_sql(f"list_filter([{entries}], "
                          "x -> x.v IS NOT NULL AND json_type(x.v) <> 'NULL')")
        + f" AS span_attrs FROM {parquet_sql('$requests')} r "
        "JOIN envelopes e ON e.outer_id = r.request_id", {"requests": files["requests"]})
    # Several envelopes around one call (three deep): the innermost (last started) one's values.
    con.execute("CREATE TEMP TABLE lent AS SELECT inner_id, "
                + ", ".join(f"arg_max({_q(c)}, (ts, request_id)) FILTER ({_q(c)} IS NOT NULL) "
                            f"AS {_q(c)}" for c in _ATTRIBUTION)
                + " FROM recorded WHERE inner_new GROUP BY inner_id")
    lent = ", ".join(f"coalesce(w.{_q(c)}, l.{_q(c)}) AS {_q(c)}" for c in _ATTRIBUTION)
    batch.replace_written(
        "requests", con,
        f"SELECT w.* REPLACE ({lent}) FROM written w LEFT JOIN lent l ON l.inner_id = "
        "w.request_id WHERE w.request_id NOT IN (SELECT outer_id FROM envelopes)",
        "request_id IN (SELECT outer_id FROM envelopes) OR request_id IN "
        "(SELECT inner_id FROM lent)")
    batch.replace_written(
        "spans", con, "SELECT w.* REPLACE (coalesce(r.span_attrs, w.attributes) AS attributes) "
        "FROM written w LEFT JOIN recorded r ON r.request_id = w.span_id",
        "span_id IN (SELECT request_id FROM recorded)")
    if batch.written_files("evals"):
        _move_evals(batch, con)


def _move_evals(batch, con) -> None:
    """Point the batch's evals of an envelope (``envelopes``) at the call it counts as."""
    moved = "CASE WHEN w.{c} = e.outer_id THEN e.inner_id ELSE w.{c} END AS {c}"
    batch.replace_written(
        "evals", con,
        f"SELECT w.* REPLACE ({moved.format(c='request_id')}, {moved.format(c='case_id')}) "
        "FROM written w LEFT JOIN envelopes e ON e.outer_id = w.request_id",
        "request_id IN (SELECT outer_id FROM envelopes)")
