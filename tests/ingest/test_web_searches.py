"""Web searches a call made are billed per search ($10 per 1,000 for Claude and GPT-4o in
genai-prices): ``web_searches`` is priced on every ingest path and by reprice, and Anthropic's
``usage.server_tool_use.web_search_requests`` gives it. Expected costs are genai-prices' own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from genai_prices import Usage, calc_price

from lib.pricing import reprice, request_cost, unit_prices
from lib.store import Engine
from tests.ingest.conftest import INGEST_PATHS, canonical_request, ingest_on_path

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def genai(model: str, provider: str, i: int, o: int, searches: int) -> float:
    return float(calc_price(Usage(input_tokens=i, output_tokens=o, web_searches=searches), model,
                            provider_id=provider, genai_request_timestamp=T).total_price)


def _costs_of_searches(lake, write, monkeypatch, path: str, searches: list[int],
                       overrides: dict | None = None) -> dict[str, float]:
    """{request_id: cost_usd} of gpt-4o calls of 1,000 in / 100 out making ``searches``
    (request ``r<n>`` the n-th), ingested on ``path`` as two files of two calls each."""
    rows = [canonical_request(n, provider="openai", model="gpt-4o", input_tokens=1000,
                              output_tokens=100, web_searches=s,
                              ts=(T + timedelta(minutes=n)).isoformat())
            for n, s in enumerate(searches)]
    files = [write("a.jsonl", rows[:2]), write("b.jsonl", rows[2:])]
    report = ingest_on_path(lake, files, path, monkeypatch, overrides=overrides)
    assert [(f.stored, f.quarantined) for f in report.files] == [({"requests": 2}, 0)] * 2
    engine = Engine(lake)
    try:
        return dict(engine.query("SELECT request_id, cost_usd FROM requests").rows())
    finally:
        engine.close()


def test_a_search_costs_what_genai_prices_says():
    assert request_cost("anthropic", "claude-sonnet-4-20250514", T, 1000, 0, 0, 100,
                        overrides={}, web_searches=3) == pytest.approx(
        genai("claude-sonnet-4-20250514", "anthropic", 1000, 100, 3), rel=1e-12)
    assert genai("claude-sonnet-4-20250514", "anthropic", 1000, 100, 3) - \
        genai("claude-sonnet-4-20250514", "anthropic", 1000, 100, 0) == pytest.approx(0.03)
    assert unit_prices("openai", "gpt-4o", T, {})["web_search"] == pytest.approx(0.01)


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_every_ingest_path_prices_them_and_reprice_agrees(lake, write, monkeypatch, path):
    got = _costs_of_searches(lake, write, monkeypatch, path, [0, 1, 5, 2])
    assert got == pytest.approx({f"r{n}": genai("gpt-4o", "openai", 1000, 100, s)
                                 for n, s in enumerate([0, 1, 5, 2])}, rel=1e-9)
    assert reprice(lake, overrides={})["changed_rows"] == 0


def test_anthropic_logs_give_their_web_searches(lake, write, monkeypatch, totals):
    message = {"id": "msg_ws", "type": "message", "role": "assistant",
               "model": "claude-sonnet-4-20250514", "content": [{"type": "text", "text": "ok"}],
               "stop_reason": "end_turn",
               "usage": {"input_tokens": 1000, "output_tokens": 100,
                         "server_tool_use": {"web_search_requests": 3}}}
    report = ingest_on_path(lake, [write("claude.jsonl", [{"ts": T.isoformat(),
                                                           "response": message}])],
                            "exact", monkeypatch)
    assert report.files[0].stored == {"requests": 1}
    searches, cost = totals("SELECT web_searches, cost_usd FROM requests")
    assert searches == 3
    assert cost == pytest.approx(genai("claude-sonnet-4-20250514", "anthropic", 1000, 100, 3),
                                 rel=1e-12)


def test_negative_searches_are_quarantined(lake, write, monkeypatch):
    files = [write("a.jsonl", [canonical_request(0, web_searches=-1), canonical_request(1)])]
    report = ingest_on_path(lake, files, "exact", monkeypatch)
    assert (report.files[0].stored, report.files[0].reasons) == (
        {"requests": 1}, ["line 1: web_searches is negative: -1"])


def test_openai_responses_count_their_web_search_calls(lake, write, monkeypatch, totals):
    response = {"id": "resp_ws", "object": "response", "created_at": int(T.timestamp()),
                "status": "completed", "model": "gpt-4o",
                "output": [{"type": "web_search_call", "id": "ws_1", "status": "completed"},
                           {"type": "web_search_call", "id": "ws_2", "status": "completed"},
                           {"type": "message", "role": "assistant",
                            "content": [{"type": "output_text", "text": "ok"}]}],
                "usage": {"input_tokens": 1000, "output_tokens": 100, "total_tokens": 1100}}
    report = ingest_on_path(lake, [write("responses.jsonl", [response])], "exact", monkeypatch)
    assert report.files[0].stored == {"requests": 1}, report.files[0].reasons
    searches, cost = totals("SELECT web_searches, cost_usd FROM requests")
    assert searches == 2
    assert cost == pytest.approx(genai("gpt-4o", "openai", 1000, 100, 2), rel=1e-12)


def test_the_what_if_prices_the_searches_too(lake, write, monkeypatch):
    from lib.filters import Filters
    from lib.metrics import cost

    rows = [canonical_request(n, provider="openai", model="gpt-4o", input_tokens=1000,
                              output_tokens=100, web_searches=5,
                              ts=(T + timedelta(minutes=n)).isoformat()) for n in range(3)]
    ingest_on_path(lake, [write("a.jsonl", rows[:1]), write("b.jsonl", rows[1:])], "group",
                   monkeypatch)
    engine = Engine(lake)
    try:
        cost._PER_MODEL_DAY.clear()
        same = cost.what_if(engine, Filters.between(T, T + timedelta(hours=1)), "openai",
                            "gpt-4o").row(0, named=True)
    finally:
        engine.close()
    # the same traffic on the same model costs what it cost (the searches were read as savings)
    assert same["whatif_cost_usd"] == pytest.approx(same["cost_usd"], rel=1e-12)
    assert same["cost_usd"] == pytest.approx(3 * genai("gpt-4o", "openai", 1000, 100, 5))


def _negotiated():
    """A negotiated rate for gpt-4o's tokens: $2 / $8 per million instead of $2.50 / $10."""
    from lib.pricing import Override
    return {("openai", "gpt-4o"): Override("openai", "gpt-4o", 2.0, 8.0)}


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_an_override_of_the_token_prices_keeps_the_search_price(lake, write, monkeypatch,
                                                                 path):
    # An override gives USD per million tokens; a search is no token. With one, every search
    # cost $0 (3 searches: $0.03 gone from a $0.0028 call), on every path and in reprice.
    overrides = _negotiated()
    want = {0: (1000 * 2.0 + 100 * 8.0) / 1e6, 3: (1000 * 2.0 + 100 * 8.0) / 1e6 + 0.03}
    assert request_cost("openai", "gpt-4o", T, 1000, 0, 0, 100, overrides=overrides,
                        web_searches=3) == pytest.approx(want[3])
    assert unit_prices("openai", "gpt-4o", T, overrides)["web_search"] == pytest.approx(0.01)
    got = _costs_of_searches(lake, write, monkeypatch, path, [0, 3, 3, 0], overrides)
    assert got == pytest.approx({f"r{n}": want[s] for n, s in enumerate([0, 3, 3, 0])},
                                rel=1e-9)
    assert reprice(lake, overrides=overrides)["changed_rows"] == 0
