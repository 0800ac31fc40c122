"""Checkers of single values, shared by every ingestion format.

Each checker takes a value as a JSON parser gave it (``None``, ``bool``, ``int``, ``float``,
``str``, ``list``, ``dict``) and the name of the field it was read from, and returns what a column
can hold, or raises :class:`lib.ingest.base.BadValue` with a reason naming the field and quoting
the value (``"gen_ai.usage.input_tokens is not an integer: abc"``). The format then quarantines
the record holding it and goes on: nothing is rounded, coerced or dropped without saying so.

Numeric text is read by one grammar everywhere: Python's ``int`` / ``float`` / ``Decimal``
syntax for ASCII text (surrounding whitespace allowed: ``" 12 "``), but never with an underscore
(``"1_000"`` is Python's syntax, not a JSON or OTLP number) nor with digits other than ASCII ones
(``"١٢"``). ``"NaN"``, ``"Infinity"`` and ``"1e400"`` are numeric text but no finite number.

The checkers are pure: no state, no I/O; ``integer`` and ``count`` return a plain int in range
before any other test, as they run once or more per span on the OTLP path (100k+ spans/s).
"""

from __future__ import annotations

import decimal
import json
import math
import re
from typing import Any

from lib.ingest.base import BadValue

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1  # OTLP times are fixed64 nanoseconds
SHOWN_CHARS = 60  # of a value quoted in a reason
# A reason joins its parts with "; " (lib.ingest.validate.checked_sql); the Data page splits on it
# to count the checks that failed (lib.metrics.inventory), once the quoted values (': "..."') are
# emptied. A value holding the separator, or what looks like a quoted value, is quoted.
REASON_SEPARATOR = "; "

_SURROGATE = re.compile("[\ud800-\udfff]")
_INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")  # fullmatch: the text of an integer


# ---------------------------------------------------------------------------------------------
# Text


def valid_text(text: str) -> str:
    """``text`` as valid UTF-8, for the quarantine (which must store what it is shown): bytes
    that were not UTF-8 (kept by ``surrogateescape``) and lone surrogates become U+FFFD.
    Valid text is returned as it is (the same object)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte (a "\ud800" escape)
        return _SURROGATE.sub("\ufffd", text)


def bad_text(value: Any, path: str = "") -> str | None:
    """The reason a record decoded by Python's json (``surrogateescape``) cannot be stored: the
    first text or key, in document order, holding a lone surrogate (bytes that were not UTF-8,
    or an unpaired ``\\ud800`` escape), named by its dotted path under ``path``; None when there
    is none."""
    stack = [(path, value)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, str):
            if not v.isascii() and _SURROGATE.search(v):
                return f"{where or 'the record'} is not valid UTF-8 text: {shown(v)}"
        elif isinstance(v, dict):
            items = []
            for key, item in v.items():
                if not key.isascii() and _SURROGATE.search(key):
                    return (f"{where or 'the record'} has a key that is not valid UTF-8 text: "
                            f"{shown(key)}")
                items.append((f"{where}.{key}" if where else key, item))
            stack.extend(reversed(items))
        elif isinstance(v, list):
            stack.extend(reversed([(f"{where}.{i}" if where else str(i), item)
                                   for i, item in enumerate(v)]))
    return None


def shown(value: Any) -> str:
    """``value`` as a reason quotes it; at most :data:`SHOWN_CHARS` (60) characters, a longer
    text cut to 57 and ``...`` added; always valid UTF-8 (see :func:`valid_text`).

    - text as written (``abc``, ``1e400``), except text that is empty or only whitespace, which
      is written as a JSON string (``""``, ``" "``);
    - any other value as compact JSON (``true``, ``null``, ``12``, ``1.5``, ``1e+30``,
      ``[1,2]``, ``{"a":1}``), NaN and the infinities as ``NaN``, ``Infinity``, ``-Infinity``;
    - either, when it holds ``"; "`` (which separates a reason's parts) or could be taken for
      a quoted value (it starts with ``"`` or holds ``: "``), as a JSON string
      (``"lots; of them"``), so the Data page does not read its end as a check of its own.

    Why: a reason ends with the value, so an empty text would leave nothing after the colon
    (``epoch is not an integer: ``), read as a value missing or cut off; ``""`` says what was
    there. Non-finite floats are written the way every input that can hold them writes them
    (Python's json and proto3 JSON: ``NaN``, ``Infinity``), so a reason quotes what the user
    can find in the file, not Python's ``inf``. Compact JSON is how the lake stores such values
    in ``attributes``, and fits more of one in 60 characters.
    """
    if isinstance(value, str) and (not value or value.isspace()):
        text = json.dumps(value[:SHOWN_CHARS])  # quoted already
        return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."
    if isinstance(value, str):  # also str subclasses (Langfuse keeps "1e400" as one)
        text = value
    else:
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        except (TypeError, ValueError):  # an int past str()'s digit limit, a circular list
            text = (f"an integer of {value.bit_length()} bits" if isinstance(value, int)
                    else f"a {type(value).__name__} that cannot be written")
        except RecursionError:
            text = f"a {type(value).__name__} nested too deeply to be written"
    if len(text) > SHOWN_CHARS:
        text = text[:SHOWN_CHARS - 3] + "..."
    if needs_quotes(text):
        text = _quoted(text)
    return valid_text(text)


def needs_quotes(text: str) -> bool:
    """True when ``text``, quoted at the end of a reason's part, would be read as more than a
    value: it holds the separator of parts, or looks like the start of a quoted value."""
    return REASON_SEPARATOR in text or ': "' in text or text.startswith('"')


def _quoted(text: str) -> str:
    """``text`` as a JSON string of at most :data:`SHOWN_CHARS` characters, its end cut (and
    ``...`` added) as needed: ``"a; b"``."""
    quoted = json.dumps(text, ensure_ascii=False)
    cut = min(len(text), SHOWN_CHARS - 5)
    while len(quoted) > SHOWN_CHARS and cut > 0:
        quoted = json.dumps(text[:cut] + "...", ensure_ascii=False)
        cut -= 1
    return quoted


def numeric_text(text: str) -> bool:
    """True when ``text`` is numeric text as the checkers read it (``"12"``, ``" 1.5 "``,
    ``"1e3"``, also ``"NaN"``, ``"Infinity"``, ``"1e400"``); False for ``"abc"``, ``""``,
    ``"1_000"``, ``"0x10"``, ``"١٢"``."""
    if not text.isascii() or "_" in text:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Integers


def integer(value: Any, field: str, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    """``value`` as an int in ``low .. high`` (both included; int64 unless given).

    Accepts: ints; finite floats without a fraction (``12.0`` is 12); numeric text of an
    integer or of an integral decimal (``"12"``, ``" 12 "``, ``"-3"``, ``"12.0"``, ``"1e3"``),
    read exactly (``"9007199254740993.0"`` is 9007199254740993, which a float cannot hold).
    Refuses, raising :class:`BadValue`:

    - ``"<field> is not an integer: <shown>"``: booleans, ``None``, fractions (``1.5``,
      ``"9007199254740993.9"``), NaN, infinities, text that is not numeric (``"abc"``, ``""``,
      ``"1_000"``, ``"0x10"``) or beyond a float's range (``"1e400"``), lists, objects;
    - ``"<field> is out of range: <shown>"``: an integer outside ``low .. high``
      (``10**30``, ``"1e30"``, ``1e+308``).
    """
    if value.__class__ is int:  # the usual case, first
        n = value
    elif value.__class__ is str and value.isascii() and "_" not in value:
        try:  # OTLP writes int64 as decimal text
            n = int(value)
        except ValueError:
            n = _whole(value, field)
    else:
        n = _whole(value, field)
    if low <= n <= high:
        return n
    raise BadValue(f"{field} is out of range: {shown(value)}")


def _whole(value: Any, field: str) -> int:
    """``value`` as an int of any size (see :func:`integer` for what is one), else
    :class:`BadValue` ``"<field> is not an integer: <shown>"``."""
    cls = value.__class__
    if cls is int:
        return value
    if cls is float:
        if value.is_integer():  # NaN and the infinities are not
            return int(value)
    elif isinstance(value, str) and value.isascii() and "_" not in value:
        try:
            return int(value)
        except ValueError:
            pass
        if _INTEGER_TEXT.fullmatch(value):  # digits int() refuses to read: past 4,300 of them
            raise BadValue(f"{field} is out of range: {shown(value)}")
        try:
            f = float(value)
        except ValueError:
            f = math.nan
        # float() screens out "abc", "NaN", "Infinity" and "1e400" (inf) cheaply; the digits
        # are then read exactly: a float holds 15-17 of them, so float("9007199254740993.9")
        # has no fraction left and int(float("9007199254740993.0")) loses the last one
        if f.is_integer():
            try:
                d = decimal.Decimal(value)
                if d == d.to_integral_value():
                    return int(d)
            except decimal.DecimalException:  # an exponent past Decimal's: "0e99999999999999999999"
                pass
    raise BadValue(f"{field} is not an integer: {shown(value)}")


def count(value: Any, field: str) -> int | None:
    """A count (tokens): ``None`` when ``value`` is ``None`` (absent), else an integer (as
    :func:`integer` reads one) in ``0 .. 2**63 - 1``. Refuses, raising :class:`BadValue`:
    ``"<field> is not an integer: <shown>"`` (see :func:`integer`), ``"<field> is negative:
    <shown>"`` (``-1``, ``"-1"``, ``-10**30``), ``"<field> is out of range: <shown>"``
    (``2**63``, ``1e+20``)."""
    if value.__class__ is int and 0 <= value <= INT64_MAX:  # the usual case, first
        return value
    if value is None:
        return None
    n = _whole(value, field)
    if n < 0:
        raise BadValue(f"{field} is negative: {shown(value)}")
    if n > INT64_MAX:
        raise BadValue(f"{field} is out of range: {shown(value)}")
    return n


# ---------------------------------------------------------------------------------------------
# Numbers


def number(value: Any, field: str, *, signed: bool = False,
           booleans: bool = False) -> float | None:
    """A finite float, in the unit the field is written in (this does no conversion):
    ``None`` when ``value`` is ``None`` (absent); else a finite float, an int a double can
    hold (``10**30`` is 1e+30), or numeric text (``"0.5"``, ``" 2 "``, ``"1e-3"``), not negative
    unless ``signed``. With ``booleans`` (evaluation scores, which promptfoo and Inspect write as
    true/false) ``true`` is 1.0 and ``false`` 0.0. Refuses, raising :class:`BadValue`:

    - ``"<field> is not a finite number: <shown>"``: NaN, infinities (also as text, and text
      beyond a double's range such as ``"1e400"``), booleans (unless ``booleans``), text that is
      not numeric (``"abc"``, ``""``, ``"1_000"``), lists, objects;
    - ``"<field> is negative: <shown>"``: below 0 unless ``signed`` (``-0.5``, ``"-1"``);
    - ``"<field> is out of range: <shown>"``: an integer beyond any double (``10**400``, or its
      text).
    """
    if value.__class__ is float and value - value == 0 and (signed or value >= 0):
        return value  # the usual case, first (value - value is NaN for NaN and infinities)
    if value is None:
        return None
    cls = value.__class__
    if cls is float:
        f = value
    elif cls is int:
        try:
            f = float(value)
        except OverflowError:
            raise BadValue(f"{field} is out of range: {shown(value)}") from None
    elif cls is bool and booleans:
        return 1.0 if value else 0.0
    elif isinstance(value, str) and value.isascii() and "_" not in value:
        try:
            f = float(value)
        except ValueError:
            f = math.nan
        if f - f != 0 and _INTEGER_TEXT.fullmatch(value):  # an integer beyond a double
            raise BadValue(f"{field} is out of range: {shown(value)}")
    else:
        f = math.nan
    if f - f != 0:
        raise BadValue(f"{field} is not a finite number: {shown(value)}")
    if f < 0 and not signed:
        raise BadValue(f"{field} is negative: {shown(value)}")
    return f
