"""``python -m lib summary``: design §6's JSON, equal to a direct DuckDB computation over the
Parquet files (read_parquet, not Sightline's views); percentiles equal numpy.quantile (type 7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest

from lib import cli
from lib.store import Lake
from tests.conftest import make_request, requests_table

REPO = Path(__file__).resolve().parents[1]
D1 = datetime(2026, 3, 2, tzinfo=UTC)
D2 = D1 + timedelta(days=1)
D3 = D1 + timedelta(days=2)

KEYS = {"requests", "errors", "error_rate", "input_tokens", "cached_input_tokens",
        "output_tokens", "reasoning_tokens", "cost_usd", "unpriced_requests", "latency_ms",
        "from", "to", "problems"}
GROUP_KEYS = KEYS - {"from", "to", "problems"}
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def _rows() -> list[dict]:
    """Fourteen requests over three days; latencies irregular so percentiles interpolate."""
    lat = [120.0, 87.5, 301.2, 95.0, 4100.0, 230.0, 150.5, 99.9, 610.0, 75.25, 180.0, 2200.0,
           133.3, 88.8]
    spec = [
        # ts, provider, feature, customer, status, cost, input, cached, output, reasoning
        (D1 + timedelta(hours=9), "openai", "chat", "c1", "ok", 0.01, 1000, 200, 300, 0),
        (D1 + timedelta(hours=10), "openai", "chat", "c2", "ok", 0.02, 2000, 0, 400, 0),
        (D1 + timedelta(hours=11), "anthropic", "search", "c1", "error", None, 500, 0, 0, 0),
        (D1 + timedelta(hours=12), "anthropic", None, "o'brien", "ok", 0.04, 800, 512, 120, 0),
        (D1 + timedelta(hours=23, minutes=59, seconds=59), "openai", "agent", "c3", "ok", 0.5,
         3000, 1024, 2000, 1500),
        (D2, "google", "chat", "c1", "ok", 0.003, 700, 0, 90, 0),  # exactly midnight
        (D2 + timedelta(hours=1), "openai", "search", "c2", "error", 0.0, 1200, 0, 0, 0),
        (D2 + timedelta(hours=5), "self-hosted", "extract", "c1", "ok", None, 900, 0, 50, 0),
        (D2 + timedelta(hours=8), "openai", "chat", "c4", "ok", 0.015, 1500, 600, 350, 0),
        (D2 + timedelta(hours=20), "anthropic", "chat", "c1", "ok", 0.07, 2500, 2048, 500, 0),
        (D3, "openai", "agent", "c2", "ok", 0.9, 4000, 0, 3000, 2500),  # exactly midnight
        (D3 + timedelta(hours=2), "google", "search", "c3", "error", None, 100, 0, 0, 0),
        (D3 + timedelta(hours=3), "openai", "chat", "c1", "ok", 0.011, 1100, 256, 280, 0),
        (D3 + timedelta(hours=4), "anthropic", "chat", "c5", "ok", 0.033, 1700, 0, 410, 0),
    ]
    rows = []
    for i, (ts, prov, feat, cust, status, cost, inp, cached, out, reas) in enumerate(spec):
        rows.append(make_request(
            i, ts=ts, provider=prov, feature=feat, customer_id=cust, status=status,
            error_type="timeout" if status == "error" else None, cost_usd=cost,
            input_tokens=inp, cached_input_tokens=cached, output_tokens=out,
            reasoning_tokens=reas, latency_ms=lat[i],
            attributes=json.dumps({"region": "eu-west" if i % 3 == 0 else "us-east"})))
    return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("summary") / "store"
    lake = Lake(root)
    rows = _rows()
    # Two batches, so the answer spans several commits and files.
    lake.append({"requests": requests_table(rows[:6])}, source="a.jsonl")
    lake.append({"requests": requests_table(rows[6:])}, source="b.jsonl")
    return root


def direct(root: Path, cond: str = "true", params: dict | None = None) -> dict:
    """The expected totals, straight from the Parquet files with plain DuckDB + numpy."""
    con = duckdb.connect()
    try:
        src = f"read_parquet('{root}/requests/date=*/*.parquet')"
        n, errors, inp, cached, out, reas, cost, unpriced = con.execute(
            f"""SELECT count(*), count(*) FILTER (WHERE status = 'error'),
                       coalesce(sum(input_tokens), 0), coalesce(sum(cached_input_tokens), 0),
                       coalesce(sum(output_tokens), 0), coalesce(sum(reasoning_tokens), 0),
                       coalesce(sum(cost_usd), 0), count(*) FILTER (WHERE cost_usd IS NULL)
                FROM {src} WHERE {cond}""", params or {}).fetchone()
        lat = np.array([r[0] for r in con.execute(
            f"SELECT latency_ms FROM {src} WHERE {cond}", params or {}).fetchall()])
    finally:
        con.close()
    return {
        "requests": n, "errors": errors, "error_rate": errors / n if n else None,
        "input_tokens": inp, "cached_input_tokens": cached, "output_tokens": out,
        "reasoning_tokens": reas,
        # unknown when every request is unpriced (never a silent $0)
        "cost_usd": None if n and unpriced == n else cost, "unpriced_requests": unpriced,
        "latency_ms": {k: (float(np.quantile(lat, q)) if len(lat) else None)
                       for k, q in PERCENTILES.items()},
    }


def assert_matches(doc: dict, expected: dict) -> None:
    for key in ("requests", "errors", "input_tokens", "cached_input_tokens", "output_tokens",
                "reasoning_tokens", "unpriced_requests"):
        assert doc[key] == expected[key], key
        assert isinstance(doc[key], int), key
    for key in ("error_rate", "cost_usd"):
        if expected[key] is None:
            assert doc[key] is None, key
        else:
            assert doc[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-15), key
    assert set(doc["latency_ms"]) == set(PERCENTILES)
    for k, v in expected["latency_ms"].items():
        if v is None:
            assert doc["latency_ms"][k] is None, k
        else:
            assert doc["latency_ms"][k] == pytest.approx(v, rel=1e-12), k


def run_main(capsys, *args) -> tuple[int, dict | None, str]:
    code = cli.main(["summary", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if "--json" in args and code == 0 else None), err


def run_process(*args, env_store: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SIGHTLINE_STORE"}
    if env_store is not None:
        env["SIGHTLINE_STORE"] = str(env_store)
    return subprocess.run([sys.executable, "-m", "lib", "summary", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


# -- the document ---------------------------------------------------------------------------------
def test_subprocess_json_equals_direct_computation(store):
    proc = run_process("--json", "--store", str(store))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == KEYS
    assert doc["from"] is None and doc["to"] is None
    expected = direct(store)
    assert expected["requests"] == 14 and expected["errors"] == 3
    assert_matches(doc, expected)
    # Hand-checked anchors, so the reference computation is itself pinned down.
    assert doc["unpriced_requests"] == 3
    assert doc["cost_usd"] == pytest.approx(0.01 + 0.02 + 0.04 + 0.5 + 0.003 + 0.0 + 0.015 + 0.07
                                            + 0.9 + 0.011 + 0.033)
    lat = sorted(r["latency_ms"] for r in _rows())
    # Type 7 by hand: p50 of 14 values is the mean of the 7th and 8th.
    assert doc["latency_ms"]["p50"] == pytest.approx((lat[6] + lat[7]) / 2)
    # p95: h = 13 * 0.95 = 12.35 -> lat[12] + 0.35 * (lat[13] - lat[12]).
    assert doc["latency_ms"]["p95"] == pytest.approx(lat[12] + 0.35 * (lat[13] - lat[12]))


def test_subprocess_store_from_environment_and_group_by(store):
    proc = run_process("--json", "--group-by", "provider", "--where", "feature=chat",
                       env_store=store)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == KEYS | {"groups"}
    assert_matches(doc, direct(store, "feature = 'chat'"))
    assert set(doc["groups"]) == {"openai", "anthropic", "google"}
    for prov, g in doc["groups"].items():
        assert set(g) == GROUP_KEYS
        assert_matches(g, direct(store, "feature = 'chat' AND provider = $p", {"p": prov}))


def test_main_in_process_equals_subprocess(store, capsys):
    code, doc, _ = run_main(capsys, "--json", "--store", str(store))
    assert code == 0
    other = json.loads(run_process("--json", "--store", str(store)).stdout)
    assert set(doc) == set(other) == KEYS
    # Equal up to the last bits of float sums (DuckDB's threads may add in another order).
    assert_matches(doc, other)
    assert_matches(doc, direct(store))


def test_text_output_without_json(store, capsys):
    code = cli.main(["summary", "--store", str(store), "--group-by", "feature"])
    out = capsys.readouterr().out
    assert code == 0
    assert "window: all requests (no --from or --to)" in out
    assert "14 req" in out and "chat" in out
    cli.main(["summary", "--store", str(store), "--from", "2026-03-02"])
    assert "window: 2026-03-02T00:00:00+00:00 → the last" in capsys.readouterr().out


def test_text_output_escapes_values_from_the_logs(tmp_path, capsys):
    lake = Lake(tmp_path / "store")
    lake.append({"requests": requests_table([make_request(0, model="\x1b[2Jgpt\u202e")])},
                source="t")
    assert cli.main(["summary", "--store", str(lake.root), "--group-by", "model"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert "\\x1b[2Jgpt\\u202e" in out


# -- windows --------------------------------------------------------------------------------------
def test_window_is_half_open(store, capsys):
    code, doc, _ = run_main(capsys, "--json", "--store", str(store),
                            "--from", "2026-03-03", "--to", "2026-03-04")
    assert code == 0
    # The row at exactly 2026-03-03T00:00Z is in, the one at 2026-03-04T00:00Z is out.
    expected = direct(store, "ts >= $a AND ts < $b", {"a": D2, "b": D3})
    assert expected["requests"] == 5
    assert_matches(doc, expected)
    assert doc["from"] == "2026-03-03T00:00:00+00:00"
    assert doc["to"] == "2026-03-04T00:00:00+00:00"


def test_window_with_offsets_and_times(store, capsys):
    # 02:00+02:00 is midnight UTC: same window as above, written differently.
    code, doc, _ = run_main(capsys, "--json", "--store", str(store),
                            "--from", "2026-03-03T02:00:00+02:00", "--to", "2026-03-03T23:59:59Z")
    assert code == 0
    assert_matches(doc, direct(store, "ts >= $a AND ts < $b",
                               {"a": D2, "b": D3 - timedelta(seconds=1)}))
    assert doc["from"] == "2026-03-03T00:00:00+00:00"
    # Only --from: everything from then on.
    code, doc, _ = run_main(capsys, "--json", "--store", str(store), "--from", "2026-03-04")
    assert code == 0 and doc["to"] is None
    assert_matches(doc, direct(store, "ts >= $a", {"a": D3}))
    assert doc["requests"] == 4


def test_empty_window(store, capsys):
    code, doc, _ = run_main(capsys, "--json", "--store", str(store),
                            "--from", "2020-01-01", "--to", "2020-01-02")
    assert code == 0
    assert doc["requests"] == 0 and doc["errors"] == 0 and doc["error_rate"] is None
    assert doc["cost_usd"] == 0 and doc["input_tokens"] == 0
    assert doc["latency_ms"] == {k: None for k in PERCENTILES}


# -- filters and groups ---------------------------------------------------------------------------
def test_group_by_with_null_values(store, capsys):
    code, doc, _ = run_main(capsys, "--json", "--store", str(store), "--group-by", "feature")
    assert code == 0
    assert set(doc["groups"]) == {"chat", "search", "agent", "extract", "null"}
    for value, g in doc["groups"].items():
        cond = "feature IS NULL" if value == "null" else "feature = $v"
        assert_matches(g, direct(store, cond, {} if value == "null" else {"v": value}))
    assert sum(g["requests"] for g in doc["groups"].values()) == doc["requests"]
    # Largest group first.
    sizes = [g["requests"] for g in doc["groups"].values()]
    assert sizes == sorted(sizes, reverse=True)


def test_group_by_dimension_key_and_window(store, capsys):
    code, doc, _ = run_main(capsys, "--json", "--store", str(store), "--group-by", "customer",
                            "--from", "2026-03-02", "--to", "2026-03-03")
    assert code == 0
    cond = "ts >= $a AND ts < $b"
    assert_matches(doc, direct(store, cond, {"a": D1, "b": D2}))
    assert set(doc["groups"]) == {"c1", "c2", "c3", "o'brien"}
    for cust, g in doc["groups"].items():
        assert_matches(g, direct(store, cond + " AND customer_id = $c",
                                 {"a": D1, "b": D2, "c": cust}))


def test_where_filters_and_quotes_are_harmless(store, capsys):
    code, doc, _ = run_main(capsys, "--json", "--store", str(store),
                            "--where", "customer=o'brien")
    assert code == 0 and doc["requests"] == 1
    assert_matches(doc, direct(store, "customer_id = 'o''brien'"))

    code, doc, _ = run_main(capsys, "--json", "--store", str(store),
                            "--where", "provider=openai", "--where", "status=ok")
    assert code == 0
    assert_matches(doc, direct(store, "provider = 'openai' AND status = 'ok'"))

    code, doc, _ = run_main(capsys, "--json", "--store", str(store),
                            "--where", "provider=x' OR '1'='1")
    assert code == 0 and doc["requests"] == 0

    code, doc, _ = run_main(capsys, "--json", "--store", str(store),
                            "--where", "attr.region=eu-west")
    assert code == 0
    assert_matches(doc, direct(store, "json_extract_string(attributes, '$.region') = 'eu-west'"))
    assert doc["requests"] == 5


def test_a_column_given_twice_matches_either_value(store, capsys):
    """``--where feature=chat --where feature=search``: the requests of both features (as
    ``changes`` and the URL filters read a key given twice), not the last value's alone."""
    code, doc, _ = run_main(capsys, "--json", "--store", str(store),
                            "--where", "feature=chat", "--where", "feature=search")
    assert code == 0
    assert_matches(doc, direct(store, "feature IN ('chat', 'search')"))
    assert doc["requests"] == 10

    code, doc, _ = run_main(capsys, "--json", "--store", str(store), "--where", "feature=chat",
                            "--where", "provider=openai", "--where", "feature=search")
    assert code == 0
    assert_matches(doc, direct(store, "feature IN ('chat', 'search') AND provider = 'openai'"))


def test_changes_takes_a_column_name_as_summary_does(store, capsys):
    """``--where customer_id=c1`` (summary's spelling) filters ``changes`` as
    ``--where customer=c1`` (the URL key) does, instead of exiting 2."""
    docs = []
    for where in ("customer=c1", "customer_id=c1"):
        assert cli.main(["changes", "--store", str(store), "--json", "--metric", "error_rate",
                         "--window", f"{D2.date()}..{(D2 + timedelta(days=1)).date()}",
                         "--where", where]) == 0
        docs.append(json.loads(capsys.readouterr().out))
    assert docs[0] == docs[1]
    day = f"customer_id = 'c1' AND ts >= '{D2}' AND ts < '{D2 + timedelta(days=1)}'"
    assert docs[0]["window"]["n"] == direct(store, day)["requests"] > 0


@pytest.mark.parametrize("top", ["0", "-3"])
def test_changes_refuses_a_top_below_one(store, capsys, top):
    # `--top -3` printed every contributor but the last three (a slice), found in review
    window = f"{D2.date()}..{(D2 + timedelta(days=1)).date()}"
    assert cli.main(["changes", "--store", str(store), "--metric", "error_rate", "--window",
                     window, "--top", top]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "--top" in err


# -- usage errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["--group-by", "latency_ms"],          # not a dimension
    ["--group-by", "nonsense"],
    ["--where", "nonsense=1"],
    ["--where", "attr.bad key'=1"],        # attribute keys are validated
    ["--where", "provider"],               # no '='
    ["--from", "2026-13-45"],              # bad date
    ["--to", "yesterday"],
    ["--from", "2026-03-04", "--to", "2026-03-03"],   # empty window
    ["--from", "2026-03-04", "--to", "2026-03-04"],
])
def test_bad_usage_exits_2(store, capsys, args):
    code = cli.main(["summary", "--json", "--store", str(store), *args])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error: ")  # and --json's document says it too (tests/test_cli_errors)
    assert json.loads(out) == {"error": err.removeprefix("error: ").rstrip("\n")}


def test_unknown_flag_exits_2(store, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["summary", "--store", str(store), "--frobnicate"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err


def test_subprocess_exit_codes(store, tmp_path):
    missing = run_process("--json", "--store", str(tmp_path / "no-such-store"))
    assert missing.returncode == 2 and "no store at" in json.loads(missing.stdout)["error"]
    assert "no store at" in missing.stderr
    bad = run_process("--json", "--store", str(store), "--bogus")
    assert bad.returncode == 2 and "--bogus" in json.loads(bad.stdout)["error"]


def test_the_text_null_and_no_value_share_one_group_that_adds_up(tmp_path, capsys):
    # Three requests without a feature and two whose feature is the text "null" (a logger's
    # JSON.stringify(null)): before, the second group overwrote the first under the key "null"
    # and the groups summed to 2 of 5 requests.
    root = tmp_path / "store"
    Lake(root).append({"requests": requests_table(
        [make_request(i, feature=None) for i in range(3)]
        + [make_request(3 + i, feature="null") for i in range(2)]
        + [make_request(5, feature="chat")])}, source="t")
    code, doc, _ = run_main(capsys, "--json", "--store", str(root), "--group-by", "feature")
    assert code == 0
    assert {k: g["requests"] for k, g in doc["groups"].items()} == {"null": 5, "chat": 1}
    assert_matches(doc["groups"]["null"],
                   direct(root, "feature IS NULL OR feature = $v", {"v": "null"}))


def test_cost_is_unknown_not_zero_when_no_request_is_priced(tmp_path, capsys):
    root = tmp_path / "store"
    Lake(root).append({"requests": requests_table(
        [make_request(i, model="my-ft-model", cost_usd=None) for i in range(2)]
        + [make_request(2, cost_usd=0.5)])}, source="t")
    code, doc, _ = run_main(capsys, "--json", "--store", str(root), "--group-by", "model")
    assert code == 0
    assert (doc["cost_usd"], doc["unpriced_requests"]) == (0.5, 2)
    assert {k: (g["cost_usd"], g["unpriced_requests"]) for k, g in doc["groups"].items()} == \
        {"my-ft-model": (None, 2), "gpt-4o": (0.5, 0)}
    assert cli.main(["summary", "--store", str(root), "--where", "model=my-ft-model"]) == 0
    text = capsys.readouterr().out
    assert "$–  unpriced 2" in text and "$0.00" not in text


def _a_day_unreadable(tmp_path) -> None:
    """A store at ``tmp_path / "s"`` of 3 requests on D1 and 3 on D2, D1's file unreadable."""
    lake = Lake(tmp_path / "s")
    for k, day in enumerate((D1, D2)):
        lake.append({"requests": requests_table([
            make_request(10 * k + i, ts=day + timedelta(hours=i)) for i in range(3)])},
            source="t")
    sorted((tmp_path / "s" / "requests").glob("date=*/*.parquet"))[0].write_bytes(b"not parquet")


def test_totals_that_leave_a_file_out_say_so_in_the_document_and_fail(tmp_path, capsys):
    # an unreadable data file: its rows are not in the totals; the JSON alone looked whole
    _a_day_unreadable(tmp_path)
    assert cli.main(["summary", "--store", str(tmp_path / "s"), "--json"]) == 1
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["requests"] == 3 and len(doc["problems"]) == 1
    assert "not a readable Parquet file" in doc["problems"][0] and "warning:" in out.err
    assert cli.main(["changes", "--store", str(tmp_path / "s"), "--window",
                     f"{D2.date()}..{(D2 + timedelta(days=1)).date()}", "--metric",
                     "error_rate", "--json"]) == 1
    assert len(json.loads(capsys.readouterr().out)["problems"]) == 1


def test_long_names_are_cut_visibly():
    from lib.formatting import cut

    assert cut("claude-3-5-haiku-20241022", 24) == "claude-3-5-haiku-202410…"
    assert cut("gpt-4o", 24) == "gpt-4o"


@pytest.mark.parametrize("command", [
    ["summary"], ["summary", "--json"],
    ["drift", "--reference", f"{D1.date()}..{D2.date()}",
     "--current", f"{D2.date()}..{(D2 + timedelta(days=1)).date()}"]],
    ids=["summary", "summary --json", "drift"])
def test_a_reader_that_stops_early_leaves_the_exit_status_as_it_is(tmp_path, command):
    # `summary … | head` under `set -o pipefail` in a CI step: the broken pipe ended the
    # command with status 0, so totals that left an unreadable file out passed (only compare,
    # the gate, kept its status)
    _a_day_unreadable(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "SIGHTLINE_STORE"}
    proc = subprocess.Popen([sys.executable, "-m", "lib", *command, "--store",
                             str(tmp_path / "s")], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # (the reader gone before the command writes)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "not a readable" in err
