"""A wrong S3 endpoint is reported after botocore's "standard" retries (3 attempts, ~2 s), not
its "legacy" default's (5, ~9 s), unless the user chose a retry mode themselves; an attempt waits
10 s to connect and 30 s for bytes (botocore's default: 60 s each)."""

from __future__ import annotations

import socket
import threading

import pytest

from lib.ingest import s3 as s3mod
from lib.ingest.pipeline import ingest_paths


@pytest.fixture
def slamming_endpoint():
    """http://127.0.0.1:PORT, a server that closes every connection at once; yields (url, the
    number of connections made so far as a callable)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", lambda: len(accepted)
    server.close()


@pytest.fixture
def credentials(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    for name in ("AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("env, attempts", [
    ({}, 3),  # botocore's legacy default would make 5
    ({"AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "2"}, 2),  # the user's choice stands
])
def test_an_endpoint_that_fails_is_tried_as_often_as_the_retry_mode_says(
        lake, monkeypatch, credentials, slamming_endpoint, env, attempts):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url, connections = slamming_endpoint
    (report,) = ingest_paths(lake, ["s3://logs/p/"], s3_endpoint_url=url).files
    assert report.error and "Connection" in report.error
    assert connections() == attempts


def test_a_retry_mode_in_the_users_profile_stands(lake, monkeypatch, credentials, tmp_path,
                                                    slamming_endpoint):
    config = tmp_path / "aws-config"
    config.write_text("[default]\nretry_mode = standard\nmax_attempts = 1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    url, connections = slamming_endpoint
    (report,) = ingest_paths(lake, ["s3://logs/p/"], s3_endpoint_url=url).files
    assert report.error and connections() == 1


def test_reads_wait_10_s_to_connect_and_30_s_for_bytes_unless_told(monkeypatch):
    """botocore's 60 s each, times 3 attempts, made an endpoint that stopped answering cost
    minutes an object."""
    for name in (s3mod.CONNECT_TIMEOUT_ENV, s3mod.READ_TIMEOUT_ENV):
        monkeypatch.delenv(name, raising=False)
    config = s3mod.client("http://127.0.0.1:9").meta.config
    assert (config.connect_timeout, config.read_timeout) == (10, 30)
    monkeypatch.setenv("SIGHTLINE_S3_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("SIGHTLINE_S3_READ_TIMEOUT", "120.5")
    config = s3mod.client("http://127.0.0.1:9").meta.config
    assert (config.connect_timeout, config.read_timeout) == (2, 120.5)
    monkeypatch.setenv("SIGHTLINE_S3_READ_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="SIGHTLINE_S3_READ_TIMEOUT must be a number of "
                                         "seconds above 0, not 'soon'"):
        s3mod.client("http://127.0.0.1:9")
