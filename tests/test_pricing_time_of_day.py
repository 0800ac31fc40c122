"""Prices that depend on the time of day (lib/pricing.py, "Price periods"): genai-prices prices
deepseek-v4-pro at twice its rates from 01:00 to 04:00 and from 06:00 to 10:00 UTC, and
deepseek-chat at its standard rates only from 00:30 to 16:30 (half outside). Every path that
prices (request_cost, the vectorized frames, the three ingest paths, reprice, cache savings, the
Cost page's token mix and what-if) prices a call at the time it was made, not at noon.

Expected costs come from genai-prices' ``calc_price`` called directly with the call's own
timestamp, and a few are worked by hand from its published prices.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import duckdb
import polars as pl
import pytest
from genai_prices import Usage, calc_price

from lib import pricing
from lib.filters import Filters
from lib.ingest import fastpath
from lib.ingest.pipeline import ingest_paths
from lib.metrics import cost as cost_metrics
from lib.pricing import (
    cache_savings_frame,
    cache_savings_sql,
    period_bounds,
    period_expr,
    period_of,
    period_sql,
    price_frame,
    price_table,
    reprice,
    request_cache_savings,
    request_cost,
)
from lib.store import Engine, Lake
from tests.conftest import make_request, requests_table
from tests.ingest.conftest import canonical_request, jsonl_bytes

DAY = datetime(2026, 11, 2, tzinfo=UTC)  # after deepseek-v4-pro's and -flash's start dates


def at(h: int, m: int = 0, s: int = 0, us: int = 0, day: datetime = DAY) -> datetime:
    return day.replace(hour=h, minute=m, second=s, microsecond=us)


# Times either side of every bound of the bundled snapshot, and some between.
TIMES = [at(0), at(0, 29, 59, 999_999), at(0, 30), at(0, 59, 59, 999_999), at(1), at(2, 30),
         at(3, 59, 59, 999_999), at(4), at(5, 59, 59), at(6), at(9, 59, 59, 999_999), at(10),
         at(12), at(16, 29, 59, 999_999), at(16, 30), at(23, 59, 59, 999_999)]
MODELS = [("deepseek", "deepseek-v4-pro"), ("deepseek", "deepseek-chat"),
          ("deepseek", "deepseek-v4-flash"), ("deepseek", "deepseek-reasoner"),
          ("openai", "gpt-4o"), (None, "deepseek-v4-pro")]


def published(provider, model, ts: datetime, i: int, c: int = 0, w: int = 0, o: int = 0):
    """genai-prices' price of one call made at ``ts``, asked directly."""
    calc = calc_price(Usage(input_tokens=i, cache_read_tokens=c, cache_write_tokens=w,
                            output_tokens=o), model, provider_id=provider,
                      genai_request_timestamp=ts)
    return float(Decimal(calc.total_price))


def _grid() -> list[dict]:
    """One request per (time, model), tokens varied; ``i`` numbers them."""
    rows = []
    for n, (ts, (provider, model)) in enumerate((t, m) for t in TIMES for m in MODELS):
        inp = 1000 + 37 * n
        rows.append({"i": n, "ts": ts, "provider": provider, "model": model,
                     "input_tokens": inp, "cached_input_tokens": inp // 4,
                     "output_tokens": 300 + n})
    return rows


GRID = _grid()


def _expected(r: dict) -> float:
    return published(r["provider"], r["model"], r["ts"], r["input_tokens"],
                     r["cached_input_tokens"], 0, r["output_tokens"])


# -- The periods ----------------------------------------------------------------------------------

def test_the_bounds_are_the_times_the_catalogue_prices_start_or_stop():
    us = [int(timedelta(hours=h, minutes=m) / timedelta(microseconds=1))
          for h, m in [(0, 30), (1, 0), (4, 0), (6, 0), (10, 0), (16, 30)]]
    assert period_bounds() == tuple(us)
    assert pricing.priced_by_time_of_day("deepseek", "deepseek-v4-pro")
    assert pricing.priced_by_time_of_day(None, "deepseek-chat")  # resolved by model alone
    assert not pricing.priced_by_time_of_day("openai", "gpt-4o")
    assert not pricing.priced_by_time_of_day("x", "no-such-model")


def test_a_period_is_the_start_of_the_interval_between_bounds_holding_the_time():
    assert [period_of(t).time() for t in TIMES] == [
        time(0), time(0), time(0, 30), time(0, 30), time(1), time(1), time(1), time(4),
        time(4), time(6), time(6), time(10), time(10), time(10), time(16, 30), time(16, 30)]
    # naive is UTC; another offset is converted first
    assert period_of(datetime(2026, 11, 2, 2, 0)) == datetime(2026, 11, 2, 1, 0)
    tokyo = datetime(2026, 11, 2, 10, 0, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    assert period_of(tokyo) == datetime(2026, 11, 2, 10, 0)


def test_duckdb_polars_and_python_give_the_same_period_whatever_the_session_time_zone():
    rng = random.Random(5)
    stamps = [datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(1960, 3, 1, 0, 45,
              tzinfo=UTC), *TIMES] + [
        datetime(2020, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(10**15))
        for _ in range(300)]
    want = [period_of(t) for t in stamps]
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'America/New_York'")
        got_sql = [r[0] for r in con.execute(
            f"SELECT {period_sql('t')} FROM (SELECT unnest($t)::TIMESTAMPTZ AS t, "
            "generate_subscripts($t, 1) AS i) ORDER BY i", {"t": stamps}).fetchall()]
        naive = [r[0] for r in con.execute(
            f"SELECT {period_sql('t')} FROM (SELECT unnest($t)::TIMESTAMP AS t, "
            "generate_subscripts($t, 1) AS i) ORDER BY i",
            {"t": [s.replace(tzinfo=None) for s in stamps]}).fetchall()]
    finally:
        con.close()
    assert got_sql == want and naive == want
    frame = pl.DataFrame({"ts": stamps}, schema={"ts": pl.Datetime("us", "UTC")})
    assert frame.select(period_expr(pl.col("ts")))["ts"].to_list() == want
    assert frame.select(period_expr(pl.col("ts").dt.replace_time_zone(None)))["ts"] \
        .to_list() == want


# -- One call -------------------------------------------------------------------------------------

def test_a_peak_hour_call_costs_the_peak_price_worked_by_hand():
    # deepseek-v4-pro from 2026-08-17, USD per million tokens: 0.66 input, 0.022 cache read,
    # 1.98 output; from 01:00 to 04:00 and 06:00 to 10:00 UTC twice that: 1.32, 0.044, 3.96.
    # 1000 input (250 cached), 300 output.
    peak = (750 * 1.32 + 250 * 0.044 + 300 * 3.96) / 1e6
    off = (750 * 0.66 + 250 * 0.022 + 300 * 1.98) / 1e6
    cost = [request_cost("deepseek", "deepseek-v4-pro", t, 1000, 250, 0, 300, overrides={})
            for t in (at(2), at(12), at(9, 59), at(10), at(0, 59))]
    assert cost == pytest.approx([peak, off, peak, off, off], rel=1e-12)
    # deepseek-chat: 0.27 input, 0.07 cache read, 1.1 output from 00:30 to 16:30; half outside
    chat = [request_cost("deepseek", "deepseek-chat", t, 1000, 0, 0, 1000, overrides={})
            for t in (at(12), at(17), at(0, 15), at(0, 30))]
    assert chat == pytest.approx([1.37e-3, 0.685e-3, 0.685e-3, 1.37e-3], rel=1e-12)


@pytest.mark.parametrize("ts", TIMES, ids=lambda t: t.strftime("%H:%M:%S.%f"))
@pytest.mark.parametrize("provider, model", MODELS)
def test_request_cost_is_genai_prices_at_the_call_time(provider, model, ts):
    assert request_cost(provider, model, ts, 4000, 1000, 0, 700, overrides={}) == \
        pytest.approx(published(provider, model, ts, 4000, 1000, 0, 700), rel=1e-12)


def test_an_override_applies_at_every_time_of_day():
    o = pricing.Override("deepseek", "deepseek-v4-pro", input_per_mtok=1.0, output_per_mtok=2.0)
    overrides = {("deepseek", "deepseek-v4-pro"): o}
    assert [request_cost("deepseek", "deepseek-v4-pro", t, 1000, 0, 0, 1000,
                         overrides=overrides) for t in TIMES] == pytest.approx([3e-3] * len(TIMES))
    assert price_frame(_frame(GRID[:12]), overrides=overrides).to_list() == pytest.approx([
        (r["input_tokens"] * 1.0 + r["output_tokens"] * 2.0) / 1e6
        if r["model"] == "deepseek-v4-pro" and r["provider"] == "deepseek" else _expected(r)
        for r in GRID[:12]], rel=1e-12)


# -- Frames and tables ----------------------------------------------------------------------------

def _frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        [{k: r[k] for k in ("ts", "provider", "model", "input_tokens", "cached_input_tokens",
                            "output_tokens")} | {"cache_write_tokens": 0} for r in rows],
        schema={"ts": pl.Datetime("us", "UTC"), "provider": pl.String, "model": pl.String,
                "input_tokens": pl.Int64, "cached_input_tokens": pl.Int64,
                "output_tokens": pl.Int64, "cache_write_tokens": pl.Int64})


def test_price_frame_prices_each_row_at_its_time():
    got = price_frame(_frame(GRID), overrides={}).to_list()
    assert got == pytest.approx([_expected(r) for r in GRID], rel=1e-12)
    # priced at noon (as before), 23 rows would differ: v4-pro's (twice) and v4-flash's at the
    # 5 peak times, chat's and reasoner's at the 4 times outside 00:30-16:30
    noon = [published(r["provider"], r["model"], at(12), r["input_tokens"],
                      r["cached_input_tokens"], 0, r["output_tokens"]) for r in GRID]
    assert sum(abs(a - b) > 1e-15 for a, b in zip(got, noon, strict=True)) == 23


def test_price_table_prices_each_row_at_its_time():
    rows = [make_request(r["i"], ts=r["ts"], provider=r["provider"], model=r["model"],
                         input_tokens=r["input_tokens"],
                         cached_input_tokens=r["cached_input_tokens"],
                         output_tokens=r["output_tokens"], cost_usd=None) for r in GRID]
    got = price_table(requests_table(rows), overrides={}).column("cost_usd").to_pylist()
    assert got == pytest.approx([_expected(r) for r in GRID], rel=1e-12)


def test_cache_savings_are_at_the_prices_of_the_time():
    got = cache_savings_frame(_frame(GRID), overrides={}).to_list()
    want = [published(r["provider"], r["model"], r["ts"], r["input_tokens"], 0, 0,
                      r["output_tokens"]) - _expected(r) for r in GRID]
    assert got == pytest.approx(want, rel=1e-9, abs=1e-15)
    one = GRID[0]
    assert request_cache_savings(one["provider"], one["model"], at(2), 250, overrides={},
                                 input_tokens=1000) == pytest.approx(250 * (1.32 - 0.044) / 1e6)
    assert request_cache_savings("deepseek", "deepseek-v4-pro", at(12), 250, overrides={}
                                 ) == pytest.approx(250 * (0.66 - 0.022) / 1e6)


# -- Ingest, reprice and the Cost page ------------------------------------------------------------

def _lines(rows: list[dict]) -> list[dict]:
    return [canonical_request(r["i"], ts=r["ts"].isoformat(), provider=r["provider"],
                              model=r["model"], input_tokens=r["input_tokens"],
                              cached_input_tokens=r["cached_input_tokens"],
                              output_tokens=r["output_tokens"]) for r in rows]


def _stored_costs(lake: Lake) -> dict[str, float]:
    eng = Engine(lake)
    try:
        return dict(eng.query("SELECT request_id, cost_usd FROM requests").rows())
    finally:
        eng.close()


def _want() -> dict[str, float]:
    return {f"r{r['i']}": _expected(r) for r in GRID}


@pytest.mark.parametrize("path", ["fast", "exact-sql", "exact-arrow"])
def test_each_ingest_path_prices_each_row_at_its_time(tmp_path, monkeypatch, path):
    monkeypatch.setenv("SIGHTLINE_PRICES", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("models: []\n")
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "1")
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", "0" if path == "exact-arrow" else "1")
    lines = _lines(GRID) + ([] if path == "fast" else [{"request_id": "bad"}])
    src = tmp_path / "in" / "calls.jsonl"
    src.parent.mkdir()
    src.write_bytes(jsonl_bytes(lines))
    lake = Lake(tmp_path / "store")
    f = ingest_paths(lake, [str(src)], compact_min_files=0).files[0]
    assert (fastpath.LAST["outcome"] == "fast") == (path == "fast")
    assert f.stored == {"requests": len(GRID)}
    got = _stored_costs(lake)
    want = _want()
    assert got.keys() == want.keys()
    assert [got[k] for k in want] == pytest.approx(list(want.values()), rel=1e-12)


def test_the_fast_path_of_a_file_without_timed_models_prices_by_day(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "1")
    rows = [r for r in GRID if not pricing.priced_by_time_of_day(r["provider"], r["model"])]
    src = tmp_path / "plain.jsonl"
    src.write_bytes(jsonl_bytes(_lines(rows)))
    lake = Lake(tmp_path / "store")
    ingest_paths(lake, [str(src)], compact_min_files=0, overrides={})
    assert fastpath.LAST["outcome"] == "fast"
    got = _stored_costs(lake)
    assert [got[f"r{r['i']}"] for r in rows] == pytest.approx([_expected(r) for r in rows],
                                                              rel=1e-12)


def test_reprice_moves_costs_stored_at_noon_to_the_time_of_the_call(lake):
    # costs as the engine stored them before (each call priced at its day's noon)
    at_noon = price_frame(_frame([{**r, "ts": at(12)} for r in GRID]), overrides={}).to_list()
    noon = [make_request(r["i"], ts=r["ts"], provider=r["provider"], model=r["model"],
                         input_tokens=r["input_tokens"],
                         cached_input_tokens=r["cached_input_tokens"],
                         output_tokens=r["output_tokens"], cost_usd=c)
            for r, c in zip(GRID, at_noon, strict=True)]
    lake.append({"requests": requests_table(noon)}, source="t")
    doc = reprice(lake, overrides={})
    assert doc["after_usd"] == pytest.approx(sum(_want().values()), rel=1e-12)
    assert doc["changed_rows"] == 23  # as counted in test_price_frame_prices_each_row_at_its_time
    got = _stored_costs(lake)
    assert [got[k] for k in _want()] == pytest.approx(list(_want().values()), rel=1e-12)
    assert reprice(lake, overrides={})["changed_rows"] == 0


@pytest.fixture
def priced_lake(lake, tmp_path, monkeypatch):
    """The grid stored with its correct costs, and no price overrides."""
    monkeypatch.setenv("SIGHTLINE_PRICES", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("models: []\n")
    rows = [make_request(r["i"], ts=r["ts"], provider=r["provider"], model=r["model"],
                         input_tokens=r["input_tokens"],
                         cached_input_tokens=r["cached_input_tokens"],
                         output_tokens=r["output_tokens"], reasoning_tokens=0,
                         cost_usd=_expected(r)) for r in GRID]
    lake.append({"requests": requests_table(rows)}, source="t")
    return lake


def _window() -> Filters:
    return Filters.between(DAY, DAY + timedelta(days=1))


def test_the_cost_page_totals_add_up_each_call_at_its_time(priced_lake):
    savings = sum(published(r["provider"], r["model"], r["ts"], r["input_tokens"], 0, 0,
                            r["output_tokens"]) - _expected(r) for r in GRID)
    eng = Engine(priced_lake)
    try:
        assert cache_savings_sql(eng) == pytest.approx(savings, rel=1e-9)
        cost_metrics._PER_MODEL_DAY.clear()
        assert cost_metrics.cache_savings(eng, _window()) == pytest.approx(savings, rel=1e-9)
        # the token mix prices each kind of token at the call's unit prices: for these linear
        # prices its costs add up to what the calls cost
        mix = cost_metrics.token_mix(eng, _window())
        assert mix["cost_usd"].sum() == pytest.approx(sum(_want().values()), rel=1e-9)
        # gpt-4o's calls moved to deepseek-v4-pro cost v4-pro's price at their own times
        whatif = cost_metrics.what_if(eng, _window(), "deepseek", "deepseek-v4-pro")
        gpt = [r for r in GRID if r["model"] == "gpt-4o"]
        row = whatif.filter(pl.col("model") == "gpt-4o").row(0, named=True)
        assert row["whatif_cost_usd"] == pytest.approx(sum(
            published("deepseek", "deepseek-v4-pro", r["ts"], r["input_tokens"],
                      r["cached_input_tokens"], 0, r["output_tokens"]) for r in gpt), rel=1e-9)
    finally:
        eng.close()
