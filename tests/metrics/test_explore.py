"""What changed (constructed datasets with a planted cause, and the demo's outage), error
fingerprints, the server-paged request table and its export, and the ``changes`` CLI."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from lib.cli import main
from lib.filters import Filters
from lib.metrics import explore
from lib.store import Engine, Lake
from tests.conftest import DEMO_END, T0, make_request, requests_table

BASE = Filters.between(T0, T0 + timedelta(hours=1))
WIN = Filters.between(T0 + timedelta(hours=1), T0 + timedelta(hours=2))


def rows_for(hour: int, provider: str, n: int, errors: int, start: int) -> list[dict]:
    """n requests of a provider in an hour, the first ``errors`` failing; features and models
    alternate so they carry no signal."""
    out = []
    for i in range(n):
        out.append(make_request(
            start + i, ts=T0 + timedelta(hours=hour, seconds=17 * i + (1 if provider == "b"
                                                                        else 0)),
            provider=provider, model=f"{provider}-m{i % 2}",
            feature="x" if i % 2 else "y", status="error" if i < errors else "ok",
            error_type="529" if i < errors else None,
            finish_reason=None if i < errors else "stop"))
    return out


@pytest.fixture
def outage(lake, engine):
    """Baseline: a 1/100, b 1/100 errors. Window: a 31/100 (the planted cause), b 4/100."""
    rows = (rows_for(0, "a", 100, 1, 0) + rows_for(0, "b", 100, 1, 1000)
            + rows_for(1, "a", 100, 31, 2000) + rows_for(1, "b", 100, 4, 3000))
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    return engine


def test_error_rate_planted_cause_first_with_exact_contribution(outage):
    doc = explore.changes(outage, WIN, BASE, "error_rate")
    assert doc["window"] == {"from": WIN.start.isoformat(), "to": WIN.end.isoformat(),
                             "value": 35 / 200, "n": 200}
    assert doc["baseline"]["value"] == 2 / 200 and doc["baseline"]["n"] == 200
    top = doc["contributors"][0]
    # ΔR = 0.175 − 0.01 = 0.165; a: (31/200 − 1/200) / 0.165 = 0.909090…
    assert (top["dimension"], top["value"]) == ("provider", "a")
    assert top["contribution"] == pytest.approx(0.15 / 0.165, abs=1e-12)
    assert (top["window_value"], top["baseline_value"]) == (0.31, 0.01)
    assert (top["window_share"], top["baseline_share"]) == (0.5, 0.5)
    b = next(c for c in doc["contributors"] if c["value"] == "b")
    assert b["contribution"] == pytest.approx(0.015 / 0.165, abs=1e-12)
    assert top["contribution"] + b["contribution"] == pytest.approx(1.0)
    # the outcome dimensions are not ranked for the error rate
    assert not {c["dimension"] for c in doc["contributors"]} & {"error_type", "finish_reason"}
    # trivial segments (one value for everything) explain 100% but rank below the cause
    env = next(c for c in doc["contributors"] if c["dimension"] == "environment")
    assert env["contribution"] == pytest.approx(1.0)
    assert doc["contributors"].index(env) > 0
    # The shape, plus whether the overall change is more than noise.
    assert set(doc) == {"metric", "window", "baseline", "contributors", "significance"}
    assert set(top) == {"dimension", "value", "window_value", "baseline_value", "window_share",
                        "baseline_share", "contribution"}
    line = explore.headline(doc)
    assert line.startswith("provider a's error rate went from 1.0% to 31.0% and explains 91% "
                           "of the increase")
    # a dimension is named as on the page ("app version", not the column "app_version")
    for dimension, name in (("app_version", "app version"), ("attr.Team", "attribute Team")):
        renamed = {**doc, "contributors": [{**top, "dimension": dimension}]}
        assert explore.headline(renamed).startswith(f"{name} a's error rate went from")


def test_default_baseline_is_the_previous_period(outage):
    assert explore.changes(outage, WIN, None, "error_rate") == \
        explore.changes(outage, WIN, BASE, "error_rate")


def test_contributions_sum_to_one_within_a_dimension(outage):
    doc = explore.changes(outage, WIN, BASE, "error_rate", dimensions=["feature", "model"])
    for dim in ("feature", "model"):
        total = sum(c["contribution"] for c in doc["contributors"] if c["dimension"] == dim)
        assert total == pytest.approx(1.0)


def test_p95_latency_proxy(lake, engine):
    base_lat = [100.0 + (i % 100) for i in range(400)]
    win_lat = [1000.0 if (i % 2 == 0 and i % 5 < 2) else 100.0 + (i % 100) for i in range(400)]
    rows = [make_request(i, ts=T0 + timedelta(seconds=9 * i), latency_ms=v,
                         feature="slow" if i % 2 == 0 else "fast")
            for i, v in enumerate(base_lat)]
    rows += [make_request(1000 + i, ts=T0 + timedelta(hours=1, seconds=9 * i), latency_ms=v,
                          feature="slow" if i % 2 == 0 else "fast")
             for i, v in enumerate(win_lat)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    doc = explore.changes(engine, WIN, BASE, "p95_latency")
    b, w = np.array(base_lat), np.array(win_lat)
    t = np.quantile(b, 0.95)
    slow_b, slow_w = b[::2], w[::2]
    s_change = (w > t).mean() - (b > t).mean()
    expected = ((slow_w > t).sum() / 400 - (slow_b > t).sum() / 400) / s_change
    top = doc["contributors"][0]
    assert (top["dimension"], top["value"]) == ("feature", "slow")
    assert top["contribution"] == pytest.approx(expected, abs=1e-12)
    assert top["window_value"] == pytest.approx(np.quantile(slow_w, 0.95))
    assert top["baseline_value"] == pytest.approx(np.quantile(slow_b, 0.95))
    assert doc["window"]["value"] == pytest.approx(np.quantile(w, 0.95))


def test_cost_per_request(lake, engine):
    rows = [make_request(i, customer_id="big" if i < 10 else "small", cost_usd=0.01)
            for i in range(20)]
    rows += [make_request(100 + i, ts=T0 + timedelta(hours=1, minutes=i),
                          customer_id="big" if i < 10 else "small",
                          cost_usd=0.05 if i < 10 else 0.01) for i in range(20)]
    rows.append(make_request(200, ts=T0 + timedelta(hours=1, minutes=30), cost_usd=None,
                             customer_id="big"))  # unpriced: not in the denominator
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    doc = explore.changes(engine, WIN, BASE, "cost_per_request")
    assert doc["window"]["value"] == pytest.approx(0.6 / 20) and doc["window"]["n"] == 20
    top = doc["contributors"][0]
    assert (top["dimension"], top["value"]) == ("customer", "big")
    # (0.5/20 − 0.1/20) / (0.03 − 0.01) = 1.0
    assert top["contribution"] == pytest.approx(1.0)


def test_demo_outage_names_the_provider(demo_store):
    from lib.demo import PLAN

    engine = Engine(Lake(demo_store))
    start = DEMO_END - timedelta(days=7)
    at = start + timedelta(seconds=PLAN["outage_at"] * 7 * 86400)
    window = Filters.between(at - timedelta(minutes=10), at + timedelta(minutes=50))
    doc = explore.changes(engine, window, None, "error_rate")
    top = doc["contributors"][0]
    assert (top["dimension"], top["value"]) == ("provider", PLAN["outage_provider"])
    assert top["contribution"] > 0.8
    assert explore.headline(doc).startswith("provider anthropic's error rate went from")


def _fingerprints_of(lake, engine, rows: list[dict]) -> tuple:
    """The fingerprints of ``rows``, stored, over BASE: the frame, and its errors by (error type,
    fingerprint)."""
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    fp = explore.fingerprints(engine, BASE)
    return fp, {(r["error_type"], r["fingerprint"]): r["errors"]
                for r in fp.iter_rows(named=True)}


def test_fingerprints_normalize_messages(lake, engine):
    msgs = ["Request 123 timed out after 30s", "Request 4567 timed out after 31s",
            "Rate limit for org 'acme' reached", "Rate limit for org 'globex' reached",
            "id 3f2b9c1e-1a2b-4c3d-8e9f-001122334455 failed"]
    rows = [make_request(i, status="error", error_type="timeout" if i < 2 else "other",
                         error_message=m) for i, m in enumerate(msgs)]
    rows.append(make_request(9))
    fp, got = _fingerprints_of(lake, engine, rows)
    assert got == {("timeout", "Request <n> timed out after <n>s"): 2,
                   ("other", "Rate limit for org <str> reached"): 2,
                   ("other", "id <uuid> failed"): 1}
    first = fp.row(0, named=True)
    assert first["first_seen"] < first["last_seen"] and first["share"] == pytest.approx(0.4)


def test_a_fingerprint_keeps_apostrophes_as_written(lake, engine):
    # an apostrophe is no quote: "This model's ... isn't" read "This model<str>t enough"
    msgs = ["This model's maximum context length is 128000 tokens; it isn't enough",
            "This model's maximum context length is 200000 tokens; it isn't enough",
            'Invalid value "x" for \'temperature\'', "'top_p' is not supported with 'o1'"]
    lake.append({"requests": requests_table([
        make_request(i, status="error", error_type="400", error_message=m)
        for i, m in enumerate(msgs)])}, source="t")
    engine.refresh(force=True)
    got = dict(explore.fingerprints(engine, BASE).select("fingerprint", "errors").iter_rows())
    assert got == {
        "This model's maximum context length is <n> tokens; it isn't enough": 2,
        "Invalid value <str> for <str>": 1, "<str> is not supported with <str>": 1}


def test_a_fingerprint_is_one_whichever_instrumentation_described_the_error(lake, engine):
    # One 429 as three instrumentations record it (tests/ingest/fake_openai.py): openai-v2's and
    # the Langfuse SDK's span status is the exception's text, OpenInference's (as the OTel SDK
    # writes a span ended by an exception) "<type>: <text>". It made two fingerprints.
    msgs = [("RateLimitError", "Error code: 429 - fake 429"),
            ("RateLimitError", "RateLimitError: Error code: 429 - fake 429"),
            ("RateLimitError", "RateLimitError"),  # no text after the type: kept as written
            ("400", "RateLimitError: Error code: 400 - bad")]  # another type's prefix: kept
    _, got = _fingerprints_of(lake, engine, [
        make_request(i, status="error", error_type=t, error_message=m)
        for i, (t, m) in enumerate(msgs)])
    assert got == {("RateLimitError", "Error code: <n> - fake <n>"): 2,
                   ("RateLimitError", "RateLimitError"): 1,
                   ("400", "RateLimitError: Error code: <n> - bad"): 1}


def test_request_table_pages_searches_and_exports(lake, engine, tmp_path):
    rows = [make_request(i, latency_ms=float(i), input_text=f"question {i}",
                         output_text="<b>answer</b>" if i == 7 else "fine",
                         error_message="Overloaded: try again" if i in (3, 4) else None)
            for i in range(120)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0, T0 + timedelta(hours=3))
    assert explore.request_count(engine, f) == 120
    page = explore.request_page(engine, f, sort="latency_ms", descending=True, limit=50,
                                offset=50)
    assert page.height == 50 and page["latency_ms"].to_list() == [float(x)
                                                                 for x in range(69, 19, -1)]
    last = explore.request_page(engine, f, sort="ts", limit=50, offset=100)
    assert last.height == 20
    assert explore.request_count(engine, f, "QUESTION 11") == 11  # 11 and 110..119
    assert explore.request_count(engine, f, "<B>ANSWER") == 1
    assert explore.request_count(engine, f, "r42") == 1  # exact request id
    assert explore.request_count(engine, f, " r42\n") == 1  # as pasted from a chat or terminal
    assert explore.request_count(engine, f, "overloaded") == 2  # the error message too
    assert explore.request_count(engine, f, "50%_") == 0  # LIKE wildcards are plain text
    with pytest.raises(KeyError):
        explore.request_page(engine, f, sort="input_text; DROP TABLE x")
    for fmt in ("csv", "parquet"):
        path = explore.export_requests(engine, f, fmt=fmt, path=str(tmp_path / f"all.{fmt}"))
        frame = pl.read_csv(path) if fmt == "csv" else pl.read_parquet(path)
        assert frame.height == 120 and "input_text" in frame.columns
    # times in the zone the page shows (the table's), the same instants
    ny = Filters(start=f.start, end=f.end, values=f.values, tz="America/New_York")
    path = explore.export_requests(engine, ny, sort="ts", descending=False,
                                   path=str(tmp_path / "ny.csv"))
    first = open(path).read().splitlines()[1]
    t0 = engine.scalar("SELECT min(ts) FROM requests")
    assert t0.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%dT%H:%M:%S") in first
    assert "-0500" in first or "-0400" in first
    assert pl.read_csv(path, try_parse_dates=True)["ts"][0] == t0


def test_the_export_csv_makes_spreadsheet_formulas_inert(lake, engine, tmp_path):
    # a model and an error message from logs, which Excel would run; numbers stay numbers
    rows = [make_request(0, model="=HYPERLINK(\"http://x\")", error_message="-2+3+cmd|' /C"),
            make_request(1, error_message="@SUM(1)", latency_ms=-0.0)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0, T0 + timedelta(hours=1))
    frame = pl.read_csv(explore.export_requests(engine, f, sort="ts", descending=False,
                                                path=str(tmp_path / "x.csv")))
    assert frame["model"].to_list() == ["'=HYPERLINK(\"http://x\")", "gpt-4o"]
    assert frame["error_message"].to_list() == ["'-2+3+cmd|' /C", "'@SUM(1)"]
    assert frame["latency_ms"].to_list() == [100.0, -0.0]
    # Parquet keeps the text as logged
    parquet = pl.read_parquet(explore.export_requests(engine, f, fmt="parquet", sort="ts",
                                                      descending=False,
                                                      path=str(tmp_path / "x.parquet")))
    assert parquet["model"][0] == "=HYPERLINK(\"http://x\")"


def test_changes_cli_json(outage, lake, capsys):
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["changes", "--store", str(lake.root), "--json", "--metric", "error_rate",
                     "--window", "2026-03-02T13:00..2026-03-02T14:00"])
    assert code == 0
    doc = json.loads(out.getvalue())
    assert doc["baseline"]["from"] == "2026-03-02T12:00:00+00:00"
    assert doc["contributors"][0]["value"] == "a"
    assert doc["contributors"][0]["contribution"] == pytest.approx(0.15 / 0.165)
    with redirect_stdout(io.StringIO()) as text:
        assert main(["changes", "--store", str(lake.root), "--metric", "p95_latency",
                     "--window", "2026-03-02T13:00..2026-03-02T14:00",
                     "--baseline", "2026-03-02T12:00..2026-03-02T13:00"]) == 0
    assert "dimension" in text.getvalue()
    assert main(["changes", "--store", str(lake.root), "--metric", "error_rate",
                 "--window", "2026-03-02T14:00..2026-03-02T13:00"]) == 2
    # a window with no request: its headline, no table header over nothing (review)
    with redirect_stdout(io.StringIO()) as text:
        assert main(["changes", "--store", str(lake.root), "--metric", "error_rate",
                     "--window", "2020-01-01..2020-01-02"]) == 0
    assert text.getvalue().startswith("No requests in the window.")
    assert "dimension" not in text.getvalue()


def test_overall_significance_matches_the_design_reference_values():
    """Pass 780/1000 vs 810/1000: z = 1.661673760721, p = 0.096578205004 (design §5)."""
    from lib.metrics.explore import overall_significance

    sig = overall_significance("error_rate", 810, 1000, 780, 1000)
    assert sig["test"] == "two_proportion_z"
    assert sig["statistic"] == pytest.approx(1.661673760721, abs=1e-9)
    assert sig["p_value"] == pytest.approx(0.096578205004, abs=1e-9)
    assert sig["significant"] is False
    assert overall_significance("error_rate", 5, 20, 1, 20)["test"] is None  # too few rows


def test_cost_significance_is_welch_t_on_the_raw_costs():
    import numpy as np
    from scipy import stats

    from lib.metrics.explore import overall_significance

    rng = np.random.default_rng(1)
    a, b = rng.gamma(2.0, 0.002, 400), rng.gamma(2.0, 0.0024, 300)
    sig = overall_significance("cost_per_request", a.sum(), len(a), b.sum(), len(b),
                               a.var(ddof=1), b.var(ddof=1))
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert sig["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert sig["statistic"] == pytest.approx(ref.statistic, rel=1e-9)


def test_headline_says_when_a_change_is_within_noise(demo_store):
    from datetime import datetime

    from lib.metrics.explore import changes, headline
    from lib.store import Engine, Lake

    engine = Engine(Lake(demo_store))
    # Two quiet days before the outage: error rates differ by noise only.
    window = Filters.between(datetime(2026, 11, 15, tzinfo=UTC),
                             datetime(2026, 11, 16, tzinfo=UTC))
    doc = changes(engine, window, None, "error_rate")
    assert doc["significance"]["significant"] is False
    assert "not a significant change" in headline(doc)


@pytest.mark.parametrize("window_n, window_h, baseline_n, baseline_h, thin", [
    (1000, 24, 100, 24, True),     # a tenth of the window's rate: thin
    (1000, 24, 101, 24, False),
    (300_000, 720, 136, 720, True),  # a baseline from before the store's data began
    (1000, 24, 50, 12, True),      # 50 in 12 h is the same rate as 100 in 24 h
    (1000, 24, 60, 12, False),
    (0, 24, 0, 24, False),         # no window: nothing to compare, said elsewhere
])
def test_a_baseline_at_a_tenth_of_the_windows_rate_or_less_is_thin(
        window_n, window_h, baseline_n, baseline_h, thin):
    def side(n, hours, end):
        return {"from": (end - timedelta(hours=hours)).isoformat(), "to": end.isoformat(),
                "n": n, "value": None}

    doc = {"window": side(window_n, window_h, T0 + timedelta(days=60)),
           "baseline": side(baseline_n, baseline_h, T0 + timedelta(days=30))}
    assert explore.thin_baseline(doc) is thin


@pytest.mark.parametrize("metric, before, after, shown", [
    # a 1.1% change of $0.0045 read "from $0.0045 to $0.0045"
    ("cost_per_request", 0.0045123, 0.0044627, ("$0.00451", "$0.00446")),
    ("cost_per_request", 0.0045, 0.0045, ("$0.0045", "$0.0045")),  # the same: no more digits
    ("cost_per_request", 1.234, 5.0, ("$1.23", "$5.00")),          # different already
    ("error_rate", 0.01234, 0.01236, ("1.23%", "1.24%")),  # not "1.2%" twice
])
def test_the_headline_shows_two_different_values_differently(metric, before, after, shown):
    assert explore._fmt_pair(metric, before, after) == shown
    doc = {"metric": metric, "window": {"value": after, "n": 100},
           "baseline": {"value": before, "n": 100}, "contributors": [],
           "significance": {"test": "t", "significant": False, "p_value": 0.5}}
    assert explore.headline(doc).startswith(
        f"Overall {explore.METRICS[metric]} went from {shown[0]} to {shown[1]}:")


def _one_contributor_doc(**top) -> dict:
    contributor = {"dimension": "app_version", "value": "v2.3.0", "window_value": 0.0071,
                   "baseline_value": 0.0082, "window_share": 0.5, "baseline_share": 0.5,
                   "contribution": 0.6, **top}
    return {"metric": "error_rate", "window": {"value": 0.0071, "n": 1000},
            "baseline": {"value": 0.0082, "n": 1000}, "contributors": [contributor],
            "significance": {"test": "two_proportion_z", "significant": True, "p_value": 0.01}}


def test_the_headline_calls_a_value_on_one_side_only_a_change_of_mix():
    # a deploy replaced v2.3.0: it is not in the window, its rate did not go "to –"
    gone = explore.headline(_one_contributor_doc(window_value=None, window_share=0.0,
                                                 baseline_share=0.93, contribution=0.4))
    assert gone.startswith("app version v2.3.0 had no requests in the window (it had 93% of the "
                           "baseline's, at 0.82%): a change of mix that explains 40% of the "
                           "decrease.")
    new = explore.headline(_one_contributor_doc(value="v2.4.0", baseline_value=None,
                                                baseline_share=0.0, window_share=0.8))
    assert new.startswith("app version v2.4.0 is new in the window (80% of its requests, at "
                          "0.71%): a change of mix that explains 60% of the decrease.")


def test_the_headline_says_what_more_than_all_of_a_change_means():
    line = explore.headline(_one_contributor_doc(contribution=4.4))
    assert "accounts for all of the decrease and more (440%: other values moved the other " \
           "way)" in line and "explains 440%" not in line
    assert "explains 60% of the decrease" in explore.headline(_one_contributor_doc())


def test_a_version_a_deploy_replaced_explains_only_how_far_its_rate_was_from_the_rest(lake):
    # baseline: v1 and v2, 500 requests each, 4 errors each (0.8%); window: v2 alone, 1,000
    # requests, 7 errors (0.7%). The decrease happened inside v2: v1 leaving explains nothing
    # (measured from 0 it "explained 400%", and v2 −300%).
    def side(hour, version, n, errors, start):
        return [make_request(start + i, ts=T0 + timedelta(hours=hour, seconds=3 * i),
                             app_version=version, status="error" if i < errors else "ok")
                for i in range(n)]
    lake.append({"requests": requests_table(
        side(0, "v1", 500, 4, 0) + side(0, "v2", 500, 4, 500) + side(1, "v2", 1000, 7, 1000))},
        source="t")
    engine = Engine(lake)
    try:
        doc = explore.changes(engine, WIN, BASE, "error_rate", dimensions=["app_version"])
    finally:
        engine.close()
    got = {c["value"]: c["contribution"] for c in doc["contributors"]}
    # by hand: v1 (0 − 0.5 · (0.008 − 0.008)) / (0.007 − 0.008) = 0;
    #          v2 (1 · (0.007 − 0.008) − 0.5 · (0.008 − 0.008)) / (0.007 − 0.008) = 1
    assert got == {"v1": pytest.approx(0.0, abs=1e-12), "v2": pytest.approx(1.0)}
    assert doc["contributors"][0]["value"] == "v2"
    # (so few errors are within noise; the headline of a significant change of the same shape)
    significant = {**doc, "significance": {"test": "two_proportion_z", "significant": True,
                                           "p_value": 0.001}}
    assert explore.headline(significant).startswith(
        "app version v2's error rate went from 0.80% to 0.70% and explains 100% of the decrease")


def test_a_change_on_too_few_requests_to_test_is_not_called_one(lake, engine):
    # 0 errors in 10 requests, then 2 in 10 (Fisher's p = 0.47): the headline said "feature
    # search's error rate went from 0.00% to 40.0% and explains 100% of the increase", the
    # tile red, though the test design §5 names was never run ("insufficient data")
    rows = [make_request(i, feature="search" if i % 2 else "chat",
                         status="error" if i in (11, 13) else "ok") for i in range(20)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    window = Filters.between(T0 + timedelta(minutes=10), T0 + timedelta(minutes=20))
    doc = explore.changes(engine, window, None, "error_rate")
    assert doc["window"]["n"] == doc["baseline"]["n"] == 10
    assert explore.untested(doc) and not explore.within_noise(doc)
    text = explore.headline(doc)
    assert text.startswith("Overall error rate went from 0.00% to 20.0%, on too few requests to "
                           "tell a change from noise (under 30 on a side: 10 in the baseline, "
                           "10 in the window)"), text
    assert "explains" not in text
    # with 30 a side it is tested, and then said either way
    assert not explore.untested({**doc, "significance": explore.overall_significance(
        "error_rate", 6, 30, 0, 30)})
    assert not explore.untested({**doc, "baseline": {**doc["baseline"], "n": 0}})  # said apart


def test_the_request_table_shows_every_column_it_sorts_by():
    # sorted by TTFT, the table did not show it
    assert set(explore.SORTABLE) <= set(explore.TABLE_COLUMNS)


def test_cost_significance_of_two_flat_prices_is_a_number():
    # every request at one price on both sides: Welch's t is 0/0 and the headline read
    # "p = nan"
    from lib.metrics.explore import overall_significance

    same = overall_significance("cost_per_request", 0.3, 30, 0.3, 30, 0.0, 0.0)
    assert same["p_value"] == 1.0 and not same["significant"]
    other = overall_significance("cost_per_request", 0.3, 30, 0.6, 30, 0.0, 0.0)
    assert other["p_value"] == 0.0 and other["significant"]
