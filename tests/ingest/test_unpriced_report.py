"""An ingest says which requests it stored without a cost: their cost is unknown, not $0, and a
cron job's report was the only place its user looked (the Data page lists them too)."""

from __future__ import annotations

import json

import pytest

from lib.cli import main
from lib.ingest.pipeline import ingest_paths, ingest_stream
from tests.ingest.conftest import INGEST_PATHS, canonical_request, jsonl_bytes

ROWS = [
    canonical_request(0),  # gpt-4o: priced
    canonical_request(1, provider="acme", model="acme-ultra-9"),
    canonical_request(2, provider="acme", model="acme-ultra-9"),
    canonical_request(3, provider=None, model="house-model"),
    canonical_request(4, input_tokens=None),  # usage not logged: no cost either
    canonical_request(5, cache_hit=True, model="acme-ultra-9", provider="acme"),  # $0: no call
    canonical_request(6, status="error", error_type="500", input_tokens=None,
                      output_tokens=None),  # a failed call, not billed: $0
]
EXPECTED = [
    {"provider": "acme", "model": "acme-ultra-9", "requests": 2, "usage_logged": True},
    {"provider": None, "model": "house-model", "requests": 1, "usage_logged": True},
    {"provider": "openai", "model": "gpt-4o", "requests": 1, "usage_logged": False},
]


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_each_ingest_path_lists_the_requests_it_stored_without_a_cost(lake, write, capsys,
                                                                      monkeypatch, path):
    import os

    from lib.ingest import grouped

    for name, value in INGEST_PATHS[path].items():
        monkeypatch.setenv(name, value)
    groups = []
    read_as_group = grouped.ingest
    monkeypatch.setattr(grouped, "ingest", lambda *a, **k: groups.append(1) or read_as_group(
        *a, **k))
    other = [canonical_request(50), canonical_request(51, provider="acme", model="acme-mini")]
    files = [write("calls.jsonl", ROWS), write("other.jsonl", other)]
    for f in files:  # (not files still being written, which are not read as a group)
        os.utime(f, (f.stat().st_mtime - 600,) * 2)
    assert main(["ingest", *map(str, files), "--store", str(lake.root), "--json"]) == 0
    calls, more = json.loads(capsys.readouterr().out)["files"]
    assert bool(groups) is (path == "group")  # (two small files: read as one group)
    assert (calls["stored"], more["stored"]) == ({"requests": len(ROWS)}, {"requests": 2})

    def order(u):
        return u["model"]

    # each file's own, none counted twice
    assert sorted(calls["unpriced"], key=order) == sorted(EXPECTED, key=order)
    assert more["unpriced"] == [{"provider": "acme", "model": "acme-mini", "requests": 1,
                                 "usage_logged": True}]
    # as the Data page counts them (lib.pricing.unpriced_models): the same requests
    from lib import pricing
    from lib.store import Engine

    engine = Engine(lake)
    try:
        listed = pricing.unpriced_models(engine)
    finally:
        engine.close()
    assert sorted(zip(listed["model"], listed["requests"], strict=True)) == sorted(
        (u["model"], u["requests"]) for u in [*EXPECTED, *more["unpriced"]])


def test_the_text_report_names_them_and_the_reprice_of_this_store(lake, write, capsys):
    src = write("calls.jsonl", ROWS)
    assert main(["ingest", str(src), "--store", str(lake.root)]) == 0
    out = capsys.readouterr().out
    assert ("note: 3 requests stored without a cost (unknown, not $0): acme acme-ultra-9 (2), "
            "(no provider) house-model (1); their models have no price: add them to prices.yaml"
            in out)
    assert f"then run `python -m lib reprice --store {lake.root}`" in out
    assert ("note: 1 request stored without a cost (unknown, not $0): openai gpt-4o (1); they "
            "logged no input token count. The Data page lists them." in out)
    # the total line says it too (a cron job's mail may show no more)
    assert out.rstrip().endswith("0 error(s), 4 without a cost")


def test_a_priced_file_and_a_copy_say_nothing_of_it_and_a_dry_run_says_it_first(
        lake, write, capsys):
    priced = write("priced.jsonl", [canonical_request(100 + i) for i in range(3)])
    assert main(["ingest", str(priced), "--store", str(lake.root)]) == 0
    assert "without a cost" not in capsys.readouterr().out
    unpriced = write("unpriced.jsonl", ROWS)
    # a dry run (the Data page's Check) says it before anything is stored, of its own file
    # alone (not of the priced file checked before it in the same run)
    priced_too = write("priced-too.jsonl", [canonical_request(200 + i) for i in range(3)])
    assert main(["ingest", str(priced_too), str(unpriced), "--store", str(lake.root),
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert ("note: 3 requests would be stored without a cost (unknown, not $0): acme "
            "acme-ultra-9 (2), (no provider) house-model (1); their models have no price" in out)
    assert "the model they answered as) before the ingest." in out and "reprice" not in out
    assert out.count("without a cost") == 3 and "The Data page lists them" not in out  # (+ total)
    assert main(["ingest", str(unpriced), "--store", str(lake.root), "--dry-run",
                 "--json"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)["files"]
    assert sorted(u["requests"] for u in doc["unpriced"]) == [1, 1, 2]
    assert doc["batch_id"] is None and "checked_batch_id" not in doc
    report = ingest_paths(lake, [str(unpriced)])
    assert report.files[0].unpriced
    copy = write("copy.jsonl", unpriced.read_bytes())
    again = ingest_paths(lake, [str(copy)])
    assert again.files[0].duplicate_file and again.files[0].unpriced == []


def test_many_models_are_named_five_at_a_time_and_an_upload_says_it_too(lake):
    rows = [canonical_request(i, provider="acme", model=f"m{i % 7}") for i in range(70)]
    report = ingest_stream(lake, jsonl_bytes(rows), "upload.jsonl")
    (f,) = report.files
    assert sorted((u["model"], u["requests"]) for u in f.unpriced) == [
        (f"m{k}", 10) for k in range(7)]
    from lib.commands.ingest import render

    text = render(report)
    assert "70 requests stored without a cost" in text and "and 2 more models" in text
    assert text.count("acme m") == 5


def test_the_overrides_file_named_is_the_one_the_run_read(lake, write, capsys, monkeypatch,
                                                         tmp_path):
    import shlex

    src = write("calls.jsonl", ROWS[:2])
    own = tmp_path / "our prices.yaml"
    own.write_text("models: []\n")
    assert main(["ingest", str(src), "--store", str(lake.root), "--prices", str(own)]) == 0
    out = capsys.readouterr().out
    assert f"add them to {own} (or" in out
    assert f"reprice --store {lake.root} --prices {shlex.quote(str(own))}`" in out
    monkeypatch.setenv("SIGHTLINE_PRICES", str(own))
    src = write("more.jsonl", ROWS[2:3])
    assert main(["ingest", str(src), "--store", str(lake.root)]) == 0
    out = capsys.readouterr().out
    assert f"add them to {own} (or" in out
    assert f"reprice --store {lake.root} --prices {shlex.quote(str(own))}`" in out
