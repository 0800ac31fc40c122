"""Compaction and garbage collection of the lake.

Frequent small ingests (cron every minute, S3 objects of a few KB) leave many small files per
day partition; every query then opens them all. :func:`compact` merges a partition's small files
into one, under the writer lock, through :meth:`Lake.rewrite` naming exactly the files it read:
one manifest entry removes them and adds the merged file, so a reader sees either the old files
or the new one, never both and never neither. Old files stay on disk until :func:`gc` removes
them an hour later, so a reader that listed them just before still reads them.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lib import schema
from lib.store.connections import close as close_connection
from lib.store.connections import connect
from lib.store.lake import MANIFEST_DIR, Lake, _partition_day, unreadable_files

DEFAULT_MIN_FILES = 16  # compact a partition holding more than this many small files
SMALL_FILE_BYTES = 32 * 1024 * 1024
GROUP_BYTES = 256 * 1024 * 1024  # at most this much is read into memory per merged file
GC_AGE_S = 3600.0

log = logging.getLogger(__name__)


def default_min_files() -> int:
    """The automatic-compaction threshold: ``$SIGHTLINE_COMPACT_MIN_FILES``, else 16. Raises
    ValueError naming the variable when it is no whole number: "off" or "never" was read as 16
    without a word, and compacted what the user meant to leave alone (0 is never)."""
    value = os.environ.get("SIGHTLINE_COMPACT_MIN_FILES", "").strip()
    if not value:
        return DEFAULT_MIN_FILES
    try:
        return int(value)
    except ValueError:
        raise ValueError("SIGHTLINE_COMPACT_MIN_FILES must be a whole number of small files "
                         f"(0: never compact), not {value!r}") from None


@dataclass
class CompactReport:
    """Per merged group: table, day, files merged, rows; plus the files gc deleted and the
    small files left as they were because they do not read (relative paths)."""

    merged: list[dict] = field(default_factory=list)
    gc_removed: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # files left out: they do not read

    @property
    def files_before(self) -> int:
        return sum(m["files"] for m in self.merged)

    @property
    def files_after(self) -> int:
        return len(self.merged)

    def to_dict(self) -> dict:
        return {**asdict(self), "files_before": self.files_before,
                "files_after": self.files_after}


def small_files(lake: Lake, table: str, small_bytes: int = SMALL_FILE_BYTES
                ) -> dict[str, list[str]]:
    """Live files of ``table`` smaller than ``small_bytes``, per day partition (relative paths)."""
    out: dict[str, list[str]] = {}
    for rel in lake.snapshot().files.get(table, []):
        try:
            size = (lake.root / rel).stat().st_size
        except OSError:
            continue
        if size < small_bytes:
            out.setdefault(_partition_day(rel) or "", []).append(rel)
    return out


def compact(lake: Lake, *, min_files: int | None = None, small_bytes: int = SMALL_FILE_BYTES,
            tables: list[str] | None = None, group_bytes: int = GROUP_BYTES) -> CompactReport:
    """Merge the small files of every partition that has more than ``min_files`` of them.

    Runs under the writer lock (ingests wait); each merged group is its own atomic commit of kind
    ``compact``. Rows, values and lineage are unchanged; rows are sorted by ts. Returns what was
    merged."""
    min_files = default_min_files() if min_files is None else min_files
    report = CompactReport()
    with lake.writer_lock():
        for table in tables or list(schema.TABLES):
            for day, files in sorted(small_files(lake, table, small_bytes).items()):
                if len(files) <= min_files or not day:
                    continue
                bad = unreadable_files(lake.root, files)
                if bad:
                    # Left as they are (a merge would drop their rows), named; the day's other
                    # files and the other days are still merged.
                    for rel, why in bad.items():
                        log.warning("%s: not a readable Parquet file (%s); not compacted",
                                    lake.root / rel, why)
                    report.unreadable.extend(bad)
                    files = [f for f in files if f not in bad]
                    if len(files) <= min_files:
                        continue
                for group in _groups(lake, files, group_bytes):
                    if len(group) < 2:
                        continue
                    merged = _read(lake, table, group)
                    lake.rewrite(table, {day: merged}, kind="compact", source="compact",
                                 files={day: group}, info={"compacted_files": len(group)})
                    report.merged.append({"table": table, "day": day, "files": len(group),
                                          "rows": merged.num_rows})
    return report


def _groups(lake: Lake, files: list[str], group_bytes: int) -> list[list[str]]:
    groups, current, size = [], [], 0
    for rel in sorted(files):
        n = (lake.root / rel).stat().st_size
        if current and size + n > group_bytes:
            groups.append(current)
            current, size = [], 0
        current.append(rel)
        size += n
    if current:
        groups.append(current)
    return groups


def _read(lake: Lake, table: str, files: list[str]) -> pa.Table:
    """The rows of ``files`` (of ``table``) in one table of its canonical schema, by ts."""
    target = schema.TABLES[table]
    try:
        # One read of them all: a file at a time cost 2.5 ms each (a day of files written every
        # minute is 1,440 of them). By name, for files written before a column was added.
        con = connect(config={"threads": 2, "autoinstall_known_extensions": False,
                              "autoload_known_extensions": False})
        try:
            merged = con.execute(
                "SELECT * FROM read_parquet($files, union_by_name = true, "
                "hive_partitioning = false)",
                {"files": [str(lake.root / rel) for rel in files]}).to_arrow_table()
        finally:
            close_connection(con)
        merged = schema.conform(merged, target)
    except (duckdb.Error, pa.ArrowException):
        # what DuckDB cannot read as one (types that differ between files): a file at a time
        merged = pa.concat_tables([schema.conform(pq.read_table(lake.root / rel), target)
                                   for rel in files])
    return merged.sort_by("ts")


def gc(lake: Lake, older_than_s: float = GC_AGE_S, now: float | None = None) -> list[Path]:
    """Delete files no live commit lists: files removed by a commit more than ``older_than_s``
    ago (by that commit's time, so readers of the previous version have had time to finish),
    and never-listed files (crash leftovers, temporaries) last modified that long ago.
    Returns the deleted paths.

    While a manifest entry cannot be read, never-listed files stay: the unreadable entry may be
    the one listing them (its rows come back once it is mended), as Lake._clear_leftovers
    spares them too; files a readable commit removed still go."""
    now = time.time() if now is None else now
    with lake.writer_lock():
        snap = lake.snapshot()
        live = {p for files in snap.files.values() for p in files}
        replaced = removed_at(snap.commits)
        unreadable = lake.manifest_problems()
        if unreadable:
            log.warning("%s: %d manifest entr(y/ies) cannot be read (%s); files no readable "
                        "commit lists are kept", lake.root, len(unreadable), unreadable[0])
        deleted = []
        candidates = [p for t in schema.TABLES if (lake.root / t).exists()
                      for p in (lake.root / t).rglob("*") if p.is_file()]
        candidates += [p for p in (lake.root / MANIFEST_DIR).glob(".*.tmp")]
        for path in candidates:
            rel = str(path.relative_to(lake.root))
            if rel in live or (unreadable and rel not in replaced
                                and not rel.startswith(MANIFEST_DIR)):
                continue
            try:
                age = now - replaced[rel] if rel in replaced else now - path.stat().st_mtime
            except OSError:
                continue
            if age > older_than_s:
                path.unlink(missing_ok=True)
                deleted.append(path)
    return deleted


def gc_replaced(lake: Lake, older_than_s: float | None = None, now: float | None = None
                ) -> list[Path]:
    """Delete the files that commits (compaction, remove, reprice) replaced more than
    ``older_than_s`` ago, and nothing else: an ingest runs it after storing rows, so a cron job
    that ingests every minute does not pile replaced files up on disk (compaction rewrites a
    day's merged file every few runs) until someone runs ``compact``. Files no commit ever
    listed are left to :func:`gc`. Looks only in the folders of such files. Returns the deleted
    paths."""
    now = time.time() if now is None else now
    older_than_s = GC_AGE_S if older_than_s is None else older_than_s
    deleted = []
    with lake.writer_lock():
        snap = lake.snapshot()
        live = {p for files in snap.files.values() for p in files}
        old: dict[str, set[str]] = {}
        for rel, when in removed_at(snap.commits).items():
            if now - when > older_than_s and rel not in live and _is_data_file_path(rel):
                folder, _, name = rel.rpartition("/")
                old.setdefault(folder, set()).add(name)
        for folder, names in sorted(old.items()):
            try:
                present = set(os.listdir(lake.root / folder)) & names
            except OSError:
                continue
            for name in sorted(present):
                path = lake.root / folder / name
                path.unlink(missing_ok=True)
                deleted.append(path)
    return deleted


def _is_data_file_path(rel: str) -> bool:
    """True for a path shaped as the lake names its data files, ``<table>/date=<day>/<name>``
    (nothing outside the tables' folders: a hand-edited commit's removed path may be anything)."""
    parts = rel.split("/")
    return len(parts) == 3 and parts[0] in schema.TABLES and parts[1].startswith("date=") \
        and parts[2] not in ("", ".", "..") and "\\" not in rel and "\0" not in rel \
        and all(part not in ("..", ".") for part in parts)


def removed_at(commits) -> dict[str, float]:
    """Each path a commit removed, with the time (epoch s) of the last commit that removed it
    (a commit whose time does not read is left out: its files' age is not known)."""
    at: dict[str, float] = {}
    for c in commits:
        if c.removed:
            try:
                when = datetime.fromisoformat(c.committed_at).timestamp()
            except ValueError:
                continue
            for p in c.removed:
                at[p] = max(at.get(p, 0.0), when)
    return at
