"""S3 as an ingest source: list a prefix, stream objects, remember what was ingested.

Credentials come from boto3's standard chain (environment, profile, instance role). An
S3-compatible store (MinIO, moto, R2) is reached with an endpoint URL: the ``endpoint_url``
argument, else ``$SIGHTLINE_S3_ENDPOINT_URL``. An object is read once per (key, ETag): the
pipeline records both in the commit's ``info["s3"]`` and skips them next time
(lib/ingest/memo.py); an object that gave no batch (content already ingested under another key,
or unreadable) is recorded by a commit of kind "seen" that adds no files.

An endpoint that stops answering after the listing (a black hole, a gateway down, connections
cut) costs a bounded time: a connection waits ``SIGHTLINE_S3_CONNECT_TIMEOUT`` seconds (10), a
read ``SIGHTLINE_S3_READ_TIMEOUT`` (30), and once :data:`FAILURES_IN_A_ROW` reads of a prefix
fail on the network in a row, the rest of it is not read (:class:`Breaker`): one line says so,
and the next run reads them (nothing of them is recorded).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from lib.ingest.streams import ChangedWhileListed

NO_OBJECTS = "no objects under this prefix"
NO_GLOBS = " (S3 matches keys by their literal prefix: *, ? and [ ] are not expanded)"
ONLY_HIDDEN = (" but {n} hidden object(s) ({first}…: keys with a part starting with a dot are "
               "not read)")


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    etag: str
    size: int
    storage_class: str | None = None  # as listed ("STANDARD", "GLACIER"…; None: not said)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def filename(self) -> str:
        """The key's last part ("batch" for a key "logs/batch/" that holds bytes)."""
        return self.key.rstrip("/").rsplit("/", 1)[-1]


# What to do about the failures a first S3 setup meets, added to botocore's words (which name
# the code, not the cause: "SignatureDoesNotMatch" is a wrong secret key, found in review).
_CHAIN = ("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (boto3's standard "
          "chain; an instance or task role also works)")
_ENDPOINT = "--s3-endpoint-url or $SIGHTLINE_S3_ENDPOINT_URL"
_HINTS = {
    "NoCredentialsError": f"no credentials were found: set {_CHAIN}",
    "PartialCredentialsError": f"the credentials are incomplete: set {_CHAIN}",
    "InvalidAccessKeyId": "this endpoint does not know the access key: check AWS_ACCESS_KEY_ID "
                          f"or the profile, and {_ENDPOINT} for an S3-compatible store",
    "SignatureDoesNotMatch": "the secret key does not match the access key: check "
                             "AWS_SECRET_ACCESS_KEY or the profile",
    "ExpiredToken": "the session's credentials have expired: renew them (aws sso login, or a "
                    "new role session) and run again",
    "InvalidToken": "the session token is not valid: check AWS_SESSION_TOKEN or the profile",
    "NoSuchBucket": f"check the bucket's name, and {_ENDPOINT} for an S3-compatible store",
    "PermanentRedirect": "the bucket is in another region: set AWS_DEFAULT_REGION to it",
    "AuthorizationHeaderMalformed": "the bucket is in another region: set AWS_DEFAULT_REGION "
                                    "to it",
}
_DENIED = {"ListObjectsV2": "these credentials may not list the bucket: they need "
                            "s3:ListBucket on it (for this prefix)",
           "GetObject": "these credentials may not read the object: they need s3:GetObject on "
                        "it (and kms:Decrypt for an object encrypted with a KMS key)"}


# An S3 store answers a listing of a bucket it lacks with NoSuchBucket in an XML body; a bare
# 404 to a listing (an HTTP status, no S3 error code) comes from a server that is not an S3 API:
# a web server, MinIO's console, a proxy's path.
_NOT_S3 = ("the endpoint answered a bucket listing with a bare 404, as no S3 API does: check "
           f"that {_ENDPOINT} is the S3 API's address (MinIO serves it on port 9000, its web "
           "console on 9001), then the bucket's name")


def hint_for(exc: BaseException) -> str | None:
    """What to do about a boto3 failure ``exc``, or None when there is nothing to add."""
    response = getattr(exc, "response", None)
    code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
    operation = getattr(exc, "operation_name", "")
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return _DENIED.get(operation)
    if code == "404" and operation == "ListObjectsV2":
        return _NOT_S3
    return _HINTS.get(code) or _HINTS.get(type(exc).__name__)


def parse_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` → (bucket, prefix). Raises ValueError on anything else."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return bucket, prefix


# How long a connection to the endpoint, and a read on one, may wait (seconds) before the attempt
# fails (botocore's default is 60 s each, times 3 attempts: an endpoint that stopped answering
# after the listing cost ~4.5 min an object, found in review). A TCP handshake to S3 takes
# milliseconds, and 10 s lets Linux send a lost SYN three times (after 1, 3 and 7 s). The read
# timeout bounds a wait between bytes (not a whole download: a large object on a slow link keeps
# going while bytes arrive); S3's first byte comes in well under a second, a few seconds at worst
# under throttling (a 503 SlowDown answers, it does not wait), so 30 s is several times any
# answer S3, MinIO or R2 give when well, and half botocore's 60.
CONNECT_TIMEOUT_ENV, CONNECT_TIMEOUT_S = "SIGHTLINE_S3_CONNECT_TIMEOUT", 10.0
READ_TIMEOUT_ENV, READ_TIMEOUT_S = "SIGHTLINE_S3_READ_TIMEOUT", 30.0


def client(endpoint_url: str | None = None):
    """A boto3 S3 client on the standard credential chain and the configured endpoint, with
    bounded connect and read timeouts."""
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url or os.environ.get("SIGHTLINE_S3_ENDPOINT_URL") or None
    session = boto3.session.Session()
    config = Config(connect_timeout=_seconds(CONNECT_TIMEOUT_ENV, CONNECT_TIMEOUT_S),
                    read_timeout=_seconds(READ_TIMEOUT_ENV, READ_TIMEOUT_S))
    retries = _retry_config(session)
    return session.client("s3", endpoint_url=endpoint,
                          config=config if retries is None else config.merge(retries))


def _seconds(name: str, default: float) -> float:
    """The number of seconds the environment variable ``name`` says (``default`` when unset)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a number of seconds above 0, not {raw!r}")
    return value


def _retry_config(session):
    """botocore's "standard" retries (3 attempts), unless the user chose a retry mode
    (``AWS_RETRY_MODE`` or ``retry_mode`` in their profile): its default, "legacy", retries a
    refused connection for ~9 s before a wrong endpoint is reported; "standard", ~2 s."""
    from botocore.config import Config

    if os.environ.get("AWS_RETRY_MODE"):
        return None
    try:
        chosen = session._session.get_scoped_config().get("retry_mode")
    except Exception:  # a profile that does not exist is boto3's to report, when it signs
        chosen = None
    return None if chosen else Config(retries={"mode": "standard"})


def hidden_below(prefix: str, key: str) -> bool:
    """Whether ``key`` is hidden under ``prefix`` as a folder's file would be: a part of the key
    after the prefix's folder starts with a dot (``.DS_Store``, ``.tmp/part-0``; ``.`` and ``..``
    are no names in a folder, but odd parts of a key, read), unless the prefix names that very
    object."""
    if key == prefix:
        return False
    below = key[prefix.rfind("/") + 1:]
    return any(part.startswith(".") and part not in (".", "..") for part in below.split("/"))


def list_objects(uri: str, *, client, hidden: list[str] | None = None) -> Iterator[S3Object]:
    """Objects under the prefix, in key order; folder markers (an empty object whose key ends in
    "/", as consoles make them) and hidden keys (:func:`hidden_below`, not read in a folder
    either; added to ``hidden``) skipped, a key ending in "/" that holds bytes kept."""
    bucket, prefix = parse_uri(uri)
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/") and not int(item["Size"]):
                continue
            if hidden_below(prefix, item["Key"]):
                if hidden is not None:
                    hidden.append(item["Key"])
                continue
            yield S3Object(bucket, item["Key"], item["ETag"].strip('"'), int(item["Size"]),
                           item.get("StorageClass"))


def open_object(obj: S3Object, *, client) -> BinaryIO:
    """A forward-only stream of the object's bytes, pinned to the listed ETag (IfMatch), so an
    object replaced while we read it fails instead of mixing versions. Raises
    ChangedWhileListed when it was deleted or replaced since it was listed (a skip, not an
    error: lifecycle rules and re-uploads are ordinary; the next run sees what is there)."""
    from botocore.exceptions import ClientError

    try:
        return client.get_object(Bucket=obj.bucket, Key=obj.key, IfMatch=f'"{obj.etag}"')["Body"]
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404"):
            raise ChangedWhileListed("gone before it was read (deleted since this run listed "
                                     "it)") from None
        if code in ("PreconditionFailed", "412"):
            raise ChangedWhileListed("it was replaced since this run listed it; the next run "
                                     "reads the new version") from None
        if code == "InvalidObjectState":
            # An object a lifecycle rule archived (Glacier Flexible Retrieval, Deep Archive) is
            # ordinary in a bucket with history: a skip, not an error every run; once restored,
            # a run reads it (it is not remembered as read).
            raise ChangedWhileListed("archived (storage class "
                                     f"{obj.storage_class or 'GLACIER or DEEP_ARCHIVE'}): not "
                                     "readable until it is restored; a run after that reads "
                                     "it") from None
        raise


# -- an endpoint that stops answering -------------------------------------------------------------
# Reads of a prefix that fail on the network one after the other (each after botocore's retries)
# before the rest of the prefix is left for the next run.
FAILURES_IN_A_ROW = 3
# An S3 error a read gets after its retries that says the endpoint is failing, not the object
# (botocore's standard retries take them as transient too)
_FAILING = {500, 502, 503, 504}


class EndpointDown(Exception):
    """An object not read: its prefix's endpoint stopped answering (:class:`Breaker`)."""


def network_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the endpoint is not answering (a connection refused, cut or timed out,
    a stream broken, a 5xx after the retries), not something about the object itself (denied,
    gone, a bad file)."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        IncompleteReadError,
    )

    if isinstance(exc, EndpointDown | ConnectionError | HTTPClientError | IncompleteReadError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status in _FAILING
    return False


class Breaker:
    """The reads of the objects listed under one prefix (``uri``) through ``client``: once
    :data:`FAILURES_IN_A_ROW` of them failed on the network in a row (:func:`network_failure`;
    an object the endpoint answered for since the last failure, read whole or refused, starts
    the count again), the others are not read (:class:`EndpointDown`, at once), nor are those
    failing after that reported one by one: the run's report has one line for them all
    (:func:`left_for_next_run`). Nothing of them is recorded, so the next run reads them.

    Thread-safe: a group's objects are fetched several at a time (lib/ingest/grouped.py); an
    answer to a read that began before a failure says nothing of the endpoint since, and does
    not start the count again."""

    def __init__(self, uri: str, client):
        self.uri, self.client = uri, client
        self.endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None) or "?"
        self._lock = threading.Lock()
        self._in_a_row = 0
        self._failures = 0  # network failures so far: when a read began (its "epoch")
        self._why: str | None = None  # the failure that stopped it (None: reading on)
        self._left: set[str] = set()  # objects not read, or failed once it had stopped
        self._line = None  # the report's line for them (a FileReport)
        self._counted = 0

    @property
    def stopped(self) -> bool:
        return self._why is not None

    def opener(self, obj: S3Object) -> _Opener:
        """What a Source's ``open`` is for ``obj``."""
        return _Opener(self, obj)

    def open(self, obj: S3Object) -> BinaryIO:
        """:func:`open_object`, watched: raises EndpointDown once the endpoint stopped
        answering."""
        with self._lock:
            if self._why is not None:
                self._left.add(obj.uri)
                raise EndpointDown(f"not read: {self.endpoint} stopped answering ({self._why})")
            epoch = self._failures
        try:
            body = open_object(obj, client=self.client)
        except Exception as exc:
            self.outcome(obj, epoch, exc)
            raise
        return _Watched(body, self, obj, epoch)

    def outcome(self, obj: S3Object, epoch: int, exc: BaseException | None) -> None:
        """Count a read of ``obj`` begun at ``epoch`` that ended: whole (``exc`` None) or
        failing with ``exc``."""
        failed = exc is not None and network_failure(exc)
        with self._lock:
            if not failed:
                if epoch == self._failures:  # (no failure since it began)
                    self._in_a_row = 0
                return
            self._failures += 1
            if self._why is not None:
                self._left.add(obj.uri)  # (in flight when it stopped: one of those left)
            else:
                self._in_a_row += 1
                if self._in_a_row >= FAILURES_IN_A_ROW:
                    from lib.ingest.pipeline import _one_line

                    self._why = _one_line(exc).rstrip(".")

    def left(self, obj_uri: str) -> bool:
        with self._lock:
            return obj_uri in self._left

    def abandon(self, obj: S3Object) -> EndpointDown:
        """``obj``, read when this prefix was given up, not waited for: one of those left."""
        with self._lock:
            self._left.add(obj.uri)
            return EndpointDown(f"not waited for: {self.endpoint} stopped answering "
                                f"({self._why})")

    def count_left(self, files: list) -> None:
        """Count one more object left for the next run in the report's one line for them, at
        the end of ``files`` (the report's FileReports so far): after the prefix's other
        lines."""
        from lib.ingest.pipeline import FileReport

        self._counted += 1
        if self._line is None:
            self._line = FileReport(source=self.uri)
        else:  # (moved after the prefix's lines so far: its objects' errors come first)
            at = next(i for i in range(len(files) - 1, -1, -1) if files[i] is self._line)
            del files[at]
        files.append(self._line)
        self._line.left_for_next_run = self._counted
        self._line.error = (
            f"stopped reading this prefix: the endpoint {self.endpoint} failed "
            f"{FAILURES_IN_A_ROW} reads in a row ({self._why}); {self._counted:,} object(s) "
            "under it were not read and are left for the next run")


class _Opener:
    """A Source's ``open`` for an S3 object read through a :class:`Breaker`."""

    def __init__(self, breaker: Breaker, obj: S3Object):
        self.breaker, self.obj = breaker, obj

    def __call__(self) -> BinaryIO:
        return self.breaker.open(self.obj)


class _Watched:
    """An object's body that tells its :class:`Breaker` how its read ended (read to its end, or
    failed)."""

    def __init__(self, body, breaker: Breaker, obj: S3Object, epoch: int):
        self._body, self._breaker, self._obj, self._epoch = body, breaker, obj, epoch
        self._got = 0

    def read(self, *args):
        try:
            data = self._body.read(*args)
        except Exception as exc:
            self._breaker.outcome(self._obj, self._epoch, exc)
            raise
        self._got += len(data)
        # (read whole: as many bytes as listed, the ETag pinned; or the end of the stream)
        if not data or self._got >= self._obj.size:
            self._breaker.outcome(self._obj, self._epoch, None)
        return data

    def close(self) -> None:
        self._body.close()

    def __getattr__(self, name):
        return getattr(self._body, name)


def given_up(src) -> bool:
    """Whether ``src`` (a lib.ingest.pipeline.Source) is an S3 object whose prefix was given up
    (:class:`Breaker`): a read of it still in flight may be abandoned (:func:`abandon`)."""
    opener = getattr(src, "open", None)
    return isinstance(opener, _Opener) and opener.breaker.stopped


def abandon(src) -> EndpointDown:
    """Abandon the read of ``src`` (:func:`given_up`): it is counted among the objects left for
    the next run; returns the exception to report it with."""
    return src.open.breaker.abandon(src.open.obj)


def left_for_next_run(files: list, src) -> bool:
    """Whether the source ``src`` (a lib.ingest.pipeline.Source) is an S3 object whose read was
    left for the next run, its endpoint having stopped answering (:class:`Breaker`): then it is
    counted in the one line of ``files`` (the run's FileReports) that says so for its prefix,
    and has none of its own."""
    opener = getattr(src, "open", None)
    if not isinstance(opener, _Opener) or not opener.breaker.left(opener.obj.uri):
        return False
    opener.breaker.count_left(files)
    return True
