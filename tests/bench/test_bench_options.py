"""Every benchmark module says what it measures with --help and refuses an option it does not
have, before any benchmark runs (the Drift, Overview and pages benches ran for minutes whatever
their arguments). Each module's ``main`` is called in this process with the command line set, as
``python -m bench.<name> …`` calls it (a new interpreter for each took 2 s)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import pytest

import bench

BENCHES = sorted(m.name for m in pkgutil.iter_modules(bench.__path__)
                 if m.name.endswith("_bench"))


def run_main(monkeypatch, name: str, *args: str) -> int:
    """The exit code of bench.<name>'s main with ``args`` on its command line."""
    module = importlib.import_module(f"bench.{name}")
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *args])
    with pytest.raises(SystemExit) as stop:
        module.main()
    return stop.value.code


@pytest.mark.parametrize("name", BENCHES)
def test_help_says_what_the_bench_measures(monkeypatch, capsys, name):
    assert run_main(monkeypatch, name, "--help") == 0
    out = capsys.readouterr().out
    doc = importlib.import_module(f"bench.{name}").__doc__
    first = next(line for line in doc.splitlines() if line.strip())
    # (argparse re-wraps the text: compared word by word)
    assert " ".join(first.split()[:6]) in " ".join(out.split()) and "usage:" in out


@pytest.mark.parametrize("name", BENCHES)
def test_an_unknown_option_is_refused_before_any_work(monkeypatch, capsys, name):
    assert run_main(monkeypatch, name, "--no-such-option") == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_the_runner_lists_the_benches(monkeypatch, capsys):
    from bench.__main__ import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in BENCHES)
