"""Langfuse exports (lib/ingest/formats/langfuse.py): JSONL and JSON arrays, usage semantics."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from lib.ingest import formats as registry
from lib.ingest.formats import langfuse, openinference, otlp
from tests.ingest.chunks import collect, total

FIXTURES = Path(__file__).parent / "fixtures"
FLAT = FIXTURES / "langfuse_observations.jsonl"
TRACES = FIXTURES / "langfuse_traces.json"
CANONICAL_LINE = (b'{"request_id": "r1", "ts": "2026-01-01T00:00:00Z", "model": "gpt-4o", '
                  b'"input_tokens": 10, "output_tokens": 2}\n')


def parse_bytes(data: bytes, **kwargs):
    return collect(list(langfuse.parse(io.BytesIO(data), "export.json", **kwargs)))



def test_flat_export_totals_on_both_sides_of_the_cache_trap():
    tables, rejects, _ = parse_bytes(FLAT.read_bytes())
    req = tables["requests"]
    assert req.num_rows == 4
    assert pc.sum(pc.equal(req["status"], "error")).as_py() == 1
    # usageDetails are additive: input excludes input_cached_tokens / cache_read_input_tokens /
    # cache_creation_input_tokens, so they are added: 176 + 1024, 20 + 1000 + 200; the legacy
    # usage object already holds the provider's total: 300
    assert total(req, "input_tokens") == 1200 + 1220 + 300
    assert total(req, "cached_input_tokens") == 1024 + 1000
    assert total(req, "cache_write_tokens") == 200
    # output excludes output_reasoning_tokens likewise: 96 + 310
    assert total(req, "output_tokens") == 406 + 50 + 40
    assert total(req, "reasoning_tokens") == 310
    assert total(req, "logged_cost_usd") == pytest.approx(0.0023)
    assert sorted(tables["spans"]["kind"].to_pylist()) == \
        ["agent", "llm", "llm", "llm", "llm", "other", "tool"]
    assert tables["evals"].num_rows == 3
    assert [(r.line, r.reason.split(":")[0]) for r in rejects] == [
        (12, "not valid JSON"), (13, "not a Langfuse observation, trace or score")]


def test_flat_export_column_mapping():
    tables, _, _ = parse_bytes(FLAT.read_bytes())
    rows = {r["request_id"]: r for r in tables["requests"].to_pylist()}
    g1 = rows["g1"]
    assert (g1["latency_ms"], g1["ttft_ms"]) == (1500.0, 400.0)
    assert (g1["prompt_name"], g1["prompt_version"], g1["feature"]) == ("support", "3", "chat")
    # trace info from the trace record earlier in the file
    assert (g1["user_id"], g1["session_id"], g1["customer_id"]) == ("user-9", "s-9", "acme")
    assert (g1["app_version"], g1["environment"]) == ("2.3.0", "production")
    assert (g1["trace_id"], g1["parent_id"], g1["model"]) == ("t1", "span-1", "gpt-4o-mini")
    assert json.loads(g1["input_text"]) == [{"role": "user", "content": "Where is my order?"}]
    attributes = json.loads(g1["attributes"])
    assert attributes["modelParameters"] == {"temperature": 0.2, "max_tokens": 512}
    assert attributes["trace_name"] == "support-chat" and attributes["tags"] == ["beta"]
    assert str(g1["ts"]) == "2026-03-02 10:00:00.100000+00:00"
    assert g1["_line"] == 3
    g2 = rows["g2"]
    assert (g2["input_tokens"], g2["cached_input_tokens"], g2["cache_write_tokens"]) == \
        (1220, 1000, 200)
    assert g2["logged_cost_usd"] is None
    g3 = rows["g3"]
    assert (g3["status"], g3["error_type"]) == ("error", "RateLimitError")
    assert g3["error_message"].startswith("RateLimitError")
    assert g3["input_tokens"] is None and g3["output_tokens"] is None
    g4 = rows["g4"]
    assert (g4["latency_ms"], g4["ttft_ms"], g4["user_id"]) == (800.0, 200.0, "user-3")
    assert (g4["input_tokens"], g4["cached_input_tokens"], g4["output_tokens"]) == (300, 0, 40)


def test_scores_become_evals():
    tables, _, _ = parse_bytes(FLAT.read_bytes())
    evals = {r["metric"]: r for r in tables["evals"].to_pylist()}
    helpful = evals["helpfulness"]
    assert (helpful["source"], helpful["score"], helpful["passed"]) == ("online", 0.9, None)
    assert (helpful["request_id"], helpful["case_id"], helpful["version"]) == ("g1", "g1", "2.3.0")
    assert helpful["explanation"] == "clear answer"
    thumbs = evals["user_feedback"]
    assert (thumbs["source"], thumbs["score"], thumbs["passed"], thumbs["label"]) == \
        ("feedback", 0.0, False, "false")
    assert (thumbs["request_id"], thumbs["case_id"]) == (None, "t1")
    tone = evals["tone"]
    assert (tone["label"], tone["passed"], tone["judge"], tone["score"]) == \
        ("correct", True, "human", None)
    assert len({e["eval_id"] for e in evals.values()}) == 3


def test_pretty_printed_array_of_traces_with_nested_observations():
    tables, rejects, _ = parse_bytes(TRACES.read_bytes())
    assert rejects == []
    rows = {r["request_id"]: r for r in tables["requests"].to_pylist()}
    assert (rows["ga1"]["input_tokens"], rows["ga1"]["cached_input_tokens"]) == (1000, 500)
    assert (rows["ga1"]["user_id"], rows["ga1"]["session_id"], rows["ga1"]["app_version"]) == \
        ("u-a", "sess-a", "3.0.0")
    gb1 = rows["gb1"]
    assert (gb1["input_tokens"], gb1["cached_input_tokens"], gb1["cache_write_tokens"]) == \
        (130, 90, 30)
    assert gb1["logged_cost_usd"] == pytest.approx(0.0004)  # no total: the parts are summed
    assert tables["spans"].num_rows == 3
    assert tables["evals"].to_pylist()[0]["passed"] is True
    # line numbers point at the start of each trace in the pretty-printed array
    text = TRACES.read_text().splitlines()
    lines = set(tables["requests"]["_line"].to_pylist())
    assert all(text[n - 1].strip() == "{" for n in lines)
    assert len(lines) == 2


def test_api_page_wrapper():
    page = {"data": [json.loads(line) for line in FLAT.read_text().splitlines()[1:4]],
            "meta": {"page": 1, "totalItems": 3}}
    tables, rejects, _ = parse_bytes(json.dumps(page, indent=1).encode())
    assert rejects == []
    assert tables["requests"].num_rows == 2


def test_large_array_streams_across_buffer_boundaries():
    """A JSON array much larger than the 1 MiB read buffer, with big elements straddling it."""
    observations = []
    for i in range(1500):
        observations.append({
            "id": f"obs-{i}", "traceId": f"tr-{i // 10}", "type": "GENERATION",
            "startTime": "2026-03-04T00:00:00Z", "endTime": "2026-03-04T00:00:01Z",
            "model": "gpt-4o-mini", "input": "x" * (3000 if i % 7 else 400_000),
            "usageDetails": {"input": i, "input_cached_tokens": 1, "output": 2}})
    data = ("[\n" + ",\n".join(json.dumps(o) for o in observations) + "\n]\n").encode()
    assert len(data) > 5 * (1 << 20)
    tables, rejects, chunks = parse_bytes(data, chunk_rows=400)
    assert rejects == []
    assert len(chunks) > 3
    req = tables["requests"]
    assert req.num_rows == 1500
    assert total(req, "input_tokens") == sum(range(1500)) + 1500
    assert req["_line"].to_pylist() == list(range(2, 1502))


def test_truncated_array_rejects_the_rest_and_keeps_what_came_before():
    data = TRACES.read_bytes()[:-200]
    tables, rejects, _ = parse_bytes(data)
    assert tables["requests"].num_rows == 1
    assert len(rejects) == 1 and "not valid JSON" in rejects[0].reason


def _head(path: Path) -> bytes:
    return path.read_bytes()[:65536]


def test_detection():
    for path in (FLAT, TRACES):
        assert langfuse.FORMAT.detect(_head(path), path.name)
        assert not otlp.FORMAT.detect(_head(path), path.name)
        assert not openinference.FORMAT.detect(_head(path), path.name)
        first = next(f for f in registry.registered() if f.detect(_head(path), path.name))
        assert first.name == "langfuse"
    scores_only = b'[{"id": "s", "traceId": "t", "name": "x", "value": 1, "dataType": "NUMERIC"}]'
    assert langfuse.FORMAT.detect(scores_only, "scores.json")
    assert not langfuse.FORMAT.detect(CANONICAL_LINE, "requests.jsonl")
    canonical_with_times = (b'{"request_id": "r1", "ts": "2026-01-01T00:00:00Z", '
                            b'"startTime": "x", "model": "gpt-4o"}\n')
    assert not langfuse.FORMAT.detect(canonical_with_times, "requests.jsonl")
    # a CSV is Langfuse's when its header is an export's (test_langfuse_shapes.py): this one
    # has no "type", so it is no observations export
    assert not langfuse.FORMAT.detect(b"id,startTime,usageDetails\n", "export.csv")


def test_ingest_pipeline_end_to_end(tmp_path):
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Engine, Lake

    lake = Lake(tmp_path / "store")
    report = ingest_paths(lake, [str(FLAT), str(TRACES)])
    assert report.ok, [f.error for f in report.files]
    assert [f.format for f in report.files] == ["langfuse", "langfuse"]
    row = Engine(lake).query(
        "SELECT count(*), count(*) FILTER (status = 'error'), sum(input_tokens), "
        "sum(cached_input_tokens), sum(cache_write_tokens), sum(output_tokens), "
        "sum(reasoning_tokens), round(sum(logged_cost_usd), 6) FROM requests").row(0)
    assert row == (6, 1, 2720 + 1000 + 130, 2024 + 500 + 90, 200 + 30, 496 + 100 + 20, 310,
                   round(0.0023 + 0.004 + 0.0004, 6))
    engine = Engine(lake)
    assert engine.scalar("SELECT count(*) FROM evals") == 4
    assert engine.scalar("SELECT count(*) FROM spans") == 10
    assert engine.scalar("SELECT list(line ORDER BY line) FROM quarantine") == [12, 13]


def test_sdk_api_errors_are_typed_by_their_http_status_in_exports_and_spans():
    # langfuse-python's OpenAI integration writes str(openai.RateLimitError): "Error code: 429 -
    # {...}". The export and the SDK's span of one call give the same error type.
    def observation(oid, code, text):
        return {"id": oid, "traceId": "tr-1", "type": "GENERATION", "name": "OpenAI-generation",
                "startTime": "2026-01-01T10:00:00.000Z", "endTime": "2026-01-01T10:00:00.400Z",
                "model": "gpt-4o", "level": "ERROR",
                "statusMessage": f"Error code: {code} - {{'error': {{'message': '{text}'}}}}",
                "usageDetails": {}, "costDetails": {}}
    data = "\n".join(json.dumps(o) for o in [observation("o429", 429, "Rate limit reached"),
                                             observation("o500", 500, "The server had an error")])
    tables, rejects, _ = parse_bytes(data.encode())
    assert rejects == []
    assert {r["request_id"]: (r["status"], r["error_type"])
            for r in tables["requests"].to_pylist()} == {"o429": ("error", "429"),
                                                         "o500": ("error", "500")}
    # an exception's class still wins over a status code in its text
    assert langfuse.error_type_of("openai.RateLimitError: Error code: 429 - {}") == \
        "RateLimitError"
    assert langfuse.error_type_of("rate limited, try again") is None


def test_an_embedding_has_no_output_text_even_when_its_vectors_were_logged():
    # OpenInference's embedding spans sent to Langfuse carry the response, vectors and all, as
    # the observation's output: 32 KB of JSON a text embedded were stored as a response
    vectors = {"data": [{"embedding": [0.01] * 1536, "index": 0, "object": "embedding"}],
               "model": "text-embedding-3-small", "object": "list"}
    observation = {"id": "e1", "traceId": "t1", "type": "EMBEDDING", "name": "CreateEmbeddings",
                   "startTime": "2026-01-01T10:00:00.000Z", "endTime": "2026-01-01T10:00:00.050Z",
                   "model": "text-embedding-3-small", "input": ["where is my order"],
                   "output": vectors, "usageDetails": {"input": 4, "total": 4}}
    tables, rejects, _ = parse_bytes(json.dumps(observation).encode())
    assert rejects == []
    (row,) = tables["requests"].to_pylist()
    assert (row["operation"], row["input_tokens"], row["output_text"]) == ("embeddings", 4, None)
    assert "where is my order" in row["input_text"]


def test_langchain_anthropic_cache_write_tiers_are_a_breakdown_not_more_tokens():
    # langfuse-python's LangChain handler writes an input_<key> for each of
    # langchain-anthropic's input_token_details, the TTL split of the cache writes
    # (ephemeral_1h / _5m) beside their sum, and subtracts each from input (clamped at 0).
    # Anthropic's usage was: input 2, cache_read 7276, cache_creation 12145 (all 1 h), output 20.
    details = {"input": 0, "input_cache_read": 7276, "input_cache_creation": 12145,
               "input_ephemeral_1h_input_tokens": 12145, "input_ephemeral_5m_input_tokens": 0,
               "output": 20, "total": 19443}
    # the writes once: 0 + 7276 + 12145 (the 2 raw input tokens were lost to the clamp), all of
    # them to the one-hour cache
    assert langfuse.usage_details(details)[0] == (19421, 7276, 12145, 20, 0, 12145)
    # a tier alone, without its sum beside it, is still the writes
    (inp, _, write, _, _, write_1h), _, _ = langfuse.usage_details(
        {"input": 2, "input_ephemeral_5m_input_tokens": 100, "output": 1})
    assert (inp, write, write_1h) == (102, 100, 0)


def test_scores_exported_alone_take_the_version_and_model_of_the_requests_they_judge(
        lake, write):
    # Langfuse exports scores apart from their traces (the UI's scores export, the blob
    # storage export's scores/): without the trace's release in the file every such score had
    # no version, so Quality's "by version" pooled all of them under (none) (review). A score
    # takes the version of the observation it judges, else of its trace's requests (when they
    # agree on one), and the model of the observation it judges; one it already has stays.
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Engine

    def gen(obs_id, trace_id, model, t):
        return {"id": obs_id, "traceId": trace_id, "type": "GENERATION", "name": "chat",
                "startTime": f"2026-03-0{t}T10:00:00Z", "endTime": f"2026-03-0{t}T10:00:01Z",
                "model": model, "usageDetails": {"input": 10, "output": 2}}

    def score(score_id, day, **links):
        return {"id": score_id, "name": "helpful", "value": 1.0, "dataType": "NUMERIC",
                "source": "ANNOTATION", "timestamp": f"2026-03-{day:02d}T12:00:00Z", **links}

    traces = [{"id": "t1", "timestamp": "2026-03-01T10:00:00Z", "release": "v1"},
              {"id": "t2", "timestamp": "2026-03-02T10:00:00Z", "release": "v2"}]
    observations = [gen("o1", "t1", "gpt-4o", 1), gen("o2", "t2", "gpt-4o-mini", 2),
                    gen("o3", "t2", "gpt-4o", 2), gen("o4", "t3", "gpt-4o", 2)]
    # with its trace in the file a score had its version already, but no model
    same_file = [score("s0", 2, traceId="t2", observationId="o3")]
    report = ingest_paths(lake, [str(write("observations.jsonl",
                                           traces + observations + same_file))])
    assert report.files[0].stored["requests"] == 4

    scores = [score("s1", 3, traceId="t1", observationId="o1"),  # observation-level
              score("s2", 9, traceId="t2"),  # trace-level, a week later
              score("s3", 3, traceId="t3", observationId="o4"),  # a trace without release
              score("s4", 3, traceId="nowhere"),  # judges nothing stored
              score("s5", 3, traceId="t1", datasetRunId="run-7")]  # a run is its version
    report = ingest_paths(lake, [str(write("scores.jsonl", scores))])
    assert report.files[0].stored == {"evals": 5}
    assert report.files[0].notes == [f"2 {langfuse.VERSIONED_NOTE}"]
    engine = Engine(lake)
    try:
        got = {r["case_id"] if r["case_id"] != "t1" else "run": (r["version"], r["model"])
               for r in engine.query("SELECT case_id, version, model FROM evals")
               .iter_rows(named=True)}
    finally:
        engine.close()
    assert got == {"o3": ("v2", "gpt-4o"), "o1": ("v1", "gpt-4o"), "t2": ("v2", None),
                   "o4": (None, "gpt-4o"), "nowhere": (None, None), "run": ("run-7", None)}


def test_a_generation_around_another_of_one_call_counts_once_as_in_otlp(lake, write):
    # LangChain's CallbackHandler and the OpenAI wrapper (or openai-v2 exported to Langfuse)
    # record one call as a GENERATION around a GENERATION: the Langfuse SDK's spans in OTLP
    # counted it once (lib/ingest/nesting.py), the same trace exported by Langfuse twice, with
    # twice the tokens and cost (review)
    from lib.ingest.nesting import NOTE
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Engine

    def gen(obs_id, parent, model, start, end, name):
        return {"id": obs_id, "traceId": "tn", "parentObservationId": parent,
                "type": "GENERATION", "name": name, "model": model,
                "startTime": f"2026-01-06T10:00:{start}Z", "endTime": f"2026-01-06T10:00:{end}Z",
                "usageDetails": {"input": 100, "output": 20}}

    records = [gen("outer", None, "gpt-4o", "00.000", "02.000", "ChatOpenAI"),
               {"id": "step", "traceId": "tn", "parentObservationId": "outer", "type": "SPAN",
                "name": "step", "startTime": "2026-01-06T10:00:00.050Z"},
               gen("inner", "step", "gpt-4o-2024-08-06", "00.100", "01.900",
                   "OpenAI-generation"),
               {"id": "s1", "traceId": "tn", "observationId": "outer", "name": "helpful",
                "value": 1.0, "dataType": "NUMERIC", "source": "ANNOTATION",
                "timestamp": "2026-01-06T11:00:00Z"}]
    report = ingest_paths(lake, [str(write("nested.jsonl", records))])
    assert report.files[0].stored == {"requests": 1, "spans": 3, "evals": 1}
    assert report.files[0].not_read[NOTE] == 1
    engine = Engine(lake)
    try:
        assert engine.query("SELECT request_id, input_tokens, output_tokens FROM requests"
                            ).rows() == [("inner", 100, 20)]
        assert engine.query("SELECT request_id FROM evals").rows() == [("inner",)]
    finally:
        engine.close()


def test_the_same_nested_generations_read_again_as_an_export_add_nothing(lake, write,
                                                                         tmp_path):
    # The Langfuse SDK's spans in OTLP, then Langfuse's export of the same observations (their
    # ids are the span ids): the envelope, not stored as a request the first time, was stored
    # by the export as a new request, doubling the call's tokens (review)
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Engine

    trace, outer, inner = "5af7651916cd43dd8448eb211c80319c", "50f067aa0ba902b7", \
        "50f067aa0ba902b8"
    t0 = 1767693600 * 10**9  # 2026-01-06T10:00:00Z

    def span(span_id, parent, name, model, start_ms, end_ms):
        attrs = {"langfuse.observation.type": "generation",
                 "langfuse.observation.model.name": model,
                 "langfuse.observation.usage_details": '{"input": 100, "output": 20}'}
        return {"traceId": trace, "spanId": span_id, "parentSpanId": parent, "name": name,
                "startTimeUnixNano": str(t0 + start_ms * 10**6),
                "endTimeUnixNano": str(t0 + end_ms * 10**6),
                "attributes": [{"key": k, "value": {"stringValue": v}}
                               for k, v in attrs.items()]}

    otlp_file = tmp_path / "spans.jsonl"
    otlp_file.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        span(outer, "", "ChatOpenAI", "gpt-4o", 0, 2000),
        span(inner, outer, "OpenAI-generation", "gpt-4o-2024-08-06", 100, 1900)]}]}]}) + "\n")

    def gen(obs_id, parent, name, model, start, end):
        return {"id": obs_id, "traceId": trace, "parentObservationId": parent,
                "type": "GENERATION", "name": name, "model": model,
                "startTime": f"2026-01-06T10:00:{start}Z", "endTime": f"2026-01-06T10:00:{end}Z",
                "usageDetails": {"input": 100, "output": 20}}

    export = write("export.jsonl", [
        gen(outer, None, "ChatOpenAI", "gpt-4o", "00.000", "02.000"),
        gen(inner, outer, "OpenAI-generation", "gpt-4o-2024-08-06", "00.100", "01.900")])
    first = ingest_paths(lake, [str(otlp_file)])
    assert first.files[0].stored["requests"] == 1
    again = ingest_paths(lake, [str(export)])
    assert again.files[0].stored.get("requests", 0) == 0
    engine = Engine(lake)
    try:
        assert engine.query("SELECT count(*), sum(input_tokens) FROM requests").row(0) == (1, 100)
    finally:
        engine.close()
