"""With --json, a command that fails still prints one JSON document on stdout (``{"error": …}``),
the message also on stderr, exit status 2: a `… --json | jq` in cron read empty input (review)."""

from __future__ import annotations

import json

import pytest

from lib.cli import main


@pytest.mark.parametrize("argv, says", [
    (["summary", "--json", "--bogus"], "unrecognized arguments: --bogus"),
    (["remove", "nope", "--json"], "no store at"),
    (["summary", "--json", "--from", "yesterday-ish"], "yesterday-ish"),
])
def test_a_failure_is_a_json_document_too(argv, says, tmp_path, capsys):
    try:
        status = main([*argv, "--store", str(tmp_path / "store")])
    except SystemExit as exc:  # (argparse's own exit)
        status = exc.code
    out, err = capsys.readouterr()
    assert status == 2
    assert says in json.loads(out)["error"] and says in err


def test_without_json_stdout_stays_empty(tmp_path, capsys):
    assert main(["remove", "nope", "--store", str(tmp_path / "store")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "no store at" in err


def test_a_name_the_output_encoding_cannot_write_is_escaped_not_a_crash(tmp_path):
    # PYTHONIOENCODING=ascii (an old cron's locale): printing "café" raised UnicodeEncodeError
    # after the batch was committed, so the run looked failed and its report was lost (review)
    import os
    import subprocess
    import sys

    log = tmp_path / "café.jsonl"
    log.write_text('{"request_id": "r1", "ts": "2026-11-20T10:00:00Z", "model": "gpt-4o", '
                   '"input_tokens": 10, "output_tokens": 5, "latency_ms": 100}\n{bad\n')
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "SIGHTLINE_DEMO": "0"}
    proc = subprocess.run([sys.executable, "-m", "lib", "ingest", str(log), "--store",
                           str(tmp_path / "store")], env=env, capture_output=True, text=True,
                          encoding="ascii", errors="strict", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "caf\\xe9.jsonl [jsonl]: stored 1 request;" in proc.stdout
    assert "line 2: not valid JSON" in proc.stdout and "Traceback" not in proc.stderr


def test_ctrl_c_while_the_modules_load_is_one_line_not_a_traceback():
    # (found in review: a traceback and exit status -2 when Ctrl-C came in the first second)
    import subprocess
    import sys
    from pathlib import Path

    driver = """
import builtins, runpy
real = builtins.__import__
def importing(name, *args, **kwargs):
    if name == "lib.cli":
        raise KeyboardInterrupt
    return real(name, *args, **kwargs)
builtins.__import__ = importing
runpy.run_module("lib", run_name="__main__")
"""
    proc = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert (proc.returncode, proc.stderr, proc.stdout) == (
        130, "interrupted: nothing was stored\n", "")


def test_ctrl_c_while_the_command_line_is_read_is_one_line_not_a_traceback():
    # (review: the parser imports every format's module; a Ctrl-C there was a traceback, -2)
    import subprocess
    import sys
    from pathlib import Path

    driver = """
import runpy
from lib import cli
def reading(*args):
    raise KeyboardInterrupt
cli._parse = reading
runpy.run_module("lib", run_name="__main__")
"""
    proc = subprocess.run([sys.executable, "-c", driver, "summary"], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert (proc.returncode, proc.stderr, proc.stdout) == (
        130, "interrupted: nothing was stored\n", "")


def _ctrl_c_in_a_query(store, command: str):
    """Run ``python -m lib COMMAND`` on ``store``, every store query one that runs over a minute,
    a real SIGINT sent half a second in; (process, seconds it took)."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    driver = f"""
import os, signal, sys, threading
# (Python's own handler, as in a terminal: a process started in the background inherits SIGINT
# ignored)
signal.signal(signal.SIGINT, signal.default_int_handler)
from lib.store import engine
real = engine.Engine.query
def query(self, sql, params=None):
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    # over a minute of work on 2 cores (1e9 rows take 2-4 s)
    return real(self, "SELECT count(*) AS n FROM range(40000000000) t(i) WHERE i % 7 = 3")
engine.Engine.query = query
from lib.cli import main
sys.exit(main([{command!r}, "--store", {str(store)!r}]))
"""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True,
                          timeout=150, cwd=Path(__file__).resolve().parents[1],
                          env={**os.environ, "SIGHTLINE_DEMO": "0"})
    return proc, time.monotonic() - t0


def test_ctrl_c_during_a_read_only_command_s_query_ends_it_as_ctrl_c(tmp_path, capsys):
    # DuckDB takes the SIGINT itself and raises RuntimeError("Query interrupted"): summary
    # printed that as a traceback, exit 1; and the query went on in DuckDB's threads, so closing
    # the connection waited for it to end (14.7 s for a group-by over 400M rows; an interrupted
    # 1M-row ingest took up to 12 s to exit). Read-only: no batch to speak of.
    log = tmp_path / "a.jsonl"
    log.write_text('{"request_id": "r1", "ts": "2026-03-02T12:00:00Z", "provider": "openai", '
                   '"model": "gpt-4o", "input_tokens": 10, "output_tokens": 5}\n')
    assert main(["ingest", str(log), "--store", str(tmp_path / "store")]) == 0
    capsys.readouterr()
    proc, seconds = _ctrl_c_in_a_query(tmp_path / "store", "summary")
    assert (proc.returncode, proc.stderr, proc.stdout) == (130, "interrupted\n", "")
    # (the query left running would hold the exit for a minute: stopped, it is well under)
    assert seconds < 30


def test_a_second_demo_of_the_same_seed_is_refused_not_stored_twice(tmp_path, capsys):
    # `demo` run again without --end a minute later stored every request id a second time and
    # doubled every total (review): the same seed's ids are its requests' numbers, whatever
    # the end
    store = str(tmp_path / "store")
    first = ["demo", "--store", store, "--days", "1", "--requests-per-day", "20", "--seed", "3"]
    assert main([*first, "--end", "2026-11-20T00:00"]) == 0
    assert main([*first, "--end", "2026-11-20T00:00:30"]) == 0  # the same demo: nothing added
    capsys.readouterr()
    assert main([*first, "--end", "2026-11-20T00:01", "--json"]) == 2
    out, err = capsys.readouterr()
    assert "already holds demo data of seed 3" in json.loads(out)["error"]
    assert "python -m lib remove " in err
    from lib.store.lake import Lake

    assert [c.kind for c in Lake(tmp_path / "store").commits()] == ["demo"]
    # another seed is another set of requests
    assert main([*first[:-1], "4", "--end", "2026-11-20T00:01"]) == 0


@pytest.mark.parametrize("command, says", [
    ("reprice", "interrupted: nothing was changed"),
    ("remove", "interrupted: nothing was removed"),
])
def test_ctrl_c_tells_what_a_one_commit_command_left(command, says, tmp_path, capsys,
                                                     monkeypatch):
    # reprice and remove write one commit, no batch: they said "the batch being written was not
    # stored, and a run again goes on from there" (review)
    from lib import pricing
    from lib.store.lake import Lake

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    store = tmp_path / "store"
    assert main(["demo", "--store", str(store), "--days", "1", "--requests-per-day", "10",
                 "--end", "2026-11-20T00:00"]) == 0
    batch = Lake(store).commits()[0].commit_id
    monkeypatch.setattr(pricing, "price_frame", interrupted)
    monkeypatch.setattr(Lake, "remove_batch", interrupted)
    capsys.readouterr()
    argv = [command, *([batch] if command == "remove" else []), "--store", str(store)]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.startswith(says) and "batch being written" not in err
