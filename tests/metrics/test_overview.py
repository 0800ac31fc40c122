"""Overview numbers: KPI tiles against hand-computed values (and the previous period), bucketed
time series against numpy, percentile reliability flags, and never averaging percentiles."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest

from lib import schema
from lib.filters import Filters
from lib.metrics import buckets
from lib.metrics.overview import (
    KPIS,
    events,
    kpis,
    previous_coverage,
    quantile_interval_ranks,
    timeseries,
)
from tests.conftest import T0, make_request, requests_table

H = timedelta(hours=1)


def evals_table(rows: list[dict]) -> pa.Table:
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema.EVALS}
    return schema.conform(pa.table({k: pa.array(v, schema.EVALS.field(k).type)
                                    for k, v in cols.items()}), schema.EVALS)


def _req(i, minutes, **kw):
    return make_request(i, ts=T0 + timedelta(minutes=minutes), **kw)


# Current window [T0, T0+1h), previous [T0-1h, T0).
PREVIOUS = [
    _req(0, -50, latency_ms=100.0, cost_usd=0.10, input_tokens=1000, cached_input_tokens=100),
    _req(1, -40, latency_ms=200.0, cost_usd=0.20, input_tokens=1000, cached_input_tokens=300,
         status="error"),
    _req(2, -30, latency_ms=300.0, cost_usd=None, input_tokens=2000, cached_input_tokens=0,
         guardrail="pii", guardrail_action="redacted"),
    _req(3, -1, latency_ms=400.0, cost_usd=0.30, input_tokens=1000, cached_input_tokens=0),
]
CURRENT = [
    _req(10, 0, latency_ms=50.0, cost_usd=0.05, input_tokens=500, cached_input_tokens=250),
    _req(11, 5, latency_ms=75.0, cost_usd=0.05, input_tokens=500, cached_input_tokens=0,
         status="error"),
    _req(12, 10, latency_ms=1000.0, cost_usd=0.50, input_tokens=4000, cached_input_tokens=2000,
         provider="anthropic", guardrail="jailbreak", guardrail_action="blocked"),
    _req(13, 20, latency_ms=120.0, cost_usd=0.25, input_tokens=1000, cached_input_tokens=0,
         status="error", provider="anthropic"),
    _req(14, 30, latency_ms=90.0, cost_usd=0.15, input_tokens=1000, cached_input_tokens=500,
         guardrail="toxicity", guardrail_action="flagged"),
    _req(15, 59, latency_ms=3000.0, cost_usd=0.00, input_tokens=0, cached_input_tokens=0),
]
OUTSIDE = [_req(20, -61, latency_ms=9999.0, cost_usd=9.0, status="error"),  # before previous
           _req(21, 60, latency_ms=9999.0, cost_usd=9.0, status="error")]  # at the end: out

EVALS = [
    # (minutes, source, passed, model)
    (-30, "online", True, "gpt-4o"), (-20, "online", False, "gpt-4o"),
    (-10, "feedback", True, "gpt-4o"),
    (5, "online", True, "gpt-4o"), (6, "online", True, "gpt-4o"), (7, "feedback", False, "gpt-4o"),
    (8, "online", True, "claude"), (9, "online", None, "gpt-4o"),
    (10, "offline", False, "gpt-4o"), (11, "offline", False, "gpt-4o"),  # offline: not in KPI
]


@pytest.fixture
def loaded(lake, engine):
    lake.append({"requests": requests_table(PREVIOUS + CURRENT + OUTSIDE),
                 "evals": evals_table([
                     {"eval_id": f"e{i}", "ts": T0 + timedelta(minutes=m), "source": s,
                      "passed": p, "model": model, "metric": "groundedness"}
                     for i, (m, s, p, model) in enumerate(EVALS)])}, source="t")
    return engine


def _kpi(frame) -> dict[str, tuple]:
    return {r["kpi"]: (r["value"], r["previous"]) for r in frame.iter_rows(named=True)}


@pytest.mark.parametrize("start, end, coverage", [
    (T0 + 2 * H, T0 + 3 * H, 1.0),  # previous [T0+1h, T0+2h): all after the first row
    (T0 - 61 * H / 60 + 2 * H, T0 - 61 * H / 60 + 4 * H, 1.0),  # previous starts at the first row
    (T0, T0 + 4 * H, 61 / 240),  # previous [T0-4h, T0): data only from T0-61min
    (T0 - 61 * H / 60, T0 + H, 0.0),  # the window starts with the data
])
def test_previous_coverage_is_the_share_of_the_previous_period_with_data(loaded, start, end,
                                                                         coverage):
    # The store's first request is OUTSIDE[0], at T0 - 61 min.
    assert previous_coverage(loaded, Filters.between(start, end)) == pytest.approx(coverage)


def test_previous_coverage_of_an_empty_store_is_zero(engine):
    assert previous_coverage(engine, Filters.between(T0, T0 + H)) == 0.0


def test_kpis_against_hand_computed_values(loaded):
    frame = kpis(loaded, Filters.between(T0, T0 + H))
    assert frame["kpi"].to_list() == [k[0] for k in KPIS]
    got = _kpi(frame)
    cur_lat = [r["latency_ms"] for r in CURRENT]
    prev_lat = [r["latency_ms"] for r in PREVIOUS]
    expected = {
        "requests": (6, 4),
        "error_rate": (2 / 6, 1 / 4),
        "p95_latency_ms": (float(np.quantile(cur_lat, 0.95)), float(np.quantile(prev_lat, 0.95))),
        "cost_usd": (0.05 + 0.05 + 0.50 + 0.25 + 0.15 + 0.0, 0.10 + 0.20 + 0.30),
        "cached_token_share": ((250 + 2000 + 500) / (500 + 500 + 4000 + 1000 + 1000),
                               (100 + 300) / (1000 + 1000 + 2000 + 1000)),
        # the online judge's: passed not null, neither feedback nor offline (Quality's figure)
        "eval_pass_rate": (3 / 3, 1 / 2),
        "guardrail_triggers": (2, 1),
    }
    for name, (value, previous) in expected.items():
        assert got[name][0] == pytest.approx(value, rel=1e-12), name
        assert got[name][1] == pytest.approx(previous, rel=1e-12), name
    # Hand check of type 7 for the current p95: h = 5 * 0.95 = 4.75 over the sorted latencies.
    s = sorted(cur_lat)
    assert got["p95_latency_ms"][0] == pytest.approx(s[4] + 0.75 * (s[5] - s[4]))


def test_kpis_with_dimension_filters(loaded):
    f = Filters.between(T0, T0 + H, provider=["anthropic"], model=["claude"])
    got = _kpi(kpis(loaded, f))
    # Requests are filtered on provider (and model: none of them is "claude").
    assert got["requests"] == (0, 0)
    f = Filters.between(T0, T0 + H, provider=["anthropic"])
    got = _kpi(kpis(loaded, f))
    assert got["requests"] == (2, 0)
    assert got["error_rate"] == (pytest.approx(0.5), None)
    assert got["p95_latency_ms"][0] == pytest.approx(float(np.quantile([1000.0, 120.0], 0.95)))
    assert got["cost_usd"] == (pytest.approx(0.75), None)
    assert got["guardrail_triggers"] == (1, 0)
    # Evals are filtered by model only (they have no provider column).
    got = _kpi(kpis(loaded, Filters.between(T0, T0 + H, model=["claude"])))
    assert got["eval_pass_rate"] == (1.0, None)


def test_the_eval_kpi_is_the_online_judge_s_over_the_requests_the_filters_keep(lake, engine):
    # Evals have no feature: a feature filter keeps the evals of the requests it keeps, as the
    # Quality page does (before, the tile ignored it and mixed in thumbs up/down).
    rows = [_req(30, 5, feature="chat"), _req(31, 6, feature="search"),
            _req(32, -5, feature="chat")]
    judged = [("r30", "online", True), ("r30", "online", True), ("r31", "online", False),
              ("r31", "online", False), ("r31", "feedback", True), ("r32", "online", False),
              ("r32", "online", True), ("r30", "feedback", False)]
    lake.append({"requests": requests_table(rows), "evals": evals_table([
        {"eval_id": f"j{i}", "ts": T0 + timedelta(minutes=10 if rid != "r32" else -4),
         "source": src, "passed": p, "request_id": rid, "metric": "groundedness"}
        for i, (rid, src, p) in enumerate(judged)])}, source="t")
    got = _kpi(kpis(engine, Filters.between(T0, T0 + H, feature=["chat"])))
    assert got["eval_pass_rate"] == (1.0, 0.5)  # r30's two online passes; r32's 1 of 2
    got = _kpi(kpis(engine, Filters.between(T0, T0 + H, feature=["search"])))
    assert got["eval_pass_rate"] == (0.0, None)  # r31's online fails; its thumbs up left out
    got = _kpi(kpis(engine, Filters.between(T0, T0 + H)))
    assert got["eval_pass_rate"] == (pytest.approx(2 / 4), 0.5)
    from lib.metrics import quality
    by_version = quality.evals_by_version(engine, Filters.between(T0, T0 + H, feature=["chat"]),
                                          "online")
    assert by_version["passed"].sum() / by_version["n"].sum() == 1.0  # the Quality page agrees


def test_kpis_on_an_empty_store(engine):
    got = _kpi(kpis(engine, Filters.between(T0, T0 + H)))
    assert got["requests"] == (0, 0) and got["guardrail_triggers"] == (0, 0)
    for name in ("error_rate", "p95_latency_ms", "cost_usd", "cached_token_share",
                 "eval_pass_rate"):
        assert got[name] == (None, None), name


def test_timeseries_buckets_against_numpy(loaded):
    rows = PREVIOUS + CURRENT + OUTSIDE
    start, end = T0 - 2 * H, T0 + 2 * H
    ts = timeseries(loaded, Filters.between(start, end), seconds=1800)
    assert ts.height == 8  # every half hour of the window, empty ones included
    assert ts["bucket"].to_list() == [start + timedelta(minutes=30 * k) for k in range(8)]
    for r in ts.iter_rows(named=True):
        b0, b1 = r["bucket"], r["bucket"] + timedelta(minutes=30)
        inside = [x for x in rows if b0 <= x["ts"] < b1 and start <= x["ts"] < end]
        lat = [x["latency_ms"] for x in inside]
        assert r["requests"] == len(inside)
        assert r["errors"] == sum(x["status"] == "error" for x in inside)
        assert r["cost_usd"] == pytest.approx(sum(x["cost_usd"] or 0 for x in inside))
        if inside:
            assert r["error_rate"] == pytest.approx(r["errors"] / len(inside))
            assert r["p50_ms"] == pytest.approx(float(np.quantile(lat, 0.5)))
            assert r["p95_ms"] == pytest.approx(float(np.quantile(lat, 0.95)))
        else:
            assert r["error_rate"] is None and r["p50_ms"] is None and r["p95_ms"] is None
        assert r["p50_uncertain"] and r["p95_uncertain"]  # a handful of rows each
    assert ts["requests"].sum() == len([x for x in rows if start <= x["ts"] < end])


def test_timeseries_buckets_align_to_utc_and_respect_the_window(loaded):
    # A window starting mid-bucket: the first bucket starts on the hour, but rows before the
    # window's start are not counted in it.
    start = T0 - timedelta(minutes=35)  # 11:25
    ts = timeseries(loaded, Filters.between(start, T0 + H), seconds=3600)
    assert ts["bucket"].to_list() == [T0 - H, T0]
    # 11:25..12:00 holds r2 (11:30) and r3 (11:59); r0 (11:10) and r1 (11:20) are before start.
    assert ts["requests"].to_list() == [2, 6]


def test_never_average_bucket_percentiles(lake, engine):
    """Two hours of very different latency: the mean of the hourly p95s is not the p95."""
    fast = [_req(i, i, latency_ms=100.0 + i) for i in range(30)]
    slow = [_req(100 + i, 60 + i, latency_ms=1000.0 + 50 * i) for i in range(10)]
    lake.append({"requests": requests_table(fast + slow)}, source="t")
    f = Filters.between(T0, T0 + 2 * H)
    ts = timeseries(engine, f, seconds=3600)
    per_bucket = ts["p95_ms"].to_list()
    assert per_bucket == [pytest.approx(np.quantile([r["latency_ms"] for r in fast], 0.95)),
                          pytest.approx(np.quantile([r["latency_ms"] for r in slow], 0.95))]
    overall = float(np.quantile([r["latency_ms"] for r in fast + slow], 0.95))
    kpi = _kpi(kpis(engine, f))["p95_latency_ms"][0]
    assert kpi == pytest.approx(overall)
    averaged = float(np.mean(per_bucket))
    weighted = float(np.average(per_bucket, weights=ts["requests"].to_list()))
    assert abs(kpi - averaged) > 100 and abs(kpi - weighted) > 100


def test_uncertain_flags_follow_design_thresholds(lake, engine):
    sizes = [200, 199, 20, 19, 0]  # rows in five consecutive hours
    rows, i = [], 0
    for hour, n in enumerate(sizes):
        for k in range(n):
            rows.append(make_request(i, ts=T0 + hour * H + timedelta(seconds=10 * k),
                                     latency_ms=float(k)))
            i += 1
    lake.append({"requests": requests_table(rows)}, source="t")
    ts = timeseries(engine, Filters.between(T0, T0 + 5 * H), seconds=3600)
    assert ts["requests"].to_list() == sizes
    assert ts["p95_uncertain"].to_list() == [False, True, True, True, True]
    assert ts["p50_uncertain"].to_list() == [False, False, False, True, True]
    # a rate needs 20 requests in the bucket, as a p50 does here
    assert ts["rate_uncertain"].to_list() == [n < buckets.MIN_REQUESTS_FOR_RATE for n in sizes]
    assert buckets.MIN_ROWS_FOR_PERCENTILE[0.5] == 20
    assert buckets.MIN_ROWS_FOR_PERCENTILE[0.95] == 200
    assert buckets.MIN_ROWS_FOR_PERCENTILE[0.99] == 1000
    # The values are still computed where uncertain, and match numpy.
    assert ts["p50_ms"][3] == pytest.approx(np.quantile(np.arange(19.0), 0.5))


@pytest.mark.parametrize("window, seconds", [
    (timedelta(hours=1), 60), (timedelta(hours=3), 60), (timedelta(hours=24), 900),
    (timedelta(days=7), 3600), (timedelta(days=30), 6 * 3600), (timedelta(days=400), 7 * 86400),
    (timedelta(days=5000), 7 * 86400),
])
def test_bucket_seconds_fit_the_window(window, seconds):
    assert buckets.bucket_seconds(window) == seconds
    assert window.total_seconds() / seconds <= buckets.MAX_BUCKETS or seconds == 7 * 86400


def test_bucket_labels_and_default_width(loaded):
    assert [buckets.bucket_label(s) for s in (60, 900, 3600, 6 * 3600, 86400, 7 * 86400)] == \
        ["1 min", "15 min", "1 h", "6 h", "1 d", "7 d"]
    ts = timeseries(loaded, Filters.between(T0 - H, T0 + H))  # 2 h -> 1-minute buckets
    assert ts.height == 120
    assert ts["requests"].sum() == len(PREVIOUS) + len(CURRENT)


def test_events_in_window(lake, engine):
    lake.append({"events": schema.conform(pa.table({
        "event_id": ["a", "b", "c"],
        "ts": pa.array([T0 - 2 * H, T0 + timedelta(minutes=5), T0], schema.TS),
        "kind": ["deploy", "incident", "deploy"], "service": ["api", None, "worker"],
        "title": ["old", "outage", "new"],
    }), schema.EVENTS)}, source="t")
    got = events(engine, Filters.between(T0, T0 + H))
    assert got["title"].to_list() == ["new", "outage"]
    # a filter on one service keeps the events of every service (logged without one): the
    # outage explained the api's errors, and the filter hid it
    got = events(engine, Filters.between(T0, T0 + H, service=["api"]))
    assert got["title"].to_list() == ["outage"]
    assert events(engine, Filters.between(T0, T0 + H, service=["worker"]))["title"].to_list() \
        == ["new", "outage"]
    assert got.columns == ["ts", "kind", "service", "version", "title", "detail", "author"]


def test_the_eval_kpi_looks_back_a_day_for_the_judged_requests_as_quality_does(lake, engine):
    # An eval in the window of a request made 3 days before it is not this window's (Quality
    # looks back one day before the window's start); before, the tile looked back a day before
    # the previous period instead, and counted it.
    week = timedelta(days=7)
    rows = [_req(40, -3 * 24 * 60, feature="chat"), _req(41, 60, feature="chat")]
    lake.append({"requests": requests_table(rows), "evals": evals_table([
        {"eval_id": "late", "ts": T0 + timedelta(hours=2), "source": "online", "passed": False,
         "request_id": "r40", "metric": "groundedness"},
        {"eval_id": "ok", "ts": T0 + timedelta(hours=2), "source": "online", "passed": True,
         "request_id": "r41", "metric": "groundedness"}])}, source="t")
    f = Filters.between(T0, T0 + week, feature=["chat"])
    from lib.metrics import quality
    by_version = quality.evals_by_version(engine, f, "online")
    assert by_version["passed"].sum() / by_version["n"].sum() == 1.0
    assert _kpi(kpis(engine, f))["eval_pass_rate"] == (1.0, None)


def test_unpriced_buckets_have_an_unknown_cost_and_untimed_rows_no_weight(lake, engine):
    # Hour 0: three priced requests; hour 1: four of a model without a price, no latency;
    # hour 2: nothing. Before, hour 1 read $0 (as if nothing had been spent) and its p50 of no
    # timed row was flagged from the 4 requests instead of 0.
    rows = [make_request(i, cost_usd=1.0) for i in range(3)]
    rows += [make_request(60 + i, model="my-ft", cost_usd=None, latency_ms=None)
             for i in range(4)]
    rows += [make_request(70 + i, latency_ms=100.0, cost_usd=0.5) for i in range(25)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    t = timeseries(engine, Filters.between(T0, T0 + timedelta(hours=3)), 3600)
    assert t["requests"].to_list() == [3, 29, 0]
    assert t["cost_usd"].to_list() == [3.0, 12.5, 0.0]
    assert t["unpriced_requests"].to_list() == [0, 4, 0]
    # per priced request, as the KPI tiles count it: $12.50 over the 25 priced calls of hour 1,
    # not over its 29 (found in review: Explore's chart halved the tiles' figure)
    assert t["cost_per_request"].to_list() == [1.0, 0.5, None]
    assert t["cost_per_request_uncertain"].to_list() == [True, False, True]
    assert t["p50_uncertain"].to_list() == [True, False, True]  # 3, 25 and 0 timed rows
    only_unpriced = timeseries(engine, Filters.between(T0 + timedelta(minutes=60),
                                                       T0 + timedelta(minutes=65)), 60)
    assert only_unpriced["cost_usd"].to_list() == [None] * 4 + [0.0]


def test_a_window_whose_end_has_no_request_at_all_is_stale():
    from datetime import datetime

    from lib.metrics.overview import MIN_STALE, stale_gap

    now = datetime(2026, 11, 27, 3, 0, tzinfo=T0.tzinfo)
    hour = Filters.between(now - H, now)
    # logs stopped 27 minutes ago: a stall, not a drop in traffic
    assert stale_gap(now - timedelta(minutes=27), hour, now) == timedelta(minutes=27)
    # the pipeline's usual delay is not
    assert stale_gap(now - MIN_STALE + timedelta(seconds=1), hour, now) is None
    # a week's window needs 2% of it (3 h 21 min) before it says so
    week = Filters.between(now - timedelta(days=7), now)
    assert stale_gap(now - timedelta(hours=3), week, now) is None
    assert stale_gap(now - timedelta(hours=4), week, now) == timedelta(hours=4)
    # a window in the past, with requests after it, is not stale; the end counts up to now
    assert stale_gap(now, Filters.between(now - 2 * H, now - H), now) is None
    assert stale_gap(now - 2 * H, Filters.between(now - 3 * H, now + H), now) == 2 * H
    # nothing in the store: nothing to say here (the pages' empty states say it)
    assert stale_gap(None, hour, now) is None


def test_a_rate_s_change_has_newcombe_s_interval_and_is_noise_when_it_holds_zero(lake, engine):
    # judged evals: 48 of 80 passed in the hour before, 56 of 70 in this one. Newcombe (1998),
    # table II: 56/70 − 48/80 has the 95% interval 0.0524 to 0.3339 (method 10)
    def judged(n, k, start):
        return [{"eval_id": f"{start}-{i}", "ts": T0 + start + timedelta(seconds=30 * i),
                 "source": "online", "metric": "groundedness", "passed": i < k}
                for i in range(n)]

    reqs = [make_request(i, ts=T0 - H + timedelta(minutes=i), status="error" if i < 3 else "ok")
            for i in range(12)] + [make_request(100 + i, ts=T0 + timedelta(minutes=i),
                                                status="error" if i < 5 else "ok")
                                   for i in range(10)]
    lake.append({"requests": requests_table(reqs),
                 "evals": evals_table(judged(80, 48, -H) + judged(70, 56, timedelta(0)))},
                source="t")
    engine.refresh(force=True)
    got = {r["kpi"]: r for r in kpis(engine, Filters.between(T0, T0 + H)).iter_rows(named=True)}
    judge = got["eval_pass_rate"]
    assert (judge["n"], judge["previous_n"]) == (70, 80)
    assert (judge["change_low"], judge["change_high"]) == (pytest.approx(0.0524, abs=5e-5),
                                                          pytest.approx(0.3339, abs=5e-5))
    # errors: 5 of 10 against 3 of 12: +25 points, and an interval that holds 0 (noise)
    errors = got["error_rate"]
    assert (errors["value"], errors["previous"], errors["n"]) == (0.5, 0.25, 10)
    assert errors["change_low"] < 0 < errors["change_high"]
    # a p95 of 10 requests has no upper bound: its change is within noise
    p95 = got["p95_latency_ms"]
    assert p95["change_low"] <= 0 and p95["change_high"] == float("inf")


def test_a_judge_pass_rate_pooling_metrics_of_one_request_is_as_sure_as_its_requests(
        lake, engine):
    # Newcombe's table II pair again (56/70 against 48/80: 0.0524 to 0.3339), but each request
    # judged by three metrics that agree: 210 and 240 evals hold the evidence of 70 and 80
    # requests, not three times it. Pooled as independent trials the interval was too narrow
    # (found in review: 60 requests x 3 metrics, 70% -> 83%, read as news).
    def judged(n, k, start):
        return [{"eval_id": f"{start}-{i}-{m}", "request_id": f"{start}-{i}",
                 "ts": T0 + start + timedelta(seconds=30 * i), "source": "online",
                 "metric": m, "passed": i < k}
                for i in range(n) for m in ("groundedness", "relevance", "tone")]

    lake.append({"requests": requests_table([make_request(0), make_request(-30)]),
                 "evals": evals_table(judged(80, 48, -H) + judged(70, 56, timedelta(0)))},
                source="t")
    engine.refresh(force=True)
    judge = {r["kpi"]: r for r in kpis(engine, Filters.between(T0, T0 + H)).iter_rows(
        named=True)}["eval_pass_rate"]
    assert (judge["value"], judge["previous"], judge["n"]) == (0.8, 0.6, 210)
    assert (judge["change_low"], judge["change_high"]) == (pytest.approx(0.0524, abs=5e-5),
                                                          pytest.approx(0.3339, abs=5e-5))


def test_effective_trials_by_hand():
    from lib.metrics.overview import effective_trials

    def of(units):  # units: (passed, judged) per request
        return effective_trials(sum(y for y, _ in units), sum(m for _, m in units), len(units),
                                sum(y * y for y, _ in units), sum(y * m for y, m in units),
                                sum(m * m for _, m in units))

    # two requests of three evals, all agreeing: p = 0.5, Σ(y − pm)² = 1.5² + 1.5² = 4.5,
    # p(1 − p)·6 = 1.5, design effect 3: worth 2 trials
    assert of([(3, 3), (0, 3)]) == pytest.approx(2.0)
    # disagreeing within each request: Σ(y − pm)² = 0.5 < 1.5, design effect at least 1: 6
    assert of([(2, 3), (1, 3)]) == pytest.approx(6.0)
    assert of([(1, 1), (0, 1), (1, 1)]) == pytest.approx(3.0)  # one eval each: as they are
    assert of([(2, 2), (3, 3)]) == 2  # all passed: the requests


def test_a_cost_change_beside_unpriced_requests_says_their_cost_is_unknown(lake, engine):
    # half of this hour's traffic moved to a model with no price: $0.25 against $0.50 is no
    # saving (found in review)
    before = [make_request(-60 + i, cost_usd=0.05) for i in range(10)]
    now = [make_request(i, cost_usd=0.05) for i in range(5)] + [
        make_request(10 + i, model="in-house", cost_usd=None) for i in range(5)]
    lake.append({"requests": requests_table(before + now)}, source="t")
    engine.refresh(force=True)
    got = {r["kpi"]: r for r in kpis(engine, Filters.between(T0, T0 + H)).iter_rows(named=True)}
    assert (got["cost_usd"]["value"], got["cost_usd"]["previous"]) == (
        pytest.approx(0.25), pytest.approx(0.5))
    assert got["cost_usd"]["caveat"].startswith("5 requests now and 0 before have no price")
    assert got["requests"]["caveat"] is None  # the others are what they are


def test_the_newest_request_ignores_the_window_but_not_a_clock_ahead(lake, engine):
    # a past window with a quiet end is no stall when requests came after it; a request stamped
    # hours ahead of now (a logger's clock) does not count as one that arrived
    from lib.metrics.overview import AHEAD_SLACK, arrivals, stale_gap

    def latest_request(engine, filters, now):
        return arrivals(engine, filters, now)[0]

    now = T0 + 10 * H
    rows = [make_request(0, ts=T0), make_request(1, ts=T0 + 5 * H),
            make_request(2, ts=now + AHEAD_SLACK + timedelta(hours=3))]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    past = Filters.between(T0 - H, T0 + 2 * H)  # quiet after T0, but logs went on
    last = latest_request(engine, past, now)
    assert last == T0 + 5 * H and stale_gap(last, past, now) is None
    running = Filters.between(now - 4 * H, now)  # nothing for 5 hours up to now: a stall
    assert stale_gap(latest_request(engine, running, now), running, now) == 4 * H


@pytest.mark.parametrize(("now", "before"), [(124, 131), (1000, 800), (3, 0), (0, 1), (40, 40)])
def test_a_count_s_change_has_the_exact_interval_of_the_ratio_of_two_periods(now, before):
    # with no change, now is binomial(now + before, 1/2); Clopper–Pearson's bounds from the
    # beta distribution, as a ratio now / before − 1
    from scipy.stats import beta

    from lib.metrics.overview import count_change_interval

    n = now + before
    lo = beta.ppf(0.025, now, n - now + 1) if now else 0.0
    hi = beta.ppf(0.975, now + 1, n - now) if now < n else 1.0
    want = (lo / (1 - lo) - 1, hi / (1 - hi) - 1 if hi < 1 else float("inf"))
    got = count_change_interval(now, before)
    assert got[0] == pytest.approx(want[0], rel=1e-9, abs=1e-12)
    assert got[1] == pytest.approx(want[1], rel=1e-9) if want[1] != float("inf") else \
        got[1] == float("inf")
    # 131 → 124 requests and 1 → 0 triggers are noise; 800 → 1,000 is not
    noise = got[0] <= 0 <= got[1]
    assert noise == ((now, before) != (1000, 800))


def test_count_kpis_carry_their_interval(lake, engine):
    reqs = [make_request(i, ts=T0 - H + timedelta(minutes=i), guardrail="pii" if i < 1 else None)
            for i in range(12)] + [make_request(100 + i, ts=T0 + timedelta(minutes=i))
                                   for i in range(10)]
    lake.append({"requests": requests_table(reqs)}, source="t")
    engine.refresh(force=True)
    got = {r["kpi"]: r for r in kpis(engine, Filters.between(T0, T0 + H)).iter_rows(named=True)}
    from lib.metrics.overview import count_change_interval

    assert (got["requests"]["change_low"], got["requests"]["change_high"]) == \
        count_change_interval(10, 12)
    assert (got["guardrail_triggers"]["change_low"], got["guardrail_triggers"]["change_high"]) \
        == count_change_interval(0, 1)


@pytest.mark.parametrize(("scale", "noise"), [(1.004, True), (1.05, False)])
def test_a_p95_change_is_noise_when_the_periods_intervals_overlap(lake, engine, scale, noise):
    # 4,000 latencies an hour, the same spread, the current hour's scaled: a p95 4 per mille
    # higher is within what 4,000 requests give by chance (each p95's exact 95% interval is
    # about ±0.7% here); 5% higher is not. The tile drew any p95 change as news, red or green
    # (7,000 requests a week: "+5.7%" red, within noise).
    lat = np.linspace(100.0, 10_000.0, 4000)
    reqs = [make_request(i, ts=T0 - H + timedelta(seconds=0.9 * i), latency_ms=float(x))
            for i, x in enumerate(lat)]
    reqs += [make_request(10_000 + i, ts=T0 + timedelta(seconds=0.9 * i),
                          latency_ms=float(x * scale)) for i, x in enumerate(lat)]
    lake.append({"requests": requests_table(reqs)}, source="t")
    engine.refresh(force=True)
    got = {r["kpi"]: r for r in kpis(engine, Filters.between(T0, T0 + H)).iter_rows(named=True)}
    p95 = got["p95_latency_ms"]
    assert p95["value"] / p95["previous"] == pytest.approx(scale)
    assert (p95["change_low"] <= 0 <= p95["change_high"]) is noise
    # the bounds come from each period's order statistics: X(l) and X(u) of the binomial tails
    lo, hi = quantile_interval_ranks(4000)
    before = np.sort(lat)
    assert p95["change_high"] == pytest.approx(before[hi - 1] * scale / before[lo - 1] - 1)


def test_a_p95_of_zero_against_zero_is_no_change(lake, engine):
    # latencies all 0 ms (a cache) in both hours: 0 / 0 read as an infinite rise
    reqs = [make_request(i, ts=T0 - H + timedelta(seconds=3 * i), latency_ms=0.0)
            for i in range(1000)]
    reqs += [make_request(2000 + i, ts=T0 + timedelta(seconds=3 * i), latency_ms=0.0)
             for i in range(1000)]
    lake.append({"requests": requests_table(reqs)}, source="t")
    engine.refresh(force=True)
    got = {r["kpi"]: r for r in kpis(engine, Filters.between(T0, T0 + H)).iter_rows(named=True)}
    p95 = got["p95_latency_ms"]
    assert p95["change_low"] <= 0 <= p95["change_high"]


def test_a_window_that_has_not_ended_is_compared_with_the_same_stretch_before(lake, engine):
    # A window holding today (custom dates, or a link) at 12:00: against the whole of
    # yesterday, today's half a day of traffic read "requests −50%, cost −50%" (green), with
    # the traffic unchanged. The same hours of yesterday are compared instead: no change.
    rows, day = [], timedelta(days=1)
    for i in range(36 * 6):  # one request every 10 minutes for a day and a half, all alike
        rows.append(_req(i, 10 * i, latency_ms=100.0 + i % 6, cost_usd=0.01,
                         status="error" if i % 6 == 0 else "ok",
                         guardrail="pii" if i % 3 == 0 else None))
    lake.append({"requests": requests_table(rows)}, source="t")
    f = Filters.between(T0 + day, T0 + 2 * day)
    now = T0 + day + 12 * H
    got = _kpi(kpis(engine, f, now))
    assert got["requests"] == (72, 72)
    assert got["cost_usd"] == (pytest.approx(0.72), pytest.approx(0.72))
    assert got["error_rate"] == (pytest.approx(1 / 6), pytest.approx(1 / 6))
    assert got["guardrail_triggers"] == (24, 24)
    # the p95's interval is of the same requests: the same latencies, no change outside noise
    p95 = kpis(engine, f, now).filter(kpis(engine, f, now)["kpi"] == "p95_latency_ms")
    assert p95["change_low"][0] <= 0 <= p95["change_high"][0]
    # the stretch compared with is wholly in the store, though the previous day's end is not
    assert previous_coverage(engine, f, now) == 1.0
    # a window that has ended (or no ``now``) is still against the whole period before
    assert _kpi(kpis(engine, f))["requests"] == (72, 144)
    assert _kpi(kpis(engine, f, T0 + 3 * day))["requests"] == (72, 144)


def test_cached_token_share_leaves_out_application_cache_hits(lake, engine):
    # Two calls to the provider, 1,000 input tokens each, 500 of them from its cache (50%), and
    # eight hits of the application's own cache logged with the usage of the answer they served
    # (as LiteLLM logs a hit), none of it cached: tokens sent to no provider read as 10% cached,
    # where the Cost page's token mix, which leaves such hits out, said 50% (review).
    rows = [_req(i, i, input_tokens=1000, cached_input_tokens=500) for i in range(2)]
    rows += [_req(2 + i, 2 + i, input_tokens=1000, cached_input_tokens=0, cost_usd=0.0,
                  cache_hit=True) for i in range(8)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    got = _kpi(kpis(engine, Filters.between(T0, T0 + H)))
    assert got["cached_token_share"][0] == pytest.approx(0.5)
    assert got["requests"][0] == 10  # (the hits are still requests)


def test_one_unpriced_request_is_one_request(lake, engine):
    # "1 requests now and 0 before have no price" (found in review)
    lake.append({"requests": requests_table([make_request(0), make_request(
        1, model="in-house", cost_usd=None)])}, source="t")
    engine.refresh(force=True)
    got = {r["kpi"]: r for r in kpis(engine, Filters.between(T0, T0 + H)).iter_rows(named=True)}
    assert got["cost_usd"]["caveat"].startswith("1 request now and 0 before have no price")
