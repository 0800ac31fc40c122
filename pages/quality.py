"""Quality: eval pass rates and scores over time (Wilson 95% intervals) and by version, online
judge scores, user feedback, guardrail triggers, finish reasons and error types."""

import polars as pl
import streamlit as st

from lib import drilldown, formatting
from lib.analysis_charts import band_figure, hbar, long_time_figure
from lib.charts import LEGEND_CHARS, plot_text, time_figure, to_zone
from lib.metric_settings import load_metric_settings
from lib.metrics import overview, quality
from lib.metrics.buckets import bucket_label, bucket_seconds
from lib.store import store_option
from lib.ui import filters as ui_filters
from lib.ui import store, widgets

engine = store.engine()
f = ui_filters.current()

st.title("Quality")
widgets.problems_banner(engine)  # (rows of unreadable files are left out of every number below)
st.caption(widgets.md_escape(f.describe()) + " · rates in %, with Wilson 95% intervals")
if engine.row_count("requests") == 0 and engine.row_count("evals") == 0:
    opt = store_option(engine.lake.root)  # (the command as it reaches this app's store)
    widgets.empty_state(
        "No requests or evals in the store yet",
        "Quality comes from eval results (offline test sets, online judges, user feedback) and "
        "from the requests' guardrails, finish reasons and errors. Ingest them, or write the "
        "demo data:",
        f"python -m lib ingest path/to/logs/ path/to/evals/{opt}\npython -m lib demo{opt}")
    st.stop()
widgets.freshness_note(engine, f)

# What an empty section should suggest: with filters on, they are the likelier reason.
WIDEN = (" The sidebar's filters may hide them: evals are kept through the requests they judge, "
         "so clear some filters or widen the time range." if f.values else
         " Widen the time range if the store has them elsewhere.")

# Eval scores are sparse (a sample of requests): wider buckets keep the intervals readable.
seconds = bucket_seconds(f.duration, max_buckets=60)
axis = widgets.time_axis(f, seconds)
per = bucket_label(seconds)
with st.spinner("Loading quality metrics…"):
    metrics = widgets.cached(quality.eval_metrics, engine, f)
    # two feedback metrics with a thumbs up/down ask different questions: one at a time, the
    # most rated first (their shares were pooled into one "Thumbs up")
    fb_metrics = widgets.cached(quality.feedback_metrics, engine, f)
    fb_main = fb_metrics["metric"][0] if fb_metrics.height else None
    fb = widgets.cached(quality.feedback_totals, engine, f, fb_main)
    events = widgets.cached(overview.events, engine, f)
    finish = widgets.cached(quality.finish_reasons, engine, f)
    guards = widgets.cached(quality.guardrails, engine, f)

# Every section below is one source's (online, offline, feedback): an eval stored without one
# (a canonical file that left `source` out) is in none of them, so say so. (The online section's
# note joined that None into its text: a TypeError stopped the page, found in review.)
unsourced = int(metrics.filter(pl.col("source").is_null())["evals"].sum())
if unsourced:
    st.warning(f"{formatting.plural(unsourced, 'eval')} in this window "
               f"{'has' if unsourced == 1 else 'have'} no `source` (online, offline or "
               "feedback), so no section below shows them: give each its source, take their "
               "batch out (`python -m lib remove BATCH`, batches on the Data page) and ingest "
               "the file again.", icon=":material/warning:")

online_v = widgets.cached(quality.evals_by_version, engine, f, "online")
k = st.columns(4)
on = online_v.group_by("metric").agg(pl.col("passed").sum(), pl.col("n").sum())
tot_n, tot_p = int(on["n"].sum() or 0), int(on["passed"].sum() or 0)
lo, hi = quality.wilson(tot_p, tot_n)
# Several metrics judge the same requests: their scores are not independent trials, so a
# Wilson interval of the pool would be too narrow; it is given for one metric only.
pooled = (f"{tot_n:,} scores of {on.height} metrics, pooled: the judge's metrics score the same "
          "requests, so no interval is given for the pool (each metric's is in the charts "
          "below)")
k[0].metric("Online judge pass rate", formatting.pct(tot_p / tot_n if tot_n else None, 1),
            border=True, help=None if lo is None else pooled if on.height > 1 else
            f"95% CI {formatting.pct(lo, 1)}–{formatting.pct(hi, 1)} over {tot_n:,} scores")
k[1].metric("Thumbs up", formatting.pct(fb["up_share"], 1), border=True,
            help=None if fb["up_low"] is None else
            f"95% CI {formatting.pct(fb['up_low'], 1)}–{formatting.pct(fb['up_high'], 1)} "
            f"over {fb['n']:,} ratings"
            + ("" if fb_metrics.height < 2 else
               f" of {widgets.md_escape(fb_main)}, the most rated of "
               f"{fb_metrics.height} feedback metrics (each is under User feedback)"))
k[2].metric("Guardrail triggers", formatting.count(guards["triggers"].sum()), border=True)
# (evals can be there without requests: an offline test set; the request figures then say none)
has_requests = not finish.is_empty()
n_req = int(finish["requests"].sum()) if has_requests else 0
n_trunc = int(finish.filter(pl.col("finish_reason") == "length")["requests"].sum()) \
    if has_requests else 0
t_lo, t_hi = quality.wilson(n_trunc, n_req)
k[3].metric("Truncated (length)", formatting.pct(n_trunc / n_req if n_req else None, 2),
            border=True, help="Share of requests that stopped at the token limit"
            + ("" if t_lo is None else f": {n_trunc:,} of {n_req:,}, 95% CI "
               f"{formatting.pct(t_lo, 2)}–{formatting.pct(t_hi, 2)}"))

# -- online judge ------------------------------------------------------------------------------
st.subheader("Online judge scores")
online = widgets.cached(quality.evals_over_time, engine, f, "online", seconds)
if online.is_empty():
    others = sorted({s for s in metrics["source"].to_list() if s is not None} - {"online"})
    widgets.empty_state("No online judge scores in this window",
                        "Online evals are judge scores on production requests "
                        "(`source: online`), ingested with `python -m lib ingest`."
                        + (f" This window has {' and '.join(others)} evals: see them under "
                           "By version below." if others else WIDEN))
else:
    for i, metric in enumerate(sorted(online["metric"].unique().to_list())):
        m = online.filter(pl.col("metric") == metric)
        # the metric's name cut as a legend entry is (a 400-character name ran the legend over
        # the plot); its heading above the chart gives it whole
        named = formatting.cut(formatting.terminal_text(metric), LEGEND_CHARS)
        fig = band_figure(m, "bucket", [("pass_rate", "pass_low", "pass_high",
                                         f"{named} pass rate")],
                          y_title=f"pass rate per {per} (%)", events=events, **axis)
        # on an axis of its own: a score is no percentage (0.81 read "81%"), and a judge may
        # score 1-5 (y2 holds the event markers)
        fig.add_scatter(x=to_zone(m, "bucket", axis["tz"])["bucket"].to_list(),
                        y=m["mean_score"].to_list(), name=plot_text(f"mean {named} score"),
                        mode="lines", line=dict(dash="dot", color="#64748b"), yaxis="y3",
                        hovertemplate="%{y:.3f}")
        top = m["mean_score"].max()
        fig.update_layout(yaxis3=dict(
            title="mean score (right)", overlaying="y", side="right", showgrid=False,
            automargin=True, zeroline=False, tickmode="auto",
            # scores of 0-1 on the same gridlines as the rate; others from 0 to their top
            **({"range": [0, 1]} if top is None or top <= 1 else {"rangemode": "tozero"})))
        st.markdown(f"**{widgets.md_escape(metric)}**")
        # (the metric is text from the logs: in a file name's characters)
        event = widgets.chart(fig, m, key=f"q_online_{i}",
                              name=f"online_{widgets.file_name_value(metric)}", on_select=True)
        sel = drilldown.selection_window(event, axis["tz"], seconds) if event else None
        if sel:
            widgets.open_page("pages/explore.py", f,
                window=drilldown.window_param(*sel))
    st.caption("Shaded: Wilson 95% interval of the pass rate in each bucket; dotted: mean score.")

st.subheader("By version")
# The first source with evals in the window by default: a store of offline test runs alone
# opened on an empty "online" view, its runs one pick away (found in review).
present = set(metrics["source"].to_list())
src = widgets.query_selectbox("Source", ["online", "offline", "feedback"], "source",
                              next((s for s in ("online", "offline", "feedback") if s in present),
                                   "online"),
                              key="q_source", format_func={
                                  "online": "Online judge",
                                  "offline": "Offline test runs",
                                  "feedback": "User feedback"}.get,
                              # (it said "by prompt version" of online judges, whose version is
                              # an app's when OpenTelemetry or Langfuse logged them: review)
                              help="Evals by the version their log says was evaluated: a "
                                   "canonical eval's `version` (an app, prompt or model "
                                   "version), an OpenTelemetry judge's `service.version`, a "
                                   "Langfuse score's trace release or dataset run, promptfoo's "
                                   "prompt label, Inspect AI's `metadata.version` (else its "
                                   "task, model and commit)")
byv = online_v if src == "online" else widgets.cached(quality.evals_by_version, engine, f, src)
# first seen first; evals without a version cannot be picked (no query selects a null)
versions = [v for v in byv["version"].unique(maintain_order=True).to_list()
            if v != quality.NONE_LABEL]
metric_sets = {v: set(ms) for v, ms in byv.group_by("version").agg("metric").iter_rows()}
names: dict = {}
if src != "offline" and not byv.is_empty():
    # prompt versions named with their prompt ("chat-prompt v13", not "v13")
    names = widgets.cached(quality.prompt_labels, engine, f, tuple(sorted(versions)))
    byv = byv.with_columns(pl.col("version").replace_strict(names, default=pl.col("version")))
if byv.is_empty():
    st.caption(f"No {src} evals in this window.")
else:
    for metric in sorted(byv["metric"].unique().to_list()):
        m = byv.filter(pl.col("metric") == metric)
        if m["pass_rate"].is_not_null().any():
            st.markdown(f"**{widgets.md_escape(metric)}** — pass rate by version")
            fig = hbar(m, "version", "pass_rate", x_title="pass rate (%)", x_format=".0%",
                       error=("pass_low", "pass_high"))
        else:  # scores only (a length, an F1): an empty pass-rate chart said nothing (review)
            st.markdown(f"**{widgets.md_escape(metric)}** — mean score by version (no pass/fail)")
            fig = hbar(m, "version", "mean_score", x_title="mean score (the metric's units)")
        st.plotly_chart(fig, key=f"q_ver_{src}_{metric}", config={"displaylogo": False})
    widgets.dataframe(byv.select("version", "metric", "n", "passed", "pass_rate", "units",
                            "pass_low", "pass_high", "mean_score", "scored", "first_ts",
                            "last_ts")
                 .with_columns(pl.col("first_ts").dt.convert_time_zone(f.tz),
                               pl.col("last_ts").dt.convert_time_zone(f.tz)),
                 hide_index=True, width="stretch", column_config={
                     "version": "Version", "metric": "Metric", "passed": "Passed",
                     "scored": "Scored",
                     "n": st.column_config.NumberColumn("Evals with pass/fail"),
                     "pass_rate": st.column_config.NumberColumn("Pass rate", format="percent"),
                     "units": st.column_config.NumberColumn(
                         "Independent trials", help="What the 95% interval counts as trials: "
                         "test cases (a case's epochs and reruns count once) and evals without "
                         "a case"),
                     "pass_low": st.column_config.NumberColumn("95% CI low", format="percent"),
                     "pass_high": st.column_config.NumberColumn("95% CI high", format="percent"),
                     "mean_score": st.column_config.NumberColumn("Mean score", format="%.3f"),
                     "first_ts": st.column_config.DatetimeColumn(
                         f"First ({f.tz})", format="YYYY-MM-DD HH:mm"),
                     "last_ts": st.column_config.DatetimeColumn(
                         f"Last ({f.tz})", format="YYYY-MM-DD HH:mm")})
    widgets.downloads(byv, f"evals_by_version_{src}", key="dl_byv")
    st.caption("Bars: pass rate (a metric without pass/fail: its mean score); whiskers: Wilson "
               "95% interval of a pass rate, over its test cases (a case's epochs and reruns "
               "count once). Intervals that do not overlap "
               "show a difference; overlapping ones do not rule one out: compare two versions "
               "below for a test. An eval scored without a pass or fail (Inspect AI's P, "
               "partial credit, scored 0.5) counts in the mean score, not the pass rate: "
               "Scored against Evals with pass/fail tells how many.")

# -- two versions, tested ------------------------------------------------------------------------
st.subheader("Compare two versions")
pair = quality.default_pair(versions, names, metric_sets)
if len(versions) < 2:
    st.caption(f"Two {src} versions are needed to compare: this window has "
               f"{formatting.plural(len(versions), 'version')}. Widen the time range.")
else:
    if pair is None:
        pair = (versions[-2], versions[-1])
        st.caption("No two versions here are of one prompt and scored on one metric: pick "
                   "the two to compare.")
    left, right = st.columns(2)
    with left:
        # (versions, metrics and ids from the logs: bidi controls shown as escapes, as the
        # sidebar's lists show them)
        version_a = widgets.query_selectbox("Baseline (A)", versions, "compare_a", pair[0],
                                            format_func=lambda v: widgets.shown_str(
                                                names.get(v, v)),
                                            key="q_cmp_a")
    with right:
        version_b = widgets.query_selectbox("Candidate (B)", versions, "compare_b", pair[1],
                                            format_func=lambda v: widgets.shown_str(
                                                names.get(v, v)),
                                            key="q_cmp_b")
    if version_a == version_b:
        st.caption("Pick two different versions.")
    else:
        try:
            settings = load_metric_settings()
        except ValueError as exc:  # (the comparison goes on with the defaults, said)
            st.error(f"The metrics settings cannot be read, defaults used: {exc}")
            settings = None
        with st.spinner("Testing…"):
            cmp = widgets.cached(quality.compare_versions, engine, f, src, version_a, version_b,
                                 settings=settings)
        label_a, label_b = names.get(version_a, version_a), names.get(version_b, version_b)
        # A metric one version has no result of is not compared: said, as `compare` says it (a
        # scorer that failed on every case of B left the metric out without a word)
        for mine, theirs, label in ((version_a, version_b, label_a), (version_b, version_a,
                                                                      label_b)):
            alone = sorted(metric_sets.get(mine, set()) - metric_sets.get(theirs, set()))
            if alone:
                st.caption(widgets.md_escape(f"Not compared, scored on {label} alone: "
                                             f"{', '.join(alone)}."))
        for problem in quality.unreachable_min_effects(cmp):
            st.warning(widgets.md_escape(f"{problem}. Set it as a fraction in the metrics "
                                         "settings."), icon=":material/tune:")
        if cmp.is_empty():
            st.caption("The two versions share no metric in this window.")
        else:
            for row in cmp.iter_rows(named=True):
                line = widgets.md_escape(quality.comparison_sentence(row, label_a, label_b))
                # (an icon of our own: a metric named "🚀 …" became the box's icon)
                show, icon = {"regression": (st.error, ":material/trending_down:"),
                              "improvement": (st.success, ":material/trending_up:")}.get(
                    row["verdict"], (st.info, ":material/balance:"))
                show(line, icon=icon)
            # as the sentences say it: rates in %, changes in points (the download keeps the
            # fractions), "–" where a test gives nothing
            widgets.dataframe(quality.comparison_table(cmp), hide_index=True, width="stretch",
                         column_config={
                "p (BH)": st.column_config.TextColumn(
                    "p (BH)", help="Benjamini–Hochberg adjusted over the metrics compared"),
                "Regressions / fixes": st.column_config.TextColumn(
                    "Regressions / fixes", help="Results A passed and B failed / A failed and B "
                                                "passed (paired test runs only), a test case "
                                                "run in several epochs counting each epoch"),
                "Detectable": st.column_config.TextColumn(
                    "Detectable", help="Minimum detectable effect at these sizes (80% power)")})
            in_file_name = widgets.file_name_value  # (versions, metrics: text from the logs)
            widgets.downloads(
                cmp, f"compare_{src}_{in_file_name(version_a)}_{in_file_name(version_b)}",
                key="dl_cmp")
            # the rule, and how each metric was compared: on how many shared cases (a metric
            # named from the logs: escaped)
            st.caption(widgets.md_escape(quality.comparison_caption(cmp)))

            # The evidence: what B failed, the cases A passed first (a verdict is a claim; these
            # are the rows to read), with the judged request one click away.
            st.markdown(f"**What {widgets.md_escape(label_b)} failed**")
            compared = cmp["metric"].to_list()  # (not `metrics`: the window's, read below)
            worst = cmp.filter(pl.col("verdict") == "regression")["metric"].to_list()
            failed_metric = widgets.query_selectbox(
                "Metric", compared, "failed_metric", (worst or compared)[0],
                key="q_failed_metric", width=320, format_func=widgets.shown_str)
            # A metric compared on its scores (no pass/fail) fails nothing: its evidence is the
            # cases B scored lower on ("failed no sim eval" stood under a regression of sim).
            # (scores as independent samples, an online judge's: no case to drop on, so the
            # lowest scores)
            kind = cmp.filter(pl.col("metric") == failed_metric)["kind"].to_list()
            by_score = kind in (["score_paired"], ["score_unpaired"])
            failed, n_failed = widgets.cached(
                quality.score_drops if kind == ["score_paired"] else quality.lowest_scores
                if by_score else quality.failed_evals, engine, f, src, version_b, version_a,
                failed_metric)
            if not n_failed:
                what = widgets.md_escape(failed_metric)
                st.caption(f"{widgets.md_escape(label_b)} " + (
                    f"has no {what} score in this window." if kind == ["score_unpaired"] else
                    f"scored lower than {widgets.md_escape(label_a)} on no {what} test case in "
                    "this window." if by_score else f"failed no {what} eval in this window."))
            else:
                # test cases, not rows: a case of 5 epochs is 5 failed evals ("44 cases" were 20)
                regressed = 0 if by_score else failed.filter(
                    pl.col("baseline_passed").fill_null(False)).select(
                    "model", "dataset", "case_id").n_unique()
                # (an online judge's evals have no dataset, case or baseline: no empty columns;
                # the metric is the one picked)
                shown = failed.select([c for c in failed.columns if c != "metric" and (
                    c == "ts" or failed[c].null_count() < failed.height)])
                widgets.dataframe(
                    widgets.for_display(shown.with_columns(
                        pl.col("ts").dt.convert_time_zone(f.tz))),
                    hide_index=True, width="stretch", column_config={
                        "ts": st.column_config.DatetimeColumn(f"Time ({f.tz})",
                                                              format="YYYY-MM-DD HH:mm:ss"),
                        "metric": "Metric", "model": "Model", "dataset": "Dataset",
                        "case_id": "Case",
                        "epoch": "Epoch", "request_id": "Request", "score": "Score",
                        "baseline_score": f"{label_a} score",
                        "change": st.column_config.NumberColumn("B − A", format="%+.3f"),
                        "label": "Label", "explanation": "Explanation", "judge": "Judge",
                        "baseline_passed": st.column_config.CheckboxColumn(
                            f"{label_a} passed", help="The baseline passed the same test case "
                                                      "(a regression); empty: no such case")})
                widgets.downloads(failed, f"{'lower' if by_score else 'failed'}_{src}_"
                                  f"{in_file_name(version_b)}_{in_file_name(failed_metric)}",
                                  key="dl_failed")
                more = f", the first {failed.height:,} shown" if failed.height < n_failed else ""
                if kind == ["score_unpaired"]:
                    st.caption(f"{widgets.md_escape(label_b)}'s "
                               f"{formatting.plural(n_failed, 'score')}{more}, the lowest first.")
                elif by_score:
                    st.caption(f"{formatting.plural(n_failed, 'test case')} "
                               f"{widgets.md_escape(label_b)} scored lower on than "
                               f"{widgets.md_escape(label_a)}{more}, the largest drop first.")
                else:
                    st.caption(
                        f"{formatting.plural(n_failed, 'failed eval')}{more}"
                        + (f"; the cases {widgets.md_escape(label_a)} passed come first "
                           f"({formatting.plural(regressed, 'case')}"
                           + (" among those shown" if failed.height < n_failed else "")
                           + "), then the newest." if regressed else ", newest first."))
                judged = [r for r in failed["request_id"].to_list() if r]
                if judged:
                    o1, o2 = st.columns([3, 1])
                    rid = o1.selectbox("Open a judged request", list(dict.fromkeys(judged)),
                                       key="q_failed_open", format_func=widgets.shown_str)
                    o2.write("")
                    with o2:
                        widgets.page_link("pages/request.py", "Open request",
                                          {**f.to_query(), "request": rid},
                                          icon=":material/open_in_new:")

# -- feedback -----------------------------------------------------------------------------------
st.subheader("User feedback")
fb_metric = fb_main
if fb_metrics.height > 1:
    fb_metric = widgets.query_selectbox(
        "Feedback metric", fb_metrics["metric"].to_list(), "feedback", fb_main,
        key="q_feedback", width=420,
        format_func=lambda m: f"{m} ({int(fb_metrics.filter(pl.col('metric') == m)['n'][0]):,}"
                              " ratings)",
        help="Each feedback metric with a thumbs up or down (`passed`) on its own: two "
             "metrics ask different questions, and one user may answer both.")
    fb = widgets.cached(quality.feedback_totals, engine, f, fb_metric)
fbt = widgets.cached(quality.feedback_over_time, engine, f, seconds, fb_metric)
ratings = metrics.filter(pl.col("source") == "feedback")
if fb["n"] == 0 and not ratings.is_empty():
    # Feedback scored without a pass/fail (a Langfuse NUMERIC score of 1 or 0, a 1-5 rating) is
    # no thumbs up or down; "No user feedback in this window" stood above its scores (review).
    widgets.empty_state(
        "No thumbs up or down in this window",
        f"This window has {formatting.plural(int(ratings['evals'].sum()), 'feedback eval')} "
        f"({', '.join(widgets.md_escape(m) for m in ratings['metric'].to_list())}), "
        "scores without a pass/fail: their means are under By version, source User feedback. "
        "A thumbs up or down is a feedback eval with `passed` true or false (a Langfuse "
        "BOOLEAN score).")
elif fb["n"] == 0:
    widgets.empty_state("No user feedback in this window",
                        "Feedback is thumbs up/down logged as evals with `source: feedback`, "
                        "metric `thumbs_up`." + WIDEN)
else:
    left, right = st.columns(2)
    with left:
        fig = band_figure(fbt, "bucket", [("up_share", "up_low", "up_high", "thumbs up")],
                          y_title=f"thumbs-up share per {per} (%)", events=events, **axis)
        widgets.chart(fig, fbt, key="q_fb_share", name="feedback_share")
    with right:
        fbv = fbt.with_columns((pl.col("n") - pl.col("up")).alias("down"))
        fig = time_figure(fbv, "bucket", [("up", "thumbs up"), ("down", "thumbs down")],
                          y_title=f"ratings per {per}", events=events, **axis, kind="bar")
        widgets.chart(fig, fbv.select("bucket", "n", "up", "down"), key="q_fb_volume",
                      name="feedback_volume")

# -- guardrails, finish reasons, errors ---------------------------------------------------------
NO_REQUESTS = "No requests in this window."
st.subheader("Guardrail triggers")
if not has_requests:  # where they are, once, for the three sections of requests
    widgets.requests_elsewhere(engine, f, "pages/quality.py", NO_REQUESTS + " ")
elif guards.is_empty():
    st.success("No guardrail fired in this window.")
else:
    left, right = st.columns([1, 2])
    with left:
        widgets.dataframe(guards, hide_index=True, width="stretch", column_config={
            "guardrail": "Guardrail", "action": "Action",
            "triggers": st.column_config.NumberColumn("Triggers", format="localized"),
            "share_of_requests": st.column_config.NumberColumn("Share of requests",
                                                               format="percent")})
        widgets.downloads(guards, "guardrails", key="dl_guards")
    with right:
        gt = widgets.cached(quality.guardrails_over_time, engine, f, seconds)
        fig = long_time_figure(gt, "bucket", "guardrail", "triggers",
                               y_title=f"triggers per {per}", events=events, **axis,
                               kind="bar")
        widgets.chart(fig, gt, key="q_guards", name="guardrails_over_time")

left, right = st.columns(2)  # (a third of the width cut its axis title at 1,024 px)
with left:
    st.subheader("Finish reasons")
    if not has_requests:
        st.caption(NO_REQUESTS)
    else:
        st.plotly_chart(hbar(finish, "finish_reason", "share", x_title="share of requests (%)",
                             x_format=".1%"), key="q_finish", config={"displaylogo": False})
        widgets.downloads(finish, "finish_reasons", key="dl_finish")
        st.caption("length = truncated at the token limit; content_filter = blocked by the "
                   "provider; (none) = no finish reason (errors).")
with right:
    st.subheader("Error types over time")
    et = widgets.cached(quality.errors_over_time, engine, f, seconds)
    if not has_requests:
        st.caption(NO_REQUESTS)
    elif et.is_empty():
        st.success("No errors in this window.")
    else:
        fig = long_time_figure(et, "bucket", "error_type", "errors",
                               y_title=f"errors per {per}", events=events, **axis,
                               kind="bar")
        event = widgets.chart(fig, et, key="q_errors", name="errors_over_time", on_select=True)
        sel = drilldown.selection_window(event, axis["tz"], seconds) if event else None
        if sel:
            widgets.open_page("pages/explore.py", f,
                window=drilldown.window_param(*sel), metric="error_rate")
