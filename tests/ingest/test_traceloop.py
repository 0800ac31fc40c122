"""Traceloop OpenLLMetry spans (``opentelemetry-instrumentation-openai`` / ``-anthropic``) in
OTLP JSON, read by the GenAI mapping (lib/ingest/formats/otlp.py).

The evidence is spans written by the real instrumentation packages, three releases with three
attribute layouts (0.62.4: the current GenAI names; 0.47.5: flattened ``gen_ai.prompt.N.*`` /
``gen_ai.completion.N.*`` messages, ``llm.request.type``, ``llm.usage.reasoning_tokens``;
0.40.14: the same, and failed calls without ``error.type`` or an exception event), driving the
real ``openai`` and ``anthropic`` clients against fake servers, recorded in
tests/ingest/fixtures/traceloop/ (README.md there says how). Every expectation is computed from
the fake servers' ledgers (``truth.json``: exactly the usage each call was answered with), never
from what the instrumentation wrote, except where a span lacks a value (then nothing is stored).
"""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path

import pytest

from lib.ingest.formats import otlp
from lib.ingest.pipeline import ingest_paths
from lib.store import Engine

FIXTURES = Path(__file__).parent / "fixtures" / "traceloop"
RECORDINGS = [("0.62.4", "spans.jsonl"), ("0.47.5", "spans.jsonl"), ("0.40.14", "spans.jsonl"),
              ("0.40.14", "spans.protojson.jsonl")]
# Traceloop's llm.request.type -> the GenAI operation name (it labels Anthropic Messages calls
# "completion", in spans named anthropic.chat: those are chat)
REQUEST_TYPE_OPERATION = {"chat": "chat", "completion": "text_completion",
                          "embedding": "embeddings"}
FLATTENED = ("gen_ai.prompt.", "gen_ai.completion.")


def _calls() -> dict[tuple[str, str], str]:
    """(model, the user message the recorder sent) -> the call's label, from the recorder."""
    spec = importlib.util.spec_from_file_location("record_traceloop",
                                                  FIXTURES / "record_traceloop.py")
    recorder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recorder)  # defines the calls only; main() is not run
    calls = {}
    for label, kind, model, directive, _ in recorder.OA_CALLS:
        calls[model, directive if kind == "embed" else json.dumps(directive)] = label
    for label, model, directive, _ in recorder.AN_CALLS:
        calls[model, json.dumps(directive)] = label
    return calls


def _value(any_value: dict):
    (kind, inner), = any_value.items()
    if kind == "intValue":
        return int(inner)
    if kind == "arrayValue":
        return [_value(v) for v in inner.get("values", [])]
    return inner


def _hex(span_id: str) -> str:
    return span_id if len(span_id) == 16 else base64.b64decode(span_id).hex()


def recorded_spans(path: Path) -> list[dict]:
    """Each span of the file: id, name, status, attributes (plain values), event names."""
    spans = []
    for line in path.read_text().splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    spans.append({
                        "id": _hex(span["spanId"]), "name": span["name"],
                        "status": span.get("status", {}),
                        "attrs": {a["key"]: _value(a["value"]) for a in span["attributes"]},
                        "events": [e["name"] for e in span.get("events", [])]})
    return spans


def user_message(attrs: dict) -> str:
    """The last message the span says was sent: flattened (<= 0.47) or gen_ai.input.messages."""
    if "gen_ai.input.messages" in attrs:
        return json.loads(attrs["gen_ai.input.messages"])[-1]["parts"][0]["content"]
    prompts = {int(k.split(".")[2]): v for k, v in attrs.items()
               if k.startswith("gen_ai.prompt.") and k.endswith(".content")}
    return prompts[max(prompts)]


def span_finish_reason(attrs: dict) -> str | None:
    """The finish reason the span recorded, in whichever layout."""
    if attrs.get("gen_ai.response.finish_reasons"):
        return attrs["gen_ai.response.finish_reasons"][0]
    for message in json.loads(attrs.get("gen_ai.output.messages") or "[]"):
        if message.get("finish_reason"):
            return message["finish_reason"]
    found = sorted((int(k.split(".")[2]), v) for k, v in attrs.items()
                   if k.startswith("gen_ai.completion.") and k.endswith(".finish_reason"))
    return found[0][1] if found else None


def expected_usage(ledger: dict) -> dict:
    """Canonical counts (design §3: input includes cached and cache writes, output includes
    reasoning) from the usage the fake server returned, per API."""
    usage = ledger.get("usage")
    if usage is None:  # an error answer: no usage
        return dict.fromkeys(("input", "cached", "write", "output", "reasoning"))
    if "cache_read_input_tokens" in usage:  # Anthropic: input excludes the cache's parts
        return {"input": usage["input_tokens"] + usage["cache_read_input_tokens"]
                + usage["cache_creation_input_tokens"],
                "cached": usage["cache_read_input_tokens"],
                "write": usage["cache_creation_input_tokens"],
                "output": usage["output_tokens"], "reasoning": 0}
    if "input_tokens" in usage:  # OpenAI Responses API
        details = usage["input_tokens_details"]
        return {"input": usage["input_tokens"], "cached": details["cached_tokens"],
                "write": details.get("cache_write_tokens", 0), "output": usage["output_tokens"],
                "reasoning": usage["output_tokens_details"]["reasoning_tokens"]}
    # OpenAI chat completions and embeddings: prompt_tokens includes the cached ones
    return {"input": usage["prompt_tokens"],
            "cached": usage.get("prompt_tokens_details", {}).get("cached_tokens", 0),
            "write": 0, "output": usage.get("completion_tokens"),
            "reasoning": usage.get("completion_tokens_details", {}).get("reasoning_tokens", 0)}


def _carries(attrs: dict, *names: str) -> bool:
    return any(name in attrs for name in names)


# What the instrumentation itself gets wrong, as recorded (the ingest stores what the span says):
# 0.40.14 reports zeros for a streamed Anthropic call; 0.62.4 counts one output token more on one
# (Anthropic's message_start output_tokens added to the final count).
INSTRUMENTATION_QUIRKS = {
    ("0.40.14", "an_stream"): lambda want: {**want, "input": 0, "cached": 0, "write": 0,
                                            "output": 0},
    ("0.62.4", "an_stream"): lambda want: {**want, "output": want["output"] + 1},
}


def texts(value) -> list[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    return []


@pytest.fixture(scope="module")
def calls():
    return _calls()


class Call:
    """One recorded call: its label, the server's answer, the span, the stored row."""

    def __init__(self, version: str, label: str, entry: dict, span: dict, row: dict) -> None:
        self.label, self.entry, self.span, self.row = label, entry, span, row
        (self.ledger,) = entry["ledger"]
        self.attrs = span["attrs"]
        self.where = f"{version} {label}"


def ingested(lake, calls, version: str, name: str) -> list[Call]:
    """Ingest one recording; each of its spans with the call it recorded and its stored row."""
    folder = FIXTURES / version
    truth = {entry["label"]: entry for entry in json.loads((folder / "truth.json").read_text())}
    spans = recorded_spans(folder / name)
    report = ingest_paths(lake, [str(folder / name)], compact_min_files=0)
    assert report.ok, [f.error for f in report.files]
    assert [f.format for f in report.files] == ["otlp-json"]
    engine = Engine(lake)
    try:
        assert engine.scalar("SELECT count(*) FROM quarantine") == 0
        rows = {r["request_id"]: r for r in engine.query("SELECT * FROM requests").to_dicts()}
    finally:
        engine.close()
    assert len(rows) == len(spans)  # every span of these packages is a model call
    found = [Call(version, calls[s["attrs"]["gen_ai.request.model"], user_message(s["attrs"])],
                  truth[calls[s["attrs"]["gen_ai.request.model"], user_message(s["attrs"])]],
                  s, rows[s["id"]]) for s in spans]
    assert len({c.label for c in found}) == len(found)  # one span a call
    return found


@pytest.mark.parametrize(("version", "name"), RECORDINGS)
def test_traceloop_tokens_are_the_servers(lake, calls, version, name):
    """Input including cache reads and writes, cached, cache write, output, reasoning."""
    reasoning_seen = 0
    for call in ingested(lake, calls, version, name):
        a, row, where = call.attrs, call.row, call.where
        want = expected_usage(call.ledger)
        if (version, call.label) in INSTRUMENTATION_QUIRKS:
            want = INSTRUMENTATION_QUIRKS[version, call.label](want)
        # where the span reports usage (0.40.14's streamed OpenAI calls and 0.47.5's streamed
        # Anthropic one report none: nothing is stored then)
        if _carries(a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"):
            assert row["input_tokens"] == want["input"], where
            assert row["cached_input_tokens"] == want["cached"], where
            assert row["cache_write_tokens"] == want["write"], where
        else:
            assert row["input_tokens"] is None, where
        if _carries(a, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"):
            assert row["output_tokens"] == want["output"], where
        else:
            assert row["output_tokens"] is None, where
        if _carries(a, "gen_ai.usage.reasoning_tokens", "llm.usage.reasoning_tokens"):
            assert row["reasoning_tokens"] == want["reasoning"], where
            reasoning_seen += want["reasoning"]
    # 0.62.4 and 0.47.5 record o4-mini's reasoning (0.47.5 as llm.usage.reasoning_tokens)
    assert (reasoning_seen > 0) == (version != "0.40.14")


@pytest.mark.parametrize(("version", "name"), RECORDINGS)
def test_traceloop_status_and_error_type(lake, calls, version, name):
    """The exception's class; else (0.40.14 records only the span status, "Error code: 429 -
    {...}") the HTTP status, as text."""
    by_status = 0
    for call in ingested(lake, calls, version, name):
        row, status, where = call.row, call.ledger["status"], call.where
        assert row["status"] == ("ok" if status == 200 else "error"), where
        if status == 200:
            assert row["error_type"] is None, where
        elif "error.type" in call.attrs or "exception" in call.span["events"]:
            assert row["error_type"] == call.entry["error"].split(":")[0], where
        else:
            assert call.span["status"]["message"].startswith(f"Error code: {status} - "), where
            assert row["error_type"] == str(status), where
            by_status += 1
    assert (by_status > 0) == (version == "0.40.14")


@pytest.mark.parametrize(("version", "name"), RECORDINGS)
def test_traceloop_operation(lake, calls, version, name):
    by_request_type = 0
    for call in ingested(lake, calls, version, name):
        row, a, where = call.row, call.attrs, call.where
        if call.ledger.get("embeddings"):
            assert row["operation"] == "embeddings", where
        elif call.label.startswith("an_"):  # Messages calls (<= 0.47 says "completion")
            assert row["operation"] == "chat", where
        elif "llm.request.type" in a:
            assert row["operation"] == REQUEST_TYPE_OPERATION[a["llm.request.type"]], where
        else:
            assert row["operation"] == a.get("gen_ai.operation.name", "chat"), where
        by_request_type += "llm.request.type" in a
    assert (by_request_type > 0) == (version != "0.62.4")


@pytest.mark.parametrize(("version", "name"), RECORDINGS)
def test_traceloop_finish_reason_and_messages(lake, calls, version, name):
    """finish_reason, input_text and output_text, from flattened messages too (<= 0.47)."""
    flattened_tool_calls = 0
    for call in ingested(lake, calls, version, name):
        row, a, where = call.row, call.attrs, call.where
        # the reason the span recorded, in whichever layout, consistent with what the server
        # answered (0.62.4 writes "tool_call", and Anthropic's end_turn as "stop")
        reason = span_finish_reason(a)
        assert row["finish_reason"] == reason, where
        if call.ledger["status"] != 200 or call.ledger.get("embeddings"):
            assert reason is None, where
        elif reason is not None:
            allowed = ({"tool_calls", "tool_call"} if call.ledger.get("tool_call") else
                       {"end_turn", "stop"} if call.label.startswith("an_") else {"stop"})
            assert reason in allowed, where
        # the messages as JSON lists: the user's as sent; the answer's text or tool call
        assert user_message(a) in texts(json.loads(row["input_text"])), where
        answered = "gen_ai.output.messages" in a or any(k.startswith("gen_ai.completion.")
                                                         for k in a)
        if not answered:
            assert row["output_text"] is None, where
            continue
        output = json.loads(row["output_text"])
        assert isinstance(output, list), where
        if call.ledger["status"] != 200:
            continue
        if call.ledger.get("tool_call"):
            assert "get_weather" in texts(output), where
            if "gen_ai.completion.0.tool_calls.0.name" in a:
                # nested as the message's list of calls
                assert output[0]["tool_calls"][0] == {
                    "id": "call_abc", "name": "get_weather", "arguments": '{"city": "Paris"}'}
                flattened_tool_calls += 1
        else:
            assert any(t.startswith("Hello") for t in texts(output)), where
    assert (flattened_tool_calls > 0) == (version != "0.62.4")


@pytest.mark.parametrize(("version", "name"), RECORDINGS)
def test_traceloop_attributes_read_are_not_copied(lake, calls, version, name):
    for call in ingested(lake, calls, version, name):
        extra = json.loads(call.row["attributes"] or "{}")
        assert not [k for k in extra if k.startswith(FLATTENED) or k in (
            "llm.request.type", "llm.usage.reasoning_tokens", "gen_ai.usage.reasoning_tokens",
            "llm.usage.total_tokens")], call.where
        assert extra.get("gen_ai.response.id") == call.attrs.get("gen_ai.response.id")


def test_flattened_messages_nest_in_index_order():
    """Indices are list positions in numeric order (10 after 9), nested fields are objects,
    keys that clash or start with no index are not read (they stay in attributes)."""
    attrs = {f"gen_ai.prompt.{i}.content": f"m{i}" for i in (10, 2, 0, 1, 9)}
    attrs |= {"gen_ai.completion.0.tool_calls.1.name": "b",
              "gen_ai.completion.0.tool_calls.0.name": "a",
              "gen_ai.completion.0.tool_calls.0.arguments": "{}",
              "gen_ai.completion.0.role": "assistant",
              "gen_ai.completion.0.role.x": "clash",
              "gen_ai.prompt.prompt_filter_results": "[]", "gen_ai.prompt": "whole"}
    found = otlp.flattened_messages(attrs)
    prompts, prompt_keys = found["gen_ai.prompt."]
    assert [m["content"] for m in prompts] == ["m0", "m1", "m2", "m9", "m10"]
    assert "gen_ai.prompt.prompt_filter_results" not in prompt_keys
    completions, completion_keys = found["gen_ai.completion."]
    assert completions == [{"tool_calls": [{"name": "a", "arguments": "{}"}, {"name": "b"}],
                            "role": "assistant"}]
    assert "gen_ai.completion.0.role.x" not in completion_keys
