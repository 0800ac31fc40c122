"""The query engine: one DuckDB connection per process with read-only views over the lake.

Views are rebuilt when the manifest version changes, so a dashboard sees new batches on its next
query without restarting. Every query runs on its own cursor (DuckDB cursors are per-thread
connections sharing one database), which is what Streamlit's one-thread-per-session model needs.

DuckDB answers an internal error (an assertion of its own failing, e.g. duckdb#25713) by refusing
every later query of the database until the process restarts: one bad query would stop every
page of a long-running server. The engine opens a new database in its place, with the same views,
and runs the query that found it refused once more.

One engine serves every session of a Streamlit server, each running its pages in threads of its
own. A page run pins the version it started on (:meth:`Engine.pin`): each version's views live in
a schema of their own, kept while a live thread has it pinned, and a pinned thread's cursors read
that schema. Another session's run, or a download, moving the views to a new batch no longer moves
a page in the middle of its run (its tiles counted one version, its table the next).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import duckdb
import polars as pl

from lib import schema
from lib.store.connections import close as close_connection
from lib.store.connections import connect, stop_if_interrupted
from lib.store.lake import Lake, unreadable_files

log = logging.getLogger(__name__)
T = TypeVar("T")
# What DuckDB raises for an internal error (the query that hit it) and for every query after it
INVALIDATED = (duckdb.InternalException, duckdb.FatalException)
MAIN = "main"  # the schema of the newest views (DuckDB's default)


@dataclass(eq=False)
class _Views:
    """The views of one version of the lake, in the schema ``schema`` (MAIN while newest)."""

    schema: str
    version: str | None = None
    files: dict[str, list[str]] = field(default_factory=dict)
    commits: list = field(default_factory=list)


class Engine:
    """Read-side of the lake. ``query`` returns Polars frames; views are named after the tables."""

    def __init__(self, lake: Lake, *, threads: int | None = None, memory_limit: str | None = None,
                 auto_refresh: bool = True):
        """``auto_refresh``: check the manifest before every query (CLI, scripts). The app turns
        it off and refreshes once per page run, so every query of a run sees one version."""
        self.lake = lake
        self.auto_refresh = auto_refresh
        config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        if threads:
            config["threads"] = threads
        if memory_limit:
            config["memory_limit"] = memory_limit
        self._config = config
        self.con = self._connect()
        self.reopened = 0  # times the database was replaced after DuckDB invalidated it
        # (re-entrant: a refresh that finds the database invalidated reopens it)
        self._lock = threading.RLock()
        self._current = _Views(MAIN)  # the newest views (none until the first refresh)
        self._kept: list[_Views] = []  # older versions pinned by a thread, in schemas of theirs
        self._pins: dict[threading.Thread, _Views] = {}
        self._made = 0  # schemas made for them
        self._good_files: set[str] = set()
        self._bad_files: dict[str, str] = {}  # live files found unreadable: why
        self._bad_stamps: dict[str, tuple | None] = {}  # and their stat then
        self.refresh()

    # -- views ---------------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> bool:
        """Rebuild the views if the manifest changed. Returns True when they were rebuilt.
        A thread that pinned a version (:meth:`pin`) moves to the newest: it asked for it."""
        version = self.lake.version()
        if not force and version == self._current.version and not self._bad_changed():
            self._repin()
            return False
        with self._lock:
            if not force and version == self._current.version and not self._bad_changed():
                self._repin()
                return False
            snap = self.lake.snapshot()
            self._forget_gone(snap.files)
            views = _Views(MAIN, snap.version,
                           {t: self._readable(paths) for t, paths in snap.files.items()},
                           snap.commits)
            self._keep_pinned()
            self._run(lambda cur: self._create_views(cur, views))
            self._current = views
            self._repin()
            self._drop_unpinned()
            return True

    def pin(self) -> None:
        """Have this thread's queries read the version the views have now, whatever other
        threads refresh to, until it pins again or refreshes itself (a page run: see the
        module's docstring)."""
        with self._lock:  # (not between a refresh's keeping and dropping of pinned versions)
            before = self._pins.get(threading.current_thread())
            self._pins[threading.current_thread()] = self._current
            # Streamlit runs each page run in a thread of its own: the runs' ended threads are
            # let go here, not only when a batch lands (each holds its session's script runner)
            pinned = self._pinned_by_others()
            if any(v is before for v in self._kept) and id(before) not in pinned:
                self._drop_unpinned()  # the version this thread's last run read

    def _repin(self) -> None:
        if threading.current_thread() in self._pins:
            self.pin()

    def _views(self) -> _Views:
        """The views this thread reads: those it pinned, else the newest."""
        return self._pins.get(threading.current_thread(), self._current)

    def _pinned_by_others(self) -> set[int]:
        """Ids of the versions pinned by other live threads (the dead ones' pins are let go)."""
        return self._pinned(but=threading.current_thread())

    def _pinned(self, but: threading.Thread | None = None) -> set[int]:
        """Ids of the versions pinned by live threads other than ``but`` (the dead ones' pins
        are let go)."""
        for thread in [t for t in list(self._pins) if not t.is_alive()]:
            self._pins.pop(thread, None)
        return {id(v) for t, v in list(self._pins.items()) if t is not but}

    def _keep_pinned(self) -> None:
        """Before the newest views are replaced: when another thread has them pinned, a copy in
        a schema of their own (made only then: it reads every file's footer again)."""
        views = self._current
        if views.schema != MAIN or views.version is None \
                or id(views) not in self._pinned_by_others():
            return
        self._made += 1
        kept = _Views(f"lake_{self._made}", views.version, views.files, views.commits)
        self._run(lambda cur: self._create_views(cur, kept))
        views.schema = kept.schema  # (its threads' next cursors read the copy)
        self._kept.append(views)

    def _drop_unpinned(self) -> None:
        """Drop the kept versions no other live thread has pinned, but the newest: a refresh
        that failed after copying them aside (:meth:`_keep_pinned`) left them read from the
        copy, by every run that pins them."""
        pinned = self._pinned_by_others() | {id(self._current)}
        gone = [v for v in self._kept if id(v) not in pinned]
        self._kept = [v for v in self._kept if id(v) in pinned]
        # (IF EXISTS: a database found invalidated during the drop is rebuilt without them)
        for views in gone:
            self._run(lambda cur, v=views: cur.execute(
                f"DROP SCHEMA IF EXISTS {v.schema} CASCADE"))

    def _create_views(self, cur: duckdb.DuckDBPyConnection, views: _Views) -> None:
        if views.schema != MAIN:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {views.schema}")
        for table, paths in views.files.items():
            name = f"{views.schema}.{table}"
            try:
                cur.execute(f"CREATE OR REPLACE VIEW {name} AS {self._view_sql(table, paths)}")
            except duckdb.BinderException:
                # files all written before a column was added (cache_write_1h_tokens): what
                # none of them has is null
                have = {r[0] for r in cur.execute(
                    f"DESCRIBE {self._view_sql(table, paths, star=True)}").fetchall()}
                cur.execute(f"CREATE OR REPLACE VIEW {name} AS "
                            f"{self._view_sql(table, paths, have=have)}")

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = connect(":memory:", self._config)
        # GLOBAL: queries run on cursors, which do not inherit a session setting; on a host whose
        # zone is not UTC, days and hours would otherwise be the host's
        con.execute("SET GLOBAL TimeZone = 'UTC'")
        return con

    def _reopen(self, refused: duckdb.DuckDBPyConnection, why: BaseException) -> None:
        """Replace the database ``refused`` (DuckDB invalidated it) with a new one holding the
        same views (the same versions of the lake), unless another thread already did."""
        with self._lock:
            if self.con is not refused:
                return
            log.warning("DuckDB invalidated the database (%s); opening a new one",
                        str(why).splitlines()[0])
            # Only the kept versions a live run still reads: the others wait for the next batch
            # to be dropped, and their files may be gone by then (replaced by a compaction or a
            # removal, deleted an hour later): their views no longer bind, and the database was
            # never replaced.
            pinned = self._pinned() | {id(self._current)}  # (see _drop_unpinned)
            self._kept = [v for v in self._kept if id(v) in pinned]
            con = self._connect()
            cur = con.cursor()
            try:
                # (the newest in main even when a refresh has just moved them to a kept copy's
                # schema and finds the database invalidated as it builds the next ones:
                # queries without a pin read main until it has)
                newest = self._current
                for views in [*self._kept, _Views(MAIN, newest.version, newest.files)]:
                    self._create_views(cur, views)
            finally:
                close_connection(cur)
            # (the refused one is not closed: a thread between taking it and its cursor would
            # get "connection closed" rather than the refusal it retries on)
            self.con = con
            self.reopened += 1

    def _run(self, run: Callable[[duckdb.DuckDBPyConnection], T], keep_open: bool = False
             ) -> T:
        """``run(cursor)`` on a fresh cursor, closed after (unless ``keep_open``: the caller
        closes it); on a database DuckDB invalidated (see the module's docstring), once more on
        a new one."""
        for attempt in (1, 2):
            con = self.con
            cur = None
            try:
                views, cur = self._cursor(con)
                result = run(cur)
                if self._moved(views):
                    close_connection(cur)
                    _, cur = self._cursor(con)
                    result = run(cur)
                if keep_open:
                    cur = None
                return result
            except INVALIDATED as exc:
                if attempt == 2:
                    raise
                self._reopen(con, exc)
            except (RuntimeError, duckdb.Error) as exc:  # (Ctrl-C in a CLI command: ended as one)
                stop_if_interrupted(exc)
                raise
            finally:
                if cur is not None:
                    close_connection(cur)
        raise AssertionError("unreachable")

    @contextmanager
    def executed(self, sql: str, params: dict | list | None = None
                 ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor that has run ``sql``, for a caller that streams its result (closed, and its
        query stopped, on leaving). A database found invalidated is reopened first, as for
        :meth:`query`."""
        if self.auto_refresh:
            self.refresh()
        cur = self._run(lambda cur: cur.execute(sql, params or {}), keep_open=True)
        try:
            yield cur
        finally:
            close_connection(cur)

    def _cursor(self, con: duckdb.DuckDBPyConnection
                 ) -> tuple[tuple[_Views, str] | None, duckdb.DuckDBPyConnection]:
        """A cursor of ``con`` reading the views of this thread's version, and which they were
        (for :meth:`_moved`; None: the newest)."""
        cur = con.cursor()
        views = self._pins.get(threading.current_thread())
        if views is None:  # the newest, whichever they are when the query binds
            return None, cur
        schema = views.schema
        if schema != MAIN:
            try:
                cur.execute(f"SET schema = '{schema}'")
            except BaseException:
                close_connection(cur)
                raise
        return (views, schema), cur

    @staticmethod
    def _moved(used: tuple[_Views, str] | None) -> bool:
        """Whether the pinned views a query read as the newest were copied aside meanwhile
        (:meth:`_keep_pinned`): the newest may then have been replaced under it, and it runs
        again on the copy."""
        if used is None:
            return False
        views, schema = used
        return schema == MAIN and views.schema != MAIN

    def commits(self) -> list:
        """The manifest's commits at the version the views reflect, oldest first (checked for a
        newer version first when ``auto_refresh``): what a page lists agrees with what it
        queries, without listing the manifest again."""
        if self.auto_refresh:
            self.refresh()
        return list(self._views().commits)

    @property
    def version(self) -> str:
        """The manifest version the views reflect (use it as a cache key)."""
        return self._views().version or "empty"

    @property
    def files(self) -> dict[str, list[str]]:
        """The readable data files of each table the views read."""
        return self._views().files

    def _readable(self, rel_paths: list[str]) -> list[str]:
        """Absolute paths of the live files whose Parquet footer reads; others become problems."""
        root = self.lake.root
        new = [rel for rel in rel_paths if str(root / rel) not in self._good_files
               and str(root / rel) not in self._bad_files]
        bad = unreadable_files(root, new)  # (the lake's check, as compact and reprice make it)
        # (new dicts, not updated ones: problems() may be going over them in another thread)
        self._bad_files = {**self._bad_files,
                           **{str(root / rel): why for rel, why in bad.items()}}
        self._bad_stamps = {**self._bad_stamps,
                            **{str(root / rel): _stamp(root / rel) for rel in bad}}
        self._good_files.update(str(root / rel) for rel in new if rel not in bad)
        return [str(root / rel) for rel in rel_paths if str(root / rel) in self._good_files]

    def _bad_changed(self) -> bool:
        """Whether a file found unreadable has changed on disk since (a stat each, no read)."""
        return any(_stamp(path) != stamp for path, stamp in list(self._bad_stamps.items()))

    def _forget_gone(self, live: dict[str, list[str]]) -> None:
        """Forget the files that are no longer live (a server running for weeks kept every path
        an ingest ever wrote, those compacted away long since too), and the unreadable ones
        that have changed since, so they are checked again: a file restored from a backup (as
        the commands advise) stayed out of every page, and listed as a problem, until the
        server restarted; so did one a passing I/O error (too many open files) once kept from
        reading."""
        live_paths = {str(self.lake.root / rel) for paths in live.values() for rel in paths}
        self._good_files &= live_paths
        keep = {path for path, stamp in self._bad_stamps.items()
                if path in live_paths and _stamp(path) == stamp}
        self._bad_files = {p: why for p, why in self._bad_files.items() if p in keep}
        self._bad_stamps = {p: stamp for p, stamp in self._bad_stamps.items() if p in keep}

    @staticmethod
    def _view_sql(table: str, paths: list[str], have: set[str] | None = None,
                  star: bool = False) -> str:
        """The view of ``table`` over ``paths``: its canonical columns (of them, those not in
        ``have``, the columns the files have, as typed nulls), or every column of the files with
        ``star``."""
        # Plain column names, no casts: files are written in the canonical schema, and a cast
        # would stop DuckDB from pushing time filters down to row-group statistics.
        cols = "*" if star else ", ".join(
            f.name if have is None or f.name in have
            else f"CAST(NULL AS {schema.duckdb_type(f.type)}) AS {f.name}"
            for f in schema.TABLES[table])
        if not paths:
            # An empty, typed view, so every query works on an empty store.
            return "SELECT " + ", ".join(
                f"CAST(NULL AS {schema.duckdb_type(f.type)}) AS {f.name}"
                for f in schema.TABLES[table]) + " WHERE false"
        quoted = ", ".join(schema.sql_literal(p) for p in paths)
        return (f"SELECT {cols} FROM read_parquet([{quoted}], union_by_name = true, "
                f"hive_partitioning = false)")

    def problems(self) -> list[str]:
        """Human-readable problems found in the lake: unreadable data files and manifest entries."""
        if self.auto_refresh:
            self.refresh()
        return [f"{p}: not a readable Parquet file ({why})" for p, why in self._bad_files.items()] \
            + self.lake.manifest_problems()

    # -- queries -------------------------------------------------------------------------------
    def query(self, sql: str, params: dict | list | None = None) -> pl.DataFrame:
        """Run ``sql`` on a fresh cursor and return the result as a Polars frame."""
        if self.auto_refresh:
            self.refresh()
        return self._run(lambda cur: cur.execute(sql, params or {}).pl())

    def scalar(self, sql: str, params: dict | list | None = None):
        """The first column of the first row, or None."""
        if self.auto_refresh:
            self.refresh()
        row = self._run(lambda cur: cur.execute(sql, params or {}).fetchone())
        return row[0] if row else None

    def row_count(self, table: str) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {table}"))

    def close(self) -> None:
        close_connection(self.con)


def _stamp(path) -> tuple | None:
    """What changes when a file is written, replaced or removed (None: it is not there)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
