"""The optimistic fast path for canonical JSONL files (plain or gzip) on local disk.

Most files are clean: every line a JSON object, every row valid, no key twice.
For those, DuckDB reads the file itself (``read_json``, no Python in the loop), checks the rows with
the same SQL as the exact path (lib.ingest.validate.checked_sql), prices them in SQL and writes the
good rows straight to per-day Parquet files with ``COPY ... TO``; the files join the lake in one
manifest commit (Lake's BatchWriter.adopt_file), atomically like any batch.

It proves the file clean on the way and gives up (returns False, leaving the store as it was) at
the first doubt; the exact path in lib/ingest/pipeline.py then ingests the file, with line numbers
and reasons for every bad line. Doubts: a line DuckDB cannot read (malformed JSON, not an object,
a key twice in an object, invalid UTF-8: the read raises), a row failing validation (fewer rows
written than read), a key repeated within the file, or a file that changes while read (blank and
whitespace-only lines are skipped by both paths alike, so they are no doubt). Keys that are not
canonical columns are read as JSON values and folded into ``attributes`` with the exact path's
text (keys sorted, nulls dropped). Rows already in the lake are dropped here as on the exact
path.

Order: the decompressed content is hashed first (SHA-256, streaming), so a file ingested before is
a no-op before any parsing.

A pre-pass reads each line as ``MAP(VARCHAR, VARCHAR)`` for the file's keys (``read_json`` with
named columns drops any other key silently) and what to price: each (provider, model, day, price
context), the context being the ``processing`` and ``service_tier`` of the line's attributes or
top level (lib/pricing.py); the main pass then reads exactly those keys, canonical ones as text
(the text ``from_json`` gives the exact path, so typing and checks are the same SQL), and prices
each row in its context.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib
import logging
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lib import pricing, schema
from lib.ingest import appended
from lib.ingest.hints import column_hints
from lib.ingest.streams import (
    HEAD_BYTES,
    MAX_LINE_BYTES,
    UTF8_BOM,
    SourceStream,
    objects_back_to_back,
)
from lib.schema import sql_identifier as _q
from lib.schema import sql_literal as _lit
from lib.store.connections import close as close_connection
from lib.store.connections import connect, memory_limit, stop_if_interrupted
from lib.store.lake import Lake, _pause_for_tests

log = logging.getLogger(__name__)

# DuckDB's memory for the fast path, whatever the file's size. At 256 MB its COPY of ~40 text
# columns thrashed (2-4x slower) or ran out of memory; from 512 MB on (with DuckDB's default row
# groups) it runs at full speed. bench/ingest_bench.py measures the process's peak.
MEMORY_ENV, MEMORY_LIMIT = "SIGHTLINE_INGEST_FAST_MEMORY", "512MB"
THREADS = 2
ROW_GROUP_ROWS = 122_880  # DuckDB's default; 256k rows cost ~190 MB more RSS, no speed
HASH_READ_BYTES = 4 << 20
# Rows a partition (day) of the COPY buffers before it writes a row group, and the files it keeps
# open: together they bound the COPY's memory whatever the number of days in the file.
FLUSH_ROWS = 64 * 1024
MAX_OPEN_FILES = 8

# What the last call did, for tests and debugging: {"source", "outcome", "reason"}.
LAST: dict = {}


class Fallback(Exception):
    """The file could not be proven clean: use the exact path."""


def enabled() -> bool:
    return os.environ.get("SIGHTLINE_INGEST_FAST", "1") != "0"


def memory_setting_ok() -> bool:
    """Whether ``$SIGHTLINE_INGEST_FAST_MEMORY`` is a memory size (or unset)."""
    try:
        memory_limit(MEMORY_ENV, MEMORY_LIMIT)
    except ValueError:
        return False
    return True


def try_ingest(lake: Lake, src, forced, overrides: dict, report, progress, started: float) -> bool:
    """Ingest ``src`` through the fast path into ``report``; False when the exact path must
    (not a local canonical JSONL file, or not provably clean), with nothing stored."""
    from lib.ingest import pipeline
    from lib.ingest.formats import canonical

    path = getattr(src, "path", None)
    LAST.clear()
    LAST.update(source=src.name, outcome="exact", reason="not a local file")
    if not path or not enabled():
        return False
    # Raised here, outside the fall back to the exact path below, so the file's report names
    # the variable: a typo in it was ignored without a word (every file took the exact path).
    memory_limit(MEMORY_ENV, MEMORY_LIMIT)
    if glob.has_magic(path):
        # DuckDB's readers take a name as a glob: "c?.jsonl" would also read "cx.jsonl"
        LAST.update(reason="a name DuckDB would read as a glob (* ? [): the exact path reads it")
        return False
    LAST.update(reason=NOT_CANONICAL)
    stat0 = os.stat(path)
    if changed_since_listed(src, stat0):
        # written to since the source was looked at (lib.ingest.live.unfinished_tail): the
        # exact path reads the bytes that were checked, no more
        LAST.update(reason="the file changed after it was listed")
        return False
    fmt = canonical.JSONL
    with open(path, "rb") as raw:
        try:
            stream = SourceStream(raw)
            head = stream.peek(HEAD_BYTES)
        except Exception as exc:
            stop_if_interrupted(exc)
            return False
        name, why = table_to_read(head, stream, src.filename, forced)
        if name is None:
            LAST.update(reason=why)
            return False
        # The duckdb module imports pandas on its first bound parameter: 0.3 s of interpreter
        # work, done meanwhile in a thread (hashing releases the GIL) instead of after the hash.
        if "pandas" not in sys.modules:
            threading.Thread(target=_import_quietly, args=("pandas",), daemon=True).start()
        # A small file read whole that holds no context key's text prices without the context
        # SQL (~11 ms of planning, a sixth of a few-KB file's ingest).
        context_free = len(head) < HEAD_BYTES and not pricing.may_hold_context(head)
        # 1. The content hash, before any parsing.
        try:
            if not stream.compressed:  # plain: hash the file directly, without a copy per read
                stream = _PlainHash(raw)
            while data := stream.read(HASH_READ_BYTES):
                if not_json_whitespace(data):
                    LAST.update(reason=NOT_JSON_WHITESPACE)
                    return False
        except Exception as exc:  # truncated or corrupt gzip: the exact path reports it
            stop_if_interrupted(exc)
            LAST.update(reason=f"unreadable: {exc}")
            return False
        LAST["hashed_s"] = time.monotonic() - started
        digest = stream.hexdigest()
        compressed = stream.compressed
        report.bytes, report.format, report.content_hash = stream.bytes_in, fmt.name, digest
        hints = column_hints(fmt.name, head)
        bytes_out = stream.bytes_out
    if pipeline.content_stored(lake, digest, fmt, forced):
        pipeline._as_duplicate(report)
        LAST.update(outcome="duplicate", reason=None)
        return True

    def tick(rows: int, stage: str | None = None) -> None:
        if progress:
            progress(pipeline.Progress(src.name, report.bytes, src.size, rows,
                                       time.monotonic() - started, stage=stage))

    tick(0, "checking")  # hashed: the rows are read and checked next
    try:
        with lake.begin(src.name, info={**src.info, "format": fmt.name}) as batch:
            report.batch_id = batch.batch_id
            identity = pipeline.batch_identity(digest, fmt, forced)
            if lake.has_content(identity):  # committed while we hashed (checked under the lock)
                pipeline._as_duplicate(report)
                LAST.update(outcome="duplicate", reason=None)
                return True
            tmp = lake.tmp_dir / f"fast-{batch.batch_id}"
            try:
                stored, dupes, rows = _load(lake, batch, Path(path), compressed, name, overrides,
                                            context_free, tmp, tick, started)
                if _changed(stat0, path):
                    raise Fallback("the file changed while it was read")
                # Before the commit releases the lock: a kill after it leaves no scratch behind.
                shutil.rmtree(tmp, ignore_errors=True)
                result = batch.commit(content_hash=identity, info=commit_info(
                    src, digest, compressed, bytes_out, hints))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except Fallback as exc:
        LAST.update(outcome="fallback", reason=str(exc))
        log.info("fast path not taken for %s: %s", src.name, exc)
        _reset(report)
        return False
    except Exception as exc:  # DuckDB could not read the file as clean canonical JSONL
        stop_if_interrupted(exc)
        LAST.update(outcome="fallback", reason=pipeline._one_line(exc))
        log.info("fast path not taken for %s: %s", src.name, exc)
        _reset(report)
        return False
    if result.duplicate_batch:
        pipeline._as_duplicate(report)
        LAST.update(outcome="duplicate", reason=None)
        return True
    report.rows_read = rows
    report.hints = hints
    report.stored = {name: stored}
    report.duplicates = {name: dupes}
    LAST.update(outcome="fast", reason=None)
    pipeline._pause_for_tests("after_commit")
    tick(rows)
    return True


NOT_CANONICAL = "not canonical JSONL"
NOT_JSON_WHITESPACE = ("a form feed or vertical tab, which DuckDB's read_json takes for "
                       "whitespace and JSON does not: the exact path reads it")


def not_json_whitespace(data: bytes) -> bool:
    """Whether ``data`` holds a form feed or vertical tab. JSON's whitespace is space, tab, CR
    and LF alone, and a string holds no raw control character, so a line with either is not
    valid JSON (the exact path quarantines it); DuckDB's read_json skips them as whitespace
    (a line of "\f" vanished, "\f{...}" was stored). Never inside a UTF-8 sequence."""
    return b"\x0c" in data or b"\x0b" in data


def changed_since_listed(src, st: os.stat_result) -> bool:
    """Whether the local file ``src`` (its stat now: ``st``) was written to since it was listed
    (the size and mtime its ``info`` recorded then)."""
    seen = (src.info.get("file") or {}) if isinstance(src.info, dict) else {}
    return bool(seen) and (st.st_size, st.st_mtime_ns) != (seen.get("size"),
                                                            seen.get("mtime_ns"))


def table_to_read(head: bytes, stream, filename: str, forced) -> tuple[str | None, str]:
    """(the canonical table, "") of a source the fast path can read, from its first decompressed
    bytes ``head`` (``stream``: its SourceStream), its ``filename`` and the format ``forced``;
    (None, why) when the exact path must read it: not canonical JSONL (or its quarantine), a
    byte order mark DuckDB's read_json refuses, a compression DuckDB does not read."""
    from lib.ingest import pipeline
    from lib.ingest.formats import canonical

    if not head:
        return None, NOT_CANONICAL
    fmt = forced or pipeline.detect_format(head, pipeline._strip_compression(filename))
    name = canonical.jsonl_table_of_head(head) if fmt is canonical.JSONL else None
    if name not in schema.TABLES or name == "quarantine":
        return None, NOT_CANONICAL
    if head.startswith(UTF8_BOM):
        return None, "a byte order mark, which DuckDB's read_json refuses: the exact path reads it"
    if stream.transcoded:
        return None, "UTF-16 text, which DuckDB's read_json does not read: the exact path reads it"
    if objects_back_to_back(head):
        return None, "JSON objects back to back, not one a line: the exact path reads them"
    if getattr(stream, "zero_bytes_skipped", 0):
        return None, "zero bytes at its start, which DuckDB's read_json refuses: the exact path " \
            "reads past them"
    if stream.compression not in (None, "gzip"):  # DuckDB reads these two itself
        return None, f"{stream.compression} compression: the exact path reads it"
    return name, ""


def commit_info(src, digest: str, compressed: bool, bytes_out: int, hints: list,
                ingest_path: str = "fast") -> dict:
    """What the commit of a source the fast path (or a group: ``ingest_path`` "group") read
    records beside its own ``info``: its decompressed bytes, the path, the read
    (lib/ingest/appended.py), its hints."""
    return {"bytes": bytes_out, "ingest_path": ingest_path,
            **appended.read_info(src, digest, compressed, bytes_out),
            **({"hints": hints} if hints else {})}


def adopt_new_rows(lake: Lake, batch, con, name: str, files: list[str], *,
                   deduplicate: bool = True) -> int:
    """Adopt into ``batch`` the Parquet files ``files`` of table ``name``, each in a folder
    ``<column>=YYYY-MM-DD`` naming its day, without the rows whose key is already in the lake
    (with ``deduplicate``; the caller knows there are none otherwise). Returns how many rows
    were dropped, counted in the batch as duplicates."""
    key = schema.KEYS[name]
    dupes = 0
    for f in files:
        day = Path(f).parent.name.split("=", 1)[1]
        n = pq.ParquetFile(f).metadata.num_rows
        # Rows already in the lake: only its files of the same days (and either side) hold them.
        known = lake._files_of_days(name, [day]) if deduplicate else []
        if known:
            keep = (f"FROM read_parquet({_lit(f)}) WHERE {_q(key)} NOT IN "
                    f"(SELECT {_q(key)} FROM read_parquet($known))")
            left = con.execute(f"SELECT count(*) {keep}", {"known": known}).fetchone()[0]
            if left < n:
                dupes += n - left
                if left:
                    g = f + ".dedup.parquet"
                    con.execute(f"COPY (SELECT * {keep}) TO {_lit(g)} (FORMAT parquet, "
                                f"COMPRESSION zstd, COMPRESSION_LEVEL 1, "
                                f"ROW_GROUP_SIZE {ROW_GROUP_ROWS})", {"known": known})
                    os.replace(g, f)
                else:
                    os.unlink(f)
                n = left
        if n:
            batch.adopt_file(name, day, f, n)
    batch.count_duplicates(name, dupes)
    return dupes


def _import_quietly(module: str) -> None:
    try:
        importlib.import_module(module)
    except Exception as exc:  # only a head start: the real import reports any error
        stop_if_interrupted(exc)


class _PlainHash:
    """The hash of a plain file read from its start, with SourceStream's counters."""

    compressed = False

    def __init__(self, raw):
        raw.seek(0)
        self._raw, self._hash, self.bytes_in = raw, hashlib.sha256(), 0

    @property
    def bytes_out(self) -> int:
        return self.bytes_in

    def read(self, n: int) -> bytes:
        data = self._raw.read(n)
        self._hash.update(data)
        self.bytes_in += len(data)
        return data

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _reset(report) -> None:
    report.format = report.content_hash = report.batch_id = None
    report.bytes = report.rows_read = 0
    report.stored, report.duplicates = {}, {}


def _changed(stat0: os.stat_result, path: str) -> bool:
    """Whether the file at ``path`` may hold other bytes than when ``stat0`` was taken: ctime
    too, which any write moves and no tool sets back (a rewrite keeping size and mtime, as
    ``cp -p`` or ``touch -r`` leave it, is seen). Raises OSError when it is gone."""
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) != (
        stat0.st_size, stat0.st_mtime_ns, stat0.st_ctime_ns, stat0.st_ino)


_SHARED = threading.local()  # a run's connection (reused_connection), per thread


@contextlib.contextmanager
def reused_connection(lake: Lake):
    """Within it, the files this thread ingests share one connection, closed at the end: a new
    one costs 20-25 ms (connecting, settings, the first statements' setup), a third of a few-KB
    file's ingest."""
    if getattr(_SHARED, "state", None) is not None:  # nested: the outer one's
        yield
        return
    # the lake, not its tmp_dir: a dry run's scratch folder is made only if a file needs it
    _SHARED.state = {"lake": lake, "cons": {}}
    try:
        yield
    finally:
        state, _SHARED.state = _SHARED.state, None
        for con in state["cons"].values():
            close_connection(con)


def run_connection():
    """A connection this thread's run (:func:`reused_connection`) has opened, else None: for a
    small read after its files (a cursor of it costs nothing; a new connection 8 ms)."""
    state = getattr(_SHARED, "state", None)
    return next(iter(state["cons"].values()), None) if state is not None else None


def shared_or_own(tmp: Path, spill: Path, kind: str = "fast", make=None):
    """(connection, whether the caller closes it): the run's shared one of this ``kind`` (each
    path configures its own) when in :func:`reused_connection` for this lake, else a new one,
    ``make()`` (default: the fast path's for ``tmp``). It spills into ``spill``, in the file's own
    scratch folder ``tmp``, deleted with it before the commit, so a kill after a commit leaves
    nothing behind; DuckDB refuses to switch once it has spilled, and a new one is opened."""
    import duckdb

    make = make or (lambda: _connection(tmp))
    state = getattr(_SHARED, "state", None)
    if state is None or state["lake"].tmp_dir != tmp.parent:
        return make(), True
    con = state["cons"].get(kind)
    if con is not None:
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            con.execute(f"SET temp_directory = {_lit(str(spill))}")
        except duckdb.Error:
            close_connection(con)
            con = None
    if con is None:
        con = state["cons"][kind] = make()
    return con, False


def _connection(tmp: Path):

    tmp.mkdir(parents=True, exist_ok=True)
    con = connect(config={
        "memory_limit": memory_limit(MEMORY_ENV, MEMORY_LIMIT),
        "temp_directory": str(tmp / "spill"), "threads": THREADS,
        "preserve_insertion_order": False, "allocator_flush_threshold": "16MB",
        "autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute("SET TimeZone = 'UTC'")
    # The joins here are written with the small side (price tables) on the right, to be hashed.
    # Not knowing read_json's row count, DuckDB swapped them past ~1M rows and hashed the file's
    # rows instead: the main pass took 8.2 s instead of 3.9 s for 3M rows (spilling, growing
    # faster than the file).
    con.execute("SET disabled_optimizers = 'build_side_probe_side'")
    con.execute(f"SET partitioned_write_flush_threshold = {FLUSH_ROWS}")
    con.execute(f"SET partitioned_write_max_open_files = {MAX_OPEN_FILES}")
    return con


def _read_json(path: Path | list[Path], compressed: bool, columns: str, records: bool = True,
               filename: str | None = None) -> str:
    """``read_json`` of one file or a list; with ``filename``, each row's file in that column."""
    paths = ("[" + ", ".join(_lit(str(p)) for p in path) + "]" if isinstance(path, list)
             else _lit(str(path)))
    named = f", filename = {_lit(filename)}" if filename else ""
    return (f"read_json({paths}, format = 'newline_delimited', "
            f"records = {'true' if records else 'false'}, "
            f"compression = '{'gzip' if compressed else 'uncompressed'}', "
            f"maximum_object_size = {MAX_LINE_BYTES}, columns = {columns}{named})")


EXTRAS_ALIAS = "_fast_extras"


def rows_sql(name: str, path: Path | list[Path], compressed: bool, keys=None,
             filename: str | None = None) -> str:
    """The lines of ``path`` (or of a list of files) as rows of the canonical columns of ``name``
    (only those in ``keys`` when given) as text: the text ``from_json`` gives the exact path
    (numbers as written, nested values as JSON). Keys in ``keys`` that are not canonical columns
    are read as JSON values and given as one object, ``_fast_extras`` (see :func:`extras_sql`).
    With ``filename``, each row's file is in that column."""
    names = [c for c in schema.TABLES[name].names if keys is None or c in keys]
    extra = sorted(set(keys or ()) - set(schema.TABLES[name].names))
    cols = "{" + ", ".join([f"{_lit(c)}: 'VARCHAR'" for c in names]
                           + [f"{_lit(c)}: 'JSON'" for c in extra]) + "}"
    select = ", ".join([_q(c) for c in names] + ([f"{extras_sql(extra)} AS {EXTRAS_ALIAS}"]
                                                 if extra else [])
                       + ([_q(filename)] if filename else []))
    return f"SELECT {select} FROM {_read_json(path, compressed, cols, True, filename)}"


def extras_sql(keys: list[str]) -> str:
    """The JSON object (text) of the row's non-null values of the columns ``keys`` (read as JSON),
    NULL when none: the text the exact path folds into ``attributes``."""
    from lib.ingest.formats.canonical import json_object_sql

    entries = ", ".join(f"{{'k': {_lit(k)}, 'v': {_q(k)}}}" for k in keys)
    return json_object_sql(f"list_filter([{entries}], "
                           f"e -> e.v IS NOT NULL AND json_type(e.v) <> 'NULL')")


def maps_sql(path: Path | list[Path], compressed: bool, filename: str | None = None) -> str:
    """The lines of ``path`` (or of a list of files) as ``m``, a MAP of each key to its value as
    text: one parse gives the keys of every line (extra keys are otherwise dropped silently by
    read_json). With ``filename``, each line's file is in that column."""
    columns = "{'m': 'MAP(VARCHAR, VARCHAR)'}"
    also = f", {_q(filename)}" if filename else ""
    return f"SELECT m{also} FROM {_read_json(path, compressed, columns, False, filename)}"


@dataclass
class Plan:
    """What the key pre-pass found in the lines it read: ``rows``, the ``days`` (dates), the
    ``keys`` of any line, whether a price depends on the time of day (``by_time``), and the
    largest input of each (provider, model, price period, price context key) to price
    (``largest``); ``by_file``: the same per file (by the value of the file column) when the
    pre-pass read several."""

    rows: int
    days: set
    keys: set
    by_time: bool
    largest: dict
    by_file: dict = field(default_factory=dict)


def prepass(con, name: str, maps: str, context_free: bool, file_column: str | None = None,
            overrides: dict | None = None) -> Plan:
    """2. One light pass over the lines as maps (the SQL ``maps``, :func:`maps_sql`): the distinct
    key lists (so keys that are not canonical columns are seen), rows, the days, and for requests
    the distinct (provider, model, price period, price context) to price, with their largest input
    (for price tiers); per file too with ``file_column``. ``overrides``: the price overrides in
    effect (a model priced as another takes that one's price periods)."""
    from lib.ingest.validate import _typed, trimmed_name_sql

    cols = {c: f"m[{_lit(c)}]" for c in ("ts", "input_tokens", "provider", "model")}
    # the names as the main pass stores them (and joins them to their prices)
    cols.update({c: trimmed_name_sql(cols[c]) for c in ("provider", "model")})
    ts = _typed("ts", pa.string(), schema.TS)[0].replace('"ts"', cols["ts"])
    by = f", {_q(file_column)}" if file_column else ""
    if name == "requests":
        inp = _typed("input_tokens", pa.string(), pa.int64())[0].replace(
            '"input_tokens"', cols["input_tokens"])
        # The context as the main pass reads it from the checked row's attributes, into
        # which a line's top-level context keys are folded over the attributes' own.
        ctx = "''" if context_free else pricing.context_sql(
            "m['attributes']", {k: f"m[{_lit(k)}]" for k in pricing.CONTEXT_KEYS})
        # the day is the period's date (epoch arithmetic, cheaper than CAST(ts AS DATE))
        groups = [(*g[:2], g[2] and g[2].date(), *g[3:7], g[2], *g[7:]) for g in con.execute(
            f"SELECT {cols['provider']}, {cols['model']}, "
            f"{pricing.period_sql(ts)} AS price_period, "
            f"max(coalesce({inp}, 0)), count(*), map_keys(m) AS ks, {ctx} AS ctx{by} "
            f"FROM ({maps}) GROUP BY ALL").fetchall()]
    else:
        groups = [(None, None, g[0] and g[0].date(), None, *g[1:3], "", None, *g[3:])
                  for g in con.execute(
            f"SELECT {pricing.period_sql(ts, by_time=False)} AS day, count(*), "
            f"map_keys(m) AS ks{by} FROM ({maps}) GROUP BY ALL").fetchall()]
    plan = _plan_of(name, groups, overrides or {})
    if file_column:
        for f in {g[8] for g in groups}:
            plan.by_file[f] = _plan_of(name, [g for g in groups if g[8] == f], overrides or {})
    return plan


def _plan_of(name: str, groups: list[tuple], overrides: dict) -> Plan:
    """The :class:`Plan` of the pre-pass's groups: (provider, model, day, largest input, rows,
    keys, context key, price period[, file])."""
    keys = set().union(*(g[5] for g in groups))
    # (provider, model, period, context key) -> largest input tokens. Where no model of the
    # file is priced by the time of day (most files), a period is a whole day: the main pass
    # then joins on the cheaper day expression.
    by_time = any(pricing.priced_by_time_of_day(*pricing.priced_as(overrides, g[0], g[1]))
                  for g in groups if name == "requests")
    largest: dict = {}
    for g in groups if name == "requests" else ():
        at = g[7] if by_time or g[7] is None else g[7].replace(hour=0, minute=0, second=0,
                                                                microsecond=0)
        k = (g[0], g[1], at, g[6])
        largest[k] = max(largest.get(k, g[3]), g[3])
    return Plan(rows=sum(g[4] for g in groups), days={g[2] for g in groups}, keys=keys,
                by_time=by_time, largest=largest)


def priced_source(con, name: str, checked: str, plan: Plan, overrides: dict,
                  ingested_at) -> tuple[str, str, str]:
    """(source, joins, condition) of the main pass over the checked rows ``checked`` (SQL): the
    rows as ``source``, the price tables' ``joins`` (registered on ``con``), and a condition to
    AND to the WHERE clause that stops the pass if a row's price key is not one the pre-pass saw
    (``plan``)."""
    if name != "requests":
        return f"({checked})", "", ""
    from lib.ingest.validate import time_range

    # Prices per (provider, model, period, context key). A file none of whose rows has a
    # context (most) joins on the constant ''; else each row's key is read once from its
    # checked attributes (the same SQL as the exact path). A row whose key the pre-pass
    # did not see stops the fast path rather than going unpriced.
    source, priced = f"({checked})", ""
    models = list(plan.largest)
    ctx = "''"
    at = pricing.period_sql("p.ts", plan.by_time)
    if any(m[3] for m in models):
        source = (f"(SELECT *, {pricing.context_sql('attributes')} AS _price_ctx "
                  f"FROM ({checked}))")
        ctx = "p._price_ctx"
    if ctx != "''" or plan.by_time:
        priced = (" AND CASE WHEN u.price_period IS NULL AND p._reason IS NULL "
                  "THEN error('a price key differs from the pre-pass') END IS NULL")
    linear_below = pricing.sql_units(con, models, overrides)
    past = any(lb is not None and plan.largest[m] >= lb for m, lb in
               zip(models, linear_below, strict=True))
    pricing.sql_tiered(con, (
        f"{source} p JOIN units u ON {pricing.sql_units_on(ctx, at)} "
        f"WHERE p._reason IS NULL AND coalesce(p.input_tokens, 0) >= u.linear_below"
    ) if past else None, overrides, time_range(ingested_at), ctx)
    return source, pricing.sql_price_joins(ctx, at), priced


def _load(lake: Lake, batch, path: Path, compressed: bool, name: str, overrides: dict,
          context_free: bool,
          tmp: Path, tick, t0: float) -> tuple[int, int, int]:
    """Check, price and write ``path`` into ``batch``; returns (stored, duplicates, rows).
    Records in LAST the seconds from ``t0`` (the ingest's start) at the end of each phase."""
    from lib.ingest import pipeline
    from lib.ingest.validate import checked_sql, time_range

    key = schema.KEYS[name]
    con, own = shared_or_own(tmp, tmp / "spill")  # (and the folder tmp made)
    try:
        plan = prepass(con, name, maps_sql(path, compressed), context_free,
                       overrides=overrides)
        LAST["prepass_s"] = time.monotonic() - t0
        rows, days, keys = plan.rows, plan.days, plan.keys
        extra = keys - set(schema.TABLES[name].names)
        tick(rows, "writing")  # read and checked for extra keys
        # Columns no line has are null constants: nothing to read, type or check.
        present = {c: pa.string() for c in schema.TABLES[name].names if c in keys}
        checked = checked_sql(name, present, f"({rows_sql(name, path, compressed, keys)})",
                              extras_json=EXTRAS_ALIAS if extra else None, other_tables=True)
        params = {**time_range(batch.ingested_at), "source": batch.source,
                  "batch": batch.batch_id, "ingested_at": batch.ingested_at}
        source, joins, priced = priced_source(con, name, checked, plan, overrides,
                                              batch.ingested_at)
        # 3. The good rows, priced, straight to Parquet: one folder per day. A file of one day
        #    (a daily or hourly log) is written without PARTITION_BY, whose buffering costs ~30%.
        out = tmp / "out"
        select = (f"SELECT {pipeline.output_select(name)}, strftime(p.ts, '%Y-%m-%d') AS _day "
                  f"FROM {source} p {joins} WHERE p._reason IS NULL{priced}")
        options = (f"FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, "
                   f"ROW_GROUP_SIZE {ROW_GROUP_ROWS}")
        (one_day,) = days if len(days) == 1 else (None,)
        if one_day is not None:
            target = out / f"_day={one_day.isoformat()}" / "part-0.parquet"
            target.parent.mkdir(parents=True)
            # A row whose checked day differs from the pre-pass's cannot be: stop if it does.
            written = con.execute(
                f"COPY (SELECT * EXCLUDE (_day) FROM ({select}) WHERE CASE WHEN _day <> "
                f"{_lit(one_day.isoformat())} THEN error('day differs from the pre-pass') END "
                f"IS NULL) TO {_lit(str(target))} ({options})", params).fetchone()[0]
        else:
            written = con.execute(
                f"COPY ({select}) TO {_lit(str(out))} (PARTITION_BY (_day), "
                f"FILENAME_PATTERN 'part-{{i}}', {options})", params).fetchone()[0]
        LAST["copy_s"] = time.monotonic() - t0
        if written != rows:
            raise Fallback(f"{rows - written} rows fail validation")
        files = sorted(glob.glob(str(out / "_day=*" / "*.parquet")))
        tick(rows, "committing")  # written
        _pause_for_tests("after_first_chunk")
        if files and con.execute(
                f"SELECT count(*) FROM (SELECT {_q(key)} FROM read_parquet($files) "
                f"GROUP BY ALL HAVING count(*) > 1)", {"files": files}).fetchone()[0]:
            raise Fallback("a key repeated within the file")
        dupes = adopt_new_rows(lake, batch, con, name, files)
        LAST["load_s"] = time.monotonic() - t0
        return rows - dupes, dupes, rows
    finally:
        if own:
            close_connection(con)
