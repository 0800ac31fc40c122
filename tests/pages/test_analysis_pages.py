"""AppTest: the Cost, Latency, Quality, Explore and Request pages, on the demo store with filters
and page settings given in the URL, and on an empty store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
from streamlit.testing.v1 import AppTest

from lib import formatting
from lib.demo import PLAN
from lib.drilldown import window_param
from lib.store import Engine, Lake
from tests.conftest import APP, DEMO_END, PROJECT_DIR

PAGES = ["pages/cost.py", "pages/latency.py", "pages/quality.py", "pages/explore.py",
         "pages/request.py", "pages/drift.py"]
WEEK = {"range": "custom", "from": "2026-11-13T12:00:00Z", "to": "2026-11-20T12:00:00Z"}
OUTAGE = DEMO_END - timedelta(days=7) + timedelta(seconds=PLAN["outage_at"] * 7 * 86400)


@pytest.fixture
def download_names(monkeypatch) -> list[str]:
    """The file names of the download buttons the page makes, in the order made (twice if
    made twice)."""
    import streamlit

    made, real = [], streamlit.download_button

    def record(label, data, file_name=None, *args, **kwargs):
        made.append(file_name)
        return real(label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(streamlit, "download_button", record)
    return made


def run_page(monkeypatch, store, page: str, query: dict | None = None) -> AppTest:
    monkeypatch.setenv("SIGHTLINE_STORE", str(store))
    monkeypatch.setenv("SIGHTLINE_DEMO", "0")
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    # (the entry script runs first in every run: navigation, sidebar filters; a run of the
    # default page before it added nothing but its time)
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + \
        [i.value for i in at.info] + [c.value for c in at.code]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page", PAGES)
def test_empty_store_says_what_to_do(monkeypatch, tmp_path, page):
    at = run_page(monkeypatch, tmp_path / "empty", page)
    assert "python -m lib demo" in texts(at) or "Open a request from" in texts(at)


def test_cost_page(monkeypatch, demo_store):
    at = run_page(monkeypatch, demo_store, "pages/cost.py",
                  {**WEEK, "provider": "anthropic", "by": "attr.region",
                   "whatif": "openai/gpt-4o-mini"})
    labels = [m.label for m in at.metric]
    assert labels[:5] == ["Spend", "Cost per request", "Cost per 1k requests", "Cache savings",
                          "Unpriced requests"]
    assert at.metric[0].value.startswith("$")
    # a success with output tokens but no input count is unpriced too (README), not only one
    # "without logging any token count"
    assert "without an input token count" in at.metric[4].help
    assert at.selectbox(key="cost_by").value == "attr.region"
    assert at.selectbox(key="cost_whatif").value == "openai/gpt-4o-mini"
    assert "On gpt\\-4o\\-mini" in [m.label for m in at.metric]  # (a label is markdown)
    assert "provider = anthropic" in texts(at)  # the URL's filter is applied
    assert at.query_params["by"] in ("attr.region", ["attr.region"])
    # the what-if table's amounts read as the tiles do ("$%.4f" gave "$-130.6596")
    import json

    (table,) = [d for d in at.dataframe if "Difference (USD)" in d.proto.columns]
    formats = {c.get("label"): c.get("type_config", {}).get("format")
               for c in json.loads(table.proto.columns).values()}
    assert formats["Difference (USD)"] == formats["Actual (USD)"] == "dollar"
    # its requests leave the application's cache hits out: said, as the spend table beside it
    # counts them (2,182 gpt-4o requests there, "Requests" 2,139 here, found in review)
    helps = {c.get("label"): c.get("help", "") for c in json.loads(table.proto.columns).values()}
    assert "own cache" in helps["Requests billed"]


def test_cost_tables_rank_by_usd_per_request(monkeypatch, demo_store):
    # "which customer is most expensive per request" (the top 10 by spend did not say)
    at = run_page(monkeypatch, demo_store, "pages/cost.py", {**WEEK, "rank": "per_request"})
    assert at.selectbox(key="cost_rank").value == "per_request"
    assert "Customers by USD per request" in [h.value for h in at.subheader]
    (table,) = [d.value for d in at.dataframe
                if "group" in d.value and str(d.value["group"].iloc[0]).startswith("cust-")]
    eng = Engine(Lake(demo_store))
    try:
        expected = [r[0] for r in eng.query(
            "SELECT customer_id FROM requests WHERE ts >= TIMESTAMPTZ '2026-11-13 12:00:00+00' "
            "AND ts < TIMESTAMPTZ '2026-11-20 12:00:00+00' GROUP BY 1 "
            "ORDER BY count(cost_usd) >= 20 DESC, sum(cost_usd) / count(cost_usd) DESC, "
            "count(*) DESC, 1 LIMIT 10").rows()]
    finally:
        eng.close()
    assert table["group"].tolist()[:10] == expected
    per = table["cost_per_request_usd"].tolist()[:10]
    assert per == sorted(per, reverse=True)


def test_cost_page_names_a_prices_file_it_cannot_read(monkeypatch, demo_store, tmp_path):
    """A wrong $SIGHTLINE_PRICES is said on the page, naming the file, not a traceback."""
    monkeypatch.setenv("SIGHTLINE_PRICES", str(tmp_path / "prices-typo.yaml"))
    at = run_page(monkeypatch, demo_store, "pages/cost.py", WEEK)
    assert [e.value for e in at.error] and "prices-typo.yaml: no such prices file" in \
        at.error[0].value
    assert not at.metric  # nothing priced with the wrong prices


def test_latency_page(monkeypatch, demo_store):
    at = run_page(monkeypatch, demo_store, "pages/latency.py",
                  {**WEEK, "objective": "1500", "by": "provider"})
    assert at.number_input(key="lat_obj").value == 1500
    labels = [m.label for m in at.metric]
    assert labels[:3] == ["p50 latency", "p95 latency", "p99 latency"]
    assert "Within 1.5 s" in labels
    assert at.metric[1].value.endswith(("ms", " s"))
    assert "No time to first token in this window" not in texts(at)
    # the demo's summaries are not streamed: no TTFT at all, said instead of an empty chart
    at = run_page(monkeypatch, demo_store, "pages/latency.py", {**WEEK, "feature": "summarize"})
    assert "**No time to first token in this window**" in texts(at)
    assert "**No output speed in this window**" not in texts(at)


@pytest.mark.parametrize("mangled", ["nan", "inf", "-inf"])
def test_a_link_s_objective_that_is_no_number_opens_the_default(monkeypatch, demo_store,
                                                                mangled):
    # "nan" parsed as a float: an empty input, "Within –" at 100.0%, a legend "≤ nan ms"
    at = run_page(monkeypatch, demo_store, "pages/latency.py", {**WEEK, "objective": mangled})
    assert at.number_input(key="lat_obj").value == 2000
    assert "Within 2.0 s" in [m.label for m in at.metric]


def test_latency_says_when_no_request_has_a_latency(monkeypatch, tmp_path):
    # (it said "Only 500 requests: p99 needs 1,000" of requests without any latency)
    from tests.conftest import make_request, requests_table

    now = datetime.now(UTC)
    rows = [make_request(i, ts=now - timedelta(minutes=i + 1), latency_ms=None)
            for i in range(50)]
    Lake(tmp_path / "s").append({"requests": requests_table(rows)}, source="t")
    at = run_page(monkeypatch, tmp_path / "s", "pages/latency.py", {"range": "24h"})
    assert [w.value for w in at.warning if "has a latency" in w.value] == [
        "No request in this window has a latency (`latency_ms`): log each call's duration, or "
        "map it (see docs/mapping.md)."]
    assert "p99 needs" not in texts(at)


def test_a_page_s_settings_outlive_a_visit_to_another_page(monkeypatch, demo_store):
    # the sidebar's links carry only the filters: a 5 s objective was back at 2 s after a
    # visit to the Overview, and "group by feature" back at "model"
    at = run_page(monkeypatch, demo_store, "pages/latency.py",
                  {**WEEK, "objective": "5000", "by": "feature"})
    at.switch_page("pages/overview.py").run()
    for k in ("objective", "by"):  # (as the sidebar's link to the page would have it)
        if k in at.query_params:
            del at.query_params[k]
    at.switch_page("pages/latency.py").run()
    assert not at.exception
    assert at.number_input(key="lat_obj").value == 5000
    assert at.selectbox(key="lat_by").value == "feature"
    assert at.query_params["objective"] in ("5000", ["5000"])  # and the link says so again


def test_quality_page(monkeypatch, demo_store):
    at = run_page(monkeypatch, demo_store, "pages/quality.py", {**WEEK, "source": "offline"})
    assert [m.label for m in at.metric] == ["Online judge pass rate", "Thumbs up",
                                            "Guardrail triggers", "Truncated (length)"]
    assert at.selectbox(key="q_source").value == "offline"
    # an eval's version is what its log names: an OpenTelemetry judge's is the app's
    # (service.version), not a prompt version as the source's label said (review)
    source = at.selectbox(key="q_source")
    assert source.options == ["Online judge", "Offline test runs", "User feedback"]
    assert "`service.version`" in source.help and "trace release" in source.help
    # a partial credit (Inspect's P) is in the mean, not the pass rate: the caption says so
    assert "counts in the mean score, not the pass rate" in texts(at)
    assert "Wilson 95%" in texts(at)
    # the demo's judge scores several metrics of the same requests: no interval for the pool
    tile = at.metric[0]
    assert "metrics, pooled" in tile.help and "CI" not in tile.help
    # the truncated share gives its counts and Wilson interval, checked against scipy's
    from scipy.stats import binomtest

    eng = Engine(Lake(demo_store))
    try:
        k, n = eng.query("SELECT count(*) FILTER (finish_reason = 'length'), count(*) FROM "
                         "requests WHERE ts >= TIMESTAMPTZ '2026-11-13 12:00:00+00' AND "
                         "ts < TIMESTAMPTZ '2026-11-20 12:00:00+00'").rows()[0]
    finally:
        eng.close()
    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    assert 0 < k < n and at.metric[3].help == (
        f"Share of requests that stopped at the token limit: {k:,} of {n:,}, 95% CI "
        f"{formatting.pct(ci.low, 2)}–{formatting.pct(ci.high, 2)}")
    assert at.metric[3].value == formatting.pct(k / n, 2)


def test_online_judge_mean_scores_have_an_axis_of_their_own(monkeypatch, demo_store):
    # a mean score of 0.81 on the pass rate's % axis read "81%"; a judge may score 1-5
    import json

    at = run_page(monkeypatch, demo_store, "pages/quality.py", WEEK)
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")
             if "pass rate per" in c.proto.spec]
    assert specs
    for spec in specs:
        means = [t for t in spec["data"] if t.get("name", "").startswith("mean ")]
        assert len(means) == 1 and means[0]["yaxis"] == "y3"
        axis = spec["layout"]["yaxis3"]
        assert "%" not in means[0]["name"] and "%" not in axis["title"]["text"]
        assert axis["overlaying"] == "y" and axis.get("visible", True) and "tickformat" not in axis


def test_quality_compares_the_newest_prompt_version_with_the_one_before_it(monkeypatch,
                                                                          demo_store):
    # the demo's chat prompt v13 (planted: it hurts groundedness) against v12, by default
    at = run_page(monkeypatch, demo_store, "pages/quality.py", {**WEEK, "to": DEMO_END.isoformat(),
                                                                "from": (DEMO_END - timedelta(
                                                                    days=7)).isoformat()})
    a, b = at.selectbox(key="q_cmp_a"), at.selectbox(key="q_cmp_b")
    assert (a.value, b.value) == ("v12", "v13")
    assert b.format_func("v13") == "chat-prompt v13"  # named with its prompt
    # (the sentences are markdown-escaped: the metric's name comes from the logs)
    said = [e.value.replace("\\", "") for e in at.error]
    regressions = [v for v in said if v.startswith("groundedness:")]
    assert regressions and "a regression of chat-prompt v13 against chat-prompt v12" in \
        regressions[0], said
    # every verdict box has our icon (a metric named "🚀 …" lost its emoji to the box's icon)
    assert {e.icon for e in [*at.error, *at.success, *at.info]
            if e.value.replace("\\", "").startswith(("groundedness:", "helpfulness:"))} <= {
        ":material/trending_down:", ":material/trending_up:", ":material/balance:"}
    assert all(e.icon for e in at.error)
    # the evidence: v13's failed groundedness judgements, each judged request one click away
    assert at.selectbox(key="q_failed_metric").value == "groundedness"
    failed = [d.value for d in at.dataframe if "judge" in d.value.columns]
    # (online judgements: no dataset, case or baseline result to show)
    assert failed and len(failed[0]) > 30 and "baseline_passed" not in failed[0].columns
    (link,) = [e for e in at.get("page_link") if e.proto.label == "Open request"]
    rid = at.selectbox(key="q_failed_open").value
    assert rid in set(failed[0]["request_id"]) and f"request={rid}" in link.proto.query_string
    # another pair, kept in the URL
    a.set_value("v13").run()
    assert at.query_params["compare_a"] in ("v13", ["v13"])
    assert "Pick two different versions." in texts(at)


def test_explore_names_the_outage_provider(monkeypatch, demo_store):
    window = window_param(OUTAGE - timedelta(minutes=10), OUTAGE + timedelta(minutes=50))
    at = run_page(monkeypatch, demo_store, "pages/explore.py",
                  {**WEEK, "window": window, "metric": "error_rate"})
    headline = at.info[0].value
    assert headline.startswith("provider anthropic's error rate went from")
    assert at.query_params["window"] in (window, [window])
    assert at.selectbox(key="ex_metric").value == "error_rate"
    # the request table is paged: one page, not the window's rows
    assert len(at.dataframe) >= 3
    # minute buckets of a few requests: their rates are drawn hollow, as the Overview's are
    # (1 error in 1 request was a solid 100% spike beside the outage)
    import json

    (chart,) = [c for c in at.get("plotly_chart") if '"Error rate"' in c.proto.spec]
    names = [t.get("name") for t in json.loads(chart.proto.spec)["data"]]
    assert "Error rate (few rows)" in names


def test_explore_s_all_rows_download_is_named_after_its_window(monkeypatch, demo_store,
                                                                 download_names):
    # it was "requests.csv" whatever the window, where every other download names it (review);
    # the window's other downloads were named after the sidebar's week

    window = window_param(OUTAGE - timedelta(minutes=10), OUTAGE + timedelta(minutes=50))
    run_page(monkeypatch, demo_store, "pages/explore.py",
             {**WEEK, "window": window, "metric": "error_rate", "provider": "anthropic"})
    start = (OUTAGE - timedelta(minutes=10)).strftime("%Y-%m-%dT%H%M")
    # the rows of Explore's window (not the sidebar's week) are named after it, with its filters
    for name in ("requests", "what_changed_error_rate", "error_fingerprints"):
        (csv,) = [n for n in download_names if n.startswith(f"{name}_2") and n.endswith(".csv")]
        assert csv.startswith(f"{name}_{start}_"), csv
        assert csv.endswith("_UTC_provider-anthropic.csv")


def test_explore_follows_the_sidebar_when_its_time_range_changes_after_a_drill_down(
        monkeypatch, demo_store):
    # a drill-down, then "Last 24 hours" in the sidebar: the page kept studying the drill-down
    window = window_param(OUTAGE - timedelta(minutes=10), OUTAGE + timedelta(minutes=50))
    monkeypatch.setenv("SIGHTLINE_STORE", str(demo_store))
    monkeypatch.setenv("SIGHTLINE_DEMO", "0")
    at = AppTest.from_file(str(PROJECT_DIR / "pages" / "explore.py"), default_timeout=120)
    for k, v in {**WEEK, "window": window, "metric": "error_rate"}.items():
        at.query_params[k] = v
    at.run()
    assert at.query_params["window"] in (window, [window])
    at.run()  # (a rerun of the same view keeps it)
    assert at.query_params["window"] in (window, [window])
    day = {"range": "custom", "from": (DEMO_END - timedelta(days=1)).isoformat(),
           "to": DEMO_END.isoformat()}
    for k, v in day.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception and "window" not in at.query_params
    assert any("The time range changed in the sidebar" in i.value for i in at.info)
    caption = at.caption[0].value.replace("\\", "")
    assert f"**Window** {(DEMO_END - timedelta(days=1)):%Y-%m-%d %H:%M}" in caption, caption


def test_explore_compares_with_the_same_hours_a_day_or_a_week_earlier(monkeypatch, demo_store):
    window = window_param(OUTAGE - timedelta(minutes=10), OUTAGE + timedelta(minutes=50))
    at = run_page(monkeypatch, demo_store, "pages/explore.py",
                  {**WEEK, "window": window, "against": "day", "metric": "error_rate"})
    assert at.selectbox(key="ex_against").value == "day"
    caption = at.caption[0].value.replace("\\", "")
    day_before = OUTAGE - timedelta(days=1)
    assert f"**baseline** {day_before - timedelta(minutes=10):%Y-%m-%d %H:%M} → " \
           f"{day_before + timedelta(minutes=50):%Y-%m-%d %H:%M} UTC (the same window a day " \
           "earlier)" in caption, caption
    assert at.info[0].value.startswith("provider anthropic's error rate went from")
    # the window pickers start from the baseline in use
    pickers = {w.label: w.value for w in at.datetime_input}
    assert pickers["Baseline from"] == (day_before - timedelta(minutes=10)).replace(tzinfo=None)
    # a day back from a 7-day window would share six days with it, a week back is the period
    # before: neither is offered
    week = run_page(monkeypatch, demo_store, "pages/explore.py", {**WEEK, "against": "day"})
    assert week.selectbox(key="ex_against").options == ["The period of equal length just before"]
    assert "(the period of equal length just before)" in week.caption[0].value


def test_a_request_opened_by_its_id_alone_is_the_one_in_the_link_s_window(monkeypatch, lake):
    # The Quality page's judged requests open by id, with the page's filters: of two requests
    # under one id, the newest was shown, days after the window the eval was read in (review)
    from tests.conftest import T0, make_request, requests_table

    lake.append({"requests": requests_table([make_request(1, status="error")])}, source="t")
    lake.append({"requests": requests_table([
        make_request(3, request_id="r1", ts=T0 + timedelta(days=2))])}, source="later")
    window = {"range": "custom", "from": T0.isoformat(),
              "to": (T0 + timedelta(hours=1)).isoformat()}
    at = run_page(monkeypatch, lake.root, "pages/request.py", {**window, "request": "r1"})
    assert at.selectbox(key="rq_at").value == "2026-03-02T12:01:00.000000Z"
    assert at.markdown[0].value.startswith(":red-badge[error]")
    # with no namesake in the window, the newest, as before
    at = run_page(monkeypatch, lake.root, "pages/request.py",
                  {"range": "custom", "from": (T0 - timedelta(days=9)).isoformat(),
                   "to": (T0 - timedelta(days=8)).isoformat(), "request": "r1"})
    assert at.selectbox(key="rq_at").value == "2026-03-04T12:00:00.000000Z"


def test_a_request_in_the_hour_the_clocks_go_back_says_which_of_the_two(monkeypatch, lake):
    # 00:30 and 01:30 UTC on 2026-10-25 are both 02:30 in Berlin: the page's header and its
    # fields read the same for either (review)
    from tests.conftest import make_request, requests_table

    lake.append({"requests": requests_table([make_request(
        0, request_id="r1", ts=datetime(2026, 10, 25, 1, 30, tzinfo=UTC))])}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/request.py", {
        "range": "custom", "from": "2026-10-24T00:00:00Z", "to": "2026-10-26T00:00:00Z",
        "tz": "Europe/Berlin", "request": "r1"})
    assert " · 2026-10-25 02:30:00 +01:00 Europe/Berlin · " in at.markdown[0].value
    fields = dict(at.dataframe[0].value[["field", "value"]].itertuples(index=False))
    assert fields["ts"] == "2026-10-25 02:30:00.000000 +01:00 Europe/Berlin"


def test_explore_s_week_earlier_is_the_same_hours_on_the_sidebar_zone_s_clock(monkeypatch,
                                                                              lake):
    # Monday 09:00-10:00 in Berlin after the clocks went back, against a week earlier: the
    # Monday before at 09:00 there (07:00 UTC), not 168 hours back, 10:00 (found in review)
    from tests.conftest import make_request, requests_table

    monday = datetime(2026, 10, 26, 8, tzinfo=UTC)
    lake.append({"requests": requests_table(
        [make_request(i, ts=monday - timedelta(days=7, hours=1) + timedelta(minutes=i))
         for i in range(60)] + [make_request(100 + i, ts=monday + timedelta(minutes=i))
                                for i in range(60)])}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/explore.py",
                  {"range": "custom", "from": "2026-10-26T00:00:00Z",
                   "to": "2026-10-27T00:00:00Z", "tz": "Europe/Berlin", "against": "week",
                   "window": window_param(monday, monday + timedelta(hours=1))})
    caption = at.caption[0].value.replace("\\", "")
    assert "**baseline** 2026-10-19 09:00 → 2026-10-19 10:00 Europe/Berlin" in caption, caption
    assert at.metric[2].value == "60"  # (the window's requests; the baseline's hour has 60)


def test_explore_s_window_tile_is_grey_when_the_change_is_within_noise(monkeypatch, demo_store):
    # an ordinary hour against the hour before: within noise, said in the headline; the tile's
    # change was green or red all the same. The outage's hour is red.
    gray, red = 2, 0  # Metric.MetricColor
    quiet = window_param(DEMO_END - timedelta(hours=3), DEMO_END - timedelta(hours=2))
    at = run_page(monkeypatch, demo_store, "pages/explore.py",
                  {**WEEK, "window": quiet, "metric": "error_rate"})
    assert "within noise" in texts(at) and at.metric[0].proto.color == gray
    outage = window_param(OUTAGE - timedelta(minutes=10), OUTAGE + timedelta(minutes=50))
    at = run_page(monkeypatch, demo_store, "pages/explore.py",
                  {**WEEK, "window": outage, "metric": "error_rate"})
    assert "within noise" not in texts(at) and at.metric[0].proto.color == red


def test_explore_windows_are_picked_in_the_display_zone(monkeypatch, demo_store):
    window = window_param(OUTAGE - timedelta(minutes=10), OUTAGE + timedelta(minutes=50))
    # The page file on its own (filters from the URL): AppTest delivers no widget events to a
    # page reached by switch_page (Streamlit 1.67), and this test presses a button.
    monkeypatch.setenv("SIGHTLINE_STORE", str(demo_store))
    monkeypatch.setenv("SIGHTLINE_DEMO", "0")
    at = AppTest.from_file(str(PROJECT_DIR / "pages" / "explore.py"), default_timeout=120)
    for k, v in {**WEEK, "tz": "Asia/Kolkata", "window": window}.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception
    pickers = {w.label: w for w in at.datetime_input}
    assert set(pickers) == {"Window from", "Window to", "Baseline from", "Baseline to"}
    # The pickers show the windows as wall-clock times in the sidebar's zone (UTC+05:30).
    shown = (OUTAGE - timedelta(minutes=10) + timedelta(hours=5, minutes=30)).replace(
        tzinfo=None)
    assert pickers["Window from"].value == shown
    local = datetime(2026, 11, 18, 15, 30)  # = 10:00 UTC
    pickers["Window from"].set_value(local)
    pickers["Window to"].set_value(local + timedelta(hours=2))
    pickers["Baseline from"].set_value(local - timedelta(days=1))
    pickers["Baseline to"].set_value(local - timedelta(days=1) + timedelta(hours=2))
    at.button(key="ex_apply").click().run()
    assert not at.exception
    ten = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
    assert at.query_params["window"] in ([window_param(ten, ten + timedelta(hours=2))],
                                         window_param(ten, ten + timedelta(hours=2)))
    day_before = ten - timedelta(days=1)
    assert at.query_params["baseline"] in (
        [window_param(day_before, day_before + timedelta(hours=2))],
        window_param(day_before, day_before + timedelta(hours=2)))


def test_explore_search_and_p95(monkeypatch, demo_store):
    at = run_page(monkeypatch, demo_store, "pages/explore.py",
                  {**WEEK, "metric": "p95_latency", "q": "<script>", "sort": "latency_ms"})
    assert at.text_input(key="ex_q").value == "<script>"
    assert at.selectbox(key="ex_sort").value == "latency_ms"
    assert "p95 latency" in at.info[0].value


def test_request_page_shows_prompt_as_text(monkeypatch, demo_store):
    engine = Engine(Lake(demo_store))
    rid = engine.scalar("SELECT request_id FROM requests WHERE input_text LIKE '%<script>%' "
                        "AND trace_id IN (SELECT trace_id FROM spans) LIMIT 1") or \
        engine.scalar("SELECT request_id FROM requests WHERE input_text LIKE '%<script>%' LIMIT 1")
    prompt = engine.scalar("SELECT input_text FROM requests WHERE request_id = $r", {"r": rid})
    at = run_page(monkeypatch, demo_store, "pages/request.py", {**WEEK, "request": rid})
    codes = [c.value for c in at.code]
    assert prompt in codes  # a code block: shown as text, never Markdown or HTML
    assert not any("<script>" in m.value for m in at.markdown)
    assert at.text_input(key="rq_id").value == rid


def test_request_page_with_a_trace(monkeypatch, demo_store):
    engine = Engine(Lake(demo_store))
    rid = engine.scalar("SELECT trace_id FROM spans LIMIT 1")
    at = run_page(monkeypatch, demo_store, "pages/request.py", {"request": rid})
    assert "No spans were logged" not in texts(at)
    assert "Latency" in [m.label for m in at.metric]


def test_a_request_id_pasted_with_spaces_around_it_opens_the_request(monkeypatch, demo_store):
    rid = Engine(Lake(demo_store)).scalar("SELECT request_id FROM requests LIMIT 1")
    at = run_page(monkeypatch, demo_store, "pages/request.py", {"request": f" {rid}\n"})
    assert "No such request" not in texts(at) and "Latency" in [m.label for m in at.metric]


def test_the_request_page_s_downloads_are_named_after_the_request_in_a_file_name_s_characters(
        monkeypatch, lake, download_names):
    # "request_projects/p/calls/1_2026-11-20T0000_..._UTC.csv": a path, and named after the
    # sidebar's window, which does not select the request or its trace
    import pyarrow as pa

    from lib import schema
    from tests.conftest import T0, make_request, requests_table

    rid, tid = "projects/p/calls/1", "traces/<t>"
    span = pa.table({"span_id": ["agent"], "trace_id": [tid], "parent_id": [None],
                     "ts": pa.array([T0], schema.TS), "duration_ms": [900.0],
                     "name": ["agent"], "kind": ["agent"], "status": ["ok"]})
    lake.append({"requests": requests_table([make_request(0, request_id=rid, trace_id=tid,
                                                          parent_id="agent")]),
                 "spans": span}, source="t")
    run_page(monkeypatch, lake.root, "pages/request.py", {"request": rid})
    names = {n for n in download_names if n.endswith(".csv")}
    assert {n.rsplit("-", 1)[0] for n in names} == {"request_projects-p-calls-1",
                                                    "trace_traces-t"}
    assert not any("/" in n or "<" in n or "UTC" in n for n in names), names


def test_unknown_request(monkeypatch, demo_store):
    at = run_page(monkeypatch, demo_store, "pages/request.py", {"request": "no-such-id"})
    assert "No such request" in texts(at)


def test_request_page_names_the_spans_that_recorded_the_same_call(monkeypatch, tmp_path):
    import json

    from lib.ingest.pipeline import ingest_paths

    start_ns = int((datetime.now(UTC) - timedelta(hours=1)).timestamp()) * 10**9

    def call(span_id, parent=None, inputs=100):
        span = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": span_id,
                "name": f"chat {span_id[:4]}", "startTimeUnixNano": str(start_ns),
                "endTimeUnixNano": str(start_ns + 10**9), "attributes": [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(inputs)}}]}
        return {**span, "parentSpanId": parent} if parent else span

    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        call("bbbb000000000002", "aaaa000000000001"), call("aaaa000000000001", inputs=120)]}]}]}))
    store = tmp_path / "store"
    assert ingest_paths(Lake(store), [str(path)]).ok
    at = run_page(monkeypatch, store, "pages/request.py", {"request": "bbbb000000000002"})
    assert "1 span of this trace recorded this same call around it" in texts(at)
    (table,) = [d.value for d in at.dataframe if "span_id" in d.value.columns]
    assert table[["span_id", "input_tokens"]].values.tolist() == [["aaaa000000000001", 120]]
    # the envelope's own id (from another tool) leads to the request it is counted as
    at = run_page(monkeypatch, store, "pages/request.py", {"request": "aaaa000000000001"})
    assert "recorded the same model call as another request" in at.info[0].value
    assert [c.value for c in at.code] == ["bbbb000000000002"]
    at.button(key="rq_open_counted").click().run()
    assert at.query_params["request"] == "bbbb000000000002"
    assert "No such request" not in texts(at) and "Latency" in [m.label for m in at.metric]


def test_quality_page_on_a_window_without_requests_says_so(monkeypatch, demo_store):
    at = run_page(monkeypatch, demo_store, "pages/quality.py",
                  {"range": "custom", "from": "2020-01-01T00:00:00Z",
                   "to": "2020-01-08T00:00:00Z"})
    truncated = {m.label: m.value for m in at.metric}["Truncated (length)"]
    assert truncated == "–"
    # no green "nothing fired" where nothing ran
    assert not [s.value for s in at.success if "No guardrail" in s.value or "No errors" in
                s.value]
    # the first of the three sections of requests says where they are, the other two that
    # there are none
    import duckdb

    live = [str(demo_store / p) for p in Lake(demo_store).snapshot().files["requests"]]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    n, first, last = con.sql(f"SELECT count(*), strftime(min(ts), '%Y-%m-%d %H:%M'), "
                                f"strftime(max(ts), '%Y-%m-%d %H:%M') FROM read_parquet({live})"
                                ).fetchone()
    said = [m.value.replace("\\", "") for m in at.markdown]
    assert [m for m in said if m.startswith("No requests in this window. ")] == [
        f"No requests in this window. {n:,} requests with these filters are from "
        f"{first} → {last} UTC:"]
    assert at.button(key="show_days").label == "Show those days"
    assert [c.value for c in at.caption].count("No requests in this window.") == 2


def test_quality_s_empty_sections_blame_the_filters_when_there_are_some(monkeypatch, demo_store):
    # the demo week holds online judge scores and feedback; no customer is called "nobody"
    at = run_page(monkeypatch, demo_store, "pages/quality.py", {**WEEK, "customer": "nobody"})
    hint = "The sidebar's filters may hide them"
    empty = [m for m in at.markdown if m.value.startswith(("Online evals are", "Feedback is"))]
    assert len(empty) == 2 and all(hint in m.value for m in empty)
    # without filters, a window with no evals says to widen the time range instead
    at = run_page(monkeypatch, demo_store, "pages/quality.py",
                  {"range": "custom", "from": "2020-01-01T00:00:00Z",
                   "to": "2020-01-08T00:00:00Z"})
    empty = [m for m in at.markdown if m.value.startswith(("Online evals are", "Feedback is"))]
    assert len(empty) == 2 and not any(hint in m.value for m in empty)
    assert all("Widen the time range" in m.value for m in empty)


def test_explore_flags_a_baseline_from_before_the_data_began(monkeypatch, demo_store):
    # the demo store's whole week, against the week before its first request
    week = run_page(monkeypatch, demo_store, "pages/explore.py", {**WEEK, "metric": "error_rate"})
    assert "No requests in the baseline" in week.info[0].value
    # said once (the warning said it again), and no ranking: its order would be alphabetical,
    # and "Filter on" would offer its first value as if it were a finding
    assert not [w.value for w in week.warning if w.value.startswith("The baseline holds")]
    assert not [b for b in week.button if b.label.startswith("Filter on ")]
    assert "Nothing to rank without a baseline" in texts(week)
    # its last three days, against the three before: both have traffic
    days = run_page(monkeypatch, demo_store, "pages/explore.py",
                    {"range": "custom", "from": (DEMO_END - timedelta(days=3)).isoformat(),
                     "to": DEMO_END.isoformat(), "metric": "error_rate"})
    assert not [w.value for w in days.warning if w.value.startswith("The baseline holds")]


def test_explore_on_a_change_within_noise_says_so_and_filters_on_a_value_of_the_window(
        monkeypatch, demo_store):
    # The demo's day two days before its end, against the day before: the error rate moved by
    # noise (p ≈ 0.29); the top value, app version v2.2.0, has no request in that day.
    end = DEMO_END - timedelta(hours=48)
    at = run_page(monkeypatch, demo_store, "pages/explore.py",
                  {"range": "custom", "from": (end - timedelta(hours=24)).isoformat(),
                   "to": end.isoformat(), "metric": "error_rate"})
    assert "not a significant change" in at.info[0].value
    assert [c for c in at.caption if c.value.startswith("The overall change is within noise")]
    buttons = [b.label for b in at.button if b.label.startswith("Filter on ")]
    assert len(buttons) == 1 and "v2.2.0" not in buttons[0]


def test_the_what_if_of_traffic_without_a_cost_shows_no_dollar_figure(monkeypatch, lake):
    from tests.conftest import T0, make_request, requests_table

    lake.append({"requests": requests_table([
        make_request(i, model="my-ft", cost_usd=None) for i in range(3)])}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/cost.py",
                  {"range": "custom", "from": T0.isoformat(),
                   "to": (T0 + timedelta(hours=1)).isoformat(), "model": "my-ft"})
    tiles = {m.label: m.value for m in at.metric}
    # nothing has an actual cost: unknown, not "$0.00 / $0.00 / +$0.00"
    assert tiles["Actual spend"] == "–" and tiles["Difference"] == "–"
    assert [c for c in at.caption if c.value.startswith("3 requests without an actual cost are")]
    assert tiles["Spend"] == "–"  # not $0.00
    assert "3 requests without a price are not in the bars" in texts(at)
    overview = run_page(monkeypatch, lake.root, "pages/overview.py",
                        {"range": "custom", "from": T0.isoformat(),
                         "to": (T0 + timedelta(hours=1)).isoformat()})
    assert "3 requests without a price are not in the cost bars" in texts(overview)


def test_the_request_page_lists_the_shown_request_of_a_long_session(monkeypatch, lake):
    from tests.conftest import T0, make_request, requests_table

    # 501 requests a minute apart; the newest is shown: the first 500 would leave it out
    lake.append({"requests": requests_table([
        make_request(i, session_id="long") for i in range(501)])}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/request.py",
                  {"request": "r500", "range": "custom", "from": T0.isoformat(),
                   "to": (T0 + timedelta(days=1)).isoformat()})
    assert [c for c in at.caption if c.value == "501 requests in session long; the 500 "
            "nearest in time to this one are listed"]
    (table,) = [d.value for d in at.dataframe if "this" in d.value.columns]
    assert len(table) == 500 and table["this"].sum() == 1
    assert table.loc[table["this"], "request_id"].tolist() == ["r500"]
    assert "r0" not in table["request_id"].tolist()  # the oldest, farthest, is the one left out


@pytest.mark.parametrize("page", ["pages/overview.py", *PAGES[:4]])
def test_charts_over_the_clocks_going_back_say_they_are_drawn_at_a_fixed_offset(
        monkeypatch, lake, page):
    from tests.conftest import make_request, requests_table

    # New York's clocks went back on 2026-11-01 at 06:00 UTC: a request an hour for 3 days
    start = datetime(2026, 10, 31, tzinfo=UTC)
    lake.append({"requests": requests_table([
        make_request(i, ts=start + timedelta(hours=i), status="error" if i % 5 else "ok")
        for i in range(72)])}, source="t")
    # (a day: buckets of at most an hour on every page, Quality's included)
    around = {"range": "custom", "from": "2026-10-31T18:00:00Z", "to": "2026-11-01T18:00:00Z",
              "tz": "America/New_York"}
    at = run_page(monkeypatch, lake.root, page, around)
    assert "Charts are drawn at UTC−05:00, the offset of America/New" in texts(at)
    after = {**around, "from": "2026-11-02T12:00:00Z", "to": "2026-11-03T00:00:00Z"}
    assert "Charts are drawn at" not in texts(run_page(monkeypatch, lake.root, page, after))


def test_explore_s_filter_button_shows_a_value_from_the_logs_as_text(monkeypatch, lake):
    from tests.conftest import T0, make_request, requests_table

    hostile = "**Bold** [link](http://evil.test) :red[red]"
    lake.append({"requests": requests_table(
        [make_request(i, feature="plain") for i in range(30)]  # the baseline hour: all ok
        + [make_request(60 + i, feature=hostile, status="error" if i % 2 else "ok")
           for i in range(30)]
        + [make_request(90 + i, feature="plain") for i in range(30)])}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/explore.py",
                  {"range": "custom", "from": (T0 + timedelta(hours=1)).isoformat(),
                   "to": (T0 + timedelta(hours=2)).isoformat(), "metric": "error_rate"})
    (label,) = [b.label for b in at.button if b.label.startswith("Filter on ")]
    # (a zero-width space after the scheme: no bare link either)
    assert label == ("Filter on feature = \\*\\*Bold\\*\\* \\[link\\]\\("
                     "http\u200b\\://evil\\.test\\) \\:red\\[red\\]")


def test_explore_s_filter_button_shows_an_attribute_key_from_the_logs_as_text(monkeypatch,
                                                                               lake):
    # an attribute key "__v__" read as a bold "v" on the button (its value was escaped)
    from tests.conftest import T0, make_request, requests_table

    lake.append({"requests": requests_table(
        [make_request(i, attributes='{"__v__": "a"}') for i in range(30)]
        + [make_request(60 + i, attributes='{"__v__": "b"}', status="error")
           for i in range(30)])}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/explore.py",
                  {"range": "custom", "from": (T0 + timedelta(hours=1)).isoformat(),
                   "to": (T0 + timedelta(hours=2)).isoformat(), "metric": "error_rate"})
    labels = [b.label for b in at.button if b.label.startswith("Filter on ")]
    assert labels == ["Filter on attribute \\_\\_v\\_\\_ = b"]


def test_a_request_opened_from_explore_links_back_to_that_view(monkeypatch, demo_store):
    # Back went to an Explore without the incident's window or "errors only"; the Request page
    # now links to the exact view the request was opened from.
    window = window_param(OUTAGE - timedelta(minutes=30), OUTAGE + timedelta(minutes=60))
    at = run_page(monkeypatch, demo_store, "pages/explore.py",
                  {**WEEK, "window": window, "metric": "error_rate", "errors": "1"})
    link = [e for e in at.get("page_link") if e.proto.label == "Open request"]
    assert link and "request=" in link[0].proto.query_string  # one navigation, one Back
    rid = unquote(link[0].proto.query_string.split("request=")[1].split("&")[0])
    at.query_params["request"] = rid
    at.switch_page("pages/request.py").run()
    (back,) = [e for e in at.get("page_link") if e.proto.label == "Back to Explore"]
    query = dict(p.split("=", 1) for p in back.proto.query_string.split("&"))
    assert query["errors"] == "1" and query["metric"] == "error_rate"
    assert unquote(query["window"]) == window
    # another request, pasted later: no way "back" to a view it was not opened from
    at.text_input(key="rq_id").set_value("some-other-id").run()
    assert not [e for e in at.get("page_link") if e.proto.label == "Back to Explore"]


def test_the_token_mix_adds_to_the_spend_past_a_price_tier(monkeypatch, lake):
    # claude-sonnet-4-5 charges more past 200k input tokens: the mix, at base-tier prices,
    # added to about half the spend while its caption said the two "can differ slightly"; a
    # caption then said how far apart they were. Now the mix prices the call at its tier.
    from lib import pricing
    from tests.conftest import T0, make_request, requests_table

    big = dict(provider="anthropic", model="claude-sonnet-4-5", input_tokens=300_000,
               cached_input_tokens=0, output_tokens=2_000)
    spent = pricing.request_cost(ts=T0, **big)
    base = pricing.request_cost(ts=T0, **{**big, "input_tokens": 100_000}) + \
        pricing.request_cost(ts=T0, **{**big, "input_tokens": 200_000, "output_tokens": 0})
    assert spent > base * 1.2  # (the tier is real)
    lake.append({"requests": requests_table([make_request(0, cost_usd=spent, **big)])},
                source="t")
    at = run_page(monkeypatch, lake.root, "pages/cost.py",
                  {"range": "custom", "from": T0.isoformat(),
                   "to": (T0 + timedelta(hours=1)).isoformat()})
    assert "Here they add to" not in texts(at)
    assert "a long prompt's at its price tier's" in texts(at)


def test_explore_s_count_card_says_which_requests_the_metric_counts(monkeypatch, lake):
    # For the cost per request, n is the priced requests: the card said "Requests in the window".
    from tests.conftest import T0, make_request, requests_table

    lake.append({"requests": requests_table(
        [make_request(i, cost_usd=0.01) for i in range(4)]  # baseline hour
        + [make_request(60 + i, cost_usd=0.02) for i in range(3)]
        + [make_request(70 + i, model="my-ft", cost_usd=None) for i in range(2)])}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/explore.py",
                  {"range": "custom", "from": (T0 + timedelta(hours=1)).isoformat(),
                   "to": (T0 + timedelta(hours=2)).isoformat(), "metric": "cost_per_request"})
    cards = {m.label: m.value for m in at.metric}
    assert cards["Priced requests in the window"] == "3"


def test_explore_says_a_baseline_has_no_priced_requests_not_no_requests(monkeypatch, lake):
    # 30 unpriced requests in the baseline hour: "No requests in the baseline" and "pick one
    # with traffic" were wrong for the cost per request (found by a review)
    from tests.conftest import T0, make_request, requests_table

    lake.append({"requests": requests_table(
        [make_request(i, model="my-ft", cost_usd=None) for i in range(30)]
        + [make_request(60 + i, cost_usd=0.02) for i in range(3)])}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/explore.py",
                  {"range": "custom", "from": (T0 + timedelta(hours=1)).isoformat(),
                   "to": (T0 + timedelta(hours=2)).isoformat(), "metric": "cost_per_request"})
    assert at.info[0].value.startswith("No priced requests in the baseline")
    assert "pick one with priced requests" in texts(at)


def test_latency_opens_a_slow_request_with_a_link(monkeypatch, demo_store):
    # a button that switched page made two history entries (two Backs to return)
    at = run_page(monkeypatch, demo_store, "pages/latency.py", WEEK)
    (link,) = [e for e in at.get("page_link") if e.proto.label == "Open request"]
    rid, _ = at.selectbox(key="lat_open_id").value
    assert f"request={rid}" in link.proto.query_string


def test_latency_opens_the_slow_request_not_a_newer_one_of_its_id(monkeypatch, lake):
    # a source's ids repeating days apart: "r1" is a 9 s call in the window and a 50 ms one two
    # days later; by its id alone the link opened the newest, the 50 ms call (found in review)
    from urllib.parse import parse_qsl

    from lib.ui.widgets import request_at
    from tests.conftest import T0, make_request, requests_table

    lake.append({"requests": requests_table([make_request(1, latency_ms=9000.0),
                                             make_request(2, latency_ms=100.0)])}, source="t")
    lake.append({"requests": requests_table([
        make_request(3, request_id="r1", ts=T0 + timedelta(days=2), latency_ms=50.0)])},
        source="later")
    at = run_page(monkeypatch, lake.root, "pages/latency.py",
                  {"range": "custom", "from": T0.isoformat(),
                   "to": (T0 + timedelta(hours=1)).isoformat()})
    rid, ts = at.selectbox(key="lat_open_id").value  # (the slowest first)
    (link,) = [e for e in at.get("page_link") if e.proto.label == "Open request"]
    assert (rid, ts) == ("r1", T0 + timedelta(minutes=1))
    assert "at=" + request_at(ts).replace(":", "%3A") in link.proto.query_string
    opened = run_page(monkeypatch, lake.root, "pages/request.py",
                      dict(parse_qsl(link.proto.query_string)))
    assert opened.selectbox(key="rq_at").value == request_at(ts)


@pytest.mark.parametrize("page", ["pages/overview.py", "pages/cost.py", "pages/latency.py",
                                  "pages/quality.py", "pages/explore.py"])
def test_a_window_past_the_last_request_says_logs_stopped_arriving(monkeypatch, demo_store, page):
    # the demo's last request is just before DEMO_END: 2 h past it, with nothing, is a stall
    stalled = {"range": "custom", "from": (DEMO_END - timedelta(hours=10)).isoformat(),
               "to": (DEMO_END + timedelta(hours=2)).isoformat(), "tz": "Asia/Kolkata"}
    at = run_page(monkeypatch, demo_store, page, stalled)
    last = Engine(Lake(demo_store)).scalar("SELECT max(ts) FROM requests")
    local = last.astimezone(ZoneInfo("Asia/Kolkata")).strftime("%Y-%m-%d %H:%M")
    warnings = [w.value for w in at.warning if "No request has arrived" in w.value]
    assert len(warnings) == 1 and f"**{local}** (Asia/Kolkata)" in warnings[0]
    # the time since the last request, not the window's length (a window after it)
    after = {**stalled, "from": (DEMO_END + timedelta(hours=1)).isoformat(),
             "to": (DEMO_END + timedelta(hours=3)).isoformat()}
    at = run_page(monkeypatch, demo_store, page, after)
    gap = DEMO_END + timedelta(hours=3) - last
    said = formatting.duration(gap)
    assert [w for w in at.warning if f"{said} before the window's end" in w.value], \
        [w.value for w in at.warning]
    # a window the data covers says nothing of it
    at = run_page(monkeypatch, demo_store, page, WEEK)
    assert not [w for w in at.warning if "No request has arrived" in w.value]


def test_a_request_stamped_in_the_future_does_not_hide_a_stall(monkeypatch, tmp_path):
    # logs stopped two days ago; one request from a logger whose clock is 20 h ahead (ingest
    # takes up to a day ahead) made the newest request "in the future", and the stall vanished
    from tests.conftest import make_request, requests_table

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    stopped = now - timedelta(days=2)
    rows = [make_request(i, ts=stopped - timedelta(hours=i)) for i in range(30)]
    rows.append(make_request(99, ts=now + timedelta(hours=20)))
    Lake(tmp_path / "s").append({"requests": requests_table(rows)}, source="t")
    at = run_page(monkeypatch, tmp_path / "s", "pages/overview.py", {"range": "7d", "tz": "UTC"})
    warnings = [w.value for w in at.warning if "No request has arrived" in w.value]
    assert len(warnings) == 1 and f"**{stopped:%Y-%m-%d %H:%M}** (UTC)" in warnings[0]
    ahead = [i.value for i in at.info if "stamped after now" in i.value]
    assert ahead == [f"1 request is stamped after now, the latest at "
                     f"**{now + timedelta(hours=20):%Y-%m-%d %H:%M}** (UTC): a logger's clock "
                     "is ahead of time. They count in the windows that reach their times."]


@pytest.mark.parametrize("page", ["pages/overview.py", "pages/cost.py", "pages/latency.py",
                                  "pages/drift.py", "pages/explore.py", "pages/quality.py"])
def test_a_window_without_requests_links_to_the_days_the_store_has_them(monkeypatch, tmp_path,
                                                                          page):
    # a store of 2021's logs: "widen the time range" cannot help; the days they span can
    from tests.conftest import make_request, requests_table

    t = datetime(2021, 3, 1, 22, 30, tzinfo=UTC)  # 2021-03-02 07:30 in Tokyo
    rows = [make_request(i, ts=t + timedelta(days=i), feature="chat" if i else "search")
            for i in range(4)]
    Lake(tmp_path / "s").append({"requests": requests_table(rows)}, source="t")
    at = run_page(monkeypatch, tmp_path / "s", page, {"range": "7d", "tz": "Asia/Tokyo",
                                                      "feature": "chat"})
    said = texts(at).replace("\\", "")
    assert "3 requests with these filters are from 2021-03-03 07:30 → 2021-03-05 07:30 " \
        "Asia/Tokyo:" in said, said
    button = at.button(key="show_days")
    # Tokyo's midnights: 2021-03-02T15:00Z to 2021-03-05T15:00Z
    assert button.label == "Show those days" and button.help == \
        "Opens 2021-03-03 00:00 → 2021-03-06 00:00 Asia/Tokyo"


def test_drift_finds_the_demo_s_longer_search_prompts(monkeypatch, demo_store):
    # the demo plants longer search inputs over the last 7/30 of its window (about 1.6 days of
    # this 7-day store): the last day against the day before it
    day = {"range": "custom", "from": (DEMO_END - timedelta(days=1)).isoformat(),
           "to": DEMO_END.isoformat(), "feature": "search"}
    at = run_page(monkeypatch, demo_store, "pages/drift.py", day)
    table = at.dataframe[0].value
    status = dict(zip(table["Column"], table["Status"], strict=True))
    assert status["Input tokens"] == "drift" and status["Prompt length (characters)"] == "drift"
    assert status["Latency (ms)"] == "no drift" and status["Model"] == "no drift"
    assert "None" not in table.astype(str).to_numpy().ravel().tolist()
    # a distance says where its drift starts (raised above noise where needed); a p-value no
    for test, statistic in zip(table["Test"], table["Statistic"], strict=True):
        assert ("(drift ≥ " in statistic) == ("distance" in test), (test, statistic)
    assert any("distance" in test for test in table["Test"])
    # where it moved: by feature, the search prompts' median grew
    moved = at.dataframe[1].value
    assert moved["value"].tolist() == ["search"]  # (the sidebar filters on it)
    assert moved["median_cur"][0] > 1.3 * moved["median_ref"][0]
    assert "Drifted: Input tokens" in " ".join(w.value for w in at.warning)
    # the distributions open on the first drifting column
    assert at.selectbox(key="drift_column").value in ("input_tokens", "input_chars")
    # the column and the reference are kept in the URL
    at.selectbox(key="drift_column").set_value("latency_ms").run()
    at.selectbox(key="drift_reference").set_value("week").run()
    assert not at.exception
    assert at.query_params["column"] in ("latency_ms", ["latency_ms"])
    assert at.query_params["reference"] in ("week", ["week"])


def test_drift_says_when_its_reference_overlaps_the_current_window(monkeypatch, demo_store):
    # 10 days against the same window a week earlier share 3 days, compared with themselves:
    # the page says so; 7 days against a week earlier share none
    ten = {"range": "custom", "from": (DEMO_END - timedelta(days=10)).isoformat(),
           "to": DEMO_END.isoformat(), "reference": "week"}
    at = run_page(monkeypatch, demo_store, "pages/drift.py", ten)
    said = " ".join(w.value for w in at.warning)
    assert "The reference overlaps the current window by 3 days" in said
    seven = {**ten, "from": (DEMO_END - timedelta(days=7)).isoformat()}
    at = run_page(monkeypatch, demo_store, "pages/drift.py", seven)
    assert "overlaps" not in " ".join(w.value for w in at.warning)


def test_drift_says_when_the_store_covers_its_reference_only_in_part(monkeypatch, demo_store):
    # the demo's 7 days: the last 4 against the 4 before, of which the store holds 3
    four = {"range": "custom", "from": (DEMO_END - timedelta(days=4)).isoformat(),
            "to": DEMO_END.isoformat()}
    at = run_page(monkeypatch, demo_store, "pages/drift.py", four)
    said = " ".join(w.value for w in at.warning)
    # (its first request a few minutes after the hour: not quite 3 days)
    assert "Only 2 days 23 hours of the reference's 4 days have data" in said
    three = {**four, "from": (DEMO_END - timedelta(days=3)).isoformat()}
    at = run_page(monkeypatch, demo_store, "pages/drift.py", three)
    assert "of the reference's" not in " ".join(w.value for w in at.warning)
    # a reference wholly before the store's first request has no data at all: it said "Only
    # 0 s of the reference's 7 days have data… That part stands for the whole reference"
    seven = {**four, "from": (DEMO_END - timedelta(days=7)).isoformat()}
    said = " ".join(w.value for w in run_page(monkeypatch, demo_store, "pages/drift.py",
                                              seven).warning)
    assert "The reference has no data: the store's requests begin at" in said
    assert "Only 0 s" not in said


def test_drift_with_too_few_rows_never_says_no_drift(monkeypatch, tmp_path):
    # 20 requests a side: design §5's "insufficient data", never a green "no drift"
    from tests.conftest import make_request, requests_table

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = [make_request(i, ts=now - timedelta(minutes=3 * i + 1)) for i in range(40)]
    Lake(tmp_path / "s").append({"requests": requests_table(rows)}, source="t")
    at = run_page(monkeypatch, tmp_path / "s", "pages/drift.py", {"range": "1h"})
    assert not at.success and not at.warning
    assert [i.value for i in at.info] == [
        "Too few rows to test any column (at least 30 a side): widen the time range or clear "
        "some filters."]
    assert set(at.dataframe[0].value["Status"]) == {"too few rows"}
    assert set(at.dataframe[0].value["Test"]) == {"–"}  # no test ran: none named


def test_drift_opens_the_distributions_on_a_column_it_tested(monkeypatch, tmp_path):
    # no drift, and no prompt or response text logged: the text lengths (too few rows) come
    # first in the table, but the chart opens on a tested column, not on an empty one
    from tests.conftest import make_request, requests_table

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = [make_request(i, ts=now - timedelta(minutes=2 * i + 1), latency_ms=100.0 + i % 7)
            for i in range(240)]  # 8 hours: this window and its reference
    Lake(tmp_path / "s").append({"requests": requests_table(rows)}, source="t")
    at = run_page(monkeypatch, tmp_path / "s", "pages/drift.py", {
        "range": "custom", "from": (now - timedelta(hours=4)).isoformat(),
        "to": now.isoformat()})
    table = at.dataframe[0].value
    assert table["Status"][0] == "too few rows"
    first_tested = next(c for c, s in zip(table["Column"], table["Status"], strict=True)
                        if s != "too few rows")
    assert at.selectbox(key="drift_column").format_func(at.selectbox(key="drift_column").value) \
        == first_tested


def test_a_setting_that_makes_other_settings_stale_writes_only_itself(monkeypatch, demo_store):
    # versions chosen for the online judge are not offline versions: switching the source
    # falls back to the defaults without writing them (each write is a Back step)
    week = {"range": "custom", "from": (DEMO_END - timedelta(days=7)).isoformat(),
            "to": DEMO_END.isoformat(), "compare_a": "v12", "compare_b": "v13"}
    at = run_page(monkeypatch, demo_store, "pages/quality.py", week)
    at.selectbox(key="q_source").set_value("offline").run()
    assert at.query_params["source"] in ("offline", ["offline"])
    assert at.query_params["compare_a"] in ("v12", ["v12"])  # untouched
    offline = at.selectbox(key="q_cmp_b").options
    assert at.selectbox(key="q_cmp_b").value != "v13" and "v13" not in offline


def test_a_metric_with_scores_only_is_drawn_as_its_mean_score_by_version(monkeypatch, tmp_path):
    # an answer length (no pass/fail) had an empty pass-rate chart, its axis -100% to 500%
    # (review); a metric with pass/fail keeps its pass rate
    import json

    from tests.conftest import make_request, requests_table
    from tests.metrics.test_quality import evals_table

    t0 = datetime(2026, 11, 14, tzinfo=UTC)
    lake = Lake(tmp_path / "s")
    lake.append({"requests": requests_table([make_request(0, ts=t0)])}, source="t")
    evals = [{"eval_id": f"{v}-{m}-{i}", "run_id": v, "ts": t0, "source": "offline",
              "dataset": "qa", "case_id": str(i), "epoch": 1, "version": v, "metric": m,
              "score": float(i) if m == "answer_length" else float(i % 2),
              "passed": None if m == "answer_length" else i % 2 == 0}
             for v in ("v1", "v2") for m in ("answer_length", "correct") for i in range(4)]
    lake.append({"evals": evals_table(evals)}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/quality.py", {**WEEK, "source": "offline"})
    said = texts(at)
    assert "**answer\\_length** — mean score by version (no pass/fail)" in said
    assert "**correct** — pass rate by version" in said
    assert "Bars: pass rate (a metric without pass/fail: its mean score)" in said
    (chart,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if "mean score (the metric" in c.proto.spec]
    assert chart["data"][0]["x"] == [1.5, 1.5]  # (0 + 1 + 2 + 3) / 4 for each version


def test_a_score_regression_lists_the_cases_the_candidate_scored_lower_on(monkeypatch, tmp_path):
    # a regression of a metric without pass/fail had "v2 failed no sim eval in this window"
    # under it, its evidence nowhere (review): the cases v2 scored lower on, largest drop first
    from tests.metrics.test_quality import evals_table

    t0 = datetime(2026, 11, 14, tzinfo=UTC)
    lake = Lake(tmp_path / "s")
    evals = [{"eval_id": f"{v}-{i}", "run_id": v, "ts": t0 + timedelta(hours=v == "v2"),
              "source": "offline", "dataset": "qa", "case_id": str(i), "epoch": 1,
              "version": v, "metric": "sim",
              "score": 0.8 if v == "v1" else 0.7 - 0.001 * i} for v in ("v1", "v2")
             for i in range(40)]
    lake.append({"evals": evals_table(evals)}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/quality.py", {**WEEK, "source": "offline"})
    said = texts(at)
    assert "a regression of v2 against v1" in at.error[0].value
    assert "40 test cases v2 scored lower on than v1, the largest drop first." in said
    assert "failed no" not in said
    (table,) = [d.value for d in at.dataframe if "baseline_score" in d.value.columns]
    assert table["case_id"].to_list()[:2] == ["39", "38"]


def test_feedback_scored_without_pass_fail_is_not_called_no_feedback(monkeypatch, tmp_path):
    # Langfuse user feedback scored NUMERIC 1 / 0 has no pass/fail: the section said "No user
    # feedback in this window" above 40 feedback scores shown by version (review)
    from tests.metrics.test_quality import evals_table

    t0 = datetime(2026, 11, 14, tzinfo=UTC)
    lake = Lake(tmp_path / "s")
    evals = [{"eval_id": f"f{i}", "run_id": "langfuse:api", "ts": t0 + timedelta(hours=i),
              "source": "feedback", "case_id": f"t{i}", "epoch": 0, "metric": "user-feedback",
              "score": float(i % 4 != 0)} for i in range(40)]
    lake.append({"evals": evals_table(evals)}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/quality.py", WEEK)
    said = texts(at)
    assert "No user feedback in this window" not in said
    assert "**No thumbs up or down in this window**" in said
    assert "This window has 40 feedback evals (user\\-feedback), scores without a pass/fail" \
        in said


def test_a_comparison_s_downloads_name_long_prompt_labels_briefly(monkeypatch, tmp_path,
                                                                 download_names):
    # promptfoo's version is its prompt's label, by default the prompt's text: the comparison's
    # CSV was named with two whole prompts (855 characters, "/" and newlines; review). Now
    # each is cut to 40 file-name characters and a hash, so two alike prompts keep two names.

    from tests.metrics.test_quality import evals_table

    prompt = "You are a helpful assistant/agent. Answer:\n{{question}}\n" + "Be concise. " * 30
    t0 = datetime(2026, 11, 14, tzinfo=UTC)
    lake = Lake(tmp_path / "s")
    evals = [{"eval_id": f"{k}-{i}", "run_id": str(k), "ts": t0 + timedelta(hours=k),
              "source": "offline", "dataset": "qa", "case_id": str(i), "epoch": 1,
              "version": v, "metric": "acc", "passed": i % (k + 2) != 0}
             for k, v in enumerate((prompt, prompt.replace("concise", "brief")))
             for i in range(40)]
    lake.append({"evals": evals_table(evals)}, source="t")
    run_page(monkeypatch, lake.root, "pages/quality.py", {**WEEK, "source": "offline"})
    (compare,) = [n for n in download_names if n.startswith("compare_") and n.endswith(".csv")]
    (failed,) = [n for n in download_names if n.startswith("failed_") and n.endswith(".csv")]
    for name in (compare, failed):
        assert len(name) < 180 and "/" not in name and "\n" not in name, name
        assert name.endswith("_2026-11-13T1200_2026-11-20T1200_UTC.csv")
    a, b = compare.split("_")[2:4]
    assert a != b and a[:40] == b[:40] == "You-are-a-helpful-assistant-agent.-Answe"


def test_an_online_judge_s_scores_are_compared_and_its_lowest_listed(monkeypatch, tmp_path):
    # a numeric judge (a Langfuse EVAL score, an OTel score without a label) of two prompt
    # versions: "too few pairs to say" with 60 scores a side, 0.8 against 0.5 (review)
    from tests.metrics.test_quality import evals_table

    t0 = datetime(2026, 11, 14, tzinfo=UTC)
    lake = Lake(tmp_path / "s")
    evals = [{"eval_id": f"{v}-{i}", "run_id": "judge", "ts": t0 + timedelta(hours=k, minutes=i),
              "source": "online", "request_id": f"{v}-r{i}", "version": v,
              "metric": "helpfulness", "score": mean + 0.001 * (i % 30)}
             for k, (v, mean) in enumerate((("v1", 0.8), ("v2", 0.5))) for i in range(60)]
    lake.append({"evals": evals_table(evals)}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/quality.py", WEEK)
    assert "a regression of v2 against v1 \\(Welch's t, p \\< 0\\.001\\)" in at.error[0].value
    said = texts(at)
    assert "too few pairs" not in said
    assert "v2's 60 scores, the lowest first." in said


def test_a_metric_one_compared_version_was_not_scored_on_is_named(monkeypatch, tmp_path):
    # v2's correctness scorer failed on every case (its rows quarantined): the comparison
    # showed helpfulness alone, without a word of the metric v2 lost
    from tests.metrics.test_quality import evals_table

    t0 = datetime(2026, 11, 14, tzinfo=UTC)
    lake = Lake(tmp_path / "s")
    evals = [{"eval_id": f"{v}-{m}-{i}", "run_id": "judge",
              "ts": t0 + timedelta(hours=k, minutes=i), "source": "online",
              "request_id": f"{v}-r{i}", "version": v, "metric": m,
              "score": 0.8 + 0.001 * (i % 30)}
             for k, v in enumerate(("v1", "v2")) for i in range(60)
             for m in (("helpfulness", "correctness") if v == "v1" else ("helpfulness",))]
    lake.append({"evals": evals_table(evals)}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/quality.py", WEEK)
    assert "Not compared, scored on v1 alone\\: correctness\\." in texts(at)  # (escaped)


@pytest.mark.parametrize("page", ["pages/cost.py", "pages/latency.py", "pages/quality.py",
                                  "pages/drift.py", "pages/explore.py", "pages/request.py"])
def test_every_page_says_when_an_unreadable_file_is_left_out(monkeypatch, demo_store, tmp_path,
                                                              page):
    # Only the Overview and Data pages said so: the Cost page's spend fell by a cut-short
    # file's rows with no word of it (found in review).
    import shutil

    from tests.pages.test_foundation_pages import run_app

    store = tmp_path / "store"
    shutil.copytree(demo_store, store)
    cut = store / Lake(store).snapshot().files["requests"][0]
    cut.write_bytes(cut.read_bytes()[:300])
    at = run_app(monkeypatch, store, page, {"range": "custom", "from": "2026-11-13T12:00:00Z",
                                            "to": "2026-11-20T12:00:00Z"})
    assert any("unreadable file(s) in the store are skipped" in e.label for e in at.expander)


def test_two_feedback_metrics_are_shown_one_at_a_time(monkeypatch, tmp_path):
    # "thumbs_up" (30 of 40 up) and "resolved" (2 of 10) were pooled into one "Thumbs up" of
    # 64%; the KPI is now the most rated metric's, and the section picks one metric at a time
    from tests.metrics.test_quality import evals_table

    t0 = datetime(2026, 11, 14, tzinfo=UTC)
    lake = Lake(tmp_path / "s")
    evals = [{"eval_id": f"t{i}", "ts": t0 + timedelta(hours=i), "source": "feedback",
              "metric": "thumbs_up", "passed": i % 4 != 0} for i in range(40)]
    evals += [{"eval_id": f"r{i}", "ts": t0 + timedelta(hours=i), "source": "feedback",
               "metric": "resolved", "passed": i < 2} for i in range(10)]
    lake.append({"evals": evals_table(evals)}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/quality.py", WEEK)
    kpi = next(m for m in at.metric if m.label == "Thumbs up")
    assert kpi.value == "75.0%"
    assert "the most rated of 2 feedback metrics" in kpi.help
    (pick,) = [s for s in at.selectbox if s.label == "Feedback metric"]
    assert pick.value == "thumbs_up" and pick.options == ["thumbs_up (40 ratings)",
                                                          "resolved (10 ratings)"]
    at = pick.select("resolved").run()
    assert at.query_params["feedback"] == "resolved"
    # the volume chart counts resolved's ratings alone: 2 up, 8 down over the week
    import json

    (volume,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart")
                 if '"ratings per' in c.proto.spec]
    ups, downs = (sum(y or 0 for y in t["y"]) for t in volume["data"][:2])
    assert (ups, downs) == (2, 8)


@pytest.mark.parametrize("window", ["0001-01-01T00:00:00Z..9999-12-31T23:59:59Z", "garbage..",
                                    "2026-11-20T10:00:00Z..2026-11-20T10:00:00Z"])
def test_a_link_s_window_that_is_no_window_is_said_not_a_traceback(monkeypatch, demo_store,
                                                                      window):
    # a window from year 1 failed the page (OverflowError on its baseline), and a malformed one
    # was passed over without a word
    at = run_page(monkeypatch, demo_store, "pages/explore.py",
                  {**WEEK, "window": window, "baseline": window})
    said = [w.value for w in at.warning if "is no window" in w.value]
    assert len(said) == 2 and "studies the sidebar's window" in said[0]
    assert "2026-11-13 12:00 → 2026-11-20 12:00 UTC" in texts(at)  # the sidebar's, as said


def test_explore_greys_a_change_on_too_few_requests_to_test(monkeypatch, lake):
    # 0 errors in 10 requests, then 2 in 10: the tile's +20 pp was red news
    from tests.conftest import T0, make_request, requests_table

    lake.append({"requests": requests_table([
        make_request(i, status="error" if i in (11, 13) else "ok") for i in range(20)])},
        source="t")
    at = run_page(monkeypatch, lake.root, "pages/explore.py",
                  {"range": "custom", "from": T0.isoformat(),
                   "to": (T0 + timedelta(hours=1)).isoformat(), "metric": "error_rate",
                   "window": window_param(T0 + timedelta(minutes=10),
                                          T0 + timedelta(minutes=20))})
    assert "too few requests to tell a change from noise" in texts(at)
    assert at.metric[0].proto.color == 2  # gray (Metric.MetricColor)


@pytest.mark.parametrize("metric, missing, said", [
    ("cost_per_request", {"model": "my-self-hosted-llm", "cost_usd": None}, "has a price"),
    ("p95_latency", {"latency_ms": None}, "has a latency logged")])
def test_explore_on_a_metric_none_of_the_window_s_requests_has_keeps_its_requests(
        monkeypatch, lake, metric, missing, said):
    # 20 requests of a model without a price, "Cost per request" picked: the page said nothing
    # matched the window and its filters, and stopped before the fingerprints and the requests
    from tests.conftest import T0, make_request, requests_table

    lake.append({"requests": requests_table([
        make_request(i, status="error" if i == 3 else "ok", error_type="E" if i == 3 else None,
                     **missing) for i in range(20)])}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/explore.py",
                  {"range": "custom", "from": T0.isoformat(),
                   "to": (T0 + timedelta(hours=1)).isoformat(), "metric": metric})
    shown = texts(at)
    assert f"None of the 20 requests in the window {said}" in shown
    assert "Nothing matches the window" not in shown
    assert [s.value for s in at.subheader][-2:] == ["Error fingerprints", "Requests"]
    assert "20 requests · showing 1–20" in shown


def test_a_link_to_one_of_two_requests_under_one_id_opens_that_one(monkeypatch, lake):
    from urllib.parse import parse_qs

    from lib.ui import widgets
    from tests.conftest import T0, make_request, requests_table

    failed = T0 + timedelta(days=3)
    for row in (make_request(0, request_id="dup", latency_ms=100.0),
                make_request(0, request_id="dup", ts=failed, status="error",
                             error_type="Timeout", latency_ms=30000.0)):
        lake.append({"requests": requests_table([row])}, source="t")  # (two files)
    week = {"range": "custom", "from": T0.isoformat(), "to": (T0 + timedelta(days=4)).isoformat()}
    # Explore's table links each row at its time
    at = run_page(monkeypatch, lake.root, "pages/explore.py", {**week, "errors": "1"})
    (table,) = [d.value for d in at.dataframe if "status" in d.value.columns]  # the requests
    query = parse_qs(table["link"].iloc[0].split("?", 1)[1])
    assert query["request"] == ["dup"] and query["at"] == [widgets.request_at(failed)]
    # which the Request page opens, saying the id names two
    at = run_page(monkeypatch, lake.root, "pages/request.py",
                  {**week, "request": "dup", "at": query["at"][0]})
    assert at.selectbox(key="rq_at").value == query["at"][0]
    assert at.metric[0].value != "100 ms"
    older = run_page(monkeypatch, lake.root, "pages/request.py",
                     {**week, "request": "dup", "at": widgets.request_at(T0)})
    assert older.metric[0].value == "100 ms"


def test_a_new_search_of_explore_s_requests_starts_on_its_first_page(monkeypatch, demo_store):
    # on page 10 of the week, a search with more than 10 pages of matches opened on its 10th:
    # the newest matches were nine pages back
    monkeypatch.setenv("SIGHTLINE_STORE", str(demo_store))
    monkeypatch.setenv("SIGHTLINE_DEMO", "0")
    at = AppTest.from_file(str(PROJECT_DIR / "pages" / "explore.py"), default_timeout=120)
    for k, v in {**WEEK, "page": "10"}.items():
        at.query_params[k] = v
    at.run()
    assert at.number_input(key="ex_page").value == 10
    at.text_input(key="ex_q").set_value("a").run()  # (most prompts have an "a")
    assert not at.exception
    assert at.number_input(key="ex_page").value == 1
    assert at.query_params["page"] in ("1", ["1"])
    at.number_input(key="ex_page").set_value(3).run()  # paging within the search stays put
    assert at.number_input(key="ex_page").value == 3
    at.toggle(key="ex_errors").set_value(True).run()  # so does a new filter of the table
    assert at.number_input(key="ex_page").value == 1


def test_explore_says_when_its_baseline_overlaps_the_window(monkeypatch, demo_store):
    # a link whose baseline is the window itself read "p = 1" without a word (review)
    end = DEMO_END - timedelta(days=1)
    window = window_param(end - timedelta(hours=6), end)
    half = window_param(end - timedelta(hours=9), end - timedelta(hours=3))
    at = run_page(monkeypatch, demo_store, "pages/explore.py",
                  {**WEEK, "window": window, "baseline": half})
    said = [w.value for w in at.warning if "overlaps the window" in w.value]
    assert said and "by 3 h" in said[0], [w.value for w in at.warning]
    apart = run_page(monkeypatch, demo_store, "pages/explore.py", {**WEEK, "window": window})
    assert not [w.value for w in apart.warning if "overlaps the window" in w.value]


def test_an_online_judge_s_long_metric_name_is_cut_in_its_chart_s_legend(monkeypatch, tmp_path):
    # a 400-character metric name ran its two legend entries over the plot and off the chart
    # (seen in Chromium); the heading above the chart gives it whole
    import json

    from lib.analysis_charts import LEGEND_CHARS
    from tests.metrics.test_quality import evals_table

    t0 = datetime(2026, 11, 14, tzinfo=UTC)
    long = "W" * 400
    lake = Lake(tmp_path / "s")
    lake.append({"evals": evals_table([
        {"eval_id": f"e{i}", "ts": t0 + timedelta(hours=i), "source": "online",
         "request_id": f"r{i}", "metric": long, "score": 0.5, "passed": i % 2 == 0}
        for i in range(24)])}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/quality.py", WEEK)
    (spec,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart")
               if "pass rate per" in c.proto.spec]
    names = [t["name"] for t in spec["data"] if t.get("showlegend", True)
             and t.get("yaxis") != "y2"]
    short = "W" * (LEGEND_CHARS - 1) + "…"
    assert names == [f"{short} pass rate", f"mean {short} score"]
    assert f"**{long}**" in texts(at)


def test_downloads_named_after_a_metric_or_id_from_the_logs_use_a_file_name_s_characters(
        monkeypatch, tmp_path, download_names):
    # an online judge's chart, a request and its trace were named with the text as logged: a
    # 400-character metric made a file name past the 255 bytes a file system takes, and
    # '<img src=x …>' / '$x^2$ :red[x]' went into names as they were (seen in Chromium)
    import re

    import pyarrow as pa

    from lib import schema
    from tests.conftest import T0, make_request, requests_table
    from tests.metrics.test_quality import evals_table

    metric, rid, trace = "W" * 400, "<img src=x onerror=alert(1)>7", "t/../$x^2$ :red[x]"
    lake = Lake(tmp_path / "s")
    lake.append({"requests": requests_table([make_request(0, request_id=rid, trace_id=trace)]),
                 "spans": schema.conform(pa.Table.from_pylist(
                     [{"span_id": "s1", "trace_id": trace, "ts": T0, "duration_ms": 5.0,
                       "name": "tool", "kind": "tool"}]), schema.SPANS),
                 "evals": evals_table([{"eval_id": f"e{i}", "ts": T0 + timedelta(hours=i),
                                        "source": "online", "request_id": rid, "metric": metric,
                                        "score": 1.0, "passed": True} for i in range(3)])},
                source="t")
    day = {"range": "custom", "from": "2026-03-02T00:00:00Z", "to": "2026-03-03T00:00:00Z"}
    run_page(monkeypatch, lake.root, "pages/quality.py", day)
    run_page(monkeypatch, lake.root, "pages/request.py", {**day, "request": rid})
    for prefix in ("online_W", "request_", "trace_"):
        names = [n for n in download_names if n.startswith(prefix)]
        assert names, (prefix, download_names)
        for name in names:
            assert len(name.encode()) < 200, name
            assert re.fullmatch(r"[A-Za-z0-9._+\-]+", name), name


def test_dropdowns_of_ids_versions_and_metrics_show_bidi_controls_as_escapes(monkeypatch,
                                                                              tmp_path):
    # "Open a request" (Explore, Latency), the session's other requests and Quality's version
    # and metric pickers showed "r\u202e1-gpj" reordered, where the tables and the sidebar's
    # lists write the control as an escape; the values picked stay as logged
    from tests.conftest import T0, make_request, requests_table
    from tests.metrics.test_quality import evals_table

    rlo = "\u202e"
    lake = Lake(tmp_path / "s")
    lake.append({"requests": requests_table(
        [make_request(i, request_id=f"r{rlo}{i}", session_id="s") for i in range(3)]),
        "evals": evals_table([{"eval_id": f"{v}{i}", "ts": T0 + timedelta(minutes=i),
                               "source": "offline", "case_id": f"c{i}", "version": v,
                               "metric": f"m{rlo}x", "passed": i % 2 == 0}
                              for v in (f"v{rlo}1", f"v{rlo}2") for i in range(40)])},
        source="t")
    day = {"range": "custom", "from": "2026-03-02T00:00:00Z", "to": "2026-03-03T00:00:00Z"}
    shown = []
    for page, extra in (("pages/explore.py", {}), ("pages/latency.py", {}),
                        ("pages/request.py", {"request": f"r{rlo}0"}),
                        ("pages/quality.py", {"source": "offline"})):
        at = run_page(monkeypatch, lake.root, page, {**day, **extra})
        boxes = [s for s in at.selectbox if s.key in {
            "ex_open_id", "lat_open_id", "rq_next", "q_cmp_a", "q_cmp_b", "q_failed_metric"}]
        assert boxes, page
        shown += [o for s in boxes for o in s.options]
    assert shown and not any(rlo in o for o in shown), shown
    assert "r\\u202e1" in shown and "v\\u202e1" in shown


def test_the_request_page_shows_bidi_controls_in_prompt_response_error_and_attributes(
        monkeypatch, tmp_path):
    # a response "live\u202eevil" read "livelive" in its code block, where the "All fields"
    # table beside it wrote the control as an escape
    from tests.conftest import make_request, requests_table

    rlo = "\u202e"
    lake = Lake(tmp_path / "s")
    lake.append({"requests": requests_table([make_request(
        0, request_id="b", input_text=f"in{rlo}put", output_text=f"live{rlo}evil",
        status="error", error_message=f"err{rlo}or", attributes=f'{{"k": "v{rlo}w"}}')])},
        source="t")
    at = run_page(monkeypatch, lake.root, "pages/request.py",
                  {"range": "custom", "from": "2026-03-02T00:00:00Z",
                   "to": "2026-03-03T00:00:00Z", "request": "b"})
    codes = [c.value for c in at.code]
    assert not any(rlo in c for c in codes), codes
    for shown in ("in\\u202eput", "live\\u202eevil", "err\\u202eor", '"v\\u202ew"'):
        assert any(shown in c for c in codes), (shown, codes)


def test_the_cost_chart_s_caption_shows_an_attribute_key_from_the_logs_as_text(monkeypatch,
                                                                                lake):
    # stacked by an attribute key "__v__", the caption read "The 8 attribute v values" with a
    # bold "v"
    from tests.conftest import make_request, requests_table

    lake.append({"requests": requests_table(
        [make_request(i, attributes='{"__v__": "a"}') for i in range(5)])}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/cost.py",
                  {"range": "custom", "from": "2026-03-02T00:00:00Z",
                   "to": "2026-03-03T00:00:00Z", "by": "attr.__v__"})
    assert "The 8 attribute \\_\\_v\\_\\_ values with the most spend" in texts(at)


def test_the_what_if_tile_names_a_model_from_the_logs_as_text(monkeypatch, lake, tmp_path):
    # a deployment priced by an override, "my_*fast*_ft", read "On my_fast_ft" with "fast" in
    # italics on the what-if's tile
    from tests.conftest import T0, make_request, requests_table

    prices = tmp_path / "prices.yaml"
    prices.write_text('models:\n  - model: "my_*fast*_ft"\n    input_per_mtok: 1\n'
                      "    output_per_mtok: 2\n")
    monkeypatch.setenv("SIGHTLINE_PRICES", str(prices))
    lake.append({"requests": requests_table([
        make_request(i, model="my_*fast*_ft", provider="openai") for i in range(3)])},
        source="t")
    at = run_page(monkeypatch, lake.root, "pages/cost.py",
                  {"range": "custom", "from": T0.isoformat(),
                   "to": (T0 + timedelta(hours=1)).isoformat(),
                   "whatif": "openai/my_*fast*_ft"})
    assert "On my\\_\\*fast\\*\\_ft" in [m.label for m in at.metric]


def test_explore_s_open_a_request_tells_two_requests_of_one_id_apart(monkeypatch, tmp_path):
    # two rows of one id (a source's ids repeating days apart) were two like options, each
    # opening the same request; they are told apart by their time and open their own
    from tests.conftest import T0, make_request, requests_table

    lake = Lake(tmp_path / "s")
    for rows in ([make_request(0, request_id="dup", status="error"),
                  make_request(5, request_id="other")],
                 [make_request(3 * 24 * 60, request_id="dup")]):  # three days on: kept too
        lake.append({"requests": requests_table(rows)}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/explore.py",
                  {"range": "custom", "from": T0.isoformat(),
                   "to": (T0 + timedelta(days=4)).isoformat()})
    (box,) = [s for s in at.selectbox if s.key == "ex_open_id"]
    dups = [o for o in box.options if o.startswith("dup")]
    assert len(dups) == 2 and len(set(dups)) == 2 and all(" · 2026-" in o for o in dups), dups
    assert "other" in box.options  # an id alone reads as it is


def test_a_link_s_page_setting_that_is_not_offered_is_said(monkeypatch, demo_store):
    # metric=$x$ (or a version no longer in the window) fell back to the default without a
    # word, where the sidebar says what of a link it passed over (review)
    at = run_page(monkeypatch, demo_store, "pages/explore.py", {**WEEK, "metric": "$x$ <b>"})
    said = [w.value for w in at.warning if "is not one of the choices" in w.value]
    assert len(said) == 1, [w.value for w in at.warning]
    assert "\\$x\\$ \\<b\\>" in said[0] and "showing “Error rate”." in said[0]
    ok = run_page(monkeypatch, demo_store, "pages/explore.py", {**WEEK, "metric": "error_rate"})
    assert not [w for w in ok.warning if "is not one of the choices" in w.value]


def test_evals_without_a_source_are_named_not_a_traceback(monkeypatch, tmp_path):
    # A canonical eval file without `source` is stored with none: the Quality page stopped with
    # "TypeError: sequence item 0: expected str instance, NoneType found" (review), and such
    # evals are in no section of it (each is one source's).
    from tests.metrics.test_quality import evals_table

    t0 = datetime(2026, 11, 14, tzinfo=UTC)
    lake = Lake(tmp_path / "s")
    lake.append({"evals": evals_table([
        {"eval_id": f"e{i}", "ts": t0 + timedelta(hours=i), "case_id": f"c{i}",
         "version": "v1", "metric": "correct", "passed": i % 2 == 0} for i in range(40)])},
        source="t")
    at = run_page(monkeypatch, lake.root, "pages/quality.py", WEEK)
    (warning,) = [w.value for w in at.warning if "no `source`" in w.value]
    assert warning.startswith("40 evals in this window have no `source`")
    assert "**No online judge scores in this window**" in texts(at)


def test_drift_against_a_constant_reference_shows_its_statistic(monkeypatch, tmp_path):
    # A classifier answering in 1 token, then in 2 for 30 of 1,500 requests: Wasserstein/std is
    # infinite against the constant reference, and the row read "drift" beside a Statistic of
    # "–" (review); it says why now.
    from tests.conftest import T0, make_request, requests_table

    rows = [make_request(i, output_tokens=2 if i >= 2970 else 1) for i in range(3000)]
    Lake(tmp_path / "s").append({"requests": requests_table(rows)}, source="t")
    window = {"range": "custom", "from": (T0 + timedelta(minutes=1500)).isoformat(),
              "to": (T0 + timedelta(minutes=3000)).isoformat()}
    at = run_page(monkeypatch, tmp_path / "s", "pages/drift.py", window)
    table = at.dataframe[0].value
    row = table[table["Column"] == "Output tokens"].iloc[0]
    assert (row["Status"], row["Statistic"]) == ("drift", "∞ (constant reference) (drift ≥ 0.1)")


def test_what_b_failed_counts_the_test_cases_a_passed_not_their_epochs(monkeypatch, tmp_path):
    # 40 cases of 3 epochs: B fails c0-c11 in every epoch and c12-c19 in epoch 1, 44 failed
    # evals of 20 cases that A passed; the caption said "(44 cases)" (review)
    from tests.metrics.test_quality import evals_table

    t0 = datetime(2026, 11, 14, tzinfo=UTC)
    rows = [{"eval_id": f"{v}-{c}-{e}", "run_id": v, "ts": t0, "source": "offline",
             "dataset": "qa", "case_id": f"c{c}", "epoch": e, "version": v, "metric": "correct",
             "passed": v == "v1" or not (c < 12 or (c < 20 and e == 1))}
            for v in ("v1", "v2") for c in range(40) for e in (1, 2, 3)]
    lake = Lake(tmp_path / "s")
    lake.append({"evals": evals_table(rows)}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/quality.py",
                  {**WEEK, "source": "offline", "compare_a": "v1", "compare_b": "v2"})
    assert "44 failed evals; the cases v1 passed come first (20 cases), then the newest." \
        in texts(at).replace("\\", "")


def test_a_judge_score_better_lower_reads_its_fall_as_an_improvement(monkeypatch, tmp_path):
    # the judge above, as a hallucination score (lower is better) set in the metrics file
    from tests.metrics.test_quality import evals_table

    t0 = datetime(2026, 11, 14, tzinfo=UTC)
    lake = Lake(tmp_path / "s")
    lake.append({"evals": evals_table([
        {"eval_id": f"{v}-{i}", "run_id": "judge", "ts": t0 + timedelta(hours=k, minutes=i),
         "source": "online", "request_id": f"{v}-r{i}", "version": v,
         "metric": "hallucination", "score": mean + 0.001 * (i % 30)}
        for k, (v, mean) in enumerate((("v1", 0.8), ("v2", 0.5))) for i in range(60)])},
        source="t")
    settings = tmp_path / "metrics.yaml"
    settings.write_text("metrics:\n  hallucination:\n    better: lower\n")
    monkeypatch.setenv("SIGHTLINE_METRICS", str(settings))
    at = run_page(monkeypatch, lake.root, "pages/quality.py", WEEK)
    assert not at.error
    assert "an improvement of v2 on v1 \\(Welch's t, p \\< 0\\.001\\)" in at.success[0].value
    settings.write_text("metrics:\n  hallucination:\n    better: less\n")
    at = run_page(monkeypatch, lake.root, "pages/quality.py", WEEK)
    assert "The metrics settings cannot be read, defaults used" in at.error[0].value
    assert "a regression of v2 against v1" in at.error[1].value


def test_a_pass_rate_min_effect_no_change_can_reach_is_said(monkeypatch, tmp_path):
    # min_effect: 5 meant as 5 points asks a pass rate for 500: v2's fall from 100% to 70% was
    # "no significant change" without a word of why
    from tests.metrics.test_quality import evals_table

    t0 = datetime(2026, 11, 14, tzinfo=UTC)
    lake = Lake(tmp_path / "s")
    lake.append({"evals": evals_table([
        {"eval_id": f"{v}-{c}", "run_id": v, "ts": t0, "source": "offline", "dataset": "qa",
         "case_id": f"c{c}", "version": v, "metric": "correct", "passed": v == "v1" or c >= 30}
        for v in ("v1", "v2") for c in range(100)])}, source="t")
    settings = tmp_path / "metrics.yaml"
    settings.write_text("metrics:\n  correct: {min_effect: 5}\n")
    monkeypatch.setenv("SIGHTLINE_METRICS", str(settings))
    at = run_page(monkeypatch, lake.root, "pages/quality.py",
                  {**WEEK, "source": "offline", "compare_a": "v1", "compare_b": "v2"})
    (warning,) = [w.value for w in at.warning if "min\\_effect" in w.value]
    assert "its min\\_effect 5 asks for a change of 500 points" in warning
    settings.write_text("metrics:\n  correct: {min_effect: 0.05}\n")
    at = run_page(monkeypatch, lake.root, "pages/quality.py",
                  {**WEEK, "source": "offline", "compare_a": "v1", "compare_b": "v2"})
    assert not [w for w in at.warning if "min\\_effect" in w.value]
    assert "a regression of v2 against v1" in at.error[0].value
