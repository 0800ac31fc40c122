"""A dry run (``ingest --dry-run``, the upload's "Check" button) reads, checks and deduplicates a
file exactly as an ingest would, reports what would be stored, and leaves the store as it was."""

from __future__ import annotations

import json

import pytest

from lib.cli import main
from lib.ingest import fastpath
from lib.ingest.pipeline import ingest_paths, ingest_stream
from tests.ingest.conftest import canonical_request, jsonl_bytes


def _state(lake) -> tuple:
    """What a reader could see: the commits and every Parquet file under the root."""
    files = sorted(str(p.relative_to(lake.root)) for p in lake.root.rglob("*.parquet"))
    return [c.commit_id for c in lake.commits()], files


def _counts(report) -> list[tuple]:
    return [(f.stored, f.duplicates, f.quarantined, f.reasons, f.duplicate_file)
            for f in report.files]


@pytest.mark.parametrize("bad_line", [False, True], ids=["fast path", "exact path"])
def test_a_dry_run_reports_what_the_ingest_then_stores_and_stores_nothing(lake, write,
                                                                           bad_line):
    rows = [canonical_request(i) for i in range(5)]
    if bad_line:
        rows.insert(2, {**canonical_request(99), "input_tokens": -3})
    path = write("a.jsonl", rows)
    before = _state(lake)

    checked = ingest_paths(lake.checking(), [str(path)])
    assert fastpath.LAST["outcome"] == ("fallback" if bad_line else "fast")
    assert checked.dry_run and checked.files[0].batch_id is None
    assert _state(lake) == before  # no commit, no file left behind

    stored = ingest_paths(lake, [str(path)])
    assert not stored.dry_run
    assert _counts(checked) == _counts(stored)
    assert checked.files[0].stored == {"requests": 5}
    assert checked.files[0].quarantined == (1 if bad_line else 0)


def test_a_dry_run_deduplicates_against_the_store(lake, write):
    ingest_paths(lake, [str(write("old.jsonl", [canonical_request(i) for i in range(3)]))])
    before = _state(lake)
    overlapping = write("new.jsonl", [canonical_request(i) for i in range(1, 6)])
    report = ingest_paths(lake.checking(), [str(overlapping)])
    assert (report.files[0].stored, report.files[0].duplicates) == (
        {"requests": 3}, {"requests": 2})  # r3..r5 are new, r1 and r2 are stored already
    assert _state(lake) == before
    # a file whose content is stored already is said to be so, as in an ingest
    again = write("copy.jsonl", [canonical_request(i) for i in range(3)])
    assert ingest_paths(lake.checking(), [str(again)]).files[0].duplicate_file


def test_a_dry_run_of_an_upload_stores_nothing_and_does_not_compact(lake):
    before = _state(lake)
    report = ingest_stream(lake.checking(), jsonl_bytes([canonical_request(1)]), "up.jsonl",
                           compact_min_files=1)
    assert report.dry_run and report.files[0].stored == {"requests": 1}
    assert report.compaction is None
    assert _state(lake) == before
    # and the real upload after it is not taken for a duplicate of the check
    assert ingest_stream(lake, jsonl_bytes([canonical_request(1)]), "up.jsonl"
                         ).files[0].stored == {"requests": 1}


def test_a_dry_run_lake_refuses_to_publish(lake):
    from tests.conftest import make_request, requests_table

    with pytest.raises(RuntimeError, match="publishes nothing"):
        lake.checking().append({"requests": requests_table([make_request(1)])}, source="x")
    assert lake.commits() == []


def test_cli_dry_run_says_what_would_be_stored(lake, write, capsys):
    path = write("a.jsonl", [canonical_request(1), {"request_id": "x"}])
    assert main(["ingest", str(path), "--store", str(lake.root), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{path} [jsonl]: would store 1 request; 0 duplicate(s); 1 to quarantine" in out
    assert "line 2: missing ts; missing model" in out
    assert out.rstrip().endswith("dry run: nothing was stored")
    assert lake.commits() == []
    assert main(["ingest", str(path), "--store", str(lake.root), "--dry-run", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dry_run"] is True and doc["totals"]["stored"] == {"requests": 1}
    # the same file is read again for real: a dry run does not mark it as seen
    assert main(["ingest", str(path), "--store", str(lake.root)]) == 0
    assert "stored 1 request" in capsys.readouterr().out


def test_a_dry_run_does_not_send_to_a_quarantine_it_did_not_fill(lake, write, capsys):
    # past the first reasons, a dry run's report says an ingest keeps the rest, where a real
    # ingest says the Data page lists them (a check stores nothing to list)
    path = write("bad.jsonl", [{"request_id": f"x{i}"} for i in range(8)])
    assert main(["ingest", str(path), "--store", str(lake.root), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "… and 3 more (an ingest keeps them all in the quarantine, which the Data page " \
        "lists and downloads)" in out
    assert main(["ingest", str(path), "--store", str(lake.root)]) == 0
    assert "… and 3 more (the quarantine keeps them all: see them on the Data page, or " \
        "download them there)" in \
        capsys.readouterr().out


def test_a_dry_run_of_two_copies_of_a_new_file_does_not_say_the_second_is_ingested(
        lake, write, capsys):
    # The Check of a file picked twice said of the second "already ingested", of a file the
    # store has never seen (found in review).
    a = write("a.jsonl", [canonical_request(i) for i in range(3)])
    b = write("b.jsonl", [canonical_request(i) for i in range(3)])
    assert main(["ingest", str(a), str(b), "--store", str(lake.root), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "b.jsonl: same content as a file checked above or one already ingested" in out
    assert "nothing would be stored" in out and "nothing stored" not in out
