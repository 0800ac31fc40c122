"""Latency metrics against numpy on tiny exact datasets, including the per-bucket p99 trap."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from lib.filters import Filters
from lib.metrics import latency
from tests.conftest import T0, make_request, requests_table


@pytest.fixture
def two_buckets(lake, engine):
    """Hour 1: 1000 requests at 1..1000 ms; hour 2: 10 requests at 5000..5009 ms."""
    rows = [make_request(i, ts=T0 + timedelta(seconds=3 * i), latency_ms=float(i + 1),
                         ttft_ms=10.0, output_tokens=100) for i in range(1000)]
    rows += [make_request(1000 + i, ts=T0 + timedelta(hours=1, minutes=i),
                          latency_ms=5000.0 + i, ttft_ms=None, output_tokens=50)
             for i in range(10)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    lat = np.array([r["latency_ms"] for r in rows])
    return engine, Filters.between(T0, T0 + timedelta(hours=2)), lat


def test_bucket_percentiles_are_exact_and_not_averaged(two_buckets):
    engine, f, lat = two_buckets
    ts = latency.percentiles_over_time(engine, f, seconds=3600)
    assert ts["requests"].to_list() == [1000, 10]
    h1, h2 = lat[:1000], lat[1000:]
    for p, q in latency.PERCENTILES.items():
        assert ts[f"{p}_ms"].to_list() == pytest.approx([np.quantile(h1, q), np.quantile(h2, q)])
    # The trap: the mean of per-bucket p99s is not the p99 of all requests.
    overall = latency.overall(engine, f)
    mean_of_p99 = float(np.mean(ts["p99_ms"].to_list()))
    assert overall["p99_ms"] == pytest.approx(np.quantile(lat, 0.99))
    assert abs(mean_of_p99 - overall["p99_ms"]) > 1000
    # Uncertain buckets: 10 rows is too few for p50; 1000 rows is enough for p99.
    assert ts["p50_uncertain"].to_list() == [False, True]
    assert ts["p99_uncertain"].to_list() == [False, True]


def test_within_objective_ttft_and_speed(two_buckets):
    engine, f, lat = two_buckets
    ts = latency.percentiles_over_time(engine, f, seconds=3600, objective_ms=500)
    assert ts["within_objective"].to_list() == [500, 0]
    assert ts["within_share"].to_list() == [0.5, 0.0]
    # 0% of 10 requests is drawn hollow, as an error rate of so few (it was drawn solid: a
    # quiet hour's 0% or 100% read as an outage or a recovery)
    assert ts["within_share_uncertain"].to_list() == [False, True]
    assert latency.overall(engine, f, 500)["within_share"] == pytest.approx(500 / 1010)
    assert latency.overall(engine, f)["within_share"] is None
    assert ts["ttft_p50_ms"][0] == 10.0 and ts["ttft_p50_ms"][1] is None
    # speed = output tokens / generation seconds (latency − TTFT when streamed)
    speed1 = np.array([100 / ((x - 10) / 1000) for x in lat[:1000] if x > 10])
    speed2 = np.array([50 / (x / 1000) for x in lat[1000:]])
    assert ts["tokens_per_s_p50"].to_list() == pytest.approx(
        [np.quantile(speed1, 0.5), np.quantile(speed2, 0.5)])


def test_by_dimension_distribution_and_slowest(lake, engine):
    rows = [make_request(i, provider="a" if i % 2 else "b", latency_ms=float(10 ** (1 + i % 3)))
            for i in range(30)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0, T0 + timedelta(hours=1))
    g = latency.by_dimension(engine, f, "provider", objective_ms=100)
    for prov in ("a", "b"):
        lat = np.array([r["latency_ms"] for r in rows if r["provider"] == prov])
        row = g.filter(g["group"] == prov).row(0, named=True)
        assert row["requests"] == len(lat)
        assert row["p95_ms"] == pytest.approx(np.quantile(lat, 0.95))
        assert row["within_share"] == pytest.approx(np.mean(lat <= 100))
        assert row["p50_uncertain"] is True  # 15 rows < 20
    d = latency.distribution(engine, f, bins_per_decade=1)
    assert d["bin_start_ms"].to_list() == pytest.approx([10, 100, 1000])
    assert d["requests"].to_list() == [10, 10, 10]
    slow = latency.slowest(engine, f, limit=3)
    assert slow["latency_ms"].to_list() == [1000.0] * 3


def test_empty_window(engine):
    f = Filters.between(T0, T0 + timedelta(hours=1))
    assert latency.overall(engine, f)["requests"] == 0
    ts = latency.percentiles_over_time(engine, f, seconds=600)
    assert ts.height == 6 and ts["requests"].sum() == 0


def test_requests_without_a_latency_count_in_neither_share_nor_reliability(lake, engine):
    # 5 timed requests (100 ms) and 30 without a latency, in one hour, objective 2,000 ms: the
    # chart counted the untimed ones as missing the objective (0.5 against the tile's 1.0 with
    # 5 and 5) and as rows behind the percentiles (a p50 of 5 rows drawn as reliable).
    rows = [make_request(i, latency_ms=100.0) for i in range(5)]
    rows += [make_request(5 + i, latency_ms=None) for i in range(30)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0, T0 + timedelta(hours=1))
    chart = latency.percentiles_over_time(engine, f, 3600, objective_ms=2000)
    tile = latency.overall(engine, f, objective_ms=2000)
    table = latency.by_dimension(engine, f, "model", objective_ms=2000)
    assert chart["within_share"].to_list() == [1.0] == [tile["within_share"]]
    assert table["within_share"].to_list() == [1.0]
    assert chart["requests"].to_list() == [35]  # the bars still count every request
    assert chart["p50_uncertain"].to_list() == [True]  # 5 < 20 timed rows
    assert chart["within_share_uncertain"].to_list() == [True]  # (35 requests, 5 timed)
    assert table["p50_uncertain"].to_list() == [True]


def test_ttft_and_speed_percentiles_of_few_requests_are_flagged(lake, engine):
    # hour 1: 199 streamed calls out of 1,000 (a p50 but no p95 to trust), hour 2: 3 streamed
    # calls (found in review: their p95 of 38 s was drawn as solid as one of thousands)
    rows = [make_request(i, ts=T0 + timedelta(seconds=3 * i), ttft_ms=10.0 if i < 199 else None)
            for i in range(1000)]
    rows += [make_request(1000 + i, ts=T0 + timedelta(hours=1, minutes=i), ttft_ms=38_100.0,
                          latency_ms=40_000.0,
                          output_tokens=None if i >= 3 else 50) for i in range(25)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    ts = latency.percentiles_over_time(engine, Filters.between(T0, T0 + timedelta(hours=2)),
                                       seconds=3600)
    assert ts["ttft_requests"].to_list() == [199, 25]
    assert ts["ttft_p50_uncertain"].to_list() == [False, False]  # 20 or more
    assert ts["ttft_p95_uncertain"].to_list() == [True, True]  # fewer than 200
    # a speed needs output tokens: 3 in hour 2, fewer than a median's 20
    assert ts["tokens_per_s_p50_uncertain"].to_list() == [False, True]


def test_output_speed_leaves_out_application_cache_hits(lake, engine):
    # 30 generated answers at 100 tokens in 1 s, and 40 answers from the application's own
    # cache logged with the cached answer's usage (as LiteLLM logs a hit) in 5 ms: nothing was
    # generated, yet they read as 20,000 tokens a second and became the median (review)
    rows = [make_request(i, latency_ms=1000.0, output_tokens=100) for i in range(30)]
    rows += [make_request(30 + i, latency_ms=5.0, output_tokens=100, cache_hit=True)
             for i in range(40)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0, T0 + timedelta(hours=2))
    series = latency.percentiles_over_time(engine, f, seconds=7200)
    assert series["tokens_per_s_p50"].to_list() == [pytest.approx(100.0)]
    assert series["requests"].to_list() == [70]  # (the hits are still requests, and latency)
    assert latency.overall(engine, f)["tokens_per_s_p50"] == pytest.approx(100.0)
    (group,) = latency.by_dimension(engine, f, "model").iter_rows(named=True)
    assert group["tokens_per_s_p50"] == pytest.approx(100.0)
