"""One hostile value in an OTLP span never fails the file, and is never silently changed.

Specifications for lib/ingest/formats/otlp_common.py, otlp.py and openinference.py, each on a
tiny OTLP JSON file (the Collector's encoding: one ExportTraceServiceRequest per line, int64 as
text) with the exact rows stored and the exact quarantine reasons:

A. a count that does not fit a float (1e400, Infinity) is quarantined, naming the attribute;
B. a count or a time beyond int64 (10**30, 2**64, -2**63 - 1, ±1e308) is quarantined, naming
   the field, instead of failing the whole file when the rows are turned into Arrow;
C. a span name, a status message or an error type that is not text is stored as its JSON text
   (42 -> "42"), as written;
D. no silent coercion: a count of "abc" or true is not stored as null, 1.5 is not stored as 1
   (nor, with 100 cache-read tokens, as 101), -1 is not turned into 99; a count that *is* an
   integer ("123", 12.0) is stored as that integer.
"""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pytest

from lib import schema
from lib.ingest.formats import openinference, otlp
from lib.ingest.formats import otlp_common as oc
from lib.ingest.pipeline import ingest_paths
from tests.ingest.chunks import collect

T0_NS = 1_772_452_800_000_000_000  # 2026-03-02T12:00:00Z

GENAI = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
         "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1000,
         "gen_ai.usage.output_tokens": 500}
OPENINFERENCE = {"openinference.span.kind": "LLM", "llm.provider": "openai",
                 "llm.model_name": "gpt-4o", "llm.token_count.prompt": 1000,
                 "llm.token_count.completion": 500}
CONVENTIONS = {"genai": (GENAI, otlp.FORMAT),
               "openinference": (OPENINFERENCE, openinference.FORMAT)}


def _value(value) -> dict:
    """An AnyValue: given as one (``{"stringValue": ...}``) or made from a Python value."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)).endswith("Value"):
        return value
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value}


def span(n: int, attrs: dict, **fields) -> dict:
    """Span ``n`` (span id n in hex) with ``attrs``; ``fields`` replace envelope fields."""
    start = T0_NS + n * 1_000_000_000
    raw = {"traceId": f"{n:032x}", "spanId": f"{n:016x}", "name": "chat gpt-4o", "kind": 3,
           "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 850_000_000),
           "attributes": [{"key": k, "value": _value(v)} for k, v in attrs.items()],
           "status": {}}
    raw.update(fields)
    return raw


def line(*spans: dict) -> str:
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}]}]})


def parse(lines: list[str], fmt=otlp.FORMAT) -> tuple[dict, list[tuple[int, str]]]:
    """Tables (as lists of row dicts) and (line, reason) of each reject."""
    data = ("\n".join(lines) + "\n").encode()
    tables, rejects, _ = collect(list(fmt.parse(io.BytesIO(data), "spans.jsonl")))
    rows = {name: (t.to_pylist() if t is not None else []) for name, t in tables.items()}
    return rows, [(r.line, r.reason) for r in rejects]


def tokens(rows: dict) -> list[tuple]:
    """(request id, input, cached input, output, reasoning, line) of each stored request."""
    return [(r["request_id"], r["input_tokens"], r["cached_input_tokens"], r["output_tokens"],
             r["reasoning_tokens"], r["_line"]) for r in rows["requests"]]


def sid(n: int) -> str:
    return f"{n:016x}"


def _between_good_spans(convention: str, hostile: dict) -> tuple[dict, list]:
    """Line 1 and line 3: valid model calls; line 2: the same with ``hostile`` attributes."""
    base, fmt = CONVENTIONS[convention]
    return parse([line(span(1, base)), line(span(2, {**base, **hostile})),
                  line(span(3, base))], fmt)


GOOD_NEIGHBOURS = [(sid(1), 1000, 0, 500, 0, 1), (sid(3), 1000, 0, 500, 0, 3)]


# ---------------------------------------------------------------------------------------------
# A. counts that do not fit a float


@pytest.mark.parametrize(("convention", "key", "value", "shown"), [
    ("genai", "gen_ai.usage.input_tokens", {"stringValue": "1e400"}, "1e400"),
    ("genai", "gen_ai.usage.output_tokens", {"doubleValue": "Infinity"}, "Infinity"),
    ("genai", "gen_ai.usage.cache_read.input_tokens", {"stringValue": "-Infinity"},
     "-Infinity"),
    ("genai", "gen_ai.usage.prompt_tokens", {"intValue": "1e400"}, "1e400"),
    ("openinference", "llm.token_count.prompt", {"stringValue": "1e400"}, "1e400"),
    ("openinference", "llm.token_count.completion_details.reasoning",
     {"doubleValue": "Infinity"}, "Infinity"),
])
def test_a_count_beyond_any_float_quarantines_its_span_only(convention, key, value, shown):
    hostile = {key: value}
    if key == "gen_ai.usage.prompt_tokens":  # the older name, read when the current is absent
        hostile["gen_ai.usage.input_tokens"] = None
    rows, rejects = _between_good_spans(convention, hostile)
    assert rejects == [(2, f"span not usable: {key} is not an integer: {shown}")]
    assert tokens(rows) == GOOD_NEIGHBOURS
    assert [s["span_id"] for s in rows["spans"]] == [sid(1), sid(3)]


# ---------------------------------------------------------------------------------------------
# B. counts and times beyond int64


@pytest.mark.parametrize(("convention", "key", "value", "shown"), [
    ("genai", "gen_ai.usage.input_tokens", {"intValue": "1" + "0" * 30}, "1" + "0" * 30),
    ("genai", "gen_ai.usage.input_tokens", {"stringValue": "99999999999999999999999"},
     "99999999999999999999999"),
    ("genai", "gen_ai.usage.output_tokens", {"intValue": "18446744073709551616"},
     "18446744073709551616"),
    ("genai", "gen_ai.usage.cache_creation.input_tokens", {"doubleValue": 1e308}, "1e+308"),
    # protobuf's printer writes int64 as a JSON number; orjson reads 10**30 as a float
    ("openinference", "llm.token_count.completion", {"intValue": 10**30}, "1e+30"),
    ("openinference", "llm.token_count.prompt_details.cache_read",
     {"intValue": "9223372036854775808"}, "9223372036854775808"),
])
def test_a_count_beyond_int64_quarantines_its_span_only(convention, key, value, shown):
    rows, rejects = _between_good_spans(convention, {key: value})
    assert rejects == [(2, f"span not usable: {key} is out of range: {shown}")]
    assert tokens(rows) == GOOD_NEIGHBOURS


@pytest.mark.parametrize(("key", "value", "shown"), [
    ("gen_ai.usage.reasoning.output_tokens", {"intValue": "-9223372036854775809"},
     "-9223372036854775809"),
    ("gen_ai.usage.output_tokens", {"doubleValue": -1e308}, "-1e+308"),
])
def test_a_count_below_int64_is_negative_first(key, value, shown):
    # a count is never below 0: that is what is wrong with it, however far below (Langfuse's
    # reason too; this said "out of range" before lib/ingest/values.py)
    rows, rejects = _between_good_spans("genai", {key: value})
    assert rejects == [(2, f"span not usable: {key} is negative: {shown}")]
    assert tokens(rows) == GOOD_NEIGHBOURS


def test_cached_parts_added_beyond_int64_quarantine_the_span():
    # cache reads exceeding the input prove they were reported outside it: they are added, and
    # the sum must still fit
    big = 2**62
    rows, rejects = _between_good_spans("genai", {
        "gen_ai.usage.input_tokens": 5, "gen_ai.usage.cache_read.input_tokens": big,
        "gen_ai.usage.cache_creation.input_tokens": big})
    assert rejects == [(2, "span not usable: input_tokens with the cached tokens added is out "
                           f"of range: {2 * big + 5}")]
    assert tokens(rows) == GOOD_NEIGHBOURS


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("startTimeUnixNano", "99999999999999999999999",
     "startTimeUnixNano is out of range: 99999999999999999999999"),
    ("startTimeUnixNano", 1e308, "startTimeUnixNano is out of range: 1e+308"),
    ("startTimeUnixNano", -1e308, "startTimeUnixNano is out of range: -1e+308"),
    ("startTimeUnixNano", 10**30, "startTimeUnixNano is out of range: 1e+30"),
    ("startTimeUnixNano", "-1", "startTimeUnixNano is out of range: -1"),
    ("startTimeUnixNano", "1e400", "startTimeUnixNano is not an integer: 1e400"),
    ("startTimeUnixNano", "yesterday", "startTimeUnixNano is not an integer: yesterday"),
    ("status", {"code": 7}, "status.code is not a status code: 7"),
    ("status", {"code": "STATUS_CODE_BOGUS"},
     "status.code is not a status code: STATUS_CODE_BOGUS"),
    ("status", {"code": True}, "status.code is not a status code: true"),
    ("status", {"code": 2.0}, "status.code is not a status code: 2.0"),
    ("endTimeUnixNano", 10**30, "endTimeUnixNano is out of range: 1e+30"),
    ("endTimeUnixNano", "18446744073709551616",
     "endTimeUnixNano is out of range: 18446744073709551616"),
    ("endTimeUnixNano", "soon", "endTimeUnixNano is not an integer: soon"),
])
def test_a_span_time_or_status_that_is_no_such_thing_quarantines_the_span(field, value, reason):
    rows, rejects = parse([line(span(1, GENAI), span(2, GENAI, **{field: value})),
                           line(span(3, GENAI))])
    assert rejects == [(1, f"span not usable: {reason}")]
    assert tokens(rows) == [(sid(1), 1000, 0, 500, 0, 1), (sid(3), 1000, 0, 500, 0, 2)]
    assert [(s["span_id"], s["duration_ms"]) for s in rows["spans"]] == [(sid(1), 850.0),
                                                                          (sid(3), 850.0)]


def test_an_evaluation_time_out_of_range_quarantines_that_evaluation_only():
    def evaluation(metric: str, t) -> dict:
        return {"name": "gen_ai.evaluation.result", "timeUnixNano": t, "attributes": [
            {"key": "gen_ai.evaluation.name", "value": {"stringValue": metric}},
            {"key": "gen_ai.evaluation.score.value", "value": {"doubleValue": 0.5}}]}

    t = str(T0_NS + 2_000_000_000 + 5_000)
    rows, rejects = parse([line(span(1, GENAI)), line(span(2, GENAI, events=[
        evaluation("relevance", "1" + "0" * 30), evaluation("toxicity", t),
        evaluation("tone", {"doubleValue": 1.5})]))])
    assert rejects == [
        (2, f"gen_ai.evaluation.result event of span {sid(2)} not usable: timeUnixNano is out "
            f"of range: 1{'0' * 30}"),
        (2, f"gen_ai.evaluation.result event of span {sid(2)} not usable: timeUnixNano is not "
            'an integer: {"doubleValue":1.5}'),
    ]
    assert tokens(rows) == [(sid(1), 1000, 0, 500, 0, 1), (sid(2), 1000, 0, 500, 0, 2)]
    assert [(e["metric"], e["score"], e["request_id"], e["ts"].timestamp(), e["_line"])
            for e in rows["evals"]] == [("toxicity", 0.5, sid(2), 1772452802.000005, 2)]


# ---------------------------------------------------------------------------------------------
# C. text columns given other JSON values


def test_span_name_status_message_and_error_type_that_are_not_text_are_stored_as_json_text():
    error = {"code": 2, "message": [1, 2]}
    rows, rejects = parse([
        line(span(1, GENAI, name=42)),
        line(span(2, GENAI, name={"a": 1}, status=error)),
        line(span(3, {"gen_ai.operation.name": "execute_tool"}, name=True,
                  status={"code": 2, "message": 3.5})),
        line(span(4, {**GENAI, "error.type": 1.5}, status={"code": 2, "message": False})),
        # false is a value, not an absent one: not replaced by the response model
        line(span(5, {**GENAI, "gen_ai.request.model": False,
                      "gen_ai.response.model": "gpt-4o-2024-08-06"})),
    ])
    assert rejects == []
    assert [(s["span_id"], s["name"], s["kind"], s["status"]) for s in rows["spans"]] == [
        (sid(1), "42", "llm", "ok"), (sid(2), '{"a":1}', "llm", "error"),
        (sid(3), "true", "tool", "error"), (sid(4), "chat gpt-4o", "llm", "error"),
        (sid(5), "chat gpt-4o", "llm", "ok")]
    assert [(r["request_id"], r["model"], r["status"], r["error_type"], r["error_message"])
            for r in rows["requests"]] == [
        (sid(1), "gpt-4o", "ok", None, None), (sid(2), "gpt-4o", "error", None, "[1,2]"),
        (sid(4), "gpt-4o", "error", "1.5", "false"),  # "1.5" is no module path to strip
        (sid(5), "false", "ok", None, None)]


# ---------------------------------------------------------------------------------------------
# D. no silent coercion of counts


@pytest.mark.parametrize("convention", ["genai", "openinference"])
def test_counts_are_integers_or_the_span_is_quarantined_never_coerced(convention):
    base, fmt = CONVENTIONS[convention]
    inp, cached = (("gen_ai.usage.input_tokens", "gen_ai.usage.cache_read.input_tokens")
                   if convention == "genai" else
                   ("llm.token_count.prompt", "llm.token_count.prompt_details.cache_read"))
    cases = [
        {inp: {"stringValue": "123"}},                       # OTLP's int64 text: 123
        {inp: {"doubleValue": 12.0}},                        # an integral float: 12
        {inp: {"stringValue": "abc"}},                       # was stored as null
        {inp: {"boolValue": True}},                          # was stored as null
        {inp: {"doubleValue": 1.5}, cached: 100},            # was stored as 101
        {inp: {"intValue": 1.5}, cached: 100},               # protobuf number: was 101 too
        {inp: {"stringValue": "-1"}, cached: 100},           # was stored as 99
        {inp: 1000, cached: {"stringValue": "lots"}},        # was stored as 0
    ]
    rows, rejects = parse([line(span(n, {**base, **c})) for n, c in enumerate(cases, 1)], fmt)
    assert tokens(rows) == [(sid(1), 123, 0, 500, 0, 1), (sid(2), 12, 0, 500, 0, 2)]
    assert rejects == [
        (3, f"span not usable: {inp} is not an integer: abc"),
        (4, f"span not usable: {inp} is not an integer: true"),
        (5, f"span not usable: {inp} is not an integer: 1.5"),
        (6, f"span not usable: {inp} is not an integer: 1.5"),
        (7, f"span not usable: {inp} is negative: -1"),
        (8, f"span not usable: {cached} is not an integer: lots"),
    ]


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_integral_decimal_text_keeps_every_digit(convention):
    base, fmt = CONVENTIONS[convention]
    inp = "gen_ai.usage.input_tokens" if convention == "genai" else "llm.token_count.prompt"
    # 2**53 + 1: a float cannot hold it (float("9007199254740993.0") is ...992)
    rows, rejects = parse([line(span(1, {**base, inp: {"stringValue": "9007199254740993.0"}}))],
                          fmt)
    assert rejects == []
    assert [r["input_tokens"] for r in rows["requests"]] == [9007199254740993]


@pytest.mark.parametrize("status", [
    {}, {"code": 0}, {"code": "0"}, {"code": ""}, {"code": "STATUS_CODE_UNSET"},
    {"code": 1}, {"code": "STATUS_CODE_OK"}, {"message": "only a message"},
    {"code": 2}, {"code": "2"}, {"code": "STATUS_CODE_ERROR"},
])
def test_every_status_code_the_encodings_write_is_read(status):
    rows, rejects = parse([line(span(1, GENAI, status=status))])
    assert rejects == []
    error = status.get("code") in (2, "2", "STATUS_CODE_ERROR")
    assert [r["status"] for r in rows["requests"]] == ["error" if error else "ok"]


def test_integral_decimal_text_with_a_fraction_past_a_floats_digits_is_no_integer():
    inp = "gen_ai.usage.input_tokens"
    rows, rejects = parse([line(span(1, {**GENAI, inp: {"stringValue": "9007199254740993.9"}}),
                                span(2, GENAI, startTimeUnixNano="1772452800000000000.7"))])
    assert rejects == [
        (1, f"span not usable: {inp} is not an integer: 9007199254740993.9"),
        (1, "span not usable: startTimeUnixNano is not an integer: 1772452800000000000.7")]


def test_attribute_values_are_kept_as_written_when_not_of_their_wrapper_type():
    rows, rejects = parse([line(span(1, {
        "flag": {"boolValue": "yes"},        # was stored as false
        "ratio": {"doubleValue": "NaN"},     # was stored as null (JSON has no NaN)
        "count": {"intValue": 2.5},          # was stored as 2
        "note": {"stringValue": None},       # was stored as "None"
        "ok": {"boolValue": "true"}, "n": {"intValue": "7"}, "x": {"doubleValue": "0.5"},
    }))])
    assert rejects == []
    assert json.loads(rows["spans"][0]["attributes"]) == {
        "service.name": "api", "flag": "yes", "ratio": "NaN", "count": 2.5, "note": None,
        "ok": True, "n": 7, "x": 0.5}


# ---------------------------------------------------------------------------------------------
# The shared helpers (Langfuse uses them too)


# (the value checkers themselves: tests/ingest/test_values.py)


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_python_only_number_syntax_is_no_count(convention):
    # int("1_000") and int("١٢") are Python's syntax, not an OTLP int64: kept as written in the
    # attribute (not silently made 1000), so a count of it quarantines the span
    base, fmt = CONVENTIONS[convention]
    inp = "gen_ai.usage.input_tokens" if convention == "genai" else "llm.token_count.prompt"
    rows, rejects = parse([line(span(1, {**base, inp: {"intValue": "1_000"}})),
                           line(span(2, {**base, inp: {"stringValue": "\u0661\u0662"}})),
                           line(span(3, {**base, inp: {"intValue": " 12 "}}))], fmt)
    assert rejects == [(1, f"span not usable: {inp} is not an integer: 1_000"),
                       (2, f"span not usable: {inp} is not an integer: \u0661\u0662")]
    assert [r["input_tokens"] for r in rows["requests"]] == [12]


def test_python_only_number_syntax_is_kept_as_written_in_attributes():
    rows, rejects = parse([line(span(1, {"gen_ai.operation.name": "execute_tool",
                                         "a": {"intValue": "1_000"}, "b": {"doubleValue": "1_0.5"},
                                         "c": {"intValue": "\u0661"}, "d": {"intValue": "-7"}}))])
    assert rejects == []
    assert json.loads(rows["spans"][0]["attributes"]) == {
        "service.name": "api", "gen_ai.operation.name": "execute_tool", "a": "1_000",
        "b": "1_0.5", "c": "\u0661", "d": -7}


@pytest.mark.parametrize(("attrs", "reason"), [
    ({"gen_ai.response.time_to_first_chunk": {"doubleValue": -0.5}},
     "gen_ai.response.time_to_first_chunk is negative: -0.5"),
    ({"gen_ai.response.time_to_first_chunk": {"stringValue": "1e400"}},
     "gen_ai.response.time_to_first_chunk is not a finite number: 1e400"),
    ({"gen_ai.response.time_to_first_chunk": {"stringValue": "9" * 400}},
     "gen_ai.response.time_to_first_chunk is out of range: " + "9" * 57 + "..."),
])
def test_a_time_to_first_chunk_that_is_no_duration_quarantines_the_span(attrs, reason):
    rows, rejects = _between_good_spans("genai", attrs)
    assert rejects == [(2, f"span not usable: {reason}")]
    assert tokens(rows) == GOOD_NEIGHBOURS


def test_a_negative_openinference_cost_quarantines_the_span():
    rows, rejects = _between_good_spans("openinference", {"llm.cost.total": -0.25})
    assert rejects == [(2, "span not usable: llm.cost.total is negative: -0.25")]
    assert tokens(rows) == GOOD_NEIGHBOURS


def test_a_row_arrow_cannot_store_becomes_a_reject_not_a_failed_file():
    batch = oc.Batch()
    good = dict.fromkeys(oc.REQUEST_COLUMNS)
    good.update(request_id="r1", ts=1_772_452_800_000_000, model="gpt-4o", input_tokens=10)
    batch.requests += [tuple(good.values()), tuple({**good, "request_id": "r2",
                                                    "input_tokens": 10**30}.values()),
                       tuple({**good, "request_id": "r3"}.values())]
    batch.request_lines += [4, 5, 6]
    chunk = batch.flush()
    table = chunk.tables["requests"]
    assert table.schema.field("input_tokens").type == pa.int64()
    assert table.select(["request_id", "input_tokens", "_line"]).to_pylist() == [
        {"request_id": "r1", "input_tokens": 10, "_line": 4},
        {"request_id": "r3", "input_tokens": 10, "_line": 6}]
    assert [(r.line, r.reason) for r in chunk.rejects] == [
        (5, f"input_tokens cannot be stored as int64: {10**30}")]
    assert json.loads(chunk.rejects[0].raw)["request_id"] == "r2"
    assert table.schema.field("ts").type == schema.REQUESTS.field("ts").type


def test_an_attribute_past_64_bits_or_a_key_that_is_not_text_costs_nothing(lake, tmp_path):
    """Both used to fail the span's whole resourceSpans entry (its JSON text was written outside
    the span's error handling), losing the spans after it."""
    def span(i, extra=None):
        attrs = [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                 {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                 {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}}]
        return {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": f"b7ad6b716920333{i}",
                "name": "chat gpt-4o", "startTimeUnixNano": "1772452800000000000",
                "endTimeUnixNano": "1772452801000000000", "attributes": attrs + (extra or [])}
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [
        span(1), span(2, [{"key": "x.big", "value": {"intValue": "99999999999999999999"}}]),
        span(3, [{"key": 7, "value": {"stringValue": "k"}}])]}]}]}
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps(doc) + "\n")
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.stored, f.quarantined, f.error) == ({"requests": 3, "spans": 3}, 0, None)


def test_a_span_with_bytes_that_are_not_utf8_is_quarantined_alone(lake, tmp_path):
    """orjson refuses the whole line; the line is read again by Python's json and only the span
    holding such text (a byte that is not UTF-8, or a lone surrogate escape) is quarantined."""
    def span(i, model):
        return ('{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b71692033'
                + f"{i:02d}" + '", "name": "chat", "startTimeUnixNano": "1772452800000000000", '
                '"endTimeUnixNano": "1772452801000000000", "attributes": [{"key": '
                '"gen_ai.operation.name", "value": {"stringValue": "chat"}}, {"key": '
                '"gen_ai.request.model", "value": {"stringValue": "' + model + '"}}]}')
    line = ('{"resourceSpans": [{"scopeSpans": [{"spans": [' + ", ".join(
        [span(1, "gpt-4o"), span(2, "gpt-4o-\xe9"), span(3, "gpt-4o-\\ud800"), span(4, "gpt-4o")])
        + "]}]}]}\n")
    path = tmp_path / "u.jsonl"
    path.write_bytes(line.encode("latin-1"))
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.stored, f.quarantined, f.error) == ({"requests": 2, "spans": 2}, 2, None)
    assert f.reasons == ["line 1: span not usable: not valid UTF-8 text"] * 2
