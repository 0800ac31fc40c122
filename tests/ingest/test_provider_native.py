"""Provider-native request logs (lib/ingest/formats/provider_native.py: formats ``openai`` and
``anthropic``; docs/provider-logs.md).

The data is what the real SDKs return: the ``openai`` client against tests/ingest/fake_openai.py
(chat completions, embeddings, 429/500 errors) and its Responses API add-on
(tests/ingest/fake_openai_responses.py), and the ``anthropic`` client against
tests/ingest/fake_anthropic.py. Each call tells the fake server the usage to report, so the
true token counts are known; the test logs ``model_dump_json()`` the way an application does
(bare, or inside its own record with time, latency and context), ingests the file and compares
with totals and prices worked out here by hand (genai-prices' catalogue, USD per million
tokens: gpt-4o-mini 0.15 input / 0.075 cached / 0.60 output; o3-mini 1.10 / 0.55 / 4.40, by an
override as the fake's o3-mini snapshot name is not in the catalogue;
text-embedding-3-small 0.02; claude-sonnet-4 3 input / 0.30 cache read / 3.75 cache write / 15
output; claude-3-5-haiku 0.80 / 4). Batch files are built from real ``model_dump()`` bodies
inside the providers' documented batch envelopes (Anthropic's with the SDK's own types).
"""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, date, datetime
from pathlib import Path

import anthropic
import openai
import pytest
from anthropic.types.messages import (
    MessageBatchCanceledResult,
    MessageBatchErroredResult,
    MessageBatchExpiredResult,
    MessageBatchIndividualResponse,
    MessageBatchSucceededResult,
)
from anthropic.types.shared import ErrorResponse, InvalidRequestError

from lib.ingest import formats as registry
from lib.ingest.formats import provider_native
from lib.ingest.pipeline import detect_format, ingest_paths
from lib.pricing import Override
from lib.store import Engine
from tests.conftest import T0
from tests.ingest.conftest import canonical_request, jsonl_bytes
from tests.ingest.fake_anthropic import FakeAnthropicServer
from tests.ingest.fake_openai import SNAPSHOT_SUFFIX
from tests.ingest.fake_openai_responses import FakeOpenAIResponsesServer

FIXTURES = Path(__file__).parent / "fixtures"
MTOK = 1_000_000
# Prices from the catalogue, whatever prices.yaml says; one override: the fake server answers
# with a "-2024-07-18" snapshot of every model, which exists for gpt-4o-mini only, so its o3-mini
# "snapshot" is priced at o3-mini's catalogue rates (USD per million tokens) by an override.
O3_SNAPSHOT = "o3-mini" + SNAPSHOT_SUFFIX
PRICES = {("openai", O3_SNAPSHOT): Override("openai", O3_SNAPSHOT, input_per_mtok=1.10,
                                            output_per_mtok=4.40, cached_input_per_mtok=0.55)}

# -- what the fake providers are told to answer ---------------------------------------------------
CHAT = [  # (model, directive, the application's context)
    ("gpt-4o-mini", {"prompt_tokens": 1200, "cached_tokens": 1024, "completion_tokens": 300},
     {"feature": "faq", "customer_id": "acme"}),
    ("o3-mini", {"prompt_tokens": 500, "completion_tokens": 800, "reasoning_tokens": 640,
                 "finish_reason": "length"}, {"feature": "agent", "customer_id": "globex"}),
    ("gpt-4o", {"status": 429}, {"feature": "faq", "customer_id": "acme"}),
    ("gpt-4o", {"status": 500}, {"feature": "faq", "customer_id": "initech"}),
]
RESPONSES = [
    # the trap: Responses' input_tokens INCLUDES the 800 cached ones
    ("gpt-4o-mini", {"input_tokens": 1000, "cached_tokens": 800, "output_tokens": 50}),
    ("o3-mini", {"input_tokens": 300, "output_tokens": 100, "reasoning_tokens": 100,
                 "status": "incomplete", "reason": "max_output_tokens"}),
    ("o3-mini", {"status": "failed", "code": "server_error"}),
    ("gpt-4o-mini", {"input_tokens": 40, "output_tokens": 12, "tool_call": True}),
]
EMBEDDING_INPUT = "one two three four five"  # the fake counts one token per word: 5
ANTHROPIC = [
    # the trap: Anthropic's input_tokens EXCLUDES the 800 cache reads and 200 cache writes
    ("claude-sonnet-4-20250514", {"input_tokens": 1000, "cache_read_input_tokens": 800,
                                  "cache_creation_input_tokens": 200, "output_tokens": 120,
                                  "thinking_tokens": 40}, {"feature": "support"}),
    ("claude-3-5-haiku-20241022", {"input_tokens": 50, "output_tokens": 10,
                                   "stop_reason": "max_tokens"}, {"feature": "triage"}),
    ("claude-sonnet-4-20250514", {"status": 529}, {"feature": "support"}),
    ("claude-sonnet-4-20250514", {"status": 429}, {"feature": "triage"}),
]

# Costs worked out by hand from the usage above: (uncached input, cached, write, output) × price.
COST_CHAT_MINI = (176 * 0.15 + 1024 * 0.075 + 300 * 0.60) / MTOK  # 0.0002832
COST_CHAT_O3 = (500 * 1.10 + 800 * 4.40) / MTOK  # 0.00407
COST_EMBEDDING = 5 * 0.02 / MTOK
COST_RESP_MINI = (200 * 0.15 + 800 * 0.075 + 50 * 0.60) / MTOK  # 0.00012, not 0.00024
COST_RESP_O3 = (300 * 1.10 + 100 * 4.40) / MTOK  # 0.00077
COST_RESP_TOOL = (40 * 0.15 + 12 * 0.60) / MTOK
COST_SONNET = (1000 * 3 + 800 * 0.30 + 200 * 3.75 + 120 * 15) / MTOK  # 0.00579, not 0.00279
COST_HAIKU = (50 * 0.80 + 10 * 4) / MTOK
# Batch API lines are priced at genai-prices' Batch variant of the model (when={'processing':
# 'batch'}), which it declares from 2026-10-14 on: gpt-4o-mini $0.075 input / $0.30 output per
# M tokens, its cached input staying at $0.075; text-embedding-3-small has none.
BATCH_VARIANTS_FROM = date(2026, 10, 14)
COST_BATCH_CHAT_MINI = (176 * 0.075 + 1024 * 0.075 + 300 * 0.30) / MTOK
COST_BATCH_RESP_MINI = (200 * 0.075 + 800 * 0.075 + 50 * 0.30) / MTOK


def _logged(call, request: dict, context: dict) -> dict:
    """One record as an application's logging middleware writes it: when the call started, how
    long it took, the app's context, the request, and the provider's response or the error its
    SDK raised."""
    started, t0 = datetime.now(UTC), time.perf_counter()
    try:
        outcome = {"response": json.loads(call(**request).model_dump_json())}
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        outcome = {"error": {"type": type(exc).__name__, "status_code": exc.status_code,
                             "message": exc.message, "request_id": exc.request_id}}
    latency_ms = round((time.perf_counter() - t0) * 1000, 3)
    return {"ts": started.isoformat(), "latency_ms": latency_ms, **context, "request": request,
            **outcome}


@pytest.fixture(scope="module")
def openai_log():
    """The OpenAI calls made once with the real client; their objects and the app's records."""
    with FakeOpenAIResponsesServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        chat = [_logged(client.chat.completions.create,
                        {"model": m, "messages": [{"role": "user", "content": json.dumps(d)}]}, c)
                for m, d, c in CHAT]
        responses = [_logged(client.responses.create, {"model": m, "input": json.dumps(d)},
                             {"feature": "assistant"}) for m, d in RESPONSES]
        embedding = _logged(client.embeddings.create,
                            {"model": "text-embedding-3-small", "input": EMBEDDING_INPUT},
                            {"feature": "search"})
        ledger = list(server.ledger)
    assert len(ledger) == len(CHAT) + len(RESPONSES) + 1  # every call reached the fake
    return {"chat": chat, "responses": responses, "embedding": embedding}


@pytest.fixture(scope="module")
def anthropic_log():
    with FakeAnthropicServer() as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)
        records = [_logged(client.messages.create,
                           {"model": m, "max_tokens": 256,
                            "messages": [{"role": "user", "content": json.dumps(d)}]}, c)
                   for m, d, c in ANTHROPIC]
    return records


def _ingest(lake, path: Path):
    report = ingest_paths(lake, [str(path)], compact_min_files=0, overrides=PRICES)
    (f,) = report.files
    assert f.error is None, f.error
    return f


def _query(lake, sql: str) -> list[dict]:
    eng = Engine(lake)
    try:
        return eng.query(sql).to_dicts()
    finally:
        eng.close()


def _rows(lake) -> dict[str, dict]:
    return {r["request_id"]: r for r in _query(lake, "SELECT * FROM requests")}


def _quarantine(lake) -> list[tuple[int, str]]:
    return [(r["line"], r["reason"])
            for r in _query(lake, "SELECT line, reason FROM quarantine ORDER BY line")]


def _created_us(obj: dict, key: str = "created") -> datetime:
    return datetime.fromtimestamp(obj[key], UTC)


# -- OpenAI, real client ---------------------------------------------------------------------------
def test_chat_completions_logged_bare_are_one_exact_row_each(lake, write, openai_log):
    answered = [r["response"] for r in openai_log["chat"] if "response" in r]
    path = write("chat.jsonl", "".join(json.dumps(o) + "\n" for o in answered).encode())
    f = _ingest(lake, path)
    assert (f.format, f.stored, f.quarantined) == ("openai", {"requests": 2}, 0)
    mini, o3 = (_rows(lake)[o["id"]] for o in answered)
    assert mini["ts"] == _created_us(answered[0])  # the provider's own time
    assert (mini["provider"], mini["model"], mini["response_model"], mini["operation"]) == (
        "openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18", "chat")
    # prompt_tokens already include the cached ones: 1200, never 1200 + 1024
    assert (mini["input_tokens"], mini["cached_input_tokens"], mini["output_tokens"],
            mini["reasoning_tokens"], mini["finish_reason"]) == (1200, 1024, 300, 0, "stop")
    assert (o3["input_tokens"], o3["output_tokens"], o3["reasoning_tokens"],
            o3["finish_reason"]) == (500, 800, 640, "length")
    assert mini["cost_usd"] == pytest.approx(COST_CHAT_MINI, rel=1e-9)
    assert o3["cost_usd"] == pytest.approx(COST_CHAT_O3, rel=1e-9)
    assert mini["output_text"] == "Hello from the fake server."
    assert json.loads(mini["attributes"]) == {"api": "chat.completions", "service_tier": "default",
                                              "system_fingerprint": "fp_fake"}


def test_an_apps_records_add_time_latency_context_and_failed_calls_are_errors(
        lake, write, openai_log):
    records = openai_log["chat"] + [openai_log["embedding"]]
    f = _ingest(lake, write("app.jsonl", records))
    assert (f.format, f.stored, f.quarantined) == ("openai", {"requests": 5}, 0)
    rows = _rows(lake)
    ok = {r["model"]: r for r in rows.values() if r["status"] == "ok"}
    errors = sorted((r for r in rows.values() if r["status"] == "error"),
                    key=lambda r: r["error_type"])
    mini = ok["gpt-4o-mini"]  # the model asked for; the one that answered is response_model
    assert mini["response_model"] == "gpt-4o-mini-2024-07-18"
    logged = records[0]
    assert (mini["feature"], mini["customer_id"]) == ("faq", "acme")
    assert mini["latency_ms"] == logged["latency_ms"]
    assert mini["ts"] == _created_us(logged["response"])  # the object's time wins...
    attrs = json.loads(mini["attributes"])
    assert attrs["ts"] == logged["ts"]  # ...and the app's is kept
    assert attrs["request"] == {"model": "gpt-4o-mini"}
    assert json.loads(mini["input_text"]) == logged["request"]["messages"]
    # the failed calls: the exception the SDK raised, the model asked for, the HTTP request id
    assert [(e["error_type"], e["model"], e["customer_id"], e["request_id"]) for e in errors] == [
        ("InternalServerError", "gpt-4o", "initech", records[3]["error"]["request_id"]),
        ("RateLimitError", "gpt-4o", "acme", records[2]["error"]["request_id"])]
    assert all(e["ts"] == datetime.fromisoformat(r["ts"]) and e["latency_ms"] == r["latency_ms"]
               for e, r in zip(errors, (records[3], records[2]), strict=True))
    assert all(e["input_tokens"] is None and e["provider"] == "openai" for e in errors)
    emb = ok["text-embedding-3-small"]
    assert emb["ts"] == datetime.fromisoformat(openai_log["embedding"]["ts"])  # no time of its own
    assert (emb["operation"], emb["input_tokens"], emb["output_tokens"]) == ("embeddings", 5, 0)
    assert emb["request_id"].startswith("sha:")  # embeddings responses have no id
    assert emb["cost_usd"] == pytest.approx(COST_EMBEDDING, rel=1e-9)
    total = _query(lake, "SELECT sum(input_tokens) AS i, sum(cached_input_tokens) AS c, "
                         "sum(output_tokens) AS o, sum(reasoning_tokens) AS r, "
                         "sum(cost_usd) AS usd FROM requests")[0]
    assert (total["i"], total["c"], total["o"], total["r"]) == (1200 + 500 + 5, 1024, 1100, 640)
    assert total["usd"] == pytest.approx(COST_CHAT_MINI + COST_CHAT_O3 + COST_EMBEDDING,
                                         rel=1e-9)


def test_responses_api_input_tokens_already_include_the_cached_ones(lake, write, openai_log):
    records = openai_log["responses"]
    bare = [r["response"] for r in records]
    f = _ingest(lake, write("responses.jsonl", "".join(json.dumps(o) + "\n" for o in bare)
                            .encode()))
    assert (f.format, f.stored, f.quarantined) == ("openai", {"requests": 4}, 0)
    trap, incomplete, failed, tool = (_rows(lake)[o["id"]] for o in bare)
    assert (trap["input_tokens"], trap["cached_input_tokens"], trap["output_tokens"]) == (
        1000, 800, 50)  # never 1800
    assert trap["cost_usd"] == pytest.approx(COST_RESP_MINI, rel=1e-9)
    assert (trap["status"], trap["finish_reason"], trap["ts"]) == (
        "ok", "stop", _created_us(bare[0], "created_at"))
    assert (incomplete["status"], incomplete["finish_reason"], incomplete["reasoning_tokens"]) \
        == ("ok", "max_output_tokens", 100)
    assert incomplete["cost_usd"] == pytest.approx(COST_RESP_O3, rel=1e-9)
    assert (failed["status"], failed["error_type"], failed["input_tokens"]) == (
        "error", "server_error", None)
    assert (tool["finish_reason"], tool["cost_usd"]) == ("tool_calls",
                                                         pytest.approx(COST_RESP_TOOL, rel=1e-9))
    assert json.loads(trap["attributes"])["api"] == "responses"


# -- Anthropic, real client ------------------------------------------------------------------------
def test_anthropic_input_tokens_leave_the_cache_out_so_reads_and_writes_are_added(
        lake, write, anthropic_log):
    f = _ingest(lake, write("claude.jsonl", anthropic_log))
    assert (f.format, f.stored, f.quarantined) == ("anthropic", {"requests": 4}, 0)
    rows = _rows(lake)
    sonnet, haiku = (rows[r["response"]["id"]] for r in anthropic_log[:2])
    assert (sonnet["input_tokens"], sonnet["cached_input_tokens"], sonnet["cache_write_tokens"],
            sonnet["output_tokens"], sonnet["reasoning_tokens"]) == (2000, 800, 200, 120, 40)
    assert sonnet["cost_usd"] == pytest.approx(COST_SONNET, rel=1e-9)
    assert (haiku["input_tokens"], haiku["finish_reason"]) == (50, "max_tokens")
    assert haiku["cost_usd"] == pytest.approx(COST_HAIKU, rel=1e-9)
    assert (sonnet["provider"], sonnet["model"], sonnet["feature"]) == (
        "anthropic", "claude-sonnet-4-20250514", "support")
    assert sonnet["ts"] == datetime.fromisoformat(anthropic_log[0]["ts"])  # the app's time
    assert json.loads(sonnet["attributes"])["usage.service_tier"] == "standard"
    errors = sorted((r["error_type"], r["model"], r["status"]) for r in rows.values()
                    if r["status"] == "error")
    assert errors == [("OverloadedError", "claude-sonnet-4-20250514", "error"),
                      ("RateLimitError", "claude-sonnet-4-20250514", "error")]


def test_anthropic_messages_without_a_time_are_quarantined_saying_so(lake, write,
                                                                     anthropic_log):
    bare = [r["response"] for r in anthropic_log if "response" in r]
    f = _ingest(lake, write("bare-claude.jsonl", bare))
    assert (f.format, f.stored, f.quarantined) == ("anthropic", {}, 2)
    assert _quarantine(lake) == [(n, "missing ts: an Anthropic message carries no time of its "
                                     "own, and the record has none of the keys ts, timestamp, "
                                     "@timestamp, time, created_at (docs/provider-logs.md)")
                                 for n in (1, 2)]


def test_a_bare_anthropic_message_dated_at_its_top_level_is_stored(lake, write, anthropic_log):
    # The docs' recipe (jq '. + {ts: $ts}') run on bare messages rather than batch lines: the
    # record then has a ts, and was quarantined saying it had none of the keys ts, timestamp...
    bare = [r["response"] for r in anthropic_log if "response" in r]
    dated = [{**m, "ts": "2026-03-02T12:00:00Z"} for m in bare]
    f = _ingest(lake, write("dated-claude.jsonl", dated))
    assert (f.format, f.stored, f.quarantined) == ("anthropic", {"requests": 2}, 0), f.reasons
    rows = _rows(lake)
    assert {r["ts"] for r in rows.values()} == {datetime(2026, 3, 2, 12, tzinfo=UTC)}
    assert all("ts" not in json.loads(r["attributes"] or "{}") for r in rows.values())


# -- Batch files -----------------------------------------------------------------------------------
def test_openai_batch_output_lines_failed_ones_are_errors_dated_by_the_batch(
        lake, write, openai_log):
    chat = openai_log["chat"][0]["response"]
    resp = openai_log["responses"][0]["response"]
    emb = openai_log["embedding"]["response"]

    def line(n: int, status: int | None, body: dict | None, error: dict | None = None) -> dict:
        response = None if status is None else {"status_code": status,
                                                "request_id": f"req_{n}", "body": body}
        return {"id": f"batch_req_{n}", "custom_id": f"task-{n}", "response": response,
                "error": error}

    lines = [
        line(1, 429, {"error": {"message": "Rate limit reached", "type": "requests",
                                "param": None, "code": "rate_limit_exceeded"}}),
        line(2, 200, chat),
        line(3, 200, emb),
        line(4, None, None, {"code": "batch_expired", "message": "not run in time"}),
        line(5, 200, resp),
    ]
    f = _ingest(lake, write("batch_output.jsonl.gz", lines, gz=True))
    assert (f.format, f.stored, f.quarantined) == ("openai", {"requests": 5}, 0)
    rows = _rows(lake)
    failed, ok_chat, ok_emb, expired, ok_resp = (
        rows[k] for k in ("batch_req_1", chat["id"], "batch_req_3", "batch_req_4", resp["id"]))
    assert (failed["status"], failed["error_type"], failed["model"]) == (
        "error", "rate_limit_exceeded", "unknown")
    assert (expired["status"], expired["error_type"]) == ("error", "batch_expired")
    # lines without a time take the nearest dated line's (the first one's, at the start)
    batch_time = _created_us(chat)
    assert failed["ts"] == ok_emb["ts"] == expired["ts"] == batch_time
    assert [json.loads(r["attributes"]).get("ts_source") for r in
            (failed, ok_chat, ok_emb, expired, ok_resp)] == ["batch", None, "batch", "batch", None]
    assert json.loads(failed["attributes"])["custom_id"] == "task-1"
    assert (ok_chat["input_tokens"], ok_chat["cached_input_tokens"]) == (1200, 1024)
    assert (ok_resp["input_tokens"], ok_resp["cached_input_tokens"]) == (1000, 800)
    assert ok_emb["input_tokens"] == 5
    # every line is a Batch API request: priced at the batch rates from the day they exist
    assert [json.loads(r["attributes"]).get("processing") for r in
            (failed, ok_chat, ok_emb, expired, ok_resp)] == ["batch"] * 5
    assert json.loads(ok_chat["attributes"])["service_tier"] == "default"
    batch = batch_time.date() >= BATCH_VARIANTS_FROM
    assert ok_chat["cost_usd"] == pytest.approx(
        COST_BATCH_CHAT_MINI if batch else COST_CHAT_MINI, rel=1e-9)
    assert sum(r["cost_usd"] or 0 for r in rows.values()) == pytest.approx(
        (COST_BATCH_CHAT_MINI + COST_EMBEDDING + COST_BATCH_RESP_MINI) if batch else
        (COST_CHAT_MINI + COST_EMBEDDING + COST_RESP_MINI), rel=1e-9)


def test_a_batch_file_with_no_dated_line_is_quarantined_not_dated_by_anything_else(
        lake, write):
    lines = [{"id": f"batch_req_{n}", "custom_id": f"t{n}", "response": None,
              "error": {"code": "batch_cancelled", "message": "cancelled"}} for n in (1, 2)]
    f = _ingest(lake, write("all-failed.jsonl", lines))
    assert (f.stored, f.quarantined) == ({}, 2)
    assert [line for line, _ in _quarantine(lake)] == [1, 2]
    assert all(reason.startswith("missing ts: a batch line without a body time")
               for _, reason in _quarantine(lake))


def test_anthropic_batch_results_need_a_time_added_to_each_line(lake, write, anthropic_log):
    sonnet = anthropic.types.Message.model_validate(anthropic_log[0]["response"])
    haiku = anthropic.types.Message.model_validate(anthropic_log[1]["response"])
    results = [
        MessageBatchIndividualResponse(custom_id="c1", result=MessageBatchSucceededResult(
            type="succeeded", message=sonnet)),
        MessageBatchIndividualResponse(custom_id="c2", result=MessageBatchErroredResult(
            type="errored", error=ErrorResponse(type="error", error=InvalidRequestError(
                type="invalid_request_error", message="max_tokens: Field required")))),
        MessageBatchIndividualResponse(custom_id="c3", result=MessageBatchCanceledResult(
            type="canceled")),
        MessageBatchIndividualResponse(custom_id="c4", result=MessageBatchExpiredResult(
            type="expired")),
        MessageBatchIndividualResponse(custom_id="c5", result=MessageBatchSucceededResult(
            type="succeeded", message=haiku)),
    ]
    raw = "".join(r.model_dump_json() + "\n" for r in results).encode()
    f = _ingest(lake, write("msgbatch_results.jsonl", raw))
    assert (f.format, f.stored, f.quarantined) == ("anthropic", {}, 5)  # no time anywhere
    assert all(r.startswith("missing ts: an Anthropic ") for _, r in _quarantine(lake))

    # as docs/provider-logs.md says: jq -c --arg ts ... '. + {ts: $ts}'
    dated = [dict(json.loads(r.model_dump_json()), ts=T0.isoformat()) for r in results]
    f = _ingest(lake, write("results-with-ts.jsonl", dated))
    assert (f.stored, f.quarantined) == ({"requests": 5}, 0)
    rows = sorted(_query(lake, "SELECT * FROM requests"),
                  key=lambda r: json.loads(r["attributes"])["custom_id"])
    assert [(r["status"], r["error_type"], r["model"], r["input_tokens"]) for r in rows] == [
        ("ok", None, "claude-sonnet-4-20250514", 2000),
        ("error", "invalid_request_error", "unknown", None),
        ("error", "canceled", "unknown", None),
        ("error", "expired", "unknown", None),
        ("ok", None, "claude-3-5-haiku-20241022", 50)]
    assert rows[0]["request_id"] == sonnet.id and rows[1]["request_id"].startswith("sha:")
    assert all(r["ts"] == T0 and r["provider"] == "anthropic" for r in rows)
    assert rows[0]["cost_usd"] == pytest.approx(COST_SONNET, rel=1e-9)


# -- price context: Batch API and service tier rates ---------------------------------------------
# Requests on a day when genai-prices declares the variants (from 2026-10-12 / 2026-10-14).
CONTEXT_DAY = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
# genai-prices, USD per million tokens (input / cached input / output): gpt-4o-mini 0.15 / 0.075
# / 0.60, its batch variant 0.075 / 0.075 (cached not overridden) / 0.30; gpt-5-mini 0.25 /
# 0.025 / 2, flex 0.125 / 0.0125 / 1, priority 0.45 / 0.045 / 3.6; claude-haiku-4-5 1 input /
# 0.10 cache read / 1.25 cache write / 5 output, batch exactly half: 0.5 / 0.05 / 0.625 / 2.5.
GPT5_MINI = {"default": (0.25, 0.025, 2.0), "flex": (0.125, 0.0125, 1.0),
             "priority": (0.45, 0.045, 3.6), "scale": (0.25, 0.025, 2.0)}
HAIKU_45 = (1.0, 0.10, 1.25, 5.0)


def test_openai_batch_lines_cost_the_batch_rates_and_service_tiers_theirs(lake, write):
    created = int(CONTEXT_DAY.timestamp())
    usage = {"prompt_tokens": 4000, "completion_tokens": 600}
    batch_body = _chat(1, usage, created=created, service_tier="default")
    lines = [{"id": "batch_req_1", "custom_id": "t1", "error": None,
              "response": {"status_code": 200, "request_id": "r1", "body": batch_body}}]
    usage = {"prompt_tokens": 4000, "completion_tokens": 600,
             "prompt_tokens_details": {"cached_tokens": 1000}}
    tiers = [_chat(10 + i, usage, created=created, model="gpt-5-mini-2025-08-07",
                   service_tier=tier) for i, tier in enumerate(GPT5_MINI)]
    responses = dict(_responses_obj(20), created_at=created, model="gpt-5-mini",
                     service_tier="flex")
    bare = _chat(2, {"prompt_tokens": 4000, "completion_tokens": 600}, created=created)
    f = _ingest(lake, write("batch_and_tiers.jsonl", lines + tiers + [responses, bare]))
    assert (f.stored, f.quarantined) == ({"requests": 7}, 0)
    rows = _rows(lake)
    # the same tokens through the Batch API cost half (gpt-4o-mini's batch rates)
    assert rows["chatcmpl-1"]["cost_usd"] == pytest.approx((4000 * 0.075 + 600 * 0.30) / MTOK)
    assert rows["chatcmpl-2"]["cost_usd"] == pytest.approx((4000 * 0.15 + 600 * 0.60) / MTOK)
    assert rows["chatcmpl-1"]["cost_usd"] == pytest.approx(rows["chatcmpl-2"]["cost_usd"] / 2)
    assert json.loads(rows["chatcmpl-1"]["attributes"])["processing"] == "batch"
    assert "processing" not in json.loads(rows["chatcmpl-2"]["attributes"])
    # each service tier at its rates; "scale" (no variant) at the standard ones
    for i, (tier, (inp, cached, out)) in enumerate(GPT5_MINI.items()):
        row = rows[f"chatcmpl-{10 + i}"]
        assert json.loads(row["attributes"])["service_tier"] == tier
        assert row["cost_usd"] == pytest.approx((3000 * inp + 1000 * cached + 600 * out) / MTOK,
                                                rel=1e-9), tier
    inp, cached, out = GPT5_MINI["flex"]  # Responses: 100 input (10 cached), 5 output
    assert rows["resp_20"]["cost_usd"] == pytest.approx((90 * inp + 10 * cached + 5 * out) / MTOK,
                                                        rel=1e-9)


def test_anthropic_batch_results_cost_exactly_half_of_the_same_messages(lake, write):
    def message(n: int, tier: str) -> dict:
        return dict(_message(n, cache_read_input_tokens=800, cache_creation_input_tokens=200,
                             service_tier=tier), model="claude-haiku-4-5")

    ts = CONTEXT_DAY.isoformat()
    results = [{"custom_id": "c1", "result": {"type": "succeeded",
                                              "message": message(1, "batch")}, "ts": ts}]
    logged = [{"ts": ts, "response": message(2, "standard")},  # the same usage, not batched
              {"ts": ts, "response": message(3, "batch")},  # fetched from a batch, logged bare
              {"ts": ts, "response": message(4, "priority")}]
    assert _ingest(lake, write("results.jsonl", results)).stored == {"requests": 1}
    assert _ingest(lake, write("app.jsonl", logged)).stored == {"requests": 3}
    rows = _rows(lake)
    inp, read, write_, out = HAIKU_45  # 10 uncached + 800 read + 200 written, 5 output
    standard = (10 * inp + 800 * read + 200 * write_ + 5 * out) / MTOK
    assert rows["msg_2"]["cost_usd"] == pytest.approx(standard, rel=1e-9)
    assert rows["msg_4"]["cost_usd"] == pytest.approx(standard, rel=1e-9)  # no variant
    for batched in ("msg_1", "msg_3"):
        assert rows[batched]["cost_usd"] == pytest.approx(standard / 2, rel=1e-9)
        assert json.loads(rows[batched]["attributes"])["processing"] == "batch"
    attrs = {k: json.loads(rows[k]["attributes"]) for k in rows}
    assert attrs["msg_1"]["batch"] is True and attrs["msg_1"]["usage.service_tier"] == "batch"
    assert "service_tier" not in attrs["msg_1"] and "processing" not in attrs["msg_2"]
    assert (attrs["msg_2"]["service_tier"], attrs["msg_4"]["service_tier"]) == (
        "standard", "priority")


# -- idempotency -----------------------------------------------------------------------------------
def test_the_same_file_twice_adds_nothing_nor_the_same_responses_logged_elsewhere(
        lake, write, openai_log):
    path = write("app.jsonl", openai_log["chat"])
    first = _ingest(lake, path)
    assert first.stored == {"requests": 4}
    before = _query(lake, "SELECT count(*) AS n, sum(input_tokens) AS i, sum(cost_usd) AS c "
                          "FROM requests")
    assert _ingest(lake, path).skipped  # unchanged since it was read: not even opened
    again = _ingest(lake, write("copy-of-app.jsonl", path.read_bytes()))
    assert again.duplicate_file and again.stored == {}
    bare = [r["response"] for r in openai_log["chat"] if "response" in r]
    other = _ingest(lake, write("bare.jsonl", bare))  # the same two responses, logged bare
    assert other.duplicates == {"requests": 2} and other.stored.get("requests", 0) == 0
    assert _query(lake, "SELECT count(*) AS n, sum(input_tokens) AS i, sum(cost_usd) AS c "
                        "FROM requests") == before


# -- bad values ------------------------------------------------------------------------------------
def _chat(n: int, usage: dict | None = None, **fields) -> dict:
    obj = {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(T0.timestamp()),
           "model": "gpt-4o-mini-2024-07-18",
           "choices": [{"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "ok"}}],
           "usage": {"prompt_tokens": 100, "completion_tokens": 10} if usage is None else usage}
    obj.update(fields)
    return obj


def _message(n: int, **usage) -> dict:
    return {"id": f"msg_{n}", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-20250514", "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 5, **usage}}


def test_bad_values_are_quarantined_with_line_and_reason_and_good_rows_go_on(lake, write):
    lines = [
        json.dumps(_chat(1)),
        json.dumps(_chat(2, {"prompt_tokens": -5, "completion_tokens": 10})),
        json.dumps(_chat(3, {"prompt_tokens": "abc", "completion_tokens": 10})),
        json.dumps(_chat(4, {"prompt_tokens": 100, "completion_tokens": 1.5})),
        json.dumps(_chat(5, {"prompt_tokens": 800, "completion_tokens": 1,
                             "prompt_tokens_details": {"cached_tokens": 900}})),
        '{"id": "chatcmpl-6", "object": "chat.completion", "created": 1772452800, '
        '"model": "gpt-\xff\xfe", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}',
        "[1, 2]",
        json.dumps({k: v for k, v in _chat(8).items() if k != "usage"}),
        '{"id": "chatcmpl-9", "object": "chat.comp',
        json.dumps({"ts": T0.isoformat(), "response": _message(10, cache_read_input_tokens=-1)}),
        json.dumps({"id": "resp_11", "object": "response", "created_at": 1772452800,
                    "status": "in_progress", "model": "o3", "output": [], "usage": None}),
        json.dumps({"ts": T0.isoformat(), "response": dict(_message(12), usage="lots")}),
        json.dumps({"ts": T0.isoformat(), "response": _message(13)}),
        json.dumps({"ts": "yesterday", "response": _message(14)}),
        json.dumps(_chat(15)).replace('"prompt_tokens": 100', '"prompt_tokens": NaN'),
        json.dumps(_chat(16, created="2026-03-02")),
    ]
    data = "\n".join(lines).encode("utf-8", "surrogateescape").replace(
        "\xff\xfe".encode(), b"\xff\xfe") + b"\n"
    f = _ingest(lake, write("bad.jsonl", data))
    assert (f.format, f.stored, f.quarantined) == ("openai", {"requests": 2}, 14)
    assert set(_rows(lake)) == {"chatcmpl-1", "msg_13"}
    reasons = dict(_quarantine(lake))
    assert reasons[2] == "usage.prompt_tokens is negative: -5"
    assert reasons[3] == "usage.prompt_tokens is not an integer: abc"
    assert reasons[4] == "usage.completion_tokens is not an integer: 1.5"
    assert reasons[5] == ("cached_input_tokens + cache_write_tokens (900) exceed input_tokens "
                          "(800), which must include them")
    assert reasons[6].startswith("model is not valid UTF-8 text: gpt-")
    assert reasons[7] == ("not an OpenAI or Anthropic response (expected a JSON object): [1,2]")
    assert reasons[8] == "usage is missing: the response carries no token counts"
    assert reasons[9].startswith("not valid JSON")
    assert reasons[10] == "usage.cache_read_input_tokens is negative: -1"
    assert reasons[11].startswith("status is in_progress: the response was logged before it "
                                  "finished")
    assert reasons[12] == "usage is not an object: lots"
    assert reasons[14] == "ts is not a timestamp: yesterday"
    assert reasons[15] == "usage.prompt_tokens is not an integer: NaN"
    assert reasons[16] == "created is not a time in unix seconds: 2026-03-02"
    raws = _query(lake, "SELECT raw FROM quarantine WHERE line = 2")
    assert '"prompt_tokens": -5' in raws[0]["raw"]


# -- wrappers --------------------------------------------------------------------------------------
def test_wrapper_keys_with_a_unit_are_read_and_the_rest_kept_in_attributes(lake, write):
    records = [
        {"timestamp": 1772452800123, "latency_s": 1.25, "latency": 1.25, "cost_usd": 0.01,
         "model": "claude-sonnet-4", "request_id": "app-req-1", "provider": "anthropic",
         "metadata": {"customer_id": "acme", "team": "x"}, "region": "eu",
         "message": _message(1)},
        {"@timestamp": "2026-03-02T12:00:00", "duration_ms": 40, "provider": "vllm",
         "body": _chat(2, model="meta-llama/Llama-3.1-8B-Instruct")},
        {"time": "2026-03-02T13:00:00+01:00", "completion": _message(3), "user_id": 42},
    ]
    f = _ingest(lake, write("wrapped.jsonl", records))
    assert (f.format, f.stored, f.quarantined) == ("anthropic", {"requests": 3}, 0)
    rows = _rows(lake)
    first, vllm, third = rows["msg_1"], rows["chatcmpl-2"], rows["msg_3"]
    assert first["ts"] == datetime(2026, 3, 2, 12, 0, 0, 123000, tzinfo=UTC)  # epoch ms
    assert (first["latency_ms"], first["logged_cost_usd"], first["customer_id"]) == (
        1250.0, 0.01, "acme")
    # the model the app asked for, and the one that answered (design §3)
    assert (first["model"], first["response_model"]) == ("claude-sonnet-4",
                                                         "claude-sonnet-4-20250514")
    attrs = json.loads(first["attributes"])
    assert "model" not in attrs
    assert {k: attrs[k] for k in ("latency", "request_id", "region")} == {
        "latency": 1.25, "request_id": "app-req-1", "region": "eu"}
    assert attrs["metadata"] == {"customer_id": "acme", "team": "x"}
    assert (vllm["provider"], vllm["latency_ms"], vllm["ts"]) == ("vllm", 40.0, T0)
    assert vllm["cost_usd"] is None  # a self-hosted model has no catalogue price
    assert (third["ts"], third["user_id"]) == (T0, "42")


def test_a_file_mixing_providers_is_read_whole_and_arrays_and_documents_too(lake, write):
    mixed = [_chat(1), {"ts": T0.isoformat(), "response": _message(2)}]
    f = _ingest(lake, write("mixed.jsonl", mixed))
    assert (f.format, f.stored) == ("openai", {"requests": 2})
    assert {r["provider"] for r in _rows(lake).values()} == {"openai", "anthropic"}
    f = _ingest(lake, write("array.json", json.dumps([_chat(3), _chat(4)], indent=2).encode()))
    assert (f.format, f.stored) == ("openai", {"requests": 2})
    f = _ingest(lake, write("one.json", json.dumps(_chat(5), indent=2).encode()))
    assert (f.format, f.stored) == ("openai", {"requests": 1})
    f = _ingest(lake, write("bad-array.json", json.dumps([_chat(6), "x", _chat(7)]).encode()))
    assert (f.stored, f.quarantined) == ({"requests": 2}, 1)
    assert f.reasons == ["line 2: not an OpenAI or Anthropic response (expected a JSON object): x"]


# -- detection -------------------------------------------------------------------------------------
def _detected(data: bytes, name: str = "x.jsonl") -> str | None:
    fmt = detect_format(data[:65536], name)
    return fmt.name if fmt else None


@pytest.mark.parametrize(("record", "expected"), [
    (_chat(1), "openai"),
    ({"id": "resp_1", "object": "response", "status": "completed", "output": [], "usage": {}},
     "openai"),
    ({"object": "list", "model": "text-embedding-3-small", "data": [], "usage": {}}, "openai"),
    ({"id": "batch_req_1", "custom_id": "a", "response": {"status_code": 200, "body": _chat(1)},
      "error": None}, "openai"),
    (_message(1), "anthropic"),
    ({"custom_id": "a", "result": {"type": "succeeded", "message": _message(1)}}, "anthropic"),
    *[({"ts": 1, key: _chat(1)}, "openai") for key in provider_native.WRAPPER_KEYS],
    ({"ts": 1, "response": {"status_code": 200, "body": _message(1)}}, "anthropic"),
    ({"ts": 1, "request_id": "r1", "response": _chat(1)}, "openai"),  # the app's own request_id
])
def test_provider_objects_bare_or_wrapped_are_detected(record, expected):
    assert _detected(jsonl_bytes([record, record])) == expected


@pytest.mark.parametrize("rows", [
    [canonical_request(1), canonical_request(2)],  # canonical rows
    [dict(canonical_request(1), response=_chat(1))],  # canonical, with a nested object kept
    [{"request_id": "r1", "ts": "2026-03-02T12:00:00Z", "model": "gpt-4o",  # usage, no marker
      "usage": {"prompt_tokens": 10, "completion_tokens": 2}}],
])
def test_canonical_rows_stay_canonical(rows):
    assert _detected(jsonl_bytes(rows)) == "jsonl"


def test_usage_without_a_providers_object_marker_is_not_claimed():
    rows = [{"id": "x1", "timestamp": "2026-03-02T12:00:00Z", "model": "gpt-4o",
             "usage": {"prompt_tokens": 10}, "latency": 0.2}]
    assert _detected(jsonl_bytes(rows)) is None  # still unrecognized, with its hint


def test_a_file_whose_first_records_include_a_canonical_row_is_not_claimed():
    rows = [{"ts": 1, "response": _chat(1)}, canonical_request(2)]
    assert provider_native.detected_provider(jsonl_bytes(rows)) is None
    assert provider_native.detected_provider(jsonl_bytes(rows[:1])) == "openai"


def test_every_fixture_is_detected_as_before():
    ours = {f.name for f in provider_native.FORMATS}
    others = [f for f in registry.registered() if f.name not in ours]
    files = [p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl",
                                                                             ".eval", ".gz")]
    assert files
    for path in files:
        data = path.read_bytes()
        head = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)[:65536]
        before = detect_format(head, path.name, others)
        after = detect_format(head, path.name)
        assert (after.name if after else None) == (before.name if before else None), path


def test_a_first_record_longer_than_the_head_is_detected_by_its_id():
    long_chat = _chat(1)
    long_chat["choices"][0]["message"]["content"] = "x" * 100_000
    assert _detected(jsonl_bytes([long_chat])) == "openai"
    assert _detected(jsonl_bytes([dict(_message(1), content=[{"type": "text",
                                                             "text": "y" * 100_000}])])) \
        == "anthropic"


# -- hostile values: no single value fails the file --------------------------------------------
def _set(record: dict, path: str, value) -> None:
    *parents, leaf = path.split(".")
    for p in parents:
        record = record[int(p)] if p.isdigit() else record.setdefault(p, {})
    record[int(leaf) if isinstance(record, list) else leaf] = value


def _responses_obj(n: int) -> dict:
    return {"id": f"resp_{n}", "object": "response", "created_at": int(T0.timestamp()),
            "status": "completed", "model": "gpt-4o-mini", "error": None,
            "incomplete_details": None, "metadata": {"feature": "f"},
            "output": [{"type": "message", "content": [{"type": "output_text", "text": "ok"}]}],
            "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 10},
                      "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 1}}}


HOSTILE_KINDS = {
    "chat": (lambda n: _chat(n, {"prompt_tokens": 100, "completion_tokens": 10,
                                 "prompt_tokens_details": {"cached_tokens": 10},
                                 "completion_tokens_details": {"reasoning_tokens": 2}}),
             ["id", "object", "created", "model", "choices", "choices.0", "choices.0.finish_reason",
              "choices.0.message", "choices.0.message.content", "usage", "usage.prompt_tokens",
              "usage.completion_tokens", "usage.prompt_tokens_details",
              "usage.prompt_tokens_details.cached_tokens",
              "usage.completion_tokens_details.reasoning_tokens", "service_tier", "metadata"]),
    "responses": (_responses_obj,
                  ["status", "created_at", "error", "incomplete_details", "output", "output.0",
                   "output.0.type", "output.0.content",
                   "usage.input_tokens", "usage.input_tokens_details",
                   "usage.output_tokens_details.reasoning_tokens", "user", "metadata"]),
    "anthropic wrapper": (
        lambda n: {"ts": T0.isoformat(), "latency_ms": 5, "feature": "f",
                   "request": {"model": "m", "messages": []}, "response": _message(
                       n, cache_read_input_tokens=1, cache_creation_input_tokens=2)},
        ["ts", "latency_ms", "latency_s", "cost_usd", "logged_cost_usd", "ttft_ms", "feature",
         "customer_id", "provider", "cache_hit", "metadata", "request", "request.messages",
         "request.model", "error", "response.id", "response.model", "response.stop_reason",
         "response.content", "response.usage.input_tokens",
         "response.usage.cache_read_input_tokens", "response.usage.cache_creation_input_tokens",
         "response.usage.output_tokens_details",
         "response.usage.output_tokens_details.thinking_tokens", "response.usage.service_tier"]),
    "openai batch line": (
        lambda n: {"id": f"batch_req_{n}", "custom_id": f"c{n}", "error": None,
                   "response": {"status_code": 200, "request_id": f"r{n}", "body": _chat(n)}},
        ["id", "custom_id", "error", "response", "response.status_code", "response.body",
         "response.request_id"]),
}


@pytest.mark.parametrize("kind", list(HOSTILE_KINDS))
def test_no_hostile_value_fails_the_file_and_every_line_is_stored_or_quarantined(
        lake, write, kind):
    from tests.ingest.test_bad_values_formats import BAD_UTF8, HOSTILE, encode, json_text

    base, fields = HOSTILE_KINDS[kind]
    records = [base(0)]
    for field_path in fields:
        for value in [*HOSTILE, BAD_UTF8]:
            record = base(len(records))
            _set(record, field_path, value)
            records.append(record)
    records.append(base(len(records)))
    f = _ingest(lake, write(f"hostile-{kind}.jsonl",
                            encode("".join(json_text(r) + "\n" for r in records))))
    assert f.format in ("openai", "anthropic")
    stored, dupes = f.stored.get("requests", 0), f.duplicates.get("requests", 0)
    assert stored + dupes + f.quarantined == len(records)
    assert stored > len(fields)  # values a field can hold (0, None, text...) are stored
    # every reason names the field (and the value): none is an exception's message
    assert not [r for _, r in _quarantine(lake) if r.startswith("provider record not usable")]
    ids = set(_rows(lake))
    first, last = records[0], records[-1]
    for valid in (first, last):
        obj = valid.get("response", valid)
        assert (obj.get("body") or obj)["id"] in ids


def test_xai_s_reasoning_tokens_beside_its_completion_tokens(lake, write):
    # xAI's Chat Completions (OpenAI-compatible objects) count reasoning tokens BESIDE
    # completion_tokens: total_tokens = prompt + completion + reasoning (docs.x.ai, consumption
    # and rate limits; vercel/ai#12425). A real grok-4 usage: 10,120 + 1,499 + 2,809 = 14,428.
    # Read as OpenAI's, the call was quarantined (reasoning exceeds output); one whose reasoning
    # was the smaller part had it unpriced. OpenAI's own (total = prompt + completion) is kept.
    def chat(n, model, prompt, completion, reasoning, total):
        return {"ts": f"2026-03-02T12:00:0{n}Z", "provider": "x_ai", "response": {
            "id": f"chatcmpl-x{n}", "object": "chat.completion", "created": 1772452800 + n,
            "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": total,
                      "prompt_tokens_details": {"cached_tokens": 128},
                      "completion_tokens_details": {"reasoning_tokens": reasoning}}}}
    records = [chat(1, "grok-4", 10120, 1499, 2809, 14428),
               chat(2, "grok-4", 1000, 500, 300, 1800),
               {**chat(3, "o3", 1000, 500, 300, 1500), "provider": "openai"}]
    f = _ingest(lake, write("grok.jsonl", records))
    assert (f.stored, f.quarantined) == ({"requests": 3}, 0), f.reasons
    rows = _rows(lake)
    assert [(rows[i]["output_tokens"], rows[i]["reasoning_tokens"])
            for i in ("chatcmpl-x1", "chatcmpl-x2", "chatcmpl-x3")] == [
        (1499 + 2809, 2809), (800, 300), (500, 300)]


def test_a_total_that_is_no_count_quarantines_nothing(lake, write):
    # total_tokens is read only to tell xAI's count: one that is no count ("abc", 12.5) is no
    # total, as on spans (otlp_common.total_of). Read with the strict count, such a call was
    # quarantined "usage.total_tokens is not an integer", though its own counts were whole.
    def chat(n, total, reasoning=None):
        usage = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": total}
        if reasoning is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        return {"ts": f"2026-03-02T12:00:0{n}Z", "provider": "openai", "response": {
            "id": f"chatcmpl-t{n}", "object": "chat.completion", "created": 1772452800 + n,
            "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": "ok"}}],
            "usage": usage}}
    f = _ingest(lake, write("totals.jsonl", [chat(1, "abc"), chat(2, 12.5, reasoning=300)]))
    assert (f.stored, f.quarantined) == ({"requests": 2}, 0), f.reasons
    rows = _rows(lake)
    assert [(rows[i]["output_tokens"], rows[i]["reasoning_tokens"])
            for i in ("chatcmpl-t1", "chatcmpl-t2")] == [(500, 0), (500, 300)]
