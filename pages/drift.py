"""Drift: how the requests' inputs, outputs and mix moved from a reference window to the current
one, column by column, with the tests of design §5; and one column's two distributions."""

from datetime import timedelta

import polars as pl
import streamlit as st

from lib.analysis_charts import shares_figure
from lib.metrics import drift
from lib.ui import filters as ui_filters
from lib.ui import store, widgets

engine = store.engine()
f = ui_filters.current()

st.title("Drift")
widgets.stop_if_no_requests(
    engine, "Drift compares the requests of a window with those of a reference window.")

REFERENCES = {"previous": "The period just before", "week": "The same window a week earlier"}
ref_kind = widgets.query_selectbox("Reference", list(REFERENCES), "reference", "previous",
                                   format_func=REFERENCES.get, key="drift_reference")
reference = f.previous() if ref_kind == "previous" else f.with_window(
    f.start - timedelta(days=7), f.end - timedelta(days=7))
st.caption(f"**Current** {widgets.window_caption(f.start, f.end, f.tz)} · **reference** "
           f"{widgets.window_caption(reference.start, reference.end, f.tz)}, with the sidebar's "
           "filters on both")
widgets.freshness_note(engine, f)

with st.spinner("Testing every column…"):
    table = widgets.cached(drift.drift_table, engine, f, reference)
if table["n_cur"].max() == 0:
    widgets.empty_state("No requests in this window",
                        "Nothing matches the time range and filters in the sidebar. Widen the "
                        "time range or clear some filters.")
    st.stop()

drifting = table.filter(pl.col("status") == "drift")
if drifting.height:
    st.warning("Drifted: " + ", ".join(widgets.md_escape(v) for v in drifting["label"]) + ".",
               icon=":material/compare_arrows:")
else:
    st.success("No column drifted from the reference.", icon=":material/check_circle:")

STATUS = {"drift": "drift", "no drift": "no drift", "insufficient data": "too few rows"}
shown = table.with_columns(pl.col("status").replace_strict(STATUS, default=pl.col("status")),
                           pl.col("largest_change", "psi_status").fill_null("–"))
# (what says most first: a 1,280 px screen shows up to the PSI level)
st.dataframe(
    shown.select("label", "status", "statistic", "psi", "psi_status", "largest_change",
                 "p_adjusted", "unseen_share", "method", "threshold", "n_ref", "n_cur"),
    hide_index=True, width="stretch", column_config={
        "label": "Column", "status": "Status", "method": "Test",
        "statistic": st.column_config.NumberColumn(
            "Statistic", format="%.4f",
            help="The test's value: a distance (Wasserstein ÷ the reference's std, or "
                 "Jensen–Shannon), or the KS / chi-square / z statistic"),
        "threshold": st.column_config.NumberColumn(
            "Threshold", format="%.2f",
            help="Drift from this distance on; for a test, the p-value below which it is drift"),
        "p_adjusted": st.column_config.NumberColumn(
            "p (BH)", format="%.3g",
            help="The test's p-value, Benjamini–Hochberg adjusted over the columns tested "
                 "together (small references only: large ones are compared by a distance)"),
        "psi": st.column_config.NumberColumn(
            "PSI", format="%.3f", help="Population stability index on the reference's deciles"),
        "psi_status": st.column_config.TextColumn(
            "PSI level", help="warn ≥ 0.1, alert ≥ 0.25, when above what sampling noise "
                              "reaches 99% of the time at these sizes"),
        "largest_change": "Largest share change",
        "unseen_share": st.column_config.NumberColumn(
            "Unseen values", format="percent",
            help="Share of the current window's requests with a value the reference never had "
                 "(alert above 1%)"),
        "n_ref": st.column_config.NumberColumn("Reference rows", format="localized"),
        "n_cur": st.column_config.NumberColumn("Current rows", format="localized")})
widgets.downloads(table, "drift", key="dl_drift")
st.caption("Numeric columns: Kolmogorov–Smirnov on references of up to 1,000 rows, else the "
           "Wasserstein distance over the reference's standard deviation (drift from 0.1); "
           "categorical columns: chi-square (a z test for two values), else the Jensen–Shannon "
           "distance (drift from 0.1). Fewer than 30 rows on a side: too few to say. "
           "Design §5, lib/stats/.")

# -- one column's distributions ------------------------------------------------------------------
st.subheader("Distributions")
columns = table["column"].to_list()  # drifting first
column = widgets.query_selectbox("Column", columns, "column", columns[0],
                                 format_func=drift.label, key="drift_column")
with st.spinner("Loading the distributions…"):
    dist = widgets.cached(drift.distribution, engine, f, reference, column)
if dist.is_empty():
    st.caption("No values of this column in the reference.")
else:
    numeric = column in drift.NUMERIC
    st.plotly_chart(shares_figure(
        dist, x_title=(f"{drift.label(column)}: the reference's deciles" if numeric
                       else drift.label(column))),
        key="drift_dist", config={"displaylogo": False})
    widgets.downloads(dist, f"drift_{column}", key="dl_drift_dist")
    st.caption("Each bar: the share of the window's requests in the bucket. "
               + ("Buckets are the reference's deciles, so its bars are about 10% each (a value "
                  "many requests share makes its bucket larger); a shift shows as the current "
                  "bars leaning to one side." if numeric else
                  "The 12 values largest on either side; the rest as *other*."))
