"""Request detail, its trace as a waterfall, its evals and its session."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa

from lib import schema
from lib.metrics import requests as rq
from tests.conftest import T0, make_request, requests_table


def test_detail_trace_session_evals(lake, engine):
    reqs = [make_request(0, trace_id="t1", parent_id="agent", session_id="s1",
                         input_text="<script>alert(1)</script>", latency_ms=300.0),
            make_request(1, session_id="s1"), make_request(2, session_id="s2")]
    spans = pa.table({
        "span_id": ["agent", "tool"], "trace_id": ["t1", "t1"], "parent_id": [None, "agent"],
        "ts": pa.array([T0 - timedelta(milliseconds=50), T0 + timedelta(milliseconds=400)],
                       schema.TS),
        "duration_ms": [1000.0, 200.0], "name": ["agent.run", "tool lookup"],
        "kind": ["agent", "tool"], "status": ["ok", "ok"]})
    evals = pa.table({"eval_id": ["e1"], "ts": pa.array([T0 + timedelta(minutes=2)], schema.TS),
                      "source": ["feedback"], "request_id": ["r0"], "metric": ["thumbs_up"],
                      "score": [1.0], "passed": [True]})
    lake.append({"requests": requests_table(reqs), "spans": spans, "evals": evals}, source="t")
    engine.refresh(force=True)
    d = rq.detail(engine, "r0")
    assert d["input_text"] == "<script>alert(1)</script>" and d["session_id"] == "s1"
    assert rq.detail(engine, "nope") is None
    tr = rq.trace(engine, "t1")
    # depth-first: agent, then its children by start time (the model call, then the tool)
    assert tr["span_id"].to_list() == ["agent", "r0", "tool"]
    assert tr["depth"].to_list() == [0, 1, 1]
    assert tr["start_ms"].to_list() == [0.0, 50.0, 450.0]
    assert tr.filter(tr["span_id"] == "r0")["kind"][0] == "llm"
    assert rq.trace(engine, "r1").is_empty()  # a lone call is not a trace
    assert rq.session_requests(engine, "s1")["request_id"].to_list() == ["r0", "r1"]
    assert rq.evals_for(engine, "r0")["metric"].to_list() == ["thumbs_up"]


def test_a_long_session_lists_the_requests_nearest_the_one_shown(lake, engine):
    # 12 requests a minute apart; a limit of 5 around the last one used to be the first 5
    rows = [make_request(i, session_id="long") for i in range(12)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    assert rq.session_size(engine, "long") == 12 and rq.session_size(engine, None) == 0
    assert rq.session_requests(engine, "long", limit=5)["request_id"].to_list() == [
        "r0", "r1", "r2", "r3", "r4"]
    near_end = rq.session_requests(engine, "long", around="r11", limit=5)
    assert near_end["request_id"].to_list() == ["r7", "r8", "r9", "r10", "r11"]  # oldest first
    middle = rq.session_requests(engine, "long", around="r6", limit=3)
    assert middle["request_id"].to_list() == ["r5", "r6", "r7"]
    # an id from another session does not move the list (nothing to be near): the first ones
    assert rq.session_requests(engine, "long", around="zzz", limit=2)["request_id"].to_list() \
        == ["r0", "r1"]


def test_the_request_shown_is_listed_even_among_others_of_its_millisecond(lake, engine):
    same = T0 + timedelta(minutes=5)
    lake.append({"requests": requests_table(
        [make_request(i, ts=same, session_id="burst") for i in range(3)])}, source="t")
    engine.refresh(force=True)
    assert "r2" in rq.session_requests(engine, "burst", around="r2", limit=2)["request_id"]


def _spans(rows: list[tuple[str, str | None, int]], trace_id: str = "t") -> pa.Table:
    """Spans (span_id, parent_id, start in ms after T0) of one trace."""
    return pa.table({
        "span_id": [r[0] for r in rows], "trace_id": [trace_id] * len(rows),
        "parent_id": [r[1] for r in rows],
        "ts": pa.array([T0 + timedelta(milliseconds=r[2]) for r in rows], schema.TS),
        "duration_ms": [5.0] * len(rows), "name": [r[0] for r in rows],
        "kind": ["chain"] * len(rows), "status": ["ok"] * len(rows)})


def test_a_trace_deeper_than_python_s_recursion_limit_is_drawn(lake, engine):
    # an agent calling itself 1,200 times: the recursive walk failed the Request page
    chain = [(f"s{i:04d}", f"s{i - 1:04d}" if i else None, i) for i in range(1200)]
    lake.append({"spans": _spans(chain)}, source="t")
    engine.refresh(force=True)
    tr = rq.trace(engine, "t")
    assert tr.height == 1200 and tr["depth"].to_list() == list(range(1200))


def test_spans_whose_parents_go_round_a_loop_stay_in_the_trace(lake, engine):
    # a span naming itself as its parent, and two naming each other, hang from no root: they
    # were left out of the waterfall without a word
    rows = [("root", None, 0), ("tool", "root", 10), ("orphan", "not-exported", 20),
            ("self", "self", 30), ("a", "b", 40), ("b", "a", 50)]
    lake.append({"spans": _spans(rows)}, source="t")
    engine.refresh(force=True)
    tr = rq.trace(engine, "t")
    assert tr["span_id"].to_list() == ["root", "tool", "orphan", "self", "a", "b"]
    assert tr["depth"].to_list() == [0, 1, 0, 0, 0, 1]


def test_a_trace_of_model_calls_alone_is_drawn(lake, engine):
    # two calls of one trace (a timeout, then its retry) under a parent span that was not
    # exported, and no span of their own: the page said "no spans were logged"
    reqs = [make_request(0, trace_id="calls", parent_id="not-exported", status="error"),
            make_request(1, trace_id="calls", parent_id="not-exported"),
            make_request(2, trace_id="lone")]
    lake.append({"requests": requests_table(reqs)}, source="t")
    engine.refresh(force=True)
    tr = rq.trace(engine, "calls")
    assert tr["span_id"].to_list() == ["r0", "r1"] and set(tr["kind"]) == {"llm"}
    assert rq.trace(engine, "lone").is_empty()  # one call is no trace


def test_calls_sharing_a_placeholder_trace_id_are_no_trace(lake, engine):
    # a logger writing "None" for every call without a trace: each such request's page would
    # draw all of them as one trace
    many = [make_request(i, trace_id="None") for i in range(rq.MAX_CALLS_ONLY_TRACE + 1)]
    apart = [make_request(0, trace_id="apart"),
             make_request(1, request_id="late", trace_id="apart", ts=T0 + timedelta(days=2))]
    lake.append({"requests": requests_table(many + apart)}, source="t")
    engine.refresh(force=True)
    assert rq.trace(engine, "None").is_empty()
    assert rq.trace(engine, "apart").is_empty()


def test_an_id_stored_twice_days_apart_names_both_and_either_is_opened_by_its_time(
        lake, engine):
    # a source's ids repeating days apart are two rows (README): the page showed one of them
    # whichever a table's link was for, a failed call's link opening a successful one
    for row in (make_request(0, request_id="dup", status="ok"),
                make_request(0, request_id="dup", status="error", ts=T0 + timedelta(days=3))):
        lake.append({"requests": requests_table([row])}, source="t")  # (two files)
    engine.refresh(force=True)
    assert rq.namesakes(engine, "dup")["status"].to_list() == ["error", "ok"]  # newest first
    assert rq.detail(engine, "dup")["status"] == "error"  # the newest without a time
    assert rq.detail(engine, "dup", T0)["status"] == "ok"
    assert rq.detail(engine, "dup", T0 + timedelta(days=3))["status"] == "error"
    assert rq.detail(engine, "dup", T0 + timedelta(days=9))["status"] == "error"  # no such time


def test_a_span_drawn_as_a_root_though_it_names_a_parent_says_why(lake, engine):
    # a span whose parent was not exported read as the trace's root, as an agent would
    from lib.analysis_charts import waterfall

    rows = [("root", None, 0), ("tool", "root", 10), ("orphan", "not-exported", 20),
            ("self", "self", 30)]
    lake.append({"spans": _spans(rows)}, source="t")
    engine.refresh(force=True)
    tr = rq.trace(engine, "t")
    assert tr["detached"].to_list() == [None, None, "its parent span was not logged",
                                        "its parent span is itself, or below it (a loop)"]
    hovers = [c[4] for t in waterfall(tr).data for c in t.customdata]
    assert "3. orphan<br>drawn as a root: its parent span was not logged" in hovers
    assert "1. root" in hovers  # a root without a parent is just that


def test_a_trace_of_500_spans_draws_the_100_around_the_request(lake, engine):
    # 500 spans made a waterfall 17,000 px tall, the request's evals and fields far below it
    from lib.analysis_charts import waterfall

    rows = [("root", None, 0), *[(f"s{i:03d}", "root", i + 1) for i in range(499)]]
    lake.append({"spans": _spans(rows)}, source="t")
    engine.refresh(force=True)
    tr = rq.trace(engine, "t")
    drawn, start = rq.drawn_part(tr, "s300")
    assert drawn.height == rq.MAX_DRAWN_SPANS and start == 251  # s300 is the 302nd
    assert drawn["span_id"].to_list()[50] == "s300"
    labels = list(waterfall(drawn, this_span="s300", first=start + 1).layout.yaxis.categoryarray)
    assert labels[0] == "252.   s250" and labels[50] == "▶ 302.   s300"  # places in the trace
    assert rq.drawn_part(tr, "s498")[1] == 400  # the last 100
    assert rq.drawn_part(tr, "elsewhere")[1] == 0  # from the first
    small = tr.head(20)
    assert rq.drawn_part(small, "s005") == (small, 0)  # a trace that fits is drawn whole
