"""Numbers for people: exact strings, including the boundaries where a unit changes."""

from __future__ import annotations

import math

import pytest

from lib import formatting as fmt


@pytest.mark.parametrize("value, text", [
    (0, "0"), (7, "7"), (999, "999"), (999.4, "999"), (-42, "-42"),
    (999.5, "1.0k"),  # would print as "1,000" otherwise
    (1000, "1.0k"), (1234, "1.2k"), (12_345, "12.3k"), (999_949, "999.9k"),
    (999_950, "1.0M"),  # not "1000.0k"
    (2_500_000, "2.5M"), (-2_500_000, "-2.5M"), (999_950_000, "1.0B"), (3.2e9, "3.2B"),
])
def test_count(value, text):
    assert fmt.count(value) == text


@pytest.mark.parametrize("value, text", [
    (0, "$0.00"), (0.0042, "$0.0042"), (0.00999, "$0.0100"), (0.01, "$0.010"),
    (0.0557, "$0.056"), (0.0949, "$0.095"), (0.1, "$0.10"), (0.555, "$0.56"),  # 2 digits < 10¢
    (0.0000207, "$0.000021"), (-0.00042, "-$0.00042"), (3e-9, "$0.0000000030"),
    (3.4, "$3.40"), (1234.5, "$1,234.50"), (99_999.99, "$99,999.99"), (100_000, "$100k"),
    (2_345_678, "$2,346k"), (-3.4, "-$3.40"), (-250_000, "-$250k"),
])
def test_usd(value, text):
    assert fmt.usd(value) == text


@pytest.mark.parametrize("value, text", [
    (0, "0 ms"), (850, "850 ms"), (999.4, "999 ms"),
    (999.5, "1.0 s"),  # not "1000 ms"
    (2100, "2.1 s"), (59_949, "59.9 s"),
    (59_950, "1.0 min"),  # not "60.0 s"
    (192_000, "3.2 min"),
])
def test_ms(value, text):
    assert fmt.ms(value) == text


def test_pct_and_by_unit():
    assert fmt.pct(0.0081) == "0.81%"
    assert fmt.pct(1) == "100.00%"
    assert fmt.pct(0.5, digits=0) == "50%"
    assert fmt.by_unit(0.0081, "ratio") == "0.81%"
    assert fmt.by_unit(1234, "count") == "1.2k"
    assert fmt.by_unit(3.4, "usd") == "$3.40"
    assert fmt.by_unit(850, "ms") == "850 ms"
    assert fmt.by_unit(1234, "unknown-unit") == "1.2k"


@pytest.mark.parametrize("func", [fmt.count, fmt.usd, fmt.ms, fmt.pct])
def test_missing_values_show_a_dash(func):
    assert func(None) == "–"
    assert func(math.nan) == "–"


def test_delta():
    assert fmt.delta(112, 100, "count") == "+12.0%"
    assert fmt.delta(90, 100, "usd") == "-10.0%"
    assert fmt.delta(50, -100, "usd") == "+150.0%"  # relative to |previous|
    assert fmt.delta(0.0123, 0.0083, "ratio") == "+0.40 pp"  # percentage points, not percent
    assert fmt.delta(0.01, 0.02, "ratio") == "-1.00 pp"
    assert fmt.delta(5, 0, "count") == "new"
    assert fmt.delta(0, 0, "count") is None
    assert fmt.delta(None, 1, "count") is None
    assert fmt.delta(1, None, "ms") is None
    assert fmt.delta(math.nan, 1, "ms") is None


@pytest.mark.parametrize("value, text", [
    ("gpt-4o", "gpt-4o"),
    ("caf\u00e9 \u2713 \u4e2d", "caf\u00e9 \u2713 \u4e2d"),  # printable Unicode stays as it is
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),  # colours, cursor moves: escaped
    ("a\nb\r\tc\x00", "a\\nb\\r\\tc\\x00"),  # one line
    ("\x9b2J", "\\x9b2J"),  # C1 control sequence introducer
    ("user\u202egnp.exe", "user\\u202egnp.exe"),  # right-to-left override
    ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
    ("name\udc9b[2J.csv", "name\\udc9b[2J.csv"),  # a file name byte 0x9b (8-bit CSI), fsdecoded
    (None, "None"),
    (12, "12"),
])
def test_terminal_text_escapes_what_a_terminal_acts_on(value, text):
    assert fmt.terminal_text(value) == text


@pytest.mark.parametrize("value, more, text", [
    (0.0045123, 1, "$0.00451"), (0.0044627, 1, "$0.00446"),  # both "$0.0045" with none
    (0.0045123, 2, "$0.004512"), (1.2346, 2, "$1.235"), (31.27, 1, "$31.27"),  # cents at least
    (-0.0045123, 1, "-$0.00451"), (0, 1, "$0.00"), (250_000, 1, "$250k"),
])
def test_usd_with_more_digits(value, more, text):
    assert fmt.usd(value, more) == text


def test_plural_counts_read_as_words():
    from lib.formatting import plural

    assert [plural(n, "event") for n in (0, 1, 2, 1204)] == \
        ["0 events", "1 event", "2 events", "1,204 events"]
    assert plural(2, "query", "queries") == "2 queries"


def test_plain_numbers_keep_their_digits_and_are_whole_when_large():
    from lib.formatting import number

    assert [number(v) for v in (0.00191, 59.5, 732.4, 999.7, 12360.4, None)] == \
        ["0.00191", "59.5", "732", "1,000", "12,360", "–"]
    assert number(0.21834, 4) == "0.2183" and number(1234.5, 4) == "1,234"


def test_a_usd_axis_has_the_decimals_its_ticks_need():
    from lib.formatting import usd_tick_format

    # an axis to $0.004 has ticks of $0.0008: four decimals, where cents read $0.00 at each
    assert usd_tick_format(0.004) == "$,.4f"
    assert usd_tick_format(0.3) == "$,.2f"  # ticks of 6 cents
    assert [usd_tick_format(v) for v in (12_000.0, 2.0, None, 0.0, float("nan"))] == \
        ["$,.2f"] * 5


def test_a_usd_column_shows_its_smallest_amount_with_two_significant_digits():
    from lib.formatting import usd_column_format

    assert usd_column_format([123.5, 0.0042, None]) == "$%.4f"  # $0.0042, not $0.00
    # past $1,000 the thousands separators win ("$1234.5000" reads worse than "$0.00")
    assert usd_column_format([1234.5, 0.0042]) == "dollar"
    assert usd_column_format([0.000021]) == "$%.6f"
    assert usd_column_format([0.0, 5.0, 1234.5]) == "dollar"  # cents suffice


def test_a_column_of_unit_costs_keeps_its_decimals_and_shows_a_tiny_one():
    # The Cost page's "USD per request" was "$%.5f": an embedding at $0.0000012 a request read
    # "$0.00000" beside gpt-4o-mini's "$0.00019" (seen in Chromium), as Explore's and the
    # Request page's costs of one such call did.
    from lib.formatting import usd_column_format

    assert usd_column_format([0.000192, 0.0000012], decimals=5) == "$%.7f"  # "$0.0000012"
    # at least the decimals asked for: "$0.01200", not the cents of "dollar"
    assert usd_column_format([0.05, 0.012, None], decimals=5) == "$%.5f"
    assert usd_column_format([0.00019, 0.0], decimals=5) == "$%.5f"
    assert usd_column_format([None], decimals=5) == "$%.5f"


def test_rows_by_table_read_as_words():
    # ("remove" printed "1 requests", the Data page's batches "1 quarantine, 1 requests")
    from lib.formatting import table_rows

    assert table_rows({"requests": 1, "evals": 2, "quarantine": 1}) == \
        "2 evals, 1 quarantined row, 1 request"
    assert table_rows({"events": 1204, "quarantine": 3}) == "1,204 events, 3 quarantined rows"
    assert (table_rows({}), table_rows({}, empty="0 rows")) == ("no rows", "0 rows")


def test_a_wall_time_gives_its_offset_only_in_the_hour_that_happens_twice():
    from datetime import UTC, datetime

    # 2026-10-25 in Berlin: 02:30 happens at 00:30 UTC (+02:00) and again at 01:30 UTC (+01:00)
    first, second = (datetime(2026, 10, 25, h, 30, tzinfo=UTC) for h in (0, 1))
    assert fmt.wall_time(first, "Europe/Berlin") == "2026-10-25 02:30:00 +02:00 Europe/Berlin"
    assert fmt.wall_time(second, "Europe/Berlin") == "2026-10-25 02:30:00 +01:00 Europe/Berlin"
    # any other time, and the same instants in a zone without the change, as before
    assert fmt.wall_time(datetime(2026, 10, 25, 2, 30, tzinfo=UTC), "Europe/Berlin") == \
        "2026-10-25 03:30:00 Europe/Berlin"
    assert fmt.wall_time(first, "UTC", "%H:%M:%S.%f") == "00:30:00.000000 UTC"
    # the spring gap: 2026-03-29 01:30 UTC is 03:30 in Berlin, happening once
    assert fmt.wall_time(datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "Europe/Berlin") == \
        "2026-03-29 03:30:00 Europe/Berlin"
