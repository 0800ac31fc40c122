"""Files that grew by appending (lib/ingest/appended.py): a run reads only the bytes appended
since the last read, once the file's first bytes are proven to be the ones read then, and ends
with exactly the rows (and quarantine, line numbers included) of one read of the whole file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from lib.ingest import appended
from lib.ingest.pipeline import ingest_paths
from lib.store import Lake
from tests.ingest.conftest import canonical_request, jsonl_bytes, stored_rows
from tests.ingest.fake_openai import proto_path, record_spans, scenario_truth

LINEAGE = ("batch_id", "ingested_at", "source_file")


def _one(lake: Lake, path: Path, **kw):
    return ingest_paths(lake, [str(path)], compact_min_files=0, **kw).files[0]


def _rows(lake: Lake, table: str = "requests") -> list:
    return stored_rows(lake, table, LINEAGE)


def _quarantine(lake: Lake) -> list:
    return stored_rows(lake, "quarantine", ("quarantine_id", "ts", "batch_id", "ingested_at",
                                            "source_file"))


def _whole(tmp_path: Path, path: Path, name: str = "whole") -> Lake:
    """A fresh lake that read ``path`` once, whole."""
    lake = Lake(tmp_path / name)
    assert _one(lake, path).continued_from is None
    return lake


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def _reads(lake: Lake) -> list[dict]:
    return [c.info[appended.READ] for c in lake.commits() if appended.READ in c.info]


def test_only_what_was_appended_is_read_and_the_rows_are_those_of_one_whole_read(tmp_path):
    path = tmp_path / "in" / "requests.jsonl"
    path.parent.mkdir()
    lake = Lake(tmp_path / "store")
    first = [canonical_request(i) for i in range(4)]
    path.write_bytes(jsonl_bytes(first))
    assert _one(lake, path).stored == {"requests": 4}
    more = [canonical_request(i) for i in range(4, 7)]
    _append(path, jsonl_bytes(more))
    grown = _one(lake, path)
    # only the appended bytes were read, and parsed
    assert grown.bytes == len(jsonl_bytes(more)) and grown.rows_read == 3
    assert grown.stored == {"requests": 3} and grown.continued_from == {
        "byte": len(jsonl_bytes(first)), "line": 5}
    assert grown.notes[0] == (
        f"read only what was appended since the last read: from byte "
        f"{len(jsonl_bytes(first)):,} (line 5); the bytes before are the ones read then "
        "(same SHA-256)")
    assert _rows(lake) == _rows(_whole(tmp_path, path))
    # each read records its bytes and the hash of the file up to their end
    data = path.read_bytes()
    end = len(jsonl_bytes(first))
    assert _reads(lake) == [
        {"start": 0, "end": end, "sha256": hashlib.sha256(data[:end]).hexdigest(),
         "after": None},
        {"start": end, "end": len(data), "sha256": hashlib.sha256(data).hexdigest(),
         "after": hashlib.sha256(data[:end]).hexdigest()}]
    # a copy of the grown file is known as read, without a parse
    copy = tmp_path / "in" / "copy.jsonl"
    copy.write_bytes(data)
    assert _one(lake, copy).duplicate_file


def test_a_bad_line_in_the_appended_part_is_quarantined_under_its_line_in_the_file(tmp_path):
    path = tmp_path / "requests.jsonl"
    lake = Lake(tmp_path / "store")
    path.write_bytes(jsonl_bytes([canonical_request(i) for i in range(5)]))
    _one(lake, path)
    _append(path, b'{"request_id": "bad", "ts": \n'
            + jsonl_bytes([canonical_request(9, input_tokens=-3)]))
    grown = _one(lake, path)
    assert grown.continued_from["line"] == 6 and grown.quarantined == 2
    assert [r.split(":")[0] for r in grown.reasons] == ["line 6", "line 7"]
    whole = _whole(tmp_path, path)
    assert _quarantine(lake) == _quarantine(whole) and len(_quarantine(whole)) == 2


def test_a_last_record_without_its_newline_then_more_lines(tmp_path):
    """A whole last record without a newline is read at once; the next write begins with the
    newline that ends it, so the appended part starts with a blank line that is the same line."""
    path = tmp_path / "requests.jsonl"
    lake = Lake(tmp_path / "store")
    rows = [canonical_request(i) for i in range(4)]
    path.write_bytes(jsonl_bytes(rows[:2]).rstrip(b"\n"))
    assert _one(lake, path).stored == {"requests": 2}
    _append(path, b"\n" + jsonl_bytes(rows[2:]) + b"not json\n")
    grown = _one(lake, path)
    assert grown.stored == {"requests": 2} and grown.reasons[0].startswith("line 5: ")
    whole = _whole(tmp_path, path)
    assert _rows(lake) == _rows(whole) and _quarantine(lake) == _quarantine(whole)


def test_a_file_whose_first_bytes_changed_is_read_whole(tmp_path):
    path = tmp_path / "requests.jsonl"
    lake = Lake(tmp_path / "store")
    path.write_bytes(jsonl_bytes([canonical_request(i) for i in range(3)]))
    _one(lake, path)
    # rewritten in place, longer: its first bytes are not the ones read
    path.write_bytes(jsonl_bytes([canonical_request(i, service="web") for i in range(5)]))
    again = _one(lake, path)
    assert again.continued_from is None and again.rows_read == 5
    assert again.stored == {"requests": 2} and again.duplicates == {"requests": 3}


def test_a_rotated_file_is_read_on_from_where_it_was_read_under_its_old_name(tmp_path):
    """The Collector's rotation renames the file it wrote (same inode) and starts a new one under
    the name: the renamed file is read from where the last read of it ended."""
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "traces.jsonl"
    rows = [canonical_request(i) for i in range(9)]
    live.write_bytes(jsonl_bytes(rows[:3]))
    lake = Lake(tmp_path / "store")
    ingest_paths(lake, [str(logs)])
    _append(live, jsonl_bytes(rows[3:5]))  # written after that run, before the rotation
    live.rename(logs / "traces-2026-11-26T08-00.jsonl")
    live.write_bytes(jsonl_bytes(rows[5:]))
    report = ingest_paths(lake, [str(logs)])
    by_name = {Path(f.source).name: f for f in report.files}
    rotated = by_name["traces-2026-11-26T08-00.jsonl"]
    assert rotated.continued_from == {"byte": len(jsonl_bytes(rows[:3])), "line": 4}
    assert rotated.rows_read == 2 and rotated.stored == {"requests": 2}
    assert by_name["traces.jsonl"].continued_from is None  # a new file: its bytes are new
    assert by_name["traces.jsonl"].stored == {"requests": 4}
    assert len(_rows(lake)) == 9


def test_removing_a_batch_of_the_chain_reads_the_file_whole_again(tmp_path):
    path = tmp_path / "requests.jsonl"
    lake = Lake(tmp_path / "store")
    path.write_bytes(jsonl_bytes([canonical_request(i) for i in range(3)]))
    first = _one(lake, path)
    _append(path, jsonl_bytes([canonical_request(i) for i in range(3, 5)]))
    _one(lake, path)
    _append(path, jsonl_bytes([canonical_request(5)]))
    lake.remove_batch(first.batch_id)
    again = _one(lake, path)
    # the later reads no longer reach the file's start: read whole, the removed rows come back
    assert again.continued_from is None and again.stored == {"requests": 4}
    assert again.duplicates == {"requests": 2}
    assert _rows(lake) == _rows(_whole(tmp_path, path))


def test_nothing_appended_is_skipped_after_hashing(tmp_path):
    path = tmp_path / "requests.jsonl"
    lake = Lake(tmp_path / "store")
    path.write_bytes(jsonl_bytes([canonical_request(0)]))
    _one(lake, path)
    os.utime(path)  # touched: its stat changed, its bytes did not
    touched = _one(lake, path)
    assert touched.skipped == ("already ingested: nothing appended since the last read (its bytes "
                               "are the ones read then: same SHA-256)")
    # remembered: the next run skips it by its stat, without hashing
    assert _one(lake, path).skipped.startswith("already seen (unchanged")


@pytest.mark.parametrize("kind", ["gzip", "csv", "mapping"])
def test_what_cannot_be_read_from_the_middle_is_read_whole(tmp_path, kind):
    rows = [canonical_request(i) for i in range(3)]
    more = [canonical_request(i) for i in range(3, 5)]
    lake = Lake(tmp_path / "store")
    kw: dict = {}
    if kind == "gzip":  # a compressed stream cannot be entered in the middle
        path = tmp_path / "requests.jsonl.gz"
        path.write_bytes(gzip.compress(jsonl_bytes(rows)))
        grow = gzip.compress(jsonl_bytes(more))  # a second gzip member
    elif kind == "csv":  # its header is at the start
        path = tmp_path / "requests.csv"
        header = "request_id,ts,provider,model,input_tokens,output_tokens\n"
        line = "{request_id},{ts},{provider},{model},{input_tokens},{output_tokens}\n"
        path.write_text(header + "".join(line.format(**r) for r in rows))
        grow = "".join(line.format(**r) for r in more).encode()
    else:  # a user's mapping reads JSON lines, but it is not known to read them one by one
        path = tmp_path / "mine.jsonl"
        path.write_bytes(jsonl_bytes([{"id": r["request_id"], "t": r["ts"]} for r in rows]))
        grow = jsonl_bytes([{"id": r["request_id"], "t": r["ts"]} for r in more])
        mapping = tmp_path / "mapping.yaml"
        mapping.write_text("table: requests\ncolumns:\n  request_id: id\n  ts: t\n"
                           "  provider: {value: openai}\n  model: {value: gpt-4o}\n")
        kw["mapping"] = str(mapping)
    assert sum(_one(lake, path, **kw).stored.values()) == 3
    _append(path, grow)
    again = _one(lake, path, **kw)
    assert again.continued_from is None and again.rows_read == 5
    assert again.stored == {"requests": 2}
    if kind == "gzip":
        assert _reads(lake) == []


def test_a_read_under_another_mapping_does_not_continue(tmp_path):
    """A read continues only one made by the same readers: forcing a format the earlier read did
    not use reads the file whole."""
    path = tmp_path / "requests.jsonl"
    lake = Lake(tmp_path / "store")
    path.write_bytes(jsonl_bytes([canonical_request(i) for i in range(3)]))
    _one(lake, path)
    _append(path, jsonl_bytes([canonical_request(3)]))
    assert _one(lake, path, fmt="json").continued_from is None


def test_otlp_json_and_protobuf_files_of_real_spans_grown_request_by_request(tmp_path):
    """The Collector's file exporter appends one export request at a time: a run after each
    ends with exactly the rows of one read of the whole file, and the true totals."""
    _, collector, _ = record_spans("otel-genai", tmp_path / "spans")
    truth = scenario_truth()
    for name, data, records in [
            ("traces.jsonl", collector.read_bytes(), None),
            ("traces.pb", proto_path(collector).read_bytes(), "request")]:
        if records is None:
            pieces = data.splitlines(keepends=True)
        else:
            pieces, at = [], 0
            while at < len(data):
                end = at + 4 + int.from_bytes(data[at:at + 4], "big")
                pieces.append(data[at:end])
                at = end
        assert len(pieces) >= 3, name
        path = tmp_path / name
        path.write_bytes(b"")
        lake = Lake(tmp_path / f"store-{name}")
        for i, piece in enumerate(pieces):
            _append(path, piece)
            report = _one(lake, path)
            assert report.error is None and report.quarantined == 0, (name, i)
            assert (report.continued_from or {}).get("line", 1) == i + 1, (name, i)
        whole = _whole(tmp_path, path, f"whole-{name}")
        assert _rows(lake) == _rows(whole), name
        assert _rows(lake, "spans") == _rows(whole, "spans"), name
        assert len(_rows(lake)) == truth["requests"], name


def test_a_bad_request_appended_to_a_protobuf_file_is_named_by_its_number(tmp_path):
    _, collector, _ = record_spans("otel-genai", tmp_path / "spans")
    data = proto_path(collector).read_bytes()
    n, at = 0, 0
    while at < len(data):
        at += 4 + int.from_bytes(data[at:at + 4], "big")
        n += 1
    path = tmp_path / "traces.pb"
    path.write_bytes(data)
    lake = Lake(tmp_path / "store")
    _one(lake, path)
    junk = b"\xff" * 10
    _append(path, len(junk).to_bytes(4, "big") + junk)
    grown = _one(lake, path)
    assert grown.continued_from == {"byte": len(data), "line": n + 1}
    assert grown.quarantined == 1 and grown.reasons[0].startswith(f"request {n + 1}")


def test_a_file_being_written_goes_on_from_its_last_whole_line(tmp_path):
    """With lib/ingest/live.py: the unfinished last line is left for later, and the next read
    starts at it."""
    path = tmp_path / "requests.jsonl"
    lake = Lake(tmp_path / "store")
    rows = jsonl_bytes([canonical_request(i) for i in range(6)]).splitlines(keepends=True)
    data = b"".join(rows)
    for cut in range(len(rows[0]) + 1, len(data) + 1, 37):
        path.write_bytes(data[:cut])
        report = _one(lake, path)
        assert report.error is None and report.quarantined == 0, cut
    path.write_bytes(data)
    _one(lake, path)
    assert _rows(lake) == _rows(_whole(tmp_path, path))


def test_the_first_read_by_the_fast_path_is_recorded_too(tmp_path):
    from lib.ingest import fastpath

    path = tmp_path / "requests.jsonl"
    data = jsonl_bytes([canonical_request(i) for i in range(3)])
    path.write_bytes(data)
    old = time.time() - 3600
    os.utime(path, (old, old))
    lake = Lake(tmp_path / "store")
    _one(lake, path)
    assert fastpath.LAST["outcome"] == "fast"
    assert _reads(lake) == [{"start": 0, "end": len(data),
                             "sha256": hashlib.sha256(data).hexdigest(), "after": None}]
    _append(path, jsonl_bytes([canonical_request(3)]))
    assert _one(lake, path).continued_from == {"byte": len(data), "line": 4}


# -- the pieces ----------------------------------------------------------------------------------
def test_the_request_counter_counts_whole_requests_however_the_bytes_are_fed():
    sizes = [0, 1, 300, 5, 70_000, 2]
    data = b"".join(len(b"x" * s).to_bytes(4, "big") + b"x" * s for s in sizes)
    ends = []
    at = 0
    for s in sizes:
        at += 4 + s
        ends.append(at)
    for step in (1, 3, 4, 5, 7, 4096, len(data)):
        counter = appended._RequestCounter()
        seen = {}
        for i in range(0, len(data), step):
            counter.feed(data[i:i + step])
            seen[min(i + step, len(data))] = counter.records
        for k, end in enumerate(ends):
            if end in seen:
                assert seen[end] == k + 1, (step, end)


def _commit(i: int, start: int, end: int, sha: str, after: str | None, kind="ingest", **info):
    from lib.store.lake import Commit

    return Commit(commit_id=f"c{i}", kind=kind, source="f", content_hash=sha,
                  committed_at="2026-11-26T00:00:00Z", rows={}, added=[], info={
                      "file": {"path": "/f", "ino": 1}, "format": "jsonl", "mapping": None,
                      appended.READ: {"start": start, "end": end, "sha256": sha, "after": after},
                      **info})


def test_a_read_counts_only_while_its_chain_reaches_the_start_through_live_batches():
    commits = [_commit(1, 0, 10, "a", None), _commit(2, 10, 20, "b", "a"),
               _commit(3, 20, 30, "c", "b"), _commit(4, 5, 9, "d", "zz"),
               _commit(5, 25, 40, "e", "c")]  # e does not start where c ended
    def live(commits, removed):
        return sorted(r.sha256 for r in appended.read_index(commits, removed).reads)

    assert live(commits, set()) == ["a", "b", "c"]
    assert live(commits, {"c2"}) == ["a"]
    seen = _commit(6, 0, 50, "f", None, seen="same content as an ingested source")
    assert live([seen], set()) == []
    # a chain of many reads (a cron every minute for a month) is settled in one pass
    long = [_commit(0, 0, 1, "h0", None)] + [
        _commit(i, i, i + 1, f"h{i}", f"h{i - 1}") for i in range(1, 50_000)]
    assert len(live(long, set())) == 50_000


def test_json_lines_files_on_disk_agree_with_their_read_records(tmp_path):
    """A read's record is the hash of the bytes it ends at, whichever path read it (the fast
    path, the exact path, a continued read)."""
    path = tmp_path / "r.jsonl"
    lake = Lake(tmp_path / "store")
    rows = [json.dumps(canonical_request(i)).encode() + b"\n" for i in range(5)]
    for i in range(1, 6):
        path.write_bytes(b"".join(rows[:i]))
        _one(lake, path)
        data = path.read_bytes()
        assert _reads(lake)[-1]["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(_rows(lake)) == 5
