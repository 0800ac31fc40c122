"""JSON objects written back to back, with no newline between them (Kinesis Firehose's default
delivery, `jq .` output): every object is read, one a line, where the whole file used to be one
bad line ("Extra data"), quarantined cut to 2,000 characters: every record lost (found in
review, 82,010 records of four Firehose objects)."""

from __future__ import annotations

import gzip
import json

import pytest

from lib.ingest.pipeline import ingest_paths
from lib.ingest.streams import BACK_TO_BACK, objects_back_to_back
from tests.ingest.conftest import canonical_request

# past the 1 MiB read: objects are cut by a read and parsed again with what follows
ROWS = [canonical_request(i) for i in range(6000)]


@pytest.mark.parametrize("layout", ["firehose", "firehose-gz", "pretty"])
def test_every_object_is_stored(layout, tmp_path, lake, totals):
    if layout == "pretty":
        data = "\n".join(json.dumps(r, indent=2) for r in ROWS).encode()
    else:
        data = "".join(json.dumps(r) for r in ROWS).encode()
    path = tmp_path / ("records.gz" if layout.endswith("gz") else "records")
    path.write_bytes(gzip.compress(data) if layout.endswith("gz") else data)
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.error, f.stored, f.quarantined) == (None, {"requests": 6000}, 0)
    assert f.notes == [f"6,000 {BACK_TO_BACK}"]
    assert totals("SELECT count(DISTINCT request_id), sum(input_tokens), min(request_id), "
                  "max(latency_ms) FROM requests") == (6000, 6_000_000, "r0", 100.0 + 5999)
    again = ingest_paths(lake, [str(path.rename(tmp_path / "copy"))]).files[0]
    assert again.duplicate_file  # the file's own bytes are its content


def test_a_broken_object_is_quarantined_by_its_number_and_the_others_stored(tmp_path, lake,
                                                                             totals):
    """Where a broken object ends cannot be told: the quarantined piece runs to the next "}{"
    (the end of the object after it, kept in the quarantine with it), or a line starting one."""
    objects = [json.dumps(canonical_request(i)) for i in range(5)]
    objects[2] = '{"request_id": "r2", "input_tokens": '  # cut short, then the next object
    path = tmp_path / "records.json"
    path.write_text("".join(objects))
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 3}, 1)
    assert f.reasons[0].startswith("line 3: not valid JSON")
    assert totals("SELECT raw FROM quarantine") == (objects[2] + objects[3],)
    assert totals("SELECT list(request_id ORDER BY request_id) FROM requests") == (
        ["r0", "r1", "r4"],)


@pytest.mark.parametrize("text, back_to_back", [
    ('{"a": 1}{"a": 2}', True),
    ('{"a": 1} {"a": 2}\n', True),
    ('{\n  "a": 1\n}\n{\n  "a": 2\n}\n', True),
    ('{"a": 1}\n{"a": 2}\n', False),  # JSON lines
    ('{"a": 1}\r\n{"a": 2}\r\n', False),
    ('{\n  "results": {"a": 1}\n}\n', False),  # one JSON document (promptfoo, an Inspect log)
    ('[{"a": 1}, {"a": 2}]', False),
    ('{"a": 1', False),
    ('{"a": 1}{"a": 2}\n{"a": 3}{"a": 4}\n', True),  # Firehose objects with a newline between
    ('{"a": 1}{"a": 2}\n{"a": 3}\n{"a": 4}\n', False),  # JSON lines with one line of two
    ('{"a": ' + "[" * 5000 + "]" * 5000 + '}{"a": 2}', False),  # deeper than Python's parser
])
def test_what_counts_as_objects_back_to_back(text, back_to_back):
    assert objects_back_to_back(text.encode()) is back_to_back


@pytest.mark.parametrize("layout", ["pretty", "cr"])
def test_a_broken_object_among_others_on_their_own_lines_is_one_quarantined_record(
        layout, tmp_path, lake, totals):
    """A broken object of a `jq .` file is one record up to the next line that starts an object,
    not a quarantined row per line of it (six for a six-line object, none of them the record);
    in a file of old Mac line ends (CR alone) the objects after a broken one are its own
    records, not part of it (found in review: stored 1 of 3 good records, 2 counted read)."""
    rows = [canonical_request(i) for i in range(4)]
    if layout == "pretty":
        objects = [json.dumps(r, indent=2) for r in rows]
        objects[1] = '{\n  "request_id": "r1",\n  "ts": \n}'
        text = "\n".join(objects) + "\n"
    else:
        objects = [json.dumps(r) for r in rows]
        objects[1] = '{"request_id": "r1", "ts": '
        text = "\r".join(objects) + "\r"
    path = tmp_path / "records.json"
    path.write_text(text, newline="")
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 3}, 1)
    assert f.reasons[0].startswith("line 2: not valid JSON")
    assert totals("SELECT raw FROM quarantine") == (
        objects[1].replace("\r", " ").replace("\n", " "),)
    assert totals("SELECT list(request_id ORDER BY request_id) FROM requests") == (
        ["r0", "r2", "r3"],)


def test_one_pretty_printed_record_is_read(tmp_path, lake, totals):
    """`jq .` of a one-line file, or one example typed by hand: no document format takes it, and
    it was "not a recognized format" where two such records were read (found in review)."""
    path = tmp_path / "one.json"
    path.write_text(json.dumps(canonical_request(7), indent=2) + "\n")
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.error, f.format, f.stored, f.quarantined) == (None, "jsonl", {"requests": 1}, 0)
    assert totals("SELECT request_id FROM requests") == ("r7",)
    other = tmp_path / "config.json"  # one object of no known shape is still refused
    other.write_text(json.dumps({"name": "x", "values": [1, 2]}, indent=2))
    assert ingest_paths(lake, [str(other)]).files[0].error.startswith(
        "not a recognized format")
