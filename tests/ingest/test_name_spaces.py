"""Model and provider names are stored without the spaces, tabs and line ends around them, on
every ingest path: a logger's stray "gpt-4o " is gpt-4o, priced and grouped with it, not an
unpriced look-alike on the Data page. A name of spaces alone is a missing name."""

from __future__ import annotations

import pytest

from lib.store import Engine
from tests.ingest.conftest import INGEST_PATHS, canonical_request, ingest_on_path


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_names_are_stored_and_priced_without_surrounding_spaces(lake, write, monkeypatch, path):
    rows = [canonical_request(0, model="gpt-4o "), canonical_request(1, model=" gpt-4o"),
            canonical_request(2, model="gpt-4o\t", response_model=" gpt-4o-2024-08-06\r\n"),
            canonical_request(3, provider="openai ")]
    files = [write("a.jsonl", rows[:2]), write("b.jsonl", rows[2:])]
    report = ingest_on_path(lake, files, path, monkeypatch)
    assert [(f.stored, f.quarantined) for f in report.files] == [({"requests": 2}, 0)] * 2
    engine = Engine(lake)
    try:
        # 1000 in + 500 out of gpt-4o: $0.0075 each, all in one group
        assert engine.query(
            "SELECT provider, model, count(*), round(sum(cost_usd), 9), "
            "list(DISTINCT response_model) FILTER (response_model IS NOT NULL) "
            "FROM requests GROUP BY ALL").rows() == [
            ("openai", "gpt-4o", 4, 0.03, ["gpt-4o-2024-08-06"])]
    finally:
        engine.close()


def test_a_name_of_spaces_alone_is_missing(lake, write, monkeypatch):
    # (a file with a bad row takes the exact path, whichever path it started on)
    files = [write("a.jsonl", [canonical_request(0), canonical_request(1, model=" \t ")])]
    report = ingest_on_path(lake, files, "exact", monkeypatch)
    assert (report.files[0].stored, report.files[0].reasons) == (
        {"requests": 1}, ["line 2: missing model"])


def test_a_provider_of_spaces_alone_is_no_provider(lake, write, monkeypatch):
    files = [write("a.jsonl", [canonical_request(0, provider="  ", response_model="\t")])]
    ingest_on_path(lake, files, "exact", monkeypatch)
    engine = Engine(lake)
    try:
        assert engine.query("SELECT provider, response_model, model FROM requests").row(0) == \
            (None, None, "gpt-4o")
    finally:
        engine.close()


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_dimensions_are_stored_trimmed_and_an_empty_one_is_missing(lake, write, monkeypatch,
                                                                   path):
    # "c1 " beside "c1" split a customer in two; "" was a blank sidebar choice that no link
    # could keep (a URL's empty value is no filter)
    rows = [canonical_request(0, customer_id="c1 ", feature="chat", app_version=" 1.2"),
            canonical_request(1, customer_id="c1", feature=" chat\n", session_id="s1"),
            canonical_request(2, customer_id="", feature="  ", session_id=" "),
            canonical_request(3, customer_id="c2", environment="prod ", input_text=" hi ")]
    files = [write("a.jsonl", rows[:2]), write("b.jsonl", rows[2:])]
    report = ingest_on_path(lake, files, path, monkeypatch)
    assert [f.stored for f in report.files] == [{"requests": 2}] * 2
    engine = Engine(lake)
    try:
        got = engine.query("SELECT request_id, customer_id, feature, app_version, session_id, "
                           "environment, input_text FROM requests ORDER BY 1").rows()
    finally:
        engine.close()
    env = canonical_request(0).get("environment")
    assert got == [("r0", "c1", "chat", "1.2", None, env, None),
                   ("r1", "c1", "chat", None, "s1", env, None),
                   ("r2", None, None, None, None, env, None),
                   ("r3", "c2", None, None, None, "prod", " hi ")]  # a text keeps its spaces


def test_an_event_s_service_is_trimmed_as_a_request_s_is(lake, write, monkeypatch):
    # (a deploy of "api " did not show under the service filter "api" of trimmed requests)
    event = {"ts": "2026-03-02T12:00:00Z", "kind": "deploy", "service": "api ",
             "title": "Deploy v2"}
    report = ingest_on_path(lake, [write("e.jsonl", [event])], "exact", monkeypatch)
    assert report.files[0].stored == {"events": 1}
    engine = Engine(lake)
    try:
        assert engine.query("SELECT service FROM events").row(0) == ("api",)
    finally:
        engine.close()
