"""Overview: the KPIs against the previous period, and traffic, latency and cost over time."""

from datetime import UTC, datetime, timedelta

import polars as pl
import streamlit as st

from lib import drilldown, formatting
from lib.charts import time_figure
from lib.metrics import overview
from lib.metrics.buckets import MIN_REQUESTS_FOR_RATE, bucket_label, bucket_seconds
from lib.ui import filters as ui_filters
from lib.ui import store, widgets

engine = store.engine()
f = ui_filters.current()

st.title("Overview")
st.caption(widgets.md_escape(f.describe()))
if demo_batches := store.live_demo_batches(engine):
    widgets.demo_banner(demo_batches, engine.lake.root)
widgets.problems_banner(engine)

widgets.stop_if_no_requests(
    engine, f"Sightline reads logged model calls from `{engine.lake.root}`.")
widgets.freshness_note(engine, f)

# (to the minute, as the window's end: the page's results are cached with it)
now = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
with st.spinner("Computing KPIs…"):
    kpis = widgets.cached(overview.kpis, engine, f, now)
if kpis.filter(kpis["kpi"] == "requests")["value"][0] == 0:
    widgets.no_requests_in_window(engine, f, "pages/overview.py")

coverage = widgets.cached(overview.previous_coverage, engine, f, now)
previous = overview.previous_period(f, now)
# Against a previous period the store barely covers, "+87,000%" would be noise, not news.
comparable = coverage >= 0.9
widgets.kpi_tiles(kpis, compare=comparable)
if comparable and previous.duration < f.duration:
    st.caption(f"Changes are against the first {formatting.duration(previous.duration)} of the "
               f"previous {formatting.duration(f.duration)}: this window has not ended, so its "
               "time so far is compared with the same stretch of the period before.")
elif comparable:
    st.caption(f"Changes are against the previous {formatting.duration(f.duration)} "
               "(the period of equal length just before this one).")
else:
    # (a length, not a share: 27 minutes of a week read "covers only 0%")
    covered = ("the store's data begins with this window" if not coverage else
               f"the store's data covers only "
               f"{formatting.duration(previous.duration * coverage)} of the previous "
               f"{formatting.duration(previous.duration)}")
    st.caption(f"No changes shown: {covered}, so there is nothing like-for-like to compare "
               "against. The tiles' help still gives the previous period's values.")

# an event is investigated on Explore from a little before it to a while after
EVENT_BEFORE, EVENT_AFTER = timedelta(minutes=30), timedelta(hours=1)

seconds = bucket_seconds(f.duration)
axis = widgets.time_axis(f, seconds)
with st.spinner("Loading time series…"):
    series = widgets.cached(overview.timeseries, engine, f, seconds)
    events = widgets.cached(overview.events, engine, f)
per = bucket_label(seconds)

left, right = st.columns(2)
with left:
    st.subheader("Requests and errors")
    series_ok = series.with_columns((series["requests"] - series["errors"]).alias("succeeded"))
    fig = time_figure(series_ok, "bucket", [("succeeded", "Succeeded"), ("errors", "Errors")],
                      y_title=f"requests per {per}", events=events, **axis, kind="bar")
    drills = [("error_rate", widgets.chart(
        fig, series.select("bucket", "requests", "errors", "error_rate"),
        key="ov_requests", name="requests_and_errors", on_select=True))]
with right:
    st.subheader("Latency")
    fig = time_figure(series, "bucket", [("p50_ms", "p50"), ("p95_ms", "p95")],
                      y_title="latency (ms)", events=events, **axis,
                      uncertain={"p50_ms": "p50_uncertain", "p95_ms": "p95_uncertain"})
    drills.append(("p95_latency", widgets.chart(
        fig, series.select("bucket", "requests", "p50_ms", "p95_ms", "p50_uncertain",
                           "p95_uncertain"), key="ov_latency", name="latency", on_select=True)))
    st.caption("Percentiles are exact per bucket (never averaged). Hollow points: too few "
               "requests in the bucket for that percentile (p50 < 20, p95 < 200).")

left, right = st.columns(2)
with left:
    st.subheader("Error rate")
    fig = time_figure(series, "bucket", [("error_rate", "Error rate")],
                      y_title=f"errors / requests per {per} (%)", events=events, **axis,
                      uncertain={"error_rate": "rate_uncertain"}, y_format=".1%")
    drills.append(("error_rate", widgets.chart(
        fig, series.select("bucket", "requests", "errors", "error_rate", "rate_uncertain"),
        key="ov_error_rate", name="error_rate", on_select=True)))
    st.caption("An outage at a quiet hour shows here, where its errors are a sliver of the "
               f"bars. Hollow points: fewer than {MIN_REQUESTS_FOR_RATE} requests in the bucket.")
with right:
    st.subheader("Cost")
    fig = time_figure(series, "bucket", [("cost_usd", "Cost")], y_title=f"USD per {per}",
                      events=events, **axis, kind="bar",
                      y_format=formatting.usd_tick_format(series["cost_usd"].max()))
    drills.append(("cost_per_request", widgets.chart(
        fig, series.select("bucket", "requests", "cost_usd", "unpriced_requests"),
        key="ov_cost", name="cost", on_select=True)))
    st.caption(widgets.unpriced_note(int(series["unpriced_requests"].sum()), "cost bars")
               .strip() or "Of the priced requests.")
st.caption("Drag over a chart to investigate that window on Explore.")

# Drill-down: a selected region opens Explore on that window with the same filters.
for drill_metric, event in drills:
    window = drilldown.selection_window(event, axis["tz"], seconds, clamp=(f.start, f.end))
    if window:
        widgets.open_page("pages/explore.py", f,
            window=drilldown.window_param(*window), metric=drill_metric)

if events.height:
    with st.expander(f"{formatting.plural(events.height, 'event')} in this window"):
        # each event one click from Explore on the hour around it (a new tab; shareable)
        links = [widgets.explore_link(f, t - EVENT_BEFORE, t + EVENT_AFTER)
                 for t in events["ts"].to_list()]
        shown = widgets.for_display(events.with_columns(
            events["ts"].dt.convert_time_zone(f.tz), pl.Series("link", links)))
        shown = shown.select("link", *events.columns)  # (first: the last columns scroll away)
        widgets.dataframe(shown, hide_index=True, width="stretch", column_config={
            "link": st.column_config.LinkColumn(
                "Explore", display_text="Investigate ↗", width="small",
                help="Explore from 30 minutes before the event to an hour after, in a new tab"),
            "ts": st.column_config.DatetimeColumn(f"Time ({f.tz})", format="YYYY-MM-DD HH:mm"),
            "kind": "Kind", "service": "Service", "version": "Version", "title": "Title",
            "detail": "Detail", "author": "Author"})
