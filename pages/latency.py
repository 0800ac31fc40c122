"""Latency: percentiles over time, TTFT, output speed, by model and provider, the distribution on
a log axis, the share within an objective, and the slowest requests."""

import polars as pl
import streamlit as st

from lib import drilldown, formatting
from lib.analysis_charts import log_histogram
from lib.charts import time_figure
from lib.metrics import latency, overview
from lib.metrics.buckets import MIN_REQUESTS_FOR_RATE, bucket_label, bucket_seconds
from lib.metrics.dims import DIMENSIONS, attribute_keys
from lib.metrics.dims import label as dim_label
from lib.ui import filters as ui_filters
from lib.ui import store, widgets

engine = store.engine()
f = ui_filters.current()

st.title("Latency")
widgets.problems_banner(engine)  # (rows of unreadable files are left out of every number below)
st.caption(widgets.md_escape(f.describe())
           + " · milliseconds; percentiles exact per bucket (never averaged)")
widgets.stop_if_no_requests(engine, "Latency comes from each logged call's duration.")
widgets.freshness_note(engine, f)

objective = widgets.query_number("Latency objective (ms)", "objective", 2000.0, key="lat_obj",
                                 min_value=1.0, step=250.0, format="%.0f",
                                 help="Share of requests answered within this time")
with st.spinner("Computing latency…"):
    tot = widgets.cached(latency.overall, engine, f, objective)
if not tot["requests"]:
    widgets.no_requests_in_window(engine, f, "pages/latency.py")

k = st.columns(3) + st.columns(3)  # (six in a row cut "79 tok/s" short at 1400 px)
for col, (name, key) in zip(k, [("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms")]):
    col.metric(f"{name} latency", formatting.ms(tot[key]), border=True)
k[3].metric("TTFT p50", formatting.ms(tot["ttft_p50_ms"]), border=True,
            help="Time to first token, streaming calls")
k[4].metric("Output speed p50", "–" if tot["tokens_per_s_p50"] is None
            else f"{tot['tokens_per_s_p50']:.0f} tok/s", border=True,
            help="Output tokens per second of generation (after the first token when streaming), "
                 "of the successful calls; answers from your application's cache generated "
                 "nothing and are left out")
k[5].metric(f"Within {formatting.ms(objective)}", formatting.pct(tot["within_share"], 1),
            border=True)
if not tot["timed"]:
    st.warning("No request in this window has a latency (`latency_ms`): log each call's "
               "duration, or map it (see docs/mapping.md).", icon=":material/timer_off:")
elif tot["timed"] < 1000:
    st.caption(f"Only {formatting.plural(tot['timed'], 'request')} with a latency: p99 needs "
               "1,000 to be reliable.")

seconds = bucket_seconds(f.duration)
axis = widgets.time_axis(f, seconds)
per = bucket_label(seconds)
with st.spinner("Loading time series…"):
    ts = widgets.cached(latency.percentiles_over_time, engine, f, seconds, objective)
    events = widgets.cached(overview.events, engine, f)

st.subheader("Percentiles over time")
fig = time_figure(ts, "bucket", [("p50_ms", "p50"), ("p90_ms", "p90"), ("p95_ms", "p95"),
                                 ("p99_ms", "p99")],
                  y_title=f"latency (ms) per {per}", events=events, **axis,
                  uncertain={f"{p}_ms": f"{p}_uncertain" for p in ("p50", "p90", "p95", "p99")})
event = widgets.chart(fig, ts, key="lat_pct", name="latency_percentiles", on_select=True)
st.caption("Hollow points: too few requests in the bucket for that percentile (p50 < 20, "
           "p90 < 100, p95 < 200, p99 < 1,000). Drag over the chart to explore that window.")
sel = drilldown.selection_window(event, axis["tz"], seconds) if event else None
if sel:
    widgets.open_page("pages/explore.py", f,
        window=drilldown.window_param(*sel), metric="p95_latency")

left, right = st.columns(2)
with left:
    st.subheader("Time to first token")
    if not ts["ttft_requests"].sum():  # (an empty chart on a 0-4 ms axis said nothing)
        widgets.empty_state("No time to first token in this window",
                            "It is logged for streamed calls (`ttft_ms`, or an OTel span's "
                            "`gen_ai.response.time_to_first_chunk`); these requests have none.")
    else:
        fig = time_figure(ts, "bucket", [("ttft_p50_ms", "TTFT p50"),
                                         ("ttft_p95_ms", "TTFT p95")],
                          y_title="TTFT (ms)", events=events, **axis,
                          uncertain={"ttft_p50_ms": "ttft_p50_uncertain",
                                     "ttft_p95_ms": "ttft_p95_uncertain"})
        widgets.chart(fig, ts.select("bucket", "ttft_requests", "ttft_p50_ms", "ttft_p95_ms"),
                      key="lat_ttft", name="ttft")
        st.caption("Hollow points: too few streamed requests in the bucket (p50 < 20, "
                   "p95 < 200).")
with right:
    st.subheader("Output speed")
    if ts["tokens_per_s_p50"].is_null().all():
        widgets.empty_state("No output speed in this window",
                            "It needs a request's latency and output tokens; no request here "
                            "has both.")
    else:
        fig = time_figure(ts, "bucket", [("tokens_per_s_p50", "median")],
                          y_title="output tokens per second", events=events, **axis,
                          uncertain={"tokens_per_s_p50": "tokens_per_s_p50_uncertain"})
        widgets.chart(fig, ts.select("bucket", "requests", "tokens_per_s_p50"),
                      key="lat_speed", name="output_speed")
        st.caption("Hollow points: fewer than 20 requests with a speed in the bucket.")

st.subheader(f"Share of requests within {formatting.ms(objective)}")
fig = time_figure(ts, "bucket", [("within_share", f"≤ {objective:,.0f} ms")],
                  y_title=f"share of requests per {per} (%)", events=events, **axis,
                  y_format=".0%", uncertain={"within_share": "within_share_uncertain"})
fig.update_yaxes(range=[0, 1])
widgets.chart(fig, ts.select("bucket", "requests", "within_objective", "within_share",
                             "within_share_uncertain"),
              key="lat_within", name="within_objective")
st.caption(f"Hollow points: fewer than {MIN_REQUESTS_FOR_RATE} requests with a latency in the "
           "bucket.")

st.subheader("By dimension")
dims = list(DIMENSIONS) + widgets.cached(attribute_keys, engine, f)
by = widgets.query_selectbox("Group by", dims, "by", "model", format_func=dim_label,
                             key="lat_by")
grp = widgets.cached(latency.by_dimension, engine, f, by, objective)
MS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "ttft_p50_ms", "tokens_per_s_p50")
shown_groups = widgets.for_display(
    grp.drop([c for c in grp.columns if c.endswith("_uncertain")]), MS)
widgets.dataframe(shown_groups,
             hide_index=True, width="stretch", column_config={
                 "group": dim_label(by),
                 "requests": st.column_config.NumberColumn("Requests", format="localized"),
                 **{f"{p}_ms": st.column_config.NumberColumn(f"{p} (ms)", format="localized")
                    for p in ("p50", "p90", "p95", "p99")},
                 "ttft_p50_ms": st.column_config.NumberColumn("TTFT p50 (ms)",
                                                              format="localized"),
                 "tokens_per_s_p50": st.column_config.NumberColumn("Output tok/s p50",
                                                                   format="localized"),
                 "within_share": st.column_config.ProgressColumn(
                     f"Within {objective:,.0f} ms", format="percent", min_value=0,
                     max_value=1)})
widgets.downloads(grp, f"latency_by_{by}", key="dl_lat_by")
few = grp.filter(pl.col("p99_uncertain"))
if few.height:
    st.caption(f"{formatting.plural(few.height, 'group')} "
               f"{'has' if few.height == 1 else 'have'} fewer than 1,000 requests: "
               f"{'its' if few.height == 1 else 'their'} p99 is uncertain.")

st.subheader("Distribution")
dist = widgets.cached(latency.distribution, engine, f)
st.plotly_chart(log_histogram(dist, objective_ms=objective), key="lat_dist",
                config={"displaylogo": False})
widgets.downloads(dist, "latency_distribution", key="dl_lat_dist")

st.subheader("Slowest requests")
slow = widgets.cached(latency.slowest, engine, f, 50)
widgets.dataframe(widgets.for_display(widgets.with_request_links(slow, f).with_columns(
                 pl.col("ts").dt.convert_time_zone(f.tz)), ("latency_ms", "ttft_ms")),
             hide_index=True,
             width="stretch", column_config={
                 "link": widgets.LINK_COLUMN,
                 "ts": st.column_config.DatetimeColumn(f"Time ({f.tz})",
                                                       format="YYYY-MM-DD HH:mm:ss"),
                 "latency_ms": st.column_config.NumberColumn("Latency (ms)",
                                                             format="localized"),
                 "ttft_ms": st.column_config.NumberColumn("TTFT (ms)", format="localized"),
                 "request_id": "Request", "provider": "Provider", "model": "Model",
                 "feature": "Feature", "status": "Status", "error_type": "Error type",
                 "output_tokens": st.column_config.NumberColumn("Output tokens",
                                                                format="localized")})
widgets.downloads(slow, "slowest_requests", key="dl_slow")
if slow.height:
    s1, s2 = st.columns([3, 1])
    # A row is an id and its time, as on Explore: by its id alone the link opened the newest
    # request stored under it, another one than this slow one when a source's ids repeat (a
    # 50 ms call days after the window, found in review)
    options, label = widgets.request_choices(slow, f.tz)
    rid, at = s1.selectbox("Open a request", options, key="lat_open_id", format_func=label)
    s2.write("")
    with s2:  # a link, as on Explore: one browser history entry, so one Back returns here
        widgets.page_link("pages/request.py", "Open request",
                          {**f.to_query(), **widgets.request_query(rid, at)},
                          icon=":material/open_in_new:")
