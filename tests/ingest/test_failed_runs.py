"""A run's sources that could not be read at all (an S3 listing that failed, an endpoint gone) are
recorded as a "failed" commit the Data page shows, and read again by the next run (found in
review: after 344 of 600 objects failed, the Data page showed nothing wrong)."""

from __future__ import annotations

import uuid

import boto3
from streamlit.testing.v1 import AppTest

from lib.cli import main
from lib.ingest.failures import FAILED
from lib.metrics import inventory
from lib.store import Engine
from tests.conftest import APP
from tests.ingest.conftest import canonical_request, jsonl_bytes

# (moto's buckets outlive a test's server, in a process that runs other tests too: names of
# this file's own)
LOGS, MISSING = f"failed-runs-{uuid.uuid4().hex[:8]}", f"never-made-{uuid.uuid4().hex[:8]}"


def _bucket(s3, name: str) -> None:
    if name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=name)


def _run(lake, s3_server, *extra) -> int:
    return main(["ingest", f"s3://{LOGS}/app/", f"s3://{MISSING}/x/", "--store",
                 str(lake.root), "--s3-endpoint-url", s3_server, *extra])


def test_a_source_that_could_not_be_read_is_recorded_and_read_again(lake, s3_server, capsys):
    s3 = boto3.client("s3", endpoint_url=s3_server)
    _bucket(s3, LOGS)
    s3.put_object(Bucket=LOGS, Key="app/1.jsonl", Body=jsonl_bytes([canonical_request(0)]))
    assert _run(lake, s3_server, "--dry-run") == 2
    assert [c.kind for c in lake.commits()] == []  # a check records nothing
    assert _run(lake, s3_server) == 2
    capsys.readouterr()
    assert [c.kind for c in lake.commits()] == ["ingest", FAILED]
    engine = Engine(lake)
    failed = inventory.recent_failed_run(engine)
    assert failed["source"] == f"s3://{LOGS}/app/ s3://{MISSING}/x/"
    assert failed["note"].startswith("1 source(s) could not be read, and are read again by the "
                                     f"next run: s3://{MISSING}/x/: ")
    assert "NoSuchBucket" in failed["note"]
    listed = inventory.batches(engine, kind=FAILED).row(0, named=True)
    assert (listed["note"], listed["rows"], listed["files"]) == (failed["note"], 0, 0)
    assert inventory.recent_failed_run(engine, within_s=-1) is None  # only a recent one warns
    engine.close()
    # the bucket is there now: the next run reads it, and skips what it read before
    s3.create_bucket(Bucket=MISSING)
    s3.put_object(Bucket=MISSING, Key="x/2.jsonl", Body=jsonl_bytes([canonical_request(1)]))
    try:
        assert _run(lake, s3_server) == 0
        assert [c.kind for c in lake.commits()] == ["ingest", FAILED, "ingest"]
    finally:  # (the other test needs it missing)
        s3.delete_object(Bucket=MISSING, Key="x/2.jsonl")
        s3.delete_bucket(Bucket=MISSING)


def test_a_source_remembered_as_seen_is_no_failed_run(lake, write):
    # an empty file is unreadable content: remembered (and listed) as "seen", not a failure
    import os

    path = write("empty.jsonl", b"")
    os.utime(path, (0, 0))  # (not a file still being written)
    assert main(["ingest", str(path), "--store", str(lake.root)]) == 2
    assert [c.kind for c in lake.commits()] == ["seen"]


def test_the_data_page_warns_of_a_recent_failed_run(lake, s3_server, monkeypatch):
    _bucket(boto3.client("s3", endpoint_url=s3_server), LOGS)
    assert _run(lake, s3_server) == 2
    monkeypatch.setenv("SIGHTLINE_STORE", str(lake.root))
    monkeypatch.setenv("SIGHTLINE_DEMO", "0")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/data.py").run()
    assert not at.exception
    # (the markdown source: text from the run is escaped)
    (warning,) = [w.value.replace("\\", "") for w in at.warning
                  if "did not read everything" in w.value]
    assert f"over s3://{LOGS}/app/ s3://{MISSING}/x/ did not read everything" in warning
    assert "NoSuchBucket" in warning
