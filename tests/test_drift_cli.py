"""``python -m lib drift``: design §6's JSON on a store with a planted shift, its numbers equal
to SciPy's on the same values (KS for latency, chi-square for the feature mix, BH over the
columns) and to the Drift page's own table (:func:`lib.metrics.drift.drift_table`); a bad
window's exit status from a real process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from lib import cli
from lib.filters import Filters
from lib.metrics import drift
from lib.store import Engine, Lake
from tests.conftest import make_request, requests_table

REPO = Path(__file__).resolve().parents[1]
D1 = datetime(2026, 3, 2, tzinfo=UTC)
D2 = D1 + timedelta(days=1)
D3 = D1 + timedelta(days=2)
REF, CUR = "2026-03-02..2026-03-03", "2026-03-03..2026-03-04"

# Reference: 60 requests, latency 100, 103, …, 277 ms; features 15 chat / 15 search / 30 extract.
# Current: 50 requests, latency shifted up by 70 ms and spread as 2.5 ms steps; the mix moved to
# 3 chat / 7 search / 40 extract. Everything else (tokens, model, status…) the same.
REF_LAT = [100.0 + 3 * i for i in range(60)]
CUR_LAT = [170.0 + 2.5 * i for i in range(50)]
REF_FEATURES = ["chat"] * 15 + ["search"] * 15 + ["extract"] * 30
CUR_FEATURES = ["chat"] * 3 + ["search"] * 7 + ["extract"] * 40

COLUMN_KEYS = {"column", "kind", "method", "statistic", "p_value", "p_adjusted", "threshold",
               "psi", "n_ref", "n_cur", "status"}


def _rows() -> list[dict]:
    rows = []
    for i, (lat, feat) in enumerate(zip(REF_LAT, REF_FEATURES, strict=True)):
        rows.append(make_request(i, ts=D1 + timedelta(minutes=10 * i), latency_ms=lat,
                                 feature=feat, input_tokens=1000 + i, output_tokens=500 + i))
    for i, (lat, feat) in enumerate(zip(CUR_LAT, CUR_FEATURES, strict=True)):
        rows.append(make_request(100 + i, ts=D2 + timedelta(minutes=10 * i), latency_ms=lat,
                                 feature=feat, input_tokens=1000 + i, output_tokens=500 + i))
    # a few on the third day: too few to test anything
    rows += [make_request(200 + i, ts=D3 + timedelta(minutes=i)) for i in range(5)]
    return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    lake = Lake(tmp_path_factory.mktemp("drift_cli") / "store")
    rows = _rows()
    lake.append({"requests": requests_table(rows[:70])}, source="a.jsonl")
    lake.append({"requests": requests_table(rows[70:])}, source="b.jsonl")
    return lake.root


def _process(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SIGHTLINE_STORE"}
    return subprocess.run([sys.executable, "-m", "lib", "drift", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def doc(store) -> dict:
    """The document of the two days, from ``main`` in this process (a process loads the lib
    for a second or two: the exit statuses are from processes, the numbers from here)."""
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = cli.main(["drift", "--reference", REF, "--current", CUR, "--json",
                         "--store", str(store)])
    assert code == 0
    return json.loads(buffer.getvalue())


def _main(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["drift", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _bh(pvalues: list[float]) -> list[float]:
    return stats.false_discovery_control(pvalues, method="bh").tolist()


# -- the document ---------------------------------------------------------------------------------
def test_json_has_design_shape_and_scipy_numbers(doc):
    assert set(doc) == {"reference", "current", "columns", "drift_share", "dataset_drift",
                        "problems"}
    assert doc["reference"] == {"from": "2026-03-02T00:00:00+00:00",
                                "to": "2026-03-03T00:00:00+00:00", "n": 60}
    assert doc["current"] == {"from": "2026-03-03T00:00:00+00:00",
                              "to": "2026-03-04T00:00:00+00:00", "n": 50}
    assert doc["problems"] == []
    by = {c["column"]: c for c in doc["columns"]}
    assert all(set(c) == COLUMN_KEYS for c in doc["columns"])
    assert set(by) == set(drift.NUMERIC) | set(drift.CATEGORICAL)

    # latency: KS on the planted values (60 and 50 rows, both ≤ 1,000: the KS branch)
    ks = stats.ks_2samp(REF_LAT, CUR_LAT)
    lat = by["latency_ms"]
    assert (lat["kind"], lat["method"], lat["n_ref"], lat["n_cur"]) == ("numeric", "ks", 60, 50)
    assert lat["statistic"] == pytest.approx(ks.statistic, rel=1e-12)
    assert lat["p_value"] == pytest.approx(ks.pvalue, rel=1e-9)
    assert lat["threshold"] == 0.05 and lat["status"] == "drift"
    # PSI on the reference's deciles (ε = 1e-4), by hand with numpy
    edges = np.quantile(REF_LAT, np.linspace(0.1, 0.9, 9))
    r = np.bincount(np.searchsorted(edges, REF_LAT, side="left"), minlength=10) / 60
    c = np.bincount(np.searchsorted(edges, CUR_LAT, side="left"), minlength=10) / 50
    r, c = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
    assert lat["psi"] == pytest.approx(float(np.sum((c - r) * np.log(c / r))), rel=1e-9)

    # the feature mix: chi-square of the 2 × 3 table (three values: not the z test)
    chi2, p, dof, _ = stats.chi2_contingency([[15, 15, 30], [3, 7, 40]], correction=False)
    feat = by["feature"]
    assert (feat["kind"], feat["method"], feat["psi"]) == ("categorical", "chisquare", None)
    assert dof == 2
    assert feat["statistic"] == pytest.approx(chi2, rel=1e-12)
    assert feat["p_value"] == pytest.approx(p, rel=1e-9)
    assert feat["status"] == "drift"

    # Benjamini–Hochberg over every column tested with a p-value (SciPy's)
    tested = [c for c in doc["columns"] if c["p_value"] is not None]
    for col, adjusted in zip(tested, _bh([c["p_value"] for c in tested]), strict=True):
        assert col["p_adjusted"] == pytest.approx(adjusted, rel=1e-9), col["column"]

    # the unchanged columns do not drift; the share is of the columns tested
    for name in ("model", "provider", "status", "finish_reason", "error_type"):
        assert by[name]["status"] in ("no_drift", "insufficient_data"), name
    drifted = [c["column"] for c in doc["columns"] if c["status"] == "drift"]
    assert {"latency_ms", "feature"} <= set(drifted)
    tested_n = sum(c["status"] != "insufficient_data" for c in doc["columns"])
    assert doc["drift_share"] == pytest.approx(len(drifted) / tested_n)
    assert doc["dataset_drift"] is True


def test_the_command_and_the_page_agree(doc, store):
    engine = Engine(Lake(store), auto_refresh=False)
    try:  # the Drift page's call: the sidebar's window, the reference window, the same filters
        current = Filters.between(D2, D3)
        table = drift.drift_table(engine, current, current.with_window(D1, D2))
    finally:
        engine.close()
    assert [c["column"] for c in doc["columns"]] == table["column"].to_list()  # drifting first
    for col, row in zip(doc["columns"], table.iter_rows(named=True), strict=True):
        for key in ("kind", "statistic", "p_value", "p_adjusted", "threshold", "psi", "n_ref",
                    "n_cur"):
            assert col[key] == row[key], (col["column"], key)
        assert col["status"] == row["status"].replace(" ", "_")


def test_columns_select_rows_but_not_the_adjustment(store, doc, capsys):
    code, out, _ = _main(capsys, "--reference", REF, "--current", CUR, "--json",
                         "--columns", "latency_ms", "status", "--store", str(store))
    assert code == 0
    two = json.loads(out)
    assert [c["column"] for c in two["columns"]] == ["latency_ms", "status"]
    whole = {c["column"]: c for c in doc["columns"]}
    # (the page adjusts over every column: one asked for alone keeps its p_adjusted)
    assert two["columns"][0] == whole["latency_ms"]
    assert two["drift_share"] == 0.5 and two["dataset_drift"] is True
    code, out, _ = _main(capsys, "--reference", REF, "--current", CUR, "--json",
                         "--columns", "status", "--store", str(store))
    assert json.loads(out)["dataset_drift"] is False


def test_where_filters_both_sides(store, capsys):
    code, out, _ = _main(capsys, "--reference", REF, "--current", CUR, "--json",
                         "--where", "feature=extract", "--store", str(store))
    assert code == 0
    doc = json.loads(out)
    assert (doc["reference"]["n"], doc["current"]["n"]) == (30, 40)
    lat = next(c for c in doc["columns"] if c["column"] == "latency_ms")
    ks = stats.ks_2samp(REF_LAT[30:], CUR_LAT[10:])  # (the extract requests alone)
    assert (lat["n_ref"], lat["n_cur"]) == (30, 40)
    assert lat["statistic"] == pytest.approx(ks.statistic, rel=1e-12)
    assert lat["p_value"] == pytest.approx(ks.pvalue, rel=1e-9)
    code, out, _ = _main(capsys, "--reference", REF, "--current", CUR, "--json",
                         "--where", "feature=chat", "--store", str(store))
    lat = next(c for c in json.loads(out)["columns"] if c["column"] == "latency_ms")
    assert (lat["n_ref"], lat["n_cur"], lat["status"], lat["p_value"]) == (
        15, 3, "insufficient_data", None)  # (too few rows: no test, never "no drift")


def test_too_few_rows_is_never_no_drift(store, capsys):
    code, out, _ = _main(capsys, "--reference", REF, "--current", "2026-03-04..2026-03-05",
                         "--json", "--store", str(store))
    assert code == 0
    doc = json.loads(out)
    assert doc["current"]["n"] == 5
    assert {c["status"] for c in doc["columns"]} == {"insufficient_data"}
    assert doc["drift_share"] is None and doc["dataset_drift"] is None


def test_text_output(store, capsys):
    code, out, _ = _main(capsys, "--reference", REF, "--current", CUR, "--store", str(store))
    assert code == 0
    assert "reference 2026-03-02T00:00:00+00:00 → 2026-03-03T00:00:00+00:00  n=60" in out
    assert "drifted: " in out and "latency_ms" in out
    assert next(line for line in out.splitlines() if line.startswith("latency_ms")).split()[:2] \
        == ["latency_ms", "drift"]


def test_an_overlapping_reference_is_said(store, capsys):
    code, _, err = _main(capsys, "--reference", "2026-03-02..2026-03-03T12:00",
                         "--current", CUR, "--json", "--store", str(store))
    assert code == 0
    assert "the reference overlaps the current window by 12 hours" in err


# -- usage errors ---------------------------------------------------------------------------------
def test_a_backwards_window_is_exit_2_from_a_process(store):
    proc = _process("--reference", REF, "--current", "2026-03-04..2026-03-03",
                    "--store", str(store))
    assert proc.returncode == 2 and proc.stdout == ""
    assert "is empty: FROM must be before TO" in proc.stderr and "Traceback" not in proc.stderr


def test_not_a_window_is_exit_2_and_one_json_document(store, capsys):
    code, out, err = _main(capsys, "--reference", "last week", "--current", CUR, "--json",
                           "--store", str(store))
    assert code == 2
    assert "a window is FROM..TO" in json.loads(out)["error"] and "Traceback" not in err


def test_an_unknown_column_is_exit_2_naming_the_columns(store, capsys):
    code, _, err = _main(capsys, "--reference", REF, "--current", CUR, "--columns", "latency",
                         "--store", str(store))
    assert code == 2
    assert "no drift column 'latency'" in err and "latency_ms" in err


def test_no_store_is_exit_2(tmp_path, capsys):
    code, _, err = _main(capsys, "--reference", REF, "--current", CUR,
                         "--store", str(tmp_path / "nothing"))
    assert code == 2 and "no store at" in err
