"""A model call recorded twice, by two instrumentations of one process, is counted once.

The ``openai`` client instrumented by both openinference-instrumentation-openai and
opentelemetry-instrumentation-openai-v2 on one tracer provider, recorded with the real packages
against the fake server: each call gives an openai-v2 span around an OpenInference LLM span, both
with the model and the tokens, and each call must count once (lib/ingest/nesting.py).
"""

from __future__ import annotations

import json
from datetime import UTC

import pyarrow.parquet as pq
import pytest
from genai_prices import Usage, calc_price

from lib import schema
from lib.ingest.nesting import EVALS_NOTE, NOTE, TWINS_NOTE
from lib.ingest.pipeline import ingest_paths
from lib.store import Lake
from lib.store.engine import Engine
from tests.ingest.fake_openai import SCENARIO, record_spans, scenario_truth


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    protobuf_file, collector_file, ledger = record_spans(
        "openinference+otel-genai", tmp_path_factory.mktemp("nested-calls"), SCENARIO)
    return {"protobuf": protobuf_file, "collector": collector_file, "ledger": ledger}


def _ingest(tmp_path, path):
    lake = Lake(tmp_path / "store")
    report = ingest_paths(lake, [str(path)])
    assert report.ok, [f.error for f in report.files]
    return report.files[0], Engine(lake)


def test_both_instrumentations_recorded_every_call(recorded):
    text = recorded["collector"].read_text()
    assert '"llm.token_count.prompt"' in text and '"gen_ai.usage.input_tokens"' in text
    assert len(recorded["ledger"]) == len(SCENARIO)


@pytest.mark.parametrize("encoding", ["protobuf", "collector"])
def test_each_call_counts_once_with_the_servers_totals(recorded, tmp_path, encoding):
    report, engine = _ingest(tmp_path, recorded[encoding])
    truth = scenario_truth(SCENARIO)
    got = engine.query(
        "SELECT count(*), count(*) FILTER (status = 'error'), sum(input_tokens), "
        "sum(cached_input_tokens), sum(output_tokens), sum(reasoning_tokens) FROM requests").row(0)
    assert got == (truth["requests"], truth["errors"], truth["input_tokens"],
                   truth["cached_input_tokens"], truth["output_tokens"],
                   truth["reasoning_tokens"])
    envelopes = report.not_read[NOTE]
    assert envelopes >= truth["requests"] - 1  # every wrapped call (embeddings may not be)
    assert report.stored["requests"] == truth["requests"]
    # the envelopes stay in the trace, with what they recorded and the call they count as
    kept = engine.query("SELECT span_id, attributes FROM spans WHERE attributes LIKE "
                        "'%sightline.counted_as%'")
    assert kept.height == envelopes
    ids = set(engine.query("SELECT request_id FROM requests")["request_id"].to_list())
    for row in kept.iter_rows(named=True):
        attrs = json.loads(row["attributes"])
        assert attrs["sightline.counted_as"] in ids and row["span_id"] not in ids
        assert engine.scalar("SELECT parent_id FROM requests WHERE request_id = $id",
                             {"id": attrs["sightline.counted_as"]}) == row["span_id"]


# -- Hand-written traces: the rule's edges ------------------------------------------------------
TRACE = "0af7651916cd43dd8448eb211c80319c"
T0_NS = 1772452800000000000  # 2026-03-02 12:00 UTC


def _attr(key, value):
    return {"key": key, "value": {"intValue": str(value)} if isinstance(value, int)
            else {"stringValue": value}}


def _call(span_id, parent=None, *, at_ms=0, ms=500, inputs=100, outputs=10, error=False,
          events=(), **attributes):
    span = {"traceId": TRACE, "spanId": span_id, "name": "chat gpt-4o",
            "startTimeUnixNano": str(T0_NS + at_ms * 10**6),
            "endTimeUnixNano": str(T0_NS + (at_ms + ms) * 10**6),
            "attributes": [_attr("gen_ai.operation.name", "chat"),
                           _attr("gen_ai.request.model", "gpt-4o"),
                           _attr("gen_ai.provider.name", "openai"),
                           _attr("gen_ai.usage.input_tokens", inputs),
                           _attr("gen_ai.usage.output_tokens", outputs),
                           *(_attr(k, v) for k, v in attributes.items())],
            "events": list(events)}
    if parent:
        span["parentSpanId"] = parent
    if error:
        span["status"] = {"code": 2, "message": "rate limited"}
    return span


def _step(span_id, parent=None):
    span = {"traceId": TRACE, "spanId": span_id, "name": "retry",
            "startTimeUnixNano": str(T0_NS), "endTimeUnixNano": str(T0_NS + 10**9),
            "attributes": [_attr("gen_ai.operation.name", "execute_tool")]}
    if parent:
        span["parentSpanId"] = parent
    return span


def _ingest_spans(tmp_path, spans, *, dry_run=False):
    path = tmp_path / "trace.jsonl"
    # children first, as an SDK exports them (a span is exported when it ends)
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}) + "\n")
    lake = Lake(tmp_path / "store")
    report = ingest_paths(lake.checking() if dry_run else lake, [str(path)])
    assert report.ok, [f.error for f in report.files]
    return report.files[0], Engine(lake)


def _counted_as(engine):
    rows = engine.query("SELECT span_id, attributes FROM spans WHERE attributes LIKE "
                        "'%sightline.counted_as%' ORDER BY span_id").rows()
    return {span_id: json.loads(attrs)["sightline.counted_as"] for span_id, attrs in rows}


def test_an_envelope_around_a_failed_call_and_its_retry_counts_as_those_two(tmp_path):
    report, engine = _ingest_spans(tmp_path, [
        _call("b000000000000002", "b000000000000001", at_ms=10, error=True, inputs=0, outputs=0),
        _call("b000000000000003", "b000000000000001", at_ms=900),
        _call("b000000000000001", ms=2000, inputs=100, outputs=10)])
    assert engine.query("SELECT request_id, status, input_tokens FROM requests "
                        "ORDER BY ts").rows() == [("b000000000000002", "error", 0),
                                                  ("b000000000000003", "ok", 100)]
    assert report.not_read == {NOTE: 1} and report.stored["requests"] == 2
    assert _counted_as(engine) == {"b000000000000001": "b000000000000003"}  # the last call
    envelope = json.loads(engine.scalar(
        "SELECT attributes FROM spans WHERE span_id = 'b000000000000001'"))
    assert (envelope["model"], envelope["input_tokens"], envelope["output_tokens"]) == (
        "gpt-4o", 100, 10)
    assert engine.scalar("SELECT count(*) FROM spans") == 3  # nothing leaves the trace


def test_nested_three_deep_through_other_spans_counts_the_innermost_call(tmp_path):
    _, engine = _ingest_spans(tmp_path, [
        _call("c000000000000004", "c000000000000003", at_ms=5),
        _step("c000000000000003", "c000000000000002"),
        _call("c000000000000002", "c000000000000001"),
        _call("c000000000000001")])
    assert engine.query("SELECT request_id FROM requests").rows() == [("c000000000000004",)]
    assert _counted_as(engine) == {"c000000000000001": "c000000000000004",
                                   "c000000000000002": "c000000000000004"}


def test_calls_side_by_side_are_each_counted(tmp_path):
    report, engine = _ingest_spans(tmp_path, [
        _call("d000000000000002", "d000000000000001"),
        _call("d000000000000003", "d000000000000001", at_ms=600),
        _step("d000000000000001")])
    assert engine.scalar("SELECT count(*) FROM requests") == 2
    assert report.not_read == {} and _counted_as(engine) == {}


def test_parent_links_that_loop_end_the_walk(tmp_path):
    report, engine = _ingest_spans(tmp_path, [
        _call("e000000000000001", "e000000000000002"),
        _call("e000000000000002", "e000000000000001"),
        _step("e000000000000003", "e000000000000004"),
        _call("e000000000000004", "e000000000000003", at_ms=900)])
    # every call is above another: none is the innermost, so each counts (nothing to keep);
    # the two alike calls of the loop are named as a pair that looks like one call
    assert engine.scalar("SELECT count(*) FROM requests") == 3
    assert report.not_read == {TWINS_NOTE: 1}


def test_an_evaluation_of_the_envelope_moves_to_the_call_it_counts_as(tmp_path):
    judged = {"name": "gen_ai.evaluation.result", "timeUnixNano": str(T0_NS + 2 * 10**9),
              "attributes": [_attr("gen_ai.evaluation.name", "relevance"),
                             {"key": "gen_ai.evaluation.score.value",
                              "value": {"doubleValue": 0.8}}]}
    _, engine = _ingest_spans(tmp_path, [
        _call("f000000000000002", "f000000000000001"),
        _call("f000000000000001", events=[judged])])
    assert engine.query("SELECT request_id, metric, score FROM evals").rows() == [
        ("f000000000000002", "relevance", 0.8)]


def test_a_dry_run_counts_what_the_ingest_stores(tmp_path):
    spans = [_call("a000000000000002", "a000000000000001"), _call("a000000000000001")]
    checked, _ = _ingest_spans(tmp_path, spans, dry_run=True)
    stored, engine = _ingest_spans(tmp_path, spans)
    assert checked.stored == stored.stored == {"requests": 1, "spans": 2}
    assert checked.not_read == stored.not_read == {NOTE: 1}
    assert engine.scalar("SELECT count(*) FROM requests") == 1


@pytest.mark.parametrize("above_ms, below_at_ms", [
    (500, 600),      # started after the call above ended: work that followed it
    (0, 600_000),    # a call of zero length is around nothing
])
def test_a_call_made_after_the_call_above_it_ended_is_another_call(tmp_path, above_ms,
                                                                   below_at_ms):
    report, engine = _ingest_spans(tmp_path, [
        _call("1000000000000002", "1000000000000001", at_ms=below_at_ms),
        _call("1000000000000001", ms=above_ms)])
    assert engine.scalar("SELECT count(*) FROM requests") == 2 and report.not_read == {}


def test_the_counted_call_takes_the_attribution_it_lacks_from_its_envelope(tmp_path):
    """Who and what the call was for, where it has none; not the envelope's usage, which would
    carry a cost priced for another model (the envelope's usage stays in its span)."""
    inner_without_usage = _call("2000000000000002", "2000000000000001", at_ms=5)
    inner_without_usage["attributes"] = [a for a in inner_without_usage["attributes"]
                                         if "usage" not in a["key"]]
    _, engine = _ingest_spans(tmp_path, [
        inner_without_usage,
        _call("2000000000000001", ms=900, inputs=1000, outputs=200,
              **{"user.id": "u-7", "app.feature": "search", "gen_ai.prompt.name": "answer"}),
        # beside it, an inner call with its own usage and user keeps them
        _call("3000000000000002", "3000000000000001", at_ms=5, inputs=40, outputs=4,
              **{"user.id": "u-inner"}),
        _call("3000000000000001", ms=900, inputs=1000, outputs=200, **{"user.id": "u-8"})])
    rows = engine.query("SELECT request_id, user_id, feature, prompt_name, input_tokens, "
                        "output_tokens, cost_usd > 0 FROM requests ORDER BY request_id").rows()
    # (no usage of its own: its cost is unknown, null, not $0)
    assert rows == [("2000000000000002", "u-7", "search", "answer", None, None, None),
                    ("3000000000000002", "u-inner", None, None, 40, 4, True)]


def test_stored_files_have_the_canonical_columns_and_no_empty_file(tmp_path):
    # A trace across midnight UTC: the envelope's day keeps no request.
    late = T0_NS - 12 * 3600 * 10**9 - 10**9  # 2026-03-01 23:59:59
    envelope = _call("4000000000000001", ms=3000)
    envelope["startTimeUnixNano"], envelope["endTimeUnixNano"] = str(late), str(late + 3 * 10**9)
    inner = _call("4000000000000002", "4000000000000001")
    inner["startTimeUnixNano"], inner["endTimeUnixNano"] = str(late + 2 * 10**9), str(
        late + 2 * 10**9 + 5 * 10**8)
    judged = {"name": "gen_ai.evaluation.result", "timeUnixNano": str(late + 4 * 10**9),
              "attributes": [_attr("gen_ai.evaluation.name", "relevance"),
                             _attr("gen_ai.evaluation.score.label", "relevant")]}
    envelope["events"] = [judged]
    _, engine = _ingest_spans(tmp_path, [inner, envelope])
    lake = engine.lake
    (commit,) = lake.commits()
    assert all(f["rows"] > 0 for f in commit.added)
    assert commit.rows["requests"] == 1
    for table in ("requests", "spans", "evals"):
        # as any Parquet reader sees the lake: no date column from the folder's name
        read = pq.read_table(lake.root / table, partitioning=None)
        assert read.column_names == schema.TABLES[table].names, table
    assert engine.query("SELECT request_id, case_id FROM evals").rows() == [
        ("4000000000000002", "4000000000000002")]


def test_the_same_spans_read_again_add_nothing(tmp_path):
    first = [_call("5000000000000002", "5000000000000001"), _call("5000000000000001", ms=900)]
    _ingest_spans(tmp_path, first)
    # the Collector's file, grown by one trace, read again (or the same spans under another name)
    more = {**_call("6000000000000001"), "traceId": "1" * 32}
    report, engine = _ingest_spans(tmp_path, [*first, more])
    assert sorted(engine.query("SELECT request_id FROM requests")["request_id"].to_list()) == [
        "5000000000000002", "6000000000000001"]
    # the stored call and its envelope (whose spans are stored) are duplicates, not news
    assert report.stored["requests"] == 1 and report.not_read == {}
    assert report.duplicates["requests"] == 2


def test_an_envelope_whose_call_came_in_an_earlier_file_is_found(tmp_path):
    # A span ends (and is exported) before the span around it: a rotated file holds the call,
    # the next one its envelope.
    _ingest_spans(tmp_path, [_call("7000000000000002", "7000000000000001", at_ms=5)])
    report, engine = _ingest_spans(tmp_path, [_call("7000000000000001", ms=900)])
    assert engine.query("SELECT request_id FROM requests").rows() == [("7000000000000002",)]
    assert report.not_read == {NOTE: 1}
    assert _counted_as(engine) == {"7000000000000001": "7000000000000002"}


def test_a_failure_while_rewriting_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    from lib.store import lake as lake_module

    _ingest_spans(tmp_path, [_call("8000000000000001")])
    lake = Lake(tmp_path / "store")
    version, files = lake.version(), sorted(p for p in lake.root.rglob("*") if p.is_file()
                                            and "_manifest" not in p.parts)
    real = lake_module.os.replace

    def full_disk(src, dst):
        if str(src).count(".tmp") == 2:  # a rewritten file, about to take its place
            raise OSError(28, "No space left on device", str(src))
        return real(src, dst)

    monkeypatch.setattr(lake_module.os, "replace", full_disk)
    path = tmp_path / "trace.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        _call("9000000000000002", "9000000000000001", at_ms=5),
        _call("9000000000000001", ms=900)]}]}]}) + "\n")
    report = ingest_paths(lake, [str(path)])
    assert "No space left" in report.files[0].error
    monkeypatch.undo()
    assert lake.version() == version
    assert sorted(p for p in lake.root.rglob("*") if p.is_file()
                  and "_manifest" not in p.parts) == files


def test_an_envelope_around_an_envelope_counts_as_the_call_inside_both(tmp_path):
    # O1 0-500 ms, O2 100-2000 ms below it, the call 1500-1900 ms below O2: O2 is around the
    # call, O1 around O2, so both count as the call, though it started after O1 ended.
    _, engine = _ingest_spans(tmp_path, [
        _call("a100000000000003", "a100000000000002", at_ms=1500, ms=400),
        _call("a100000000000002", "a100000000000001", at_ms=100, ms=1900),
        _call("a100000000000001", ms=500)])
    assert engine.query("SELECT request_id FROM requests").rows() == [("a100000000000003",)]
    assert _counted_as(engine) == {"a100000000000001": "a100000000000003",
                                   "a100000000000002": "a100000000000003"}


def test_an_envelope_counts_as_the_last_innermost_call_below_it_through_envelopes(tmp_path):
    # E holds a call L1 (10 ms) and an envelope E2 around L2 (600 ms): E counts as L2, the last.
    _, engine = _ingest_spans(tmp_path, [
        _call("e200000000000011", "e200000000000001", at_ms=10),
        _call("e200000000000022", "e200000000000002", at_ms=600),
        _call("e200000000000002", "e200000000000001", at_ms=500, ms=500),
        _call("e200000000000001", ms=2000, **{"user.id": "u-outer"})])
    assert _counted_as(engine) == {"e200000000000001": "e200000000000022",
                                   "e200000000000002": "e200000000000022"}
    assert engine.query("SELECT request_id, user_id FROM requests ORDER BY ts").rows() == [
        ("e200000000000011", None), ("e200000000000022", "u-outer")]


def test_a_long_chain_of_calls_one_after_the_other_counts_each(tmp_path):
    # A context left current by a stream: each call the child of the one before, none inside
    # it. The walk stops at each call's nearest call: linear, not the chain's length squared.
    calls = [_call(f"b1{i:014d}", f"b1{i - 1:014d}" if i else None, at_ms=600 * i)
             for i in range(400)]
    report, engine = _ingest_spans(tmp_path, calls[::-1])
    assert engine.scalar("SELECT count(*) FROM requests") == 400 and report.not_read == {}


def test_evals_sent_as_log_records_after_the_spans_move_to_the_counted_call(tmp_path):
    _ingest_spans(tmp_path, [_call("c100000000000002", "c100000000000001", at_ms=5),
                             _call("c100000000000001", ms=900)])
    record = {"timeUnixNano": str(T0_NS + 2 * 10**9), "eventName": "gen_ai.evaluation.result",
              "traceId": TRACE, "spanId": "c100000000000001",
              "attributes": [_attr("gen_ai.evaluation.name", "relevance"),
                             {"key": "gen_ai.evaluation.score.value",
                              "value": {"doubleValue": 0.25}}]}
    logs = tmp_path / "logs.jsonl"
    logs.write_text(json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]})
                    + "\n")
    report = ingest_paths(Lake(tmp_path / "store"), [str(logs)])
    assert report.files[0].format == "otlp-logs-json" and report.files[0].stored == {"evals": 1}
    assert report.files[0].not_read == {EVALS_NOTE: 1}
    engine = Engine(Lake(tmp_path / "store"))
    assert engine.query("SELECT request_id, metric, score FROM evals").rows() == [
        ("c100000000000002", "relevance", 0.25)]


# -- A call made while a stream is read: two calls, each counted ---------------------------------
# opentelemetry-util-genai 1.1b0 (under openai-v2 2.4b0) keeps a streamed call's span current until
# the stream is read to its end: a call started meanwhile (a check of the answer as it comes, a
# second stream opened before the first is read) is recorded as the streamed call's child, though
# it is another call, another bill.
ANSWER = {"prompt_tokens": 1000, "completion_tokens": 100, "text": "one two three"}
CHECK = {"prompt_tokens": 50, "completion_tokens": 5}
WHILE_STREAMING = {
    "call-in-the-stream-loop": [{"model": "gpt-4o", "stream": True, "directive": ANSWER,
                                 "while_reading": {"model": "gpt-4o-mini", "directive": CHECK}}],
    "two-streams-two-models": [{"open_streams": [{"model": "gpt-4o", "directive": ANSWER},
                                                 {"model": "gpt-4o-mini", "directive": CHECK}]}],
    "two-streams-one-model": [{"open_streams": [{"model": "gpt-4o", "directive": ANSWER},
                                                {"model": "gpt-4o", "directive": CHECK}]}],
}


@pytest.fixture(scope="module")
def while_streaming(tmp_path_factory):
    """(Collector file, ledger) of a WHILE_STREAMING scenario under an instrumentation, recorded
    once per module."""
    recorded = {}

    def record(instrumentation, name):
        if (instrumentation, name) not in recorded:
            folder = tmp_path_factory.mktemp(name)
            _, collector, ledger = record_spans(instrumentation, folder, WHILE_STREAMING[name])
            recorded[instrumentation, name] = collector, ledger
        return recorded[instrumentation, name]

    return record


def _as_the_server_answered(engine, ledger):
    """The stored requests are the server's calls, with its usage, each priced as genai-prices
    prices it."""
    answered = sorted((e["model"], e["usage"]["prompt_tokens"], e["usage"]["completion_tokens"])
                      for e in ledger)
    rows = engine.query("SELECT model, input_tokens, output_tokens, ts, cost_usd FROM requests "
                        "ORDER BY model, input_tokens").to_dicts()
    assert [(r["model"], r["input_tokens"], r["output_tokens"]) for r in rows] == answered
    for row in rows:
        price = calc_price(Usage(input_tokens=row["input_tokens"],
                                 output_tokens=row["output_tokens"]),
                           row["model"], provider_id="openai",
                           genai_request_timestamp=row["ts"].astimezone(UTC))
        assert row["cost_usd"] == pytest.approx(float(price.total_price), rel=1e-12), row
    assert engine.query("SELECT count(*), sum(input_tokens), sum(output_tokens) "
                        "FROM requests").row(0) == (2, 1050, 105)


@pytest.mark.parametrize("name", WHILE_STREAMING)
def test_a_call_made_while_a_stream_is_read_is_another_call(while_streaming, tmp_path, name):
    collector, ledger = while_streaming("otel-genai", name)
    assert [e["status"] for e in ledger] == [200, 200]
    report, engine = _ingest(tmp_path, collector)
    # recorded inside the streamed call...
    assert engine.scalar("SELECT count(*) FROM spans WHERE parent_id IN "
                         "(SELECT span_id FROM spans)") == 1
    # ...and counted beside it: not one call recorded twice
    _as_the_server_answered(engine, ledger)
    assert NOTE not in report.not_read and _counted_as(engine) == {}


@pytest.mark.parametrize("name", WHILE_STREAMING)
def test_openinference_records_those_calls_side_by_side(while_streaming, tmp_path, name):
    """The control: openinference-instrumentation-openai does not keep the streamed call's span
    current, so the same calls come apart, and count as they did before."""
    collector, ledger = while_streaming("openinference", name)
    report, engine = _ingest(tmp_path, collector)
    assert engine.scalar("SELECT count(*) FROM spans WHERE parent_id IS NOT NULL") == 0
    _as_the_server_answered(engine, ledger)
    assert report.not_read == {}


@pytest.mark.parametrize("name", WHILE_STREAMING)
def test_with_both_instrumentations_each_envelope_counts_as_its_own_call(while_streaming,
                                                                         tmp_path, name):
    """openai-v2's span of each call is around OpenInference's span of it (one call recorded
    twice), and the streamed call's span is also above the other call's spans: each envelope
    counts as its own call (the same tokens), not as the call made while it was open."""
    collector, ledger = while_streaming("openinference+otel-genai", name)
    report, engine = _ingest(tmp_path, collector)
    _as_the_server_answered(engine, ledger)
    assert report.not_read == {NOTE: 2}
    counted = _counted_as(engine)
    assert len(counted) == 2
    for envelope, call in counted.items():
        recorded = json.loads(engine.scalar("SELECT attributes FROM spans WHERE span_id = $id",
                                            {"id": envelope}))
        assert engine.scalar("SELECT input_tokens FROM requests WHERE request_id = $id",
                             {"id": call}) == recorded["input_tokens"]


def _named(span, **attributes):
    """``span`` with ``attributes`` set, in place of any it had under those keys."""
    kept = [a for a in span["attributes"] if a["key"] not in attributes]
    return {**span, "attributes": kept + [_attr(k, v) for k, v in attributes.items()]}


MODEL, ANSWERED, RESPONSE_ID = "gen_ai.request.model", "gen_ai.response.model", "gen_ai.response.id"


@pytest.mark.parametrize("outer, inner", [
    ({RESPONSE_ID: "chatcmpl-1"}, {RESPONSE_ID: "chatcmpl-2"}),  # one model, two responses
    ({MODEL: "gpt-4o"}, {MODEL: "gpt-4o-mini"}),                  # two models, no ids
    ({MODEL: "gpt-4o", ANSWERED: "gpt-4o-2024-08-06"},
     {MODEL: "gpt-4o-mini", ANSWERED: "gpt-4o-mini-2024-07-18"}),
], ids=["response-ids", "models", "answering-models"])
def test_calls_that_cannot_be_one_call_are_no_envelope(tmp_path, outer, inner):
    report, engine = _ingest_spans(tmp_path, [
        _named(_call("a300000000000002", "a300000000000001", at_ms=5, inputs=50), **inner),
        _named(_call("a300000000000001", ms=900, inputs=1000), **outer)])
    assert engine.scalar("SELECT sum(input_tokens) FROM requests") == 1050
    assert report.not_read == {} and _counted_as(engine) == {}


@pytest.mark.parametrize("outer, inner", [
    # a gateway's alias, answered by the model the client asked for
    ({MODEL: "fast", ANSWERED: "gpt-4o-2024-08-06"}, {MODEL: "gpt-4o"}),
    ({MODEL: "openai/gpt-4o"}, {MODEL: "gpt-4o", ANSWERED: "gpt-4o-2024-08-06"}),
    ({MODEL: "anthropic.claude-3-5-sonnet-20240620-v1:0"},
     {MODEL: "claude-3-5-sonnet-20240620"}),
    ({MODEL: "GPT-4o-2024-08-06"}, {MODEL: "gpt-4o"}),                  # a snapshot of it
    # a framework's own id beside the provider's: ids of two kinds are not compared
    ({RESPONSE_ID: "run-5f0c2b1e-1d7e-4b8e-9a51-0c1f8b3a2d44"}, {RESPONSE_ID: "chatcmpl-2"}),
    ({RESPONSE_ID: "chatcmpl-2"}, {RESPONSE_ID: "chatcmpl-2"}),
], ids=["gateway-alias", "route-prefix", "bedrock-id", "snapshot", "framework-id", "same-id"])
def test_calls_that_may_be_one_call_stay_one(tmp_path, outer, inner):
    report, engine = _ingest_spans(tmp_path, [
        _named(_call("a400000000000002", "a400000000000001", at_ms=5, inputs=50), **inner),
        _named(_call("a400000000000001", ms=900, inputs=1000), **outer)])
    assert engine.query("SELECT request_id FROM requests").rows() == [("a400000000000002",)]
    assert report.not_read == {NOTE: 1}


# -- One call in two traces: counted twice, and said ---------------------------------------------

def test_the_langfuse_wrapper_beside_openai_v2_is_named_in_a_note(tmp_path):
    """The Langfuse SDK's OpenAI wrapper starts its generation in a trace of its own, and
    openai-v2's span of the same call is in another: not merged (two calls that alike may be
    two calls), but each such pair is counted in the report's note."""
    _, collector, ledger = record_spans("langfuse+otel-genai", tmp_path / "rec", SCENARIO)
    text = collector.read_text()
    assert '"langfuse.observation.type"' in text and '"gen_ai.usage.input_tokens"' in text
    report, engine = _ingest(tmp_path, collector)
    calls = len(ledger)
    assert engine.scalar("SELECT count(*) FROM requests") == 2 * calls
    # Each call that answered is a pair, but for errors (no tokens to compare) and the stream:
    # with the wrapper consuming it, openai-v2 ends its span at once, without usage.
    alike = sum(1 for item, e in zip(SCENARIO, ledger, strict=True)
                if e["status"] == 200 and not item.get("stream"))
    assert report.not_read[TWINS_NOTE] == alike == 4
    assert NOTE not in report.not_read


def test_alike_calls_apart_in_time_are_no_pair(tmp_path):
    report, _ = _ingest_spans(tmp_path, [
        {**_call("d100000000000001", at_ms=0), "traceId": "1" * 32},
        {**_call("d100000000000002", at_ms=6), "traceId": "2" * 32},     # 6 ms later
        {**_call("d100000000000003", at_ms=2000), "traceId": "3" * 32},
        {**_call("d100000000000004", at_ms=2001), "traceId": "4" * 32}])  # 1 ms: a pair
    assert report.not_read == {TWINS_NOTE: 1}
