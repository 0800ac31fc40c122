"""What earlier runs read, so a run skips what it would read to no effect (a cron job that ingests
a whole folder or bucket every minute reads only what is new or changed).

A source is known by what says its bytes are the same without reading them: an S3 object by its
URI and ETag; a local file by its path and stat signature (size, mtime, ctime and inode, what
git's index trusts: any write changes ctime, which no tool sets back). The record is the commit
of the source's batch (its ``info``) or, for a source that gave no batch (its content was
ingested before under another name, or it could not be read: empty, corrupt, not a known format,
too large), a commit of kind ``seen`` that adds no files.

Readers matter too (:class:`Readers`): an ingested source is read again under another mapping
(its batch identity includes the mapping's text), and a source that gave no batch is read again
when anything that could change that outcome changed (the formats known, a forced format or
mapping, the size limits). Uploads are not remembered (their content hash still makes a repeat a
no-op).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

from lib.store.lake import Lake, content_hash_of, cyclic_gc_paused, removed_batches

# A commit's info key: bytes at the end of a file being written that the read left for a later
# run (lib.ingest.live.unfinished_tail). Such a read does not let the file be skipped.
HELD_BACK = "held_back_bytes"

# Why a source whose content was ingested before under another name gave no batch ("seen").
SAME_CONTENT = "same content as an ingested source"
# How skip_reason's reasons start: read before, or found unreadable (or a copy) before
ALREADY_INGESTED = "already ingested ("
ALREADY_SEEN = "already seen ("


@dataclass(frozen=True)
class Readers:
    """Fingerprints of what reads a source: ``all`` (the registered formats, the forced format
    or mapping, the size limits) and ``mapping`` (a forced format's identity, e.g. a mapping's
    text; None when there is none)."""

    all: str
    mapping: str | None

    @classmethod
    def of(cls, forced) -> Readers:
        """The readers of a run with ``forced`` (a lib.ingest.base.Format, or None: detected)."""
        from lib.ingest import formats
        from lib.ingest.formats import otlp_common
        from lib.ingest.pipeline import forced_identity
        from lib.ingest.streams import MAX_LINE_BYTES

        # (a format forced by name too: lib.ingest.pipeline.batch_identity)
        mapping = content_hash_of(forced_identity(forced))[:16] if forced else None
        parts = [",".join(sorted(f.name for f in formats.registered())),
                 f"{forced.name}:{mapping}" if forced else "detected",
                 f"line {MAX_LINE_BYTES}", f"document {otlp_common.MAX_DOCUMENT_BYTES}"]
        return cls(content_hash_of("\x1f".join(parts))[:16], mapping)

    def info(self) -> dict:
        """What a commit records of them."""
        return {"readers": self.all, "mapping": self.mapping}


def file_signature(path: str, st: os.stat_result) -> dict:
    """A local file's identity for :func:`source_key` (JSON-ready): its path and the stat fields
    that change whenever its bytes do."""
    return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns, "ino": st.st_ino}


def source_key(info: dict) -> tuple | None:
    """The identity of a source's bytes from a commit's (or a Source's) ``info``: ("s3", uri,
    etag) or ("file", path, size, mtime_ns, ctime_ns, ino); None for anything else (an
    upload)."""
    s3 = info.get("s3")
    if isinstance(s3, dict) and s3.get("uri"):
        return ("s3", s3["uri"], s3.get("etag"))
    f = info.get("file")
    if isinstance(f, dict) and f.get("path"):
        return ("file", f["path"], f.get("size"), f.get("mtime_ns"), f.get("ctime_ns"),
                f.get("ino"))
    return None


class Earlier(NamedTuple):
    """How an earlier run ended for a source: ``seen`` is why it gave no batch (None: it was
    ingested); ``info`` the commit's info (the readers then). (A named tuple: there is one for
    each source ever read, half a million after a year of a file a minute.)"""

    seen: str | None
    info: dict


def earlier_reads(lake: Lake, commits: list | None = None, reads=None
                  ) -> dict[tuple, list[Earlier]]:
    """Every source key (:func:`source_key`) the commits of ``lake`` (or ``commits``, its
    commits already read; ``reads``, their lib.ingest.appended.ReadIndex) recorded, with each
    outcome (a source may have been read under several mappings)."""
    from lib.ingest import appended

    out: dict[tuple, list[Earlier]] = {}
    commits = lake.commits() if commits is None else commits
    removed = removed_batches(commits)  # a removed batch's source is read again
    # and so is a file whose later batches read what was appended after a removed batch's read
    cut_off = appended.cut_off(commits, appended.read_index(commits, removed)
                               if reads is None else reads)
    # A source seen as a copy of stored content before a batch was removed is read again too:
    # that content may have left with the batch.
    last_remove = max((i for i, c in enumerate(commits) if c.kind == "remove"), default=-1)
    skipped = removed | cut_off
    with cyclic_gc_paused():  # (an entry for every source ever read: no cycles among them)
        _add_reads(out, commits, skipped, last_remove)
    return out


def _add_reads(out: dict, commits: list, skipped: set[str], last_remove: int) -> None:
    """Add to ``out`` the source key and outcome of each of ``commits`` but those ``skipped``
    (and those seen as copies of stored content before the commit at ``last_remove``)."""
    for i, c in enumerate(commits):
        if skipped and c.commit_id in skipped:
            continue
        info = c.info if isinstance(c.info, dict) else {}
        seen = info.get("seen")
        if i < last_remove and seen == SAME_CONTENT:
            continue
        key = source_key(info)
        if key is not None:
            got = out.get(key)
            if got is None:
                out[key] = [Earlier(seen, info)]
            else:
                got.append(Earlier(seen, info))


def skip_reason(earlier: list[Earlier] | None, readers: Readers, unchanged: str) -> str | None:
    """Why a source need not be read again (``unchanged`` says how its bytes are known to be the
    same, e.g. "same ETag"), or None when it must be read: it was ingested under the same
    mapping (its batch identity), or it gave no batch under the very same readers. A read that
    left an unfinished last line for later (``HELD_BACK``) does not count."""
    earlier = [e for e in earlier or () if not e.info.get(HELD_BACK)]
    for e in earlier:
        if e.seen is None and e.info.get("mapping") == readers.mapping:
            return f"{ALREADY_INGESTED}{unchanged})"
    for e in earlier:
        if e.seen is not None and e.info.get("readers") == readers.all:
            return f"{ALREADY_SEEN}{unchanged}): {e.seen}"
    return None
