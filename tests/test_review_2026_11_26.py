"""Review of the commits after ec95508: a call without token counts has no cost, standard input
and pipes, S3 retries, the manifest listing stamp, prices.yaml ``priced_as``.

The review's findings (a part of a token count without its whole, standard input given twice, a
blank request.model, an alias without a provider) are fixed; their tests stay here, with those
pinning down behaviour that was checked and that the tests beside each change do not cover."""

from __future__ import annotations

import io
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from lib import pricing
from lib.ingest.pipeline import ingest_paths
from lib.store import Engine, Lake
from lib.store import lake as lake_module
from tests.conftest import make_request, requests_table
from tests.ingest.conftest import (
    INGEST_PATHS,
    canonical_request,
    fed_fifo,
    ingest_on_path,
    jsonl_bytes,
)
from tests.ingest.test_s3_retries import credentials, slamming_endpoint  # noqa: F401 (fixtures)

DAY = datetime(2026, 11, 2, 12, tzinfo=UTC)  # batch price variants exist from 2026-10-14


def _ingest(tmp_path, monkeypatch, path: str, parts: list[list[dict]], overrides=None,
            store: str = "store", quarantined: list[int] | None = None) -> Lake:
    """Ingest ``parts`` (one file each) on ``path``; ``quarantined``: how many rows each part
    has quarantined (default none)."""
    folder = tmp_path / f"in-{store}"
    folder.mkdir()
    files = [folder / f"{n}.jsonl" for n in range(len(parts))]
    for file, rows in zip(files, parts, strict=True):
        file.write_bytes(jsonl_bytes(rows))
    lake = Lake(tmp_path / store)
    report = ingest_on_path(lake, files, path, monkeypatch, compact_min_files=0,
                            overrides={} if overrides is None else overrides)
    assert [(f.error, f.quarantined) for f in report.files] == [
        (None, q) for q in (quarantined or [0] * len(parts))]
    return lake


def _costs(lake: Lake) -> dict:
    engine = Engine(lake)
    try:
        return dict(engine.query("SELECT request_id, round(cost_usd, 12) FROM requests").rows())
    finally:
        engine.close()


# -- 1. a call that did not fail and logged no input token count has no cost ------------------

@pytest.mark.parametrize("path", list(INGEST_PATHS))
def test_status_synonyms_null_status_and_output_only_calls_cost_alike_on_every_path(
        tmp_path, monkeypatch, path):
    none = {"input_tokens": None, "output_tokens": None}
    rows = [
        # output alone: every call reads input, so its cost is not known either (priced on
        # its output, it read as priced at a fraction of its cost)
        canonical_request(0, input_tokens=None, output_tokens=10),
        canonical_request(1, **none, status="failed"),  # a synonym of error: $0
        # an error by its type; a timeout may have been billed: unknown (OTel review)
        canonical_request(2, **none, status=None, error_type="Timeout"),
        canonical_request(3, **none, status=None),  # no status, no error: ok, cost unknown
        canonical_request(4, **none, status="success"),  # a synonym of ok
        canonical_request(5, input_tokens=0, output_tokens=0),  # counts logged as zero: $0
    ]
    lake = _ingest(tmp_path, monkeypatch, path, [rows[:3], rows[3:]])
    assert _costs(lake) == {"r0": None, "r1": 0.0, "r2": None, "r3": None, "r4": None,
                            "r5": 0.0}
    engine = Engine(lake)
    listed = pricing.unpriced_models(engine).select("model", "reason", "requests").rows()
    engine.close()
    assert listed == [("gpt-4o", pricing.NO_USAGE, 3), ("gpt-4o", pricing.TIMED_OUT, 1)]
    assert pricing.reprice(lake, overrides={}, dry_run=True)["changed_rows"] == 0


# input_tokens null while cached_input_tokens is not: validation's check
# A part without its whole (cached tokens without input_tokens, reasoning tokens without
# output_tokens) was stored: "cached + write > input" is NULL. The SQL paths then priced the
# whole as 0 (too little, silently), price_frame (the Arrow path, reprice) left it unpriced, and
# cache savings counted it. Such a row is now quarantined on every path, with its line.
@pytest.mark.parametrize("path", INGEST_PATHS)
def test_a_token_part_without_its_whole_is_quarantined_on_every_path(tmp_path, monkeypatch,
                                                                       path):
    rows = [canonical_request(0, input_tokens=None, cached_input_tokens=500, output_tokens=10),
            canonical_request(1, output_tokens=None, reasoning_tokens=40),
            canonical_request(2)]
    lake = _ingest(tmp_path, monkeypatch, path, [rows[:2], rows[2:]], quarantined=[2, 0])
    engine = Engine(lake)
    try:
        assert engine.query("SELECT request_id FROM requests").rows() == [("r2",)]
        reasons = engine.query("SELECT line, reason FROM quarantine ORDER BY line").rows()
    finally:
        engine.close()
    assert reasons == [
        (1, "cached_input_tokens + cache_write_tokens (500) given without input_tokens, which "
            "must include them"),
        (2, "reasoning_tokens (40) given without output_tokens, which must include them")]


# -- 2. standard input and pipes ---------------------------------------------------------------

class _Stdin:
    def __init__(self, data: bytes):
        self.buffer = io.BufferedReader(io.BytesIO(data))


def test_standard_input_given_twice_is_read_once_without_an_error(lake, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Stdin(jsonl_bytes([canonical_request(i)
                                                          for i in range(3)])))
    report = ingest_paths(lake, ["-", "-"], overrides={}, compact_min_files=0)
    assert [f.error for f in report.files] == [None, None] and report.ok
    # in the report's order: the second "-" is told before the read of the first (it said "it
    # was read once, above" over the line of that read, found in review)
    assert [(f.skipped or "", f.stored) for f in report.files] == [
        ("standard input given again: it is read once, on its own line", {}),
        ("", {"requests": 3})]
    assert not sys.stdin.buffer.closed  # not ours to close


def test_a_link_to_a_fifo_is_read_as_a_stream_and_a_glob_never_opens_a_fifo(lake, tmp_path):
    rows = jsonl_bytes([canonical_request(i) for i in range(4)])
    link = tmp_path / "link-to-calls"
    with fed_fifo(tmp_path / "calls.pipe", rows) as fifo:
        link.symlink_to(fifo)
        (report,) = ingest_paths(lake, [str(link)], overrides={}).files
    assert (report.source, report.error, report.stored) == (str(link), None, {"requests": 4})
    # a glob matching only the FIFO does not open it (which would wait for a writer)
    (report,) = ingest_paths(lake, [str(tmp_path / "*.pipe")], overrides={}).files
    assert report.error == "no file matches this pattern"


# -- 3. S3 retries -------------------------------------------------------------------------------

def test_aws_max_attempts_alone_is_honoured_under_standard_retries(
        lake, monkeypatch, credentials, slamming_endpoint):  # noqa: F811
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    url, connections = slamming_endpoint
    (report,) = ingest_paths(lake, ["s3://logs/p/"], s3_endpoint_url=url).files
    assert report.error and connections() == 2


# -- 4. the manifest listing stamp ---------------------------------------------------------------

def test_a_lake_that_wrote_then_reads_sees_another_writers_removal_and_commit(
        tmp_path, monkeypatch):
    monkeypatch.setattr(lake_module, "SETTLED_NS", 100_000_000)
    mine = Lake(tmp_path / "store")
    for i in range(2):
        mine.append({"requests": requests_table([make_request(i)])}, source=f"s{i}")
    first = mine.commits()[0].commit_id
    time.sleep(0.35)
    engine = Engine(mine)
    assert engine.scalar("SELECT count(*) FROM requests") == 2
    version = mine.version()
    assert mine.version() == version  # settled: the stamp stands
    other = Lake(mine.root)
    other.remove_batch(first)
    assert engine.scalar("SELECT count(*) FROM requests") == 1  # the removal is seen at once
    time.sleep(0.35)
    assert engine.scalar("SELECT count(*) FROM requests") == 1
    other.append({"requests": requests_table([make_request(7)])}, source="s7")
    assert engine.scalar("SELECT count(*) FROM requests") == 2
    assert mine.version() == Lake(mine.root).version()
    engine.close()


# -- 5. provider-native logs: model is the model asked for ------------------------------------

def _failed_call(i: int, asked) -> dict:
    return {"ts": f"2026-03-02T12:0{i}:00Z", "model": "gpt-4o",
            "request": {"model": asked, "messages": []},
            "error": {"type": "RateLimitError", "status_code": 429, "message": "slow",
                      "request_id": f"req_{i}"}}


def test_a_blank_or_non_text_request_model_falls_back_to_the_wrappers_model(lake, tmp_path):
    path = tmp_path / "calls.jsonl"
    path.write_bytes(jsonl_bytes([_failed_call(0, ""), _failed_call(1, " "),
                                  _failed_call(2, 4)]))
    (report,) = ingest_paths(lake, [str(path)], "openai", overrides={}).files
    assert (report.error, report.stored) == (None, {"requests": 3})
    engine = Engine(lake)
    got = dict(engine.query("SELECT request_id, model FROM requests").rows())
    engine.close()
    # "" falls back as documented; " " and 4 gave "unknown"
    assert got == {"req_0": "gpt-4o", "req_1": "gpt-4o", "req_2": "gpt-4o"}


# -- 6. priced_as --------------------------------------------------------------------------------

def _prices(tmp_path, text: str) -> dict:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    return pricing.load_overrides(path)


def test_an_alias_without_a_provider_prices_every_call_its_check_accepted(tmp_path):
    overrides = _prices(tmp_path, "models:\n  - model: my-claude\n"
                                  "    priced_as: claude-sonnet-4-5\n")  # accepted by the check
    target = pricing.request_cost("anthropic", "claude-sonnet-4-5", DAY, 1000, 0, 0, 500,
                                  overrides={})
    assert target == pytest.approx(0.0105)
    # an OpenAI-compatible gateway, a Bedrock application inference profile: got None for both
    assert [pricing.request_cost(p, "my-claude", DAY, 1000, 0, 0, 500, overrides=overrides)
            for p in ("anthropic", None, "openai", "aws.bedrock")] == [target] * 4


ALIAS = """
models:
  - provider: anthropic
    model: My-Sonnet
    priced_as: claude-sonnet-4-5
"""


@pytest.mark.parametrize("path", ["fast", "exact", "arrow"])
def test_an_alias_takes_its_targets_batch_and_tier_prices_and_savings(tmp_path, monkeypatch,
                                                                      path):
    from lib.filters import Filters
    from lib.metrics import cost

    overrides = _prices(tmp_path, ALIAS)
    monkeypatch.setenv("SIGHTLINE_PRICES", str(tmp_path / "prices.yaml"))
    batch = {"attributes": {"processing": "batch"}}
    mixes = [(1000, 500, 500, batch), (250_000, 100_000, 500, {}), (250_000, 100_000, 500, batch)]
    rows = [canonical_request(i, provider="Anthropic", model="my-sonnet",  # other case
                              ts=(DAY + timedelta(minutes=i)).isoformat(), input_tokens=n,
                              cached_input_tokens=c, output_tokens=o, **extra)
            for i, (n, c, o, extra) in enumerate(mixes)]
    lake = _ingest(tmp_path, monkeypatch, path, [rows], overrides=overrides)
    truth = {f"r{i}": round(pricing.request_cost(
        "anthropic", "claude-sonnet-4-5", DAY + timedelta(minutes=i), n, c, 0, o, overrides={},
        context=extra.get("attributes")), 12) for i, (n, c, o, extra) in enumerate(mixes)}
    assert _costs(lake) == truth
    assert truth["r2"] == pytest.approx(truth["r1"] / 2)  # batch: half, past the tier too
    saved = sum(pricing.request_cache_savings(
        "anthropic", "claude-sonnet-4-5", DAY + timedelta(minutes=i), c, {},
        extra.get("attributes"), input_tokens=n, output_tokens=o)
        for i, (n, c, o, extra) in enumerate(mixes))
    engine = Engine(lake)
    try:
        window = Filters.between(DAY - timedelta(days=1), DAY + timedelta(days=1))
        assert pricing.cache_savings_sql(engine) == pytest.approx(saved)
        assert cost.cache_savings(engine, window) == pytest.approx(saved)
    finally:
        engine.close()
    assert pricing.unit_prices("anthropic", "MY-SONNET", DAY, overrides, "processing=batch") \
        == pricing.unit_prices("anthropic", "claude-sonnet-4-5", DAY, {}, "processing=batch")
