"""Crash safety with real processes (design §2): a writer killed with SIGKILL at any moment leaves
no partial batch visible and the store readable and writable; a reader process keeps working
while a writer process appends.

Each batch ``k`` of a writer has ROWS rows spread over two UTC days (so two data files per commit),
``request_id = <prefix>-<k>-<i>`` and content hash ``<prefix>-<k>``, which is also its commit id
and therefore every row's ``batch_id``: a half-visible batch would show as a batch_id with fewer
than ROWS rows.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lib.store import Engine, Lake
from tests.conftest import make_request, requests_table, wait_for_marker

REPO = Path(__file__).resolve().parents[2]
ROWS = 2000

WRITER = textwrap.dedent(
    """
    import os, sys
    from datetime import datetime, timedelta, timezone
    import numpy as np
    import pyarrow as pa
    from lib import schema
    from lib.store import Lake

    store, prefix, n_batches, rows, pause_after, stage = sys.argv[1:7]
    n_batches, rows, pause_after = int(n_batches), int(rows), int(pause_after)
    lake = Lake(store)
    t0 = datetime(2026, 3, 2, 18, 0, tzinfo=timezone.utc)
    i = np.arange(rows)
    print("ready", flush=True)
    k = 0
    while n_batches == 0 or k < n_batches:
        if k == pause_after:
            os.environ["SIGHTLINE_TEST_PAUSE_AT"] = stage
        ts = pa.array(np.datetime64(t0.replace(tzinfo=None), "us")
                      + (i * 43_200_000_000 // rows).astype("timedelta64[us]"), schema.TS)
        table = pa.table({
            "request_id": [f"{prefix}-{k}-{j}" for j in range(rows)],
            "ts": ts,  # 18:00 to 06:00 next day: two partitions
            "latency_ms": np.full(rows, float(k)),
            "input_tokens": i.astype(np.int64),
            "status": ["ok"] * rows,
        })
        lake.append({"requests": table}, source=f"{prefix}-{k}", content_hash=f"{prefix}-{k}")
        print(f"committed {k}", flush=True)
        k += 1
    print("done", flush=True)
    """
)

READER = textwrap.dedent(
    """
    import json, os, sys, time
    from lib.store import Engine, Lake

    store, done_marker, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    engine = Engine(Lake(store))
    counts, errors, partial = [], [], []
    print("ready", flush=True)
    while True:
        finished = os.path.exists(done_marker)
        try:
            # One query, so one version of the lake (each query may refresh the views).
            per_batch = engine.query(
                "SELECT batch_id, count(*) AS n, count(DISTINCT request_id) AS d, "
                "min(latency_ms) = max(latency_ms) AS one_k FROM requests GROUP BY 1")
            n = int(per_batch["n"].sum()) if per_batch.height else 0
            bad = per_batch.filter((per_batch["n"] != rows) | (per_batch["d"] != rows)
                                   | ~per_batch["one_k"])
            if bad.height:
                partial.append({"n": n, "bad": bad.rows()})
            counts.append(n)
            counts.append(engine.row_count("requests"))
        except Exception as exc:  # the test fails on any
            errors.append(f"{type(exc).__name__}: {exc}")
        if finished:
            break
        time.sleep(0.01)
    print(json.dumps({"counts": counts, "errors": errors, "partial": partial,
                      "problems": engine.problems()}), flush=True)
    """
)


@pytest.fixture
def scripts(tmp_path) -> dict[str, Path]:
    out = {}
    for name, text in (("writer", WRITER), ("reader", READER)):
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        out[name] = path
    return out


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_TEST_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _start_writer(script, store, prefix, *, n_batches=0, pause_after=-1, stage="", env=None):
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store), prefix, str(n_batches), str(ROWS),
         str(pause_after), stage],
        cwd=REPO, env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read()
    return proc


def _kill9(proc) -> list[str]:
    """SIGKILL the process; return the batches it reported as committed."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    out = proc.stdout.read()
    proc.stdout.close()
    proc.stderr.close()
    return [line.split()[1] for line in out.splitlines() if line.startswith("committed")]


def _check_store(store: Path, prefix: str, reported: list[str]) -> int:
    """After a crash: the store is consistent. Returns the number of committed batches of prefix."""
    lake = Lake(store)
    commits = [c for c in lake.commits() if c.commit_id.startswith(f"{prefix}-")]
    committed = {c.commit_id for c in commits}
    # Everything the writer saw committed is in the manifest (the manifest may hold one more:
    # killed after publishing, before printing).
    assert {f"{prefix}-{k}" for k in reported} <= committed
    assert len(committed) - len(reported) in (0, 1)

    # Every live file exists, reads, and holds the rows its commit says.
    snap = lake.snapshot()
    listed = {f["path"]: f["rows"] for c in snap.commits for f in c.added}
    for path in snap.files["requests"]:
        assert pq.read_metadata(store / path).num_rows == listed[path]

    expected_rows = sum(c.rows.get("requests", 0) for c in snap.commits)
    engine = Engine(lake)
    try:
        assert engine.problems() == []
        assert engine.row_count("requests") == expected_rows
        per_batch = engine.query(
            "SELECT batch_id, count(*) AS n, count(DISTINCT request_id) AS d, "
            "count(*) FILTER (WHERE NOT starts_with(request_id, batch_id || '-')) AS foreign_rows "
            "FROM requests GROUP BY 1")
        assert set(per_batch["batch_id"]) == {c.commit_id for c in snap.commits}
        assert per_batch["n"].to_list() == [ROWS] * per_batch.height
        assert per_batch["d"].to_list() == [ROWS] * per_batch.height
        assert per_batch["foreign_rows"].sum() == 0
    finally:
        engine.close()
    return len(committed)


def _orphans(store: Path) -> list[Path]:
    lake = Lake(store)
    return lake.orphans(older_than_s=0)


def test_writer_killed_at_random_moments_leaves_the_store_consistent(tmp_path, scripts):
    store = tmp_path / "store"
    rng = random.Random(20260302)
    total_batches = 0
    for attempt in range(3):
        prefix = f"run{attempt}"
        proc = _start_writer(scripts["writer"], store, prefix)
        # Once the writer is streaming (first batch in), kill it at a random moment.
        assert proc.stdout.readline().strip() == "committed 0"
        time.sleep(rng.uniform(0.0, 0.6))
        reported = ["0", *_kill9(proc)]
        total_batches += _check_store(store, prefix, reported)
    assert total_batches >= 3
    # The store is still writable: the killed writers' lock died with them.
    lake = Lake(store)
    engine = Engine(lake)
    before = engine.row_count("requests")
    lake.append({"requests": requests_table([make_request(0)])}, source="after")
    assert engine.row_count("requests") == before + 1
    engine.close()


@pytest.mark.parametrize("stage", ["after_data_files", "before_publish"])
def test_writer_killed_between_data_files_and_publish(tmp_path, scripts, stage):
    store = tmp_path / "store"
    marker = tmp_path / "paused"
    env = _env(SIGHTLINE_TEST_PAUSE_MARKER=str(marker), SIGHTLINE_TEST_PAUSE_S="60")
    # Three batches commit, the fourth pauses at the stage with its data files renamed into place.
    proc = _start_writer(scripts["writer"], store, "p", n_batches=10, pause_after=3, stage=stage,
                         env=env)
    wait_for_marker(proc, marker, why=proc.stderr.read)
    assert marker.read_text() == stage
    reported = _kill9(proc)
    assert reported == ["0", "1", "2"]

    # The fourth batch's data files are on disk, complete, but in no commit: invisible.
    orphans = _orphans(store)
    assert len(orphans) == 2 and all(p.suffix == ".parquet" for p in orphans)
    assert sum(pq.read_metadata(p).num_rows for p in orphans) == ROWS
    assert _check_store(store, "p", reported) == 3
    assert Engine(Lake(store)).row_count("requests") == 3 * ROWS

    # Retrying the killed batch stores all of it: orphans do not count as "already there".
    proc = _start_writer(scripts["writer"], store, "p", n_batches=5)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    out = proc.stdout.read()
    proc.stdout.close()
    proc.stderr.close()
    assert "committed 3" in out
    assert _check_store(store, "p", ["0", "1", "2", "3", "4"]) == 5
    assert Engine(Lake(store)).row_count("requests") == 5 * ROWS


def test_reader_process_keeps_working_while_a_writer_process_appends(tmp_path, scripts):
    store = tmp_path / "store"
    done = tmp_path / "writer-done"
    n_batches = 15
    reader = subprocess.Popen(
        [sys.executable, str(scripts["reader"]), str(store), str(done), str(ROWS)],
        cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
    writer = _start_writer(scripts["writer"], store, "w", n_batches=n_batches)
    try:
        assert writer.wait(timeout=60) == 0, writer.stderr.read()
    finally:
        done.write_text("done")
    out, err = reader.communicate(timeout=60)
    writer.stdout.close()
    writer.stderr.close()
    assert reader.returncode == 0, err
    doc = json.loads(out.strip().splitlines()[-1])
    counts = doc["counts"]
    assert doc["errors"] == []
    assert doc["partial"] == []  # never a partial batch
    assert doc["problems"] == []
    assert counts == sorted(counts)  # never decreasing
    assert all(n % ROWS == 0 for n in counts)
    assert counts[-1] == n_batches * ROWS
    # The reader saw the lake grow while it was being written, not only before and after.
    assert len({n for n in counts if 0 < n < n_batches * ROWS}) >= 3
