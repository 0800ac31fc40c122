"""OTLP JSON with the GenAI semantic conventions (lib/ingest/formats/otlp.py).

The main evidence is spans produced by the real ``opentelemetry-instrumentation-openai-v2``
driving the real ``openai`` client against tests/ingest/fake_openai.py, exported the way the
Collector's file exporter writes them, in both JSON encodings. A hand-written fixture covers what
the installed instrumentation does not emit (older attribute names, cache and reasoning tokens,
time to first chunk, evaluation events, Anthropic-style usage, malformed lines).
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lib import schema
from lib.ingest import formats as registry
from lib.ingest.formats import langfuse, openinference, otlp
from lib.ingest.formats import otlp_common as oc
from tests.ingest.chunks import parse_file, total
from tests.ingest.fake_openai import SCENARIO, record_spans, scenario_truth

FIXTURES = Path(__file__).parent / "fixtures"
HANDWRITTEN = FIXTURES / "genai_handwritten.jsonl"
CANONICAL_LINE = (b'{"request_id": "r1", "ts": "2026-01-01T00:00:00Z", "model": "gpt-4o", '
                  b'"input_tokens": 10, "output_tokens": 2}\n')




@pytest.fixture(scope="module")
def genai_files(tmp_path_factory):
    protobuf_file, collector_file, ledger = record_spans(
        "otel-genai", tmp_path_factory.mktemp("otel-genai"))
    return {"protobuf": protobuf_file, "collector": collector_file, "ledger": ledger}


# ---------------------------------------------------------------------------------------------
# Real instrumentation spans


def test_fake_server_answered_every_call(genai_files):
    truth = scenario_truth()
    ledger = genai_files["ledger"]
    assert len(ledger) == truth["requests"]
    assert sum(1 for e in ledger if e["status"] != 200) == truth["errors"]


@pytest.mark.parametrize("encoding", ["protobuf", "collector"])
def test_real_genai_spans_give_exact_totals(genai_files, encoding):
    path = genai_files[encoding]
    tables, rejects, _ = parse_file(otlp.FORMAT, path)
    truth = scenario_truth()
    requests, spans = tables["requests"], tables["spans"]
    assert rejects == []
    assert requests.num_rows == truth["requests"]
    assert pc.sum(pc.equal(requests["status"], "error")).as_py() == truth["errors"]
    # input is the server's prompt_tokens exactly. (The cached-tokens double count cannot show
    # here: this instrumentation records no cached count for chat completions, see below. The
    # trap is tested on hand-written spans in test_handwritten_totals_older_names_and_token_traps
    # and on real OpenInference spans, which do record it, in test_openinference.py.)
    assert total(requests, "input_tokens") == truth["input_tokens"]
    assert total(requests, "output_tokens") == truth["output_tokens"]
    # opentelemetry-instrumentation-openai-v2 2.4b0 does not record cached or reasoning tokens
    # for chat completions (only for the Responses API); nothing is invented for them
    assert total(requests, "cached_input_tokens") == 0
    assert total(requests, "reasoning_tokens") == 0
    assert set(requests["provider"].to_pylist()) == {"openai"}
    assert set(requests["service"].to_pylist()) == {"support-bot"}
    assert set(requests["environment"].to_pylist()) == {"staging"}
    assert set(requests["app_version"].to_pylist()) == {"1.4.2"}
    assert sorted(requests["operation"].to_pylist()) == ["chat"] * 6 + ["embeddings"]
    # every span is kept for the waterfall: model calls (kind llm) plus the agent spans
    assert spans.num_rows == truth["requests"] + truth["agents"]
    assert spans["kind"].to_pylist().count("agent") == truth["agents"]
    assert set(spans["span_id"].to_pylist()) >= set(requests["request_id"].to_pylist())
    assert all(len(i) == 16 for i in requests["request_id"].to_pylist())
    assert all(len(i) == 32 for i in requests["trace_id"].to_pylist())
    assert set(requests["_line"].to_pylist()) == {1, 2, 3}
    assert pc.min(requests["latency_ms"]).as_py() > 0


def test_real_genai_span_details(genai_files):
    tables, _, _ = parse_file(otlp.FORMAT, genai_files["collector"])
    rows = tables["requests"].to_pylist()
    by_input = {r["input_tokens"]: r for r in rows if r["status"] == "ok"}
    cached = by_input[1200]
    assert (cached["model"], cached["response_model"], cached["finish_reason"]) == \
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "stop")
    assert cached["output_tokens"] == 300
    assert "Cached answer." in cached["output_text"]
    assert "cached_tokens" in cached["input_text"]  # the prompt, as gen_ai.input.messages
    assert json.loads(cached["attributes"])["gen_ai.response.id"].startswith("chatcmpl-")
    reasoning = by_input[500]
    assert (reasoning["model"], reasoning["finish_reason"], reasoning["output_tokens"]) == \
        ("o3-mini", "length", 800)
    assert by_input[2048]["finish_reason"] == "tool_calls"
    embedding = by_input[8]
    assert (embedding["operation"], embedding["output_tokens"]) == ("embeddings", None)
    errors = sorted((r["error_type"], r["error_message"]) for r in rows
                    if r["status"] == "error")
    # the instrumentation records error.type as "<class 'openai.RateLimitError'>"
    assert errors == [("InternalServerError", "Error code: 500 - fake 500"),
                      ("RateLimitError", "Error code: 429 - fake 429")]
    # the streamed call: its finish reason is only inside gen_ai.output.messages
    stream = by_input[90]
    assert stream["output_tokens"] == 12
    assert stream["finish_reason"] == "stop"
    # calls wrapped in an agent span point at it; the agent span is not a request
    agents = {r["span_id"] for r in tables["spans"].to_pylist() if r["kind"] == "agent"}
    assert {r["parent_id"] for r in tables["requests"].to_pylist() if r["parent_id"]} == agents
    assert not agents & set(tables["requests"]["request_id"].to_pylist())


def test_both_encodings_give_identical_rows(genai_files):
    a, _, _ = parse_file(otlp.FORMAT, genai_files["protobuf"])
    b, _, _ = parse_file(otlp.FORMAT, genai_files["collector"])
    assert a["requests"].equals(b["requests"])
    assert a["spans"].equals(b["spans"])


def test_tables_conform_to_canonical_schemas(genai_files):
    tables, _, _ = parse_file(otlp.FORMAT, genai_files["protobuf"])
    for name in ("requests", "spans"):
        table = tables[name]
        canonical = schema.TABLES[name]
        for field in table.schema:
            if field.name != "_line":
                assert canonical.field(field.name).type == field.type, field.name
        schema.conform(table.drop_columns(["_line"]), canonical)  # raises if not castable


# ---------------------------------------------------------------------------------------------
# Hand-written edge cases


def test_handwritten_totals_older_names_and_token_traps():
    tables, rejects, _ = parse_file(otlp.FORMAT, HANDWRITTEN)
    req = tables["requests"]
    assert req.num_rows == 5
    assert pc.sum(pc.equal(req["status"], "error")).as_py() == 1
    # 100 (older names) + 0 (error) + 1500 (inclusive, trusted) + 1220 (Anthropic raw: the cache
    # reads exceed the input, so they were outside it and are added) + 7
    assert total(req, "input_tokens") == 2827
    assert total(req, "cached_input_tokens") == 2000
    assert total(req, "cache_write_tokens") == 400
    assert total(req, "output_tokens") == 373
    assert total(req, "reasoning_tokens") == 100
    # the invoke_agent span's summed usage (5000 / 500) is not counted: it is a span
    kinds = dict(zip(tables["spans"]["span_id"].to_pylist(), tables["spans"]["kind"].to_pylist()))
    assert kinds["a1a1a1a1a1a1a1a1"] == "agent"
    assert kinds["a2a2a2a2a2a2a2a2"] == "tool"
    assert kinds["a3a3a3a3a3a3a3a3"] == "other"
    assert tables["spans"].num_rows == 8
    assert sorted((r.line, r.reason.split(":")[0]) for r in rejects) == [
        (4, "not valid JSON"),
        (5, "not an OTLP ExportTraceServiceRequest (no resourceSpans list)"),
        (6, "span not usable"),
    ]
    assert "spanId" in rejects[-1].reason


def test_handwritten_column_mapping():
    tables, _, _ = parse_file(otlp.FORMAT, HANDWRITTEN)
    rows = {r["request_id"]: r for r in tables["requests"].to_pylist()}
    legacy = rows["b7ad6b7169203331"]
    assert legacy["provider"] == "openai"  # from gen_ai.system
    assert legacy["parent_id"] is None  # empty parentSpanId
    assert (legacy["service"], legacy["environment"], legacy["app_version"]) == \
        ("legacy-app", "prod", "0.9.0")
    assert (legacy["user_id"], legacy["feature"], legacy["finish_reason"]) == \
        ("u-7", "search", "stop")
    assert legacy["latency_ms"] == pytest.approx(850.0)
    assert str(legacy["ts"]) == "2026-01-01 00:00:00+00:00"
    attributes = json.loads(legacy["attributes"])
    assert attributes == {"team": "blue", "k8s.namespace.name": "ai"}  # no telemetry.sdk.*
    timeout = rows["c7ad6b7169203332"]
    assert (timeout["status"], timeout["error_type"], timeout["provider"]) == \
        ("error", "timeout", "azure.ai.openai")
    assert timeout["input_tokens"] is None
    claude = rows["eee19b7ec3c1b174"]  # base64 ids decoded to hex
    assert claude["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert claude["ttft_ms"] == pytest.approx(250.0)
    assert (claude["model"], claude["response_model"]) == \
        ("claude-sonnet-4-0", "claude-sonnet-4-20250514")
    assert (claude["session_id"], claude["finish_reason"]) == ("conv-9", "end_turn")
    assert rows["fee19b7ec3c1b175"]["parent_id"] == "eee19b7ec3c1b174"
    assert rows["fee19b7ec3c1b175"]["input_tokens"] == 1220
    assert rows["d4d4d4d4d4d4d4d4"]["operation"] == "text_completion"


def test_evaluation_events_become_online_evals():
    tables, _, _ = parse_file(otlp.FORMAT, HANDWRITTEN)
    evals = sorted(tables["evals"].to_pylist(), key=lambda r: r["metric"])
    assert [(e["metric"], e["score"], e["label"], e["passed"]) for e in evals] == [
        ("relevance", 0.8, "relevant", True), ("toxicity", 0.0, "pass", True)]
    assert {e["source"] for e in evals} == {"online"}
    assert {e["request_id"] for e in evals} == {"eee19b7ec3c1b174"}
    # the judged span's trace, by which Quality's filters keep an evaluation of an agent step
    spans = {s["span_id"]: s["trace_id"] for s in tables["spans"].to_pylist()}
    assert {json.loads(e["attributes"])["trace_id"] for e in evals} == {spans["eee19b7ec3c1b174"]}
    assert evals[0]["model"] == "claude-sonnet-4-20250514"
    assert evals[0]["version"] == "2.1.0"
    assert evals[0]["explanation"] == "answers the question"
    assert len({e["eval_id"] for e in evals}) == 2
    assert set(tables["evals"]["_line"].to_pylist()) == {2}


def test_eval_ids_are_stable_across_parses():
    a, _, _ = parse_file(otlp.FORMAT, HANDWRITTEN)
    b, _, _ = parse_file(otlp.FORMAT, HANDWRITTEN)
    assert a["evals"]["eval_id"].to_pylist() == b["evals"]["eval_id"].to_pylist()


def test_small_chunks_stream_the_same_rows(genai_files):
    path = genai_files["protobuf"]
    with open(path, "rb") as f:
        chunks = list(oc.parse_otlp(f, path.name, otlp.mappers(), otlp.choose_mapper,
                                    chunk_rows=2))
    assert len(chunks) > 2
    whole, _, _ = parse_file(otlp.FORMAT, path)
    parts = pa.concat_tables([c.tables["requests"] for c in chunks if "requests" in c.tables])
    assert parts.equals(whole["requests"])


def test_raw_stream_without_buffering_is_read_by_lines():
    class Raw(io.RawIOBase):  # what the pipeline hands over: no read buffer of its own
        def __init__(self, data: bytes):
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buf) -> int:
            chunk = self._data.read(len(buf))
            buf[: len(chunk)] = chunk
            return len(chunk)

    chunks = list(otlp.parse(Raw(HANDWRITTEN.read_bytes()), HANDWRITTEN.name))
    assert sum(c.tables["requests"].num_rows for c in chunks if "requests" in c.tables) == 5


def test_pretty_printed_single_request_is_read_whole(tmp_path):
    first = json.loads(HANDWRITTEN.read_text().splitlines()[1])
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(first, indent=2))
    tables, rejects, _ = parse_file(otlp.FORMAT, path)
    assert rejects == []
    assert tables["requests"].num_rows == 2
    assert set(tables["requests"]["_line"].to_pylist()) == {1}


def test_a_json_array_of_requests_on_one_line_is_read_as_pretty_printed(tmp_path):
    # `jq -c -s .` of a Collector file, or JSON.stringify of the requests, writes the array on
    # one line: the same requests as the pretty-printed array, which were read, while the one
    # line was quarantined whole as "no resourceSpans list" (review)
    lines = HANDWRITTEN.read_text().splitlines()[:2]
    requests = [json.loads(line) for line in lines]
    pretty, compact = tmp_path / "pretty.json", tmp_path / "compact.json"
    pretty.write_text(json.dumps(requests, indent=2))
    compact.write_text(json.dumps(requests))
    want, want_rejects, _ = parse_file(otlp.FORMAT, pretty)
    got, rejects, _ = parse_file(otlp.FORMAT, compact)
    assert rejects == want_rejects
    for name in want:
        assert got[name].drop_columns(["_line"]).to_pylist() == \
            want[name].drop_columns(["_line"]).to_pylist()
    assert total(got["requests"], "input_tokens") > 0


def test_spec_enums_and_all_zero_parent(tmp_path):
    span = {"traceId": "0" * 31 + "1", "spanId": "00000000000000ff", "parentSpanId": "0" * 16,
            "name": "chat", "kind": 3, "startTimeUnixNano": "1767225600000000000",
            "endTimeUnixNano": "0", "status": {"code": 2},
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                           {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "3"}},
                           {"key": "flag", "value": {"boolValue": True}},
                           {"key": "scores", "value": {"arrayValue": {"values": [
                               {"doubleValue": 0.5}, {"intValue": "2"}]}}},
                           {"key": "nested", "value": {"kvlistValue": {"values": [
                               {"key": "a", "value": {"stringValue": "b"}}]}}}]}
    path = tmp_path / "spec.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}) + "\n")
    tables, rejects, _ = parse_file(otlp.FORMAT, path)
    row = tables["requests"].to_pylist()[0]
    assert rejects == []
    assert (row["parent_id"], row["status"], row["latency_ms"]) == (None, "error", None)
    assert json.loads(row["attributes"]) == {"flag": True, "scores": [0.5, 2],
                                             "nested": {"a": "b"}}


# ---------------------------------------------------------------------------------------------
# Detection


def _head(path: Path) -> bytes:
    return path.read_bytes()[:65536]


def test_detects_real_and_handwritten_files(genai_files):
    for path in (genai_files["protobuf"], genai_files["collector"], HANDWRITTEN):
        assert otlp.FORMAT.detect(_head(path), path.name)
        assert not openinference.FORMAT.detect(_head(path), path.name)
        assert not langfuse.FORMAT.detect(_head(path), path.name)
        first = next(f for f in registry.registered() if f.detect(_head(path), path.name))
        assert first.name == "otlp-json"


@pytest.mark.parametrize("head", [
    CANONICAL_LINE,
    b'[{"request_id": "r1", "ts": "2026-01-01T00:00:00Z", "model": "gpt-4o"}]',
    b"request_id,ts,model\nr1,2026-01-01,gpt-4o\n",
    b"",
    b"\x1f\x8b\x08\x00junk",
])
def test_does_not_claim_other_files(head):
    assert not otlp.FORMAT.detect(head, "x.jsonl")


def test_gzip_is_the_pipelines_job_but_parse_reads_decompressed_bytes(tmp_path):
    data = gzip.decompress(gzip.compress(HANDWRITTEN.read_bytes()))
    chunks = list(otlp.parse(io.BytesIO(data), "x.jsonl"))
    assert sum(c.tables["requests"].num_rows for c in chunks if "requests" in c.tables) == 5


def test_scenario_is_what_the_test_says():
    truth = scenario_truth(SCENARIO)
    assert truth == {"requests": 7, "errors": 2, "input_tokens": 3846,
                     "cached_input_tokens": 2560, "output_tokens": 1176,
                     "reasoning_tokens": 640, "agents": 2, "streams": 1}


# ---------------------------------------------------------------------------------------------
# End to end through the ingest pipeline


def test_ingest_pipeline_end_to_end(genai_files, tmp_path):
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Engine, Lake

    gz = tmp_path / "collector-export.jsonl.gz"
    gz.write_bytes(gzip.compress(genai_files["collector"].read_bytes()))
    lake = Lake(tmp_path / "store")
    report = ingest_paths(lake, [str(gz), str(HANDWRITTEN)])
    assert report.ok, [f.error for f in report.files]
    assert [f.format for f in report.files] == ["otlp-json", "otlp-json"]
    truth = scenario_truth()
    requests, errors, input_tokens, cached, output_tokens = Engine(lake).query(
        "SELECT count(*), count(*) FILTER (status = 'error'), sum(input_tokens), "
        "sum(cached_input_tokens), sum(output_tokens) FROM requests").row(0)
    assert requests == truth["requests"] + 5
    assert errors == truth["errors"] + 1
    assert input_tokens == truth["input_tokens"] + 2827
    assert cached == 0 + 2000
    assert output_tokens == truth["output_tokens"] + 373
    engine = Engine(lake)
    assert engine.scalar("SELECT count(*) FROM spans") == truth["requests"] + truth["agents"] + 8
    assert engine.scalar("SELECT count(*) FROM evals") == 2
    assert engine.scalar("SELECT list(line ORDER BY line) FROM quarantine") == [4, 5, 6]
    # the same spans again (another name, uncompressed) add nothing
    again = ingest_paths(lake, [str(genai_files["collector"])])
    assert again.totals()["stored"].get("requests", 0) == 0
    assert Engine(lake).scalar("SELECT count(*) FROM requests") == requests


def test_real_spans_are_priced_at_the_tier_that_served_them(tmp_path):
    """openai-v2 keeps the tier as ``openai.response.service_tier``: it prices the call like
    ``attributes.service_tier`` (lib/pricing.py CONTEXT_ALIASES). gpt-4o-mini has a priority
    variant in genai-prices and no flex one; "auto" is served by "default"."""
    from datetime import UTC, datetime

    from genai_prices import Usage, calc_price

    from lib.ingest.pipeline import ingest_paths
    from lib.store import Engine, Lake

    tiers = ["priority", "flex", "auto", None]
    scenario = [{"model": "gpt-4o-mini", "service_tier": tier,
                 "directive": {"prompt_tokens": 2000 + i, "completion_tokens": 100}}
                for i, tier in enumerate(tiers)]
    _, collector_file, ledger = record_spans("otel-genai", tmp_path / "spans", scenario)
    assert [e["status"] for e in ledger] == [200] * 4
    lake = Lake(tmp_path / "store")
    assert ingest_paths(lake, [str(collector_file)]).ok
    rows = Engine(lake).query(
        "SELECT input_tokens, model, ts, cost_usd, "
        "json_extract_string(attributes, '$.\"openai.response.service_tier\"') AS tier "
        "FROM requests ORDER BY input_tokens").to_dicts()
    assert [r["tier"] for r in rows] == ["priority", "flex", "default", "default"]
    for row in rows:
        price = calc_price(Usage(input_tokens=row["input_tokens"], output_tokens=100),
                           row["model"], provider_id="openai",
                           genai_request_timestamp=row["ts"].astimezone(UTC),
                           price_context={"service_tier": row["tier"]})
        assert row["cost_usd"] == pytest.approx(float(price.total_price), rel=1e-12), row
    standard = calc_price(Usage(input_tokens=2000, output_tokens=100), "gpt-4o-mini",
                          provider_id="openai",
                          genai_request_timestamp=datetime.now(UTC))
    assert rows[0]["cost_usd"] > float(standard.total_price) * 1.5  # priority is dearer


def test_spans_naming_a_model_under_no_known_convention_are_noted(tmp_path, genai_files):
    """OpenLLMetry's older llm.* and the Vercel AI SDK's ai.* attributes map to nothing: the
    spans are kept as spans, and the report says so instead of silently giving no requests."""
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Lake

    def span(i: int, attributes: dict) -> dict:
        return {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": f"b7ad6b716920333{i}",
                "name": "call", "startTimeUnixNano": "1772452800000000000",
                "attributes": [{"key": k, "value": {"stringValue": v}}
                               for k, v in attributes.items()]}
    spans = [span(1, {"llm.request.model": "gpt-4o", "traceloop.span.kind": "llm"}),
             span(2, {"ai.model.id": "gpt-4o", "ai.usage.promptTokens": "12"}),
             span(3, {"http.route": "/chat", "db.system": "postgresql"}),  # not a model call
             span(4, {"gen_ai.agent.name": "planner"})]  # GenAI's own: its mapping decided
    path = tmp_path / "others.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}) + "\n")
    lake = Lake(tmp_path / "store")
    f = ingest_paths(lake, [str(path)]).files[0]
    assert f.stored == {"spans": 4}
    assert f.notes == [f"2 {oc.UNMAPPED_MODEL_SPANS}"]
    # real instrumentation files give no such note: their spans are read
    g = ingest_paths(lake, [str(genai_files["collector"])]).files[0]
    assert g.stored.get("requests") and g.notes == []


def test_an_error_type_means_an_error_whatever_the_status_says(tmp_path):
    # GenAI conventions: error.type is set only when the operation ended in an error. A span
    # with it and an unset status (empty, or code 0) is an error, as validate.py reads a
    # canonical row with an error type and no status; without it the row is ok.
    def span(span_id, status, error_type=None):
        attrs = [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                 {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                 {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}}]
        if error_type:
            attrs.append({"key": "error.type", "value": {"stringValue": error_type}})
        return {"traceId": "3" * 32, "spanId": span_id, "name": "chat", "kind": 3,
                "startTimeUnixNano": "1767225600000000000",
                "endTimeUnixNano": "1767225601000000000", "status": status,
                "attributes": attrs}
    spans = [span("1" * 16, {}, "500"), span("2" * 16, {"code": 0}, "RateLimitError"),
             span("3" * 16, {}), span("4" * 16, {"code": "STATUS_CODE_UNSET"})]
    path = tmp_path / "errors.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}) + "\n")
    tables, rejects, _ = parse_file(otlp.FORMAT, path)
    assert rejects == []
    got = {r["request_id"]: (r["status"], r["error_type"]) for r in tables["requests"].to_pylist()}
    assert got == {"1" * 16: ("error", "500"), "2" * 16: ("error", "RateLimitError"),
                   "3" * 16: ("ok", None), "4" * 16: ("ok", None)}
    # the trace view agrees with the request
    assert dict(zip(tables["spans"]["span_id"].to_pylist(), tables["spans"]["status"].to_pylist(),
                    strict=True))["1" * 16] == "error"


def _chat_span(fmt: str, trace_id: str, span_id: str, attributes: dict) -> dict:
    """A one-second chat span of the GenAI conventions (``fmt`` "genai") or OpenInference's,
    with ``attributes`` (an int as OTLP's intValue, else a string) and the convention's own
    mark of a model call."""
    attrs = [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int)
              else {"stringValue": v}} for k, v in attributes.items()]
    attrs += ([{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]
              if fmt == "genai" else
              [{"key": "openinference.span.kind", "value": {"stringValue": "LLM"}}])
    return {"traceId": trace_id, "spanId": span_id, "name": "chat", "kind": 3,
            "startTimeUnixNano": "1767225600000000000",
            "endTimeUnixNano": "1767225601000000000", "attributes": attrs}


@pytest.mark.parametrize("fmt", ["genai", "openinference"])
def test_a_count_proved_to_hold_no_cached_tokens_is_corrected_and_said(tmp_path, fmt):
    # input 100 with 800 cached cannot include them (Anthropic's raw input_tokens copied into
    # the attribute): 900 is stored, and the report says so; 1000 with 800 cached is trusted
    def span(span_id, inp, cached):
        names = ({"model": "gen_ai.request.model", "in": "gen_ai.usage.input_tokens",
                  "cached": "gen_ai.usage.cache_read.input_tokens"} if fmt == "genai" else
                 {"model": "llm.model_name", "in": "llm.token_count.prompt",
                  "cached": "llm.token_count.prompt_details.cache_read"})
        return _chat_span(fmt, "5" * 32, span_id, {
            names["model"]: "claude-sonnet-4-20250514", names["in"]: inp,
            names["cached"]: cached})
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        span("a" * 16, 100, 800), span("b" * 16, 1000, 800)]}]}]}) + "\n")
    tables, rejects, chunks = parse_file(
        otlp.FORMAT if fmt == "genai" else openinference.FORMAT, path)
    assert rejects == []
    got = {r["request_id"]: (r["input_tokens"], r["cached_input_tokens"])
           for r in tables["requests"].to_pylist()}
    assert got == {"a" * 16: (900, 800), "b" * 16: (1000, 800)}
    assert sum(c.not_read.get(oc.CACHED_OUTSIDE_INPUT, 0) for c in chunks) == 1
    assert "_cache_added" not in tables["requests"].column_names


def ai_sdk_file(tmp_path, attrs: dict, name: str = "ai-sdk.jsonl"):
    """A Collector-style file of one span of the Vercel AI SDK (scope ``ai``) named after its
    ``ai.operationId``, with ``attrs`` (ints, strings, lists of strings) as its attributes."""
    def value(v):
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, list):
            return {"arrayValue": {"values": [{"stringValue": x} for x in v]}}
        return {"stringValue": v}

    span = {"traceId": "6" * 32, "spanId": "c" * 16, "name": attrs["ai.operationId"],
            "startTimeUnixNano": "1772452800000000000",
            "endTimeUnixNano": "1772452801000000000",
            "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()]}
    path = tmp_path / name
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [
        {"scope": {"name": "ai"}, "spans": [span]}]}]}) + "\n")
    return path


def test_the_vercel_ai_sdk_step_span_s_cache_and_reasoning_counts_are_read(tmp_path):
    # ai 6.0.264 generate-text.ts, the ai.generateText.doGenerate span (experimental_telemetry):
    # gen_ai.usage.input_tokens is inputTokens.total, which includes the cache reads and writes
    # (@ai-sdk/anthropic convert-anthropic-messages-usage.ts: total = input_tokens +
    # cache_creation + cache_read); their split is only under ai.usage.inputTokenDetails.*, the
    # reasoning under ai.usage.outputTokenDetails.reasoningTokens. Unread, 8,000 cache reads and
    # 500 writes were priced as plain input: $0.033 instead of $0.011775.
    from datetime import UTC, datetime

    from genai_prices import Usage, calc_price

    from lib.ingest.pipeline import ingest_paths
    from lib.store import Engine, Lake

    attributes = {
        "operation.name": "ai.generateText.doGenerate", "ai.operationId":
        "ai.generateText.doGenerate", "ai.model.provider": "anthropic.messages",
        "ai.model.id": "claude-sonnet-4-5", "gen_ai.system": "anthropic.messages",
        "gen_ai.request.model": "claude-sonnet-4-5", "ai.usage.inputTokens": 9500,
        "ai.usage.inputTokenDetails.noCacheTokens": 1000,
        "ai.usage.inputTokenDetails.cacheReadTokens": 8000,
        "ai.usage.inputTokenDetails.cacheWriteTokens": 500, "ai.usage.outputTokens": 300,
        "ai.usage.outputTokenDetails.textTokens": 100,
        "ai.usage.outputTokenDetails.reasoningTokens": 200, "ai.usage.totalTokens": 9800,
        "ai.usage.reasoningTokens": 200, "ai.usage.cachedInputTokens": 8000,
        "gen_ai.response.finish_reasons": ["stop"], "gen_ai.usage.input_tokens": 9500,
        "gen_ai.usage.output_tokens": 300}
    path = ai_sdk_file(tmp_path, attributes)
    lake = Lake(tmp_path / "store")
    f = ingest_paths(lake, [str(path)], compact_min_files=0, overrides={}).files[0]
    assert f.stored.get("requests") == 1, f.reasons
    row = Engine(lake).query("SELECT * FROM requests").to_dicts()[0]
    assert (row["input_tokens"], row["cached_input_tokens"], row["cache_write_tokens"],
            row["output_tokens"], row["reasoning_tokens"]) == (9500, 8000, 500, 300, 200)
    price = calc_price(Usage(input_tokens=9500, cache_read_tokens=8000, cache_write_tokens=500,
                             output_tokens=300), "claude-sonnet-4-5", provider_id="anthropic",
                       genai_request_timestamp=datetime(2026, 3, 2, 12, tzinfo=UTC))
    assert float(price.total_price) == pytest.approx(0.011775)
    assert row["cost_usd"] == pytest.approx(float(price.total_price), rel=1e-12)


@pytest.mark.parametrize("ai_sdk, provider", [
    ("openai.responses", "openai"), ("openai.chat", "openai"), ("anthropic.messages", "anthropic"),
    ("google.generative-ai", "gcp.gemini"), ("google.vertex.chat", "gcp.vertex_ai"),
    ("vertex.anthropic.messages", "gcp.vertex_ai"), ("bedrock.anthropic.messages", "aws.bedrock"),
    ("azure.responses", "azure.ai.openai"), ("mistral.chat", "mistral_ai"), ("xai.chat", "x_ai"),
    ("groq.chat", "groq"), ("deepseek.chat", "deepseek"), ("gateway", "gateway")])
def test_the_vercel_ai_sdk_s_provider_ids_name_the_provider(tmp_path, ai_sdk, provider):
    # The AI SDK writes its provider id, "<provider>.<API>" (@ai-sdk/openai
    # `${providerName}.responses`, @ai-sdk/google 'google.generative-ai'...), as gen_ai.system:
    # stored as is, one provider was split by API in every chart, and a price override for
    # provider openai did not price openai.responses calls.
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Engine, Lake

    attrs = {"ai.operationId": "ai.generateText.doGenerate", "gen_ai.system": ai_sdk,
             "ai.model.provider": ai_sdk, "gen_ai.request.model": "gpt-4o",
             "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}
    path = ai_sdk_file(tmp_path, attrs, "ai-sdk.jsonl")
    from lib.pricing import Override
    negotiated = {(provider, "gpt-4o"): Override(provider, "gpt-4o", 1.0, 2.0)}
    lake = Lake(tmp_path / "store")
    f = ingest_paths(lake, [str(path)], compact_min_files=0, overrides=negotiated).files[0]
    assert f.stored.get("requests") == 1, f.reasons
    row = Engine(lake).query("SELECT provider, cost_usd FROM requests").to_dicts()[0]
    assert row["provider"] == provider
    assert row["cost_usd"] == pytest.approx((1000 * 1.0 + 100 * 2.0) / 1e6)  # the override's


@pytest.mark.parametrize("system, metadata, stored", [
    # @ai-sdk/anthropic 2 (ai 5): inputTokens is Anthropic's input_tokens, the uncached part;
    # cachedInputTokens its cache_read_input_tokens; the writes only in providerMetadata
    ("anthropic.messages",
     {"anthropic": {"cacheCreationInputTokens": 200,
                    "usage": {"input_tokens": 5000, "cache_read_input_tokens": 3000,
                              "cache_creation_input_tokens": 200, "output_tokens": 100}}},
     (8200, 3000, 200)),
    # @ai-sdk/openai 2: inputTokens is prompt_tokens, the cached ones inside
    ("openai.responses", {"openai": {"responseId": "resp_1"}}, (5000, 3000, 0)),
])
def test_the_vercel_ai_sdk_5_s_input_count_is_the_provider_s_own(tmp_path, system, metadata,
                                                                   stored):
    # ai 5.0.244 stream-text.ts, the ai.streamText.doStream span: gen_ai.usage.input_tokens and
    # ai.usage.inputTokens are the provider's usage.inputTokens, ai.usage.cachedInputTokens its
    # cache reads, and no ai.usage.inputTokenDetails.* (AI SDK 6's). Anthropic's 5,000 there
    # leave its 3,000 reads and 200 writes out; OpenAI's 5,000 hold its 3,000.
    attrs = {"ai.operationId": "ai.streamText.doStream", "gen_ai.system": system,
             "gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.usage.input_tokens": 5000,
             "gen_ai.usage.output_tokens": 100, "ai.usage.inputTokens": 5000,
             "ai.usage.outputTokens": 100, "ai.usage.cachedInputTokens": 3000,
             "ai.response.providerMetadata": json.dumps(metadata)}
    path = ai_sdk_file(tmp_path, attrs, "ai-sdk-5.jsonl")
    tables, rejects, chunks = parse_file(otlp.FORMAT, path)
    assert rejects == []
    row = tables["requests"].to_pylist()[0]
    assert (row["input_tokens"], row["cached_input_tokens"], row["cache_write_tokens"]) == stored
    assert not any(c.not_read for c in chunks)


@pytest.mark.parametrize("system, output, reasoning, stored", [
    # @ai-sdk/google 2 (ai 5): outputTokens is candidatesTokenCount, which leaves the
    # thoughts (reasoningTokens) out
    ("google.generative-ai", 300, 500, (800, 500)),
    ("google.vertex.chat", 300, 100, (400, 100)),
    # @ai-sdk/openai 2: completion_tokens holds the reasoning tokens
    ("openai.chat", 300, 100, (300, 100)),
])
def test_the_vercel_ai_sdk_5_s_gemini_output_count_leaves_the_thinking_out(
        tmp_path, system, output, reasoning, stored):
    # ai 5.0.244: ai.usage.reasoningTokens beside gen_ai.usage.output_tokens; for Gemini the
    # latter is candidatesTokenCount (google-generative-ai-language-model.ts), and the call was
    # quarantined "reasoning_tokens exceed output_tokens" or its thinking went unpriced.
    attrs = {"ai.operationId": "ai.generateText.doGenerate", "gen_ai.system": system,
             "gen_ai.request.model": "gemini-2.5-flash", "gen_ai.usage.input_tokens": 1000,
             "gen_ai.usage.output_tokens": output, "ai.usage.promptTokens": 1000,
             "ai.usage.completionTokens": output, "ai.usage.reasoningTokens": reasoning}
    path = ai_sdk_file(tmp_path, attrs, "ai-sdk-5.jsonl")
    tables, rejects, _ = parse_file(otlp.FORMAT, path)
    assert rejects == []
    row = tables["requests"].to_pylist()[0]
    assert (row["output_tokens"], row["reasoning_tokens"]) == stored


@pytest.mark.parametrize("fmt", ["genai", "openinference"])
def test_reasoning_beside_the_output_count_is_added_and_said(tmp_path, fmt):
    # xAI's completion_tokens leave the reasoning tokens out (total = prompt + completion +
    # reasoning), and instrumentations copy them as they are: 1,499 completion and 2,809
    # reasoning tokens were quarantined as "reasoning exceeds output"; 500 with 300 (total
    # 1,800 over 1,000 prompt) had the reasoning unpriced. OpenAI's (total 1,500) is trusted.
    def span(span_id, model, prompt, completion, reasoning, total):
        names = ({"model": "gen_ai.request.model", "in": "gen_ai.usage.input_tokens",
                  "out": "gen_ai.usage.output_tokens",
                  "reasoning": "gen_ai.usage.reasoning.output_tokens",
                  "total": "gen_ai.usage.total_tokens"} if fmt == "genai" else
                 {"model": "llm.model_name", "in": "llm.token_count.prompt",
                  "out": "llm.token_count.completion",
                  "reasoning": "llm.token_count.completion_details.reasoning",
                  "total": "llm.token_count.total"})
        values = {"model": model, "in": prompt, "out": completion, "reasoning": reasoning,
                  "total": total}
        return _chat_span(fmt, "b" * 32, span_id, {names[k]: v for k, v in values.items()})
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        span("a" * 16, "grok-4", 10120, 1499, 2809, 14428),
        span("b" * 16, "grok-4", 1000, 500, 300, 1800),
        span("c" * 16, "o3", 1000, 500, 300, 1500)]}]}]}) + "\n")
    tables, rejects, chunks = parse_file(
        otlp.FORMAT if fmt == "genai" else openinference.FORMAT, path)
    assert rejects == []
    got = {r["request_id"]: (r["output_tokens"], r["reasoning_tokens"])
           for r in tables["requests"].to_pylist()}
    assert got == {"a" * 16: (4308, 2809), "b" * 16: (800, 300), "c" * 16: (500, 300)}
    assert sum(c.not_read.get(oc.REASONING_OUTSIDE_OUTPUT, 0) for c in chunks) == 2


@pytest.mark.parametrize("system, metadata, stored", [
    # ai 5 generate-text.ts doGenerate: only ai.usage.promptTokens / completionTokens and
    # gen_ai.usage.*; Anthropic's cache reads and writes are in its raw usage in providerMetadata
    ("anthropic.messages",
     {"anthropic": {"cacheCreationInputTokens": 200,
                    "usage": {"input_tokens": 50, "cache_read_input_tokens": 8000,
                              "cache_creation_input_tokens": 200, "output_tokens": 300}}},
     (8250, 8000, 200, 300, 0)),
    # Gemini's thoughts and cached content are in its usageMetadata there
    ("google.generative-ai",
     {"google": {"usageMetadata": {"promptTokenCount": 50, "cachedContentTokenCount": 30,
                                   "candidatesTokenCount": 300, "thoughtsTokenCount": 700,
                                   "totalTokenCount": 1050}}},
     (50, 30, 0, 1000, 700)),
])
def test_the_vercel_ai_sdk_5_s_generate_text_usage_in_its_provider_metadata(
        tmp_path, system, metadata, stored):
    attrs = {"ai.operationId": "ai.generateText.doGenerate", "gen_ai.system": system,
             "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 50,
             "gen_ai.usage.output_tokens": 300, "ai.usage.promptTokens": 50,
             "ai.usage.completionTokens": 300,
             "ai.response.providerMetadata": json.dumps(metadata)}
    path = ai_sdk_file(tmp_path, attrs, "ai-sdk-5.jsonl")
    tables, rejects, _ = parse_file(otlp.FORMAT, path)
    assert rejects == []
    row = tables["requests"].to_pylist()[0]
    assert (row["input_tokens"], row["cached_input_tokens"], row["cache_write_tokens"],
            row["output_tokens"], row["reasoning_tokens"]) == stored


def test_the_vercel_ai_sdk_s_envelope_span_is_no_unread_model_call(tmp_path):
    # ai 6 generate-text.ts: the ai.generateText span around its steps names the model and sums
    # their usage under ai.* names only; each step (ai.generateText.doGenerate) has gen_ai.* and
    # is the request. The envelope was reported as a model call "not counted as requests" for
    # every call of an AI SDK app, though its calls are counted.
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Lake

    outer = {"ai.operationId": "ai.generateText", "ai.model.provider": "openai.responses",
             "ai.model.id": "gpt-4o", "ai.usage.inputTokens": 1000,
             "ai.usage.outputTokens": 100}
    inner = {**outer, "ai.operationId": "ai.generateText.doGenerate",
             "gen_ai.system": "openai.responses", "gen_ai.request.model": "gpt-4o",
             "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}

    def span(i, attrs, parent=None):
        return {"traceId": "e" * 32, "spanId": f"{i:016x}", "name": attrs["ai.operationId"],
                **({"parentSpanId": f"{parent:016x}"} if parent else {}),
                "startTimeUnixNano": str(1772452800000000000 + i),
                "endTimeUnixNano": str(1772452801000000000 - i),
                "attributes": [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int)
                                else {"stringValue": v}} for k, v in attrs.items()]}
    path = tmp_path / "ai-sdk.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"scope": {"name": "ai"},
        "spans": [span(1, outer), span(2, inner, parent=1)]}]}]}) + "\n")
    f = ingest_paths(Lake(tmp_path / "store"), [str(path)], overrides={}).files[0]
    assert f.stored == {"requests": 1, "spans": 2}
    assert f.notes == []
