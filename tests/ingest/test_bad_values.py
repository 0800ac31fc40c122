"""No single value fails a file: every canonical column of every table, given each of a set of
hostile values, in JSON lines and in CSV, on each ingest path. Each row is stored or quarantined
(the file has no error), and the count adds up. (Found: invalid JSON attributes in a CSV, an
epoch of 1e20 and a CSV record that is not UTF-8 each failed the whole file.)"""

from __future__ import annotations

import csv
import io
import json

import pytest

from lib import schema
from lib.ingest.pipeline import ingest_paths
from lib.store import Lake
from tests.ingest.conftest import live_rows

VALID = {
    "requests": {"request_id": "r", "ts": "2026-03-02T12:00:00Z", "provider": "openai",
                 "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5},
    "evals": {"eval_id": "e", "ts": "2026-03-02T12:00:00Z", "metric": "accuracy", "score": 1.0},
    "events": {"event_id": "v", "ts": "2026-03-02T12:00:00Z", "kind": "deploy", "title": "x"},
}
TEXTS = ["", "abc", "1e400", "-1", "NaN", "Infinity", "99999999999999999999999", "1e20",
         "2026-13-45", "{", "[1]", "true", "{'k': v}", "\u0000", "x" * 5000, "  12  ", "0x10",
         "1732100000000000000000", "-9223372036854775809", '{"a": 1}', "null", "\U0001d518"]
RAW = [1e308, -1e308, 10**30, -(10**30), 1.5, True, [1, 2], {"a": 1}, None, -0.0, 1e-320]


def _rows(table: str) -> list[dict]:
    first = next(iter(VALID[table]))
    rows = []
    for col in schema.TABLES[table].names:
        for i, value in enumerate(TEXTS + RAW):
            row = {**VALID[table], first: f"{col}-{i}"}
            row[col] = value
            rows.append(row)
    return rows


def _csv(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    for r in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v
                         for k, v in r.items()})
    return buf.getvalue().encode()


@pytest.mark.parametrize("path", ["fast", "sql", "chunked"])
@pytest.mark.parametrize("table", list(VALID))
def test_every_hostile_value_is_stored_or_quarantined_never_failing_the_file(
        tmp_path, monkeypatch, table, path):
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "1" if path == "fast" else "0")
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", "0" if path == "chunked" else "1")
    rows = _rows(table)
    jsonl = tmp_path / f"{table}.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    files = [jsonl]
    if path != "fast":  # CSV has one path
        files.append(tmp_path / f"{table}.csv")
        files[-1].write_bytes(_csv(rows))
    report = ingest_paths(Lake(tmp_path / "store"), [str(f) for f in files],
                          compact_min_files=0)
    for f in report.files:
        assert f.error is None, f"{f.source}: {f.error}"
        assert sum(f.stored.values()) + sum(f.duplicates.values()) + f.quarantined == len(rows)
        assert f.quarantined > 0 and f.stored  # the hostile values are not all harmless


@pytest.mark.parametrize("spaced", [False, True], ids=["arrow-reader", "python-reader"])
def test_csv_missing_value_markers_are_null_unless_quoted(tmp_path, spaced):
    # R's write.csv writes a missing value as an unquoted NA and quotes text; csv.QUOTE_ALL
    # writes None as "". A customer or region named "NA" is text. (A header with a space after
    # each separator takes the python reader.)
    sep = ", " if spaced else ","
    head = sep.join(["request_id", "ts", "provider", "model", "input_tokens", "output_tokens",
                     "customer_id", "feature", "latency_ms"])
    records = [("r1", "NA", "NA", "NA"), ("r2", '"NA"', '"null"', '""'),
               ("r3", '""', "N/A", "NaN"), ("r4", "EU", "chat", "12.5")]
    path = tmp_path / "missing.csv"
    path.write_text(head + "\n" + "".join(
        sep.join([rid, "2026-03-02T12:00:00Z", "openai", "gpt-4o", "10", "5", c, f, lat]) + "\n"
        for rid, c, f, lat in records))
    lake = Lake(tmp_path / "store")
    report = ingest_paths(lake, [str(path)]).files[0]
    assert (report.stored, report.quarantined, report.error) == ({"requests": 4}, 0, None)
    got = live_rows(lake, "requests", "request_id, customer_id, feature, latency_ms")
    assert got == [("r1", None, None, None), ("r2", "NA", "null", None),
                   ("r3", None, None, None), ("r4", "EU", "chat", 12.5)]


def test_a_record_mixing_a_quoted_and_an_unquoted_marker_reads_each_by_its_own_quotes(tmp_path):
    # the record-by-record reader (a space after each separator) guessed from the record's
    # text: a quoted "NA" anywhere in it made an unquoted NA elsewhere text
    path = tmp_path / "spaced.csv"
    path.write_text("request_id, ts, provider, model, input_tokens, output_tokens, customer_id, "
                    "feature\n"
                    'r1, 2026-03-02T12:00:00Z, openai, gpt-4o, 1, 1, NA, "said ""NA"" twice"\n'
                    'r2, 2026-03-02T12:00:01Z, openai, gpt-4o, 1, 1, NA, "NA"\n'
                    'r3, 2026-03-02T12:00:02Z, openai, gpt-4o, 1, 1, "NA", NA\n')
    lake = Lake(tmp_path / "store")
    assert ingest_paths(lake, [str(path)]).files[0].stored == {"requests": 3}
    got = live_rows(lake, "requests", "request_id, customer_id, feature")
    assert got == [("r1", None, 'said "NA" twice'), ("r2", None, "NA"), ("r3", "NA", None)]
