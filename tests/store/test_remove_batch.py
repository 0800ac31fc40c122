"""Taking a batch out (``python -m lib remove``): every row it stored leaves, in every table and in
files it shares with other batches after compaction, in one commit; nothing else changes; its
content and source may then be ingested again."""

from __future__ import annotations

import json

import pytest

from lib.cli import main
from lib.ingest.pipeline import ingest_paths
from lib.metrics import inventory
from lib.store import Engine
from lib.store import compact as compaction
from tests.ingest.conftest import canonical_request, jsonl_bytes, stored_rows

LINEAGE = ("batch_id", "ingested_at", "source_file")


def _rows(lake) -> dict:
    return {t: stored_rows(lake, t, LINEAGE) for t in ("requests", "quarantine")}


def _ingest(lake, path, rows: list[dict], bad_lines: int = 0):
    data = jsonl_bytes(rows) + b'{"request_id": "broken", "ts": \n' * bad_lines
    path.write_bytes(data)
    return ingest_paths(lake, [str(path)], compact_min_files=0).files[0]


def test_removing_a_batch_takes_out_its_rows_and_quarantine_and_nothing_else(lake, tmp_path):
    keep = _ingest(lake, tmp_path / "keep.jsonl", [canonical_request(i) for i in range(3)])
    expected = _rows(lake)
    wrong = _ingest(lake, tmp_path / "wrong.jsonl",
                    [canonical_request(i, model="gpt-4o-mini") for i in range(10, 14)],
                    bad_lines=2)
    assert (wrong.stored, wrong.quarantined) == ({"requests": 4}, 2)

    commit = lake.remove_batch(wrong.batch_id, info={"reason": "wrong file"})
    assert commit.kind == "remove"
    assert commit.info == {"reason": "wrong file", "removed_batch": wrong.batch_id,
                           "removed_rows": {"requests": 4, "quarantine": 2}}
    assert _rows(lake) == expected  # exactly the rows before the wrong file
    assert keep.batch_id not in {c.info.get("removed_batch") for c in lake.commits()}


def test_rows_in_a_compacted_file_shared_with_other_batches_are_taken_out(lake, tmp_path):
    # Three batches on the same day; compaction merges their files into one.
    first = _ingest(lake, tmp_path / "a.jsonl", [canonical_request(i) for i in range(0, 3)])
    middle = _ingest(lake, tmp_path / "b.jsonl", [canonical_request(i) for i in range(3, 5)])
    _ingest(lake, tmp_path / "c.jsonl", [canonical_request(i) for i in range(5, 9)])
    compaction.compact(lake, min_files=1)
    assert len(lake.snapshot().files["requests"]) == 1
    commit = lake.remove_batch(middle.batch_id)
    assert commit.info["removed_rows"] == {"requests": 2}
    assert commit.rows == {"requests": 7}  # the shared file, written again without them
    ids = [r[0] for r in stored_rows(lake, "requests", LINEAGE)]
    assert sorted(ids) == sorted(f"r{i}" for i in (0, 1, 2, 5, 6, 7, 8))
    engine = Engine(lake)
    try:
        assert engine.query("SELECT count(*) AS n, count(DISTINCT batch_id) AS b FROM requests"
                            ).row(0) == (7, 2)
        assert engine.query(f"SELECT count(*) FROM requests WHERE batch_id = "
                            f"'{first.batch_id}'").item() == 3
    finally:
        engine.close()


def test_a_removed_batch_can_be_ingested_again_under_its_own_name(lake, tmp_path):
    path = tmp_path / "a.jsonl"
    first = _ingest(lake, path, [canonical_request(i) for i in range(3)])
    again = ingest_paths(lake, [str(path)]).files[0]
    assert again.skipped  # unchanged since an earlier run read it
    lake.remove_batch(first.batch_id)
    # neither the file's signature nor its content hash stop it now
    back = ingest_paths(lake, [str(path)]).files[0]
    assert (back.skipped, back.duplicate_file, back.stored) == (None, False, {"requests": 3})
    assert len(stored_rows(lake, "requests", LINEAGE)) == 3


@pytest.mark.parametrize("what", ["unknown", "compact", "twice"])
def test_only_a_live_ingested_batch_can_be_removed(lake, tmp_path, what):
    first = _ingest(lake, tmp_path / "a.jsonl", [canonical_request(i) for i in range(2)])
    _ingest(lake, tmp_path / "b.jsonl", [canonical_request(i) for i in range(2, 4)])
    before = _rows(lake)
    if what == "unknown":
        with pytest.raises(KeyError):
            lake.remove_batch("0" * 32)
    elif what == "compact":
        compaction.compact(lake, min_files=1)
        merged = next(c for c in lake.commits() if c.kind == "compact")
        with pytest.raises(ValueError, match="is a compact, not an ingested batch"):
            lake.remove_batch(merged.commit_id)
    else:
        lake.remove_batch(first.batch_id)
        before = _rows(lake)
        with pytest.raises(ValueError, match="removed already"):
            lake.remove_batch(first.batch_id)
    assert _rows(lake) == before


def test_cli_remove_by_prefix_reports_and_the_data_page_lists_it(lake, tmp_path, capsys):
    wrong = _ingest(lake, tmp_path / "wrong.jsonl", [canonical_request(i) for i in range(2)],
                    bad_lines=1)
    store = ["--store", str(lake.root)]
    assert main(["remove", wrong.batch_id[:4], *store]) == 2
    assert "at least 8 characters" in capsys.readouterr().err
    assert main(["remove", "f" * 12, *store]) == 2
    assert "no batch" in capsys.readouterr().err
    assert main(["remove", wrong.batch_id[:10], *store, "--reason", "misnamed fields",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["removed_batch"], doc["removed_rows"]) == (
        wrong.batch_id, {"requests": 2, "quarantine": 1})
    assert main(["summary", *store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["requests"] == 0

    engine = Engine(lake)
    try:
        notes = dict(inventory.batches(engine).select("kind", "note").rows())
    finally:
        engine.close()
    remove_id = next(c.commit_id for c in lake.commits() if c.kind == "remove")
    assert notes["ingest"] == f"removed by commit {remove_id}"
    assert notes["remove"].startswith(
        f"took out batch {wrong.batch_id} (1 quarantined row, 2 requests)")
    assert notes["remove"].endswith(": misnamed fields")


def test_removing_one_of_several_batches_of_a_source_names_the_others(lake, tmp_path, capsys):
    """A file read again after it changed gives a batch per read, each storing only the rows
    the ones before had not: removing the first says the others must go too for a whole
    re-ingest."""
    path = tmp_path / "growing.jsonl"
    first = _ingest(lake, path, [canonical_request(i) for i in range(3)])
    # (rewritten, not appended to: read whole again)
    second = _ingest(lake, path, [canonical_request(i) for i in (3, 4, 0, 1, 2)])
    assert (second.stored, second.duplicates) == ({"requests": 2}, {"requests": 3})
    store = ["--store", str(lake.root)]
    assert main(["remove", first.batch_id, *store]) == 0
    out = capsys.readouterr().out
    assert f"Other batches read the same source: {second.batch_id}." in out
    assert main(["remove", second.batch_id, *store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["same_source_batches"] == []
    again = ingest_paths(lake, [str(path)], compact_min_files=0).files[0]
    assert again.stored == {"requests": 5}


def test_removing_a_batch_that_stored_no_row_says_no_other_batch_lost_rows(lake, tmp_path,
                                                                          capsys):
    # A file read as the wrong format (every row quarantined), then as the right one: removing
    # the wrong read said the right one's rows "skipped as already stored by this batch left
    # with it", and to remove it too, though the wrong read stored nothing (review).
    import io

    from lib.ingest.pipeline import ingest_stream

    data = jsonl_bytes([canonical_request(i) for i in range(3)])
    wrong = ingest_stream(lake, io.BytesIO(data), "c.jsonl", fmt="openai",
                          source="upload:c.jsonl").files[0]
    right = ingest_stream(lake, io.BytesIO(data), "c.jsonl", source="upload:c.jsonl").files[0]
    assert (wrong.quarantined, right.stored) == (3, {"requests": 3})
    assert main(["remove", wrong.batch_id, "--store", str(lake.root)]) == 0
    out = capsys.readouterr().out
    assert "3 quarantined rows" in out and "Rows they skipped" not in out
    assert len(_rows(lake)["requests"]) == 3


def test_removing_a_batch_a_later_read_went_on_from_reads_the_source_whole_next(lake, tmp_path,
                                                                                capsys):
    """A file read as it grew (lib/ingest/appended.py): once a batch of the chain is removed, the
    later reads no longer reach the file's start, so the next ingest reads it whole, and the
    removed rows come back, even before the file changes again."""
    path = tmp_path / "growing.jsonl"
    first = _ingest(lake, path, [canonical_request(i) for i in range(3)])
    with open(path, "ab") as f:
        f.write(jsonl_bytes([canonical_request(i) for i in range(3, 5)]))
    second = ingest_paths(lake, [str(path)], compact_min_files=0).files[0]
    assert second.continued_from is not None and second.stored == {"requests": 2}
    assert main(["remove", first.batch_id, "--store", str(lake.root)]) == 0
    out = capsys.readouterr().out
    assert (f"Other batches read the same source: {second.batch_id}, some of them what was "
            "appended after this batch's read: the next ingest of the source reads it again "
            "from the end of the last read before this batch's (whole, if this batch read it "
            "from the start)") in out
    again = ingest_paths(lake, [str(path)], compact_min_files=0).files[0]
    assert again.continued_from is None
    assert (again.stored, again.duplicates) == ({"requests": 3}, {"requests": 2})


def test_remove_refuses_in_one_line_when_a_live_file_does_not_read(tmp_path):
    # A cut-short file made `remove` end in DuckDB's traceback (found in review); now nothing is
    # changed and the file is named.
    from lib.store.lake import Lake, UnreadableDataFile
    from tests.conftest import make_request, requests_table

    lake = Lake(tmp_path / "store")
    a = lake.append({"requests": requests_table([make_request(1)])}, source="a").commit
    b = lake.append({"requests": requests_table([make_request(2)])}, source="b").commit
    path = lake.root / b.added[0]["path"]
    path.write_bytes(path.read_bytes()[:100])
    before = lake.version()
    with pytest.raises(UnreadableDataFile, match=b.added[0]["path"]):
        lake.remove_batch(a.commit_id)
    assert lake.version() == before


def test_removing_a_batch_names_later_sources_that_skipped_its_rows(lake, tmp_path, capsys):
    """Two sources logging the same calls (an app's log, then a gateway's with two more): the
    gateway's copies of the app's rows were skipped as duplicates. Removing the app's batch took
    them out with it, and the gateway's file, already ingested, was not read again: 2 requests
    stored where the gateway logged 6, without a word (found in review)."""
    app = _ingest(lake, tmp_path / "app.jsonl", [canonical_request(i) for i in range(4)])
    gateway = _ingest(lake, tmp_path / "gateway.jsonl", [canonical_request(i) for i in range(6)])
    assert (gateway.stored, gateway.duplicates) == ({"requests": 2}, {"requests": 4})
    _ingest(lake, tmp_path / "other.jsonl", [canonical_request(i) for i in range(10, 12)])
    store = ["--store", str(lake.root)]
    assert main(["remove", app.batch_id, *store]) == 0
    out = capsys.readouterr().out
    assert (f"Batches of other sources ingested after this one skipped rows as already stored, "
            f"perhaps as this batch's, which left with it: {tmp_path / 'gateway.jsonl'} (batch "
            f"{gateway.batch_id}: 4 requests). To store their copies of those rows, remove "
            "those batches too and ingest their sources again.") in out
    # as it says: the gateway's batch out, its file in again, whole
    assert main(["remove", gateway.batch_id, *store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["later_batches_with_duplicates"] == []
    again = ingest_paths(lake, [str(tmp_path / "gateway.jsonl")], compact_min_files=0).files[0]
    assert again.stored == {"requests": 6}


def test_cli_remove_counts_the_rows_it_took_in_words(lake, tmp_path, capsys):
    # ("1 requests")
    one = _ingest(lake, tmp_path / "one.jsonl", [canonical_request(0)], bad_lines=1)
    assert main(["remove", one.batch_id, "--store", str(lake.root)]) == 0
    assert f"removed batch {one.batch_id} ({tmp_path / 'one.jsonl'}): 1 quarantined row, " \
           "1 request; " in capsys.readouterr().out
