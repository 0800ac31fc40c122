"""The files a Langfuse user has, shaped as Langfuse's own source writes them.

Every fixture below names the file of langfuse/langfuse (server, commit 62751446, Aug 2026),
langfuse/langfuse-python (c3c6a09e) or langfuse/langfuse-js (0d5a8d0e) it is built from. Expected
values are the provider's own counts, worked out by hand next to each test, never what the
importer happened to produce.
"""

from __future__ import annotations

import io
import json

import pytest

from lib.ingest import formats as registry
from lib.ingest.formats import canonical, langfuse
from lib.ingest.pipeline import ingest_paths
from lib.store import Engine
from tests.ingest.chunks import collect


class Date(str):
    """A JS Date in an export row: JSON.stringify writes it as its ISO text; the CSV export
    (stringifyForCsv -> stringify) writes that JSON string, quotes included."""


def _js(value, key: str | None = None) -> str:
    """JSON.stringify as packages/shared/src/utils/stringify.ts calls it: compact, except the
    CSV export's ``comments`` field (indent 2)."""
    if key == "comments":
        return json.dumps(value, indent=2, ensure_ascii=False)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def export_json(rows: list[dict]) -> bytes:
    """transformStreamToJson.ts: "[" + rows joined by "," + "]", all on one line."""
    return ("[" + ",".join(_js(r) for r in rows) + "]").encode() if rows else b"[]"


def export_jsonl(rows: list[dict]) -> bytes:
    """transformStreamToJsonl.ts: one stringify(row) + "\\n" per row."""
    return "".join(_js(r) + "\n" for r in rows).encode()


def export_csv(rows: list[dict]) -> bytes:
    """transformStreamToCsv.ts: the first row's keys as the header, every field quoted ("" for
    a quote), null as "", strings as they are, anything else (a Date too) as JSON text."""
    def field(value, key):
        if value is None:
            text = ""
        elif isinstance(value, str) and not isinstance(value, Date):
            text = value
        else:
            text = _js(str(value) if isinstance(value, Date) else value, key)
        return '"' + text.replace('"', '""') + '"'

    header = list(rows[0])
    lines = [",".join(field(k, None) for k in header)]
    lines += [",".join(field(row.get(k), k) for k in header) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def parse(data: bytes, filename: str = "export.json"):
    return collect(list(langfuse.parse(io.BytesIO(data), filename)))


def rows_by_id(tables, table: str, key: str) -> dict:
    return {r[key]: r for r in tables[table].to_pylist()} if tables[table] is not None else {}


# -- usageDetails as Langfuse stores them ---------------------------------------------------------

def openai_usage_details(prompt: int, cached: int, completion: int, reasoning: int) -> dict:
    """packages/shared/src/server/ingestion/types.ts OpenAICompletionUsageSchema: what the
    server stores for langfuse-python's OpenAI integration (langfuse/openai.py _parse_usage sends
    the raw CompletionUsage): every *_tokens_details key split out of input / output."""
    details_in = {"cached_tokens": cached, "audio_tokens": 0}
    details_out = {"reasoning_tokens": reasoning, "audio_tokens": 0,
                   "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    result = {"input": prompt, "output": completion, "total": prompt + completion}
    for key, value in details_in.items():
        result[f"input_{key}"] = value
        result["input"] = max(result["input"] - value, 0)
    for key, value in details_out.items():
        result[f"output_{key}"] = value
        result["output"] = max(result["output"] - value, 0)
    return result


# OpenAI's own usage of the one generation most fixtures carry
PROMPT, CACHED, COMPLETION, REASONING = 1200, 1024, 406, 310
USAGE = openai_usage_details(PROMPT, CACHED, COMPLETION, REASONING)
COST = {"input": 0.0001, "input_cached_tokens": 0.00005, "output": 0.0002, "total": 0.00035}


def observation_export_row(**fields) -> dict:
    """One row of the UI's observations batch export, legacy (observations table) path:
    worker/src/features/database-read-stream/observation-stream.ts getObservationStream ->
    convertObservation (packages/shared/src/server/repositories/observations_converters.ts,
    the complete V1 shape, keys in its order) + traceName / traceTags / traceTimestamp / userId,
    tool counts, enrichObservationWithModelData, comments, then one column per score name
    (getChunkWithFlattenedScores). latency / timeToFirstToken are seconds; inputUsage is the sum
    of the usageDetails keys holding "input" (reduceUsageOrCostDetails)."""
    row = {
        "id": "gen-1", "traceId": "trace-1", "startTime": Date("2026-03-02T10:00:00.100Z"),
        "endTime": Date("2026-03-02T10:00:01.600Z"), "projectId": "proj-1",
        "parentObservationId": "span-1", "type": "GENERATION", "environment": "production",
        "name": "answer", "level": "DEFAULT", "statusMessage": None, "version": None,
        "createdAt": Date("2026-03-02T10:00:02.000Z"),
        "updatedAt": Date("2026-03-02T10:00:02.500Z"),
        "input": [{"role": "user", "content": "Where is my order?"}],
        "output": {"role": "assistant", "content": "It ships today."},
        "metadata": {"feature": "chat", "customer_id": "acme"},
        "model": "gpt-4o-mini", "internalModelId": "clm-gpt-4o-mini",
        "modelParameters": {"temperature": 0.2},
        "completionStartTime": Date("2026-03-02T10:00:00.500Z"),
        "promptId": "prompt-7", "promptName": "support", "promptVersion": 3,
        "latency": 1.5, "timeToFirstToken": 0.4,
        "providedUsageDetails": dict(USAGE), "usageDetails": dict(USAGE), "costDetails": COST,
        "providedCostDetails": {}, "inputCost": 0.00015, "outputCost": 0.0002,
        "totalCost": 0.00035, "inputUsage": PROMPT, "outputUsage": COMPLETION,
        "totalUsage": PROMPT + COMPLETION, "usagePricingTierId": None,
        "usagePricingTierName": None, "toolDefinitions": None, "toolCalls": None,
        "toolCallNames": None, "traceName": "support-chat", "traceTags": ["beta"],
        "traceTimestamp": Date("2026-03-02T09:59:59.000Z"), "userId": "user-9",
        "toolDefinitionsCount": None, "toolCallsCount": None, "modelId": "clm-gpt-4o-mini",
        "inputPrice": 1.5e-07, "outputPrice": 6e-07, "totalPrice": None, "comments": [],
        "helpfulness": [0.9],
    }
    row.update(fields)
    return row


def span_export_row() -> dict:
    return observation_export_row(
        id="span-1", type="SPAN", name="handle-message", parentObservationId=None,
        startTime=Date("2026-03-02T10:00:00.000Z"), endTime=Date("2026-03-02T10:00:03.000Z"),
        completionStartTime=None, model=None, internalModelId=None, modelParameters=None,
        promptId=None, promptName=None, promptVersion=None, latency=3.0, timeToFirstToken=None,
        providedUsageDetails={}, usageDetails={}, costDetails={}, inputCost=None,
        outputCost=None, totalCost=None, inputUsage=0, outputUsage=0, totalUsage=0,
        modelId=None, inputPrice=None, outputPrice=None, helpfulness=None)


def failed_export_row() -> dict:
    """A generation that failed: Langfuse stores no usage (getUsageUnits tokenizes only when
    level is not ERROR), so usageDetails are {} and the derived counts 0."""
    return observation_export_row(
        id="gen-2", name="retry", level="ERROR",
        statusMessage="RateLimitError: Error code: 429", output=None,
        endTime=Date("2026-03-02T10:00:01.850Z"), startTime=Date("2026-03-02T10:00:01.700Z"),
        completionStartTime=None, latency=0.15, timeToFirstToken=None,
        providedUsageDetails={}, usageDetails={}, costDetails={}, inputCost=None,
        outputCost=None, totalCost=None, inputUsage=0, outputUsage=0, totalUsage=0,
        helpfulness=None)


def csv_rows(rows: list[dict]) -> list[dict]:
    """The same rows as the CSV export has them: convertObservation with shouldJsonParse false
    (observation-stream.ts: ``shouldJsonParse: fileFormat !== CSV``) leaves input and output the
    stored text, i.e. JSON text."""
    out = []
    for row in rows:
        row = dict(row)
        for key in ("input", "output"):
            if row.get(key) is not None and not isinstance(row[key], str):
                row[key] = json.dumps(row[key], separators=(",", ":"))
        out.append(row)
    return out


EXPORT_ROWS = [span_export_row(), observation_export_row(), failed_export_row()]


# -- the UI's batch export ------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["json", "jsonl", "csv"])
def test_observations_batch_export_in_each_file_format(layout):
    data = {"json": lambda: export_json(EXPORT_ROWS),
            "jsonl": lambda: export_jsonl(EXPORT_ROWS),
            "csv": lambda: export_csv(csv_rows(EXPORT_ROWS))}[layout]()
    tables, rejects, _ = parse(data, f"1740000000000-lf-observations-export-proj-1.{layout}")
    assert rejects == []
    requests = rows_by_id(tables, "requests", "request_id")
    assert sorted(requests) == ["gen-1", "gen-2"]
    g = requests["gen-1"]
    # OpenAI's own counts: prompt 1200 of which 1024 cached, completion 406 of which 310 reasoning
    assert (g["input_tokens"], g["cached_input_tokens"], g["cache_write_tokens"]) == (1200, 1024, 0)
    assert (g["output_tokens"], g["reasoning_tokens"]) == (406, 310)
    assert g["logged_cost_usd"] == pytest.approx(0.00035)
    # 10:00:00.100 -> 10:00:01.600, first token at 10:00:00.500
    assert (g["latency_ms"], g["ttft_ms"]) == (1500.0, 400.0)
    assert str(g["ts"]) == "2026-03-02 10:00:00.100000+00:00"
    assert (g["model"], g["prompt_name"], g["prompt_version"]) == ("gpt-4o-mini", "support", "3")
    assert (g["user_id"], g["customer_id"], g["feature"], g["environment"]) == \
        ("user-9", "acme", "chat", "production")
    assert (g["trace_id"], g["parent_id"], g["status"]) == ("trace-1", "span-1", "ok")
    assert json.loads(g["input_text"]) == [{"role": "user", "content": "Where is my order?"}]
    attributes = json.loads(g["attributes"])
    assert (attributes["trace_name"], attributes["tags"]) == ("support-chat", ["beta"])
    assert attributes["helpfulness"] == [0.9]  # the export's column for the score "helpfulness"
    assert attributes["modelParameters"] == {"temperature": 0.2}
    for derived in ("inputUsage", "outputUsage", "totalUsage", "traceName", "traceTags",
                    "comments", "providedCostDetails", "usage_details_inclusive"):
        assert derived not in attributes
    failed = requests["gen-2"]
    assert (failed["status"], failed["error_type"]) == ("error", "RateLimitError")
    assert (failed["latency_ms"], failed["input_tokens"], failed["output_tokens"]) == \
        (150.0, None, None)
    assert failed["logged_cost_usd"] is None
    spans = rows_by_id(tables, "spans", "span_id")
    assert (spans["span-1"]["kind"], spans["span-1"]["duration_ms"]) == ("other", 3000.0)
    assert sorted(spans) == ["gen-1", "gen-2", "span-1"]


def test_one_line_json_export_quarantines_a_bad_record_and_keeps_the_others():
    bad = observation_export_row(id="gen-bad", usageDetails={**USAGE, "input": "abc"})
    tables, rejects, _ = parse(export_json([observation_export_row(), bad, failed_export_row()]))
    assert [(r.line, r.reason) for r in rejects] == [
        (1, "usageDetails.input is not an integer: abc")]  # the whole export is line 1
    assert sorted(rows_by_id(tables, "requests", "request_id")) == ["gen-1", "gen-2"]


def test_csv_export_fields_and_line_numbers():
    # a statusMessage over two lines and a comment (pretty-printed JSON, so several lines):
    # a record starts on the line after the end of the one before
    commented = observation_export_row(
        id="gen-3", level="ERROR", statusMessage='Timeout: "upstream"\nretry later',
        comments=[{"id": "c1", "content": "look at this"}])
    data = export_csv(csv_rows([observation_export_row(), commented, failed_export_row()]))
    tables, rejects, _ = parse(data, "export.csv")
    assert rejects == []
    requests = rows_by_id(tables, "requests", "request_id")
    text = data.decode().split("\n")
    assert text[requests["gen-1"]["_line"] - 1].startswith('"gen-1"')
    assert text[requests["gen-3"]["_line"] - 1].startswith('"gen-3"')
    assert text[requests["gen-2"]["_line"] - 1].startswith('"gen-2"')
    assert requests["gen-2"]["_line"] > requests["gen-3"]["_line"] + 2
    assert requests["gen-3"]["error_message"] == 'Timeout: "upstream"\nretry later'
    assert json.loads(requests["gen-3"]["attributes"])["comments"] == [
        {"id": "c1", "content": "look at this"}]
    assert requests["gen-3"]["input_tokens"] == PROMPT


def test_csv_export_bad_records_are_quarantined_with_their_line():
    header_and_good = export_csv(csv_rows([observation_export_row()]))
    bad = export_csv(csv_rows([observation_export_row(id="gen-bad",
                                                      usageDetails={**USAGE, "output": -3})]))
    bad_line = bad.split(b"\n", 1)[1]
    short = b'"gen-short","trace-1"\n'
    failed_line = export_csv(csv_rows([failed_export_row()])).split(b"\n", 1)[1]
    data = header_and_good + bad_line + short + failed_line + b'"gen-open,trace-1'
    tables, rejects, _ = parse(data, "export.csv")
    assert [(r.line, r.reason) for r in rejects] == [
        (3, "usageDetails.output is negative: -3"),
        (4, f"CSV record has 2 field(s) where the header has {len(observation_export_row())}"),
        (6, "not valid CSV: unterminated quoted field")]
    assert rejects[0].raw == bad_line.decode()
    assert sorted(rows_by_id(tables, "requests", "request_id")) == ["gen-1", "gen-2"]


def events_export_row(**fields) -> dict:
    """One row of the observations export of a Langfuse v4 project (useEventsTable):
    worker/src/features/database-read-stream/event-stream.ts processEventRow, keys in its order.
    Values come from ClickHouse as they are (event-query-builder.ts EVENTS_FIELDS): times are
    DateTime64(6) text in UTC, latency / time_to_first_token date_diff('millisecond', ...),
    model_parameters the stored text, usage_details Map(String, UInt64), which ClickHouse before
    25.8 writes as quoted numbers (output_format_json_quote_64bit_integers)."""
    row = {
        "id": "ev-1", "traceId": "trace-9", "traceName": "qa", "type": "GENERATION",
        "name": "answer", "startTime": "2026-03-04 08:00:00.250000",
        "endTime": "2026-03-04 08:00:02.250000",
        "completionStartTime": "2026-03-04 08:00:00.750000", "environment": "default",
        "version": None, "userId": "u-1", "sessionId": "sess-1", "level": "DEFAULT",
        "statusMessage": None, "promptName": None, "promptId": None, "promptVersion": None,
        "modelId": "clm-claude", "providedModelName": "claude-sonnet-4-5",
        "modelParameters": '{"max_tokens":"1024"}',
        # an Anthropic call through the OTel GenAI mapping (OtelIngestionProcessor
        # extractGenericGenAiUsageDetails): input_tokens 20 + cache read 1000 + cache write 200
        # (inclusive, as OTel counts) -> input 20, input_cached_tokens, input_cache_creation
        "usageDetails": {"input": "20", "output": "50", "total": "1270",
                         "input_cached_tokens": "1000", "input_cache_creation": "200"},
        "costDetails": {"input": 0.00006, "input_cached_tokens": 0.0003,
                        "input_cache_creation": 0.00075, "output": 0.00075, "total": 0.00186},
        "totalCost": 0.00186, "input": '[{"role":"user","content":"hi"}]', "output": "hello",
        "metadata": {"feature": "qa"}, "latencyMs": "2000", "timeToFirstTokenMs": "500",
        "tags": ["v4"], "release": "4.1.0", "parentObservationId": None, "comments": [],
    }
    row.update(fields)
    return row


@pytest.mark.parametrize("layout", ["jsonl", "csv"])
def test_v4_events_table_export(layout):
    rows = [events_export_row(),
            # no endTime: the export's latencyMs (milliseconds) is the latency
            events_export_row(id="ev-2", endTime=None, completionStartTime=None,
                              latencyMs="1250", timeToFirstTokenMs="300")]
    data = export_jsonl(rows) if layout == "jsonl" else export_csv(rows)
    tables, rejects, _ = parse(data, f"export.{layout}")
    assert rejects == []
    requests = rows_by_id(tables, "requests", "request_id")
    ev = requests["ev-1"]
    assert ev["model"] == "claude-sonnet-4-5"  # providedModelName
    # input 20 + cache read 1000 + cache write 200; output 50
    assert (ev["input_tokens"], ev["cached_input_tokens"], ev["cache_write_tokens"],
            ev["output_tokens"]) == (1220, 1000, 200, 50)
    assert str(ev["ts"]) == "2026-03-04 08:00:00.250000+00:00"  # ClickHouse text is UTC
    assert (ev["latency_ms"], ev["ttft_ms"]) == (2000.0, 500.0)
    assert (ev["user_id"], ev["session_id"], ev["app_version"], ev["feature"]) == \
        ("u-1", "sess-1", "4.1.0", "qa")
    assert ev["logged_cost_usd"] == pytest.approx(0.00186)
    attributes = json.loads(ev["attributes"])
    assert (attributes["trace_name"], attributes["tags"]) == ("qa", ["v4"])
    assert "providedModelName" not in attributes and "latencyMs" not in attributes
    assert (requests["ev-2"]["latency_ms"], requests["ev-2"]["ttft_ms"]) == (1250.0, 300.0)


# -- usageDetails from each integration, on both sides of the cache trap -------------------------

def generation(usage_details: dict, **fields) -> dict:
    return {"id": "g", "traceId": "t", "type": "GENERATION",
            "startTime": "2026-03-02T10:00:00Z", "model": "m", "usageDetails": usage_details,
            **fields}


def tokens(usage_details: dict) -> tuple:
    tables, rejects, _ = parse(export_jsonl([generation(usage_details)]))
    assert rejects == []
    row = tables["requests"].to_pylist()[0]
    return (row["input_tokens"], row["cached_input_tokens"], row["cache_write_tokens"],
            row["output_tokens"], row["reasoning_tokens"])


def inclusive_note(usage_details: dict) -> list | None:
    tables, _, _ = parse(export_jsonl([generation(usage_details)]))
    attributes = tables["requests"]["attributes"][0].as_py()
    return json.loads(attributes).get("usage_details_inclusive") if attributes else None


def test_openai_through_the_server_schema_and_the_js_wrapper_before_its_fix():
    # after: @langfuse/openai parseOpenAI.ts parseUsageDetails and the server's
    # OpenAICompletionUsageSchema split the details out: input 176 + cached 1024
    assert tokens(USAGE) == (PROMPT, CACHED, 0, COMPLETION, REASONING)
    assert inclusive_note(USAGE) is None
    # before (langfuse-js 84104d61^, i.e. @langfuse/openai < 4.4.6; langfuse/langfuse#10592):
    # input: prompt_tokens and output: completion_tokens as they are, the details beside them,
    # total: total_tokens. The details are inside input / output: not counted twice.
    before = {"input": PROMPT, "output": COMPLETION, "total": PROMPT + COMPLETION,
              "input_cached_tokens": CACHED, "input_audio_tokens": 0,
              "output_reasoning_tokens": REASONING, "output_audio_tokens": 0,
              "output_accepted_prediction_tokens": 0, "output_rejected_prediction_tokens": 0}
    assert tokens(before) == (PROMPT, CACHED, 0, COMPLETION, REASONING)
    assert inclusive_note(before) == ["input", "output"]
    # the same, cached tokens only (no reasoning model): input alone held its detail
    before = {"input": 900, "output": 40, "total": 940, "input_cached_tokens": 512}
    assert tokens(before) == (900, 512, 0, 40, 0)
    assert inclusive_note(before) == ["input"]


def test_a_total_that_fits_no_single_reading_leaves_the_buckets_additive():
    # detail keys larger than the base count cannot be inside it (a cache write beside a
    # total that leaves it out, as Bedrock's can): Langfuse's rule, every key its own bucket
    assert tokens({"input": 10, "input_cache_write": 1000, "output": 50, "total": 60}) == \
        (1010, 0, 1000, 50, 0)
    # input and output details of the same size: either side could hold them; additive
    assert tokens({"input": 100, "input_cached_tokens": 30, "output": 80,
                   "output_reasoning_tokens": 30, "total": 210}) == (130, 30, 0, 110, 30)


def test_langchain_openai_priority_and_flex_service_tiers():
    # langchain-openai _create_usage_metadata, service_tier "priority": prompt 1000 (800 cached),
    # completion 50 (20 reasoning) -> input_token_details {priority_cache_read: 800,
    # priority: 200}, output_token_details {priority_reasoning: 20, priority: 30};
    # langfuse-python langchain/CallbackHandler.py _parse_usage_model prefixes them and skips
    # priority keys when subtracting, so input stays 1000 and output 50
    priority = {"input": 1000, "output": 50, "total": 1050, "input_priority_cache_read": 800,
                "input_priority": 200, "output_priority_reasoning": 20, "output_priority": 30}
    assert tokens(priority) == (1000, 800, 0, 50, 20)
    assert inclusive_note(priority) is None  # a breakdown, not the double count of #10592
    # "flex" keys are subtracted like any other: input 0 + flex_cache_read 800 + flex 200
    flex = {"input": 0, "output": 0, "total": 1050, "input_flex_cache_read": 800,
            "input_flex": 200, "output_flex_reasoning": 20, "output_flex": 30}
    assert tokens(flex) == (1000, 800, 0, 50, 20)


def test_langchain_anthropic_cache_writes_by_tier():
    # Anthropic: input_tokens 9454 (outside the cache), cache read 0, cache write 2048 (5m tier).
    # 1) the raw usage (CallbackHandler _parse_usage_model, the cache_creation branch of
    #    langfuse-python ea97c6d1): cache_creation_input_tokens beside its breakdown; Langfuse
    #    sums every key into its total
    raw = {"input": 9454, "output": 380, "cache_read_input_tokens": 0,
           "cache_creation_input_tokens": 2048, "cache_creation_ephemeral_1h_input_tokens": 0,
           "cache_creation_ephemeral_5m_input_tokens": 2048}
    raw["total"] = sum(raw.values())
    assert tokens(raw) == (9454 + 2048, 0, 2048, 380, 0)
    # 2) LangChain's usage_metadata (langchain_anthropic _create_usage_metadata: input_tokens
    #    includes the cache, cache_creation set to 0 when the tiers are given), the
    #    input_token_details prefixed with input_ and subtracted from input
    metadata = {"input": 9454, "output": 380, "total": 11502 + 380, "input_cache_read": 0,
                "input_cache_creation": 0, "input_ephemeral_5m_input_tokens": 2048,
                "input_ephemeral_1h_input_tokens": 0}
    assert tokens(metadata) == (9454 + 2048, 0, 2048, 380, 0)


def test_vercel_ai_sdk_and_vertex_mappings():
    # OtelIngestionProcessor.extractUsageDetails, scope "ai": gen_ai.usage.input_tokens 1200,
    # ai.usage.cachedInputTokens 1024, ai.usage.reasoningTokens 310, output_tokens 406,
    # ai.usage.tokens 1606, providerMetadata.openai.acceptedPredictionTokens 5 (kept as an
    # unprefixed key, not subtracted from output: already inside it)
    ai_sdk = {"input": 176, "output": 96, "total": 1606, "input_cached_tokens": 1024,
              "output_reasoning_tokens": 310, "accepted_prediction_tokens": 5,
              "rejected_prediction_tokens": 0}
    assert tokens(ai_sdk) == (1200, 1024, 0, 406, 310)
    # Bedrock through the AI SDK: cacheReadInputTokens / cacheWriteInputTokens
    assert tokens({"input": 30, "input_cache_read": 4482, "input_cache_write": 100,
                   "output": 12}) == (4612, 4482, 100, 12, 0)
    # Vertex through LangChain (_parse_usage_model): prompt_token_count 1000 as text 800 +
    # image 200, of which 300 text cached -> input max(0, 1000-800-200-300) = 0,
    # input_modality_text 800-300, input_modality_image 200, cached_modality_text 300
    vertex = {"input": 0, "output": 200, "total": 1200, "input_modality_text": 500,
              "input_modality_image": 200, "cached_modality_text": 300}
    assert tokens(vertex) == (1000, 300, 0, 200, 0)


def test_gemini_usage_metadata_keys_as_given():
    # Langfuse stores a usage object it does not know as given, and prices Gemini's own
    # usage_metadata keys for every Gemini model (worker/src/constants/default-model-prices.json,
    # .agents/skills/add-model-price/references/provider-usage-key-matrix.md: prompt_token_count,
    # candidates_token_count, thoughts_token_count, cached_content_token_count, and camelCase).
    # Gemini's prompt_token_count already holds the cached content; candidates_token_count does
    # not hold the thoughts (total = prompt + candidates + thoughts + tool use prompt).
    # 10,000 prompt tokens (8,000 of them cached), 500 answer and 1,500 thinking tokens:
    gemini = {"prompt_token_count": 10000, "cached_content_token_count": 8000,
              "candidates_token_count": 500, "thoughts_token_count": 1500,
              "total_token_count": 12000}
    assert tokens(gemini) == (10000, 8000, 0, 2000, 1500)
    # the REST API's camelCase, tool use prompt tokens counted beside the prompt
    camel = {"promptTokenCount": 10000, "toolUsePromptTokenCount": 300,
             "candidatesTokenCount": 500, "thoughtsTokenCount": 1500, "totalTokenCount": 12300}
    assert tokens(camel) == (10300, 0, 0, 2000, 1500)
    # priced as the same call in Langfuse's own buckets is (gemini-2.5-flash on 2026-03-02:
    # 2,000 x $0.30 + 8,000 x $0.03 + 2,000 x $2.50 per million = $0.00584)
    buckets = {"input": 2000, "input_cached_tokens": 8000, "output": 500,
               "output_reasoning": 1500, "total": 12000}
    assert tokens(buckets) == tokens(gemini)


def test_a_total_above_the_buckets_is_said_not_silently_dropped():
    # Langfuse's own Vertex AI fixture (worker/src/__tests__/chatml/framework-traces/
    # vertex-ai-2025-08-01.trace.json): input 5, output 845, total 2023. The 1,173 tokens in no
    # bucket (Gemini's thinking, left out by the integration) are in no column and no cost:
    # the report says so, and the observation's attributes keep how many.
    tables, rejects, chunks = parse(export_jsonl([generation(
        {"input": 5, "output": 845, "total": 2023})]))
    assert rejects == []
    row = tables["requests"].to_pylist()[0]
    assert (row["input_tokens"], row["output_tokens"]) == (5, 845)
    assert json.loads(row["attributes"])["usage_details_unaccounted"] == 1173
    assert sum(c.not_read.get(langfuse.TOTAL_ABOVE_BUCKETS, 0) for c in chunks) == 1
    # the same under Gemini's own keys (an integration that left the thoughts out: 1,500 in no
    # count), and a total written as a decimal string, which is read as a count like the others
    for details, left in (({"prompt_token_count": 10000, "candidates_token_count": 500,
                            "total_token_count": 12000}, 1500),
                          ({"input": 5, "output": 845, "total": "2023"}, 1173)):
        tables, rejects, chunks = parse(export_jsonl([generation(details)]))
        assert rejects == []
        row = tables["requests"].to_pylist()[0]
        assert json.loads(row["attributes"])["usage_details_unaccounted"] == left, details
        assert sum(c.not_read.get(langfuse.TOTAL_ABOVE_BUCKETS, 0) for c in chunks) == 1
    # a total the buckets add up to (Langfuse's rule) or one that tells inclusive counts: none
    for details in ({"input": 600, "input_cached_tokens": 400, "output": 100, "total": 1100},
                    {"input": 1000, "input_cached_tokens": 400, "output": 100, "total": 1100}):
        tables, _, chunks = parse(export_jsonl([generation(details)]))
        assert not any(c.not_read.get(langfuse.TOTAL_ABOVE_BUCKETS) for c in chunks)


def test_mastra_s_bare_reasoning_key_is_part_of_output():
    # @mastra/langfuse formatUsageMetrics: input = inputTokens (cache reads inside), output =
    # outputTokens (reasoning inside), reasoning and cache_read_input_tokens beside them, total =
    # input + output. 1000 in (600 read), 200 out (50 reasoning):
    mastra = {"input": 1000, "cache_read_input_tokens": 600, "output": 200, "reasoning": 50,
              "total": 1200}
    assert tokens(mastra) == (1000, 600, 0, 200, 50)
    # without a total the keys are Langfuse's additive buckets, reasoning on the output side
    assert tokens({"input": 400, "output": 150, "reasoning": 50}) == (400, 0, 0, 200, 50)


# -- the public API -------------------------------------------------------------------------------

def api_v1_observation(**fields) -> dict:
    """GET /api/public/observations item: web/src/features/public-api/types/observations.ts
    APIObservation / transformDbToApiObservation (usage, promptTokens, calculated*Cost derived
    from usageDetails / costDetails; latency and timeToFirstToken in seconds)."""
    row = {
        "id": "obs-1", "projectId": "proj-1", "traceId": "trace-1", "parentObservationId": None,
        "name": "answer", "type": "GENERATION", "environment": "default",
        "startTime": "2026-03-02T10:00:00.100Z", "endTime": "2026-03-02T10:00:01.600Z",
        "version": None, "createdAt": "2026-03-02T10:00:02.000Z",
        "updatedAt": "2026-03-02T10:00:02.000Z", "input": "question", "output": "answer",
        "metadata": {}, "level": "DEFAULT", "statusMessage": None, "model": "gpt-4o-mini",
        "modelParameters": {}, "completionStartTime": None, "promptId": None,
        "promptName": None, "promptVersion": None, "usageDetails": dict(USAGE),
        "costDetails": COST, "usage": {"unit": "TOKENS", "input": PROMPT, "output": COMPLETION,
                                       "total": PROMPT + COMPLETION},
        "unit": "TOKENS", "promptTokens": PROMPT, "completionTokens": COMPLETION,
        "totalTokens": PROMPT + COMPLETION, "usagePricingTierName": None,
        "usagePricingTierId": None, "modelId": None, "inputPrice": None, "outputPrice": None,
        "totalPrice": None, "calculatedInputCost": 0.00015, "calculatedOutputCost": 0.0002,
        "calculatedTotalCost": 0.00035, "latency": 1.5, "timeToFirstToken": None,
    }
    row.update(fields)
    return row


def test_api_v1_observations_page():
    no_usage = api_v1_observation(
        id="obs-2", usageDetails={}, costDetails={}, promptTokens=0, completionTokens=0,
        totalTokens=0, usage={"unit": "TOKENS", "input": 0, "output": 0, "total": 0},
        calculatedInputCost=None, calculatedOutputCost=None, calculatedTotalCost=None)
    page = {"data": [api_v1_observation(), no_usage],
            "meta": {"page": 1, "limit": 50, "totalItems": 2, "totalPages": 1}}
    tables, rejects, _ = parse(json.dumps(page, indent=2).encode())
    assert rejects == []
    requests = rows_by_id(tables, "requests", "request_id")
    obs = requests["obs-1"]
    assert (obs["input_tokens"], obs["cached_input_tokens"], obs["output_tokens"],
            obs["reasoning_tokens"]) == (PROMPT, CACHED, COMPLETION, REASONING)
    assert obs["logged_cost_usd"] == pytest.approx(0.00035)
    # the legacy usage beside empty usageDetails is derived from them: 0 means unknown
    assert (requests["obs-2"]["input_tokens"], requests["obs-2"]["output_tokens"]) == (None, None)


def test_api_v2_observations_page_with_field_groups():
    """GET /api/public/v2/observations?fields=core,basic,model,usage,metrics: APIObservationV2
    (the fern definition names the model providedModelName; convertObservationPartial writes it
    as model), meta holds only a cursor."""
    item = {"id": "obs-3", "traceId": "trace-3", "startTime": "2026-03-02T10:00:00.000Z",
            "endTime": "2026-03-02T10:00:02.000Z", "projectId": "proj-1",
            "parentObservationId": None, "type": "GENERATION", "name": "answer",
            "level": "DEFAULT", "statusMessage": None, "version": None,
            "environment": "default", "bookmarked": False, "public": False, "userId": "u-3",
            "sessionId": "s-3", "providedModelName": "gpt-4.1", "internalModelId": None,
            "modelParameters": None, "usageDetails": {"input": 10, "output": 5, "total": 15},
            "costDetails": {"total": 0.0001}, "totalCost": 0.0001, "usagePricingTierName": None,
            "latency": 2.0, "timeToFirstToken": None, "modelId": None, "inputPrice": None,
            "outputPrice": None, "totalPrice": None}
    tables, rejects, _ = parse(json.dumps({"data": [item], "meta": {"cursor": "eyJ9"}}).encode())
    assert rejects == []
    row = tables["requests"].to_pylist()[0]
    assert (row["model"], row["input_tokens"], row["output_tokens"], row["latency_ms"]) == \
        ("gpt-4.1", 10, 5, 2000.0)
    assert (row["user_id"], row["session_id"]) == ("u-3", "s-3")


# -- scores ---------------------------------------------------------------------------------------

def score_export_row(**fields) -> dict:
    """One row of the scores batch export: worker/src/features/database-read-stream/
    getDatabaseReadStream.ts, case "scores" (keys in its order). Values as the server stores
    them (packages/shared/src/server/ingestion/validateAndInflateScore.ts inflateScoreBody):
    BOOLEAN value 1/0 with stringValue "True"/"False"; CATEGORICAL value 0 without a score
    config, else the config's value for the category; TEXT value 0 and the text in stringValue."""
    row = {"id": "sc-1", "traceId": "trace-1", "sessionId": None, "datasetRunId": None,
           "timestamp": Date("2026-03-02T10:05:00.000Z"), "source": "EVAL",
           "name": "helpfulness", "dataType": "NUMERIC", "value": 0.9, "stringValue": None,
           "comment": "clear answer", "metadata": {}, "observationId": "gen-1",
           "traceName": "support-chat", "userId": "user-9", "traceTags": ["beta"],
           "environment": "production", "authorUserName": None}
    row.update(fields)
    return row


SCORE_ROWS = [
    score_export_row(),
    score_export_row(id="sc-2", source="API", name="thumbs", dataType="BOOLEAN", value=1,
                     stringValue="True", comment=None, observationId=None),
    score_export_row(id="sc-3", source="API", name="tone", dataType="CATEGORICAL", value=0,
                     stringValue="neutral", comment=None),
    score_export_row(id="sc-4", source="ANNOTATION", name="correctness",
                     dataType="CATEGORICAL", value=1, stringValue="correct", comment=None,
                     authorUserName="Reviewer"),
    score_export_row(id="sc-5", source="ANNOTATION", name="feedback", dataType="TEXT",
                     value=0, stringValue="Too long for a chat answer", comment=None),
    score_export_row(id="sc-6", source="API", name="session_rating", dataType="NUMERIC",
                     value=4, traceId=None, observationId=None, sessionId="sess-1",
                     comment=None, traceName=None, userId=None, traceTags=None),
    score_export_row(id="sc-7", source="API", name="exact_match", dataType="NUMERIC",
                     value=1, traceId=None, observationId=None, datasetRunId="run-1",
                     comment=None, traceName=None, userId=None, traceTags=None),
]


@pytest.mark.parametrize("layout", ["json", "csv"])
def test_scores_batch_export(layout):
    data = export_json(SCORE_ROWS) if layout == "json" else export_csv(SCORE_ROWS)
    tables, rejects, _ = parse(data, f"export.{layout}")
    assert rejects == []
    evals = rows_by_id(tables, "evals", "metric")
    picked = {m: (e["source"], e["case_id"], e["request_id"], e["score"], e["passed"],
                  e["label"], e["judge"], e["explanation"]) for m, e in evals.items()}
    assert picked == {
        "helpfulness": ("online", "gen-1", "gen-1", 0.9, None, None, None, "clear answer"),
        "thumbs": ("feedback", "trace-1", None, 1.0, True, "true", None, None),
        # value 0 is Langfuse's placeholder without a score config: no score, the category
        "tone": ("feedback", "gen-1", "gen-1", None, None, "neutral", None, None),
        # an annotation has a config: its value is the config's for "correct"
        "correctness": ("feedback", "gen-1", "gen-1", 1.0, True, "correct", "human", None),
        "feedback": ("feedback", "gen-1", "gen-1", None, None, None, "human",
                     "Too long for a chat answer"),
        "session_rating": ("feedback", "sess-1", None, 4.0, None, None, None, None),
        "exact_match": ("offline", "run-1", None, 1.0, None, None, None, None),
    }
    assert evals["exact_match"]["run_id"] == "run-1"
    assert json.loads(evals["tone"]["attributes"])["value"] in (0, "0")  # kept as written
    assert str(evals["helpfulness"]["ts"]) == "2026-03-02 10:05:00+00:00"


def test_api_scores_v2_and_v3_pages():
    """v2: packages/shared/src/features/scores/interfaces/api/v2/schemas.ts (TEXT has no value);
    v3: .../api/v3/schemas.ts and repositories/scores.ts scoreDomainToV3 (one polymorphic value,
    the judged object in ``subject``)."""
    common = {"projectId": "proj-1", "environment": "default", "authorUserId": None,
              "metadata": {}, "configId": None, "queueId": None, "executionTraceId": None,
              "createdAt": "2026-03-02T10:05:00.000Z", "updatedAt": "2026-03-02T10:05:00.000Z",
              "timestamp": "2026-03-02T10:05:00.000Z"}
    v2 = {"data": [
        {**common, "id": "a", "name": "note", "source": "API", "comment": None,
         "traceId": "trace-1", "observationId": None, "sessionId": None, "datasetRunId": None,
         "dataType": "TEXT", "stringValue": "needs a source"},
        {**common, "id": "b", "name": "output", "source": "ANNOTATION", "comment": None,
         "value": 0, "traceId": "trace-1", "observationId": "gen-1", "sessionId": None,
         "datasetRunId": None, "dataType": "CORRECTION", "stringValue": "It ships tomorrow."},
    ], "meta": {"page": 1, "limit": 50, "totalItems": 2, "totalPages": 1}}
    v3 = {"data": [
        {"id": "c", "projectId": "proj-1", "name": "thumbs", "dataType": "BOOLEAN",
         "value": False, "source": "API", "timestamp": "2026-03-02T10:06:00.000Z",
         "environment": "default", "createdAt": "2026-03-02T10:06:00.000Z",
         "updatedAt": "2026-03-02T10:06:00.000Z",
         "subject": {"kind": "observation", "id": "gen-1", "traceId": "trace-1"}},
        {"id": "d", "projectId": "proj-1", "name": "tone", "dataType": "CATEGORICAL",
         "value": "friendly", "source": "EVAL", "timestamp": "2026-03-02T10:07:00.000Z",
         "environment": "default", "createdAt": "2026-03-02T10:07:00.000Z",
         "updatedAt": "2026-03-02T10:07:00.000Z",
         "subject": {"kind": "session", "id": "sess-1"}},
        {"id": "e", "projectId": "proj-1", "name": "note", "dataType": "TEXT",
         "value": "cites the FAQ", "source": "API", "timestamp": "2026-03-02T10:08:00.000Z",
         "environment": "default", "createdAt": "2026-03-02T10:08:00.000Z",
         "updatedAt": "2026-03-02T10:08:00.000Z", "subject": {"kind": "trace", "id": "trace-2"}},
    ], "meta": {"cursor": None}}
    for page in (v2, v3):
        assert langfuse.FORMAT.detect(json.dumps(page).encode(), "scores.json")
    tables, rejects, chunks = parse(json.dumps(v2).encode())
    assert rejects == []
    assert tables["evals"].select(["case_id", "score", "label", "explanation"]).to_pylist() == [
        {"case_id": "trace-1", "score": None, "label": None, "explanation": "needs a source"}]
    assert sum(c.not_read.get(langfuse.CORRECTIONS, 0) for c in chunks) == 1
    tables, rejects, _ = parse(json.dumps(v3).encode())
    assert rejects == []
    rows = tables["evals"].select(["case_id", "request_id", "score", "passed", "label",
                                   "explanation"]).to_pylist()
    assert rows == [
        {"case_id": "gen-1", "request_id": "gen-1", "score": 0.0, "passed": False,
         "label": "false", "explanation": None},
        {"case_id": "sess-1", "request_id": None, "score": None, "passed": None,
         "label": "friendly", "explanation": None},
        {"case_id": "trace-2", "request_id": None, "score": None, "passed": None,
         "label": None, "explanation": "cites the FAQ"},
    ]
    assert json.loads(tables["evals"]["attributes"][0].as_py())["trace_id"] == "trace-1"


def test_trace_by_id_with_observations_and_scores():
    """GET /api/public/traces/{traceId}: web/src/pages/api/public/traces/[traceId].ts, the
    trace with its observations (transformDbToApiObservation) and its scores."""
    trace = {"id": "trace-1", "timestamp": "2026-03-02T09:59:59.000Z", "name": "support-chat",
             "input": None, "output": None, "sessionId": "s-9", "release": "2.3.0",
             "version": None, "userId": "user-9", "metadata": {"customer_id": "acme"},
             "tags": ["beta"], "public": False, "environment": "production",
             "htmlPath": "/project/proj-1/traces/trace-1", "latency": 1.5, "totalCost": 0.00035,
             "observations": [api_v1_observation()],
             "scores": [{**score_export_row(), "timestamp": "2026-03-02T10:05:00.000Z"}]}
    tables, rejects, _ = parse(json.dumps(trace).encode())
    assert rejects == []
    row = tables["requests"].to_pylist()[0]
    assert (row["input_tokens"], row["user_id"], row["session_id"], row["customer_id"],
            row["app_version"]) == (PROMPT, "user-9", "s-9", "acme", "2.3.0")
    assert tables["evals"].to_pylist()[0]["version"] == "2.3.0"


# -- detection and the pipeline -------------------------------------------------------------------

def test_detection_of_each_export():
    for data, name in ((export_csv(csv_rows(EXPORT_ROWS)), "export.csv"),
                       (export_csv(SCORE_ROWS), "scores.csv"),
                       (export_csv([events_export_row()]), "export.csv"),
                       (export_json(EXPORT_ROWS), "export.json"),
                       (export_jsonl([events_export_row()]), "export.jsonl"),
                       (export_json(SCORE_ROWS), "scores.json")):
        head = data[:65536]
        assert langfuse.FORMAT.detect(head, name), name
        assert next(f for f in registry.registered() if f.detect(head, name)).name == "langfuse"
    canonical_csv = b"request_id,ts,model,input_tokens,output_tokens\nr1,2026-01-01,m,1,2\n"
    assert not langfuse.FORMAT.detect(canonical_csv, "requests.csv")
    assert canonical.CSV.detect(canonical_csv, "requests.csv")
    # a CSV with "id" but none of an export's columns is not Langfuse's
    assert not langfuse.FORMAT.detect(b'"id","type","startTime"\n"a","b","c"\n', "x.csv")


def test_csv_export_through_the_pipeline(lake, write):
    path = write("1740000000000-lf-observations-export-proj-1.csv",
                 export_csv(csv_rows(EXPORT_ROWS)))
    report = ingest_paths(lake, [str(path)], compact_min_files=0).files[0]
    assert report.error is None and report.format == "langfuse"
    eng = Engine(lake)
    try:
        assert eng.query("SELECT request_id, input_tokens, cached_input_tokens, output_tokens, "
                         "reasoning_tokens FROM requests WHERE request_id = 'gen-1'").rows() == [
            ("gen-1", PROMPT, CACHED, COMPLETION, REASONING)]
        assert eng.query("SELECT input_tokens, output_tokens, status FROM requests "
                         "WHERE request_id = 'gen-2'").rows() == [(None, None, "error")]
        assert eng.scalar("SELECT count(*) FROM spans") == 3
    finally:
        eng.close()
