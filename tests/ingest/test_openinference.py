"""OpenInference spans (lib/ingest/formats/openinference.py).

Main evidence: spans from the real ``openinference-instrumentation-openai`` driving the real
``openai`` client against tests/ingest/fake_openai.py, exported as the Collector writes OTLP JSON.
A hand-written fixture covers Anthropic-style usage, metadata, costs, non-LLM kinds and a
GenAI-convention span in the same file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from lib.ingest import formats as registry
from lib.ingest.formats import langfuse, openinference, otlp
from tests.ingest.chunks import parse_file, total
from tests.ingest.fake_openai import record_spans, scenario_truth

FIXTURES = Path(__file__).parent / "fixtures"
HANDWRITTEN = FIXTURES / "openinference_handwritten.jsonl"
CANONICAL_LINE = (b'{"request_id": "r1", "ts": "2026-01-01T00:00:00Z", "model": "gpt-4o", '
                  b'"input_tokens": 10, "output_tokens": 2}\n')




@pytest.fixture(scope="module")
def oi_files(tmp_path_factory):
    protobuf_file, collector_file, ledger = record_spans(
        "openinference", tmp_path_factory.mktemp("openinference"))
    return {"protobuf": protobuf_file, "collector": collector_file, "ledger": ledger}


@pytest.mark.parametrize("encoding", ["protobuf", "collector"])
def test_real_openinference_spans_give_exact_totals(oi_files, encoding):
    tables, rejects, _ = parse_file(openinference.FORMAT, oi_files[encoding])
    truth = scenario_truth()
    requests, spans = tables["requests"], tables["spans"]
    assert rejects == []
    assert len(oi_files["ledger"]) == truth["requests"]
    assert requests.num_rows == truth["requests"]
    assert pc.sum(pc.equal(requests["status"], "error")).as_py() == truth["errors"]
    # llm.token_count.prompt includes the cached tokens (OpenAI's prompt_tokens): not re-added
    assert total(requests, "input_tokens") == truth["input_tokens"]
    assert total(requests, "cached_input_tokens") == truth["cached_input_tokens"]
    assert total(requests, "output_tokens") == truth["output_tokens"]
    assert total(requests, "reasoning_tokens") == truth["reasoning_tokens"]
    assert spans.num_rows == truth["requests"] + truth["agents"]
    assert spans["kind"].to_pylist().count("agent") == truth["agents"]
    assert set(requests["service"].to_pylist()) == {"support-bot"}


def test_real_openinference_span_details(oi_files):
    tables, _, _ = parse_file(openinference.FORMAT, oi_files["collector"])
    rows = tables["requests"].to_pylist()
    by_input = {r["input_tokens"]: r for r in rows if r["status"] == "ok"}
    first = by_input[1200]
    # model requested (from llm.invocation_parameters) vs the snapshot that answered
    assert (first["model"], first["response_model"]) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (first["provider"], first["operation"], first["finish_reason"]) == \
        ("openai", "chat", "stop")
    assert first["cached_input_tokens"] == 1024
    # using_attributes(session_id, user_id, metadata) -> columns; metadata's feature too
    assert (first["session_id"], first["user_id"], first["feature"]) == \
        ("sess-a", "user-1", "faq")
    attributes = json.loads(first["attributes"])
    assert attributes["metadata"] == {"feature": "faq", "team": "support"}
    assert attributes["llm.invocation_parameters"]["max_tokens"] == 256
    assert not any(k.startswith("llm.input_messages.") for k in attributes)
    assert '"messages"' in first["input_text"] and "Cached answer." in first["output_text"]
    reasoning = by_input[500]
    assert (reasoning["reasoning_tokens"], reasoning["output_tokens"]) == (640, 800)
    stream = by_input[90]
    # "First Token Stream Event" -> ttft; the fake server waits 30 ms before the first chunk
    assert 30 <= stream["ttft_ms"] < stream["latency_ms"]
    embedding = by_input[8]
    assert (embedding["operation"], embedding["model"]) == ("embeddings", "text-embedding-3-small")
    # output.value is the response with its vectors (32 KB a text at 1,536 dimensions): no
    # response text; the texts embedded are the input
    assert embedding["output_text"] is None
    assert "one two three" in embedding["input_text"]
    errors = sorted(r["error_type"] for r in rows if r["status"] == "error")
    assert errors == ["InternalServerError", "RateLimitError"]
    assert all(r["error_message"] for r in rows if r["status"] == "error")


def test_handwritten_totals_and_token_traps():
    tables, rejects, _ = parse_file(openinference.FORMAT, HANDWRITTEN)
    req = tables["requests"]
    assert req.num_rows == 3
    # 3000 (inclusive, trusted) + 12 + 2000 (cache read outside the raw count: added) + 40
    assert total(req, "input_tokens") == 5052
    assert total(req, "cached_input_tokens") == 4000
    assert total(req, "cache_write_tokens") == 500
    assert total(req, "output_tokens") == 434
    assert total(req, "reasoning_tokens") == 150
    assert [(r.line, r.reason) for r in rejects] == [
        (2, "not an OTLP ExportTraceServiceRequest (no resourceSpans list)")]
    kinds = sorted(tables["spans"]["kind"].to_pylist())
    assert kinds == ["chain", "llm", "llm", "llm", "other", "retrieval", "tool"]


def test_handwritten_column_mapping():
    tables, _, _ = parse_file(openinference.FORMAT, HANDWRITTEN)
    rows = {r["request_id"]: r for r in tables["requests"].to_pylist()}
    claude = rows["0100000000000004"]
    assert (claude["model"], claude["response_model"], claude["provider"]) == \
        ("claude-sonnet-4-0", "claude-sonnet-4-20250514", "anthropic")
    assert claude["logged_cost_usd"] == pytest.approx(0.0123)
    assert (claude["customer_id"], claude["prompt_name"], claude["prompt_version"]) == \
        ("acme", "refunds", "v3")
    assert (claude["feature"], claude["session_id"], claude["user_id"]) == \
        ("support-chat", "sess-42", "alice")
    assert (claude["service"], claude["environment"]) == ("rag-service", "prod")
    attributes = json.loads(claude["attributes"])
    assert attributes["metadata"]["ab"] == "B" and attributes["tag.tags"] == "prod"
    assert "llm.input_messages.0.message.role" not in attributes
    genai = rows["0100000000000006"]  # read with the GenAI mapping
    assert (genai["model"], genai["input_tokens"], genai["provider"]) == ("gpt-4o-mini", 40,
                                                                          "openai")


def test_genai_format_reads_openinference_spans_the_same_way():
    a, _, _ = parse_file(openinference.FORMAT, HANDWRITTEN)
    b, _, _ = parse_file(otlp.FORMAT, HANDWRITTEN)
    assert a["requests"].equals(b["requests"])


def _head(path: Path) -> bytes:
    return path.read_bytes()[:65536]


def test_detection_prefers_openinference_over_generic_otlp(oi_files):
    for path in (oi_files["protobuf"], oi_files["collector"], HANDWRITTEN):
        assert openinference.FORMAT.detect(_head(path), path.name)
        assert not langfuse.FORMAT.detect(_head(path), path.name)
        first = next(f for f in registry.registered() if f.detect(_head(path), path.name))
        assert first.name == "openinference"


def test_does_not_claim_genai_or_canonical_files(tmp_path):
    genai = FIXTURES / "genai_handwritten.jsonl"
    assert not openinference.FORMAT.detect(_head(genai), genai.name)
    assert not openinference.FORMAT.detect(CANONICAL_LINE, "requests.jsonl")
    # a canonical line that merely mentions the key in its text is not an OTLP envelope
    mention = b'{"request_id": "r", "ts": "2026-01-01", "note": "openinference.span.kind"}\n'
    assert not openinference.FORMAT.detect(mention, "requests.jsonl")


def test_ingest_pipeline_end_to_end(oi_files, tmp_path):
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Engine, Lake

    lake = Lake(tmp_path / "store")
    report = ingest_paths(lake, [str(oi_files["protobuf"]), str(HANDWRITTEN)])
    assert report.ok, [f.error for f in report.files]
    assert [f.format for f in report.files] == ["openinference", "openinference"]
    truth = scenario_truth()
    row = Engine(lake).query(
        "SELECT count(*), count(*) FILTER (status = 'error'), sum(input_tokens), "
        "sum(cached_input_tokens), sum(cache_write_tokens), sum(output_tokens), "
        "sum(reasoning_tokens) FROM requests").row(0)
    assert row == (truth["requests"] + 3, truth["errors"], truth["input_tokens"] + 5052,
                   truth["cached_input_tokens"] + 4000, 500, truth["output_tokens"] + 434,
                   truth["reasoning_tokens"] + 150)
    assert Engine(lake).scalar("SELECT count(*) FROM quarantine") == 1


def test_a_logged_cost_in_parts_is_their_sum():
    # llm.cost.prompt and llm.cost.completion without llm.cost.total (OpenInference's cost
    # attributes, written in parts): the logged cost was none; one part alone is no total
    from tests.ingest.test_hostile_otlp_values import OPENINFERENCE, line, parse, span

    parts = {"llm.cost.prompt": 0.0025, "llm.cost.completion": 0.005}
    rows, rejects = parse([line(span(1, {**OPENINFERENCE, **parts})),
                           line(span(2, {**OPENINFERENCE, "llm.cost.prompt": 0.0025})),
                           line(span(3, {**OPENINFERENCE, **parts, "llm.cost.total": 0.008}))],
                          openinference.FORMAT)
    assert rejects == []
    costs = [r["logged_cost_usd"] for r in rows["requests"]]
    assert costs[0] == pytest.approx(0.0075) and costs[1:] == [None, 0.008]
    assert json.loads(rows["requests"][0]["attributes"])["llm.cost.prompt"] == 0.0025


@pytest.mark.parametrize("version, prompt, stored, said", [
    ("0.1.14", 18000, 10000, 1),  # counted twice: taken out once, and said
    ("0.1.16", 10000, 10000, 0),  # the fixed release: as logged
    ("0.1.11", 10000, 10000, 0),  # before the bug (no cache_read then): as logged
])
def test_google_genai_releases_that_counted_the_cache_twice(tmp_path, version, prompt, stored,
                                                            said):
    # openinference-instrumentation-google-genai 0.1.12 to 0.1.15 (Arize-ai/openinference#2779,
    # fixed by #3016 in 0.1.16, issue #3013) added cached_content_token_count to
    # llm.token_count.prompt, though Gemini's prompt_token_count already holds it: a call of
    # 10,000 prompt tokens, 8,000 of them cached, was logged as 18,000 with cache_read 8,000.
    from lib.ingest.formats import otlp_common as oc

    attrs = {"openinference.span.kind": "LLM", "llm.provider": "google",
             "llm.system": "vertexai", "llm.model_name": "gemini-2.5-flash",
             "llm.token_count.prompt": prompt,
             "llm.token_count.prompt_details.cache_read": 8000,
             "llm.token_count.completion": 500, "llm.token_count.total": prompt + 500}
    span = {"traceId": "7" * 32, "spanId": "d" * 16, "name": "GenerateContent", "kind": 1,
            "startTimeUnixNano": "1772452800000000000",
            "endTimeUnixNano": "1772452801000000000",
            "attributes": [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int)
                            else {"stringValue": v}} for k, v in attrs.items()]}
    path = tmp_path / "gemini.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"scope": {
        "name": "openinference.instrumentation.google_genai", "version": version},
        "spans": [span]}]}]}) + "\n")
    tables, rejects, chunks = parse_file(openinference.FORMAT, path)
    assert rejects == []
    row = tables["requests"].to_pylist()[0]
    assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (
        stored, 8000, 500)
    assert sum(c.not_read.get(oc.CACHED_COUNTED_TWICE, 0) for c in chunks) == said
