"""Byte streams for ingestion: transparent gzip and zstd, a content hash computed while reading,
a peek for format detection, and line blocks that survive absurdly long lines.

Everything here reads forward only, so a source can be a local file, an upload or an S3 body.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import json
import re
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from lib import schema
from lib.ingest.base import Reject

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
UTF8_BOM = b"\xef\xbb\xbf"  # a byte order mark some Windows tools put before UTF-8 text
HEAD_BYTES = 64 * 1024
READ_BYTES = 1 << 20
# A line longer than this is quarantined unread: no log record is legitimately 16 MiB, and
# holding one in memory is how a single bad line takes an ingest down.
MAX_LINE_BYTES = 16 * 1024 * 1024
LINE_BLOCK_BYTES = 8 * 1024 * 1024


class InputError(Exception):
    """The input cannot be read at all (empty, truncated, not a known format): one line for the
    user, naming the problem; the pipeline adds the file name."""


class ChangedWhileListed(Exception):
    """A source changed (or went) between the run's listing and its read: skipped, saying so in
    the message; the next run reads what is there then."""


class ReadStream(io.RawIOBase):
    """A readable raw stream whose subclass gives ``read(n)``; ``readinto`` copies from it."""

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)


class _Prefixed(io.RawIOBase):
    """``prefix`` followed by the rest of ``raw``: puts back bytes read to sniff the magic."""

    def __init__(self, prefix: bytes, raw: BinaryIO):
        self._prefix, self._raw = prefix, raw

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self._prefix:
            n = min(len(buf), len(self._prefix))
            buf[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._raw.read(len(buf))
        buf[: len(data)] = data
        return len(data)


class FirstBytes(io.RawIOBase):
    """The first ``size`` bytes of ``raw`` (a local file read no further than the size it had
    when it was listed: lib/ingest/live.py). Raises ChangedWhileListed when the file ends
    before that: it was cut short while it was read (truncated in place, as logrotate's
    ``copytruncate`` does), and its last line read would be a line it never held."""

    def __init__(self, raw: BinaryIO, size: int):
        self._raw, self._left = raw, size

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self._left <= 0:
            return 0
        data = self._raw.read(min(len(buf), self._left))
        if not data:
            raise ChangedWhileListed("it was cut short while this run read it (truncated in "
                                     "place, as logrotate's copytruncate does); the next run "
                                     "reads what it holds then")
        self._left -= len(data)
        buf[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


# A hole is longer than a binary format's zero bytes (a 4-byte length); past the sure size it is
# a hole whatever follows, so a long one is never held in memory to be given back.
ZERO_HOLE_MIN_BYTES = 16
ZERO_HOLE_SURE_BYTES = 1 << 20
ZERO_HOLE = ("zero byte(s) at the file's start skipped: it was truncated in place (as "
             "logrotate's copytruncate does) while its writer went on at its old offset, which a "
             "log opened in append mode does not do.")


class SourceStream(ReadStream):
    """The decompressed content of a source, read forward once.

    ``sha256`` covers every byte read so far (call :meth:`drain` for the whole content);
    ``peek(n)`` returns the first bytes without consuming them; ``bytes_in`` counts compressed
    bytes taken from the source, for progress against its size.
    """

    def __init__(self, raw: BinaryIO, hasher=None, origin: int = 0):
        """``hasher``: a SHA-256 already fed the bytes before ``raw``, which begins at byte
        ``origin`` of its file (a file read from where an earlier read ended:
        lib/ingest/appended.py), so the hash covers the file from its start."""
        self.origin = origin
        self._counted = _Counting(raw)
        magic = _read_exactly(self._counted, 8)
        source: BinaryIO = _Prefixed(magic, self._counted)
        # gzip; a zstd stream (zstd -d, or the OpenTelemetry Collector's file exporter with
        # compression: zstd under its native-compression gate); or that exporter's older framing:
        # each export request a zstd frame after its length in 4 bytes.
        self.compression = ("gzip" if magic[:2] == GZIP_MAGIC else
                            "zstd" if _zstd_frame_start(magic[:4]) else
                            "zstd-framed" if _zstd_frame_start(magic[4:8])
                            and magic[:4] != b"PAR1" else None)
        self.compressed = self.compression is not None
        if self.compression == "gzip":
            source = gzip.GzipFile(fileobj=io.BufferedReader(source, READ_BYTES), mode="rb")
        elif self.compression == "zstd-framed":
            source = _framed_zstd(source)
        elif self.compression is not None:
            source = zstd.ZstdFile(io.BufferedReader(source, READ_BYTES), mode="rb")
        self._source = source
        self._hash = hasher or hashlib.sha256()
        self._pending = b""  # peeked, not yet consumed
        self.bytes_out = 0
        # UTF-16 text (what Windows PowerShell's ">" writes) is read as UTF-8, decided by its
        # byte order mark on the first read; its bytes_out and hash are then the UTF-8's
        self.transcoded = False
        self._bom_checked = origin != 0  # (a read from a file's middle has no mark)
        self._decoder = None
        # A file truncated in place (logrotate's copytruncate) whose writer keeps its offset (a
        # log not opened in append mode) starts again with a hole of zero bytes as long as the
        # file was, then the new lines: the hole is skipped, counted here, so the lines are read
        # (they were "binary data" on every run, found in review); hash and bytes_out keep it.
        self.zero_bytes_skipped = 0
        self._skipping_zeros = origin == 0

    @property
    def bytes_in(self) -> int:
        return self._counted.count

    def _read_source(self, n: int) -> bytes:
        kind = (self.compression or "").removesuffix("-framed")
        try:
            return self._source.read(n)
        except EOFError as exc:
            raise InputError(f"truncated {kind} stream ({exc})") from exc
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise InputError(f"corrupt gzip stream ({exc})") from exc
        except zstd.ZstdError as exc:
            raise InputError(f"corrupt zstd stream ({exc})") from exc

    def _pull(self, n: int) -> bytes:
        data = self._read_source(n)
        if not self._bom_checked:
            while 0 < len(data) < 2 and (more := self._read_source(n)):
                data += more
            self._bom_checked = True
            if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
                self.transcoded = True
                # (surrogatepass: a lone surrogate becomes bytes that are not UTF-8, which the
                # line readers quarantine on their line, not a failure of the whole file)
                self._decoder = codecs.getincrementaldecoder("utf-16")("surrogatepass")
        if self._decoder is not None:
            out = self._decoder.decode(data, final=not data).encode("utf-8", "surrogatepass")
            while data and not out:  # (an odd byte: one more read gives a character)
                data = self._read_source(n)
                out = self._decoder.decode(data, final=not data).encode("utf-8",
                                                                        "surrogatepass")
            data = out
        self._hash.update(data)
        self.bytes_out += len(data)
        if self._skipping_zeros:
            return self._after_zero_bytes(data, n)
        return data

    def _after_zero_bytes(self, data: bytes, n: int) -> bytes:
        """``data``, the stream's first bytes, without the hole of zero bytes it starts with
        (pulling past a hole longer than one read); unchanged when the zeros are too few to be a
        hole or are not followed by text (the length in 4 bytes that starts each request of the
        Collector's binary file layout)."""
        self._skipping_zeros = False
        run, rest = 0, b""
        while data:
            rest = data.lstrip(b"\0")
            run += len(data) - len(rest)
            if rest or run >= ZERO_HOLE_SURE_BYTES:
                break
            data = self._pull(n)
        if run >= ZERO_HOLE_MIN_BYTES and (not rest or run >= ZERO_HOLE_SURE_BYTES
                                           or rest[0] >= 0x20 or rest[:1] in b"\t\r\n"):
            self.zero_bytes_skipped = run
            while not rest and run >= ZERO_HOLE_SURE_BYTES and (data := self._pull(n)):
                rest = data.lstrip(b"\0")  # (the rest of a long hole)
                self.zero_bytes_skipped += len(data) - len(rest)
            return rest
        return b"\0" * run + rest

    def peek(self, n: int = HEAD_BYTES) -> bytes:
        while len(self._pending) < n:
            data = self._pull(n - len(self._pending))
            if not data:
                break
            self._pending += data
        return self._pending[:n]

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            chunks = [self._pending]
            self._pending = b""
            while data := self._pull(READ_BYTES):
                chunks.append(data)
            return b"".join(chunks)
        if self._pending:
            out, self._pending = self._pending[:n], self._pending[n:]
            return out
        return self._pull(n)

    def drain(self) -> None:
        """Read to the end so the hash covers the whole content (and truncation is detected)."""
        self._pending = b""
        while self._pull(READ_BYTES):
            pass

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


# JSON objects written back to back, with no newline between them: what Kinesis Firehose delivers
# unless the producer ends each record with one (or the stream adds a delimiter), and what a
# `jq .` of a JSON-lines file prints (each object pretty-printed over several lines).
BACK_TO_BACK = ("JSON object(s) not one to a line (written back to back, as Kinesis Firehose "
                "delivers records unless told to add a newline, or spread over several lines, "
                "as `jq .` prints them): read one by one, a line number counting them.")
_JSON = json.JSONDecoder()
# Where the object after a broken one starts: right after a "}", or at the start of a line (a
# line end of either kind: old Mac files end lines with CR alone). Not at every line end: a
# pretty-printed broken object is one record, not a quarantined row per line of it.
_NEXT_OBJECT = re.compile(r"\}(?=[ \t]*\{)|(?=[\r\n]\{)")


def objects_back_to_back(head: bytes) -> bool:
    """True when ``head`` (a stream's first bytes, decompressed) is JSON objects written back to
    back: its first line holds two or more, and so does its next line if it has one (a JSON-lines
    file with one line of two objects is JSON lines, that line quarantined whole: splitting it
    would shift every line number after it); or an object spread over several lines is followed
    by another. Not JSON lines, not one JSON document."""
    text = head.decode("utf-8", "replace").lstrip(" \t\r\n\ufeff")
    first = _first_object_end(text)
    if first is None:
        return False
    if "\n" in text[:first]:  # pretty-printed
        return text[first:].lstrip().startswith("{")
    rest = text[first:]
    if not rest.lstrip(" \t\r").startswith("{"):  # (JSON lines: one object on the first line)
        return False
    second = next((line for line in rest.partition("\n")[2].split("\n")
                   if line.strip(" \t\r")), None)
    return second is None or _two_objects(second)


def one_object_over_lines(head: bytes) -> bool:
    """True when ``head`` (a stream's first bytes, decompressed) is the whole of one JSON object
    spread over several lines, as `jq .` prints a one-line file (no other object after it:
    :func:`objects_back_to_back`)."""
    text = head.decode("utf-8", "replace").lstrip(" \t\r\n\ufeff")
    end = _first_object_end(text)
    return end is not None and "\n" in text[:end] and not text[end:].strip()


def _first_object_end(text: str) -> int | None:
    """Where the JSON object ``text`` starts with ends, or None (not an object, cut, broken)."""
    if not text.startswith("{"):
        return None
    try:
        return _JSON.raw_decode(text)[1]
    except (ValueError, RecursionError):
        return None


def _two_objects(line: str) -> bool:
    """True when ``line`` starts with a JSON object followed by another on the same line."""
    line = line.lstrip(" \t")
    end = _first_object_end(line)
    return end is not None and line[end:].lstrip(" \t\r").startswith("{")


class ObjectsAsLines(ReadStream):
    """A :class:`SourceStream` of JSON objects written back to back (:func:`objects_back_to_back`)
    read as JSON lines: each object on a line of its own (one spread over several lines joined:
    a line end outside a string is white space, and JSON strings hold none), and what does not
    parse, up to the next line end or object start, as a line of its own, which the line readers
    quarantine. The rest (hash, counts, drain) is the source stream's: the content is the file's
    bytes. ``objects`` counts the lines given."""

    transcoded = True  # (its lines are not the file's: no read goes on from one of them later)

    def __init__(self, stream: SourceStream):
        self._stream = stream
        self._text, self._at, self._eof = "", 0, False
        self._decode = codecs.getincrementaldecoder("utf-8")("surrogateescape").decode
        self._out: list[bytes] = []
        self._out_len = 0
        self._pending = b""
        self.objects = 0

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def _more(self) -> bool:
        data = self._stream.read(READ_BYTES)
        if self._at > len(self._text) // 2:  # (drop what was given, now and then)
            self._text, self._at = self._text[self._at:], 0
        self._text += self._decode(data, final=not data)
        self._eof = not data
        return bool(data)

    def _emit(self, piece: str) -> None:
        line = piece.replace("\r", " ").replace("\n", " ").encode("utf-8", "surrogateescape")
        self._out.append(line + b"\n")
        self._out_len += len(line) + 1
        self.objects += 1

    def _next_line(self) -> bool:
        """Put the next object (or bad piece) in the output; False at the end."""
        while True:
            text, at = self._text, self._at
            while at < len(text) and text[at] in " \t\r\n":
                at += 1
            self._at = at
            if at == len(text):
                if self._eof or not self._more():
                    return False
                continue
            try:
                _obj, end = _JSON.raw_decode(text, at)
            except (ValueError, RecursionError):
                if not self._eof and len(text) - at < MAX_LINE_BYTES:
                    self._more()  # (an object cut by the read: parsed again with what follows,
                    continue      # or, at the end, cut as below)
                cut = _NEXT_OBJECT.search(text, at + 1)
                end = cut.end() if cut else len(text)
            self._emit(text[at:end])
            self._at = end
            return True

    def peek(self, n: int = HEAD_BYTES) -> bytes:
        while len(self._pending) + self._out_len < n and self._next_line():
            pass
        if self._out:
            self._pending += b"".join(self._out)
            self._out, self._out_len = [], 0
        return self._pending[:n]

    def read(self, n: int = -1) -> bytes:
        want = READ_BYTES if n is None or n < 0 else n
        if len(self._pending) < want:
            self.peek(want)
        if n is None or n < 0:
            while self._next_line():
                pass
            out = self._pending + b"".join(self._out)
            self._pending, self._out, self._out_len = b"", [], 0
            return out
        out, self._pending = self._pending[:n], self._pending[n:]
        return out


class _Counting(ReadStream):
    def __init__(self, raw: BinaryIO):
        self._raw, self.count = raw, 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.count += len(data)
        return data


def _zstd_frame_start(magic: bytes) -> bool:
    """True for the first bytes of a zstd frame, or of a skippable frame (0x184D2A5?, written
    before the data by some tools)."""
    return magic == ZSTD_MAGIC or (len(magic) == 4 and magic[0] & 0xF0 == 0x50
                                   and magic[1:] == b"\x2a\x4d\x18")


# A zstd frame holding one newline, put between the framed requests (see _Unframed).
_NEWLINE_FRAME = zstd.compress(b"\n")


class _Unframed(io.RawIOBase):
    """The OpenTelemetry Collector file exporter's JSON with ``compression: zstd``, in its layout
    before the native-compression gate (exporter/fileexporter/file_writer.go): each export
    request is one zstd frame preceded by its length as a big-endian uint32. Read as a plain
    zstd stream: the lengths dropped, a frame holding a newline after each request, so the
    stream decompresses (a bounded piece at a time, whatever a length says) to JSON lines, one
    request a line, as the exporter writes them uncompressed. A source that ends inside a frame
    ends the stream there: the decompressor reports it truncated."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._left = 0  # bytes of the current frame still to pass on
        self._newline = b""  # the newline frame, or what is left of it, after a request

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while True:
            if self._newline:
                n = min(len(buf), len(self._newline))
                buf[:n], self._newline = self._newline[:n], self._newline[n:]
                return n
            if self._left:
                data = self._raw.read(min(len(buf), self._left))
                if not data:
                    return 0
                self._left -= len(data)
                if not self._left:
                    self._newline = _NEWLINE_FRAME
                buf[:len(data)] = data
                return len(data)
            size = _read_exactly(self._raw, 4)
            if not size:
                return 0
            if len(size) < 4:
                raise EOFError("a frame's length is cut short")
            self._left = int.from_bytes(size, "big")
            if not self._left:
                self._newline = _NEWLINE_FRAME


# Of the first framed request, the compressed bytes looked at to tell JSON from protobuf.
_SNIFF_BYTES = 128 * 1024
# A protobuf request (read whole: protobuf parses a message whole) that decompresses to more
# than this is not held: only counted, and skipped by the reader (one quarantined request).
MAX_FRAMED_MESSAGE_BYTES = 64 * 1024 * 1024


def _framed_zstd(raw: BinaryIO) -> BinaryIO:
    """The Collector file exporter's older ``compression: zstd`` layout (each export request a
    zstd frame after its compressed length, a big-endian uint32), decompressed to what the
    exporter writes uncompressed: JSON lines (:class:`_Unframed`) when the first request is
    JSON, else (``format: proto``) each request after its own length
    (:class:`_UnframedMessages`)."""
    size = _read_exactly(raw, 4)
    part = _read_exactly(raw, min(int.from_bytes(size, "big"), _SNIFF_BYTES)) \
        if len(size) == 4 else b""
    try:
        start = zstd.ZstdDecompressor().decompress(part, max_length=64)
    except zstd.ZstdError:
        start = b""  # (reported by the reader below, with the file's name)
    source = _Prefixed(size + part, raw)
    if _protobuf_request_start(start):
        return _UnframedMessages(source)
    return zstd.ZstdFile(io.BufferedReader(_Unframed(source), READ_BYTES), mode="rb")


def _protobuf_request_start(start: bytes) -> bool:
    """True when ``start`` begins an OTLP export request in protobuf: field 1 (a resource's
    entry), its length, then the entry's own first field (1, 2 or 3). A JSON request starts
    with ``{`` (perhaps after a BOM or spaces); that its newline is protobuf's field-1 tag and
    ``{`` a length of 123 is why the entry's first field is looked at too."""
    if start[:1] != b"\x0a":
        return False
    i = 1
    while i < len(start) and start[i] & 0x80:  # the entry's length, a varint
        i += 1
    return i + 1 < len(start) and start[i + 1] in (0x0A, 0x12, 0x1A)


class _UnframedMessages(io.RawIOBase):
    """Binary requests (``format: proto``) in the older framed zstd layout, given back as the
    exporter writes them uncompressed: each request after its decompressed length. A frame is
    decompressed whole (protobuf needs the whole request anyway), up to
    ``MAX_FRAMED_MESSAGE_BYTES``."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        # what to give next, as a view: a large request given piece by piece is not copied
        # again for each piece
        self._out = memoryview(b"")
        self._zeros = 0  # of a request over the limit, still to give

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self._out and not self._zeros:
            size = _read_exactly(self._raw, 4)
            if not size:
                return 0
            if len(size) < 4:
                raise EOFError("a frame's length is cut short")
            length = int.from_bytes(size, "big")
            frame = _read_exactly(self._raw, length)
            if len(frame) < length:
                raise EOFError(f"a frame is cut short ({len(frame):,} of {length:,} bytes)")
            message, size = _decompress_within(frame, MAX_FRAMED_MESSAGE_BYTES)
            if message is None:
                # over the limit: its length, then as many zeros, made as they are read, so the
                # reader skips it as it skips an uncompressed request that long (one quarantined
                # request, the others read)
                self._out, self._zeros = memoryview(size.to_bytes(4, "big")), size
            else:
                self._out = memoryview(len(message).to_bytes(4, "big") + message)
        if not self._out:
            n = min(len(buf), self._zeros)
            buf[:n] = bytes(n)
            self._zeros -= n
            return n
        n = min(len(buf), len(self._out))
        buf[:n], self._out = self._out[:n], self._out[n:]
        return n


def _decompress_within(data: bytes, limit: int) -> tuple[bytes | None, int]:
    """(the zstd frames of ``data`` decompressed, their size), or (None, their size) past
    ``limit`` bytes, counted a piece at a time without holding them; raises ``EOFError`` when
    the last frame is cut short."""
    out: list[bytes] = []
    total = 0
    while data:
        decompressor = zstd.ZstdDecompressor()
        while True:
            piece = decompressor.decompress(data, max_length=READ_BYTES)
            data = b""
            total += len(piece)
            if total <= limit:
                out.append(piece)
            elif out:
                out = []  # over the limit: only counted from now on
            if decompressor.eof:
                break
            if decompressor.needs_input:
                raise EOFError("a frame ends before its data does")
        data = decompressor.unused_data
    return (b"".join(out) if total <= limit else None), total


def _read_exactly(raw: BinaryIO, n: int) -> bytes:
    out = b""
    while len(out) < n:
        data = raw.read(n - len(out))
        if not data:
            break
        out += data
    return out


@dataclass
class LineBlock:
    """Complete lines from a stream. ``first_line`` is the 1-based number of the first line in
    ``data``; over-long lines were replaced by empty lines (numbering kept) and are in ``rejects``.
    """

    first_line: int
    data: bytes
    rejects: list[Reject] = field(default_factory=list)
    # line_numbers() of ``data``, kept: the depth guard, Arrow's reader and the re-read of a
    # block's own values each need them (callers only read the arrays).
    _lines: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def line_numbers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(line number, start offset, end offset) of each non-blank line, vectorized."""
        if self._lines is None or self._lines[0] is not self.data:
            self._lines = (self.data, self._line_numbers())
        return self._lines[1]

    def _line_numbers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        buf = np.frombuffer(self.data, dtype=np.uint8)
        ends = np.flatnonzero(buf == 10)
        if len(ends) == 0 or ends[-1] != len(buf) - 1:
            ends = np.append(ends, len(buf))
        starts = np.concatenate(([0], ends[:-1] + 1))
        lengths = ends - starts
        if len(buf) == 0:
            return (np.empty(0, np.int64),) * 3
        last = np.clip(ends - 1, 0, len(buf) - 1)
        blank = (lengths == 0) | ((lengths == 1) & (buf[last] == 13))
        keep = np.flatnonzero(~blank)
        return self.first_line + keep, starts[keep], ends[keep]


def text_start(head: bytes) -> bytes:
    """A text file's first bytes ``head`` from where its content starts: after a byte order
    mark and the blanks after it."""
    return head.removeprefix(UTF8_BOM).lstrip()


def at_file_start(stream: BinaryIO) -> bool:
    """False for a stream that begins inside its file (read from where an earlier read ended:
    lib/ingest/appended.py), where a byte order mark is not one."""
    return not getattr(stream, "origin", 0)


def line_blocks(stream: BinaryIO, block_bytes: int = LINE_BLOCK_BYTES,
                max_line: int = MAX_LINE_BYTES) -> Iterator[LineBlock]:
    """Split a stream into blocks of whole lines with bounded memory.

    A line longer than ``max_line`` bytes is never held: it is skipped to its end and reported as
    a reject (first ``schema.RAW_MAX_CHARS`` bytes kept), and the lines after it go on. A UTF-8
    byte order mark at the start (Windows tools write one) is not part of the first line.
    """
    line_no = 1  # number of the first line in `pending`
    pending = b""
    first = True
    skipping: list | None = None  # [line, head bytes, bytes seen] of an over-long line
    rejects: list[Reject] = []

    def too_long(line: int, head: bytes, size: int) -> Reject:
        return Reject(line, head[: schema.RAW_MAX_CHARS].decode("utf-8", "replace"),
                      f"line of {size:,}+ bytes is longer than the limit of {max_line:,} bytes")

    while True:
        data = stream.read(block_bytes)
        if not data:
            break
        if first:
            if at_file_start(stream):
                data = data.removeprefix(UTF8_BOM)
            first = False
        if skipping is not None:
            nl = data.find(b"\n")
            if nl < 0:
                skipping[2] += len(data)
                continue
            skipping[2] += nl
            rejects.append(too_long(*skipping))
            skipping = None
            # Keep the numbering: the skipped line becomes an empty line.
            data = b"\n" + data[nl + 1:]
        buf = pending + data if pending else data
        cut = buf.rfind(b"\n")
        if cut < 0:
            pending = buf
        else:
            complete, pending = buf[: cut + 1], buf[cut + 1:]
            if len(complete) > max_line:
                complete = _blank_long_lines(complete, line_no, max_line, rejects, too_long)
            yield LineBlock(line_no, complete, rejects)
            rejects = []
            line_no += complete.count(b"\n")
        if len(pending) > max_line:
            skipping = [line_no, pending[: schema.RAW_MAX_CHARS], len(pending)]
            pending = b""
    if skipping is not None:
        rejects.append(too_long(*skipping))
        pending = b""
    if pending or rejects:
        yield LineBlock(line_no, pending, rejects)


def _blank_long_lines(block: bytes, first_line: int, max_line: int, rejects: list,
                      make: Callable) -> bytes:
    lines = block.split(b"\n")
    if max(len(line) for line in lines) <= max_line:
        return block
    for i, line in enumerate(lines):
        if len(line) > max_line:
            rejects.append(make(first_line + i, line[: schema.RAW_MAX_CHARS], len(line)))
            lines[i] = b""
    return b"\n".join(lines)


TEXT_BLOCK_BYTES = 2 * 1024 * 1024


@dataclass
class TextBlock:
    """Whole lines as text for SQL: ``first_line`` is the 1-based number of the first line,
    ``pieces`` the number of pieces ``text`` splits into at newlines (a block ends with a newline,
    so its last piece is empty). Lines that could not be kept (over-long, not UTF-8) were replaced
    by empty lines, numbering kept, and are in ``rejects``."""

    first_line: int
    pieces: int
    text: str
    rejects: list[Reject]


def text_blocks(stream: BinaryIO, block_bytes: int = TEXT_BLOCK_BYTES,
                max_line: int = MAX_LINE_BYTES) -> Iterator[TextBlock]:
    """:func:`line_blocks` decoded as UTF-8, for a SQL engine to split and number. A line that is
    not valid UTF-8 becomes a reject ("not valid UTF-8 text") and an empty line."""
    for block in line_blocks(stream, block_bytes, max_line):
        try:
            text = block.data.decode("utf-8")
        except UnicodeDecodeError:
            block = without_lines_not_utf8(block)
            text = block.data.decode("utf-8")
        yield TextBlock(block.first_line, text.count("\n") + 1, text, list(block.rejects))


def without_lines_not_utf8(block: LineBlock) -> LineBlock:
    """``block`` with each line that is not valid UTF-8 emptied (its number kept) and rejected
    ("not valid UTF-8 text"): Arrow's JSON reader does not check, and such bytes would reach the
    store (or make a later step fail the whole file)."""
    try:
        block.data.decode("utf-8")
        return block
    except UnicodeDecodeError:
        pass
    lines, rejects = block.data.split(b"\n"), list(block.rejects)
    for i, line in enumerate(lines):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            rejects.append(Reject(block.first_line + i,
                                  line[: schema.RAW_MAX_CHARS].decode("utf-8", "replace"),
                                  f"not valid UTF-8 text (byte {exc.start + 1})"))
            lines[i] = b""
    return LineBlock(block.first_line, b"\n".join(lines), rejects)
