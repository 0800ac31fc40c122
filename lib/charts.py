"""Plotly figures shared by pages and reports (no Streamlit here).

Every time chart states its time zone on the x axis, has a unit on the y axis, and draws events
(deploys, prompt changes, incidents) as dashed lines with their title on hover.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
import polars as pl

from lib.formatting import cut, terminal_text
from lib.metrics.buckets import bucket_clock, bucket_ends, bucket_start
from lib.metrics.dims import OTHER_LABEL

# An incident is darker than the series' red (#e0533d), which it stood beside on error charts.
EVENT_COLORS = {"deploy": "#6c5ce7", "prompt_change": "#e17055", "model_change": "#00b894",
                "incident": "#7f1d1d", "note": "#636e72"}
# Ten distinct colours: the Cost page stacks its top 8 values and "other", which must not share
# a colour with any (two series in one colour made the legend ambiguous). "other" is grey.
SERIES_COLORS = ["#2d6cdf", "#e0533d", "#16a34a", "#a855f7", "#f59e0b", "#0891b2", "#db2777",
                 "#65a30d", "#92400e", "#1e3a8a"]
OTHER_COLOR = "#94a3b8"


# A bar of a bucket the window covers only in part (the first, the last) is paler: a count or a
# sum of 7 minutes of an hour's bucket would otherwise read as a drop.
PARTIAL_OPACITY = 0.45


# After a hovered value whose bucket has too few requests for it (a hollow point): of rates and
# shares too ("for this percentile" misnamed an error rate of 2 requests).
FEW_ROWS_HOVER = " (too few requests in this bucket to rely on)"
# How a hovered value reads when the chart gives no format of its own (d3-format).
HOVER_FORMAT = ",.4~r"
# How a hovered amount on a dollar axis reads: the same four significant digits. The axis's own
# format has the decimals its largest tick needs, so on a $1.00 axis a model's $0.0003 hour
# hovered as "$0.00", as if it had cost nothing (found in review: 300 of the demo's 1,131
# non-zero bars on the Cost page).
USD_HOVER_FORMAT = "$" + HOVER_FORMAT
# How a hovered share on a percent axis reads: to a hundredth of a point. The ticks' ".0%"
# hovered 99.6% of requests within the objective as "100%" (four in a thousand too slow shown
# as none), and the error rate's ".1%" 1 error in 3,000 as "0.0%".
PCT_HOVER_FORMAT = ".2~%"


def hover_format(axis_format: str) -> str | None:
    """The hover format of an axis whose ticks use ``axis_format`` (None: the ticks' own)."""
    if axis_format.startswith("$"):
        return USD_HOVER_FORMAT
    return PCT_HOVER_FORMAT if axis_format.endswith("%") else None


def plot_text(value) -> str:
    """Text from logs as Plotly shows it (a legend entry, a tick, a hover): its tags made inert
    as entities, its bidi and control characters written as escapes. Quotes stay quotes: Plotly
    reads &lt; &gt; &amp; and numeric entities but not &quot;, which html.escape's default wrote
    for each '"' (a model 'x "fast"' read 'x &quot;fast&quot;'), and without a tag there is no
    attribute for a quote to end."""
    return html.escape(terminal_text(value), quote=False)


# A legend entry longer than this is cut: a 500-character model name pushed the legend over the
# plot and hid the other entries (the tables and downloads hold it whole).
LEGEND_CHARS = 40


def plot_text_cut(value, chars: int) -> str:
    """:func:`plot_text` of a value from logs cut to ``chars`` characters with "…" (cut before
    escaping: an entity is never split)."""
    return html.escape(cut(terminal_text(value), chars), quote=False)


def legend_label(value) -> str:
    """A value from logs as a legend entry: :func:`plot_text_cut` to :data:`LEGEND_CHARS`."""
    return plot_text_cut(value, LEGEND_CHARS)


# A time chart's hover names each series whole (Plotly's default cuts a name to 15 characters).
HOVER_NAMES_WHOLE = dict(namelength=-1)


# A legend above a time chart takes at most this share of its height, scrolled beyond: on a
# phone the entries wrap one a line and took half of it (Plotly's default), leaving the bars a
# strip (found in review).
LEGEND_MAX_HEIGHT = 0.25


def bucket_coverage(starts: list, window: tuple[datetime, datetime], bucket_s: int,
                    tz: str = "UTC", ends: list | None = None) -> list[float]:
    """The share (0-1) of each bucket, from its start to its end on ``tz``'s clock (``ends``,
    when already known), inside ``window`` (a whole 23-hour day is whole)."""
    lo, hi = window
    ends = ends if ends is not None else bucket_ends(starts, bucket_s, zone_of(tz))
    return [max(timedelta(0), min(e, hi) - max(b, lo)) / (e - b)
            for b, e in zip(starts, ends, strict=True)]


def note_partial_buckets(fig: go.Figure, bucket_s: int) -> None:
    """A legend entry saying what a paler bar is (an empty trace: nothing to hover)."""
    from lib.metrics.buckets import bucket_label

    # (a legend's swatch ignores marker opacity: the colour itself is pale; grey, not one more
    # series' colour)
    fig.add_bar(x=[None], y=[None], name=f"paler: not a whole {bucket_label(bucket_s)}",
                marker=dict(color=f"rgba(100, 116, 139, {PARTIAL_OPACITY})"),
                legendrank=PARTIAL_LEGEND_RANK, hoverinfo="skip")


def chart_zone(tz: str, start: datetime, end: datetime, bucket_s: int | None = None) -> str:
    """The zone a time chart of ``[start, end)`` in buckets of ``bucket_s`` seconds is drawn in:
    ``tz``, unless its clocks go back inside the window (the end of daylight saving) by at least
    a bucket. Plotly draws naive wall-clock times, and an hour that happens twice would put two
    buckets at one x (stacked into one bar, or the second one opened by a click on the first):
    then the fixed UTC offset ``tz`` has at ``end`` ("UTC-05:00", see :func:`zone_of`), which
    the page's charts and drill-downs then use alike. Coarser buckets cannot meet (they stay
    in ``tz``, as the page's tables are)."""
    if bucket_s is not None and bucket_s > MAX_CLOCK_CHANGE_S:
        return tz  # (no clock goes back so far: nothing to look for, in a window of any length)
    zone = ZoneInfo(tz)
    last = end - timedelta(microseconds=1)
    offsets = [start.astimezone(zone).utcoffset()]
    t = start
    # Clocks change months apart: sampling every 6 hours sees every change in between.
    while t < last:
        t = min(t + timedelta(hours=6), last)
        offsets.append(t.astimezone(zone).utcoffset())
    back = max((a - b).total_seconds() for a, b in zip(offsets, offsets[1:], strict=False)) \
        if len(offsets) > 1 else 0
    if back <= 0 or (bucket_s is not None and bucket_s > back):
        return tz
    minutes = int(offsets[-1].total_seconds() // 60)
    return f"{FIXED_PREFIX}{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:" \
           f"{abs(minutes) % 60:02d}"


# The largest change of a clock in the time zone database (Antarctica/Troll: 2 hours).
MAX_CLOCK_CHANGE_S = 2 * 3600

# A chart zone at a fixed offset from UTC: "UTC+05:30", "UTC-03:30" (no IANA name has them all,
# nor does Polars read an offset as a zone).
FIXED_PREFIX = "UTC"
_FIXED = re.compile(r"^UTC([+-])(\d\d):(\d\d)$")


def fixed_offset(tz: str) -> timedelta | None:
    """The offset of a fixed chart zone (:func:`chart_zone`), None for a named zone."""
    m = _FIXED.match(tz)
    if not m:
        return None
    offset = timedelta(hours=int(m[2]), minutes=int(m[3]))
    return -offset if m[1] == "-" else offset


def zone_of(tz: str) -> tzinfo:
    """The tzinfo of a zone name or of a fixed chart zone ("UTC-05:00")."""
    offset = fixed_offset(tz)
    return ZoneInfo(tz) if offset is None else timezone(offset)


def zone_label(tz: str) -> str:
    """How a chart names its zone: a fixed one with a true minus sign ('UTC−05:00')."""
    return tz.replace("-", "−") if fixed_offset(tz) is not None else tz


def to_zone(frame: pl.DataFrame, column: str, tz: str) -> pl.DataFrame:
    """Convert a UTC timestamp column to the display zone (naive local times for Plotly)."""
    if frame.is_empty() or column not in frame.columns:
        return frame
    offset = fixed_offset(tz)
    if offset is not None:
        return frame.with_columns(
            pl.col(column).dt.convert_time_zone("UTC").dt.replace_time_zone(None) + offset)
    return frame.with_columns(
        pl.col(column).dt.convert_time_zone(tz).dt.replace_time_zone(None))


def time_figure(frame: pl.DataFrame, x: str, series: list[tuple[str, str]], *, y_title: str,
                tz: str, events: pl.DataFrame | None = None, kind: str = "line",
                uncertain: dict[str, str] | None = None, height: int = 280,
                y_format: str | None = None, window: tuple[datetime, datetime] | None = None,
                bucket_s: int | None = None) -> go.Figure:
    """A time chart of ``series`` [(column, label)] against ``x`` (UTC), shown in ``tz``.

    ``kind`` is line, bar or area (stacked). ``uncertain`` maps a series column to a boolean
    column marking buckets with too few rows for that percentile; those points are drawn hollow.
    ``window`` (UTC start, end) fixes the x axis to it, so charts of one window line up side by
    side whatever their kind; ``bucket_s`` draws each bar over its bucket (x is its start)
    instead of centred on the start.
    """
    bars = kind == "bar" and bucket_s and x in frame.columns
    starts = frame[x].to_list() if bars else []
    # (each bar's end, once: a day holding a change of the clocks is 23 or 25 hours)
    ends = bucket_ends(starts, bucket_s, zone_of(tz)) if bars else []
    cover = bucket_coverage(starts, window, bucket_s, tz, ends) if bars and window else None
    if cover is not None and all(c >= 1 for c in cover):
        cover = None
    frame = to_zone(frame, x, tz)
    fig = go.Figure()
    # A bar spans its bucket, [start, start + width) in ms on a date axis: centred on the start it
    # would begin half a bucket before the window and stand beside the lines' points.
    span = {}
    if bucket_s and kind == "bar":
        widths = [(e - b).total_seconds() * 1000 for b, e in zip(starts, ends, strict=True)]
        span = dict(offset=0, width=widths if len(set(widths)) > 1 else bucket_s * 1000)
    for i, (col, label) in enumerate(series):
        color = OTHER_COLOR if col == OTHER_LABEL else SERIES_COLORS[i % len(SERIES_COLORS)]
        xs, ys = frame[x].to_list(), frame[col].to_list()
        if kind == "bar":
            fig.add_bar(x=xs, y=ys, name=label, **span, marker=dict(
                color=color, opacity=None if cover is None else
                [1.0 if c >= 1 else PARTIAL_OPACITY for c in cover]))
        else:
            few = {}
            if uncertain and col in uncertain:
                # The line's own hover says which of its points are hollow. The hollow points
                # hovered apart: "x unified" took the nearest one, often a neighbour bucket's,
                # and read "p50: 3,648 | 2,119, too few…" for one time (found in review).
                few = dict(customdata=[FEW_ROWS_HOVER if flag else ""
                                       for flag in frame[uncertain[col]].to_list()],
                           hovertemplate="%{fullData.name}: %{y}%{customdata}<extra></extra>")
            fig.add_scatter(x=xs, y=ys, name=label, mode="lines", line=dict(color=color, width=2),
                            stackgroup="one" if kind == "area" else None, connectgaps=False,
                            **few)
        if uncertain and col in uncertain:
            flag = frame[uncertain[col]]
            pts = frame.filter(flag & pl.col(col).is_not_null())
            if pts.height:
                fig.add_scatter(x=pts[x].to_list(), y=pts[col].to_list(), mode="markers",
                                name=f"{label} (few rows)", marker=dict(
                                    symbol="circle-open", size=7, color=color),
                                hoverinfo="skip")
    if kind == "bar":
        fig.update_layout(barmode="stack")
        if cover is not None:
            note_partial_buckets(fig, bucket_s)
    add_events(fig, events, tz)
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10),
        # Series first, then the events (legendrank); "normal": Plotly reverses a stacked chart's
        # legend by default, which put the events first there.
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, traceorder="normal",
                    maxheight=LEGEND_MAX_HEIGHT),
        hovermode="x unified", dragmode="select", selectdirection="h",
        # names whole in the hover (legend_label has cut them to 40 characters): Plotly cut
        # them to 15 inside their entities, and "<script>" read "&lt;script&gt;…" as
        # "<script&g..."
        hoverlabel=HOVER_NAMES_WHOLE,
        xaxis_title=f"Time ({zone_label(tz)})", yaxis_title=y_title,
    )
    if y_format:
        fig.update_yaxes(tickformat=y_format, hoverformat=hover_format(y_format))
    else:
        # Plotly's own hover format read a p95 of 12,129.31 ms as "12.12931k" next to a p50
        # of "9,311.55": four significant digits, with thousands separators
        fig.update_yaxes(hoverformat=HOVER_FORMAT)
    fig.update_yaxes(rangemode="tozero")
    if window:
        fig.update_xaxes(range=axis_range(window, tz, bucket_s))
    return fig


def axis_range(window: tuple[datetime, datetime], tz: str, bucket_s: int | None = None
               ) -> list[datetime]:
    """The x range of a chart of ``window`` in ``tz``: from the start of the bucket holding the
    window's start (buckets of ``bucket_s`` seconds on ``tz``'s wall clock, as
    lib.metrics.buckets makes them), so the first bucket's point, drawn at its start, is on
    the chart; to the window's end."""
    start = window[0]
    if bucket_s:
        start = bucket_start(start, bucket_clock(bucket_s, zone_of(tz), *window))
    return [local_time(start, tz), local_time(window[1], tz)]


def local_time(t: datetime, tz: str) -> datetime:
    """A UTC datetime as the naive local time in ``tz`` that Plotly draws (as ``to_zone``)."""
    return t.astimezone(zone_of(tz)).replace(tzinfo=None)


# Plotly's default rank is 1000: in a legend, the series, what a paler bar is, then the events.
PARTIAL_LEGEND_RANK = 1500
EVENT_LEGEND_RANK = 2000


def add_events(fig: go.Figure, events: pl.DataFrame | None, tz: str) -> None:
    """Dashed vertical lines at each event, with a hover marker carrying its title."""
    if events is None or events.is_empty():
        return
    # A fixed order: Streamlit treats a figure whose spec changed between runs as a new chart and
    # drops its selection, which would break drill-down.
    events = to_zone(events, "ts", tz).sort("kind", "ts")
    lines = []
    for kind, group in events.group_by("kind", maintain_order=True):
        kind = kind[0] if isinstance(kind, tuple) else kind
        color = EVENT_COLORS.get(kind, "#636e72")
        # the lines fig.add_vline draws, set at once: add_vline checks every shape already
        # there each time (20 events took 0.22 s, a third of the Overview's run)
        lines += [dict(type="line", xref="x", yref="y domain", x0=t, x1=t, y0=0, y1=1,
                       line=dict(color=color, width=1, dash="dot"))
                  for t in group["ts"].to_list()]
        fig.add_scatter(
            x=group["ts"].to_list(), y=[1.0] * group.height, yaxis="y2", mode="markers",
            marker=dict(symbol="triangle-down", size=10, color=color),
            # In the legend: a colour that only hovering explains means nothing. Kinds and
            # titles come from logs: escaped, Plotly renders some HTML.
            name=legend_label(str(kind).replace("_", " ")),
            text=[plot_text(f"{k}: {t}") for k, t in zip(group["kind"], group["title"])],
            hovertemplate="%{text}<extra></extra>", showlegend=True,
            legendrank=EVENT_LEGEND_RANK,
        )
    fig.update_layout(shapes=[*fig.layout.shapes, *lines],
                      yaxis2=dict(overlaying="y", range=[0, 1.05], visible=False,
                                  fixedrange=True))
