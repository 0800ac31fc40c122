"""Drift: how the requests' inputs, outputs and mix moved from a reference window to the current
one, column by column, with the tests of design §5; and one column's two distributions."""

import math
from zoneinfo import ZoneInfo

import polars as pl
import streamlit as st

from lib import formatting
from lib.analysis_charts import shares_figure
from lib.metrics import drift
from lib.metrics.dims import DIMENSIONS
from lib.metrics.dims import label as dim_label
from lib.ui import filters as ui_filters
from lib.ui import store, widgets

engine = store.engine()
f = ui_filters.current()

st.title("Drift")
widgets.problems_banner(engine)  # (rows of unreadable files are left out of every number below)
widgets.stop_if_no_requests(
    engine, "Drift compares the requests of a window with those of a reference window.")

ref_kind = widgets.query_selectbox("Reference", list(drift.REFERENCES), "reference", "previous",
                                   format_func=lambda k: drift.REFERENCES[k][0],
                                   key="drift_reference")
reference = drift.reference_window(f, ref_kind)
st.caption(f"**Current** {widgets.window_caption(f.start, f.end, f.tz)} · **reference** "
           f"{widgets.window_caption(reference.start, reference.end, f.tz)}, with the sidebar's "
           "filters on both")
if shared := drift.reference_overlap(f, reference):
    st.warning(f"The reference overlaps the current window by {formatting.duration(shared)}: "
               "the requests of those days are on both sides, compared with themselves, so a "
               "drift shows smaller than it is. Choose *The period just before*, or a time "
               "range no longer than the reference lies back.", icon=":material/warning:")
covered, first = widgets.cached(drift.reference_coverage, engine, reference)
if first is not None and covered < 0.9:  # (as the Overview's: 90% is like-for-like)
    began = first.astimezone(ZoneInfo(f.tz)).strftime("%Y-%m-%d %H:%M")
    if covered <= 0:  # ("Only 0 s of the reference's 7 days", "that part stands for…")
        st.warning(f"The reference has no data: the store's requests begin at {began} {f.tz}, "
                   "after it ends, so nothing can be compared. Choose a reference the store "
                   "covers, or a shorter time range.", icon=":material/warning:")
    else:
        # (a length, not a share: 27 minutes of a week read "0%")
        st.warning(f"Only {formatting.duration(reference.duration * covered)} of the "
                   f"reference's {formatting.duration(reference.duration)} have data: the "
                   f"store's requests begin at {began} {f.tz}. That part stands for the whole "
                   "reference (its hours and weekdays only), and a drift may be no more than "
                   "that. Choose a reference the store covers.", icon=":material/warning:")
widgets.freshness_note(engine, f)

with st.spinner("Testing every column…"):
    table = widgets.cached(drift.drift_table, engine, f, reference)
if table["n_cur"].max() == 0:
    widgets.no_requests_in_window(engine, f, "pages/drift.py")

drifting = table.filter(pl.col("status") == "drift")
unseen = table.filter(pl.col("unseen_status") == "alert")
too_few = table.filter(pl.col("status") == "insufficient data")
if drifting.height:
    st.warning("Drifted: " + ", ".join(widgets.md_escape(v) for v in drifting["label"]) + ".",
               icon=":material/compare_arrows:")
elif too_few.height == table.height:  # design §5: too few rows is never "no drift"
    st.info("Too few rows to test any column (at least 30 a side): widen the time range or "
            "clear some filters.", icon=":material/help:")
else:
    st.success("No column drifted from the reference"
               + ("." if not too_few.height else
                  f" among the {table.height - too_few.height} tested; "
                  f"{formatting.plural(too_few.height, 'column')} had too few rows ("
                  + ", ".join(widgets.md_escape(v) for v in too_few["label"]) + ")."),
               icon=":material/check_circle:")
for row in unseen.iter_rows(named=True):
    st.warning(f"New values in {widgets.md_escape(row['label'])}: "
               f"{widgets.md_escape(row['unseen_values'] or '')} "
               f"({row['unseen_share']:.1%} of the current requests; the reference had none).",
               icon=":material/fiber_new:")


STATUS = {"drift": "drift", "no drift": "no drift", "insufficient data": "too few rows"}


def statistic_text(value, p_value, threshold, status) -> str:
    """The Statistic column's text: the value, and a distance's cut-off."""
    if status == "insufficient data":
        return "–"
    # A distance against a constant reference is infinite (None in the table, which strict
    # JSON has no Infinity for): a "drift" beside "–" said nothing of why (found in review).
    shown = "∞ (constant reference)" if value is None else formatting.number(value, 4)
    if p_value is not None:
        return shown
    if math.isinf(threshold):
        return f"{shown} (no cut-off: a few rare values)"
    return f"{shown} (drift ≥ {threshold:.3g})"

# What a person reads, as text (no "None" for what a test does not give); the download keeps
# the numbers.
shown = pl.DataFrame({
    "Column": table["label"],
    "Status": [STATUS.get(v, v) for v in table["status"]],
    "Median (reference → current)": [
        "–" if a is None else f"{formatting.number(a)} → {formatting.number(b)}"
        for a, b in zip(table["median_ref"], table["median_cur"], strict=True)],
    "Largest share change": table["largest_change"].fill_null("–"),
    # a distance's cut-off is raised above noise where needed (lib.stats), so show it
    "Statistic": [statistic_text(v, p, t, s) for v, p, t, s in zip(
        table["statistic"], table["p_value"], table["threshold"], table["status"],
        strict=True)],
    "PSI": ["–" if v is None else f"{v:.3f} ({lvl})"
            for v, lvl in zip(table["psi"], table["psi_status"], strict=True)],
    "p (BH)": ["–" if v is None else f"{v:.3g}" for v in table["p_adjusted"]],
    "Unseen values": ["–" if v is None else f"{v:.1%}" for v in table["unseen_share"]],
    # (no test ran on too few rows: none named)
    "Test": [("–" if s == "insufficient data" else m)
             for s, m in zip(table["status"], table["method"], strict=True)],
    "Rows (reference → current)": [f"{a:,} → {b:,}" for a, b in
                                   zip(table["n_ref"], table["n_cur"], strict=True)]})
widgets.dataframe(shown, hide_index=True, width="stretch", column_config={
    "Statistic": st.column_config.TextColumn(
        "Statistic", help="The test's value: a distance (Wasserstein ÷ the reference's std, or "
                          "Jensen–Shannon; drift from 0.1, or from what sampling noise passes "
                          "1% of the time at these sizes where that is higher, as with "
                          "heavy-tailed numbers or many rare values), or the KS D / chi-square "
                          "/ |z|"),
    "PSI": st.column_config.TextColumn(
        "PSI", help="Population stability index on the reference's deciles, graded apart from "
                    "the test: warn ≥ 0.1, alert ≥ 0.25, when above what sampling noise "
                    "reaches 99% of the time at these sizes"),
    "p (BH)": st.column_config.TextColumn(
        "p (BH)", help="The test's p-value, Benjamini–Hochberg adjusted over the columns tested "
                       "together (when a window has 1,000 rows or fewer: with more on both "
                       "sides, a column is compared by a distance)"),
    "Unseen values": st.column_config.TextColumn(
        "Unseen values", help="Share of the current window's requests with a value the "
                              "reference never had (alert above 1%)")})
widgets.downloads(table, f"drift_vs_{ref_kind}", key="dl_drift")
st.caption("Numeric columns: Kolmogorov–Smirnov when either window has 1,000 rows or fewer, "
           "else (over 1,000 on both sides) the Wasserstein distance over the reference's "
           "standard deviation (drift from 0.1, or, when higher, from the distance it passes in "
           "1% of random splits of the two windows' values: heavy tails such as latency's and "
           "cost's); categorical columns: chi-square (a z test for two values), else the "
           "Jensen–Shannon distance (drift from 0.1, or from the distance sampling noise passes "
           "1% of the time at these sizes, when higher). A distance is used "
           "only when both windows are large: between a large reference and a small window it "
           "passes 0.1 on sampling noise alone. Fewer than 30 rows on a side: too few to say. "
           "Design §5, lib/stats/.")

# -- one column's distributions ------------------------------------------------------------------
st.subheader("Distributions")
columns = table["column"].to_list()  # drifting first
# by default the first drifting column, else the first one tested (one with too few rows, or
# none at all, would open on an empty chart)
tested = table.filter(pl.col("status") != "insufficient data")["column"].to_list()
column = widgets.query_selectbox("Column", columns, "column", (tested or columns)[0],
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
    widgets.downloads(dist, f"drift_{column}_vs_{ref_kind}", key="dl_drift_dist")
    st.caption("Each bar: the share of the window's requests in the bucket. "
               + ("Buckets are the reference's deciles, so its bars are about 10% each (a value "
                  "many requests share makes its bucket larger); a shift shows as the current "
                  "bars leaning to one side." if numeric else
                  "The 12 values largest on either side; the rest as *(other)*."))

    if numeric:
        st.subheader("Where it moved")
        dims = list(DIMENSIONS)
        by = widgets.query_selectbox("By", dims, "by", "feature", format_func=dim_label,
                                     key="drift_by")
        with st.spinner("Loading…"):
            moved = widgets.cached(drift.where_it_moved, engine, f, reference, column, by)
        # (a cost's medians are sub-cent: "localized" read them as 0)
        shown_as = formatting.usd_column_format(moved["median_ref"].to_list()
                                                + moved["median_cur"].to_list()) \
            if column == "cost_usd" else "localized"
        widgets.dataframe(moved, hide_index=True, width="stretch", column_config={
            "value": dim_label(by),
            "n_ref": st.column_config.NumberColumn("Reference rows", format="localized"),
            "n_cur": st.column_config.NumberColumn("Current rows", format="localized"),
            "median_ref": st.column_config.NumberColumn("Median, reference",
                                                        format=shown_as),
            "median_cur": st.column_config.NumberColumn("Median, current",
                                                        format=shown_as)})
        widgets.downloads(moved, f"drift_{column}_by_{by}", key="dl_drift_by")
        st.caption(f"Medians of {drift.label(column)[:1].lower()}{drift.label(column)[1:]}. "
                   "The value whose median moved is where to look: filter on it in the sidebar "
                   "to see its drift alone.")

