"""The oracle of the group tests (lib/ingest/grouped.py): the same sources ingested with groups and
without (SIGHTLINE_INGEST_GROUP=0), each into its own store, must store, report and commit the
same, file by file."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from lib.ingest import grouped
from lib.ingest.pipeline import ingest_paths
from lib.store import Lake
from tests.ingest.conftest import canonical_request, jsonl_bytes, stored_rows

LINEAGE = ("batch_id", "ingested_at")
TABLES = ("requests", "evals", "events", "spans", "quarantine")
OLD = 1_000_000_000  # an mtime long past: not held back as a live file


def aged_file(folder: Path, name: str, content, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    data = content if isinstance(content, bytes) else jsonl_bytes(content)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    os.utime(path, (OLD, OLD))
    return path


def rows_of(start: int, n: int, **overrides) -> list[dict]:
    return [canonical_request(start + i, **overrides) for i in range(n)]


def summary(f) -> tuple:
    # A copy of stored content: the exact path (an S3 object read alone) parses it before it
    # finds it a copy, and its report keeps the rows it read and the id of the batch it dropped
    # (no such batch exists); a group, as the fast path, finds it a copy before reading it (0
    # rows read, no batch id).
    copy = f.duplicate_file
    return (f.source, f.format, f.stored, f.duplicates, f.quarantined, f.reasons, f.error,
            f.duplicate_file, f.unreadable, f.skipped, "copy" if copy else f.rows_read,
            f.content_hash, f.hints, f.not_read, f.continued_from, copy or f.batch_id is None)


def commits_of(lake: Lake, without=("file",)) -> list[tuple]:
    """Each commit without what differs between two runs (ids, times, inodes); a group's commit
    says it was one (``ingest_path`` "group"), where the file read alone took the fast path."""
    out = []
    for c in lake.commits():
        info = {k_: v for k_, v in c.info.items() if k_ not in without}
        if info.get("ingest_path") == "group":
            info["ingest_path"] = "fast"
        out.append((c.kind, c.source, c.content_hash, c.rows, len(c.added), info))
    return sorted(out, key=repr)


def store_of(lake: Lake) -> dict:
    return {t: stored_rows(lake, t, LINEAGE + (("ts",) if t == "quarantine" else ()))
            for t in TABLES}


def ingest_as(lake: Lake, sources: list, monkeypatch, group: bool, **kw):
    monkeypatch.setenv("SIGHTLINE_INGEST_GROUP", "1" if group else "0")
    passes = []
    real = grouped._pass
    monkeypatch.setattr(grouped, "_pass", lambda con, part, *a: passes.append(len(part))
                        or real(con, part, *a))
    try:
        report = ingest_paths(lake, [str(s) for s in sources], compact_min_files=0, **kw)
    finally:
        monkeypatch.setattr(grouped, "_pass", real)
    return store_of(lake), [summary(f) for f in report.files], passes


def assert_same(results: dict, lakes: dict, commits_without=("file",)) -> None:
    (store0, reports0, _), (store1, reports1, _) = results[False], results[True]
    assert len(reports1) == len(reports0)
    for n, (got, want) in enumerate(zip(reports1, reports0, strict=True)):
        assert got == want, f"report {n} ({want[0]}) differs"
    for t in TABLES:
        assert store1[t] == store0[t], f"table {t} differs"
    # (a file read alone between a group's files is committed after them: order not compared)
    assert commits_of(lakes[True], commits_without) == commits_of(lakes[False], commits_without)
    assert not list((lakes[True].root / "_tmp").glob("*")), "scratch left behind"


def same_as_one_at_a_time(tmp_path, monkeypatch, sources, *, prepare=None,
                           commits_without=("file",), **kw):
    """Ingest ``sources`` without groups and with, each into its own store (``prepare(lake)``
    first); assert stores, reports and commits agree; return the group run's passes, its lake
    and its reports."""
    lakes, results = {}, {}
    for group in (False, True):
        lake = lakes[group] = Lake(tmp_path / f"store-{group}")
        if prepare:
            prepare(lake)
        results[group] = ingest_as(lake, sources, monkeypatch, group, **kw)
    assert_same(results, lakes, commits_without)
    return results[True][2], lakes[True], results[True][1]
