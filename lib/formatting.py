"""Numbers for people: 1.2k, $3.40, 850 ms, 2.1 s, 0.81%. Pure, shared by pages and reports."""

from __future__ import annotations

import math
import re

import polars as pl


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def count(v) -> str:
    """1234 → '1.2k', 2_500_000 → '2.5M'."""
    if _missing(v):
        return "–"
    v = float(v)
    # Switch unit where the smaller one would round up to 1000 ("1.0M", never "1000.0k").
    for at, div, suffix in ((999_950_000, 1e9, "B"), (999_950, 1e6, "M"), (999.5, 1e3, "k")):
        if abs(v) >= at:
            return f"{v / div:.1f}{suffix}"
    return f"{v:,.0f}"


def plural(n: int, noun: str, many: str | None = None) -> str:
    """'1 event', '3 events', '1,204 requests' (``many``: an irregular plural)."""
    return f"{n:,} {noun if n == 1 else (many or noun + 's')}"


def table_rows(counts, empty: str = "no rows") -> str:
    """'1 request, 2 evals': rows by table (its name the plural of what a row is), tables in
    name order; ``empty`` when there are none."""
    return ", ".join(plural(n, _ROW_NOUNS.get(t, t.removesuffix("s")))
                     for t, n in sorted(counts.items())) or empty


_ROW_NOUNS = {"quarantine": "quarantined row"}  # (the one table not named as its rows' plural)


def usd_tick_format(largest) -> str:
    """The d3 format of a USD axis whose largest value is ``largest``: cents, or the decimals
    a fifth of it needs (an axis to $0.004 read "$0.00" at every tick): '$,.2f', '$,.4f'."""
    if _missing(largest) or not math.isfinite(float(largest)) or float(largest) <= 0:
        return "$,.2f"
    return f"$,.{min(8, max(2, -math.floor(math.log10(float(largest) / 5))))}f"


def usd_column_format(values, decimals: int | None = None) -> str:
    """The format of a table's USD column holding ``values``: Streamlit's "dollar" (cents,
    thousands separated), or, when a non-zero amount is under a cent and none reaches $1,000
    (whose separators the decimals' format has not), the decimals that give the smallest two
    significant digits (a $0.0042 share of spend read "$0.00"). ``decimals``: at least that
    many whatever the amounts (a column of unit costs, "$%.5f"), more for a smaller one: an
    embedding's $0.0000012 a request read "$0.00000", as if free."""
    amounts = [abs(float(v)) for v in values if not _missing(v)]
    small = [v for v in amounts if 0 < v < 0.01]
    large = bool(amounts) and max(amounts) >= 1000
    # the decimals that give the smallest amount two significant digits
    needed = min(8, 1 - math.floor(math.log10(min(small)))) if small else 0
    if decimals is not None and not large:
        return f"$%.{max(decimals, needed)}f"
    if not small or large:
        return "dollar"
    return f"$%.{needed}f"


def usd(v, more: int = 0) -> str:
    """Dollars with cents, or more digits under 10 cents (two significant ones, so one cheap
    call does not read $0.0000 and a $0.0557 call not $0.06): '$1,234.50', '$0.056', '$0.0042',
    '$0.000021'. ``more``: that many
    significant digits more than two (at least cents), to tell close amounts apart:
    usd(0.0045123, 1) is '$0.00451'."""
    if _missing(v):
        return "–"
    v = float(v)
    sign, v = ("-" if v < 0 else ""), abs(v)
    if more and v != 0 and v < 100_000:
        return f"{sign}${v:,.{max(2, 1 + more - math.floor(math.log10(v)))}f}"
    if v != 0 and v < 0.1:
        digits = min(1 - math.floor(math.log10(v)), 12)
        return f"{sign}${v:.{digits}f}"
    if v >= 100_000:
        return f"{sign}${v / 1000:,.0f}k"
    return f"{sign}${v:,.2f}"


def ms(v) -> str:
    """Milliseconds: '850 ms', '2.1 s', '3.2 min'."""
    if _missing(v):
        return "–"
    v = float(v)
    if abs(v) < 999.5:  # 999.5 would print as "1000 ms"
        return f"{v:.0f} ms"
    if abs(v) < 59_950:  # 59,950 would print as "60.0 s"
        return f"{v / 1000:.1f} s"
    return f"{v / 60_000:.1f} min"


def number(v, digits: int = 3) -> str:
    """A plain number with ``digits`` significant digits, whole from 10^(digits − 1) on:
    0.00191 → '0.00191', 59.5 → '59.5', 12360.4 → '12,360' ('1e+03' never)."""
    if _missing(v):
        return "–"
    return f"{v:,.0f}" if abs(v) >= 10 ** (digits - 1) else f"{v:.{digits}g}"


def pct(v, digits: int = 2) -> str:
    """A ratio in [0, 1] as a percentage: 0.0081 → '0.81%'."""
    if _missing(v):
        return "–"
    return f"{float(v) * 100:.{digits}f}%"


def by_unit(v, unit: str) -> str:
    """Format ``v`` by its unit name: count, usd, ms, ratio."""
    return {"count": count, "usd": usd, "ms": ms, "ratio": pct}.get(unit, count)(v)


def delta(value, previous, unit: str) -> str | None:
    """The change against the previous period, for a KPI tile: '+12.0%' for counts, money and
    latency; '+0.40 pp' (percentage points) for ratios. None when there is nothing to compare."""
    if _missing(value) or _missing(previous):
        return None
    if unit == "ratio":
        return f"{(value - previous) * 100:+.2f} pp"
    if previous == 0:
        return None if value == 0 else "new"
    return f"{(value - previous) / abs(previous) * 100:+.1f}%"


def duration(td) -> str:
    """A timedelta for people: '7 days', '24 hours', '1 hour 30 min', '45 min'."""
    seconds = int(td.total_seconds())
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes = rem // 60
    parts = []
    if days:
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    if hours:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    if minutes and not days:
        parts.append(f"{minutes} min")
    return " ".join(parts) or f"{seconds} s"


# C0 and C1 control characters, DEL, and the Unicode format characters that reorder or hide text
# (bidirectional overrides and isolates, zero-width marks): what a terminal acts on or draws
# misleadingly when text from a log is printed as is. Lone surrogates too: a file name's bytes
# that are not UTF-8 (os.fsdecode) would otherwise reach the terminal raw, or fail the print.
# Bidi embeddings, overrides and isolates: in a name from logs they reorder what a reader sees
# (a model "\u202eevil" read as "live"). Tables escape these (lib.ui.widgets.shown_text); a
# terminal also the marks and controls.
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_UNSAFE_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f" + BIDI_CONTROLS
                           + "\ufeff\ud800-\udfff]")


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, the last one "…" when cut (two names that
    differ after the cut must not read as one)."""
    return text if len(text) <= width else text[:width - 1] + "…"


def yaml_problem(exc: BaseException) -> str:
    """One line saying where and what a YAML file's slip is (``line 4, column 1: expected the
    node content…``), for a message naming the file: PyYAML's own text runs over five lines
    quoting the document."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None and getattr(exc, "problem", None):
        context = getattr(exc, "context", None)
        return (f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
                + (f" ({context})" if context else ""))
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def terminal_text(value) -> str:
    """``value`` as text safe to print on a terminal, on one line: each control or bidi/format
    character written as its escape (``\\x1b``, ``\\n``, ``\\u202e``), so text from logs can
    neither move the cursor, change colours nor reorder what the user reads."""
    text = str(value)
    if not _UNSAFE_CHARS.search(text):
        return text
    return _UNSAFE_CHARS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


# A CSV cell a spreadsheet (Excel, LibreOffice) reads as a formula, and runs: one starting with
# "=", "+", "@", a tab or a carriage return, or "-" unless the cell is a plain number ("-3",
# "-.5", "-1e3"): "-2+3+cmd|' /C calc'!A0" is one of OWASP's own examples, so "-" followed by a
# digit is not enough to be safe. (Rust's regex has no look-ahead: the number is matched whole.)
_FORMULA_START = r"^[=+@\t\r]"
_PLAIN_NEGATIVE = r"^-(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"


def csv_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` for a CSV download: each text cell a spreadsheet would run as a formula (from
    logs: a model named "=HYPERLINK(…)") prefixed with a single quote, OWASP's advice against
    CSV injection, so it opens as the text it is. Numbers, and other formats (Parquet), are left
    as logged."""
    texts = [c for c, t in frame.schema.items()
             if t == pl.String or t == pl.Categorical or isinstance(t, pl.Enum)]
    exprs = []
    for c in texts:
        e = pl.col(c).cast(pl.String)
        risky = e.str.contains(_FORMULA_START) | (e.str.starts_with("-")
                                                  & ~e.str.contains(_PLAIN_NEGATIVE))
        exprs.append(pl.when(risky).then(pl.lit("'") + e).otherwise(e).alias(c))
    return frame.with_columns(exprs) if exprs else frame


def wall_time(t, tz: str, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """'2026-10-25 02:30:00 Europe/Berlin': the aware time ``t`` on the clock of zone ``tz``,
    with its UTC offset ('2026-10-25 02:30:00 +02:00 Europe/Berlin') when that wall time
    happens twice, in the hour the clocks go back: two requests an hour apart read the same."""
    from zoneinfo import ZoneInfo

    local = t.astimezone(ZoneInfo(tz))
    twice = local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()
    # (a wall time the clocks skip cannot come from astimezone, so "twice" is the repeated hour)
    if not twice:
        return f"{local.strftime(fmt)} {tz}"
    offset = local.strftime("%z")
    return f"{local.strftime(fmt)} {offset[:3]}:{offset[3:]} {tz}"
