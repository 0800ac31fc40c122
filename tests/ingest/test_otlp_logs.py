"""OTLP JSON logs with GenAI evaluation events (lib/ingest/formats/otlp_logs.py).

The evidence is log records made by the real OpenTelemetry SDK (``LoggerProvider``, API
``LogRecord`` with ``event_name``, trace and span ids), encoded by the real
opentelemetry-exporter-otlp-proto-common ``encode_logs`` and written as the Collector's file
exporter writes them, in the spec's JSON encoding and protobuf's (camelCase and snake_case); see
tests/ingest/fixtures/otlp_logs_record.py. The records of the first tests judge real
opentelemetry-instrumentation-openai-v2 chat spans of calls to tests/ingest/fake_openai.py, so
the evals can be joined to the very requests ingested from the trace file.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pytest
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai

from lib.cli import main
from lib.commands.ingest import render
from lib.ingest import formats as registry
from lib.ingest.base import Chunk, Format
from lib.ingest.formats import canonical, langfuse, openinference, otlp, otlp_logs
from lib.ingest.formats import otlp_common as oc
from lib.ingest.pipeline import ingest_paths
from lib.store import Engine, Lake
from tests.ingest.chunks import collect, parse_file
from tests.ingest.fixtures.otlp_logs_record import (
    ENCODINGS,
    json_lines,
    record_evaluations,
    sdk_records,
)

FIXTURES = Path(__file__).parent / "fixtures"
T0_NS = 1_772_452_800_000_000_000  # 2026-03-02T12:00:00Z
SECOND = 1_000_000_000
TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN = 0x00F067AA0BA902B7
SPAN_HEX = "00f067aa0ba902b7"
RUN = "online:support-bot"
EVENT = "gen_ai.evaluation.result"
NOT_EVAL = "log record(s) that are not gen_ai.evaluation.result events"
NOT_READ_1 = f"1 {NOT_EVAL}: not read"


def not_read(chunks) -> dict:
    """What the chunks of one parse counted as not read, summed."""
    total: dict = {}
    for c in chunks:
        for what, n in c.not_read.items():
            total[what] = total.get(what, 0) + n
    return total


def evaluation(metric: str, score=0.5, at: int | None = T0_NS, span: int | None = SPAN,
               observed: int | None = None, event_name: str | None = EVENT,
               **attributes) -> LogRecord:
    """An API LogRecord of one evaluation result of span ``span`` (None: no span context)."""
    attrs = {genai.GEN_AI_EVALUATION_NAME: metric, genai.GEN_AI_EVALUATION_SCORE_VALUE: score,
             **attributes}
    ids = {"trace_id": TRACE, "span_id": span} if span is not None else {}
    return LogRecord(event_name=event_name, timestamp=at, observed_timestamp=observed,
                     attributes={k: v for k, v in attrs.items() if v is not None}, **ids)


def app_log(text: str) -> LogRecord:
    """An ordinary application log record, as the Collector's logs file also holds."""
    return LogRecord(body=text, severity_text="INFO", severity_number=SeverityNumber.INFO,
                     timestamp=T0_NS, trace_id=TRACE, span_id=SPAN)


def write_lines(tmp_path: Path, lines: list[str], name: str = "logs.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return path


def sdk_file(tmp_path: Path, records: list[LogRecord], encoding: str = "collector",
             per_line: int = 2, name: str = "logs.jsonl") -> Path:
    """``records`` through the SDK and its OTLP encoder into a Collector-style JSON lines file."""
    return write_lines(tmp_path, json_lines(sdk_records(records), encoding, per_line), name)


def parse_lines(lines: list[str], **kwargs) -> tuple[list[dict], list[tuple], list[Chunk]]:
    """(eval rows, (line, reason) of each reject, chunks) of JSON lines parsed as OTLP logs."""
    data = "".join(line + "\n" for line in lines).encode()
    tables, rejects, chunks = collect(list(otlp_logs.parse(io.BytesIO(data), "logs.jsonl",
                                                           **kwargs)))
    rows = tables["evals"].to_pylist() if tables["evals"] is not None else []
    return rows, [(r.line, r.reason) for r in rejects], chunks


def us(ns: int):
    """The stored timestamp of a time in nanoseconds."""
    return pa.scalar(ns // 1000, pa.timestamp("us", tz="UTC")).as_py()


# ---------------------------------------------------------------------------------------------
# Evaluations of real instrumentation spans


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return record_evaluations(tmp_path_factory.mktemp("otel-genai-evaluations"))


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_evaluations_of_real_chat_spans_point_at_their_requests(recorded, encoding):
    tables, rejects, chunks = parse_file(otlp_logs.FORMAT, recorded["logs"][encoding])
    requests, _, _ = parse_file(otlp.FORMAT, recorded["traces"][encoding])
    assert rejects == []
    request_of = {r["request_id"]: r for r in requests["requests"].to_pylist()}
    evals = tables["evals"].to_pylist()
    truth = recorded["truth"]
    assert len(evals) == len(truth) == 3
    for row, judged in zip(evals, truth, strict=True):
        request = request_of[row["request_id"]]  # the eval joins to the ingested request
        assert row["request_id"] == row["case_id"] == judged["span_id"]
        assert json.loads(request["attributes"])["gen_ai.response.id"] == \
            json.loads(row["attributes"])["gen_ai.response.id"] == judged["response_id"]
        assert (row["metric"], row["score"], row["label"], row["explanation"]) == \
            (judged["metric"], judged["score"], judged["label"], judged.get("explanation"))
        assert row["model"] == request["model"] == judged["request_model"]
        assert (row["run_id"], row["source"], row["version"]) == (RUN, "online", "1.4.2")
        assert row["ts"] > request["ts"]  # judged after the call
    # passed: the bool attribute where the emitter gave one, else from the label ("relevant")
    assert [row["passed"] for row in evals] == [True, True, False]
    # the emitter set no time: the SDK's observed time stands
    observed = [int(r.get("observedTimeUnixNano") or r["observed_time_unix_nano"])
                for line in recorded["logs"][encoding].read_text().splitlines()
                for rl in _values(json.loads(line), "resourceLogs")
                for sl in _values(rl, "scopeLogs") for r in _values(sl, "logRecords")]
    assert [row["ts"] for row in evals] == [us(t) for t in observed[:3]]
    assert not_read(chunks) == {NOT_EVAL: 1}  # the application's own log line


def _values(obj: dict, camel: str) -> list:
    snake = "".join("_" + c.lower() if c.isupper() else c for c in camel)
    return obj.get(camel) or obj.get(snake) or []


def test_all_encodings_give_identical_rows(recorded):
    tables = [parse_file(otlp_logs.FORMAT, recorded["logs"][e])[0]["evals"] for e in ENCODINGS]
    assert tables[0].num_rows == 3
    for other in tables[1:]:
        assert other.equals(tables[0])


def test_pipeline_stores_evals_joined_to_requests_once(recorded, lake, tmp_path):
    logs = recorded["logs"]["collector"]
    report = ingest_paths(lake, [str(recorded["traces"]["collector"]), str(logs)])
    assert report.ok, [f.error for f in report.files]
    traces_report, logs_report = report.files
    assert (traces_report.format, logs_report.format) == ("otlp-json", "otlp-logs-json")
    assert (logs_report.stored, logs_report.quarantined) == ({"evals": 3}, 0)
    assert (traces_report.notes, logs_report.notes) == ([], [NOT_READ_1])
    engine = Engine(lake)
    try:
        joined = engine.scalar("SELECT count(*) FROM evals JOIN requests USING (request_id)")
    finally:
        engine.close()
    assert joined == 3
    # the same content again under another name, and the same records in another encoding,
    # add nothing
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(logs.read_bytes())
    again = ingest_paths(lake, [str(copy), str(recorded["logs"]["protobuf"])])
    same, other = again.files
    assert same.duplicate_file and same.stored == {} and same.notes == []
    assert (other.stored.get("evals", 0), other.duplicates) == (0, {"evals": 3})
    engine = Engine(lake)
    try:
        assert engine.scalar("SELECT count(*) FROM evals") == 3
    finally:
        engine.close()


# ---------------------------------------------------------------------------------------------
# Exact columns


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_columns_of_one_evaluation_record(tmp_path, encoding):
    path = sdk_file(tmp_path, [evaluation(
        "relevance", 0.75, at=T0_NS + SECOND, observed=T0_NS + 2 * SECOND,
        **{genai.GEN_AI_EVALUATION_SCORE_LABEL: "fail", "gen_ai.evaluation.passed": True,
           genai.GEN_AI_EVALUATION_EXPLANATION: "mostly on topic",
           genai.GEN_AI_REQUEST_MODEL: "gpt-4o",
           genai.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
           genai.GEN_AI_PROVIDER_NAME: "openai", genai.GEN_AI_RESPONSE_ID: "chatcmpl-9",
           "gen_ai.evaluator.name": "deepeval", "error.type": "timeout"})], encoding)
    tables, rejects, chunks = parse_file(otlp_logs.FORMAT, path)
    assert rejects == [] and not_read(chunks) == {}
    row = tables["evals"].to_pylist()[0]
    assert row == {
        "eval_id": oc.stable_id(RUN, SPAN_HEX, "relevance", T0_NS + SECOND),
        "run_id": RUN, "ts": us(T0_NS + SECOND), "source": "online", "dataset": None,
        "case_id": SPAN_HEX, "epoch": None, "request_id": SPAN_HEX, "version": "1.4.2",
        "model": "gpt-4o-2024-08-06", "metric": "relevance", "score": 0.75,
        "passed": True,  # the bool attribute wins over the label "fail"
        "judge": "deepeval", "label": "fail", "explanation": "mostly on topic",
        "attributes": json.dumps({"gen_ai.request.model": "gpt-4o",
                                  "gen_ai.provider.name": "openai",
                                  "gen_ai.response.id": "chatcmpl-9", "error.type": "timeout",
                                  # the judged span's trace (Quality's filters find a trace's
                                  # evaluations through it)
                                  "trace_id": f"{TRACE:032x}"},
                                 separators=(",", ":")),
        "_line": 1,
    }


def test_time_label_response_id_and_events_api_fallbacks(tmp_path):
    path = sdk_file(tmp_path, [
        # no time given (the SDK writes none): the observed time; the label decides passed
        evaluation("toxicity", 0.0, at=None, observed=T0_NS + 3 * SECOND,
                   **{genai.GEN_AI_EVALUATION_SCORE_LABEL: "pass",
                      genai.GEN_AI_REQUEST_MODEL: "gpt-4o-mini"}),
        # no span context: the response id names what was judged
        evaluation("relevance", 1, span=None, **{genai.GEN_AI_RESPONSE_ID: "chatcmpl-7",
                                                  genai.GEN_AI_EVALUATION_SCORE_LABEL: "no"}),
        # an older Events-API emitter: no eventName, the event.name attribute
        evaluation("bias", 0.1, event_name=None, **{"event.name": EVENT,
                                                    "gen_ai.evaluation.passed": "yes"}),
    ], per_line=3)
    tables, rejects, _ = parse_file(otlp_logs.FORMAT, path)
    assert rejects == []
    toxicity, relevance, bias = tables["evals"].to_pylist()
    assert (toxicity["ts"], toxicity["passed"], toxicity["model"], toxicity["attributes"]) == \
        (us(T0_NS + 3 * SECOND), True, "gpt-4o-mini", json.dumps({"trace_id": f"{TRACE:032x}"},
                                                                 separators=(",", ":")))
    assert toxicity["eval_id"] == oc.stable_id(RUN, SPAN_HEX, "toxicity", T0_NS + 3 * SECOND)
    assert (relevance["request_id"], relevance["case_id"], relevance["passed"]) == \
        (None, "chatcmpl-7", False)
    assert json.loads(relevance["attributes"]) == {"gen_ai.response.id": "chatcmpl-7"}
    assert relevance["eval_id"] == oc.stable_id(RUN, "chatcmpl-7", "relevance", T0_NS)
    # a "passed" that is not a boolean is kept as written, not guessed at
    assert (bias["metric"], bias["passed"], bias["request_id"]) == ("bias", None, SPAN_HEX)
    assert json.loads(bias["attributes"]) == {"gen_ai.evaluation.passed": "yes",
                                              "trace_id": f"{TRACE:032x}"}


@pytest.mark.parametrize("zero", ['"0000000000000000"', '"AAAAAAAAAAA="'])  # hex, base64
def test_an_all_zero_span_id_is_no_span(zero):
    line = json_lines(sdk_records([evaluation(
        "relevance", **{genai.GEN_AI_RESPONSE_ID: "chatcmpl-5"})]), "collector")[0]
    rows, rejects, _ = parse_lines([_hostile(line, "relevance", "spanId", zero)])
    assert rejects == []
    assert (rows[0]["request_id"], rows[0]["case_id"]) == (None, "chatcmpl-5")


def test_run_and_version_come_from_each_records_own_resource():
    readable = (sdk_records([evaluation("relevance")])
                + sdk_records([evaluation("relevance")],
                              resource={"service.name": "billing", "service.version": "7.0"}))
    line = json_lines(readable, "collector", per_line=2)[0]
    assert len(json.loads(line)["resourceLogs"]) == 2  # one request, two resources
    rows, rejects, _ = parse_lines([line])
    assert rejects == []
    assert [(r["run_id"], r["version"]) for r in rows] == [(RUN, "1.4.2"),
                                                          ("online:billing", "7.0")]
    assert rows[0]["eval_id"] != rows[1]["eval_id"]  # the same span, metric, time: two runs


def test_two_evaluations_of_one_metric_on_one_span_at_different_times_are_two_rows(tmp_path):
    path = sdk_file(tmp_path, [evaluation("relevance", 0.4, at=T0_NS),
                               evaluation("relevance", 0.9, at=T0_NS + 60 * SECOND)])
    tables, _, _ = parse_file(otlp_logs.FORMAT, path)
    rows = tables["evals"].to_pylist()
    assert [(r["request_id"], r["metric"], r["score"]) for r in rows] == \
        [(SPAN_HEX, "relevance", 0.4), (SPAN_HEX, "relevance", 0.9)]
    assert rows[0]["eval_id"] != rows[1]["eval_id"]


def test_eval_ids_are_stable_across_parses_and_encodings(tmp_path):
    records = [evaluation("relevance", 0.4), evaluation("toxicity", 0.0, span=None,
                                                        **{genai.GEN_AI_RESPONSE_ID: "r-1"})]
    ids = [parse_file(otlp_logs.FORMAT, sdk_file(tmp_path, records, encoding, name=f"{i}.jsonl")
                      )[0]["evals"]["eval_id"].to_pylist()
           for i, encoding in enumerate([*ENCODINGS, "collector"])]
    assert len(set(ids[0])) == 2
    assert all(other == ids[0] for other in ids[1:])


def test_pretty_printed_single_request_is_read_whole(tmp_path):
    line = json_lines(sdk_records([evaluation("relevance"), app_log("hi")]), "collector")[0]
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(json.loads(line), indent=2))
    tables, rejects, chunks = parse_file(otlp_logs.FORMAT, path)
    assert rejects == []
    assert tables["evals"]["_line"].to_pylist() == [1]
    assert not_read(chunks) == {NOT_EVAL: 1}


def test_small_chunks_give_the_same_rows_and_the_same_count(tmp_path):
    path = sdk_file(tmp_path, [evaluation(f"m{i}") for i in range(5)] + [app_log("a")] * 3)
    whole, _, _ = parse_file(otlp_logs.FORMAT, path)
    parts, _, chunks = parse_file(otlp_logs.FORMAT, path, chunk_rows=2)
    assert len(chunks) >= 3
    assert parts["evals"].equals(whole["evals"])
    assert not_read(chunks) == {NOT_EVAL: 3}


# ---------------------------------------------------------------------------------------------
# Mixed files and bad values


def test_ordinary_log_records_are_counted_not_stored(tmp_path, lake, capsys):
    path = sdk_file(tmp_path, [
        app_log("user asked about refunds"),
        evaluation("relevance", 0.8),
        # splunk-otel-util-genai's legacy duplicate of the same result: not read twice
        evaluation("relevance", 0.8, event_name="gen_ai.evaluation"),
        LogRecord(event_name="gen_ai.client.inference.operation.details", timestamp=T0_NS),
        evaluation("toxicity", 0.0),
    ], per_line=3)
    note = f"3 {NOT_EVAL}: not read"
    assert main(["ingest", str(path), "--store", str(lake.root), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)["files"][0]
    assert (doc["format"], doc["stored"], doc["notes"]) == ("otlp-logs-json", {"evals": 2},
                                                            [note])
    engine = Engine(lake)
    try:
        assert engine.scalar("SELECT list(metric ORDER BY metric) FROM evals") == \
            ["relevance", "toxicity"]
    finally:
        engine.close()


def _hostile(line: str, metric: str, field: str, value) -> str:
    """``line`` with ``field`` of the record of ``metric`` replaced by ``value`` (JSON text),
    for what the SDK cannot emit but other writers do."""
    doc = json.loads(line)
    for rl in doc["resourceLogs"]:
        for sl in rl["scopeLogs"]:
            for record in sl["logRecords"]:
                attrs = {a["key"]: a for a in record["attributes"]}
                if attrs[genai.GEN_AI_EVALUATION_NAME]["value"]["stringValue"] != metric:
                    continue
                if field in attrs:
                    attrs[field]["value"] = "@@"
                else:
                    record[field] = "@@"
    return json.dumps(doc).replace('"@@"', value)


SCORE = "gen_ai.evaluation.score.value"
NOT_USABLE = "gen_ai.evaluation.result log record not usable: "


@pytest.mark.parametrize(("field", "value", "reason"), [
    (SCORE, '{"stringValue": "abc"}', f"{SCORE} is not a finite number: abc"),
    (SCORE, '{"boolValue": true}', f"{SCORE} is not a finite number: true"),
    (SCORE, '{"doubleValue": "1e400"}', f"{SCORE} is not a finite number: 1e400"),
    # a JSON number beyond a double: Python's json reads it as inf, shown as JSON writes it
    (SCORE, '{"doubleValue": 1e400}', f"{SCORE} is not a finite number: Infinity"),
    ("timeUnixNano", '"99999999999999999999999"',
     "timeUnixNano is out of range: 99999999999999999999999"),
    ("observedTimeUnixNano", '"yesterday"', "observedTimeUnixNano is not an integer: yesterday"),
    ("spanId", "12345", "spanId is not text: 12345"),
])
def test_a_bad_value_quarantines_its_record_only(field, value, reason):
    good = json_lines(sdk_records([evaluation("first", at=T0_NS)]), "collector")[0]
    bad = evaluation("bad", at=None if field == "observedTimeUnixNano" else T0_NS)
    pair = json_lines(sdk_records([evaluation("sibling", at=T0_NS), bad]), "collector")[0]
    last = json_lines(sdk_records([evaluation("last", at=T0_NS)]), "collector")[0]
    rows, rejects, _ = parse_lines([good, _hostile(pair, "bad", field, value), last])
    assert rejects == [(2, NOT_USABLE + reason)]
    assert [(r["metric"], r["_line"]) for r in rows] == [("first", 1), ("sibling", 2),
                                                         ("last", 3)]


def test_bad_scores_are_quarantined_with_line_and_reason_through_the_pipeline(tmp_path, lake):
    line = json_lines(sdk_records([
        evaluation("good", 0.5), evaluation("text", "abc"), evaluation("flag", True),
        evaluation("huge", 0.123), app_log("served")]), "collector", per_line=5)[0]
    line = line.replace('{"doubleValue": 0.123}', '{"doubleValue": 1e400}')
    path = write_lines(tmp_path, [line, line.replace('"good"', '"good2"')])
    report = ingest_paths(lake, [str(path)])
    f = report.files[0]
    assert (f.stored, f.quarantined) == ({"evals": 2}, 6)
    assert f.reasons[:3] == [f"line 1: {NOT_USABLE}{SCORE} is not a finite number: {shown}"
                             for shown in ("abc", "true", "Infinity")]
    assert f.notes == [f"2 {NOT_EVAL}: not read"]
    text = render(report)
    assert text.count(f"note: 2 {NOT_EVAL}: not read") == 1
    engine = Engine(lake)
    try:
        assert engine.scalar("SELECT list(line ORDER BY line) FROM quarantine") == \
            [1, 1, 1, 2, 2, 2]
        assert engine.scalar("SELECT list(metric ORDER BY metric) FROM evals") == \
            ["good", "good2"]
    finally:
        engine.close()


def test_text_that_is_not_utf8_quarantines_its_record_only():
    line = json_lines(sdk_records([
        evaluation("sibling"),
        evaluation("bad", **{genai.GEN_AI_EVALUATION_EXPLANATION: "BROKEN"})]), "collector")[0]
    data = line.encode().replace(b"BROKEN", b"caf\xe9") + b"\n"  # Latin-1, not UTF-8
    tables, rejects, _ = collect(list(otlp_logs.parse(io.BytesIO(data), "logs.jsonl")))
    assert [(r.line, r.reason) for r in rejects] == [(1, NOT_USABLE + "not valid UTF-8 text")]
    assert tables["evals"]["metric"].to_pylist() == ["sibling"]


def test_lines_that_are_not_log_requests_are_rejected():
    good = json_lines(sdk_records([evaluation("relevance")]), "collector")[0]
    rows, rejects, _ = parse_lines([good, "{not json", '{"resourceLogs": 3}',
                                    '{"resourceLogs": [{"scopeLogs": [{"logRecords": [7]}]}]}'])
    assert [r["metric"] for r in rows] == ["relevance"]
    assert [(line, reason.split(":")[0]) for line, reason in rejects] == [
        (2, "not valid JSON"),
        (3, "not an OTLP ExportLogsServiceRequest (no resourceLogs list)"),
        (4, "not a log record object")]


def test_a_file_of_traces_logs_and_metrics_lines_gives_each_its_rows(recorded, lake, tmp_path):
    # A Collector file exporter shared by the traces, logs and metrics pipelines writes the
    # three kinds of line into one file, in whatever order they come.
    traces = recorded["traces"]["collector"].read_text().splitlines()
    logs = recorded["logs"]["collector"].read_text().splitlines()
    metrics = json.dumps({"resourceMetrics": [{"scopeMetrics": []}]})
    alone = ingest_paths(lake, [str(recorded["traces"]["collector"])]).files[0].stored
    orders = {"logs": [*logs, metrics, *traces], "traces": [*traces, metrics, *logs]}
    for first, lines in orders.items():
        store = Lake(tmp_path / f"store-{first}")
        path = write_lines(tmp_path, lines, f"{first}-first.jsonl")
        f = ingest_paths(store, [str(path)]).files[0]
        assert f.format == {"logs": "otlp-logs-json", "traces": "otlp-json"}[first]
        assert (f.quarantined, f.reasons) == (0, [])
        assert f.stored == {**alone, "evals": 3}, first
        assert f.not_read == {NOT_EVAL: 1, oc.NOT_READ_METRICS: 1}
        engine = Engine(store)
        try:
            assert engine.scalar("SELECT count(*) FROM evals JOIN requests USING (request_id)") \
                == 3
        finally:
            engine.close()


def test_worker_processes_give_the_rows_and_counts_of_one_process(recorded, tmp_path,
                                                                  monkeypatch):
    traces = recorded["traces"]["collector"].read_text().splitlines()
    logs = recorded["logs"]["collector"].read_text().splitlines()
    metrics = json.dumps({"resourceMetrics": []})
    path = write_lines(tmp_path, [*logs, metrics, *traces] * 40, "big.jsonl")
    monkeypatch.setattr(oc, "BLOCK_BYTES", 16 * 1024)  # many blocks: the worker path
    results = []
    for workers in (1, 2):
        with open(path, "rb") as f:
            chunks = list(oc.parse_otlp(f, path.name, otlp.mappers(), otlp.choose_mapper,
                                        workers=workers))
        tables, rejects, _ = collect(chunks)
        results.append(({n: t.num_rows for n, t in tables.items() if t is not None},
                         rejects, not_read(chunks)))
    assert results[0] == results[1]
    assert results[0][2] == {NOT_EVAL: 40, oc.NOT_READ_METRICS: 40}
    assert results[0][0]["evals"] == 120


def _attribute(key: str, value) -> dict:
    kind = ("boolValue" if isinstance(value, bool) else "doubleValue"
            if isinstance(value, float) else "stringValue")
    return {"key": key, "value": {kind: value}}


def trace_file(tmp_path: Path, events: list[dict], name: str = "traces.jsonl") -> Path:
    """One chat span (SPAN_HEX, resource support-bot 1.4.2, started at T0_NS) with ``events``,
    as the Collector writes it."""
    span = {"traceId": f"{TRACE:032x}", "spanId": SPAN_HEX, "name": "chat gpt-4o", "kind": 3,
            "startTimeUnixNano": str(T0_NS), "endTimeUnixNano": str(T0_NS + SECOND // 2),
            "attributes": [_attribute("gen_ai.operation.name", "chat"),
                           _attribute("gen_ai.request.model", "gpt-4o"),
                           {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}},
                           {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "5"}}],
            "events": events}
    resource = {"attributes": [_attribute("service.name", "support-bot"),
                               _attribute("service.version", "1.4.2")]}
    return write_lines(tmp_path, [json.dumps({"resourceSpans": [{
        "resource": resource, "scopeSpans": [{"spans": [span]}]}]})], name)


def span_event(at: int | str | None, **attributes) -> dict:
    event = {"name": EVENT, "attributes": [_attribute(k, v) for k, v in attributes.items()]}
    if at is not None:
        event["timeUnixNano"] = str(at)
    return event


RELEVANCE = {genai.GEN_AI_EVALUATION_NAME: "relevance", genai.GEN_AI_EVALUATION_SCORE_VALUE: 0.75,
             genai.GEN_AI_EVALUATION_SCORE_LABEL: "fail", "gen_ai.evaluation.passed": True}


def stored_evals(lake) -> list[tuple]:
    engine = Engine(lake)
    try:
        return engine.query("SELECT metric, score, passed, epoch, request_id FROM evals "
                            "ORDER BY score").rows()
    finally:
        engine.close()


def test_one_evaluation_as_a_span_event_and_as_a_log_record_is_stored_once(tmp_path, lake):
    logs = sdk_file(tmp_path, [evaluation("relevance", 0.75, at=T0_NS + SECOND, **{
        genai.GEN_AI_EVALUATION_SCORE_LABEL: "fail", "gen_ai.evaluation.passed": True})])
    # a quarantined sibling of the same metric and time does not shift the good one's id
    bad = {**RELEVANCE, genai.GEN_AI_EVALUATION_SCORE_VALUE: "abc"}
    traces = trace_file(tmp_path, [span_event(T0_NS + SECOND, **bad),
                                   span_event(T0_NS + SECOND, **RELEVANCE)])
    report = ingest_paths(lake, [str(traces), str(logs)])
    assert [f.stored.get("evals") for f in report.files] == [1, 0]
    assert [f.quarantined for f in report.files] == [1, 0]
    assert report.files[1].duplicates == {"evals": 1}
    assert stored_evals(lake) == [("relevance", 0.75, True, None, SPAN_HEX)]


def test_two_evaluations_at_one_instant_are_two_rows_either_way(tmp_path, lake):
    # one judge run twice on one span, in the same nanosecond: two rows as span events, and
    # the same two (same ids) as log records of one line
    pair = [0.25, 0.75]
    traces = trace_file(tmp_path, [
        span_event(T0_NS + SECOND, **{**RELEVANCE, genai.GEN_AI_EVALUATION_SCORE_VALUE: score})
        for score in pair])
    logs = sdk_file(tmp_path, [evaluation("relevance", score, at=T0_NS + SECOND, **{
        genai.GEN_AI_EVALUATION_SCORE_LABEL: "fail", "gen_ai.evaluation.passed": True})
        for score in pair])
    report = ingest_paths(lake, [str(logs), str(traces)])
    assert report.files[0].stored == {"evals": 2}
    assert report.files[1].duplicates == {"requests": 0, "spans": 0, "evals": 2}
    assert [row[1] for row in stored_evals(lake)] == pair


def test_an_evaluation_event_at_time_zero_is_dated_by_its_span(tmp_path):
    # protobuf's printer, told to print default values, writes an unset time as "0"
    path = trace_file(tmp_path, [span_event("0", **RELEVANCE)])
    tables, rejects, _ = parse_file(otlp.FORMAT, path)
    assert rejects == []
    assert tables["evals"]["ts"].to_pylist() == [us(T0_NS)]


def test_a_byte_order_mark_and_the_pre_0_15_layout_are_read(tmp_path):
    line = json_lines(sdk_records([evaluation("relevance"), app_log("hi")]), "collector")[0]
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + line.encode() + b"\n")
    with open(path, "rb") as f:
        assert otlp_logs.detect(f.read(4096), path.name)
    tables, rejects, chunks = parse_file(otlp_logs.FORMAT, path)
    assert rejects == [] and tables["evals"]["metric"].to_pylist() == ["relevance"]
    old = json.loads(line)
    for entry in old["resourceLogs"]:
        entry["instrumentationLibraryLogs"] = [
            {"logs": scope["logRecords"]} for scope in entry.pop("scopeLogs")]
    rows, rejects, chunks = parse_lines([json.dumps(old)])
    assert [r["metric"] for r in rows] == ["relevance"] and rejects == []
    assert not_read(chunks) == {NOT_EVAL: 1}


# ---------------------------------------------------------------------------------------------
# What was not read (lib/ingest/base.py Chunk.not_read -> FileReport.not_read and .notes ->
# CLI text and JSON)


def test_what_a_format_did_not_read_is_summed_over_chunks_and_said_once(write, lake, capsys):
    def parse(stream, filename):
        stream.read()
        yield Chunk(not_read={"things": 7})
        yield Chunk(not_read={"things": 7, "other things": 1})

    fmt = Format(name="noted", detect=lambda head, name: False, parse=parse, doc="test")
    path = write("a.txt", b"anything\n")
    report = ingest_paths(lake, [str(path)], fmt=fmt)
    notes = ["14 things: not read", "1 other things: not read"]
    assert report.files[0].not_read == {"things": 14, "other things": 1}
    assert report.files[0].notes == notes
    assert report.to_dict()["files"][0]["notes"] == notes
    text = render(report)
    assert text.count("\n    note: 14 things: not read") == 1
    assert "\n    note: 1 other things: not read" in text


# ---------------------------------------------------------------------------------------------
# Detection


def _head(path: Path) -> bytes:
    return path.read_bytes()[:65536]


def test_detects_logs_files_in_every_encoding(recorded, tmp_path):
    pretty = tmp_path / "payload.json"
    pretty.write_text(json.dumps(json.loads(recorded["logs"]["collector"].read_text()
                                            .splitlines()[0]), indent=2))
    for path in [*recorded["logs"].values(), pretty]:
        head = _head(path)
        first = next(f for f in registry.registered() if f.detect(head, path.name))
        assert first.name == "otlp-logs-json"
        for other in (otlp, openinference, langfuse):
            assert not other.FORMAT.detect(head, path.name)


def test_a_logs_file_quoting_resource_spans_is_still_a_logs_file(tmp_path):
    # an attribute key, so the head holds "resourceSpans" as the trace detectors look for it
    quoting = LogRecord(body="copied a trace", attributes={"resourceSpans": "[]"},
                        timestamp=T0_NS)
    path = sdk_file(tmp_path, [quoting, evaluation("relevance")])
    assert otlp.FORMAT.detect(_head(path), path.name)  # the trap is real
    first = next(f for f in registry.registered() if f.detect(_head(path), path.name))
    assert first.name == "otlp-logs-json"


def test_a_metrics_line_first_then_logs_is_a_logs_file(recorded):
    metrics = b'{"resourceMetrics": []}\n'
    logs = recorded["logs"]["collector"].read_bytes()
    traces = recorded["traces"]["collector"].read_bytes()
    assert otlp_logs.detect(metrics + logs, "out.jsonl")
    assert not otlp_logs.detect(metrics + traces, "out.jsonl")  # otlp-json's then
    assert otlp.detect(metrics + traces, "out.jsonl")
    assert not otlp_logs.detect(metrics, "out.jsonl")


def test_does_not_claim_trace_files_or_other_formats(recorded):
    paths = [*recorded["traces"].values(), FIXTURES / "genai_handwritten.jsonl",
             FIXTURES / "openinference_handwritten.jsonl",
             FIXTURES / "langfuse_observations.jsonl", FIXTURES / "langfuse_traces.json"]
    for path in paths:
        assert not otlp_logs.FORMAT.detect(_head(path), path.name), path.name


@pytest.mark.parametrize("head", [
    b'{"request_id": "r1", "ts": "2026-01-01T00:00:00Z", "model": "gpt-4o", '
    b'"attributes": {"resourceLogs": 1}}\n',
    b'[{"request_id": "r1", "ts": "2026-01-01T00:00:00Z", "model": "gpt-4o"}]',
    b"request_id,ts,model\nr1,2026-01-01,gpt-4o\n",
    b'{"resourceSpans": [{"resource": {"attributes": [{"key": "note", "value": '
    b'{"stringValue": "resourceLogs"}}]}}]}\n',
    b"",
    b"\x1f\x8b\x08\x00junk",
])
def test_does_not_claim_other_heads(head):
    assert not otlp_logs.FORMAT.detect(head, "x.jsonl")
    if head.startswith(b'{"request_id"'):
        assert canonical.JSONL.detect(head, "x.jsonl")  # still the canonical format's


@pytest.mark.parametrize(("label", "passed"), [
    ("relevant", True), ("not_relevant", False), ("Not Relevant", False),
    ("not-relevant", False), ("correct", True), ("incorrect", False), ("pass", True),
    ("fail", False), ("factual", True), ("hallucinated", False), ("unrelated", False),
    ("non-toxic", True), ("toxic", False), ("partially_relevant", None), ("3", None)])
def test_a_label_and_its_negation_say_pass_and_fail(label, passed):
    # The semantic conventions' own examples are "relevant" and "not_relevant": with the second
    # unread, a judge's 10 "not_relevant" of 100 were left out of the pass rate, read 100%.
    assert oc.passed_from_label(label) is passed


def test_not_relevant_evaluations_count_as_failures(tmp_path):
    lines = [{"timeUnixNano": str(T0_NS + i * SECOND), "eventName": EVENT,
              "spanId": f"{i + 1:016x}", "attributes": [
                  {"key": "gen_ai.evaluation.name", "value": {"stringValue": "relevance"}},
                  {"key": "gen_ai.evaluation.score.label",
                   "value": {"stringValue": "relevant" if i % 10 else "not_relevant"}}]}
             for i in range(100)]
    path = tmp_path / "logs.json"
    path.write_text(json.dumps({"resourceLogs": [{"resource": {}, "scopeLogs": [
        {"logRecords": lines}]}]}) + "\n")
    store = tmp_path / "store"
    ingest_paths(Lake(store), [str(path)])
    n, passed = Engine(Lake(store)).query(
        "SELECT count(passed) AS n, count(*) FILTER (WHERE passed) AS p FROM evals").row(0)
    assert (n, passed) == (100, 90)
