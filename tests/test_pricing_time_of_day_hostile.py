"""Hostile review of prices by time of day (commit 1ae7b13, lib/pricing.py "Price periods").

genai-prices prices deepseek-v4-pro, -v4-flash (and deepseek-flash) at twice their rates from
01:00 to 04:00 and from 06:00 to 10:00 UTC, and deepseek-chat and -reasoner at their standard
rates only from 00:30 to 16:30 UTC (half outside). These cases attack the edges: each bound and
the microsecond before it, written in other offsets, as naive text, as epoch numbers and with
more digits than a microsecond; DST folds and gaps; start dates crossed by an offset; dates
before 1970 and far ahead; the three ingest paths of canonical JSONL (fast, exact SQL, Arrow),
gzip, price contexts, price tiers, null providers and unknown models in one file; OTLP spans,
CSV and Parquet; price overrides at every hour; reprice after each path; the Cost page's cache
savings, token mix and what-if with the engine's session time zone changed; caches keyed on
moments.

Every expected value is independent of Sightline: genai-prices' ``calc_price`` called directly
with the call's own timestamp (``_calc``), or worked by hand from its published prices. Each
test's docstring says what is expected; those that failed on the reviewed code say so.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
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
from tests.test_pricing_time_of_day import DAY, _stored_costs, at

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
IST = timezone(timedelta(hours=5, minutes=30))
NST = timezone(-timedelta(hours=3, minutes=30))  # Newfoundland standard time
KATHMANDU = ZoneInfo("Asia/Kathmandu")  # +05:45
NEW_YORK = ZoneInfo("America/New_York")

TIMED = [("deepseek", "deepseek-v4-pro"), ("deepseek", "deepseek-v4-flash"),
         ("deepseek", "deepseek-chat"), (None, "deepseek-reasoner"),
         ("deepseek", "deepseek-flash"), ("azure", "deepseek-v4-pro"),
         ("deepseek", "DeepSeek-V4-Pro")]
PLAIN = [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), (None, "gpt-4o-mini")]


def _calc(provider, model, ts: datetime, i: int = 0, c: int = 0, w: int = 0, o: int = 0,
          context: dict | None = None) -> float | None:
    """genai-prices' price of one call made at ``ts``, asked directly; None if it has none."""
    try:
        calc = calc_price(Usage(input_tokens=i, cache_read_tokens=c, cache_write_tokens=w,
                                output_tokens=o), model, provider_id=provider,
                          genai_request_timestamp=ts, price_context=context)
    except LookupError:
        return None
    return float(Decimal(calc.total_price))


def _edges(day: datetime = DAY) -> list[datetime]:
    """Each bound of the snapshot (and midnight), the microsecond before and after it."""
    out = []
    for b in (0, *period_bounds()):
        t = day + timedelta(microseconds=b)
        out += [t - US, t, t + US]
    return out


def _close(got: dict, want: dict) -> list:
    """The keys whose values differ (None must match None; numbers to 1e-12 relative)."""
    return [(k, got.get(k), w) for k, w in want.items()
            if (got.get(k) is None) != (w is None)
            or (w is not None and abs(got[k] - w) > 1e-12 * max(abs(w), 1e-9))]


# -- One call, in Python --------------------------------------------------------------------------

@pytest.mark.parametrize("provider, model", TIMED + PLAIN[:1])
def test_each_bound_and_the_microsecond_either_side_in_any_offset_or_naive(provider, model):
    """request_cost and request_cache_savings of a call at each bound, one microsecond before
    and after, given as aware UTC, naive (UTC), +05:30, -03:30 and Asia/Kathmandu (+05:45), are
    genai-prices' own at that instant. Passed."""
    for t in _edges():
        want = _calc(provider, model, t, 4000, 1000, 0, 700)
        full = _calc(provider, model, t, 4000, 0, 0, 700)
        for written in (t, t.replace(tzinfo=None), t.astimezone(IST), t.astimezone(NST),
                        t.astimezone(KATHMANDU)):
            assert request_cost(provider, model, written, 4000, 1000, 0, 700, overrides={}
                                ) == pytest.approx(want, rel=1e-12), written
            assert request_cache_savings(provider, model, written, 1000, overrides={},
                                         input_tokens=4000, output_tokens=700
                                         ) == pytest.approx(full - want, rel=1e-9), written


def test_a_peak_bound_worked_by_hand_in_india_and_newfoundland():
    """deepseek-v4-pro (from 2026-08-17: 0.66 input, 1.98 output USD/MTok; 1.32 and 3.96 from
    01:00 to 04:00 UTC): 06:29:59.999999+05:30 is 00:59:59.999999 UTC (off-peak), 06:30+05:30
    is 01:00 UTC (peak), 00:29:59.999999-03:30 is 03:59:59.999999 UTC (peak), 00:30-03:30 is
    04:00 UTC (off-peak). deepseek-chat (0.27 / 1.1 from 00:30 to 16:30, half outside):
    13:00-03:30 is 16:30 UTC. 1000 input, 1000 output tokens. Passed."""
    d = date(2026, 11, 2)
    pro = [request_cost("deepseek", "deepseek-v4-pro", t, 1000, 0, 0, 1000, overrides={}) for t in (
        datetime.combine(d, time(6, 29, 59, 999_999), IST), datetime.combine(d, time(6, 30), IST),
        datetime.combine(d, time(0, 29, 59, 999_999), NST), datetime.combine(d, time(0, 30), NST))]
    assert pro == pytest.approx([2.64e-3, 5.28e-3, 5.28e-3, 2.64e-3], rel=1e-12)
    chat = [request_cost("deepseek", "deepseek-chat", t, 1000, 0, 0, 1000, overrides={}) for t in (
        datetime.combine(d, time(12, 59, 59, 999_999), NST), datetime.combine(d, time(13), NST))]
    assert chat == pytest.approx([1.37e-3, 0.685e-3], rel=1e-12)


def test_dst_folds_and_gaps_are_priced_at_their_utc_instant():
    """America/New_York 2026-11-01 01:30 happens twice: fold 0 is 05:30 UTC (v4-pro off-peak),
    fold 1 is 06:30 UTC (peak); 2026-03-08 02:30 does not exist (zoneinfo reads it as 07:30
    UTC, peak). Europe/London's 2026-10-25 01:29:59.999999 (fold 0) is 00:29:59.999999 UTC
    (deepseek-chat off-peak), its 01:30 (fold 1) is 01:30 UTC (peak for v4-pro). Each is
    genai-prices' price at the same instant, in request_cost and in a Polars frame whose ts
    column has the zone. Passed."""
    london = ZoneInfo("Europe/London")
    times = [datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK, fold=0),
             datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK, fold=1),
             datetime(2026, 3, 8, 2, 30, tzinfo=NEW_YORK),
             datetime(2026, 10, 25, 1, 29, 59, 999_999, tzinfo=london, fold=0),
             datetime(2026, 10, 25, 0, 29, 59, 999_999, tzinfo=london, fold=0),
             datetime(2026, 10, 25, 1, 30, tzinfo=london, fold=1)]
    rows = [(t, p, m) for t in times for p, m in TIMED[:4]]
    want = [_calc(p, m, t, 1000, 100, 0, 500) for t, p, m in rows]
    assert [request_cost(p, m, t, 1000, 100, 0, 500, overrides={}) for t, p, m in rows] == \
        pytest.approx(want, rel=1e-12)
    assert want[0] != want[4]  # the two folds of New York's 01:30 differ for deepseek-v4-pro
    frame = pl.DataFrame({
        "ts": [t.astimezone(UTC) for t, _, _ in rows], "provider": [p for _, p, _ in rows],
        "model": [m for _, _, m in rows], "input_tokens": [1000] * len(rows),
        "cached_input_tokens": [100] * len(rows), "cache_write_tokens": [0] * len(rows),
        "output_tokens": [500] * len(rows)},
        schema_overrides={"ts": pl.Datetime("us", "UTC")}
    ).with_columns(pl.col("ts").dt.convert_time_zone("America/New_York"))
    assert price_frame(frame, overrides={}).to_list() == pytest.approx(want, rel=1e-12)


def test_start_dates_crossed_by_an_offset_and_peak_hours_before_a_start_date():
    """deepseek-v4-pro's new prices start on 2026-08-17 (UTC): 2026-08-17T03:00+05:30 is
    2026-08-16 21:30 UTC, the old price (0.435 input, 0.87 output USD/MTok: 1000 + 1000 tokens
    = $1.305e-3 by hand), not the new one. Its peak prices (1.32 / 3.96) apply before the start
    date too, as genai-prices resolves them (2026-08-16 02:00 UTC: $5.28e-3). deepseek-v4-flash
    changes again on 2026-09-10. Everything as genai-prices at the instant, in request_cost and
    price_frame. Passed."""
    assert request_cost("deepseek", "deepseek-v4-pro", datetime(2026, 8, 17, 3, tzinfo=IST),
                        1000, 0, 0, 1000, overrides={}) == pytest.approx(1.305e-3, rel=1e-12)
    assert request_cost("deepseek", "deepseek-v4-pro", datetime(2026, 8, 16, 2, tzinfo=UTC),
                        1000, 0, 0, 1000, overrides={}) == pytest.approx(5.28e-3, rel=1e-12)
    times = []
    for d in (datetime(2026, 8, 17, tzinfo=UTC), datetime(2026, 9, 10, tzinfo=UTC)):
        for delta in (-timedelta(hours=3), -US, timedelta(0), timedelta(hours=1) - US,
                      timedelta(hours=1), timedelta(hours=6, minutes=30)):
            times.append((d + delta).astimezone(IST))
    rows = [(t, p, m) for t in times for p, m in TIMED[:2]]
    want = [_calc(p, m, t, 2000, 500, 0, 800) for t, p, m in rows]
    assert [request_cost(p, m, t, 2000, 500, 0, 800, overrides={}) for t, p, m in rows] == \
        pytest.approx(want, rel=1e-12)
    frame = pl.DataFrame({
        "ts": [t for t, _, _ in rows], "provider": [p for _, p, _ in rows],
        "model": [m for _, _, m in rows], "input_tokens": [2000] * len(rows),
        "cached_input_tokens": [500] * len(rows), "output_tokens": [800] * len(rows)},
        schema_overrides={"ts": pl.Datetime("us", "Asia/Kolkata")}
    ).with_columns(cache_write_tokens=pl.lit(0))
    assert price_frame(frame, overrides={}).to_list() == pytest.approx(want, rel=1e-12)


def test_before_1970_and_far_ahead_in_python_polars_and_duckdb():
    """Calls before 1970 (negative epochs: the time of day must still be counted from the UTC
    midnight before) and in 9999 are priced as genai-prices prices them at that instant, by
    request_cost, price_frame and cache_savings_frame; DuckDB's period_sql gives period_of for
    TIMESTAMP_S/_MS/_NS and TIMESTAMPTZ columns alike. Passed."""
    times = [datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(1969, 12, 31, 0, 29, 59,
             999_999, tzinfo=UTC), datetime(1900, 1, 1, 1, tzinfo=UTC),
             datetime(1900, 1, 1, 0, 59, 59, 999_999, tzinfo=UTC),
             datetime(9999, 12, 31, 9, 59, 59, 999_999, tzinfo=UTC),
             datetime(9999, 12, 31, 16, 30, tzinfo=UTC)]
    rows = [(t, p, m) for t in times for p, m in TIMED[:4] + PLAIN[:1]]
    want = [_calc(p, m, t, 3000, 1000, 0, 400) for t, p, m in rows]
    assert [request_cost(p, m, t, 3000, 1000, 0, 400, overrides={}) for t, p, m in rows] == \
        pytest.approx(want, rel=1e-12)
    frame = pl.DataFrame({
        "ts": [t for t, _, _ in rows], "provider": [p for _, p, _ in rows],
        "model": [m for _, _, m in rows], "input_tokens": [3000] * len(rows),
        "cached_input_tokens": [1000] * len(rows), "cache_write_tokens": [0] * len(rows),
        "output_tokens": [400] * len(rows)}, schema_overrides={"ts": pl.Datetime("us", "UTC")})
    assert price_frame(frame, overrides={}).to_list() == pytest.approx(want, rel=1e-12)
    full = [_calc(p, m, t, 3000, 0, 0, 400) for t, p, m in rows]
    assert cache_savings_frame(frame, overrides={}).to_list() == pytest.approx(
        [f - w for f, w in zip(full, want, strict=True)], rel=1e-9)
    stamps = [*times, *_edges()]
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'Asia/Kathmandu'")
        for kind in ("TIMESTAMPTZ", "TIMESTAMP", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP_S"):
            src = stamps if kind != "TIMESTAMP_S" else [t.replace(microsecond=0) for t in stamps]
            if kind == "TIMESTAMP_MS":
                src = [t.replace(microsecond=t.microsecond // 1000 * 1000) for t in stamps]
            if kind == "TIMESTAMP_NS":  # nanoseconds cannot reach year 9999
                src = [t for t in stamps if 1678 < t.year < 2262]
            cast = "x" if kind == "TIMESTAMPTZ" else f"CAST(x AT TIME ZONE 'UTC' AS {kind})"
            got = [r[0] for r in con.execute(
                f"SELECT {period_sql('t')} FROM (SELECT {cast} AS t, i FROM (SELECT "
                "unnest($t)::TIMESTAMPTZ AS x, generate_subscripts($t, 1) AS i)) ORDER BY i",
                {"t": src}).fetchall()]
            assert got == [period_of(t) for t in src], kind
    finally:
        con.close()


def test_a_date_column_in_a_frame_prices_like_a_date_at_its_noon():
    """A ``date`` stands for its noon UTC (request_cost, unit_prices and price_moment say so,
    and before 1ae7b13 price_frame read a Date column's day and priced it at noon). A frame
    whose ts column is a Date must then price deepseek-chat at its noon price, as
    request_cost(date) does: 1000 + 1000 tokens at 0.27 / 1.1 = $1.37e-3. FAILED on the
    reviewed code: price_frame's period_expr reads a Date as its midnight, 00:00 UTC, which is
    off-peak ($0.685e-3), so price_frame(Date) and request_cost(date) disagree (lib/pricing.py
    period_expr and price_frame's keyed frame)."""
    day = date(2026, 11, 2)
    frame = pl.DataFrame({"ts": [day], "provider": ["deepseek"], "model": ["deepseek-chat"],
                          "input_tokens": [1000], "cached_input_tokens": [0],
                          "cache_write_tokens": [0], "output_tokens": [1000]})
    assert request_cost("deepseek", "deepseek-chat", day, 1000, 0, 0, 1000, overrides={}) == \
        pytest.approx(1.37e-3, rel=1e-12)
    assert price_frame(frame, overrides={}).to_list() == pytest.approx([1.37e-3], rel=1e-12)


def test_caches_keep_a_date_noon_midnight_and_other_offsets_apart():
    """The memoized prices (pricing._catalog_cost, _linear_terms_at, cost._unit_cached) are keyed
    on moments: a date (its noon: deepseek-chat's standard price), its midnight (off-peak), the
    same instants in other offsets or naive, asked in either order after the caches are
    cleared, each give genai-prices' price at its own instant. Passed."""
    day = date(2026, 11, 2)
    midnight = datetime(2026, 11, 2, tzinfo=UTC)
    noon = _calc("deepseek", "deepseek-chat", datetime(2026, 11, 2, 12, tzinfo=UTC), 1000, 0, 0,
                 1000)
    night = _calc("deepseek", "deepseek-chat", midnight, 1000, 0, 0, 1000)
    assert noon == pytest.approx(1.37e-3) and night == pytest.approx(0.685e-3)
    asks = [(day, noon), (midnight, night), (midnight.replace(tzinfo=None), night),
            (midnight.astimezone(IST), night), (datetime(2026, 11, 2, 12, tzinfo=UTC), noon),
            (datetime(2026, 11, 1, 20, 30, tzinfo=NST), night)]
    for order in (asks, asks[::-1]):
        pricing._catalog_cost.cache_clear()
        pricing._linear_terms_at.cache_clear()
        cost_metrics._unit_cached.cache_clear()
        for when, want in order:
            assert request_cost("deepseek", "deepseek-chat", when, 1000, 0, 0, 1000,
                                overrides={}) == pytest.approx(want, rel=1e-12), when
            units = cost_metrics._unit("deepseek", "deepseek-chat", when)
            assert (units["input"] + units["output"]) * 1000 == pytest.approx(want, rel=1e-9)
            assert pricing.unit_prices("deepseek", "deepseek-chat", when, overrides={}) == units


# -- Ingest -----------------------------------------------------------------------------------

def _forms(t: datetime) -> list:
    """Ways a canonical line may write the instant ``t`` (all read as ``t``)."""
    us = (t - EPOCH) // US
    return [t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), t.astimezone(IST).isoformat(),
            t.astimezone(NST).isoformat(), t.strftime("%Y-%m-%d %H:%M:%S.%f"),  # naive: UTC
            us, str(us), t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "9Z",  # 7 digits: truncated
            t.astimezone(KATHMANDU).isoformat()]


MODELS_IN_FILE = [*TIMED, *PLAIN, ("x", "no-such-model"), ("deepseek", "deepseek-v3.2")]


def _hostile_rows(days: int = 2) -> list[dict]:
    """Every hour of ``days`` days, every bound and the microsecond before it, each written in
    turn in each of :func:`_forms`, for each of MODELS_IN_FILE; some rows in a price context
    (in attributes or at the top level), claude-sonnet-4-5 past its 200k tier every other time.
    Each row: the JSON ``line``, the instant ``t`` it stands for, its ``context``."""
    times = []
    for d in range(days):
        start = DAY + timedelta(days=d)
        times += [start + timedelta(hours=h, minutes=(7 * h) % 60, microseconds=h)
                  for h in range(24)]
        times += [start + timedelta(microseconds=b) - s
                  for b in (0, *period_bounds()) for s in (US, timedelta(0))]
    rows, n = [], 0
    for k, t in enumerate(times):
        written = _forms(t)[k % 8]
        for provider, model in MODELS_IN_FILE:
            inp = 300_000 if model == "claude-sonnet-4-5" and n % 2 else 1000 + 17 * n
            line = {"request_id": f"h{n}", "ts": written, "provider": provider, "model": model,
                    "input_tokens": inp, "cached_input_tokens": inp // 4,
                    "cache_write_tokens": 100 if provider == "anthropic" else 0,
                    "output_tokens": 200 + n % 50, "latency_ms": 1.0, "status": "ok",
                    "service": "api"}
            context = None
            if n % 5 == 0:
                context = {"processing": "batch"}
                line["attributes"] = {"processing": "batch", "team": "a"}
            elif n % 7 == 0:
                context = {"service_tier": "flex"}
                line["service_tier"] = "flex"  # top level: folded into attributes
            rows.append({"line": line, "t": t, "context": context})
            n += 1
    return rows


HOSTILE = _hostile_rows()


def _want_costs(rows: list[dict]) -> dict[str, float | None]:
    out = {}
    for r in rows:
        ln = r["line"]
        out[ln["request_id"]] = None if ln["model"] is None else _calc(
            ln["provider"], ln["model"], r["t"], ln["input_tokens"], ln["cached_input_tokens"],
            ln.get("cache_write_tokens", 0), ln["output_tokens"], r["context"])
    return out


def _ingest(tmp_path: Path, monkeypatch, path: str, lines: list[dict], gz: bool = False,
            name: str = "calls.jsonl", prices: str = "models: []\n"):
    """Ingest ``lines`` by ``path`` (fast: as they are; exact-sql / exact-arrow: with one bad
    line added, so the fast path cannot take the file); returns (lake, file report)."""
    (tmp_path / "prices.yaml").write_text(prices)
    monkeypatch.setenv("SIGHTLINE_PRICES", str(tmp_path / "prices.yaml"))
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "1")
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", "0" if path == "exact-arrow" else "1")
    data = "".join(json.dumps(x) + "\n" for x in
                   lines + ([] if path == "fast" else [{"request_id": "bad"}])).encode()
    src = tmp_path / "in" / (name + (".gz" if gz else ""))
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(gzip.compress(data) if gz else data)
    lake = Lake(tmp_path / "store")
    report = ingest_paths(lake, [str(src)], compact_min_files=0).files[0]
    assert (fastpath.LAST["outcome"] == "fast") == (path == "fast"), fastpath.LAST
    assert report.quarantined == (0 if path == "fast" else 1)
    return lake, report


def _stored(lake: Lake) -> dict[str, tuple]:
    eng = Engine(lake)
    try:
        return {r[0]: r[1:] for r in eng.query(
            "SELECT request_id, ts, cost_usd FROM requests").rows()}
    finally:
        eng.close()


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("path", ["fast", "exact-sql", "exact-arrow"])
def test_each_path_prices_a_hostile_file_as_genai_prices_and_reprice_changes_nothing(
        tmp_path, monkeypatch, path, gz):
    """A file of timed and untimed models over two days, every hour and every bound (and the
    microsecond before it), its times written with Z, +05:30, -03:30, +05:45, naive, as epoch
    microseconds (number and text) and with 7 fraction digits; rows in a batch or flex context
    (in attributes and at the top level), claude-sonnet-4-5 past its 200k tier, a null provider,
    an unknown model and an untimed deepseek model. On each path (plain and gzip): each row is
    stored at the instant it was written and costs what genai-prices says at that instant, the
    fast path takes the file (no fallback), and reprice then changes nothing. Passed."""
    lake, report = _ingest(tmp_path, monkeypatch, path, [r["line"] for r in HOSTILE], gz)
    assert report.stored == {"requests": len(HOSTILE)}
    stored = _stored(lake)
    assert {k: v[0] for k, v in stored.items()} == {
        r["line"]["request_id"]: r["t"] for r in HOSTILE}
    assert _close({k: v[1] for k, v in stored.items()}, _want_costs(HOSTILE)) == []
    doc = reprice(lake, overrides={}, dry_run=True)
    assert doc["rows"] == len(HOSTILE) and doc["changed_rows"] == 0


def test_a_file_of_only_timed_models_every_hour_stays_on_the_fast_path(tmp_path, monkeypatch):
    """Only models priced by the time of day, every 20 minutes for two days (one line each at
    a random microsecond of the slot): the fast path takes it and prices each row as
    genai-prices does at its time. Passed."""
    rows = []
    for k in range(2 * 72):
        t = DAY + timedelta(minutes=20 * k, microseconds=(k * 7919) % 1_000_000)
        for provider, model in TIMED:
            n = len(rows)
            rows.append({"line": {"request_id": f"t{n}", "ts": t.isoformat(),
                                  "provider": provider, "model": model, "input_tokens": 500 + n,
                                  "cached_input_tokens": n % 300, "output_tokens": 100 + n},
                         "t": t, "context": None})
    lake, _ = _ingest(tmp_path, monkeypatch, "fast", [r["line"] for r in rows])
    assert _close({k: v[1] for k, v in _stored(lake).items()}, _want_costs(rows)) == []


def test_a_file_without_timed_models_with_contexts_and_tiers_on_the_fast_path(
        tmp_path, monkeypatch):
    """No model of the file is priced by the time of day (so the fast path joins by day), but
    rows have price contexts and rows are past claude-sonnet-4-5's tier, at every hour of two
    days, some written in +05:30 (their UTC day differs from the written one): fast, and each
    row as genai-prices prices it. Passed."""
    rows = [r for r in HOSTILE if (r["line"]["provider"], r["line"]["model"]) in PLAIN]
    lake, _ = _ingest(tmp_path, monkeypatch, "fast", [r["line"] for r in rows])
    assert _close({k: v[1] for k, v in _stored(lake).items()}, _want_costs(rows)) == []


OVERRIDES_YAML = """\
models:
  - provider: deepseek
    model: deepseek-v4-pro
    input_per_mtok: 1.0
    cached_input_per_mtok: 0.5
    output_per_mtok: 2.0
  - model: deepseek-chat
    input_per_mtok: 3.0
    output_per_mtok: 4.0
"""


def _by_override(ln: dict) -> float | None:
    """The cost of a line under OVERRIDES_YAML, worked by hand (None: not overridden)."""
    i, c, o = ln["input_tokens"], ln["cached_input_tokens"], ln["output_tokens"]
    model = (ln["model"] or "").lower()  # overrides match names without case
    if ln["provider"] == "deepseek" and model == "deepseek-v4-pro":
        return ((i - c) * 1.0 + c * 0.5 + o * 2.0) / 1e6
    if model == "deepseek-chat":
        return (i * 3.0 + o * 4.0) / 1e6  # cached input at the input price
    return None


@pytest.mark.parametrize("path", ["fast", "exact-sql", "exact-arrow"])
def test_an_override_of_timed_models_applies_at_every_hour_and_reprice_undoes_it(
        tmp_path, monkeypatch, path):
    """prices.yaml overrides deepseek-v4-pro (for provider deepseek) and deepseek-chat (any
    provider): their rows cost the override's price at every hour and bound (worked by hand),
    azure's deepseek-v4-pro and the other models genai-prices' price at their time; reprice with
    no overrides then changes exactly the overridden rows, to genai-prices' price at their
    time. Passed."""
    rows = HOSTILE[: len(MODELS_IN_FILE) * 60]
    lake, _ = _ingest(tmp_path, monkeypatch, path, [r["line"] for r in rows],
                      prices=OVERRIDES_YAML)
    catalogue = _want_costs(rows)
    want = {r["line"]["request_id"]: _by_override(r["line"]) for r in rows}
    overridden = {k for k, v in want.items() if v is not None}
    want = {k: catalogue[k] if k not in overridden else v for k, v in want.items()}
    assert len(overridden) == 3 * 60  # DeepSeek-V4-Pro too: overrides ignore case
    assert _close({k: v[1] for k, v in _stored(lake).items()}, want) == []
    doc = reprice(lake, overrides={})
    assert doc["changed_rows"] == len(overridden)
    assert _close(_stored_costs(lake), catalogue) == []


def _otlp_span(n: int, start_ns: int, system: str, model: str) -> dict:
    attrs = {"gen_ai.system": system, "gen_ai.operation.name": "chat",
             "gen_ai.request.model": model, "gen_ai.usage.input_tokens": 1000 + n,
             "gen_ai.usage.output_tokens": 300}
    return {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": f"{n + 1:016x}",
            "name": f"chat {model}", "kind": 3, "startTimeUnixNano": str(start_ns),
            "endTimeUnixNano": str(start_ns + 10**6), "status": {},
            "attributes": [{"key": k, "value": {"stringValue": v} if isinstance(v, str)
                            else {"intValue": str(v)}} for k, v in attrs.items()]}


def test_otlp_csv_and_parquet_files_are_priced_at_their_own_time(tmp_path, monkeypatch):
    """The formats priced by price_table: OTLP JSON spans whose start is a nanosecond before a
    bound (truncated to the microsecond before it, still before the bound) or on it; a CSV of
    +05:30 times; Parquet files whose ts is timestamp[ns, Asia/Kolkata], timestamp[ms] (naive:
    UTC) and timestamp[s, America/New_York]. Each request costs genai-prices' price at its
    stored time, and that time is the instant written. Passed."""
    monkeypatch.setenv("SIGHTLINE_PRICES", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("models: []\n")
    edges = [t for t in _edges() if t.microsecond != 1]  # bounds and the microsecond before
    models = [("deepseek", "deepseek-v4-pro"), ("deepseek", "deepseek-chat"),
              ("openai", "gpt-4o")]
    rows = [(t, p, m) for t in edges for p, m in models]
    files, want = {}, {}
    spans = []
    for n, (t, p, m) in enumerate(rows):
        ns = ((t - EPOCH) // US) * 1000 + (999 if t.microsecond == 999_999 else 0)
        spans.append(_otlp_span(n, ns, p, m))
        want[("otlp", f"{n + 1:016x}")] = (t, _calc(p, m, t, 1000 + n, 0, 0, 300))
    files["otlp"] = tmp_path / "spans.jsonl"
    files["otlp"].write_text(json.dumps({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"spans": spans}]}]}) + "\n")
    lines = ["request_id,ts,provider,model,input_tokens,cached_input_tokens,output_tokens"]
    for n, (t, p, m) in enumerate(rows):
        lines.append(f"c{n},{t.astimezone(IST).isoformat()},{p},{m},{2000 + n},{n},400")
        want[("csv", f"c{n}")] = (t, _calc(p, m, t, 2000 + n, n, 0, 400))
    files["csv"] = tmp_path / "calls.csv"
    files["csv"].write_text("\n".join(lines) + "\n")
    for unit, tz in (("ns", "Asia/Kolkata"), ("ms", None), ("s", "America/New_York")):
        keep = [(t, p, m) for t, p, m in rows
                if unit != "s" or t.microsecond == 0] if unit != "ms" else [
            (t.replace(microsecond=t.microsecond // 1000 * 1000), p, m) for t, p, m in rows]
        ids = [f"{unit}{n}" for n in range(len(keep))]
        ts = pa.array([t if tz else t.replace(tzinfo=None) for t, _, _ in keep],
                      pa.timestamp("us", tz="UTC" if tz else None)).cast(
            pa.timestamp(unit, tz=tz), safe=True)
        files[unit] = tmp_path / f"calls_{unit}.parquet"
        pq.write_table(pa.table({
            "request_id": ids, "ts": ts, "provider": [p for _, p, _ in keep],
            "model": [m for _, _, m in keep], "input_tokens": [3000] * len(keep),
            "cached_input_tokens": [1000] * len(keep), "output_tokens": [500] * len(keep)}),
            files[unit])
        for i, (t, p, m) in zip(ids, keep, strict=True):
            want[(unit, i)] = (t, _calc(p, m, t, 3000, 1000, 0, 500))
    for kind, src in files.items():
        lake = Lake(tmp_path / f"store_{kind}")
        f = ingest_paths(lake, [str(src)], compact_min_files=0).files[0]
        assert f.stored.get("requests") == len([k for k in want if k[0] == kind]), (kind, f)
        got = _stored(lake)
        mine = {k[1]: v for k, v in want.items() if k[0] == kind}
        assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in mine.items()}, kind
        assert _close({k: v[1] for k, v in got.items()},
                      {k: v[1] for k, v in mine.items()}) == [], kind


def test_price_table_of_a_table_in_another_zone_and_unit():
    """price_table of a canonical table whose rows were made in +05:30 prices each row at its
    instant (as the Arrow ingest path does), including the microsecond before each bound.
    Passed."""
    rows = [(t, p, m) for t in _edges() for p, m in TIMED[:4]]
    table = requests_table([make_request(n, ts=t.astimezone(IST), provider=p, model=m,
                                         input_tokens=1500, cached_input_tokens=500,
                                         output_tokens=250, cost_usd=None)
                            for n, (t, p, m) in enumerate(rows)])
    got = price_table(table, overrides={}).column("cost_usd").to_pylist()
    assert got == pytest.approx([_calc(p, m, t, 1500, 500, 0, 250) for t, p, m in rows],
                                rel=1e-12)


def test_litellm_routed_deepseek_calls_are_priced_as_genai_prices_prices_them():
    """genai-prices reads provider ``litellm`` with a model ``deepseek/deepseek-v4-pro`` as
    deepseek's deepseek-v4-pro (peak at 02:00 UTC: 1000 input tokens = $1.32e-3). Sightline
    should price it the same (its rule: price as genai-prices does). FAILED on the reviewed code
    (not from 1ae7b13: lib/pricing.py catalog_provider maps the unknown-to-the-catalogue id
    ``litellm`` to None, so the model is looked up alone and is unpriced)."""
    t = at(2)
    assert _calc("litellm", "deepseek/deepseek-v4-pro", t, 1000) == pytest.approx(1.32e-3)
    assert request_cost("litellm", "deepseek/deepseek-v4-pro", t, 1000, overrides={}) == \
        pytest.approx(1.32e-3, rel=1e-12)


# -- The Cost page ------------------------------------------------------------------------------

def _page_rows() -> list[dict]:
    """HOSTILE's rows of DAY as stored rows (with reasoning tokens for deepseek-reasoner)."""
    rows = []
    for r in HOSTILE:
        ln = r["line"]
        if not DAY <= r["t"] < DAY + timedelta(days=1):
            continue
        rows.append({**r, "reasoning": ln["output_tokens"] // 3
                     if ln["model"] == "deepseek-reasoner" else 0})
    return rows


@pytest.fixture
def page_lake(lake, tmp_path, monkeypatch):
    monkeypatch.setenv("SIGHTLINE_PRICES", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("models: []\n")
    want = _want_costs(_page_rows())
    stored = []
    for n, r in enumerate(_page_rows()):
        ln = r["line"]
        attrs = dict(ln.get("attributes") or {})
        if "service_tier" in ln:
            attrs["service_tier"] = ln["service_tier"]
        stored.append(make_request(
            n, request_id=ln["request_id"], ts=r["t"], provider=ln["provider"], model=ln["model"],
            input_tokens=ln["input_tokens"], cached_input_tokens=ln["cached_input_tokens"],
            cache_write_tokens=ln["cache_write_tokens"], output_tokens=ln["output_tokens"],
            reasoning_tokens=r["reasoning"], cost_usd=want[ln["request_id"]],
            attributes=json.dumps(attrs) if attrs else None))
    lake.append({"requests": requests_table(stored)}, source="t")
    return lake


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kathmandu", "America/St_Johns"])
def test_cost_page_metrics_are_at_each_calls_time_whatever_the_session_time_zone(page_lake,
                                                                                  zone):
    """With the engine's DuckDB time zone another (+05:45, -03:30; as on a machine whose local
    zone is not UTC: Engine's own SET TimeZone = 'UTC' does not reach its cursors), over a day of
    calls at every hour and bound (contexts, claude-sonnet-4-5 past its tier, null provider,
    unknown model): cache_savings_sql and the Cost page's cache_savings equal the sum over calls
    of genai-prices' price with no cached tokens minus its price; the token mix prices each kind
    of token at the call's own base-tier unit prices (from calc_price at the call's time); the
    what-if to deepseek-v4-pro and to deepseek-chat is the sum of genai-prices' price of each
    call's tokens on the target at the call's time, and a model re-priced on itself costs what
    it cost. Passed."""
    rows = _page_rows()
    savings = 0.0
    # (no call here writes to a one-hour cache)
    kinds = dict.fromkeys(("uncached_input", "cached_input", "cache_write", "cache_write_1h",
                           "output", "reasoning"), 0.0)
    whatif = {"deepseek-v4-pro": {}, "deepseek-chat": {}}
    for r in rows:
        ln, t, ctx = r["line"], r["t"], r["context"]
        p, m = ln["provider"], ln["model"]
        i, c, w, o = (ln["input_tokens"], ln["cached_input_tokens"], ln["cache_write_tokens"],
                      ln["output_tokens"])
        made = _calc(p, m, t, i, c, w, o, ctx)
        if made is not None and c:
            savings += _calc(p, m, t, i, 0, w, o, ctx) - made
        if made is not None:
            unit = {k: _calc(p, m, t, *mix, context=ctx) / 1000 for k, mix in (
                ("input", (1000,)), ("cached", (1000, 1000)), ("write", (1000, 0, 1000)),
                ("output", (0, 0, 0, 1000)))}
            kinds["uncached_input"] += max(i - c - w, 0) * unit["input"]
            kinds["cached_input"] += c * unit["cached"]
            kinds["cache_write"] += w * unit["write"]
            kinds["output"] += (o - r["reasoning"]) * unit["output"]
            kinds["reasoning"] += r["reasoning"] * unit["output"]
        for target, acc in whatif.items():
            acc[(p, m)] = acc.get((p, m), 0.0) + _calc("deepseek", target, t, i, c, w, o, ctx)
    window = Filters.between(DAY, DAY + timedelta(days=1))
    eng = Engine(page_lake)
    try:
        # GLOBAL: queries run on cursors, which do not see the connection's session settings
        eng.con.execute(f"SET GLOBAL TimeZone = '{zone}'")
        assert eng.scalar("SELECT current_setting('TimeZone')") == zone
        cost_metrics._PER_MODEL_DAY.clear()
        assert cache_savings_sql(eng) == pytest.approx(savings, rel=1e-9)
        assert cache_savings_sql(eng, window) == pytest.approx(savings, rel=1e-9)
        assert cost_metrics.cache_savings(eng, window) == pytest.approx(savings, rel=1e-9)
        mix = cost_metrics.token_mix(eng, window)
        assert dict(zip(mix["kind"], mix["cost_usd"], strict=True)) == pytest.approx(
            kinds, rel=1e-9)
        for target, acc in whatif.items():
            frame = cost_metrics.what_if(eng, window, "deepseek", target)
            got = {(r["provider"], r["model"]): r["whatif_cost_usd"]
                   for r in frame.iter_rows(named=True)}
            assert got == pytest.approx(acc, rel=1e-9), target
            same = frame.filter((pl.col("provider") == "deepseek") & (pl.col("model") == target))
            assert same["whatif_cost_usd"][0] == pytest.approx(same["cost_usd"][0], rel=1e-9)
    finally:
        eng.close()
