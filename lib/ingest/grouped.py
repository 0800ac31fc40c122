"""Small canonical JSONL files read together: one DuckDB pass for a group, a commit for each.

A file of a few KB is almost all fixed cost on the fast path (lib/ingest/fastpath.py): planning
and starting its statements (the key pre-pass, validation, pricing, the write) took ~25 ms of the
~45 ms of a 10-row file, and a cron job over a folder of a file a minute, or a bucket of Firehose
objects, has thousands of them. So a run of consecutive small files (local files, or S3 objects
fetched 8 at a time into the group's scratch folder) is read by one pre-pass and one ``COPY`` per
canonical table (``read_json`` of the list of files, each row knowing its file), written one
folder per file and day; then each file is committed as its own batch, in the run's order, with
what reading it alone would have stored: the same rows, prices, lineage (its own batch id and
source), duplicates, commit and report (an S3 object's as the exact path reports it).

The group's S3 objects are fetched first; the writer lock is held from the group's first read to
its last commit, so the lake cannot change underneath: a file's rows are checked against the rows
stored before the group and those of the group's earlier files. Where no key of a file is in
either (the usual case), it is adopted as written; else its rows are checked against the lake at
its turn, exactly as the fast path does.

A file the group cannot prove clean (a bad row, a key twice, a file that changed since it was
listed, or one the group's read fails on: a malformed line fails the read of every file with it,
and the group is then read again in halves to find it) is ingested at its turn as if there were no
group: the fast path, then the exact path, with its line numbers and reasons. So are files that
are not canonical JSONL; and then the files after it in the group are checked against the lake at
their turn, as anything it stored may hold their keys. A group whose files span more (file, day)
partitions than one COPY keeps open is read in halves too.

A file whose content is stored already (a copy under another name, or the same objects read by
two runs at once) is reported at its turn as the fast path reports such a file, without being read
again; an S3 object whose fetch failed on the network is reported with that failure (botocore
retried it already; lib/ingest/s3.py stops reading a prefix whose endpoint stopped answering).

Groups are on by default; ``SIGHTLINE_INGEST_GROUP=0`` (or the fast path turned off) reads every
file alone. Measured in docs/benchmarks.md ("Small files").
"""

from __future__ import annotations

import collections
import glob
import io
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from lib import pricing, schema
from lib.ingest import fastpath
from lib.ingest.hints import column_hints
from lib.ingest.streams import HEAD_BYTES, SourceStream
from lib.schema import sql_identifier as _q
from lib.schema import sql_literal as _lit
from lib.store.connections import close as close_connection
from lib.store.connections import stop_if_interrupted
from lib.store.lake import Lake, _pause_for_tests

log = logging.getLogger(__name__)

# A file joins a group when it is at most this large as stored, and decompressed.
FILE_BYTES = 1 << 20
CONTENT_BYTES = 8 << 20
# A group: at most this many files, and bytes as stored. The lock is held while it is read and
# committed (~10 ms a small file), so other writers wait at most a few seconds.
GROUP_FILES = 256
GROUP_BYTES = 32 << 20
FILE_COLUMN = "_sl_file"  # read_json's column naming each row's file (no canonical name)
MEMBERS = "_sl_members"  # the registered table of a group's files and their lineage
# Partitions (file x day) the group's COPY keeps open: with fewer, it closes and reopens them
# as rows of different files arrive, and a file's day is written as several small files. A
# group with more is read in halves: ~500 open files of ~40 columns ran out of the COPY's
# memory (fastpath.MEMORY_LIMIT).
OPEN_FILES = GROUP_FILES
FETCH_THREADS = 8  # S3 objects of a group fetched at once (boto3's clients are thread-safe)
# How long fetches in flight when their prefix was given up (lib.ingest.s3's Breaker) are still
# waited for: one whose bytes are coming ends in milliseconds, one the endpoint never answers is
# abandoned (it cost a whole timeout more, botocore's retries included: ~90 s)
GIVEN_UP_WAIT_S = 5.0
# The group's COPY writes <out>/<MEMBER_DIR>=<file's index>/<DAY_DIR>=<day>/part-<n>.parquet;
# the index is read back from the end of each name (not as a hive partition, which takes the
# first such part of the whole path: a store under a folder named like it would mislead it).
MEMBER_DIR, DAY_DIR = "_sl_member", "_sl_day"
MEMBER_SQL = (f"CAST(regexp_extract(filename, '/{MEMBER_DIR}=([0-9]+)/{DAY_DIR}=[^/]*/[^/]*$', 1)"
              " AS INTEGER)")


def enabled() -> bool:
    # (with a memory setting that is no size, each file goes alone: its report names the setting)
    return os.environ.get("SIGHTLINE_INGEST_GROUP", "1") != "0" and fastpath.enabled() \
        and fastpath.memory_setting_ok()


def candidate(src, forced) -> bool:
    """Whether ``src`` may join a group, from what is known without reading it: small, with no
    format forced but canonical JSONL, and either a local file read whole (no continuation,
    nothing held back) that DuckDB may read by its name, or an S3 object (read into the group's
    scratch folder)."""
    from lib.ingest.formats import canonical

    local = bool(getattr(src, "path", None)) and not glob.has_magic(src.path)
    return ((local or _is_s3(src)) and src.continues is None
            and src.size is not None and 0 < src.size <= FILE_BYTES and enabled()
            and (forced is None or forced is canonical.JSONL))


def _is_s3(src) -> bool:
    return isinstance(src.info, dict) and isinstance(src.info.get("s3"), dict) \
        and not getattr(src, "path", None)


def run_at(sources: list, i: int, forced) -> int:
    """How many sources from ``i`` on are read as one group (0: fewer than two candidates in a
    row, which the fast path reads alone)."""
    n = total = 0
    while i + n < len(sources) and n < GROUP_FILES and candidate(sources[i + n], forced) \
            and total + sources[i + n].size <= GROUP_BYTES:
        total += sources[i + n].size
        n += 1
    return n if n >= 2 else 0


@dataclass
class _Member:
    """A file of the group, once read and hashed."""

    index: int
    src: object
    path: str  # what DuckDB reads: the file, or an S3 object's copy in the group's scratch
    stat0: os.stat_result | None  # a local file's, to tell it changed; None for a copy
    name: str  # its canonical table
    compressed: bool
    digest: str
    bytes_in: int
    bytes_out: int
    hints: list
    context_free: bool
    batch_id: str = ""
    # when its batch was read: the group's time, a microsecond apart in the run's order, which
    # the manifest sorts its commits by
    ingested_at: datetime | None = None
    rows: int = 0
    files: tuple = ()  # its Parquet files, one or more a day
    clean: bool = False
    check_stored: bool = False  # some key of it may be stored before its turn


@dataclass
class _Copy:
    """A file of the group whose content was stored before it was read (or is another file's
    of the group): reported as a copy at its turn, if its content is stored then."""

    digest: str
    bytes_in: int


@dataclass
class _Unfetched:
    """An S3 object of the group whose fetch failed on the network (lib.ingest.s3's
    network_failure), after botocore's retries: reported with it at its turn."""

    error: BaseException


def ingest(lake: Lake, sources: list, forced, overrides: dict,
           alone: Callable, done: Callable, tick_for: Callable) -> None:
    """Ingest ``sources`` (a group: :func:`run_at`) into ``lake``, in order: ``done(i, report)``
    is called with each source's FileReport as it is finished; a source the group does not take
    is ingested by ``alone(i)`` (which returns its report) at its turn. ``tick_for(i)`` gives
    the progress callback of source ``i`` (or None)."""
    started = time.monotonic()
    tmp = lake.tmp_dir / f"fast-group-{uuid.uuid4().hex}"
    # GETs in flight together: each waits on the network (~20-50 ms from S3 itself). All are
    # done before the lock is taken (at most GROUP_BYTES held): an endpoint that stalls keeps no
    # other writer waiting (a black hole held it ~4.5 min an object, found in review).
    fetcher = _Fetcher(sources, [i for i, src in enumerate(sources) if _is_s3(src)])
    try:
        fetcher.wait()
        # The lock from the first read on: each file asks whether its content is stored already,
        # and under the lock that is answered without listing the manifest again
        # (lib/store/lake.py)
        with lake.writer_lock():
            _ingest_group(lake, sources, forced, overrides, alone, done, tick_for, tmp, started,
                          fetcher.futures)
    finally:
        fetcher.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _ingest_group(lake: Lake, sources: list, forced, overrides: dict, alone: Callable,
                  done: Callable, tick_for: Callable, tmp: Path, started: float,
                  fetched: dict[int, Future]) -> None:
    from lib.ingest import pipeline

    members: dict[int, _Member] = {}
    known: dict[int, _Copy | _Unfetched] = {}
    digests: set[str] = set()
    for i, src in enumerate(sources):
        m = _read(lake, i, src, forced, digests, tmp, fetched.get(i))
        if isinstance(m, _Member):
            members[i] = m
            digests.add(m.digest)
        elif m is not None:
            known[i] = m

    def at_turn(i: int):
        """The report of source ``i``, which the group does not commit: what the group knows
        of it (a network failure; a copy, if its content is stored by now), else it is read
        alone."""
        k = known.get(i)
        if isinstance(k, _Unfetched):
            report = pipeline.FileReport(source=sources[i].name,
                                         error=pipeline._one_line(k.error)
                                         + pipeline._store_disk_note(lake))
        elif isinstance(k, _Copy) and _stored(lake, k.digest, forced):
            report = _copy_report(sources[i], k)
        else:
            return alone(i)
        report.seconds = (time.monotonic() - started) / len(sources)
        if lake.dry_run:
            report.end_dry_run()
        return report

    if len(members) < 2:  # nothing to share
        for i in range(len(sources)):
            done(i, at_turn(i))
        return
    _ingest_members(lake, sources, members, forced, overrides, at_turn, done, tick_for,
                    tmp, started)


def _changed(m: _Member) -> bool:
    """Whether the local file of ``m`` changed (or went) since it was hashed: then it is read
    alone, which reads what is there now, or reports it gone."""
    try:
        return m.stat0 is not None and fastpath._changed(m.stat0, m.path)
    except OSError:
        return True


def _fetch(src) -> bytes:
    """The bytes of the S3 object ``src`` (at most FILE_BYTES + 1: more is too large)."""
    raw = src.open()
    try:
        return raw.read(FILE_BYTES + 1)
    finally:
        raw.close()


class _Fetcher:
    """The S3 objects ``sources[i]`` for ``i`` in ``indexes`` fetched (:func:`_fetch`) by up to
    FETCH_THREADS daemon threads; ``futures[i]`` holds each one's bytes (or what its GET
    raised).

    Not a ThreadPoolExecutor: the interpreter joins its threads when it exits, and
    ``shutdown(wait=True)`` waited for them too, so a run told to stop (cron's ``timeout``: SIGTERM;
    Ctrl-C) during a fetch stuck on a socket went on until the fetch timed out (exit 143 came
    ~175 s after the signal, found in review). :meth:`stop` leaves a fetch in flight to its
    socket's timeout, in a thread the exit does not wait for; nothing of it is kept. So does
    :meth:`wait`, for the fetches of a prefix given up (lib.ingest.s3's Breaker)."""

    def __init__(self, sources: list, indexes: list[int]):
        self._sources = sources
        self.futures: dict[int, Future] = {i: Future() for i in indexes}
        self._todo = collections.deque((i, sources[i]) for i in indexes)
        self._lock = threading.Lock()
        for _ in range(min(FETCH_THREADS, len(indexes))):
            threading.Thread(target=self._work, name="sightline-s3-fetch", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._todo:
                    return
                i, src = self._todo.popleft()
            future = self.futures[i]
            try:
                if not future.set_running_or_notify_cancel():
                    continue
            except RuntimeError:  # (abandoned before it began: wait())
                continue
            try:
                data = _fetch(src)
            except BaseException as exc:  # (raised by result(), in the group's thread)
                self._settle(future, exc=exc)
            else:
                self._settle(future, data)

    @staticmethod
    def _settle(future: Future, data: bytes | None = None, exc: BaseException | None = None):
        try:
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(data)
        except InvalidStateError:  # (abandoned meanwhile: wait())
            pass

    def wait(self) -> None:
        """Until every fetch is done, or those not done are of prefixes given up and still not
        done GIVEN_UP_WAIT_S later: they are abandoned, as the objects not read are. A signal's
        KeyboardInterrupt ends the wait."""
        from lib.ingest import s3

        pending = {future: i for i, future in self.futures.items()}
        until = None  # when the fetches left are abandoned
        while pending:
            wait(list(pending), return_when=FIRST_COMPLETED,
                 timeout=None if until is None else max(until - time.monotonic(), 0))
            pending = {future: i for future, i in pending.items() if not future.done()}
            if not pending:
                return
            if until is None and all(s3.given_up(self._sources[i]) for i in pending.values()):
                until = time.monotonic() + GIVEN_UP_WAIT_S
            elif until is not None and time.monotonic() >= until:
                for future, i in pending.items():
                    self._settle(future, exc=s3.abandon(self._sources[i]))
                return

    def stop(self) -> None:
        """Fetch nothing more; a fetch in flight is not waited for."""
        with self._lock:
            self._todo.clear()
        for future in self.futures.values():
            future.cancel()


def _ingest_members(lake: Lake, sources: list, members: dict, forced, overrides: dict,
                    alone: Callable, done: Callable, tick_for: Callable, tmp: Path,
                    started: float) -> None:
    """Read the ``members`` of ``sources`` together, then finish each source in order (with the
    writer lock held since the members were read: no commit came in between)."""
    from lib.ingest import pipeline

    ingested_at = datetime.now(UTC)
    con, own = fastpath.shared_or_own(tmp, tmp / "spill")
    try:
        parts: dict[tuple[str, bool], list[_Member]] = {}
        for m in members.values():
            m.batch_id = uuid.uuid4().hex
            m.ingested_at = ingested_at + timedelta(microseconds=m.index)
            m.clean = True
            parts.setdefault((m.name, m.compressed), []).append(m)
        for part in parts.values():
            _read_together(con, part, overrides, tmp, ingested_at)
        for name in {m.name for m in members.values()}:
            clean = [m for m in members.values() if m.clean and m.name == name]
            try:
                _mark_maybe_stored(lake, con, clean)
            except Exception as exc:  # then each is checked at its turn
                stop_if_interrupted(exc)
                log.info("group read: checking for stored keys failed: %s", exc)
                for m in clean:
                    m.check_stored = True
        _pause_for_tests("after_group_read")
        seconds = (time.monotonic() - started) / len(sources)
        stored_alone = False
        for i, src in enumerate(sources):
            m = members.get(i)
            if m is None or not m.clean or _changed(m):
                report = alone(i)
                stored_alone = stored_alone or bool(report.stored) \
                    or bool(report.duplicates)
                done(i, report)
                continue
            t0 = time.monotonic()
            try:
                report = _commit(lake, con, m, forced, tick_for(i), started,
                                 check_stored=m.check_stored or stored_alone)
            except Exception as exc:  # its batch was aborted: nothing of it is stored
                stop_if_interrupted(exc)
                log.info("group read: %s is read alone: %s", src.name, exc)
                report = alone(i)
                stored_alone = True
                done(i, report)
                continue
            report.seconds = seconds + time.monotonic() - t0
            if lake.dry_run:
                report.end_dry_run()
            pipeline._pause_for_tests("after_commit")
            done(i, report)
    finally:
        if own:
            close_connection(con)


def _read(lake: Lake, i: int, src, forced, digests: set[str], tmp: Path,
          fetched: Future | None) -> _Member | _Copy | _Unfetched | None:
    """The source ``src`` read and hashed as a group member (an S3 object, ``fetched`` by
    :func:`_fetch`, copied into ``tmp``); a :class:`_Copy` when its content was stored before or
    is another member's; an :class:`_Unfetched` S3 object (a network failure); or None: it is
    read alone at its turn (not canonical JSONL, a byte order mark, a compression DuckDB does
    not read, unreadable, too large, changed since it was listed)."""
    from lib.ingest import s3
    from lib.ingest.formats import canonical

    st = None
    try:
        if _is_s3(src):
            data = fetched.result()  # (raises what the GET raised)
            size = src.size
        else:
            st = os.stat(src.path)
            if fastpath.changed_since_listed(src, st):
                return None
            with open(src.path, "rb") as fh:
                data = fh.read(FILE_BYTES + 1)
            size = st.st_size
    except Exception as exc:
        stop_if_interrupted(exc)
        # The endpoint failed it after botocore's retries: fetched again alone, it cost the
        # same wait again (~4.5 min an object for an endpoint that stopped answering, found in
        # review). Anything else (deleted or replaced since listed, denied) the source alone
        # reports.
        return _Unfetched(exc) if _is_s3(src) and s3.network_failure(exc) else None
    if not data or len(data) != size or len(data) > FILE_BYTES:
        return None
    try:
        stream = SourceStream(io.BytesIO(data))
        head = stream.peek(HEAD_BYTES)
        name, _why = fastpath.table_to_read(head, stream, src.filename, forced)
        if name is None:
            return None
        content = bytearray()
        while chunk := stream.read(1 << 20):
            content += chunk
            if len(content) > CONTENT_BYTES:
                return None
        digest = stream.hexdigest()
    except Exception as exc:  # truncated or corrupt gzip: the exact path reports it
        stop_if_interrupted(exc)
        return None
    if fastpath.not_json_whitespace(content):  # not valid JSON: the exact path's lines
        return None
    if digest in digests or _stored(lake, digest, forced):
        # Reported as a copy at its turn, not read again (it was fetched a second time and
        # parsed whole by the exact path before being found a copy: 600 objects of stored
        # content took 132 s, 30 s as new content, found in review)
        return _Copy(digest, stream.bytes_in)
    path = src.path
    if st is None:
        try:
            tmp.mkdir(parents=True, exist_ok=True)
            path = str(tmp / f"object-{i}")
            with open(path, "wb") as fh:
                fh.write(data)
        except OSError:
            return None
    return _Member(index=i, src=src, path=path, stat0=st, name=name,
                   compressed=stream.compressed,
                   digest=digest, bytes_in=stream.bytes_in, bytes_out=len(content),
                   hints=column_hints(canonical.JSONL.name, head),
                   context_free=not pricing.may_hold_context(content))


def _stored(lake: Lake, digest: str, forced) -> bool:
    """Whether canonical JSONL content with SHA-256 ``digest`` adds nothing, as the fast path
    asks (lib.ingest.pipeline.content_stored)."""
    from lib.ingest import pipeline
    from lib.ingest.formats import canonical

    return pipeline.content_stored(lake, digest, canonical.JSONL, forced)


def _copy_report(src, copy: _Copy):
    """The report of ``src``, a copy of stored content, as the fast path gives it for a file
    whose content was ingested before (lib.ingest.fastpath.try_ingest): the caller records it
    as seen, as for any source so reported."""
    from lib.ingest import pipeline

    report = pipeline.FileReport(source=src.name, format="jsonl", content_hash=copy.digest,
                                 bytes=copy.bytes_in)
    pipeline._as_duplicate(report)
    fastpath.LAST.clear()
    fastpath.LAST.update(source=src.name, outcome="duplicate", reason=None, group=True)
    return report


def _read_together(con, part: list[_Member], overrides: dict, tmp: Path,
                   ingested_at: datetime) -> None:
    """Check, price and write the files of ``part`` (one table, one compression) in one pass;
    a file is left ``clean`` when every row of it was written and no key is in it twice. A pass
    that fails is tried again in halves, down to the file that fails it (not clean)."""
    try:
        _pass(con, part, overrides, tmp / f"part-{part[0].index}", ingested_at)
    except Exception as exc:
        stop_if_interrupted(exc)
        if len(part) == 1:
            part[0].clean = False
            log.info("group read: %s is read alone: %s", part[0].src.name, exc)
            return
        half = len(part) // 2
        _read_together(con, part[:half], overrides, tmp, ingested_at)
        _read_together(con, part[half:], overrides, tmp, ingested_at)


def _pass(con, part: list[_Member], overrides: dict, out: Path, ingested_at: datetime) -> None:
    """One pre-pass and one COPY over the files of ``part`` into ``out``; sets each member's
    ``rows``, ``files`` and ``clean``. Raises on any doubt about the part as a whole (a line
    DuckDB cannot read, a price key unlike the pre-pass's, too many partitions)."""
    from lib.ingest import pipeline
    from lib.ingest.validate import checked_sql, time_range

    name, compressed = part[0].name, part[0].compressed
    paths = [Path(m.path) for m in part]
    shutil.rmtree(out, ignore_errors=True)  # (a half tried again)
    plan = fastpath.prepass(con, name, fastpath.maps_sql(paths, compressed, FILE_COLUMN),
                            all(m.context_free for m in part), FILE_COLUMN, overrides)
    partitions = sum(len(p.days) for p in plan.by_file.values())
    if partitions > OPEN_FILES and len(part) > 1:
        raise _TooManyPartitions(f"{partitions} (file, day) partitions: read in halves")
    keys = plan.keys
    extra = keys - set(schema.TABLES[name].names)
    present = {c: pa.string() for c in schema.TABLES[name].names if c in keys}
    checked = checked_sql(
        name, present, f"({fastpath.rows_sql(name, paths, compressed, keys, FILE_COLUMN)})",
        extras_json=fastpath.EXTRAS_ALIAS if extra else None, carry=(FILE_COLUMN,),
        other_tables=True)
    source, joins, priced = fastpath.priced_source(con, name, checked, plan, overrides,
                                                  ingested_at)
    con.register(MEMBERS, pa.table({
        "path": [m.path for m in part], "f": [m.index for m in part],
        "source": [m.src.name for m in part], "batch": [m.batch_id for m in part],
        "at": pa.array([m.ingested_at for m in part], pa.timestamp("us", tz="UTC"))}))
    try:
        select = (f"SELECT {pipeline.output_select(name, 'g.source', 'g.batch', 'g.at')}, "
                  f"g.f AS {MEMBER_DIR}, strftime(p.ts, '%Y-%m-%d') AS {DAY_DIR} "
                  f"FROM {source} p JOIN {MEMBERS} g ON g.path = p.{_q(FILE_COLUMN)} {joins} "
                  f"WHERE p._reason IS NULL{priced}")
        con.execute(f"SET partitioned_write_max_open_files = {OPEN_FILES}")
        try:
            con.execute(
                f"COPY ({select}) TO {_lit(str(out))} (PARTITION_BY ({MEMBER_DIR}, {DAY_DIR}), "
                f"FILENAME_PATTERN 'part-{{i}}', FORMAT parquet, COMPRESSION zstd, "
                f"COMPRESSION_LEVEL 1, ROW_GROUP_SIZE {fastpath.ROW_GROUP_ROWS})",
                time_range(ingested_at))
        finally:
            con.execute(f"SET partitioned_write_max_open_files = {fastpath.MAX_OPEN_FILES}")
    finally:
        con.unregister(MEMBERS)
    files = sorted(glob.glob(str(out / f"{MEMBER_DIR}=*" / f"{DAY_DIR}=*" / "*.parquet")))
    key = schema.KEYS[name]
    written = {}
    if files:
        written = {f: (n, repeats) for f, n, repeats in con.execute(
            f"SELECT {MEMBER_SQL} AS f, count(*), count(*) - count(DISTINCT {_q(key)}) "
            f"FROM {_written('$files')} GROUP BY f", {"files": files}).fetchall()}
    by_member: dict[str, list[str]] = {}
    for f in files:  # .../<MEMBER_DIR>=<index>/<DAY_DIR>=<day>/part-<n>.parquet
        by_member.setdefault(os.path.basename(os.path.dirname(os.path.dirname(f))), []).append(f)
    for m in part:
        rows = plan.by_file[m.path].rows if m.path in plan.by_file else 0
        n, repeats = written.get(m.index, (0, 0))
        m.rows = rows
        m.files = tuple(by_member.get(f"{MEMBER_DIR}={m.index}", ()))
        m.clean = n == rows and repeats == 0
        if not m.clean:
            log.info("group read: %s is read alone: %s", m.src.name,
                     f"{rows - n} rows fail validation" if n != rows
                     else "a key repeated within the file")


def _written(files: str) -> str:
    """The rows of the group's written Parquet ``files`` (SQL), with each one's ``filename``."""
    return f"read_parquet({files}, filename = true, hive_partitioning = false)"


class _TooManyPartitions(Exception):
    """A group whose files span more (file, day) partitions than one COPY keeps open."""


def _mark_maybe_stored(lake: Lake, con, clean: list[_Member]) -> None:
    """Mark the files of ``clean`` (one table) whose rows need checking against the lake at
    their turn: a key of theirs is stored already (on their days or either side, as the fast
    path checks), or is in another file of the group."""
    files = [f for m in clean for f in m.files]
    if not files:
        return
    name = clean[0].name
    key = _q(schema.KEYS[name])
    days = {Path(f).parent.name.split("=", 1)[1] for f in files}
    known = lake._files_of_days(name, days)
    stored = f" OR {key} IN (SELECT {key} FROM read_parquet($known))" if known else ""
    flagged = {f for (f,) in con.execute(
        f"WITH g AS (SELECT {MEMBER_SQL} AS f, {key} FROM {_written('$files')}) "
        f"SELECT DISTINCT f FROM g WHERE {key} IN "
        f"(SELECT {key} FROM g GROUP BY ALL HAVING count(DISTINCT f) > 1){stored}",
        {"files": files, **({"known": known} if known else {})}).fetchall()}
    for m in clean:
        m.check_stored = m.index in flagged


def _commit(lake: Lake, con, m: _Member, forced, tick, started: float,
            *, check_stored: bool):
    """Commit the group member ``m`` (read under the format ``forced``, None or canonical JSONL)
    as its own batch; returns its FileReport."""
    from lib.ingest import pipeline
    from lib.ingest.formats import canonical

    src = m.src
    report = pipeline.FileReport(source=src.name)
    report.bytes, report.format, report.content_hash = m.bytes_in, "jsonl", m.digest
    if tick:  # hashed (a callback that raises fails this source before anything is stored)
        tick(pipeline.Progress(src.name, report.bytes, src.size, 0,
                               time.monotonic() - started, stage="writing"))
    with lake.begin(src.name, info={**src.info, "format": "jsonl"}, batch_id=m.batch_id,
                    ingested_at=m.ingested_at) as batch:
        report.batch_id = batch.batch_id
        if tick:  # read and written (as the fast path says before its commit)
            tick(pipeline.Progress(src.name, report.bytes, src.size, m.rows,
                                   time.monotonic() - started, stage="committing"))
        dupes = fastpath.adopt_new_rows(lake, batch, con, m.name, list(m.files),
                                        deduplicate=check_stored)
        result = batch.commit(content_hash=pipeline.batch_identity(
            m.digest, canonical.JSONL, forced), info=fastpath.commit_info(
            src, m.digest, m.compressed, m.bytes_out, m.hints, ingest_path="group"))
    if result.duplicate_batch:  # (the lock was held since the group was read: cannot be)
        pipeline._as_duplicate(report)
        return report
    report.rows_read = m.rows
    report.hints = m.hints
    stored = m.rows - dupes
    report.stored, report.duplicates = {m.name: stored}, {m.name: dupes}
    fastpath.LAST.clear()
    fastpath.LAST.update(source=src.name, outcome="fast", reason=None, group=True)
    if tick:
        try:
            tick(pipeline.Progress(src.name, report.bytes, src.size, m.rows,
                                   time.monotonic() - started))
        except Exception as exc:  # after the commit: reported as the fast path reports it
            stop_if_interrupted(exc)
            report.error = pipeline._one_line(exc)
            report.stored, report.duplicates = {}, {}
    return report
