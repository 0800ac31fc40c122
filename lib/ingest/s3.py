"""S3 as an ingest source: list a prefix, stream objects, remember what was ingested.

Credentials come from boto3's standard chain (environment, profile, instance role). An
S3-compatible store (MinIO, moto, R2) is reached with an endpoint URL: the ``endpoint_url``
argument, else ``$SIGHTLINE_S3_ENDPOINT_URL``. An object is read once per (key, ETag): the
pipeline records both in the commit's ``info["s3"]`` and skips them next time
(lib/ingest/memo.py); an object that gave no batch (content already ingested under another key,
or unreadable) is recorded by a commit of kind "seen" that adds no files. A connection waits
``SIGHTLINE_S3_CONNECT_TIMEOUT`` seconds (10), a read ``SIGHTLINE_S3_READ_TIMEOUT`` (30).
"""

from __future__ import annotations

import os
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


def hint_for(exc: BaseException) -> str | None:
    """What to do about a boto3 failure ``exc``, or None when there is nothing to add."""
    response = getattr(exc, "response", None)
    code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return _DENIED.get(getattr(exc, "operation_name", ""))
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
