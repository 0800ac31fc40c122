"""Cost engine additions for ingestion: cache savings, unpriced models, reprice."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from lib.pricing import (
    Override,
    cache_savings_frame,
    price_table,
    reprice,
    request_cache_savings,
    request_cost,
    unpriced_models,
)
from lib.store import Engine
from tests.conftest import T0, make_request, requests_table


def test_cache_savings_is_full_input_price_minus_cached_price():
    # gpt-4o: $2.50 per M input tokens, $1.25 per M cached: 800 cached tokens save $0.001.
    df = pl.DataFrame({"provider": ["openai", "openai", "x"], "model": ["gpt-4o", "gpt-4o", "n"],
                       "ts": [T0] * 3, "cached_input_tokens": [0, 800, 800]})
    assert cache_savings_frame(df, overrides={}).to_list() == [0.0, 0.001, None]
    assert request_cache_savings("openai", "gpt-4o", date(2026, 3, 2), 800, {}) == 0.001


@pytest.mark.parametrize("provider, model, usd", [
    # Published prices: grok-4 $3 / $15 per M input / output tokens; gemini-2.0-flash $0.10 /
    # $0.40; gpt-4o $2.50 / $10. 1000 input and 100 output tokens each.
    ("x_ai", "grok-4", 0.0045),  # OpenTelemetry's provider names, unknown to genai-prices
    ("gcp.gen_ai", "gemini-2.0-flash", 0.00014),
    ("azure.ai.inference", "gpt-4o", 0.0035),
    ("xai", "grok-4", 0.0045),  # a name genai-prices knows
])
def test_a_provider_name_the_catalog_does_not_know_is_priced_by_model(provider, model, usd):
    assert request_cost(provider, model, date(2026, 3, 2), 1000, 0, 0, 100,
                        overrides={}) == pytest.approx(usd)


def test_a_known_provider_with_an_unknown_model_stays_unpriced():
    assert request_cost("openai", "acme-finetune-7", date(2026, 3, 2), 1000, 0, 0, 100,
                        overrides={}) is None


def test_cached_tokens_are_priced_once():
    t = requests_table([make_request(1, cached_input_tokens=0, cost_usd=None),
                        make_request(2, cached_input_tokens=800, cost_usd=None)])
    costs = price_table(t, overrides={}).column("cost_usd").to_pylist()
    assert [round(c, 9) for c in costs] == [0.0075, 0.0065]


def test_unpriced_models_are_listed_with_counts(lake):
    lake.append({"requests": requests_table([
        make_request(1, model="mystery", cost_usd=None),
        make_request(2, model="mystery", cost_usd=None),
        make_request(3, model="other", provider="p", cost_usd=None), make_request(4)])},
        source="t")
    got = unpriced_models(Engine(lake)).select("provider", "model", "requests").rows()
    assert got == [("openai", "mystery", 2), ("p", "other", 1)]


def test_reprice_recomputes_atomically_and_reports_the_difference(lake):
    lake.append({"requests": requests_table([make_request(1, cost_usd=1.0),
                                             make_request(2, model="mine", cost_usd=None)])},
                source="t")
    before = len(lake.commits())
    override = {(None, "mine"): Override(provider=None, model="mine", input_per_mtok=1.0,
                                         output_per_mtok=2.0)}
    dry = reprice(lake, overrides=override, dry_run=True)
    assert len(lake.commits()) == before and dry["changed_rows"] == 2
    doc = reprice(lake, overrides=override)
    assert {k: doc[k] for k in ("rows", "changed_rows", "unpriced_before", "unpriced_after")} == \
        {"rows": 2, "changed_rows": 2, "unpriced_before": 1, "unpriced_after": 0}
    assert round(doc["before_usd"], 6) == 1.0 and round(doc["after_usd"], 6) == 0.0095
    assert Engine(lake).query("SELECT round(sum(cost_usd), 6) FROM requests").row(0) == (0.0095,)
    assert reprice(lake, overrides=override)["changed_rows"] == 0
