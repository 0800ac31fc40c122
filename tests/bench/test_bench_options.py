"""Every benchmark module says what it measures with --help and refuses an option it does not
have, before any benchmark runs (the Drift, Overview and pages benches ran for minutes whatever
their arguments)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import bench
from tests.conftest import PROJECT_DIR

BENCHES = sorted(m.name for m in pkgutil.iter_modules(bench.__path__)
                 if m.name.endswith("_bench"))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_DIR, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("name", BENCHES)
def test_help_says_what_the_bench_measures(name):
    done = run(f"bench.{name}", "--help")
    assert done.returncode == 0, done.stderr
    first = next(line for line in (sys.modules.get(f"bench.{name}") or __import__(
        f"bench.{name}", fromlist=["_"])).__doc__.splitlines() if line.strip())
    # (argparse re-wraps the text: compared word by word)
    assert " ".join(first.split()[:6]) in " ".join(done.stdout.split())
    assert "usage:" in done.stdout


@pytest.mark.parametrize("name", BENCHES)
def test_an_unknown_option_is_refused_before_any_work(name):
    done = run(f"bench.{name}", "--no-such-option")
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr


def test_the_runner_lists_the_benches():
    done = run("bench", "--help")
    assert done.returncode == 0 and all(name in done.stdout for name in BENCHES)
