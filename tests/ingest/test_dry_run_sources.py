"""The dry run (``ingest --dry-run``, the upload's "Check"): over several sources it
counts what the ingest then stores (a later source deduplicated against an earlier one, a copy
is a duplicate file), on every path; it leaves the store's folder exactly as it was, also when it
fails mid-way, on a store that does not exist yet, and when a writer other than a batch is
called on it."""

from __future__ import annotations

import gc
import gzip

import boto3
import pytest

from lib.cli import main
from lib.ingest import pipeline
from lib.ingest.pipeline import ingest_paths, ingest_stream
from lib.store import Lake
from tests.conftest import make_request, requests_table
from tests.ingest.conftest import canonical_request, jsonl_bytes

PREFIX = "s3://dry-run-review/app/"
PATHS = {"fast": ("1", "1"), "sql": ("0", "1"), "chunked": ("0", "0")}


def _tree(root) -> list[str]:
    """Every file and folder under the store's root (None: no root)."""
    gc.collect()  # a dry-run lake's own folder goes with the lake object
    if not root.exists():
        return None
    return sorted(str(p.relative_to(root)) + ("/" if p.is_dir() else "")
                  for p in root.rglob("*"))


def _counts(report) -> list[tuple]:
    return [(f.source, f.stored, f.duplicates, f.quarantined, f.reasons, f.duplicate_file,
             f.error) for f in report.files]


def _path(monkeypatch, which: str) -> None:
    fast, sql = PATHS[which]
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", fast)
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", sql)


def _folder(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(jsonl_bytes([canonical_request(i) for i in range(5)]))
    # overlaps a (r3, r4), adds two rows on the next days, and one bad line
    (folder / "b.jsonl").write_bytes(jsonl_bytes(
        [canonical_request(i) for i in range(3, 6)]
        + [canonical_request(2000), canonical_request(3000), {"request_id": "bad"}]))
    (folder / "c.jsonl").write_bytes(jsonl_bytes([canonical_request(i) for i in range(5)]))
    (folder / "d.jsonl.gz").write_bytes(gzip.compress(jsonl_bytes(
        [canonical_request(i) for i in range(4, 8)])))
    return folder


@pytest.mark.parametrize("which", list(PATHS))
def test_a_dry_run_of_several_sources_counts_what_the_ingest_then_stores(
        lake, tmp_path, monkeypatch, which):
    _path(monkeypatch, which)
    folder = _folder(tmp_path)
    checked = ingest_paths(lake.checking(), [str(folder)])
    assert lake.commits() == []
    stored = ingest_paths(lake, [str(folder)])
    assert _counts(checked) == _counts(stored)
    assert [f.duplicate_file for f in checked.files] == [False, False, True, False]


def test_a_check_of_several_uploads_counts_what_the_ingest_then_stores(lake):
    """The Data page checks its files one after the other on one dry-run lake."""
    files = [("a.jsonl", jsonl_bytes([canonical_request(i) for i in range(4)])),
             ("b.jsonl", jsonl_bytes([canonical_request(i) for i in range(2, 6)])),
             ("copy.jsonl", jsonl_bytes([canonical_request(i) for i in range(4)]))]
    dry = lake.checking()
    checked = [ingest_stream(dry, data, name).files[0] for name, data in files]
    assert lake.commits() == []
    stored = [ingest_stream(lake, data, name).files[0] for name, data in files]
    assert [(f.stored, f.duplicates, f.duplicate_file) for f in checked] == \
        [(f.stored, f.duplicates, f.duplicate_file) for f in stored]
    assert stored[1].duplicates == {"requests": 2} and stored[2].duplicate_file


def test_a_dry_run_of_s3_objects_counts_what_the_ingest_then_stores(lake, s3_server):
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="dry-run-review")
    body = jsonl_bytes([canonical_request(i) for i in range(3)])
    s3.put_object(Bucket="dry-run-review", Key="app/1.jsonl", Body=body)
    s3.put_object(Bucket="dry-run-review", Key="app/2-copy.jsonl", Body=body)
    s3.put_object(Bucket="dry-run-review", Key="app/3.jsonl.gz", Body=gzip.compress(jsonl_bytes(
        [canonical_request(i) for i in range(2, 5)])))
    before = _tree(lake.root)
    checked = ingest_paths(lake.checking(), [PREFIX], s3_endpoint_url=s3_server)
    after_check = _tree(lake.root)
    stored = ingest_paths(lake, [PREFIX], s3_endpoint_url=s3_server)
    assert _counts(checked) == _counts(stored)
    assert [f.stored for f in stored.files] == [{"requests": 3}, {}, {"requests": 2}]
    assert after_check == before  # None: the dry run did not create the store
    # after the ingest, a dry run skips what it read, as an ingest would
    again = ingest_paths(lake.checking(), [PREFIX], s3_endpoint_url=s3_server)
    assert all(f.skipped for f in again.files)


@pytest.mark.parametrize("which", list(PATHS))
def test_a_dry_run_leaves_the_store_folder_as_it_was(lake, tmp_path, monkeypatch, which):
    _path(monkeypatch, which)
    seed = tmp_path / "seed.jsonl"
    seed.write_bytes(jsonl_bytes([canonical_request(i) for i in range(2)]))
    ingest_paths(lake, [str(seed)])
    before = _tree(lake.root)
    report = ingest_paths(lake.checking(), [str(_folder(tmp_path))], compact_min_files=1)
    assert report.files[0].stored == {"requests": 3}  # r2..r4 (r0, r1 are stored)
    assert report.files[1].quarantined == 1
    assert report.compaction is None
    assert _tree(lake.root) == before  # no partition folder, no scratch left behind


@pytest.mark.parametrize("which", ["sql", "chunked"])
def test_a_dry_run_that_fails_mid_way_leaves_the_store_folder_as_it_was(lake, tmp_path,
                                                                        monkeypatch, which):
    _path(monkeypatch, which)
    monkeypatch.setattr(pipeline, "SEGMENT_BYTES", 64 * 1024)
    seed = tmp_path / "seed.jsonl"
    seed.write_bytes(jsonl_bytes([canonical_request(i) for i in range(2)]))
    ingest_paths(lake, [str(seed)])
    before = _tree(lake.root)
    # gzip cut short after ~20k lines spread over several days: stored chunks, then an error
    rows = [canonical_request(i * 7) for i in range(20_000)]
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(jsonl_bytes(rows))[:-2000])
    written = []

    def progress(p) -> None:
        written.append(len([f for f in lake.root.rglob("*.tmp") if f.stat().st_size]))

    report = ingest_paths(lake.checking(), [str(broken)], progress=progress)
    assert report.files[0].error
    assert max(written) > 0  # it failed after it had written rows
    assert _tree(lake.root) == before


def test_a_dry_run_on_a_store_that_does_not_exist_creates_nothing(tmp_path, capsys):
    root = tmp_path / "nowhere" / "store"
    path = tmp_path / "a.jsonl"
    path.write_bytes(jsonl_bytes([canonical_request(i) for i in range(3)]))
    report = ingest_paths(Lake(root).checking(), [str(path)])
    assert report.files[0].stored == {"requests": 3}
    assert main(["ingest", str(path), "--store", str(root), "--dry-run"]) == 0
    assert "would store 3 requests" in capsys.readouterr().out
    assert _tree(root) is None and not root.parent.exists()


def test_other_writers_of_a_dry_run_lake_write_no_file(lake, tmp_path):
    seed = tmp_path / "seed.jsonl"
    seed.write_bytes(jsonl_bytes([canonical_request(i) for i in range(2)]))
    batch = ingest_paths(lake, [str(seed)]).files[0].batch_id
    before = _tree(lake.root)
    dry = lake.checking()
    with pytest.raises(RuntimeError, match="publishes nothing"):
        dry.append({"requests": requests_table([make_request(100)])}, source="x")
    with pytest.raises(RuntimeError, match="publishes nothing"):
        dry.rewrite("requests", {"2026-03-02": requests_table([make_request(101)])},
                    kind="compact", source="compact")
    with pytest.raises(RuntimeError, match="publishes nothing"):
        dry.remove_batch(batch)
    del dry
    assert _tree(lake.root) == before
