"""Values nested thousands of levels deep: Python's json raises RecursionError (not a ValueError)
past ~1,000 levels, and Arrow's JSON reader crashes the process ~20,000 levels down. Such a line is
quarantined alone, with the rest of its file stored, on every path and in every format."""

from __future__ import annotations

import json

import pytest

from lib.ingest.pipeline import ingest_paths
from tests.conftest import T0

DEEP = "[" * 3000 + "]" * 3000


def _request(rid: str, **extra) -> dict:
    return {"request_id": rid, "ts": T0.isoformat(), "model": "gpt-4o", "input_tokens": 10,
            "output_tokens": 5, **extra}


def _with_deep_value(row: dict) -> str:
    return json.dumps(row)[:-1] + ', "x": ' + DEEP + "}"


@pytest.mark.parametrize("sql_path", ["1", "0"])
def test_an_unclosed_deep_line_is_quarantined_alone(lake, write, monkeypatch, sql_path):
    monkeypatch.setenv("SIGHTLINE_INGEST_SQL", sql_path)
    path = write("a.jsonl", (json.dumps(_request("a")) + "\n" + "[" * 5000 + "\n").encode())
    f = ingest_paths(lake, [str(path)]).files[0]
    assert (f.error, f.stored, f.quarantined) == (None, {"requests": 1}, 1)
    assert f.reasons[0].startswith("line 2: ")


def test_a_first_line_nested_deep_does_not_hide_the_format(lake, write):
    # DuckDB reads any depth, so on the default path the deep line is stored like the others.
    lines = [_with_deep_value(_request("deep")), json.dumps(_request("b"))]
    f = ingest_paths(lake, [str(write("b.jsonl", ("\n".join(lines) + "\n").encode()))]).files[0]
    assert (f.format, f.error, f.stored) == ("jsonl", None, {"requests": 2})


def test_an_otlp_line_nested_past_orjsons_limit_is_quarantined_alone(lake, write):
    span = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
            "name": "chat gpt-4o", "startTimeUnixNano": str(int(T0.timestamp() * 1e9)),
            "endTimeUnixNano": str(int(T0.timestamp() * 1e9) + 10**9), "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}}]}
    good = json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span]}]}]})
    deep = good[:-1] + ', "x": ' + DEEP + "}"
    f = ingest_paths(lake, [str(write("t.jsonl", (good + "\n" + deep + "\n").encode()))]
                     ).files[0]
    assert (f.format, f.error, f.stored["requests"], f.quarantined) == ("otlp-json", None, 1, 1)
    assert f.reasons[0].startswith("line 2: not valid JSON")


def test_a_whole_document_nested_too_deep_is_a_clear_error(lake, write):
    doc = '{"results": {"results": ' + DEEP + "}}"
    f = ingest_paths(lake, [str(write("p.json", doc.encode()))], fmt="promptfoo").files[0]
    assert f.error is not None and "nested too deeply" in f.error
    assert "RecursionError" not in f.error
