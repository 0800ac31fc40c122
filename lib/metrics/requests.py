"""One request: every field, its trace as a waterfall, its evals and feedback, its session."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from lib.schema import COUNTED_AS
from lib.store.engine import Engine


def detail(engine: Engine, request_id: str, at: datetime | None = None) -> dict | None:
    """Every column of the request, or None when there is no such request. Of several requests
    under one id (:func:`namesakes`), the one at time ``at``, else the newest."""
    frame = engine.query(
        "SELECT * FROM requests WHERE request_id = $id "
        "ORDER BY coalesce(ts = $at, false) DESC, ts DESC LIMIT 1",
        {"id": request_id, "at": at})
    return frame.row(0, named=True) if frame.height else None


def namesakes(engine: Engine, request_id: str) -> pl.DataFrame:
    """``ts, status`` of each request stored under ``request_id``, newest first: more than one
    when a source's ids repeat days apart, or a row's time was corrected by two days or more
    (the README's deduplication keeps both). One row for an ordinary id."""
    return engine.query("SELECT ts, status FROM requests WHERE request_id = $id "
                        "ORDER BY ts DESC", {"id": request_id})


def evals_for(engine: Engine, request_id: str) -> pl.DataFrame:
    """Evals and feedback on this request: ``ts, source, metric, score, passed, judge, label,
    explanation, version``."""
    return engine.query(
        "SELECT ts, source, metric, score, passed, judge, label, explanation, version "
        "FROM evals WHERE request_id = $id ORDER BY ts, metric", {"id": request_id})


def session_requests(engine: Engine, session_id: str | None, around: str | None = None,
                     limit: int = 500) -> pl.DataFrame:
    """The session's requests, oldest first: ``ts, request_id, status, feature, model,
    latency_ms, cost_usd, prompt`` (first 120 characters), at most ``limit`` of them: with
    ``around`` (a request id of the session), the ``limit`` nearest in time to that request, so
    it is always among them; else the first ``limit``."""
    if not session_id:
        return pl.DataFrame()
    # the request itself first (others may share its millisecond), then the nearest in time
    near = ("request_id = $around DESC, abs(epoch_ms(ts) - (SELECT epoch_ms(min(ts)) FROM "
            "requests WHERE request_id = $around AND session_id = $s)), " if around else "")
    params = {"s": session_id, **({"around": around} if around else {})}
    return engine.query(
        "SELECT * FROM (SELECT ts, request_id, status, feature, model, latency_ms, cost_usd, "
        "left(input_text, 120) AS prompt FROM requests WHERE session_id = $s "
        f"ORDER BY {near}ts, request_id LIMIT {int(limit)}) ORDER BY ts, request_id", params)


def session_size(engine: Engine, session_id: str | None) -> int:
    """How many requests the session has (0 without a session id)."""
    if not session_id:
        return 0
    return int(engine.scalar("SELECT count(*) FROM requests WHERE session_id = $s",
                             {"s": session_id}))


def counted_as(engine: Engine, span_id: str) -> str | None:
    """The request a span that recorded the same call around it (an envelope, see
    lib/ingest/nesting.py) is counted as, or None when ``span_id`` is no such span."""
    frame = engine.query(
        f"SELECT json_extract_string(attributes, '$.\"{COUNTED_AS}\"') AS request_id "
        f"FROM spans WHERE span_id = $id AND attributes LIKE '%{COUNTED_AS}%' LIMIT 1",
        {"id": span_id})
    return frame["request_id"][0] if frame.height else None


def envelopes_of(engine: Engine, request_id: str, trace_id: str | None) -> pl.DataFrame:
    """Spans of the trace that recorded this same call around it (lib/ingest/nesting.py), not
    counted as requests: ``span_id, name, model, input_tokens, output_tokens`` (as the envelope
    recorded them). Empty when none."""
    if not trace_id:
        return pl.DataFrame()
    return engine.query(
        "SELECT span_id, name, a->>'model' AS model, "
        "TRY_CAST(a->>'input_tokens' AS BIGINT) AS input_tokens, "
        "TRY_CAST(a->>'output_tokens' AS BIGINT) AS output_tokens FROM ("
        "SELECT span_id, name, ts, TRY_CAST(attributes AS JSON) AS a FROM spans "
        f"WHERE trace_id = $t AND attributes LIKE '%{COUNTED_AS}%') "
        f"WHERE a->>'$.\"{COUNTED_AS}\"' = $id ORDER BY ts, span_id",
        {"t": trace_id, "id": request_id})


# A trace of model calls alone (no span) is drawn up to this many calls within this time.
MAX_CALLS_ONLY_TRACE = 500
MAX_CALLS_ONLY_TRACE_SPAN = timedelta(days=1)


def trace(engine: Engine, trace_id: str | None) -> pl.DataFrame:
    """The trace's spans for a waterfall: ``span_id, parent_id, name, kind, status, ts,
    duration_ms, start_ms`` (offset from the trace's first span), ``depth`` (0 for roots),
    ``detached``,
    ordered depth-first. Model calls logged as requests in the trace are included as
    ``llm`` spans when the spans table does not already have them. ``detached`` says why a span
    naming a parent is drawn as a root (its parent was not logged, or a loop), else null. Empty
    when the trace is one model call and no span."""
    if not trace_id:
        return pl.DataFrame()
    spans = engine.query(
        "SELECT span_id, parent_id, name, kind, status, ts, duration_ms FROM spans "
        "WHERE trace_id = $t", {"t": trace_id})
    calls = engine.query(
        "SELECT request_id AS span_id, parent_id, "
        "coalesce(operation, 'chat') || ' ' || coalesce(model, '') AS name, 'llm' AS kind, "
        "status, ts, latency_ms AS duration_ms FROM requests WHERE trace_id = $t "
        f"ORDER BY ts LIMIT {MAX_CALLS_ONLY_TRACE + 1 if not spans.height else 100_000}",
        {"t": trace_id})
    calls = calls.filter(~pl.col("span_id").is_in(spans["span_id"].implode()))
    # Model calls alone make a trace too (the client library's instrumentation without the
    # app's spans, Langfuse generations): a retry after a timeout was "no spans were logged".
    # A lone call is not one, nor are calls that share a logger's placeholder ("None", zeros)
    # for a trace id: more of them than a trace has, or days apart.
    if spans.is_empty() and (
            not 2 <= calls.height <= MAX_CALLS_ONLY_TRACE
            or calls["ts"].max() - calls["ts"].min() > MAX_CALLS_ONLY_TRACE_SPAN):
        return pl.DataFrame()
    frame = pl.concat([spans, calls.cast(spans.schema)])
    rows = frame.sort("ts").to_dicts()
    ids = {r["span_id"] for r in rows}
    children: dict = {}
    for r in rows:
        # a parent outside the trace (not exported, or lost) makes a root; so does a span that
        # names itself as its parent (an instrumentation's bug), which no root would reach
        parent = r["parent_id"] if r["parent_id"] in ids and r["parent_id"] != r["span_id"] \
            else None
        children.setdefault(parent, []).append(r)
    t0 = rows[0]["ts"]
    out: list[dict] = []
    drawn: set[int] = set()

    def walk(root: dict) -> None:
        # with a stack, not recursion: a chain of 1,000 nested spans (an agent calling itself)
        # passed Python's recursion limit and the page failed
        stack = [(root, 0)]
        while stack:
            r, depth = stack.pop()
            if id(r) in drawn:
                continue
            drawn.add(id(r))
            # a root that names a parent is no root: the waterfall says why it is drawn as one
            detached = None if depth or r["parent_id"] is None else (
                "its parent span was not logged" if r["parent_id"] not in ids
                else "its parent span is itself, or below it (a loop)")
            out.append({**r, "depth": depth,
                        "start_ms": (r["ts"] - t0).total_seconds() * 1000,
                        "detached": detached})
            stack.extend((c, depth + 1) for c in reversed(children.get(r["span_id"], [])))

    for r in children.get(None, []):
        walk(r)
    # Spans whose parents lead only round a loop (a names b, b names a) hang from no root: they
    # were left out of the waterfall. Each loop is drawn from its earliest span.
    for r in rows:
        walk(r)
    return pl.DataFrame(out)


# A waterfall draws at most this many spans (34 px each): a trace of 500 made a chart 17,000 px
# tall, the request's evals, session and fields far below it.
MAX_DRAWN_SPANS = 100


def drawn_part(spans: pl.DataFrame, this_span: str | None,
               limit: int = MAX_DRAWN_SPANS) -> tuple[pl.DataFrame, int]:
    """The spans of :func:`trace` a waterfall draws, and the position (0-based) of the first of
    them in the trace's order: all of them up to ``limit``, else ``limit`` in a row around
    ``this_span`` (from the first span when it is not in the trace)."""
    if spans.height <= limit:
        return spans, 0
    ids = spans["span_id"].to_list()
    at = ids.index(this_span) if this_span in ids else 0
    start = max(0, min(at - limit // 2, spans.height - limit))
    return spans.slice(start, limit), start
