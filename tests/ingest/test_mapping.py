"""A user's YAML mapping: paths, constants, sums, s → ms, epoch timestamps; bad rows
quarantined."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest

from lib.ingest.mapping import MappingError, load, loads
from lib.ingest.pipeline import ingest_paths
from lib.pricing import request_cost
from lib.store import Engine

MAPPING = """
table: requests
columns:
  request_id: id
  ts: {path: started, unit: s}
  latency_ms: {path: timing.duration, unit: s}
  provider: {value: openai}
  model: llm.name
  input_tokens: usage.prompt
  output_tokens: usage.completion
  logged_cost_usd: {path: cost_cents, scale: 0.01}
"""

# A CSV of the user's own column names: rid, when, m, secs (seconds).
CSV_MAPPING = ("table: requests\ncolumns:\n  request_id: rid\n  ts: when\n  model: m\n"
               "  latency_ms: {path: secs, unit: s}\n")


def test_mapping_converts_units_and_constants(lake, tmp_path, totals):
    spec = tmp_path / "my.yaml"
    spec.write_text(MAPPING)
    rows = [{"id": "a", "started": 1772452800, "timing": {"duration": 1.5},
             "llm": {"name": "gpt-4o"}, "usage": {"prompt": 1000, "completion": 500},
             "cost_cents": 0.75, "team": "x"},
            {"id": "b", "started": 1772452860, "timing": {"duration": 0.25},
             "llm": {"name": "gpt-4o"}, "usage": {"prompt": 10, "completion": -1}}]
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 1}, 1)
    assert f.reasons == ["line 2: output_tokens is negative: -1"]
    assert totals("SELECT request_id, strftime(ts, '%Y-%m-%dT%H:%M:%S'), latency_ms, provider, "
                  "cost_usd, logged_cost_usd, attributes FROM requests") == \
        ("a", "2026-03-02T12:00:00", 1500.0, "openai", 0.0075, 0.0075, '{"team":"x"}')


def test_mapping_reads_csv_too(lake, tmp_path, totals):
    spec = tmp_path / "m.yaml"
    spec.write_text(CSV_MAPPING)
    data = tmp_path / "x.csv"
    data.write_text("rid,when,m,secs\n1,2026-03-02 12:00:00,gpt-4o,0.5\n")
    assert ingest_paths(lake, [str(data)], mapping=spec).files[0].stored == {"requests": 1}
    assert totals("SELECT latency_ms FROM requests") == (500.0,)


def test_a_mapped_csv_record_that_fails_is_quarantined_as_written(lake, tmp_path, totals):
    spec = tmp_path / "m.yaml"
    spec.write_text(CSV_MAPPING)
    data = tmp_path / "x.csv"
    data.write_text("rid,when,m,secs,team\n1,2026-03-02 12:00:00,gpt-4o,0.5,x\n"
                    "2,2026-03-02 12:00:00,gpt-4o,-1,y\n")
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 1}, 1)
    assert totals("SELECT line, raw FROM quarantine") == (3, "2,2026-03-02 12:00:00,gpt-4o,-1,y")


def test_a_mapped_json_line_that_fails_is_quarantined_as_written(lake, tmp_path, totals):
    # The user's own names and layout, not the canonical columns the mapping made of them.
    spec = tmp_path / "my.yaml"
    spec.write_text(MAPPING)
    bad = ('{"id": "b",  "started": 1772452860, "llm": {"name": "gpt-4o"}, '
           '"usage": {"prompt": 10, "completion": -1}, "team": "x"}')
    good = json.dumps({"id": "a", "started": 1772452800, "llm": {"name": "gpt-4o"},
                       "usage": {"prompt": 1, "completion": 1}})
    data = tmp_path / "mine.jsonl"
    data.write_text(good + "\n\n" + bad + "\r\n")
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 1}, 1)
    assert totals("SELECT line, raw FROM quarantine") == (3, bad)


@pytest.mark.parametrize("sep", [";", "\t"])
def test_mapping_reads_csv_of_its_own_names_with_any_separator(lake, tmp_path, totals, sep):
    # The separator is the one naming the most canonical columns; a mapping's CSV has its own
    # names (none canonical), so the one giving the most fields wins.
    spec = tmp_path / "m.yaml"
    spec.write_text(CSV_MAPPING)
    data = tmp_path / "x.csv"
    data.write_text(sep.join(["rid", "when", "m", "secs"]) + "\n"
                    + sep.join(["1", "2026-03-02 12:00:00", "gpt-4o", "0.5"]) + "\n")
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 1}, 0)
    assert totals("SELECT latency_ms, model FROM requests") == (500.0, "gpt-4o")


@pytest.mark.parametrize("text, message", [
    ("table: nope\ncolumns: {a: b}", "table must be"),
    ("table: requests\ncolumns: {nope: x}", "not a column of requests"),
    ("table: requests\ncolumns: {model: {unit: s}}", "needs a path, a value or a sum"),
    ("table: requests\ncolumns: {input_tokens: {path: x, unit: s}}", "not allowed"),
    ("table: requests\ncolumns: {input_tokens: {sum: a.b}}", "sum must be a list of field paths"),
    ("table: requests\ncolumns: {input_tokens: {sum: []}}", "sum must be a list of field paths"),
    ("table: requests\ncolumns: {input_tokens: {sum: [a, b], path: c}}", "cannot be combined"),
    ("table: requests\ncolumns: {model: {sum: [a, b]}}", "only for numeric columns"),
    ("table: requests\ncolumns: {ts: {sum: [a, b], unit: s}}", "only for numeric columns"),
    ("table: requests\ncolumns: {input_tokens: {sum: [a, b], unit: s}}", "not allowed"),
    ("table: requests\ninput: jsonl\nrecords: data\ncolumns: {model: m}", "json only"),
])
def test_malformed_mapping_names_the_problem(tmp_path, text, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    with pytest.raises(MappingError, match=message):
        load(spec)
    with pytest.raises(MappingError, match=f"^Mapping: .*{message}"):  # as typed on the Data page
        loads(text, "Mapping")


def test_a_mapping_typed_as_text_reads_as_its_file_does(lake, tmp_path, totals):
    spec = tmp_path / "my.yaml"
    spec.write_text(MAPPING)
    typed = loads(MAPPING, "Mapping", label="Data page")
    from_file = load(spec)
    assert (typed.name, from_file.name) == ("mapping:Data page", "mapping:my.yaml")
    assert typed.identity == from_file.identity  # the same text: a file read once under it
    with pytest.raises(MappingError, match="^Mapping: cannot read mapping"):
        loads("table: [", "Mapping")


def test_a_mapping_that_is_no_yaml_is_said_in_one_line_with_where(tmp_path):
    # PyYAML's own message ran over five lines quoting the document, in cron's mail and the CLI's
    # one-line error (review): a prices file's is one line with the line and column already
    spec = tmp_path / "my.yaml"
    spec.write_text("table: requests\ncolumns:\n  request_id: [\n")
    with pytest.raises(MappingError) as caught:
        load(spec)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{spec}: cannot read mapping (line 4, column 1: ")


# Anthropic's raw Messages API usage: usage.input_tokens EXCLUDES cache reads and cache writes,
# which Sightline's input_tokens includes (lib/schema.py), so the mapping must add them up.
ANTHROPIC = """
table: requests
columns:
  request_id: id
  ts: {path: started, unit: s}
  provider: {value: anthropic}
  model: model
  input_tokens: {sum: [usage.input_tokens, usage.cache_read_input_tokens,
                       usage.cache_creation_input_tokens]}
  cached_input_tokens: usage.cache_read_input_tokens
  cache_write_tokens: usage.cache_creation_input_tokens
  output_tokens: usage.output_tokens
"""
# OpenAI's usage.prompt_tokens already INCLUDES prompt_tokens_details.cached_tokens: no sum.
OPENAI = """
table: requests
columns:
  request_id: id
  ts: {path: started, unit: s}
  provider: {value: openai}
  model: model
  input_tokens: usage.prompt_tokens
  cached_input_tokens: usage.prompt_tokens_details.cached_tokens
  output_tokens: usage.completion_tokens
"""
T0_EPOCH = 1772452800  # 2026-03-02T12:00:00Z


def _ingest(lake, tmp_path, mapping: str, rows: list[dict]):
    spec = tmp_path / "m.yaml"
    spec.write_text(mapping)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ingest_paths(lake, [str(data)], mapping=spec, overrides={}).files[0]


def _anthropic_row(i: str, **usage) -> dict:
    return {"id": i, "started": T0_EPOCH, "model": "claude-3-5-sonnet", "usage": usage}


TOKENS = ("SELECT list(input_tokens ORDER BY request_id), "
          "list(cached_input_tokens ORDER BY request_id), "
          "list(cache_write_tokens ORDER BY request_id), list(output_tokens ORDER BY request_id), "
          "list(cost_usd ORDER BY request_id) FROM requests")


def test_anthropic_usage_is_summed_into_input_tokens(lake, tmp_path, totals):
    # a: 1000 uncached + 800 cache reads + 200 cache writes = 2000 input tokens. Mapped to
    # usage.input_tokens alone it would be stored as 1000 and priced too low; b, with more cache
    # reads than raw input tokens, would be quarantined as cached > input.
    f = _ingest(lake, tmp_path, ANTHROPIC, [
        _anthropic_row("a", input_tokens=1000, cache_read_input_tokens=800,
                       cache_creation_input_tokens=200, output_tokens=50),
        _anthropic_row("b", input_tokens=5, cache_read_input_tokens=3000, output_tokens=1)])
    assert (f.stored, f.quarantined) == ({"requests": 2}, 0)
    inputs, cached, written, outputs, costs = totals(TOKENS)
    assert (inputs, cached, written, outputs) == ([2000, 3005], [800, 3000], [200, 0], [50, 1])
    day = date(2026, 3, 2)
    assert costs == [
        pytest.approx(request_cost("anthropic", "claude-3-5-sonnet", day, 2000, 800, 200, 50,
                                   overrides={}), rel=1e-12),
        pytest.approx(request_cost("anthropic", "claude-3-5-sonnet", day, 3005, 3000, 0, 1,
                                   overrides={}), rel=1e-12)]
    # $3 / M uncached input, $0.30 cache read, $3.75 cache write, $15 output.
    assert costs[0] == pytest.approx((1000 * 3 + 800 * 0.3 + 200 * 3.75 + 50 * 15) / 1e6)


def test_openai_usage_already_includes_cached_tokens(lake, tmp_path, totals):
    # The same call as Anthropic's row a, the other side of the trap: prompt_tokens is 2000
    # including the 800 cached, and is mapped as is (a sum would double-count the cached ones).
    f = _ingest(lake, tmp_path, OPENAI, [
        {"id": "a", "started": T0_EPOCH, "model": "gpt-4o",
         "usage": {"prompt_tokens": 2000, "completion_tokens": 50,
                   "prompt_tokens_details": {"cached_tokens": 800}}}])
    assert (f.stored, f.quarantined) == ({"requests": 1}, 0)
    inputs, cached, written, outputs, costs = totals(TOKENS)
    assert (inputs, cached, written, outputs) == ([2000], [800], [0], [50])
    expected = request_cost("openai", "gpt-4o", date(2026, 3, 2), 2000, 800, 0, 50, overrides={})
    # $2.50 / M uncached input, $1.25 cached, $10 output.
    assert costs == [pytest.approx(expected, rel=1e-12)]
    assert expected == pytest.approx((1200 * 2.5 + 800 * 1.25 + 50 * 10) / 1e6)


def test_a_bad_part_of_a_sum_is_quarantined_with_its_line(lake, tmp_path):
    # Neither is dropped into a plausible total (800 + 0, or 1000 + 800 - 200).
    f = _ingest(lake, tmp_path, ANTHROPIC, [
        _anthropic_row("a", input_tokens=1000, cache_read_input_tokens=800, output_tokens=50),
        _anthropic_row("b", input_tokens="n/a", cache_read_input_tokens=800, output_tokens=5),
        _anthropic_row("c", input_tokens=1000, cache_creation_input_tokens=-200,
                       output_tokens=5)])
    assert (f.stored, f.quarantined) == ({"requests": 1}, 2)
    assert f.reasons == [
        "line 2: input_tokens is not an integer: n/a (usage.input_tokens)",
        "line 3: input_tokens is negative: -200; cache_write_tokens is negative: -200"]


def test_a_sum_of_absent_parts_is_null_and_present_parts_count(lake, tmp_path, totals):
    f = _ingest(lake, tmp_path, ANTHROPIC, [
        _anthropic_row("a", output_tokens=5),  # no input part at all: unknown, not 0
        _anthropic_row("b", input_tokens=None, cache_read_input_tokens=7, output_tokens=5),
        {"id": "c", "started": T0_EPOCH, "model": "claude-3-5-sonnet"}])
    assert (f.stored, f.quarantined) == ({"requests": 3}, 0)
    assert totals(TOKENS)[0] == [None, 7, None]


def test_a_sum_converts_its_total(lake, tmp_path, totals):
    f = _ingest(lake, tmp_path, """
table: requests
columns:
  request_id: id
  ts: {path: started, unit: s}
  model: model
  latency_ms: {sum: [timing.queued, timing.ran], unit: s}
  logged_cost_usd: {sum: [cents.input, cents.output], scale: 0.01}
""", [{"id": "a", "started": T0_EPOCH, "model": "gpt-4o",
       "timing": {"queued": 0.25, "ran": "1.25"}, "cents": {"input": 0.5, "output": 0.25}}])
    assert f.stored == {"requests": 1}
    assert totals("SELECT latency_ms, logged_cost_usd FROM requests") == (1500.0, 0.0075)


def test_a_value_that_is_not_a_number_is_quarantined_not_converted_to_null(lake, tmp_path,
                                                                          totals):
    spec = tmp_path / "u.yaml"
    spec.write_text("table: requests\ncolumns:\n  request_id: id\n  ts: at\n  model: m\n"
                    "  latency_ms: {path: took, unit: s}\n"
                    "  logged_cost_usd: {path: cents, scale: 0.01}\n")
    rows = [{"id": "a", "at": "2026-03-02T12:00:00Z", "m": "gpt-4o", "took": 1.5, "cents": 75},
            {"id": "b", "at": "2026-03-02T12:00:00Z", "m": "gpt-4o", "took": "n/a"},
            {"id": "c", "at": "2026-03-02T12:00:00Z", "m": "gpt-4o", "cents": "lots"}]
    data = tmp_path / "u.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 1}, 2)
    assert f.reasons == ["line 2: latency_ms is not a finite number: n/a",
                         "line 3: logged_cost_usd is not a finite number: lots"]
    assert totals("SELECT latency_ms, logged_cost_usd FROM requests") == (1500.0, 0.75)


def test_a_lone_surrogate_escape_is_quarantined_and_the_other_lines_go_on(lake, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("table: requests\ncolumns:\n  request_id: id\n  ts: at\n  model: m\n"
                    "  input_text: txt\n")
    data = tmp_path / "s.jsonl"
    line = '{{"id": "{}", "at": "2026-03-02T12:00:00Z", "m": "gpt-4o", "txt": "{}"}}\n'
    data.write_text(line.format("a", "ok") + line.format("b", "bad \\ud800 here")
                    + line.format("c", "ok"))
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert f.error is None and (f.stored, f.quarantined) == ({"requests": 2}, 1)
    assert f.reasons == ["line 2: not valid JSON: an escape that is not a character "
                         "(a lone surrogate)"]


def test_unmapped_keys_fold_into_attributes_with_only_the_rows_own_values(lake, tmp_path,
                                                                          totals):
    spec = tmp_path / "k.yaml"
    spec.write_text("table: requests\ncolumns:\n  request_id: id\n  ts: at\n  model: m\n")
    data = tmp_path / "k.jsonl"
    data.write_text(
        '{"id": "a", "at": "2026-03-02T12:00:00Z", "m": "gpt-4o", "team": "search"}\n'
        '{"id": "b", "at": "2026-03-02T12:00:00Z", "m": "gpt-4o", "tier": 2}\n'
        '{"id": "c", "at": "2026-03-02T12:00:00Z", "m": "gpt-4o"}\n')
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert f.stored == {"requests": 3}
    assert totals("SELECT list(attributes ORDER BY request_id) FROM requests") == (
        ['{"team":"search"}', '{"tier":2}', None],)


SHORT_MAPPING = "table: requests\ncolumns:\n  request_id: id\n  ts: at\n  model: m\n"


def test_a_key_written_twice_is_quarantined_in_mapped_lines(lake, tmp_path, totals):
    spec = tmp_path / "d.yaml"
    spec.write_text(SHORT_MAPPING)
    data = tmp_path / "d.jsonl"
    line = '{{"id": "{}", "at": "2026-03-02T12:00:00Z", "m": "gpt-4o"{}}}\n'
    data.write_text(line.format("a", "") + line.format("b", ', "m": "gpt-4o-mini"')
                    + line.format("c", ""))
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.quarantined, f.error) == ({"requests": 2}, 1, None)
    assert f.reasons == ['line 2: key "m" appears twice in the object: which value is meant is '
                         'ambiguous']


def test_records_of_a_json_document_keep_their_numbers_and_bad_ones_are_quarantined(
        lake, tmp_path, totals):
    spec = tmp_path / "j.yaml"
    spec.write_text(SHORT_MAPPING + "records: data\n")
    data = tmp_path / "j.json"
    record = '{{"id": "{}", "at": "2026-03-02T12:00:00Z", "m": "{}"}}'
    data.write_text('{"data": [' + ", ".join([
        record.format("a", "gpt-4o"), '"not a record"',
        record.format("b", "x")[:-1] + ', "id": "b2"}', record.format("c", "gpt-4o-mini"),
        record.format("d", "gpt-4o")]) + "]}")
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.quarantined, f.error) == ({"requests": 3}, 2, None)
    assert f.reasons == ["line 2: not a JSON object",
                         'line 3: key "id" appears twice in the object: which value is meant is '
                         'ambiguous']
    assert totals("SELECT list(request_id ORDER BY request_id) FROM requests") == (
        ["a", "c", "d"],)
    # A record's line is its position in the list: a later bad record names the right one.
    data2 = tmp_path / "j2.json"
    data2.write_text('{"data": [' + ", ".join([
        '17', record.format("e", "gpt-4o"), record.format("f", "gpt-4o")[:-1]
        + ', "at": -5}']) + "]}")
    f = ingest_paths(lake, [str(data2)], mapping=spec).files[0]
    assert f.stored == {"requests": 1}
    assert f.reasons[0] == "line 1: not a JSON object"
    assert f.reasons[1].startswith("line 3: ")


def test_times_that_do_not_convert_are_quarantined_not_failing_the_file(lake, tmp_path):
    spec = tmp_path / "t.yaml"
    spec.write_text("table: requests\ncolumns:\n  request_id: id\n  model: m\n"
                    "  ts: {path: at, format: '%d/%m/%Y %H:%M'}\n")
    epoch = tmp_path / "e.yaml"
    epoch.write_text("table: requests\ncolumns:\n  request_id: id\n  model: m\n"
                     "  ts: {path: at, unit: s}\n")
    rows = [{"id": "a", "m": "gpt-4o", "at": "02/03/2026 12:00"}, {"id": "b", "m": "gpt-4o",
                                                                   "at": "yesterday"}]
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.error) == ({"requests": 1}, None)
    assert f.reasons == ["line 2: ts is not a timestamp: yesterday"]
    data = tmp_path / "e.jsonl"
    data.write_text("".join(json.dumps({"id": i, "m": "gpt-4o", "at": at}) + "\n"
                            for i, at in [("c", 1772452800), ("d", 1e20), ("e", "Infinity")]))
    f = ingest_paths(lake, [str(data)], mapping=epoch).files[0]
    assert (f.stored, f.quarantined, f.error) == ({"requests": 1}, 2, None)


def test_a_path_through_text_that_is_not_json_is_absent(lake, tmp_path, totals):
    spec = tmp_path / "p.yaml"
    spec.write_text(SHORT_MAPPING + "  input_tokens: usage.prompt\n")
    data = tmp_path / "p.csv"
    data.write_text('id,at,m,usage\na,2026-03-02T12:00:00Z,gpt-4o,"{""prompt"": 7}"\n'
                    "b,2026-03-02T12:00:00Z,gpt-4o,n/a\nc,2026-03-02T12:00:00Z,gpt-4o,\n")
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.error) == ({"requests": 3}, None)
    assert totals("SELECT list(input_tokens ORDER BY request_id) FROM requests") == (
        [7, None, None],)


def test_a_json_document_with_bytes_that_are_not_utf8_loses_only_their_record(lake, tmp_path,
                                                                             totals):
    spec = tmp_path / "j.yaml"
    spec.write_text(SHORT_MAPPING + "records: data\n")
    record = '{{"id": "{}", "at": "2026-03-02T12:00:00Z", "m": "gpt-4o", "note": "{}"}}'
    data = tmp_path / "j.json"
    data.write_bytes(b'{"data": [' + b", ".join([
        record.format("a", "ok").encode(), record.format("b", "caf\xe9").encode("latin-1"),
        record.format("c", "\\ud800").encode(),
        b'{"id": "d", "at": "2026-03-02T12:00:00Z", "m": "gpt-4o", "n": 1' + b"0" * 30 + b"}",
    ]) + b"]}")
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.quarantined, f.error) == ({"requests": 2}, 2, None)
    assert f.reasons == ["line 2: not valid UTF-8 text (or a lone surrogate escape)",
                         "line 3: not valid UTF-8 text (or a lone surrogate escape)"]
    assert totals("SELECT list(attributes ORDER BY request_id) FROM requests") == (
        ['{"note":"ok"}', '{"n":"1' + "0" * 30 + '"}'],)


def test_a_json_document_keeps_keys_its_first_record_lacks(lake, tmp_path, totals):
    # Arrow's from_pylist takes the first record's keys: the second's tokens were dropped.
    spec = tmp_path / "f.yaml"
    spec.write_text(SHORT_MAPPING + "  input_tokens: tok\nrecords: data\n")
    data = tmp_path / "f.json"
    data.write_text(json.dumps({"data": [
        {"id": "a", "at": "2026-03-02T12:00:00Z", "m": "gpt-4o"},
        {"id": "b", "at": "2026-03-02T12:00:00Z", "m": "gpt-4o", "tok": 12, "team": "x"}]}))
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert f.stored == {"requests": 2}
    assert totals("SELECT list(input_tokens ORDER BY request_id), "
                  "list(attributes ORDER BY request_id) FROM requests") == (
        [None, 12], [None, '{"team":"x"}'])


def test_a_utf16_json_document_is_read(lake, tmp_path, totals):
    # What Windows PowerShell 5.1's Out-File writes by default.
    spec = tmp_path / "w.yaml"
    spec.write_text(SHORT_MAPPING + "input: json\n")
    data = tmp_path / "w.json"
    data.write_bytes(json.dumps([{"id": "a", "at": "2026-03-02T12:00:00Z", "m": "gpt-4o",
                                  "note": "caf\u00e9"}]).encode("utf-16"))
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.error) == ({"requests": 1}, None)
    assert totals("SELECT attributes FROM requests") == ('{"note":"caf\u00e9"}',)


VALUES_MAPPING = """
table: requests
columns:
  request_id: id
  ts: {path: started, unit: s}
  model: {value: gpt-4o}
  status: {path: success, values: {true: ok, false: error}}
  error_type: {path: http.code, values: {429: rate_limit, 500: server_error, 200: null}}
"""


def test_values_rename_a_boolean_or_a_code_and_pass_others_on(lake, tmp_path, totals):
    # success: true/false is no status; an HTTP code is no error type; "maybe" is neither
    spec = tmp_path / "values.yaml"
    spec.write_text(VALUES_MAPPING)
    rows = [{"id": "a", "started": 1772452800, "success": True, "http": {"code": 200}},
            {"id": "b", "started": 1772452801, "success": False, "http": {"code": 429}},
            {"id": "c", "started": 1772452802, "success": False, "http": {"code": 503}},
            {"id": "d", "started": 1772452803, "success": "maybe"},
            {"id": "e", "started": 1772452804}]
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 4}, 1)
    assert f.reasons == ["line 4: status must be ok or error: maybe"]
    got = totals("SELECT list(request_id || ':' || status || ':' || coalesce(error_type, '-') "
                 "ORDER BY request_id) FROM requests")[0]
    # an absent status is ok without an error type (design §3), as for any format
    assert got == ["a:ok:-", "b:error:rate_limit", "c:error:503", "e:ok:-"]


def test_values_from_a_csv_compare_as_written(lake, tmp_path, totals):
    spec = tmp_path / "values.yaml"
    spec.write_text("table: evals\ncolumns:\n  eval_id: id\n  ts: when\n  metric: {value: judge}\n"
                    "  label: verdict\n"
                    "  passed: {path: verdict, values: {PASS: true, FAIL: false, 1: true}}\n")
    data = tmp_path / "e.csv"
    data.write_text("id,when,verdict\n1,2026-03-02 12:00:00,PASS\n2,2026-03-02 12:00:01,FAIL\n"
                    "3,2026-03-02 12:00:02,1\n4,2026-03-02 12:00:03,partial\n")
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.quarantined) == ({"evals": 3}, 1)
    assert f.reasons[0].startswith("line 5: passed is not")
    assert totals("SELECT list(passed ORDER BY eval_id), list(label ORDER BY eval_id) "
                  "FROM evals") == ([True, False, True], ["PASS", "FAIL", "1"])


@pytest.mark.parametrize(("rule", "message"), [
    ("{value: x, values: {a: b}}", "values renames the values of a path"),
    ("{path: s, values: []}", "values must map logged values to stored ones"),
    ("{path: s, values: {a: [1]}}", "values maps one logged value"),
    ("{path: s, valeus: {a: b}}", "unknown key(s) valeus"),
])
def test_a_malformed_values_rule_names_the_problem(tmp_path, rule, message):
    with pytest.raises(MappingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        loads(f"table: requests\ncolumns:\n  request_id: id\n  status: {rule}\n", "m.yaml")


def test_unmapped_fields_are_kept_as_the_line_has_them_whatever_other_rows_hold(
        lake, tmp_path, totals):
    # Arrow types a field for a whole block: a 2 beside an "x" in another row was kept as "2",
    # and 2 beside 2.5 as 2.0; the same rows as canonical JSON lines keep 2 (docs review)
    mapping = ("table: requests\ncolumns:\n  request_id: id\n  ts: {path: t, unit: s}\n"
               "  model: m\n  input_tokens: i\n  output_tokens: o\n")
    base = {"t": T0_EPOCH, "m": "gpt-4o", "i": 1, "o": 1}
    f = _ingest(lake, tmp_path, mapping, [
        {"id": "a", **base, "n": 2, "f": 2, "gone": None},
        {"id": "b", **base, "n": "x", "f": 2.5, "deep": {"a": [1, 2.0]}}])
    assert (f.stored, f.quarantined) == ({"requests": 2}, 0)
    engine = Engine(lake)
    try:
        got = dict(engine.query("SELECT request_id, attributes FROM requests").rows())
    finally:
        engine.close()
    assert {k: json.loads(v) for k, v in got.items()} == {
        "a": {"n": 2, "f": 2}, "b": {"n": "x", "f": 2.5, "deep": {"a": [1, 2.0]}}}
    assert got["a"] == '{"n":2,"f":2}'  # (a null is dropped, as on every path)


LIST_MAPPING = """
table: requests
columns:
  request_id: id
  ts: t
  model: model
  output_text: choices.0.message.content
  finish_reason: choices[1].finish_reason
  feature: meta.0
"""


@pytest.mark.parametrize("kind", ["jsonl", "csv", "json"])
def test_a_number_in_a_path_indexes_a_list(kind, lake, tmp_path, totals):
    """``choices.0.message.content`` (or ``choices[0]``) reads an OpenAI response's first choice:
    it gave null for every row without a word (review), and the choices were not kept either.
    In JSON text (a CSV cell) a number is an object's key where the object has it."""
    spec = tmp_path / "m.yaml"
    spec.write_text(LIST_MAPPING)
    choices = [{"message": {"content": "hi"}, "finish_reason": "stop"},
               {"message": {"content": "second"}, "finish_reason": "length"}]
    rows = [{"id": "a", "t": "2026-03-02T12:00:00Z", "model": "gpt-4o", "choices": choices,
             "meta": {"0": "chat"}},
            {"id": "b", "t": "2026-03-02T12:00:00Z", "model": "gpt-4o", "choices": choices[:1]}]
    data = tmp_path / f"mine.{kind}"
    if kind == "jsonl":
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif kind == "json":
        data.write_text(json.dumps(rows))
    else:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["id", "t", "model", "choices", "meta"])
        writer.writerows([r["id"], r["t"], r["model"], json.dumps(r["choices"]),
                          json.dumps(r.get("meta", {}))] for r in rows)
        data.write_text(out.getvalue())
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 2}, 0)
    assert totals("SELECT string_agg(concat_ws('/', request_id, output_text, finish_reason, "
                  "feature), ' ' ORDER BY request_id) FROM requests") == ("a/hi/length/chat b/hi",)


def test_a_required_field_no_record_has_is_said_to_quarantine_them_not_to_store_them(
        lake, tmp_path):
    # the note said "stored with request_id empty" over a report of every row quarantined
    # (review): a row is not stored without its id
    spec = tmp_path / "m.yaml"
    spec.write_text(MAPPING.replace("request_id: id", "request_id: call_id"))
    rows = [{"id": i, "started": 1772452800, "llm": {"name": "gpt-4o"},
             "usage": {"prompt": 1000, "completion": 500}} for i in ("a", "b")]
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert (f.stored, f.quarantined) == ({}, 2)
    assert "2 record(s) without the field call_id (columns.request_id of the mapping): " \
        "quarantined (a row needs it)." in f.notes


def test_a_mapped_field_no_record_has_is_named_in_the_report(lake, tmp_path, totals):
    """A path mistyped (``usage.prompt_token``) stored every row without input tokens, unpriced,
    and the report said nothing (review): it now counts the records without the field."""
    spec = tmp_path / "m.yaml"
    spec.write_text(MAPPING.replace("usage.prompt", "usage.prompt_token")
                    + "  cached_input_tokens: {sum: [usage.cached, cache.read]}\n")
    rows = [{"id": i, "started": 1772452800, "llm": {"name": "gpt-4o"},
             "usage": {"prompt": 1000, "completion": 500}} for i in ("a", "b")]
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    f = ingest_paths(lake, [str(data)], mapping=spec).files[0]
    assert f.stored == {"requests": 2}
    assert f.notes == [
        "2 record(s) without the field timing.duration (columns.latency_ms of the mapping): "
        "stored with latency_ms empty.",
        "2 record(s) without the field usage.prompt_token (columns.input_tokens of the "
        "mapping): stored with input_tokens empty.",
        "2 record(s) without the field cost_cents (columns.logged_cost_usd of the mapping): "
        "stored with logged_cost_usd empty.",
        "2 record(s) without the field usage.cached or cache.read (columns.cached_input_tokens "
        "of the mapping): stored with cached_input_tokens empty."]
    assert totals("SELECT count(input_tokens), count(cost_usd) FROM requests") == (0, 0)
