"""``python -m lib compare``: design §6's JSON on offline runs with planted regressions and fixes,
its numbers equal to SciPy's (McNemar as a binomial test of the discordant pairs, paired t, BH)
and to the Quality page's own comparison (:func:`lib.metrics.quality.compare_versions`); the
exit status a CI gate reads (1 on a significant regression), from real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from scipy import stats

from lib import cli, schema
from lib.filters import URL_TIMES, Filters
from lib.metrics import quality
from lib.store import Engine, Lake
from tests.conftest import T0

REPO = Path(__file__).resolve().parents[1]
CASES = range(100)

METRIC_KEYS = {"metric", "kind", "n_pairs", "baseline_mean", "candidate_mean", "delta",
               "ci_low", "ci_high", "test", "p_value", "p_adjusted", "regressions", "fixes",
               "mde", "verdict"}
EXTRA_KEYS = {"n_baseline", "n_candidate", "note", "min_effect", "unscored_baseline",
              "unscored_candidate"}


def _similarity(version: str, i: int) -> float:
    """A continuous score (100 distinct values: the paired t, not Wilcoxon); v2 lower by
    0.01 on average, unevenly."""
    base = 0.5 + 0.004 * i
    return base - (0.01 + 0.003 * ((i % 7) - 3)) if version == "v2" else base


# Pass/fail per case: v1 passes correctness on cases 0-79; v2 fails 0-14 of those (15
# regressions) and passes 80-82 (3 fixes); fluency: v1 passes 0-89, v2 trades 2 regressions
# for 2 fixes. v3 is v1 with one correctness fix.
PASSES = {
    "v1": {"correctness": set(range(80)), "fluency": set(range(90))},
    "v2": {"correctness": set(range(15, 83)), "fluency": set(range(2, 92))},
    "v3": {"correctness": set(range(81)), "fluency": set(range(90))},
    "v4": {"correctness": set(range(80)), "fluency": set(range(90))},
}


def _evals(version: str, run: str, ts, cases=CASES) -> list[dict]:
    rows = []
    for metric in ("correctness", "fluency", "similarity"):
        for i in cases:
            scored = metric == "similarity"
            rows.append({
                "eval_id": f"{run}-{metric}-{i}", "run_id": run, "ts": ts, "source": "offline",
                "dataset": "qa", "case_id": f"c{i}", "epoch": 0, "version": version,
                "metric": metric,
                "passed": None if scored else i in PASSES[version][metric],
                "score": _similarity(version, i) if scored else None})
    return rows


def _table(rows: list[dict]) -> pa.Table:
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema.EVALS}
    return schema.conform(pa.table({k: pa.array(v, schema.EVALS.field(k).type)
                                    for k, v in cols.items()}), schema.EVALS)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    lake = Lake(tmp_path_factory.mktemp("compare_cli") / "store")
    lake.append({"evals": _table(_evals("v1", "run-1", T0))}, source="v1.jsonl")
    lake.append({"evals": _table(_evals("v2", "run-2", T0 + timedelta(hours=1))
                                 + _evals("v3", "run-3", T0 + timedelta(hours=2)))},
                source="v2.jsonl")
    # version v4 scored by two runs: a run id alone does not say what a comparison counts
    lake.append({"evals": _table(_evals("v4", "run-4a", T0, range(5))
                                 + _evals("v4", "run-4b", T0, range(5, 10)))},
                source="v4.jsonl")
    return lake.root


def _process(*args) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "SIGHTLINE_STORE"}
    return subprocess.Popen([sys.executable, "-m", "lib", "compare", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def processes(store) -> dict[str, tuple[int, str, str]]:
    """The exit statuses a CI script sees, from real processes started together (each loads
    the lib for a second or two)."""
    s = ("--store", str(store))
    started = {
        "regression": _process("--baseline", "v1", "--candidate", "run-2", "--json", *s),
        "none": _process("--baseline", "v1", "--candidate", "v3", *s),
        "unknown": _process("--baseline", "v1", "--candidate", "v9", *s),
    }
    out = {}
    for name, proc in started.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[name] = (proc.returncode, stdout, stderr)
    return out


def _main(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["compare", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _page(store: Path, a: str, b: str, filters: Filters | None = None):
    """The Quality page's comparison of ``a`` and ``b`` (offline), as it calls it."""
    engine = Engine(Lake(store), auto_refresh=False)
    try:
        return quality.compare_versions(engine, filters or Filters.between(*URL_TIMES),
                                        "offline", a, b)
    finally:
        engine.close()


# -- the gate, from real processes ----------------------------------------------------------------
def test_a_significant_regression_exits_1_with_the_document(processes):
    code, out, err = processes["regression"]
    assert code == 1, err
    doc = json.loads(out)
    assert (doc["baseline"], doc["candidate"], doc["verdict"]) == ("v1", "v2", "regression")
    assert doc["candidate_run"] == "run-2" and doc["baseline_run"] is None
    assert doc["source"] == "offline" and doc["problems"] == []


def test_no_regression_exits_0(processes):
    code, out, err = processes["none"]
    assert code == 0, err
    assert "verdict: no significant change" in out


def test_an_unknown_version_exits_2_listing_what_exists(processes):
    code, out, err = processes["unknown"]
    assert code == 2 and out == "" and "Traceback" not in err
    assert "no version or offline run id 'v9'" in err
    assert "offline versions: v1, v4, v2, v3" in err
    assert "offline runs: run-1, run-4a, run-4b, run-2, run-3" in err


def test_a_backwards_window_exits_2(store, capsys):
    # (a bad window from a real process: tests/test_drift_cli.py)
    code, _, err = _main(capsys, "--baseline", "v1", "--candidate", "v2", "--from",
                         "2026-03-03", "--to", "2026-03-02", "--store", str(store))
    assert code == 2 and "--from must be before --to" in err


# -- the numbers ----------------------------------------------------------------------------------
def test_json_numbers_equal_scipy(processes):
    doc = json.loads(processes["regression"][1])
    by = {m["metric"]: m for m in doc["metrics"]}
    assert set(by) == {"correctness", "fluency", "similarity"}
    assert all(set(m) == METRIC_KEYS | EXTRA_KEYS for m in doc["metrics"])

    c = by["correctness"]  # 15 regressions, 3 fixes in 100 paired cases
    assert (c["kind"], c["test"], c["n_pairs"]) == ("pass_paired", "mcnemar_exact", 100)
    assert (c["regressions"], c["fixes"]) == (15, 3)
    assert (c["baseline_mean"], c["candidate_mean"]) == (0.80, 0.68)
    assert c["delta"] == pytest.approx(0.68 - 0.80, abs=1e-15)  # candidate − baseline
    # McNemar exact: the fixes among the 18 discordant pairs, binomial(18, ½), two-sided
    assert c["p_value"] == pytest.approx(stats.binomtest(3, 18, 0.5).pvalue, rel=1e-12)
    assert c["ci_high"] < 0 and c["verdict"] == "regression"

    f = by["fluency"]  # 2 regressions, 2 fixes
    assert (f["regressions"], f["fixes"], f["delta"]) == (2, 2, 0.0)
    assert f["p_value"] == pytest.approx(stats.binomtest(2, 4, 0.5).pvalue)
    assert f["verdict"] == "no_significant_change"

    s = by["similarity"]  # paired scores: paired t
    a = [_similarity("v1", i) for i in CASES]
    b = [_similarity("v2", i) for i in CASES]
    t = stats.ttest_rel(b, a)
    assert (s["kind"], s["test"], s["n_pairs"]) == ("score_paired", "paired_t", 100)
    assert s["delta"] == pytest.approx(sum(b) / 100 - sum(a) / 100, rel=1e-9)
    assert s["p_value"] == pytest.approx(t.pvalue, rel=1e-9)
    assert s["regressions"] is None and s["fixes"] is None
    # a drop of 0.01, under the minimum effect of 0.02: no verdict however small p is
    assert s["verdict"] == "no_significant_change"

    # Benjamini–Hochberg over the three metrics compared (SciPy's)
    ps = [m["p_value"] for m in doc["metrics"]]
    for m, adjusted in zip(doc["metrics"], stats.false_discovery_control(ps, method="bh"),
                           strict=True):
        assert m["p_adjusted"] == pytest.approx(adjusted, rel=1e-9), m["metric"]


def test_the_command_and_the_page_agree(processes, store):
    doc = json.loads(processes["regression"][1])
    table = _page(store, "v1", "v2")
    assert [m["metric"] for m in doc["metrics"]] == table["metric"].to_list()
    for m, row in zip(doc["metrics"], table.iter_rows(named=True), strict=True):
        assert (m["baseline_mean"], m["candidate_mean"], m["delta"]) == (
            row["a_value"], row["b_value"], row["difference"])
        assert (m["ci_low"], m["ci_high"], m["p_value"], m["p_adjusted"], m["mde"]) == (
            row["ci_low"], row["ci_high"], row["p_value"], row["p_adjusted"], row["mde"])
        assert (m["regressions"], m["fixes"], m["kind"]) == (
            row["regressions"], row["fixes"], row["kind"])
        assert m["verdict"] == row["verdict"].replace(" ", "_")
        assert quality.TESTS_SHOWN[m["test"]] == row["test"]


def test_a_window_is_the_pages_window(store, capsys):
    code, out, _ = _main(capsys, "--baseline", "v1", "--candidate", "v3", "--json",
                         "--from", "2026-03-02T11:00", "--to", "2026-03-02T15:00",
                         "--store", str(store))
    assert code == 0
    doc = json.loads(out)
    window = Filters.between(T0 - timedelta(hours=1), T0 + timedelta(hours=3))
    table = _page(store, "v1", "v3", window)
    assert [m["p_adjusted"] for m in doc["metrics"]] == table["p_adjusted"].to_list()
    assert doc["verdict"] == "no_significant_change"
    assert (doc["from"], doc["to"]) == ("2026-03-02T11:00:00+00:00", "2026-03-02T15:00:00+00:00")


def test_one_metric_is_a_family_of_one(store, capsys):
    code, out, _ = _main(capsys, "--baseline", "run-1", "--candidate", "v2", "--json",
                         "--metric", "correctness", "--store", str(store))
    assert code == 1
    doc = json.loads(out)
    assert doc["baseline_run"] == "run-1" and doc["baseline"] == "v1"
    [c] = doc["metrics"]
    assert c["metric"] == "correctness"
    assert c["p_adjusted"] == c["p_value"] == pytest.approx(stats.binomtest(3, 18).pvalue)
    # the metric that did not regress, alone: exit 0
    code, out, _ = _main(capsys, "--baseline", "v1", "--candidate", "v2", "--json",
                         "--metric", "fluency", "--store", str(store))
    assert code == 0 and json.loads(out)["verdict"] == "no_significant_change"


def test_reversed_it_is_an_improvement_and_exits_0(store, capsys):
    code, out, _ = _main(capsys, "--baseline", "v2", "--candidate", "v1", "--json",
                         "--metric", "correctness", "--store", str(store))
    assert code == 0
    doc = json.loads(out)
    [c] = doc["metrics"]
    assert (c["regressions"], c["fixes"], doc["verdict"]) == (3, 15, "improvement")
    assert c["delta"] == pytest.approx(0.12)


def test_min_effect_above_the_drop_passes_the_gate(store, capsys):
    code, out, _ = _main(capsys, "--baseline", "v1", "--candidate", "v2", "--json",
                         "--metric", "correctness", "--min-effect", "0.2",
                         "--store", str(store))
    assert code == 0 and json.loads(out)["verdict"] == "no_significant_change"


def test_text_output(store, capsys):
    code, out, _ = _main(capsys, "--baseline", "v1", "--candidate", "v2",
                         "--store", str(store))
    assert code == 1
    assert out.startswith("baseline (A) v1 → candidate (B) v2, offline evals\n")
    assert "correctness: 80.0% → 68.0%, −12.0 points" in out
    assert "a regression of v2 against v1" in out
    assert out.rstrip().endswith("verdict: regression (exit status 1)")


# -- usage errors ---------------------------------------------------------------------------------
def test_a_run_of_a_version_other_runs_scored_is_exit_2(store, capsys):
    code, _, err = _main(capsys, "--baseline", "run-4a", "--candidate", "v2",
                         "--store", str(store))
    assert code == 2
    assert "run run-4a is version v4, which other runs also scored (run-4b)" in err
    assert "Name the version v4" in err


def test_the_same_version_twice_is_exit_2(store, capsys):
    code, out, err = _main(capsys, "--baseline", "run-1", "--candidate", "v1", "--json",
                           "--store", str(store))
    assert code == 2
    assert "both version v1" in json.loads(out)["error"]


def test_an_unknown_metric_is_exit_2_naming_the_shared_ones(store, capsys):
    code, _, err = _main(capsys, "--baseline", "v1", "--candidate", "v2", "--metric", "bleu",
                         "--store", str(store))
    assert code == 2
    assert "no metric 'bleu'" in err and "correctness, fluency, similarity" in err


def test_a_source_without_them_is_exit_2(store, capsys):
    code, _, err = _main(capsys, "--baseline", "v1", "--candidate", "v2", "--source", "online",
                         "--store", str(store))
    assert code == 2
    assert "online versions: none" in err


@pytest.mark.parametrize("value", ["-0.1", "nan", "inf"])
def test_a_min_effect_that_is_no_size_is_exit_2(store, capsys, value):
    # (infinity passed as "no significant change", and its JSON said Infinity)
    code, out, _ = _main(capsys, "--baseline", "v1", "--candidate", "v2", "--json",
                         "--min-effect", value, "--store", str(store))
    assert code == 2
    assert "--min-effect must be a number 0 or more" in json.loads(out)["error"]


def test_the_metrics_settings_decide_a_score_s_direction_and_its_minimum_effect(
        store, capsys, tmp_path, monkeypatch):
    # v2's similarity is 0.01 lower on average (paired t over 100 cases): below the default
    # minimum effect of 0.02, no verdict; with its own 0.005, a regression (the gate fails);
    # as a score better lower, an improvement (it passes), as on the Quality page
    settings = tmp_path / "metrics.yaml"
    monkeypatch.setenv("SIGHTLINE_METRICS", str(settings))
    args = ("--baseline", "v1", "--candidate", "v2", "--json", "--metric", "similarity",
            "--store", str(store))
    verdicts = []
    for text in ("metrics: {}\n", "metrics:\n  similarity: {min_effect: 0.005}\n",
                 "metrics:\n  similarity: {min_effect: 0.005, better: lower}\n"):
        settings.write_text(text)
        code, out, _ = _main(capsys, *args)
        verdicts.append((code, json.loads(out)["verdict"]))
    assert verdicts == [(0, "no_significant_change"), (1, "regression"), (0, "improvement")]
    settings.write_text("metrics:\n  similarity: {better: less}\n")
    code, _, err = _main(capsys, *args)
    assert code == 2 and "the metrics settings cannot be read" in err


@pytest.mark.parametrize("text, why", [
    (None, "no such file"),  # $SIGHTLINE_METRICS names a file not there (a typo in the path)
    ("metric:\n  similarity: {better: lower}\n",
     "expected `metrics:` and a mapping of metric names; found metric"),
    ("metrics:\n  similarity: {better: lower}\n  similarity: {min_effect: 0.005}\n",
     "line 3, column 3: 'similarity' is written twice"),
    ("metrics:\n  similarity: {better: lower}\nmetrics:\n  other: {}\n",
     "'metrics' is written twice"),
    ("", "a folder, not a file"),  # (a ConfigMap mounted as a folder)
    (b"metrics:\n  toxicit\xe9: {better: lower}\n", "not UTF-8 text"),
    ("metrics:\n  similarity: lower\n", "expected its settings (better, min_effect), not 'lower'"),
])
def test_a_metrics_file_the_gate_cannot_read_as_written_is_exit_2_naming_it(
        store, capsys, tmp_path, monkeypatch, text, why):
    # Each read as no setting (YAML keeps the last key written twice; a missing file named by
    # $SIGHTLINE_METRICS and an unknown top key were the defaults): similarity's fall, an
    # improvement as a score better lower, failed the gate (exit 1), and its rise would pass
    settings = tmp_path / "metrics.yaml"
    if text == "":
        settings.mkdir()
    elif isinstance(text, bytes):
        settings.write_bytes(text)
    elif text is not None:
        settings.write_text(text)
    monkeypatch.setenv("SIGHTLINE_METRICS", str(settings))
    code, out, err = _main(capsys, "--baseline", "v1", "--candidate", "v2", "--metric",
                           "similarity", "--store", str(store))
    assert code == 2, out
    assert f"the metrics settings cannot be read: {settings}: " in err and why in err
    assert "Traceback" not in err


def test_a_metrics_file_may_use_anchors_and_merge_keys(tmp_path):
    from lib.metric_settings import load_metric_settings

    path = tmp_path / "metrics.yaml"
    path.write_text("metrics:\n  toxicity: &lower\n    better: lower\n    min_effect: 0.05\n"
                    "  hallucination:\n    <<: *lower\n    min_effect: 0.1\n")
    s = load_metric_settings(path)
    assert s.lower_is_better == {"toxicity", "hallucination"}
    assert (s.min_effect("toxicity", 0), s.min_effect("hallucination", 0)) == (0.05, 0.1)


def test_a_metric_only_one_side_was_scored_on_is_named_not_left_out(tmp_path, capsys):
    # v6's correctness scorer failed on every case (its rows quarantined): the gate compared
    # fluency and similarity alone and said nothing of the metric v6 lost
    lake = Lake(tmp_path / "store")
    kept = [r for r in _evals("v1", "run-1", T0) if r["metric"] != "similarity"]
    lost = [dict(r, version="v6", run_id="run-6", eval_id=f"6-{r['eval_id']}")
            for r in _evals("v1", "run-1", T0 + timedelta(hours=1))
            if r["metric"] != "correctness"]
    lake.append({"evals": _table(kept + lost)}, source="t")
    code, out, _ = _main(capsys, "--baseline", "v1", "--candidate", "v6", "--json",
                         "--store", str(lake.root))
    doc = json.loads(out)
    assert [m["metric"] for m in doc["metrics"]] == ["fluency"]
    assert (doc["baseline_only"], doc["candidate_only"]) == (["correctness"], ["similarity"])
    assert code == 0 and doc["verdict"] == "no_significant_change"
    code, out, _ = _main(capsys, "--baseline", "v1", "--candidate", "v6", "--store",
                         str(lake.root))
    assert "not compared, scored on v1 alone: correctness\n" in out
    assert "not compared, scored on v6 alone: similarity\n" in out
    code, out, _ = _main(capsys, "--baseline", "v1", "--candidate", "v6", "--json",
                         "--metric", "fluency", "--store", str(lake.root))
    assert (json.loads(out)["baseline_only"], json.loads(out)["candidate_only"]) == ([], [])


def test_the_metrics_settings_match_a_metric_without_case_or_surrounding_spaces(
        store, capsys, tmp_path, monkeypatch):
    # "Similarity" over evals logging "similarity" matched nothing: its fall, an improvement of
    # a score better lower, failed the gate (exit 1), as with no settings at all
    settings = tmp_path / "metrics.yaml"
    monkeypatch.setenv("SIGHTLINE_METRICS", str(settings))
    settings.write_text("metrics:\n  ' Similarity ': {min_effect: 0.005, better: lower}\n")
    code, out, _ = _main(capsys, "--baseline", "v1", "--candidate", "v2", "--json", "--metric",
                         "similarity", "--store", str(store))
    (row,) = json.loads(out)["metrics"]
    assert (code, row["verdict"], row["min_effect"]) == (0, "improvement", 0.005)
    settings.write_text("metrics:\n  toxicity: {better: lower}\n  Toxicity: {min_effect: 1}\n")
    code, _, err = _main(capsys, "--baseline", "v1", "--candidate", "v2", "--store", str(store))
    assert code == 2 and "metrics.Toxicity is metrics.toxicity again" in err


def test_a_reader_that_stops_early_does_not_pass_the_gate(store):
    # `compare … | head` under `set -o pipefail`: the output's pipe closed before it was
    # written, and the broken pipe exited 0 on a regression (the build passed)
    proc = _process("--baseline", "v1", "--candidate", "v2", "--json", "--store", str(store))
    proc.stdout.close()  # (the reader gone before the command writes)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1, err
    assert "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.parametrize("settings_text, flag, fix, why", [
    # meant as 5 points; a --min-effect given does not replace a metric's own (review: the
    # error said "set it in the metrics settings (or --min-effect)" either way)
    ("metrics:\n  correctness: {min_effect: 5}\n", ("--min-effect", "0.05"), "metrics.yaml",
     "500 points, which no pass rate can make, so it can never be called a regression"),
    ("metrics: {}\n", ("--min-effect", "1"), "--min-effect 0.01",  # meant as 1 point
     "100 points, every case passing to none, so it is all but never called a regression"),
])
def test_a_pass_rate_min_effect_no_change_can_reach_is_exit_2(
        store, capsys, tmp_path, monkeypatch, settings_text, flag, fix, why):
    # correctness fell 12 points (a regression, exit 1): with a minimum effect of 5 (500
    # points) or 1 (100 points) the gate passed it, exit 0, whatever the candidate did
    settings = tmp_path / "metrics.yaml"
    settings.write_text(settings_text)
    monkeypatch.setenv("SIGHTLINE_METRICS", str(settings))
    code, out, _ = _main(capsys, "--baseline", "v1", "--candidate", "v2", "--json",
                         "--metric", "correctness", *flag, "--store", str(store))
    assert code == 2
    error = json.loads(out)["error"]
    assert "correctness is compared as a pass rate, whose changes are fractions" in error
    assert why in error
    where = error.rsplit("regression", 1)[1]
    assert fix in where and ("--min-effect" in where) == (fix != "metrics.yaml"), error


def test_a_score_may_have_a_min_effect_of_whole_units(store, capsys, tmp_path, monkeypatch):
    settings = tmp_path / "metrics.yaml"
    settings.write_text("metrics:\n  similarity: {min_effect: 5}\n")  # a score: its units
    monkeypatch.setenv("SIGHTLINE_METRICS", str(settings))
    code, out, _ = _main(capsys, "--baseline", "v1", "--candidate", "v2", "--json",
                         "--metric", "similarity", "--store", str(store))
    assert code == 0 and json.loads(out)["verdict"] == "no_significant_change"


def test_results_that_errored_are_counted_and_said_not_read_as_too_few(tmp_path, capsys):
    # promptfoo's errors (a 429, a timeout) are results with neither a pass nor a score: v7's
    # correctness errored on every case and read "correctness: – → –: too few evals to say",
    # the baseline's pass rate not shown and the errors unsaid; 8 of fluency's went unsaid too
    lake = Lake(tmp_path / "store")
    v7 = []
    for r in _evals("v1", "run-1", T0 + timedelta(hours=1)):
        r = dict(r, version="v7", run_id="run-7", eval_id=f"7-{r['eval_id']}")
        if r["metric"] == "correctness" or (r["metric"] == "fluency"
                                            and r["case_id"] in {f"c{i}" for i in range(8)}):
            r.update(passed=None, score=None, label="error")
        v7.append(r)
    lake.append({"evals": _table(_evals("v1", "run-1", T0) + v7)}, source="t")
    code, out, _ = _main(capsys, "--baseline", "v1", "--candidate", "v7", "--json",
                         "--store", str(lake.root))
    by = {m["metric"]: m for m in json.loads(out)["metrics"]}
    correctness, fluency = by["correctness"], by["fluency"]
    assert correctness["verdict"] == "insufficient_data"
    assert correctness["baseline_mean"] == len(PASSES["v1"]["correctness"]) / 100
    assert (correctness["unscored_baseline"], correctness["unscored_candidate"]) == (0, 100)
    assert "neither a pass nor a score (errors), left out: B 100" in correctness["note"]
    assert (fluency["unscored_candidate"], fluency["n_pairs"]) == (8, 92)
    assert by["similarity"]["unscored_candidate"] == 0
    code, out, _ = _main(capsys, "--baseline", "v1", "--candidate", "v7", "--store",
                         str(lake.root))
    assert "too few evals to say: v7's 100 results have neither a pass nor a score " \
        "(errors)." in out
