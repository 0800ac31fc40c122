"""The structure of JSON text, found vectorized: where its strings, brackets and commas are, and
how deep each bracket is, without parsing the values.

Shared by the JSON array format (lib/ingest/formats/canonical_json.py), which finds its items'
boundaries with it, and the JSON lines reader (lib/ingest/formats/canonical.py), which measures a
line's nesting before handing it to Arrow (whose reader crashes the process on a value nested
some 20,000 levels deep) or Python's json (which raises RecursionError past ~1,000).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The bytes the scanner looks at; every other byte is content.
QUOTE, BACKSLASH, OPEN, CLOSE, COMMA, LINE_BREAK = 1, 2, 3, 4, 5, 6
_CLASS = np.zeros(256, np.uint8)
for _byte, _kind in ((b'"', QUOTE), (b"\\", BACKSLASH), (b"{", OPEN), (b"[", OPEN),
                     (b"}", CLOSE), (b"]", CLOSE), (b",", COMMA), (b"\n", LINE_BREAK),
                     (b"\r", LINE_BREAK)):
    _CLASS[_byte[0]] = _kind
_CLASS_TABLE = _CLASS.tobytes()
_DEPTH_STEP = np.zeros(7, np.int64)
_DEPTH_STEP[OPEN], _DEPTH_STEP[CLOSE] = 1, -1


@dataclass
class Structure:
    """What :func:`scan` finds in a chunk (positions are offsets in the chunk).

    ``positions`` / ``kinds`` / ``depths``: the brackets and commas outside strings, with the
    bracket depth after each. ``quotes``: the strings' delimiters. ``breaks_in_strings``: raw line
    breaks inside strings. ``stray_backslash``: the first backslash outside a string (not valid
    JSON, and nothing after it can be placed), or None. ``in_string``, ``escape_next`` and
    ``depth``: the state at the end of the chunk, for the next one."""

    positions: np.ndarray
    kinds: np.ndarray
    depths: np.ndarray
    quotes: np.ndarray
    breaks_in_strings: np.ndarray
    stray_backslash: int | None
    in_string: bool
    escape_next: bool
    depth: int


def scan(data: bytes, start: int, in_string: bool, escape_next: bool, depth: int) -> Structure:
    """The structure of ``data[start:]``, a piece of a JSON document that starts inside a string
    when ``in_string``, with its first byte escaped when ``escape_next``, at depth ``depth``.

    Vectorized: one class lookup over the bytes (``bytes.translate``), then work on the
    significant positions only. A quote delimits a string unless escaped; a backslash escapes the
    next byte unless it is itself escaped (so in a run of backslashes every other one escapes)."""
    cls = np.frombuffer(data.translate(_CLASS_TABLE), np.uint8)
    pos = np.flatnonzero(cls[start:] != 0)
    pos += start
    kind = cls[pos]
    backslashes = pos[kind == BACKSLASH]
    escaped = escaped_bytes(backslashes, start, escape_next)
    is_quote = kind == QUOTE
    if len(escaped):
        at = np.searchsorted(pos, escaped)
        hit = at < len(pos)
        at = at[hit][pos[at[hit]] == escaped[hit]]
        is_quote[at] = False
    # Inside a string when an odd number of delimiters (with the carried state) come before.
    quotes_so_far = np.cumsum(is_quote, dtype=np.int32)
    if in_string:
        quotes_so_far += 1
    stray = None
    if len(backslashes):
        outside = (quotes_so_far[kind == BACKSLASH] & 1) == 0
        if outside.any():
            stray = int(backslashes[np.argmax(outside)])
    structural = np.flatnonzero(kind >= OPEN)
    spos, skind = pos[structural], kind[structural]
    inside = (quotes_so_far[structural] & 1).astype(bool)
    breaks_in_strings = spos[inside & (skind == LINE_BREAK)]
    keep = ~inside & (skind != LINE_BREAK)
    spos, skind = spos[keep], skind[keep]
    depths = depth + np.cumsum(_DEPTH_STEP[skind])
    quotes = pos[is_quote]
    return Structure(
        positions=spos, kinds=skind, depths=depths, quotes=quotes,
        breaks_in_strings=breaks_in_strings, stray_backslash=stray,
        in_string=bool((len(quotes) + in_string) & 1),
        escape_next=bool(len(escaped)) and int(escaped[-1]) == len(data),
        depth=int(depths[-1]) if len(depths) else depth)


def escaped_bytes(backslashes: np.ndarray, start: int, escape_first: bool) -> np.ndarray:
    """Sorted offsets of the bytes escaped by the backslashes at ``backslashes`` (sorted offsets
    from ``start``; ``escape_first``: the byte at ``start`` is escaped). An offset one past the
    data's end means its last byte escapes the next chunk's first."""
    if not len(backslashes):
        return np.array([start] if escape_first else [], np.int64)
    n = len(backslashes)
    run_start = np.ones(n, bool)
    run_start[1:] = backslashes[1:] != backslashes[:-1] + 1
    index = np.arange(n)
    first_of_run = np.maximum.accumulate(np.where(run_start, index, 0))
    in_run = index - first_of_run
    if escape_first and backslashes[0] == start:  # the first run starts with an escaped one
        in_run[first_of_run == 0] += 1
    escaped = backslashes[in_run % 2 == 0] + 1
    if escape_first and backslashes[0] != start:
        escaped = np.concatenate(([start], escaped))
    return escaped


def max_depth(data: bytes) -> int:
    """The deepest nesting of brackets (``{`` or ``[``) outside strings in the JSON text
    ``data`` (0 for a scalar; an unbalanced text counts its opening brackets)."""
    found = scan(data, 0, False, False, 0)
    return int(found.depths.max(initial=0))
