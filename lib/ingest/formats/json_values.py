"""Values of a JSON document (promptfoo, Inspect logs), checked one field at a time: each helper
returns the value a column can hold or raises :class:`BadValue` with a reason naming the field and
the value ("gradingResult.pass is not a boolean: yes"), so the parser quarantines that record and
goes on. Text that is not valid UTF-8 (bytes that are not, read with ``surrogateescape``, or a lone
surrogate escape such as ``"\\ud800"``) is refused wherever it would be stored. Numbers and
integers are read by lib/ingest/values.py (``number``, ``integer``), as every format reads them;
the helpers here take the field first, as the parsers name it."""

from __future__ import annotations

import json
from typing import BinaryIO

from lib.ingest.base import BadValue, Reject
from lib.ingest.values import shown

RAW_CHARS = 2000  # of a rejected record's JSON kept in quarantine


def read_json(stream: BinaryIO):
    """The JSON document in ``stream``. Bytes that are not UTF-8 become lone surrogates
    (``surrogateescape``), which :func:`text` and :func:`json_value` refuse: only the records
    storing them are quarantined, not the file."""
    data = stream.read()
    # UTF-16/32 as json.loads detects it; UTF-8 (a BOM dropped) with bytes that are not kept.
    try:
        return json.loads(data.decode(json.detect_encoding(data), "surrogateescape")
                          .removeprefix("\ufeff"))
    except RecursionError:
        raise ValueError("the JSON document is nested too deeply to read (Python's json "
                         "stops at about 1,000 levels)") from None


def reject(line: int, record, reason: str) -> Reject:
    """The quarantine entry of ``record`` (its JSON, cut). A lone surrogate in the reason (from a
    key in a field's name: a value is quoted already made valid by ``values.shown``) is written
    as its escape: the lake only holds UTF-8."""
    return Reject(line, json.dumps(record)[:RAW_CHARS],
                  reason.encode("utf-8", "backslashreplace").decode())


def is_text(value) -> bool:
    """True when a parsed JSON value holds only valid UTF-8 text: no lone surrogate, from an
    escape such as ``"\\ud800"`` or from bytes kept by ``surrogateescape``, which no column
    (nor Parquet) can store."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _utf8(value: str) -> bool:
    try:
        value.encode()
        return True
    except UnicodeEncodeError:
        return False


def text(field: str, value) -> str | None:
    """The value of a text column: text as it is, any other JSON value as its JSON text."""
    if value is None:
        return None
    if not isinstance(value, str):
        return json.dumps(value)
    if not _utf8(value):
        raise BadValue(f"{field} is not valid UTF-8 text: {shown(value)}")
    return value


def json_value(field: str, value):
    """``value``, checked to be one JSON text (``attributes``) can hold."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode()
    except UnicodeEncodeError:
        raise BadValue(f"{field} is not valid UTF-8 text: {shown(value)}") from None
    except ValueError:  # NaN or an infinity, which JSON has no way to write
        what = "is not a finite number" if isinstance(value, float) else \
            "holds a number that is not finite"
        raise BadValue(f"{field} {what}: {shown(value)}") from None
    return value


def boolean(field: str, value) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise BadValue(f"{field} is not a boolean: {shown(value)}")


def obj(field: str, value) -> dict:
    """A JSON object; an absent one (None) is empty."""
    if value is None or isinstance(value, dict):
        return value or {}
    raise BadValue(f"{field} is not an object: {shown(value)}")


def array(field: str, value) -> list:
    """A JSON array; an absent one (None) is empty."""
    if value is None or isinstance(value, list):
        return value or []
    raise BadValue(f"{field} is not a list: {shown(value)}")


def array_head(text: str, limit: int) -> list[dict]:
    """The complete objects (at most ``limit``) at the start of a JSON array cut off anywhere,
    e.g. a file's first bytes; what follows the first incomplete element is not read."""
    decoder, out = json.JSONDecoder(), []
    i = text.find("[") + 1
    while 0 < i < len(text) and len(out) < limit:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        try:
            record, i = decoder.raw_decode(text, i)
        except ValueError:
            break
        if isinstance(record, dict):
            out.append(record)
    return out
