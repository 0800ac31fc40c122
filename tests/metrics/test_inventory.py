"""The Data page's inventory: batches list each commit, and why a source gave no rows."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pyarrow as pa

from lib import schema
from lib.ingest.pipeline import ingest_paths
from lib.metrics import inventory
from tests.ingest.conftest import canonical_request, jsonl_bytes


def test_batches_say_why_a_source_gave_no_rows(lake, engine, tmp_path):
    rows = jsonl_bytes([canonical_request(i) for i in range(3)])
    (tmp_path / "a.jsonl").write_bytes(rows)
    (tmp_path / "copy.jsonl").write_bytes(rows)
    (tmp_path / "empty.jsonl").write_bytes(b"")
    os.utime(tmp_path / "empty.jsonl", (0, 0))  # (an empty file written just now waits)
    ingest_paths(lake, [str(tmp_path / n) for n in ("a.jsonl", "copy.jsonl", "empty.jsonl")])
    engine.refresh()
    got = inventory.batches(engine).sort("source")
    assert got.select("kind", "rows", "note").rows() == [
        ("ingest", 3, None), ("seen", 0, "same content as an ingested source"),
        ("seen", 0, "empty file")]


def test_batches_count_stored_rows_apart_from_quarantined_inputs(lake, engine, tmp_path):
    good = jsonl_bytes([canonical_request(i) for i in range(2)])
    (tmp_path / "mixed.jsonl").write_bytes(good + b'{"request_id": "bad", "ts": \n')
    ingest_paths(lake, [str(tmp_path / "mixed.jsonl")])
    engine.refresh()
    got = inventory.batches(engine)
    assert got.select("kind", "format", "rows", "quarantined").rows() == [
        ("ingest", "jsonl", 2, 1)]


def test_batches_keep_what_a_format_read_but_did_not_store(lake, engine, tmp_path):
    from lib.ingest.base import Chunk, Format

    def parse(stream, filename):
        stream.read()
        yield Chunk(not_read={"log record(s) that are not evaluations": 1204})

    fmt = Format(name="noted", detect=lambda head, name: False, parse=parse, doc="test")
    (tmp_path / "app.log").write_bytes(b"anything\n")
    ingest_paths(lake, [str(tmp_path / "app.log")], fmt=fmt)
    engine.refresh()
    assert inventory.batches(engine).select("rows", "note").rows() == [
        (0, "1,204 log record(s) that are not evaluations: not read")]


def test_a_batch_of_what_was_appended_to_a_file_says_which_bytes_it_read(lake, engine,
                                                                           tmp_path):
    path = tmp_path / "grows.jsonl"
    first = jsonl_bytes([canonical_request(i) for i in range(2)])
    path.write_bytes(first)
    ingest_paths(lake, [str(path)])
    more = jsonl_bytes([canonical_request(2)])
    with open(path, "ab") as f:
        f.write(more)
    ingest_paths(lake, [str(path)])
    engine.refresh()
    assert inventory.batches(engine).sort("committed_at").select("rows", "note").rows() == [
        (2, None), (1, f"bytes {len(first):,}-{len(first) + len(more):,} of the file: what was "
                       "appended since the read before")]


def _quarantine_two_files(lake, engine, tmp_path) -> None:
    # a.jsonl: line 2 misses ts and model; line 3 has negative tokens twice over, line 4 once.
    # b.csv: line 2 has too few fields, line 3 negative input tokens.
    (tmp_path / "a.jsonl").write_bytes(jsonl_bytes([
        canonical_request(0), {"request_id": "x"},
        canonical_request(1, input_tokens=-1, output_tokens=-2),
        canonical_request(2, input_tokens=-5)]))
    (tmp_path / "b.csv").write_text("request_id,ts,model,input_tokens\n"
                                    "c1,2026-03-02T12:00:00Z\n"
                                    "c2,2026-03-02T12:00:00Z,gpt-4o,-3\n")
    ingest_paths(lake, [str(tmp_path / "a.jsonl"), str(tmp_path / "b.csv")])
    engine.refresh()


def test_quarantine_checks_count_inputs_per_check_without_the_values(lake, engine, tmp_path):
    _quarantine_two_files(lake, engine, tmp_path)
    assert sorted(inventory.quarantine(engine)["reason"].to_list()) == [
        "expected 4 CSV fields, found 2",
        "input_tokens is negative: -1; output_tokens is negative: -2",
        "input_tokens is negative: -3", "input_tokens is negative: -5",
        "missing ts; missing model"]
    got = inventory.quarantine_checks(engine)
    assert got.select("check", "inputs", "files").rows() == [
        ("input_tokens is negative", 3, 2), ("expected N CSV fields, found N", 1, 1),
        ("missing model", 1, 1), ("missing ts", 1, 1), ("output_tokens is negative", 1, 1)]
    assert got["last_ingested_at"].null_count() == 0


def test_checks_group_rows_whose_reasons_differ_only_in_numbers_and_values(lake, engine,
                                                                             tmp_path):
    rows = [canonical_request(i, input_tokens=100, cached_input_tokens=100 + i) for i in (1, 2)]
    (tmp_path / "c.jsonl").write_bytes(jsonl_bytes(rows))
    (tmp_path / "d.csv").write_text("request_id,ts,model\nx,2026-03-02T12:00:00Z\n"
                                    "y,2026-03-02T12:00:00Z,gpt-4o,extra,fields\n")
    ingest_paths(lake, [str(tmp_path / "c.jsonl"), str(tmp_path / "d.csv")])
    engine.refresh()
    assert sorted(inventory.quarantine(engine)["reason"].to_list()) == [
        "cached_input_tokens + cache_write_tokens (101) exceed input_tokens (100), which must "
        "include them",
        "cached_input_tokens + cache_write_tokens (102) exceed input_tokens (100), which must "
        "include them",
        "expected 3 CSV fields, found 2", "expected 3 CSV fields, found 5"]
    assert inventory.quarantine_checks(engine).select("check", "inputs").rows() == [
        ("cached_input_tokens + cache_write_tokens (N) exceed input_tokens (N), which must "
         "include them", 2), ("expected N CSV fields, found N", 2)]


def test_a_span_format_reason_keeps_what_made_the_span_unusable(lake, engine, tmp_path):
    def span(span_id: str, tokens: str) -> dict:
        return {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": span_id, "name": "chat",
                "startTimeUnixNano": "1772452800000000000",
                "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                               {"key": "gen_ai.request.model", "value": {"stringValue": "m"}},
                               {"key": "gen_ai.usage.input_tokens",
                                "value": {"stringValue": tokens}}]}
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [
        span("b7ad6b7169203331", "abc"), span("b7ad6b7169203332", "1.5")]}]}]}
    (tmp_path / "spans.jsonl").write_text(json.dumps(doc) + "\n")
    ingest_paths(lake, [str(tmp_path / "spans.jsonl")])
    engine.refresh()
    assert inventory.quarantine_checks(engine).select("check", "inputs").rows() == [
        ("span not usable: gen_ai.usage.input_tokens is not an integer", 2)]


def test_a_value_holding_the_reason_separator_is_quoted_and_splits_off_no_check(lake, engine,
                                                                               tmp_path):
    # The canonical JSONL (SQL) path and a span format (Python) each quote the value.
    (tmp_path / "e.jsonl").write_bytes(jsonl_bytes([
        canonical_request(1, input_tokens="lots; of them", model=None),
        canonical_request(2, status="fine; really")]))
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
        "name": "chat", "startTimeUnixNano": "1772452800000000000",
        "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                       {"key": "gen_ai.request.model", "value": {"stringValue": "m"}},
                       {"key": "gen_ai.usage.input_tokens",
                        "value": {"stringValue": "a; b; c"}}]}]}]}]}
    (tmp_path / "spans.jsonl").write_text(json.dumps(doc) + "\n")
    ingest_paths(lake, [str(tmp_path / "e.jsonl"), str(tmp_path / "spans.jsonl")])
    engine.refresh()
    assert sorted(inventory.quarantine(engine)["reason"].to_list()) == [
        'input_tokens is not an integer: "lots; of them"; missing model',
        'span not usable: gen_ai.usage.input_tokens is not an integer: "a; b; c"',
        'status must be ok or error: "fine; really"']
    assert sorted(inventory.quarantine_checks(engine)["check"].to_list()) == [
        "input_tokens is not an integer", "missing model",
        "span not usable: gen_ai.usage.input_tokens is not an integer",
        "status must be ok or error"]
    assert inventory.quarantine(engine, check="missing model")["line"].to_list() == [1]


def test_values_and_keys_that_look_quoted_split_off_no_check(lake, engine, tmp_path):
    # A value holding ': "' (or starting with a quote) is quoted too, so the quoted value after
    # it cannot swallow the next part; a repeated key is a JSON string of its own.
    (tmp_path / "f.jsonl").write_text(
        json.dumps(canonical_request(1, input_tokens='about: "ten', status="fine; really"))
        + "\n" + json.dumps(canonical_request(2, status='"ok')) + "\n"
        + '{"request_id": "r3", "a; b": 1, "a; b": 2}\n')
    ingest_paths(lake, [str(tmp_path / "f.jsonl")])
    engine.refresh()
    assert sorted(inventory.quarantine(engine)["reason"].to_list()) == [
        'input_tokens is not an integer: "about: \\"ten"; '
        'status must be ok or error: "fine; really"',
        'key "a; b" appears twice in the object: which value is meant is ambiguous',
        'status must be ok or error: "\\"ok"']
    checks = inventory.quarantine_checks(engine)
    assert sorted(checks["check"].to_list()) == [
        'a key appears twice in the object', 'input_tokens is not an integer',
        "status must be ok or error"]
    assert inventory.quarantine(engine, check="a key appears twice in the object").height == 1
    assert inventory.quarantine(engine, check="status must be ok or error").height == 2


def test_span_ids_in_reasons_group_as_one_check(lake, engine):
    from tests.conftest import T0

    rows = pa.table({"quarantine_id": ["q1", "q2"], "ts": pa.array([T0, T0], schema.TS),
                     "source_file": ["s.jsonl"] * 2, "line": [1, 2], "raw": ["{}", "{}"],
                     "reason": [f"gen_ai.evaluation.result event of span {s} not usable: "
                                "gen_ai.evaluation.score.value is not a number: x"
                                for s in ("00000000000001ac", "b7ad6b7169203331")]})
    lake.append({"quarantine": rows}, source="t")
    engine.refresh(force=True)
    assert inventory.quarantine_checks(engine).select("check", "inputs").rows() == [
        ("gen_ai.evaluation.result event of span ID not usable: "
         "gen_ai.evaluation.score.value is not a number", 2)]


def test_the_quarantine_list_filters_by_file_and_check(lake, engine, tmp_path):
    _quarantine_two_files(lake, engine, tmp_path)
    a, b = str(tmp_path / "a.jsonl"), str(tmp_path / "b.csv")
    negative = inventory.quarantine(engine, check="input_tokens is negative")
    assert sorted(zip(negative["source_file"], negative["line"], strict=True)) == [
        (a, 3), (a, 4), (b, 3)]
    only_b = inventory.quarantine(engine, source_file=b, check="input_tokens is negative")
    assert only_b.select("line", "raw").rows() == [(3, "c2,2026-03-02T12:00:00Z,gpt-4o,-3")]
    assert inventory.quarantine(engine, source_file=b, check="missing ts").is_empty()
    # a check is a whole reason part, not a prefix of one
    assert inventory.quarantine(engine, check="input_tokens").is_empty()
    assert inventory.quarantine(engine, limit=2).height == 2


def test_numbers_with_thousands_separators_group_as_n(lake, engine, tmp_path):
    """An OTLP protobuf file's reasons quote sizes as 3,171: cut files group under one check,
    and the detail after the colon (which byte) is no part of it."""
    def prefixed(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data

    for name, size in (("a.pb", 1500), ("b.pb", 2600)):
        request = prefixed(b"\x0a\x00")  # a trace request with one empty entry
        path = tmp_path / name
        path.write_bytes(request + size.to_bytes(4, "big") + b"\x0a" * 40)
        long_ago = time.time() - 3600  # (not a file being written: lib.ingest.pipeline)
        os.utime(path, (long_ago, long_ago))
    ingest_paths(lake, [str(tmp_path / "a.pb"), str(tmp_path / "b.pb")])
    engine.refresh()
    assert sorted(inventory.quarantine(engine)["reason"].to_list()) == [
        "the file ends inside the request (40 of 1,500 bytes): truncated (at byte 6)",
        "the file ends inside the request (40 of 2,600 bytes): truncated (at byte 6)"]
    assert inventory.quarantine_checks(engine).select("check", "inputs").rows() == [
        ("the file ends inside the request (N of N bytes)", 2)]


def test_batches_are_the_newest_that_match_a_kind_and_a_part_of_the_source(lake, engine,
                                                                           tmp_path):
    for name in ("app-a.jsonl", "app-b.jsonl", "other.jsonl", "APP-c.jsonl"):
        path = tmp_path / name
        path.write_text(json.dumps({**canonical_request(len(name)), "request_id": name}) + "\n")
        ingest_paths(lake, [str(path)], compact_min_files=0)
    ingest_paths(lake, [str(tmp_path / "app-a.jsonl")])  # (nothing new: no commit)
    newest_first = [Path(s).name for s in inventory.batches(engine)["source"]]
    assert newest_first == ["APP-c.jsonl", "other.jsonl", "app-b.jsonl", "app-a.jsonl"]
    assert [Path(s).name for s in inventory.batches(
        engine, limit=2, kind="ingest", source_contains="app")["source"]] == \
        ["APP-c.jsonl", "app-b.jsonl"]
    assert inventory.batches(engine, kind="compact").is_empty()
    assert inventory.batches(engine, limit=0).is_empty()


def test_a_commit_that_rewrites_stored_rows_counts_none_as_stored(lake, engine, tmp_path):
    # a remove after a compaction read "Rows stored 3, Quarantined 1": the rows it kept beside
    # the batch it took out, as if it had stored them (review); likewise a compaction
    from lib.store import compact

    for i in range(3):
        (tmp_path / f"{i}.jsonl").write_bytes(jsonl_bytes([canonical_request(i)])
                                              + b'{"request_id": "bad", "ts": \n')
        ingest_paths(lake, [str(tmp_path / f"{i}.jsonl")], compact_min_files=0)
    compact.compact(lake, min_files=2)
    first = next(c.commit_id for c in lake.commits() if c.kind == "ingest")
    lake.remove_batch(first)
    engine.refresh()
    got = inventory.batches(engine).select("kind", "rows", "quarantined", "note").rows()
    assert [r[:3] for r in got] == [("remove", None, None), ("compact", None, None),
                                    ("compact", None, None), ("ingest", 1, 1),
                                    ("ingest", 1, 1), ("ingest", 1, 1)]
    assert got[0][3].startswith(f"took out batch {first} (1 quarantined row, 1 request)")
    assert got[0][3].endswith("rewrote 2 quarantined rows, 2 requests already stored")
    assert {got[1][3], got[2][3]} == {"rewrote 3 quarantined rows already stored",
                                      "rewrote 3 requests already stored"}
