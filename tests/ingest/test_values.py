"""Specification of lib/ingest/values.py, the value checkers every ingestion format uses: what each
accepts and returns, and the exact reason of what it refuses."""

from __future__ import annotations

import math

import pytest

from lib.ingest import values
from lib.ingest.base import BadValue
from lib.ingest.values import count, integer, number, numeric_text, shown, valid_text

INF, NAN = float("inf"), float("nan")


class JsonNumber(str):
    """Like Langfuse's reader, which keeps a JSON number a float cannot hold as its text."""


def refused(check, *args, **kwargs) -> str:
    """The reason ``check(*args, **kwargs)`` raises (a BadValue, which is a ValueError)."""
    with pytest.raises(BadValue) as raised:
        check(*args, **kwargs)
    assert isinstance(raised.value, ValueError)
    return str(raised.value)


def deeply_nested(depth: int = 100_000) -> list:
    nested: list = []
    for _ in range(depth):
        nested = [nested]
    return nested


# -- shown -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [
    ("abc", "abc"),
    ("1e400", "1e400"),
    (JsonNumber("Infinity"), "Infinity"),
    ("", '""'),                       # nothing after the colon would read as a value cut off
    (" ", '" "'),
    ("\t", '"\\t"'),
    ("x" * 60, "x" * 60),
    ("x" * 61, "x" * 57 + "..."),
    (12, "12"),
    (-3, "-3"),
    (10**30, "1" + "0" * 30),
    (1.5, "1.5"),
    (12.0, "12.0"),
    (1e30, "1e+30"),
    (INF, "Infinity"),                # as JSON and proto3 JSON write it, not Python's inf
    (-INF, "-Infinity"),
    (NAN, "NaN"),
    (True, "true"),
    (False, "false"),
    (None, "null"),
    ([1, 2], "[1,2]"),                # compact JSON, as attributes are stored
    ({"a": 1}, '{"a":1}'),
    ({"a": "é"}, '{"a":"é"}'),
    ([INF], "[Infinity]"),
    (list(range(100)), "[" + ",".join(map(str, range(100)))[:56] + "..."),
    ("ab\udcff\udcfecd", "ab\ufffd\ufffdcd"),   # bytes that were not UTF-8 (surrogateescape)
    ("\ud800", "\ufffd"),                      # a lone surrogate escape
    ({"k": "\ud800"}, '{"k":"\ufffd"}'),
    # "; " separates a reason's parts: a value holding it is a JSON string
    ("lots; of them", '"lots; of them"'),
    ('say "hi"; bye', '"say \\"hi\\"; bye"'),
    ({"a": "b; c"}, '"{\\"a\\":\\"b; c\\"}"'),
    ("x; " * 30, '"' + "x; " * 18 + 'x..."'),
    # what looks like a quoted value after the colon is quoted too
    ('about: "ten', '"about: \\"ten"'),
    ('"ok', '"\\"ok"'),
])
def test_shown(value, text):
    assert shown(value) == text


def test_shown_never_fails_and_stays_short():
    assert shown(10**5000) == "an integer of 16610 bits"  # past str()'s digit limit
    assert shown(deeply_nested()) == "a list nested too deeply to be written"
    circular: list = []
    circular.append(circular)
    assert shown(circular) == "a list that cannot be written"
    assert shown("\ud800" * 100) == "\ufffd" * 57 + "..."
    assert len(shown(" " * 100)) == 60
    assert len(shown('"; ' * 100)) == 60  # quoted, with its quotes escaped


# -- valid_text ------------------------------------------------------------------------------


def test_valid_text():
    text = "abc é \U0001F600"
    assert valid_text(text) is text
    assert valid_text("ab\udcff") == "ab\ufffd"
    assert valid_text("\udcc3\udca9") == "é"  # UTF-8 bytes kept by surrogateescape
    assert valid_text("a\ud800b") == "a\ufffdb"


# -- numeric_text ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["12", " 12 ", "-1.5", "1e3", ".5", "NaN", "Infinity", "1e400"])
def test_numeric_text(text):
    assert numeric_text(text) is True


@pytest.mark.parametrize("text", ["", " ", "abc", "1_000", "0x10", "\u0661\u0662", "1,5"])
def test_not_numeric_text(text):
    assert numeric_text(text) is False


# -- integer ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "n"), [
    (12, 12),
    (0, 0),
    (-3, -3),
    (12.0, 12),
    (-0.0, 0),
    ("12", 12),
    (" 12 ", 12),
    ("+12", 12),
    ("-3", -3),
    ("12.0", 12),
    ("1e3", 1000),
    ("1.5e1", 15),
    (JsonNumber("12"), 12),
    ("9007199254740993.0", 9007199254740993),  # 2**53 + 1: exact, a float would give ...992
    ("9223372036854775807", values.INT64_MAX),
    ("-9223372036854775808", values.INT64_MIN),
])
def test_integer(value, n):
    result = integer(value, "f")
    assert result == n
    assert result.__class__ is int


@pytest.mark.parametrize(("value", "text"), [
    (True, "true"),
    (False, "false"),
    (None, "null"),
    (1.5, "1.5"),
    ("1.5", "1.5"),
    ("9007199254740993.9", "9007199254740993.9"),  # a float has no fraction left of it
    ("1e-400", "1e-400"),
    # exponents past what Decimal holds (decimal.InvalidOperation once failed whole files)
    ("0e99999999999999999999", "0e99999999999999999999"),
    ("1e-99999999999999999999", "1e-99999999999999999999"),
    (NAN, "NaN"),
    (INF, "Infinity"),
    (-INF, "-Infinity"),
    ("NaN", "NaN"),
    ("Infinity", "Infinity"),
    ("1e400", "1e400"),
    (JsonNumber("1e400"), "1e400"),
    ("abc", "abc"),
    ("", '""'),
    ("1_000", "1_000"),        # Python's syntax, not a JSON or OTLP number
    ("0x10", "0x10"),
    ("\u0661\u0662", "\u0661\u0662"),  # digits, but not ASCII ones
    ([1], "[1]"),
    ({"a": 1}, '{"a":1}'),
])
def test_integer_refuses_what_is_no_integer(value, text):
    assert refused(integer, value, "f") == f"f is not an integer: {text}"


@pytest.mark.parametrize(("value", "low", "high", "text"), [
    (2**63, values.INT64_MIN, values.INT64_MAX, "9223372036854775808"),
    (-(2**63) - 1, values.INT64_MIN, values.INT64_MAX, "-9223372036854775809"),
    ("9223372036854775808", values.INT64_MIN, values.INT64_MAX, "9223372036854775808"),
    ("1e30", values.INT64_MIN, values.INT64_MAX, "1e30"),
    (1e308, values.INT64_MIN, values.INT64_MAX, "1e+308"),
    (5, 0, 4, "5"),
    (-1, 0, 4, "-1"),
    ("-1", 0, values.UINT64_MAX, "-1"),
    (2**64, 0, values.UINT64_MAX, "18446744073709551616"),
])
def test_integer_out_of_range(value, low, high, text):
    assert refused(integer, value, "f", low, high) == f"f is out of range: {text}"


def test_integer_bounds_are_included():
    assert integer(0, "f", 0, 0) == 0
    assert integer("4", "f", 0, 4) == 4
    assert integer(2**64 - 1, "t", 0, values.UINT64_MAX) == 2**64 - 1
    assert integer("18446744073709551615", "t", 0, values.UINT64_MAX) == 2**64 - 1


# -- count -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "n"), [
    (None, None),
    (0, 0),
    (7, 7),
    (values.INT64_MAX, values.INT64_MAX),
    ("7", 7),
    (" 7 ", 7),
    (12.0, 12),
    ("1e3", 1000),
    ("9007199254740993.0", 9007199254740993),
])
def test_count(value, n):
    assert count(value, "tokens") == n


@pytest.mark.parametrize(("value", "reason"), [
    (-1, "tokens is negative: -1"),
    ("-1", "tokens is negative: -1"),
    (-(10**30), "tokens is negative: -1" + "0" * 30),   # negative first, however far below
    (-1e308, "tokens is negative: -1e+308"),
    (2**63, "tokens is out of range: 9223372036854775808"),
    (1e20, "tokens is out of range: 1e+20"),
    ("abc", "tokens is not an integer: abc"),
    (True, "tokens is not an integer: true"),
    (1.5, "tokens is not an integer: 1.5"),
    ("1_000", "tokens is not an integer: 1_000"),
    ("", 'tokens is not an integer: ""'),
    ("1e400", "tokens is not an integer: 1e400"),
])
def test_count_refuses(value, reason):
    assert refused(count, value, "tokens") == reason


# -- number ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "kwargs", "f"), [
    (None, {}, None),
    (0.5, {}, 0.5),
    (0.0, {}, 0.0),
    (2, {}, 2.0),
    (10**30, {}, 1e30),
    ("0.5", {}, 0.5),
    (" 2 ", {}, 2.0),
    ("1e-3", {}, 0.001),
    (JsonNumber("0.5"), {}, 0.5),
    (-0.5, {"signed": True}, -0.5),
    ("-1", {"signed": True}, -1.0),
    (True, {"booleans": True}, 1.0),
    (False, {"booleans": True}, 0.0),
    (None, {"booleans": True}, None),
])
def test_number(value, kwargs, f):
    result = number(value, "x", **kwargs)
    assert result == f
    assert result is None or result.__class__ is float


@pytest.mark.parametrize(("value", "kwargs", "reason"), [
    (-0.5, {}, "x is negative: -0.5"),
    ("-1", {}, "x is negative: -1"),
    (-1, {"booleans": True}, "x is negative: -1"),
    (True, {}, "x is not a finite number: true"),
    (False, {"signed": True}, "x is not a finite number: false"),
    (NAN, {}, "x is not a finite number: NaN"),
    (INF, {"signed": True}, "x is not a finite number: Infinity"),
    (-INF, {"signed": True}, "x is not a finite number: -Infinity"),
    ("NaN", {}, "x is not a finite number: NaN"),
    ("-Infinity", {"signed": True}, "x is not a finite number: -Infinity"),
    ("1e400", {}, "x is not a finite number: 1e400"),
    (JsonNumber("1e400"), {}, "x is not a finite number: 1e400"),
    ("abc", {}, "x is not a finite number: abc"),
    ("", {}, 'x is not a finite number: ""'),
    ("1_000", {}, "x is not a finite number: 1_000"),
    ("\u0661", {}, "x is not a finite number: \u0661"),
    ([1], {}, "x is not a finite number: [1]"),
    ({"a": 1}, {"booleans": True}, 'x is not a finite number: {"a":1}'),
    (10**400, {}, "x is out of range: " + "1" + "0" * 56 + "..."),  # an integer beyond a double
    ("9" * 400, {}, "x is out of range: " + "9" * 57 + "..."),
    (-(10**400), {}, "x is out of range: -" + "1" + "0" * 55 + "..."),
])
def test_number_refuses(value, kwargs, reason):
    assert refused(number, value, "x", **kwargs) == reason


def test_number_returns_a_finite_float_for_every_int_a_double_holds():
    assert number(2**1023, "x") == float(2**1023)
    assert math.isfinite(number(str(2**1023), "x"))


def test_integer_text_past_pythons_digit_limit_is_out_of_range():
    # int() refuses text of more than 4,300 digits: it is an integer all the same
    assert refused(integer, "9" * 5000, "f") == f"f is out of range: {'9' * 57}..."
    assert refused(count, "9" * 5000, "f") == f"f is out of range: {'9' * 57}..."


@pytest.mark.parametrize("text", [
    "", "   ", "\t", " " * 100, "abc", "x" * 60, "x" * 61, "a; b", "lots; of them " * 10,
    '"ok', 'about: "ten', "é" * 61, 'say "hi"', "back\\slash; x", "line\nbreak"])
def test_the_sql_checks_quote_a_value_as_shown_does(text):
    """The SQL paths (lib.ingest.validate.checked_sql) and the Python ones quote a text value in
    a reason alike."""
    import duckdb

    from lib.ingest.validate import _shown_sql

    got = duckdb.execute(f"SELECT {_shown_sql('v', 60)} FROM (SELECT $v AS v)",
                         {"v": text}).fetchone()[0]
    assert got == shown(text)
