"""A run's files share one DuckDB connection per ingest path (lib/ingest/fastpath.py
reused_connection / shared_or_own): nothing of one file may leak into the next. Each test ingests
several files in ONE ingest_paths call and checks that what is stored (rows, costs, quarantine)
and reported for each is what ingesting that file alone into a fresh store gives."""

from __future__ import annotations

import csv
import gc
import gzip
import io
import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from lib.ingest import fastpath
from lib.ingest.pipeline import ingest_paths
from lib.store import Lake
from tests.conftest import T0
from tests.ingest.conftest import canonical_request, jsonl_bytes, stored_rows

LINEAGE = ("batch_id", "ingested_at")
TABLES = ("requests", "evals", "events", "spans", "quarantine")
OLD = 1_000_000_000  # an mtime long past: not held back as a live file


def _file(folder: Path, name: str, content) -> Path:
    """A file ``name`` in ``folder`` (rows as JSONL, or bytes), aged so it is read now."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else jsonl_bytes(content))
    os.utime(path, (OLD, OLD))
    return path


def _store(lake: Lake) -> dict[str, list[tuple]]:
    # a quarantined row's ts is when it was quarantined
    return {t: stored_rows(lake, t, LINEAGE + (("ts",) if t == "quarantine" else ()))
            for t in TABLES}


def _summary(f) -> tuple:
    return (f.format, f.stored, f.duplicates, f.quarantined, f.reasons, f.error,
            f.duplicate_file, f.unreadable, f.skipped, f.rows_read)


def _alone(tmp_path: Path, paths: list[Path], tag: str = "alone") -> tuple[dict, list]:
    """Each file ingested alone into a fresh store: the union of their stores, their reports."""
    union: dict[str, list] = {t: [] for t in TABLES}
    reports = []
    for k, path in enumerate(paths):
        lake = Lake(tmp_path / f"{tag}-{k}")
        report = ingest_paths(lake, [str(path)], compact_min_files=0)
        assert len(report.files) == 1
        reports.append(_summary(report.files[0]))
        for t, rows in _store(lake).items():
            union[t].extend(rows)
    return {t: sorted(rows, key=repr) for t, rows in union.items()}, reports


def _together(lake: Lake, paths: list[Path]) -> tuple[dict, list]:
    report = ingest_paths(lake, [str(p) for p in paths], compact_min_files=0)
    assert len(report.files) == len(paths)
    store = {t: sorted(rows, key=repr) for t, rows in _store(lake).items()}
    return store, [_summary(f) for f in report.files]


def _no_leftovers(lake: Lake) -> None:
    assert getattr(fastpath._SHARED, "state", None) is None
    tmp = lake.tmp_dir
    assert not tmp.exists() or list(tmp.iterdir()) == [], list(tmp.rglob("*"))


def _check(tmp_path: Path, paths: list[Path], tag: str = "run") -> dict[str, int]:
    """The files together in one run store and report what each stores and reports alone."""
    ref_store, ref_reports = _alone(tmp_path, paths, tag + "-alone")
    lake = Lake(tmp_path / tag)
    store, reports = _together(lake, paths)
    for k, (got, want) in enumerate(zip(reports, ref_reports, strict=True)):
        assert got == want, f"file {k} ({paths[k].name}) reported differently in a run"
    for t in TABLES:
        assert store[t] == ref_store[t], f"table {t} differs"
    _no_leftovers(lake)
    return {t: len(rows) for t, rows in store.items()}


@pytest.fixture(params=["fast", "group", "exact-sql"])
def path_kind(request, monkeypatch):
    """The path a run's files take: the fast path one file at a time, the fast path's groups of
    small files (lib/ingest/grouped.py), or the exact SQL path."""
    monkeypatch.setenv("SIGHTLINE_INGEST_FAST", "0" if request.param == "exact-sql" else "1")
    monkeypatch.setenv("SIGHTLINE_INGEST_GROUP", "1" if request.param == "group" else "0")
    return request.param


def _rows(start: int, n: int, **overrides) -> list[dict]:
    return [canonical_request(start + i, **overrides) for i in range(n)]


# -- price contexts, tiers, time of day ------------------------------------------------------------

def test_price_context_then_none(tmp_path, path_kind):
    d = tmp_path / "in"
    paths = [
        _file(d, "a.jsonl", _rows(0, 5, provider="anthropic", model="claude-haiku-4-5",
                                  attributes={"processing": "batch"})),
        _file(d, "b.jsonl", _rows(100, 5, provider="anthropic", model="claude-haiku-4-5")),
        _file(d, "c.jsonl", _rows(200, 5, provider="openai", model="gpt-5-mini",
                                  service_tier="flex")),
        _file(d, "d.jsonl", _rows(300, 5, provider="openai", model="gpt-5-mini")),
        _file(d, "e.jsonl", _rows(400, 5, provider="openai", model="gpt-5-mini",
                                  attributes={"service_tier": "flex"})),
    ]
    _check(tmp_path, paths)


def test_past_a_price_tier_then_under_it(tmp_path, path_kind):
    d = tmp_path / "in"
    paths = [
        _file(d, "a.jsonl", _rows(0, 4, provider="anthropic", model="claude-sonnet-4-5",
                                  input_tokens=250_000)
              + _rows(50, 2, provider="anthropic", model="claude-sonnet-4-5")),
        _file(d, "b.jsonl", _rows(100, 4, provider="anthropic", model="claude-sonnet-4-5")),
        # the same token mix as a's tiered rows, a day later: priced on its own
        _file(d, "c.jsonl", [canonical_request(200 + i, provider="anthropic",
                                               model="claude-sonnet-4-5", input_tokens=250_000,
                                               ts=(T0 + timedelta(days=1, minutes=i)).isoformat())
                             for i in range(3)]),
    ]
    _check(tmp_path, paths)


def test_time_of_day_pricing_then_a_day_priced_model(tmp_path, path_kind):
    d = tmp_path / "in"
    night = [canonical_request(i, provider="deepseek", model="deepseek-v4-pro",
                               ts=(T0 + timedelta(hours=i)).isoformat()) for i in range(24)]
    paths = [
        _file(d, "a.jsonl", night),
        _file(d, "b.jsonl", _rows(100, 5)),
        _file(d, "c.jsonl", [canonical_request(200 + i, provider="deepseek",
                                               model="deepseek-v4-pro",
                                               ts=(T0 + timedelta(hours=13, minutes=i)).isoformat())
                             for i in range(3)]),
    ]
    _check(tmp_path, paths)


# -- files that fall back, fail, repeat or are empty -----------------------------------------------

def test_a_fallback_a_failure_a_duplicate_and_an_empty_file_between_clean_ones(tmp_path,
                                                                                path_kind):
    d = tmp_path / "in"
    bad = jsonl_bytes(_rows(0, 5, provider="anthropic", model="claude-haiku-4-5",
                            attributes={"processing": "batch"})) \
        + b'{"request_id": "bad"}\n' + jsonl_bytes(_rows(10, 3))
    truncated = gzip.compress(jsonl_bytes(_rows(500, 50)))[:-20]
    clean = _rows(100, 5)
    paths = [
        _file(d, "a.jsonl", bad),
        _file(d, "b.jsonl", clean),
        _file(d, "c.jsonl.gz", truncated),
        _file(d, "d.jsonl", _rows(200, 5, provider="anthropic", model="claude-haiku-4-5")),
        _file(d, "e.jsonl", b""),
        _file(d, "f.jsonl", _rows(300, 3, input_tokens=250_000, provider="anthropic",
                                  model="claude-sonnet-4-5")),
    ]
    _check(tmp_path, paths)
    # a copy of a file stored earlier in the same run is a duplicate file, nothing stored again
    lake = Lake(tmp_path / "dup")
    copy = _file(d / "copy", "b-again.jsonl", jsonl_bytes(clean))
    report = ingest_paths(lake, [str(paths[1]), str(copy), str(paths[3])], compact_min_files=0)
    assert [f.duplicate_file for f in report.files] == [False, True, False]
    assert [f.stored for f in report.files] == [{"requests": 5}, {}, {"requests": 5}]
    _no_leftovers(lake)


def test_repeated_keys_across_files_are_duplicates_as_in_separate_runs(tmp_path, path_kind):
    d = tmp_path / "in"
    paths = [_file(d, "a.jsonl", _rows(0, 5)),
             _file(d, "b.jsonl", _rows(3, 5)),   # r3, r4 already stored
             _file(d, "c.jsonl", _rows(0, 10))]
    lake = Lake(tmp_path / "together")
    together = ingest_paths(lake, [str(p) for p in paths], compact_min_files=0)
    ref = Lake(tmp_path / "one-by-one")
    apart = [ingest_paths(ref, [str(p)], compact_min_files=0).files[0] for p in paths]
    assert [(f.stored, f.duplicates) for f in together.files] == [
        (f.stored, f.duplicates) for f in apart]
    assert _store(lake) == _store(ref)
    _no_leftovers(lake)


def test_a_mix_of_formats(tmp_path, path_kind):
    d = tmp_path / "in"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["request_id", "ts", "provider", "model", "input_tokens",
                                        "output_tokens", "latency_ms", "status"])
    w.writeheader()
    for r in _rows(300, 4, provider="anthropic", model="claude-haiku-4-5"):
        w.writerow({k: r[k] for k in w.fieldnames})
    fixtures = Path(__file__).parent / "fixtures"
    genai = (fixtures / "genai_handwritten.jsonl").read_bytes()
    paths = [
        _file(d, "a.jsonl", _rows(0, 4, provider="anthropic", model="claude-haiku-4-5",
                                  attributes={"processing": "batch"})),
        _file(d, "b.csv", buf.getvalue().encode()),
        _file(d, "c.jsonl", genai),
        _file(d, "d.jsonl", _rows(100, 4, provider="anthropic", model="claude-haiku-4-5")),
        _file(d, "e.jsonl", jsonl_bytes([{"eval_id": f"e{i}", "ts": T0.isoformat(),
                                          "metric": "acc", "score": 0.5} for i in range(3)])),
        _file(d, "f.jsonl", _rows(200, 4)),
    ]
    _check(tmp_path, paths)


# -- dry runs, several lakes, threads --------------------------------------------------------------

def test_a_dry_run_then_a_real_run_then_another_lake(tmp_path, path_kind):
    d = tmp_path / "in"
    paths = [_file(d, "a.jsonl", _rows(0, 5, provider="anthropic", model="claude-haiku-4-5",
                                       attributes={"processing": "batch"})),
             _file(d, "b.jsonl", _rows(100, 5, provider="anthropic", model="claude-haiku-4-5"))]
    ref_store, ref_reports = _alone(tmp_path, paths)
    root = tmp_path / "store"
    Lake(root).tmp_dir.parent.mkdir(parents=True, exist_ok=True)
    dry = Lake(root, dry_run=True)
    checked = ingest_paths(dry, [str(p) for p in paths], compact_min_files=0)
    assert [f.stored for f in checked.files] == [r[1] for r in ref_reports]
    assert getattr(fastpath._SHARED, "state", None) is None
    lake = Lake(root)
    store, reports = _together(lake, paths)
    assert reports == ref_reports and store == ref_store
    # two lakes alternately in one thread
    other = Lake(tmp_path / "other")
    for k, p in enumerate(paths):
        ingest_paths(other, [str(p)], compact_min_files=0)
        ingest_paths(Lake(tmp_path / f"third-{k}"), [str(p)], compact_min_files=0)
    assert {t: sorted(r, key=repr) for t, r in _store(other).items()} == ref_store
    del dry, checked  # a dry run's own folder in _tmp lives as long as its lake
    gc.collect()
    _no_leftovers(lake)
    _no_leftovers(other)


def test_two_threads_on_two_lakes_at_once(tmp_path, path_kind):
    d = tmp_path / "in"
    sets = [[_file(d / "x", f"{k}.jsonl", _rows(100 * k, 20, provider="anthropic",
                                                  model="claude-haiku-4-5",
                                                  **({"attributes": {"processing": "batch"}}
                                                     if k % 2 else {})))
             for k in range(4)],
            [_file(d / "y", f"{k}.jsonl", _rows(1000 + 100 * k, 20, provider="anthropic",
                                                 model="claude-sonnet-4-5",
                                                 input_tokens=250_000 if k % 2 else 1000))
             for k in range(4)]]
    refs = [_alone(tmp_path, s, f"ref{n}") for n, s in enumerate(sets)]
    lakes = [Lake(tmp_path / "t0"), Lake(tmp_path / "t1")]
    out: list = [None, None]
    errors: list = []
    barrier = threading.Barrier(2)

    def run(n: int) -> None:
        try:
            barrier.wait()
            out[n] = _together(lakes[n], sets[n])
            assert getattr(fastpath._SHARED, "state", None) is None
        except BaseException as exc:  # noqa: BLE001 (re-raised below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for n in (0, 1):
        assert out[n] == refs[n]
        _no_leftovers(lakes[n])


# -- spilling --------------------------------------------------------------------------------------

def test_a_file_that_spills_then_more_files(tmp_path, path_kind, monkeypatch):
    from lib.ingest import pipeline

    monkeypatch.setattr(fastpath, "MEMORY_LIMIT", "8MB")
    d = tmp_path / "in"
    big = [canonical_request(i, input_text="x" * 200 + str(i),
                             ts=(T0 + timedelta(seconds=7 * i)).isoformat(),
                             **({"attributes": {"processing": "batch"}, "provider": "anthropic",
                                 "model": "claude-haiku-4-5"} if i % 3 == 0 else {}))
           for i in range(12_000)]  # (5,000 spill too under 8 MB; 40,000 took 5 s more)
    paths = [_file(d, "a.jsonl", _rows(61_000, 5)),
             _file(d, "big.jsonl", big),
             _file(d, "b.jsonl", _rows(62_000, 5, provider="anthropic",
                                       model="claude-haiku-4-5")),
             _file(d, "c.jsonl", _rows(63_000, 5, attributes={"processing": "batch"},
                                       provider="anthropic", model="claude-haiku-4-5"))]
    opened: list[Path] = []  # connections made: a spilled one is replaced by a new one
    for module, name in ((fastpath, "_connection"), (pipeline, "_new_sql_connection")):
        monkeypatch.setattr(module, name, lambda tmp, real=getattr(module, name):
                            opened.append(tmp) or real(tmp))
    if path_kind == "exact-sql":  # its segments fit in memory: make the big file's spill
        real_write = pipeline._write_good_rows

        def write_spilling(lake, batch, con, name, source_name, *rest):
            if source_name.endswith("big.jsonl"):
                con.execute("SET memory_limit = '64MB'")
                con.execute("SELECT s, count(*) FROM (SELECT md5(range::VARCHAR) AS s "
                            "FROM range(3000000)) GROUP BY s ORDER BY s LIMIT 1").fetchall()
                con.execute(f"SET memory_limit = '{pipeline.SQL_MEMORY_LIMIT}'")
            return real_write(lake, batch, con, name, source_name, *rest)

        monkeypatch.setattr(pipeline, "_write_good_rows", write_spilling)
    stored = _check(tmp_path, paths)
    assert stored["requests"] == 12_015, "the big file was not stored: the test proves nothing"
    assert len(opened) > len(paths) + 1, "no file spilled: the test proves nothing"


def test_after_a_run_nothing_stays_open(tmp_path, path_kind):
    d = tmp_path / "in"
    paths = [_file(d, f"{k}.jsonl", _rows(10 * k, 3)) for k in range(3)]
    lake = Lake(tmp_path / "store")
    ingest_paths(lake, [str(d)], compact_min_files=0)
    _no_leftovers(lake)
    # an ingest that raises out of the run (an interrupt) still ends the shared state
    calls = []
    real = Lake.begin

    def boom(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    other = Lake(tmp_path / "other")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Lake, "begin", boom)
        with pytest.raises(KeyboardInterrupt):
            ingest_paths(other, [str(p) for p in paths], compact_min_files=0)
    assert getattr(fastpath._SHARED, "state", None) is None
