"""A key repeated within one file: saying the same, a duplicate; saying something else, the
repeat is quarantined, naming the line that was stored, on every ingest path and format. A key
already stored by another file is a duplicate whatever it says (two sources log one call)."""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib.ingest.pipeline import ingest_paths
from lib.metrics import inventory
from lib.store.engine import Engine
from tests.ingest.conftest import canonical_request

REASON = 'request_id already in this file with other values (the first is stored): "r1"'
ROWS = [canonical_request(1), canonical_request(2), canonical_request(1),
        canonical_request(1, output_tokens=50)]

# JSON lines take the fast path (which leaves a file with a repeated key to the exact one), the
# exact SQL path or the Arrow path; CSV and Parquet the Arrow path.
PATHS = {
    "jsonl": {},
    "jsonl-exact": {"SIGHTLINE_INGEST_FAST": "0"},
    "jsonl-arrow": {"SIGHTLINE_INGEST_FAST": "0", "SIGHTLINE_INGEST_SQL": "0"},
    "csv": {},
    "parquet": {},
}


def _file(tmp_path, kind: str, rows: list[dict]):
    if kind.startswith("jsonl"):
        path = tmp_path / "calls.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif kind == "csv":
        path = tmp_path / "calls.csv"
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        path.write_text(out.getvalue())
    else:
        path = tmp_path / "calls.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _first_line(kind: str) -> int:
    """The line number of the file's first record, as the quarantine counts it."""
    return 2 if kind == "csv" else 1


@pytest.mark.parametrize("kind", PATHS)
def test_a_repeat_with_other_values_is_quarantined_and_the_first_row_stored(
        kind, tmp_path, lake, totals, monkeypatch):
    for name, value in PATHS[kind].items():
        monkeypatch.setenv(name, value)
    f = ingest_paths(lake, [str(_file(tmp_path, kind, ROWS))]).files[0]
    first = _first_line(kind)
    assert (f.error, f.stored, f.duplicates, f.quarantined) == (
        None, {"requests": 2}, {"requests": 1}, 1)
    assert f.reasons == [f"line {first + 3}: {REASON}"]
    assert totals("SELECT count(*), sum(output_tokens), round(sum(cost_usd), 6) "
                  "FROM requests") == (2, 1000, 0.015)
    line, reason, raw = totals("SELECT line, reason, raw FROM quarantine")
    assert (line, reason) == (first + 3, REASON)
    record = json.loads(raw)  # the repeat, rebuilt from its fields: what it said is kept
    assert {k: record[k] for k in ("request_id", "output_tokens", "input_tokens", "model")} == {
        "request_id": "r1", "output_tokens": 50, "input_tokens": 1000, "model": "gpt-4o"}
    assert "cost_usd" not in record  # the file gave none: a cost would be ours, not its
    checks = inventory.quarantine_checks(Engine(lake)).select("check", "inputs").rows()
    assert checks == [("request_id already in this file with other values (the first is stored)",
                       1)]


def test_the_same_key_in_another_file_is_a_duplicate_whatever_it_says(tmp_path, lake, totals):
    """Two sources log one call, each in its own words: the row stored first stays."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _file(tmp_path / "a", "jsonl", [canonical_request(1)])
    b = _file(tmp_path / "b", "jsonl", [canonical_request(1, output_tokens=50, feature="x")])
    report = ingest_paths(lake, [str(a), str(b)])
    assert [(f.stored, f.duplicates, f.quarantined) for f in report.files] == [
        ({"requests": 1}, {"requests": 0}, 0), ({"requests": 0}, {"requests": 1}, 0)]
    assert totals("SELECT sum(output_tokens) FROM requests") == (500,)


def test_a_dry_run_reports_the_conflict_as_the_ingest_does(tmp_path, lake, totals):
    path = _file(tmp_path, "jsonl", ROWS)
    checked = ingest_paths(lake.checking(), [str(path)]).files[0]
    stored = ingest_paths(lake, [str(path)]).files[0]
    assert (checked.stored, checked.duplicates, checked.quarantined, checked.reasons) == (
        stored.stored, stored.duplicates, stored.quarantined, stored.reasons)
    assert totals("SELECT count(*) FROM quarantine") == (1,)


def test_an_eval_scored_twice_under_one_id_keeps_both_scores_visible(tmp_path, lake, totals):
    """A case given two scores under one id: the second is not dropped as a duplicate."""
    evals = [{"eval_id": "e1", "run_id": "run1", "case_id": "c1", "metric": "correctness",
              "score": score, "ts": "2026-03-02T12:00:00Z"} for score in (1.0, 0.0, 1.0)]
    path = tmp_path / "evals.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in evals))
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.stored, f.duplicates, f.quarantined) == ({"evals": 1}, {"evals": 1}, 1)
    assert f.reasons == [
        'line 2: eval_id already in this file with other values (the first is stored): "e1"']
    assert totals("SELECT json_extract(raw, '$.score')::DOUBLE FROM quarantine") == (0.0,)


@pytest.mark.parametrize("kind", ["jsonl", "jsonl-exact"])
def test_a_file_that_grew_compares_its_new_rows_with_those_read_before(
        kind, tmp_path, lake, totals, monkeypatch):
    """Read on from where the last run stopped, the file gives what one read of it gives: its
    earlier rows (stored by that run) are the first of their keys, whatever path read them.
    (The Arrow path's side: tests/store/test_batch_writer.py, a continued batch.)"""
    import os
    import time

    from lib.store import Lake

    for name, value in PATHS[kind].items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "grows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:2]))
    old = time.time() - 600
    os.utime(path, (old, old))
    ingest_paths(lake, [str(path)])
    with open(path, "a") as out:
        out.write("".join(json.dumps(r) + "\n" for r in ROWS[2:]))
    os.utime(path, (old + 1, old + 1))
    f = ingest_paths(lake, [str(path)]).files[0]
    assert f.continued_from == {"byte": sum(len(json.dumps(r)) + 1 for r in ROWS[:2]),
                                "line": 3}
    assert (f.stored, f.duplicates, f.quarantined, f.reasons) == (
        {"requests": 0}, {"requests": 1}, 1, [f"line 4: {REASON}"])
    whole = Lake(tmp_path / "whole")
    ingest_paths(whole, [str(path)])
    for sql in ("SELECT request_id, output_tokens FROM requests ORDER BY ALL",
                "SELECT line, reason, raw FROM quarantine ORDER BY ALL"):
        assert Engine(lake).query(sql).rows() == Engine(whole).query(sql).rows()


@pytest.mark.parametrize("kind", PATHS)
def test_the_reasons_a_report_shows_are_those_of_the_first_lines_quarantined(
        kind, tmp_path, lake, monkeypatch):
    """A repeat is found after the checks of the rows after it: with five bad rows after it,
    the report's first reasons left it out, showing lines 5 to 9 for a file whose first bad
    line is 4 (found in review)."""
    for name, value in PATHS[kind].items():
        monkeypatch.setenv(name, value)
    bad = [canonical_request(10 + i, input_tokens=-1) for i in range(6)]
    f = ingest_paths(lake, [str(_file(tmp_path, kind, ROWS + bad))]).files[0]
    first = _first_line(kind)
    assert (f.stored, f.quarantined) == ({"requests": 2}, 7)
    assert f.reasons == [f"line {first + 3}: {REASON}"] + [
        f"line {first + n}: input_tokens is negative: -1" for n in range(4, 8)]
    assert "first_quarantined" not in f.to_dict()


def test_an_id_of_blanks_is_no_id(tmp_path, lake, totals):
    """A request id of spaces (a padded export's empty field) was one id: each file's first
    such call stored, the others quarantined as its repeats or, in the next file, skipped as its
    duplicates without a word (review). It is missing, as an empty one is; an eval's or event's
    id of blanks is derived, as an absent one is."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _file(tmp_path / "a", "jsonl", [canonical_request(1, request_id="  ")])
    b = _file(tmp_path / "b", "jsonl", [canonical_request(2, request_id="\t"),
                                        canonical_request(3, request_id="  ")])
    report = ingest_paths(lake, [str(a), str(b)])
    assert [(f.stored, f.duplicates, f.quarantined) for f in report.files] == [
        ({}, {}, 1), ({}, {}, 2)]
    assert {f.reasons[0].split(": ", 1)[1] for f in report.files} == {
        "missing request_id (log an id for each call, or map one with a mapping file, see "
        "docs/mapping.md)"}
    evals = tmp_path / "evals.jsonl"
    evals.write_text("".join(json.dumps({"eval_id": " ", "run_id": "run", "case_id": case,
                                         "metric": "m", "score": 1.0,
                                         "ts": "2026-03-02T12:00:00Z"}) + "\n"
                             for case in ("c1", "c2")))
    f = ingest_paths(lake, [str(evals)]).files[0]
    assert (f.stored, f.quarantined) == ({"evals": 2}, 0)
    assert totals("SELECT count(DISTINCT eval_id), min(length(eval_id)) FROM evals") == (2, 32)
