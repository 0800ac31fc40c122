"""OTLP protobuf files, as the Collector's file exporter writes them with ``format: proto``
(lib/ingest/formats/otlp_proto.py).

The evidence is spans recorded with the real instrumentation packages against the fake OpenAI
server, encoded by the real opentelemetry-exporter-otlp-proto-common and written as the exporter's
``exportMessageAsBuffer`` writes them (each request after its length, a big-endian uint32): the
file must give exactly the rows its Collector JSON twin gives, and the true totals. Log records
(evaluation events) come from the real SDK and ``encode_logs``; the bad-input cases are built
by hand around real requests.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from backports import zstd
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from lib.ingest import formats as registry
from lib.ingest.formats import otlp, otlp_proto
from lib.ingest.formats import otlp_common as oc
from lib.ingest.pipeline import detect_format, ingest_paths
from lib.store import Engine, Lake
from tests.ingest.chunks import collect, parse_file
from tests.ingest.fake_openai import proto_path, record_spans, scenario_truth
from tests.ingest.fixtures.otlp_logs_record import sdk_records
from tests.ingest.test_otlp_logs import SPAN_HEX, app_log, evaluation

TOTALS = ("SELECT count(*), count(*) FILTER (status = 'error'), sum(input_tokens), "
          "sum(output_tokens) FROM requests")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """{instrumentation: (Collector JSON file, protobuf file)} of the same recorded spans."""
    out = {}
    for name in ("otel-genai", "openinference", "openinference+otel-genai"):
        _, collector, _ = record_spans(name, tmp_path_factory.mktemp(name.replace("+", "-")))
        out[name] = (collector, proto_path(collector))
    return out


def messages(path: Path) -> list[bytes]:
    """The serialized requests of a length-prefixed file."""
    data, out, i = path.read_bytes(), [], 0
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        out.append(data[i + 4:i + 4 + n])
        i += 4 + n
    assert i == len(data)
    return out


def prefixed(parts: list[bytes]) -> bytes:
    """``exportMessageAsBuffer``'s layout: each part after its length (big-endian uint32)."""
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def framed_zstd(parts: list[bytes]) -> bytes:
    """The exporter's older ``compression: zstd`` layout: each request a zstd frame, after the
    frame's length."""
    return prefixed([zstd.compress(p) for p in parts])


def stored(tmp_path: Path, name: str, data: bytes, store: str | None = None,
           written_long_ago: bool = False):
    """(the file's report, TOTALS of the store) after ingesting ``data`` as ``name``; a file
    ``written_long_ago`` is not one being written (whose cut last request would wait:
    tests/ingest/test_live_files.py)."""
    path = tmp_path / name
    path.write_bytes(data)
    if written_long_ago:
        then = time.time() - 3600
        os.utime(path, (then, then))
    lake = Lake(tmp_path / (store or f"store-{name}"))
    report = ingest_paths(lake, [str(path)])
    return report.files[0], Engine(lake).query(TOTALS).row(0)


# ---------------------------------------------------------------------------------------------
# Real instrumentation spans


@pytest.mark.parametrize("name", ["otel-genai", "openinference", "openinference+otel-genai"])
def test_a_protobuf_file_gives_the_rows_of_its_json_twin(recorded, name):
    collector, proto = recorded[name]
    assert detect_format(proto.read_bytes()[:65536], proto.name).name == "otlp-proto"
    want, want_rejects, _ = parse_file(otlp.FORMAT, collector)
    got, rejects, _ = parse_file(otlp_proto.FORMAT, proto)
    assert rejects == want_rejects == []
    for table in ("requests", "spans"):
        # one request per line there, per message here: even the _line numbers agree
        assert got[table].equals(want[table]), table


@pytest.mark.parametrize("layout, filename", [
    (lambda parts: prefixed(parts), "traces.pb"),
    (lambda parts: zstd.compress(prefixed(parts)), "traces.pb.zst"),  # native compression
    (framed_zstd, "traces-2026-11-26T07-01-02.000.pb"),  # the older compressed layout
])
def test_every_layout_of_the_exporter_stores_the_true_totals(recorded, tmp_path, layout,
                                                             filename):
    collector, proto = recorded["otel-genai"]
    plain, expected = stored(tmp_path, "plain.jsonl", collector.read_bytes())
    report, got = stored(tmp_path, filename, layout(messages(proto)))
    assert (report.error, report.format) == (None, "otlp-proto")
    assert report.stored == plain.stored and got == expected
    truth = scenario_truth()
    assert got == (truth["requests"], truth["errors"], truth["input_tokens"],
                   truth["output_tokens"])


def test_nested_calls_are_counted_once_as_in_json(recorded, tmp_path):
    """openinference + openai-v2 on one provider: 14 model-call spans, 7 calls."""
    collector, proto = recorded["openinference+otel-genai"]
    report, got = stored(tmp_path, proto.name, proto.read_bytes())
    truth = scenario_truth()
    assert got == (truth["requests"], truth["errors"], truth["input_tokens"],
                   truth["output_tokens"])
    _, again = stored(tmp_path, collector.name, collector.read_bytes(), store=f"store-{proto.name}")
    assert again == got  # the JSON twin of the same spans adds no row


def test_the_same_requests_in_either_encoding_add_nothing_twice(recorded, tmp_path):
    collector, proto = recorded["otel-genai"]
    stored(tmp_path, proto.name, proto.read_bytes(), store="both")
    report, got = stored(tmp_path, collector.name, collector.read_bytes(), store="both")
    assert report.stored.get("requests", 0) == 0
    assert report.duplicates["requests"] == scenario_truth()["requests"]
    assert got[0] == scenario_truth()["requests"]


# ---------------------------------------------------------------------------------------------
# The exporter shared by the traces, logs and metrics pipelines


def metrics_request() -> bytes:
    request = json_format.ParseDict({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "gen_ai.client.token.usage", "unit": "{token}", "histogram": {
            "dataPoints": [{"count": "2", "sum": 150.0, "startTimeUnixNano": "1",
                            "timeUnixNano": "2"}], "aggregationTemporality": 2}}]}]}]},
        ExportMetricsServiceRequest())
    return request.SerializeToString()


def test_logs_give_their_evaluations_and_metrics_are_counted(recorded, tmp_path):
    _, proto = recorded["otel-genai"]
    logs = encode_logs(sdk_records([evaluation("relevance", 0.9), app_log("hello"),
                                    evaluation("toxicity", 0.0, label="pass")]))
    parts = [*messages(proto), logs.SerializeToString(), metrics_request()]
    tables, rejects, chunks = parse_file(otlp_proto.FORMAT, _write(tmp_path, prefixed(parts)))
    assert rejects == []
    evals = tables["evals"].to_pylist()
    assert sorted((e["metric"], e["score"], e["request_id"]) for e in evals) == [
        ("relevance", 0.9, SPAN_HEX), ("toxicity", 0.0, SPAN_HEX)]
    assert {e["_line"] for e in evals} == {len(parts) - 1}
    not_read = {k: v for c in chunks for k, v in c.not_read.items()}
    assert not_read == {"log record(s) that are not gen_ai.evaluation.result events": 1,
                        "line(s) of OTLP metrics (resourceMetrics)": 1}
    assert tables["requests"].num_rows == scenario_truth()["requests"]


def _write(tmp_path: Path, data: bytes, name: str = "mixed.pb") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _metric(**fields) -> bytes:
    request = ExportMetricsServiceRequest()
    request.resource_metrics.add().scope_metrics.add().metrics.add(**fields)
    return request.SerializeToString()


def _body_only_log() -> bytes:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = "hello"
    return request.SerializeToString()


def _summary_metric() -> bytes:
    """A summary whose name is 16 bytes: read as a span, the name would be a trace id."""
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(
        name="rpc_duration_sec", unit="s")
    point = metric.summary.data_points.add(time_unix_nano=1_700_000_000_000_000_000, count=3)
    point.sum = 1.5
    return request.SerializeToString()


def _gauge_without_times() -> bytes:
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="queue.depth")
    metric.gauge.data_points.add(as_int=5)
    return request.SerializeToString()


@pytest.mark.parametrize("make, key", [
    (lambda proto: _metric(name="gen_ai.client.operation.duration"), "resourceMetrics"),
    (lambda proto: _summary_metric(), "resourceMetrics"),
    (lambda proto: _gauge_without_times(), "resourceMetrics"),
    (lambda proto: _body_only_log(), "resourceLogs"),
    (lambda proto: b"", "resourceSpans"),  # an empty request: a trace request of nothing
    (lambda proto: messages(proto)[0], "resourceSpans"),
    (lambda proto: encode_logs(sdk_records([evaluation("relevance")])).SerializeToString(),
     "resourceLogs"),
    (lambda proto: metrics_request(), "resourceMetrics"),
])
def test_each_signal_is_told_from_the_others(recorded, make, key):
    """A request decodes as the first signal whose entries have no unknown fields: a log
    request is not read as spans (the same field numbers, other wire types), nor metrics."""
    doc, error = otlp_proto.decode_request(make(recorded["otel-genai"][1]))
    assert error is None and list(doc) == [key]


def test_spans_without_trace_ids_are_still_spans(recorded):
    """The Collector leaves an all-zero trace id out of the protobuf: such spans are read as in
    JSON (without a trace), and do not make their request look like another signal."""
    _, proto = recorded["otel-genai"]
    request = ExportTraceServiceRequest.FromString(messages(proto)[0])
    spans = request.resource_spans[0].scope_spans[0].spans
    template = spans[0]
    for i in range(10):
        span = spans.add()
        span.CopyFrom(template)
        span.span_id = bytes([i + 1]) * 8
        if i < 9:
            span.ClearField("trace_id")
    data = request.SerializeToString()
    doc, error = otlp_proto.decode_request(data)
    assert error is None and list(doc) == ["resourceSpans"]
    got = collect(list(oc.parse_documents([(1, "", doc, None)], otlp.mappers(),
                                          otlp.choose_mapper)))
    want = collect(list(oc.parse_documents([(1, "", json_format.MessageToDict(request), None)],
                                           otlp.mappers(), otlp.choose_mapper)))
    assert got[0]["spans"].equals(want[0]["spans"])
    assert got[0]["requests"].equals(want[0]["requests"])
    assert got[0]["requests"]["trace_id"].null_count == 9


# ---------------------------------------------------------------------------------------------
# Bad input: one quarantined request, named; the others go on


def test_a_request_that_is_not_protobuf_is_quarantined_alone(recorded, tmp_path):
    _, proto = recorded["otel-genai"]
    parts = messages(proto)
    junk = b"\x0a\x05hello, this is not an export request at all \xff\xfe"
    data = prefixed([parts[0], junk, *parts[1:]])
    report, got = stored(tmp_path, "junk.pb", data)
    assert report.error is None and report.quarantined == 1
    offset = 4 + len(parts[0])
    assert report.reasons == [
        f"request 2: not an OTLP export request in protobuf: Wire format was corrupt "
        f"(at byte {offset:,})"]
    assert got[0] == scenario_truth()["requests"]


def test_text_that_is_not_utf8_is_read_as_the_collectors_json_writes_it(recorded, tmp_path):
    """protobuf refuses a whole request for one string that is not UTF-8 (the Collector writes
    Go strings as they are): the request is read with U+FFFD in place of the bad byte, as the
    Collector's JSON encoder writes it, and the report says so."""
    _, proto = recorded["otel-genai"]
    parts = messages(proto)
    request = ExportTraceServiceRequest.FromString(parts[0])
    name = request.resource_spans[0].scope_spans[0].spans[0].name.encode()
    # a 4-byte character cut after 3 bytes: Go's encoders write one U+FFFD per bad byte
    bad = parts[0].replace(name, name[:-3] + b"\xf0\x9f\x98")  # (same length)
    assert bad != parts[0]
    report, got = stored(tmp_path, "bad-text.pb", prefixed([bad, *parts[1:]]))
    assert report.quarantined == 0 and got[0] == scenario_truth()["requests"]
    assert report.notes == [f"1 {otlp_proto.NOT_UTF8_NOTE}"]
    names = Engine(Lake(tmp_path / "store-bad-text.pb")).query(
        "SELECT name FROM spans")["name"].to_list()
    assert name[:-3].decode() + "\ufffd" * 3 in names


@pytest.mark.parametrize("cut", [2, 50])
def test_a_file_cut_short_keeps_the_requests_before_the_cut(recorded, tmp_path, cut):
    """Cut inside the last request's length (2 bytes of it) or inside its data."""
    _, proto = recorded["otel-genai"]
    parts = messages(proto)
    whole = prefixed(parts[:-1])
    data = whole + (len(parts[-1]).to_bytes(4, "big") + parts[-1])[:cut]
    report, got = stored(tmp_path, f"cut{cut}.pb", data, written_long_ago=True)
    _, before = stored(tmp_path, "whole.pb", whole)
    assert report.error is None and report.quarantined == 1 and got == before
    what = ("the file ends inside the request's length (2 of 4 bytes)" if cut == 2 else
            f"the file ends inside the request (46 of {len(parts[-1]):,} bytes)")
    assert report.reasons == [f"request {len(parts)}: {what}: truncated (at byte {len(whole):,})"]


def test_a_length_past_the_limit_is_skipped_unread(recorded, tmp_path, monkeypatch):
    _, proto = recorded["otel-genai"]
    parts = messages(proto)
    monkeypatch.setattr(otlp_proto, "MAX_MESSAGE_BYTES", max(len(p) for p in parts[1:]) + 1)
    big = parts[0] + b"\x00" * (otlp_proto.MAX_MESSAGE_BYTES + 1 - len(parts[0]))
    tables, rejects, _ = parse_file(otlp_proto.FORMAT,
                                    _write(tmp_path, prefixed([big, *parts[1:]]), "big.pb"))
    assert [(r.line, r.reason) for r in rejects] == [
        (1, f"the request is {len(big):,} bytes long, over the "
            f"{otlp_proto.MAX_MESSAGE_BYTES / 2**20:g} MiB a request may have: not read "
            f"(at byte 0)")]
    assert set(tables["spans"]["_line"].to_pylist()) == set(range(2, len(parts) + 1))


def test_a_corrupt_framed_zstd_file_is_one_clear_error(recorded, tmp_path):
    _, proto = recorded["otel-genai"]
    data = bytearray(framed_zstd(messages(proto)))
    data[-3:] = b"\x00\x00\x00"
    report, got = stored(tmp_path, "corrupt.pb", bytes(data))
    assert report.error is not None and "zstd" in report.error and got[0] == 0


# ---------------------------------------------------------------------------------------------
# Detection


def test_detects_a_first_request_larger_than_the_head(recorded):
    _, proto = recorded["otel-genai"]
    first = ExportTraceServiceRequest.FromString(messages(proto)[0])
    span = first.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="padding").value.string_value = "x" * 200_000
    data = prefixed([first.SerializeToString()])
    assert otlp_proto.detect(data[:65536], "spans.bin")
    assert detect_format(data[:65536], "spans.bin").name == "otlp-proto"


@pytest.mark.parametrize("head", [
    b'{"resourceSpans": []}\n',
    b"PAR1\x15\x04\x15\x10",
    b"\x00\x00\x00\x05\x0a\x09abc",  # its entry claims more than the request holds
    b"\x00\x00\x00\x02\x12\x00",  # field 2 first: no OTLP request starts so
    b"request_id,model\nr1,gpt-4o\n",
    b"\x00\x00\x00\x00",
])
def test_does_not_claim_other_files(head):
    assert not otlp_proto.detect(head, "x")


def test_registered_before_the_text_formats():
    names = [f.name for f in registry.registered()]
    assert names.index("otlp-proto") < names.index("jsonl")
    assert json.dumps(otlp_proto.FORMAT.doc)  # listed in --help


# ---------------------------------------------------------------------------------------------
# The direct conversion of trace requests agrees with protobuf's own


def _edge_request() -> ExportTraceServiceRequest:
    """Spans with every kind of attribute value, events, links, statuses and missing ids."""
    trace = "S/kvNXezTaajzpKdDg5HNg=="  # base64, as json_format takes bytes
    def span(span_id: str, **extra) -> dict:
        return {"traceId": trace, "spanId": span_id, "name": "chat gpt-4o",
                "startTimeUnixNano": "1772452800000000000", **extra}
    chat = [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "120"}}]
    return json_format.ParseDict({"resourceSpans": [
        {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bot"}},
                                     {"key": "service.version", "value": {"intValue": "7"}}]},
         "scopeSpans": [{"scope": {"name": "s"}, "spans": [
             span("AAAAAAAAAAE=", kind="SPAN_KIND_CLIENT", endTimeUnixNano="1772452801000000000",
                  attributes=chat + [
                      {"key": "gen_ai.response.time_to_first_chunk",
                       "value": {"doubleValue": 0.25}},
                      {"key": "x.nan", "value": {"doubleValue": "NaN"}},
                      {"key": "x.inf", "value": {"doubleValue": "-Infinity"}},
                      {"key": "x.bytes", "value": {"bytesValue": "3q2+7w=="}},
                      {"key": "x.bool", "value": {"boolValue": True}},
                      {"key": "x.empty", "value": {}},
                      {"key": "x.list", "value": {"arrayValue": {"values": [
                          {"stringValue": "a"}, {"intValue": "2"},
                          {"kvlistValue": {"values": [
                              {"key": "k", "value": {"doubleValue": 1.5}}]}}]}}}],
                  events=[{"name": "exception", "timeUnixNano": "1772452800500000000",
                           "attributes": [{"key": "exception.type",
                                           "value": {"stringValue": "openai.RateLimitError"}}]},
                          {"name": "gen_ai.evaluation.result",
                           "timeUnixNano": "1772452802000000000",
                           "attributes": [{"key": "gen_ai.evaluation.name",
                                           "value": {"stringValue": "relevance"}},
                                          {"key": "gen_ai.evaluation.score.value",
                                           "value": {"doubleValue": 0.75}}]}],
                  links=[{"traceId": trace, "spanId": "AAAAAAAAAAk="}],
                  status={"code": "STATUS_CODE_ERROR", "message": "Error code: 429"}),
             span("AAAAAAAAAAI=", parentSpanId="AAAAAAAAAAE=", attributes=chat,
                  status={}),
             span("", attributes=chat),  # no span id: rejected alone
             {"spanId": "AAAAAAAAAAM=", "name": "no trace id, no start"},
             span("AAAAAAAAAAQ=", attributes=[{"key": "gen_ai.usage.input_tokens",
                                              "value": {"intValue": "-5"}}]),
         ]}]},
        {"scopeSpans": [{"spans": [span("AAAAAAAAAAU=", name="")]}]},  # no resource
    ]}, ExportTraceServiceRequest())


def test_direct_conversion_gives_the_rows_of_message_to_dict(recorded):
    requests = [_edge_request()] + [
        ExportTraceServiceRequest.FromString(m)
        for name in ("otel-genai", "openinference") for m in messages(recorded[name][1])]
    for request in requests:
        parsed = []
        for doc in (json_format.MessageToDict(request), otlp_proto.trace_request_dict(request)):
            chunks = list(oc.parse_documents([(1, "", doc, None)], otlp.mappers(),
                                             otlp.choose_mapper))
            parsed.append(collect(chunks))
        (want, want_rejects, _), (got, rejects, _) = parsed
        for table in ("requests", "spans", "evals"):
            assert (got[table] is None) == (want[table] is None), table
            if want[table] is not None:
                assert got[table].equals(want[table]), table
        assert [(r.line, r.reason) for r in rejects] == [(r.line, r.reason)
                                                         for r in want_rejects]
    # the edge request exercises what it should: two calls (one an error, with an eval), the
    # span without a model, and three spans rejected alone
    edge, edge_rejects, _ = collect(list(oc.parse_documents(
        [(1, "", otlp_proto.trace_request_dict(requests[0]), None)], otlp.mappers(),
        otlp.choose_mapper)))
    assert edge["requests"]["status"].to_pylist() == ["error", "ok"]
    assert edge["evals"]["metric"].to_pylist() == ["relevance"]
    assert edge["spans"]["name"].to_pylist() == ["chat gpt-4o", "chat gpt-4o", None]
    assert sorted(r.reason for r in edge_rejects) == [
        "span not usable: gen_ai.usage.input_tokens is negative: -5",
        "span not usable: span has no spanId",
        "span not usable: span has no startTimeUnixNano"]


# ---------------------------------------------------------------------------------------------
# Large files: blocks of requests parsed by the worker processes


def test_worker_processes_give_exactly_the_one_process_rows(recorded, tmp_path, monkeypatch):
    """Blocks of a few requests, with a request that is no protobuf, one past the length limit
    and a cut at the end among them: the same rows, rejects and order with 2 workers as in one
    process (the worker pool of otlp-json, lib/ingest/formats/otlp_common.py)."""
    _, proto = recorded["otel-genai"]
    parts = messages(proto)
    limit = max(len(p) for p in parts) + 10
    monkeypatch.setattr(otlp_proto, "MAX_MESSAGE_BYTES", limit)  # (read in this process only)
    junk = b"\x0a\x05not protobuf at all \xff"
    body = prefixed(parts * 4 + [junk] + parts * 3) + prefixed([b"\x0a" * (limit + 1)]) \
        + prefixed(parts * 2) + prefixed([parts[0]])[:-7]
    path = _write(tmp_path, body, "many.pb")

    def parse(workers: int):
        with open(path, "rb") as f:
            return collect(list(oc.parse_blocks(
                otlp_proto.request_blocks(f, block_bytes=5000), otlp_proto.parse_request_block,
                otlp.mappers(), otlp.choose_mapper, workers=workers)))

    sent = []
    send = oc._Pool.send

    def counted_send(self, *args, **kwargs):
        ok = send(self, *args, **kwargs)
        sent.append(ok)
        return ok

    monkeypatch.setattr(oc._Pool, "send", counted_send)
    (want, want_rejects, _), (got, rejects, _) = parse(1), parse(2)
    blocks = list(otlp_proto.request_blocks(open(path, "rb"), block_bytes=5000))
    # every block went to a worker, and the pool is still fine
    assert sent == [True] * len(blocks) and len(blocks) > 3
    assert oc._POOL.ok
    for table in ("requests", "spans"):
        assert got[table].equals(want[table]), table
    n = len(parts)
    assert [(r.line, r.reason.split(" (")[0]) for r in rejects] == [
        (r.line, r.reason.split(" (")[0]) for r in want_rejects] == [
        (4 * n + 1, "not an OTLP export request in protobuf: Wire format was corrupt"),
        (7 * n + 2, f"the request is {limit + 1:,} bytes long, over the "
                    f"{limit / 2**20:g} MiB a request may have: not read"),
        (9 * n + 3, "the file ends inside the request")]
    assert got["requests"].num_rows == 9 * scenario_truth()["requests"]
    lines = got["spans"]["_line"].to_pylist()
    assert lines == sorted(lines) and set(lines) == (
        set(range(1, 9 * n + 3)) - {4 * n + 1, 7 * n + 2})


# ---------------------------------------------------------------------------------------------
# The older zstd layout: told from JSON, and a request over the limit is one quarantined request


def _first_entry_of_length(proto: Path, length: int) -> bytes:
    """A request of one real span, padded so that its resource entry is ``length`` bytes
    long: its serialized form starts 0x0A (a newline) then ``length`` (123 is ``{``, 91 is
    ``[``)."""
    span = ExportTraceServiceRequest.FromString(messages(proto)[0]) \
        .resource_spans[0].scope_spans[0].spans[0]
    span.ClearField("attributes")
    span.ClearField("events")
    for n in range(length):
        request = ExportTraceServiceRequest()
        entry = request.resource_spans.add()
        entry.resource.attributes.add(key="p").value.string_value = "x" * n
        entry.scope_spans.add().spans.append(span)
        if len(entry.SerializeToString()) == length:
            data = request.SerializeToString()
            assert data[:3] == bytes([0x0A, length, 0x0A])
            return data
    raise AssertionError(f"no padding gives {length}")


@pytest.mark.parametrize("length", [123, 91])
def test_a_request_that_starts_like_json_is_read_as_protobuf(recorded, tmp_path, length):
    _, proto = recorded["otel-genai"]
    first = _first_entry_of_length(proto, length)
    plain, expected = stored(tmp_path, "plain.pb", prefixed([first, *messages(proto)[1:]]))
    report, got = stored(tmp_path, "framed.pb",
                         framed_zstd([first, *messages(proto)[1:]]))
    assert (report.error, report.format, report.quarantined) == (None, "otlp-proto", 0)
    assert got == expected and report.stored == plain.stored


def test_a_framed_request_over_the_limit_is_quarantined_alone(recorded, tmp_path, monkeypatch):
    from lib.ingest import streams

    _, proto = recorded["otel-genai"]
    parts = messages(proto)
    limit = max(len(p) for p in parts) + 100
    monkeypatch.setattr(otlp_proto, "MAX_MESSAGE_BYTES", limit)
    monkeypatch.setattr(streams, "MAX_FRAMED_MESSAGE_BYTES", limit)
    big = ExportTraceServiceRequest.FromString(parts[1])
    big.resource_spans[0].resource.attributes.add(key="pad").value.string_value = "x" * 3 * limit
    big_data = big.SerializeToString()
    report, got = stored(tmp_path, "big.pb", framed_zstd([parts[0], big_data, *parts[2:]]))
    _, without = stored(tmp_path, "without.pb", prefixed([parts[0], *parts[2:]]))
    assert report.error is None and got == without
    # no byte offset: in a decompressed file it would not be the file's
    assert report.reasons == [
        f"request 2: the request is {len(big_data):,} bytes long, over the "
        f"{limit / 2**20:g} MiB a request may have: not read"]
