"""Hostile cases for the cost engine (lib/pricing.py, ``python -m lib reprice``; issue #4).

Every expected cost is worked out independently: genai-prices' own ``calc_price`` called
directly with the token counts in its convention (its ``input_tokens`` is the total, cache reads
and writes included), or a number worked by hand from a prices.yaml written here. Never from
Sightline's own output.

The first group failed on the code the review was written against (found in review, fixed since:
each docstring says what is expected); the others passed, kept as regression tests. One more
finding, prices that depend on the time of day (deepseek's peak and off-peak rates), taken at
noon of the request's day, is fixed since and tested in tests/test_pricing_time_of_day.py.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from genai_prices import Usage, calc_price

from lib.cli import main
from lib.filters import Filters
from lib.ingest.pipeline import ingest_paths
from lib.metrics import cost
from lib.pricing import (
    Override,
    cache_savings_frame,
    cache_savings_sql,
    load_overrides,
    price_frame,
    price_table,
    reprice,
    request_cache_savings,
    request_cost,
    unpriced_models,
)
from lib.store import Engine, Lake
from tests.conftest import T0, make_request, requests_table, wait_for_marker
from tests.ingest.conftest import canonical_request, jsonl_bytes

REPO = Path(__file__).resolve().parents[1]
MTOK = 1_000_000


def _gp(provider: str | None, model: str, ts: datetime, input_tokens: int = 0, cached: int = 0,
        write: int = 0, output: int = 0) -> float:
    """genai-prices' own price of one call, called directly (the independent reference)."""
    return float(Decimal(calc_price(
        Usage(input_tokens=input_tokens, cache_read_tokens=cached, cache_write_tokens=write,
              output_tokens=output),
        model, provider_id=provider, genai_request_timestamp=ts).total_price))


def _yaml(tmp_path: Path, text: str, name: str = "prices.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _costs(lake: Lake) -> dict[str, float | None]:
    eng = Engine(lake)
    try:
        return dict(eng.query("SELECT request_id, cost_usd FROM requests").rows())
    finally:
        eng.close()


def _frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={
        "provider": pl.String, "model": pl.String, "ts": pl.Datetime("us", "UTC"),
        "input_tokens": pl.Int64, "cached_input_tokens": pl.Int64,
        "cache_write_tokens": pl.Int64, "output_tokens": pl.Int64})


# =================================================================================================
# Found in review, fixed
# =================================================================================================

# -- prices.yaml mistakes ------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "models:\n  - provider: x\n    model: [unclosed\n",                      # YAML syntax error
    "- {model: m, input_per_mtok: 1, output_per_mtok: 2}\n",                 # no `models:` key
    "models:\n  m: {input_per_mtok: 1, output_per_mtok: 2}\n",               # a mapping, not a list
    "models:\n  - m\n",                                                      # an item that is text
    "just some text\n",                                                      # not a mapping at all
], ids=["syntax-error", "top-level-list", "models-mapping", "item-text", "scalar-document"])
def test_a_malformed_prices_file_is_a_usage_error(tmp_path, lake, capsys, text):
    """A prices.yaml that is not valid YAML or not of the documented shape is reported as bad
    input: load_overrides raises ValueError (its documented contract: "Raises ValueError on a
    malformed file") and ``reprice --prices FILE`` exits 2 with a message naming the file,
    instead of a yaml.YAMLError / AttributeError traceback (exit 1, which means "a gate
    failed")."""
    lake.append({"requests": requests_table([make_request(1)])}, source="t")
    path = _yaml(tmp_path, text)
    with pytest.raises(ValueError):
        load_overrides(path)
    assert main(["reprice", "--store", str(lake.root), "--prices", str(path)]) == 2
    assert str(path) in capsys.readouterr().err


def test_a_prices_file_that_is_named_but_missing_is_an_error(tmp_path, lake, capsys,
                                                                    monkeypatch):
    """A prices file named explicitly (``reprice --prices FILE`` or ``$SIGHTLINE_PRICES``) that
    does not exist is an error (exit 2), not "no overrides": a typo in the path otherwise
    reprices every self-hosted and fine-tuned model to unpriced (or a negotiated rate back to list
    price) and commits it. Only the *default* prices.yaml may be absent."""
    rows = [make_request(1, provider="self-hosted", model="llama-3.1-8b-instruct",
                         cost_usd=(1000 * 0.05 + 500 * 0.10) / MTOK)]
    lake.append({"requests": requests_table(rows)}, source="t")
    before = len(lake.commits())
    missing = tmp_path / "prices-typo.yaml"
    assert main(["reprice", "--store", str(lake.root), "--prices", str(missing)]) == 2
    assert len(lake.commits()) == before
    assert list(_costs(lake).values()) == [pytest.approx((1000 * 0.05 + 500 * 0.10) / MTOK)]
    monkeypatch.setenv("SIGHTLINE_PRICES", str(missing))
    with pytest.raises(ValueError):
        load_overrides()


def test_a_model_listed_twice_is_rejected(tmp_path):
    """The same (provider, model) listed twice in prices.yaml is a mistake (an edit that added a
    new rate instead of changing the old one): load_overrides raises ValueError naming the model,
    rather than silently keeping whichever entry comes last."""
    path = _yaml(tmp_path, """\
        models:
          - {provider: self-hosted, model: llama-3.1-8b-instruct, input_per_mtok: 0.05,
             output_per_mtok: 0.10}
          - {provider: self-hosted, model: llama-3.1-8b-instruct, input_per_mtok: 5,
             output_per_mtok: 10}
        """)
    with pytest.raises(ValueError, match="llama-3.1-8b-instruct"):
        load_overrides(path)


@pytest.mark.parametrize("field, value", [
    ("input_per_mtok", "-0.5"), ("output_per_mtok", "-1"), ("cached_input_per_mtok", "-0.1"),
    ("cache_write_per_mtok", "-2"), ("input_per_mtok", ".nan"), ("output_per_mtok", ".inf"),
    ("input_per_mtok", "true"),
])
def test_a_negative_or_non_finite_price_is_rejected(tmp_path, field, value):
    """A price is a finite number >= 0: a negative price (a discount written as "-20%"), NaN,
    infinity or a YAML boolean is rejected with ValueError. Accepted, it gives negative or NaN
    costs that poison every total and the reprice report."""
    prices = {"input_per_mtok": "1", "output_per_mtok": "2", field: value}
    body = ", ".join(f"{k}: {v}" for k, v in prices.items())
    path = _yaml(tmp_path, f"models:\n  - {{model: m, {body}}}\n")
    with pytest.raises(ValueError):
        load_overrides(path)


@pytest.mark.parametrize("text", [
    # a typo: cached tokens silently priced at the full input price
    "models:\n  - {model: m, input_per_mtok: 1, output_per_mtok: 2, cached_input_per_mtk: 0.1}\n",
    # genai-prices' own field name, not Sightline's: silently ignored the same way
    "models:\n  - {model: m, input_per_mtok: 1, output_per_mtok: 2, cache_read_mtok: 0.1}\n",
    # `model:` instead of `models:` at the top: the whole file silently means "no overrides"
    "model:\n  - {model: m, input_per_mtok: 1, output_per_mtok: 2}\n",
], ids=["typo-in-field", "genai-prices-field-name", "typo-in-top-level-key"])
def test_unknown_keys_in_the_prices_file_are_rejected(tmp_path, text):
    """prices.yaml keys are a closed set (``models``; and per model ``provider``, ``model``,
    ``input_per_mtok``, ``output_per_mtok``, ``cached_input_per_mtok``,
    ``cache_write_per_mtok``): an unknown key is a typo whose price would silently not apply, so
    load_overrides raises ValueError naming it."""
    with pytest.raises(ValueError):
        load_overrides(_yaml(tmp_path, text))


@pytest.mark.parametrize("model", ["null", "''", "'  '"])
def test_an_override_without_a_model_name_is_rejected(tmp_path, model):
    """``model`` is required and non-empty: ``model: null`` is not an override for a model
    literally named "None", and an empty name is no model at all. load_overrides raises
    ValueError."""
    path = _yaml(tmp_path, f"models:\n  - {{model: {model}, input_per_mtok: 1, "
                           "output_per_mtok: 2}\n")
    with pytest.raises(ValueError):
        load_overrides(path)


def test_an_override_with_no_model_key_says_so_in_words(tmp_path):
    # a KeyError's text is the bare key: the message read "...override: 'model'" (review)
    path = _yaml(tmp_path, "models:\n  - {provider: openai, input_per_mtok: 1, "
                           "output_per_mtok: 2}\n")
    with pytest.raises(ValueError) as raised:
        load_overrides(path)
    assert str(raised.value) == (f"{path}: models[0] is not a valid price override: no model: "
                                 "each override names the model it prices")


@pytest.mark.parametrize("given, missing", [("input_per_mtok: 1", "output_per_mtok"),
                                             ("output_per_mtok: 2", "input_per_mtok")])
def test_an_override_missing_a_price_says_which(tmp_path, given, missing):
    path = _yaml(tmp_path, f"models:\n  - {{model: m, {given}}}\n")
    with pytest.raises(ValueError) as raised:
        load_overrides(path)
    assert str(raised.value) == (f"{path}: models[0] is not a valid price override: no "
                                 f"{missing}: an override without priced_as gives "
                                 "input_per_mtok and output_per_mtok")


def test_an_override_matches_provider_and_model_case_insensitively(tmp_path):
    """genai-prices matches provider and model case-insensitively ("OpenAI"/"GPT-4o" cost what
    "openai"/"gpt-4o" cost), so a negotiated rate for openai/gpt-4o in prices.yaml applies to
    requests logged as "OpenAI" or "GPT-4o" too. Otherwise one model is priced at two rates
    depending on which SDK or gateway logged it: silently at list price for some of its calls."""
    overrides = load_overrides(_yaml(tmp_path, """\
        models:
          - {provider: openai, model: gpt-4o, input_per_mtok: 1.0, output_per_mtok: 4.0}
        """))
    want = (1000 * 1.0 + 500 * 4.0) / MTOK
    assert request_cost("openai", "gpt-4o", T0, 1000, 0, 0, 500, overrides=overrides) == \
        pytest.approx(want)
    got = [request_cost(p, m, T0, 1000, 0, 0, 500, overrides=overrides)
           for p, m in [("OpenAI", "gpt-4o"), ("openai", "GPT-4o")]]
    assert got == pytest.approx([want, want])


def test_override_names_are_trimmed(tmp_path):
    """A name written with stray spaces in prices.yaml (" gpt-4o ", easy in a quoted YAML
    string) is the same name: the override applies to gpt-4o (or load_overrides rejects the
    name). Found in review: it silently matched nothing."""
    overrides = load_overrides(_yaml(tmp_path, """\
        models:
          - {provider: ' openai ', model: ' gpt-4o ', input_per_mtok: 1.0, output_per_mtok: 4.0}
        """))
    assert request_cost("openai", "gpt-4o", T0, 1000, 0, 0, 500, overrides=overrides) == \
        pytest.approx((1000 * 1.0 + 500 * 4.0) / MTOK)


# -- cache savings -------------------------------------------------------------------------------

def test_cache_savings_past_a_price_tier_are_at_the_tier_prices(lake, engine):
    """Found in review, fixed. Cache savings are "what the cached tokens would have cost at the
    full input price, minus what they cost" for that request. Past a price tier (claude-sonnet-4-5
    above 200k input tokens: $6 / $0.60 per M instead of $3 / $0.30) the request is billed at the
    tier's prices, so its savings are too: genai-prices' price of the same call with no cached
    tokens minus its price as made, here $1.35, not the base tier's $0.675 (what was counted).
    Per request, per frame row, and in both totals (the Cost page's and cache_savings_sql),
    beside a request below the tier, which saves at the base tier's prices."""
    ts = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    inp, cached, out = 300_000, 250_000, 1_000
    want = (_gp("anthropic", "claude-sonnet-4-5", ts, inp, 0, 0, out)
            - _gp("anthropic", "claude-sonnet-4-5", ts, inp, cached, 0, out))
    below = (_gp("anthropic", "claude-sonnet-4-5", ts, 20_000, 0, 0, out)
             - _gp("anthropic", "claude-sonnet-4-5", ts, 20_000, 10_000, 0, out))
    assert want == pytest.approx(1.35) and below == pytest.approx(10_000 * (3 - 0.3) / 1e6)
    rows = [{"provider": "anthropic", "model": "claude-sonnet-4-5", "ts": ts,
             "input_tokens": inp, "cached_input_tokens": cached, "cache_write_tokens": 0,
             "output_tokens": out},
            {"provider": "anthropic", "model": "claude-sonnet-4-5", "ts": ts,
             "input_tokens": 20_000, "cached_input_tokens": 10_000, "cache_write_tokens": 0,
             "output_tokens": out}]
    assert cache_savings_frame(_frame(rows), overrides={}).to_list() == \
        pytest.approx([want, below])
    assert request_cache_savings("anthropic", "claude-sonnet-4-5", ts, cached, {},
                                 input_tokens=inp, output_tokens=out) == pytest.approx(want)
    lake.append({"requests": requests_table([make_request(
        i, ts=ts, provider="anthropic", model="claude-sonnet-4-5", input_tokens=r["input_tokens"],
        cached_input_tokens=r["cached_input_tokens"], output_tokens=out, cost_usd=None)
        for i, r in enumerate(rows * 2)])}, source="t")  # each twice: one token mix, two rows
    engine.refresh(force=True)
    assert cache_savings_sql(engine) == pytest.approx(2 * (want + below))
    f = Filters.between(ts - timedelta(hours=1), ts + timedelta(hours=1))
    assert cost.cache_savings(engine, f) == pytest.approx(2 * (want + below))


# -- inconsistent token counts -------------------------------------------------------------------

def test_request_cost_and_price_frame_agree_on_cached_above_input():
    """A row whose cached_input_tokens exceed input_tokens (ingestion quarantines it, but the
    library prices what it is given: rows appended directly, older stores) is priced the same by
    request_cost and by price_frame (a number, or null for "cannot be priced"), never an
    exception from one and a number from the other. Found in review: request_cost raised
    genai-prices' ValueError, and so did price_frame (so reprice) when such a row was past a
    price tier. Both now give null: the counts contradict each other."""
    ts = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    rows = [{"provider": "openai", "model": "gpt-4o", "ts": ts, "input_tokens": 100,
             "cached_input_tokens": 800, "cache_write_tokens": 0, "output_tokens": 50},
            {"provider": "anthropic", "model": "claude-sonnet-4-5", "ts": ts,
             "input_tokens": 250_000, "cached_input_tokens": 300_000, "cache_write_tokens": 0,
             "output_tokens": 50}]
    framed = price_frame(_frame(rows), overrides={}).to_list()
    one = [request_cost(r["provider"], r["model"], ts, r["input_tokens"],
                        r["cached_input_tokens"], 0, r["output_tokens"], overrides={})
           for r in rows]
    assert one == framed


# =================================================================================================
# Hostile cases that pass (regression tests)
# =================================================================================================

def test_an_override_for_a_model_the_catalogue_knows_wins(tmp_path):
    """prices.yaml is applied before the catalogue (a negotiated gpt-4o rate), whatever the
    provider when none is given, and only for that exact model: not gpt-4o-mini, not the dated
    snapshot gpt-4o-2024-08-06 (those keep genai-prices' price)."""
    overrides = load_overrides(_yaml(tmp_path, """\
        models:
          - {model: gpt-4o, input_per_mtok: 2.0, cached_input_per_mtok: 0.5,
             output_per_mtok: 8.0}
        """))
    want = ((1000 - 400) * 2.0 + 400 * 0.5 + 500 * 8.0) / MTOK
    for provider in ("openai", "azure", None):
        assert request_cost(provider, "gpt-4o", T0, 1000, 400, 0, 500,
                            overrides=overrides) == pytest.approx(want)
    for model in ("gpt-4o-mini", "gpt-4o-2024-08-06"):
        assert request_cost("openai", model, T0, 1000, 400, 0, 500, overrides=overrides) == \
            pytest.approx(_gp("openai", model, T0, 1000, 400, 0, 500))


def test_a_provider_specific_override_beats_a_provider_free_one_and_does_not_leak(tmp_path):
    overrides = load_overrides(_yaml(tmp_path, """\
        models:
          - {model: gpt-4o, input_per_mtok: 2.0, output_per_mtok: 8.0}
          - {provider: azure, model: gpt-4o, input_per_mtok: 1.0, output_per_mtok: 4.0}
        """))
    assert request_cost("azure", "gpt-4o", T0, 1000, 0, 0, 500, overrides=overrides) == \
        pytest.approx((1000 * 1.0 + 500 * 4.0) / MTOK)
    assert request_cost("openai", "gpt-4o", T0, 1000, 0, 0, 500, overrides=overrides) == \
        pytest.approx((1000 * 2.0 + 500 * 8.0) / MTOK)


@pytest.mark.parametrize("text", [
    "models:\n  - {model: m, input_per_mtok: abc, output_per_mtok: 2}\n",
    "models:\n  - {model: m, input_per_mtok: 1}\n",
    "models:\n  - {input_per_mtok: 1, output_per_mtok: 2}\n",
    "models:\n  - {model: m, input_per_mtok: 1, output_per_mtok: '$2'}\n",
], ids=["non-numeric", "missing-output", "missing-model", "currency-sign"])
def test_a_non_numeric_or_missing_price_is_a_value_error(tmp_path, lake, capsys, text):
    lake.append({"requests": requests_table([make_request(1)])}, source="t")
    path = _yaml(tmp_path, text)
    with pytest.raises(ValueError, match="models\\[0\\]"):
        load_overrides(path)
    assert main(["reprice", "--store", str(lake.root), "--prices", str(path)]) == 2
    assert "models[0]" in capsys.readouterr().err


def test_an_empty_prices_file_means_no_overrides(tmp_path):
    assert load_overrides(_yaml(tmp_path, "")) == {}
    assert load_overrides(_yaml(tmp_path, "models: []\n")) == {}


def test_override_prices_are_per_million_tokens(tmp_path):
    """prices.yaml is USD per million tokens (README): 1,000,000 input tokens at 0.05 cost $0.05;
    cache writes and cached tokens, when not given, at the input price."""
    o = load_overrides(_yaml(tmp_path, """\
        models:
          - {provider: self-hosted, model: llama, input_per_mtok: 0.05, output_per_mtok: 0.10}
        """))
    assert request_cost("self-hosted", "llama", T0, 1_000_000, 0, 0, 0, overrides=o) == \
        pytest.approx(0.05)
    assert request_cost("self-hosted", "llama", T0, 1_000_000, 300_000, 200_000, 1_000_000,
                        overrides=o) == pytest.approx(0.05 + 0.10)


@pytest.mark.parametrize("provider", ["openai", "OpenAI", "azure", "Azure", "OPENAI"])
def test_provider_spellings_price_as_genai_prices_does(provider):
    ts = datetime(2026, 3, 2, 12, tzinfo=UTC)
    assert request_cost(provider, "gpt-4o", ts, 1200, 300, 0, 400, overrides={}) == \
        pytest.approx(_gp(provider.lower(), "gpt-4o", ts, 1200, 300, 0, 400), rel=1e-12)


@pytest.mark.parametrize("model", ["gpt-4o-2024-08-06", "gpt-4o-2024-05-13", "GPT-4o"])
def test_dated_and_cased_model_names_price_as_genai_prices_does(model):
    ts = datetime(2026, 3, 2, 12, tzinfo=UTC)
    assert request_cost("openai", model, ts, 1000, 0, 0, 500, overrides={}) == \
        pytest.approx(_gp("openai", model, ts, 1000, 0, 0, 500), rel=1e-12)


def test_a_price_change_applies_from_its_date():
    """claude-sonnet-4-6's price changes on 2026-03-13 in the bundled genai-prices: each day at
    its own price, on request_cost and the vectorized path alike."""
    days = [datetime(2026, 3, d, 9, tzinfo=UTC) for d in (11, 12, 13, 14)]
    want = [_gp("anthropic", "claude-sonnet-4-6", ts, 10_000, 2_000, 1_000, 700) for ts in days]
    got = [request_cost("anthropic", "claude-sonnet-4-6", ts, 10_000, 2_000, 1_000, 700,
                        overrides={}) for ts in days]
    framed = price_frame(_frame([
        {"provider": "anthropic", "model": "claude-sonnet-4-6", "ts": ts, "input_tokens": 10_000,
         "cached_input_tokens": 2_000, "cache_write_tokens": 1_000, "output_tokens": 700}
        for ts in days]), overrides={}).to_list()
    assert got == pytest.approx(want, rel=1e-12) and framed == pytest.approx(want, rel=1e-12)


def test_cached_and_cache_write_tokens_are_priced_once():
    """input_tokens includes cached and cache-write tokens (design §3), as genai-prices'
    input_tokens does: hand-worked from claude-sonnet-4-5's $3 input, $0.30 cache read, $3.75
    cache write, $15 output per M."""
    ts = datetime(2026, 3, 2, 12, tzinfo=UTC)
    by_hand = ((10_000 - 4_000 - 2_000) * 3 + 4_000 * 0.30 + 2_000 * 3.75 + 800 * 15) / MTOK
    assert _gp("anthropic", "claude-sonnet-4-5", ts, 10_000, 4_000, 2_000, 800) == \
        pytest.approx(by_hand)
    assert request_cost("anthropic", "claude-sonnet-4-5", ts, 10_000, 4_000, 2_000, 800,
                        overrides={}) == pytest.approx(by_hand)


def test_reasoning_tokens_are_part_of_output_and_not_priced_twice():
    """output_tokens includes reasoning_tokens: a call with 500 output tokens of which 400
    reasoning costs what 500 output tokens cost."""
    t = requests_table([make_request(1, model="o3", output_tokens=500, reasoning_tokens=400,
                                     cost_usd=None)])
    got = price_table(t, overrides={}).column("cost_usd").to_pylist()
    assert got == [pytest.approx(_gp("openai", "o3", T0, 1000, 0, 0, 500))]


def test_zero_tokens_cost_zero_for_a_priced_model_and_null_for_an_unpriced_one():
    assert request_cost("openai", "gpt-4o", T0, 0, 0, 0, 0, overrides={}) == 0.0
    assert request_cost("openai", "acme-ft-7", T0, 0, 0, 0, 0, overrides={}) is None
    t = requests_table([make_request(1, input_tokens=0, output_tokens=0, cost_usd=None),
                        make_request(2, model="acme-ft-7", input_tokens=0, output_tokens=0,
                                     cost_usd=None)])
    assert price_table(t, overrides={}).column("cost_usd").to_pylist() == [0.0, None]


def test_an_unknown_model_is_null_listed_with_its_count_and_its_logged_cost_kept(tmp_path, lake):
    """Never a silent $0 and never the source's own cost as ours: cost_usd null,
    logged_cost_usd the logged cost, and the model listed with its request count."""
    rows = [canonical_request(i, model="acme-ft-7", cost_usd=0.25) for i in range(3)]
    rows.append(canonical_request(9))
    path = tmp_path / "u.jsonl"
    path.write_bytes(jsonl_bytes(rows))
    ingest_paths(lake, [str(path)], compact_min_files=0, overrides={})
    eng = Engine(lake)
    try:
        got = eng.query("SELECT request_id, cost_usd, logged_cost_usd FROM requests "
                        "ORDER BY request_id").rows()
        listed = unpriced_models(eng).select("provider", "model", "requests").rows()
    finally:
        eng.close()
    assert got[:3] == [(f"r{i}", None, 0.25) for i in range(3)]
    assert got[3][1] == pytest.approx(_gp("openai", "gpt-4o", T0, 1000, 0, 0, 500))
    assert listed == [("openai", "acme-ft-7", 3)]


def test_cache_savings_are_never_negative_and_match_an_independent_computation():
    """Below any tier: cached × (input price − cached price), from genai-prices' published
    prices (as the difference of two calc_price calls); a model with no cache price saves 0."""
    ts = datetime(2026, 3, 2, 12, tzinfo=UTC)
    cases = [("openai", "gpt-4o", 5_000, 3_000), ("anthropic", "claude-sonnet-4-5", 9_000, 8_000),
             ("google", "gemini-2.0-flash-lite", 1_000, 800), ("openai", "gpt-4o", 10, 0)]
    df = _frame([{"provider": p, "model": m, "ts": ts, "input_tokens": i,
                  "cached_input_tokens": c, "cache_write_tokens": 0, "output_tokens": 0}
                 for p, m, i, c in cases])
    got = cache_savings_frame(df, overrides={}).to_list()
    want = [_gp(p, m, ts, i) - _gp(p, m, ts, i, c) for p, m, i, c in cases]
    assert got == pytest.approx(want, abs=1e-15) and min(got) >= 0
    assert [request_cache_savings(p, m, ts, c, overrides={}) for p, m, _, c in cases] == \
        pytest.approx(want, abs=1e-15)


def test_ingest_prices_agree_with_genai_prices_and_reprice_changes_nothing(tmp_path, lake):
    """A mix of models, tiers (claude-sonnet-4-5 and gemini-1.5-pro past 200k/128k input
    tokens), cached and cache-write tokens, an override and an unknown model, ingested: each cost
    is genai-prices' (or the override's by hand), and an immediate reprice changes no row."""
    ts = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    specs = [("openai", "gpt-4o", 1_000, 300, 0), ("anthropic", "claude-sonnet-4-5", 250_000,
             100_000, 20_000), ("anthropic", "claude-sonnet-4-5", 5_000, 1_000, 1_000),
             ("google", "gemini-1.5-pro", 150_000, 0, 0), ("google", "gemini-1.5-pro", 1_000, 0, 0),
             ("self-hosted", "llama", 2_000, 500, 0), ("openai", "acme-ft-7", 1_000, 0, 0)]
    rows = [canonical_request(i, provider=p, model=m, ts=(ts + timedelta(minutes=i)).isoformat(),
                              input_tokens=inp, cached_input_tokens=c, cache_write_tokens=w,
                              output_tokens=700)
            for i, (p, m, inp, c, w) in enumerate(specs)]
    path = tmp_path / "mix.jsonl"
    path.write_bytes(jsonl_bytes(rows))
    ov = {("self-hosted", "llama"): Override("self-hosted", "llama", 0.05, 0.10, 0.01)}
    ingest_paths(lake, [str(path)], compact_min_files=0, overrides=ov)
    costs = _costs(lake)
    for i, (p, m, inp, c, w) in enumerate(specs):
        when = ts + timedelta(minutes=i)
        if p == "self-hosted":
            want = ((inp - c) * 0.05 + c * 0.01 + 700 * 0.10) / MTOK
        elif m == "acme-ft-7":
            want = None
        else:
            want = _gp(p, m, when, inp, c, w, 700)
        assert costs[f"r{i}"] == (None if want is None else pytest.approx(want, rel=1e-12)), m
    doc = reprice(lake, overrides=ov)
    assert doc["changed_rows"] == 0 and doc["days_rewritten"] == 0
    assert doc["unpriced_before"] == doc["unpriced_after"] == 1


def _two_day_lake(lake: Lake) -> list[dict]:
    rows = [make_request(i, ts=T0 + timedelta(hours=9 * i), provider=p, model=m,
                         input_tokens=1000 + i, cached_input_tokens=100 * (i % 3),
                         output_tokens=200 + i, cost_usd=c)
            for i, (p, m, c) in enumerate([("self-hosted", "llama", 0.001),
                                           ("openai", "gpt-4o", 1.0),
                                           ("self-hosted", "llama", None),
                                           ("openai", "acme-ft-7", None),
                                           ("openai", "gpt-4o", None),
                                           ("self-hosted", "llama", 0.5)])]
    lake.append({"requests": requests_table(rows)}, source="t")
    return rows


LLAMA = {("self-hosted", "llama"): Override("self-hosted", "llama", 0.2, 0.4)}


def _want(row: dict, overrides: dict) -> float | None:
    if row["model"] == "llama":
        o = overrides.get(("self-hosted", "llama"))
        return None if o is None else (row["input_tokens"] * o.input_per_mtok
                                       + row["output_tokens"] * o.output_per_mtok) / MTOK
    if row["model"] == "acme-ft-7":
        return None
    return _gp("openai", row["model"], row["ts"], row["input_tokens"],
               row["cached_input_tokens"], 0, row["output_tokens"])


def test_reprice_report_equals_an_independent_sum_dry_run_writes_nothing_and_twice_is_a_noop(
        lake, capsys):
    rows = _two_day_lake(lake)
    want = [_want(r, LLAMA) for r in rows]
    old = [r["cost_usd"] for r in rows]
    changed = sum(1 for a, b in zip(old, want, strict=True)
                  if (a is None) != (b is None) or (a is not None and abs(a - b) > 1e-15))
    files_before = sorted(p.relative_to(lake.root) for p in lake.root.rglob("*.parquet"))
    commits = len(lake.commits())
    dry = reprice(lake, overrides=LLAMA, dry_run=True)
    assert len(lake.commits()) == commits
    assert sorted(p.relative_to(lake.root) for p in lake.root.rglob("*.parquet")) == files_before
    doc = reprice(lake, overrides=LLAMA)
    for d in (dry, doc):
        assert d["rows"] == len(rows) and d["changed_rows"] == changed
        assert d["before_usd"] == pytest.approx(sum(c for c in old if c is not None))
        assert d["after_usd"] == pytest.approx(sum(c for c in want if c is not None))
        assert (d["unpriced_before"], d["unpriced_after"]) == (
            sum(c is None for c in old), sum(c is None for c in want))
    got = _costs(lake)
    assert [got[r["request_id"]] for r in rows] == [
        None if w is None else pytest.approx(w, rel=1e-12) for w in want]
    again = reprice(lake, overrides=LLAMA)
    assert again["changed_rows"] == 0 and again["days_rewritten"] == 0
    assert _costs(lake) == got
    # the CLI's difference is after - before
    prices = lake.root.parent / "llama.yaml"
    prices.write_text("models:\n  - {provider: self-hosted, model: llama, input_per_mtok: 0.4, "
                      "output_per_mtok: 0.8}\n")
    capsys.readouterr()
    assert main(["reprice", "--store", str(lake.root), "--prices", str(prices), "--json",
                 "--dry-run"]) == 0
    rep = json.loads(capsys.readouterr().out)
    llama_now = sum(got[r["request_id"]] for r in rows if r["model"] == "llama")
    assert rep["after_usd"] - rep["before_usd"] == pytest.approx(llama_now)  # prices doubled


def test_a_reprice_that_changes_nothing_commits_nothing(lake):
    """Running reprice a second time changes nothing, in the store too: no commit is published
    when no day's costs changed (as a dry run publishes none). Found in review: every run added
    an empty ``reprice`` commit (no files added or removed) to ``_manifest/``, whose commit files
    are never rewritten: a reprice from cron every few minutes grew the manifest every process
    reads."""
    _two_day_lake(lake)
    reprice(lake, overrides=LLAMA)
    commits = len(lake.commits())
    doc = reprice(lake, overrides=LLAMA)
    assert doc["changed_rows"] == 0
    assert len(lake.commits()) == commits


def test_reprice_after_a_batch_was_removed_and_the_rest_compacted(lake):
    from lib.store.compact import compact

    first = _two_day_lake(lake)
    extra = [make_request(100 + i, ts=T0 + timedelta(hours=3 * i), model="gpt-4o", cost_usd=9.0)
             for i in range(4)]
    batch = lake.append({"requests": requests_table(extra)}, source="t2").commit.commit_id
    lake.remove_batch(batch)
    lake.append({"requests": requests_table([make_request(200 + i, ts=T0 + timedelta(hours=i),
                                                          cost_usd=None) for i in range(3)])},
                source="t3")
    compact(lake, min_files=0)
    doc = reprice(lake, overrides=LLAMA)
    got = _costs(lake)
    assert doc["rows"] == len(first) + 3 == len(got)
    assert not any(k.startswith("r10") for k in got)
    for r in first:
        w = _want(r, LLAMA)
        assert got[r["request_id"]] == (None if w is None else pytest.approx(w, rel=1e-12))
    assert reprice(lake, overrides=LLAMA)["changed_rows"] == 0


REPRICE_KILLED = textwrap.dedent("""
    import sys
    from lib.pricing import Override, reprice
    from lib.store import lake as lake_mod
    from lib.store import Lake

    calls = []
    real = lake_mod.Lake._write_files

    def write_files(self, *a, **k):  # stop after the first day's new file is written
        out = real(self, *a, **k)
        calls.append(1)
        if len(calls) == 1:
            lake_mod._pause_for_tests("reprice_mid")
        return out

    lake_mod.Lake._write_files = write_files
    reprice(Lake(sys.argv[1]),
            overrides={("self-hosted", "llama"): Override("self-hosted", "llama", 0.2, 0.4)})
    print("finished", flush=True)
""")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_reprice_killed_mid_way_leaves_all_old_costs_then_a_rerun_gives_all_new(tmp_path, lake,
                                                                               sig):
    rows = _two_day_lake(lake)
    old = _costs(lake)
    script = tmp_path / "reprice_killed.py"
    script.write_text(REPRICE_KILLED)
    marker = tmp_path / "paused"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_TEST_")}
    env.update(PYTHONPATH=str(REPO), SIGHTLINE_TEST_PAUSE_AT="reprice_mid",
               SIGHTLINE_TEST_PAUSE_MARKER=str(marker), SIGHTLINE_TEST_PAUSE_S="60")
    proc = subprocess.Popen([sys.executable, str(script), str(lake.root)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_marker(proc, marker, why=lambda: proc.stderr.read() if proc.poll() else "")
        os.kill(proc.pid, sig)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -sig
    assert _costs(Lake(lake.root)) == old  # all old costs
    doc = reprice(Lake(lake.root), overrides=LLAMA)  # the next writer clears what it left
    got = _costs(Lake(lake.root))
    for r in rows:
        w = _want(r, LLAMA)
        assert got[r["request_id"]] == (None if w is None else pytest.approx(w, rel=1e-12))
    assert doc["rows"] == len(rows)
    live = {str(lake.root / p) for p in Lake(lake.root).snapshot().files["requests"]}
    on_disk = {str(p) for p in (lake.root / "requests").rglob("*.parquet")}
    # what the killed run wrote is gone or, at most, awaiting the usual delayed deletion
    assert live <= on_disk


INGEST_PAUSED_ENV = ("SIGHTLINE_TEST_PAUSE_AT", "SIGHTLINE_TEST_PAUSE_MARKER",
                     "SIGHTLINE_TEST_PAUSE_S")


def test_reprice_while_an_ingest_runs_waits_for_it_and_prices_its_rows(tmp_path, lake):
    """An ingest holding the writer lock (paused just before it publishes) makes reprice wait;
    reprice then sees and prices the ingested rows too, none twice, none lost."""
    rows = _two_day_lake(lake)
    new = [canonical_request(500 + i, provider="self-hosted", model="llama",
                             input_tokens=3000, output_tokens=100) for i in range(5)]
    path = tmp_path / "new.jsonl"
    path.write_bytes(jsonl_bytes(new))
    marker = tmp_path / "paused"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_TEST_")}
    prices = tmp_path / "none.yaml"
    prices.write_text("models: []\n")
    env.update(PYTHONPATH=str(REPO), SIGHTLINE_TEST_PAUSE_AT="before_publish",
               SIGHTLINE_TEST_PAUSE_MARKER=str(marker), SIGHTLINE_TEST_PAUSE_S="1.5",
               SIGHTLINE_PRICES=str(prices))
    proc = subprocess.Popen([sys.executable, "-m", "lib", "ingest", str(path), "--store",
                             str(lake.root)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_marker(proc, marker)
        doc = reprice(Lake(lake.root), overrides=LLAMA)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert doc["rows"] == len(rows) + len(new)
    got = _costs(Lake(lake.root))
    assert len(got) == len(rows) + len(new)
    for i in range(5):  # stored unpriced by the ingest (no overrides), priced by the reprice
        assert got[f"r{500 + i}"] == pytest.approx((3000 * 0.2 + 100 * 0.4) / MTOK)
    assert not math.isnan(sum(v for v in got.values() if v is not None))


def test_a_date_with_a_price_context_before_its_variant_starts_is_the_standard_price():
    """processing=batch before genai-prices' batch variants start (2026-10-12) prices as standard;
    after, as the batch variant: each as calc_price with that context."""
    for day in (date(2026, 3, 2), date(2026, 11, 2)):
        ts = datetime.combine(day, datetime.min.time(), tzinfo=UTC).replace(hour=12)
        want = float(calc_price(Usage(input_tokens=4000, cache_read_tokens=1000,
                                      output_tokens=300), "claude-haiku-4-5",
                                provider_id="anthropic", genai_request_timestamp=ts,
                                price_context={"processing": "batch"}).total_price)
        assert request_cost("anthropic", "claude-haiku-4-5", ts, 4000, 1000, 0, 300,
                            overrides={}, context={"processing": "batch"}) == \
            pytest.approx(want, rel=1e-12)


def test_ingest_with_a_prices_file_that_cannot_be_read_stores_nothing_and_names_it(
        tmp_path, lake, capsys, monkeypatch):
    """``ingest`` reads the price overrides before any file: a wrong $SIGHTLINE_PRICES is a
    usage error (exit 2) naming the prices file, and nothing is stored at the wrong prices."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl_bytes([canonical_request(1)]))
    for text in (None, "models:\n  - {model: m, input_per_mtok: -1, output_per_mtok: 2}\n"):
        prices = tmp_path / "prices-typo.yaml"
        if text is not None:
            prices.write_text(text)
        monkeypatch.setenv("SIGHTLINE_PRICES", str(prices))
        assert main(["ingest", str(path), "--store", str(lake.root)]) == 2
        err = capsys.readouterr().err
        assert str(prices) in err and "formats:" not in err
        assert lake.commits() == []


def test_demo_with_a_prices_file_that_cannot_be_read_writes_nothing(tmp_path, capsys,
                                                                    monkeypatch):
    """Demo costs are priced like ingested ones: ``demo`` with a wrong $SIGHTLINE_PRICES is a
    usage error naming the file, and writes nothing."""
    monkeypatch.setenv("SIGHTLINE_PRICES", str(tmp_path / "prices-typo.yaml"))
    store = tmp_path / "store"
    assert main(["demo", "--store", str(store), "--days", "1", "--requests-per-day", "10"]) == 2
    assert "prices-typo.yaml: no such prices file" in capsys.readouterr().err
    assert not (store / "_manifest").exists() or not list((store / "_manifest").glob("*.json"))


def test_a_yaml_slip_in_prices_names_its_line(tmp_path):
    """Found in review: an indentation slip said "while parsing a block collection", no line."""
    from lib.pricing import load_overrides

    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  - model: a\n    input_per_mtok: 1\n   output_per_mtok: 2\n")
    with pytest.raises(ValueError) as err:
        load_overrides(path)
    assert str(err.value).startswith(f"{path}: not a readable YAML file: line 4, column 4: ")


def test_reprice_names_the_overrides_no_stored_request_matches(tmp_path, lake, capsys):
    """Found in review: an override for "gpt4o" (a typo) priced nothing and said nothing."""
    rows = [make_request(1, model="gpt-4o"), make_request(2, provider="Self-Hosted",
                                                          model="Llama-3.1-8B")]
    lake.append({"requests": requests_table(rows)}, source="t")
    path = _yaml(tmp_path, "models:\n"
                           "  - {model: gpt4o, input_per_mtok: 1, output_per_mtok: 2}\n"
                           "  - {provider: self-hosted, model: llama-3.1-8b, input_per_mtok: 1,"
                           " output_per_mtok: 2}\n"
                           "  - {provider: azure, model: gpt-4o, input_per_mtok: 1,"
                           " output_per_mtok: 2}\n")
    assert main(["reprice", "--store", str(lake.root), "--prices", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["overrides_matching_nothing"] == [
        "azure/gpt-4o", "gpt4o"]
    assert main(["reprice", "--store", str(lake.root), "--prices", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "note: price override(s) that match no stored request (a typo in the model name?): "
        "azure/gpt-4o, gpt4o")


def test_reprice_with_a_cut_short_file_changes_nothing_and_names_it(lake, tmp_path, capsys):
    # It ended in a pyarrow traceback (found in review); rewriting the day without the file
    # would have dropped its rows.
    lake.append({"requests": requests_table([make_request(1)])}, source="a")
    bad = lake.append({"requests": requests_table([make_request(2)])}, source="b").commit
    path = lake.root / bad.added[0]["path"]
    path.write_bytes(path.read_bytes()[:100])
    before = lake.version()
    prices = _yaml(tmp_path, "models:\n  - model: gpt-4o\n    input_per_mtok: 9\n"
                             "    output_per_mtok: 9\n")
    assert main(["reprice", "--store", str(lake.root), "--prices", str(prices)]) == 2
    err = capsys.readouterr().err
    assert bad.added[0]["path"] in err and "Traceback" not in err and "nothing was changed" in err
    assert Lake(lake.root).version() == before


def test_a_key_written_twice_in_prices_is_refused_naming_its_line(tmp_path):
    """YAML keeps the last of a key written twice: the Data page's suggested lines (``models:``
    and a priced_as) pasted below the file's own list dropped every override above them, and
    ``reprice`` emptied their costs without a word (found in review); a price written twice in
    one override took the second."""
    from lib.pricing import load_overrides

    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  - provider: self-hosted\n    model: llama-3.1-8b-instruct\n"
                    "    input_per_mtok: 0.05\n    output_per_mtok: 0.10\n"
                    "models:\n- model: prod-gpt4o\n  priced_as: gpt-4o\n")
    with pytest.raises(ValueError) as err:
        load_overrides(path)
    assert str(err.value) == (f"{path}: not a readable YAML file: line 6, column 1: 'models' "
                              "is written twice")
    path.write_text("models:\n  - model: m\n    input_per_mtok: 0.5\n    output_per_mtok: 1\n"
                    "    input_per_mtok: 5\n")
    with pytest.raises(ValueError, match="line 5, column 5: 'input_per_mtok' is written twice"):
        load_overrides(path)


def test_a_price_written_with_an_exponent_is_a_number(tmp_path):
    """YAML 1.1 reads 1e-3 (no decimal point) as text: the price was refused as "not a number,
    not '1e-3'" (found in review); quoted, it is still text."""
    from lib.pricing import load_overrides

    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  - model: m\n    input_per_mtok: 5e-2\n    output_per_mtok: 1E+1\n"
                    "    cached_input_per_mtok: .5e-2\n")
    (o,) = load_overrides(path).values()
    assert (o.input_per_mtok, o.output_per_mtok, o.cached_input_per_mtok) == (0.05, 10.0, 0.005)
    path.write_text("models:\n  - model: m\n    input_per_mtok: '5e-2'\n    output_per_mtok: 1\n")
    with pytest.raises(ValueError, match="input_per_mtok must be a number"):
        load_overrides(path)
