"""Cost: spend over time by any dimension, unit costs, token mix, cache savings, top customers
and features, month to date against budgets, and what-if re-pricing on another model."""

import polars as pl
import streamlit as st

from lib import drilldown, formatting, pricing
from lib.analysis_charts import hbar, long_time_figure
from lib.budgets import budgets_path, load_budgets
from lib.metrics import cost, overview
from lib.metrics.buckets import MIN_REQUESTS_FOR_RATE, bucket_label, bucket_seconds
from lib.metrics.dims import DIMENSIONS, attribute_keys
from lib.metrics.dims import label as dim_label
from lib.ui import filters as ui_filters
from lib.ui import store, widgets

engine = store.engine()
f = ui_filters.current()

st.title("Cost")
widgets.problems_banner(engine)  # (rows of unreadable files are left out of every number below)
st.caption(widgets.md_escape(f.describe())
           + " · amounts in US dollars (cost engine: genai-prices + "
           + widgets.md_escape(pricing.overrides_name()) + ")")
widgets.stop_if_no_requests(engine, "Cost is computed per request from its tokens.")
widgets.freshness_note(engine, f)
price_problem = pricing.overrides_problem()
if price_problem:
    st.error(f"The price overrides cannot be read: {price_problem}. Cache savings, the token "
             "mix and what-if need them. Fix the file (or $SIGHTLINE_PRICES), then run "
             f"`{pricing.reprice_command(engine.lake.root)}` if prices changed.")
    st.stop()

with st.spinner("Computing cost…"):
    tot = widgets.cached(cost.totals, engine, f)
    savings = widgets.cached(cost.cache_savings, engine, f)
if tot["requests"] == 0:
    widgets.no_requests_in_window(engine, f, "pages/cost.py")

k = st.columns(5)
k[0].metric("Spend", formatting.usd(tot["cost_usd"]), border=True,
            help=f"Of the {tot['priced_requests']:,} priced requests"
                 + (f"; the {tot['unpriced_requests']:,} without a price are not in it"
                    if tot["unpriced_requests"] else ""))
k[1].metric("Cost per request", formatting.usd(tot["cost_per_request_usd"]), border=True,
            help="Over priced requests")
k[2].metric("Cost per 1k requests", formatting.usd(tot["cost_per_1k_requests_usd"]), border=True)
k[3].metric("Cache savings", formatting.usd(savings), border=True,
            help="What cached input tokens would have cost at the full input price, minus what "
                 "they cost")
k[4].metric("Unpriced requests", formatting.count(tot["unpriced_requests"]), border=True,
            help="Requests whose model has no known price, or that succeeded without an "
                 "input token count (output tokens alone would cost too little): their cost "
                 "is empty, never $0. See the Data page.")

# -- spend over time by a dimension -------------------------------------------------------------
st.subheader("Spend over time")
dims = list(DIMENSIONS) + widgets.cached(attribute_keys, engine, f)
by = widgets.query_selectbox("Stack by", dims, "by", "model", format_func=dim_label,
                             key="cost_by", width=320)
seconds = bucket_seconds(f.duration)
axis = widgets.time_axis(f, seconds)
with st.spinner("Loading spend over time…"):
    spend = widgets.cached(cost.spend_over_time, engine, f, by, 8, seconds)
    events = widgets.cached(overview.events, engine, f)
fig = long_time_figure(spend, "bucket", "group", "cost_usd",
                       y_title=f"USD per {bucket_label(seconds)}", events=events, **axis,
                       kind="bar", y_format=formatting.usd_tick_format(
                           spend.group_by("bucket").agg(pl.col("cost_usd").sum())["cost_usd"]
                           .max()))
event = widgets.chart(fig, spend, key="cost_spend", name=f"spend_by_{by}", on_select=True)
# (the grouping may be an attribute key from the logs: "__v__" read as a bold "v")
st.caption(f"The 8 {widgets.md_escape(dim_label(by).lower())} values with the most spend are "
           "drawn, the rest as "
           "*(other)*; the downloads hold the same. Drag over the chart to explore that window."
           + widgets.unpriced_note(int(spend["unpriced_requests"].sum())))
sel = drilldown.selection_window(event, axis["tz"], seconds) if event else None
if sel:
    widgets.open_page("pages/explore.py", f,
        window=drilldown.window_param(*sel), metric="cost_per_request")

# -- token mix ----------------------------------------------------------------------------------
st.subheader("Token mix")
mix = widgets.cached(cost.token_mix, engine, f)
left, right = st.columns(2)
with left:
    st.plotly_chart(hbar(mix, "label", "tokens", x_title="tokens"), key="cost_mix_tokens",
                    config={"displaylogo": False})
with right:
    st.plotly_chart(hbar(mix, "label", "cost_usd", x_title="USD",
                         x_format=formatting.usd_tick_format(mix["cost_usd"].max()),
                         color="#e0533d"), key="cost_mix_usd", config={"displaylogo": False})
widgets.dataframe(mix.drop("kind"), hide_index=True, width="stretch", column_config={
    "label": "Kind", "tokens": st.column_config.NumberColumn("Tokens", format="localized"),
    "cost_usd": st.column_config.NumberColumn(
        "Cost (USD)", format=formatting.usd_column_format(mix["cost_usd"])),
    "token_share": st.column_config.NumberColumn("Share of tokens", format="percent"),
    "cost_share": st.column_config.NumberColumn("Share of cost", format="percent")})
widgets.downloads(mix, "token_mix", key="dl_mix")
mixed = float(mix["cost_usd"].sum())
gap = ("" if not tot["cost_usd"] or abs(mixed - tot["cost_usd"]) <= 0.01 * tot["cost_usd"]
       else f" Here they add to {formatting.usd(mixed)} of the {formatting.usd(tot['cost_usd'])} "
            "spent: web searches and per-call fees are billed beside the tokens, and costs "
            f"stored before a price change (see `{pricing.reprice_command(engine.lake.root)}`) "
            "differ from today's.")
st.caption("Input tokens include cached ones and output tokens include reasoning ones "
           "(docs/canonical.md); here each kind is counted once. Costs per kind use each model's "
           "unit prices at the time of the call (a long prompt's at its price tier's). Calls "
           "answered from the application's own cache cost nothing and are left out." + gap)

# -- spend by model, customer and feature --------------------------------------------------------
# (one under the other: side by side, a 1,280 px screen cut off their last column)
rank = widgets.query_selectbox(
    "Rank the tables below by", list(cost.RANKS), "rank", "spend", key="cost_rank", width=420,
    format_func={"spend": "Spend", "per_request": "USD per request"}.get,
    help="USD per request ranks the groups of at least "
         f"{MIN_REQUESTS_FOR_RATE} priced requests first: one expensive call is no customer's "
         "typical cost.")
for dim, title in (("model", "Spend by model"), ("customer", "Top customers"),
                   ("feature", "Top features")):
    with st.container():
        st.subheader(title if rank == "spend" else
                     f"{dim_label(dim)}s by USD per request")
        b = widgets.cached(cost.breakdown, engine, f, dim, 10, rank)
        # every row in view: the 11th, "(other)", is often the largest
        widgets.dataframe(b, hide_index=True, width="stretch", height=36 + 35 * b.height,
                     column_config={
            "group": dim_label(dim),
            "requests": st.column_config.NumberColumn("Requests", format="localized"),
            # a partial sum must say so: the group's unpriced requests are not in its spend
            "unpriced_requests": st.column_config.NumberColumn(
                "Unpriced", format="localized",
                help="Requests without a cost (a model with no price): not in the spend, "
                     "which is None when the group has no priced request. The Data page "
                     "lists the models.") if b["unpriced_requests"].sum() else None,
            "cost_usd": st.column_config.NumberColumn(
                "Spend (USD)", format=formatting.usd_column_format(b["cost_usd"])),
            "share": st.column_config.ProgressColumn("Share of spend", format="percent",
                                                     min_value=0, max_value=1),
            "cost_per_request_usd": st.column_config.NumberColumn(
                "USD per request", format=formatting.usd_column_format(
                    b["cost_per_request_usd"], decimals=5))})
        every = widgets.cached(cost.breakdown, engine, f, dim, None, rank)
        if every.height > b.height:
            st.caption(f"The downloads hold all {every.height:,} {dim_label(dim).lower()} "
                       "values, without *(other)*.")
        # ("spend_by_model" is the chart's over time)
        widgets.downloads(every.rename({"group": dim}), f"spend_table_by_{dim}"
                          + ("" if rank == "spend" else "_per_request"), key=f"dl_top_{dim}")

# -- budgets ------------------------------------------------------------------------------------
st.subheader("Month to date and projection")
try:
    budgets = load_budgets()
except ValueError as exc:
    st.error(f"The budgets file cannot be read: {exc}")
    budgets = []
if not budgets:
    widgets.empty_state("No budgets", f"Add monthly budgets to `{budgets_path()}` (see the "
                        "example `budgets.yaml` at the repository root), or point "
                        "`SIGHTLINE_BUDGETS` at your file.")
else:
    at = cost.budget_instant(f.end)
    mtd = widgets.cached(cost.month_to_date, engine, f, budgets, at)
    month = cost.budget_month(at)
    st.caption(f"UTC calendar month of the window's end ({month:%B %Y}), up to "
               f"{widgets.window_caption(at, at, 'UTC').split(' → ')[0]} UTC"
               f"{' (now: the window ends later)' if at < f.end else ''}. "
               "Projection (from a day of data on) = month to date + its run rate over the rest "
               "of the month. Budgets use their own scope from "
               f"`{budgets_path().name}`, not the sidebar's filters.")
    since = mtd["since"][0] if mtd.height else None
    if since is not None and since > month:
        st.caption(f"The store's requests start on {since:%B %-d, %H:%M} UTC: the run rate is "
                   "taken from then, and the month to date holds no spend from before it.")
    # status beside the budget's name: at a laptop's width the last columns scroll away
    shown = mtd.with_columns(pl.col("status").replace(
        {"ok": "on track", "warn": "near budget", "over": "over budget",
         "unpriced": "unknown: unpriced requests"}))
    widgets.dataframe(shown.select("budget", "status", *[c for c in shown.columns
                                                    if c not in ("budget", "status", "since")]),
        hide_index=True, width="stretch", column_config={
            "budget": "Budget", "scope": "Scope",
            "monthly_usd": st.column_config.NumberColumn("Monthly budget", format="dollar"),
            "mtd_usd": st.column_config.NumberColumn("Month to date", format="dollar"),
            "projected_usd": st.column_config.NumberColumn("Projected month", format="dollar"),
            "projected_share": st.column_config.ProgressColumn(
                "Projected / budget", format="percent", min_value=0, max_value=1.5),
            "status": "Status",
            "unpriced_requests": st.column_config.NumberColumn(
                "Unpriced requests", format="localized",
                help="Requests in the budget's scope this month with no price (a model "
                     f"genai-prices and {pricing.overrides_name()} do not know): not in the "
                     "month to date; "
                     "the Data page lists them")})
    widgets.downloads(mtd, "budgets", key="dl_budgets")

# -- what-if ------------------------------------------------------------------------------------
st.subheader("What if this traffic ran on another model?")
targets = widgets.cached(cost.whatif_targets, engine, f)
if not targets:
    st.caption("No priced model to compare with.")
else:
    labels = [f"{p}/{m}" for p, m in targets]
    choice = widgets.query_selectbox("Re-price on", labels, "whatif", "openai/gpt-4o-mini",
                                     key="cost_whatif", width=420)
    provider, model = choice.split("/", 1)
    try:
        wi = widgets.cached(cost.what_if, engine, f, provider, model)
    except LookupError as exc:
        st.warning(str(exc))
    else:
        # Like with like: the priced requests on both sides (lib/metrics/cost.what_if).
        priced = wi.filter(pl.col("cost_usd").is_not_null())
        unpriced = int(wi["unpriced_requests"].sum())
        w = st.columns(3)
        if priced.is_empty():  # nothing has an actual cost: unknown, not $0
            actual = alt = diff = None
        else:
            actual, alt = priced["cost_usd"].sum(), priced["whatif_cost_usd"].sum()
            diff = cost.whatif_difference(actual, alt)
        w[0].metric("Actual spend", formatting.usd(actual), border=True)
        # (a label is markdown: the model may be a name from the logs, priced by an override)
        w[1].metric(f"On {widgets.md_escape(model)}", formatting.usd(alt), border=True)
        w[2].metric("Difference", "–" if diff is None else "$0.00 (the same)" if diff == 0 else
                    ("−" if diff < 0 else "+") + formatting.usd(abs(diff)),
                    None if not diff else formatting.delta(alt, actual, "usd"),
                    delta_color="inverse", border=True)
        widgets.dataframe(wi, hide_index=True, width="stretch", column_config={
            "provider": "Provider", "model": "Model now",
            # (fewer than the spend table's where some were answered from the application's
            # cache: $0 on any model, left out of the comparison; the two read alike, unsaid)
            "requests": st.column_config.NumberColumn(
                "Requests billed", format="localized",
                help="Requests a provider answered: those your application answered from its "
                     "own cache cost $0 on any model and are left out, so this can be fewer "
                     "than the spend table's"),
            "unpriced_requests": st.column_config.NumberColumn(
                "Without a cost", format="localized",
                help="Requests with no actual cost (no price, or no input tokens logged): "
                     "left out of both sides of the comparison"),
            # ("$%.4f" gave "$-130.6596" beside the tile's "−$282.94")
            "cost_usd": st.column_config.NumberColumn(
                "Actual (USD)", format=formatting.usd_column_format(wi["cost_usd"])),
            "whatif_cost_usd": st.column_config.NumberColumn(
                f"On {model} (USD)", format=formatting.usd_column_format(wi["whatif_cost_usd"])),
            "difference_usd": st.column_config.NumberColumn(
                "Difference (USD)", format=formatting.usd_column_format(wi["difference_usd"]))})
        widgets.downloads(wi, f"whatif_{model}", key="dl_whatif")
        if unpriced:
            st.caption(f"{formatting.plural(unpriced, 'request')} without an actual cost "
                       f"{'is' if unpriced == 1 else 'are'} left out of the "
                       "comparison, on both sides; for a model with no cost at all, the table "
                       f"gives its traffic's cost on {model} for reference. The Data page says "
                       "why they have none.")
        st.caption("The same token counts (uncached, cached, cache-write input; output "
                   "including reasoning) at the target's genai-prices prices at the time of "
                   "each call (a long prompt at the target's long-prompt tier). Output "
                   "lengths and cache behaviour would differ on another model: this is a price "
                   "comparison, not a prediction.")
