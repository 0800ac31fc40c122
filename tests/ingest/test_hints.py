"""Hints for canonical files whose fields look like canonical columns under other names: the
report says which field looks like which column, instead of the counts quietly landing in
``attributes`` (priced as no tokens) or every row being quarantined with "missing ts"."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib.ingest.hints import column_hints
from lib.ingest.pipeline import ingest_paths
from lib.metrics import inventory
from lib.store import Engine
from tests.conftest import T0


def _jsonl(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


OPENAI_STYLE = {"request_id": "r1", "timestamp": "2026-03-02T12:00:00Z", "model": "gpt-4o",
                "prompt_tokens": 100, "completion_tokens": 20, "latency": 0.25, "region": "eu"}


def test_fields_named_like_columns_are_each_named_with_the_column_they_look_like():
    (hint,) = column_hints("jsonl", _jsonl([OPENAI_STYLE]))
    assert "timestamp (is it ts?)" in hint
    assert "prompt_tokens (is it input_tokens?)" in hint
    assert "completion_tokens (is it output_tokens?)" in hint
    assert "latency (is it latency_ms, in milliseconds?)" in hint
    assert "region" not in hint  # a team's own field is not a misspelt column
    assert "--mapping" in hint


def test_a_columns_own_name_in_another_spelling_is_recognized():
    (hint,) = column_hints("jsonl", _jsonl([{"request_id": "r", "model": "m", "ts": 1,
                                            "inputTokens": 1, "Output-Tokens": 2}]))
    assert "inputTokens (is it input_tokens?)" in hint
    assert "Output-Tokens (is it output_tokens?)" in hint


def test_no_hint_when_the_canonical_column_is_there_or_nothing_looks_like_one():
    canonical = {"request_id": "r", "ts": "2026-03-02T12:00:00Z", "model": "m",
                 "input_tokens": 1, "output_tokens": 1, "latency_ms": 5, "latency": 0.005,
                 "region": "eu"}
    assert column_hints("jsonl", _jsonl([canonical])) == []
    # not a canonical format: a mapping or a trace format names its fields on purpose
    assert column_hints("otlp-json", _jsonl([OPENAI_STYLE])) == []
    assert column_hints("jsonl", b"not json at all\n") == []


def test_csv_headers_with_any_separator_and_json_arrays_get_the_same_hints():
    header = ["request_id", "timestamp", "model", "prompt_tokens", "completion_tokens"]
    for sep in (",", ";", "\t"):
        (hint,) = column_hints("csv", (sep.join(header) + "\nr1" + sep * 4 + "\n").encode())
        assert "timestamp (is it ts?)" in hint and "prompt_tokens (is it input_tokens?)" in hint
    array = json.dumps([OPENAI_STYLE, OPENAI_STYLE], indent=2).encode()
    (hint,) = column_hints("json", array[: len(array) - 40])  # the head may cut the array
    assert "prompt_tokens (is it input_tokens?)" in hint


def test_token_counts_inside_a_usage_object_are_pointed_at():
    row = {"request_id": "r1", "ts": "2026-03-02T12:00:00Z", "model": "gpt-4o",
           "usage": {"prompt_tokens": 10, "completion_tokens": 2}}
    (hint,) = column_hints("jsonl", _jsonl([row]))
    assert "inside usage" in hint and "priced as if they had no tokens" in hint
    # a provider's usage names: the whole response object would be read as it is
    assert hint.endswith("formats openai and anthropic read it with no mapping "
                         "(docs/provider-logs.md)")
    own = {**row, "usage": {"in": 10, "out": 2}}
    (hint,) = column_hints("jsonl", _jsonl([own]))
    assert "inside usage" in hint and "provider-logs" not in hint


def test_eval_and_event_fields_get_hints_too():
    (hint,) = column_hints("jsonl", _jsonl([{"eval_id": "e", "metric": "m", "value": 0.5,
                                            "timestamp": "2026-03-02T12:00:00Z"}]))
    assert "value (is it score?)" in hint and "timestamp (is it ts?)" in hint
    (hint,) = column_hints("jsonl", _jsonl([{"event_id": "d", "type": "deploy",
                                            "name": "v2", "ts": "2026-03-02T12:00:00Z"}]))
    assert "type (is it kind?)" in hint and "name (is it title?)" in hint


@pytest.mark.parametrize("fast", ["1", "0"])
def test_the_report_and_the_batch_note_carry_the_hint_on_every_path(lake, write, monkeypatch,
                                                                   fast):
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", fast)
    rows = [dict(OPENAI_STYLE, request_id=f"r{i}", ts=T0.isoformat()) for i in range(3)]
    path = write("openai-style.jsonl", _jsonl(rows))
    f = ingest_paths(lake, [str(path)], compact_min_files=0).files[0]
    assert f.stored == {"requests": 3}
    (note,) = f.notes
    assert "prompt_tokens (is it input_tokens?)" in note
    assert "timestamp" not in note  # ts is there: only what the rows lack is hinted
    assert f.to_dict()["notes"] == [note]  # --json
    eng = Engine(lake)
    try:
        assert inventory.batches(eng)["note"].to_list() == [note]  # the Data page
    finally:
        eng.close()
    again = ingest_paths(lake, [str(write("copy.jsonl", _jsonl(rows)))]).files[0]
    assert again.duplicate_file and again.notes == []


def test_rows_quarantined_for_missing_ts_say_where_the_time_probably_is(lake, write):
    f = ingest_paths(lake, [str(write("t.jsonl", _jsonl([OPENAI_STYLE])))]).files[0]
    assert (f.stored, f.quarantined) == ({}, 1)
    assert f.reasons == ["line 1: missing ts"]
    assert "timestamp (is it ts?)" in f.notes[0]


def test_anthropic_cache_fields_warn_that_its_input_tokens_leave_them_out():
    # The field's best-known cost bug: Anthropic's input_tokens is only the uncached part.
    row = {"request_id": "r1", "ts": "2026-03-02T12:00:00Z", "model": "claude-sonnet-4",
           "input_tokens": 1000, "output_tokens": 5, "cache_read_input_tokens": 800,
           "cache_creation_input_tokens": 200}
    hints = column_hints("jsonl", _jsonl([row]))
    assert any("cache_read_input_tokens (is it cached_input_tokens?)" in h for h in hints)
    (warning,) = [h for h in hints if "Anthropic" in h]
    assert "sum of the three" in warning and "too low" in warning


def test_gemini_usage_fields_warn_that_its_candidates_leave_the_thinking_out():
    # Gemini's usage_metadata: prompt_token_count holds the cached content, but
    # candidates_token_count leaves thoughts_token_count out (total = prompt + candidates +
    # thoughts). The hint named only prompt_token_count: renamed as it said, the calls were
    # stored without an output count and priced on their input alone.
    row = {"request_id": "r1", "ts": "2026-03-02T12:00:00Z", "model": "gemini-2.5-flash",
           "prompt_token_count": 10000, "cached_content_token_count": 8000,
           "candidates_token_count": 500, "thoughts_token_count": 1500,
           "total_token_count": 12000}
    hints = column_hints("jsonl", _jsonl([row]))
    (fields,) = [h for h in hints if h.startswith("fields not read")]
    for field, column in [("prompt_token_count", "input_tokens"),
                          ("cached_content_token_count", "cached_input_tokens"),
                          ("candidates_token_count", "output_tokens"),
                          ("thoughts_token_count", "reasoning_tokens")]:
        assert f"{field} (is it {column}?)" in fields
    (warning,) = [h for h in hints if "Gemini" in h]
    assert "sum of candidates_token_count and thoughts_token_count" in warning
    assert "too low" in warning


def test_a_file_no_format_recognizes_is_told_its_fields_and_what_each_table_needs(lake, write):
    rows = [{"id": "x1", "timestamp": "2026-03-02T12:00:00Z", "model": "gpt-4o",
             "usage": {"prompt_tokens": 10}, "latency": 0.2}]
    f = ingest_paths(lake, [str(write("app.jsonl", _jsonl(rows)))]).files[0]
    assert f.stored == {} and f.error.startswith("not a recognized format (tried: ")
    assert "its fields (id, timestamp, model, usage, latency) name no canonical table" in f.error
    assert "id → request_id?, timestamp → ts?, latency → latency_ms?" in f.error
    assert "--mapping (docs/mapping.md)" in f.error
    csv_file = write("app.csv", b"id;timestamp;model;prompt_tokens\nx;2026-03-02;gpt-4o;10\n")
    f = ingest_paths(lake, [str(csv_file)]).files[0]
    assert "its fields (id, timestamp, model, prompt_tokens)" in f.error
    assert "prompt_tokens → input_tokens?" in f.error
    assert "--format openai" not in f.error


def test_an_undetected_file_of_provider_responses_is_pointed_at_their_formats(lake, write):
    # Failed calls first: nothing in the head is a response object the openai format knows.
    rows = [{"id": f"x{i}", "choices": [], "error": {"code": "server_error"}} for i in range(3)]
    f = ingest_paths(lake, [str(write("calls.jsonl", _jsonl(rows)))]).files[0]
    assert f.error.startswith("not a recognized format")
    assert f.error.endswith("(OpenAI or Anthropic responses: --format openai or --format "
                            "anthropic, see docs/provider-logs.md)")


@pytest.mark.parametrize("text", [b"hello world\nmore text\n",
                                  b"2024-01-01 12:00:00 INFO request done, user=bob, ms=12\n",
                                  b"<html><body>Hello, world</body></html>\n"])
def test_text_that_has_no_fields_keeps_the_plain_message(lake, write, text):
    f = ingest_paths(lake, [str(write("notes.txt", text))]).files[0]
    assert f.error.endswith("; use --format or --mapping to say what it is")
    assert "fields" not in f.error


def test_a_parquet_files_columns_get_the_same_hints(lake, tmp_path):
    table = pa.table({"request_id": ["p1", "p2"], "ts": pa.array([T0, T0], pa.timestamp("us",
                                                                                      "UTC")),
                      "model": ["gpt-4o"] * 2, "usage": [{"prompt_tokens": 1}] * 2,
                      "duration": [0.2, 0.3]})
    path = tmp_path / "calls.parquet"
    pq.write_table(table, path)
    f = ingest_paths(lake, [str(path)]).files[0]
    assert f.stored == {"requests": 2}
    assert len(f.notes) == 2
    assert "duration (is it latency_ms, in milliseconds?)" in f.notes[0]
    assert "inside usage" in f.notes[1]


def test_columns_sightline_sets_are_never_suggested_and_replaced_ones_are_said():
    # Renaming batchId to batch_id would lose it: the lake sets batch_id at each ingest.
    row = {"request_id": "r1", "ts": "2026-03-02T12:00:00Z", "model": "m", "input_tokens": 1,
           "batchId": "b7", "ingestedAt": "x", "sourceFile": "app.py", "costUsd": 0.5}
    (hint,) = column_hints("jsonl", _jsonl([row]))
    assert "costUsd (is it logged_cost_usd, in USD?)" in hint
    for field in ("batchId", "ingestedAt", "sourceFile"):
        assert field not in hint
    row = {"request_id": "r1", "ts": "2026-03-02T12:00:00Z", "model": "m", "input_tokens": 1,
           "batch_id": "b7", "ingested_at": "2020-01-01T00:00:00Z"}
    (hint,) = column_hints("jsonl", _jsonl([row]))
    assert hint.startswith("batch_id and ingested_at: set by Sightline at each ingest")


def test_a_head_nested_past_pythons_recursion_limit_gives_no_hint_and_stops_nothing(lake,
                                                                                   write):
    deep = {"request_id": "d", "ts": "2026-03-02T12:00:00Z", "model": "m", "prompt_tokens": 1}
    line = json.dumps(deep)[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}"
    assert column_hints("jsonl", line.encode() + b"\n") == []
    assert column_hints("json", b"[" + line.encode() + b"]") == []
    good = json.dumps(dict(deep, request_id="g", ts=T0.isoformat()))
    f = ingest_paths(lake, [str(write("deep.jsonl", (good + "\n" + line + "\n").encode()))]
                     ).files[0]
    assert f.error is None and f.stored == {"requests": 2}


def _zip_bytes() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # an Excel workbook's shape, saved as .csv
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    return buf.getvalue()


@pytest.mark.parametrize("name, data, said", [
    ("report.csv", _zip_bytes(), "a ZIP archive (an Excel workbook"),
    ("calls.jsonl.gz", gzip.compress(gzip.compress(
        _jsonl([{"request_id": "r", "ts": 1, "model": "m"}]))), "compressed twice?"),
    ("calls.jsonl", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "a PDF document"),
    ("calls.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG image"),
], ids=["zip-as-csv", "gzip-twice", "pdf", "png"])
def test_a_binary_file_no_format_reads_is_said_to_be_what_its_first_bytes_are(
        tmp_path, name, data, said):
    # "binary data that is not a known format" alone left the user to guess that the file was
    # a workbook saved as .csv, or logs gzipped twice (review)
    from lib.ingest.pipeline import NOT_TEXT
    from lib.store import Lake
    from lib.ui.upload import binary, page_wording

    path = tmp_path / name
    path.write_bytes(data)
    f = ingest_paths(Lake(tmp_path / "store"), [str(path)]).files[0]
    assert f.error.startswith(NOT_TEXT) and said in f.error
    assert binary(f)  # the upload still offers no mapping for it
    # and no Format is offered for it: none reads a workbook, a PDF or an image (review)
    assert "--format" not in f.error and "Format above" not in page_wording(f.error)
    assert f.error.endswith(said) or said in f.error.rsplit("first bytes, ", 1)[1]
