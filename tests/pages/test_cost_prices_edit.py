"""AppTest: an edit of the price overrides file shows on the Cost page's token mix at the next
run, not once the page's cache expires (its costs are the current prices of stored tokens)."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import T0, make_request, requests_table
from tests.pages.test_analysis_pages import run_page


def _prices(path, input_per_mtok: float) -> None:
    path.write_text("models:\n  - model: house-llm\n"
                    f"    input_per_mtok: {input_per_mtok}\n    output_per_mtok: 2.0\n")


def _uncached_input_cost(at) -> float:
    (mix,) = [d.value for d in at.dataframe if "token_share" in d.value.columns]
    return float(mix.set_index("label").loc["Uncached input", "cost_usd"])


def test_a_prices_yaml_edit_shows_in_the_token_mix_at_the_next_run(monkeypatch, lake, tmp_path):
    prices = tmp_path / "prices.yaml"
    _prices(prices, 1.0)
    monkeypatch.setenv("SIGHTLINE_PRICES", str(prices))
    lake.append({"requests": requests_table([make_request(
        0, provider="self-hosted", model="house-llm", input_tokens=1_000_000,
        cached_input_tokens=0, output_tokens=0, cost_usd=1.0)])}, source="t")
    at = run_page(monkeypatch, lake.root, "pages/cost.py",
                  {"range": "custom", "from": T0.isoformat(),
                   "to": (T0 + timedelta(hours=1)).isoformat()})
    assert _uncached_input_cost(at) == 1.0

    _prices(prices, 3.0)  # a negotiated price corrected, before anyone runs reprice
    at.run()
    assert not at.exception
    assert _uncached_input_cost(at) == 3.0
