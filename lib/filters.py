"""Global filters: the time window plus dimension values, as SQL and as a URL query string.

Pure: no Streamlit here. The sidebar (lib/ui/filters.py) builds a :class:`Filters` from the query
string and every metric takes one, so a copied URL reproduces the view.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from lib.formatting import terminal_text
from lib.metrics.buckets import BucketClock, bucket_clock

PRESETS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
PRESET_LABELS = {"1h": "Last 1 hour", "24h": "Last 24 hours", "7d": "Last 7 days",
                 "30d": "Last 30 days", "custom": "Custom"}
DEFAULT_PRESET = "7d"

# URL key -> requests column. The sidebar shows these; any other column or attribute key can be
# filtered through the URL too (see ``where``).
DIMENSIONS: dict[str, str] = {
    "environment": "environment",
    "service": "service",
    "provider": "provider",
    "model": "model",
    "feature": "feature",
    "customer": "customer_id",
    "prompt_version": "prompt_version",
}
# Columns of the requests table that may be filtered on besides DIMENSIONS.
EXTRA_COLUMNS = {"app_version", "prompt_name", "status", "error_type", "finish_reason",
                 "guardrail", "guardrail_action", "operation", "response_model", "user_id",
                 "session_id", "request_id", "trace_id"}
ATTR_PREFIX = "attr."
_ATTR_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
# Which filter columns exist in which table (evals are filtered on model only; time on ts).
TABLE_COLUMNS = {"evals": {"model"}, "events": {"service"}}
# Tables whose null in a filtered column means "all of them": an incident logged without a
# service is every service's, and a filter on one service must not hide it.
NULL_MEANS_ALL = {"events"}
# The URL keys of the time window and zone (the other filter keys are columns: column_for_key).
TIME_KEYS = frozenset({"range", "from", "to", "tz"})


# The times a URL's window may hold: a window reaching year 1 or 9999 overflowed in date
# arithmetic (the previous period, the date picker's day after) and broke every page.
URL_TIMES = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))


def _parse_dt(value: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        t = (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, AttributeError, OverflowError):  # (year 1 at +01:00 is before year 1)
        return None
    return t if URL_TIMES[0] <= t <= URL_TIMES[1] else None


@functools.lru_cache(maxsize=64)
def known_zone(tz: str) -> bool:
    """Can times be shown in ``tz``: Python's zoneinfo and Polars both know it. zoneinfo alone
    also takes ``localtime`` and ``Factory``, which Polars refuses: every page failed on them."""
    try:
        ZoneInfo(tz)
        pl.Series([datetime(2026, 1, 1, tzinfo=UTC)]).dt.convert_time_zone(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError, pl.exceptions.PolarsError):
        return False
    return True


def code_quoted(value: str, limit: int = 60) -> str:
    """A value from a URL, cut, to quote inside a markdown code span: without backticks (which
    end it) or line breaks and other control characters (a blank line ends it too, and what
    followed would be rendered: a link, an image); an empty value reads ``(empty)``."""
    value = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", " ", value.replace("`", "'"))
    if not value.strip():
        return "(empty)"
    return value if len(value) <= limit else value[:limit] + "…"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Filters:
    """A half-open UTC window ``[start, end)`` and, per column, the values to keep (OR within a
    column, AND across columns). ``tz`` is only how times are shown."""

    start: datetime
    end: datetime
    preset: str = DEFAULT_PRESET
    values: tuple[tuple[str, tuple[str, ...]], ...] = ()
    tz: str = "UTC"
    extra: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def last(cls, preset: str, now: datetime, **values: Sequence[str]) -> Filters:
        end = _ceil_minute(now)
        return cls(start=end - PRESETS[preset], end=end, preset=preset,
                   values=_norm_values(values))

    @classmethod
    def between(cls, start: datetime, end: datetime, **values: Sequence[str]) -> Filters:
        return cls(start=start, end=end, preset="custom", values=_norm_values(values))

    @classmethod
    def from_query(cls, query: Mapping[str, Sequence[str] | str], now: datetime) -> Filters:
        """Build from a URL query (values as lists, as ``st.query_params.to_dict`` + ``get_all``).

        Unknown or malformed values fall back to defaults rather than failing: a mangled URL still
        opens a page.
        """
        q = {k: ([v] if isinstance(v, str) else list(v)) for k, v in query.items()}
        first = {k: v[0] for k, v in q.items() if v}
        tz = first.get("tz", "UTC")
        if not known_zone(tz):
            tz = "UTC"
        start, end = _parse_dt(first.get("from", "")), _parse_dt(first.get("to", ""))
        # A URL with from/to and no range means that window (not the default preset).
        preset = first.get("range", "custom" if start and end else DEFAULT_PRESET)
        if preset == "custom" or (start and end and preset not in PRESETS):
            if start and end and start < end:
                base = cls(start=start, end=end, preset="custom")
            else:
                base = cls.last(DEFAULT_PRESET, now)
        else:
            base = cls.last(preset if preset in PRESETS else DEFAULT_PRESET, now)
        values = {}
        for key, vals in q.items():
            column = column_for_key(key)
            if column and vals:
                values[column] = [v for v in vals if v != ""]
        return replace(base, values=_norm_values(values), tz=tz)

    @staticmethod
    def query_problems(query: Mapping[str, Sequence[str] | str],
                       other_keys: frozenset[str] | None = None) -> list[str]:
        """What :meth:`from_query` passes over in ``query`` instead of failing, one sentence
        each (markdown, values quoted as code), so a page can say that a link was changed.
        With ``other_keys`` (the keys the pages read), a key that is neither a filter nor one
        of them is named: a mistyped filter (``modle=``) would silently filter nothing."""
        first = {k: (v if isinstance(v, str) else (list(v) or [""])[0])
                 for k, v in query.items()}
        out = []
        if other_keys is not None:
            unknown = [k for k in query if k not in TIME_KEYS and column_for_key(k) is None
                       and k not in other_keys]
            if unknown:
                names = ", ".join(f"`{code_quoted(k, 40)}`" for k in unknown[:5])
                out.append(f"{'keys' if len(unknown) > 1 else 'key'} {names}"
                           f"{' …' if len(unknown) > 5 else ''} "
                           f"{'are' if len(unknown) > 1 else 'is'} no filter Sightline knows: "
                           "nothing is filtered on "
                           f"{'them' if len(unknown) > 1 else 'it'}")
        preset = first.get("range")
        default = PRESET_LABELS[DEFAULT_PRESET].lower()
        start, end = _parse_dt(first.get("from", "")), _parse_dt(first.get("to", ""))
        window = bool(start and end and start < end)
        # as from_query decides: a valid from/to wins over an unknown range
        if preset is not None and preset not in PRESETS and preset != "custom" and not window:
            out.append(f"time range `{code_quoted(preset)}` is not one Sightline knows: showing "
                       f"the {default}")
        elif not window and (preset == "custom"
                             or preset is None and ("from" in first or "to" in first)):
            out.append(f"`from` `{code_quoted(first.get('from', '(none)'))}` and `to` "
                       f"`{code_quoted(first.get('to', '(none)'))}` make no window (two ISO times "
                       "from 1970 to 2200, "
                       f"the first before the second): showing the {default}")
        tz = first.get("tz")
        if tz is not None and not known_zone(tz):
            out.append(f"time zone `{code_quoted(tz)}` is not known: times are shown in UTC")
        return out

    # -- use -------------------------------------------------------------------------------------
    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def bucket_clock(self, seconds: int) -> BucketClock:
        """How this window's time buckets of ``seconds`` fall on the wall clock of ``tz``
        (:func:`lib.metrics.buckets.bucket_clock`): from local midnight for days, also before
        a change of the clocks inside the window."""
        return bucket_clock(seconds, ZoneInfo(self.tz), self.start, self.end)

    def previous(self) -> Filters:
        """The period of equal length just before this one, same dimension filters."""
        return replace(self, start=self.start - self.duration, end=self.start, preset="custom")

    def with_window(self, start: datetime, end: datetime) -> Filters:
        return replace(self, start=start, end=end, preset="custom")

    def with_value(self, column: str, values: Sequence[str]) -> Filters:
        d = dict(self.values)
        if values:
            d[column] = tuple(values)
        else:
            d.pop(column, None)
        return replace(self, values=_norm_values(d))

    def get(self, column: str) -> tuple[str, ...]:
        return dict(self.values).get(column, ())

    def where(self, table: str = "requests", time_column: str = "ts", prefix: str = "f"
              ) -> tuple[str, dict]:
        """SQL predicate and named parameters for this window and these values on ``table``.

        Values are always bound as parameters; attribute keys are validated, so nothing from a URL
        is spliced into SQL unchecked.
        """
        clauses = [f"{time_column} >= ${prefix}_start", f"{time_column} < ${prefix}_end"]
        params: dict = {f"{prefix}_start": self.start, f"{prefix}_end": self.end}
        allowed = TABLE_COLUMNS.get(table)
        for i, (column, vals) in enumerate(self.values):
            if allowed is not None and column not in allowed:
                continue
            expr = column_sql(column)
            if expr is None:
                continue
            names = []
            for j, v in enumerate(vals):
                name = f"{prefix}_{i}_{j}"
                params[name] = v
                names.append(f"${name}")
            matches = f"{expr} IN ({', '.join(names)})"
            clauses.append(f"({matches} OR {expr} IS NULL)" if table in NULL_MEANS_ALL
                           else matches)
        return " AND ".join(clauses), params

    def pinned(self) -> Filters:
        """These filters at this exact window (``custom``): a link to them shows the same
        requests next week, where "Last 7 days" would move on."""
        return replace(self, preset="custom")

    def to_query(self) -> dict[str, list[str]]:
        """The URL query that reproduces these filters (inverse of :meth:`from_query`)."""
        q: dict[str, list[str]] = {"range": [self.preset]}
        if self.preset == "custom":
            q["from"], q["to"] = [_iso(self.start)], [_iso(self.end)]
        if self.tz != "UTC":
            q["tz"] = [self.tz]
        for column, vals in self.values:
            q[key_for_column(column)] = list(vals)
        return q

    def describe(self) -> str:
        """One line for people: the window in the display zone and the active filters."""
        zone = ZoneInfo(self.tz)
        fmt = "%Y-%m-%d %H:%M"
        text = (f"{self.start.astimezone(zone).strftime(fmt)} → "
                f"{self.end.astimezone(zone).strftime(fmt)} {self.tz}")
        for column, vals in self.values:
            # a value's line breaks as escapes: "svc\n\n# x" split a page's caption in two
            # paragraphs, and one indented after a blank line read as a code block
            shown = ", ".join(terminal_text(v) for v in vals)
            text += f" · {key_for_column(column)} = {shown}"
        return text


def column_for_key(key: str) -> str | None:
    """The column a URL key filters on, or None if the key is not a filter."""
    if key in DIMENSIONS:
        return DIMENSIONS[key]
    if key in EXTRA_COLUMNS:
        return key
    if key.startswith(ATTR_PREFIX) and _ATTR_KEY.match(key[len(ATTR_PREFIX):]):
        return key
    return None


def key_for_column(column: str) -> str:
    for key, col in DIMENSIONS.items():
        if col == column:
            return key
    return column


def column_sql(column: str) -> str | None:
    """SQL expression for a filterable column (attribute keys read from the JSON text)."""
    if column in DIMENSIONS.values() or column in EXTRA_COLUMNS:
        return column
    if column.startswith(ATTR_PREFIX):
        key = column[len(ATTR_PREFIX):]
        if _ATTR_KEY.match(key):
            return f"json_extract_string(attributes, '$.\"{key}\"')"
    return None


def _norm_values(values: Mapping[str, Sequence[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(sorted((c, tuple(sorted(set(v)))) for c, v in values.items() if v))


def _ceil_minute(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    floor = t.replace(second=0, microsecond=0)
    return floor if floor == t else floor + timedelta(minutes=1)
