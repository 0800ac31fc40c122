"""OpenInference spans recorded with content hidden (lib/ingest/formats/openinference.py).

With ``OPENINFERENCE_HIDE_INPUTS`` / ``OPENINFERENCE_HIDE_OUTPUTS`` the instrumentation still
sets input.value / output.value, to the placeholder ``__REDACTED__``. Stored as the request's
text it was shown as the prompt on the Request page and measured by drift's text-length
descriptors (a constant 12 characters); it is content not captured: NULL.

The spans are the real ``openinference-instrumentation-openai``'s, driving the real ``openai``
client against tests/ingest/fake_openai.py (tests/ingest/fake_openai.py's ``record_spans``: the
recording subprocess inherits this process's environment, where the fixture sets the hiding
variables), exported as the Collector writes OTLP JSON.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lib.ingest.formats import openinference
from tests.ingest.chunks import parse_file
from tests.ingest.fake_openai import record_spans

# A chat call, a streamed one (its output.value is assembled by the instrumentation) and an
# embeddings call: every kind of span that becomes a request.
SCENARIO = [
    {"model": "gpt-4o-mini", "directive": {"prompt_tokens": 120, "completion_tokens": 7,
                                           "text": "Visible answer."}},
    {"model": "gpt-4o-mini", "stream": True,
     "directive": {"prompt_tokens": 90, "completion_tokens": 12, "text": "Streamed answer"}},
    {"embeddings": True, "model": "text-embedding-3-small", "input": "one two three"},
]
HIDE = {
    "none": (),
    "inputs": ("OPENINFERENCE_HIDE_INPUTS",),
    "outputs": ("OPENINFERENCE_HIDE_OUTPUTS",),
    "both": ("OPENINFERENCE_HIDE_INPUTS", "OPENINFERENCE_HIDE_OUTPUTS"),
    # hiding the message lists or their text only: input.value / output.value are left whole
    "messages": ("OPENINFERENCE_HIDE_INPUT_MESSAGES", "OPENINFERENCE_HIDE_OUTPUT_MESSAGES",
                 "OPENINFERENCE_HIDE_INPUT_TEXT", "OPENINFERENCE_HIDE_OUTPUT_TEXT",
                 "OPENINFERENCE_HIDE_EMBEDDINGS_TEXT"),
}
TEXT = ("input_text", "output_text")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """{setting: the Collector JSON file of SCENARIO recorded with HIDE[setting] set}."""
    files = {}
    with pytest.MonkeyPatch.context() as mp:
        for name, variables in HIDE.items():
            for var in [v for vs in HIDE.values() for v in vs]:
                mp.delenv(var, raising=False)
            for var in variables:
                mp.setenv(var, "true")
            _, collector, ledger = record_spans(
                "openinference", tmp_path_factory.mktemp(f"hidden_{name}"), SCENARIO)
            assert len(ledger) == len(SCENARIO)
            files[name] = collector
    return files


def _requests(path: Path) -> list[dict]:
    tables, rejects, _ = parse_file(openinference.FORMAT, path)
    assert rejects == []
    return sorted(tables["requests"].to_pylist(), key=lambda r: r["ts"])


def _same_call(text: str | None) -> str | None:
    """Text without the response's creation time (each recording makes its calls anew)."""
    return None if text is None else re.sub(r'"created":\s*[0-9.]+', '"created":0', text)


def test_the_placeholder_is_the_instrumentations():
    from openinference.instrumentation import config

    assert openinference.REDACTED == config.REDACTED_VALUE == "__REDACTED__"


@pytest.mark.parametrize("setting", ["inputs", "outputs", "both"])
def test_hidden_input_and_output_values_are_not_captured_text(recorded, setting):
    shown, hidden = _requests(recorded["none"]), _requests(recorded[setting])
    assert len(hidden) == len(SCENARIO)
    hidden_columns = {"inputs": {"input_text"}, "outputs": {"output_text"},
                      "both": set(TEXT)}[setting]
    for clear, row in zip(shown, hidden, strict=True):
        # captured when not hidden (an embedding's output.value is its vectors: never text)
        assert all(clear[c] for c in TEXT
                   if (c, clear["operation"]) != ("output_text", "embeddings"))
        for column in TEXT:
            expected = None if column in hidden_columns else _same_call(clear[column])
            assert _same_call(row[column]) == expected, (setting, column, row[column])
        # only the text: tokens, model and status are read as before
        assert ({k: row[k] for k in ("model", "input_tokens", "output_tokens", "status")}
                == {k: clear[k] for k in ("model", "input_tokens", "output_tokens", "status")})


def test_hiding_only_the_messages_leaves_input_and_output_value_which_are_stored(recorded):
    # The instrumentation redacts the message lists then (which are not read) but not
    # input.value / output.value: the request's text is what the span carries, and no stored
    # text is ever the placeholder, whatever is hidden.
    shown = _requests(recorded["none"])
    assert [[_same_call(r[c]) for c in TEXT] for r in _requests(recorded["messages"])] == \
        [[_same_call(r[c]) for c in TEXT] for r in shown]
    stored = [r[c] for name in HIDE for r in _requests(recorded[name]) for c in TEXT]
    assert "__REDACTED__" not in stored


def test_hidden_text_is_null_in_the_store(recorded, tmp_path):
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Engine, Lake

    lake = Lake(tmp_path / "store")
    report = ingest_paths(lake, [str(recorded["both"])])
    assert report.ok, [f.error for f in report.files]
    row = Engine(lake).query(
        "SELECT count(*), count(input_text), count(output_text), sum(input_tokens) "
        "FROM requests").row(0)
    assert row == (3, 0, 0, 120 + 90 + 3)
