"""Request: every field of one request, its prompt and response as escaped text, its trace as a
waterfall, its evals and feedback, and the other requests of its session."""

import json
from datetime import datetime

import polars as pl
import streamlit as st

from lib import formatting, pricing
from lib.analysis_charts import waterfall
from lib.metrics import requests as rq
from lib.ui import filters as ui_filters
from lib.ui import store, widgets

engine = store.engine()
f = ui_filters.current()


def _open_request(request_id: str) -> None:
    """Show ``request_id`` on this page (a button's on_click: the id box and URL follow)."""
    st.session_state["rq_id"] = request_id
    st.query_params["request"] = request_id


st.title("Request")
widgets.problems_banner(engine)  # (rows of unreadable files are left out of every number below)
rid = widgets.query_text("Request id", "request", key="rq_id",
                         placeholder="paste a request id, or open one from Explore").strip()
# (an id pasted with the space or line break around it, as a chat or a terminal gives it, was
# "No such request")
# only for the request Explore opened (not one pasted here later in the session)
opened, back = st.session_state.get(widgets.BACK_TO_EXPLORE) or (None, None)
if back and rid and opened == rid:
    widgets.page_link("pages/explore.py", "Back to Explore", back, icon=":material/arrow_back:")
if not rid:
    widgets.empty_state("No request selected",
                        "Open a request from the request table on **Explore** (or the slowest "
                        "requests on **Latency**), or paste its id above. The id is kept in the "
                        "URL (`?request=…`), so the link opens this request again.")
    st.stop()

at = None
same_id = rq.namesakes(engine, rid)
if same_id.height > 1:
    # An id stored more than once (a source's ids repeating days apart): which one is shown
    # is said and picked, and kept in the URL (``at``) as the tables' links give it. The newest
    # stood for all of them, and a failed call's link could open a successful one.
    times = [widgets.request_at(t) for t in same_id["ts"].to_list()]
    shown_as = {iso: f"{formatting.wall_time(t, f.tz)} · "
                     f"{widgets.shown_str(s or 'unknown')}"
                for iso, t, s in zip(times, same_id["ts"].to_list(),
                                     same_id["status"].to_list(), strict=True)}
    # Without a time in the link (one opened from the Quality page's judged requests, or
    # pasted), the newest in the sidebar's window: the link's filters name the view it was
    # opened from, and the newest of all was a request days after it (found in review).
    in_window = [iso for iso, t in zip(times, same_id["ts"].to_list(), strict=True)
                 if f.start <= t < f.end]
    picked = widgets.query_selectbox(
        f"This id names {same_id.height:,} requests: the one at", times, "at",
        (in_window or times)[0],
        format_func=shown_as.get, key="rq_at")
    at = datetime.fromisoformat(picked)
with st.spinner("Loading the request…"):
    r = rq.detail(engine, rid, at)
if r is None:
    counted = rq.counted_as(engine, rid)
    if counted is not None:
        # A span id from another tool: the span recorded a call that is counted under its own id.
        st.info("This span recorded the same model call as another request, around it "
                "(another instrumentation of that call): the call is counted once, as the "
                "request below.")
        # an id from a log: shown as text, never Markdown
        st.code(widgets.shown_str(counted), language=None)
        st.button("Open that request", key="rq_open_counted", on_click=_open_request,
                  args=(counted,))
        st.stop()
    widgets.empty_state("No such request",
                        "No request with this id is in the store. Check the id, or look for it "
                        "with the search on **Explore**.")
    st.stop()

zone = f.tz
status = r["status"] or "unknown"
badge = (":green-badge[ok]" if status == "ok" else
         f":red-badge[{widgets.md_escape(status)}] {widgets.md_escape(r['error_type'] or '')}")
who = " · ".join(f"{label} **{widgets.md_escape(r[col])}**" for label, col in (
    ("provider", "provider"), ("model", "model"), ("feature", "feature"),
    ("customer", "customer_id"), ("app", "app_version"), ("prompt", "prompt_version"))
    if r.get(col))
st.markdown(f"{badge} · {formatting.wall_time(r['ts'], zone)} · {who}")

c = st.columns(5)
c[0].metric("Latency", formatting.ms(r["latency_ms"]), border=True)
c[1].metric("Time to first token", formatting.ms(r["ttft_ms"]), border=True,
            help="Streaming calls only")
c[2].metric("Cost", formatting.usd(r["cost_usd"]), border=True,
            help=("empty, not $0: its log has no input token count"
                  if r["input_tokens"] is None
                  else "empty, not $0: the model has no known price (see Data; overrides in "
                       f"{pricing.overrides_name()})")
            if r["cost_usd"] is None else
            f"as logged by the source: {formatting.usd(r['logged_cost_usd'])}")
c[3].metric("Input tokens", formatting.count(r["input_tokens"]), border=True,
            help=f"{r['cached_input_tokens'] or 0:,} cached, {r['cache_write_tokens'] or 0:,} "
                 "written to the cache"
                 + (f" ({r['cache_write_1h_tokens']:,} of them for an hour)"
                    if r.get("cache_write_1h_tokens") else ""))
c[4].metric("Output tokens", formatting.count(r["output_tokens"]), border=True,
            help=f"{r['reasoning_tokens'] or 0:,} reasoning")

# Prompt and response: shown as code blocks, i.e. as text. Nothing from a log is ever rendered
# as Markdown or HTML here. Bidi controls are shown as escapes (shown_str), as every table
# shows them: a response "live\u202eevil" read "livelive"; the downloads keep them.
left, right = st.columns(2)
with left:
    st.subheader("Prompt")
    if r["input_text"] is None:
        st.caption("No prompt text was logged (or it was masked).")
    else:
        st.code(widgets.shown_str(r["input_text"]), language=None, wrap_lines=True)
with right:
    st.subheader("Response")
    if r["output_text"] is None:
        st.caption("No response text was logged" + (" (the call failed)."
                                                   if r["status"] == "error" else "."))
    else:
        st.code(widgets.shown_str(r["output_text"]), language=None, wrap_lines=True)
if r.get("error_message"):
    st.caption("Error message")
    st.code(widgets.shown_str(r["error_message"]), language=None, wrap_lines=True)

st.subheader("Trace")
spans = rq.trace(engine, r["trace_id"])
if spans.is_empty():
    st.caption("No spans were logged for this request's trace (only agent and tool-calling "
               "flows usually have them).")
else:
    drawn, start = rq.drawn_part(spans, rid)
    st.plotly_chart(waterfall(drawn, this_span=rid, first=start + 1), key="rq_trace",
                    config={"displaylogo": False})
    st.caption("▶ marks this request's own span; the trace around it (agent, tools, other "
               "calls) can last longer than the request. Hatched red: a span that failed."
               + (f" {drawn.height:,} of its {spans.height:,} spans are drawn ({start + 1:,} to "
                  f"{start + drawn.height:,} in its order, around this request's); the downloads "
                  "hold them all." if drawn.height < spans.height else ""))
    # (named after the trace, not the sidebar's window, which does not select it; an id from a
    # log in a file name's characters: "projects/p/traces/1" made a path)
    widgets.downloads(spans, f"trace_{widgets.file_name_value(r['trace_id'])}", key="dl_trace",
                      windowed=False)
    around = rq.envelopes_of(engine, rid, r["trace_id"])
    if not around.is_empty():
        one = around.height == 1
        st.caption(f"{formatting.plural(around.height, 'span')} of this trace recorded this same "
                   "call around it (another instrumentation of it): "
                   f"{'it stays' if one else 'they stay'} in the trace and "
                   f"{'is' if one else 'are'} not counted as requests. What "
                   f"{'it' if one else 'they'} recorded:")
        widgets.dataframe(around, hide_index=True, width="stretch", column_config={
            "span_id": st.column_config.TextColumn("Span"),
            "name": st.column_config.TextColumn("Name"),
            "model": st.column_config.TextColumn("Model"),
            "input_tokens": st.column_config.NumberColumn("Input tokens", format="localized"),
            "output_tokens": st.column_config.NumberColumn("Output tokens",
                                                           format="localized")})

st.subheader("Evals and feedback")
ev = rq.evals_for(engine, rid)
if ev.is_empty():
    st.caption("No eval score or user feedback on this request.")
else:
    widgets.dataframe(ev.with_columns(pl.col("ts").dt.convert_time_zone(zone)), hide_index=True,
                 width="stretch", column_config={
                     "ts": st.column_config.DatetimeColumn(f"Scored ({zone})",
                                                           format="YYYY-MM-DD HH:mm:ss"),
                     "source": "Source", "metric": "Metric", "passed": "Passed",
                     "judge": "Judge", "label": "Label", "explanation": "Explanation",
                     "version": "Version",
                     "score": st.column_config.NumberColumn("Score", format="%.3f")})

st.subheader("Session")
sess = rq.session_requests(engine, r["session_id"], around=rid)
if sess.is_empty():
    st.caption("This request has no session id.")
else:
    size = rq.session_size(engine, r["session_id"])
    st.caption(f"{formatting.plural(size, 'request')} in session "
               f"{widgets.md_escape(r['session_id'])}"
               + (f"; the {sess.height:,} nearest in time to this one are listed" if size >
                  sess.height else ""))
    shown = widgets.for_display(sess.with_columns(pl.col("ts").dt.convert_time_zone(zone),
                                                  (pl.col("request_id") == rid).alias("this")),
                                ("latency_ms",))
    widgets.dataframe(shown.select("this", *sess.columns), hide_index=True,
                 width="stretch", column_config={
                     "this": st.column_config.CheckboxColumn("This one", width="small"),
                     "ts": st.column_config.DatetimeColumn(f"Time ({zone})",
                                                           format="YYYY-MM-DD HH:mm:ss"),
                     "request_id": "Request", "status": "Status", "feature": "Feature",
                     "model": "Model",
                     "latency_ms": st.column_config.NumberColumn("Latency (ms)",
                                                                 format="localized"),
                     "cost_usd": st.column_config.NumberColumn(
                         "Cost (USD)",
                         format=formatting.usd_column_format(sess["cost_usd"], decimals=5)),
                     "prompt": st.column_config.TextColumn("Prompt (start)", width="large")})
    others = [i for i in sess["request_id"].to_list() if i != rid]
    if others:
        s1, s2 = st.columns([3, 1])
        s1.selectbox("Open another request of this session", others, key="rq_next",
                     format_func=widgets.shown_str)
        s2.write("")
        s2.button("Open", key="rq_open",
                  on_click=lambda: _open_request(st.session_state["rq_next"]))

st.subheader("All fields")


def _shown(v) -> str:
    """A field's value as text; a time in the page's zone, saying so (it was UTC, unlabelled)."""
    if v is None:
        return ""
    if isinstance(v, datetime):
        return formatting.wall_time(v, zone, "%Y-%m-%d %H:%M:%S.%f")
    return json.dumps(v) if isinstance(v, (dict, list)) else str(v)


fields = pl.DataFrame({"field": list(r.keys()), "value": [_shown(v) for v in r.values()]})
widgets.dataframe(fields, hide_index=True, width="stretch", height=400,
             column_config={"field": "Field",
                            "value": st.column_config.TextColumn("Value", width="large")})
widgets.downloads(pl.DataFrame([r]), f"request_{widgets.file_name_value(rid)}",
                  key="dl_request", windowed=False)
if r["attributes"]:
    st.caption("Attributes")
    try:
        pretty = json.dumps(json.loads(r["attributes"]), indent=2, ensure_ascii=False)
    except ValueError:
        pretty = r["attributes"]
    st.code(widgets.shown_str(pretty), language="json")
