"""DuckDB connections as Sightline opens them: every one of them goes through :func:`connect`.

DuckDB's Python client draws a progress bar on standard output once a query runs past two
seconds, in a terminal or not: in a cron job's output, in the middle of a ``--json`` document, in
the server log. A query that slow is ordinary here (a big file on a busy machine), so every
connection starts with the bar off (its cursors have it off anyway).

A Ctrl-C during a query: DuckDB takes the SIGINT itself and raises ``RuntimeError("Query
interrupted")`` at once, but the query goes on in its worker threads, and closing the connection
waits for it to end (14.7 s for a group-by over 400M rows, measured with DuckDB 1.5.5; an
interrupted ingest of a 1M-row file waited up to 12 s to exit). So a connection is closed with
:func:`close`, which interrupts it first, and an interrupted query becomes KeyboardInterrupt
(:func:`stop_if_interrupted`), which the CLI ends as Ctrl-C.
"""

from __future__ import annotations

import functools
import os

import duckdb


def memory_limit(variable: str, default: str) -> str:
    """The memory size ``$variable`` gives, else ``default``. Raises ValueError naming the
    variable for anything else: DuckDB's own message ("Memory must have a number") named no
    setting, and the fast path, which falls back to the exact one on a DuckDB error, ignored
    the variable without a word."""
    value = (os.environ.get(variable) or default).strip()
    if not _duckdb_memory_size(value):
        raise ValueError(f"{variable} must be a memory size such as {default}, not {value!r}")
    return value


@functools.lru_cache(maxsize=64)
def _duckdb_memory_size(value: str) -> bool:
    """Whether DuckDB's memory_limit takes ``value``: DuckDB decides, as the README says the
    variables are its limit (2G, 512M and 1000 bytes are sizes to it; a pattern of our own
    refused them, ending ingests that ran before)."""
    try:
        duckdb.connect(config={"memory_limit": value}).close()
    except duckdb.Error:
        return False
    return True


def connect(database: str = ":memory:", config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to ``database`` with the settings ``config`` (DuckDB's names), its
    progress bar off."""
    con = duckdb.connect(database, config=config or {})
    con.execute("SET enable_progress_bar = false")
    return con


def close(con: duckdb.DuckDBPyConnection) -> None:
    """Close ``con`` without waiting for a query still running in DuckDB's threads (interrupting
    an idle connection does nothing). Closing it again does nothing: a cursor closed before a
    retry is closed again on the way out (DuckDB raised "Connection already closed", which took
    the place of the error being handled)."""
    try:
        con.interrupt()
    except duckdb.ConnectionException:
        return  # closed already
    con.close()


def stop_if_interrupted(exc: BaseException) -> None:
    """Raise KeyboardInterrupt when ``exc`` is DuckDB's ``Query interrupted`` (Ctrl-C during a
    query): broad ``except Exception`` clauses, which report a failure and go on, would read it
    as one (an interrupted ingest read the whole file again and committed it; ``summary`` printed
    a traceback)."""
    # (Ctrl-C in the middle of a query reaches Python as RuntimeError("Query interrupted"):
    # DuckDB takes the signal itself; InterruptException is its interrupt() of a connection)
    if isinstance(exc, duckdb.InterruptException) or (
            type(exc) is RuntimeError and str(exc) == "Query interrupted"):
        raise KeyboardInterrupt from exc
