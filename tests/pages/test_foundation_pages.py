"""AppTest: the Overview and Data pages run without exception, with data, on an empty store,
and with filters given in the URL."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from lib.filters import DIMENSIONS, Filters
from tests.conftest import APP, DEMO_END

PAGES = ["pages/overview.py", "pages/data.py"]


def run_app(monkeypatch, store, page: str | None = None, query: dict | None = None,
            demo: bool = False) -> AppTest:
    monkeypatch.setenv("SIGHTLINE_STORE", str(store))
    monkeypatch.setenv("SIGHTLINE_DEMO", "1" if demo else "0")
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    if page:  # (the entry script runs first in every run: no run of the default page first)
        at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_on_demo_data(monkeypatch, demo_store, page):
    at = run_app(monkeypatch, demo_store, page, {"range": "custom",
                                                 "from": "2026-11-13T12:00:00Z",
                                                 "to": "2026-11-20T12:00:00Z"})
    assert at.metric, "a page with data shows numbers"


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_on_empty_store(monkeypatch, tmp_path, page):
    at = run_app(monkeypatch, tmp_path / "empty", page)
    text = " ".join(m.value for m in at.markdown)
    assert "python -m lib demo" in " ".join(c.value for c in at.code) or "empty" in text.lower()


@pytest.mark.parametrize("page", ["pages/overview.py", "pages/data.py", "pages/quality.py"])
def test_an_empty_stores_commands_name_the_store_the_app_reads(monkeypatch, tmp_path, page):
    """The app runs on SIGHTLINE_STORE=<dir>, often set for its process alone: the commands
    its empty state gives carry ``--store <dir>``, or, pasted into another shell, they wrote
    to data/store and the page stayed empty."""
    at = run_app(monkeypatch, tmp_path / "empty", page)
    root = (tmp_path / "empty").resolve()
    (code,) = [c.value for c in at.code if "python -m lib demo" in c.value]
    assert code.endswith(f"python -m lib demo --store {root}")
    assert f"/ --store {root}\n" in code  # (the ingest line)


def test_the_default_store_needs_no_store_option():
    from lib.store import DEFAULT_STORE, store_option

    assert store_option(DEFAULT_STORE) == ""
    assert store_option("/tmp/my store") == " --store '/tmp/my store'"


def test_a_store_of_evals_alone_points_to_the_quality_page(monkeypatch, tmp_path):
    from lib.store import Lake
    from tests.metrics.test_quality import evals_table

    Lake(tmp_path / "s").append({"evals": evals_table([
        {"eval_id": "e1", "ts": datetime.now(UTC), "source": "online", "metric": "m",
         "passed": True}])}, source="t")
    at = run_app(monkeypatch, tmp_path / "s", "pages/overview.py", query={"range": "24h"})
    (link,) = [e for e in at.get("page_link") if "Quality page" in e.proto.label]
    assert link.proto.label == "The store has 1 eval: see them on the Quality page"
    assert "range=24h" in link.proto.query_string


def test_a_store_of_offline_runs_alone_opens_quality_on_them(monkeypatch, tmp_path):
    # the Overview's link opened Quality on its "online" source: "No online judge scores",
    # "0 versions", the 40 offline evals one pick away (found in review)
    from lib.store import Lake
    from tests.metrics.test_quality import evals_table

    Lake(tmp_path / "s").append({"evals": evals_table([
        {"eval_id": f"e{i}", "ts": datetime.now(UTC), "source": "offline", "metric": "exact",
         "passed": i % 2 == 0, "version": f"v{i % 2}", "case_id": f"c{i // 2}"}
        for i in range(40)])}, source="t")
    at = run_app(monkeypatch, tmp_path / "s", "pages/overview.py", query={"range": "24h"})
    at.switch_page("pages/quality.py").run()
    assert not at.exception
    assert at.selectbox(key="q_source").value == "offline"
    assert "source" not in at.query_params  # the default, not written
    assert any("This window has offline evals: see them under By version below." in
               m.value for m in at.markdown)


def test_overview_kpis_and_demo_banner(monkeypatch, demo_store):
    at = run_app(monkeypatch, demo_store, query={"range": "custom", "from": "2026-11-13T12:00:00Z",
                                                 "to": "2026-11-20T12:00:00Z"})
    labels = [m.label for m in at.metric]
    assert labels == ["Requests", "Error rate", "p95 latency", "Cost", "Cached input tokens",
                      "Online judge pass rate", "Guardrail triggers"]
    assert any("demo data" in i.value for i in at.info)
    requests = at.metric[0].value
    assert requests.endswith("k")  # 7 days × 4000 requests: "28.0k"
    # The demo store starts with this window: no previous period to compare with.
    assert not any(m.delta for m in at.metric)
    assert any("No changes shown: the store's data begins with this window" in c.value
               for c in at.caption)
    # its last 5 days: the store holds 2 of the 5 before (a few minutes short), said as a
    # length ("covers only 0%" was 27 minutes of a week)
    five = run_app(monkeypatch, demo_store, query={"range": "custom",
                                                   "from": "2026-11-15T12:00:00Z",
                                                   "to": "2026-11-20T12:00:00Z"})
    assert any("covers only 1 day 23 hours of the previous 5 days" in c.value
               for c in five.caption)


def test_a_rate_kpi_says_when_its_change_is_within_noise(monkeypatch, demo_store):
    # the last hour's judgements against the hour before: a few dozen each
    hour = {"range": "custom", "from": (DEMO_END - timedelta(hours=1)).isoformat(),
            "to": DEMO_END.isoformat()}
    at = run_app(monkeypatch, demo_store, query=hour)
    tiles = {m.label: m for m in at.metric}
    judge = tiles["Online judge pass rate"]
    assert "95% interval of the change:" in judge.help and " points" in judge.help
    gray = 2  # Metric.MetricColor.GRAY
    # an hour's p95 against the hour before's: a few hundred requests each, within noise
    assert "allow a change from" in tiles["p95 latency"].help
    assert "within noise" in tiles["p95 latency"].help
    assert tiles["p95 latency"].proto.color == gray
    assert (judge.proto.color == gray) == ("within noise" in judge.help)
    # the outage's 40 minutes against the 40 before: a change far outside the noise, in red
    from lib.demo import PLAN

    start = DEMO_END - timedelta(days=7) + timedelta(seconds=PLAN["outage_at"] * 7 * 86400)
    outage = {"range": "custom", "from": start.isoformat(),
              "to": (start + timedelta(minutes=40)).isoformat()}
    errors = {m.label: m for m in run_app(monkeypatch, demo_store, query=outage).metric}[
        "Error rate"]
    assert "within noise" not in errors.help
    assert errors.proto.color == 0  # RED: errors went up


def test_overview_compares_when_the_previous_period_has_data(monkeypatch, demo_store):
    at = run_app(monkeypatch, demo_store, query={"range": "custom", "from": "2026-11-17T00:00:00Z",
                                                 "to": "2026-11-20T00:00:00Z"})
    assert all(m.delta for m in at.metric[:4])
    assert any("Changes are against the previous 3 days" in c.value for c in at.caption)


def test_filters_from_url_are_applied_and_kept(monkeypatch, demo_store):
    query = {"range": "custom", "from": "2026-11-13T12:00:00Z", "to": "2026-11-20T12:00:00Z",
             "provider": "anthropic", "feature": "chat"}
    at = run_app(monkeypatch, demo_store, query=query)
    assert at.multiselect(key="f_provider").value == ["anthropic"]
    assert at.multiselect(key="f_feature").value == ["chat"]
    assert at.query_params["provider"] == "anthropic"
    # Narrower than the whole data: fewer requests than without filters.
    narrow = at.metric[0].value
    wide = run_app(monkeypatch, demo_store, query={k: query[k] for k in ("range", "from", "to")})
    assert _count(narrow) < _count(wide.metric[0].value)
    # Switching pages keeps the filters in the URL (AppTest runs the page without the entry
    # script's sidebar after a switch; the browser test checks the real sidebar).
    at.switch_page("pages/data.py").run()
    assert not at.exception
    assert at.title[0].value == "Data"
    assert at.query_params["provider"] == "anthropic"


def test_changing_the_zone_keeps_a_custom_window_s_instants(monkeypatch, demo_store):
    # A week from 2026-11-14 00:00 UTC, shown in Kolkata (05:30 → 05:30): switching the zone to
    # New York rebuilt it from the picker's Kolkata dates at New York midnights, a window of
    # 8 days and other numbers, though the zone "only changes how times are shown".
    query = {"range": "custom", "from": "2026-11-13T00:00:00Z", "to": "2026-11-20T00:00:00Z",
             "tz": "Asia/Kolkata"}
    at = run_app(monkeypatch, demo_store, query=query)
    before = [m.value for m in at.metric]
    assert "Exactly 2026-11-13 05:30 → 2026-11-20 05:30" in [c.value for c in at.caption]
    at.selectbox(key="f_tz").set_value("America/New_York").run()
    assert not at.exception
    assert (at.query_params["from"], at.query_params["to"]) == (query["from"], query["to"])
    assert at.query_params["tz"] == "America/New_York"
    assert [m.value for m in at.metric] == before
    assert "Exactly 2026-11-12 19:00 → 2026-11-19 19:00" in [c.value for c in at.caption]
    # and its help says so: not "this only changes how times are shown" (a day's bar starts at
    # the zone's midnight, so the per-bar numbers do change)
    zone_help = at.selectbox(key="f_tz").help
    assert "only changes" not in zone_help and "chart buckets" in zone_help
    # picking other days still takes the new zone's midnights
    at.date_input(key="f_dates").set_value((date(2026, 11, 15), date(2026, 11, 16))).run()
    assert at.query_params["from"] == "2026-11-15T05:00:00Z"
    assert at.query_params["to"] == "2026-11-17T05:00:00Z"


def test_every_sidebar_dimension_is_a_url_key(monkeypatch, demo_store):
    at = run_app(monkeypatch, demo_store, query={"range": "24h"})
    for key in DIMENSIONS:
        assert at.multiselect(key=f"f_{key}") is not None


def test_first_start_generates_demo_data(monkeypatch, tmp_path):
    at = run_app(monkeypatch, tmp_path / "fresh", demo=True)
    assert [m.label for m in at.metric][0] == "Requests"
    assert any("demo data" in i.value for i in at.info)
    assert (tmp_path / "fresh" / "_manifest").exists()


def test_first_start_with_a_prices_file_it_cannot_read_says_so_and_writes_nothing(
        monkeypatch, tmp_path):
    monkeypatch.setenv("SIGHTLINE_PRICES", str(tmp_path / "prices-typo.yaml"))
    at = run_app(monkeypatch, tmp_path / "fresh", demo=True)
    assert any("prices-typo.yaml: no such prices file" in e.value for e in at.error)
    assert not list((tmp_path / "fresh").glob("_manifest/*.json"))


def _count(text: str) -> float:
    mult = {"k": 1e3, "M": 1e6}.get(text[-1], 1)
    return float(text.rstrip("kM").replace(",", "")) * mult


def test_the_demo_banner_names_the_command_that_takes_the_demo_out_and_goes_with_it(
        monkeypatch, tmp_path):
    from lib import demo
    from lib.store import Lake

    lake = Lake(tmp_path / "store")
    demo.write(lake, days=2, requests_per_day=200)
    (batch,) = [c.commit_id for c in lake.commits() if c.kind == "demo"]
    at = run_app(monkeypatch, lake.root)
    (banner,) = [i.value for i in at.info if "demo data" in i.value]
    assert f"`python -m lib remove {batch} --store {lake.root}`" in banner
    # SIGHTLINE_DEMO=0 does not take it out: the banner does not offer it as another way
    assert "or start on an empty store" not in banner and "new, empty store" in banner
    lake.remove_batch(batch)
    at = run_app(monkeypatch, lake.root)
    assert not any("demo data" in i.value for i in at.info)
    # and the app does not seed it again: the store is not new
    at = run_app(monkeypatch, lake.root, demo=True)
    assert [c.kind for c in lake.commits()] == ["demo", "remove"]


def test_the_data_page_counts_quarantine_checks_and_filters_the_list(monkeypatch, tmp_path):
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Lake
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    (tmp_path / "a.jsonl").write_bytes(jsonl_bytes(
        [canonical_request(0, input_tokens=-1), canonical_request(1, input_tokens=-2),
         {"request_id": "x"}]))
    (tmp_path / "b.csv").write_text("request_id,ts,model,input_tokens\n"
                                    "c2,2026-03-02T12:00:00Z,gpt-4o,-3\n")
    lake = Lake(tmp_path / "store")
    ingest_paths(lake, [str(tmp_path / "a.jsonl"), str(tmp_path / "b.csv")])
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    tables = at.dataframe[0].value.set_index("table")
    # a table with no rows has no times: a dash, not "None"
    assert tables.loc["requests", ["first_ts", "last_ts", "last_ingested_at"]].tolist() == \
        ["–"] * 3  # every row was quarantined
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d",
                        tables.loc["quarantine", "last_ingested_at"])
    checks, rows = at.dataframe[1].value, at.dataframe[2].value
    assert list(zip(checks["check"], checks["inputs"], strict=True)) == [
        ("input_tokens is negative", 3), ("missing model", 1), ("missing ts", 1)]
    assert len(rows) == 4
    at.selectbox(key="quarantine_check").select("input_tokens is negative").run()
    assert sorted(at.dataframe[2].value["line"]) == [1, 2, 2]  # a.jsonl 1, 2; b.csv 2
    at.selectbox(key="quarantine_file").select(str(tmp_path / "b.csv")).run()
    assert not at.exception
    assert at.dataframe[2].value["raw"].tolist() == ["c2,2026-03-02T12:00:00Z,gpt-4o,-3"]


def test_the_data_page_shows_batch_notes_whole(monkeypatch, tmp_path):
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Lake
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    # "prompt_tokens" for input_tokens: the batch's note names the column it resembles
    row = canonical_request(0)
    row["prompt_tokens"] = row.pop("input_tokens")
    (tmp_path / "a.jsonl").write_bytes(jsonl_bytes([row]))
    lake = Lake(tmp_path / "store")
    ingest_paths(lake, [str(tmp_path / "a.jsonl")])
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    (expander,) = [e for e in at.expander if e.label.startswith("Notes on")]
    assert expander.label == "Notes on 1 batch(es)"
    (text,) = [t.value for t in at.text if str(tmp_path / "a.jsonl") in t.value]
    assert "prompt_tokens" in text and "input_tokens" in text


def test_the_data_page_lists_the_batches_of_a_kind_and_source_asked_for(monkeypatch, tmp_path):
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Lake
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    for name, i in (("a.jsonl", 0), ("b.jsonl", 1), ("copy-of-a.jsonl", 0)):  # a copy: "seen"
        (tmp_path / name).write_bytes(jsonl_bytes([canonical_request(i)]))
    lake = Lake(tmp_path / "store")
    ingest_paths(lake, [str(tmp_path / n) for n in ("a.jsonl", "b.jsonl", "copy-of-a.jsonl")])
    at = run_app(monkeypatch, lake.root, "pages/data.py")

    def listed() -> list[tuple[str, str]]:
        (table,) = [d.value for d in at.dataframe if "commit_id" in d.value.columns]
        return [(k, s.rsplit("/", 1)[-1]) for k, s in zip(table["kind"], table["source"],
                                                          strict=True)]

    assert listed() == [("seen", "copy-of-a.jsonl"), ("ingest", "b.jsonl"),
                        ("ingest", "a.jsonl")]
    at.selectbox(key="batches_kind").select("ingest").run()
    assert listed() == [("ingest", "b.jsonl"), ("ingest", "a.jsonl")]
    at.text_input(key="batches_source").input("A.JSON").run()
    assert listed() == [("ingest", "a.jsonl")]
    at.selectbox(key="batches_kind").select("remove").run()
    assert not at.exception and "No batches match." in [c.value for c in at.caption]


def test_the_data_page_says_why_each_request_has_no_cost(monkeypatch, tmp_path):
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Lake
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    rows = [canonical_request(0, model="acme-finetune-7", response_model="gpt-4o-2024-08-06"),
            canonical_request(1, input_tokens=None, output_tokens=None),
            canonical_request(2, input_tokens=None),  # output alone is no cost either
            canonical_request(3)]
    (tmp_path / "a.jsonl").write_bytes(jsonl_bytes(rows))
    lake = Lake(tmp_path / "store")
    ingest_paths(lake, [str(tmp_path / "a.jsonl")])
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    assert "Requests without a cost" in [h.value for h in at.subheader]
    (table,) = [d.value for d in at.dataframe if "reason" in d.value.columns]
    assert list(zip(table["model"], table["reason"], table["requests"], strict=True)) == [
        ("gpt-4o", "no input token count logged", 2), ("acme-finetune-7", "no price", 1)]
    # the model without a price answered as one priced model: lines to add at the end of
    # prices.yaml, whose models: list they extend (a second `models:` is refused)
    (code,) = [c.value for c in at.code if "priced_as" in c.value]
    assert code.rstrip() == ("  - provider: openai\n    model: acme-finetune-7\n"
                             "    priced_as: gpt-4o-2024-08-06")
    assert any("added at the end of `prices.yaml`" in c.value for c in at.caption)


@pytest.mark.parametrize("existing", ["models: []\n", "# ours\nmodels: ~\n", "models:\n"])
def test_the_data_page_s_priced_as_lines_load_where_it_says_to_put_them(monkeypatch, tmp_path,
                                                                        existing):
    # A prices file whose list is `models: []` or null cannot be extended by lines at its end:
    # the suggested `models:` block added there was a second `models:`, refused as written
    # twice, which stopped every ingest and reprice (review). The caption says where they go.
    from lib import pricing
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Lake
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    prices = tmp_path / "prices.yaml"
    prices.write_text(existing)
    monkeypatch.setenv("SIGHTLINE_PRICES", str(prices))
    (tmp_path / "a.jsonl").write_bytes(jsonl_bytes([canonical_request(
        0, model="acme-finetune-7", response_model="gpt-4o-2024-08-06")]))
    lake = Lake(tmp_path / "store")
    ingest_paths(lake, [str(tmp_path / "a.jsonl")])
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    (code,) = [c.value for c in at.code if "priced_as" in c.value]
    (said,) = [c.value for c in at.caption if "these lines" in c.value]
    if "added at the end of" in said:
        prices.write_text(existing + code)
    else:
        line = existing.splitlines()[-1]
        assert f"in place of the line `{line}` of" in said, said
        prices.write_text(existing.replace(line + "\n", code))
    overrides = pricing.load_overrides(prices)
    assert overrides[("openai", "acme-finetune-7")].priced_as == "gpt-4o-2024-08-06"


def test_a_link_with_values_sightline_does_not_know_says_what_it_shows_instead(monkeypatch,
                                                                               demo_store):
    at = run_app(monkeypatch, demo_store, query={"range": "banana", "tz": "Mars/Base"})
    warned = [w.value for w in at.warning]
    assert "This link's time range `banana` is not one Sightline knows: showing the last 7 " \
           "days." in warned
    assert "This link's time zone `Mars/Base` is not known: times are shown in UTC." in warned
    # said once, when the link is read: the next run keeps the sidebar's choice quietly
    at.run()
    assert not [w for w in at.warning if w.value.startswith("This link's")]
    assert not [w for w in run_app(monkeypatch, demo_store, query={"range": "24h"}).warning
                if w.value.startswith("This link's")]
    # a mistyped filter would otherwise filter nothing, silently
    typo = run_app(monkeypatch, demo_store, query={"modle": "gpt-4o", "by": "model"})
    assert [w.value for w in typo.warning if w.value.startswith("This link's")] == [
        "This link's key `modle` is no filter Sightline knows: nothing is filtered on it."]


def test_each_event_opens_explore_around_it(monkeypatch, demo_store):
    from urllib.parse import parse_qs, urlparse

    from lib.drilldown import parse_window_param

    at = run_app(monkeypatch, demo_store, query={"range": "custom", "from": "2026-11-13T12:00:00Z",
                                                 "to": "2026-11-20T12:00:00Z",
                                                 "provider": "anthropic"})
    (events,) = [d.value for d in at.dataframe if "link" in d.value.columns]
    incident = events[events["kind"] == "incident"].iloc[0]
    query = parse_qs(urlparse(incident["link"]).query)
    assert urlparse(incident["link"]).path == "explore"
    start, end = parse_window_param(query["window"][0])
    at_ts = incident["ts"].tz_convert("UTC").to_pydatetime()
    assert start < at_ts < end and (end - start).total_seconds() == 90 * 60
    assert query["provider"] == ["anthropic"] and query["metric"] == ["error_rate"]


def test_custom_starts_from_the_relative_window_shown(monkeypatch, demo_store):
    # Opened on "Last 30 days", then "Last 7 days" → "Custom": the picker kept the first
    # window's days (another window, reaching into the future) instead of the one shown
    at = run_app(monkeypatch, demo_store, query={"range": "30d"})
    at.selectbox(key="f_range").set_value("7d").run()
    before = (at.session_state["_current_filters"].start, at.session_state["_current_filters"].end)
    at.selectbox(key="f_range").set_value("custom").run()
    assert not at.exception
    after = at.session_state["_current_filters"]
    assert (after.start, after.end) == before and after.preset == "custom"


def test_a_moving_window_offers_a_link_to_its_exact_instants(monkeypatch, demo_store):
    from urllib.parse import parse_qs

    at = run_app(monkeypatch, demo_store, query={"range": "7d", "feature": "chat"})
    links = [c.value for c in at.sidebar.caption if "Link to this exact window" in c.value]
    assert len(links) == 1
    query = parse_qs(links[0].split("](?", 1)[1].split(")", 1)[0])
    f = at.session_state["_current_filters"]
    assert query["range"] == ["custom"] and query["feature"] == ["chat"]
    assert Filters.from_query(query, datetime.now(UTC) + timedelta(days=7)).start == f.start
    # a custom window is already exact: no link
    at = run_app(monkeypatch, demo_store, query={"range": "custom", "from": "2026-11-13T12:00:00Z",
                                                 "to": "2026-11-20T12:00:00Z"})
    assert not [c for c in at.sidebar.caption if "Link to this exact window" in c.value]


def test_the_exact_window_link_holds_the_page_s_settings_of_this_run(monkeypatch, demo_store):
    at = run_app(monkeypatch, demo_store, "pages/quality.py", {"range": "7d"})
    at.selectbox(key="q_source").set_value("offline").run()
    links = [c.value for c in at.sidebar.caption if "Link to this exact window" in c.value]
    assert len(links) == 1 and "source=offline" in links[0]


@pytest.mark.parametrize("page", ["pages/overview.py", "pages/cost.py", "pages/latency.py",
                                  "pages/quality.py"])
def test_filter_values_from_a_link_are_shown_as_text_not_markdown(monkeypatch, tmp_path, page):
    # A crafted link must not put a link or an outside image into the page (the image would be
    # fetched: who looked, and when)
    from lib.store import Lake
    from tests.conftest import make_request, requests_table

    Lake(tmp_path / "s").append({"requests": requests_table([make_request(0)])}, source="t")
    evil = {"model": "![](http://127.0.0.2:9/pixel.png)",
            "app_version": "[Session expired - sign in again](https://evil.example/login)"}
    at = run_app(monkeypatch, tmp_path / "s", page, query={"range": "30d", **evil})
    shown = [c.value for c in at.caption] + [b.label for b in at.button]
    assert any("Session expired" in s for s in shown) and any("pixel" in s for s in shown)
    for text in shown:
        # (our own link to this window: its target is URL-encoded, %5B not "[")
        text = re.sub(r"^\[Link to this exact window\]\(\?[^()\s]*\)", "", text)
        assert "](http" not in text and "![" not in text, text
        assert not re.search(r"(?<!\\)[\[\]]", text), text  # every bracket is escaped


@pytest.mark.parametrize("window", [("2026-11-01T00:00:00Z", "9999-12-30T00:00:00Z"),
                                    ("0001-01-02T00:00:00Z", "2026-11-27T00:00:00Z")])
def test_a_link_to_the_ends_of_time_opens_the_default_window(monkeypatch, demo_store, window):
    # (the day after 9999-12-30 and the period before year 1 overflowed: a traceback)
    at = run_app(monkeypatch, demo_store, query={"range": "custom", "from": window[0],
                                                 "to": window[1]})
    assert any("make no window" in w.value for w in at.warning)


def test_a_sidebar_list_past_its_cap_says_so_and_takes_a_typed_value(monkeypatch, tmp_path):
    from lib.store import Lake
    from lib.ui import filters as ui_filters
    from tests.conftest import make_request, requests_table

    monkeypatch.setattr(ui_filters, "MAX_LISTED_VALUES", 3)
    now = datetime.now(UTC)
    rows = [make_request(i, ts=now - timedelta(minutes=i + 1), customer_id=f"c{i % 5}")
            for i in range(20)]
    Lake(tmp_path / "s").append({"requests": requests_table(rows)}, source="t")
    at = run_app(monkeypatch, tmp_path / "s", query={"range": "24h"})
    box = at.multiselect(key="f_customer")
    assert len(box.options) == 3 and "are listed; type another" in box.help
    assert at.multiselect(key="f_feature").help in (None, "")  # one value: the whole list


def test_a_cost_tile_beside_unpriced_requests_is_not_drawn_as_a_saving(monkeypatch, tmp_path):
    # half of the hour's traffic moved to a model without a price: the tile's −50% is not green
    # news, and its help says why (found in review)
    from lib.store import Lake
    from tests.conftest import T0, make_request, requests_table

    lake = Lake(tmp_path / "store")
    lake.append({"requests": requests_table(
        [make_request(-60 + i, cost_usd=0.05) for i in range(10)]
        + [make_request(i, cost_usd=0.05) for i in range(5)]
        + [make_request(10 + i, model="in-house", cost_usd=None) for i in range(5)])},
        source="t")
    hour = {"range": "custom", "from": T0.isoformat(), "to": (T0 + timedelta(hours=1)).isoformat()}
    tiles = {m.label: m for m in run_app(monkeypatch, lake.root, query=hour).metric}
    cost = tiles["Cost"]
    assert cost.delta == "-50.0%"
    assert cost.proto.color == 2  # Metric.MetricColor.GRAY
    assert "5 requests now and 0 before have no price" in cost.help
    assert "no price" not in tiles["Requests"].help


def test_a_change_that_rounds_to_nothing_is_not_coloured(monkeypatch, tmp_path):
    # p95 latency 1,000 ms before and 1,000.2 ms now: "+0.0%" was drawn red (review)
    from lib.store import Lake
    from tests.conftest import T0, make_request, requests_table

    lake = Lake(tmp_path / "store")
    lake.append({"requests": requests_table(
        [make_request(-60 + i, latency_ms=1000.0) for i in range(10)]
        + [make_request(i, latency_ms=1000.2) for i in range(10)])}, source="t")
    hour = {"range": "custom", "from": T0.isoformat(), "to": (T0 + timedelta(hours=1)).isoformat()}
    p95 = {m.label: m for m in run_app(monkeypatch, lake.root, query=hour).metric}["p95 latency"]
    assert p95.delta == "+0.0%"
    assert p95.proto.color == 2  # Metric.MetricColor.GRAY


def test_the_sidebar_s_remove_filter_button_shows_an_attribute_key_as_text(monkeypatch, tmp_path):
    # an attribute key from a link, "__v__", read as a bold "v" on the button (Chromium)
    at = run_app(monkeypatch, tmp_path / "empty", None, {"attr.__v__": "*x*"})
    labels = [b.label for b in at.sidebar.button if b.label.startswith("✕")]
    assert labels == ["✕ attr\\.\\_\\_v\\_\\_ = \\*x\\*"]
