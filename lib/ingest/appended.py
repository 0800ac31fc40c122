"""Files that grew by appending.

A cron job that ingests a folder every minute finds the same log files a little longer each time:
the OpenTelemetry Collector's file exporter, or an app's JSON-lines log, only ever appends. Read
whole, such a file costs a full parse per run (its old rows then dropped as duplicates), so a
file of a few hundred MB makes every run take seconds, and longer each day. Instead a run reads
only what was appended:

- each read of a local, uncompressed file records in its commit (``READ``) the bytes it read
  (``start``, ``end``) and the SHA-256 of the file's first ``end`` bytes, which, for a read from
  the start, is the batch's content hash (a continued read's batch has an identity of its own);
- a later run finds the reads of the same file (its inode, under any name: the Collector's
  rotation renames the file it wrote), hashes that many bytes of the file now, and
  when they are the same bytes, reads from ``end`` on, as the same format, numbering lines (or
  protobuf requests) on from the earlier ones.

A read goes on from another only while that one, and every read before it, is live: once a batch
of the chain is removed, the file is read again from the end of the last live read before it
(whole, when that was the first), which brings back what the removed batch held (rows are
deduplicated by their keys, as always). Only a read that ended at a record's end is gone on from,
by the same readers, as the format the file's first bytes are detected as now, when that format
reads records one by one after those first bytes as a whole read does (``Format.appendable``:
JSON lines whose first lines name their table, OTLP JSON lines, OTLP protobuf).
"""

from __future__ import annotations

import functools
import hashlib
import operator
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

# A commit's info key: {"start", "end", "sha256", "after"} of a local file's read (see above).
READ = "read"

HASH_READ_BYTES = 8 << 20
THREAD_BYTES = 1 << 20  # a piece worth hashing in a thread of its own
# The bytes just before where a read goes on, checked again when it starts (lib/ingest/pipeline.py
# ``_continued``): a file rewritten in place since it was hashed is not read from the middle.
BEFORE_BYTES = 4096


class EarlierRead(NamedTuple):
    """A live batch's read of a local file: bytes ``start``..``end`` of the file ``path``
    (inode ``ino``), ``sha256`` the hash of its first ``end`` bytes, ``after`` the hash of the
    read it continued (None: it read from the start), as ``format`` by ``readers`` (the
    fingerprint of lib.ingest.memo.Readers: formats known, forced format or mapping, limits).
    (A named tuple: a store ingested into every minute for a year holds half a million.)"""

    path: str
    ino: int | None
    start: int
    end: int
    sha256: str
    after: str | None
    format: str
    readers: str | None
    commit_id: str


class ReadIndex:
    """The reads of live batches whose chain reaches their file's start through live batches
    only (a removed batch cuts off the reads that went on from it), by path, inode and hash.
    Each index is made when first asked for (a run asks by inode for the files it reads, by
    hash for copies, by batch only when one was removed)."""

    def __init__(self, reads: list[EarlierRead], waiting: list[EarlierRead] | None = None,
                 removed: frozenset[str] = frozenset()):
        self.reads = reads
        # reads whose chain does not reach the start (yet: a clock set back can commit a read
        # before the one it goes on from), and the removed batches the index left out
        self.waiting = waiting or []
        self.removed = removed

    def extended(self, commits: list) -> ReadIndex:
        """This index with the reads of ``commits``, committed after those it was made of and
        removing no batch, as :func:`read_index` of all of them would give (in another order
        only where a clock went back). The lookups made so far are moved on, not remade: each
        file a run reads commits a batch, and a year of reads took 1 s to index again."""
        by_sha = dict(self._by_sha)  # (shallow: its lists are replaced, never appended to)

        def reaches_start(r: EarlierRead) -> bool:
            return (r.start == 0 and r.after is None) or any(
                x.end == r.start and x.ino == r.ino and x.format == r.format
                and x.readers == r.readers for x in by_sha.get(r.after, ()))

        added, pending = [], self.waiting + _reads_of(commits, self.removed)
        while pending:
            waiting = []
            for r in pending:
                if reaches_start(r):
                    added.append(r)
                    by_sha[r.sha256] = by_sha.get(r.sha256, []) + [r]
                else:
                    waiting.append(r)
            if len(waiting) == len(pending):
                break
            pending = waiting
        out = ReadIndex(self.reads + added, pending, self.removed)
        out.__dict__["_by_sha"] = by_sha
        if "_by_ino" in self.__dict__:
            by_ino = dict(self._by_ino)
            for r in added:
                if r.ino:
                    by_ino[r.ino] = by_ino.get(r.ino, []) + [r]
            out.__dict__["_by_ino"] = by_ino
        return out

    @functools.cached_property
    def commit_ids(self) -> set[str]:
        return {r.commit_id for r in self.reads}

    @functools.cached_property
    def _by_ino(self) -> dict[int, list[EarlierRead]]:
        return _by_field(self.reads, "ino")

    @functools.cached_property
    def _by_sha(self) -> dict[str, list[EarlierRead]]:
        return _by_field(self.reads, "sha256")

    def of_file(self, ino: int | None) -> list[EarlierRead]:
        """The reads of the file with inode ``ino``, under any name (a rotation renames the
        file; a new file under the old name is another file, read whole even when it starts with
        the same bytes: its bad lines are its own)."""
        return list(self._by_ino.get(ino, ())) if ino else []

    def covers(self, sha256: str, format_name: str, readers: str | None) -> bool:
        """True when bytes with this hash were read whole, piece by piece, by the same readers
        as ``format_name``: a copy of a file read as it grew adds nothing."""
        return any(r.format == format_name and r.readers == readers
                   for r in self._by_sha.get(sha256, ()))


def _by_field(reads: list[EarlierRead], field: str) -> dict:
    """``reads`` by their value of ``field`` (in order; reads without one, None or 0, left
    out: no lookup asks for those)."""
    out: dict = {}
    at = EarlierRead._fields.index(field)
    for r in reads:
        key = r[at]
        if key is None or key == 0:
            continue
        got = out.get(key)
        if got is None:
            out[key] = [r]
        else:
            got.append(r)
    return out


def read_index(commits, removed: set[str]) -> ReadIndex:
    """The :class:`ReadIndex` of ``commits`` (in commit order; ``removed``: the ids of removed
    batches). A read is committed after the read it continues, so one pass in order settles
    each chain (more only if a clock went back)."""
    # the reads that reach the start, as a read going on names them: (sha256, end), and the
    # file, format and readers that must be the same; only those some read goes on from are
    # kept (a year of a file a minute is half a million reads, nearly all from the start)
    from lib.store.lake import cyclic_gc_paused

    with cyclic_gc_paused():  # (a read for every file ever read: no cycles among them)
        pending = _reads_of(commits, removed)
    whole: set[tuple] = set()
    reads = []
    wanted = {(r.after, r.start, r.ino, r.format, r.readers) for r in pending
              if r.start != 0 or r.after is not None}
    while pending:
        waiting = []
        for r in pending:
            if (r.start == 0 and r.after is None) or \
                    (r.after, r.start, r.ino, r.format, r.readers) in whole:
                if wanted:
                    named = (r.sha256, r.end, r.ino, r.format, r.readers)
                    if named in wanted:
                        whole.add(named)
                reads.append(r)
            else:
                waiting.append(r)
        if len(waiting) == len(pending):
            break
        pending = waiting
    return ReadIndex(reads, pending, frozenset(removed))


def _reads_of(commits, removed: set[str]) -> list[EarlierRead]:
    """The local file reads that the live ingest batches of ``commits`` recorded, in order."""
    pending = []
    for c in commits:
        info = c.info
        if c.kind != "ingest" or not isinstance(info, dict):
            continue
        read, file = info.get(READ), info.get("file")
        if not isinstance(read, dict) or not isinstance(file, dict) \
                or info.get("seen") is not None \
                or c.commit_id in removed:
            continue
        try:
            r = EarlierRead(str(file["path"]), file.get("ino"), int(read["start"]),
                            int(read["end"]), str(read["sha256"]), read.get("after"),
                            str(info["format"]), info.get("readers"), c.commit_id)
        except (KeyError, TypeError, ValueError):
            continue  # a commit written by something else: no read to go on from
        pending.append(r)
    return pending


def cut_off(commits, index: ReadIndex) -> set[str]:
    """The ids of the ingest batches of ``commits`` that read what was appended to a file after
    a read that is no longer live (``index``: the live reads; a removed batch cuts off the reads
    after it): their file is read again from the last live read."""
    out = set()
    for c in commits:
        read = c.info.get(READ) if isinstance(c.info, dict) else None
        if c.kind == "ingest" and isinstance(read, dict) and read.get("start") \
                and c.commit_id not in index.commit_ids:
            out.add(c.commit_id)
    return out


_INDEXES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def index_of(lake, commits: list | None = None) -> ReadIndex:
    """The :class:`ReadIndex` of ``lake``'s commits now (``commits``: as just read), made again
    only when a commit was added since the last call (a run asks once per file it reads
    whole), and then moved on over the new commits when they came after the others and
    removed no batch."""
    from lib.store.lake import removed_batches

    commits = lake.commits() if commits is None else commits
    cached = _INDEXES.get(lake)
    if cached is not None:
        before, index = cached
        if len(before) == len(commits) and all(map(operator.is_, before, commits)):
            return index
        new = commits[len(before):]
        if before and new and all(map(operator.is_, before, commits)) \
                and all(c.kind != "remove" for c in new):
            index = index.extended(new)
            _INDEXES[lake] = (commits, index)
            return index
    index = read_index(commits, removed_batches(commits))
    _INDEXES[lake] = (commits, index)
    return index


@dataclass
class Continuation:
    """Where a read of a file that grew goes on: from byte ``start`` (the end of the read it
    continues, whose file hash is ``after``), line or request ``records`` + 1, as ``format``;
    ``hasher`` holds the SHA-256 of the bytes before ``start``, of which ``before`` are the last
    few (a read checks they are still there: no rewrite since they were hashed); ``head`` is the
    file's first bytes, from which a whole read makes its choices (e.g. the canonical table)."""

    start: int
    records: int
    after: str
    format: str
    hasher: object
    head: bytes
    before: bytes


def continuation(path: Path, ino: int, size: int, index: ReadIndex, readers: str, fmt,
                 head: bytes) -> Continuation | None:
    """How to read only what was appended to the local file ``path`` (inode ``ino``) of which
    the first ``size`` bytes are to be read, as ``fmt`` (the format forced, or the one its first
    bytes ``head`` are detected as now): the longest earlier read of it (same inode, same
    readers, same format, one that can go on after ``head``) that ended on a record's end and
    whose bytes the file still starts with, hashed now. None when there is none."""
    if fmt is None or fmt.appendable is None or not fmt.appendable(head):
        return None
    by_end: dict[int, list[EarlierRead]] = {}
    for r in index.of_file(ino):
        if r.end <= size and r.readers == readers and r.format == fmt.name:
            by_end.setdefault(r.end, []).append(r)
    if not by_end:
        return None
    counter = _RequestCounter() if fmt.unit == "request" else _LineCounter()
    hasher = hashlib.sha256()
    at, best, recent = 0, None, b""
    try:
        with open(path, "rb") as f:
            for end in sorted(by_end):
                while at < end:
                    data = f.read(min(HASH_READ_BYTES, end - at))
                    if not data:
                        return best
                    if len(data) < THREAD_BYTES:
                        hasher.update(data)
                        counter.feed(data)
                    else:  # hashing lets go of the GIL: it runs beside the count (0.2 s +
                        # 0.1 s one after the other for 357 MB)
                        hashing = threading.Thread(target=hasher.update, args=(data,))
                        hashing.start()
                        counter.feed(data)
                        hashing.join()
                    at += len(data)
                    recent = data[-BEFORE_BYTES:] if len(data) >= BEFORE_BYTES else \
                        (recent + data)[-BEFORE_BYTES:]
                # A read that stopped inside a record (cut short and quarantined once nobody
                # wrote to it for a while) cannot be gone on from: the record may be whole now.
                if not counter.at_record_end():
                    continue
                digest = hasher.hexdigest()
                if any(r.sha256 == digest for r in by_end[end]):
                    best = Continuation(start=end, records=counter.records, after=digest,
                                        format=fmt.name, hasher=hasher.copy(), head=head,
                                        before=recent)
    except OSError:
        return None
    return best


def read_info(src, content_hash: str | None, compressed: bool, bytes_read: int) -> dict:
    """What a batch's commit records of the read of ``src`` (``{READ: {...}}``), so a later run
    can read only what is appended: for a local uncompressed file, the bytes read and the hash
    of the file up to their end (``content_hash``: a continued read's stream hashes the file
    from its start). Empty for anything else."""
    if compressed or not content_hash or not isinstance(src.info.get("file"), dict):
        return {}
    cont = src.continues
    start = cont.start if cont else 0
    return {READ: {"start": start, "end": start + bytes_read, "sha256": content_hash,
                   "after": cont.after if cont else None}}


class _LineCounter:
    """Lines before a point: the newlines fed; the point is a record's end after a newline."""

    def __init__(self):
        self.records, self._last = 0, b""

    def feed(self, data: bytes) -> None:
        self.records += data.count(b"\n")
        self._last = data[-1:] or self._last

    def at_record_end(self) -> bool:
        return self._last == b"\n"


class _RequestCounter:
    """OTLP protobuf requests before a point: each is its 4-byte big-endian length, then that
    many bytes (lib/ingest/formats/otlp_proto.py); the point is a request's end."""

    def __init__(self):
        self.records, self._next, self._at, self._length = 0, 0, 0, b""

    def feed(self, data: bytes) -> None:
        end = self._at + len(data)
        while (pos := self._next + len(self._length)) < end:  # the next length byte is here
            offset = pos - self._at
            self._length += data[offset:offset + 4 - len(self._length)]
            if len(self._length) < 4:
                break
            self._next += 4 + int.from_bytes(self._length, "big")
            self._length = b""
            self.records += 1
        self._at = end

    def at_record_end(self) -> bool:
        """True when the bytes fed end exactly where a request does."""
        return self._next == self._at and not self._length
