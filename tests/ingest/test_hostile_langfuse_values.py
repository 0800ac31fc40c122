"""Hostile values in Langfuse exports (lib/ingest/formats/langfuse.py).

The project's rule: one bad value never fails a file. A record whose token count, cost, duration,
time or score cannot be read is quarantined with a reason naming the field and the value (worded
like lib/ingest/validate.py's), and the records around it are stored; any other JSON value where
text is expected is stored as its JSON text; integers beyond 64 bits inside ``attributes`` are kept
as the numbers they are; text that is not valid UTF-8 quarantines its record. Nothing is silently
changed or dropped.
"""

from __future__ import annotations

import copy
import csv
import io
import json

import pytest

from lib.ingest.formats import langfuse
from lib.ingest.pipeline import ingest_paths
from lib.store import Engine
from tests.ingest.chunks import collect

ABSENT = object()  # a field value that removes the key


def generation(n: int, **fields) -> dict:
    """A valid GENERATION observation; ``fields`` set paths (``usageDetails__input``: the key
    ``input`` of ``usageDetails``) to a value, or remove them (ABSENT)."""
    rec = {
        "id": f"g{n}", "traceId": "t1", "type": "GENERATION", "name": "answer",
        "startTime": "2026-03-02T10:00:00.100Z", "endTime": "2026-03-02T10:00:01.600Z",
        "completionStartTime": "2026-03-02T10:00:00.500Z", "model": "gpt-4o-mini",
        "usageDetails": {"input": 176, "input_cached_tokens": 1024, "output": 96,
                         "output_reasoning_tokens": 10, "total": 1306},
        "costDetails": {"input": 0.0001, "output": 0.0002, "total": 0.0003},
    }
    return _set(rec, fields)


def score(n: int, **fields) -> dict:
    rec = {"id": f"sc{n}", "traceId": "t1", "observationId": f"g{n}", "name": "helpfulness",
           "value": 0.9, "dataType": "NUMERIC", "source": "EVAL",
           "timestamp": "2026-03-02T10:05:00Z"}
    return _set(rec, fields)


def _set(rec: dict, fields: dict) -> dict:
    for path, value in fields.items():
        *head, last = path.split("__")
        target = rec
        for key in head:
            target = target[key]
        if value is ABSENT:
            target.pop(last, None)
        else:
            target[last] = copy.deepcopy(value)
    return rec


def jsonl(*lines: dict | str) -> bytes:
    """One record per line; a str is written as is (JSON that json.dumps cannot write)."""
    return "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines).encode()


def json_array(*elements: dict | str) -> bytes:
    """A JSON array, one element per line: element i (from 0) starts on line i + 2."""
    return ("[\n" + ",\n".join(x if isinstance(x, str) else json.dumps(x)
                               for x in elements) + "\n]\n").encode()


def parse(data: bytes) -> tuple[dict, list[tuple[int, str]], list]:
    """(tables by name, (line, reason) of each quarantined record, the rejects themselves)."""
    tables, rejects, _ = collect(list(langfuse.parse(io.BytesIO(data), "export.json")))
    return tables, [(r.line, r.reason) for r in rejects], rejects


def column(tables: dict, table: str, name: str) -> list:
    return [] if tables[table] is None else tables[table][name].to_pylist()


# -- token counts ---------------------------------------------------------------------------------

BAD_COUNTS = [
    # (fields of the generation, reason)
    ({"usageDetails__input": "abc"}, "usageDetails.input is not an integer: abc"),
    ({"usageDetails__input": ""}, 'usageDetails.input is not an integer: ""'),
    ({"usageDetails__input": 1.5}, "usageDetails.input is not an integer: 1.5"),
    ({"usageDetails__output": True}, "usageDetails.output is not an integer: true"),
    ({"usageDetails__output": [1, 2]}, "usageDetails.output is not an integer: [1,2]"),
    ({"usageDetails__output": "1_000"}, "usageDetails.output is not an integer: 1_000"),
    ({"usageDetails__input_cached_tokens": -1},
     "usageDetails.input_cached_tokens is negative: -1"),
    ({"usageDetails__output_reasoning_tokens": "Infinity"},
     "usageDetails.output_reasoning_tokens is not an integer: Infinity"),
    ({"usageDetails__input": "1e400"}, "usageDetails.input is not an integer: 1e400"),
    ({"usageDetails__input": "99999999999999999999999"},
     "usageDetails.input is out of range: 99999999999999999999999"),
    ({"usageDetails__cache_creation_input_tokens": 1e20},
     "usageDetails.cache_creation_input_tokens is out of range: 1e+20"),
    ({"usageDetails__total": "abc"}, "usageDetails.total is not an integer: abc"),
    ({"usageDetails": "abc"}, "usageDetails is not a JSON object: abc"),
    ({"usageDetails": ABSENT, "usage": {"input": "abc", "output": 5}},
     "usage.input is not an integer: abc"),
    ({"usageDetails": ABSENT, "promptTokens": 1e20}, "promptTokens is out of range: 1e+20"),
]


@pytest.mark.parametrize(("fields", "reason"), BAD_COUNTS,
                         ids=[reason for _, reason in BAD_COUNTS])
def test_a_token_count_that_is_no_count_quarantines_its_generation_naming_field_and_value(
        fields, reason):
    bad = generation(2, **fields)
    # counts written as integral numbers or numeric text are counts
    also_good = generation(3, usageDetails={"input": "176", "input_cached_tokens": 1024.0,
                                            "output": " 96 ", "total": None})
    data = jsonl(generation(1), bad, also_good)
    tables, rejects, raw = parse(data)
    assert rejects == [(2, reason)]
    assert raw[0].raw == json.dumps(bad) + "\n"  # the line as read
    # nothing of the bad record is stored (neither its request nor its span); its neighbours are
    assert column(tables, "requests", "request_id") == ["g1", "g3"]
    assert column(tables, "spans", "span_id") == ["g1", "g3"]
    assert column(tables, "requests", "input_tokens") == [1200, 1200]
    assert column(tables, "requests", "cached_input_tokens") == [1024, 1024]
    assert column(tables, "requests", "output_tokens") == [106, 96]


def test_integral_decimal_text_of_a_count_keeps_every_digit():
    # 2**53 + 1: through a float (as this reader went before lib/ingest/values.py) it was ...992
    gen = generation(1, usageDetails={"input": "9007199254740993.0", "output": "1e3"})
    tables, rejects, _ = parse(jsonl(gen, generation(2, usageDetails__input="9007199254740993.9")))
    assert rejects == [(2, "usageDetails.input is not an integer: 9007199254740993.9")]
    assert column(tables, "requests", "input_tokens") == [9007199254740993]
    assert column(tables, "requests", "output_tokens") == [1000]


def test_a_count_far_below_zero_is_negative():
    tables, rejects, _ = parse(jsonl(generation(1, usageDetails__input=-(10**30)),  # a float
                                     generation(2, usageDetails__input="-1e30")))
    assert rejects == [(1, "usageDetails.input is negative: -1e+30"),
                       (2, "usageDetails.input is negative: -1e30")]


# -- costs, durations, times, scores --------------------------------------------------------------

BAD_NUMBERS = [
    ({"costDetails__total": "abc"}, "costDetails.total is not a finite number: abc"),
    ({"costDetails__total": "NaN"}, "costDetails.total is not a finite number: NaN"),
    ({"costDetails__total": ABSENT, "costDetails__input": "-0.5"},
     "costDetails.input is negative: -0.5"),
    ({"costDetails": [1, 2]}, "costDetails is not a JSON object: [1,2]"),
    ({"endTime": ABSENT, "latency": "abc"}, "latency is not a finite number: abc"),
    ({"completionStartTime": ABSENT, "timeToFirstToken": {"a": 1}},
     'timeToFirstToken is not a finite number: {"a":1}'),
    ({"startTime": 1e308}, "startTime is not a timestamp: 1e+308"),
    ({"startTime": None}, "missing startTime"),
    ({"endTime": "2026-13-45"}, "endTime is not a timestamp: 2026-13-45"),
    ({"endTime": True}, "endTime is not a timestamp: true"),
    ({"completionStartTime": 1e20}, "completionStartTime is not a timestamp: 1e+20"),
]


@pytest.mark.parametrize(("fields", "reason"), BAD_NUMBERS,
                         ids=[reason for _, reason in BAD_NUMBERS])
def test_a_cost_duration_or_time_that_cannot_be_read_quarantines_its_generation(fields, reason):
    bad = generation(2, **fields)
    tables, rejects, _ = parse(jsonl(generation(1), bad, generation(3)))
    assert rejects == [(2, reason)]
    assert column(tables, "requests", "request_id") == ["g1", "g3"]
    assert column(tables, "spans", "span_id") == ["g1", "g3"]


BAD_SCORES = [
    ({"value": "abc"}, "value is not a finite number: abc"),
    ({"value": [1]}, "value is not a finite number: [1]"),
    ({"value": "9" * 400}, "value is out of range: " + "9" * 57 + "..."),
    ({"value": "1_0"}, "value is not a finite number: 1_0"),
    ({"timestamp": "abc"}, "timestamp is not a timestamp: abc"),
    ({"timestamp": ABSENT, "createdAt": 1e308}, "createdAt is not a timestamp: 1e+308"),
]


@pytest.mark.parametrize(("fields", "reason"), BAD_SCORES, ids=[r for _, r in BAD_SCORES])
def test_a_score_whose_value_or_time_cannot_be_read_is_quarantined(fields, reason):
    tables, rejects, _ = parse(jsonl(score(1), score(2, **fields), score(3)))
    assert rejects == [(2, reason)]
    assert column(tables, "evals", "request_id") == ["g1", "g3"]
    assert column(tables, "evals", "score") == [0.9, 0.9]


def test_boolean_and_categorical_scores_keep_what_they_say():
    data = jsonl(score(1, dataType="BOOLEAN", value=True),
                 score(2, dataType="CATEGORICAL", value="correct"),  # ingestion API: a string
                 score(3, dataType="RANKING", value=3))  # a type this reader does not know
    tables, rejects, _ = parse(data)
    assert rejects == []
    rows = tables["evals"].select(["request_id", "score", "passed", "label"]).to_pylist()
    assert rows == [
        {"request_id": "g1", "score": 1.0, "passed": True, "label": "true"},
        {"request_id": "g2", "score": None, "passed": True, "label": "correct"},
        {"request_id": "g3", "score": 3.0, "passed": None, "label": None},
    ]
    assert json.loads(tables["evals"]["attributes"][2].as_py())["dataType"] == "RANKING"


# -- text columns ---------------------------------------------------------------------------------

def test_a_json_value_where_text_is_expected_is_stored_as_its_json_text():
    gen = generation(1, traceId=7, parentObservationId=[1, 2], name=True, model=42,
                     promptName={"a": 1}, promptVersion=2, userId=1.5,
                     release=3, environment=False, level="ERROR",
                     statusMessage={"code": 429})
    tables, rejects, _ = parse(jsonl(gen, score(1, observationId=8, name=5, traceId=9)))
    assert rejects == []
    request = tables["requests"].select([
        "request_id", "trace_id", "parent_id", "model", "prompt_name", "prompt_version",
        "user_id", "app_version", "environment", "status", "error_message",
        "error_type"]).to_pylist()
    assert request == [{
        "request_id": "g1", "trace_id": "7", "parent_id": "[1,2]", "model": "42",
        "prompt_name": '{"a":1}', "prompt_version": "2", "user_id": "1.5", "app_version": "3",
        "environment": "false", "status": "error", "error_message": '{"code":429}',
        "error_type": None}]
    assert tables["spans"].select(["span_id", "trace_id", "parent_id", "name"]).to_pylist() == [
        {"span_id": "g1", "trace_id": "7", "parent_id": "[1,2]", "name": "true"}]
    assert tables["evals"].select(["request_id", "case_id", "metric"]).to_pylist() == [
        {"request_id": "8", "case_id": "8", "metric": "5"}]


def test_metadata_that_is_no_object_is_kept_in_attributes():
    tables, rejects, _ = parse(jsonl(generation(1, metadata="team-a")))
    assert rejects == []
    assert json.loads(tables["requests"]["attributes"][0].as_py()) == {
        "name": "answer", "metadata": "team-a"}


def test_a_record_with_startTime_and_an_unknown_type_is_quarantined_naming_the_type():
    tables, rejects, _ = parse(jsonl(generation(1), generation(2, type="abc")))
    assert rejects == [(2, "type is not a Langfuse observation type: abc")]
    assert column(tables, "requests", "request_id") == ["g1"]


# -- numbers Python's json reads and orjson does not ----------------------------------------------

def test_integers_beyond_64_bits_are_kept_in_attributes_and_text_of_a_json_array():
    gen = generation(2, model=18446744073709551616, userId=-9223372036854775809,
                     modelParameters={"seed": 10**30, "temperature": 0.2},
                     metadata={"feature": "chat", "budget": 10**25})
    trace = {"id": "tr9", "timestamp": "2026-03-02T09:59:59Z", "name": 10**30,
             "tags": [18446744073709551616], "observations": [generation(3, traceId="tr9")]}
    tables, rejects, _ = parse(json_array(generation(1), gen, trace))
    assert rejects == []
    rows = tables["requests"].select(["request_id", "model", "user_id", "feature",
                                      "attributes"]).to_pylist()
    assert rows == [
        {"request_id": "g1", "model": "gpt-4o-mini", "user_id": None, "feature": None,
         "attributes": '{"name":"answer"}'},
        {"request_id": "g2", "model": "18446744073709551616", "user_id": "-9223372036854775809",
         "feature": "chat",
         "attributes": '{"name":"answer","modelParameters":{"seed":'
                       '1000000000000000000000000000000,"temperature":0.2},'
                       '"metadata":{"feature":"chat","budget":10000000000000000000000000}}'},
        {"request_id": "g3", "model": "gpt-4o-mini", "user_id": None, "feature": None,
         "attributes": '{"name":"answer","trace_name":1000000000000000000000000000000,'
                       '"tags":[18446744073709551616]}'},
    ]


def test_nan_infinity_and_1e400_are_read_in_a_json_array_and_in_json_lines():
    params = '{"temperature": NaN, "top_p": Infinity, "max_tokens": 1e400}'
    good = json.dumps(generation(1))[:-1] + f', "modelParameters": {params}}}'
    bad = json.dumps(generation(2))[:-1] + ', "latency": -Infinity}'
    bad = bad.replace('"endTime": "2026-03-02T10:00:01.600Z", ', "")
    for data, first in ((json_array(good, bad, generation(3)), 2),
                        (jsonl(good, bad, generation(3)), 1)):
        tables, rejects, _ = parse(data)
        # kept as the text they were written as (orjson would write them as null)
        assert json.loads(tables["requests"]["attributes"][0].as_py()) == {
            "name": "answer",
            "modelParameters": {"temperature": "NaN", "top_p": "Infinity", "max_tokens": "1e400"}}
        assert rejects == [(first + 1, "latency is not a finite number: -Infinity")]
        assert column(tables, "requests", "request_id") == ["g1", "g3"]


# -- text that is not UTF-8 -----------------------------------------------------------------------

def test_text_that_is_not_utf8_quarantines_its_record_in_a_json_array():
    bad_bytes = json.dumps(generation(2, model="ab\x1fcd")).replace("\\u001f", "\x1f")
    lone = json.dumps(generation(3, name="\ud800"))  # written as the escape \ud800
    emoji = json.dumps(generation(4, model="\U0001F600"))  # a surrogate pair: valid
    data = json_array(generation(1), bad_bytes, lone, emoji, generation(5))
    data = data.replace(b"ab\x1fcd", b"ab\xff\xfecd")
    tables, rejects, raw = parse(data)
    assert rejects == [(3, "model is not valid UTF-8 text: ab\ufffd\ufffdcd"),
                       (4, "name is not valid UTF-8 text: \ufffd")]
    assert '"model": "ab\ufffd\ufffdcd"' in raw[0].raw  # the raw text is valid UTF-8 too
    assert column(tables, "requests", "request_id") == ["g1", "g4", "g5"]
    assert column(tables, "requests", "model") == ["gpt-4o-mini", "\U0001F600", "gpt-4o-mini"]


def test_text_that_is_not_utf8_in_json_lines_names_its_field_even_nested():
    trace = {"id": "tr9", "timestamp": "2026-03-02T09:59:59Z",
             "observations": [generation(3, traceId="tr9", model="ab\x1fcd")]}
    data = jsonl(generation(1), generation(2, model="ab\x1fcd"), trace, generation(4))
    data = data.replace(b"ab\\u001fcd", b"ab\xff\xfecd")
    tables, rejects, _ = parse(data)
    assert rejects == [(2, "model is not valid UTF-8 text: ab\ufffd\ufffdcd"),
                       (3, "observations.0.model is not valid UTF-8 text: ab\ufffd\ufffdcd")]
    assert column(tables, "requests", "request_id") == ["g1", "g4"]


def test_one_bad_record_of_a_pretty_printed_api_page_does_not_take_the_page_with_it():
    records = [generation(1), generation(2, model="\ud800"),
               json.dumps(generation(3))[:-1] + ', "costDetails": {"total": NaN}}',
               generation(4)]
    data = ('{\n  "data": [\n' + ",\n".join(r if isinstance(r, str) else json.dumps(r)
                                            for r in records) + '\n  ],\n  "meta": {}\n}\n')
    tables, rejects, _ = parse(data.encode())
    assert rejects == [(1, "model is not valid UTF-8 text: \ufffd"),
                       (1, "costDetails.total is not a finite number: NaN")]
    assert column(tables, "requests", "request_id") == ["g1", "g4"]


def test_an_array_element_nested_too_deeply_for_python_is_skipped_and_the_others_go_on():
    deep = json.dumps(generation(2))[:-1] + ', "input": ' + "[" * 5000 + "]" * 5000 + "}"
    tables, rejects, _ = parse(json_array(generation(1), deep, generation(3)))
    assert [(line, reason.split(":")[0]) for line, reason in rejects] == [
        (3, "element not readable")]
    assert column(tables, "requests", "request_id") == ["g1", "g3"]


# -- the whole pipeline ---------------------------------------------------------------------------

def test_the_quarantine_keeps_file_line_and_reason_and_the_good_records_are_stored(lake, write):
    bad = generation(2, usageDetails__input="abc")
    path = write("langfuse.jsonl", jsonl(generation(1), bad, generation(3, model=42)))
    report = ingest_paths(lake, [str(path)], compact_min_files=0).files[0]
    assert report.error is None
    assert (report.stored.get("requests"), report.quarantined) == (2, 1)
    eng = Engine(lake)
    try:
        assert eng.query("SELECT request_id, model, input_tokens FROM requests "
                         "ORDER BY request_id").rows() == [("g1", "gpt-4o-mini", 1200),
                                                           ("g3", "42", 1200)]
        assert eng.query("SELECT source_file, line, reason, raw FROM quarantine").rows() == [
            (report.source, 2, "usageDetails.input is not an integer: abc",
             json.dumps(bad) + "\n")]
    finally:
        eng.close()


# -- the batch export's CSV -----------------------------------------------------------------------

def csv_export(*records: dict) -> bytes:
    """As transformStreamToCsv.ts writes it (langfuse/langfuse packages/shared/src/server/utils/
    transforms): the first record's keys as the header, every field quoted, objects as JSON
    text, null as an empty field."""
    def field(value):
        text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
        return '"' + text.replace('"', '""') + '"'

    header = list(records[0])
    return ("\n".join([",".join(field(k) for k in header)]
                      + [",".join(field(r.get(k)) for k in header) for r in records])
            + "\n").encode()


def test_csv_bad_values_quarantine_their_record_naming_field_and_value(monkeypatch):
    limit_before = csv.field_size_limit()
    monkeypatch.setattr(langfuse, "MAX_ELEMENT_CHARS", 4096)
    long = generation(4, input="x" * 5000 + '"\n"' * 3)  # over the limit, over several lines
    first = generation(1, input="short")  # its keys are the header
    data = csv_export(first, generation(2, usageDetails__input="abc"),
                      generation(3, model="ab\x1fcd"), long, generation(5))
    data = data.replace(b"ab\x1fcd", b"ab\xff\xfecd")
    tables, rejects, _ = parse(data)
    long_text = csv_export(first, long).split(b"\n", 2)[2]  # its lines, newlines too
    assert rejects == [
        (3, "usageDetails.input is not an integer: abc"),
        (4, "model is not valid UTF-8 text: ab\ufffd\ufffdcd"),
        (5, f"CSV record of {len(long_text):,} characters is longer than the limit of 4,096")]
    assert column(tables, "requests", "request_id") == ["g1", "g5"]
    # the long record spans lines 5 to 8; the next one starts on line 9
    assert column(tables, "requests", "_line") == [2, 9]
    assert csv.field_size_limit() == limit_before  # raised for a record only, then put back
