"""The price context (lib/pricing.py, design §5): a request's ``attributes.processing`` ("batch")
and ``attributes.service_tier`` ("flex", "priority", …) select genai-prices' price variants, on
every path that prices (request_cost, the vectorized frames, the ingest paths, reprice, cache
savings); a request without context is priced exactly as before.

Expected costs are worked out here from genai-prices' published per-token prices (read from the
package's data, or written out by hand from it with a comment), never from the engine itself.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import get_snapshot

from lib import pricing
from lib.cli import main
from lib.ingest import fastpath
from lib.ingest.pipeline import ingest_paths
from lib.pricing import (
    Override,
    cache_savings_frame,
    cache_savings_sql,
    context_key,
    price_frame,
    price_table,
    reprice,
    request_cache_savings,
    request_cost,
    unit_prices,
)
from lib.store import Engine, Lake
from tests.conftest import make_request, requests_table
from tests.ingest.conftest import canonical_request, jsonl_bytes, stored_rows

MTOK = 1_000_000
# The batch and tier variants of the bundled genai-prices start on 2026-10-12 / 2026-10-14
# (its "batch history before then is not modelled"): requests of a later day get them.
DAY = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
BEFORE_VARIANTS = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

# genai-prices' claude-haiku-4-5 (anthropic), USD per million tokens: standard input 1, output
# 5, cache read 0.1, cache write 1.25; its when={'processing': 'batch'} variant 0.5, 2.5, 0.05,
# 0.625: half of each.
HAIKU_STD = {"input": 1.0, "output": 5.0, "cached": 0.1, "write": 1.25}
HAIKU_BATCH = {"input": 0.5, "output": 2.5, "cached": 0.05, "write": 0.625, "write_1h": 1.0}


@pytest.fixture
def write(tmp_path):
    """write(name, rows_or_bytes) -> Path: a JSONL (or raw bytes) file in tmp_path."""

    def _write(name: str, content) -> Path:
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else jsonl_bytes(content))
        return path

    return _write


def _by_hand(prices: dict, input_tokens: int, cached: int = 0, write: int = 0,
             output: int = 0) -> float:
    return ((input_tokens - cached - write) * prices["input"] + cached * prices["cached"]
            + write * prices["write"] + output * prices["output"]) / MTOK


def _model(provider: str, model_id: str):
    prov = next(p for p in get_snapshot().providers if p.id == provider)
    return next(m for m in prov.models if m.id == model_id)


def _published(provider: str, model_id: str, when: dict | None, day: date) -> dict[str, Decimal]:
    """USD per million tokens of a model in the package's data: its standard (flat) prices, with
    those of the variant declared for ``when`` (if it has one, active on ``day``) over them."""
    m = _model(provider, model_id)
    std = m.prices if not isinstance(m.prices, list) else next(
        c.prices for c in reversed(m.prices)
        if c.constraint is None or c.constraint.start_date <= day)
    out = {k: v for k, v in vars(std).items() if isinstance(v, Decimal)}
    for v in m.price_variants or ():
        if when and v.when == when and (v.constraint is None or v.constraint.start_date <= day):
            out.update({k: p for k, p in vars(v.prices).items() if isinstance(p, Decimal)})
            break
    return out


def _cost_of(prices: dict[str, Decimal], input_tokens: int, cached: int = 0,
             output: int = 0) -> float:
    uncached = input_tokens - cached
    return float((uncached * prices["input_mtok"]
                  + cached * prices.get("cache_read_mtok", prices["input_mtok"])
                  + output * prices.get("output_mtok", Decimal(0))) / MTOK)


# -- genai-prices: how price_context selects a variant ---------------------------------------------
def test_genai_prices_selects_variants_by_exact_context_else_the_standard_price():
    def price(model, context, when=DAY, provider="anthropic"):
        return calc_price(Usage(input_tokens=1000, output_tokens=100), model,
                          provider_id=provider, genai_request_timestamp=when,
                          price_context=context).total_price

    std = price("claude-haiku-4-5", None)
    assert std == Decimal("0.0015")  # 1000 × $1 + 100 × $5 per M
    assert price("claude-haiku-4-5", {"processing": "batch"}) == std / 2
    # exact, case-sensitive values; anything else is the standard price
    assert price("claude-haiku-4-5", {"processing": "Batch"}) == std
    assert price("claude-haiku-4-5", {"processing": "bulk", "other": "x"}) == std
    # a variant that starts later does not apply before; a model without variants ignores it
    assert price("claude-haiku-4-5", {"processing": "batch"}, BEFORE_VARIANTS) == std
    assert price("claude-sonnet-4-20250514", {"processing": "batch"}) == \
        price("claude-sonnet-4-20250514", None)


def test_the_context_keys_and_values_are_those_genai_prices_declares():
    values = pricing.context_values()
    assert values["processing"] == ("batch",)
    assert {"flex", "priority", "default"} <= set(values["service_tier"])
    assert context_key({"processing": "BATCH", "service_tier": "flex", "region": "eu"}) == \
        "processing=batch;service_tier=flex"
    # unknown values, other types and other keys are no context
    assert context_key({"processing": "bulk", "service_tier": "scale"}) == ""
    assert context_key({"processing": True, "service_tier": 1, "batch": True}) == ""
    assert context_key(None) == context_key({}) == ""
    # attributes as stored (JSON text), and context keys as the engine passes them
    assert context_key('{"service_tier": "Priority"}') == "service_tier=priority"
    assert context_key("processing=batch") == "processing=batch"
    with pytest.raises(ValueError):
        context_key("processing=bulk")


# -- request_cost -------------------------------------------------------------------------------
def test_an_anthropic_batch_request_costs_exactly_half_the_standard_one():
    tokens = dict(input_tokens=12_000, cached_input_tokens=8_000, cache_write_tokens=1_000,
                  output_tokens=700)
    args = (tokens["input_tokens"], tokens["cached_input_tokens"],
            tokens["cache_write_tokens"], tokens["output_tokens"])
    std = request_cost("anthropic", "claude-haiku-4-5", DAY, overrides={}, **tokens)
    batch = request_cost("anthropic", "claude-haiku-4-5", DAY, overrides={},
                         context={"processing": "batch"}, **tokens)
    assert std == pytest.approx(_by_hand(HAIKU_STD, *args), rel=1e-12)
    assert batch == pytest.approx(_by_hand(HAIKU_BATCH, *args), rel=1e-12)
    assert batch == pytest.approx(std / 2, rel=1e-12)
    # the whole attributes object may be passed
    assert request_cost("anthropic", "claude-haiku-4-5", DAY, overrides={}, **tokens,
                        context={"processing": "batch", "custom_id": "c1"}) == batch


@pytest.mark.parametrize("tier", ["flex", "priority", "default", "FLEX"])
@pytest.mark.parametrize("model", ["gpt-5-mini", "o3", "gpt-5"])
def test_openai_service_tiers_cost_what_genai_prices_publishes(tier, model):
    prices = _published("openai", model, {"service_tier": tier.lower()}, DAY.date())
    want = _cost_of(prices, 5000, cached=1000, output=800)
    got = request_cost("openai", model, DAY, 5000, 1000, 0, 800, overrides={},
                       context={"service_tier": tier})
    assert got == pytest.approx(want, rel=1e-12)
    if tier.lower() == "default":
        assert got == request_cost("openai", model, DAY, 5000, 1000, 0, 800, overrides={})
    else:
        assert got != request_cost("openai", model, DAY, 5000, 1000, 0, 800, overrides={})


@pytest.mark.parametrize("context, model, when", [
    ({"service_tier": "scale"}, "gpt-5-mini", DAY),  # a tier no variant declares
    ({"service_tier": ""}, "gpt-5-mini", DAY),
    ({"service_tier": None}, "gpt-5-mini", DAY),
    ({"service_tier": "flex"}, "gpt-4o", DAY),  # gpt-4o has no flex variant
    ({"processing": "batch"}, "text-embedding-3-small", DAY),  # no batch variant
    ({"processing": "batch"}, "gpt-4o", BEFORE_VARIANTS),  # before its batch variant starts
    ({"service_tier": "flex"}, "gpt-5-mini", BEFORE_VARIANTS),
])
def test_an_unknown_or_inapplicable_context_falls_back_to_the_standard_price(context, model,
                                                                              when):
    std = _cost_of(_published("openai", model, None, when.date()), 3000, output=200)
    got = request_cost("openai", model, when, 3000, 0, 0, 200, overrides={}, context=context)
    assert got == pytest.approx(std, rel=1e-12)
    assert got == request_cost("openai", model, when, 3000, 0, 0, 200, overrides={})


def test_an_override_applies_whatever_the_context():
    o = {(None, "mine"): Override(None, "mine", input_per_mtok=2.0, output_per_mtok=4.0)}
    for context in (None, {"processing": "batch"}, {"service_tier": "flex"}):
        assert request_cost("p", "mine", DAY, 1000, 0, 0, 500, overrides=o,
                            context=context) == pytest.approx(0.004)


# -- rows without context: priced exactly as before ---------------------------------------------
def _rows(n: int = 400, seed: int = 3, contexts: bool = True) -> pl.DataFrame:
    """Requests over models with and without variants, flat and tiered (sonnet-4-5 and
    gemini-2.5-pro above 200k input tokens), in every context form."""
    rng = random.Random(seed)
    models = [("anthropic", "claude-haiku-4-5"), ("anthropic", "claude-sonnet-4-5"),
              ("openai", "gpt-5-mini"), ("openai", "gpt-4o"), ("google", "gemini-2.5-pro"),
              ("anthropic", "claude-sonnet-4-20250514"), ("openai", "no-such-model")]
    attrs = [None, '{"region": "eu"}', '{"processing": "batch"}', '{"service_tier": "flex"}',
             '{"service_tier": "priority", "x": [1]}', '{"service_tier": "scale"}',
             '{"processing": "BATCH", "service_tier": "default"}', '{"\\u0070rocessing": "batch"}']
    rows = []
    for i in range(n):
        provider, model = models[i % len(models)]
        inp = rng.choice([rng.randint(10, 5000), rng.randint(200_001, 400_000)])
        cached = rng.randint(0, inp // 2)
        rows.append({"provider": provider, "model": model,
                     "ts": DAY + timedelta(days=rng.randint(-30, 3), minutes=i),
                     "input_tokens": inp, "cached_input_tokens": cached,
                     "cache_write_tokens": rng.choice([0, inp // 4]),
                     "output_tokens": rng.randint(0, 3000),
                     "attributes": rng.choice(attrs) if contexts else rng.choice(attrs[:2])})
    return pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("us", "UTC")})


def test_rows_without_context_are_priced_bit_identically():
    df = _rows(contexts=False)
    plain = price_frame(df.drop("attributes"), overrides={})  # the frame as callers gave it
    assert price_frame(df, overrides={}).to_list() == plain.to_list()
    assert price_frame(df.with_columns(pl.lit("").alias("price_context")),
                       overrides={}).to_list() == plain.to_list()
    # the same rows among rows with context are priced the same
    mixed = pl.concat([df, _rows(seed=4)])
    assert price_frame(mixed, overrides={}).to_list()[:len(df)] == plain.to_list()
    # request_cost without context is genai-prices' price without price_context, bit for bit
    for r in df.head(60).iter_rows(named=True):
        got = request_cost(r["provider"], r["model"], r["ts"], r["input_tokens"],
                           r["cached_input_tokens"], r["cache_write_tokens"], r["output_tokens"],
                           overrides={}, context=r["attributes"])
        try:
            want = float(calc_price(
                Usage(input_tokens=r["input_tokens"], cache_read_tokens=r["cached_input_tokens"],
                      cache_write_tokens=r["cache_write_tokens"],
                      output_tokens=r["output_tokens"]),
                r["model"], provider_id=r["provider"],
                genai_request_timestamp=datetime.combine(r["ts"].date(), datetime.min.time(),
                                                         UTC) + timedelta(hours=12)
            ).total_price)
        except LookupError:
            want = None
        assert got == want


def test_the_vectorized_price_of_each_row_is_its_own_price_in_its_context():
    df = _rows()
    got = price_frame(df, overrides={}).to_list()
    want = [request_cost(r["provider"], r["model"], r["ts"], r["input_tokens"],
                         r["cached_input_tokens"], r["cache_write_tokens"], r["output_tokens"],
                         overrides={}, context=r["attributes"]) for r in df.iter_rows(named=True)]
    assert [g is None for g in got] == [w is None for w in want]
    assert [g for g in got if g is not None] == pytest.approx(
        [w for w in want if w is not None], rel=1e-12)
    keys = [context_key(a) for a in df["attributes"]]
    assert {"", "processing=batch", "service_tier=flex", "service_tier=priority",
            "processing=batch;service_tier=default"} <= set(keys)
    # tiered rows in batch context were priced, and at the batch variant's tier prices
    tiered = [(g, r) for g, r, k in zip(got, df.iter_rows(named=True), keys, strict=True)
              if r["model"] == "claude-sonnet-4-5" and r["input_tokens"] > 200_000
              and k == "processing=batch" and r["ts"].date() >= date(2026, 10, 14)]
    assert tiered
    for g, r in tiered:
        std = request_cost(r["provider"], r["model"], r["ts"], r["input_tokens"],
                           r["cached_input_tokens"], r["cache_write_tokens"],
                           r["output_tokens"], overrides={})
        assert g == pytest.approx(std / 2, rel=1e-9) or r["output_tokens"] > 0
        assert g < std


def test_price_table_prices_each_row_in_its_context():
    rows = [make_request(1, provider="anthropic", model="claude-haiku-4-5", ts=DAY,
                         input_tokens=2000, cached_input_tokens=500, output_tokens=100,
                         cost_usd=None),
            make_request(2, provider="anthropic", model="claude-haiku-4-5", ts=DAY,
                         input_tokens=2000, cached_input_tokens=500, output_tokens=100,
                         cost_usd=None, attributes='{"processing": "batch"}')]
    got = price_table(requests_table(rows), overrides={}).column("cost_usd").to_pylist()
    assert got == pytest.approx([_by_hand(HAIKU_STD, 2000, 500, 0, 100),
                                 _by_hand(HAIKU_BATCH, 2000, 500, 0, 100)], rel=1e-12)


# -- cache savings --------------------------------------------------------------------------------
def test_cache_savings_are_at_the_prices_of_the_context():
    # 1000 cached tokens of claude-haiku-4-5 save $1 − $0.1 per M at standard prices, and
    # $0.5 − $0.05 per M in a batch.
    df = pl.DataFrame({"provider": ["anthropic"] * 3, "model": ["claude-haiku-4-5"] * 3,
                       "ts": [DAY] * 3, "cached_input_tokens": [1000] * 3,
                       "attributes": [None, '{"processing": "batch"}', '{"service_tier": "x"}']})
    assert cache_savings_frame(df, overrides={}).to_list() == pytest.approx(
        [0.0009, 0.00045, 0.0009], rel=1e-12)
    assert request_cache_savings("anthropic", "claude-haiku-4-5", DAY, 1000, {},
                                 context={"processing": "batch"}) == pytest.approx(0.00045)
    units = unit_prices("anthropic", "claude-haiku-4-5", DAY.date(), {}, {"processing": "batch"})
    assert units == pytest.approx({k: HAIKU_BATCH[v] / MTOK for k, v in (
        ("input", "input"), ("cached_input", "cached"), ("cache_write", "write"),
        ("cache_write_1h", "write_1h"), ("output", "output"))} | {
        "web_search": pytest.approx(0.01), "request": 0.0}, rel=1e-12)  # ($10 per 1,000
    # searches, batch or not; no fee per request)


def test_cache_savings_sql_adds_up_each_context(lake):
    lake.append({"requests": requests_table([
        make_request(i, provider="anthropic", model="claude-haiku-4-5", ts=DAY,
                     input_tokens=3000, cached_input_tokens=1000, output_tokens=10,
                     attributes=a)
        for i, a in enumerate([None, '{"processing": "batch"}', '{"processing": "batch"}'])])},
        source="t")
    eng = Engine(lake)
    try:
        assert cache_savings_sql(eng) == pytest.approx(0.0009 + 2 * 0.00045, rel=1e-12)
    finally:
        eng.close()


# -- ingestion: the fast path (SQL) prices as the exact paths do ---------------------------------
def _context_rows() -> list[dict]:
    """Canonical requests with the context in every form a file may hold it."""
    forms = [
        {},
        {"attributes": {"region": "eu"}},
        {"attributes": {"processing": "batch"}},
        {"processing": "batch"},  # top level: folded into attributes
        {"service_tier": "flex"},
        {"attributes": {"service_tier": "priority"}, "service_tier": "flex"},  # top level wins
        {"attributes": {"service_tier": "Priority", "processing": "BATCH"}},
        {"attributes": {"service_tier": "scale"}},
        {"attributes": {"processing": None}, "service_tier": None},
        {"attributes": json.dumps({"processing": "batch"})},  # attributes as JSON text
    ]
    models = [("anthropic", "claude-haiku-4-5", 4000), ("openai", "gpt-5-mini", 3000),
              ("anthropic", "claude-sonnet-4-5", 250_000),  # past the 200k tier
              ("openai", "gpt-4o", 1200), ("self-hosted", "llama-3.1-8b-instruct", 900)]
    rows = []
    for i in range(len(forms) * len(models)):
        row = model_request(i, models)
        row.update(forms[(i // len(models)) % len(forms)])
        rows.append(row)
    return rows


def model_request(i: int, models: list[tuple[str, str, int]]) -> dict:
    """Request ``i`` of a grid of forms x ``models`` ((provider, model, input tokens)): the
    models in turn, ``i`` minutes after DAY, a quarter of the input cached, 300 output tokens."""
    provider, model, inp = models[i % len(models)]
    return canonical_request(i, ts=(DAY + timedelta(minutes=i)).isoformat(), provider=provider,
                             model=model, input_tokens=inp, cached_input_tokens=inp // 4,
                             output_tokens=300)


def _costs(lake: Lake) -> dict[str, float]:
    eng = Engine(lake)
    try:
        return dict(eng.query("SELECT request_id, cost_usd FROM requests").rows())
    finally:
        eng.close()


PRICES = {("self-hosted", "llama-3.1-8b-instruct"): Override(
    "self-hosted", "llama-3.1-8b-instruct", input_per_mtok=0.05, output_per_mtok=0.10)}


def test_the_fast_path_prices_each_row_in_its_context(tmp_path, write, monkeypatch):
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "1")
    lake = Lake(tmp_path / "fast")
    f = ingest_paths(lake, [str(write("ctx.jsonl", _context_rows()))], compact_min_files=0,
                     overrides=PRICES).files[0]
    assert fastpath.LAST["outcome"] == "fast" and f.stored == {"requests": 50}
    costs = _costs(lake)
    # by hand, claude-haiku-4-5 4000 input (1000 cached) + 300 output, standard and batch
    haiku = {i: costs[f"r{i}"] for i in range(0, 50, 5)}
    std, batch = (_by_hand(p, 4000, 1000, 0, 300) for p in (HAIKU_STD, HAIKU_BATCH))
    assert [haiku[i] for i in (0, 5, 10, 15, 30, 45)] == pytest.approx(
        [std, std, batch, batch, batch, batch], rel=1e-12)
    # gpt-5-mini flex (top level, and winning over the attributes'), priority, unknown
    flex = _cost_of(_published("openai", "gpt-5-mini", {"service_tier": "flex"}, DAY.date()),
                    3000, 750, 300)
    prio = _cost_of(_published("openai", "gpt-5-mini", {"service_tier": "priority"},
                               DAY.date()), 3000, 750, 300)
    plain = _cost_of(_published("openai", "gpt-5-mini", None, DAY.date()), 3000, 750, 300)
    assert [costs[f"r{i}"] for i in (21, 26, 31, 36, 41)] == pytest.approx(
        [flex, flex, prio, plain, plain], rel=1e-12)
    # an override applies whatever the context
    assert [costs[f"r{i}"] for i in range(4, 50, 5)] == pytest.approx(
        [(900 * 0.05 + 300 * 0.10) / MTOK] * 10, rel=1e-12)


def _priced_elsewhere(tmp_path, write, monkeypatch, sql: bool) -> dict[str, float]:
    """The costs of the same rows ingested by an exact path (a bad line makes the fast path give
    up): the SQL one for canonical JSONL, or the Arrow one every other format takes."""
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", "1" if sql else "0")
    lake = Lake(tmp_path / ("sql" if sql else "arrow"))
    path = write(f"ctx-{sql}.jsonl", _context_rows() + [{"request_id": "bad"}])
    f = ingest_paths(lake, [str(path)], compact_min_files=0, overrides=PRICES).files[0]
    assert fastpath.LAST["outcome"] != "fast"
    assert (f.stored, f.quarantined) == ({"requests": 50}, 1)
    return _costs(lake)


@pytest.mark.parametrize("sql", [True, False], ids=["exact-sql", "exact-arrow"])
def test_the_fast_path_prices_exactly_as_the_exact_path(tmp_path, write, monkeypatch, sql):
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "1")
    fast = Lake(tmp_path / "fast")
    ingest_paths(fast, [str(write("ctx.jsonl", _context_rows()))], compact_min_files=0,
                 overrides=PRICES)
    assert fastpath.LAST["outcome"] == "fast"
    exact = _priced_elsewhere(tmp_path, write, monkeypatch, sql)
    assert _costs(fast) == exact
    if sql:  # the whole rows too, lineage aside
        got = stored_rows(fast, "requests", ("batch_id", "ingested_at", "source_file"))
        want = stored_rows(Lake(tmp_path / "sql"), "requests",
                           ("batch_id", "ingested_at", "source_file"))
        assert got == want


# -- reprice --------------------------------------------------------------------------------------
def test_reprice_keeps_the_context_costs(lake, write, capsys, monkeypatch):
    monkeypatch.setenv("SIGHTLINE_PRICES", str(write("none.yaml", b"models: []\n")))
    path = write("ctx.jsonl", [r for r in _context_rows() if r["provider"] != "self-hosted"])
    assert main(["ingest", str(path), "--store", str(lake.root)]) == 0
    capsys.readouterr()
    assert main(["reprice", "--store", str(lake.root)]) == 0
    assert "changed 0 of 40 requests" in capsys.readouterr().out


def test_reprice_applies_the_context_to_costs_stored_without_it(lake):
    rows = [make_request(i, provider="anthropic", model="claude-haiku-4-5", ts=DAY,
                         input_tokens=2000, output_tokens=100, attributes=a,
                         cost_usd=_by_hand(HAIKU_STD, 2000, output=100))  # stored as standard
            for i, a in enumerate([None, '{"processing": "batch"}', '{"region": "eu"}',
                                   '{"service_tier": "flex"}', '{"processing": "batch"}'])]
    lake.append({"requests": requests_table(rows)}, source="t")
    doc = reprice(lake, overrides={})
    assert doc["changed_rows"] == 2  # the two batch rows
    assert doc["after_usd"] == pytest.approx(3 * _by_hand(HAIKU_STD, 2000, output=100)
                                             + 2 * _by_hand(HAIKU_BATCH, 2000, output=100))
    assert reprice(lake, overrides={})["changed_rows"] == 0
