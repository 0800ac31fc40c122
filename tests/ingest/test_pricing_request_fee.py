"""A price per request on top of the per-token prices (genai-prices' ``requests_kcount``:
Perplexity's sonar models, $12 per thousand calls with $1 per million tokens). Found in review:
the per-token prices were measured with the fee in them, so sonar's input came out at $13 per
million tokens, every call with many tokens cost several times its price and one with few cost
a fraction of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from lib import pricing
from lib.filters import Filters
from lib.ingest.pipeline import ingest_paths
from lib.metrics import cost
from lib.pricing import price_frame, request_cost, unit_prices
from lib.store import Engine
from tests.conftest import T0, make_request, requests_table
from tests.ingest.conftest import INGEST_PATHS, canonical_request, ingest_on_path, jsonl_bytes

WHEN = datetime(2026, 3, 2, 12, tzinfo=UTC)


def sonar_usd(input_tokens: int, output_tokens: int) -> float:
    """Perplexity's published sonar price, by hand: $1 per million input and output tokens, and
    $12 per thousand requests (genai-prices 0.2.3's catalogue)."""
    return (input_tokens + output_tokens) * 1 / 1e6 + 12 / 1000


# (many tokens: the fee counted per token made this one 8.4x its price; few: 0.16x; none: $0)
MIXES = [(20_000, 2_000), (1_000, 500), (100, 50), (0, 0)]


@pytest.mark.parametrize("input_tokens, output_tokens", MIXES)
def test_a_call_costs_its_tokens_plus_the_fee(input_tokens, output_tokens):
    want = sonar_usd(input_tokens, output_tokens)
    assert request_cost("perplexity", "sonar", WHEN, input_tokens, 0, 0, output_tokens,
                        overrides={}) == pytest.approx(want)
    frame = requests_table([make_request(0, provider="perplexity", model="sonar", ts=WHEN,
                                         input_tokens=input_tokens, output_tokens=output_tokens)])
    assert price_frame(pl.from_arrow(frame), overrides={}).to_list() == [pytest.approx(want)]


def test_the_unit_prices_are_the_tokens_and_the_fee_apart():
    u = unit_prices("perplexity", "sonar", WHEN, overrides={})
    assert u["input"] == pytest.approx(1e-6) and u["output"] == pytest.approx(1e-6)
    assert u["request"] == pytest.approx(0.012)
    # a model without a fee has none
    assert unit_prices("openai", "gpt-4o", WHEN, overrides={})["request"] == 0.0


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_every_ingest_path_stores_the_fee_once(path, lake, write, monkeypatch):
    rows = [canonical_request(k, request_id=f"s{k}", provider="perplexity", model="sonar",
                              input_tokens=i, output_tokens=o, ts=(WHEN + timedelta(minutes=k))
                              .isoformat())
            for k, (i, o) in enumerate(MIXES)]
    files = [write("a.jsonl", jsonl_bytes(rows[:2])), write("b.jsonl", jsonl_bytes(rows[2:]))]
    ingest_on_path(lake, files, path, monkeypatch)
    engine = Engine(lake)
    stored = dict(engine.query("SELECT request_id, cost_usd FROM requests").rows())
    engine.close()
    assert stored == {f"s{k}": pytest.approx(sonar_usd(i, o)) for k, (i, o) in enumerate(MIXES)}


def test_reprice_leaves_a_fee_priced_call_as_it_is(lake, write):
    path = write("a.jsonl", jsonl_bytes([canonical_request(
        0, provider="perplexity", model="sonar", input_tokens=20_000, output_tokens=2_000,
        ts=WHEN.isoformat())]))
    ingest_paths(lake, [str(path)])
    assert pricing.reprice(lake, overrides={})["changed_rows"] == 0


def test_what_if_on_a_model_with_a_fee_charges_it_per_request(lake, engine):
    lake.append({"requests": requests_table([make_request(i) for i in range(3)])}, source="t")
    engine.refresh(force=True)
    wi = cost.what_if(engine, Filters.between(T0, T0 + timedelta(hours=1)), "perplexity",
                      "sonar")
    # 3 calls of 1,000 input and 500 output tokens
    assert wi["whatif_cost_usd"].to_list() == [pytest.approx(3 * sonar_usd(1000, 500))]
