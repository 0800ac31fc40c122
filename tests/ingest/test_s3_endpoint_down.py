"""An S3 endpoint that stops answering, or is cut, after the listing (found in review): each object
cost botocore's 60 s read timeout x 3 attempts, fetched again alone after its group (~4.5 min an
object, with the store's writer lock held); a cut endpoint gave one error line per object left; a
SIGTERM came through ~175 s late. And objects of stored content under new keys were fetched twice
and parsed whole before being found copies.

A proxy in front of moto (:class:`Proxy`, on a free port, stopped by its fixture) plays the
endpoint: it leaves GETs of a prefix unanswered (a black hole), or closes every connection once
some objects were served (cut)."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

from lib.commands.ingest import render
from lib.ingest import memo, pipeline
from lib.ingest import s3 as s3mod
from lib.ingest.pipeline import ingest_paths
from lib.store import Engine, Lake
from tests.ingest.conftest import canonical_request, jsonl_bytes

ROOT = Path(__file__).resolve().parents[2]


class Proxy:
    """http://127.0.0.1:<free port> in front of the server at ``target`` (host, port), one request
    a connection (it adds "Connection: close"). A GET whose path starts with ``stall`` is never
    answered (``stalled`` is set once one came); once ``down_after`` GETs of objects were let
    through, every connection is closed at once, unanswered (the endpoint cut)."""

    def __init__(self, target: str, stall: str | None = None, down_after: int | None = None):
        host, port = target.removeprefix("http://").rsplit(":", 1)
        self._target = (host, int(port))
        self._stall, self._down_after = stall, down_after
        self.stalled = threading.Event()
        self._lock = threading.Lock()
        self._object_gets = 0
        self._held: list[socket.socket] = []
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(65536)
            if not chunk:
                conn.close()
                return
            head += chunk
        line, _, rest = head.partition(b"\r\n")
        method, path, _ = line.decode("latin-1").split(" ", 2)
        with self._lock:
            if method == "GET" and "?" not in path:  # (a listing is /bucket?list-type=2…)
                self._object_gets += 1
            cut = self._down_after is not None and self._object_gets > self._down_after
            if not cut and self._stall and path.startswith(self._stall):
                self._held.append(conn)  # never answered
                self.stalled.set()
                return
        if cut:
            conn.close()
            return
        headers = [h for h in rest.split(b"\r\n") if not h.lower().startswith(b"connection:")]
        try:
            with socket.create_connection(self._target) as upstream:
                upstream.sendall(b"\r\n".join([line, b"Connection: close", *headers]))
                while data := upstream.recv(65536):
                    conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._server.close()
        with self._lock:
            for conn in self._held:
                conn.close()


@pytest.fixture
def s3(s3_server):
    """A client on moto with an empty bucket "logs" (moto's state is reset)."""
    urllib.request.urlopen(urllib.request.Request(f"{s3_server}/moto-api/reset", method="POST"))
    client = boto3.client("s3", endpoint_url=s3_server)
    client.create_bucket(Bucket="logs")
    return client


@pytest.fixture
def proxy(s3_server):
    """proxy(stall=…, down_after=…) -> a started Proxy in front of moto; all stopped after."""
    started: list[Proxy] = []

    def start(**kw) -> Proxy:
        started.append(Proxy(s3_server, **kw))
        return started[-1]

    yield start
    for p in started:
        p.close()


def put_objects(s3, prefix: str, n: int, rows_each: int = 1) -> None:
    for k in range(n):
        first = 1000 * (ord(prefix[0]) - 96) + k * rows_each
        s3.put_object(Bucket="logs", Key=f"{prefix}/{k:02d}.jsonl",
                      Body=jsonl_bytes([canonical_request(first + j) for j in range(rows_each)]))


def cli(store: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lib", "ingest", *args, "--store", str(store)],
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def counts(lake: Lake) -> tuple:
    eng = Engine(lake)
    try:
        return eng.query("SELECT count(*), count(DISTINCT request_id) FROM requests").row(0)
    finally:
        eng.close()


# Short timeouts and one attempt a read: a test's failures take a second, not 30 s x 3.
QUICK = {"SIGHTLINE_S3_CONNECT_TIMEOUT": "1", "SIGHTLINE_S3_READ_TIMEOUT": "1",
         "AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "1"}
PATHS = {"group": {}, "one-at-a-time": {"SIGHTLINE_INGEST_GROUP": "0"}}


@pytest.mark.parametrize("path", PATHS)
def test_an_endpoint_that_stops_answering_after_the_listing_is_given_up_in_one_line(
        tmp_path, s3, s3_server, proxy, path):
    """12 objects behind a black hole: 3 timeouts (the read timeout is honoured), then one line
    naming the endpoint and the 9 objects left; exit 2; nothing recorded, so the next run reads
    all 12. It took 12 x ~4.5 min (botocore's 60 s read timeout, 3 attempts, and a group's
    object fetched again alone)."""
    put_objects(s3, "h", 12)
    hole = proxy(stall="/logs/h/")
    store = tmp_path / "store"
    started = time.monotonic()
    run = cli(store, "s3://logs/h/", "--s3-endpoint-url", hole.url, **QUICK, **PATHS[path])
    try:
        out, err = run.communicate(timeout=90)
    finally:
        run.kill()
    took = time.monotonic() - started
    assert run.returncode == 2, (out, err)
    assert took < 45, took  # ~3 s here; each object took a minute or more
    errors = [line.split(": error: ") for line in out.splitlines() if ": error: " in line]
    assert len(errors) == 4, out
    assert all(why.startswith("ReadTimeoutError") for _, why in errors[:3]), out
    assert errors[3][0] == "s3://logs/h/", out
    said, _, left = errors[3][1].partition(" reads in a row (")
    assert said == f"stopped reading this prefix: the endpoint {hole.url} failed 3", out
    assert left in {f"{why}); 9 object(s) under it were not read and are left for the next run"
                    for _, why in errors[:3]}, out  # (the failure that was the third)
    lake = Lake(store)
    assert [c for c in lake.commits() if c.kind in ("ingest", "seen")] == []  # nothing read
    again = cli(store, "s3://logs/h/", "--s3-endpoint-url", s3_server, **QUICK)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, (out, err)
    assert counts(lake) == (12, 12)


@pytest.mark.parametrize("path", PATHS)
def test_an_endpoint_cut_mid_run_is_one_line_and_the_next_run_reads_the_rest(
        lake, s3, s3_server, proxy, monkeypatch, path):
    """Cut after 10 objects of 30 were served: what was read is stored, 3 failures, then one line
    for the rest (it was an error line per object left, 344 of them); the next run stores the
    others, none twice."""
    for name, value in {**QUICK, **PATHS[path]}.items():
        monkeypatch.setenv(name, value)
    put_objects(s3, "c", 30, rows_each=2)
    cut = proxy(down_after=10)
    report = ingest_paths(lake, ["s3://logs/c/"], s3_endpoint_url=cut.url)
    stored = [f for f in report.files if f.stored]
    errors = [f for f in report.files if f.error]
    assert len(errors) == 4 and not report.ok, render(report)
    given_up = errors[-1]
    assert given_up.source == "s3://logs/c/", render(report)
    assert f"the endpoint {cut.url} failed 3 reads in a row" in given_up.error
    left = 30 - len(stored) - 3
    assert given_up.error.endswith(f"; {left} object(s) under it were not read and are left "
                                   "for the next run")
    # and in the --json document's numbers, not its text alone
    doc = report.to_dict()
    assert doc["totals"]["left_for_next_run"] == left == doc["files"][-1]["left_for_next_run"]
    assert len(report.files) == len(stored) + 4 and len(stored) == 10, render(report)
    assert sum("stopped reading" in line for line in render(report).splitlines()) == 1
    assert [c.kind for c in lake.commits()] == ["ingest"] * len(stored)  # nothing seen
    again = ingest_paths(lake, ["s3://logs/c/"], s3_endpoint_url=s3_server)
    assert again.ok, render(again)
    assert sum(bool(f.stored) for f in again.files) == 30 - len(stored)
    assert counts(lake) == (60, 60)


def test_only_network_failures_in_a_row_give_a_prefix_up(lake, s3, s3_server, monkeypatch):
    """An object the endpoint answered for (denied here, or read) starts the count again; the
    third network failure in a row stops the prefix, and the objects after it are one line."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    monkeypatch.setenv("SIGHTLINE_INGEST_GROUP", "0")
    put_objects(s3, "b", 11)
    down = EndpointConnectionError(endpoint_url="http://s3")
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                          "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject")
    outcomes = iter([down, down, denied, down, down, None, down, down, down])
    original = s3mod.open_object

    def open_object(obj, *, client):
        exc = next(outcomes)  # (StopIteration: an object read after the prefix was given up)
        if exc is not None:
            raise exc
        return original(obj, client=client)

    monkeypatch.setattr(s3mod, "open_object", open_object)
    report = ingest_paths(lake, ["s3://logs/b/"], s3_endpoint_url=s3_server)
    lines = [(Path(f.source).name, (f.error or "stored").split(":")[0]) for f in report.files]
    failed = "EndpointConnectionError"
    assert lines == [("00.jsonl", failed), ("01.jsonl", failed), ("02.jsonl", "ClientError"),
                     ("03.jsonl", failed), ("04.jsonl", failed), ("05.jsonl", "stored"),
                     ("06.jsonl", failed), ("07.jsonl", failed), ("08.jsonl", failed),
                     ("b", "stopped reading this prefix")], render(report)
    assert report.files[-1].error.endswith("; 2 object(s) under it were not read and are left "
                                           "for the next run")
    assert s3mod.network_failure(down) and not s3mod.network_failure(denied)


def test_a_group_s_stalled_fetches_do_not_hold_the_writer_lock(tmp_path, s3, proxy):
    """Another writer (a cron job over local files, an upload) is not kept waiting while a
    group's objects are fetched: the lock is taken once they are."""
    put_objects(s3, "w", 4)
    hole = proxy(stall="/logs/w/")
    store = tmp_path / "store"
    run = cli(store, "s3://logs/w/", "--s3-endpoint-url", hole.url)
    try:
        assert hole.stalled.wait(60), "no GET reached the endpoint"
        time.sleep(1)
        lock = Lake(store).manifest_dir / ".lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # (raises when it is held)
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        run.kill()
        run.communicate()


@pytest.mark.parametrize("path", PATHS)
def test_sigterm_during_a_stalled_fetch_ends_the_run_at_once(tmp_path, s3, proxy, path):
    """cron's `timeout` during a read the endpoint never answers (the default timeouts: 10 s to
    connect, 30 s to read): exit 143 within seconds, nothing stored. A group waited for its
    fetch threads (and the interpreter's exit for them again): exit 143 came ~175 s late."""
    put_objects(s3, "t", 10)
    hole = proxy(stall="/logs/t/")
    store = tmp_path / "store"
    run = cli(store, "s3://logs/t/", "--s3-endpoint-url", hole.url, **PATHS[path])
    try:
        assert hole.stalled.wait(60), "no GET reached the endpoint"
        time.sleep(0.5)  # (waiting on it)
        sent = time.monotonic()
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        run.kill()
    assert run.returncode == 143, (out, err)
    assert err.startswith("terminated (SIGTERM): what was committed before stays"), err
    assert took < 10, took  # ~0.1 s here
    assert [c for c in Lake(store).commits() if c.kind == "ingest"] == []


@pytest.mark.parametrize("path", PATHS)
def test_objects_of_stored_content_under_new_keys_are_copies_read_once(
        tmp_path, s3, s3_server, monkeypatch, path):
    """A copy of stored content under a new key (another prefix, or the second of two runs at
    once) is reported as a copy and recorded as seen, as without groups, from the bytes the group
    fetched: not fetched again and parsed whole first (600 such objects took 132 s, 30 s as new
    content)."""
    for name, value in PATHS[path].items():
        monkeypatch.setenv(name, value)
    lake = Lake(tmp_path / "store")
    put_objects(s3, "o", 6, rows_each=3)
    assert ingest_paths(lake, ["s3://logs/o/"], s3_endpoint_url=s3_server).ok
    for k in range(6):
        s3.copy_object(Bucket="logs", Key=f"p/{k:02d}.jsonl",
                       CopySource={"Bucket": "logs", "Key": f"o/{k:02d}.jsonl"})
    for k in (6, 7):  # new content, read together
        s3.put_object(Bucket="logs", Key=f"p/{k:02d}.jsonl",
                      Body=jsonl_bytes([canonical_request(100 + k)]))
    opened, parsed = [], []
    original, exact = s3mod.open_object, pipeline._ingest_jsonl_sql
    monkeypatch.setattr(s3mod, "open_object", lambda obj, *, client: opened.append(obj.key)
                        or original(obj, client=client))
    monkeypatch.setattr(pipeline, "_ingest_jsonl_sql", lambda lake_, batch, stream, name, src,
                        *a: parsed.append(src.name) or exact(lake_, batch, stream, name, src, *a))
    report = ingest_paths(lake, ["s3://logs/p/"], s3_endpoint_url=s3_server)
    assert [f.duplicate_file for f in report.files] == [True] * 6 + [False] * 2, render(report)
    assert all(f.content_hash and f.bytes and not f.stored for f in report.files[:6])
    if path == "group":
        assert sorted(opened) == [f"p/{k:02d}.jsonl" for k in range(8)]  # each once
        assert parsed == []
    seen = [c for c in lake.commits() if c.kind == "seen"]
    assert sorted(c.source for c in seen) == [f"s3://logs/p/{k:02d}.jsonl" for k in range(6)]
    assert all(c.info["seen"] == memo.SAME_CONTENT for c in seen)
    again = ingest_paths(lake, ["s3://logs/p/"], s3_endpoint_url=s3_server)
    assert [f.skipped for f in again.files] == \
        [f"already seen (same ETag): {memo.SAME_CONTENT}"] * 6 \
        + ["already ingested (same ETag)"] * 2
    assert counts(lake) == (20, 20)


def test_a_copy_of_a_group_member_whose_read_failed_is_read_not_called_a_copy(
        tmp_path, s3, s3_server, monkeypatch):
    """Two objects of one content in a group, the first one failing alone (replaced after the
    listing): the second is no copy of anything stored, and is read and stored."""
    lake = Lake(tmp_path / "store")
    body = jsonl_bytes([canonical_request(1), canonical_request(2)])
    for key in ("d/1.jsonl", "d/2.jsonl", "d/3.jsonl"):
        s3.put_object(Bucket="logs", Key=key, Body=body if key != "d/3.jsonl"
                      else jsonl_bytes([canonical_request(3)]))
    from lib.ingest import grouped

    real = grouped._commit

    def commit(lake_, con, m, *a, **kw):  # the group's commit of d/1 fails: read alone, which
        if m.src.name.endswith("/1.jsonl"):  # finds it replaced since it was listed
            s3.put_object(Bucket="logs", Key="d/1.jsonl", Body=b"replaced\n")
            raise RuntimeError("failed")
        return real(lake_, con, m, *a, **kw)

    monkeypatch.setattr(grouped, "_commit", commit)
    report = ingest_paths(lake, ["s3://logs/d/"], s3_endpoint_url=s3_server)
    first, second, third = report.files
    assert first.skipped and "replaced since this run listed it" in first.skipped
    assert second.stored == {"requests": 2} and not second.duplicate_file, render(report)
    assert third.stored == {"requests": 1}
    assert counts(lake) == (3, 3)


def test_a_group_does_not_wait_for_a_fetch_of_a_prefix_given_up(lake, s3, s3_server, monkeypatch):
    """A fetch begun before the third failure came (an object taken by a thread whose fetch had
    just failed) is not waited for once the prefix is given up: it took a whole timeout more,
    botocore's retries included (~90 s for 10 objects behind a black hole)."""
    from botocore.exceptions import EndpointConnectionError

    from lib.ingest import grouped

    monkeypatch.setattr(grouped, "FETCH_THREADS", 2)
    monkeypatch.setattr(grouped, "GIVEN_UP_WAIT_S", 0.5)  # (5 s: time for bytes on their way)
    put_objects(s3, "g", 6)
    held = threading.Event()  # object 01's GET is answered only when the test ends
    original = s3mod.open_object

    def open_object(obj, *, client):
        if obj.key == "g/01.jsonl":
            held.wait(60)
        else:  # (00, 02 and 03 fail, one thread after the other; 04 and 05 are not read)
            raise EndpointConnectionError(endpoint_url="http://s3")
        return original(obj, client=client)

    monkeypatch.setattr(s3mod, "open_object", open_object)
    reports = []
    run = threading.Thread(target=lambda: reports.append(
        ingest_paths(lake, ["s3://logs/g/"], s3_endpoint_url=s3_server)), daemon=True)
    run.start()
    try:
        run.join(20)
        assert reports, "the run waited for the fetch in flight"
    finally:
        held.set()
        run.join(60)
    (report,) = reports[:1]
    assert [Path(f.source).name for f in report.files] == ["00.jsonl", "02.jsonl", "03.jsonl",
                                                           "g"], render(report)
    assert report.files[-1].error.endswith("; 3 object(s) under it were not read and are left "
                                           "for the next run")
    assert lake.commits() == []
