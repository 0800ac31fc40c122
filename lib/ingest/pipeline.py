"""The ingest pipeline: sources → detect → parse (streamed) → validate → price → lake.

One source (file, upload, S3 object) is one atomic commit identified by the SHA-256 of its
decompressed content, computed while it streams: a file seen before, under any name, is a no-op.
Rows are deduplicated by their key against the lake and within the file. Bad rows go to the
quarantine table; an unreadable source (empty, truncated gzip, not a known format, binary junk)
is reported as a one-line error naming it and leaves the store as it was; the other sources go on.

The public API is :func:`ingest_paths` and :func:`ingest_stream`; both return an
:class:`IngestReport` (one :class:`FileReport` per source).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import io
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from lib import pricing, schema
from lib.ingest import appended, live, memo
from lib.ingest import formats as registry
from lib.ingest.base import Chunk, Format, not_read_notes
from lib.ingest.hints import binary_kind, column_hints, parquet_hints, unrecognized_hint
from lib.ingest.streams import (
    BACK_TO_BACK,
    HEAD_BYTES,
    ZERO_HOLE,
    ChangedWhileListed,
    FirstBytes,
    InputError,
    ObjectsAsLines,
    SourceStream,
    objects_back_to_back,
    one_object_over_lines,
    text_start,
)
from lib.ingest.validate import conflicts_table, rejects_table, validate
from lib.schema import sql_identifier as _q
from lib.store.connections import close as close_connection
from lib.store.connections import connect, memory_limit, stop_if_interrupted
from lib.store.lake import (
    SEEN_COLUMNS,
    BatchWriter,
    Lake,
    _pause_for_tests,
    content_hash_of,
    digest_sql,
    repeats_sql,
    stored_by_source_sql,
)

MAX_REASONS = 5
NOT_TEXT = "binary data that is not a known format"  # how an unreadable file's error starts
EMPTY = "empty file"
BLANK_ONLY = "no records: the file holds only blank lines"
ONLY_ZEROS = ("no records: the file holds only zero bytes (truncated in place, a hole left for "
              "lines to come)")
PROGRESS_EVERY_S = 0.5  # how often a long read says how far it is
ALREADY_QUARANTINED = "record(s) already in the quarantine from an earlier read: not added again."
# Sources read one at a time in a row hold the writer lock together, for at most this many or
# this long (other writers wait meanwhile; groups of small files hold it for up to 256 files)
LOCK_RUN_FILES = 256
LOCK_RUN_S = 5.0
COMPRESSION_SUFFIXES = (".gz", ".gzip", ".zst", ".zstd")

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Where an ingest is: the source being read, bytes of it read (compressed, as stored) out of
    ``bytes_total`` (None when unknown), rows parsed so far in this source, and seconds spent."""

    source: str
    bytes_read: int
    bytes_total: int | None
    rows: int
    seconds: float
    files_done: int = 0
    files_total: int | None = None
    # What is being done once the bytes are read (the fast path reads a file whole before its
    # rows are checked and written: "100%, 0 rows" said nothing): "checking", "writing" or None.
    stage: str | None = None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def fraction(self) -> float | None:
        if not self.bytes_total:
            return None
        return min(self.bytes_read / self.bytes_total, 1.0)


@dataclass
class FileReport:
    """What happened to one source.

    ``stored`` and ``duplicates`` count rows per canonical table (quarantine excluded);
    ``quarantined`` counts rows sent to quarantine, ``reasons`` the first few as
    "line N: reason"; ``not_read`` what the format read but deliberately did not store, by what
    it is (summed over the chunks); ``hints`` the fields that look like canonical columns under
    other names; ``notes`` says both in sentences. ``error`` is a one-line message when the
    source could not be read (then nothing of it was stored).
    ``duplicate_file`` is True when the same content was ingested before; ``skipped`` says why a
    source was not read at all (an S3 object already ingested).
    """

    source: str
    format: str | None = None
    stored: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    reasons: list[str] = field(default_factory=list)
    not_read: dict[str, int] = field(default_factory=dict)
    hints: list[str] = field(default_factory=list)
    error: str | None = None
    duplicate_file: bool = False
    unreadable: bool = False  # ``error`` comes from the content itself (empty, corrupt, unknown)
    skipped: str | None = None
    content_hash: str | None = None
    batch_id: str | None = None
    rows_read: int = 0
    bytes: int = 0
    seconds: float = 0.0
    # a file that grew since a run read it, read from there: {"byte": offset, "line": number
    # of its first line (or protobuf request)} (lib/ingest/appended.py)
    continued_from: dict | None = None
    # objects under an S3 prefix given up (its endpoint stopped answering) that were not read,
    # left for the next run: said in ``error`` alone, a script reading --json could not tell
    # how much of the prefix went unread (found in review)
    left_for_next_run: int = 0
    # requests stored without a cost (their cost unknown, not $0), by model: [{"provider",
    # "model", "requests", "usage_logged"}], most requests first (the text report says them: the
    # Data page lists them, but a cron job's ingest said nothing of them)
    unpriced: list[dict] = field(default_factory=list)
    # (line, reason) of the quarantined rows of lowest line so far, which ``reasons`` says: a
    # file's quarantine comes in parts (a repeated key is found after the checks of the rows
    # after it), so the first rows quarantined are not always its first lines
    first_quarantined: list[tuple[int | None, str]] = field(default_factory=list, repr=False)
    # a dry run's batch, which publishes nothing (``batch_id`` is then None): its rows wait in
    # the run's scratch folder, where ``unpriced`` is counted
    checked_batch_id: str | None = field(default=None, repr=False)

    def end_dry_run(self) -> None:
        """In a dry run: no such batch exists once the source is done (``batch_id`` None)."""
        self.checked_batch_id = self.checked_batch_id or self.batch_id
        self.batch_id = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def notes(self) -> list[str]:
        """``not_read`` as sentences (lib.ingest.base.not_read_notes), then ``hints``: fields
        of a canonical file that look like canonical columns under other names
        (lib.ingest.hints)."""
        notes = not_read_notes(self.not_read) + self.hints
        if self.continued_from:
            unit = _unit_of(self.format)
            notes.insert(0, "read only what was appended since the last read: from byte "
                            f"{self.continued_from['byte']:,} ({unit} "
                            f"{self.continued_from['line']:,}); the bytes before are the ones "
                            "read then (same SHA-256)")
        return notes

    def to_dict(self) -> dict:
        out = asdict(self)
        del out["first_quarantined"]  # (``reasons`` says them)
        del out["checked_batch_id"]
        return {**out, "notes": self.notes}


def _find_unpriced(lake: Lake, reports: list[FileReport]) -> None:
    """Fill ``unpriced`` of the reports that stored requests, from the files their batches
    committed (read back: the paths that price rows are several)."""
    wanted = {(f.checked_batch_id if lake.dry_run else f.batch_id): f for f in reports
              if f.stored.get("requests") and not f.error}
    wanted.pop(None, None)
    if not wanted:
        return
    try:
        paths = lake.batch_files("requests", wanted)
        if not paths:
            return
        found = _count_unpriced(paths)
    except Exception as exc:  # (the rows are stored; only this note is lost)
        stop_if_interrupted(exc)
        log.warning("could not count the requests stored without a cost: %s", exc)
        return
    for batch_id, provider, model, logged, n in found:
        if batch_id not in wanted:
            continue  # (a dry run's earlier source, or one that failed)
        wanted[batch_id].unpriced.append({"provider": provider, "model": model,
                                          "requests": n, "usage_logged": logged})


UNPRICED_MEMORY_LIMIT = "128MB"  # a GROUP BY of a few rows a model: no more is needed


def _count_unpriced(paths: list[str]) -> list[tuple]:
    """(batch_id, provider, model, usage_logged, requests) of the rows of the Parquet files
    ``paths`` without a cost, most requests first. In DuckDB, which streams the files: read into
    Polars, every such row's batch id, provider and model were held at once, 500 MB more at 20
    million rows of a self-hosted model, after an ingest bounded well below that (review)."""
    from lib.ingest import fastpath

    shared = fastpath.run_connection()
    con = shared.cursor() if shared is not None else connect(config={
        "memory_limit": UNPRICED_MEMORY_LIMIT, "threads": 2,
        "autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        files = ", ".join(schema.sql_literal(p) for p in paths)
        return con.execute(
            "SELECT batch_id, provider, model, input_tokens IS NOT NULL AS usage_logged, "
            f"count(*) AS requests FROM read_parquet([{files}], union_by_name = true, "
            "hive_partitioning = false) "
            "WHERE cost_usd IS NULL AND model IS NOT NULL GROUP BY ALL "
            "ORDER BY requests DESC, provider NULLS LAST, model NULLS LAST").fetchall()
    finally:
        close_connection(con)


@dataclass
class IngestReport:
    """One :class:`FileReport` per source, in order, plus what automatic compaction did."""

    files: list[FileReport] = field(default_factory=list)
    compaction: dict | None = None
    dry_run: bool = False  # counts are what would have been stored; nothing was

    @property
    def errors(self) -> list[FileReport]:
        return [f for f in self.files if f.error]

    @property
    def ok(self) -> bool:
        return not self.errors

    def totals(self) -> dict:
        """Sums over files: stored and duplicates per table, quarantined, errors, files, the
        S3 objects left unread for the next run, and the requests stored without a cost."""
        stored: dict[str, int] = {}
        dupes: dict[str, int] = {}
        for f in self.files:
            for t, n in f.stored.items():
                stored[t] = stored.get(t, 0) + n
            for t, n in f.duplicates.items():
                dupes[t] = dupes.get(t, 0) + n
        return {"files": len(self.files), "stored": stored, "duplicates": dupes,
                "quarantined": sum(f.quarantined for f in self.files),
                "duplicate_files": sum(f.duplicate_file for f in self.files),
                "skipped_files": sum(bool(f.skipped) for f in self.files),
                "left_for_next_run": sum(f.left_for_next_run for f in self.files),
                "unpriced": sum(u["requests"] for f in self.files for u in f.unpriced),
                "errors": len(self.errors)}

    def to_dict(self) -> dict:
        return {"files": [f.to_dict() for f in self.files], "totals": self.totals(),
                "compaction": self.compaction, "ok": self.ok, "dry_run": self.dry_run}


@dataclass
class Source:
    """Something to ingest: ``name`` is its lineage (absolute path, s3:// URI, upload name);
    ``open`` returns a fresh binary stream of its stored bytes; ``info`` goes into the commit."""

    name: str
    filename: str
    open: Callable[[], BinaryIO]
    size: int | None = None
    info: dict = field(default_factory=dict)
    path: str | None = None  # a local file: DuckDB may read it directly (lib/ingest/fastpath.py)
    # what the source itself leaves unread, for the report (an unfinished last line)
    not_read: dict[str, int] = field(default_factory=dict)
    # a local file that grew since a run read it: read from where that read ended
    continues: appended.Continuation | None = None
    closed_after: bool = True  # False: the stream is not ours to close (standard input)


ProgressFn = Callable[[Progress], None]


# -- public API ---------------------------------------------------------------------------------
def ingest_paths(lake: Lake, paths: Iterable[str], fmt: str | Format | None = None,
                 progress: ProgressFn | None = None, *, mapping: str | os.PathLike | None = None,
                 s3_endpoint_url: str | None = None, compact_min_files: int | None = None,
                 overrides: dict | None = None) -> IngestReport:
    """Ingest files, folders (recursively), globs and ``s3://bucket/prefix`` URIs into ``lake``.

    ``fmt`` forces a format (a registered name or a Format); ``mapping`` is a YAML mapping file
    (lib/ingest/mapping.py) and forces that format. Sources an earlier run read are skipped while
    unchanged (S3: same ETag; files: same size, mtime, ctime and inode) and read the same way
    (lib/ingest/memo.py). After the sources, partitions left with more than
    ``compact_min_files`` small files are compacted (default: lib.store.compact's threshold; 0
    disables).
    """
    forced = _resolve_format(fmt, mapping)
    overrides = pricing.load_overrides() if overrides is None else overrides
    report = IngestReport(dry_run=lake.dry_run)
    readers = memo.Readers.of(forced)
    sources = list(_expand(lake, list(paths), s3_endpoint_url, report, readers, forced))
    from lib.ingest import fastpath, grouped, s3

    def tick_for(i: int) -> ProgressFn:
        def tick(p: Progress) -> None:
            if progress:
                p.files_done, p.files_total = i, len(sources)
                progress(p)
        return tick

    def finished(i: int, done: FileReport) -> None:
        source = sources[i]
        if s3.left_for_next_run(report.files, source):
            return  # (its endpoint stopped answering: one line for its prefix counts it)
        report.files.append(done)
        if not lake.dry_run and memo.source_key(source.info) \
                and (done.duplicate_file or done.unreadable):
            _remember_seen(lake, source, done)

    def alone(i: int) -> FileReport:
        return _ingest_source(lake, sources[i], forced, tick_for(i), overrides)

    with fastpath.reused_connection(lake):
        i = 0
        while i < len(sources):
            # Small files (local, or S3 objects) in a row are read in groups
            # (lib/ingest/grouped.py), each still committed and reported as its own batch, in
            # this order.
            n = grouped.run_at(sources, i, forced)
            if n:
                grouped.ingest(lake, sources[i:i + n], forced, overrides,
                               alone=lambda k, i=i: alone(i + k),
                               done=lambda k, done, i=i: finished(i + k, done),
                               tick_for=lambda k, i=i: tick_for(i + k))
                i += n
                continue
            if i + 1 == len(sources) or grouped.run_at(sources, i + 1, forced):
                finished(i, alone(i))  # (alone in its row: its batch takes the lock itself)
                i += 1
                continue
            # Sources read one at a time, in a row, share the writer lock (let go every
            # LOCK_RUN_FILES of them or LOCK_RUN_S, for other writers' turn): the fast path
            # lists the manifest three times a file otherwise, before and under a lock of its
            # own (0.15 s a file at a month of commits, 1.4 s at a year).
            with lake.writer_lock():
                held_since, k = time.monotonic(), 0
                while i < len(sources) and k < LOCK_RUN_FILES \
                        and time.monotonic() - held_since < LOCK_RUN_S \
                        and (k == 0 or not grouped.run_at(sources, i, forced)):
                    finished(i, alone(i))
                    i, k = i + 1, k + 1
        _find_unpriced(lake, report.files)  # (on the run's connection, when it has one)
    report.compaction = _auto_compact(lake, report, compact_min_files)
    return report


def _remember_seen(lake: Lake, src: Source, done: FileReport) -> None:
    """Record a file or S3 object that gave no batch (its content was ingested before under
    another name, or it cannot be read: empty, corrupt, not a known format, too large) as a
    commit of kind "seen", so the next run skips it while it and the readers are unchanged
    (lib/ingest/memo.py), and the Data page lists it with why (an upload that cannot be read:
    only that); a failure to read it at all (network, permissions) is not recorded."""
    why = memo.SAME_CONTENT if done.duplicate_file else done.error
    try:
        with lake.begin(src.name, kind="seen", info={**src.info, "seen": why}) as batch:
            batch.commit()
    except Exception as exc:  # remembering is an optimisation: the source is read again next run
        stop_if_interrupted(exc)
        log.warning("could not record %s as seen: %s", src.name, exc)


def ingest_stream(lake: Lake, stream_or_bytes: BinaryIO | bytes, filename: str,
                  fmt: str | Format | None = None, progress: ProgressFn | None = None, *,
                  mapping: str | os.PathLike | None = None, source: str | None = None,
                  compact_min_files: int | None = None,
                  overrides: dict | None = None) -> IngestReport:
    """Ingest one stream (an upload): ``filename`` names it in reports and lineage (``source``
    overrides the lineage name) and hints detection. Same guarantees as :func:`ingest_paths`."""
    forced = _resolve_format(fmt, mapping)
    overrides = pricing.load_overrides() if overrides is None else overrides
    if isinstance(stream_or_bytes, bytes | bytearray | memoryview):
        data = bytes(stream_or_bytes)
        opener, size = (lambda: io.BytesIO(data)), len(data)
    else:
        opener, size = (lambda: stream_or_bytes), _stream_size(stream_or_bytes)
    src = Source(name=source or filename, filename=Path(filename).name, open=opener, size=size,
                 info={"upload": filename})
    done = _ingest_source(lake, src, forced, progress, overrides)
    if done.unreadable and not lake.dry_run:
        # Its trace on the Data page (batches of kind "seen", with the reason): the report of
        # an upload is gone with the page (found in review). An upload has no source key, so
        # this skips no later upload of it.
        _remember_seen(lake, src, done)
    report = IngestReport(files=[done], dry_run=lake.dry_run)
    _find_unpriced(lake, report.files)
    report.compaction = _auto_compact(lake, report, compact_min_files)
    return report


def _stream_size(stream) -> int | None:
    """Bytes left in ``stream`` (an upload: Streamlit's UploadedFile has ``size``; else a seekable
    stream is measured), so progress can say how far along it is; None when unknown."""
    size = getattr(stream, "size", None)
    if isinstance(size, int):
        return size - (stream.tell() if hasattr(stream, "tell") else 0)
    try:
        if stream.seekable():
            here = stream.tell()
            end = stream.seek(0, io.SEEK_END)
            stream.seek(here)
            return end - here
    except (AttributeError, OSError, ValueError):
        pass
    return None


def detect_format(head: bytes, filename: str, formats: list[Format] | None = None
                  ) -> Format | None:
    """The first registered format (in priority order) whose detector accepts ``head``."""
    for f in formats if formats is not None else registry.registered():
        try:
            if f.detect(head, filename):
                return f
        except Exception as exc:  # a detector that chokes on odd input simply does not match
            stop_if_interrupted(exc)
            continue
    return None


# -- sources ------------------------------------------------------------------------------------
def _expand(lake: Lake, paths: list[str], endpoint: str | None, report: IngestReport,
            readers: memo.Readers, forced: Format | None) -> Iterator[Source]:
    earlier: dict | None = None
    reads = appended.ReadIndex([])

    def known() -> dict:
        nonlocal earlier, reads
        if earlier is None:
            commits = lake.commits()  # (one listing of the manifest for both)
            reads = appended.index_of(lake, commits)
            earlier = memo.earlier_reads(lake, commits, reads)
        return earlier

    store = str(lake.root.resolve())
    inside_store = store.rstrip(os.sep) + os.sep
    store_noted = False

    def files(found: Iterable[Path], resolved: bool = False) -> Iterator[Source]:
        nonlocal store_noted
        for p in found:
            p = p if resolved else p.resolve()
            name = str(p)
            # (as Path.is_relative_to on resolved paths, without its cost on 45,000 files)
            if name == store or name.startswith(inside_store):
                # The store's own files (a folder of logs that holds the store, as data/ holds
                # data/store/): reading them would re-read its rows, and every run would add
                # manifest entries for the next run to try.
                if not store_noted:
                    report.files.append(FileReport(source=str(store), skipped=(
                        "this is the store itself: its files are not read as input")))
                    store_noted = True
                continue
            try:
                src = _file_source(p, readers)
            except FileNotFoundError:  # deleted or rotated away since the folder was listed
                report.files.append(FileReport(source=_text_name(str(p)), skipped=(
                    "gone before it was read (deleted or moved since the folder was listed)")))
                continue
            # (an empty file stays an error, as any empty input is: "empty file")
            if src.size == 0 and src.info.get(memo.HELD_BACK):
                report.files.append(FileReport(source=src.name, skipped=(
                    "being written: no complete record yet (changed less than "
                    f"{live.LIVE_SECONDS // 60} minutes ago); a later run reads it")))
                continue
            why = memo.skip_reason(known().get(memo.source_key(src.info)), readers,
                                   "unchanged: same size, mtime, ctime and inode")
            if why:
                report.files.append(FileReport(source=src.name, skipped=why))
                continue
            cont = _continuation(p, src, reads, readers, forced)
            if cont is not None and cont.start == src.size:
                held = src.info.get(memo.HELD_BACK)
                report.files.append(FileReport(source=src.name, skipped=(
                    "already ingested: nothing appended since the last read (its bytes are the "
                    "ones read then: same SHA-256)" + (
                        f"; {held:,} byte(s) of an unfinished last record wait for a later run"
                        if held else ""))))
                if not held and not lake.dry_run:  # skipped by its stat next time
                    _remember_seen(lake, src, FileReport(source=src.name, duplicate_file=True))
            elif cont is not None:
                yield _continued(p, src, cont)
            else:
                yield src

    stdin_taken = False
    for raw in paths:
        if raw.startswith("s3://"):
            from lib.ingest import s3

            try:
                client = s3.client(endpoint)
                breaker = s3.Breaker(raw, client)
                listed, hidden = 0, []
                for obj in s3.list_objects(raw, client=client, hidden=hidden):
                    listed += 1
                    info = {"s3": {"uri": obj.uri, "etag": obj.etag}, **readers.info()}
                    why = memo.skip_reason(known().get(memo.source_key(info)), readers,
                                           "same ETag")
                    if why:
                        report.files.append(FileReport(source=obj.uri, skipped=why))
                        continue
                    yield Source(name=obj.uri, filename=obj.filename,
                                 open=breaker.opener(obj), size=obj.size, info=info)
                if not listed:
                    report.files.append(FileReport(source=_shown_path(raw), error=s3.NO_OBJECTS + (
                        s3.ONLY_HIDDEN.format(n=len(hidden), first=hidden[0]) if hidden
                        else "") + (s3.NO_GLOBS if glob.has_magic(raw) else "")))
            except Exception as exc:
                stop_if_interrupted(exc)
                report.files.append(FileReport(source=raw, error=_one_line(exc)))
            continue
        if not raw.strip():
            # Path("") is the current folder: an unset shell variable must not ingest it all.
            report.files.append(FileReport(source=raw, error="empty path: give a file, folder, "
                                                             "glob or s3:// URI"))
            continue
        path = Path(raw).expanduser()
        if raw == STDIN and stdin_taken:
            # (not "above": this line is reported before the read's own, which comes after
            # the sources are listed; found in review)
            report.files.append(FileReport(source="stdin", skipped=(
                "standard input given again: it is read once, on its own line")))
        elif raw == STDIN or _is_pipe(path):
            # Standard input, or a pipe by name (a shell's <(zcat logs.gz) is /dev/fd/N): read
            # once, as an upload is; a bad or duplicate stream is caught the same ways.
            stdin_taken = stdin_taken or raw == STDIN
            yield _stream_source(raw, path)
        elif path.is_dir():
            unread: list[tuple[str, str]] = []
            passed_over: list[tuple[str, str]] = []
            found = folder_files(path, unread, passed_over)
            for where, why in unread:
                report.files.append(FileReport(source=_text_name(where), error=why))
            for where, kind in passed_over:
                report.files.append(FileReport(source=_text_name(where), skipped=(
                    f"{kind}, not a file: not read in a folder (a pipe given by name is read "
                    "as a stream)")))
            if not found and not unread and not passed_over:
                report.files.append(FileReport(source=str(path.resolve()),
                                               error="folder holds no files"))
            yield from files(found, resolved=True)
        elif path.is_file():
            yield from files([path])
        elif glob.has_magic(raw):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(raw), recursive=True))
            matches = [m for m in matches if m.is_file()]
            if not matches:
                report.files.append(FileReport(source=raw, error="no file matches this pattern"))
            yield from files(matches)
        elif path.exists():
            report.files.append(FileReport(source=raw, error=(
                "not a file, folder or pipe (a device or a socket): nothing to read")))
        else:
            report.files.append(FileReport(source=_shown_path(raw), error="no such file or folder"
                                           + _uri_hint(raw)))


def _uri_hint(raw: str) -> str:
    """What a path that is no file may have meant: an S3 prefix in other words ("S3://", Hadoop's
    "s3a://"; found in review, a cron line's typo read as a missing file)."""
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme.lower() in ("s3", "s3a", "s3n"):
        return f"; an S3 prefix is written s3://bucket/prefix (lower case), not {scheme}://"
    if scheme:
        return f"; only local paths and s3:// prefixes are read, not {scheme}://"
    return ""


def _shown_path(raw: str) -> str:
    """``raw`` as the report names it: quoted when white space at its ends would not show."""
    return repr(raw) if raw != raw.strip() else raw


STDIN = "-"  # the command line's name for standard input, as in cat and tar


def _special_kind(mode: int) -> str | None:
    """What a name that is neither a file nor a folder is, by its ``st_mode``, or None."""
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return None


def _is_pipe(path: Path) -> bool:
    """Whether ``path`` is a named pipe (a FIFO, or a shell's process substitution)."""
    try:
        return stat.S_ISFIFO(path.stat().st_mode)
    except OSError:
        return False


def _stream_source(raw: str, path: Path) -> Source:
    """Standard input (``raw`` is :data:`STDIN`) or the pipe at ``path``, as a source read once
    from its start: its format is told by its content (``--format`` forces one)."""
    if raw == STDIN:
        import sys

        return Source(name="stdin", filename="stdin", open=lambda: sys.stdin.buffer,
                      info={"stream": "stdin"}, closed_after=False)
    return Source(name=str(path), filename=path.name, open=lambda: open(path, "rb"),
                  info={"stream": str(path)})


def folder_files(root: Path, unread: list[tuple[str, str]] | None = None,
                 passed_over: list[tuple[str, str]] | None = None) -> list[Path]:
    """The files under the folder ``root``, resolved, in the order of their paths: every file of
    ``root.rglob("*")`` that is no hidden file and in no hidden folder (a name starting with a
    dot), a symlink to a file included, no folder entered through a symlink (as rglob does).
    What could not be read is added to ``unread`` as (path, reason): a folder that could not be
    listed, a name whose kind could not be told (rglob raised on some, and passed over a folder
    it may not read, without a word); a name gone meanwhile, a broken link or a link loop is no
    file, as for rglob. A named pipe, a socket or a device (never read in a folder: a pipe
    would wait for a writer) is added to ``passed_over`` as (path, what it is).

    A cron job may ingest a folder of a file a minute: at a month's 45,000 files, ``rglob`` with
    ``is_file`` and ``resolve`` per file took 1.7 s a run; one ``scandir`` per folder and one
    ``realpath`` (for the root, and for each link to a file) take a tenth of that."""
    found: list[tuple[tuple[str, ...], Path]] = []
    # A folder entered is never a link, so its real path is its parent's and its name.
    folders = [((), root, Path(os.path.realpath(root)))]
    while folders:
        parts, folder, real = folders.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR) and unread is not None:  # not gone
                unread.append((str(real), f"folder could not be listed: {_one_line(exc)}"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append((parts + (entry.name,), Path(entry.path), real / entry.name))
                elif entry.is_file():  # (through a symlink too)
                    found.append((parts + (entry.name,), Path(os.path.realpath(entry.path))
                                  if entry.is_symlink() else real / entry.name))
                elif passed_over is not None:
                    kind = _special_kind(entry.stat().st_mode)
                    if kind:
                        passed_over.append((str(real / entry.name), kind))
            except OSError as exc:
                if exc.errno not in _GONE and unread is not None:
                    unread.append((str(real / entry.name),
                                   f"could not be looked at: {_one_line(exc)}"))
    found.sort(key=lambda f: f[0])  # as Paths sort: part by part
    return [path for _, path in found]


# Errors that say a name is no file to read (gone, a broken link, a loop, a link to too long a
# name): pathlib's is_file is False for them, without a word.
_GONE = {errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP, errno.ENAMETOOLONG}


def _file_source(path: Path, readers: memo.Readers) -> Source:
    """A local file (``path`` resolved) as a Source; a file still being written is read up to
    its last complete record (lib.ingest.live)."""
    st = path.stat()
    # A name whose bytes are not UTF-8 (os.fsdecode gives lone surrogates) cannot be stored as
    # text, nor handed to DuckDB: its lineage is the name with those bytes as \xNN escapes, and
    # the file is read through Python (open takes the name as it is).
    name = _text_name(str(path))
    info = {"file": memo.file_signature(name, st), **readers.info()}
    held = live.unfinished_tail(path, st)
    # Read no further than the size looked at: a writer's flush during the read must not bring
    # in a line cut short (the fast path, which reads by name, checks the size is still this).
    size = st.st_size - held
    return Source(name=name, filename=_text_name(path.name),
                  open=lambda: FirstBytes(open(path, "rb"), size), size=size,
                  # (a file read in part is read by the exact path, from its first bytes)
                  path=str(path) if name == str(path) and not held else None,
                  info={**info, memo.HELD_BACK: held} if held else info,
                  not_read={live.UNFINISHED_NOTE: held} if held else {})


def _continuation(path: Path, src: Source, reads: appended.ReadIndex, readers: memo.Readers,
                  forced: Format | None) -> appended.Continuation | None:
    """Where to go on reading the local file ``src`` from (lib/ingest/appended.py), as the
    format forced or detected from its first bytes now; None: read it whole."""
    if not reads.of_file(src.info["file"]["ino"]):
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(min(HEAD_BYTES, src.size or 0))
            if head[:1] == b"\0":  # (a hole left by copytruncate: the format is what follows)
                f.seek(0)
                head = SourceStream(FirstBytes(f, src.size or 0)).peek(HEAD_BYTES)
    except (OSError, InputError, ChangedWhileListed):
        return None
    fmt = forced or detect_format(head, src.filename)
    return appended.continuation(path, src.info["file"]["ino"], src.size or 0, reads,
                                 readers.all, fmt, head)


def _continued(path: Path, src: Source, cont: appended.Continuation) -> Source:
    """``src`` (a local file, read up to ``src.size``) read from ``cont.start`` on: what was
    appended since an earlier read (lib/ingest/appended.py)."""
    size = (src.size or 0) - cont.start
    listed = src.info["file"]

    def open_tail() -> BinaryIO:
        raw = open(path, "rb")
        st = os.fstat(raw.fileno())
        raw.seek(cont.start - len(cont.before))
        if st.st_ino != listed["ino"] or st.st_size < listed["size"] \
                or raw.read(len(cont.before)) != cont.before:
            # replaced (a rotation), cut or rewritten since it was hashed: not the bytes read
            raw.close()
            raise ChangedWhileListed("it was replaced, truncated or rewritten while this run "
                                     "listed it; the next run reads it")
        return FirstBytes(raw, size)

    return Source(name=src.name, filename=src.filename, open=open_tail, size=size,
                  info=src.info, not_read=src.not_read, continues=cont)


def content_stored(lake: Lake, content_hash: str, fmt: Format, forced: Format | None) -> bool:
    """True when content with this hash adds nothing: stored already (a copy under another name),
    or read whole as a file grew (:func:`_read_as_it_grew`). The fast path and a group ask it
    before reading a file's rows."""
    return (lake.has_content(batch_identity(content_hash, fmt, forced))
            or _read_as_it_grew(lake, content_hash, fmt, forced))


def _read_as_it_grew(lake: Lake, content_hash: str, fmt: Format, forced: Format | None) -> bool:
    """True when content with this hash was read whole, piece by piece as a file grew, by this
    run's readers as ``fmt`` (lib/ingest/appended.py): a copy of such a file adds nothing (the
    reads committed so far, this run's included)."""
    return appended.index_of(lake).covers(content_hash, fmt.name, memo.Readers.of(forced).all)


def _text_name(name: str) -> str:
    """``name`` as valid UTF-8 text: bytes a file name holds that are not UTF-8 as \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _resolve_format(fmt: str | Format | None, mapping) -> Format | None:
    if mapping is not None:
        from lib.ingest import mapping as mapping_mod

        return mapping_mod.load(mapping)
    if fmt is None or isinstance(fmt, Format):
        return fmt
    try:
        return registry.by_name(fmt)
    except KeyError:
        names = ", ".join(f.name for f in registry.registered())
        raise ValueError(f"unknown format {fmt!r}; known formats: {names}") from None


# -- one source ---------------------------------------------------------------------------------
def _ingest_source(lake: Lake, src: Source, forced: Format | None,
                   progress: ProgressFn | None, overrides: dict) -> FileReport:
    report = FileReport(source=src.name)
    started = time.monotonic()
    try:
        from lib.ingest import fastpath

        if fastpath.try_ingest(lake, src, forced, overrides, report, progress, started):
            report.seconds = time.monotonic() - started
            if lake.dry_run:
                report.end_dry_run()
            return report
        raw = src.open()
        try:
            _ingest_open_source(lake, src, raw, forced, progress, overrides, report, started)
        finally:
            close = getattr(raw, "close", None) if src.closed_after else None
            if close:
                close()
    except ChangedWhileListed as exc:
        report.skipped = str(exc)
    except InputError as exc:
        if str(exc) in (EMPTY, BLANK_ONLY, ONLY_ZEROS) and _being_written(src):
            # A log just created (logrotate's "create", an app's first minute): an error, exit
            # status 2 and cron mail at every rotation, where a half-written line waits quietly
            report.skipped = (f"{exc}, and it changed less than {live.LIVE_SECONDS // 60} "
                              "minutes ago (a log just created or rotated?): a run after it holds "
                              "a record reads it")
        else:
            report.error, report.unreadable = str(exc), True
    except MemoryError:
        report.error = "out of memory while reading (is a single record enormous?)"
    except Exception as exc:  # any failure of one source is reported, never raised
        stop_if_interrupted(exc)
        report.error = _one_line(exc)
    except BaseException as exc:
        # A Rust library's panic (polars, pyo3) is a BaseException: it is one source's failure
        # too, not the end of the run (interrupts and exits still end it).
        if type(exc).__name__ != "PanicException":
            raise
        report.error = _one_line(exc)
    report.seconds = time.monotonic() - started
    if lake.dry_run:
        report.end_dry_run()  # the batch was aborted: no such batch exists
    if report.error:
        # Nothing of a failed source is stored (its batch was aborted).
        report.stored, report.duplicates = {}, {}
        report.quarantined, report.reasons, report.not_read = 0, [], {}
        report.first_quarantined = []
        if not report.unreadable:
            report.error += _store_disk_note(lake)
    if report.error and report.unreadable and report.error.startswith("truncated ") \
            and _being_written(src):
        # A truncated file is an error (nothing of it stored), but this one may be a compressed
        # file a writer is still adding to (the Collector's file exporter with compression): it
        # is read again once it changes, which the message says.
        report.error += (f"; it changed less than {live.LIVE_SECONDS // 60} minutes ago: if it is "
                         "still being written, a run after it is complete reads it")
    report.not_read.update(src.not_read)
    return report


# Below this, a failure of a read is told with the store's free space: DuckDB says "Out of
# Memory Error: failed to offload data block" when it cannot spill to a full disk (review).
LOW_DISK_BYTES = 256 * 1024 * 1024


def _store_disk_note(lake: Lake) -> str:
    """"; the store's disk has only N MB free …" when it is that full, else ""."""
    import shutil

    try:
        free = shutil.disk_usage(lake.root if lake.root.exists() else lake.root.parent).free
    except OSError:
        return ""
    if free >= LOW_DISK_BYTES:
        return ""
    return (f"; the store's disk has only {free / 1e6:,.0f} MB free (DuckDB spills to it and the "
            "batch's files are written there): free some space and run again")


def _being_written(src: Source) -> bool:
    """True for a local file that changed less than live.LIVE_SECONDS ago."""
    signature = src.info.get("file") if isinstance(src.info, dict) else None
    return isinstance(signature, dict) and isinstance(signature.get("mtime_ns"), int) \
        and live.is_being_written(signature["mtime_ns"] / 1e9)


def batch_identity(content_hash: str, fmt: Format, forced: Format | None = None) -> str:
    """What a batch commits under, so the same input is stored once: the content's hash, joined
    with what else decides its rows (:func:`forced_identity`: a mapping's text, a format forced
    by name). A file whose rows were all quarantined under a wrong mapping or a wrong forced
    format is read again once the mapping is fixed or the right format is chosen."""
    said = fmt.identity or forced_identity(forced)
    if not said:
        return content_hash
    return content_hash_of(f"{content_hash}\x1f{said}")


def forced_identity(forced: Format | None) -> str:
    """What a format forced on a read adds to its batch's identity: a mapping's own identity (its
    text), else the forced format's name; "" when the format was detected. (Without the name, an
    upload read as the wrong Format, every row quarantined, was "already ingested" once read as
    the right one, and only `remove` let it in: review.)"""
    if forced is None:
        return ""
    return forced.identity or f"format {forced.name}"


def _ingest_open_source(lake: Lake, src: Source, raw: BinaryIO, forced: Format | None,
                        progress: ProgressFn | None, overrides: dict, report: FileReport,
                        started: float) -> None:
    cont = src.continues
    # (a continued read's hash covers the file from its start: appended.read_info)
    stream = SourceStream(raw, hasher=cont.hasher.copy() if cont else None,
                          origin=cont.start if cont else 0)
    head = stream.peek(HEAD_BYTES)
    if not head:
        raise InputError(ONLY_ZEROS if stream.zero_bytes_skipped else
                         EMPTY if not stream.compressed else "empty after decompression")
    if not cont and objects_back_to_back(head):
        stream = ObjectsAsLines(stream)
        head = stream.peek(HEAD_BYTES)
    filename = _strip_compression(src.filename)
    fmt = forced or (registry.by_name(cont.format) if cont else detect_format(head, filename))
    if fmt is None and not cont and one_object_over_lines(head):
        # One record pretty-printed (`jq .` of a one-line file, an example typed by hand): no
        # document format took it, so it is a line of its own, as each of several would be.
        stream = ObjectsAsLines(stream)
        head = stream.peek(HEAD_BYTES)
        fmt = detect_format(head, filename)
    if fmt is None:
        if not text_start(head) and len(head) < HEAD_BYTES:  # (the whole file is in the head)
            raise InputError(BLANK_ONLY)
        raise InputError(_unrecognized(head))
    report.format = fmt.name
    if cont:
        report.continued_from = {"byte": cont.start, "line": cont.records + 1}
        head = cont.head  # what a whole read chooses by (the canonical table) is the file's
    else:
        report.hints = column_hints(fmt.name, head)
    sql_table = _sql_jsonl_table(fmt, head)
    with lake.begin(src.name, info={**src.info, "format": fmt.name},
                    continued=cont is not None) as batch:
        report.batch_id = batch.batch_id
        if sql_table:
            _ingest_jsonl_sql(lake, batch, stream, sql_table, src, overrides, report, progress,
                              started)
        first = not sql_table
        for chunk in (_parse(fmt, stream, filename, head) if not sql_table else ()):
            if first and fmt.name == "parquet":  # its columns are known once it is open
                report.hints = next((parquet_hints(t.schema) for t in chunk.tables.values()), [])
            _store_chunk(batch, chunk, src.name, overrides, report,
                         other_tables=fmt.name in CANONICAL_FORMATS)
            if first:
                _pause_for_tests("after_first_chunk")
                first = False
            _tell(progress, src, stream, report, started)
        stream.drain()
        report.bytes = stream.bytes_in
        report.content_hash = stream.hexdigest()
        identity = batch_identity(report.content_hash, fmt, forced)
        # Known already: a read that went on, whose whole file was stored (a copy of it); a
        # whole read of bytes read piece by piece as a file grew (lib/ingest/appended.py).
        if lake.has_content(identity) if cont else \
                fmt.appendable and _read_as_it_grew(lake, report.content_hash, fmt, forced):
            batch.abort()
            _as_duplicate(report)
            report.batch_id = None
            return
        if cont:
            # Its own identity, not the file's hash: once a batch the read went on from is
            # removed, the whole file must read as new.
            identity = content_hash_of(f"{identity}\x1fread on from byte {cont.start}")
        if fmt.finish is not None and not lake.has_content(identity):  # ingested before: no pass
            for what, n in fmt.finish(batch).items():
                report.not_read[what] = report.not_read.get(what, 0) + n
        if isinstance(stream, ObjectsAsLines):
            report.not_read[BACK_TO_BACK] = stream.objects
        if stream.zero_bytes_skipped:
            report.not_read[ZERO_HOLE] = stream.zero_bytes_skipped
        report.not_read.update(src.not_read)  # (what the source left unread: the batch's note)
        # what the format read but did not store is kept with the batch (the Data page's note)
        _tell(progress, src, stream, report, started, "committing")
        result = batch.commit(content_hash=identity,
                              info={"bytes": stream.bytes_out,
                                    # (UTF-16 read as UTF-8: its bytes are not the file's)
                                    **appended.read_info(src, report.content_hash,
                                                         stream.compressed or stream.transcoded,
                                                         stream.bytes_out),
                                    **({"not_read": report.not_read} if report.not_read else {}),
                                    **({"hints": report.hints} if report.hints else {})})
    if result.duplicate_batch:
        _as_duplicate(report)
    else:
        # Every table the batch touched gets both counts, 0 included: a file whose rows were
        # all stored before says "stored 0 requests; 5 duplicate(s)", as the fast path says it.
        report.stored = {t: n for t, n in result.stored.items() if t != "quarantine"}
        report.duplicates = {t: n for t, n in result.duplicate_rows.items()
                             if t != "quarantine" and n}
        for t in report.duplicates:
            report.stored.setdefault(t, 0)
        for t in report.stored:
            report.duplicates.setdefault(t, 0)
        # A record quarantined by an earlier read of the file (read whole again: it grew, or
        # came back under its name) is not added again: counted as such, not as quarantined
        again = result.duplicate_rows.get("quarantine", 0)
        if again:
            report.quarantined -= again
            report.not_read[ALREADY_QUARANTINED] = again
    _pause_for_tests("after_commit")
    _tell(progress, src, stream, report, started)


# Formats of canonical rows, one table a file: a row of another table in one is quarantined
# (lib.ingest.validate.checked_sql's other_tables).
CANONICAL_FORMATS = ("jsonl", "json", "csv", "parquet")


def _parse(fmt: Format, stream, filename: str, head: bytes) -> Iterator[Chunk]:
    """The chunks of ``fmt`` reading ``stream``; canonical JSON lines as the table of their
    first object, as the SQL and fast paths read them (the first block's keys, of lines of two
    tables, would name the other one)."""
    from lib.ingest.formats import canonical

    if fmt is canonical.JSONL:
        name = canonical.jsonl_table_of_head(head)
        if name in schema.TABLES and name != "quarantine":
            return canonical.parse_jsonl_as(stream, name, own_values=True)
    return fmt.parse(stream, filename)


def _as_duplicate(report: FileReport) -> None:
    """``report`` of a source whose content was stored before: nothing of this read counts."""
    report.duplicate_file = True
    report.stored, report.duplicates = {}, {}
    report.quarantined, report.reasons, report.not_read, report.hints = 0, [], {}, []
    report.first_quarantined = []


def _store_chunk(batch: BatchWriter, chunk: Chunk, source_name: str, overrides: dict,
                 report: FileReport, *, other_tables: bool = False) -> None:
    now = datetime.now(UTC)
    for name, table in chunk.tables.items():
        if table is None or table.num_rows == 0:
            continue
        if name not in schema.TABLES:
            raise ValueError(f"format produced unknown table {name!r}")
        report.rows_read += table.num_rows
        if name == "quarantine":
            _add_quarantine(batch, report, table)
            continue
        checked = validate(name, table, source_file=source_name, now=now,
                           other_tables=other_tables)
        good = checked.table
        if name == "requests" and good.num_rows:
            good = pricing.price_table(good, overrides)
        batch.add({name: good.append_column("_line", checked.lines)},
                  on_conflict=lambda table, rows: _add_quarantine(
                      batch, report, conflicts_table(table, rows, source_name, now,
                                                     priced=table == "requests")))
        _add_quarantine(batch, report, checked.quarantine)
    for what, n in chunk.not_read.items():
        report.not_read[what] = report.not_read.get(what, 0) + n
    if chunk.rejects:
        report.rows_read += len(chunk.rejects)
        _add_quarantine(batch, report, rejects_table(chunk.rejects, source_name, now))


def _add_quarantine(batch: BatchWriter, report: FileReport, table: pa.Table) -> None:
    """Add quarantined rows to ``batch`` and count them in ``report``: in a file read from where
    an earlier read ended, the line numbers a format counted from there are made the file's (and
    so are the ids, which hash them)."""
    if report.continued_from and table.num_rows:
        from lib.ingest.validate import quarantine_table

        shift = report.continued_from["line"] - 1
        table = quarantine_table(
            [None if n is None else n + shift for n in table.column("line").to_pylist()],
            table.column("raw").to_pylist(), table.column("reason").to_pylist(),
            table.column("source_file")[0].as_py(), table.column("ts")[0].as_py())
    batch.add({"quarantine": table})
    report.quarantined += table.num_rows
    if table.num_rows:
        head = table.take(pc.sort_indices(table, [("line", "ascending")])[:MAX_REASONS])
        report.first_quarantined = sorted(
            report.first_quarantined + list(zip(head.column("line").to_pylist(),
                                                head.column("reason").to_pylist(), strict=True)),
            key=lambda row: (row[0] is None, row[0] or 0))[:MAX_REASONS]
        unit = _unit_of(report.format)
        report.reasons = [f"{unit} {line}: {reason}" if line is not None else f"record: {reason}"
                          for line, reason in report.first_quarantined]


def _unit_of(format_name: str | None) -> str:
    """What the format's quarantine ``line`` counts ("line", or "request" in OTLP protobuf)."""
    try:
        return registry.by_name(format_name).unit if format_name else "line"
    except KeyError:
        return "line"


def _strip_compression(filename: str) -> str:
    for suffix in COMPRESSION_SUFFIXES:
        if filename.lower().endswith(suffix):
            return filename[: -len(suffix)]
    return filename


def _unrecognized(head: bytes) -> str:
    names = ", ".join(f.name for f in registry.registered())
    sample = head[:4096]
    if b"\x00" in sample or _not_text(sample):
        kind = binary_kind(head)
        if kind:
            # no --format reads a ZIP archive, a PDF or bzip2: that advice would send its user
            # through every format in turn; what the bytes are says what to do instead
            return f"{NOT_TEXT} (tried: {names}): by its first bytes, {kind}"
        what = NOT_TEXT
    else:
        what = "not a recognized format"
        hint = unrecognized_hint(head)
        if hint:
            return f"{what} (tried: {names}): {hint}"
    return f"{what} (tried: {names}); use --format or --mapping to say what it is"


def _not_text(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
        return False
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return exc.start < len(sample) - 4


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    name = type(exc).__name__
    line = f"{name}: {msg}" if msg else name
    if type(exc).__module__.startswith("botocore"):  # (S3: what to do, beside botocore's code)
        from lib.ingest import s3

        hint = s3.hint_for(exc)
        if hint:
            line = f"{line.rstrip('.')}; {hint}"
    return line


# -- compaction after ingest ----------------------------------------------------------------------
def _auto_compact(lake: Lake, report: IngestReport, min_files: int | None) -> dict | None:
    if lake.dry_run:
        return None
    touched: dict[str, set[str]] = {}
    for f in report.files:
        for t in f.stored:
            touched.setdefault(t, set())
        if f.quarantined:  # quarantine files pile up like any other table's
            touched.setdefault("quarantine", set())
    if not touched:
        return None
    from lib.store import compact

    try:
        threshold = compact.default_min_files() if min_files is None else min_files
    except ValueError as exc:  # (said in the report, as a failed compaction is)
        return {"error": str(exc)}
    if threshold <= 0:
        return None
    try:
        with lake.writer_lock():  # (one listing of the manifest for both)
            done = compact.compact(lake, min_files=threshold, tables=sorted(touched))
            # What earlier compactions replaced goes once no reader can still be reading it.
            done.gc_removed = [str(p) for p in compact.gc_replaced(lake)]
        return done.to_dict()
    except Exception as exc:  # compaction is housekeeping: never fail an ingest for it
        stop_if_interrupted(exc)
        return {"error": _one_line(exc)}


# -- canonical JSONL through DuckDB --------------------------------------------------------------
# A local canonical JSONL file first tries the optimistic fast path (lib/ingest/fastpath.py: hash
# first, then DuckDB reads, checks, prices and writes the whole file); what follows is the exact
# path it falls back to for any file it cannot prove clean (and for uploads and S3 objects).
# Canonical JSON lines are parsed, typed, checked, deduplicated and priced by DuckDB: Python only
# cuts the stream into blocks of whole lines (hashing it on the way); DuckDB splits, numbers and
# parses the lines (one JSON parse per line) on all cores. The file goes through in segments of
# SEGMENT_BYTES, so memory is bounded by one segment whatever the file's size: each segment is one
# small temporary table; the keys stored so far (for dedupe across segments) sit in a DuckDB table
# that spills to disk; good rows stream out as Arrow batches into the batch's Parquet writers.
# (160 MB ran out on 3.2M rows of 530 bytes with 38-character ids, found in review: peak RSS
# 787 MB at 320 MB for that 1.7 GB file)
SQL_MEMORY_ENV, SQL_MEMORY_LIMIT = "SIGHTLINE_INGEST_MEMORY", "320MB"
SEGMENT_BYTES = int(os.environ.get("SIGHTLINE_INGEST_SEGMENT_BYTES", str(32 * 1024 * 1024)))
QUARANTINE_FETCH_ROWS = 20_000
WRITE_BATCH_ROWS = 128 * 1024


def _sql_jsonl_table(fmt: Format, head: bytes) -> str | None:
    """The canonical table to ingest through the SQL path, or None for the chunked path."""
    from lib.ingest.formats import canonical

    if fmt is not canonical.JSONL:
        return None
    if os.environ.get("SIGHTLINE_INGEST_SQL", "1") == "0":
        return None
    name = canonical.jsonl_table_of_head(head)
    return name if name in schema.TABLES and name != "quarantine" else None


def _sql_connection(lake: Lake, batch_id: str):
    """(connection, its scratch folder, whether the caller closes it): the run's shared one
    (lib.ingest.fastpath.shared_or_own), else a new one."""
    from lib.ingest import fastpath

    tmp = lake.tmp_dir / f"ingest-{batch_id}"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    con, own = fastpath.shared_or_own(tmp, tmp, "sql", lambda: _new_sql_connection(tmp))
    return con, tmp, own


# What the exact SQL path leaves in its connection: dropped after each file, as the connection
# may serve the run's next file.
SQL_PATH_TABLES = ("parsed", "seen", "known", "stored", "verdict", "keep", "units", "tiered")
SEGMENT_TABLES = ("parsed", "known", "verdict", "keep")  # one segment's, dropped after it


def _new_sql_connection(tmp: Path):

    con = connect(config={
        "memory_limit": memory_limit(SQL_MEMORY_ENV, SQL_MEMORY_LIMIT),
        "temp_directory": str(tmp),
        "threads": max(os.cpu_count() or 1, 1), "preserve_insertion_order": True,
        # Give freed memory back after each statement instead of caching it up to the limit.
        "allocator_flush_threshold": "16MB",
        "autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute("SET TimeZone = 'UTC'")
    return con


def _tell(progress: ProgressFn | None, src: Source, stream: SourceStream, report: FileReport,
          started: float, stage: str | None = None) -> None:
    """Say where the read of ``src`` is (lib.ingest.pipeline.Progress), if anyone listens."""
    if progress:
        progress(Progress(src.name, stream.bytes_in, src.size, report.rows_read,
                          time.monotonic() - started, stage=stage))


def _ingest_jsonl_sql(lake: Lake, batch: BatchWriter, stream: SourceStream, name: str,
                      src: Source, overrides: dict, report: FileReport,
                      progress: ProgressFn | None, started: float) -> None:
    import shutil

    from lib.ingest.formats.canonical import DUPLICATE_KEY_REASON, jsonl_rows_sql
    from lib.ingest.streams import text_blocks
    from lib.ingest.validate import checked_sql, time_range

    now = datetime.now(UTC)
    con, tmp, own = _sql_connection(lake, batch.batch_id)
    state: dict = {"error": None, "done": False}
    blocks = text_blocks(stream)
    block_schema = pa.schema([("first_line", pa.int64()), ("pieces", pa.int64()),
                              ("text", pa.large_string())])

    def segment(rejects: list):
        """Blocks up to SEGMENT_BYTES of text; sets state["done"] at the end of the stream."""
        size = 0
        last = time.monotonic()
        try:
            for block in blocks:
                rejects.extend(block.rejects)
                size += len(block.text)
                if time.monotonic() - last > PROGRESS_EVERY_S:  # (a segment is up to 64 MiB)
                    last = time.monotonic()
                    _tell(progress, src, stream, report, started, "reading")
                yield pa.record_batch([pa.array([block.first_line], pa.int64()),
                                       pa.array([block.pieces], pa.int64()),
                                       pa.array([block.text], pa.large_string())],
                                      schema=block_schema)
                if size >= SEGMENT_BYTES:
                    return
            state["done"] = True
        except BaseException as exc:  # re-raised by the caller with its own message
            state["error"] = exc
            raise

    rows_sql, text_cols, extras = jsonl_rows_sql(name, "blocks")
    present = {c: pa.string() for c in text_cols}
    present["_line"] = pa.int64()
    checked = checked_sql(name, present, f"({rows_sql})", extras_json=(
        f"CASE WHEN NOT _bad_json AND NOT _not_obj THEN {extras} END"),
        carry=("line", "_bad_json", "_not_obj", "_dup_key"), other_tables=True)
    cols = ", ".join(f'"{c}"' for c in schema.TABLES[name].names)
    select = f"""
        SELECT _line, _reason,
               CASE WHEN _reason IS NOT NULL THEN left(rtrim(line, chr(13)), {schema.RAW_MAX_CHARS})
                    END AS _raw,
               {cols}
        FROM (SELECT * REPLACE (CASE WHEN _bad_json THEN 'not valid JSON'
                                     WHEN _not_obj THEN 'not a JSON object'
                                     WHEN _dup_key IS NOT NULL
                                         THEN format('{DUPLICATE_KEY_REASON}',
                                                     CAST(to_json(_dup_key) AS VARCHAR))
                                     ELSE _reason END AS _reason)
              FROM ({checked}))
    """
    try:
        con.execute(f"CREATE TEMP TABLE seen {SEEN_COLUMNS}")
        first = True
        while not state["done"]:
            rejects: list = []
            # A table of the segment's blocks (not a stream): DuckDB scans its batches in
            # parallel, a stream from Python on one thread.
            lines = pa.Table.from_batches(list(segment(rejects)), block_schema)
            _tell(progress, src, stream, report, started, "checking")
            _parse_segment(con, select, lines, time_range(now))
            n_bad = _quarantine_from_sql(con, batch, src.name, now, report)
            if rejects:
                _add_quarantine(batch, report, rejects_table(rejects, src.name, now))
                n_bad += len(rejects)
            n_good = con.execute("SELECT count(*) FROM parsed WHERE _reason IS NULL"
                                 ).fetchone()[0]
            report.rows_read += n_good + n_bad
            if n_good:
                _tell(progress, src, stream, report, started, "writing")
                _write_good_rows(lake, batch, con, name, src.name, overrides, report, now, n_good)
            # Gone before the next segment is parsed: CREATE OR REPLACE holds the old table until
            # the new one is made, and a wide file's segment beside the last one's ran past the
            # memory limit (1.6M rows of 530 bytes, found in review).
            for table in SEGMENT_TABLES:
                con.execute(f"DROP TABLE IF EXISTS {table}")
            if first:
                _pause_for_tests("after_first_chunk")
                first = False
            _tell(progress, src, stream, report, started)
        stream.drain()
    except BaseException:
        if state["error"] is not None:
            raise state["error"] from None
        raise
    finally:
        if own:
            close_connection(con)
        else:
            with contextlib.suppress(Exception):  # an interrupted statement's state
                for table in SQL_PATH_TABLES:
                    con.execute(f"DROP TABLE IF EXISTS {table}")
            with contextlib.suppress(Exception):
                con.unregister("blocks")
        shutil.rmtree(tmp, ignore_errors=True)


def _parse_segment(con, select: str, blocks: pa.Table, params: dict) -> None:
    """Make the table ``parsed`` of the SQL ``select`` over ``blocks`` (a segment's blocks of
    lines, read as the relation ``blocks``). Past the memory limit, its halves are parsed one
    after the other, down to one block: some lines cost DuckDB far more than their size (10,000
    lines of 570 bytes, long ids and a long extra key each, took more than 150 MB; found in
    review), and a segment must not fail a file that its blocks alone can read."""
    import duckdb

    con.register("blocks", blocks)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE parsed AS {select}", params)
        return
    except duckdb.OutOfMemoryException:
        if blocks.num_rows < 2:
            raise
    finally:
        con.unregister("blocks")
    half = blocks.num_rows // 2
    _parse_segment(con, select, blocks.slice(half), params)
    after = f"parsed_from_{blocks.column('first_line')[half].as_py()}"  # (one per split)
    con.execute(f"ALTER TABLE parsed RENAME TO {after}")
    try:
        _parse_segment(con, select, blocks.slice(0, half), params)
        con.execute(f"INSERT INTO parsed SELECT * FROM {after}")
    finally:
        con.execute(f"DROP TABLE IF EXISTS {after}")


def _quarantine_from_sql(con, batch: BatchWriter, source_name: str, now: datetime,
                         report: FileReport) -> int:
    import json

    from lib.ingest.validate import quarantine_table

    cur = con.execute("SELECT _line, _reason, _raw FROM parsed WHERE _reason IS NOT NULL "
                      "ORDER BY _line")
    n = 0
    while True:
        part = cur.fetchmany(QUARANTINE_FETCH_ROWS)
        if not part:
            return n
        lines, reasons, raws = [], [], []
        for line, reason, raw in part:
            if reason == "not valid JSON":
                try:
                    value = json.loads(raw)
                except RecursionError:
                    reason += ": nested too deeply"
                except ValueError as exc:
                    reason += f": {getattr(exc, 'msg', exc)}"
                    if hasattr(exc, "colno"):
                        reason += f" (column {exc.colno})"
                else:
                    # A line of `null` is valid JSON that DuckDB's from_json reads as no value:
                    # it was "not valid JSON", where `true` or `3` said what it is (review)
                    if not isinstance(value, dict):
                        reason = "not a JSON object"
            lines.append(line)
            reasons.append(reason)
            raws.append(raw)
        _add_quarantine(batch, report, quarantine_table(lines, raws, reasons, source_name, now))
        n += len(part)


def _write_good_rows(lake: Lake, batch: BatchWriter, con, name: str, source_name: str,
                     overrides: dict, report: FileReport, now: datetime, n_good: int) -> int:
    """Write the good rows of ``parsed`` (one segment) that are the first of their key in the
    file and not already in the lake, priced, into ``batch``; quarantine those repeating an
    earlier row's key with other values (lib.store.lake.BatchWriter.add says why); count the
    others of its ``n_good`` rows as duplicates. Returns how many rows were stored."""
    target = schema.TABLES[name]
    key = schema.KEYS[name]
    good = "_reason IS NULL"
    # Keys already in the lake: only files of the same days (and the days either side) hold them.
    days = [r[0] for r in con.execute(
        f"SELECT DISTINCT strftime(ts, '%Y-%m-%d') FROM parsed WHERE {good}").fetchall()]
    files = lake._files_of_days(name, days)
    # The segment's keys are the hash side of each join; the keys seen so far (the first row of
    # each, by earlier segments) and the lake's files are only scanned, so a segment costs one
    # scan of them, never a hash table of everything seen.
    mine = f'SELECT "{key}" FROM parsed WHERE {good}'
    if not files:
        con.execute("CREATE OR REPLACE TEMP TABLE known AS SELECT NULL::VARCHAR AS k WHERE false")
    else:
        con.execute(f'CREATE OR REPLACE TEMP TABLE known AS SELECT "{key}" AS k '
                    f'FROM read_parquet($files) WHERE "{key}" IN ({mine})', {"files": files})
    if batch.continued and con.execute("SELECT count(*) FROM known").fetchone()[0]:
        # A read going on where earlier reads of the file stopped: their rows are earlier rows
        # of this file (lib.store.lake.BatchWriter.add), the first of their keys. (Their whole
        # rows are read only for keys found stored: most reads that go on find none.)
        con.execute("CREATE OR REPLACE TEMP TABLE stored AS "
                    + stored_by_source_sql(name, "SELECT k FROM known"),
                    {"files": files, "source": batch.source})
        con.execute("CREATE OR REPLACE TEMP TABLE known AS SELECT DISTINCT k FROM stored "
                    "WHERE NOT mine")
        con.execute("INSERT INTO seen SELECT hash(k), any_value(d) FROM stored GROUP BY k "
                    "HAVING bool_and(mine) AND hash(k) NOT IN (SELECT h FROM seen)")
        con.execute("DROP TABLE stored")
    # The other rows, each against the first of its key in the file: an earlier one's, else this
    # segment's first line.
    rows = (f'(SELECT _line, "{key}" AS k, {digest_sql(name, "p", priced=False)} AS d '
            f'FROM parsed p WHERE {good} AND "{key}" NOT IN (SELECT k FROM known))')
    con.execute("CREATE OR REPLACE TEMP TABLE verdict AS " + repeats_sql(rows, "_line", "seen"))
    con.execute("CREATE OR REPLACE TEMP TABLE keep AS SELECT _line FROM verdict WHERE NOT repeat")
    con.execute("INSERT INTO seen SELECT hash(k), d FROM verdict WHERE NOT repeat")
    clashing = con.execute(
        f"SELECT {', '.join(f'p.{_q(c)}' for c in target.names)}, p._line "
        "FROM parsed p JOIN verdict v USING (_line) "
        "WHERE v.repeat AND v.differs ORDER BY p._line").to_arrow_table()
    if clashing.num_rows:
        _add_quarantine(batch, report, conflicts_table(name, clashing, source_name, now))
    params = {"source": source_name, "batch": batch.batch_id, "ingested_at": batch.ingested_at}
    joins = _price_join(con, good, overrides) if name == "requests" else ""
    select = output_select(name)
    reader = con.execute(f"SELECT {select} FROM parsed p SEMI JOIN keep USING (_line) {joins} "
                         "ORDER BY p._line", params).to_arrow_reader(WRITE_BATCH_ROWS)
    stored = 0
    for record_batch in reader:
        table = pa.Table.from_batches([record_batch]).cast(target)
        batch.write_rows(name, table)
        stored += table.num_rows
    batch.count_duplicates(name, n_good - stored - clashing.num_rows)
    return stored


def output_select(name: str, source: str = "$source", batch: str = "$batch",
                  ingested_at: str = "$ingested_at") -> str:
    """The select list of stored rows of table ``name`` from checked rows ``p`` (priced through
    the joins of :func:`_price_join` for requests): lineage from the parameters ``$source``,
    ``$batch`` and ``$ingested_at`` (or the SQL given instead: a row's own, when the rows of
    several batches are written at once)."""
    replace = {
        "source_file": f"coalesce(p.source_file, {source})",
        "batch_id": f"CAST({batch} AS VARCHAR)",
        "ingested_at": f"CAST({ingested_at} AS TIMESTAMPTZ)",
    }
    if name == "requests":
        replace["logged_cost_usd"] = "coalesce(p.logged_cost_usd, p.cost_usd)"
        replace["cost_usd"] = (f"CASE WHEN {pricing.cache_hit_sql()} THEN 0.0 "
                               f"WHEN {pricing.usage_unlogged_sql()} THEN NULL "
                               f"WHEN {pricing.failed_without_usage_sql()} THEN 0.0 "
                               "WHEN coalesce(p.input_tokens, 0) < u.linear_below THEN "
                               "greatest(coalesce(p.input_tokens, 0) - p.cached_input_tokens "
                               "- p.cache_write_tokens, 0) * u.p_input "
                               "+ p.cached_input_tokens * u.p_cached "
                               "+ p.cache_write_tokens * u.p_write "
                               "+ p.cache_write_1h_tokens * (u.p_write_1h - u.p_write) "
                               "+ p.web_searches * u.p_search "
                               "+ coalesce(p.output_tokens, 0) * u.p_output "
                               "+ u.p_request "
                               "ELSE x.cost END")
    return ", ".join(f'{replace.get(f.name, "p." + chr(34) + f.name + chr(34))} '
                     f'AS "{f.name}"' for f in schema.TABLES[name])


def _price_join(con, good: str, overrides: dict) -> str:
    """Register the unit prices of each distinct (provider, model, price period, price context)
    of ``parsed`` (and the exact cost of each distinct token mix past a price tier) and return
    the SQL joins (lib/pricing.py)."""
    # Planning context_sql costs ~11 ms a statement: rows that cannot hold a context skip it.
    hinted = con.execute(f"SELECT count(*) FROM parsed WHERE {good} AND "
                         f"{pricing.context_hint_sql('attributes')}").fetchone()[0]

    def context_of(attributes: str) -> str:
        return pricing.context_sql(attributes) if hinted else "''"

    ctx = context_of("p.attributes")
    models = con.execute(f"SELECT DISTINCT provider, model, {pricing.period_sql('ts')}, "
                         f"{context_of('attributes')} FROM parsed WHERE {good}").fetchall()
    pricing.sql_units(con, models, overrides)
    pricing.sql_tiered(con, f"parsed p JOIN units u ON {pricing.sql_units_on(ctx)} "
                            f"WHERE p.{good} AND coalesce(p.input_tokens, 0) >= u.linear_below",
                       overrides, ctx=ctx)
    return pricing.sql_price_joins(ctx)
