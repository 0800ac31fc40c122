"""Drift per column between a reference window and the current one (lib/metrics/drift.py): the
SQL summaries fed to lib.stats give what scipy and numpy give on the same rows."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from scipy import stats as sp
from scipy.spatial.distance import jensenshannon

from lib.filters import Filters
from lib.metrics import drift
from lib.stats import drift as stats_drift
from tests.conftest import T0, make_request, requests_table

DAY = timedelta(days=1)
REF = Filters.between(T0 - DAY, T0)
CUR = Filters.between(T0, T0 + DAY)


def _store(lake, ref_rows: list[dict], cur_rows: list[dict]) -> None:
    rows = [make_request(i, ts=T0 - DAY + timedelta(seconds=10 * i), **r)
            for i, r in enumerate(ref_rows)]
    rows += [make_request(len(rows) + i, ts=T0 + timedelta(seconds=10 * i), **r)
             for i, r in enumerate(cur_rows)]
    lake.append({"requests": requests_table(rows)}, source="t")


def _psi_by_hand(ref: np.ndarray, cur: np.ndarray) -> float:
    edges = np.quantile(ref, np.arange(1, 10) / 10)
    r = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=10) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=10) / len(cur)
    r, c = np.where(r == 0, 1e-4, r), np.where(c == 0, 1e-4, c)
    return float(np.sum((c - r) * np.log(c / r)))


def test_a_large_reference_is_compared_by_wasserstein_and_psi(lake, engine):
    rng = np.random.default_rng(0)
    ref = np.round(rng.lognormal(7, 0.4, 3000)).astype(int)
    cur = np.round(rng.lognormal(7.3, 0.4, 2500)).astype(int)
    _store(lake, [{"input_tokens": int(v), "cached_input_tokens": 0} for v in ref],
           [{"input_tokens": int(v), "cached_input_tokens": 0} for v in cur])
    table = drift.drift_table(engine, CUR, REF)
    row = table.filter(table["column"] == "input_tokens").row(0, named=True)
    want = sp.wasserstein_distance(ref, cur) / ref.std()
    assert row["statistic"] == pytest.approx(want, rel=0.01)
    assert row["psi"] == pytest.approx(_psi_by_hand(ref, cur), rel=1e-9)
    assert (row["status"], row["n_ref"], row["n_cur"]) == ("drift", 3000, 2500)
    assert (row["median_ref"], row["median_cur"]) == (np.median(ref), np.median(cur))
    assert row["method"].startswith("Wasserstein")
    # an unchanged column is not drift; the drifting one is listed first
    out = table.filter(table["column"] == "output_tokens").row(0, named=True)
    assert (out["status"], out["statistic"]) == ("no drift", 0.0)
    assert table["column"][0] == "input_tokens"


def test_text_lengths_are_compared_like_any_number(lake, engine):
    # prompts of ~N(60, 8) characters, then ~N(75, 8): read from their value counts, the test
    # gives what scipy gives on the lengths themselves
    rng = np.random.default_rng(7)
    ref = np.clip(np.round(rng.normal(60, 8, 2000)), 1, None).astype(int)
    cur = np.clip(np.round(rng.normal(75, 8, 1500)), 1, None).astype(int)
    _store(lake, [{"input_text": "x" * int(v)} for v in ref],
           [{"input_text": "é" * int(v)} for v in cur])  # characters, not bytes
    table = drift.drift_table(engine, CUR, REF)
    row = table.filter(table["column"] == "input_chars").row(0, named=True)
    want = sp.wasserstein_distance(ref, cur) / ref.std()
    assert row["statistic"] == pytest.approx(want, rel=0.01)
    assert row["psi"] == pytest.approx(_psi_by_hand(ref, cur), rel=1e-9)
    assert (row["median_ref"], row["median_cur"]) == (np.median(ref), np.median(cur))
    assert (row["status"], row["n_ref"], row["n_cur"]) == ("drift", 2000, 1500)
    # no response text on either side: nothing to test, never "no drift"
    out = table.filter(table["column"] == "output_chars").row(0, named=True)
    assert (out["status"], out["n_ref"], out["n_cur"]) == ("insufficient data", 0, 0)
    dist = drift.distribution(engine, CUR, REF, "input_chars")
    edges = np.quantile(ref, np.arange(1, 10) / 10)
    assert sum(dist["reference_share"]) == pytest.approx(1.0)
    want_cur = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=10) / len(cur)
    shown = dict(zip(dist["bucket"], dist["current_share"], strict=True))
    assert sum(shown.values()) == pytest.approx(1.0)
    assert shown[dist["bucket"][-1]] == pytest.approx(want_cur[-1])


@pytest.mark.parametrize("seed", range(5))
def test_value_counts_give_the_quantiles_and_bins_of_the_rows(seed):
    # many ties, as token counts and lengths have: the order statistics and the bins read off
    # the value counts are numpy's on the rows
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 40, int(rng.integers(1, 3000))).astype(float)
    values, counts = np.unique(rows, return_counts=True)
    levels = list(np.linspace(0, 1, 101))
    assert drift._histogram_quantiles(values, counts, levels) == pytest.approx(
        list(np.quantile(rows, levels)), abs=1e-12)
    edges = list(np.quantile(rows, np.arange(1, 10) / 10))
    by_definition = [int(np.sum(np.sum(rows[:, None] > np.array(edges), axis=1) == b))
                     for b in range(10)]
    assert drift._histogram_bins(values, counts, edges) == by_definition


def test_a_small_reference_is_tested_by_ks_with_bh_over_the_columns(lake, engine):
    rng = np.random.default_rng(1)
    ref_lat = rng.normal(1000, 100, 200)
    cur_lat = rng.normal(1040, 100, 300)
    ref_out = rng.integers(100, 200, 200)
    cur_out = rng.integers(100, 200, 300)
    _store(lake, [{"latency_ms": float(a), "output_tokens": int(b)}
                  for a, b in zip(ref_lat, ref_out, strict=True)],
           [{"latency_ms": float(a), "output_tokens": int(b)}
            for a, b in zip(cur_lat, cur_out, strict=True)])
    table = drift.drift_table(engine, CUR, REF)
    got = {r["column"]: r for r in table.iter_rows(named=True)}
    lat = got["latency_ms"]
    ks = sp.ks_2samp(ref_lat, cur_lat)
    assert (lat["statistic"], lat["p_value"]) == (pytest.approx(ks.statistic),
                                                  pytest.approx(ks.pvalue, rel=1e-9))
    # BH over every p-value test of the table (KS on the numeric columns; the categorical ones
    # with a single value have none)
    tested = table.filter(table["p_value"].is_not_null())
    adjusted = sp.false_discovery_control(tested["p_value"].to_numpy(), method="bh")
    assert tested["p_adjusted"].to_list() == pytest.approx(list(adjusted), rel=1e-9)


def test_categorical_columns_by_jensen_shannon_and_chi_square(lake, engine):
    ref = ["chat"] * 700 + ["search"] * 300 + ["agent"] * 200
    cur = ["chat"] * 500 + ["search"] * 500 + ["agent"] * 200 + ["new"] * 30
    _store(lake, [{"feature": v} for v in ref], [{"feature": v} for v in cur])
    table = drift.drift_table(engine, CUR, REF)
    row = table.filter(table["column"] == "feature").row(0, named=True)
    values = ["agent", "chat", "new", "search"]
    p = np.array([ref.count(v) for v in values]) / len(ref)
    q = np.array([cur.count(v) for v in values]) / len(cur)
    assert row["statistic"] == pytest.approx(jensenshannon(p, q, base=2), rel=1e-9)
    assert row["status"] == ("drift" if jensenshannon(p, q, base=2) >= 0.1 else "no drift")
    assert row["unseen_share"] == pytest.approx(30 / len(cur))
    assert (row["unseen_values"], row["unseen_status"]) == ("new", "alert")
    assert row["largest_change"] == "chat: 58.3% → 40.7%"  # (−17.7 points; search +15.7)
    # a small reference: chi-square on the same table
    small = drift.drift_table(engine, CUR, Filters.between(T0 - DAY, T0 - DAY + timedelta(
        seconds=10 * 600)))
    row = small.filter(small["column"] == "feature").row(0, named=True)
    sub = ref[:600]
    table2 = [[sub.count(v) for v in values], [cur.count(v) for v in values]]
    table2 = np.array(table2)[:, np.array(table2).sum(axis=0) > 0]
    chi = sp.chi2_contingency(table2, correction=False)
    assert (row["statistic"], row["p_value"]) == (pytest.approx(chi.statistic),
                                                  pytest.approx(chi.pvalue, rel=1e-9))


def test_too_few_rows_is_never_no_drift(lake, engine):
    _store(lake, [{"latency_ms": 100.0}] * 29, [{"latency_ms": 900.0}] * 300)
    table = drift.drift_table(engine, CUR, REF)
    assert set(table["status"]) == {"insufficient data"}
    assert table.filter(table["column"] == "latency_ms")["n_ref"][0] == 29


def test_the_filters_apply_to_both_windows_and_the_distribution_is_the_psi_bins(lake, engine):
    rng = np.random.default_rng(2)
    ref = rng.normal(500, 50, 2000)
    cur = rng.normal(650, 50, 2000)
    _store(lake, [{"latency_ms": float(v), "feature": "search"} for v in ref]
           + [{"latency_ms": 5.0, "feature": "chat"}] * 500,
           [{"latency_ms": float(v), "feature": "search"} for v in cur])
    search = {"feature": ["search"]}
    cur_f, ref_f = (Filters.between(w.start, w.end, **search) for w in (CUR, REF))
    table = drift.drift_table(engine, cur_f, ref_f)
    row = table.filter(table["column"] == "latency_ms").row(0, named=True)
    assert (row["n_ref"], row["n_cur"]) == (2000, 2000)
    dist = drift.distribution(engine, cur_f, ref_f, "latency_ms")
    edges = np.quantile(ref, np.arange(1, 10) / 10)
    want = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=10) / len(cur)
    assert dist["current_share"].to_list() == pytest.approx(list(want))
    assert dist["reference_share"].to_list() == pytest.approx([0.1] * 10, abs=1e-3)
    assert dist["bucket"][0].startswith("≤ ") and dist["bucket"][-1].startswith("> ")


def test_tied_deciles_make_no_two_buckets_of_one_name(lake, engine):
    # 70% of the reference's prompts are 500 tokens: its deciles 2-7 are all 500
    ref = [500] * 1400 + list(range(1000, 1600))
    _store(lake, [{"input_tokens": v, "cached_input_tokens": 0} for v in ref],
           [{"input_tokens": v, "cached_input_tokens": 0} for v in ref])
    dist = drift.distribution(engine, CUR, REF, "input_tokens")
    names = dist["bucket"].to_list()
    assert len(names) == len(set(names)) and names[0] == "≤ 500"
    # nothing is lost: each side's shares still add up to the whole
    assert sum(dist["reference_share"]) == pytest.approx(1.0)
    assert dist["reference_share"][0] == pytest.approx(0.7)
    assert names[-1].startswith("> 1,")  # whole numbers from 100 on, not "1.48e+03"


@pytest.mark.parametrize("n_ref,n_cur,note", [
    (100, 600, "KS and PSI on a fixed sample of 150 of the 600 current values"),
    # a small current window against a large reference is tested by KS too: the reference is
    # what gets sampled
    (600, 100, "KS and PSI on a fixed sample of 150 of the 600 reference values"),
])
def test_a_sampled_side_still_counts_every_row(lake, engine, monkeypatch, n_ref, n_cur, note):
    monkeypatch.setattr(drift, "MAX_VALUES", 150)
    rng = np.random.default_rng(3)
    _store(lake, [{"latency_ms": float(v)} for v in rng.normal(100, 10, n_ref)],
           [{"latency_ms": float(v)} for v in rng.normal(100, 10, n_cur)])
    table = drift.drift_table(engine, CUR, REF)
    row = table.filter(table["column"] == "latency_ms").row(0, named=True)
    assert (row["n_ref"], row["n_cur"]) == (n_ref, n_cur)
    assert row["note"] == note


@pytest.mark.parametrize("shift,status", [(0.0, "no drift"), (60.0, "drift")])
def test_a_small_current_window_against_a_large_reference_is_tested_by_ks(lake, engine, shift,
                                                                          status):
    # 3,000 reference rows, 100 current ones: a distance would pass 0.1 on sampling noise
    # (design §5 chose on the reference's size alone); the test is KS on both sides' values
    rng = np.random.default_rng(4)
    ref_lat = rng.normal(1000, 100, 3000)
    cur_lat = rng.normal(1000 + shift, 100, 100)
    ref_in = rng.integers(100, 200, 3000)
    cur_in = rng.integers(100, 200, 100)
    _store(lake, [{"latency_ms": float(a), "input_tokens": int(b), "cached_input_tokens": 0}
                  for a, b in zip(ref_lat, ref_in, strict=True)],
           [{"latency_ms": float(a), "input_tokens": int(b), "cached_input_tokens": 0}
            for a, b in zip(cur_lat, cur_in, strict=True)])
    table = drift.drift_table(engine, CUR, REF)
    got = {r["column"]: r for r in table.iter_rows(named=True)}
    for column, ref, cur in (("latency_ms", ref_lat, cur_lat), ("input_tokens", ref_in, cur_in)):
        row = got[column]
        ks = sp.ks_2samp(ref, cur)
        assert row["method"] == "K-S p-value" and (row["n_ref"], row["n_cur"]) == (3000, 100)
        assert (row["statistic"], row["p_value"]) == (pytest.approx(ks.statistic),
                                                      pytest.approx(ks.pvalue, rel=1e-9))
        assert row["psi"] == pytest.approx(_psi_by_hand(ref, cur), rel=1e-9)
        assert row["note"] is None  # every value read
    assert got["latency_ms"]["status"] == status
    assert got["input_tokens"]["status"] == "no drift"


def test_where_it_moved_gives_each_value_s_medians(lake, engine):
    rng = np.random.default_rng(5)
    ref = {"chat": rng.normal(1000, 50, 300), "search": rng.normal(500, 20, 200)}
    cur = {"chat": rng.normal(1000, 50, 300), "search": rng.normal(900, 20, 250)}
    _store(lake, [{"input_tokens": int(v), "cached_input_tokens": 0, "feature": k}
                  for k, vs in ref.items() for v in vs],
           [{"input_tokens": int(v), "cached_input_tokens": 0, "feature": k}
            for k, vs in cur.items() for v in vs])
    moved = drift.where_it_moved(engine, CUR, REF, "input_tokens", "feature")
    assert moved["value"].to_list() == ["chat", "search"]  # most current rows first
    got = {r["value"]: r for r in moved.iter_rows(named=True)}
    for k in ("chat", "search"):
        assert (got[k]["n_ref"], got[k]["n_cur"]) == (len(ref[k]), len(cur[k]))
        assert got[k]["median_ref"] == np.median(ref[k].astype(int))
        assert got[k]["median_cur"] == np.median(cur[k].astype(int))


def test_wasserstein_s_cut_off_allows_for_the_noise_of_both_windows_values(lake, engine):
    # heavy-tailed latency and output tokens, one distribution on both sides, just over 1,000
    # rows each: drift from 0.1 passed on noise alone in ~11% of such windows; the cut-off is
    # now the permutation 99th percentile of all the rows (each side under 2,000: SQL returns
    # every value), for a float column (sampled in SQL) and a whole-number one (value counts)
    rng = np.random.default_rng(3)
    n_ref, n_cur = 1100, 1050
    latency = np.round((rng.pareto(1.5, n_ref + n_cur) + 1) * 300, 3)
    tokens = np.round((rng.pareto(1.5, n_ref + n_cur) + 1) * 50).astype(int)
    rows = [{"latency_ms": float(v), "output_tokens": int(t)} for v, t in zip(latency, tokens)]
    _store(lake, rows[:n_ref], rows[n_ref:])
    table = drift.drift_table(engine, CUR, REF)
    for column, values in (("latency_ms", latency), ("output_tokens", tokens.astype(float))):
        row = table.filter(table["column"] == column).row(0, named=True)
        floor = stats_drift.wasserstein_no_drift_p99(values[:n_ref], values[n_ref:])
        assert row["method"].startswith("Wasserstein") and (row["n_ref"], row["n_cur"]) == (
            n_ref, n_cur)
        assert row["threshold"] == floor > 0.1, column
        assert row["note"].startswith(f"drift from {floor:.3f}, not 0.1"), column
        assert row["status"] == ("drift" if row["statistic"] >= floor else "no drift")
