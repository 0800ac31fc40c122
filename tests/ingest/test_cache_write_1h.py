"""Writes to Anthropic's one-hour prompt cache cost more than to the five-minute one ($6 against
$3.75 per M tokens for Claude Sonnet 4): ``cache_write_1h_tokens`` (a part of
``cache_write_tokens``) is priced by genai-prices at its own price on every ingest path, by
reprice, in the token mix and in the what-if; provider logs and Langfuse usage give it.

Expected costs are genai-prices' own ``calc_price``, called here directly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from genai_prices import Usage, calc_price

from lib.filters import Filters
from lib.ingest.formats import langfuse
from lib.metrics import cost
from lib.pricing import reprice, request_cost
from lib.store import Engine
from tests.ingest.conftest import INGEST_PATHS, canonical_request, ingest_on_path

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SONNET = ("anthropic", "claude-sonnet-4-5")


def genai(provider, model, ts, i, c=0, w=0, o=0, w1h=0) -> float:
    """genai-prices' price of one call (its convention: input holds cache reads and writes, the
    one-hour writes are a part of the writes)."""
    return float(calc_price(Usage(input_tokens=i, cache_read_tokens=c, cache_write_tokens=w,
                                  cache_write_1h_tokens=w1h, output_tokens=o),
                            model, provider_id=provider, genai_request_timestamp=ts).total_price)


# (input, cached, writes, of them 1 h, output): below and past the 200k-token tier
MIXES = [(10_000, 1_000, 5_000, 5_000, 100), (10_000, 0, 5_000, 2_000, 100),
         (10_000, 0, 5_000, 0, 100), (300_000, 0, 5_000, 5_000, 100)]


def test_one_hour_writes_cost_what_genai_prices_says():
    for i, c, w, h, o in MIXES:
        got = request_cost(*SONNET, T, i, c, w, o, overrides={}, cache_write_1h_tokens=h)
        assert got == pytest.approx(genai(*SONNET, T, i, c, w, o, h), rel=1e-12)
    # they are dearer: 1 h writes of 5,000 tokens cost more than 5 min ones
    assert request_cost(*SONNET, T, *MIXES[0][:3], 100, overrides={},
                        cache_write_1h_tokens=5000) > \
        request_cost(*SONNET, T, *MIXES[0][:3], 100, overrides={})
    # more one-hour writes than writes contradict each other: no price
    assert request_cost(*SONNET, T, 10_000, 0, 100, 10, overrides={},
                        cache_write_1h_tokens=200) is None


def _rows() -> list[dict]:
    return [canonical_request(n, provider=SONNET[0], model=SONNET[1], input_tokens=i,
                              cached_input_tokens=c, cache_write_tokens=w,
                              cache_write_1h_tokens=h, output_tokens=o,
                              ts=(T + timedelta(minutes=n)).isoformat())
            for n, (i, c, w, h, o) in enumerate(MIXES)]


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_every_ingest_path_prices_them_and_reprice_agrees(lake, write, monkeypatch, path):
    rows = _rows()
    files = [write("a.jsonl", rows[:2]), write("b.jsonl", rows[2:])]
    report = ingest_on_path(lake, files, path, monkeypatch)
    assert [(f.stored, f.quarantined) for f in report.files] == [({"requests": 2}, 0)] * 2
    engine = Engine(lake)
    try:
        got = dict(engine.query("SELECT request_id, cost_usd FROM requests").rows())
        h1 = dict(engine.query("SELECT request_id, cache_write_1h_tokens FROM requests").rows())
    finally:
        engine.close()
    assert got == pytest.approx({f"r{n}": genai(*SONNET, T, i, c, w, o, h)
                                 for n, (i, c, w, h, o) in enumerate(MIXES)}, rel=1e-9)
    assert h1 == {f"r{n}": m[3] for n, m in enumerate(MIXES)}
    # reprice computes what the ingest stored
    assert reprice(lake, overrides={})["changed_rows"] == 0


def test_more_one_hour_writes_than_writes_are_quarantined(lake, write, monkeypatch):
    files = [write("a.jsonl", [canonical_request(0, cache_write_tokens=10,
                                                 cache_write_1h_tokens=20),
                               canonical_request(1)])]
    report = ingest_on_path(lake, files, "exact", monkeypatch)
    assert (report.files[0].stored, report.files[0].reasons) == ({"requests": 1}, [
        "line 1: cache_write_1h_tokens (20) exceed cache_write_tokens (10), which must include "
        "them"])


def test_anthropic_logs_and_langfuse_usage_give_the_one_hour_writes(lake, write, monkeypatch):
    message = {"id": "msg_1h", "type": "message", "role": "assistant",
               "model": "claude-sonnet-4-20250514", "content": [{"type": "text", "text": "ok"}],
               "stop_reason": "end_turn",
               "usage": {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 0,
                         "cache_creation_input_tokens": 100_000,
                         "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                            "ephemeral_1h_input_tokens": 100_000}}}
    wrapped = {"ts": T.isoformat(), "response": message}
    report = ingest_on_path(lake, [write("claude.jsonl", [wrapped])], "exact", monkeypatch)
    assert report.files[0].stored == {"requests": 1}
    engine = Engine(lake)
    try:
        row = engine.query("SELECT input_tokens, cache_write_tokens, cache_write_1h_tokens, "
                           "cost_usd, attributes FROM requests").row(0, named=True)
    finally:
        engine.close()
    assert (row["input_tokens"], row["cache_write_tokens"], row["cache_write_1h_tokens"]) == (
        100_010, 100_000, 100_000)
    assert row["cost_usd"] == pytest.approx(
        genai("anthropic", "claude-sonnet-4-20250514", T, 100_010, 0, 100_000, 20, 100_000),
        rel=1e-12)
    # (the breakdown is a column now, not an attribute)
    assert "usage.cache_creation.ephemeral_1h_input_tokens" not in json.loads(row["attributes"])
    # Langfuse's LangChain usage: the 1 h tier of the writes
    assert langfuse.usage_details({"input": 5, "input_cache_creation": 300,
                                   "input_ephemeral_1h_input_tokens": 200,
                                   "input_ephemeral_5m_input_tokens": 100,
                                   "output": 1})[0] == (305, 0, 300, 1, 0, 200)


def test_langfuse_own_one_hour_bucket_is_one_hour_writes(lake, write, monkeypatch):
    # Langfuse's server maps OTel / AI SDK usage to its own disjoint buckets, the 1 h writes as
    # input_cache_creation_1h beside input_cache_creation (and _5m), and prices that key at the
    # 1 h rate (its default Anthropic prices; OtelIngestionProcessor.cacheUsage.test.ts). Read
    # as 5 min writes, the call cost 0.0289 where Langfuse and genai-prices say 0.0313 (review).
    details = {"input": 2, "input_cached_tokens": 47105, "input_cache_creation": 0,
               "input_cache_creation_5m": 0, "input_cache_creation_1h": 1076, "output": 714}
    assert langfuse.usage_details(details)[0] == (48183, 47105, 1076, 714, 0, 1076)
    # beside the flat 5 min key (a hook's own split): both are writes, the 1 h ones a part
    assert langfuse.usage_details({"input": 10, "cache_read_input_tokens": 7,
                                   "cache_creation_input_tokens": 120,
                                   "input_cache_creation_1h": 180, "output": 4})[0] == (
        317, 7, 300, 4, 0, 180)
    obs = {"id": "g1", "traceId": "t1", "type": "GENERATION", "name": "chat",
           "startTime": T.isoformat(), "endTime": (T + timedelta(seconds=1)).isoformat(),
           "model": SONNET[1], "usageDetails": details}
    report = ingest_on_path(lake, [write("lf.jsonl", [obs])], "exact", monkeypatch)
    assert report.files[0].stored["requests"] == 1
    engine = Engine(lake)
    try:
        row = engine.query("SELECT cache_write_tokens, cache_write_1h_tokens, cost_usd "
                           "FROM requests").row(0, named=True)
    finally:
        engine.close()
    assert (row["cache_write_tokens"], row["cache_write_1h_tokens"]) == (1076, 1076)
    assert row["cost_usd"] == pytest.approx(
        genai("anthropic", SONNET[1], T, 48183, 47105, 1076, 714, 1076), rel=1e-12)


def test_the_token_mix_and_what_if_price_them_at_their_own_price(lake, write, monkeypatch):
    ingest_on_path(lake, [write("a.jsonl", _rows()[:3]), write("b.jsonl", _rows()[3:])],
                   "group", monkeypatch)
    engine = Engine(lake)
    try:
        f = Filters.between(T - timedelta(hours=1), T + timedelta(hours=1))
        mix = {r["kind"]: r for r in cost.token_mix(engine, f).iter_rows(named=True)}
        # unit prices from genai-prices at each call's tier (a call past 200k input tokens
        # pays the tier's for every token): 5 min writes at w(i), 1 h writes at h(i) per token
        def w(i):
            return genai(*SONNET, T, i, 0, i) / i

        def h(i):
            return genai(*SONNET, T, i, 0, i, 0, i) / i

        ones = sum(m[3] for m in MIXES)
        fives = sum(m[2] - m[3] for m in MIXES)
        assert (mix["cache_write_1h"]["tokens"], mix["cache_write"]["tokens"]) == (ones, fives)
        assert mix["cache_write_1h"]["cost_usd"] == pytest.approx(
            sum(m[3] * h(m[0]) for m in MIXES), rel=1e-12)
        assert mix["cache_write"]["cost_usd"] == pytest.approx(
            sum((m[2] - m[3]) * w(m[0]) for m in MIXES), rel=1e-12)
        # the what-if on the same model gives, below the tier, what the calls cost
        below = f.with_window(T - timedelta(hours=1), T + timedelta(minutes=3))
        same = cost.what_if(engine, below, *SONNET).row(0, named=True)
        assert same["whatif_cost_usd"] == pytest.approx(same["cost_usd"], rel=1e-12)
    finally:
        engine.close()
