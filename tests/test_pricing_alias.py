"""prices.yaml ``priced_as``: a model name the catalogue does not know (an Azure OpenAI
deployment, a gateway's alias) priced as a model it does, on every ingest path, in reprice and
in the price periods of its target; nothing guessed without it (the model stays unpriced)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lib import pricing
from lib.ingest.pipeline import ingest_paths
from lib.pricing import load_overrides, request_cost
from lib.store import Engine, Lake
from tests.ingest.conftest import (
    INGEST_PATHS,
    canonical_request,
    ingest_on_path,
    jsonl_bytes,
)

DAY = datetime(2026, 11, 2, tzinfo=UTC)  # deepseek-v4-pro priced by the time of day then


def _prices(tmp_path, text: str) -> dict:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    return load_overrides(path)


ALIASES = """
models:
  - provider: azure.ai.openai
    model: prod-gpt4o
    priced_as: gpt-4o
    priced_as_provider: openai
  - model: my-deepseek
    priced_as: deepseek-v4-pro
    priced_as_provider: deepseek
  - model: team-alias
    priced_as: prod-gpt4o          # an alias of an alias
    priced_as_provider: azure.ai.openai
  - model: in-house
    input_per_mtok: 1.0
    output_per_mtok: 2.0
  - model: in-house-eu
    priced_as: in-house            # an alias of an override
"""


def test_an_alias_costs_what_its_target_costs(tmp_path):
    overrides = _prices(tmp_path, ALIASES)
    gpt4o = request_cost("openai", "gpt-4o", DAY, 1000, 200, 0, 100, overrides={})
    # gpt-4o: $2.50 per M input, $1.25 cached, $10 output: 800 * 2.5 + 200 * 1.25 + 100 * 10
    assert gpt4o == pytest.approx(0.00325)
    assert request_cost("azure.ai.openai", "prod-gpt4o", DAY, 1000, 200, 0, 100,
                        overrides=overrides) == gpt4o
    assert request_cost("azure.ai.openai", "team-alias", DAY, 1000, 200, 0, 100,
                        overrides=overrides) == gpt4o
    # $1 per M input and $2 per M output: 1000 * 1 + 100 * 2 = 1200 micro-dollars
    assert request_cost(None, "in-house-eu", DAY, 1000, 0, 0, 100,
                        overrides=overrides) == pytest.approx(0.0012)
    # without the alias, nothing is guessed
    assert request_cost("azure.ai.openai", "prod-gpt4o", DAY, 1000, 200, 0, 100,
                        overrides={}) is None


@pytest.mark.parametrize("text, message", [
    ("models:\n  - model: a\n    priced_as: gpt-4o\n    input_per_mtok: 1\n",
     "priced_as takes another model's prices: input_per_mtok cannot be given with it"),
    ("models:\n  - model: a\n    priced_as: no-such-model-xyz\n",
     "priced_as 'no-such-model-xyz': no such model in genai-prices nor in this file"),
    ("models:\n  - model: a\n    priced_as: b\n  - model: b\n    priced_as: a\n",
     "priced_as goes round in a loop"),
    ("models:\n  - model: a\n    priced_as: ''\n", "priced_as must be a model name"),
    ("models:\n  - model: a\n    priced_as_provider: openai\n", "priced_as must be a model name"),
])
def test_an_alias_that_prices_nothing_is_refused_naming_the_file(tmp_path, text, message):
    with pytest.raises(ValueError) as err:
        _prices(tmp_path, text)
    assert str(err.value).startswith(str(tmp_path / "prices.yaml")) and message in str(err.value)


def test_an_alias_of_a_model_priced_by_the_time_of_day_takes_its_periods(tmp_path):
    overrides = _prices(tmp_path, ALIASES)
    peak, off = DAY + timedelta(hours=2), DAY + timedelta(hours=12)
    costs = [request_cost(None, "my-deepseek", t, 10_000, 0, 0, 1000, overrides=overrides)
             for t in (peak, off)]
    assert costs == [request_cost("deepseek", "deepseek-v4-pro", t, 10_000, 0, 0, 1000,
                                  overrides={}) for t in (peak, off)]
    assert costs[0] == pytest.approx(2 * costs[1])  # twice its rates from 01:00 to 04:00 UTC


def _calls() -> list[dict]:
    at = [DAY + timedelta(hours=2), DAY + timedelta(hours=12)]
    return [canonical_request(0, provider="azure.ai.openai", model="prod-gpt4o",
                              response_model="gpt-4o-2024-08-06", ts=at[1].isoformat()),
            canonical_request(1, provider="azure.ai.openai", model="team-alias",
                              ts=at[1].isoformat()),
            canonical_request(2, provider="deepseek", model="my-deepseek", ts=at[0].isoformat()),
            canonical_request(3, provider="deepseek", model="my-deepseek", ts=at[1].isoformat()),
            canonical_request(4, provider="azure.ai.openai", model="unaliased-deployment",
                              ts=at[1].isoformat())]


def _truth(overrides: dict) -> dict:
    out = {}
    for c in _calls():
        ts = datetime.fromisoformat(c["ts"])
        target = {"prod-gpt4o": ("openai", "gpt-4o"), "team-alias": ("openai", "gpt-4o"),
                  "my-deepseek": ("deepseek", "deepseek-v4-pro")}.get(c["model"])
        out[c["request_id"]] = None if target is None else round(request_cost(
            *target, ts, c["input_tokens"], 0, 0, c["output_tokens"], overrides={}), 9)
    return out


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_every_ingest_path_prices_an_alias_as_its_target(tmp_path, monkeypatch, path):
    overrides = _prices(tmp_path, ALIASES)
    calls = _calls()
    (tmp_path / "in").mkdir()
    files = [tmp_path / "in" / f"{n}.jsonl" for n in range(2)]  # two: groups need several
    for file, part in zip(files, (calls[:3], calls[3:]), strict=True):
        file.write_bytes(jsonl_bytes(part))
    lake = Lake(tmp_path / "store")
    report = ingest_on_path(lake, files, path, monkeypatch, overrides=overrides)
    assert [f.error for f in report.files] == [None, None]
    engine = Engine(lake)
    got = dict(engine.query("SELECT request_id, round(cost_usd, 9) FROM requests").rows())
    engine.close()
    assert got == _truth(overrides)
    assert got["r2"] == pytest.approx(2 * got["r3"])  # the peak and off-peak of its target


def test_reprice_prices_the_alias_added_after_ingest(tmp_path):
    lake = Lake(tmp_path / "store")
    src = tmp_path / "calls.jsonl"
    src.write_bytes(jsonl_bytes(_calls()))
    ingest_paths(lake, [str(src)], overrides={})
    doc = pricing.reprice(lake, overrides=_prices(tmp_path, ALIASES))
    assert (doc["unpriced_before"], doc["unpriced_after"], doc["changed_rows"]) == (5, 1, 4)
    engine = Engine(lake)
    got = dict(engine.query("SELECT request_id, round(cost_usd, 9) FROM requests").rows())
    engine.close()
    assert got == _truth({})


def test_the_unpriced_list_names_the_model_that_answered_for_an_alias_to_name(tmp_path):
    lake = Lake(tmp_path / "store")
    src = tmp_path / "calls.jsonl"
    src.write_bytes(jsonl_bytes(_calls()[:2] + [canonical_request(
        9, provider="azure.ai.openai", model="prod-gpt4o", response_model="gpt-4o-2024-11-20",
        ts=DAY.isoformat())]))
    ingest_paths(lake, [str(src)], overrides={})
    engine = Engine(lake)
    listed = pricing.unpriced_models(engine).select("model", "answered_as", "requests").rows()
    engine.close()
    assert listed == [("prod-gpt4o", "gpt-4o-2024-08-06, gpt-4o-2024-11-20", 2),
                      ("team-alias", None, 1)]


def test_the_suggested_aliases_price_every_deployment_that_answered_as_one_model(tmp_path):
    lake = Lake(tmp_path / "store")
    src = tmp_path / "calls.jsonl"
    src.write_bytes(jsonl_bytes([
        canonical_request(0, provider="azure.ai.openai", model="prod-gpt4o",
                          response_model="gpt-4o-2024-08-06", ts=DAY.isoformat()),
        canonical_request(1, provider="azure.ai.openai", model="prod-gpt4o",
                          response_model="gpt-4o-2024-08-06", ts=DAY.isoformat()),
        # answered as two models: no single one to suggest
        canonical_request(2, provider="azure.ai.openai", model="two-models",
                          response_model="gpt-4o-2024-08-06", ts=DAY.isoformat()),
        canonical_request(3, provider="azure.ai.openai", model="two-models",
                          response_model="gpt-4o-mini-2024-07-18", ts=DAY.isoformat()),
        # answered as a model without a price either
        canonical_request(4, provider="acme", model="in-house", response_model="in-house-v2",
                          ts=DAY.isoformat())]))
    suggested = _ingested_suggestions(lake, src)
    assert suggested == ("models:\n- provider: azure.ai.openai\n  model: prod-gpt4o\n"
                         "  priced_as: gpt-4o-2024-08-06\n")
    # pasted into prices.yaml, it prices those calls as the model that answered
    doc = pricing.reprice(lake, overrides=_prices(tmp_path, suggested))
    assert (doc["unpriced_before"], doc["unpriced_after"]) == (5, 3)
    engine = Engine(lake)
    got = engine.query("SELECT round(sum(cost_usd), 9) FROM requests "
                       "WHERE model = 'prod-gpt4o'").row(0)[0]
    engine.close()
    # 2 x (1000 input x $2.50/M + 500 output x $10/M)
    assert got == pytest.approx(2 * 0.0075) == 2 * request_cost(
        "openai", "gpt-4o-2024-08-06", DAY, 1000, 0, 0, 500, overrides={})


def _ingested_suggestions(lake: Lake, src) -> str:
    """The ``priced_as`` lines the Data page suggests once ``src`` is ingested unpriced."""
    ingest_paths(lake, [str(src)], overrides={})
    engine = Engine(lake)
    try:
        return pricing.alias_suggestions(pricing.unpriced_models(engine))
    finally:
        engine.close()


def test_deployment_names_alike_but_for_case_get_one_suggested_line(tmp_path):
    # a line for each spelling made a prices.yaml load_overrides refuses ("listed twice"),
    # which stopped every ingest and reprice once pasted (review)
    lake = Lake(tmp_path / "store")
    src = tmp_path / "calls.jsonl"
    src.write_bytes(jsonl_bytes([
        canonical_request(i, provider="azure.ai.openai", model=model,
                          response_model="gpt-4o-2024-08-06", ts=DAY.isoformat())
        for i, model in enumerate(["prod-gpt4o", "Prod-GPT4o", "prod-gpt4o"])] + [
        # spellings of one name that answered as two models: no single one to suggest
        canonical_request(5, provider="azure.ai.openai", model="two",
                          response_model="gpt-4o-2024-08-06", ts=DAY.isoformat()),
        canonical_request(6, provider="azure.ai.openai", model="TWO",
                          response_model="gpt-4o-mini-2024-07-18", ts=DAY.isoformat())]))
    suggested = _ingested_suggestions(lake, src)
    assert suggested == ("models:\n- provider: azure.ai.openai\n  model: prod-gpt4o\n"
                         "  priced_as: gpt-4o-2024-08-06\n")
    doc = pricing.reprice(lake, overrides=_prices(tmp_path, suggested))
    assert (doc["unpriced_before"], doc["unpriced_after"]) == (5, 2)


@pytest.mark.parametrize("existing", [
    pricing.DEFAULT_PRICES_FILE.read_text(),  # the shipped file: items indented by two
    "models:\n- model: my-llama\n  input_per_mtok: 0.1\n  output_per_mtok: 0.2\n",
    "# price overrides\nmodels:\n",  # a list not started yet
    None,  # no prices file at all
], ids=["shipped", "unindented", "empty-list", "absent"])
def test_the_suggested_lines_added_at_the_end_of_the_prices_file_load(tmp_path, existing):
    # The Data page said "these lines of prices.yaml" over a block starting with `models:`:
    # added to a file with a list already, that is a second `models:`, refused as written
    # twice, and every ingest and reprice stopped until the file was mended (review).
    prices = tmp_path / "prices.yaml"
    if existing is not None:
        prices.write_text(existing)
    lake = Lake(tmp_path / "store")
    src = tmp_path / "calls.jsonl"
    src.write_bytes(jsonl_bytes([canonical_request(
        0, provider="azure.ai.openai", model="prod-gpt4o", response_model="gpt-4o-2024-08-06",
        ts=DAY.isoformat())]))
    ingest_paths(lake, [str(src)], overrides={})
    engine = Engine(lake)
    suggested = pricing.alias_suggestions(pricing.unpriced_models(engine), prices)
    engine.close()
    before = len(load_overrides(prices)) if existing is not None else 0
    prices.write_text((existing or "") + suggested)
    overrides = load_overrides(prices)  # (the file's own overrides kept beside the new one)
    assert overrides[("azure.ai.openai", "prod-gpt4o")].priced_as == "gpt-4o-2024-08-06"
    assert len(overrides) == before + 1
    doc = pricing.reprice(lake, overrides=overrides)
    assert (doc["unpriced_before"], doc["unpriced_after"]) == (1, 0)


@pytest.mark.parametrize("model", ["café-prod", "生产-gpt4o", "prod\u202egpt4o"],
                         ids=["accent", "cjk", "bidi"])
def test_a_suggested_line_names_a_deployment_as_it_is_spelt_and_still_loads(tmp_path, model):
    # "café-prod" was suggested as `model: "caf\xE9-prod"` (PyYAML escapes every non-ASCII
    # character by default): right once pasted, but not a name its user could recognise in the
    # list (review). Written as spelt, unless it holds a character that would hide or reorder
    # what is read (a bidi control): escaped then, as the pages show it.
    lake = Lake(tmp_path / "store")
    src = tmp_path / "calls.jsonl"
    src.write_bytes(jsonl_bytes([canonical_request(
        0, provider="azure.ai.openai", model=model, response_model="gpt-4o-2024-08-06",
        ts=DAY.isoformat())]))
    suggested = _ingested_suggestions(lake, src)
    if "\u202e" in model:
        assert "\u202e" not in suggested and "\\u202E" in suggested
    else:
        assert f"model: {model}\n" in suggested
    prices = tmp_path / "prices.yaml"
    prices.write_text(suggested, encoding="utf-8")
    assert load_overrides(prices)[("azure.ai.openai", model)].priced_as == "gpt-4o-2024-08-06"
