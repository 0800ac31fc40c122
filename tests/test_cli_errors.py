"""With --json, a command that fails still prints one JSON document on stdout (``{"error": …}``),
the message also on stderr, exit status 2: a `… --json | jq` in cron read empty input (review)."""

from __future__ import annotations

import json

import pytest

from lib.cli import main


@pytest.mark.parametrize("argv, says", [
    (["summary", "--json", "--bogus"], "unrecognized arguments: --bogus"),
    (["remove", "nope", "--json"], "no store at"),
    (["summary", "--json", "--from", "yesterday-ish"], "yesterday-ish"),
])
def test_a_failure_is_a_json_document_too(argv, says, tmp_path, capsys):
    try:
        status = main([*argv, "--store", str(tmp_path / "store")])
    except SystemExit as exc:  # (argparse's own exit)
        status = exc.code
    out, err = capsys.readouterr()
    assert status == 2
    assert says in json.loads(out)["error"] and says in err


def test_without_json_stdout_stays_empty(tmp_path, capsys):
    assert main(["remove", "nope", "--store", str(tmp_path / "store")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "no store at" in err
