"""A call answered from the application's own cache (``cache_hit``, design §3) costs $0: no
provider was called, whatever usage its log repeats of the answer it served (LiteLLM logs a hit
with the original response's tokens and a cost of 0). It was priced by those tokens, on every
ingest path and in the Cost page's token mix, what-if and cache savings."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from genai_prices import Usage, calc_price

from lib import pricing
from lib.filters import Filters
from lib.ingest.pipeline import ingest_paths
from lib.metrics import cost
from lib.store import Engine, Lake
from tests.conftest import T0, make_request, requests_table

CALL = dict(provider="openai", model="gpt-4o", input_tokens=10_000, cached_input_tokens=4_000,
            cache_write_tokens=0, output_tokens=1_000, reasoning_tokens=0)


def genai_prices_cost() -> float:
    """The call at genai-prices' own price (OpenAI's convention: cached tokens inside input)."""
    return float(calc_price(Usage(input_tokens=10_000, cache_read_tokens=4_000,
                                  output_tokens=1_000), "gpt-4o", provider_id="openai",
                            genai_request_timestamp=T0).total_price)


def _lines(path):
    rows = [{"request_id": "miss", "ts": T0.isoformat(), **CALL, "status": "ok"},
            {"request_id": "hit", "ts": (T0 + timedelta(minutes=1)).isoformat(), **CALL,
             "status": "ok", "cache_hit": True, "logged_cost_usd": 0.0},
            # a hit of a model no catalogue prices is no unpriced request either
            {"request_id": "hit-own-model", "ts": (T0 + timedelta(minutes=2)).isoformat(),
             **CALL, "model": "house-llm", "status": "ok", "cache_hit": True}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "exact path"])
def test_a_cache_hit_is_stored_at_no_cost_on_either_ingest_path(tmp_path, monkeypatch, fast):
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "1" if fast else "0")
    lake = Lake(tmp_path / "store")
    report = ingest_paths(lake, [str(_lines(tmp_path / "calls.jsonl"))], compact_min_files=0)
    assert report.files[0].stored == {"requests": 3}
    got = dict(Engine(lake).query(
        "SELECT request_id, cost_usd FROM requests").iter_rows())
    assert got["miss"] == pytest.approx(genai_prices_cost())
    assert got["hit"] == 0.0
    assert got["hit-own-model"] == 0.0  # (not null: nothing to price, nothing unpriced)


def test_reprice_keeps_a_cache_hit_at_no_cost(tmp_path):
    lake = Lake(tmp_path / "store")
    lake.append({"requests": requests_table([
        make_request(0, **CALL, cost_usd=1.0),
        make_request(1, **CALL, cost_usd=1.0, cache_hit=True)])}, source="t")
    pricing.reprice(lake, overrides={})
    got = dict(Engine(lake).query("SELECT request_id, cost_usd FROM requests").iter_rows())
    assert got == {"r0": pytest.approx(genai_prices_cost()), "r1": 0.0}


def test_the_token_mix_what_if_and_savings_leave_cache_hits_out(tmp_path):
    lake = Lake(tmp_path / "store")
    rows = [make_request(0, **CALL), make_request(1, **CALL, cache_hit=True)]
    lake.append({"requests": pricing.price_table(requests_table(rows), overrides={})},
                source="t")
    engine = Engine(lake)
    f = Filters.between(T0, T0 + timedelta(hours=1))
    spent = cost.totals(engine, f)["cost_usd"]
    assert spent == pytest.approx(genai_prices_cost())  # the one call a provider billed
    mix = cost.token_mix(engine, f)
    assert mix["cost_usd"].sum() == pytest.approx(spent)  # (it added to twice the spend)
    assert mix.filter(kind="cached_input")["tokens"].item() == 4_000
    # one call's cached tokens at the full input price minus the cached one ($2.50 / $1.25)
    assert cost.cache_savings(engine, f) == pytest.approx(4_000 * (2.50 - 1.25) / 1e6)
    assert pricing.cache_savings_sql(engine, f) == pytest.approx(4_000 * (2.50 - 1.25) / 1e6)
    whatif = cost.what_if(engine, f, "openai", "gpt-4o").row(0, named=True)
    assert whatif["requests"] == 1 and whatif["whatif_cost_usd"] == pytest.approx(spent)
