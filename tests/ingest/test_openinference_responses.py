"""OpenInference spans of OpenAI Responses API calls (lib/ingest/formats/openinference.py).

``client.responses.create`` answers HTTP 200 even when the response failed (``"status":
"failed"`` with an ``error`` object) or stopped short (``"incomplete"``, with
``incomplete_details.reason``). openinference-instrumentation-openai leaves such a span's status
OK and sets no ``llm.finish_reason``: the outcome is only in output.value, the response object.
The same objects logged by an application are read by the ``openai`` provider-log format
(lib/ingest/formats/provider_native.py); both paths must store the same status, error type,
finish reason, tokens and cost for the same response.

The spans are the real ``openinference-instrumentation-openai``'s, driving the real ``openai``
client against tests/ingest/fake_openai_responses.py, exported as the Collector writes OTLP JSON;
the recording process also logs each response object (``model_dump_json``) inside an
application's record, as tests/ingest/test_provider_native.py does, for the provider-log path.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lib.ingest.pipeline import ingest_paths
from lib.store import Engine, Lake
from tests.ingest.fake_openai import _Handler
from tests.ingest.fake_openai_responses import FakeOpenAIResponsesServer, _ResponsesHandler

REPO_ROOT = Path(__file__).resolve().parents[2]
MTOK = 1_000_000
# gpt-4o-mini in genai-prices' catalogue, USD per million tokens: input, cached input, output
MINI = (0.15, 0.075, 0.60)

# The calls (all gpt-4o-mini, so every row is priced), each told to the fake by its directive.
# ``failed_usage``: the failed response reports usage (the fake's failed ones report none);
# ``web_searches``: the response made that many web searches (billed per search).
CALLS = {
    "completed": {"input_tokens": 1000, "cached_tokens": 800, "output_tokens": 50},
    "tool_call": {"input_tokens": 40, "output_tokens": 12, "tool_call": True},
    "max_tokens": {"input_tokens": 300, "output_tokens": 100, "reasoning_tokens": 60,
                   "status": "incomplete", "reason": "max_output_tokens"},
    "filtered": {"input_tokens": 70, "output_tokens": 3, "status": "incomplete",
                 "reason": "content_filter"},
    "failed": {"status": "failed", "code": "server_error"},
    "failed_usage": {"status": "failed", "code": "rate_limit_exceeded",
                     "failed_usage": {"input_tokens": 500, "output_tokens": 20}},
    "cancelled": {"input_tokens": 200, "output_tokens": 10, "status": "cancelled"},
    "http_429": {"http_status": 429},
    "searched": {"input_tokens": 50, "output_tokens": 10, "web_searches": 2},
}
# (status, error_type, finish_reason, input_tokens, output_tokens, cost_usd) of each call
EXPECTED = {
    "completed": ("ok", None, "stop", 1000, 50,
                  (200 * MINI[0] + 800 * MINI[1] + 50 * MINI[2]) / MTOK),
    "tool_call": ("ok", None, "tool_calls", 40, 12, (40 * MINI[0] + 12 * MINI[2]) / MTOK),
    "max_tokens": ("ok", None, "max_output_tokens", 300, 100,
                   (300 * MINI[0] + 100 * MINI[2]) / MTOK),
    "filtered": ("ok", None, "content_filter", 70, 3, (70 * MINI[0] + 3 * MINI[2]) / MTOK),
    # no usage: free, as providers bill no failed call that reports none (lib/pricing.py)
    "failed": ("error", "server_error", None, None, None, 0.0),
    # usage reported: priced on it, error or not
    "failed_usage": ("error", "rate_limit_exceeded", None, 500, 20,
                     (500 * MINI[0] + 20 * MINI[2]) / MTOK),
    "cancelled": ("error", "cancelled", None, 200, 10, (200 * MINI[0] + 10 * MINI[2]) / MTOK),
    # the SDK raised: the span's own ERROR status and exception
    "http_429": ("error", "RateLimitError", None, None, None, 0.0),
    # genai-prices: $10 per 1,000 web searches for gpt-4o-mini
    "searched": ("ok", None, "stop", 50, 10, (50 * MINI[0] + 10 * MINI[2]) / MTOK + 2 * 0.01),
}

RECORDER = r'''
import json, sys
from datetime import datetime, timezone
base_url, calls_file, spans_out, log_out = sys.argv[1:5]
import openai
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from openinference.instrumentation.openai import OpenAIInstrumentor

provider = TracerProvider(resource=Resource.create({"service.name": "assistant"}))
exporter = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(exporter))
OpenAIInstrumentor().instrument(tracer_provider=provider)
client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
log = []
for name, directive in json.load(open(calls_file)).items():
    request = {"model": "gpt-4o-mini", "input": json.dumps(directive)}
    started = datetime.now(timezone.utc).isoformat()  # a failed call's only time
    try:
        outcome = {"response": json.loads(client.responses.create(**request).model_dump_json())}
    except openai.APIStatusError as exc:
        outcome = {"error": {"type": type(exc).__name__, "status_code": exc.status_code,
                             "message": exc.message}}
    log.append({"ts": started, "call": name, "request": request, **outcome})
with open(log_out, "w") as f:
    f.writelines(json.dumps(record) + "\n" for record in log)
request = MessageToDict(encode_spans(exporter.get_finished_spans()), use_integers_for_enums=True)
for resource_spans in request["resourceSpans"]:  # the Collector's pdata JSON: hex ids
    for scope_spans in resource_spans["scopeSpans"]:
        for span in scope_spans["spans"]:
            for key in ("traceId", "spanId", "parentSpanId"):
                if span.get(key):
                    span[key] = __import__("base64").b64decode(span[key]).hex()
with open(spans_out, "w") as f:
    f.write(json.dumps(request) + "\n")
'''


class _MoreResponsesHandler(_ResponsesHandler):
    """The Responses fake, plus what it does not answer: a failed response reporting the
    directive's ``failed_usage``, and ``web_searches`` web search calls in the output."""

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.loads(raw or b"{}")
        try:
            directive = json.loads(body.get("input") or "{}")
        except (TypeError, ValueError):
            directive = {}
        self._directive = directive if isinstance(directive, dict) else {}
        # The fake reads the body again; then the connection's own stream is put back: left
        # at the spent copy, the handler took the end of it for the client hanging up and closed
        # the kept-alive connection, which the client (max_retries=0) could reuse a moment
        # later, "Server disconnected without sending a response" (seen under load in CI).
        real, self.rfile = self.rfile, io.BytesIO(raw)
        try:
            super().do_POST()
        finally:
            self.rfile = real

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        directive = getattr(self, "_directive", {})
        usage = directive.get("failed_usage")
        if usage and payload.get("status") == "failed":
            payload["usage"] = {
                "input_tokens": usage["input_tokens"],
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": usage["output_tokens"],
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage["input_tokens"] + usage["output_tokens"]}
        if directive.get("web_searches") and payload.get("object") == "response":
            payload["output"][:0] = [
                {"id": f"ws_{i}", "type": "web_search_call", "status": "completed",
                 "action": {"type": "search", "query": f"query {i}"}}
                for i in range(directive["web_searches"])]
        _Handler._send_json(self, status, payload)


class _Server(FakeOpenAIResponsesServer):
    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = _MoreResponsesHandler


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict[str, Path]:
    """The CALLS made once by the instrumented client: its spans and the app's log of them."""
    out = tmp_path_factory.mktemp("oi_responses")
    calls_file, recorder = out / "calls.json", out / "record.py"
    calls_file.write_text(json.dumps(CALLS))
    recorder.write_text(RECORDER)
    spans, log = out / "spans.collector.jsonl", out / "responses.jsonl"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "OPENINFERENCE_"))}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    with _Server() as server:
        result = subprocess.run(
            [sys.executable, str(recorder), server.base_url, str(calls_file), str(spans),
             str(log)], capture_output=True, text=True, timeout=120, env=env, cwd=REPO_ROOT)
        ledger = list(server.ledger)
    assert result.returncode == 0, result.stderr
    assert len(ledger) == len(CALLS)  # every call reached the fake
    return {"spans": spans, "log": log}


def _stored(path: Path, tmp: Path) -> tuple[str, dict[str, dict]]:
    """(format, {call name: stored request row}) of ``path`` ingested into a fresh store. Rows
    are told apart by the directive sent: input.value's ``input`` (the request the span
    recorded), the app record's request ``input`` (the provider-log format's input_text)."""
    lake = Lake(tmp)
    report = ingest_paths(lake, [str(path)], compact_min_files=0)
    (f,) = report.files
    assert f.error is None and f.quarantined == 0, (f.error, f.quarantined)
    engine = Engine(lake)
    try:
        rows = engine.query("SELECT * FROM requests").to_dicts()
    finally:
        engine.close()
    by_directive = {json.dumps(d): name for name, d in CALLS.items()}
    named = {}
    for row in rows:
        text = row["input_text"]
        directive = json.loads(text)["input"] if text.startswith('{"model"') else text
        named[by_directive[directive]] = row
    assert set(named) == set(CALLS)
    return f.format, named


def _outcome(row: dict) -> tuple:
    return (row["status"], row["error_type"], row["finish_reason"], row["input_tokens"],
            row["output_tokens"], row["cost_usd"])


# (http_429 has no response object: its span's own ERROR status and exception give its outcome,
# compared with the app's record below)
@pytest.mark.parametrize("call", [c for c in CALLS if c != "http_429"])
def test_a_responses_calls_outcome_is_read_from_the_response(recorded, tmp_path, call):
    fmt, rows = _stored(recorded["spans"], tmp_path / "store")
    assert fmt == "openinference"
    row, expected = _outcome(rows[call]), EXPECTED[call]
    assert row[:5] == expected[:5]
    assert rows[call]["web_searches"] == CALLS[call].get("web_searches", 0)
    assert row[5] == pytest.approx(expected[5], rel=1e-9, abs=1e-15)
    # the model asked for, and the snapshot that answered
    assert (rows[call]["model"], rows[call]["response_model"]) == (
        "gpt-4o-mini", "gpt-4o-mini-2024-07-18")


def test_the_same_responses_logged_by_the_app_are_stored_the_same(recorded, tmp_path):
    span_fmt, spans = _stored(recorded["spans"], tmp_path / "spans")
    log_fmt, logged = _stored(recorded["log"], tmp_path / "log")
    assert (span_fmt, log_fmt) == ("openinference", "openai")
    columns = ("status", "error_type", "finish_reason", "model", "input_tokens",
               "cached_input_tokens", "output_tokens", "reasoning_tokens", "web_searches")
    for call in CALLS:
        span_row, log_row = spans[call], logged[call]
        assert {c: span_row[c] for c in columns} == {c: log_row[c] for c in columns}, call
        # the error's text too (it was empty on the span path); a span's own exception message
        # names the SDK's exception class first ("RateLimitError: Error code: 429 - …")
        if log_row["error_message"] is None:
            assert span_row["error_message"] is None, call
        else:
            assert span_row["error_message"].endswith(log_row["error_message"]), call
        assert span_row["cost_usd"] == pytest.approx(log_row["cost_usd"], rel=1e-12), call
    assert sum(r["cost_usd"] for r in spans.values()) == pytest.approx(
        sum(e[5] for e in EXPECTED.values()), rel=1e-9)
