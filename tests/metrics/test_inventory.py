"""The Data page's inventory: batches list each commit, and why a source gave no rows."""

from __future__ import annotations

from lib.ingest.pipeline import ingest_paths
from lib.metrics import inventory
from tests.ingest.conftest import canonical_request, jsonl_bytes


def test_batches_say_why_a_source_gave_no_rows(lake, engine, tmp_path):
    rows = jsonl_bytes([canonical_request(i) for i in range(3)])
    (tmp_path / "a.jsonl").write_bytes(rows)
    (tmp_path / "copy.jsonl").write_bytes(rows)
    (tmp_path / "empty.jsonl").write_bytes(b"")
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
