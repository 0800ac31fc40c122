"""Time charts of lib/charts.py: where their axes begin and end, and what a bar covers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from lib.analysis_charts import band_figure, long_time_figure
from lib.charts import local_time, time_figure

START = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)
END = START + timedelta(hours=6)
HOUR = 3600


def hourly(n: int = 6) -> pl.DataFrame:
    """Buckets of one hour from the hour before START (the window starts mid-bucket)."""
    first = START.replace(minute=0)
    return pl.DataFrame({"bucket": [first + timedelta(hours=i) for i in range(n)],
                         "requests": [10 * (i + 1) for i in range(n)],
                         "p95_ms": [100.0 + i for i in range(n)]})


def test_a_bar_chart_and_a_line_chart_of_one_window_share_their_x_axis():
    # Before, Plotly fitted each axis to its own data: bars (padded by half a bucket) and lines
    # ended at different times when shown side by side on the Overview.
    axis = dict(window=(START, END), bucket_s=HOUR)
    bars = time_figure(hourly(), "bucket", [("requests", "n")], y_title="requests per 1 h",
                       tz="UTC", kind="bar", **axis)
    lines = time_figure(hourly(), "bucket", [("p95_ms", "p95")], y_title="ms", tz="UTC", **axis)
    # from the start of the window's first bucket (22:00), where its point is drawn
    naive = [datetime(2026, 11, 20, 22, 0), END.replace(tzinfo=None)]
    assert list(bars.layout.xaxis.range) == naive
    assert list(lines.layout.xaxis.range) == naive
    first_point = lines.data[0].x[0]
    assert naive[0] <= first_point < START.replace(tzinfo=None)


def test_the_axis_is_the_window_in_the_zone_shown():
    # Paris is UTC+1 in November: 22:30 UTC reads 23:30
    fig = time_figure(hourly(), "bucket", [("p95_ms", "p95")], y_title="ms",
                      tz="Europe/Paris", window=(START, END))
    assert list(fig.layout.xaxis.range) == [datetime(2026, 11, 20, 23, 30),
                                            datetime(2026, 11, 21, 5, 30)]
    assert fig.layout.xaxis.title.text == "Time (Europe/Paris)"


def test_a_bar_spans_its_bucket_from_its_start():
    fig = time_figure(hourly(), "bucket", [("requests", "n")], y_title="n", tz="UTC",
                      kind="bar", bucket_s=HOUR)
    (bar,) = fig.data
    # offset 0 and a width of one bucket in ms: [start, start + 1 h), not centred on the start
    assert bar.offset == 0 and bar.width == HOUR * 1000
    assert bar.x[0] == START.replace(minute=0, tzinfo=None)


def test_without_a_window_the_axis_fits_the_data_as_before():
    fig = time_figure(hourly(), "bucket", [("requests", "n")], y_title="n", tz="UTC", kind="bar")
    assert fig.layout.xaxis.range is None
    assert fig.data[0].offset is None and fig.data[0].width is None


def test_stacked_and_banded_charts_take_the_same_window():
    long = pl.DataFrame({"bucket": [START, START, START + timedelta(hours=1)],
                         "model": ["a", "b", "a"], "cost_usd": [1.0, 2.0, 3.0]})
    stacked = long_time_figure(long, "bucket", "model", "cost_usd", y_title="USD", tz="UTC",
                               kind="bar", window=(START, END), bucket_s=HOUR)
    assert list(stacked.layout.xaxis.range) == [datetime(2026, 11, 20, 22, 0),
                                                END.replace(tzinfo=None)]
    assert {t.width for t in stacked.data} == {HOUR * 1000}
    empty = long_time_figure(long.clear(), "bucket", "model", "cost_usd", y_title="USD",
                             tz="UTC", window=(START, END))
    assert list(empty.layout.xaxis.range) == [START.replace(tzinfo=None),
                                              END.replace(tzinfo=None)]
    band = pl.DataFrame({"bucket": [START], "rate": [0.5], "lo": [0.4], "hi": [0.6]})
    # a band whose only point is the first bucket's (22:00) must be on the chart
    band = band.with_columns(pl.lit(START.replace(minute=0)).alias("bucket"))
    fig = band_figure(band, "bucket", [("rate", "lo", "hi", "pass rate")], y_title="%",
                      tz="UTC", window=(START, END), bucket_s=HOUR)
    lo, hi = fig.layout.xaxis.range
    assert (lo, hi) == (datetime(2026, 11, 20, 22, 0), END.replace(tzinfo=None))
    assert all(lo <= x <= hi for t in fig.data for x in t.x)


def test_the_axis_starts_at_the_first_bucket_in_a_zone_off_the_hour():
    # Kolkata is UTC+5:30: 22:30 UTC is 04:00 local on Nov 21, whose local day bucket starts at
    # local midnight; its local hour bucket at 04:00 (not 03:30, as a UTC hour would)
    fig = time_figure(hourly(), "bucket", [("p95_ms", "p95")], y_title="ms",
                      tz="Asia/Kolkata", window=(START, END), bucket_s=86400)
    assert list(fig.layout.xaxis.range) == [datetime(2026, 11, 21, 0, 0),
                                            datetime(2026, 11, 21, 10, 0)]
    fig = time_figure(hourly(), "bucket", [("p95_ms", "p95")], y_title="ms",
                      tz="Asia/Kolkata", window=(START, END), bucket_s=HOUR)
    assert fig.layout.xaxis.range[0] == datetime(2026, 11, 21, 4, 0)


def test_nine_stacked_series_have_nine_colours_and_other_is_grey():
    # the Cost page's spend over time: its top 8 values and "other"
    groups = [f"feature-{i}" for i in range(8)] + ["(other)"]
    long = pl.DataFrame({"bucket": [START] * 9, "feature": groups,
                         "cost_usd": [9.0 - i for i in range(9)]})
    fig = long_time_figure(long, "bucket", "feature", "cost_usd", y_title="USD", tz="UTC",
                           kind="area")
    colours = {t.name: t.line.color for t in fig.data}
    assert len(set(colours.values())) == 9
    assert colours["(other)"] == "#94a3b8"


def test_event_kinds_are_in_the_legend_escaped():
    events = pl.DataFrame({"ts": [START + timedelta(hours=1), START + timedelta(hours=2)],
                           "kind": ["prompt_change", "<b>custom</b>"],
                           "title": ["v2 <i>prompt</i>", "x"]})
    fig = time_figure(hourly(), "bucket", [("requests", "n")], y_title="n", tz="UTC",
                      events=events)
    markers = [t for t in fig.data if t.yaxis == "y2"]
    assert {t.name for t in markers} == {"prompt change", "&lt;b&gt;custom&lt;/b&gt;"}
    assert all(t.showlegend for t in markers)
    assert "prompt_change: v2 &lt;i&gt;prompt&lt;/i&gt;" in [x for t in markers for x in t.text]


def test_events_come_after_the_series_in_a_stacked_legend():
    # Plotly reverses a stacked chart's legend unless told otherwise, which listed the events
    # before the series; the order is now explicit and the events ranked after every series.
    events = pl.DataFrame({"ts": [START + timedelta(hours=1)], "kind": ["deploy"],
                           "title": ["v2"]})
    long = pl.DataFrame({"bucket": [START, START], "model": ["a", "b"], "requests": [1, 2]})
    for fig in (time_figure(hourly(), "bucket", [("requests", "n"), ("p95_ms", "p")],
                            y_title="n", tz="UTC", kind="bar", events=events),
                long_time_figure(long, "bucket", "model", "requests", y_title="n", tz="UTC",
                                 kind="area", events=events)):
        assert fig.layout.legend.traceorder == "normal"
        ranks = [(t.legendrank if t.legendrank is not None else 1000, t.yaxis == "y2")
                 for t in fig.data]
        series = [r for r, is_event in ranks if not is_event]
        assert series and max(series) < min(r for r, is_event in ranks if is_event)


# -- daylight saving -------------------------------------------------------------------------------
NY = "America/New_York"
FALL_BACK = datetime(2026, 11, 1, 6, tzinfo=UTC)  # 02:00 EDT → 01:00 EST


def test_a_window_over_the_clocks_going_back_is_drawn_at_a_fixed_offset():
    from lib.charts import chart_zone, zone_label

    week = (FALL_BACK - timedelta(days=3), FALL_BACK + timedelta(days=4))
    assert chart_zone(NY, *week) == "UTC-05:00" and zone_label("UTC-05:00") == "UTC−05:00"
    assert chart_zone(NY, *week, bucket_s=HOUR) == "UTC-05:00"
    # buckets wider than the hour the clocks go back cannot meet: drawn in the zone, as the
    # page's tables are (a month in 6-hour buckets)
    assert chart_zone(NY, *week, bucket_s=6 * HOUR) == NY
    assert chart_zone(NY, FALL_BACK + timedelta(hours=1), FALL_BACK + timedelta(days=7)) == NY
    # the window ends just as the clocks go back: the repeated hour is not in it
    assert chart_zone(NY, FALL_BACK - timedelta(days=7), FALL_BACK) == NY
    # clocks going forward repeat no hour
    spring = datetime(2026, 3, 8, 7, tzinfo=UTC)
    assert chart_zone(NY, spring - timedelta(days=2), spring + timedelta(days=2)) == NY
    assert chart_zone("Asia/Kolkata", *week) == "Asia/Kolkata"
    assert chart_zone("UTC", *week) == "UTC"
    # Berlin's clocks went back on 2026-10-25 to UTC+1
    berlin = datetime(2026, 10, 25, 1, tzinfo=UTC)
    assert chart_zone("Europe/Berlin", berlin - timedelta(days=1), berlin + timedelta(days=1)) \
        == "UTC+01:00"
    assert zone_label("UTC+01:00") == "UTC+01:00" and zone_label(NY) == NY
    # Adelaide goes back from +10:30 to +9:30 (2026-04-05), Lord Howe by half an hour
    adelaide = datetime(2026, 4, 4, 16, 30, tzinfo=UTC)
    assert chart_zone("Australia/Adelaide", adelaide - timedelta(days=1),
                      adelaide + timedelta(days=1)) == "UTC+09:30"
    assert chart_zone("Australia/Lord_Howe", adelaide - timedelta(days=1),
                      adelaide + timedelta(days=1), bucket_s=300) == "UTC+10:30"
    assert chart_zone("Australia/Lord_Howe", adelaide - timedelta(days=1),
                      adelaide + timedelta(days=1), bucket_s=HOUR) == "Australia/Lord_Howe"


@pytest.mark.parametrize("tz, back_at, label", [
    (NY, FALL_BACK, "UTC−05:00"),
    # Newfoundland goes back from −2:30 to −3:30 at 04:30Z: 04:00Z and 05:00Z are both 01:30
    ("America/St_Johns", datetime(2026, 11, 1, 5, tzinfo=UTC), "UTC−03:30")])
def test_the_hour_that_happens_twice_is_two_bars_and_each_opens_its_own_hour(tz, back_at,
                                                                            label):
    # 05:00Z and 06:00Z are both 01:00 on New York's clocks that night: drawn in the zone, the
    # two bars stacked into one of 40 and a click on it opened the first hour.
    from lib.charts import chart_zone
    from lib.drilldown import selection_window

    buckets = [back_at - timedelta(hours=2 - i) for i in range(4)]
    frame = pl.DataFrame({"bucket": buckets, "requests": [0, 10, 30, 0]})
    window = (buckets[0], buckets[-1] + timedelta(hours=1))
    zone = chart_zone(tz, *window, bucket_s=HOUR)
    assert len({local_time(b, tz) for b in buckets}) == 3  # (in the zone itself: two meet)
    fig = time_figure(frame, "bucket", [("requests", "n")], y_title="n", tz=zone, kind="bar",
                      window=window, bucket_s=HOUR)
    xs = list(fig.data[0].x)
    assert len(set(xs)) == 4
    assert fig.layout.xaxis.title.text == f"Time ({label})"
    clicked = {"selection": {"points": [{"x": str(xs[2])}], "box": []}}
    assert selection_window(clicked, zone, HOUR) == (back_at, back_at + timedelta(hours=1))


def test_bars_of_buckets_the_window_holds_in_part_are_paler_and_the_legend_says_so():
    # A window from 22:30 to 04:30 in hourly buckets: the first bucket (22:00) and the last
    # (04:00) hold 30 of their 60 minutes, so their counts read as drops unless marked.
    from lib.charts import PARTIAL_OPACITY, bucket_coverage

    frame = hourly(7)  # 22:00 … 04:00
    assert bucket_coverage(frame["bucket"].to_list(), (START, END), HOUR) == \
        [0.5, 1, 1, 1, 1, 1, 0.5]
    fig = time_figure(frame, "bucket", [("requests", "n")], y_title="n", tz="UTC", kind="bar",
                      window=(START, END), bucket_s=HOUR)
    opacity = list(fig.data[0].marker.opacity)
    assert opacity == [PARTIAL_OPACITY] + [1.0] * 5 + [PARTIAL_OPACITY]
    assert [t.name for t in fig.data] == ["n", "paler: not a whole 1 h"]
    whole = (START.replace(minute=0), START.replace(minute=0) + timedelta(hours=7))
    fig = time_figure(frame, "bucket", [("requests", "n")], y_title="n", tz="UTC", kind="bar",
                      window=whole, bucket_s=HOUR)
    assert fig.data[0].marker.opacity is None and len(fig.data) == 1
    lines = time_figure(frame, "bucket", [("p95_ms", "p95")], y_title="ms", tz="UTC",
                        window=(START, END), bucket_s=HOUR)  # a percentile is not a sum
    assert len(lines.data) == 1


def test_time_charts_select_along_time_only():
    # a drag that goes more down than across must not become a band over the whole time range
    fig = time_figure(hourly(), "bucket", [("requests", "n")], y_title="n", tz="UTC")
    band = band_figure(hourly().with_columns(lo=0.0, hi=1.0), "bucket",
                       [("p95_ms", "lo", "hi", "p")], y_title="%", tz="UTC")
    assert fig.layout.selectdirection == band.layout.selectdirection == "h"


def test_a_whole_day_of_a_change_of_the_clocks_is_a_whole_bar():
    # Los Angeles, 2026-03-08: 23 hours. A window of whole local days ending then: the last bar
    # was drawn pale, "not a whole day", and 24 hours wide
    from zoneinfo import ZoneInfo

    from lib.charts import bucket_coverage, time_figure

    la = ZoneInfo("America/Los_Angeles")
    days = [datetime(2026, 3, d, tzinfo=la).astimezone(UTC) for d in (7, 8)]
    window = (days[0], datetime(2026, 3, 9, tzinfo=la).astimezone(UTC))
    assert bucket_coverage(days, window, 86400, "America/Los_Angeles") == [1.0, 1.0]
    frame = pl.DataFrame({"bucket": days, "requests": [5, 7]})
    fig = time_figure(frame, "bucket", [("requests", "Requests")], y_title="n",
                      tz="America/Los_Angeles", kind="bar", window=window, bucket_s=86400)
    (bar,) = [t for t in fig.data if t.name == "Requests"]
    assert list(bar.width) == [24 * 3600 * 1000, 23 * 3600 * 1000]
    assert bar.marker.opacity is None  # none pale


def test_a_legend_above_a_time_chart_leaves_the_chart_most_of_its_height():
    # at phone width the entries wrap one a line: Plotly's default let them take half the
    # chart, leaving the bars a 60-pixel strip (review); beyond a quarter the legend scrolls
    fig = time_figure(hourly(), "bucket", [("requests", "n")], y_title="n", tz="UTC")
    band = band_figure(hourly().with_columns(lo=0.0, hi=1.0), "bucket",
                       [("p95_ms", "lo", "hi", "p")], y_title="%", tz="UTC")
    assert fig.layout.legend.maxheight == band.layout.legend.maxheight == 0.25


def test_a_hollow_point_is_hovered_on_its_own_line_and_fits_a_rate_as_well():
    # the hollow points were a trace hovered apart: "x unified" showed the nearest one, often a
    # neighbour bucket's, under a solid point's value ("p50: 3,648 | 2,119, too few rows"); and
    # on the error rate they said "too few rows for this percentile"
    frame = hourly().with_columns(rate=pl.lit(0.5), few=pl.Series([True, False] * 3))
    fig = time_figure(frame, "bucket", [("rate", "Error rate")], y_title="%", tz="UTC",
                      uncertain={"rate": "few"}, y_format=".1%")
    line = next(t for t in fig.data if t.name == "Error rate")
    hollow = next(t for t in fig.data if t.name == "Error rate (few rows)")
    assert hollow.hoverinfo == "skip"
    assert [bool(c) for c in line.customdata] == [True, False] * 3
    assert "too few requests in this bucket" in line.customdata[0]
    assert "percentile" not in line.customdata[0] + line.hovertemplate


def test_a_hovered_latency_reads_as_a_number_not_in_si_units():
    # Plotly's default hover read 12,129.31 ms as "12.12931k"
    fig = time_figure(hourly(), "bucket", [("p95_ms", "p95")], y_title="latency (ms)", tz="UTC")
    assert fig.layout.yaxis.hoverformat == ",.4~r"
    # a chart with a format of its own keeps it on its ticks, the hover finer (below)
    pct = time_figure(hourly(), "bucket", [("p95_ms", "p95")], y_title="%", tz="UTC",
                      y_format=".1%")
    assert pct.layout.yaxis.tickformat == ".1%"


def test_a_hovered_share_on_a_percent_axis_keeps_a_hundredth_of_a_point():
    # The Latency page's share within the objective has ".0%" ticks, and hovered 996 of 1,000
    # requests within it as "100%"; the error rate's ".1%" 1 error in 3,000 as "0.0%".
    frame = hourly().with_columns(share=pl.lit(0.996))
    for ticks in (".0%", ".1%"):
        fig = time_figure(frame, "bucket", [("share", "≤ 2,000 ms")], y_title="%", tz="UTC",
                          y_format=ticks)
        assert fig.layout.yaxis.tickformat == ticks
        assert fig.layout.yaxis.hoverformat == ".2~%"  # "99.6%", "0.03%", "100%"


def test_a_hovered_tiny_cost_on_a_dollar_axis_keeps_its_digits():
    # A dollar axis's ticks have the decimals its largest value needs ("$,.2f" to $1.00), and
    # Plotly hovered each bar in them: a model's $0.0003 hour on the Cost page read "$0.00", as
    # if it had cost nothing (300 of the demo's 1,131 non-zero bars, seen in Chromium).
    from lib.analysis_charts import hbar
    from lib.formatting import usd_tick_format

    frame = hourly().with_columns(cost_usd=pl.Series([1.0, 0.0003, 0.2, 0.5, 0.7, 0.9]))
    y_format = usd_tick_format(frame["cost_usd"].max())
    assert y_format == "$,.2f"
    for fig in (
            time_figure(frame, "bucket", [("cost_usd", "Cost")], y_title="USD per 1 h",
                        tz="UTC", kind="bar", y_format=y_format),
            long_time_figure(frame.with_columns(group=pl.lit("gpt-4o")), "bucket", "group",
                             "cost_usd", y_title="USD per 1 h", tz="UTC", kind="bar",
                             y_format=y_format)):
        assert fig.layout.yaxis.tickformat == "$,.2f"  # (the ticks keep cents)
        # four significant digits: "$0.0003", "$1,235", never "$0.00" for a cost
        assert fig.layout.yaxis.hoverformat == "$,.4~r"
    mix = hbar(pl.DataFrame({"label": ["Cache write", "Output"], "cost_usd": [0.004, 28.9]}),
               "label", "cost_usd", x_title="USD", x_format=usd_tick_format(28.9))
    assert mix.layout.xaxis.hoverformat == "$,.4~r"


def test_a_quote_from_the_logs_reads_as_a_quote_in_legends_ticks_and_hovers():
    # Plotly reads &lt; &gt; &amp; and numeric entities but not &quot;: html.escape's default
    # showed a model '=HYPERLINK("http://x","y")' as '=HYPERLINK(&quot;http://x&quot;,…' in the
    # Cost legend, the Quality legends and the event hovers (seen in Chromium).
    from lib.analysis_charts import hbar, shares_figure

    quoted = 'say "hi" <b>'
    events = pl.DataFrame({"ts": [START + timedelta(hours=1)], "kind": [quoted],
                           "title": ['"v2" <i>']})
    long = pl.DataFrame({"bucket": [START], "model": [quoted], "requests": [1]})
    fig = long_time_figure(long, "bucket", "model", "requests", y_title="n", tz="UTC",
                           kind="bar", events=events)
    shown = [t.name for t in fig.data] + [x for t in fig.data if t.text for x in t.text]
    assert 'say "hi" &lt;b&gt;' in shown
    assert 'say "hi" &lt;b&gt;: "v2" &lt;i&gt;' in shown
    bars = hbar(pl.DataFrame({"v": [quoted], "n": [1]}), "v", "n", x_title="n")
    assert list(bars.data[0].y) == ['say "hi" &lt;b&gt;']
    shares = shares_figure(pl.DataFrame({"bucket": [quoted], "reference_share": [1.0],
                                         "current_share": [1.0]}), x_title="model")
    assert list(shares.layout.xaxis.ticktext) == ['say "hi" &lt;b&gt;']
    assert not any("&quot;" in s for s in shown)


def test_an_event_kind_from_the_logs_is_cut_in_the_legend():
    # a 400-character kind ran the legend over the plot, as a model name did before it was cut
    from lib.analysis_charts import LEGEND_CHARS

    events = pl.DataFrame({"ts": [START + timedelta(hours=1)], "kind": ["k" * 400],
                           "title": ["t"]})
    fig = time_figure(hourly(), "bucket", [("requests", "n")], y_title="n", tz="UTC",
                      events=events)
    (marker,) = [t for t in fig.data if t.yaxis == "y2"]
    assert len(marker.name) == LEGEND_CHARS and marker.name.endswith("…")


def test_a_unified_hover_names_each_series_whole_not_cut_inside_its_escapes():
    # Plotly cut a name to 15 characters in the hover, inside its entities: a feature
    # "<script>…" read "<script&g..." and '=HYPERLINK("…' read "=HYPERLINK(&..." (Chromium);
    # legend_label has already cut a name to 40 characters
    long = pl.DataFrame({"bucket": [START], "feature": ["<script>alert(1)</script>"],
                         "requests": [1]})
    figs = [long_time_figure(long, "bucket", "feature", "requests", y_title="n", tz="UTC",
                             kind=kind) for kind in ("bar", "area")]
    figs.append(band_figure(pl.DataFrame({"bucket": [START], "r": [0.5], "lo": [0.4],
                                          "hi": [0.6]}), "bucket",
                            [("r", "lo", "hi", "<b>judge</b> pass rate")], y_title="%",
                            tz="UTC"))
    for fig in figs:
        assert fig.layout.hovermode == "x unified"
        assert fig.layout.hoverlabel.namelength == -1


def test_events_are_the_lines_plotly_s_add_vline_draws_with_their_markers():
    # (set at once: add_vline, once an event, took 0.22 s for 20 events)
    import plotly.graph_objects as go

    from lib.charts import EVENT_COLORS, add_events

    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    events = pl.DataFrame({"ts": [t0 + timedelta(hours=7 * i) for i in range(6)],
                           "kind": ["deploy", "incident", "mystery"] * 2,
                           "title": [f"t{i}" for i in range(6)]})
    fig = go.Figure(go.Scatter(x=[t0], y=[1]))
    fig.add_hline(y=0.5)  # a shape already there stays
    add_events(fig, events, "Europe/Paris")
    expected = go.Figure(go.Scatter(x=[t0], y=[1]))
    expected.add_hline(y=0.5)
    for kind in ("deploy", "incident", "mystery"):
        for ts in events.filter(pl.col("kind") == kind)["ts"]:
            expected.add_vline(x=ts.astimezone(ZoneInfo("Europe/Paris")).replace(tzinfo=None),
                               line=dict(color=EVENT_COLORS.get(kind, "#636e72"), width=1,
                                         dash="dot"))
    assert fig.layout.shapes == expected.layout.shapes and len(fig.layout.shapes) == 7
    markers = [trace for trace in fig.data if trace.yaxis == "y2"]
    assert [len(m.x) for m in markers] == [2, 2, 2]
