"""DuckDB connections as Sightline opens them: every one of them goes through :func:`connect`.

DuckDB's Python client draws a progress bar on standard output once a query runs past two
seconds, in a terminal or not: in a cron job's output, in the middle of a ``--json`` document, in
the server log. A query that slow is ordinary here (a big file on a busy machine), so every
connection starts with the bar off (its cursors have it off anyway).
"""

from __future__ import annotations

import duckdb


def connect(database: str = ":memory:", config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to ``database`` with the settings ``config`` (DuckDB's names), its
    progress bar off."""
    con = duckdb.connect(database, config=config or {})
    con.execute("SET enable_progress_bar = false")
    return con
