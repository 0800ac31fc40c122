"""Inspect AI eval logs in their default binary form, the ``.eval`` file: format ``inspect-eval``.

A ``.eval`` log is a zip (members compressed with zstd, method 93, by current Inspect; deflate by
older ones) holding ``header.json`` (the log without its samples: ``eval``, ``plan``,
``results``, ``stats``), one ``samples/<id>_epoch_<n>.json`` per sample and epoch, and
bookkeeping (``_journal/``, ``summaries.json``, ``reductions.json``) that is not read. The rows
are exactly those of the same log in JSON (format ``inspect``, lib/ingest/formats/inspect_ai.py,
whose mapping, rules and quarantine this reuses): one eval row per (sample, epoch, scorer).

Reading: the stream is spooled to a temporary file (a zip is read from its end) and the samples
are read one member at a time, so memory holds one sample. A member named twice (Inspect appends
a re-run sample under the same name) is read in its last version, as Inspect reads it.

Lines: a sample's quarantine line is its position (from 1) in the order Inspect gives a log's
samples (by epoch, then id; a numeric id as a number), which is its position in ``samples`` of
the JSON that ``inspect log convert --to json`` writes, so both forms of a log name the same
line. The order is read from the member names (``<id>_epoch_<n>``: an id written as an integer
counts as one); members under ``samples/`` not named so come after, by name. Each reason starts
with the member ("samples/2_epoch_1.json: epoch is not an integer: abc").

A log whose eval is still running, or whose process died, has no ``header.json`` yet: its rows
come from the samples already written, the eval from ``_journal/start.json`` (there are no
``stats``, so a row's time is its sample's ``completed_at``, else ``eval.created``).

Bad input: a file that is no complete zip (cut short, or copied while being written), a zip
that is no Inspect log (neither ``header.json`` nor ``_journal/start.json``), or a header that
cannot be read (not JSON, encrypted, too large) fails the file with one line naming the problem
(an :class:`InputError`: the pipeline adds the file's name); the other files go on. A sample
member that cannot be used is quarantined with its reason and the other samples go on: one that
is not valid JSON, is encrypted, is damaged (bad CRC, bad compressed data), uses a zip feature
Sightline cannot read (a compression method such as PPMd), or is larger uncompressed than
``MAX_MEMBER_BYTES``, the limit of one JSON document (``otlp_common.MAX_DOCUMENT_BYTES``,
64 MiB): such a member is never decompressed, and no read takes more than that many bytes
whatever the zip claims.
"""

from __future__ import annotations

import io
import re
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from lib.ingest.base import Chunk, Format, Reject
from lib.ingest.formats import otlp_common
from lib.ingest.formats.inspect_ai import log_chunks
from lib.ingest.formats.json_values import RAW_CHARS, read_json
from lib.ingest.streams import InputError

if sys.version_info >= (3, 14):
    import zipfile

    from compression import zstd
else:  # Python 3.14's zipfile, which reads zstd members (method 93), backported
    from backports import zstd
    from backports.zstd import zipfile

ZIP_MAGIC = b"PK\x03\x04"
HEADER = "header.json"
START = "_journal/start.json"  # the header of a log whose eval has not finished
SAMPLES = "samples/"
# Inspect starts a new zstd frame every 200 MiB of a member and zipfile reads one frame per
# member, so a limit past 200 MiB would need a multi-frame reader.
MAX_MEMBER_BYTES = otlp_common.MAX_DOCUMENT_BYTES
SPOOL_BYTES = 1 << 20
# samples/<id>_epoch_<n>.json, as Inspect names them (an id may itself hold "_epoch_": the last
# one splits).
_SAMPLE_NAME = re.compile(r"samples/(?P<id>.+)_epoch_(?P<epoch>[0-9]+)\.json", re.DOTALL)
_INTEGER = re.compile(r"-?[0-9]+")
_MASK_ENCRYPTED = 0x1


def _detect(head: bytes, filename: str) -> bool:
    # The first member Inspect writes is _journal/start.json; a log rewritten whole may start
    # with another, so any member name of its own will do, as does the .eval suffix.
    return head.startswith(ZIP_MAGIC) and (
        filename.lower().endswith(".eval")
        or any(name.encode() in head for name in (START, HEADER, SAMPLES)))


def _parse(stream: BinaryIO, filename: str) -> Iterator[Chunk]:
    with tempfile.TemporaryFile(prefix="sightline-", suffix=".eval") as spool:
        shutil.copyfileobj(stream, spool, SPOOL_BYTES)
        spool.seek(0)
        try:
            log = zipfile.ZipFile(spool)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise InputError("not a complete zip file (cut short, or copied while Inspect was "
                             f"writing it?): {exc}") from None
        with log:
            members = {info.filename: info for info in log.infolist()}  # the last of a name
            document = HEADER if HEADER in members else START if START in members else None
            if document is None:
                held = ", ".join(list(members)[:5]) or "nothing"
                raise InputError("not an Inspect eval log: the zip holds neither "
                                 f"{HEADER} nor {START} (it holds {held})")
            doc, problem = _read_member(log, members[document])
            if problem is not None:
                raise InputError(f"{document} {problem}")
            if not isinstance(doc, dict) or not isinstance(doc.get("eval"), dict):
                raise InputError(f"not an Inspect eval log: {document} has no 'eval' object")
            names = sorted((name for name in members
                            if name.startswith(SAMPLES) and name.endswith(".json")),
                           key=_inspect_order)
            yield from log_chunks(doc, _samples(log, members, names), filename, document)


def _inspect_order(name: str) -> tuple:
    """The sort key of a sample member: Inspect's order of samples (epoch, then id, an integer id
    zero-filled to 20 digits as Inspect's ``sort_samples`` does), read from the member's name;
    members not named ``samples/<id>_epoch_<n>.json`` after those, by name."""
    named = _SAMPLE_NAME.fullmatch(name)
    if named is None:
        return (1, 0, "", name)
    sample_id = named["id"]
    if _INTEGER.fullmatch(sample_id) and str(int(sample_id)) == sample_id:
        sample_id = sample_id.zfill(20)
    return (0, int(named["epoch"]), sample_id, name)


def _samples(log: zipfile.ZipFile, members: dict, names: list[str]
             ) -> Iterator[tuple[int, object, str]]:
    """(line, sample or Reject, member) of each sample member, read one at a time."""
    for line, name in enumerate(names, start=1):
        sample, problem = _read_member(log, members[name])
        if problem is not None:
            sample = Reject(line, sample, f"{name} {problem}")
        yield line, sample, name


def _read_member(log: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[object, str | None]:
    """(the member's JSON value, None), or (its first bytes as text for the quarantine, why it
    cannot be read: "is not valid JSON: ..."). Never holds more than ``MAX_MEMBER_BYTES`` + 1
    bytes of it."""
    if info.flag_bits & _MASK_ENCRYPTED:
        return "", "is encrypted (password-protected): Sightline does not decrypt logs"
    if info.file_size > MAX_MEMBER_BYTES:
        return "", (f"is {info.file_size:,} bytes uncompressed, larger than the limit of "
                    f"{MAX_MEMBER_BYTES:,} bytes for one JSON document: not read")
    try:
        with log.open(info) as member:
            # Bounded whatever the zip claims: zipfile stops at the declared size (then checks
            # the CRC), and this read at one byte past the limit.
            data = member.read(MAX_MEMBER_BYTES + 1)
    except NotImplementedError as exc:  # a compression method or zip feature zipfile lacks
        return "", f"uses a zip feature Sightline cannot read: {exc}"
    except (zipfile.BadZipFile, zlib.error, zstd.ZstdError, EOFError, OSError,
            ValueError) as exc:
        return "", f"cannot be decompressed (damaged): {exc}"
    if len(data) > MAX_MEMBER_BYTES:
        return "", (f"is more than the limit of {MAX_MEMBER_BYTES:,} bytes for one JSON "
                    "document uncompressed: not read")
    try:
        return read_json(io.BytesIO(data)), None
    except ValueError as exc:  # json's JSONDecodeError, or nesting too deep to read
        return data[:RAW_CHARS].decode("utf-8", "replace"), f"is not valid JSON: {exc}"


FORMAT = Format(name="inspect-eval", detect=_detect, parse=_parse, priority=40,
                doc="Inspect AI eval log, binary .eval (zip) as Inspect writes it by default "
                    "(samples/*.json scores) → eval rows.")
