"""Hostile review of lib/ingest/grouped.py: small canonical JSONL files read together must store,
report and commit, file by file, what the same run with groups turned off
(SIGHTLINE_INGEST_GROUP=0: fastpath.try_ingest, then the exact path) gives. Every test here runs
both and compares (the oracle), plus explicit expectations where a plain comparison could hide
a shared mistake."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from lib import pricing
from lib.ingest import fastpath, grouped, pipeline
from lib.ingest.pipeline import ingest_paths
from lib.ingest.validate import derive_eval_id
from lib.store import Lake
from tests.conftest import T0
from tests.ingest import groups_oracle
from tests.ingest.conftest import canonical_request, jsonl_bytes

# the oracle (tests/ingest/groups_oracle.py)
OLD = groups_oracle.OLD
_file = groups_oracle.aged_file
_rows = groups_oracle.rows_of


def _chained_files(tmp_path: Path, count: int) -> Path:
    """A folder of ``count`` files of two new rows each and one of the file before's rows."""
    d = tmp_path / "in"
    for n in range(count):
        _file(d, f"{n}.jsonl", _rows(10 * n, 2) + _rows(10 * n - 10, 1))
    return d
_run = groups_oracle.ingest_as
_same_as_one_at_a_time = groups_oracle.same_as_one_at_a_time
_assert_same = groups_oracle.assert_same
_commits = groups_oracle.commits_of

MIDNIGHT = T0.replace(hour=0)  # the start of T0's day
# A day the bundled prices have context variants for (batch, flex, priority: from 2026-10)
CTX_DAY = datetime(2026, 10, 20, 12, tzinfo=UTC)
DAY = timedelta(days=1)
k = canonical_request


# -- helpers --------------------------------------------------------------------------------------

def _at(delta: timedelta) -> str:
    return (MIDNIGHT + delta).isoformat()


def _with_fresh_inputs(tmp_path, monkeypatch, make, hook, **kw):
    """Like :func:`_same_as_one_at_a_time` for inputs a test changes while they are ingested:
    ``make(folder)`` writes them again before each run (the same names), ``hook(group, paths,
    mp)`` patches what the run calls (undone after it)."""
    lakes, results = {}, {}
    folder = tmp_path / "in"
    for group in (False, True):
        shutil.rmtree(folder, ignore_errors=True)
        paths = make(folder)
        lake = lakes[group] = Lake(tmp_path / f"store-{group}")
        with monkeypatch.context() as mp:
            hook(group, paths, mp)
            results[group] = _run(lake, [folder], mp, group, **kw)
    _assert_same(results, lakes)
    return results[True][2], lakes[True]


def _by_name(lake: Lake) -> dict:
    return {Path(c.source).name: c.rows for c in lake.commits() if c.kind == "ingest"}


def _costs(lake: Lake) -> dict:
    files = [str(lake.root / p) for p in lake.snapshot().files["requests"]]
    return dict(duckdb.sql("SELECT request_id, cost_usd FROM read_parquet($f)",
                           params={"f": files}).fetchall())


# -- keys ------------------------------------------------------------------------------------------

def test_duplicate_keys_around_midnight_on_neighbouring_days_and_in_chains(tmp_path, monkeypatch):
    d = tmp_path / "in"
    minute, hour = timedelta(minutes=1), timedelta(hours=1)

    def prepare(lake):
        ingest_paths(lake, [str(_file(tmp_path / "before", "old.jsonl", [
            k(1, ts=_at(-minute)),            # 23:59 the day before
            k(2, ts=_at(DAY + minute)),       # 00:01 the day after
            k(3, ts=_at(3 * DAY)),            # three days on: no neighbour of day 0
        ]))], compact_min_files=0)

    sources = [
        _file(d, "a.jsonl", [k(1, ts=_at(minute)), k(10, ts=_at(minute))]),  # r1 stored
        _file(d, "b.jsonl", [k(2, ts=_at(DAY - minute)), k(3, ts=_at(hour))]),  # r2 stored; r3 not
        _file(d, "c.jsonl", [k(10, ts=_at(-minute)), k(11, ts=_at(DAY))]),  # r10: a's, a day on
        _file(d, "d.jsonl", [k(20, ts=_at(5 * DAY))]),
        _file(d, "e.jsonl", [k(20, ts=_at(7 * DAY - minute))]),  # day 6: d's (day 5) neighbour
        _file(d, "f.jsonl", [k(20, ts=_at(8 * DAY))]),  # day 8: e's was dropped, d's is far
        _file(d, "g.jsonl", [k(30), k(31), k(30, latency_ms=1.0)]),  # r30 twice: other values
        _file(d, "h.jsonl", [k(31, ts=_at(DAY + hour)), k(32, request_id=""),
                             k(33, request_id=None)]),  # r31 is g's (alone, before)
        _file(d, "i.jsonl", [k(40, request_id=" "), k(41, request_id="R31"), k(42)]),
        # an id of blanks is none: quarantined as missing, in each file (not j's as i's repeat)
        _file(d, "j.jsonl", [k(43, request_id=" ", latency_ms=5.0), k(44)]),
        _file(d, "k.jsonl", [k(30, ts=_at(DAY)), k(45)]),  # r30: stored by g, read alone
    ]
    passes, lake, reports = _same_as_one_at_a_time(tmp_path, monkeypatch, sources,
                                                   prepare=prepare)
    assert passes and passes[0] == len(sources)
    stored = {Path(r[0]).name: (r[2], r[3], r[4]) for r in reports}
    assert stored == {
        "a.jsonl": ({"requests": 1}, {"requests": 1}, 0),
        "b.jsonl": ({"requests": 1}, {"requests": 1}, 0),
        "c.jsonl": ({"requests": 1}, {"requests": 1}, 0),
        "d.jsonl": ({"requests": 1}, {"requests": 0}, 0),
        "e.jsonl": ({"requests": 0}, {"requests": 1}, 0),
        "f.jsonl": ({"requests": 1}, {"requests": 0}, 0),
        "g.jsonl": ({"requests": 2}, {"requests": 0}, 1),
        "h.jsonl": ({"requests": 0}, {"requests": 1}, 2),
        "i.jsonl": ({"requests": 2}, {"requests": 0}, 1),
        "j.jsonl": ({"requests": 1}, {"requests": 0}, 1),
        "k.jsonl": ({"requests": 1}, {"requests": 1}, 0),
    }


def test_tables_and_compressions_mixed_with_derived_ids_shared_across_files(
        tmp_path, monkeypatch):
    d = tmp_path / "in"
    ts = T0.isoformat()
    derived = derive_eval_id("run1", "c1", "acc", None)
    sources = [
        _file(d, "01-req.jsonl", [k(1), k(2)]),
        _file(d, "02-eval.jsonl", [{"run_id": "run1", "case_id": "c1", "metric": "acc",
                                    "score": 1, "ts": ts},
                                   {"eval_id": "e2", "metric": "acc", "score": 0.5, "ts": ts}]),
        _file(d, "03-req.jsonl.gz", [k(2), k(3)], gz=True),  # r2: 01's, another compression
        _file(d, "04-event.jsonl", [{"ts": ts, "kind": "deploy", "title": "v1"},
                                    {"event_id": "ev1", "ts": ts, "kind": "note"}]),
        _file(d, "05-eval.jsonl.gz", [{"eval_id": derived, "metric": "acc", "score": 0,
                                       "ts": ts},  # 02's derived id, given
                                      {"run_id": "run1", "case_id": "c2", "metric": "acc",
                                       "epoch": 1, "score": 0.25, "ts": ts}], gz=True),
        _file(d, "06-span.jsonl", [{"span_id": "s1", "ts": ts, "name": "a", "duration_ms": 2},
                                   {"span_id": "s2", "ts": ts, "name": "b"}]),
        _file(d, "07-event.jsonl.gz", [{"ts": ts, "kind": "deploy", "title": "v1"},  # 04's
                                       {"ts": ts, "kind": "deploy", "title": "v2"}], gz=True),
        _file(d, "08-eval.jsonl", [{"eval_id": "", "run_id": "run1", "case_id": "c2",
                                    "metric": "acc", "epoch": 1, "score": 0.75,
                                    "ts": ts}]),  # 05's, derived from an empty eval_id
        _file(d, "09-span.jsonl", [{"span_id": "s2", "ts": (T0 + DAY).isoformat()},
                                   {"span_id": "s3", "ts": ts}]),  # s2: 06's, a day on
        _file(d, "10-req.jsonl", [k(3, ts=_at(-timedelta(minutes=1))), k(4)]),  # r3: 03's
    ]
    passes, lake, _ = _same_as_one_at_a_time(tmp_path, monkeypatch, sources)
    assert sorted(passes) == [1, 1, 1, 1, 2, 2, 2]  # one pass per (table, compression)
    assert _by_name(lake) == {
        "01-req.jsonl": {"requests": 2}, "02-eval.jsonl": {"evals": 2},
        "03-req.jsonl.gz": {"requests": 1}, "04-event.jsonl": {"events": 2},
        "05-eval.jsonl.gz": {"evals": 1}, "06-span.jsonl": {"spans": 2},
        "07-event.jsonl.gz": {"events": 1}, "08-eval.jsonl": {}, "09-span.jsonl": {"spans": 1},
        "10-req.jsonl": {"requests": 1}}


# -- values ----------------------------------------------------------------------------------------

def test_extra_keys_underscores_unicode_and_long_values_differing_between_files(
        tmp_path, monkeypatch):
    d = tmp_path / "in"
    long = "x" * 150_000  # (two of them: 300 KB, well under FILE_BYTES)
    sources = [
        _file(d, "a.jsonl", [k(1, x=1, attributes={"b": 2, "z": None}), k(2, x=None)]),
        # names the group's own columns use: the file column, partition columns, reasons
        _file(d, "b.jsonl", [k(3, _sl_file="spoof", _f=3, _day="2020-01-01", _reason="r",
                               _line=7, _raw="raw", _fast_extras=1, _price_ctx="c",
                               _sl_members="m")]),
        _file(d, "c.jsonl", [k(4)]),  # no extra key: the others' are absent here
        _file(d, "d.jsonl", (json.dumps(k(5, **{"clé ☃": "välue 😀", "service": "sérvice",
                                                "": "empty key", "feature": "a\u0000b"}),
                                        ensure_ascii=False) + "\n").encode()),  # raw UTF-8
        _file(d, "e.jsonl", [k(6, input_text=long, extra_long=long)]),
        _file(d, "f.jsonl", [k(7, attributes="not an object", y=1)]),  # quarantined: alone
        _file(d, "g.jsonl", [k(8, X=2, source_file="elsewhere.log")]),  # a row's own source
        _file(d, "h.jsonl", [k(9, nested={"a": [1, {"b": None}]}, tags=["t"], n=1.50,
                               big=123456789012345678901234567890, attributes={"x": 1},
                               batch_id="mine", ingested_at="2020-01-01")]),
        _file(d, "i.jsonl", [k(10, attributes=[1, 2])]),  # not an object: alone
        _file(d, "j.jsonl", [k(11, x="from j")]),
    ]
    passes, lake, _ = _same_as_one_at_a_time(tmp_path, monkeypatch, sources)
    assert passes[0] == len(sources)
    files = [str(lake.root / p) for p in lake.snapshot().files["requests"]]
    rows = dict(((r, (a, s)) for r, a, s in duckdb.sql(
        "SELECT request_id, attributes, source_file FROM read_parquet($f)",
        params={"f": files}).fetchall()))
    attrs = json.loads(rows["r3"][0])
    assert attrs["_sl_file"] == "spoof" and attrs["_f"] == 3  # the user's, not the group's
    assert rows["r3"][1] == str(sources[1])
    assert rows["r4"] == (None, str(sources[2]))  # no key of another file leaks in
    assert json.loads(rows["r1"][0]) == {"b": 2, "x": 1, "z": None}
    assert json.loads(rows["r11"][0]) == {"x": "from j"}
    assert rows["r8"][1] == "elsewhere.log"


def test_odd_bytes_and_odd_numbers_between_clean_files(tmp_path, monkeypatch):
    d = tmp_path / "in"
    good = jsonl_bytes(_rows(900, 2))
    line = json.dumps(k(50)).encode()
    sources = [
        _file(d, "00-good.jsonl", _rows(0, 2)),
        _file(d, "01-blank-only.jsonl", b"\n\n  \n\t\n"),
        _file(d, "02-bom.jsonl", b"\xef\xbb\xbf" + jsonl_bytes(_rows(20, 2))),
        _file(d, "03-crlf.jsonl", jsonl_bytes(_rows(30, 2)).replace(b"\n", b"\r\n")),
        _file(d, "04-no-last-newline.jsonl", jsonl_bytes(_rows(40, 2)).rstrip(b"\n")),
        _file(d, "05-bad-utf8.jsonl", line[:-2] + b'"x\xff\xfe"}\n' + good),
        _file(d, "06-not-objects.jsonl", jsonl_bytes(_rows(60, 1)) + b'[1]\n"x"\nnull\n1\n'),
        _file(d, "07-numbers.jsonl", [k(70, input_tokens=12.5), k(71, input_tokens=12.0),
                                      k(72, input_tokens="12"), k(73, input_tokens=True),
                                      k(74, cache_hit=True), k(75, cache_hit="yes"),
                                      k(76, latency_ms="1e2"), k(77, output_tokens=-0.0)]),
        _file(d, "08-clean-numbers.jsonl", [k(80, input_tokens=12.0), k(81, cache_hit="TRUE"),
                                            k(82, latency_ms="1e2", ts=1772452800)]),
        _file(d, "09-blank-lines.jsonl", b"\n\n" + jsonl_bytes(_rows(90, 2)) + b"\n \n"),
        _file(d, "10-empty-object.jsonl", jsonl_bytes(_rows(100, 1)) + b"{}\n"),
        _file(d, "11-key-twice.jsonl",
              line.replace(b'"request_id": "r50"', b'"request_id": "r110", "request_id": "r111"')
              + b"\n"),
        _file(d, "12-ws-line-ends.jsonl", jsonl_bytes(_rows(120, 2)).replace(b"\n", b" \t\n")),
        _file(d, "13-good.jsonl", _rows(130, 2)),
    ]
    passes, lake, reports = _same_as_one_at_a_time(tmp_path, monkeypatch, sources)
    assert passes and passes[0] >= 10
    by = {Path(r[0]).name: r for r in reports}
    assert by["13-good.jsonl"][2] == {"requests": 2}
    assert by["06-not-objects.jsonl"][4] == 4  # quarantined, with their lines
    assert by["08-clean-numbers.jsonl"][2] == {"requests": 3}


def test_prices_tiers_contexts_time_of_day_and_overrides_across_files(tmp_path, monkeypatch):
    d = tmp_path / "in"
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n"
                      "  - provider: self-hosted\n    model: llama-x\n"
                      "    input_per_mtok: 1.0\n    output_per_mtok: 2.0\n"
                      "  - provider: openai\n    model: gpt-4o\n"
                      "    input_per_mtok: 10.0\n    output_per_mtok: 20.0\n")
    overrides = pricing.load_overrides(prices)
    gem = {"provider": "google", "model": "gemini-1.5-pro"}
    ds = {"provider": "deepseek", "model": "deepseek-v4-pro"}
    sonnet = {"provider": "anthropic", "model": "claude-sonnet-4-5"}
    mini = {"provider": "openai", "model": "gpt-5-mini"}
    ctx = CTX_DAY.isoformat()
    sources = [
        _file(d, "a.jsonl", [k(1, input_tokens=200_000, **gem),
                             k(2, input_tokens=1000, **gem)]),  # over and under the tier
        _file(d, "b.jsonl", [k(3, input_tokens=1000, **gem)]),
        _file(d, "c.jsonl", [k(4, input_tokens=300_000, ts=ctx, attributes={"processing": "batch"},
                               **sonnet),  # a context past a tier
                             k(5, input_tokens=300_000, ts=ctx, **sonnet)]),
        _file(d, "d.jsonl", [k(6 + i, ts=_at(t), **ds) for i, t in enumerate(
            (timedelta(minutes=59), timedelta(hours=1), timedelta(hours=4) - timedelta(
                microseconds=1), timedelta(hours=4)))]),
        _file(d, "e.jsonl", [k(10, ts=_at(timedelta(hours=2)), **ds),
                             k(11, ts=ctx, service_tier="flex", **mini)]),  # top-level key
        _file(d, "f.jsonl", [k(12, ts=ctx, attributes={"service_tier": "PRIORITY"}, **mini),
                             k(13, ts=ctx, **mini)]),
        _file(d, "g.jsonl", [k(14, provider="nobody", model="unpriced-model"),
                             k(15, provider="self-hosted", model="llama-x"),
                             k(16)]),  # gpt-4o: overridden
        _file(d, "h.jsonl", [k(17, ts=ctx, provider="anthropic", model="claude-haiku-4-5",
                               processing="batch")]),
    ]
    passes, lake, _ = _same_as_one_at_a_time(tmp_path, monkeypatch, sources,
                                             overrides=overrides)
    assert passes == [len(sources)]
    costs = _costs(lake)

    def cost(provider, model, when, tokens=1000, context=None):
        return pricing.request_cost(provider, model, when, tokens, output_tokens=500,
                                    overrides=overrides, context=context)

    assert costs["r14"] is None  # unpriced: null, never $0
    assert costs["r15"] == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6, rel=1e-12)
    assert costs["r16"] == pytest.approx((1000 * 10.0 + 500 * 20.0) / 1e6, rel=1e-12)
    for rid, tokens in (("r1", 200_000), ("r2", 1000)):
        when = T0 + timedelta(minutes=int(rid[1:]))
        assert costs[rid] == pytest.approx(cost("google", "gemini-1.5-pro", when, tokens))
    night = cost("deepseek", "deepseek-v4-pro", MIDNIGHT + timedelta(hours=2))
    day = cost("deepseek", "deepseek-v4-pro", MIDNIGHT + timedelta(hours=4))
    assert night != day
    assert (costs["r7"], costs["r8"], costs["r9"]) == pytest.approx((night, night, day))
    # each context priced as its own, the same model without one at the standard price
    want = {"r4": cost("anthropic", "claude-sonnet-4-5", CTX_DAY, 300_000, "processing=batch"),
            "r5": cost("anthropic", "claude-sonnet-4-5", CTX_DAY, 300_000),
            "r11": cost("openai", "gpt-5-mini", CTX_DAY, context="service_tier=flex"),
            "r12": cost("openai", "gpt-5-mini", CTX_DAY, context="service_tier=priority"),
            "r13": cost("openai", "gpt-5-mini", CTX_DAY),
            "r17": cost("anthropic", "claude-haiku-4-5", CTX_DAY, context="processing=batch")}
    assert len({want["r4"], want["r5"]}) == len({want["r11"], want["r12"], want["r13"]}) - 1
    assert {r: costs[r] for r in want} == pytest.approx(want, rel=1e-12)


# -- contents and names --------------------------------------------------------------------------

def test_same_content_under_several_names_and_content_stored_before(tmp_path, monkeypatch):
    d = tmp_path / "in"
    shared = jsonl_bytes(_rows(0, 3))
    before = jsonl_bytes(_rows(50, 2))

    def prepare(lake):
        ingest_paths(lake, [str(_file(tmp_path / "before", "old.jsonl", before))],
                     compact_min_files=0)

    sources = [
        _file(d, "a.jsonl", shared),
        _file(d, "b.jsonl", _rows(10, 2)),
        _file(d, "c-copy-of-a.jsonl", shared),
        _file(d, "d-copy-of-a.jsonl.gz", shared, gz=True),  # same content, compressed
        _file(d, "e-stored-before.jsonl", before),
        _file(d, "f.jsonl", _rows(20, 2) + _rows(0, 1)),  # r0: a's
        _file(d, "g-copy-of-f.jsonl", jsonl_bytes(_rows(20, 2) + _rows(0, 1))),
    ]
    passes, lake, reports = _same_as_one_at_a_time(tmp_path, monkeypatch, sources,
                                                   prepare=prepare)
    assert passes == [3]  # a, b, f; the copies are read alone (as duplicates)
    assert [r[7] for r in reports] == [False, False, True, True, True, False, True]
    assert sum(c.kind == "seen" for c in lake.commits()) == 4


def test_forced_jsonl_format_on_names_that_say_otherwise(tmp_path, monkeypatch):
    d = tmp_path / "in"
    sources = [
        _file(d, "a.txt", _rows(0, 2)),
        _file(d, "b.csv", _rows(10, 2) + _rows(0, 1)),
        _file(d, "c.log", b"request_id,ts\nr1,2026-01-01\n"),  # no JSON: alone, its error
        _file(d, "d", _rows(30, 2)),
    ]
    _, lake, reports = _same_as_one_at_a_time(tmp_path, monkeypatch, sources, fmt="jsonl")
    assert [r[2] for r in reports] == [{"requests": 2}, {"requests": 2}, {}, {"requests": 2}]


def test_each_row_carries_its_own_files_lineage_and_the_same_schema(tmp_path, monkeypatch):
    d = tmp_path / "in"
    for n in range(6):  # several days each, so each file writes several partitions
        _file(d, f"{n}.jsonl", [k(10 * n + i, ts=_at(i * DAY + timedelta(minutes=n)))
                                for i in range(3)], gz=n % 2 == 1)
    passes, lake, _ = _same_as_one_at_a_time(tmp_path, monkeypatch, [d])
    assert sorted(passes) == [3, 3]
    by_source = {c.source: c for c in lake.commits()}
    files = [str(lake.root / p) for p in lake.snapshot().files["requests"]]
    lineage = duckdb.sql("SELECT source_file, batch_id, ingested_at, count(*), "
                         "list(request_id ORDER BY request_id) FROM read_parquet($f) "
                         "GROUP BY ALL", params={"f": files}).fetchall()
    assert len(lineage) == 6
    for source, batch_id, ingested_at, n, ids in lineage:
        c = by_source[source]
        n_file = int(Path(source).name.split(".")[0])
        assert (batch_id, ingested_at.isoformat(), n) == (c.commit_id, c.committed_at, 3)
        assert ids == [f"r{10 * n_file + i}" for i in range(3)]
    # every file of the store has the schema the fast path writes
    other = Lake(tmp_path / "store-False")
    want = {str(pq.read_schema(other.root / p)) for p in other.snapshot().files["requests"]}
    got = {str(pq.read_schema(lake.root / p)) for p in lake.snapshot().files["requests"]}
    assert got == want and len(got) == 1


# -- files that change while the run reads them ----------------------------------------------------

def _hook_after_group_read(group: bool, mp, target: Path, change) -> None:
    """``change(target)`` at the same point of either run: with groups, just after the group
    read the file (it is then checked at its turn); without, just before its turn."""
    if group:
        real = grouped._read

        def read(lake, i, src, *a):
            m = real(lake, i, src, *a)
            if src.path == str(target):
                change(target)
            return m
        mp.setattr(grouped, "_read", read)
    else:
        real_try = fastpath.try_ingest
        done = []

        def try_ingest(lake, src, *a):
            if src.path == str(target) and not done:
                done.append(True)
                change(target)
            return real_try(lake, src, *a)
        mp.setattr(fastpath, "try_ingest", try_ingest)


def _three(folder: Path) -> list[Path]:
    return [_file(folder, f"{n}.jsonl", _rows(10 * n, 2)) for n in range(3)]


@pytest.mark.parametrize("change", ["append", "truncate", "replace", "rewrite-newer"])
def test_a_file_changed_after_the_group_read_it_is_read_as_changed(
        tmp_path, monkeypatch, change):
    def changed(p: Path) -> None:
        if change == "append":
            with open(p, "ab") as fh:
                fh.write(jsonl_bytes(_rows(500, 1)))
        elif change == "truncate":
            with open(p, "r+b") as fh:
                fh.truncate(10)
        elif change == "replace":  # rotated: a new file under the name
            p.rename(p.with_name(".rotated"))
            p.write_bytes(jsonl_bytes(_rows(600, 2)))
        else:  # same size, new content, a newer mtime
            data = p.read_bytes()
            p.write_bytes(data.replace(b'"r1', b'"x1'))
        if change != "replace":
            os.utime(p, (OLD + 5, OLD + 5))

    _with_fresh_inputs(tmp_path, monkeypatch, _three,
                       lambda group, paths, mp: _hook_after_group_read(group, mp, paths[1],
                                                                       changed))


# Regression (found by this review, fixed in lib/ingest while it ran): a member deleted after
# the group read it made fastpath._changed raise FileNotFoundError out of the whole run.
def test_a_file_deleted_after_the_group_read_it(tmp_path, monkeypatch):
    def hook(group, paths, mp):
        real = pipeline._pause_for_tests

        def pause(stage):  # after the first file's commit, on either path
            if stage == "after_commit" and paths[1].exists():
                paths[1].unlink()
            return real(stage)
        mp.setattr(pipeline, "_pause_for_tests", pause)

    _with_fresh_inputs(tmp_path, monkeypatch, _three, hook)


# Regression (found by this review, fixed in lib/ingest while it ran): a member rewritten in
# place keeping size and mtime was committed with the new rows under the old content's hash.
def test_a_file_rewritten_in_place_keeping_size_and_mtime_after_the_group_read_it(
        tmp_path, monkeypatch):
    def rewrite(p: Path) -> None:
        data = p.read_bytes()
        new = data.replace(b'"r1', b'"x1')
        assert len(new) == len(data) and new != data
        p.write_bytes(new)
        os.utime(p, (OLD, OLD))  # as listed

    _with_fresh_inputs(tmp_path, monkeypatch, _three,
                       lambda group, paths, mp: _hook_after_group_read(group, mp, paths[1],
                                                                       rewrite))


# -- dry runs, repeated runs, removed batches ------------------------------------------------------

def test_a_dry_run_on_a_store_with_keys_matches_and_writes_nothing(tmp_path, monkeypatch):
    d = tmp_path / "in"
    _file(d, "a.jsonl", _rows(0, 3))
    _file(d, "b.jsonl", _rows(2, 3))  # r2: a's, and stored before
    _file(d, "c.jsonl", _rows(100, 1) + [k(101, input_tokens=-1)])  # alone, quarantines
    _file(d, "d.jsonl", _rows(100, 2) + _rows(200, 1))  # r100: c's (stored alone, before)
    _file(d, "e.jsonl", _rows(0, 3))  # a's content

    results = {}
    for group in (False, True):
        root = tmp_path / f"store-{group}"
        ingest_paths(Lake(root), [str(_file(tmp_path / "before", "old.jsonl",
                                            [k(2), k(300)]))], compact_min_files=0)
        before = (sorted(p for p in root.rglob("*") if "_tmp" not in p.parts),
                  len(Lake(root).commits()))
        lake = Lake(root).checking()
        _, reports, passes = _run(lake, [d], monkeypatch, group)
        results[group] = reports
        assert (sorted(p for p in root.rglob("*") if "_tmp" not in p.parts),
                len(Lake(root).commits())) == before
        if group:
            assert passes and passes[0] == 4
    assert results[True] == results[False]
    assert [r[2] for r in results[True]] == [
        {"requests": 2}, {"requests": 2}, {"requests": 1}, {"requests": 2}, {}]
    # and a real run then reports what the dry run said it would
    real = _run(Lake(tmp_path / "store-True"), [d], monkeypatch, True)[1]
    assert [r[:-1] for r in real] == [r[:-1] for r in results[True]]
    # a dry run's report names no batch (none exists); a real run's does, but for the copy
    assert [r[-1] for r in results[True]] == [True] * 5
    assert [r[-1] for r in real] == [False] * 4 + [True]


def test_a_repeated_run_then_removed_batches_read_again(tmp_path, monkeypatch):
    d = _chained_files(tmp_path, 4)
    lakes, steps = {}, {}
    for group in (False, True):
        lake = lakes[group] = Lake(tmp_path / f"store-{group}")
        first = _run(lake, [d], monkeypatch, group)
        again = _run(Lake(lake.root), [d], monkeypatch, group)
        assert all(r[9] for r in again[1]) and again[2] == []  # all skipped
        ids = {Path(c.source).name: c.commit_id for c in Lake(lake.root).commits()}
        for name in ("0.jsonl", "2.jsonl"):  # r10 stays (1's); r20 goes (3 had it as dupe)
            Lake(lake.root).remove_batch(ids[name], info={"reason": "test"})
        third = _run(Lake(lake.root), [d], monkeypatch, group)
        steps[group] = (first, again[:2], third)
        if group:
            assert third[2] == [2]  # the two removed files, read again as a group
    for a, b in zip(steps[True], steps[False], strict=True):
        assert a[:2] == b[:2]
    assert _commits(lakes[True], ("file", "removed_batch")) == \
        _commits(lakes[False], ("file", "removed_batch"))
    assert [r[2] for r in steps[True][2][1] if not r[9]] == [{"requests": 3},
                                                              {"requests": 2}]


# -- S3 --------------------------------------------------------------------------------------------

def _put(s3_server, bodies: dict) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="logs")
    for key, body in bodies.items():
        s3.put_object(Bucket="logs", Key=key, Body=body)


def test_s3_objects_with_odd_keys_mixed_with_local_files_in_one_group(
        tmp_path, monkeypatch, s3_server):
    d = tmp_path / "in"
    _file(d, "l1.jsonl", _rows(0, 2))
    _file(d, "l2.jsonl.gz", _rows(10, 2) + _rows(0, 1), gz=True)
    _put(s3_server, {
        "p/a b.jsonl": jsonl_bytes(_rows(10, 1) + _rows(20, 1)),  # r10: l2's
        "p/c[1]*?.jsonl": jsonl_bytes(_rows(30, 2)),  # glob characters: DuckDB reads a copy
        "p/d#.jsonl.gz": gzip.compress(jsonl_bytes(_rows(40, 2)), mtime=0),
        "p/e-bom.jsonl": b"\xef\xbb\xbf" + jsonl_bytes(_rows(50, 1)),
        "p/f-bad.jsonl": jsonl_bytes(_rows(60, 1)) + b"{bad\n",
        "p/g.txt": jsonl_bytes(_rows(70, 1, attributes={"processing": "batch"})),
        "p/h-copy-of-l1.jsonl": (d / "l1.jsonl").read_bytes(),
        "p/ü%20+.jsonl": jsonl_bytes(_rows(80, 1, extra={"k": "v"})),
    })
    passes, lake, reports = _same_as_one_at_a_time(
        tmp_path, monkeypatch, [d, "s3://logs/p/"], s3_endpoint_url=s3_server,
        commits_without=("file", "ingest_path"))  # (the exact path records none)
    assert max(passes) >= 6
    assert [Path(r[0]).name for r in reports][:3] == ["l1.jsonl", "l2.jsonl.gz", "a b.jsonl"]
    fast = {Path(c.source).name for c in lake.commits()
            if c.info.get("ingest_path") in ("fast", "group")}
    # (the BOM, the malformed and the copy are read alone: the exact path, as without groups)
    assert fast == {"l1.jsonl", "l2.jsonl.gz", "a b.jsonl", "c[1]*?.jsonl", "d#.jsonl.gz",
                    "g.txt", "ü%20+.jsonl"}


# Regression (found by this review, fixed in lib/ingest while it ran): an S3 object of rows
# all stored before was reported stored {'requests': 0}; the exact path reports {}.
def test_an_s3_object_of_rows_all_stored_before_reports_as_without_groups(
        tmp_path, monkeypatch, s3_server):
    _put(s3_server, {"p/1.jsonl": jsonl_bytes(_rows(0, 2)),
                     "p/2.jsonl": jsonl_bytes(_rows(0, 1)),  # r0: 1's
                     "p/3.jsonl": jsonl_bytes(_rows(30, 1))})
    _same_as_one_at_a_time(tmp_path, monkeypatch, ["s3://logs/p/"], s3_endpoint_url=s3_server,
                           commits_without=("file", "ingest_path"))


# -- limits, failures, progress -------------------------------------------------------------------

def test_group_limits_at_their_exact_bounds_with_keys_across_groups(tmp_path, monkeypatch):
    d = tmp_path / "in"
    paths = [_file(d, f"{n:02d}.jsonl", _rows(10 * n, 2) + _rows(10 * (n - 1), 1))
             for n in range(2, 9)]  # each has one key of the file before; all one size
    (size,) = {p.stat().st_size for p in paths}
    monkeypatch.setattr(grouped, "FILE_BYTES", size)  # every file, exactly
    monkeypatch.setattr(grouped, "GROUP_FILES", 3)
    monkeypatch.setattr(grouped, "GROUP_BYTES", 3 * size)
    passes, lake, _ = _same_as_one_at_a_time(tmp_path, monkeypatch, [d])
    assert passes == [3, 3]  # 02-04, 05-07; 08 alone
    assert list(_by_name(lake).values()) == [{"requests": 3}] + [{"requests": 2}] * 6
    sources = [pipeline._file_source(p, pipeline.memo.Readers.of(None)) for p in paths]
    assert [grouped.run_at(sources, i, None) for i in range(7)] == [3, 3, 3, 3, 3, 2, 0]
    monkeypatch.setattr(grouped, "GROUP_BYTES", 3 * size - 1)
    assert [grouped.run_at(sources, i, None) for i in range(7)] == [2] * 6 + [0]
    monkeypatch.setattr(grouped, "FILE_BYTES", size - 1)
    assert [grouped.run_at(sources, i, None) for i in range(7)] == [0] * 7


@pytest.mark.parametrize("failing", ["commit", "mark", "pass"])
def test_failures_inside_the_group_fall_back_to_reading_alone(tmp_path, monkeypatch, failing):
    d = _chained_files(tmp_path, 5)
    lakes, results = {}, {}
    for group in (False, True):
        lake = lakes[group] = Lake(tmp_path / f"store-{group}")
        with monkeypatch.context() as mp:
            if group and failing == "commit":
                real = fastpath.adopt_new_rows

                def adopt(lake_, batch, con, name, files, real=real, **kw):
                    if batch.source.endswith("1.jsonl") and "deduplicate" in kw:
                        raise OSError("disk full")  # the group's commit of 1.jsonl only
                    return real(lake_, batch, con, name, files, **kw)
                mp.setattr(fastpath, "adopt_new_rows", adopt)
            elif group and failing == "mark":
                mp.setattr(grouped, "_mark_maybe_stored",
                           lambda *a: (_ for _ in ()).throw(RuntimeError("no")))
            elif group:  # every pass of the group fails (the fast path alone does not)
                mp.setattr(grouped, "_pass",
                           lambda *a, **kw: (_ for _ in ()).throw(RuntimeError("no")))
            results[group] = _run(lake, [d], mp, group)
    _assert_same(results, lakes)
    assert all(rows == {"requests": 2} for n, rows in _by_name(lakes[True]).items()
               if n != "0.jsonl")


def test_progress_ends_each_file_as_without_groups(tmp_path, monkeypatch):
    d = tmp_path / "in"
    for n in range(4):
        _file(d, f"{n}.jsonl", _rows(10 * n, 3), gz=n == 2)
    _file(d, "4-bad.jsonl", _rows(40, 1) + [k(41, input_tokens=-1)])
    _file(d, "5.jsonl", _rows(50, 2))
    seen = {}
    for group in (False, True):
        monkeypatch.setenv("SIGHTLINE_INGEST_GROUP", "1" if group else "0")
        ticks = seen[group] = []
        ingest_paths(Lake(tmp_path / f"store-{group}"), [str(d)], compact_min_files=0,
                     progress=lambda p, t=ticks: t.append(
                         (p.source, p.files_done, p.files_total, p.rows, p.bytes_read,
                          p.bytes_total)))
    last = {g: {t[0]: t for t in ticks} for g, ticks in seen.items()}
    assert last[True] == last[False] and len(last[True]) == 6
    done = [t[1] for t in seen[True]]
    assert done == sorted(done)  # files in order


# Regression (found by this review, fixed in lib/ingest while it ran): a progress callback
# raising after a member's commit made the group read it alone and report a duplicate file.
def test_a_progress_callback_that_raises(tmp_path, monkeypatch):
    d = tmp_path / "in"
    for n in range(3):
        _file(d, f"{n}.jsonl", _rows(10 * n, 2))

    def progress(p):
        raise BrokenPipeError("the terminal went away")

    _, lake, reports = _same_as_one_at_a_time(tmp_path, monkeypatch, [d], progress=progress)
    assert [r[6] for r in reports] == ["BrokenPipeError: the terminal went away"] * 3
    assert lake.commits() == []  # nothing stored, nor remembered as seen


# Found by the review: a group member's first progress with rows came after its commit.
def test_a_progress_callback_that_raises_once_rows_are_read(tmp_path, monkeypatch):
    d = tmp_path / "in"
    for n in range(3):
        _file(d, f"{n}.jsonl", _rows(10 * n, 2))

    def progress(p):
        if p.rows:
            raise BrokenPipeError("the terminal went away")

    _, lake, reports = _same_as_one_at_a_time(tmp_path, monkeypatch, [d], progress=progress)
    assert [r[6] for r in reports] == ["BrokenPipeError: the terminal went away"] * 3


def test_a_store_under_a_folder_named_like_a_partition(tmp_path, monkeypatch):
    # read as hive partitions, the outermost "<name>=" of a path won: every file was read alone
    d = _chained_files(tmp_path, 3)
    base = tmp_path / f"{grouped.MEMBER_DIR}=1" / f"{grouped.DAY_DIR}=2020-01-01"
    base.mkdir(parents=True)
    passes, _, _ = _same_as_one_at_a_time(base, monkeypatch, [d])
    assert passes == [3]  # and still read together


def test_grouped_files_that_grow_are_read_on_from_where_the_group_read_them(
        tmp_path, monkeypatch):
    d = tmp_path / "in"
    paths = [_file(d, f"{n}.jsonl", _rows(10 * n, 2)) for n in range(3)]
    lakes, results = {}, {}
    for group in (False, True):
        lake = lakes[group] = Lake(tmp_path / f"store-{group}")
        _run(lake, [d], monkeypatch, group)
        for p in paths[:2]:  # appended to since; aged again
            old = p.read_bytes()
            p.write_bytes(old + jsonl_bytes(_rows(500 + len(old), 1) + _rows(0, 1)))
            os.utime(p, (OLD + 1, OLD + 1))
        results[group] = _run(Lake(lake.root), [d], monkeypatch, group)
        for p in paths[:2]:  # as they were, for the other run
            p.write_bytes(jsonl_bytes(_rows(10 * int(p.stem), 2)))
            os.utime(p, (OLD, OLD))
    _assert_same(results, lakes)
    reports = results[True][1]
    assert [r[9] is not None for r in reports] == [True, False, False]  # 2.jsonl: unchanged
    assert [r[2] for r in reports[1:]] == [{"requests": 1}, {"requests": 1}]  # r0: stored
    assert all(r[14]["line"] == 3 for r in reports[1:])  # read on from the third line
