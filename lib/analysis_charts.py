"""Plotly figures for the analysis pages (cost, latency, quality, explore, request), on top of
lib.charts: every time chart states its zone, has a unit on the y axis and draws the events.
Text from logs (dimension values, span names) is HTML-escaped: Plotly renders a subset of HTML
in legends and hovers. No Streamlit here."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import polars as pl

from lib.charts import (
    HOVER_NAMES_WHOLE,
    LEGEND_CHARS,  # noqa: F401 (the pages' and tests' name for it)
    LEGEND_MAX_HEIGHT,
    OTHER_COLOR,
    SERIES_COLORS,
    add_events,
    axis_range,
    hover_format,
    legend_label,
    local_time,
    plot_text,
    plot_text_cut,
    time_figure,
    to_zone,
    zone_label,
)
from lib.metrics.dims import OTHER_LABEL

# A waterfall's span label: its name cut to this many characters, indented up to this many
# levels (the hover gives the name to WATERFALL_HOVER_CHARS, and the depth).
WATERFALL_NAME_CHARS = 40
WATERFALL_MAX_INDENT = 8
WATERFALL_HOVER_CHARS = 300


def long_time_figure(frame: pl.DataFrame, x: str, group: str, value: str, *, y_title: str,
                     tz: str, events: pl.DataFrame | None = None, kind: str = "area",
                     y_format: str | None = None, height: int = 300,
                     **axis) -> go.Figure:
    """A time chart of a long frame (one series per value of ``group``), stacked for area/bar.
    ``axis``: time_figure's ``window`` and ``bucket_s``."""
    if frame.is_empty():
        wide = pl.DataFrame({x: []}, schema={x: frame.schema.get(x, pl.Datetime("us", "UTC"))})
        return time_figure(wide, x, [], y_title=y_title, tz=tz, events=events, kind=kind,
                           height=height, y_format=y_format, **axis)
    wide = frame.pivot(on=group, index=x, values=value, aggregate_function="sum").sort(x)
    series = [(c, legend_label(c)) for c in wide.columns if c != x]
    order = frame.group_by(group).agg(pl.col(value).sum()).sort(value, descending=True)[group]
    series.sort(key=lambda s: (s[0] == OTHER_LABEL, order.to_list().index(s[0])
                               if s[0] in order.to_list() else 0))
    # Stacked areas need a value at every x; a bar left out is a value unknown (a cost without
    # a price), which 0 would state as nothing spent.
    return time_figure(wide if kind == "bar" else wide.fill_null(0), x, series, y_title=y_title,
                       tz=tz, events=events, kind=kind, height=height, y_format=y_format, **axis)


def band_figure(frame: pl.DataFrame, x: str, series: list[tuple[str, str, str, str]], *,
                y_title: str, tz: str, events: pl.DataFrame | None = None,
                y_format: str | None = ".0%", height: int = 300,
                y_range: tuple[float, float] | None = (0, 1),
                window: tuple | None = None, bucket_s: int | None = None) -> go.Figure:
    """Lines with a shaded interval: ``series`` = [(value col, low col, high col, label)].
    ``window`` (UTC start, end) and ``bucket_s`` fix the x axis as time_figure's do."""
    frame = to_zone(frame, x, tz)
    fig = go.Figure()
    for i, (col, low, high, label) in enumerate(series):
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        f = frame.filter(pl.col(col).is_not_null())
        xs = f[x].to_list()
        fig.add_scatter(x=xs + xs[::-1], y=f[high].to_list() + f[low].to_list()[::-1],
                        fill="toself", fillcolor=_alpha(color, 0.15), line=dict(width=0),
                        hoverinfo="skip", showlegend=False, name=f"{label} 95% CI")
        fig.add_scatter(x=xs, y=f[col].to_list(), mode="lines+markers", name=plot_text(label),
                        line=dict(color=color, width=2), marker=dict(size=4),
                        customdata=list(zip(f[low].to_list(), f[high].to_list())),
                        hovertemplate="%{y:.1%} (95% CI %{customdata[0]:.1%}–"
                                      "%{customdata[1]:.1%})")
    add_events(fig, events, tz)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0,
                                  maxheight=LEGEND_MAX_HEIGHT),
                      hovermode="x unified", dragmode="select", selectdirection="h",
                      hoverlabel=HOVER_NAMES_WHOLE,
                      xaxis_title=f"Time ({zone_label(tz)})", yaxis_title=y_title)
    if y_format:
        fig.update_yaxes(tickformat=y_format)
    if y_range:
        fig.update_yaxes(range=list(y_range))
    if window:
        fig.update_xaxes(range=axis_range(window, tz, bucket_s))
    return fig


def _alpha(hex_color: str, a: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{a})"


def hbar(frame: pl.DataFrame, y: str, x: str, *, x_title: str, x_format: str | None = None,
         height: int | None = None, error: tuple[str, str] | None = None,
         color: str = SERIES_COLORS[0]) -> go.Figure:
    """Horizontal bars, largest on top; ``error`` = (low col, high col) draws an interval."""
    labels = [plot_text(v) for v in frame[y].to_list()]
    kw = {}
    if error:
        xs = frame[x].to_list()
        kw["error_x"] = dict(type="data", symmetric=False,
                             array=[(h - v) if h is not None and v is not None else 0
                                    for h, v in zip(frame[error[1]].to_list(), xs)],
                             arrayminus=[(v - lo) if lo is not None and v is not None else 0
                                         for lo, v in zip(frame[error[0]].to_list(), xs)])
    fig = go.Figure(go.Bar(x=frame[x].to_list(), y=labels, orientation="h",
                           marker_color=color, **kw))
    # Ticks cut as legend entries are: a 400-character version's tick left its bars a sliver
    # at the chart's edge (seen in Chromium); the bars keep the whole value, so two values alike
    # in their first characters stay two bars, and the hover shows it whole.
    fig.update_layout(height=height or max(160, 28 * frame.height + 70),
                      margin=dict(l=10, r=10, t=10, b=10), xaxis_title=x_title,
                      yaxis=dict(autorange="reversed", type="category", tickvals=labels,
                                 ticktext=[legend_label(v) for v in frame[y].to_list()]))
    if x_format:
        fig.update_xaxes(tickformat=x_format, hoverformat=hover_format(x_format))
    return fig


def shares_figure(frame: pl.DataFrame, *, x_title: str, height: int = 300) -> go.Figure:
    """Reference and current shares side by side per bucket (``bucket, reference_share,
    current_share``, fractions): a drift's distributions, drawn as PSI and the tests read them."""
    labels = [plot_text(v) for v in frame["bucket"].to_list()]
    fig = go.Figure([
        go.Bar(x=labels, y=frame["reference_share"].to_list(), name="reference",
               marker_color=OTHER_COLOR,
               hovertemplate="%{x}: %{y:.1%} (reference)<extra></extra>"),
        go.Bar(x=labels, y=frame["current_share"].to_list(), name="current",
               marker_color=SERIES_COLORS[0],
               hovertemplate="%{x}: %{y:.1%} (current)<extra></extra>")])
    # Ticks cut as legend entries are (a 300-character value left the bars a fifth of the
    # chart, found in review); the bars keep the whole value, so two values alike in their
    # first characters stay two bars, and the hover shows it whole.
    fig.update_layout(barmode="group", height=height, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=1.12), xaxis_title=x_title,
                      yaxis_title="share of the window's requests (%)",
                      xaxis=dict(type="category", tickvals=labels,
                                 ticktext=[legend_label(v) for v in frame["bucket"].to_list()]))
    fig.update_yaxes(tickformat=".0%")
    return fig


def log_histogram(frame: pl.DataFrame, *, objective_ms: float | None = None,
                  height: int = 280) -> go.Figure:
    """Latency distribution from lib.metrics.latency.distribution on a log x axis (ms)."""
    fig = go.Figure()
    if frame.height:
        fig.add_bar(x=[(a * b) ** 0.5 for a, b in zip(frame["bin_start_ms"], frame["bin_end_ms"])],
                    y=frame["requests"].to_list(),
                    width=[b - a for a, b in zip(frame["bin_start_ms"], frame["bin_end_ms"])],
                    marker_color=SERIES_COLORS[0], name="requests",
                    customdata=list(zip(frame["bin_start_ms"], frame["bin_end_ms"],
                                        frame["share"])),
                    # three significant digits: the first bins of a log axis are narrower
                    # than a millisecond, and whole ms hovered them as "1–1 ms" (review)
                    hovertemplate="%{customdata[0]:,.3~r}–%{customdata[1]:,.3~r} ms: %{y:,} "
                                  "requests (%{customdata[2]:.1%})<extra></extra>")
    if objective_ms:
        # (a vline's own annotation is placed at x on a log axis, read as log10: off the chart)
        fig.add_vline(x=objective_ms, line=dict(color="#d63031", dash="dash"))
        fig.add_annotation(x=math.log10(objective_ms), y=1, yref="paper", yanchor="bottom",
                           text=f"objective {objective_ms:,.0f} ms", showarrow=False,
                           font=dict(color="#d63031"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), bargap=0,
                      xaxis_title="latency (ms, log scale)", yaxis_title="requests")
    fig.update_xaxes(type="log")
    return fig


WATERFALL_KINDS = {"agent": ("agent", "#6c5ce7"), "llm": ("model call", "#2d6cdf"),
                   "tool": ("tool", "#16a34a"), "retrieval": ("retrieval", "#f59e0b"),
                   "chain": ("chain", "#0891b2")}
WATERFALL_OTHER_COLOR = "#64748b"
WATERFALL_FAILED = "#d63031"  # hatching over the kind's colour: a failed span keeps its kind
THIS_REQUEST = "▶ "


def waterfall(spans: pl.DataFrame, *, height: int | None = None,
              this_span: str | None = None, first: int = 1) -> go.Figure:
    """A trace as a waterfall: one bar per span from its start offset (ms), indented by depth,
    coloured by kind with one legend entry per (kind, failed or not); a failed span is hatched
    red over its kind's colour. The span ``this_span`` (the request shown) is labelled
    ``▶``. Spans are numbered from ``first`` (their place in the trace, when only part of it
    is drawn)."""
    ids = spans["span_id"].to_list() if "span_id" in spans.columns else [None] * spans.height
    # A label is cut, and its indent stops growing, past a few levels: a span named after a
    # 3,000-character prompt, or one 1,000 levels deep, made a label as wide as the chart and
    # left its bars a sliver. The hover gives the name longer and the depth.
    labels = [f"{THIS_REQUEST if sid is not None and sid == this_span else ''}{i}. "
              f"{'  ' * min(d, WATERFALL_MAX_INDENT)}{plot_text_cut(n, WATERFALL_NAME_CHARS)}"
              for i, (sid, d, n) in enumerate(zip(ids, spans["depth"], spans["name"]), first)]
    detached = (spans["detached"].to_list() if "detached" in spans.columns
                else [None] * spans.height)
    hover_names = [f"{i}. {plot_text_cut(n, WATERFALL_HOVER_CHARS)}"
                   + (f" (depth {d})" if d else "")
                   + (f"<br>drawn as a root: {plot_text(why)}" if why else "")
                   for i, (d, n, why) in enumerate(zip(spans["depth"], spans["name"], detached),
                                                   first)]
    # One trace per legend entry: a colour without a legend means nothing to the reader.
    groups: dict[tuple[str, str, bool], list[int]] = {}
    for i, (kind, status) in enumerate(zip(spans["kind"], spans["status"])):
        name, color = WATERFALL_KINDS.get(kind, (str(kind or "other"), WATERFALL_OTHER_COLOR))
        groups.setdefault((name, color, status == "error"), []).append(i)
    fig = go.Figure()
    starts, durations = spans["start_ms"].to_list(), spans["duration_ms"].to_list()
    kinds, statuses = spans["kind"].to_list(), spans["status"].to_list()
    for (name, color, failed), rows in groups.items():
        fig.add_bar(
            base=[starts[i] for i in rows], x=[durations[i] for i in rows],
            y=[labels[i] for i in rows], orientation="h",
            name=legend_label(f"{name}, failed" if failed else name), marker_color=color,
            marker_pattern=dict(shape="/", fgcolor=WATERFALL_FAILED, solidity=0.45,
                                fillmode="overlay")
            if failed else None,
            marker_line=dict(color=WATERFALL_FAILED, width=2) if failed else None,
            # (the duration from customdata: on a bar drawn from a base, Plotly's %{x} is its
            # end, so a span starting at 1,500 ms and lasting 100 read "lasts 1,600 ms")
            customdata=[(plot_text(kinds[i]), plot_text(statuses[i]), starts[i], durations[i],
                         hover_names[i]) for i in rows],
            hovertemplate="%{customdata[4]}<br>%{customdata[0]} · %{customdata[1]}<br>starts at "
                          "%{customdata[2]:,.0f} ms, lasts %{customdata[3]:,.0f} ms"
                          "<extra></extra>")
    fig.update_layout(height=height or max(160, 34 * spans.height + 110),
                      margin=dict(l=10, r=10, t=30, b=10), barmode="overlay", showlegend=True,
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
                      # (in "milliseconds", the title was cut at a phone's 390 px)
                      xaxis_title="ms since the trace started",
                      # the spans' order, whichever trace (colour) each is in
                      yaxis=dict(autorange="reversed", type="category",
                                 categoryorder="array", categoryarray=labels))
    return fig


def shade_windows(fig: go.Figure, window: tuple, baseline: tuple | None, tz: str) -> None:
    """Shade the window under study (and the baseline) on a time chart shown in ``tz``."""
    shades = [(baseline, "#94a3b8", 0.15, "baseline")] if baseline else []
    for (start, end), colour, opacity, label in [*shades, (window, "#f59e0b", 0.18, "window")]:
        fig.add_vrect(x0=local_time(start, tz), x1=local_time(end, tz), fillcolor=colour,
                      opacity=opacity, line_width=0, annotation_text=label,
                      annotation_position="top left")
