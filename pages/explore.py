"""Explore: a window under study against a baseline — what changed, error fingerprints, and the
request table (paged and searched on the server)."""

from datetime import timedelta

import polars as pl
import streamlit as st

from lib import drilldown, formatting
from lib.analysis_charts import shade_windows
from lib.charts import time_figure
from lib.filters import key_for_column
from lib.metrics import drift, explore, overview
from lib.metrics.buckets import (
    MIN_REQUESTS_FOR_RATE,
    MIN_ROWS_FOR_PERCENTILE,
    bucket_label,
    bucket_seconds,
)
from lib.metrics.dims import DIMENSIONS
from lib.metrics.dims import label as dim_label
from lib.ui import filters as ui_filters
from lib.ui import store, widgets

engine = store.engine()
f = ui_filters.current()
LABEL = {"error_rate": "Error rate", "p95_latency": "p95 latency",
         "cost_per_request": "Cost per request"}

st.title("Explore")
widgets.problems_banner(engine)  # (rows of unreadable files are left out of every number below)
if engine.row_count("requests") == 0:
    widgets.empty_state(
        "No requests to investigate yet",
        f"Explore compares a window with a baseline over the requests in `{engine.lake.root}`. "
        "Ingest your logs, or write the demo data:",
        "python -m lib ingest path/to/logs/\npython -m lib demo")
    st.stop()

# -- windows: `window` / `baseline` URL keys, else the sidebar's window and the period before ---
win = drilldown.parse_window_param(widgets.query_value("window"))
for key, instead in (("window", "the sidebar's window"), ("baseline", "the baseline below")):
    given = widgets.query_value(key)
    if given and drilldown.parse_window_param(given) is None:  # (said, as the sidebar says)
        st.warning(f"This link's {key} {widgets.md_escape(given[:80])} is no window (two UTC "
                   "times from 1970 to 2200, `FROM..TO`, the first before the second): "
                   f"Explore studies {instead}.", icon=":material/link_off:")
# A change of the sidebar's time range after a drill-down (a window, then "Last 24 hours") is
# a new question: the sidebar wins, as on every other page. A link opened anew, or a window
# picked below, keeps its window.
sidebar_range = (f.preset,) if f.preset != "custom" else (f.start, f.end)
seen = st.session_state.get("ex_window_seen")  # (the URL's window, the sidebar's range then)
if win is not None and seen is not None and seen[0] == widgets.query_value("window") \
        and seen[1] != sidebar_range:
    st.info(f"The time range changed in the sidebar: Explore studies its window now, not "
            f"the drill-down's {widgets.window_caption(win[0], win[1], f.tz)}.",
            icon=":material/date_range:")
    for k in ("window", "baseline"):
        if k in st.query_params:
            del st.query_params[k]
    st.session_state.pop("ex_window_seen")
    win = None
elif win is not None:
    st.session_state["ex_window_seen"] = (widgets.query_value("window"), sidebar_range)
from_selection = win is not None
window = f.with_window(*win) if win else f
base = drilldown.parse_window_param(widgets.query_value("baseline"))
# A daytime window against the night before it compares traffic of two kinds: the same hours a
# day or a week earlier are the like-for-like baselines (a baseline picked below wins).
AGAINST = {"before": "the period of equal length just before",
           "day": "the same window a day earlier", "week": "the same window a week earlier"}
BACK = {"day": timedelta(days=1), "week": timedelta(days=7)}
against = None
if base:
    baseline = window.with_window(*base)
else:
    # (a day earlier than a 7-day window shares six of its days with it, and than a 24-hour
    # one is the period before: offered only for windows shorter than the step back)
    offered = [k for k in AGAINST if k not in BACK or window.duration < BACK[k]]
    against = widgets.query_selectbox(
        "Baseline", offered, "against", "before", format_func=lambda k: AGAINST[k][0]
        .upper() + AGAINST[k][1:], key="ex_against", width=360)
    back = BACK.get(against)
    baseline = window.previous() if back is None else window.with_window(
        *drilldown.earlier_on_the_clock(window.start, window.end, back, f.tz))

st.caption(f"**Window** {widgets.window_caption(window.start, window.end, f.tz)} · "
           f"**baseline** {widgets.window_caption(baseline.start, baseline.end, f.tz)}"
           + ("" if base else f" ({AGAINST[against]})")
           + "".join(f" · {widgets.md_escape(key_for_column(c))} = "
                     f"{widgets.md_escape(', '.join(v))}" for c, v in f.values))
widgets.freshness_note(engine, window)
if shared := drift.reference_overlap(window, baseline):
    # (a link's two windows, or a week earlier of a window over a week, share requests: the
    # comparison read "p = 1" of a window against itself, unsaid; found in review)
    st.warning(f"The baseline overlaps the window by {formatting.duration(shared)}: the "
               "requests of that time are on both sides, compared with themselves, so a change "
               "shows smaller than it is. Pick a baseline that ends before the window starts "
               "under **Change the windows**.", icon=":material/warning:")

with st.expander("Change the windows", expanded=False):
    # The pickers start from the windows in use and keep a user's edits across reruns (stable
    # keys); they are reset only when the windows are set from elsewhere: a drill-down, a pasted
    # link, or the sidebar's range or zone. A relative range moving with the clock does not.
    source = (widgets.query_value("window"), widgets.query_value("baseline"), against, f.preset,
              f.tz, (f.start, f.end) if f.preset == "custom" else None)
    if st.session_state.get("ex_windows_source") != source:
        st.session_state["ex_windows_source"] = source
        for name, w in (("window", window), ("baseline", baseline)):
            st.session_state[f"ex_{name}_from"] = drilldown.wall_clock(w.start, f.tz)
            st.session_state[f"ex_{name}_to"] = drilldown.wall_clock(w.end, f.tz)
    picked = {}
    for col, name in zip(st.columns(2), ("Window", "Baseline"), strict=True):
        with col:
            st.markdown(f"**{name}** ({widgets.md_escape(f.tz)})")
            for edge in ("from", "to"):
                picked[name, edge] = st.datetime_input(
                    f"{name} {edge}", value=None, step=60, format="YYYY-MM-DD",
                    key=f"ex_{name.lower()}_{edge}")
    b1, b2 = st.columns([1, 1])
    if b1.button("Apply", key="ex_apply"):
        w2 = drilldown.local_window(picked["Window", "from"], picked["Window", "to"], f.tz)
        b2w = drilldown.local_window(picked["Baseline", "from"], picked["Baseline", "to"], f.tz)
        if not w2 or not b2w:
            st.error("Each window needs a start before its end.")
        else:
            st.query_params["window"] = drilldown.window_param(*w2)
            st.query_params["baseline"] = drilldown.window_param(*b2w)
            st.rerun()
    if from_selection and b2.button("Use the sidebar's window", key="ex_reset"):
        for k in ("window", "baseline"):
            if k in st.query_params:
                del st.query_params[k]
        st.rerun()

# -- what changed -----------------------------------------------------------------------------
metric = widgets.query_selectbox("Metric", list(explore.METRICS), "metric", "error_rate",
                                 format_func=lambda m: LABEL[m],
                                 key="ex_metric")
with st.spinner("Ranking what changed…"):
    doc = widgets.cached(explore.changes, engine, window, baseline, metric)

st.subheader("What changed")
counted = explore.COUNTED[metric]  # what the metric is computed on: priced requests for cost
# Requests, none of them priced (a self-hosted model) or timed: the metric has nothing to
# compare, but the chart, the fingerprints and the requests below still hold them (the page
# stopped here, saying that nothing matched the window and its filters).
in_window = doc["window"]["n"] or (counted != "requests" and widgets.cached(
    explore.request_count, engine, window))
if not in_window:
    if counted == "requests":  # none at all: say when there are some
        widgets.no_requests_in_window(engine, window, "pages/explore.py")
    widgets.empty_state(f"No {counted} in this window",
                        "Nothing matches the window and the sidebar's filters. Widen the window "
                        "under **Change the windows** above, or the time range or filters in "
                        "the sidebar.")
    st.stop()
if not doc["window"]["n"]:
    st.info(f"None of the {formatting.plural(in_window, 'request')} in the window "
            + ("has a price (their models are listed on the **Data** page, with the overrides "
               "that would price them)" if metric == "cost_per_request"
               else "has a latency logged")
            + f": {LABEL[metric].lower()} has nothing to compare. Pick another metric above; "
            "the chart, the error fingerprints and the requests below hold them.",
            icon=":material/info:")
else:
    st.info(widgets.md_escape(explore.headline(doc)), icon=":material/troubleshoot:")
    no_baseline = not doc["baseline"]["n"]
    if explore.thin_baseline(doc) and not no_baseline:  # (the headline says there is none)
        st.warning(f"The baseline holds only {formatting.count(doc['baseline']['n'])} requests "
                   f"against {formatting.count(doc['window']['n'])} in the window (before the "
                   "store's data began, or a quiet time): the comparison says little. Pick a "
                   "baseline with traffic under **Change the windows**.", icon=":material/warning:")

    unit = {"error_rate": "ratio", "p95_latency": "ms", "cost_per_request": "usd"}[metric]
    k1, k2, k3 = st.columns(3)
    k1.metric(f"{LABEL[metric]} in the window",
              formatting.by_unit(doc["window"]["value"], unit),
              formatting.delta(doc["window"]["value"], doc["baseline"]["value"], unit),
              # (grey when the headline says the change is within noise, or too little to tell, as
              # the Overview's tiles)
              delta_color="off" if explore.within_noise(doc) or explore.untested(doc)
              else "inverse", border=True)
    k2.metric(f"{LABEL[metric]} in the baseline",
              formatting.by_unit(doc["baseline"]["value"], unit), border=True)
    # (one figure per card: "69.1k / 69.0k" was cut short at a laptop's width)
    # n: the requests the metric is computed on (priced ones for cost, timed ones for latency)
    k3.metric(f"{counted[:1].upper()}{counted[1:]} in the window",
              formatting.count(doc["window"]["n"]),
              f"{formatting.count(doc['baseline']['n'])} in the baseline", delta_color="off",
              delta_arrow="off", border=True)

    contrib = explore.changes_frame(doc)
    if no_baseline:
        # nothing changed from anything: an order of the values would be alphabetical, and its
        # first one no finding to filter on
        st.caption(f"Nothing to rank without a baseline: pick one with {counted} under **Change "
                   "the windows**.")
    elif contrib.is_empty():
        st.caption("No dimension values to rank.")
    else:
        fmt = {"error_rate": lambda v: formatting.pct(v, 1), "p95_latency": formatting.ms,
               "cost_per_request": formatting.usd}[metric]
        top = contrib.head(20).with_columns(
            pl.col("dimension").map_elements(dim_label, return_dtype=pl.String).alias("Dimension"),
            pl.col("baseline_value").map_elements(fmt, return_dtype=pl.String).fill_null("–")
            .alias("Baseline"),
            pl.col("window_value").map_elements(fmt, return_dtype=pl.String).fill_null("–")
            .alias("Window"),
            (pl.col("contribution") - pl.col("window_share")).alias("beyond"))
        if explore.within_noise(doc):
            st.caption("The overall change is within noise (see above): what the values "
                       "below \"explain\" is noise too, and a small change makes those "
                       "percentages large.")
        elif explore.untested(doc):
            st.caption("Too few requests to tell the overall change from noise (see above): what "
                       "the values below \"explain\" may be noise too.")
        elif (top["contribution"].abs().max() or 0) > 1:
            st.caption("A value can explain more than 100% of the change when others moved the "
                       "other way.")
        widgets.dataframe(
            # the ranking's own columns first: at a laptop's width the last ones scroll away
            top.select("Dimension", "value", "contribution", "beyond", "Baseline", "Window",
                       "baseline_share", "window_share"),
            hide_index=True, width="stretch",
            column_config={
                "value": st.column_config.TextColumn("Value"),
                "baseline_share": st.column_config.NumberColumn("Share of baseline",
                                                                format="percent"),
                "window_share": st.column_config.NumberColumn("Share of window", format="percent"),
                # (a number: a bar from −100% to +100% drew 0% half full)
                "contribution": st.column_config.NumberColumn(
                    "Explains (of the change)", format="percent",
                    help="The segment's part of the change: its share × (its value − the "
                         "baseline's overall value), window minus baseline, over the change of the "
                         "metric (lib/metrics/explore.py); negative: it moved the other way"),
                "beyond": st.column_config.NumberColumn(
                    "Beyond its size", format="percent",
                    help="Explains − share of window: the ranking key (lib/metrics/explore.py)"),
            })
        if contrib.height > top.height:
            st.caption(f"The {top.height} values explaining most are shown; the downloads hold "
                       f"all {contrib.height:,}.")
        widgets.downloads(contrib, f"what_changed_{metric}", key="dl_changes", filters=window)
        # The first value with requests in the window: filtering on one that has none (it left
        # with the baseline) would show an empty page.
        present = contrib.filter(pl.col("window_share") > 0)
        if present.height:
            first = present.row(0, named=True)
            # (a button's label is markdown: a value from the logs is escaped, and so is the
            # dimension, which may be an attribute key from the logs: "__v__" read as a bold "v")
            st.button(f"Filter on {widgets.md_escape(dim_label(first['dimension']).lower())} = "
                      f"{widgets.md_escape(first['value'])}",
                      key="ex_filter_top", icon=":material/filter_alt:",
                      help="Add this value to the sidebar's filters (it stays in the URL)",
                      on_click=ui_filters.add_filter,
                      args=(DIMENSIONS.get(first["dimension"], first["dimension"]),
                            [first["value"]]))
    st.caption("Ranked by how much more of the change a value explains than its share of requests "
               "would (see `python -m lib changes --help` and lib/metrics/explore.py). "
               + ("Error type and finish reason are not ranked for the error rate: see the "
                   "fingerprints below." if metric == "error_rate" else ""))

# -- the metric over baseline + window, drill-down on it ---------------------------------------
span = window.with_window(min(baseline.start, window.start), max(baseline.end, window.end))
seconds = bucket_seconds(span.duration)
axis = widgets.time_axis(f, seconds, span.start, span.end)
with st.spinner("Loading the time series…"):
    series = widgets.cached(overview.timeseries, engine, span, seconds)
    events = widgets.cached(overview.events, engine, span)
col, title, yfmt = {"error_rate": ("error_rate", "error rate (%)", ".1%"),
                    "p95_latency": ("p95_ms", "p95 latency (ms)", None),
                    "cost_per_request": ("cost_per_request", "USD per request", "$,.4f")}[metric]
fig = time_figure(series, "bucket", [(col, LABEL[metric])],
                  y_title=f"{title} per {bucket_label(seconds)}", events=events, **axis,
                  uncertain={"p95_ms": "p95_uncertain", "error_rate": "rate_uncertain",
                             "cost_per_request": "cost_per_request_uncertain"},
                  y_format=yfmt)
shade_windows(fig, (window.start, window.end), (baseline.start, baseline.end), axis["tz"])
event = widgets.chart(fig, series, key="ex_series", name=f"{metric}_over_time", filters=span,
                      on_select=True)
st.caption("Select a region (drag) to study it as the new window. Hollow points: too few "
           f"requests in the bucket (under {MIN_REQUESTS_FOR_RATE} for a rate, "
           f"{MIN_ROWS_FOR_PERCENTILE[0.95]} for a p95).")
sel = drilldown.selection_window(event, axis["tz"], seconds) if event else None
if sel and drilldown.window_param(*sel) != widgets.query_value("window"):
    st.query_params["window"] = drilldown.window_param(*sel)
    if "baseline" in st.query_params:
        del st.query_params["baseline"]
    st.rerun()

# -- error fingerprints ------------------------------------------------------------------------
st.subheader("Error fingerprints")
fps = widgets.cached(explore.fingerprints, engine, window)
if fps.is_empty():
    st.success("No errors in this window.")
else:
    # the example request one click away, first as in the request table (a new tab; shareable)
    # (the example is the first of its fingerprint: at first_seen)
    linked = widgets.with_request_links(fps.rename({"example_request_id": "request_id"}), f,
                                        at="first_seen")
    widgets.dataframe(
        linked.with_columns(
            pl.col("first_seen").dt.convert_time_zone(f.tz),
            pl.col("last_seen").dt.convert_time_zone(f.tz)),
        hide_index=True, width="stretch",
        column_config={
            "error_type": "Error type", "fingerprint": st.column_config.TextColumn(
                "Message (normalized)", help="Numbers, ids, quoted strings replaced"),
            "errors": st.column_config.NumberColumn("Errors", format="localized"),
            "share": st.column_config.ProgressColumn("Share of errors", format="percent",
                                                     min_value=0, max_value=1),
            "first_seen": st.column_config.DatetimeColumn(f"First seen ({f.tz})",
                                                          format="YYYY-MM-DD HH:mm:ss"),
            "last_seen": st.column_config.DatetimeColumn(f"Last seen ({f.tz})",
                                                         format="YYYY-MM-DD HH:mm:ss"),
            "providers": "Providers", "request_id": "Example request",
            "link": widgets.LINK_COLUMN})
    widgets.downloads(fps, "error_fingerprints", key="dl_fps", filters=window)

# -- request table ---------------------------------------------------------------------------
st.subheader("Requests")
c1, c2, c3, c4 = st.columns([2, 1.3, 1.3, 1.1])  # ("Descending", "Errors only" in full)
with c1:
    q = widgets.query_text("Search prompts, responses and errors", "q", key="ex_q",
                           placeholder="text in the prompt, response or error message, or a "
                                       "request id")
with c2:
    sort = widgets.query_selectbox("Sort by", list(explore.SORTABLE), "sort", "ts",
                                   format_func=lambda s: explore.SORTABLE[s], key="ex_sort")
with c3:
    order = widgets.query_selectbox("Order", ["desc", "asc"], "order", "desc", key="ex_order",
                                    format_func=lambda o: "Descending" if o == "desc"
                                    else "Ascending")
with c4:
    if widgets.url_moved("ex_errors", "errors"):
        st.session_state["ex_errors"] = widgets.query_value("errors") == "1"
    errors_only = st.toggle("Errors only", key="ex_errors")
    if errors_only and st.query_params.get("errors") != "1":
        st.query_params["errors"] = "1"
    elif not errors_only and "errors" in st.query_params:
        del st.query_params["errors"]
    widgets.url_seen("ex_errors", "errors")
table_f = window.with_value("status", ["error"]) if errors_only else window
with st.spinner("Counting…"):
    total = widgets.cached(explore.request_count, engine, table_f, q or None)
PAGE = 50
# a rolling window ("Last 7 days") is the same query when the clock's minute turns and its end
# moves on (the next page, clicked then, opened the first)
span = table_f.preset if table_f.preset != "custom" else (table_f.start, table_f.end)
query = (q, errors_only, sort, order, span, table_f.values)
pages = max(1, -(-total // PAGE))
try:
    page_no = min(max(int(widgets.query_value("page", "1")), 1), pages)
except ValueError:
    page_no = 1
if total == 0:
    widgets.empty_state("No request matches",
                        "Clear the search, turn off *Errors only*, or widen the window.")
else:
    p1, p2 = st.columns([1, 5])
    with p1:
        # from the URL on the first run and after Back / Forward; within the pages there are
        # (fewer after "Errors only", say)
        if widgets.url_moved("ex_page", "page") or st.session_state["ex_page"] > pages:
            st.session_state["ex_page"] = page_no
        elif st.session_state.get("ex_rows_asked", query) != query:
            # a new search, order or "Errors only" starts on its first page (on page 10 of
            # the week, a search opened on its 10th: its newest matches nine pages back)
            st.session_state["ex_page"] = 1
        st.session_state["ex_rows_asked"] = query
        page_no = int(st.number_input(f"Page (of {pages:,})", 1, pages, key="ex_page"))
    if str(page_no) != st.query_params.get("page", "1"):
        st.query_params["page"] = str(page_no)
    widgets.url_seen("ex_page", "page")
    noun = "request" if total == 1 else "requests"
    p2.caption(f"{total:,} {noun} · showing {(page_no - 1) * PAGE + 1:,}–"
               f"{min(page_no * PAGE, total):,}; only this page is sent to the browser.")
    rows = widgets.cached(explore.request_page, engine, table_f, q or None, sort,
                          order == "desc", PAGE, (page_no - 1) * PAGE)
    picked = widgets.dataframe(
        widgets.for_display(widgets.with_request_links(rows, f).with_columns(
            pl.col("ts").dt.convert_time_zone(f.tz)), ("latency_ms", "ttft_ms")),
        hide_index=True, width="stretch", key="ex_table", on_select="rerun",
        selection_mode="single-row",
        column_config={
            "ts": st.column_config.DatetimeColumn(f"Time ({f.tz})",
                                                  format="YYYY-MM-DD HH:mm:ss"),
            "latency_ms": st.column_config.NumberColumn("Latency (ms)", format="localized"),
            "ttft_ms": st.column_config.NumberColumn(
                "TTFT (ms)", format="localized", help="Time to first token (streaming calls)"),
            "cost_usd": st.column_config.NumberColumn(
                "Cost (USD)", format=formatting.usd_column_format(rows["cost_usd"], decimals=5)),
            "request_id": "Request", "status": "Status", "error_type": "Error type",
            "provider": "Provider", "model": "Model", "feature": "Feature",
            "customer_id": "Customer", "prompt_version": "Prompt version",
            "app_version": "App version",
            "session_id": "Session",
            "input_tokens": st.column_config.NumberColumn("Input tokens", format="localized"),
            "output_tokens": st.column_config.NumberColumn("Output tokens", format="localized"),
            "prompt": st.column_config.TextColumn("Prompt (start)", width="large"),
            "link": widgets.LINK_COLUMN})
    o1, o2 = st.columns([3, 1])
    with o1:
        # one option a row: two rows of one id (a source's ids repeating days apart) were two
        # like options, either opening the same request; such an id is told by its time
        options, label = widgets.request_choices(rows, f.tz)  # (id, time): a row
        picked_row = picked.selection.rows[0] if picked and picked.selection.rows else 0
        choice = st.selectbox(
            "Open a request", options, index=picked_row if options else None,
            key="ex_open_id", format_func=label)
        rid, at = choice if choice is not None else (None, None)
    with o2:
        st.write("")
        # A link, not a button that switches page: the browser then gets one history entry
        # (a switch with a new query made two, and Back went to a view of neither page).
        # The view it leaves (window, errors only, page) is the Request page's way back.
        st.session_state[widgets.BACK_TO_EXPLORE] = (rid, {k: st.query_params.get_all(k)
                                                           for k in st.query_params.keys()})
        widgets.page_link("pages/request.py", "Open request",
                          {**f.to_query(), **widgets.request_query(rid, at)},
                          icon=":material/open_in_new:")
    widgets.export_downloads(
        lambda fmt: explore.export_requests(engine, table_f, q or None, sort, order == "desc",
                                            fmt),
        "requests", key="dl_requests", filters=table_f)
