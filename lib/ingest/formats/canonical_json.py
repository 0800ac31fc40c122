"""Canonical tables (design §3) as one JSON array of objects: format ``json``.

What ``json.dump(rows, f, indent=2)``, ``jq -s`` or a database tool's "export as JSON" write: the
rows of a canonical JSONL file, in one array. Each item becomes one JSON line, its text exactly as
written (numbers are never re-serialized: ``12.50``, ``1e400`` or ``NaN`` reach the checks as the
file wrote them; only the line breaks between its tokens become spaces), and the lines go through
the canonical JSONL parser (lib/ingest/formats/canonical.py ``parse_jsonl_as``): the same checks,
types, extra keys folded into ``attributes``, duplicate-key and UTF-8 rejects. An item's "line" is
its 1-based position in the array, as for a mapping's JSON document and a Parquet row.

The document is never read whole (it may be several GB): it is read in chunks of ``CHUNK_BYTES``.
A vectorized scanner (:func:`scan`) finds in each chunk the brackets and commas outside strings
and the depth after each; the items' boundaries are the commas at depth 1 and the array's closing
``]``, and only those few events per item are looked at in Python (:class:`_ArrayItems`). An item
longer than ``lib.ingest.streams.MAX_LINE_BYTES`` is skipped to its end, never held, and rejected;
the items after it go on. A break in the array's structure (a missing comma, text between items,
a file cut short, text after the closing ``]``) is one reject at the position of the first item
that cannot be read, naming what is wrong and where; the items before it are stored and nothing
after it is read (after a syntax error nothing in one document can be trusted). An item whose
brackets and quotes balance but whose content is not valid JSON is rejected alone, as its JSONL
line would be.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from lib import schema
from lib.ingest import streams
from lib.ingest.base import Chunk, Format, Reject
from lib.ingest.formats import canonical
from lib.ingest.json_structure import CLOSE, COMMA, OPEN, scan
from lib.ingest.streams import InputError, ReadStream

# The JSONL parser's own block size: each chunk read gives it one block of about that size, so its
# per-block cost is paid half as often as with 4 MiB chunks (1M rows: ~7.5 s instead of ~8.5 s).
CHUNK_BYTES = streams.LINE_BLOCK_BYTES
UTF8_BOM = streams.UTF8_BOM
_WHITESPACE = b" \t\r\n"
# Line breaks between an item's tokens become spaces, so the item is one JSON line. A raw line
# break inside a string is not valid JSON: its item is rejected before this could make it valid.
_LINE_BREAKS_TO_SPACES = bytes.maketrans(b"\r\n", b"  ")
_KEY = re.compile(rb'"([A-Za-z_][A-Za-z0-9_]*)"\s*:')

def _plain_items(data: bytes, positions: np.ndarray, kinds: np.ndarray, depths: np.ndarray,
                 breaks_in_strings: np.ndarray, limit: int) -> np.ndarray:
    """Among the array-level events of a chunk (``positions``, ``kinds``, ``depths``), the indices
    ``i`` where a plain item starts, one whose line is its text as it stands: events ``i - 1`` to
    ``i + 2`` are a comma, its object's (or list's) opening and closing brackets and a comma, with
    only whitespace between them, no raw line break in its strings, and at most ``limit`` bytes.
    Vectorized: in a well-formed array nearly every item is plain and needs no look in Python."""
    if len(positions) < 4:
        return np.empty(0, np.int64)
    i = np.arange(1, len(positions) - 2)
    i = i[(kinds[i - 1] == COMMA) & (kinds[i] == OPEN) & (kinds[i + 1] == CLOSE)
          & (depths[i + 1] == 1) & (kinds[i + 2] == COMMA)]
    after_comma, opening = positions[i - 1] + 1, positions[i]
    closing, comma = positions[i + 1], positions[i + 2]
    buf = np.frombuffer(data, np.uint8)
    ok = ((closing - opening < limit) & _blank(buf, after_comma, opening)
          & _blank(buf, closing + 1, comma))
    if len(breaks_in_strings):
        ok &= (np.searchsorted(breaks_in_strings, opening)
               == np.searchsorted(breaks_in_strings, closing))
    return i[ok]


_IS_WHITESPACE = np.zeros(256, bool)
_IS_WHITESPACE[list(_WHITESPACE)] = True
_SHORT_GAP = 16


def _blank(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether each ``buf[starts[k]:ends[k]]`` is whitespace only (False for one longer than
    ``_SHORT_GAP`` bytes: left for the item-by-item check)."""
    lengths = ends - starts
    ok = lengths <= _SHORT_GAP
    for k in range(int(lengths[ok].max(initial=0))):
        inside = k < lengths
        ok &= ~inside | _IS_WHITESPACE[buf[np.where(inside, starts + k, 0)]]
    return ok


def _runs(plain: np.ndarray) -> dict[int, slice]:
    """Consecutive plain items (each three events after the last) as {the first's event index:
    the slice of ``plain`` they are}."""
    if not len(plain):
        return {}
    cut = np.flatnonzero(np.diff(plain) != 3) + 1
    bounds = [0, *cut.tolist(), len(plain)]
    return {int(plain[a]): slice(a, b) for a, b in zip(bounds, bounds[1:], strict=False)}


# -- the items of the array -----------------------------------------------------------------------
@dataclass
class _Slot:
    """The item being read when a chunk ends (offsets in the file). ``pieces`` hold its bytes
    from its first one that is not whitespace, unless it is past the limit (``skipped``: then only
    its first bytes, ``head``, and its size are kept)."""

    pieces: list[bytes] = field(default_factory=list)
    first: int | None = None  # its first byte that is not whitespace
    last: int | None = None  # its last byte that is not whitespace, so far
    open_at: int | None = None  # the bracket opening its object (or list), if it has one
    close_at: int | None = None  # and the bracket closing it
    skipped: bool = False
    head: bytes = b""
    size: int = 0  # bytes from ``first`` to ``last``
    pending: bytes = b""  # whitespace after ``last`` so far (at most the limit and one byte)
    break_in_string: bool = False

    def text(self) -> bytes:
        return self.head if self.skipped else b"".join(self.pieces)


class _ArrayItems:
    """Reads one JSON array chunk by chunk (:meth:`feed`, then :meth:`finish` at the end of the
    file) into one JSON line per item: ``lines`` holds the item's text with its line breaks as
    spaces, or an empty line for an item rejected here (so line N is item N), and ``rejects`` the
    items rejected here (longer than ``limit`` bytes, a raw line break in a string) and a break in
    the array, after which ``broken`` is set and nothing more is read."""

    def __init__(self, limit: int):
        self.limit = limit
        self.lines: list[bytes] = []
        self.rejects: list[Reject] = []
        self.broken = False
        self.started = False  # the array's "[" was read
        self.closed = False  # and its "]"
        self.items = 0  # items ended so far: the next one is at position items + 1
        self.in_string = self.escape_next = False
        self.depth = 1  # inside the array
        self.slot: _Slot | None = None  # the item in progress when the last chunk ended
        self.data = b""  # the current chunk (for locations and a break's raw text)
        self.base = 0  # its offset in the file
        self.newlines = 0  # line breaks in the file before it
        self.line_start = 0  # offset where its first line starts

    def feed(self, data: bytes) -> None:
        """Read the next chunk of the file: the items it ends go to ``lines`` / ``rejects``."""
        self._advance(data)
        start = 0
        if not self.started:
            start = self._array_start(data)
            if start is None:
                return
        if self.closed:
            return self._after_array(start)
        found = scan(data, start, self.in_string, self.escape_next, self.depth)
        self.in_string, self.escape_next, self.depth = \
            found.in_string, found.escape_next, found.depth
        # The events of the array's level: an item's container opening at depth 1 or closing back
        # to it, a comma at depth 1, the array's closing bracket; none from a stray backslash on.
        kinds, depths = found.kinds, found.depths
        level = (((kinds == OPEN) & (depths == 2)) | ((kinds == CLOSE) & (depths <= 1))
                 | ((kinds == COMMA) & (depths == 1)))
        stop = len(data) if found.stray_backslash is None else found.stray_backslash
        level &= found.positions < stop
        positions, kinds, depths = found.positions[level], kinds[level], depths[level]
        plain = _plain_items(data, positions, kinds, depths, found.breaks_in_strings, self.limit)
        runs = _runs(plain)
        breaks = found.breaks_in_strings.tolist()
        flat = data.translate(_LINE_BREAKS_TO_SPACES)
        open_at, close_at = (self.slot.open_at, self.slot.close_at) if self.slot else (None, None)
        cursor = start  # where the bytes of the item in progress start in this chunk
        starts, ends = positions.tolist(), (positions + 1).tolist()
        kinds, depths = kinds.tolist(), depths.tolist()
        i = 0
        while i < len(starts):
            if i in runs:  # items that need no check: their text, as the lines
                run = plain[runs[i]]
                self.lines += [flat[a:b] for a, b in zip(positions[run].tolist(),
                                                         (positions[run + 1] + 1).tolist(),
                                                         strict=True)]
                self.items += len(run)
                i = int(run[-1]) + 3
                cursor = ends[i - 1]
                continue
            p, kind, depth = starts[i], kinds[i], depths[i]
            i += 1
            if kind == OPEN:
                if close_at is not None:  # a second value where a comma should be
                    if self._end_item(flat, cursor, p, open_at, close_at, breaks):
                        self._break(self.base + p, f"expected ',' or ']' after item {self.items}")
                    return
                open_at = self.base + p
            elif kind == CLOSE and depth == 1:
                close_at = self.base + p
            elif depth == 0 and data[p] != ord("]"):  # "}" closing the array
                if self._end_item(flat, cursor, p, open_at, close_at, breaks):
                    self._break(self.base + p, f"expected ',' or ']' after item {self.items}")
                return
            else:  # a comma at depth 1 or the array's closing bracket: the end of an item
                empty_ok = depth == 0 and self.items == 0  # "[]"
                if not self._end_item(flat, cursor, p, open_at, close_at, breaks, empty_ok):
                    return
                open_at = close_at = None
                cursor = p + 1
                if depth == 0:
                    self.closed = True
                    return self._after_array(p + 1)
        self._carry(flat, cursor, stop, open_at, close_at, breaks)
        if found.stray_backslash is not None:
            self._break(self.base + stop, "a backslash outside a string")

    def finish(self) -> None:
        """The file has ended: an array not closed (or no array at all) is a break."""
        if self.broken or self.closed:
            return
        if not self.started:
            raise InputError("not a JSON array: the file holds only whitespace")
        end = self.base + len(self.data)
        slot, self.slot = self.slot, None
        if slot is None or slot.first is None:
            after = f"after item {self.items} and a ','" if self.items else "after its '['"
            return self._break(end, f"the file ends {after}, before the array's closing ']'",
                               at_end=True)
        if self.depth > 1 or self.in_string:
            inside = "a string of " if self.in_string else ""
            return self._break(end, f"the file ends inside {inside}item {self.items + 1}",
                               at_end=True, raw=slot.text())
        # A whole item with neither ',' nor ']' after it: kept, and the missing end is a break.
        if self._finish_item(slot):
            self._break(end, f"the file ends after item {self.items}, before the array's "
                             "closing ']'", at_end=True)

    # -- steps ------------------------------------------------------------------------------------
    def _advance(self, data: bytes) -> None:
        """Make ``data`` the current chunk, keeping count of the lines before it."""
        if self.data:
            self.newlines += self.data.count(b"\n")
            last = self.data.rfind(b"\n")
            if last >= 0:
                self.line_start = self.base + last + 1
            self.base += len(self.data)
        self.data = data

    def _array_start(self, data: bytes) -> int | None:
        """The offset in ``data`` just after the array's ``[`` (None: only whitespace so far).
        Raises InputError when the document is not an array."""
        at = len(data) - len(data.lstrip(_WHITESPACE))
        if at == len(data):
            return None
        if data[at] != ord("["):
            shown = data[at:at + 40].decode("utf-8", "replace")
            raise InputError(f"not a JSON array: the document starts with {shown!r}")
        self.started = True
        return at + 1

    def _after_array(self, start: int) -> None:
        """Only whitespace may follow the array's closing ``]``."""
        rest = self.data[start:].lstrip(_WHITESPACE)
        if rest:
            at = self.base + len(self.data) - len(rest)
            self._break(at, "text after the array's closing ']'")

    def _carry(self, flat: bytes, cursor: int, end: int, open_at, close_at, breaks) -> None:
        """Add ``flat[cursor:end]``, bytes of the item in progress, to ``self.slot``: its text up
        to its last byte that is not whitespace in ``pieces``, the whitespace after that in
        ``pending`` (part of the item only if more of it follows), and past the limit only
        where its first and last bytes are."""
        slot = self.slot = self.slot or _Slot()
        slot.open_at, slot.close_at = open_at, close_at
        slot.break_in_string |= _any_between(breaks, cursor, end)
        piece = flat[cursor:end]
        if slot.first is None:
            text = piece.lstrip(_WHITESPACE)
            if not text:
                return  # whitespace only, so far
            cursor, piece = cursor + len(piece) - len(text), text
            slot.first = self.base + cursor
        content = len(piece.rstrip(_WHITESPACE))
        if content:
            slot.last = self.base + cursor + content - 1
            if not slot.skipped:
                slot.pieces += [slot.pending, piece[:content]]
            slot.pending = piece[content:]
        else:
            slot.pending += piece
        # More whitespace than the limit can only end the item or make it too long: not held.
        slot.pending = slot.pending[: self.limit + 1]
        slot.size = slot.last - slot.first + 1
        if slot.size > self.limit and not slot.skipped:  # from now on never held
            slot.head = b"".join(slot.pieces)[: schema.RAW_MAX_CHARS]
            slot.pieces, slot.skipped = [], True

    def _end_item(self, flat: bytes, cursor: int, end: int, open_at, close_at, breaks,
                  empty_ok: bool = False) -> bool:
        """End the item whose last bytes are ``flat[cursor:end]`` (its first ones, from earlier
        chunks, in ``self.slot``): check it and emit its line. False at a break."""
        if self.slot is None:  # the usual case: the whole item is in this chunk
            piece = flat[cursor:end]
            text = piece.lstrip(_WHITESPACE)
            first = self.base + end - len(text)
            text = text.rstrip(_WHITESPACE)
            slot = _Slot(pieces=[text], first=first, last=first + len(text) - 1,
                         open_at=open_at, close_at=close_at, size=len(text),
                         break_in_string=_any_between(breaks, cursor, end))
        else:
            self._carry(flat, cursor, end, open_at, close_at, breaks)
            slot, self.slot = self.slot, None
        if slot.first is None or not slot.size:
            if not empty_ok:
                self._break(self.base + end, f"expected an item before '{chr(self.data[end])}'")
            return empty_ok
        return self._finish_item(slot)

    def _finish_item(self, slot: _Slot) -> bool:
        """Check the structure of the whole item ``slot`` and emit its line. False at a break:
        text before its object, or after it (or after a value that is not one) where only a
        comma may be."""
        if slot.open_at is not None and slot.first != slot.open_at:
            self._break(slot.first, f"unexpected text at the start of item {self.items + 1}",
                        raw=slot.text())
            return False
        text = None if slot.skipped else b"".join(slot.pieces).rstrip(_WHITESPACE)
        after = None  # where the text after the item's value starts
        if slot.open_at is not None and slot.last != slot.close_at:
            length = slot.close_at - slot.first + 1
            if text is not None:
                rest = text[length:]
                after = slot.close_at + 1 + len(rest) - len(rest.lstrip(_WHITESPACE))
                text = text[:length]
            else:
                after = slot.close_at + 1
        elif slot.open_at is None and text is not None:
            end = _end_of_value(text)
            if end < len(text):  # "1 2": two values and no comma
                after = slot.first + len(text) - len(text[end:].lstrip(_WHITESPACE))
                text = text[:end]
        self._emit(text, slot)
        if after is not None:
            self._break(after, f"expected ',' or ']' after item {self.items}")
            return False
        return True

    def _emit(self, text: bytes | None, slot: _Slot) -> None:
        """The item's line: its text, or an empty line and a reject."""
        self.items += 1
        if text is None or len(text) > self.limit:
            size = slot.size if text is None else len(text)
            self._reject_item(slot.text(), f"item of {size:,} bytes is longer than the limit "
                                           f"of {self.limit:,} bytes")
        elif slot.break_in_string:
            self._reject_item(text, "not valid JSON: a line break inside a string")
        else:
            self.lines.append(text)

    def _reject_item(self, raw: bytes, reason: str) -> None:
        self.rejects.append(Reject(self.items, _shown(raw), reason))
        self.lines.append(b"")

    def _break(self, offset: int, what: str, at_end: bool = False,
               raw: bytes | None = None) -> None:
        """A break in the array at file offset ``offset``: one reject, at the position of the
        item that cannot be read, naming what and where; nothing more is read."""
        self.broken = True
        reason = f"not valid JSON: {what} ({self._where(offset)} of the file)"
        if not at_end:
            reason += "; the rest of the file is not read"
        if raw is None:
            at = max(offset - self.base, 0)
            raw = self.data[at: at + schema.RAW_MAX_CHARS]
        self.rejects.append(Reject(self.items + 1, _shown(raw), reason))
        self.lines.append(b"")

    def _where(self, offset: int) -> str:
        """"line L column C" of file offset ``offset`` (columns count bytes, from 1) when it is
        in the current chunk, else "byte N"."""
        at = offset - self.base
        if not 0 <= at <= len(self.data):
            return f"byte {offset + 1:,}"
        line = self.newlines + self.data.count(b"\n", 0, at) + 1
        last = self.data.rfind(b"\n", 0, at)
        column = at - last if last >= 0 else offset - self.line_start + 1
        return f"line {line:,} column {column:,}"


def _any_between(offsets: list[int], start: int, end: int) -> bool:
    """Whether the sorted ``offsets`` hold one in ``[start, end)``."""
    return bool(offsets) and bisect.bisect_left(offsets, start) < bisect.bisect_left(offsets, end)


def _end_of_value(text: bytes) -> int:
    """Where the first JSON value in ``text`` (an item that is not an object or a list: rare)
    ends, or ``len(text)`` when it is all one value or not valid JSON (rejected as its line)."""
    decoded = text.decode("utf-8", "surrogateescape")
    try:
        json.loads(decoded)
    except RecursionError:  # one value nested past Python's limit (rejected as its line)
        return len(text)
    except ValueError as exc:  # also an integer of more digits than Python converts
        if getattr(exc, "msg", None) == "Extra data":
            return len(decoded[: exc.pos].rstrip().encode("utf-8", "surrogateescape"))
    return len(text)


def _shown(raw: bytes) -> str:
    return raw[: schema.RAW_MAX_CHARS].decode("utf-8", "replace")


# -- the format -----------------------------------------------------------------------------------
def json_lines(stream: BinaryIO, rejects: list[Reject], chunk_bytes: int = 0) -> Iterator[bytes]:
    """The items of the JSON array in ``stream`` as blocks of JSON lines (line N is item N),
    read in chunks of ``chunk_bytes`` (default ``CHUNK_BYTES``). The rejects found on the way are
    appended to ``rejects`` just before the block holding their (empty) lines is yielded. Raises
    InputError when the document is not an array."""
    items = _ArrayItems(streams.MAX_LINE_BYTES)
    data = stream.read(chunk_bytes or CHUNK_BYTES).removeprefix(UTF8_BOM)
    while True:
        if data:
            items.feed(data)
        else:
            items.finish()
        if items.lines:
            rejects.extend(items.rejects)
            yield b"\n".join(items.lines) + b"\n"
            items.lines, items.rejects = [], []
        if not data or items.broken:
            return
        data = stream.read(chunk_bytes or CHUNK_BYTES)


class _BlockStream(ReadStream):
    """A forward-only binary stream of the byte blocks ``blocks`` yields."""

    def __init__(self, blocks: Iterator[bytes]):
        self._blocks, self._pending = blocks, b""

    def read(self, n: int = -1) -> bytes:
        while not self._pending:
            block = next(self._blocks, None)
            if block is None:
                return b""
            self._pending = block
        if n is None or n < 0 or n >= len(self._pending):
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:n], self._pending[n:]
        return out


def _parse(stream: BinaryIO, filename: str) -> Iterator[Chunk]:
    # The scanner's own rejects (over-long items, a break) arrive beside the lines the JSONL
    # parser reads; each batch goes out after the chunk of the block that brought it.
    rejects: list[Reject] = []
    lines = _BlockStream(json_lines(stream, rejects))
    for chunk in canonical.parse_jsonl_as(lines, None, own_values=True):
        yield chunk
        if rejects:
            yield Chunk(rejects=rejects[:])
            rejects.clear()
    if rejects:
        yield Chunk(rejects=rejects[:])


def _detect(head: bytes, filename: str) -> bool:
    text = head.removeprefix(UTF8_BOM).lstrip(_WHITESPACE)
    if not text.startswith(b"["):
        return False
    item = text[1:].lstrip(_WHITESPACE)
    return item.startswith(b"{") and canonical.table_for(first_item_keys(item)) is not None


def first_item_keys(item: bytes) -> set[str]:
    """The top-level keys of the JSON object ``item`` starts with; when that object is cut off
    (the head of a file), the top-level keys before the cut."""
    try:
        obj, _ = json.JSONDecoder().raw_decode(item.decode("utf-8", "surrogateescape"))
        if isinstance(obj, dict):
            return set(obj)
    except (ValueError, RecursionError):  # cut off, or nested past Python's limit: scanned
        pass
    found = scan(item, 0, False, False, 0)
    closes = found.positions[(found.kinds == CLOSE) & (found.depths == 0)]
    end = int(closes[0]) if len(closes) else len(item)
    keys = set()
    for match in _KEY.finditer(item, 0, end):
        at = match.start()
        opens_a_string = np.searchsorted(found.quotes, at) % 2 == 0
        before = np.searchsorted(found.positions, at)
        if opens_a_string and before and found.depths[before - 1] == 1:
            keys.add(match.group(1).decode())
    return keys


# Asked before JSON lines (90): an array of one item a line (DuckDB's `COPY ... (FORMAT json,
# ARRAY true)`) ends with an item that is a JSON line, after lines JSON lines takes for a banner.
FORMAT = Format(name="json", detect=_detect, parse=_parse, priority=89,
                doc="Canonical requests / evals / events / spans as one JSON array of objects "
                    "(line = the record's position in the array).")
