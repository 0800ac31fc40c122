"""Files that grew by appending.

A cron job that ingests a folder every minute finds the same log files a little longer each time:
the OpenTelemetry Collector's file exporter, or an app's JSON-lines log, only ever appends. Read
whole, such a file costs a full parse per run (its old rows then dropped as duplicates), so a
file of a few hundred MB makes every run take seconds, and longer each day. Instead a run reads
only what was appended:

- each read of a local, uncompressed file records in its commit (``READ``) the bytes it read
  (``start``, ``end``) and the SHA-256 of the file's first ``end`` bytes, which, for a read from
  the start, is the batch's content hash (a continued read's batch has an identity of its own);
- a later run finds the reads of the same path, or of the same inode under another name (the
  Collector's rotation renames the file it wrote), hashes that many bytes of the file now, and
  when they are the same bytes, reads from ``end`` on, as the same format, numbering lines (or
  protobuf requests) on from the earlier ones.

A read continues another only while that one is live: once a batch of the chain is removed, the
file is read whole again (rows are deduplicated by their keys, as always), which brings back what
the removed batch held. Only formats whose records follow one another with nothing at the file's
start that the rest needs (``Format.appendable``: JSON lines, OTLP protobuf) are read this way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from lib.ingest import formats as registry

# A commit's info key: {"start", "end", "sha256", "after"} of a local file's read (see above).
READ = "read"

HASH_READ_BYTES = 8 << 20


@dataclass(frozen=True)
class EarlierRead:
    """A live batch's read of a local file: bytes ``start``..``end`` of the file ``path``
    (inode ``ino``), ``sha256`` the hash of its first ``end`` bytes, ``after`` the hash of the
    read it continued (None: it read from the start), as ``format`` under ``mapping``."""

    path: str
    ino: int | None
    start: int
    end: int
    sha256: str
    after: str | None
    format: str
    mapping: str | None


def earlier_reads(commits, removed: set[str]) -> list[EarlierRead]:
    """The reads recorded by the live ingest batches of ``commits`` (``removed``: the ids of
    removed batches) whose chain reaches the file's start through live batches only."""
    found: dict[str, EarlierRead] = {}
    for c in commits:
        info = c.info if isinstance(c.info, dict) else {}
        read, file = info.get(READ), info.get("file")
        if c.kind != "ingest" or c.commit_id in removed or info.get("seen") is not None \
                or not isinstance(read, dict) or not isinstance(file, dict):
            continue
        try:
            r = EarlierRead(path=str(file["path"]), ino=file.get("ino"), start=int(read["start"]),
                            end=int(read["end"]), sha256=str(read["sha256"]),
                            after=read.get("after"), format=str(info["format"]),
                            mapping=info.get("mapping"))
        except (KeyError, TypeError, ValueError):
            continue  # a commit written by something else: no read to continue
        found.setdefault(r.sha256, r)
    whole: dict[str, bool] = {}
    for r in found.values():
        chain: list[str] = []  # reads whose answer waits on the read before them
        on_chain: set[str] = set()
        while r.sha256 not in whole:
            before = found.get(r.after) if r.after else None
            if r.after is None or before is None or before.end != r.start \
                    or before.sha256 in on_chain:
                whole[r.sha256] = r.after is None and r.start == 0
                break
            chain.append(r.sha256)
            on_chain.add(r.sha256)
            r = before
        for sha in chain:
            whole[sha] = whole[r.sha256]
    return [r for r in found.values() if whole[r.sha256]]


@dataclass
class Continuation:
    """Where a read of a file that grew goes on: from byte ``start`` (the end of the read it
    continues, whose file hash is ``after``), line or request ``records`` + 1, as ``format``;
    ``hasher`` holds the SHA-256 of the bytes before ``start``."""

    start: int
    records: int
    after: str
    format: str
    hasher: object

    def info(self) -> dict:
        """The commit's ``READ`` entry before the end is known (see :func:`read_info`)."""
        return {"start": self.start, "after": self.after}


def continuation(path: Path, name: str, ino: int, size: int, reads: list[EarlierRead],
                 mapping: str | None, forced: str | None) -> Continuation | None:
    """How to read only what was appended to the local file ``path`` (lineage ``name``, inode
    ``ino``) of which the first ``size`` bytes are to be read: the longest earlier read of it
    (same path or same inode, same mapping, an appendable format, the ``forced`` one if any)
    whose bytes the file still starts with, hashed now. None when there is none."""
    candidates = [r for r in reads
                  if (r.path == name or (ino and r.ino == ino)) and r.end <= size
                  and r.mapping == mapping and (forced is None or forced == r.format)
                  and _appendable(r.format)]
    if not candidates:
        return None
    unit = registry.by_name(max(candidates, key=lambda r: r.end).format).unit
    candidates = [r for r in candidates if registry.by_name(r.format).unit == unit]
    wanted = sorted({r.end for r in candidates})
    counter = _RequestCounter() if unit == "request" else _LineCounter()
    hasher = hashlib.sha256()
    at, best = 0, None
    try:
        with open(path, "rb") as f:
            for end in wanted:
                while at < end:
                    data = f.read(min(HASH_READ_BYTES, end - at))
                    if not data:
                        return best
                    hasher.update(data)
                    counter.feed(data)
                    at += len(data)
                digest = hasher.hexdigest()
                match = next((r for r in candidates if r.end == end and r.sha256 == digest),
                             None)
                if match is not None:
                    best = Continuation(start=end, records=counter.records, after=digest,
                                        format=match.format, hasher=hasher.copy())
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


def _appendable(format_name: str) -> bool:
    try:
        return registry.by_name(format_name).appendable
    except KeyError:
        return False


class _LineCounter:
    """Lines before a point: the newlines fed."""

    def __init__(self):
        self.records = 0

    def feed(self, data: bytes) -> None:
        self.records += data.count(b"\n")


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
