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
