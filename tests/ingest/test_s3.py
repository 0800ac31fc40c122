"""S3 as a source, against moto's server on 127.0.0.1 through boto3 (and DuckDB for a check)."""

from __future__ import annotations

import gzip

import boto3
import duckdb
import duckdb_extensions

from lib.ingest.pipeline import ingest_paths
from tests.ingest.conftest import canonical_request, jsonl_bytes


def test_s3_prefix_ingests_new_objects_once(lake, s3_server, totals, monkeypatch, tmp_path):
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="logs")
    s3.put_object(Bucket="logs", Key="app/1.jsonl", Body=jsonl_bytes(
        [canonical_request(i) for i in range(3)]))
    s3.put_object(Bucket="logs", Key="app/2.jsonl.gz", Body=gzip.compress(jsonl_bytes(
        [canonical_request(i) for i in range(3, 5)])))
    s3.put_object(Bucket="logs", Key="other/x.jsonl", Body=b"ignored")

    first = ingest_paths(lake, ["s3://logs/app/"], s3_endpoint_url=s3_server)
    assert [(f.source, f.stored) for f in first.files] == [
        ("s3://logs/app/1.jsonl", {"requests": 3}), ("s3://logs/app/2.jsonl.gz", {"requests": 2})]

    # A new object arrives; the endpoint now comes from the environment.
    s3.put_object(Bucket="logs", Key="app/3.jsonl", Body=jsonl_bytes([canonical_request(9)]))
    monkeypatch.setenv("SIGHTLINE_S3_ENDPOINT_URL", s3_server)
    second = ingest_paths(lake, ["s3://logs/app/"])
    assert [f.skipped is not None for f in second.files] == [True, True, False]
    assert second.files[2].stored == {"requests": 1}
    assert totals("SELECT count(*) FROM requests") == (6,)

    # Replaced content under the same key has a new ETag: read again, rows deduplicated by id.
    s3.put_object(Bucket="logs", Key="app/3.jsonl", Body=jsonl_bytes(
        [canonical_request(9), canonical_request(10)]))
    third = ingest_paths(lake, ["s3://logs/app/"])
    assert third.files[2].stored == {"requests": 1} and third.files[2].duplicates == \
        {"requests": 1}

    # The objects are plain S3: DuckDB's own client reads the same bytes.
    con = duckdb.connect(config={"extension_directory": str(tmp_path / "ext"),
                                 "autoinstall_known_extensions": False})
    duckdb_extensions.import_extension("httpfs", con=con)
    port = s3_server.rsplit(":", 1)[1]
    con.execute(f"SET s3_endpoint='127.0.0.1:{port}'; SET s3_use_ssl=false; "
                "SET s3_url_style='path'; SET s3_region='us-east-1'; "
                "SET s3_access_key_id='testing'; SET s3_secret_access_key='testing';")
    n = con.execute("SELECT count(*) FROM read_json('s3://logs/app/1.jsonl')").fetchone()[0]
    assert n == 3


def test_s3_missing_bucket_is_an_error_not_a_crash(lake, s3_server):
    report = ingest_paths(lake, ["s3://nope/x/"], s3_endpoint_url=s3_server)
    assert report.files[0].error and "NoSuchBucket" in report.files[0].error


def test_objects_that_gave_no_rows_are_not_read_again(lake, s3_server, totals):
    """A copy of ingested content under another key, and an empty object: each gives its report
    once; the next run skips both, as it skips ingested objects, until their ETag changes."""
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="cron")
    body = jsonl_bytes([canonical_request(i) for i in range(3)])
    s3.put_object(Bucket="cron", Key="a/1.jsonl", Body=body)
    s3.put_object(Bucket="cron", Key="a/2-copy.jsonl", Body=body)
    s3.put_object(Bucket="cron", Key="a/empty.jsonl", Body=b"")

    first = ingest_paths(lake, ["s3://cron/a/"], s3_endpoint_url=s3_server)
    by_key = {f.source.rsplit("/", 1)[1]: f for f in first.files}
    assert by_key["1.jsonl"].stored == {"requests": 3}
    assert by_key["2-copy.jsonl"].duplicate_file
    assert by_key["empty.jsonl"].error == "empty file"

    second = ingest_paths(lake, ["s3://cron/a/"], s3_endpoint_url=s3_server)
    assert sorted(f.skipped for f in second.files) == [
        "already ingested (same ETag)", "already seen (same ETag): empty file",
        "already seen (same ETag): same content as an ingested source"]
    assert second.ok and totals("SELECT count(*) FROM requests") == (3,)
    assert not [c for c in lake.commits() if c.kind == "seen" and c.added]

    # Content arrives under the empty key (a new ETag): it is read.
    s3.put_object(Bucket="cron", Key="a/empty.jsonl", Body=jsonl_bytes([canonical_request(7)]))
    third = ingest_paths(lake, ["s3://cron/a/"], s3_endpoint_url=s3_server)
    assert [f.stored for f in third.files if f.skipped is None] == [{"requests": 1}]


def test_an_object_seen_unreadable_is_read_again_when_the_readers_change(
        lake, s3_server, totals, tmp_path, monkeypatch):
    """"Seen" holds for the readers of the time: given a mapping, an object no format recognized
    is read; with a raised size limit, a document once too large is read."""
    from lib.ingest.formats import otlp_common

    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="own")
    s3.put_object(Bucket="own", Key="x/mine.csv",
                  Body=b"id,at,m\nq1,2026-03-02T12:00:00Z,gpt-4o\n")
    first = ingest_paths(lake, ["s3://own/x/"], s3_endpoint_url=s3_server)
    assert first.files[0].error and first.files[0].unreadable
    again = ingest_paths(lake, ["s3://own/x/"], s3_endpoint_url=s3_server)
    assert again.files[0].skipped.startswith("already seen (same ETag)")

    spec = tmp_path / "mine.yaml"
    spec.write_text("table: requests\ncolumns:\n  request_id: id\n  ts: at\n  model: m\n")
    mapped = ingest_paths(lake, ["s3://own/x/"], s3_endpoint_url=s3_server, mapping=spec)
    assert mapped.files[0].skipped is None and mapped.files[0].stored == {"requests": 1}
    after = ingest_paths(lake, ["s3://own/x/"], s3_endpoint_url=s3_server, mapping=spec)
    assert after.files[0].skipped == "already ingested (same ETag)"

    # An OTLP document over the limit, then the limit raised.
    monkeypatch.setattr(otlp_common, "MAX_DOCUMENT_BYTES", 64)
    doc = b'{\n  "resourceSpans": [\n' + b" " * 100 + b"\n  ]\n}\n"
    s3.put_object(Bucket="own", Key="t/big.json", Body=doc)
    big = ingest_paths(lake, ["s3://own/t/"], s3_endpoint_url=s3_server)
    assert "too large" in big.files[0].error
    assert ingest_paths(lake, ["s3://own/t/"], s3_endpoint_url=s3_server).files[0].skipped
    monkeypatch.setattr(otlp_common, "MAX_DOCUMENT_BYTES", 1 << 20)
    raised = ingest_paths(lake, ["s3://own/t/"], s3_endpoint_url=s3_server)
    assert raised.files[0].skipped is None and raised.files[0].error is None
    assert totals("SELECT count(*) FROM requests") == (1,)
