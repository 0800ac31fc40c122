"""``python -m lib ingest`` / ``compact`` / ``reprice``: reports and exit status (design §6)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lib.cli import main
from lib.ingest import formats as registry
from lib.store import store_option
from tests.ingest.conftest import canonical_request


def test_ingest_json_report_and_exit_status(lake, write, capsys):
    good = write("a.jsonl", [canonical_request(1), {"request_id": "x"}])
    assert main(["ingest", str(good), "--store", str(lake.root), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    f = doc["files"][0]
    assert (f["stored"], f["quarantined"]) == ({"requests": 1}, 1)
    assert f["reasons"] == ["line 2: missing ts; missing model"]
    empty = write("empty.jsonl", b"")
    os.utime(empty, (0, 0))  # (empty for long: a recent one waits for its first record)
    assert main(["ingest", str(empty), str(good), "--store", str(lake.root)]) == 2
    out = capsys.readouterr()
    assert f"{empty}: error: empty file" in out.out
    assert "already ingested" in out.out and out.err == ""  # no progress bar off a terminal


def test_the_text_report_escapes_what_the_file_says(lake, write, capsys):
    # Reasons quote values from the file: an escape sequence there must not reach the terminal.
    path = write("a\x1b[2Jb.csv", b"request_id,ts,model,input_tokens\n"
                 b"r1,2026-03-02T12:00:00Z,gpt-4o,\x1b[31mred\n"
                 b"r2,2026-03-02T12:00:00Z,gpt-4o,\"1\n2\"\n")
    assert main(["ingest", str(path), "--store", str(lake.root)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\n2" not in out
    assert "line 2: input_tokens is not an integer: \\x1b[31mred" in out
    assert "line 3: input_tokens is not an integer: 1\\n2" in out
    assert "a\\x1b[2Jb.csv [csv]: stored 0 rows" in out


def test_unknown_format_is_a_usage_error(lake, write, capsys):
    path = write("a.jsonl", [canonical_request(1)])
    assert main(["ingest", str(path), "--format", "nope", "--store", str(lake.root)]) == 2
    err = capsys.readouterr().err
    assert "unknown format 'nope'" in err
    assert err.count("jsonl") == 1  # the known formats, listed once


def test_help_lists_every_format_format_takes(capsys):
    with pytest.raises(SystemExit):
        main(["ingest", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--list-formats" not in text  # named an option that never existed
    listed = text.split("one of ", 1)[1]
    for fmt in registry.registered():
        assert fmt.name in listed.replace("- ", "-")  # argparse may wrap inside a name


def test_compact_and_reprice_commands(lake, write, capsys):
    for i in range(3):
        main(["ingest", str(write(f"{i}.jsonl", [canonical_request(i)])), "--store",
              str(lake.root), "--compact-min-files", "0"])
    capsys.readouterr()
    assert main(["compact", "--store", str(lake.root), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["files_before"], doc["files_after"]) == (3, 1)
    assert main(["reprice", "--store", str(lake.root)]) == 0
    assert "changed 0 of 3 requests" in capsys.readouterr().out


def test_a_compaction_setting_that_is_no_number_is_named_before_reading(lake, write, capsys,
                                                                         monkeypatch):
    """SIGHTLINE_COMPACT_MIN_FILES=off (README: 0 is never) was read as the default 16 without
    a word; it is a usage error now, before anything is read or stored."""
    from lib.ingest.pipeline import ingest_paths

    monkeypatch.setenv("SIGHTLINE_COMPACT_MIN_FILES", "off")
    path = write("a.jsonl", [canonical_request(0)])
    assert main(["ingest", str(path), "--store", str(lake.root)]) == 2
    assert "SIGHTLINE_COMPACT_MIN_FILES must be a whole number" in capsys.readouterr().err
    assert not lake.commits()
    # given --compact-min-files, the variable is not read; the pipeline (the Data page's
    # uploads) reports it as a compaction that could not run, after storing the rows
    assert main(["ingest", str(path), "--store", str(lake.root), "--compact-min-files", "0"]) == 0
    report = ingest_paths(lake, [str(write("b.jsonl", [canonical_request(1)]))])
    assert "SIGHTLINE_COMPACT_MIN_FILES" in report.compaction["error"]
    from lib.commands.ingest import render

    assert "compaction did not run: SIGHTLINE_COMPACT_MIN_FILES" in render(report)


def test_a_rerun_says_in_one_line_that_many_unchanged_files_were_skipped(lake, write, capsys):
    for i in range(12):
        folder = write(f"logs/{i:02}.jsonl", [canonical_request(i)]).parent
    args = ["ingest", str(folder), "--store", str(lake.root)]
    assert main(args) == 0
    capsys.readouterr()
    write("logs/new.jsonl", [canonical_request(99)])
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("new.jsonl [jsonl]: stored 1 request; 0 duplicate(s); "
                             "0 quarantined")
    assert lines[1:] == [
        "12 source(s) skipped: unchanged since an earlier run read them (--json lists each)",
        "total: 13 source(s), 1 stored, 0 duplicate(s), 0 quarantined, 0 error(s), 12 skipped"]


def test_unchanged_files_an_earlier_run_could_not_read_are_not_said_to_have_been_read(
        lake, write, capsys):
    """Found in review: files an earlier run found unreadable (a README, a core dump) were
    summed with the ones it read, "skipped: unchanged since an earlier run read them"."""
    for i in range(12):
        folder = write(f"logs/{i:02}.jsonl", [canonical_request(i)]).parent
    for i in range(3):
        write(f"logs/notes{i}.txt", b"not a log\n")
    args = ["ingest", str(folder), "--store", str(lake.root)]
    assert main(args) == 2  # the unreadable files are errors, once
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines() == [
        "12 source(s) skipped: unchanged since an earlier run read them (--json lists each)",
        "3 source(s) skipped: unchanged since an earlier run could not read them, saying why "
        "(--json lists each)",
        "total: 15 source(s), 0 stored, 0 duplicate(s), 0 quarantined, 0 error(s), 15 skipped"]


def test_a_stored_file_with_misnamed_fields_is_told_how_to_take_it_out(lake, write, capsys):
    path = write("a.jsonl", [canonical_request(1, ttft=0.2)])
    assert main(["ingest", str(path), "--store", str(lake.root), "--dry-run"]) == 0
    checked = capsys.readouterr().out
    assert "ttft (is it ttft_ms" in checked and "python -m lib remove" not in checked  # none stored
    assert main(["ingest", str(path), "--store", str(lake.root)]) == 0
    out = capsys.readouterr().out
    batch = lake.commits()[-1].commit_id
    # (with the store it was told: a bare command went to data/store, review)
    assert f"note: to ingest it again corrected, first take this batch out: python -m lib " \
           f"remove {batch}{store_option(lake.root)}\n" in out
    assert store_option(lake.root).startswith(" --store ")
    clean = write("b.jsonl", [canonical_request(2)])
    assert main(["ingest", str(clean), "--store", str(lake.root)]) == 0
    assert "python -m lib remove" not in capsys.readouterr().out  # nothing looked misnamed


def test_an_empty_path_is_an_error_not_the_current_folder(lake, write, capsys, monkeypatch):
    # `python -m lib ingest "$LOGS"` with LOGS unset: Path("") would be the current folder.
    folder = write("a.jsonl", [canonical_request(1)]).parent
    monkeypatch.chdir(folder)
    assert main(["ingest", "", "  ", "--store", str(lake.root)]) == 2
    out = capsys.readouterr().out
    assert out.count("error: empty path: give a file, folder, glob or s3:// URI") == 2
    assert "stored 0" in out or "0 stored" in out
    assert not lake.commits()


def test_ctrl_c_during_a_query_stops_the_ingest_and_stores_nothing(lake, write, capsys,
                                                                   monkeypatch):
    # DuckDB turns Ctrl-C into "Query interrupted"; the fast path read that as "not clean
    # JSONL", read the whole file again on the exact path and committed it (exit 0)
    import duckdb

    from lib.ingest import fastpath

    def interrupted(*args, **kwargs):
        raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")

    monkeypatch.setattr(fastpath, "_load", interrupted)
    path = write("a.jsonl", [canonical_request(i) for i in range(5)])
    assert main(["ingest", str(path), "--store", str(lake.root)]) == 130
    assert capsys.readouterr().err.startswith("interrupted: what was committed before stays")
    monkeypatch.undo()
    from lib.store import Engine

    engine = Engine(lake)
    try:
        assert engine.row_count("requests") == 0
    finally:
        engine.close()
    # and the run again stores the file whole
    assert main(["ingest", str(path), "--store", str(lake.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["files"][0]["stored"] == {"requests": 5}


def test_a_real_ctrl_c_in_a_query_stops_the_ingest_and_stores_nothing(lake, write):
    # DuckDB takes a SIGINT itself and raises RuntimeError("Query interrupted"), not its
    # InterruptException: the fast path read that as "not clean JSONL", read the file again on
    # the exact path and committed it, exit 0 (review). A real signal, in a process of its own
    # (signals reach the main thread), during a real query that runs until it is interrupted.
    import subprocess
    import sys

    path = write("a.jsonl", [canonical_request(i) for i in range(5)])
    old = os.stat(path).st_mtime - 600  # (not a file being written)
    os.utime(path, (old, old))
    driver = f"""
import os, signal, sys, threading
# (Python's own handler, as in a terminal: a process started in the background inherits SIGINT
# ignored, and a suite run so would wait for the query forever)
signal.signal(signal.SIGINT, signal.default_int_handler)
from lib.ingest import fastpath
def _load(lake, batch, *args, **kwargs):
    import duckdb
    con = duckdb.connect()
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    # (seconds of work, not endless: were the interrupt lost, the run still ends, exit 0)
    con.execute("SELECT count(*) FROM range(1000000000) t(i) WHERE i % 7 = 3").fetchall()
fastpath._load = _load
from lib.cli import main
sys.exit(main(["ingest", {str(path)!r}, "--store", {str(lake.root)!r}]))
"""
    proc = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2],
                          env={**os.environ, "SIGHTLINE_DEMO": "0"})
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert proc.stderr.startswith("interrupted: what was committed before stays")
    assert lake.commits() == []


def test_ctrl_c_in_a_query_on_the_run_s_shared_connection_ends_the_run_at_once(lake, write):
    # DuckDB raises "Query interrupted" at once, but the query goes on in its threads and
    # closing the connection waited for it: an interrupted 1M-row ingest took up to 12 s to exit
    # (review). The run's shared connection, as the fast path uses it, a query of over a minute.
    import subprocess
    import sys
    import time

    path = write("a.jsonl", [canonical_request(i) for i in range(5)])
    old = os.stat(path).st_mtime - 600  # (not a file being written)
    os.utime(path, (old, old))
    driver = f"""
import os, signal, sys, threading
signal.signal(signal.SIGINT, signal.default_int_handler)  # (as in a terminal)
from lib.ingest import fastpath
def _load(lake, batch, *args, **kwargs):
    con, own = fastpath.shared_or_own(lake.tmp_dir / "t", lake.tmp_dir / "t" / "spill")
    assert not own
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    # (a group-by of over a minute: 400M rows took 14.5 s)
    con.execute("SELECT i % 1000 AS k, count(*) FROM range(2400000000) t(i) GROUP BY 1").fetchall()
fastpath._load = _load
from lib.cli import main
sys.exit(main(["ingest", {str(path)!r}, "--store", {str(lake.root)!r}]))
"""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True,
                          timeout=150, cwd=Path(__file__).resolve().parents[2],
                          env={**os.environ, "SIGHTLINE_DEMO": "0"})
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert proc.stderr.startswith("interrupted: what was committed before stays")
    assert time.monotonic() - t0 < 30  # (left running, the query holds the exit a minute)
    assert lake.commits() == []


def test_ingest_takes_the_prices_file_reprice_takes(lake, write, capsys, tmp_path):
    # (reprice --prices FILE, then an ingest on the default prices: one store, two prices)
    prices = tmp_path / "negotiated.yaml"
    prices.write_text("models:\n- provider: openai\n  model: gpt-4o\n  input_per_mtok: 1.0\n"
                      "  output_per_mtok: 2.0\n")
    path = write("a.jsonl", [canonical_request(0)])  # 1000 in, 500 out
    assert main(["ingest", str(path), "--store", str(lake.root), "--prices", str(prices)]) == 0
    from lib.store import Engine

    engine = Engine(lake)
    try:
        assert engine.scalar("SELECT cost_usd FROM requests") == pytest.approx(
            1000 * 1e-6 + 500 * 2e-6)
    finally:
        engine.close()
    capsys.readouterr()
    assert main(["reprice", "--store", str(lake.root), "--prices", str(prices), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changed_rows"] == 0


def test_the_text_report_says_how_many_reasons_it_does_not_show(lake, write, capsys):
    bad = [{"request_id": f"x{i}"} for i in range(8)]  # no ts, no model: 8 quarantined
    path = write("bad.jsonl", [canonical_request(0), *bad])
    assert main(["ingest", str(path), "--store", str(lake.root)]) == 0
    out = capsys.readouterr().out
    assert out.count("missing ts") == 5
    assert "… and 3 more (the quarantine keeps them all: see them on the Data page, or " \
        "download them there)" in out


def test_demo_data_into_a_store_of_real_logs_says_so(lake, write, capsys):
    path = write("a.jsonl", [canonical_request(0)])
    assert main(["demo", "--store", str(lake.root), "--days", "1",
                 "--requests-per-day", "50"]) == 0
    assert "warning" not in capsys.readouterr().err  # an empty store: nothing to mix with
    other = lake.root.parent / "real"
    assert main(["ingest", str(path), "--store", str(other)]) == 0
    capsys.readouterr()
    assert main(["demo", "--store", str(other), "--days", "1", "--requests-per-day", "50"]) == 0
    assert "holds 1 ingested batch(es) of your own" in capsys.readouterr().err


def test_demo_data_warns_of_real_batches_compacted_and_not_of_removed_ones(lake, write,
                                                                           capsys):
    # a compaction replaces an ingest's files: its rows are still the user's
    root = str(lake.root)
    for n in range(2):
        assert main(["ingest", str(write(f"{n}.jsonl", [canonical_request(n)])), "--store",
                     root]) == 0
    assert main(["compact", "--store", root]) == 0
    capsys.readouterr()
    assert main(["demo", "--store", root, "--days", "1", "--requests-per-day", "20"]) == 0
    assert "holds 2 ingested batch(es) of your own" in capsys.readouterr().err


@pytest.mark.parametrize("as_json", [False, True])
def test_sigterm_ends_the_ingest_saying_so_and_stores_nothing_of_the_batch(lake, write, tmp_path,
                                                                           as_json):
    """cron's `timeout` sends SIGTERM: the run ended silently (exit -15), found in review. It
    ends as Ctrl-C does: a message, exit status 143, the batch being written not stored; with
    --json, the message is the one document on stdout too (it was empty: `| jq` read nothing)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    path = write("a.jsonl", [canonical_request(i) for i in range(5)])
    marker = tmp_path / "paused"
    env = {**os.environ, "SIGHTLINE_TEST_PAUSE_AT": "after_first_chunk",
           "SIGHTLINE_TEST_PAUSE_MARKER": str(marker), "SIGHTLINE_INGEST_FAST": "0",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "lib", "ingest", str(path), "--store",
                             str(lake.root), *(["--json"] if as_json else [])],
                            env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (out, err)
    assert err.startswith("terminated (SIGTERM): what was committed before stays")
    assert [c for c in lake.commits() if c.kind == "ingest"] == []
    if as_json:
        doc = json.loads(out)
        assert doc["interrupted"] is True and doc["error"] == err.strip()


def test_paths_may_come_before_between_and_after_the_options(lake, write, capsys):
    # "ingest a.jsonl --format jsonl b.jsonl" failed on b.jsonl (unrecognized arguments), found
    # in a docs review: argparse mixes them only when asked to
    a = write("a.jsonl", [canonical_request(1)])
    b = write("b.jsonl", [canonical_request(2)])
    c = write("c.jsonl", [canonical_request(3)])
    assert main(["ingest", str(a), "--format", "jsonl", str(b), "--store", str(lake.root),
                 str(c), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [f["stored"] for f in doc["files"]] == [{"requests": 1}] * 3


def test_ingest_warns_when_a_manifest_entry_does_not_read(lake, write, capsys):
    # Its rows are not seen by the dedupe: the same file went in again without a word, and the
    # store held its rows twice once the entry read again (found in review).
    path = write("a.jsonl", [canonical_request(i) for i in range(3)])
    assert main(["ingest", str(path), "--store", str(lake.root), "--json"]) == 0
    batch = json.loads(capsys.readouterr().out)["files"][0]["batch_id"]
    entry = lake.manifest_dir / f"{batch}.json"
    entry.write_text(entry.read_text()[:50])
    again = write("b.jsonl", [canonical_request(i) for i in range(3, 5)])
    assert main(["ingest", str(again), "--store", str(lake.root)]) == 0
    err = capsys.readouterr().err
    assert f"{entry}: unreadable manifest entry" in err and "stored again" in err
