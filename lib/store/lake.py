"""The lake: append-only, Hive-partitioned Parquet files plus a manifest of commits (design §2).

Layout under the root::

    requests/date=YYYY-MM-DD/<commit>-<n>.parquet   (likewise evals/, events/, spans/, quarantine/)
    _manifest/<commit>.json                            one file per commit, never rewritten
    _manifest/checkpoint-<n>-<sha>.ckpt                the first n commits in one file (a cache)

A data file is invisible until a manifest entry lists it, and a manifest entry appears atomically
(written to a temporary name, then hard-linked to its final name, which fails if it exists). So a
writer killed at any point leaves either no new manifest entry (its files are orphans nobody reads)
or a complete one. A commit may also *remove* files (compaction, repricing): the live set is every
added file minus every removed one. Ingest commits are named by their content hash, which makes a
repeated batch a no-op even when two writers race.

A cron job that ingests every minute adds 1,440 commits a day, and every process reads them all
when it starts (45,000 small files a month: 2-7 s). So a writer that publishes a commit also
writes, every CHECKPOINT_EVERY commits, a checkpoint: the commits read so far in one file, named
by its SHA-256. It is only a cache of files that are never rewritten: a reader takes from the
newest checkpoint the commits whose files it lists, reads the others one by one, and passes over
a checkpoint that is missing, does not match its hash or holds anything but commits.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import functools
import gc
import hashlib
import itertools
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lib import schema
from lib.store.connections import close as close_connection
from lib.store.connections import connect

log = logging.getLogger(__name__)

MANIFEST_DIR = "_manifest"
# Scratch space of writers (DuckDB spill files): never read, safe to delete when no writer runs.
TMP_DIR = "_tmp"
# In _tmp: a dry run's own folder (Lake.checking), kept while its process lives.
CHECK_PREFIX = "check-"
# In _manifest: exists while a writer holds the lock, listing the ids its files are named by
# (<id>-<n>.parquet); found on taking the lock, the last holder died mid-write and the files of
# those ids that no commit lists are its leftovers (Lake._clear_leftovers).
WRITING_MARKER = ".writing"
# Scratch folders writers make in _tmp, by their prefix; anything else there is not ours.
SCRATCH_PREFIXES = ("fast-", "ingest-", "seen-", "nest-", CHECK_PREFIX)
# A dry run's folder this young counts as alive even before its lock is taken.
DRY_RUN_GRACE_S = 60
PARQUET_OPTIONS = dict(compression="zstd", row_group_size=256_000)
# Manifest checkpoints (see the module's docstring): a writer writes one once this many commits
# are not in the newest; a reader loads one once this many are not in its cache.
CHECKPOINT_EVERY = 500
CHECKPOINT_LOAD_MIN = 64
# Commits read at once past which they are put out of the cyclic garbage collector's sight
FREEZE_MIN = 10_000
CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_SUFFIX = ".ckpt"
CHECKPOINTS_KEPT = 2  # the newest and the one before, which a reader may still be opening
CHECKPOINT_CHUNK = 1000  # lines of a checkpoint parsed at once
# A reader trusts an unchanged manifest folder (same mtime and ctime) to hold the names it listed
# only when the folder had not changed for this long before it was looked at: a change in the
# same tick of the file system's clock (2 s on FAT, a few ms on ext4) would leave the times as
# they were ("racy git"'s problem and answer).
SETTLED_NS = 3_000_000_000


@dataclass(frozen=True)
class Commit:
    """One manifest entry: what a batch added (and, for rewrites, removed)."""

    commit_id: str
    kind: str  # ingest | demo | compact | reprice
    source: str
    content_hash: str | None
    committed_at: str  # ISO-8601 UTC
    rows: dict[str, int]
    added: list[dict]  # [{"table", "path", "rows"}], paths relative to the root
    removed: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d) -> Commit:
        """The commit ``d`` (a manifest entry's JSON) holds; TypeError when it is not one, or
        when a field that readers sort, index or list by has the wrong type."""
        c = cls(**d) if isinstance(d, dict) else None
        # (plain tests and loops: generators in all() took half of a checkpoint's load)
        if c is None or not (isinstance(c.commit_id, str) and isinstance(c.kind, str)
                             and isinstance(c.source, str) and isinstance(c.committed_at, str)
                             and (c.content_hash is None or isinstance(c.content_hash, str))
                             and isinstance(c.rows, dict) and isinstance(c.info, dict)
                             and isinstance(c.added, list) and isinstance(c.removed, list)):
            raise TypeError("not a commit")
        for f in c.added:
            if not (isinstance(f, dict) and isinstance(f.get("path"), str)
                    and isinstance(f.get("table"), str)):
                raise TypeError("not a commit")
        for p in c.removed:
            if not isinstance(p, str):
                raise TypeError("not a commit")
        return c


@dataclass
class Snapshot:
    """The live state of the lake at one manifest version."""

    version: str
    commits: list[Commit]
    files: dict[str, list[str]]  # table -> live paths, relative to the root


@dataclass
class WriteResult:
    """What one call to :meth:`Lake.append` did. ``commit`` is None when nothing was written."""

    commit: Commit | None
    duplicate_batch: bool = False
    stored: dict[str, int] = field(default_factory=dict)
    duplicate_rows: dict[str, int] = field(default_factory=dict)


def content_hash_of(data: bytes | str) -> str:
    """SHA-256 hex digest, the identity of a batch's content."""
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Lake:
    """A local lake rooted at a folder. All writes go through :meth:`append` or :meth:`rewrite`."""

    def __init__(self, root: str | os.PathLike, *, dry_run: bool = False):
        self.root = Path(root).resolve()
        # A dry-run lake reads, checks and deduplicates like the real one, but nothing is
        # published and nothing is written in the store (ingest --dry-run, the upload's "Check").
        self.dry_run = dry_run
        # A dry run's scratch folder (tmp_dir), and what its batches would have committed: their
        # files wait there (later batches of the run deduplicate against them, as they would
        # against the committed ones) with their content hashes.
        self._check_dir: Path | None = None
        self._checked_files: list[tuple[str, str]] = []  # (table, path relative to _check_dir)
        self._checked_hashes: set[str] = set()
        self._commit_cache: dict[str, Commit | None] = {}
        self._sorted: tuple[frozenset, list[Commit]] | None = None
        self._live_hashes: tuple | None = None  # has_content's index of the commits
        self._live_files: tuple | None = None  # snapshot's live files of the commits
        self._version: tuple | None = None  # version()'s token of the commits
        # (the manifest folder's stat, the state listed just after it): while the folder's stat
        # is the same, a reader's state stands without a listing (0.45 s at a year of commits,
        # on each dashboard rerun). None: the folder had changed too recently to be trusted.
        self._listed_stamp: tuple | None = None
        # While this object holds the writer lock, no other writer can add a commit: the state
        # listed once under it (and moved on by each commit it publishes, with the indexes
        # above) stands until the lock is released, and so does the newest checkpoint's count.
        # A run of thousands of files otherwise listed the manifest folder and rebuilt every
        # index over every commit for each file (quadratic: 3,000 small files spent 25 s there).
        self._locked_state: tuple[frozenset, list[Commit]] | None = None
        self._locked_checkpoint: int | None = None
        # The writer lock is re-entrant within a process (compaction reads and rewrites under one
        # lock; a BatchWriter holds it from begin to commit), so it is counted per Lake object.
        self._lock_guard = threading.RLock()
        self._lock_depth = 0
        self._lock_file = None

    # -- reading the manifest -------------------------------------------------------------------
    @property
    def manifest_dir(self) -> Path:
        return self.root / MANIFEST_DIR

    def version(self) -> str:
        """A cheap token that changes whenever a commit lands (from the manifest's names)."""
        return self._version_of(self._commit_state())

    def _version_of(self, state: tuple[frozenset, list[Commit]]) -> str:
        """The version token of a :meth:`_commit_state`, made once per state: the number of
        manifest entries and the XOR of a hash of each name (the same for the same names in any
        process, and moved on by one more name without going over the others)."""
        if state is _NO_COMMITS:
            return "empty"
        cached = self._version
        if cached is None or cached[0] is not state:
            x = 0
            for name in state[0]:
                x ^= _name_hash(name)
            cached = self._version = (state, len(state[0]), x)
        return f"{cached[1]}:{cached[2]:016x}"

    def commits(self) -> list[Commit]:
        """Every commit in the manifest, oldest first; unreadable entries are skipped (problems)."""
        return list(self._commit_state()[1])

    def _commit_state(self) -> tuple[frozenset, list[Commit]]:
        """The manifest's commit file names now and their commits, oldest first: one object per
        set of names, by which derived indexes (has_content, snapshot) are cached. Another thread
        may replace ``self._sorted`` at any time, so callers key on what this returned."""
        locked = self._locked_state
        if locked is not None and self._lock_depth > 0:
            return locked
        state = self._listed_state()
        if self._lock_depth > 0 and self._lock_file is not None and state is not _NO_COMMITS:
            self._locked_state = state  # stands while this object holds the lock
        return state

    def _listed_state(self) -> tuple[frozenset, list[Commit]]:
        """:meth:`_commit_state` from a listing of the manifest folder; for a reader (no writer
        lock held), the state listed before while the folder is unchanged since (SETTLED_NS)."""
        folder = self.manifest_dir
        try:
            st = os.stat(folder)
        except FileNotFoundError:
            return _NO_COMMITS
        stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        seen, before = self._listed_stamp, self._sorted
        if self._lock_depth == 0 and seen is not None and seen[0] == stamp \
                and seen[1] is before:
            # (a writer always lists: a commit it missed would be a row stored twice)
            return before
        settled = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > SETTLED_NS
        state = self._list_state(folder)
        # (listed after the stat: whatever changed after it moves the folder's times on)
        self._listed_stamp = (stamp, state) if settled else None
        return state

    def _list_state(self, folder: Path) -> tuple[frozenset, list[Commit]]:
        try:
            entries = os.listdir(folder)
        except FileNotFoundError:
            return _NO_COMMITS
        # Read and sorted once per set of names (a run asks for the commits many times); a run's
        # own commits are read and put in place rather than all looked up and sorted again.
        # (str.endswith mapped over the names: a generator's Python step per name cost 0.15 s
        # at a year of commits, on every listing)
        key = frozenset(itertools.compress(entries, map(str.endswith, entries,
                                                        itertools.repeat(".json"))))
        before = self._sorted
        if before is not None and before[0] == key:
            return before
        grown = before is not None and before[0] <= key
        missing = [n for n in (key - before[0] if grown else key) if n not in self._commit_cache]
        if missing:
            many, loading = len(missing) >= CHECKPOINT_LOAD_MIN, len(missing)
            with cyclic_gc_paused():  # a month of commits is a million small objects
                if many:
                    self._load_checkpoint(entries)
                    missing = [n for n in missing if n not in self._commit_cache]
                folder = str(self.manifest_dir)
                for name in missing:
                    self._commit_cache[name] = self._read_commit(os.path.join(folder, name))
                if loading >= FREEZE_MIN:
                    # The commits stay for the process: out of the cyclic collector's sight
                    # (before it is let go, when it would walk them all at once), or each of
                    # its full passes walks them all (1.4 s at a year of commits, several times
                    # a run). Objects alive now are still freed by reference counting.
                    gc.freeze()
        if grown:
            added = sorted(filter(None, map(self._commit_cache.get, key - before[0])),
                           key=_commit_order)
            out = list(before[1])
            for c in added:
                bisect.insort(out, c, key=_commit_order)
            state = self._sorted = (key, out)
            # Other writers' commits since the last listing: the indexes made of that state
            # are moved on over them, not rebuilt over every commit (a run lists the manifest
            # once per lock it takes; a dashboard on each rerun).
            self._advance_indexes(before, state, key - before[0], added)
            return state
        # In the cache's order (a checkpoint's commits, in commit order, then those read after
        # it): sorting that is a merge, where the order of a set of names was a full sort
        # (2 s at a year of commits).
        out = sorted((c for n, c in self._commit_cache.items() if c is not None and n in key),
                     key=_commit_order)
        state = self._sorted = (key, out)
        return state

    def _advance(self, commit: Commit) -> None:
        """Move the state listed under the writer lock (and the indexes made of it) on to
        ``commit``, just published by this object: the manifest is not listed again, nor every
        commit gone over again, for each commit of a run."""
        before = self._locked_state
        if before is None or self._lock_depth == 0:
            return
        name = f"{commit.commit_id}.json"
        self._commit_cache[name] = commit
        out = list(before[1])
        bisect.insort(out, commit, key=_commit_order)
        state = self._sorted = self._locked_state = (before[0] | {name}, out)
        # (a group's members commit with the group's time: after one read alone between them,
        # they sort before it; the live files' order is then not a fresh listing's, which
        # nothing reads by, rather than rebuilt for every member)
        self._advance_indexes(before, state, {name}, [commit], any_order=True)

    def _advance_indexes(self, before: tuple, state: tuple, names, added: list[Commit], *,
                         any_order: bool = False) -> None:
        """Move the indexes made of the state ``before`` (version, has_content's hashes,
        snapshot's live files) on to ``state``, which is ``before`` plus the manifest entries
        ``names``, holding the commits ``added`` (in commit order). An index is dropped, to be
        rebuilt when asked for, where moving it on could differ from building it anew: a
        commit that sorts before the last one of ``before`` (the live files' order), or that
        removes a batch (has_content's removed batches); ``any_order``: keep the live files
        in the order of the commits' arrival."""
        version = self._version
        if version is not None and version[0] is before:
            x = version[2]
            for name in names:
                x ^= _name_hash(name)
            self._version = (state, version[1] + len(names), x)
        in_order = any_order or not before[1] or not added or \
            _commit_order(added[0]) > _commit_order(before[1][-1])
        hashes = self._live_hashes
        if hashes is not None and hashes[0] is before:
            if all(c.kind != "remove" for c in added):
                for c in added:
                    if c.content_hash:  # (a set only this index holds)
                        hashes[2].add(c.content_hash)
                self._live_hashes = (state, hashes[1], hashes[2])
            else:
                self._live_hashes = None
        files = self._live_files
        if files is not None and files[0] is before:
            if in_order:
                # New lists, never the old state's moved on in place: another thread may be
                # reading them, or moving the same state on over the same commits.
                live = {t: list(paths) for t, paths in files[1].items()}
                for commit in added:
                    if commit.removed:
                        gone = set(commit.removed)
                        live = {t: [p for p in paths if p not in gone]
                                for t, paths in live.items()}
                    for f in commit.added:
                        if f["table"] in live and f["path"] not in commit.removed:
                            live[f["table"]].append(f["path"])
                self._live_files = (state, live)
            else:
                self._live_files = None

    def _load_checkpoint(self, entries: list[str]) -> None:
        """Fill the commit cache from the newest readable checkpoint among ``entries`` (names
        in the manifest folder), for the names listed now; a bad checkpoint is passed over."""
        listed = set(entries)
        for name in sorted(_checkpoints(entries), key=_checkpoint_count, reverse=True):
            try:
                # One commit a line, parsed CHECKPOINT_CHUNK lines at a time as one JSON array:
                # the whole text and a parse tree of it beside the commits cost 130 MB more at a
                # month of commits, and a line at a time, json's keys (shared within one parse)
                # cost 50 MB more and the calls a third of the time.
                digest, commits, bad, chunk = hashlib.sha256(), [], None, []
                with open(self.manifest_dir / name, "rb") as fh:
                    for number, line in enumerate(fh, 1):
                        digest.update(line)
                        chunk.append(line)
                        if len(chunk) == CHECKPOINT_CHUNK:
                            bad = bad or _read_chunk(chunk, number - len(chunk) + 1, commits)
                            chunk = []
                    if chunk:
                        bad = bad or _read_chunk(chunk, number - len(chunk) + 1, commits)
                if digest.hexdigest()[:16] != _checkpoint_hash(name):
                    raise ValueError("does not match its hash")
                if bad:
                    raise ValueError(f"line {bad} is no commit")
            except (OSError, ValueError) as exc:
                log.warning("manifest checkpoint %s passed over: %s", name, exc)
                continue
            for c in commits:
                entry = f"{c.commit_id}.json"
                if entry in listed:
                    self._commit_cache.setdefault(entry, c)
            return

    def _maybe_checkpoint(self) -> Path | None:
        """Write a checkpoint of every readable commit when CHECKPOINT_EVERY are not in the
        newest one (with the writer lock held); delete all but the newest CHECKPOINTS_KEPT.
        Returns the path written, or None. Housekeeping: an error is logged, never raised."""
        try:
            locked = self._locked_state if self._lock_depth > 0 else None
            if locked is not None and self._locked_checkpoint is not None:
                listed, newest = len(locked[0]), self._locked_checkpoint
            else:
                entries = os.listdir(self.manifest_dir)
                listed = sum(n.endswith(".json") for n in entries)
                # (a name counting more commits than there are is no checkpoint of ours)
                newest = max((n for n in map(_checkpoint_count, _checkpoints(entries))
                              if n <= listed), default=0)
                if locked is not None:
                    self._locked_checkpoint = newest
            if listed - newest < CHECKPOINT_EVERY:
                return None
            commits = self.commits()
            # json, not orjson: a commit's NaN or a past-64-bit integer reads back as it was
            # (and json escapes every newline: one commit a line).
            data = "".join(json.dumps(c.__dict__) + "\n" for c in commits).encode()
            digest = hashlib.sha256(data).hexdigest()[:16]
            final = self.manifest_dir / f"{CHECKPOINT_PREFIX}{len(commits):09d}-{digest}" \
                                        f"{CHECKPOINT_SUFFIX}"
            tmp = self.manifest_dir / f".{final.name}.{uuid.uuid4().hex}.tmp"
            tmp.write_bytes(data)
            _fsync(tmp)
            os.replace(tmp, final)
            _fsync_dir(self.manifest_dir)
            if self._lock_depth > 0:
                self._locked_checkpoint = len(commits)
            kept = sorted(_checkpoints(os.listdir(self.manifest_dir)), key=_checkpoint_count)
            for name in kept[:-CHECKPOINTS_KEPT]:
                (self.manifest_dir / name).unlink(missing_ok=True)
            return final
        except Exception:
            log.warning("writing a manifest checkpoint of %s failed", self.root, exc_info=True)
            return None

    def manifest_problems(self) -> list[str]:
        """Paths of manifest entries that could not be read, with the reason."""
        self.commits()
        return [f"{self.manifest_dir / n}: unreadable manifest entry" for n, c in
                self._commit_cache.items() if c is None]

    @staticmethod
    def _read_commit(path: str | Path) -> Commit | None:
        try:
            with open(path, "rb") as fh:
                return Commit.from_dict(_loads(fh.read()))
        except (OSError, ValueError, TypeError):
            return None

    def snapshot(self) -> Snapshot:
        state = self._commit_state()  # one listing: the version is that of these commits
        version = self._version_of(state)
        cached = self._live_files
        if cached is None or cached[0] is not state:
            removed = {p for c in state[1] for p in c.removed}
            live: dict[str, list[str]] = {t: [] for t in schema.TABLES}
            for c in state[1]:
                for f in c.added:
                    if f["path"] not in removed and f["table"] in live:
                        live[f["table"]].append(f["path"])
            cached = self._live_files = (state, live)  # once per set of commits
        files = {t: list(paths) for t, paths in cached[1].items()}
        return Snapshot(version=version, commits=list(state[1]), files=files)

    def has_content(self, content_hash: str) -> bool:
        """True when a commit with this content hash exists (named by it, or carrying it) and
        was not removed (:meth:`remove_batch`: its content may be ingested again), or, in a dry
        run, an earlier batch of the run would have committed it."""
        if content_hash in self._checked_hashes:
            return True
        state = self._commit_state()
        cached = self._live_hashes
        if cached is None or cached[0] is not state:
            # Built once per set of commits: a run asks for every source it reads.
            removed = removed_batches(state[1])
            hashes = {c.content_hash for c in state[1]
                      if c.content_hash and c.commit_id not in removed}
            cached = self._live_hashes = (state, removed, hashes)
        _, removed, hashes = cached
        if content_hash in hashes:
            return True
        return (self.manifest_dir / f"{content_hash}.json").exists() and \
            content_hash not in removed

    # -- writing --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def writer_lock(self):
        """Serialize writers of this lake across processes (readers never take it).

        Re-entrant for the thread that holds it, so a caller may read and then :meth:`rewrite`
        under one lock (no commit can slip in between)."""
        with self._lock_guard:
            # A dry run on a store that does not exist yet creates nothing: there is nothing to
            # hold still.
            if self._lock_depth == 0 and not (self.dry_run and not self.manifest_dir.is_dir()):
                self.manifest_dir.mkdir(parents=True, exist_ok=True)
                fh = open(self.manifest_dir / ".lock", "a+")
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # (a cron run behind a long one printed nothing)
                    log.warning("%s: another writer (an ingest, compact, reprice or remove) "
                                "holds the store; waiting for it to finish", self.root)
                    fcntl.flock(fh, fcntl.LOCK_EX)
                self._lock_file = fh
                self._locked_state = self._locked_checkpoint = None  # listed once, below
                if not self.dry_run:
                    try:
                        # The marker outlives only a holder that died: then clear what it left.
                        marker = self.manifest_dir / WRITING_MARKER
                        if marker.exists():
                            self._clear_leftovers()
                        else:  # a killed dry run leaves no marker: its folder is found here
                            self._clear_scratch(dry_runs_only=True)
                        marker.write_text("")
                    except BaseException:
                        self._lock_file = None
                        fcntl.flock(fh, fcntl.LOCK_UN)
                        fh.close()
                        raise
            self._lock_depth += 1
            try:
                yield
            except BaseException:
                # A writer that raises (a full disk, a failed day of a rewrite) clears what it
                # wrote, as the next writer would had it died: files no commit lists.
                if self._lock_depth == 1 and self._lock_file is not None and not self.dry_run:
                    try:
                        self._clear_leftovers()
                    except Exception:  # best effort: the error the caller sees is the first one
                        log.warning("clearing after a failed write of %s failed", self.root,
                                    exc_info=True)
                raise
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0 and self._lock_file is not None:
                    fh, self._lock_file = self._lock_file, None
                    self._locked_state = self._locked_checkpoint = None
                    if not self.dry_run:
                        (self.manifest_dir / WRITING_MARKER).unlink(missing_ok=True)
                    fcntl.flock(fh, fcntl.LOCK_UN)
                    fh.close()

    def writer_busy(self) -> bool:
        """True when another writer holds the store's lock now, so a write started here waits
        for it (:meth:`writer_lock`): a caller with no stderr to show the lock's warning on (the
        Data page's upload) says so itself. False when this thread holds it, or there is no
        store yet; True when another thread does (the app's sessions share one Lake: a second
        upload waited on the first one's lock under "Starting…")."""
        if not self._lock_guard.acquire(blocking=False):  # another thread is writing
            return True
        try:
            if self._lock_depth > 0:  # (this thread: its write goes on under the lock it holds)
                return False
            try:
                fh = open(self.manifest_dir / ".lock", "a+")
            except OSError:
                return False
            with fh:
                return _held_elsewhere(fh)
        finally:
            self._lock_guard.release()

    def _note_writing(self, file_id: str) -> None:
        """Record in the writer's marker that files named ``<file_id>-<n>.parquet`` may now be
        written (before the first of them is), so they are cleared if this writer dies."""
        if not self.dry_run:
            with open(self.manifest_dir / WRITING_MARKER, "a") as fh:
                fh.write(file_id + "\n")

    def _clear_scratch(self, *, dry_runs_only: bool) -> list[Path]:
        """Delete the scratch folders in ``_tmp`` of writers that died (with the writer lock
        held: no other writer runs) and of dry runs proven abandoned; with ``dry_runs_only``, only
        the latter. Nothing when ``_tmp`` is a link (a scratch disk other lakes may share)."""
        deleted: list[Path] = []
        scratch = self.root / TMP_DIR
        if not scratch.is_dir() or scratch.is_symlink():
            return deleted
        for entry in scratch.iterdir():
            if entry.name.startswith(CHECK_PREFIX):
                if not _dry_run_alive(entry):
                    _delete_leftover(entry, deleted=deleted)
            elif entry.name.startswith(SCRATCH_PREFIXES) and not dry_runs_only:
                _delete_leftover(entry, deleted=deleted)
        return deleted

    def _clear_leftovers(self) -> list[Path]:
        """Delete what a writer killed (or raising) mid-batch left behind; returns the paths
        deleted.

        Runs as the writer lock is taken and the last holder's marker is found, and as a writer
        that raised releases it: no other writer is in flight then. Deleted: the writers' scratch
        folders in ``_tmp`` (not a running dry run's, and nothing when ``_tmp`` is a link to a
        shared place), ``_publish``'s temporary files, and the data files (and their hidden
        temporary names) of the ids the marker lists that no commit lists: they never reached
        the manifest, so no reader can see them. Files a commit once listed (replaced by a
        compaction, say) stay: a reader's older snapshot may still read them (``compact
        --gc-age`` deletes them later); so do the tables' files while a manifest entry is
        unreadable (its files would look unlisted). Best effort: what cannot be deleted stays,
        and the writer goes on."""
        assert self._lock_file is not None and not self.dry_run, "hold the writer lock"
        deleted = self._clear_scratch(dry_runs_only=False)
        delete = functools.partial(_delete_leftover, deleted=deleted)
        for entry in self.manifest_dir.glob(".*.tmp"):  # _publish's, killed before its link
            delete(entry)
        try:
            ids = set((self.manifest_dir / WRITING_MARKER).read_text().split())
        except OSError:
            ids = set()
        if not ids or self.manifest_problems():
            return deleted
        listed = {f["path"] for c in self.commits() for f in c.added}
        for table in schema.TABLES:
            base = self.root / table
            if not base.is_dir():
                continue
            for file_id in ids:
                for pattern in (f"date=*/{file_id}-*.parquet", f"date=*/.{file_id}-*.tmp"):
                    for path in base.glob(pattern):
                        if str(path.relative_to(self.root)) not in listed:
                            delete(path)
        return deleted

    def begin(self, source: str, content_hash: str | None = None, *, kind: str = "ingest",
              dedupe: bool = True, info: dict | None = None, batch_id: str | None = None,
              ingested_at: datetime | None = None, continued: bool = False) -> BatchWriter:
        """Start a streamed batch: one atomic commit built from many :meth:`BatchWriter.add` calls.

        Holds the writer lock until ``commit()`` or ``abort()`` (use it as a context manager:
        leaving the block without a commit aborts). ``content_hash`` may be given now or to
        ``commit`` once it is known (it is usually computed while the file streams).
        ``batch_id`` and ``ingested_at`` are chosen here unless given: files written with the
        lineage of a batch before it began (lib/ingest/grouped.py) give theirs. ``continued``:
        the batch reads ``source`` on from where earlier batches of it stopped (a file that
        grew), whose rows are earlier rows of the same file (:meth:`BatchWriter.add`)."""
        return BatchWriter(self, source=source, content_hash=content_hash, kind=kind,
                           dedupe=dedupe, info=info, batch_id=batch_id, ingested_at=ingested_at,
                           continued=continued)

    def append(
        self,
        tables: dict[str, pa.Table],
        *,
        source: str,
        content_hash: str | None = None,
        kind: str = "ingest",
        dedupe: bool = True,
        info: dict | None = None,
    ) -> WriteResult:
        """Append canonical tables as one atomic commit.

        ``content_hash`` identifies the batch: a batch already committed is a no-op
        (``duplicate_batch``). With ``dedupe``, rows whose key (schema.KEYS) is already live in the
        lake, or repeated within the batch, are dropped and counted in ``duplicate_rows``.
        Lineage columns (batch_id, ingested_at, and source_file when absent) are filled here.
        """
        self._refuse_dry_run()
        commit_id = content_hash or uuid.uuid4().hex
        with self.writer_lock():
            if content_hash and self.has_content(content_hash):
                return WriteResult(commit=None, duplicate_batch=True)
            if (self.manifest_dir / f"{commit_id}.json").exists():
                # a removed batch of this content holds the name (remove_batch): a new one
                commit_id = uuid.uuid4().hex
            self._note_writing(commit_id)
            ingested_at = datetime.now(UTC)
            prepared: dict[str, pa.Table] = {}
            result = WriteResult(commit=None)
            for name, table in tables.items():
                if table is None or table.num_rows == 0:
                    continue
                table = schema.conform(table, schema.TABLES[name])
                table = _fill_lineage(table, commit_id, ingested_at, source)
                before = table.num_rows
                if dedupe:
                    table = self._drop_duplicates(name, table)
                result.duplicate_rows[name] = before - table.num_rows
                if table.num_rows:
                    prepared[name] = table
                    result.stored[name] = table.num_rows
            added = self._write_files(prepared, commit_id)
            _pause_for_tests("after_data_files")
            commit = Commit(
                commit_id=commit_id,
                kind=kind,
                source=source,
                content_hash=content_hash,
                committed_at=ingested_at.isoformat(timespec="microseconds"),
                rows={t: n for t, n in result.stored.items()},
                added=added,
                info=info or {},
            )
            _pause_for_tests("before_publish")
            self._publish(commit)
            result.commit = commit
            return result

    def rewrite(self, name: str, replace: dict[str, pa.Table], *, kind: str, source: str,
                info: dict | None = None, files: dict[str, list[str]] | None = None
                ) -> Commit | None:
        """Atomically replace live files of table ``name`` by new tables.

        ``replace`` maps a date partition (``YYYY-MM-DD``) to the table that replaces all of that
        partition's live files. Used by compaction and repricing; readers see either the old files
        or the new ones, never both. With ``files`` (day -> paths), only those files of a day are
        replaced (compaction of the small ones); raises ValueError if one is no longer live, so
        a caller that read them without holding :meth:`writer_lock` cannot lose rows.
        A value may also be a callable returning the table (or None: leave that day as it is),
        called under the lock one day at a time, so a large rewrite holds one day in memory.
        Returns the commit, or None when every day was left as it was (nothing is published:
        a reprice from cron that changes nothing adds no commit for every process to read).
        """
        self._refuse_dry_run()
        commit_id = uuid.uuid4().hex
        with self.writer_lock():
            self._note_writing(commit_id)
            snap = self.snapshot()
            removed, added = [], []
            for day, table in replace.items():
                if callable(table):
                    table = table()
                    if table is None:
                        continue
                old = [p for p in snap.files[name] if f"/date={day}/" in f"/{p}"]
                if files is not None:
                    gone = set(files.get(day, [])) - set(old)
                    if gone:
                        raise ValueError(f"rewrite of {name} {day}: files no longer live: "
                                         f"{sorted(gone)[:3]}")
                    old = list(files.get(day, []))
                removed.extend(old)
                table = schema.conform(table, schema.TABLES[name])
                added.extend(self._write_files({name: table}, commit_id))
            if not removed and not added:
                return None
            commit = Commit(commit_id=commit_id, kind=kind, source=source, content_hash=None,
                            committed_at=_now_iso(), rows={name: sum(f["rows"] for f in added)},
                            added=added, removed=removed, info=info or {})
            self._publish(commit)
            return commit

    def remove_batch(self, batch_id: str, *, info: dict | None = None) -> Commit:
        """Take every row an ingest (or demo) batch stored, in every table, quarantine included,
        out of the lake as one atomic commit of kind ``remove``.

        Files holding its rows (its own, or compacted files it shares with other batches) are
        rewritten without them; the commit's ``info`` records ``removed_batch``, the rows taken
        out per table (``removed_rows``), the batch's source, and ``info``. The batch's content
        is forgotten (:meth:`has_content`), so the same file may be ingested again (under a
        corrected mapping, say). Raises KeyError for an unknown batch, ValueError for a commit
        that is not an ingest or demo batch, or one already removed."""
        self._refuse_dry_run()
        commit_id = uuid.uuid4().hex
        with self.writer_lock():
            self._note_writing(commit_id)
            commits = self.commits()
            target = next((c for c in commits if c.commit_id == batch_id), None)
            if target is None:
                raise KeyError(batch_id)
            if target.kind not in ("ingest", "demo"):
                raise ValueError(f"commit {batch_id} is a {target.kind}, not an ingested batch: "
                                 "only ingest and demo batches can be removed")
            if batch_id in removed_batches(commits):
                raise ValueError(f"batch {batch_id} was removed already")
            snap = self.snapshot()
            refuse_unreadable(self.root, [p for paths in snap.files.values() for p in paths],
                              "remove")
            removed, added, taken = [], [], {}
            con = connect(config={"threads": 2, "autoinstall_known_extensions": False,
                                         "autoload_known_extensions": False})
            try:
                for name, paths in snap.files.items():
                    if not paths:
                        continue
                    # Only the batch_id column is scanned; files without its rows are kept.
                    hits = con.execute(
                        "SELECT filename, count(*) FROM read_parquet($files, filename = true) "
                        "WHERE batch_id = $batch GROUP BY filename ORDER BY filename",
                        {"files": [str(self.root / p) for p in paths], "batch": batch_id},
                    ).fetchall()
                    for filename, n in hits:
                        table = pq.ParquetFile(filename).read()  # no hive columns from its path
                        keep = pc.fill_null(pc.not_equal(table.column("batch_id"), batch_id),
                                            True)
                        removed.append(str(Path(filename).relative_to(self.root)))
                        rest = table.filter(keep)
                        if rest.num_rows:  # numbered on: two files of one day stay two
                            added.extend(self._write_files({name: rest}, commit_id,
                                                           first=len(added)))
                        taken[name] = taken.get(name, 0) + n
            finally:
                close_connection(con)
            commit = Commit(
                commit_id=commit_id, kind="remove", source=target.source, content_hash=None,
                committed_at=_now_iso(), rows={t: sum(f["rows"] for f in added
                                                      if f["table"] == t) for t in taken},
                added=added, removed=removed,
                info={**(info or {}), "removed_batch": batch_id, "removed_rows": taken})
            self._publish(commit)
            return commit

    def _drop_duplicates(self, name: str, table: pa.Table) -> pa.Table:
        key = schema.KEYS[name]
        # Repeats inside the batch: keep the first occurrence.
        idx = pa.table({"k": table.column(key), "i": pa.array(range(table.num_rows))})
        firsts = idx.group_by("k", use_threads=False).aggregate([("i", "min")]).column("i_min")
        if len(firsts) != table.num_rows:
            # The first row of each key, in the batch's order (the row indices, sorted).
            table = table.take(pc.take(firsts, pc.sort_indices(firsts)))
        return self._drop_stored(name, table)[0]

    def _drop_stored(self, name: str, table: pa.Table, earlier_source: str | None = None
                     ) -> tuple[pa.Table, pa.Table | None]:
        """``table`` without the rows whose key is live in the lake already, and None; with
        ``earlier_source`` (a read going on from where earlier reads of that source stopped),
        the rows whose key only that source's rows hold are kept, and the second value gives
        those keys ``k`` with their stored row's digest ``d`` (:func:`digest_sql`): earlier rows
        of the same file, for :meth:`BatchWriter.add` to compare them with."""
        key = schema.KEYS[name]
        # Keys already live: only files of the same day partitions (and the neighbouring days) can
        # hold them (ts sets the day).
        days = {_day_str(d) for d in np.unique(_epoch_days(table.column("ts")))}
        files = self._files_of_days(name, days)
        if not files:
            return table, None
        con = connect()
        try:
            con.register("incoming", pa.table({"k": table.column(key)}))
            existing = con.execute(
                f"SELECT DISTINCT {key} FROM read_parquet($files) "
                f"WHERE {key} IN (SELECT k FROM incoming)", {"files": files}
            ).to_arrow_table().column(0)
            earlier = None
            if earlier_source is not None and len(existing):
                # (whole rows read only for the keys found stored)
                con.register("found", pa.table({"k": existing}))
                con.execute("CREATE TEMP TABLE stored AS " +
                            stored_by_source_sql(name, "SELECT k FROM found"),
                            {"files": files, "source": earlier_source})
                existing = con.execute("SELECT DISTINCT k FROM stored WHERE NOT mine"
                                       ).to_arrow_table().column(0)
                earlier = con.execute(
                    "SELECT k, any_value(d) AS d FROM stored GROUP BY k HAVING bool_and(mine)"
                ).to_arrow_table()
        finally:
            close_connection(con)
        if len(existing):
            table = table.filter(pc.invert(pc.is_in(table.column(key), value_set=existing)))
        return table, earlier

    def batch_files(self, name: str, batch_ids) -> list[str]:
        """Absolute paths of the files of table ``name`` that the batches ``batch_ids``
        committed, from each one's manifest entry (this object's, else read alone: a listing of
        the manifest costs 0.15 s at a month of commits). In a dry run, every file its batches
        left in its scratch folder (each row says its batch). Raises OSError for a batch with
        no readable entry."""
        if self.dry_run:
            return [str(self._check_dir / p) for t, p in self._checked_files if t == name]
        paths = []
        for batch_id in batch_ids:
            entry = f"{batch_id}.json"
            commit = self._commit_cache.get(entry) or self._read_commit(self.manifest_dir / entry)
            if commit is None:
                raise OSError(f"no readable manifest entry for batch {batch_id}")
            paths += [str(self.root / a["path"]) for a in commit.added if a["table"] == name]
        return paths

    def _files_of_days(self, name: str, days) -> list[str]:
        """Absolute paths of the live files of table ``name`` that may already hold the key of a
        row whose ``ts`` falls on one of ``days`` (``YYYY-MM-DD``): the files of those day
        partitions and of the day before and after each. Two sources often log one request with
        timestamps a moment apart (start and end of the call, or clocks that differ), which can
        put it on either side of midnight; it is still one request."""
        near = set()
        for d in days:
            day = date.fromisoformat(str(d))
            near.update((day + timedelta(days=k)).isoformat() for k in (-1, 0, 1))
        live = [str(self.root / p) for p in self.snapshot().files[name]
                if _partition_day(p) in near]
        return live + [str(self._check_dir / p) for t, p in self._checked_files
                       if t == name and _partition_day(p) in near]

    def _write_files(self, tables: dict[str, pa.Table], commit_id: str,
                     first: int = 0) -> list[dict]:
        added = []
        for name, table in tables.items():
            # Day partitions from integer microseconds: much faster than formatting 1M timestamps.
            day = _epoch_days(table.column("ts"))
            order = np.argsort(day, kind="stable")
            day_sorted = day[order]
            days, starts = np.unique(day_sorted, return_index=True)
            bounds = list(starts) + [len(day_sorted)]
            for n, d in enumerate(days):
                if len(days) > 1:
                    part = table.take(pa.array(order[bounds[n]:bounds[n + 1]]))
                else:
                    part = table
                part = part.sort_by("ts")
                rel = f"{name}/date={_day_str(d)}/{commit_id}-{first + n}.parquet"
                final = self.root / rel
                final.parent.mkdir(parents=True, exist_ok=True)
                tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
                pq.write_table(part, tmp, **PARQUET_OPTIONS)
                _fsync(tmp)
                os.replace(tmp, final)
                added.append({"table": name, "path": rel, "rows": part.num_rows})
        return added

    def checking(self) -> Lake:
        """The same lake, for a dry run: batches count what they would store and publish
        nothing; each deduplicates against the store and the run's earlier batches."""
        return Lake(self.root, dry_run=True)

    @property
    def tmp_dir(self) -> Path:
        """Scratch space of writers (``<root>/_tmp``). A dry run's is a folder of its own, never
        inside the tables (in ``_tmp`` of an existing store, else in the system's temporary
        folder), deleted with this object: its batches' files wait there."""
        if not self.dry_run:
            return self.root / TMP_DIR
        if self._check_dir is None:
            parent = self.root / TMP_DIR if self.root.is_dir() else None
            if parent is not None:
                parent.mkdir(exist_ok=True)
            self._check_dir = Path(tempfile.mkdtemp(prefix=CHECK_PREFIX, dir=parent))
            # Held while the run lives, so a writer clearing leftovers (clear_leftovers) can tell
            # this folder from one a killed dry run left.
            alive = open(self._check_dir / ".alive", "a+")
            fcntl.flock(alive, fcntl.LOCK_EX)
            weakref.finalize(self, _end_dry_run, self._check_dir, alive)
        return self._check_dir

    def _refuse_dry_run(self) -> None:
        if self.dry_run:  # before a file is written
            raise RuntimeError("a dry-run lake publishes nothing")

    def _publish(self, commit: Commit) -> None:
        """Make ``commit`` visible atomically; raises FileExistsError if its name is taken."""
        if self.dry_run:  # a safety net: every writer checks before it gets here
            raise RuntimeError("a dry-run lake publishes nothing")
        final = self.manifest_dir / f"{commit.commit_id}.json"
        tmp = self.manifest_dir / f".{commit.commit_id}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(commit.to_json())
        _fsync(tmp)
        try:
            os.link(tmp, final)  # atomic and exclusive: never overwrites a commit
        finally:
            tmp.unlink(missing_ok=True)
        self._advance(commit)
        _fsync_dir(self.manifest_dir)
        self._maybe_checkpoint()

    # -- housekeeping ---------------------------------------------------------------------------
    def orphans(self, older_than_s: float = 3600) -> list[Path]:
        """Files under the root that no live commit lists (crash leftovers, removed files, foreign
        files), older than ``older_than_s`` seconds so a writer in flight is never disturbed."""
        live = {p for files in self.snapshot().files.values() for p in files}
        cutoff = time.time() - older_than_s
        out = []
        for table in schema.TABLES:
            base = self.root / table
            if not base.exists():
                continue
            for path in base.rglob("*"):
                if path.is_file() and str(path.relative_to(self.root)) not in live:
                    if path.stat().st_mtime < cutoff:
                        out.append(path)
        return out


def _delete_leftover(path: Path, *, deleted: list[Path]) -> None:
    """Delete a file or folder a writer left; one that cannot be deleted is logged and stays."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        deleted.append(path)
    except OSError as exc:
        log.warning("could not delete %s, left by a writer that died: %s", path, exc)


def _end_dry_run(folder: Path, alive) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    alive.close()


def _held_elsewhere(fh) -> bool:
    """Whether another process holds a lock on the open file ``fh`` (told by taking an
    exclusive lock without waiting, and letting it go at once)."""
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def _dry_run_alive(folder: Path) -> bool:
    """True while the dry run that made ``folder`` holds its ``.alive`` lock, or made the folder
    less than DRY_RUN_GRACE_S ago (it may not have taken the lock yet), or when that cannot be
    told (another user's folder): only a folder proven abandoned is cleared."""
    try:
        if time.time() - folder.stat().st_mtime < DRY_RUN_GRACE_S:
            return True
        with open(folder / ".alive") as fh:
            return _held_elsewhere(fh)
    except FileNotFoundError:  # gone, or never locked and older than the grace
        return False
    except OSError:
        return True


_NO_COMMITS: tuple[frozenset, list] = (frozenset(), [])


@functools.lru_cache(maxsize=1 << 17)
def _name_hash(name: str) -> int:
    """64 bits of the SHA-256 of a manifest entry's name (the version token's part of it)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def _commit_order(c: Commit) -> tuple[str, str]:
    return (c.committed_at, c.commit_id)


@contextlib.contextmanager
def cyclic_gc_paused():
    """Pause Python's cyclic garbage collector: building many objects that form no cycles
    otherwise triggers it again and again (a third of the time of loading a checkpoint)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _loads(data: bytes):
    """JSON text as json reads it (not orjson, which reads an integer past 64 bits as a float);
    ValueError on anything that is not JSON, too deep included."""
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise ValueError("nested too deep") from exc


def _read_chunk(lines: list[bytes], first: int, into: list[Commit]) -> int | None:
    """Append to ``into`` the commits of checkpoint ``lines`` (line numbers from ``first``);
    returns the number of the first line that holds no commit, or None."""
    try:
        docs = _loads(b"[" + b",".join(lines) + b"]")
        if len(docs) != len(lines):  # a line holding two values, or none
            raise ValueError("not one commit a line")
        into.extend(Commit.from_dict(d) for d in docs)
        return None
    except (ValueError, TypeError):
        for number, line in enumerate(lines, first):  # which line
            try:
                Commit.from_dict(_loads(line))
            except (ValueError, TypeError):
                return number
        return first


def _checkpoints(entries) -> list[str]:
    """The checkpoint names among a manifest folder's ``entries``."""
    return [n for n in entries if n.startswith(CHECKPOINT_PREFIX) and n.endswith(CHECKPOINT_SUFFIX)
            and _checkpoint_count(n) >= 0]


def _checkpoint_count(name: str) -> int:
    """How many commits a checkpoint named ``name`` holds (-1: not a checkpoint's name)."""
    count, _, _digest = name[len(CHECKPOINT_PREFIX):-len(CHECKPOINT_SUFFIX)].partition("-")
    return int(count) if count.isascii() and count.isdigit() else -1


def _checkpoint_hash(name: str) -> str:
    return name[len(CHECKPOINT_PREFIX):-len(CHECKPOINT_SUFFIX)].partition("-")[2]


def removed_batches(commits: list[Commit]) -> set[str]:
    """Ids of the batches a ``remove`` commit took out (:meth:`Lake.remove_batch`)."""
    return {c.info["removed_batch"] for c in commits
            if c.kind == "remove" and isinstance(c.info, dict)
            and isinstance(c.info.get("removed_batch"), str) and c.info["removed_batch"]}


def _epoch_days(ts: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """UTC day number (days since 1970-01-01) of each timestamp."""
    micros = pc.cast(ts, pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.floor_divide(micros.to_numpy(zero_copy_only=False), 86_400_000_000)


def _day_str(day_number) -> str:
    return (datetime(1970, 1, 1) + timedelta(days=int(day_number))).strftime("%Y-%m-%d")


class BatchWriter:
    """A streamed batch: rows arrive in chunks and are written to invisible files as they come;
    ``commit`` publishes one manifest entry listing them all, ``abort`` deletes them.

    Memory stays bounded by one chunk: the keys seen in this batch (for row dedupe across chunks)
    live in a small DuckDB table that spills to disk past its memory limit. Rows already checked
    and deduplicated elsewhere (the SQL ingest path) are written with :meth:`write_rows`.
    The lake's writer lock is held from construction to commit/abort, so rows are deduped
    against a lake that cannot change underneath, and the content-hash check is race-free.
    Create with :meth:`Lake.begin`.
    """

    def __init__(self, lake: Lake, *, source: str, content_hash: str | None, kind: str,
                 dedupe: bool, info: dict | None, batch_id: str | None = None,
                 ingested_at: datetime | None = None, continued: bool = False):
        self.lake = lake
        self.source = source
        self.continued = continued
        self.content_hash = content_hash
        self.kind = kind
        self.dedupe = dedupe
        self.info = dict(info or {})
        self.batch_id = batch_id or uuid.uuid4().hex
        self.ingested_at = ingested_at or datetime.now(UTC)
        self.result = WriteResult(commit=None)
        self._writers: dict[tuple[str, str], tuple[pq.ParquetWriter, Path, str]] = {}
        self._rows: dict[str, int] = {}  # rows written per relative path
        self._adopted: list[tuple[str, Path, str]] = []  # (table, hidden tmp path, final rel)
        self._seen: duckdb.DuckDBPyConnection | None = None
        self._seen_tables: set[str] = set()
        self._first_chunks: dict[str, pa.Table] = {}  # a table's first chunk, not yet in _seen
        self._sealed: set[str] = set()  # tables whose files were read back (written_files)
        self._files_made = 0
        self._done = False
        # Where its files go: the lake's tables, or a dry run's own folder (nothing in the store)
        self._base = lake.tmp_dir if lake.dry_run else lake.root
        if not lake.dry_run:
            # The store's scratch folder exists once it has a batch: a dry run puts its own
            # folder there, where writers clear those of dry runs killed (clear_leftovers), and
            # makes none in a store that has one (its store folder stays as it was)
            (lake.root / TMP_DIR).mkdir(parents=True, exist_ok=True)
        self._lock = lake.writer_lock()
        self._lock.__enter__()
        lake._note_writing(self.batch_id)
        self.duplicate_batch = bool(content_hash and lake.has_content(content_hash))

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._done:
            self.abort()

    def add(self, tables: dict[str, pa.Table], *,
            on_conflict: Callable[[str, pa.Table], None] | None = None) -> dict[str, int]:
        """Write canonical tables (any subset of the canonical columns, plus an optional
        ``_line``: each row's line in the source). Returns rows stored per table by this call;
        rows dropped as duplicates are counted in ``result.duplicate_rows``.

        A row whose key an earlier row of this batch has (or, in a batch ``continued`` from
        earlier reads of its source, one of theirs) is a duplicate when it says the same
        (:func:`digest_sql`); saying something else it is a conflict: with ``on_conflict``,
        such rows are not counted as duplicates but handed to it, per table, as their canonical
        columns plus ``_line``. A key another source stored is a duplicate whatever it says: two
        sources often log one call, each in its own words."""
        if self._done:
            raise RuntimeError("batch already committed or aborted")
        stored: dict[str, int] = {}
        for name, table in tables.items():
            if table is None or table.num_rows == 0:
                continue
            lines = (table.column("_line").cast(pa.int64()) if "_line" in table.column_names
                     else pa.nulls(table.num_rows, pa.int64()))
            table = schema.conform(table, schema.TABLES[name])
            table = _fill_lineage(table, self.batch_id, self.ingested_at, self.source)
            before = table.num_rows
            conflicts = 0
            if self.dedupe:
                # (the lines travel with the rows through the dedupe)
                table, earlier = self.lake._drop_stored(
                    name, table.append_column("_line", lines),
                    self.source if self.continued else None)
                table, clashing = self._drop_seen(name, table, earlier)
                table = table.drop_columns(["_line"])
                if on_conflict is not None and clashing is not None:
                    conflicts = clashing.num_rows
                    on_conflict(name, clashing)
            dupes = before - table.num_rows - conflicts
            self.result.duplicate_rows[name] = self.result.duplicate_rows.get(name, 0) + dupes
            if table.num_rows:
                self._write(name, table)
                stored[name] = table.num_rows
                self.result.stored[name] = self.result.stored.get(name, 0) + table.num_rows
        return stored

    def _drop_seen(self, name: str, table: pa.Table, earlier: pa.Table | None
                   ) -> tuple[pa.Table, pa.Table | None]:
        """``table`` (with ``_line``) without the rows whose key an earlier row of this batch
        (this chunk or an earlier one) has, or ``earlier`` gives (keys ``k`` stored by earlier
        reads of the file, with their digests ``d``); remembers the new keys with their digests.
        Also returns the dropped rows that say something else than that first row, or None.

        The keys live in a DuckDB table (one per canonical table) that spills to disk past its
        memory limit; each chunk probes it with a hash join built on the chunk (not on the
        growing key set), so the cost per chunk is one sequential scan of the keys seen."""
        key = schema.KEYS[name]
        keys = table.column(key).combine_chunks()
        if len(keys) == 0:
            return table, None
        if (name not in self._seen_tables and name not in self._first_chunks
                and (earlier is None or not earlier.num_rows)
                and pc.count_distinct(keys).as_py() == len(keys)):
            # A table's first chunk with no key twice has nothing to be compared with yet, and
            # most batches (a few-KB file) have one: it goes into DuckDB when a second comes.
            # (The DuckDB connection cost 9 ms of such a file's ingest, each time.)
            self._first_chunks[name] = table
            return table, None
        con = self._seen_con()
        seen = f"seen_{name}"
        if name not in self._seen_tables:
            con.execute(f"CREATE TEMP TABLE {seen} {SEEN_COLUMNS}")
            self._seen_tables.add(name)
            first = self._first_chunks.pop(name, None)
            if first is not None:
                con.register("first_chunk", first)
                try:
                    con.execute(f"INSERT INTO {seen} SELECT hash({schema.sql_identifier(key)}), "
                                f"{digest_sql(name, priced=True)} FROM first_chunk")
                finally:
                    con.unregister("first_chunk")
        if earlier is not None and earlier.num_rows:
            con.register("earlier", earlier)
            con.execute(f"INSERT INTO {seen} SELECT hash(k), d FROM earlier "
                        f"WHERE hash(k) NOT IN (SELECT h FROM {seen})")
            con.unregister("earlier")
        con.register("chunk", table)
        try:
            digests = con.execute(f"SELECT {digest_sql(name, priced=True)} FROM chunk"
                                  ).to_arrow_table().column(0)
        finally:
            con.unregister("chunk")
        con.register("chunk_keys", pa.table({"k": keys, "d": digests,
                                             "i": pa.array(range(len(keys)), pa.int64())}))
        try:
            if pc.count_distinct(keys).as_py() == len(keys) and not con.execute(
                    f"SELECT count(*) FROM {seen} s SEMI JOIN chunk_keys k ON s.h = hash(k.k)"
            ).fetchone()[0]:
                # (most chunks: no key twice, none seen before)
                con.execute(f"INSERT INTO {seen} SELECT hash(k), d FROM chunk_keys")
                return table, None
            verdict = con.execute(repeats_sql("chunk_keys", "i", seen) + " ORDER BY c.i"
                                  ).to_arrow_table()
            repeat = verdict.column("repeat")
            con.register("fresh", pa.table({"k": keys, "d": digests}).filter(pc.invert(repeat)))
            con.execute(f"INSERT INTO {seen} SELECT hash(k), d FROM fresh")
            con.unregister("fresh")
        finally:
            con.unregister("chunk_keys")
        if not pc.any(repeat).as_py():
            return table, None
        clash = pc.and_(repeat, verdict.column("differs"))
        clashing = table.filter(clash) if pc.any(clash).as_py() else None
        return table.filter(pc.invert(repeat)), clashing

    def _seen_con(self) -> duckdb.DuckDBPyConnection:
        if self._seen is None:
            tmp = self.lake.tmp_dir / f"seen-{self.batch_id}"
            tmp.parent.mkdir(parents=True, exist_ok=True)
            self._seen = connect(config={
                "memory_limit": "128MB", "temp_directory": str(tmp), "threads": 1,
                "autoinstall_known_extensions": False, "autoload_known_extensions": False})
        return self._seen

    def write_rows(self, name: str, table: pa.Table) -> None:
        """Write rows already conformed to the canonical schema, lineage filled and deduplicated
        by the caller (the SQL ingest path does all three in DuckDB)."""
        if self._done:
            raise RuntimeError("batch already committed or aborted")
        if table.num_rows:
            self._write(name, table)
            self.result.stored[name] = self.result.stored.get(name, 0) + table.num_rows

    def adopt_file(self, name: str, day: str, path: str | os.PathLike, rows: int) -> None:
        """Take a finished Parquet file of table ``name`` for day partition ``day`` (YYYY-MM-DD),
        written elsewhere (the fast JSONL path writes them with DuckDB), into this batch.

        The caller guarantees the file has exactly the canonical columns, lineage filled, rows
        deduplicated and all on that day. It is moved next to its final place under a hidden
        temporary name now, renamed at :meth:`commit` (like the batch's own files) and deleted
        by :meth:`abort`. ``rows`` are counted as stored."""
        if self._done:
            raise RuntimeError("batch already committed or aborted")
        rel = f"{name}/date={day}/{self.batch_id}-{self._next_file()}.parquet"
        final = self._base / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        shutil.move(os.fspath(path), tmp)
        self._adopted.append((name, tmp, rel))
        self._rows[rel] = rows
        self.result.stored[name] = self.result.stored.get(name, 0) + rows

    def _duplicates_info(self) -> dict:
        """``{"duplicates": {table: rows}}`` for the rows the batch skipped as already stored or
        repeated, or nothing: kept so that removing a batch can name the later batches whose
        skipped rows may have been its own (lib/commands/remove.py)."""
        skipped = {t: n for t, n in sorted(self.result.duplicate_rows.items()) if n}
        return {"duplicates": skipped} if skipped else {}

    def count_duplicates(self, name: str, n: int) -> None:
        """Count ``n`` rows of ``name`` dropped as duplicates outside :meth:`add`."""
        self.result.duplicate_rows[name] = self.result.duplicate_rows.get(name, 0) + n

    def written_files(self, name: str) -> list[Path]:
        """The files of table ``name`` this batch has written so far (their hidden temporary
        names), finished so they can be read: no row of ``name`` may be added after this call
        (a format's pass over its own rows before the commit, see lib.ingest.base.Format)."""
        return [tmp for tmp, _rel in self._written(name)]

    def _written(self, name: str) -> list[tuple[Path, str]]:
        self._sealed.add(name)
        files = []
        for (table, _day), (writer, tmp, rel) in self._writers.items():
            if table == name:
                writer.close()
                files.append((tmp, rel))
        return files + [(tmp, rel) for table, tmp, rel in self._adopted if table == name]

    def replace_written(self, name: str, con: duckdb.DuckDBPyConnection, select: str,
                        touched: str) -> int:
        """Rewrite the files of table ``name`` this batch wrote that hold a row meeting the SQL
        condition ``touched``, each as the SQL ``select`` over its rows (the view ``written``),
        through DuckDB connection ``con``. ``select`` keeps the canonical columns
        (``SELECT * REPLACE (...) FROM written WHERE ...``), each row on its file's day; a file
        left with no row leaves the batch. Returns how many rows fewer the batch now stores."""
        # Not hive_partitioning: the date=... folder is no column of the file.
        source = "read_parquet($file, hive_partitioning = false)"
        dropped = 0
        for tmp, rel in self._written(name):
            if not con.execute(f"SELECT count(*) FROM {source} WHERE {touched}",
                               {"file": str(tmp)}).fetchone()[0]:
                continue
            fresh = tmp.with_name(f"{tmp.name}.{uuid.uuid4().hex}.tmp")
            try:
                rows = con.execute(
                    f"COPY (WITH written AS (SELECT * FROM {source}) {select}) TO $out "
                    f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE "
                    f"{PARQUET_OPTIONS['row_group_size']})",
                    {"file": str(tmp), "out": str(fresh)}).fetchone()[0]
                if rows:
                    os.replace(fresh, tmp)
                else:  # nothing left of this file: it leaves the batch
                    tmp.unlink()
                    self._forget(tmp)
            finally:
                fresh.unlink(missing_ok=True)
            dropped += self._rows[rel] - rows
            self._rows[rel] = rows
        self.result.stored[name] = self.result.stored.get(name, 0) - dropped
        return dropped

    def _next_file(self) -> int:
        """The number of the batch's next file (never reused, even for a file that left it)."""
        self._files_made += 1
        return self._files_made - 1

    def _forget(self, tmp: Path) -> None:
        """Take a file this batch wrote (already deleted) out of what it commits."""
        self._writers = {k: v for k, v in self._writers.items() if v[1] != tmp}
        self._adopted = [a for a in self._adopted if a[1] != tmp]

    def _write(self, name: str, table: pa.Table) -> None:
        if name in self._sealed:
            raise RuntimeError(f"rows of {name} added after the batch's files were read back")
        day_numbers = _epoch_days(table.column("ts"))
        days = np.unique(day_numbers)
        for d in days:
            part = table.filter(pa.array(day_numbers == d)) if len(days) > 1 else table
            day = _day_str(d)
            key = (name, day)
            if key not in self._writers:
                rel = f"{name}/date={day}/{self.batch_id}-{self._next_file()}.parquet"
                final = self._base / rel
                final.parent.mkdir(parents=True, exist_ok=True)
                tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
                writer = pq.ParquetWriter(tmp, part.schema, compression="zstd")
                self._writers[key] = (writer, tmp, rel)
                self._rows[rel] = 0
            writer, _, rel = self._writers[key]
            writer.write_table(part, row_group_size=PARQUET_OPTIONS["row_group_size"])
            self._rows[rel] += part.num_rows

    def commit(self, content_hash: str | None = None, info: dict | None = None) -> WriteResult:
        """Publish the batch as one manifest entry and release the lock.

        ``content_hash`` (if not given to :meth:`Lake.begin`) makes the batch a no-op when a
        commit with that hash exists: then nothing is published and ``duplicate_batch`` is True.
        An empty batch is still committed, so its content hash is remembered."""
        if self._done:
            raise RuntimeError("batch already committed or aborted")
        if content_hash:
            self.content_hash = content_hash
            self.duplicate_batch = self.duplicate_batch or self.lake.has_content(content_hash)
        if self.duplicate_batch:
            self.abort()
            self.result = WriteResult(commit=None, duplicate_batch=True)
            return self.result
        dry_run = self.lake.dry_run
        commit = None
        try:
            added = []
            for (name, _day), (writer, tmp, rel) in self._writers.items():
                writer.close()
                if not dry_run:
                    _fsync(tmp)
                os.replace(tmp, self._base / rel)
                added.append({"table": name, "path": rel, "rows": self._rows[rel]})
            for name, tmp, rel in self._adopted:
                if not dry_run:
                    _fsync(tmp)
                os.replace(tmp, self._base / rel)
                added.append({"table": name, "path": rel, "rows": self._rows[rel]})
            if dry_run:
                # Counted and deduplicated like a commit; nothing is published. Its files stay in
                # the dry run's folder, so the run's later batches deduplicate against them.
                self.lake._checked_files.extend((f["table"], f["path"]) for f in added)
                if self.content_hash:
                    self.lake._checked_hashes.add(self.content_hash)
                self._adopted.clear()
                self._finish()
                return self.result
            _pause_for_tests("before_publish")
            commit = Commit(
                commit_id=self.batch_id, kind=self.kind, source=self.source,
                content_hash=self.content_hash,
                committed_at=self.ingested_at.isoformat(timespec="microseconds"),
                rows=dict(self.result.stored), added=added, info={**self.info, **(info or {}),
                                                                  **self._duplicates_info()},
            )
            self.lake._publish(commit)
            self.result.commit = commit
        except BaseException as exc:
            if commit is not None and (self.lake.manifest_dir / f"{commit.commit_id}.json"
                                       ).exists():
                # Published before the error (an interrupt just after the link, a failed fsync
                # of the folder): its files are listed now, and must stay; and an error, not an
                # interrupt, does not undo what readers already see: the batch is stored.
                self.result.commit = commit
                if isinstance(exc, Exception):
                    log.warning("batch %s is committed, but finishing it failed: %s",
                                commit.commit_id, exc)
                    self.abort()
                    return self.result
            self.abort()
            raise
        self._finish()
        return self.result

    def abort(self) -> None:
        """Delete what this batch wrote and release the lock; the lake is as before."""
        if self._done:
            return
        for writer, tmp, rel in self._writers.values():
            with contextlib.suppress(Exception):
                writer.close()
            tmp.unlink(missing_ok=True)
            # A renamed file that never reached the manifest is an orphan; remove it now.
            if self.result.commit is None:
                (self._base / rel).unlink(missing_ok=True)
        for _name, tmp, rel in self._adopted:
            tmp.unlink(missing_ok=True)
            if self.result.commit is None:
                (self._base / rel).unlink(missing_ok=True)
        self._adopted.clear()
        self._finish()

    def _finish(self) -> None:
        self._done = True
        self._writers.clear()
        self._first_chunks.clear()
        if self._seen is not None:
            with contextlib.suppress(Exception):
                self._seen.close()
            self._seen = None
            shutil.rmtree(self.lake.tmp_dir / f"seen-{self.batch_id}", ignore_errors=True)
        self._lock.__exit__(None, None, None)


def digest_sql(name: str, alias: str | None = None, *, priced: bool) -> str:
    """SQL of a row's digest (UBIGINT) over what it says: every canonical column of table
    ``name`` of the relation ``alias`` (or unqualified) but the lineage (which file, batch and
    time stored it) and, in requests, our cost: of a row ``priced`` (stored, or about to be),
    ``logged_cost_usd`` is the source's own cost; before, the source's ``logged_cost_usd`` or
    else its ``cost_usd``. Two rows of one key with equal digests say the same."""
    at = f"{alias}." if alias else ""
    skip = {f.name for f in schema.LINEAGE} | {"cost_usd", "logged_cost_usd"}
    parts = [f'{at}"{f.name}"' for f in schema.TABLES[name] if f.name not in skip]
    if name == "requests":
        parts.append(f"{at}logged_cost_usd" if priced
                     else f"coalesce({at}logged_cost_usd, {at}cost_usd)")
    return "hash(" + ", ".join(parts) + ")"


def stored_by_source_sql(name: str, keys: str) -> str:
    """SQL of the rows of table ``name`` in the files ``$files`` whose key the SQL ``keys``
    selects: their key ``k``, digest ``d`` (:func:`digest_sql`) and whether the source
    ``$source`` stored them (``mine``)."""
    key = schema.sql_identifier(schema.KEYS[name])
    return (f"SELECT {key} AS k, {digest_sql(name, priced=True)} AS d, "
            "coalesce(source_file = $source, false) AS mine "
            f"FROM read_parquet($files, union_by_name = true) WHERE {key} IN ({keys})")


# The first row of each key a batch has met so far, kept to judge the rows after it: the key's
# hash ``h`` and the row's digest ``d`` (16 bytes a key, where the ids themselves, such as a
# 38-character "chatcmpl-…", held 3.2M rows past the exact path's memory limit). Two keys of one
# hash (about one chance in a million over 10M keys) make the second look like a repeat of the
# first: saying something else, it is quarantined, naming its key, never dropped unsaid.
SEEN_COLUMNS = "(h UBIGINT, d UBIGINT)"


def repeats_sql(rows: str, order: str, seen: str) -> str:
    """SQL judging each row of the relation ``rows`` (a key ``k``, a digest ``d``, the column
    ``order`` giving the file's order) against the first row of its key: the one in the
    relation ``seen`` (:data:`SEEN_COLUMNS`: the first rows of earlier chunks), else the first in
    ``rows``. Selects ``rows``' columns (alias ``c``), ``repeat`` (not the first of its key)
    and ``differs`` (saying something else than that first row)."""
    return f"""
        WITH c AS (SELECT *, row_number() OVER w AS nth, first_value(d) OVER w AS first_d
                   FROM {rows} WINDOW w AS (PARTITION BY k ORDER BY {order}))
        SELECT c.* EXCLUDE (nth, first_d), s.h IS NOT NULL OR c.nth > 1 AS repeat,
               coalesce(s.d, c.first_d) <> c.d AS differs
        FROM c LEFT JOIN (SELECT * FROM {seen} s SEMI JOIN c ON s.h = hash(c.k)) s
             ON s.h = hash(c.k)"""


def _pause_for_tests(stage: str) -> None:
    """Crash-safety tests set ``SIGHTLINE_TEST_PAUSE_AT=<stage>`` to stop here and be killed."""
    if os.environ.get("SIGHTLINE_TEST_PAUSE_AT") == stage:
        marker = os.environ.get("SIGHTLINE_TEST_PAUSE_MARKER")
        if marker:
            Path(marker).write_text(stage)
        time.sleep(float(os.environ.get("SIGHTLINE_TEST_PAUSE_S", "60")))


class UnreadableDataFile(OSError):
    """A live data file whose Parquet cannot be read, found before a rewrite that would read it:
    the commands say so in one line (an OSError) instead of a reader's traceback."""


def unreadable_files(root: Path, rel_paths) -> dict[str, str]:
    """Of ``rel_paths`` (relative to ``root``), those whose Parquet footer does not read (a file
    cut short, overwritten, gone), with why."""
    bad = {}
    for rel in rel_paths:
        try:
            pq.read_metadata(root / rel)
        except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
            bad[rel] = f"{type(exc).__name__}: {exc}"
    return bad


def refuse_unreadable(root: Path, rel_paths, doing: str) -> None:
    """Raise UnreadableDataFile naming the first of ``rel_paths`` that does not read, before
    ``doing`` (a rewrite that reads them all) starts: it could not keep that file's rows."""
    bad = unreadable_files(root, rel_paths)
    if bad:
        rel, why = next(iter(bad.items()))
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise UnreadableDataFile(
            f"{root / rel}: not a readable Parquet file ({why}){more}; {doing} reads every "
            "file it may rewrite and could not keep this one's rows, so nothing was changed: "
            "restore the file (from a backup), then run it again")


def _partition_day(rel_path: str) -> str | None:
    for part in rel_path.split("/"):
        if part.startswith("date="):
            return part[5:]
    return None


def _fill_lineage(table: pa.Table, batch_id: str, ingested_at: datetime, source: str) -> pa.Table:
    n = table.num_rows
    if "batch_id" in table.column_names:
        table = table.set_column(table.schema.get_field_index("batch_id"), "batch_id",
                                 pa.repeat(pa.scalar(batch_id, pa.string()), n))
    if "ingested_at" in table.column_names:
        table = table.set_column(table.schema.get_field_index("ingested_at"), "ingested_at",
                                 pa.repeat(pa.scalar(ingested_at, schema.TS), n))
    if "source_file" in table.column_names:
        i = table.schema.get_field_index("source_file")
        col = table.column(i)
        if col.null_count:
            table = table.set_column(i, "source_file", pc.fill_null(col, source))
    return table


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        _fsync(path)
