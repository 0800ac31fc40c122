"""Chart builders of lib/analysis_charts.py: what they draw where."""

from __future__ import annotations

import math

import polars as pl
import pytest

from lib.analysis_charts import log_histogram, long_time_figure


def test_the_objective_is_labelled_where_its_line_is_on_the_log_axis():
    # Plotly places an annotation on a log axis at 10^x: at x = 2000 it was off the chart
    frame = pl.DataFrame({"bin_start_ms": [100.0, 1000.0], "bin_end_ms": [1000.0, 10000.0],
                          "requests": [5, 3], "share": [0.625, 0.375]})
    fig = log_histogram(frame, objective_ms=2000)
    (line,) = fig.layout.shapes
    (label,) = fig.layout.annotations
    assert fig.layout.xaxis.type == "log" and line.x0 == 2000
    assert label.x == pytest.approx(math.log10(2000)) and label.text == "objective 2,000 ms"
    # inside the axis range Plotly draws: the bars' span, 100 to 10,000 ms
    assert math.log10(100) < label.x < math.log10(10_000)


def test_a_bin_narrower_than_a_millisecond_hovers_its_own_edges():
    # d3's ",.0f" hovered the log axis' first bins (1.26 to 1.58 ms) as "1–1 ms"
    frame = pl.DataFrame({"bin_start_ms": [1.2589, 1.5849], "bin_end_ms": [1.5849, 1.9953],
                          "requests": [5, 3], "share": [0.625, 0.375]})
    (bar,) = log_histogram(frame).data
    assert bar.hovertemplate.startswith("%{customdata[0]:,.3~r}–%{customdata[1]:,.3~r} ms: ")


def trace_spans() -> pl.DataFrame:
    return pl.DataFrame({
        "span_id": ["a", "r1", "t", "r2", "x"],
        "name": ["plan <b>trip</b>", "chat gpt-4o", "search", "chat gpt-4o", "custom step"],
        "depth": [0, 1, 1, 1, 1],
        "kind": ["agent", "llm", "tool", "llm", "mystery"],
        "status": ["error", "ok", "ok", "error", "ok"],
        "start_ms": [0.0, 5.0, 900.0, 1000.0, 1500.0],
        "duration_ms": [2000.0, 800.0, 90.0, 400.0, 10.0]})


def test_the_waterfall_has_a_legend_entry_for_each_look_it_draws():
    from lib.analysis_charts import waterfall

    fig = waterfall(trace_spans())
    legend = {t.name: t.marker.color for t in fig.data}
    # a failed span keeps its kind's colour (hatched red): the failed agent is still an agent
    assert legend == {"agent, failed": "#6c5ce7", "model call": "#2d6cdf", "tool": "#16a34a",
                      "model call, failed": "#2d6cdf", "mystery": "#64748b"}
    hatched = {t.name for t in fig.data if t.marker.pattern.shape == "/"}
    assert hatched == {"agent, failed", "model call, failed"}
    assert all(t.marker.pattern.fgcolor == "#d63031" for t in fig.data if t.name in hatched)
    assert fig.layout.showlegend
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["model call"].y) == ["2.   chat gpt-4o"]
    assert list(by_name["model call, failed"].y) == ["4.   chat gpt-4o"]
    assert list(by_name["model call, failed"].base) == [1000.0]
    assert list(by_name["model call, failed"].x) == [400.0]


def test_the_waterfall_keeps_the_spans_order_escapes_names_and_marks_the_request_shown():
    from lib.analysis_charts import waterfall

    fig = waterfall(trace_spans(), this_span="r2")
    assert list(fig.layout.yaxis.categoryarray) == [
        "1. plan &lt;b&gt;trip&lt;/b&gt;", "2.   chat gpt-4o", "3.   search",
        "▶ 4.   chat gpt-4o", "5.   custom step"]
    assert fig.layout.yaxis.categoryorder == "array"
    assert fig.layout.yaxis.autorange == "reversed"
    assert not any(y.startswith("▶") for y in waterfall(trace_spans()).layout.yaxis.categoryarray)


def test_legend_entries_of_log_values_are_cut_escaped_and_in_reading_order():
    from datetime import UTC, datetime

    long = "m" * 500
    frame = pl.DataFrame({"bucket": [datetime(2026, 11, 1, tzinfo=UTC)] * 3,
                          "group": [long, "<b>x</b>", "live \u202eevil"],
                          "cost_usd": [3.0, 2.0, 1.0]})
    fig = long_time_figure(frame, "bucket", "group", "cost_usd", y_title="USD", tz="UTC",
                           kind="bar")
    names = [t.name for t in fig.data]
    assert names == ["m" * 39 + "…", "&lt;b&gt;x&lt;/b&gt;", "live \\u202eevil"]


def test_a_long_category_s_tick_is_cut_but_its_bar_and_hover_keep_it_whole():
    # a 300-character feature value rotated under the axis left the bars a fifth of the chart
    # (found in review); two values alike in their first 100 characters stay two bars
    from lib.analysis_charts import LEGEND_CHARS, shares_figure

    alike = ["x" * 100 + "-a", "x" * 100 + "-b"]
    fig = shares_figure(pl.DataFrame({"bucket": [*alike, "<b>chat</b>"],
                                      "reference_share": [0.5, 0.25, 0.25],
                                      "current_share": [0.25, 0.5, 0.25]}), x_title="feature")
    ticks = list(fig.layout.xaxis.ticktext)
    assert all(len(t) <= LEGEND_CHARS for t in ticks[:2]) and ticks[0].endswith("…")
    assert ticks[2] == "&lt;b&gt;chat&lt;/b&gt;"  # escaped, as every label from the logs
    assert list(fig.data[0].x) == [*alike, "&lt;b&gt;chat&lt;/b&gt;"]  # two bars, whole
    assert list(fig.layout.xaxis.tickvals) == list(fig.data[0].x)


def test_quotes_in_log_text_reach_plotly_as_quotes_not_entities():
    # Plotly decodes &amp; &lt; &gt; and numeric entities but drew "&quot;" as written: a span
    # named fetch "docs" read fetch &quot;docs&quot; in the waterfall, its legend and its hover
    from datetime import UTC, datetime

    from lib.analysis_charts import legend_label, waterfall
    from lib.charts import time_figure

    spans = trace_spans().with_columns(pl.Series("name", ['fetch "docs" & <b>x</b>', *["s"] * 4]))
    assert waterfall(spans).layout.yaxis.categoryarray[0] == \
        '1. fetch "docs" &amp; &lt;b&gt;x&lt;/b&gt;'
    assert legend_label("it's \"v2\"") == "it's \"v2\""
    t = datetime(2026, 11, 20, tzinfo=UTC)
    fig = time_figure(pl.DataFrame({"bucket": [t], "requests": [1]}), "bucket",
                      [("requests", "Requests")], y_title="requests", tz="UTC",
                      events=pl.DataFrame({"ts": [t], "kind": ["deploy"],
                                           "title": ['release "v2" <i>now</i>']}))
    (marks,) = [d for d in fig.data if d.name == "deploy"]
    assert list(marks.text) == ['deploy: release "v2" &lt;i&gt;now&lt;/i&gt;']


def test_a_long_span_name_or_a_deep_span_leaves_the_waterfall_its_bars():
    # a span named after a 3,000-character prompt made a label as wide as the chart, and so did
    # a span 1,000 levels deep (two spaces a level): the bars were squeezed to a sliver
    from lib.analysis_charts import WATERFALL_NAME_CHARS, waterfall

    spans = trace_spans().with_columns(pl.Series("name", ["x" * 3000, *["s"] * 4]),
                                       pl.Series("depth", [0, 1, 2, 1000, 1]))
    fig = waterfall(spans)
    labels = list(fig.layout.yaxis.categoryarray)
    assert labels[0] == "1. " + "x" * (WATERFALL_NAME_CHARS - 1) + "…"
    assert max(len(label) for label in labels) <= WATERFALL_NAME_CHARS + 30
    hovers = {c[4] for t in fig.data for c in t.customdata}
    assert "4. s (depth 1000)" in hovers  # the hover says how deep
    assert any(h.startswith("1. " + "x" * 200) for h in hovers)  # and gives the name longer


def test_a_long_bar_label_s_tick_is_cut_but_its_bar_keeps_it_whole():
    # a 400-character version (Quality's pass rate by version) left the bars a sliver at the
    # chart's edge (Chromium); two versions alike in their first characters stay two bars
    from lib.analysis_charts import LEGEND_CHARS, hbar

    alike = ["v" * 400 + "-a", "v" * 400 + "-b"]
    fig = hbar(pl.DataFrame({"version": [*alike, "<b>v2</b>"], "rate": [0.5, 0.6, 0.7]}),
               "version", "rate", x_title="pass rate")
    ticks = list(fig.layout.yaxis.ticktext)
    assert all(len(t) <= LEGEND_CHARS for t in ticks) and ticks[0].endswith("…")
    assert ticks[2] == "&lt;b&gt;v2&lt;/b&gt;"
    assert list(fig.data[0].y) == [*alike, "&lt;b&gt;v2&lt;/b&gt;"]
    assert list(fig.layout.yaxis.tickvals) == list(fig.data[0].y)


def test_a_long_span_name_s_tick_is_cut_in_the_waterfall_but_its_bar_keeps_it_whole():
    # a 400-character span name took the chart's width: every bar a sliver (Chromium)
    from lib.analysis_charts import (
        LEGEND_CHARS,
        WATERFALL_HOVER_CHARS,
        WATERFALL_NAME_CHARS,
        waterfall,
    )

    spans = trace_spans().with_columns(
        pl.when(pl.col("span_id") == "r2").then(pl.lit("n" * 400)).otherwise(pl.col("name"))
        .alias("name"), pl.when(pl.col("span_id") == "r2").then(pl.lit("k" * 400))
        .otherwise(pl.col("kind")).alias("kind"))
    fig = waterfall(spans, this_span="r2")
    (long,) = [t for t in fig.layout.yaxis.categoryarray if t.startswith("▶")]
    assert long == "▶ 4.   " + "n" * (WATERFALL_NAME_CHARS - 1) + "…"
    # the hover gives the name longer (to WATERFALL_HOVER_CHARS)
    hovers = [c[-1] for t in fig.data for c in (t.customdata or ())]
    assert any("n" * (WATERFALL_HOVER_CHARS - 1) + "…" in h for h in hovers)
    assert all(len(t.name) <= LEGEND_CHARS for t in fig.data)  # a kind from the logs too


def test_the_waterfall_s_axis_title_fits_a_phone():
    # "milliseconds since the trace started" was cut at 390 px (review); the unit stays
    from lib.analysis_charts import waterfall

    title = waterfall(trace_spans()).layout.xaxis.title.text
    assert title.startswith("ms ") and len(title) <= 28
