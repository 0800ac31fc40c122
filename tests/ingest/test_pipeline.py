"""The ingest pipeline as a specification: exact totals, quarantine, idempotency, bad input."""

from __future__ import annotations

import gzip
import io
import json
import os
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib.ingest.pipeline import ingest_paths, ingest_stream
from tests.conftest import T0
from tests.ingest.conftest import canonical_request, ingest_on_path, jsonl_bytes

SUMS = ("SELECT count(*), sum(input_tokens), sum(output_tokens), round(sum(cost_usd), 6) "
        "FROM requests")


def test_canonical_jsonl_exact_totals_and_cost(lake, write, totals):
    path = write("a.jsonl", [canonical_request(i) for i in range(10)])
    report = ingest_paths(lake, [str(path)])
    f = report.files[0]
    assert (f.format, f.stored, f.quarantined, f.error) == ("jsonl", {"requests": 10}, 0, None)
    assert totals(SUMS) == (10, 10_000, 5_000, 0.075)


def test_csv_and_parquet_give_the_same_totals(lake, tmp_path, totals):
    rows = [canonical_request(i) for i in range(6)]
    csv_path = tmp_path / "a.csv"
    csv_path.write_text("request_id,ts,provider,model,input_tokens,output_tokens\n" + "".join(
        f"{r['request_id']},{r['ts']},openai,gpt-4o,1000,500\n" for r in rows[:3]))
    pq_path = tmp_path / "b.parquet"
    pq.write_table(pa.Table.from_pylist(rows[3:]), pq_path)
    report = ingest_paths(lake, [str(csv_path), str(pq_path)])
    assert [f.format for f in report.files] == ["csv", "parquet"]
    assert totals(SUMS) == (6, 6000, 3000, 0.045)


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_csv_separated_by_commas_semicolons_tabs_or_bars_gives_the_same_rows(lake, write, totals,
                                                                            sep):
    # Spreadsheets in decimal-comma locales save "CSV" with semicolons; tabs are common in exports.
    # A quoted field holding the separator, and one holding another candidate, stay one field.
    header = sep.join(["request_id", "ts", "provider", "model", "input_tokens", "output_tokens",
                       "feature"])
    lines = [sep.join([f"r{i}", f"2026-03-02T12:0{i}:00Z", "openai", "gpt-4o", "1000", str(i),
                       f'"a{sep}b,c;d"']) for i in range(3)]
    f = ingest_paths(lake, [str(write("t.csv", (header + "\n" + "\n".join(lines) + "\n")
                                      .encode()))]).files[0]
    assert (f.format, f.stored, f.quarantined, f.error) == ("csv", {"requests": 3}, 0, None)
    assert totals("SELECT sum(output_tokens), min(feature), max(feature) FROM requests") == (
        3, f"a{sep}b,c;d", f"a{sep}b,c;d")


def test_a_decimal_comma_in_a_semicolon_csv_is_quarantined_not_misread(lake, write, totals):
    # "250,5" is 250.5 in one locale and 2505 in another: the row says so instead of guessing.
    content = (b"request_id;ts;model;input_tokens;output_tokens;latency_ms\n"
               b"a;2026-03-02T12:00:00Z;gpt-4o;10;5;250\n"
               b"b;2026-03-02T12:00:00Z;gpt-4o;10;5;250,5\n")
    f = ingest_paths(lake, [str(write("de.csv", content))]).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 1}, 1)
    assert f.reasons == ["line 3: latency_ms is not a finite number: 250,5"]
    assert totals("SELECT request_id, latency_ms FROM requests") == ("a", 250.0)


def test_a_csv_record_of_too_few_or_too_many_fields_says_how_many(lake, write):
    # "expected 4 CSV fields" alone left its reader to count a long line's commas (review)
    content = ("request_id,ts,provider,model\n"
               "r1,2026-03-02T12:00:00Z,openai,gpt-4o\n"
               "r2,2026-03-02T12:01:00Z,openai\n"
               "r3,2026-03-02T12:02:00Z,openai,gpt-4o,extra,more\n")
    f = ingest_paths(lake, [str(write("short.csv", content.encode()))]).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 1}, 2)
    assert f.reasons == ["line 3: expected 4 CSV fields, found 3",
                         "line 4: expected 4 CSV fields, found 6"]


@pytest.mark.parametrize("sep", [",", ";"])
def test_a_space_after_every_separator_belongs_to_the_separator(lake, write, totals, sep):
    # "r1, 2026-…, openai, gpt-4o": hand-written files and ", ".join(...). Read as written, the
    # model would be " gpt-4o", an unknown (unpriced) model. The space goes; one inside quotes, or
    # after a quote opened past it, stays (in a text; names are stored trimmed, see
    # test_names_and_dimensions_are_stored_trimmed); a quoted separator stays in its field.
    s = sep + " "
    content = s.join(["request_id", "ts", "provider", "model", "input_tokens", "output_tokens",
                      "feature", "input_text"]) + "\n" + "".join(
        s.join([f"r{i}", f"2026-03-02T12:0{i}:00Z", "openai", "gpt-4o", "1000", "500",
                f'"a{sep} b"', '" c"']) + "\n" for i in range(3))
    content += s.join(["r9", "2026-03-02T12:09:00Z", "openai", '"gpt-4o"']) + "\n\n"
    content += s.join(["r8", "2026-03-02T12:08:00Z", "openai", "gpt-4o", "1", "1", "NULL",
                       ""]) + "\n"
    f = ingest_paths(lake, [str(write("spaced.csv", content.encode()))]).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 4}, 1)
    assert f.reasons == ["line 5: expected 8 CSV fields, found 4"]
    # gpt-4o: $2.50 in, $10 out per million tokens; 3 x (1000 in, 500 out) and 1 x (1 in, 1 out)
    assert totals("SELECT count(DISTINCT model), min(model), min(provider), sum(cost_usd) "
                  "FROM requests") == (1, "gpt-4o", "openai",
                                       pytest.approx(3 * 0.0075 + 2.5e-6 + 10e-6, rel=1e-9))
    assert totals("SELECT list(DISTINCT feature), list(DISTINCT input_text) FROM requests "
                  "WHERE request_id <> 'r8'") == ([f"a{sep} b"], [" c"])
    assert totals("SELECT feature, input_text FROM requests WHERE request_id = 'r8'") == (
        None, None)
    assert totals("SELECT line, raw FROM quarantine") == (
        5, s.join(["r9", "2026-03-02T12:09:00Z", "openai", '"gpt-4o"']))


@pytest.mark.parametrize("s", [",", ", "], ids=["comma", "comma-space"])
def test_odd_csv_records_are_quarantined_alone_on_both_readers(lake, write, totals, s):
    # A record that is not UTF-8, one holding a lone carriage return (which ends a row for the
    # csv readers but not a line), a field over Python csv's 128 KiB default: each is its own
    # story; the rows after them keep their own lines and text.
    def record(*fields):
        return s.join(fields).encode("utf-8", "surrogateescape")

    rows = [record("a", "2026-03-02T12:00:00Z", "gpt-4o", "1", "caf\udce9"),
            record("b", "2026-03-02T12:00:00Z", "gpt-4o", "2", "x\ry"),
            record("c", "2026-03-02T12:00:00Z", "gpt-4o", "3", "z" * 200_000),
            record("d", "2026-03-02T12:00:00Z", "gpt-4o", "-4", "fine"),
            record("e", "2026-03-02T12:00:00Z", "gpt-4o", "5", "fine")]
    header = record("request_id", "ts", "model", "input_tokens", "input_text")
    content = b"\n".join([header, *rows]) + b"\n"
    f = ingest_paths(lake, [str(write("odd.csv", content))]).files[0]
    assert (f.stored, f.quarantined, f.error) == ({"requests": 2}, 3, None)
    assert totals("SELECT list(request_id ORDER BY request_id), max(length(input_text)) "
                  "FROM requests") == (["c", "e"], 200_000)
    assert totals("SELECT list(line ORDER BY line), list(raw ORDER BY line) FROM quarantine") == (
        [2, 3, 5], [rows[i].decode("utf-8", "replace") for i in (0, 1, 3)])
    reasons = totals("SELECT list(reason ORDER BY line) FROM quarantine")[0]
    assert reasons[0].startswith("not valid UTF-8 text")
    assert reasons[1:] == ["a carriage return ends the record early",
                           "input_tokens is negative: -4"]


def test_a_space_after_only_some_separators_is_part_of_the_value():
    from lib.ingest.formats.canonical import csv_space_after_separator

    assert csv_space_after_separator("request_id, ts, model", ",")
    assert csv_space_after_separator("request_id;  ts; model", ";")
    assert not csv_space_after_separator("request_id, ts,model", ",")
    assert not csv_space_after_separator("request_id,ts,model", ",")
    assert not csv_space_after_separator("request_id", ",")
    assert not csv_space_after_separator("request_id, ", ",")  # an empty name is no column


def test_the_csv_separator_is_the_one_naming_the_most_columns():
    from lib.ingest.formats.canonical import csv_delimiter

    assert csv_delimiter("request_id,ts,model") == ","
    assert csv_delimiter("request_id;ts;model") == ";"
    assert csv_delimiter("request_id\tts\tmodel") == "\t"
    assert csv_delimiter("request_id|ts|model") == "|"
    # a semicolon inside one comma-separated name does not win
    assert csv_delimiter("request_id,ts,model,note;x") == ","
    # nothing canonical (a mapping's own names): the separator giving the most fields
    assert csv_delimiter("id;prompt_tokens;started") == ";"
    assert csv_delimiter("id\tprompt_tokens") == "\t"
    assert csv_delimiter("id,note;x,started") == ","
    assert csv_delimiter("id") == ","  # one field: the default


def test_evals_and_events_are_recognized_from_their_columns(lake, write, totals):
    evals = [{"run_id": "run1", "case_id": f"c{i}", "metric": "correctness", "score": i / 4,
              "passed": i > 1, "ts": "2026-03-02T12:00:00Z"} for i in range(4)]
    events = [{"ts": "2026-03-02T12:00:00Z", "kind": "deploy", "title": "v2", "service": "api"}]
    report = ingest_paths(lake, [str(write("e.jsonl", evals)), str(write("d.jsonl", events))])
    assert [f.stored for f in report.files] == [{"evals": 4}, {"events": 1}]
    assert totals("SELECT count(*), sum(score), count(DISTINCT eval_id) FROM evals") == (4, 1.5, 4)


def test_a_csv_header_s_trailing_separators_are_no_columns(lake, write, totals):
    # spreadsheets write "a,b,,": the SQL of an empty column name failed the whole file
    path = write("trailing.csv", b"request_id,ts,provider,model,input_tokens,output_tokens,,\n"
                 b"q1,2026-03-02T12:00:00Z,openai,gpt-4o,5,1,,\n"
                 b"q2,2026-03-02T12:00:01Z,openai,gpt-4o,5,1,x,\n")
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.error, f.stored, f.quarantined) == (None, {"requests": 2}, 0)
    # an unnamed column with a value keeps it, under the key "" (as a JSON line's "" key)
    assert totals("SELECT list(attributes ORDER BY request_id) FROM requests") == (
        [None, '{"":"x"}'],)
    # the record-by-record reader keeps both unnamed columns apart too (a dict kept one)
    from lib.ingest.formats import canonical

    table, rejects = canonical._python_csv(["a", "", ""], [(2, "1,x,\n")], ",", False)
    assert rejects == [] and table.column(1).to_pylist() == ["x"]
    assert table.column(2).to_pylist() == [None]


@pytest.mark.parametrize("form", ["jsonl", "csv", "parquet"])
def test_a_column_named_like_a_canonical_one_in_other_case_is_the_user_s(lake, tmp_path,
                                                                         totals, form):
    # DuckDB's names ignore case: a CSV's or Parquet's "Model" was read as the model, and
    # "INPUT_TOKENS" took the place of input_tokens' value in attributes
    row = {"Model": "my-router-label", "request_id": "k1", "ts": "2026-03-02T12:00:00Z",
           "provider": "openai", "model": "gpt-4o", "input_tokens": 5, "output_tokens": 1,
           "INPUT_TOKENS": 999999}
    path = tmp_path / f"case.{form}"
    if form == "jsonl":
        path.write_bytes(jsonl_bytes([row]))
    elif form == "csv":
        path.write_text(",".join(row) + "\n" + ",".join(str(v) for v in row.values()) + "\n")
    else:
        pq.write_table(pa.Table.from_pylist([row]), path)
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.error, f.stored, f.quarantined) == (None, {"requests": 1}, 0)
    model, tokens, attributes = totals("SELECT model, input_tokens, attributes FROM requests")
    assert (model, tokens) == ("gpt-4o", 5)
    kept = json.loads(attributes)
    assert kept["Model"] == "my-router-label" and str(kept["INPUT_TOKENS"]) == "999999"


def test_keys_in_other_case_stay_apart_named_as_written_and_hinted(lake, tmp_path, totals):
    # two user keys differing only in case were one to DuckDB ("gold" twice); a Parquet file's
    # hints named the renamed columns; a column literally ending in " (user key)" lost its end
    path = tmp_path / "case.csv"
    path.write_text("request_id,ts,model,input_tokens,output_tokens,tier,TIER,x (user key)\n"
                    "r1,2026-03-02T12:00:00Z,gpt-4o,10,5,gold,free,v\n")
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 1}, 0)
    assert json.loads(totals("SELECT attributes FROM requests")[0]) == {
        "tier": "gold", "TIER": "free", "x (user key)": "v"}
    parquet = tmp_path / "case.parquet"
    pq.write_table(pa.table({"request_id": ["p1"], "ts": ["2026-03-02T12:00:00Z"],
                             "model": ["gpt-4o"], "Latency": [1.5], "INPUT_TOKENS": [3]}),
                   parquet)
    hints = ingest_paths(lake, [str(parquet)]).files[0].hints
    assert hints and "INPUT_TOKENS (is it input_tokens?)" in hints[0] and \
        "(user key" not in hints[0]


def test_a_csv_header_naming_a_column_twice_is_one_clear_error(lake, write):
    path = write("dup.csv", b"request_id,ts,model,input_tokens,output_tokens,tag,tag\n"
                 b"q1,2026-03-02T12:00:00Z,gpt-4o,5,1,a,b\n")
    f = ingest_paths(lake, [str(path)]).files[0]
    assert f.error == "the CSV header names 'tag' twice (columns 6 and 7): give each column a " \
        "name of its own"
    assert f.stored == {}


def test_parquet_unsigned_counts_past_int64_are_quarantined_on_their_row(lake, tmp_path, totals):
    # a -1 that wrapped around in a u64 counter failed the whole file
    path = tmp_path / "u64.parquet"
    pq.write_table(pa.table({
        "request_id": ["u1", "u2", "u3", "u4"], "ts": ["2026-03-02T12:00:00Z"] * 4,
        "provider": ["openai"] * 4, "model": ["gpt-4o"] * 4,
        "input_tokens": pa.array([5, 2**64 - 1, 7, 12], pa.uint64()),
        "output_tokens": [1, 1, 1, 1], "": ["x", None, None, None]}), path)
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.error, f.stored, f.quarantined) == (None, {"requests": 3}, 1)
    assert f.reasons == ["line 2: input_tokens is not an integer: 18446744073709551615"]
    assert totals("SELECT list(input_tokens ORDER BY request_id), "
                  "list(attributes ORDER BY request_id) FROM requests") == (
        [5, 7, 12], ['{"":"x"}', None, None])


def test_a_request_log_with_kind_and_title_keys_is_requests(lake, write, totals):
    # kind and title are an event's columns, and also keys a request log may carry
    rows = [{**canonical_request(i), "kind": "chat", "title": "Summarize ticket"}
            for i in range(3)]
    f = ingest_paths(lake, [str(write("r.jsonl", rows))]).files[0]
    assert f.stored == {"requests": 3}
    assert totals("SELECT count(*), min(json_extract_string(attributes, '$.kind')) "
                  "FROM requests") == (3, "chat")
    # without a model or tokens, kind and title still make an event, one that names a request
    event = [{"ts": "2026-03-02T12:00:00Z", "kind": "incident", "title": "t", "request_id": "r7"}]
    assert ingest_paths(lake, [str(write("n.jsonl", event))]).files[0].stored == {"events": 1}


@pytest.mark.parametrize("path", ["fast", "exact", "arrow"])
def test_an_event_s_other_keys_are_kept_in_its_attributes(lake, write, totals, monkeypatch,
                                                          path):
    # they were dropped without a word: events had no attributes
    event = [{"ts": "2026-03-02T12:00:00Z", "kind": "deploy", "title": "v2", "service": "api",
              "severity": "high", "url": "https://ci/123", "request_id": "r-77"}]
    f = ingest_on_path(lake, [write("e.jsonl", event)], path, monkeypatch).files[0]
    assert (f.stored, f.quarantined) == ({"events": 1}, 0)
    assert json.loads(totals("SELECT attributes FROM events")[0]) == {
        "severity": "high", "url": "https://ci/123", "request_id": "r-77"}


def test_gzip_is_detected_by_magic_bytes_not_extension(lake, write, totals):
    data = jsonl_bytes([canonical_request(i) for i in range(3)])
    hidden = write("plain-name.jsonl", data, gz=True)  # gzip without .gz
    report = ingest_paths(lake, [str(hidden)])
    assert report.files[0].stored == {"requests": 3}
    assert totals("SELECT count(*) FROM requests") == (3,)


def test_bad_rows_are_quarantined_with_file_line_and_reason(lake, write, totals):
    lines = [json.dumps(canonical_request(1)), "{not json", json.dumps(
        canonical_request(2, input_tokens=-5)), json.dumps(canonical_request(
            3, cached_input_tokens=2000)), json.dumps(canonical_request(4, reasoning_tokens=600)),
             json.dumps(canonical_request(5, ts="1999-12-31T00:00:00Z")),
             json.dumps(canonical_request(6, model=None)), json.dumps(canonical_request(7))]
    path = write("q.jsonl", ("\n".join(lines) + "\n").encode())
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 2}, 6)
    got = totals("SELECT list(line ORDER BY line), list(DISTINCT source_file) FROM quarantine")
    assert got == ([2, 3, 4, 5, 6, 7], [str(path)])
    reasons = dict(totals("SELECT map_from_entries(list((line, reason))) FROM quarantine")[0])
    assert reasons[2].startswith("not valid JSON")
    assert reasons[3] == "input_tokens is negative: -5"
    assert "exceed input_tokens" in reasons[4]
    assert "exceed output_tokens" in reasons[5]
    assert reasons[6].startswith("ts out of range")
    assert reasons[7] == "missing model"


@pytest.mark.parametrize("fast", ["1", "0"])
def test_token_subcounts_that_are_not_numbers_are_quarantined_not_read_as_zero(
        lake, write, monkeypatch, fast):
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", fast)
    path = write("s.jsonl", [canonical_request(1, cached_input_tokens="lots"),
                             canonical_request(2, cache_write_tokens=True),
                             canonical_request(3, reasoning_tokens={"n": 1}),
                             canonical_request(4), canonical_request(5, cached_input_tokens=None)])
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 2}, 3)
    assert [r.split(": ", 1)[1].split(" is not")[0] for r in f.reasons] == [
        "cached_input_tokens", "cache_write_tokens", "reasoning_tokens"]


def test_unknown_model_is_kept_with_null_cost(lake, write, totals):
    path = write("u.jsonl", [canonical_request(1, model="my-private-model"),
                             canonical_request(2)])
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 2}, 0)
    assert totals("SELECT count(*) FILTER (cost_usd IS NULL), sum(cost_usd) FROM requests") == \
        (1, 0.0075)


def test_logged_cost_is_kept_beside_ours(lake, write, totals):
    path = write("c.jsonl", [canonical_request(1, cost_usd=0.5)])
    ingest_paths(lake, [str(path)])
    assert totals("SELECT cost_usd, logged_cost_usd FROM requests") == (0.0075, 0.5)


def test_same_file_twice_or_renamed_is_a_no_op(lake, write, totals):
    rows = [canonical_request(i) for i in range(5)]
    a, b = write("a.jsonl", rows), write("copy/renamed.jsonl.gz", jsonl_bytes(rows), gz=True)
    first = ingest_paths(lake, [str(a)])
    again = ingest_paths(lake, [str(a), str(b)])
    assert first.files[0].stored == {"requests": 5}
    # The same file unchanged is not even read; the renamed copy is read and found known.
    assert again.files[0].skipped == (
        "already ingested (unchanged: same size, mtime, ctime and inode)")
    assert again.files[1].duplicate_file
    os.utime(a)  # touched, not changed: hashed again, and its content is known
    assert ingest_paths(lake, [str(a)]).files[0].skipped.startswith(
        "already ingested: nothing appended since the last read")
    assert totals("SELECT count(*) FROM requests") == (5,)


def test_overlapping_files_never_double_count(lake, write, totals):
    a = write("a.jsonl", [canonical_request(i) for i in range(0, 6)])
    b = write("b.jsonl", [canonical_request(i) for i in range(4, 10)] + [canonical_request(9)])
    report = ingest_paths(lake, [str(a), str(b)])
    assert report.files[1].stored == {"requests": 4}
    assert report.files[1].duplicates == {"requests": 3}  # r4, r5 from a; r9 twice in b
    assert totals(SUMS) == (10, 10_000, 5_000, 0.075)


@pytest.mark.parametrize("fast", ["1", "0"])
def test_one_request_logged_on_either_side_of_midnight_is_stored_once(lake, write, totals,
                                                                      monkeypatch, fast):
    """Two sources log r1 a moment apart, across midnight UTC: one request, not two. A key
    two days apart is another day's row and is not looked for."""
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", fast)
    midnight = T0.replace(hour=0) + timedelta(days=1)
    a = write("a.jsonl", [canonical_request(1, ts=(midnight - timedelta(seconds=1)).isoformat()),
                          canonical_request(2, ts=(midnight - timedelta(days=2)).isoformat())])
    b = write("b.jsonl", [canonical_request(1, ts=(midnight + timedelta(seconds=1)).isoformat()),
                          canonical_request(3, ts=(midnight + timedelta(hours=1)).isoformat())])
    report = ingest_paths(lake, [str(a), str(b)], compact_min_files=0)
    assert report.files[1].stored == {"requests": 1}
    assert report.files[1].duplicates == {"requests": 1}
    assert totals("SELECT count(*), count(DISTINCT request_id), min(ts) FILTER "
                  "(request_id = 'r1') FROM requests") == (3, 3, midnight - timedelta(seconds=1))


def test_a_stream_upload_reports_how_far_it_has_read(lake):
    data = jsonl_bytes([canonical_request(i) for i in range(2000)])
    seen = []
    ingest_stream(lake, io.BytesIO(data), "upload.jsonl", progress=seen.append)
    assert seen and all(p.bytes_total == len(data) for p in seen)
    assert seen[-1].fraction == 1.0 and seen[-1].rows == 2000


def test_frequent_small_ingests_are_compacted_quarantine_included(lake, write, totals):
    """A cron job every minute: each ingest adds a file to requests and one to quarantine; past
    the threshold, a partition's small files are merged, so neither table piles up."""
    for i in range(12):
        path = write(f"m{i}.jsonl", [canonical_request(i), canonical_request(100 + i,
                                                                        input_tokens=-1)])
        report = ingest_paths(lake, [str(path)], compact_min_files=3)
        assert report.files[0].stored == {"requests": 1} and report.files[0].quarantined == 1
    live = lake.snapshot().files
    assert len(live["requests"]) <= 4 and len(live["quarantine"]) <= 4, live
    assert totals("SELECT count(*), count(DISTINCT request_id) FROM requests") == (12, 12)
    assert totals("SELECT count(*), count(DISTINCT line) FROM quarantine") == (12, 1)


def test_a_file_quarantined_under_a_wrong_mapping_is_read_again_once_it_is_fixed(
        lake, tmp_path, write, totals):
    rows = [{"id": f"m{i}", "at": "2026-03-02T12:00:00Z", "llm": "gpt-4o",
             "usage": {"in": 1000, "out": 500}} for i in range(3)]
    path = write("mine.jsonl", rows)
    spec = tmp_path / "mine.yaml"

    def ingest(id_path: str):
        spec.write_text("table: requests\ncolumns:\n  request_id: " + id_path + "\n  ts: at\n"
                        "  model: llm\n  provider: {value: openai}\n  input_tokens: usage.in\n"
                        "  output_tokens: usage.out\n")
        return ingest_paths(lake, [str(path)], mapping=spec).files[0]

    wrong = ingest("request.id")  # no such field: every row lacks its id
    assert (wrong.stored, wrong.quarantined) == ({}, 3)
    fixed = ingest("id")
    assert fixed.stored == {"requests": 3} and not fixed.duplicate_file
    again = ingest("id")  # same file, same mapping: already ingested
    assert again.skipped == "already ingested (unchanged: same size, mtime, ctime and inode)"
    assert totals("SELECT count(*), sum(input_tokens) FROM requests") == (3, 3000)


@pytest.mark.parametrize("wrong", ["openai", "langfuse", "otlp-json"])
def test_a_file_quarantined_under_a_wrong_format_is_read_again_under_the_right_one(
        lake, write, totals, wrong):
    # An upload read as the wrong Format (every row quarantined) was "already ingested (same
    # content)" once read as the right one, and only `remove` let its rows in (review).
    path = write("calls.jsonl", [canonical_request(i) for i in range(3)])
    data = path.read_bytes()
    bad = ingest_stream(lake, io.BytesIO(data), "calls.jsonl", fmt=wrong,
                        source="upload:calls.jsonl").files[0]
    assert (bad.stored, bad.quarantined) == ({}, 3)
    right = ingest_stream(lake, io.BytesIO(data), "calls.jsonl",
                          source="upload:calls.jsonl").files[0]
    assert right.stored == {"requests": 3} and not right.duplicate_file
    assert ingest_stream(lake, io.BytesIO(data), "calls.jsonl",
                         source="upload:calls.jsonl").files[0].duplicate_file
    # the command line's way: a file read with --format, then detected, then forced again
    other = write("other.jsonl", [canonical_request(i) for i in range(10, 12)])
    assert ingest_paths(lake, [str(other)], fmt=wrong).files[0].quarantined == 2
    assert ingest_paths(lake, [str(other)]).files[0].stored == {"requests": 2}
    assert ingest_paths(lake, [str(other)], fmt=wrong).files[0].skipped
    assert totals("SELECT count(*) FROM requests") == (5,)


def test_folders_recurse_and_globs_expand(lake, write, totals):
    write("d/x/1.jsonl", [canonical_request(1)])
    write("d/2.jsonl", [canonical_request(2)])
    g = write("g/3.jsonl", [canonical_request(3)])
    report = ingest_paths(lake, [str(g.parent.parent / "d"), str(g.parent / "*.jsonl")])
    assert len(report.files) == 3 and report.ok
    assert totals("SELECT count(*) FROM requests") == (3,)


def test_ingest_stream_takes_bytes_or_a_stream(lake, totals):
    data = jsonl_bytes([canonical_request(i) for i in range(4)])
    r1 = ingest_stream(lake, gzip.compress(data), "upload.jsonl.gz")
    r2 = ingest_stream(lake, io.BytesIO(data), "again.jsonl")
    assert r1.files[0].stored == {"requests": 4} and r2.files[0].duplicate_file
    assert r1.files[0].source == "upload.jsonl.gz"


def test_progress_reports_rows_and_bytes(lake, write):
    path = write("p.jsonl", [canonical_request(i) for i in range(3)])
    seen = []
    ingest_paths(lake, [str(path)], progress=seen.append)
    assert seen[-1].rows == 3 and seen[-1].bytes_read == path.stat().st_size
    assert seen[-1].fraction == 1.0


def test_an_upload_s_progress_says_what_it_is_doing(lake, monkeypatch):
    # the exact path (uploads, stdin) said nothing between reading and "Done": a 200k-row
    # upload's bar moved once
    from lib.ingest import pipeline

    monkeypatch.setattr(pipeline, "PROGRESS_EVERY_S", 0.0)
    monkeypatch.setattr(pipeline, "SEGMENT_BYTES", 4096)
    seen = []
    data = jsonl_bytes([canonical_request(i) for i in range(200)])
    report = ingest_stream(lake, io.BytesIO(data), "up.jsonl", progress=seen.append)
    assert report.files[0].stored == {"requests": 200}
    stages = [p.stage for p in seen]
    assert {"reading", "checking", "writing"} <= set(stages) and stages[-2] == "committing"
    assert [p.rows for p in seen] == sorted(p.rows for p in seen)  # never backwards
    assert seen[-1].rows == 200 and seen[-1].stage is None


def test_forced_format_overrides_detection(lake, write):
    path = write("a.jsonl", [canonical_request(1)])
    report = ingest_paths(lake, [str(path)], fmt="csv")
    assert report.files[0].error  # JSON is no CSV with a canonical header
    with pytest.raises(ValueError, match="unknown format"):
        ingest_paths(lake, [str(path)], fmt="nope")


# -- bad input never stops good rows ---------------------------------------------------------
@pytest.fixture
def good_and(write):
    def _with(bad_name: str, bad: bytes):
        good = write("good.jsonl", [canonical_request(i) for i in range(3)])
        return [str(write(bad_name, bad)), str(good)]
    return _with


@pytest.mark.parametrize("name, content, message", [
    # mtime=0: the same bytes at every collection, as pytest-xdist's workers must agree on ids.
    ("cut.jsonl.gz",
     gzip.compress(jsonl_bytes([canonical_request(i) for i in range(500)]), mtime=0)[:300],
     "truncated gzip stream"),
    ("empty.jsonl", b"", "empty file"),
    ("blank.jsonl", b"  \n\n\t\r\n", "no records: the file holds only blank lines"),
    ("junk.jsonl", bytes(range(256)) * 64, "binary data that is not a known format"),
    ("prose.jsonl", b"hello world\nthis is prose\n", "not a recognized format"),
    ("liar.parquet", b"PAR1 but not really", "ArrowInvalid"),
], ids=["truncated-gzip", "empty", "blank", "binary-junk", "prose", "fake-parquet"])
def test_unreadable_input_is_one_clear_error_and_others_go_on(lake, good_and, totals, name,
                                                              content, message):
    paths = good_and(name, content)
    old = os.stat(paths[0]).st_mtime - 600  # (a recent empty file waits: the test below)
    os.utime(paths[0], (old, old))
    report = ingest_paths(lake, paths)
    bad, good = report.files
    assert bad.error and message in bad.error and "\n" not in bad.error
    assert bad.source.endswith(name) and bad.stored == {}
    assert good.stored == {"requests": 3}
    assert totals("SELECT count(*) FROM requests") == (3,)
    assert totals("SELECT count(*) FROM quarantine") == (0,)


@pytest.mark.parametrize("content", [b"", b"\n"], ids=["empty", "blank"])
def test_a_log_just_created_empty_waits_for_its_first_record(lake, write, totals, content):
    """logrotate's "create" leaves a new empty log: an error (exit status 2, cron mail) at every
    rotation, found in review, where a recent half-written line waits quietly. A recent empty
    file is skipped, not remembered, and read once it holds a record; an old one is an error."""
    path = write("app.log", content)
    first = ingest_paths(lake, [str(path)])
    assert first.ok and first.files[0].skipped.endswith(
        "and it changed less than 5 minutes ago (a log just created or rotated?): a run after "
        "it holds a record reads it")
    path.write_bytes(jsonl_bytes([canonical_request(1)]))
    assert ingest_paths(lake, [str(path)]).files[0].stored == {"requests": 1}


def test_a_file_forced_as_csv_that_is_none_says_so_in_words(lake, write):
    f = ingest_paths(lake, [str(write("j.jsonl", [{"request_id": "a"}]))], fmt="csv").files[0]
    assert f.error.startswith("the CSV header ['{\"request_id\": \"a\"}'] names no canonical "
                              "table (a file of requests needs")  # (no "ValueError:")


def test_file_that_is_not_what_its_extension_says_is_read_by_content(lake, tmp_path, totals):
    path = tmp_path / "actually-csv.jsonl"
    path.write_text("request_id,ts,model,input_tokens,output_tokens\n"
                    "r1,2026-03-02T12:00:00Z,gpt-4o,1000,500\n")
    assert ingest_paths(lake, [str(path)]).files[0].format == "csv"
    assert totals("SELECT count(*) FROM requests") == (1,)


@pytest.mark.parametrize("cut", ['_tokens": 5, "service": "edge"}', "5}", '"x'])
def test_a_first_line_cut_by_rotation_is_quarantined_and_the_file_read(lake, tmp_path, totals,
                                                                        cut):
    # log rotation or `tail -c` leaves the end of a line first: detection reads past it
    path = tmp_path / "tail.jsonl"
    path.write_bytes(cut.encode() + b"\n" + jsonl_bytes([canonical_request(i) for i in range(5)]))
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.format, f.error, f.stored, f.quarantined) == ("jsonl", None, {"requests": 5}, 1)
    assert f.reasons[0].startswith("line 1: not valid JSON")
    assert totals("SELECT count(*) FROM requests") == (5,)


@pytest.mark.parametrize("banner", [2, 5])
def test_a_banner_of_a_few_lines_on_top_is_quarantined_and_the_file_read(lake, tmp_path, totals,
                                                                         banner):
    # two "# ..." lines a tool wrote on top made the file "not a recognized format": no row
    # stored, none quarantined (review)
    path = tmp_path / "export.jsonl"
    top = b"".join(b"# exported by tool x, part %d\n" % i for i in range(banner))
    path.write_bytes(top + jsonl_bytes([canonical_request(i) for i in range(5)]))
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.format, f.error, f.stored, f.quarantined) == (
        "jsonl", None, {"requests": 5}, banner)
    assert f.reasons[banner - 1].startswith(f"line {banner}: not valid JSON")
    assert totals("SELECT count(*) FROM requests") == (5,)


def test_a_file_whose_first_lines_are_not_json_is_not_taken_for_json_lines(lake, tmp_path):
    # (six lines of something else: a text file with some JSON in it, not a log to quarantine)
    path = tmp_path / "notes.jsonl"
    path.write_bytes(b"".join(b"line %d of prose\n" % i for i in range(6))
                     + jsonl_bytes([canonical_request(1)]))
    f = ingest_paths(lake, [str(path)]).files[0]
    assert f.error.startswith("not a recognized format") and not f.stored


def test_a_100_mb_line_is_quarantined_and_the_rest_kept(lake, tmp_path, totals):
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as fh:
        fh.write(json.dumps(canonical_request(1)).encode() + b"\n")
        fh.write(b'{"request_id": "big", "input_text": "' + b"x" * (100 * 2**20) + b'"}\n')
        fh.write(json.dumps(canonical_request(2)).encode() + b"\n")
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.stored, f.quarantined, f.error) == ({"requests": 2}, 1, None)
    line, reason, raw_len = totals("SELECT line, reason, length(raw) FROM quarantine")
    assert line == 2 and "longer than the limit" in reason and raw_len <= 2000


def test_a_record_quarantined_before_is_not_counted_again_when_its_file_is_read_again(
        lake, write, totals):
    # a file read whole again (changed before its end, or uploaded again under its name): its
    # bad record was counted as quarantined while the quarantine kept one
    rows = [canonical_request(i) for i in range(6)]
    rows[2]["input_tokens"] = -7
    path = write("app.jsonl", rows)
    assert ingest_paths(lake, [str(path)]).files[0].quarantined == 1
    rows[0]["output_tokens"] = 6  # (an earlier line changed: the whole file is read again)
    rows.append(canonical_request(7))
    path = write("app.jsonl", rows)
    again = ingest_paths(lake, [str(path)]).files[0]
    assert (again.stored, again.duplicates, again.quarantined) == (
        {"requests": 1}, {"requests": 5}, 0)
    assert "1 record(s) already in the quarantine from an earlier read: not added again." in \
        again.notes
    assert totals("SELECT count(*) FROM quarantine") == (1,)


def test_a_rerun_over_a_folder_reads_only_new_and_changed_files(lake, write, totals):
    """A cron job ingesting the same folder every minute: unchanged files are skipped by their
    stat (size, mtime, ctime, inode) without being opened; of a grown file only what was
    appended is read (lib/ingest/appended.py); a file no format reads is remembered as seen."""
    old = write("logs/a.jsonl", [canonical_request(i) for i in range(3)])
    grows = write("logs/b.jsonl", [canonical_request(i) for i in range(10, 12)])
    write("logs/notes.txt", b"not a log\n")
    first = ingest_paths(lake, [str(old.parent)])
    assert first.totals()["stored"] == {"requests": 5} and first.totals()["errors"] == 1

    with open(grows, "a") as fh:
        fh.write(json.dumps(canonical_request(12)) + "\n")
    write("logs/c.jsonl", [canonical_request(20)])
    second = ingest_paths(lake, [str(old.parent)])
    by_name = {f.source.rsplit("/", 1)[1]: f for f in second.files}
    assert by_name["a.jsonl"].skipped == \
        "already ingested (unchanged: same size, mtime, ctime and inode)"
    assert by_name["notes.txt"].skipped.startswith(
        "already seen (unchanged: same size, mtime, ctime and inode): not a recognized format")
    assert (by_name["b.jsonl"].stored, by_name["b.jsonl"].duplicates) == (
        {"requests": 1}, {"requests": 0})
    assert by_name["b.jsonl"].continued_from == {"byte": len(jsonl_bytes(
        [canonical_request(i) for i in range(10, 12)])), "line": 3}
    assert by_name["c.jsonl"].stored == {"requests": 1}
    assert second.totals()["skipped_files"] == 2 and second.ok
    assert totals("SELECT count(*), count(DISTINCT request_id) FROM requests") == (7, 7)

    # Same content written anew (as log rotation or a copy over it does): read, adding nothing
    # (hashed and known; when the file system gave it the old inode back, known as the bytes
    # that inode's read had, lib/ingest/appended.py)
    content = old.read_bytes()
    old.unlink()
    old.write_bytes(content)
    again = ingest_paths(lake, [str(old)]).files[0]
    assert again.duplicate_file or again.skipped.startswith(
        "already ingested: nothing appended since the last read")


def test_attributes_that_are_not_a_json_object_quarantine_their_row_not_the_file(
        lake, write, totals):
    # A CSV written by a tool that renders a struct its own way, and JSON lines whose attributes
    # are a string or an array.
    csv = write("a.csv", b"request_id,ts,model,input_tokens,output_tokens,attributes\n"
                         b"c1,2026-03-02T12:00:00Z,gpt-4o,10,5,{'region': eu}\n"
                         b'c2,2026-03-02T12:00:00Z,gpt-4o,10,5,"{""region"": ""eu""}"\n'
                         b"c3,2026-03-02T12:00:00Z,gpt-4o,10,5,\n")
    jsonl = write("a.jsonl", [canonical_request(1, attributes="{'region': eu}"),
                              canonical_request(2, attributes=[1, 2]),
                              canonical_request(3, attributes={"region": "eu"})])
    report = ingest_paths(lake, [str(csv), str(jsonl)])
    assert [(f.stored, f.quarantined, f.error) for f in report.files] == [
        ({"requests": 2}, 1, None), ({"requests": 1}, 2, None)]
    assert report.files[0].reasons == ["line 2: attributes is not a JSON object"]
    assert report.files[1].reasons == ["line 1: attributes is not a JSON object",
                                       "line 2: attributes is not a JSON object"]
    assert totals("SELECT list(attributes ORDER BY request_id) FROM requests") == (
        ['{"region": "eu"}', None, '{"region":"eu"}'],)


@pytest.mark.parametrize("ts", [1e20, -1e25, "1e30", "NaN", "Infinity"])
def test_an_epoch_beyond_any_unit_quarantines_its_row_not_the_file(lake, write, ts):
    # s < 1e11 < ms < 1e14 < µs < 1e17 < ns < 1e19: past that (or NaN, infinite) it is no time.
    path = write("e.jsonl", [canonical_request(1), canonical_request(2, ts=ts),
                             canonical_request(3, ts=1772452800_000_000_000)])
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.stored, f.quarantined, f.error) == ({"requests": 2}, 1, None)
    assert f.reasons[0].startswith(("line 2: ts is not a timestamp", "line 2: ts out of range"))


def test_a_csv_record_that_is_not_utf8_is_quarantined_with_its_line(lake, write, totals):
    header = b"request_id,ts,model,input_tokens,output_tokens,input_text\n"
    row = "{},2026-03-02T12:00:00Z,gpt-4o,10,5,{}\n"
    content = (header + row.format("a", "fine").encode()
               + row.format("b", '"two\nlines \xff"').encode("latin-1")  # lines 3-4, one record
               + row.format("c", "caf\u00e9").encode()
               + row.format("d", "bad \xe9").encode("latin-1"))
    f = ingest_paths(lake, [str(write("u.csv", content))]).files[0]
    assert (f.stored, f.quarantined, f.error) == ({"requests": 2}, 2, None)
    assert [r.split(":")[0] for r in f.reasons] == ["line 3", "line 6"]
    assert all("not valid UTF-8 text" in r for r in f.reasons)
    assert totals("SELECT list(input_text ORDER BY request_id) FROM requests") == (
        ["fine", "caf\u00e9"],)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_the_quarantine_keeps_a_csv_record_as_the_file_has_it(lake, write, totals, newline):
    # A user fixes the line they wrote, not a JSON rebuilt from its fields. Before the failing
    # rows: a record dropped for its bytes and one with too few fields (the rows after them keep
    # their own text); a quoted field spanning two lines stays one record.
    records = ["request_id,ts,model,input_tokens,output_tokens,input_text",
               "a,2026-03-02T12:00:00Z,gpt-4o,10,5,fine",
               "b,2026-03-02T12:00:00Z,gpt-4o,10,5,bad \udcff",
               "c,2026-03-02T12:00:00Z",
               "",
               'd,2026-03-02T12:00:00Z,gpt-4o,-10,5,"two' + newline + 'lines"',
               "e,2026-03-02T12:00:00Z,gpt-4o,10,5,fine",
               "f,yesterday,gpt-4o,10,5,\"x\""]
    content = newline.join(records).encode("utf-8", "surrogateescape") + newline.encode()
    f = ingest_paths(lake, [str(write("q.csv", content))]).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 2}, 4)
    assert totals("SELECT list(line ORDER BY line), list(raw ORDER BY line) FROM quarantine") == (
        [3, 4, 6, 9], ["b,2026-03-02T12:00:00Z,gpt-4o,10,5,bad \ufffd",
                       "c,2026-03-02T12:00:00Z",
                       'd,2026-03-02T12:00:00Z,gpt-4o,-10,5,"two' + newline + 'lines"',
                       'f,yesterday,gpt-4o,10,5,"x"'])


@pytest.mark.parametrize("sql_path", ["1", "0"])
def test_the_quarantine_keeps_a_jsonl_line_as_written_on_every_path(lake, write, totals,
                                                                   monkeypatch, sql_path):
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "0")
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", sql_path)
    bad = '{"request_id": "b",   "ts": "2026-03-02T12:00:00Z", "model": "gpt-4o", ' \
          '"input_tokens": -1, "team": "x"}'
    content = (jsonl_bytes([canonical_request(1)]) + b"\n" + bad.encode() + b"\r\n"
               + jsonl_bytes([canonical_request(2)]))
    f = ingest_paths(lake, [str(write("a.jsonl", content))]).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 2}, 1)
    assert totals("SELECT line, raw FROM quarantine") == (3, bad)


@pytest.mark.parametrize("sql_path", ["1", "0"])
@pytest.mark.parametrize("blank", [b"   ", b"\t", b" \r"])
def test_two_objects_on_a_line_beside_a_whitespace_line_shift_no_row(lake, write, totals,
                                                                     monkeypatch, sql_path, blank):
    # Line 1 holds two objects (not JSON lines), line 3 only whitespace. Counting line 3 as a
    # line made Arrow's 3 rows line up with 3 lines on the chunked path: rows took their
    # neighbours' line numbers and text. Both paths now quarantine line 1 and store line 2.
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "0")
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", sql_path)
    a, b, c = (json.dumps(canonical_request(i, input_tokens=-1 if i == 1 else 10))
               for i in range(3))
    f = ingest_paths(lake, [str(write("two.jsonl", (a + b + "\n" + c + "\n").encode()
                                      + blank + b"\n"))]).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 1}, 1)
    assert totals("SELECT list(request_id) FROM requests") == (["r2"],)
    assert totals("SELECT line, raw, reason LIKE 'not valid JSON%' FROM quarantine") == (
        1, a + b, True)


@pytest.mark.parametrize("sql_path", ["1", "0"])
def test_a_jsonl_line_that_is_not_utf8_is_quarantined_on_every_path(lake, write, totals,
                                                                    monkeypatch, sql_path):
    # Arrow's JSON reader (the chunked path) does not check UTF-8: such bytes reached the store,
    # or made pricing panic (a BaseException that ended the whole run).
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "0")
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", sql_path)
    good = jsonl_bytes([canonical_request(1)])
    bad = [json.dumps(canonical_request(n, **{k: "\x00"})).replace("\\u0000", "\udcff")
           .encode("utf-8", "surrogateescape") + b"\n"
           for n, k in ((2, "model"), (3, "session_id"), (4, "request_id"))]
    f = ingest_paths(lake, [str(write("u.jsonl", good + b"".join(bad) + good.replace(
        b'"r1"', b'"r5"')))]).files[0]
    assert (f.stored, f.quarantined, f.error) == ({"requests": 2}, 3, None)
    assert all("not valid UTF-8 text" in r for r in f.reasons)
    assert totals("SELECT list(request_id ORDER BY request_id) FROM requests") == (["r1", "r5"],)


def test_a_file_read_under_two_mappings_in_turn_is_skipped_under_each(lake, write, tmp_path):
    # Each outcome is remembered: the latest ingest (under the other mapping) must not hide a
    # "seen" under this one, or the file is read again, and a commit added, on every run.
    path = write("m.jsonl", [{"id": "a", "at": "2026-03-02T12:00:00Z", "llm": "gpt-4o"}])
    specs = []
    for n in range(2):
        spec = tmp_path / f"m{n}.yaml"
        spec.write_text(f"# variant {n}\ntable: requests\ncolumns:\n  request_id: id\n"
                        "  ts: at\n  model: llm\n")
        specs.append(spec)
    runs = [ingest_paths(lake, [str(path)], mapping=specs[n]).files[0] for n in (0, 1, 0, 0, 1)]
    assert [(r.stored, r.duplicates) for r in runs[:2]] == [  # the second: a batch of known rows
        ({"requests": 1}, {"requests": 0}), ({"requests": 0}, {"requests": 1})]
    assert [r.skipped for r in runs[2:]] == [
        "already ingested (unchanged: same size, mtime, ctime and inode)"] * 3
    assert len(lake.commits()) == 2



def test_a_file_name_that_is_not_utf8_is_ingested_under_an_escaped_name(tmp_path, totals, lake):
    folder = tmp_path / "logs"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/caf\xe9"
    with open(raw + b".jsonl", "wb") as fh:
        fh.write(jsonl_bytes([canonical_request(1)]))
    with open(raw + b".csv", "wb") as fh:
        fh.write(b"request_id,ts,model\nc1,2026-03-02T12:00:00Z,gpt-4o\n")
    report = ingest_paths(lake, [str(folder)])
    assert [(f.source, f.error) for f in report.files] == [
        (f"{folder}/caf\\xe9.csv", None), (f"{folder}/caf\\xe9.jsonl", None)]
    assert totals("SELECT count(*), list(DISTINCT source_file ORDER BY source_file) "
                  "FROM requests") == (2, [f"{folder}/caf\\xe9.csv", f"{folder}/caf\\xe9.jsonl"])


def test_a_folder_holding_the_store_does_not_feed_the_store_to_itself(tmp_path, write):
    from lib.store import Lake

    logs = write("a.jsonl", [canonical_request(1)]).parent  # tmp_path/in
    lake = Lake(logs / "store")  # as data/ holds the default data/store/
    first = ingest_paths(lake, [str(logs)])
    assert [f.source for f in first.files] == [str(logs / "a.jsonl")]
    commits = len(lake.commits())
    again = ingest_paths(lake, [str(logs)])
    assert [(f.source, f.skipped is not None, f.error) for f in again.files] == [
        (str(logs / "a.jsonl"), True, None), (str(lake.root), True, None)]
    assert "the store itself" in again.files[1].skipped
    assert len(lake.commits()) == commits  # nothing read, nothing recorded


@pytest.mark.parametrize("fast", ["1", "0"])
def test_a_batch_committed_before_an_error_is_reported_as_stored(lake, write, monkeypatch, fast):
    """A failed fsync of the manifest folder after the commit's link: the rows are in the
    store, so the report says they were stored (fast path and exact path alike)."""
    from lib.store import lake as lake_module

    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", fast)
    path = write("a.jsonl", [canonical_request(1), canonical_request(2)])

    def failing_fsync_dir(folder):
        raise OSError(5, "Input/output error", str(folder))

    monkeypatch.setattr(lake_module, "_fsync_dir", failing_fsync_dir)
    (report,) = ingest_paths(lake, [str(path)]).files
    monkeypatch.undo()
    assert (report.error, report.stored, report.duplicate_file) == (None, {"requests": 2}, False)
    assert [c.rows for c in lake.commits()] == [{"requests": 2}]


@pytest.mark.parametrize("path", ["group", "fast", "exact"])
def test_a_file_whose_rows_were_all_stored_before_says_stored_0_on_every_path(
        lake, write, monkeypatch, path):
    rows = [canonical_request(i) for i in range(3)]
    ingest_paths(lake, [str(write("a.jsonl", rows))])
    again = [write(f"again-{n}.jsonl", rows[n:] + rows[:n]) for n in (1, 2)]  # other bytes
    report = ingest_on_path(lake, again, path, monkeypatch)
    assert [(f.stored, f.duplicates, f.error) for f in report.files] == [
        ({"requests": 0}, {"requests": 3}, None)] * 2


def test_sources_read_one_at_a_time_in_a_row_share_the_writer_lock(lake, write, monkeypatch):
    from lib.ingest import pipeline
    from lib.store import Lake

    monkeypatch.setenv("SIGHTLINE_INGEST_GROUP", "0")  # every file read alone, by the fast path
    monkeypatch.setattr(pipeline, "LOCK_RUN_FILES", 3)  # let go after three, for other writers
    paths = [write(f"f{n}.jsonl", [canonical_request(10 * n + k) for k in range(2)])
             for n in range(6)]
    old = os.stat(paths[0]).st_mtime - 600  # not files still being written
    for p in paths:
        os.utime(p, (old, old))
    listings, taken = [], []
    list_manifest, take_lock = Lake._listed_state, Lake.writer_lock

    def counted_lock(self):
        if self._lock_depth == 0:
            taken.append(1)
        return take_lock(self)

    monkeypatch.setattr(Lake, "_listed_state", lambda self: listings.append(1) or
                        list_manifest(self))
    monkeypatch.setattr(Lake, "writer_lock", counted_lock)
    report = ingest_paths(lake, [str(p) for p in paths], compact_min_files=0)
    # two lock runs of three files, each listing the manifest once, and one listing before
    # them for what earlier runs read: a lock a file, and three listings, took 6 and 19
    assert (len(taken), len(listings)) == (2, 3)
    assert [f.stored for f in report.files] == [{"requests": 2}] * 6
    assert len([c for c in lake.commits() if c.kind == "ingest"]) == 6  # a batch each


def test_a_failure_on_a_full_store_disk_says_so(lake, write, monkeypatch):
    """Found in review: a store on a full disk failed a file with DuckDB's "Out of Memory Error:
    failed to offload data block", which sent on-call looking at RAM."""
    import shutil
    from collections import namedtuple

    import duckdb

    from lib.ingest import pipeline

    def full(*args, **kwargs):
        raise duckdb.OutOfMemoryException("Out of Memory Error: failed to offload data block")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(pipeline, "_ingest_open_source", full)
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "0")
    path = str(write("a.jsonl", [canonical_request(1)]))
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**10, 10**10 - 12 * 10**6,
                                                             12 * 10**6))
    assert ingest_paths(lake, [path]).files[0].error == (
        "OutOfMemoryException: Out of Memory Error: failed to offload data block; the store's "
        "disk has only 12 MB free (DuckDB spills to it and the batch's files are written "
        "there): free some space and run again")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 0, 10**12))
    assert ingest_paths(lake, [path]).files[0].error == (
        "OutOfMemoryException: Out of Memory Error: failed to offload data block")
