"""Drill-down: a chart selection → the time window to investigate. Pure (no Streamlit), tested.

Plotly reports a box selection on a date axis as the x range in the axis' own (display) time zone,
as naive strings like ``"2026-11-19 18:12:33.123"`` or epoch milliseconds, and point selections as
the points' x values (bucket starts). Times on our charts are shown in the filters' ``tz``
(lib.charts.to_zone), so they are read back in that zone and returned as UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

MIN_WINDOW = timedelta(minutes=1)


def parse_x(value, tz: str) -> datetime | None:
    """A Plotly x value (ISO-like string in ``tz`` or epoch ms) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        # Plotly's milliseconds count the naive wall-clock time the chart draws (in ``tz``), as
        # if it were UTC: read as that wall-clock time, like a string.
        t = datetime.fromtimestamp(float(value) / 1000, UTC).replace(tzinfo=None)
    else:
        text = str(value).strip().replace("T", " ")
        try:
            t = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if t.tzinfo is None:
        from lib.charts import zone_of  # (a chart's zone may be a fixed offset)

        t = t.replace(tzinfo=zone_of(tz))
    return t.astimezone(UTC)


def selection_window(selection: Mapping | None, tz: str, bucket_seconds: int | None = None,
                     clamp: tuple[datetime, datetime] | None = None
                     ) -> tuple[datetime, datetime] | None:
    """The UTC window ``[start, end)`` a chart selection covers, or None for no selection.

    A box covers its x range, widened to whole minutes; selected points (bucket starts) cover
    from the first point's bucket to the end of the last point's bucket (``bucket_seconds``;
    a day holding a change of the clocks ends at the next midnight, 23 or 25 hours on).
    With ``clamp`` = (start, end) the result is cut to it. A window shorter than a minute is
    widened to one minute.
    """
    if not selection:
        return None
    sel = selection.get("selection", selection)
    start = end = None
    for box in sel.get("box") or []:
        xs = [parse_x(x, tz) for x in (box.get("x") or [])]
        xs = [x for x in xs if x is not None]
        if len(xs) >= 2:
            lo, hi = min(xs), max(xs)
            start = lo if start is None else min(start, lo)
            end = hi if end is None else max(end, hi)
    if start is None:
        xs = [parse_x(p.get("x"), tz) for p in sel.get("points") or []]
        xs = [x for x in xs if x is not None]
        if xs:
            start = min(xs)
            from lib.charts import zone_of
            from lib.metrics.buckets import bucket_end

            end = bucket_end(max(xs), bucket_seconds, zone_of(tz)) if bucket_seconds \
                else max(xs) + timedelta(minutes=1)
    if start is None or end is None:
        return None
    start = start.replace(second=0, microsecond=0)
    if end != end.replace(second=0, microsecond=0):
        end = end.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if end - start < MIN_WINDOW:
        end = start + MIN_WINDOW
    if clamp:
        start, end = max(start, clamp[0]), min(end, clamp[1])
        if start >= end:
            return None
    return start, end


def window_param(start: datetime, end: datetime) -> str:
    """``FROM..TO`` in UTC ISO form, for the ``window`` / ``baseline`` URL keys."""
    f = "%Y-%m-%dT%H:%M:%SZ"
    return f"{start.astimezone(UTC).strftime(f)}..{end.astimezone(UTC).strftime(f)}"


def parse_window_param(value: str | None) -> tuple[datetime, datetime] | None:
    """Inverse of :func:`window_param`; None for a missing or malformed value, or one outside
    the years a URL's times may have (:data:`lib.filters.URL_TIMES`)."""
    if not value or ".." not in value:
        return None
    a, b = value.split("..", 1)
    try:
        start = datetime.fromisoformat(a.replace("Z", "+00:00"))
        end = datetime.fromisoformat(b.replace("Z", "+00:00"))
    except ValueError:
        return None
    try:
        start = (start if start.tzinfo else start.replace(tzinfo=UTC)).astimezone(UTC)
        end = (end if end.tzinfo else end.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:  # (year 1 at +01:00 is before year 1)
        return None
    from lib.filters import URL_TIMES

    # within the years the sidebar's from/to take: a link's window from year 1 to 9999 failed
    # the page on its baseline, the period of equal length before it
    inside = URL_TIMES[0] <= start < end <= URL_TIMES[1]
    return (start, end) if inside else None


def local_window(start: datetime | None, end: datetime | None, tz: str
                 ) -> tuple[datetime, datetime] | None:
    """The UTC window of two wall-clock times read in zone ``tz`` (as date-time pickers give
    them, without a zone); None when one is missing or ``start`` is not before ``end``."""
    if start is None or end is None:
        return None
    zone = ZoneInfo(tz)

    def utc(t: datetime) -> datetime:
        return (t.replace(tzinfo=zone) if t.tzinfo is None else t).astimezone(UTC)

    start, end = utc(start), utc(end)
    return (start, end) if start < end else None


def wall_clock(t: datetime, tz: str) -> datetime:
    """``t`` as a wall-clock time in zone ``tz``, without a zone (what a date-time picker shows)."""
    return t.astimezone(ZoneInfo(tz)).replace(tzinfo=None)


def earlier_on_the_clock(start: datetime, end: datetime, back: timedelta, tz: str
                         ) -> tuple[datetime, datetime]:
    """The window ``[start, end)`` moved ``back`` (a day, a week) on the wall clock of zone
    ``tz``: the same hours of an earlier day, as UTC. A week before Monday 09:00 in Berlin is
    the Monday before at 09:00 whether or not the clocks changed in between; moved back by 168
    hours it was 10:00 there, the morning's traffic an hour off (found in review)."""
    zone = ZoneInfo(tz)

    def moved(t: datetime, fold: int) -> datetime:
        # (the wall clock ``back`` earlier; ``fold`` picks the first or second of a wall time
        # the clocks went back over, which happens twice)
        wall = t.astimezone(zone).replace(tzinfo=None) - back
        return wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)

    # Of the readings of the two wall times (two only in the hour the clocks go back), the one
    # as long as the window: 02:00-03:00 the day after the change is 02:00-03:00 on the day of
    # it, an hour, not from the first 02:00 to 03:00, two (review).
    length = end - start
    readings = sorted({(moved(start, a), moved(end, b)) for a in (0, 1) for b in (0, 1)},
                      key=lambda w: (abs((w[1] - w[0]) - length), w[0]))
    earlier = readings[0]
    # an hour the clocks skipped has no length: a window inside it keeps its own, moved back
    return earlier if earlier[0] < earlier[1] else (start - back, end - back)
