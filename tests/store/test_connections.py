"""Every DuckDB connection Sightline opens keeps DuckDB's progress bar off: the bar is drawn on
standard output once a query runs past two seconds, in a terminal or not (in a ``--json``
document, in a cron mail)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A query of a little over two seconds: 2,000 calls of a function that sleeps 1.1 ms.
SCRIPT = """
import sys, time
import duckdb
from lib.store.connections import connect

def nap(x: int) -> int:
    time.sleep(0.0011)
    return x

con = duckdb.connect() if sys.argv[1] == "bare" else connect()
con.create_function("nap", nap)
con.execute("SELECT sum(nap(range::INTEGER)) FROM range(2000)").fetchall()
"""


def test_a_query_past_two_seconds_prints_nothing():
    runs = {kind: subprocess.Popen([sys.executable, "-c", SCRIPT, kind], cwd=ROOT, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for kind in ("bare", "ours")}
    out = {kind: proc.communicate(timeout=120) for kind, proc in runs.items()}
    assert [runs[k].returncode for k in runs] == [0, 0], out
    assert "100%" in out["bare"][0]  # what DuckDB does by itself: the test can fail
    assert out["ours"][0] == ""


def test_lib_opens_duckdb_connections_only_through_connect():
    """(A module that called duckdb.connect itself would bring the bar back.)"""
    calls = []
    for path in (ROOT / "lib").rglob("*.py"):
        if path.name == "connections.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "connect" and isinstance(node.func.value, ast.Name) \
                    and node.func.value.id == "duckdb":
                calls.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert calls == []


def test_closing_a_closed_connection_does_nothing():
    # (a cursor closed before a retry is closed again in a finally: DuckDB's "Connection already
    # closed" took the place of the error being handled)
    import duckdb

    from lib.store.connections import close

    con = duckdb.connect()
    cur = con.cursor()
    close(cur)
    close(cur)
    with pytest.raises(duckdb.ConnectionException):
        cur.execute("SELECT 1")
    close(con)
    close(con)
