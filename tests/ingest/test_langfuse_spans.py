"""Spans of the Langfuse SDK (OTel-based, v3+) in OTLP JSON (lib/ingest/formats/langfuse_spans.py).

The evidence is spans written by the real ``langfuse`` package (5.0.4): its OpenAI wrapper driving
the real ``openai`` client against tests/ingest/fake_openai.py, its ``agent`` observations and
generations recorded by hand, exported the way the Collector writes them (both encodings). The
test knows the true totals from what the fake server was told to answer.
"""

from __future__ import annotations

import json
from datetime import UTC

import pytest
from genai_prices import Usage, calc_price

from lib.ingest.pipeline import ingest_paths
from lib.store import Engine, Lake
from tests.ingest.fake_openai import SNAPSHOT_SUFFIX, record_spans

SCENARIO = [
    {"model": "gpt-4o-mini",
     "directive": {"prompt_tokens": 1200, "cached_tokens": 1024, "completion_tokens": 300,
                   "reasoning_tokens": 10},
     "context": {"session_id": "sess-a", "user_id": "user-1",
                 "metadata": {"feature": "faq", "customer_id": "acme"}}},
    {"model": "gpt-4o-mini", "stream": True,
     "directive": {"prompt_tokens": 90, "completion_tokens": 12, "first_chunk_delay_s": 0.05}},
    {"model": "gpt-4o", "directive": {"status": 429}},
    {"model": "gpt-4o", "agent": True,
     "directive": {"prompt_tokens": 2048, "cached_tokens": 1536, "completion_tokens": 64}},
    {"embeddings": True, "model": "text-embedding-3-small", "input": "one two three"},
    # The priority tier: the wrapper notes the tier that served it, which prices it.
    {"model": "gpt-4o-mini", "service_tier": "priority",
     "directive": {"prompt_tokens": 700, "completion_tokens": 70}},
    # By hand, in Langfuse's own keys: buckets, "input" does not hold the cache reads.
    {"manual": {"name": "summarize", "model": "claude-haiku-4-5",
                "usage_details": {"input": 100, "cache_read_input_tokens": 50, "output": 20},
                "cost_details": {"total": 0.01}}},
    # By hand, a provider's usage object (the Responses API's: input includes cached).
    {"manual": {"name": "respond", "model": "gpt-4o-mini",
                "usage_details": {"input_tokens": 500, "output_tokens": 50,
                                  "input_tokens_details": {"cached_tokens": 100},
                                  "output_tokens_details": {"reasoning_tokens": 20}}}},
    # A failure recorded by level only (no span status), with the exception in its message.
    {"manual": {"name": "timeout", "model": "gpt-4o-mini", "level": "ERROR",
                "status_message": "openai.APITimeoutError: Request timed out."}},
]
# Requests, errors, input (incl. cached), cached, output (incl. reasoning), reasoning.
TRUTH = (9, 2, 1200 + 90 + 2048 + 3 + 700 + 150 + 500, 1024 + 1536 + 50 + 100,
         300 + 12 + 64 + 0 + 70 + 20 + 50, 10 + 20)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    protobuf_file, collector_file, ledger = record_spans(
        "langfuse", tmp_path_factory.mktemp("langfuse-spans"), SCENARIO)
    return {"protobuf": protobuf_file, "collector": collector_file, "ledger": ledger}


def _ingest(tmp_path, path) -> tuple[Lake, Engine]:
    lake = Lake(tmp_path / "store")
    report = ingest_paths(lake, [str(path)])
    assert report.ok, [f.error for f in report.files]
    assert [f.format for f in report.files] == ["otlp-json"]
    return lake, Engine(lake)


def test_the_sdk_spans_are_what_the_test_expects(recorded):
    """The SDK wrote Langfuse attributes only, with the OpenAI usage object as usage_details."""
    assert [e["status"] for e in recorded["ledger"]] == [200, 200, 429, 200, 200, 200]
    text = recorded["protobuf"].read_text()
    assert '"langfuse.observation.type"' in text and '"gen_ai.' not in text
    assert "prompt_tokens_details" in text  # the wrapper passes OpenAI's usage as it is


@pytest.mark.parametrize("encoding", ["protobuf", "collector"])
def test_langfuse_sdk_spans_give_exact_totals(recorded, tmp_path, encoding):
    _, engine = _ingest(tmp_path, recorded[encoding])
    got = engine.query(
        "SELECT count(*), count(*) FILTER (status = 'error'), sum(input_tokens), "
        "sum(cached_input_tokens), sum(output_tokens), sum(reasoning_tokens) FROM requests").row(0)
    assert got == TRUTH
    assert engine.scalar("SELECT count(*) FROM quarantine") == 0


def test_langfuse_sdk_span_details(recorded, tmp_path):
    _, engine = _ingest(tmp_path, recorded["collector"])
    every = engine.query("SELECT * FROM requests ORDER BY ts").to_dicts()
    rows = {r["input_tokens"]: r for r in every if r["input_tokens"] is not None}
    first = rows[1200]
    assert (first["model"], first["provider"], first["operation"]) == (
        "gpt-4o-mini" + SNAPSHOT_SUFFIX, "openai", "chat")
    assert (first["session_id"], first["user_id"], first["feature"], first["customer_id"]) == (
        "sess-a", "user-1", "faq", "acme")
    assert (first["environment"], first["app_version"]) == ("staging", "1.4.2")
    attributes = json.loads(first["attributes"])
    assert attributes["langfuse.observation.model.parameters"]["temperature"] == 0.2
    assert attributes["langfuse.trace.metadata"] == {"feature": "faq", "customer_id": "acme"}
    assert "langfuse.internal.is_app_root" not in first["attributes"]
    stream = rows[90]
    assert stream["ttft_ms"] >= 50 and stream["ttft_ms"] <= stream["latency_ms"]
    assert stream["finish_reason"] == "stop"
    (failed,) = [r for r in every if r["model"] == "gpt-4o" and r["status"] == "error"]
    assert (failed["error_type"], failed["input_tokens"], failed["logged_cost_usd"]) == (
        "429", None, 0.0)
    assert failed["error_message"].startswith("Error code: 429")
    embedding = rows[3]
    assert (embedding["operation"], embedding["output_tokens"]) == ("embeddings", 0)
    manual = rows[150]
    assert (manual["model"], manual["provider"], manual["cached_input_tokens"],
            manual["logged_cost_usd"]) == ("claude-haiku-4-5", None, 50, 0.01)
    assert rows[500]["cached_input_tokens"] == 100 and rows[500]["reasoning_tokens"] == 20
    (timeout,) = [r for r in every if r["error_type"] == "APITimeoutError"]
    assert timeout["status"] == "error" and timeout["input_tokens"] is None
    # the agent observation is a span, the parent of the call made inside it
    agent = engine.query("SELECT span_id, kind, name FROM spans WHERE kind = 'agent'").row(0)
    assert agent[1:] == ("agent", "support_agent")
    assert rows[2048]["parent_id"] == agent[0]


def test_costs_are_genai_prices_on_the_counts_the_sdk_recorded(recorded, tmp_path):
    _, engine = _ingest(tmp_path, recorded["protobuf"])
    priced = engine.query(
        "SELECT model, ts, input_tokens, cached_input_tokens, output_tokens, cost_usd, "
        "json_extract_string(attributes, '$.service_tier') AS tier FROM requests "
        "WHERE input_tokens IS NOT NULL AND operation = 'chat'").to_dicts()
    assert len(priced) == 6
    assert sorted(r["tier"] or "-" for r in priced) == ["-", "-", "-", "default", "default",
                                                         "priority"]
    unpriced = 0
    for row in priced:
        try:
            want = float(calc_price(Usage(input_tokens=row["input_tokens"],
                                          cache_read_tokens=row["cached_input_tokens"],
                                          output_tokens=row["output_tokens"]), row["model"],
                                    genai_request_timestamp=row["ts"].astimezone(UTC),
                                    price_context={"service_tier": row["tier"]}
                                    if row["tier"] else None).total_price)
        except LookupError:  # the fake server's "gpt-4o-2024-07-18" is no real snapshot
            want, unpriced = None, unpriced + 1
        assert row["cost_usd"] == (None if want is None else pytest.approx(want, rel=1e-12)), row
    assert unpriced == 1
    (priority,) = [r for r in priced if r["tier"] == "priority"]
    standard = calc_price(Usage(input_tokens=700, output_tokens=70), priority["model"],
                          genai_request_timestamp=priority["ts"].astimezone(UTC))
    assert priority["cost_usd"] > 1.5 * float(standard.total_price)  # the tier's dearer price


def test_both_encodings_and_a_second_ingest_store_nothing_twice(recorded, tmp_path):
    lake, engine = _ingest(tmp_path, recorded["protobuf"])
    again = ingest_paths(lake, [str(recorded["collector"])])
    assert again.totals()["stored"].get("requests", 0) == 0
    assert engine.scalar("SELECT count(*) FROM requests") == TRUTH[0]


def _span_line(attributes: dict, status: dict | None = None) -> bytes:
    attrs = [{"key": k, "value": {"stringValue": v} if isinstance(v, str) else
              {"intValue": str(v)}} for k, v in attributes.items()]
    span = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
            "name": "generation", "kind": 1, "startTimeUnixNano": "1772452800000000000",
            "endTimeUnixNano": "1772452801000000000", "attributes": attrs,
            **({"status": status} if status else {})}
    return (json.dumps({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [
        {"scope": {"name": "langfuse-sdk"}, "spans": [span]}]}]}) + "\n").encode()


@pytest.mark.parametrize("attributes, reason", [
    ({"langfuse.observation.usage_details": "[1, 2]"},
     "langfuse.observation.usage_details is not a JSON object: [1,2]"),
    ({"langfuse.observation.usage_details": '{"input": -5}'},
     "langfuse.observation.usage_details.input is negative: -5"),
    ({"langfuse.observation.usage_details": '{"prompt_tokens": "many"}'},
     "langfuse.observation.usage_details: usage.prompt_tokens is not an integer: many"),
    ({"langfuse.observation.cost_details": '{"total": "free"}'},
     "langfuse.observation.cost_details.total is not a finite number: free"),
    ({"langfuse.observation.completion_start_time": '"yesterday"'},
     "langfuse.observation.completion_start_time is not a time: yesterday"),
    ({"langfuse.observation.usage_details": '{"input": NaN, "output": 2}'},
     "langfuse.observation.usage_details.input is not an integer: NaN"),
])
def test_a_bad_value_quarantines_its_span_naming_the_attribute(tmp_path, attributes, reason):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(_span_line({"langfuse.observation.type": "generation",
                                 "langfuse.observation.model.name": "gpt-4o", **attributes}))
    lake = Lake(tmp_path / "store")
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.stored.get("requests", 0), f.quarantined) == (0, 1)
    assert reason in f.reasons[0], f.reasons


def test_observations_that_are_not_model_calls_are_spans_only(tmp_path):
    path = tmp_path / "tool.jsonl"
    path.write_bytes(_span_line({"langfuse.observation.type": "tool"}))
    lake = Lake(tmp_path / "store")
    f = ingest_paths(lake, [str(path)]).files[0]
    assert f.stored == {"spans": 1}
    assert Engine(lake).query("SELECT kind FROM spans").row(0) == ("tool",)


def _request_of(tmp_path, attributes: dict) -> dict:
    path = tmp_path / "one.jsonl"
    path.write_bytes(_span_line({"langfuse.observation.type": "generation",
                                 "langfuse.observation.model.name": "claude-haiku-4-5",
                                 **attributes}))
    lake = Lake(tmp_path / "store")
    f = ingest_paths(lake, [str(path)]).files[0]
    assert f.stored.get("requests") == 1, f.reasons
    return Engine(lake).query("SELECT * FROM requests").to_dicts()[0]


def test_an_anthropic_usage_object_is_read_as_the_buckets_it_is(tmp_path):
    # What anthropic's Usage.model_dump() gives: input_tokens EXCLUDES the cache reads and
    # writes; cache_creation breaks cache_creation_input_tokens down; service_tier is no count.
    usage = {"input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 50,
             "cache_creation_input_tokens": 10,
             "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 0},
             "server_tool_use": None, "service_tier": "standard"}
    row = _request_of(tmp_path, {"langfuse.observation.usage_details": json.dumps(usage)})
    assert (row["input_tokens"], row["cached_input_tokens"], row["cache_write_tokens"],
            row["output_tokens"]) == (160, 50, 10, 20)


def test_a_gemini_usage_metadata_object_is_read_as_gemini_counts_it(tmp_path):
    # What google-genai's usage_metadata.model_dump() gives: prompt_token_count INCLUDES the
    # cached content, candidates_token_count EXCLUDES the thoughts; traffic_type is no count.
    # 10,000 prompt tokens (8,000 cached), 500 answer and 1,500 thinking tokens.
    usage = {"prompt_token_count": 10000, "cached_content_token_count": 8000,
             "candidates_token_count": 500, "thoughts_token_count": 1500,
             "total_token_count": 12000, "traffic_type": "ON_DEMAND"}
    row = _request_of(tmp_path, {"langfuse.observation.usage_details": json.dumps(usage)})
    assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"],
            row["reasoning_tokens"]) == (10000, 8000, 2000, 1500)


def test_level_error_makes_any_observation_an_error(tmp_path):
    path = tmp_path / "tool.jsonl"
    path.write_bytes(_span_line({"langfuse.observation.type": "tool",
                                 "langfuse.observation.level": "ERROR"}))
    lake = Lake(tmp_path / "store")
    ingest_paths(lake, [str(path)])
    assert Engine(lake).query("SELECT kind, status FROM spans").row(0) == ("tool", "error")
