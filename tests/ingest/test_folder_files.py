"""Listing a folder to ingest: exactly the files, and the order, that ``rglob`` gives (what the
ingest listed before it listed with ``scandir``), resolved."""

from __future__ import annotations

import os
from pathlib import Path

from lib.ingest.pipeline import folder_files, ingest_paths
from tests.ingest.conftest import canonical_request, jsonl_bytes


def _as_rglob_lists(root: Path) -> list[Path]:
    """The reference: every file rglob finds, none hidden or under a hidden folder, resolved."""
    def hidden(p: Path) -> bool:
        return any(part.startswith(".") for part in p.relative_to(root).parts)

    return [p.resolve() for p in sorted(root.rglob("*")) if p.is_file() and not hidden(p)]


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "target.jsonl").write_text("x\n")
    (outside / "inner").mkdir()
    (outside / "inner" / "behind-a-linked-folder.jsonl").write_text("x\n")
    for rel in ["a.jsonl", "a-b.jsonl", "a/b.jsonl", "a/c/d.jsonl", "A.jsonl", "z/y/x/w.jsonl",
                ".hidden.jsonl", ".cache/in-hidden-folder.jsonl", "b/.also-hidden",
                "spaces in name.jsonl", "ünïcode.jsonl", "a/c/.d/e.jsonl"]:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")
    os.symlink(outside / "target.jsonl", root / "link-to-a-file.jsonl")
    os.symlink(outside / "inner", root / "link-to-a-folder")  # rglob does not enter it
    os.symlink(root / "missing", root / "broken-link.jsonl")
    os.symlink(root / "a.jsonl", root / "a" / "link-to-a-sibling.jsonl")
    (root / "empty-folder").mkdir()
    bad = os.fsencode(str(root)) + b"/not-utf8-\xff.jsonl"  # a name that is no UTF-8
    with open(bad, "wb") as fh:
        fh.write(b"x\n")
    return root


def test_the_files_and_order_rglob_gives_resolved(tmp_path):
    root = _tree(tmp_path)
    listed = folder_files(root)
    assert listed == _as_rglob_lists(root)
    names = [p.name for p in listed]
    assert "target.jsonl" in names and "a.jsonl" in names  # links resolved to their targets
    assert not {"behind-a-linked-folder.jsonl", "in-hidden-folder.jsonl", ".hidden.jsonl",
                "e.jsonl", "broken-link.jsonl"} & set(names)
    # part by part, as Paths sort: a/b.jsonl before a-b.jsonl ("a" < "a-b"), though "/" > "-"
    assert names.index("b.jsonl") < names.index("a-b.jsonl")


def test_a_folder_reached_through_a_link_is_listed_from_its_target(tmp_path):
    root = _tree(tmp_path)
    os.symlink(root, tmp_path / "linked-logs")
    assert folder_files(tmp_path / "linked-logs") == _as_rglob_lists(tmp_path / "linked-logs")
    assert all(str(p).startswith(str(root.resolve())) or "elsewhere" in str(p)
               for p in folder_files(tmp_path / "linked-logs"))


def test_a_folder_ingest_reads_each_listed_file_once(lake, tmp_path):
    root = tmp_path / "in"
    (root / "day1").mkdir(parents=True)
    (root / "day1" / "a.jsonl").write_bytes(jsonl_bytes([canonical_request(1)]))
    (root / "day1" / ".partial.jsonl").write_bytes(jsonl_bytes([canonical_request(2)]))
    (root / "b.jsonl").write_bytes(jsonl_bytes([canonical_request(3)]))
    os.symlink(root / "b.jsonl", root / "b-again.jsonl")  # the same file under two names
    for p in root.rglob("*.jsonl"):
        os.utime(p, (1e9, 1e9), follow_symlinks=False) if p.is_symlink() else \
            os.utime(p, (1e9, 1e9))
    report = ingest_paths(lake, [str(root)])
    assert [(Path(f.source).name, f.stored) for f in report.files if f.stored] == [
        ("b.jsonl", {"requests": 1}), ("a.jsonl", {"requests": 1})]


def test_a_folder_named_like_the_store_is_not_the_store(tmp_path):
    """The store inside the folder is passed over; a sibling whose name starts with the store's
    name is read."""
    from lib.store import Lake

    logs = tmp_path / "logs"
    (logs / "store-archive").mkdir(parents=True)
    (logs / "store-archive" / "old.jsonl").write_bytes(jsonl_bytes([canonical_request(1)]))
    os.utime(logs / "store-archive" / "old.jsonl", (1e9, 1e9))
    lake = Lake(logs / "store")
    ingest_paths(lake, [str(logs)])
    again = ingest_paths(lake, [str(logs)])
    assert [(Path(f.source).name, f.skipped) for f in again.files] == [
        ("store", "this is the store itself: its files are not read as input"),
        ("old.jsonl", "already ingested (unchanged: same size, mtime, ctime and inode)")]
