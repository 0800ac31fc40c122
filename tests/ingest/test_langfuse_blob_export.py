"""Langfuse's blob storage export (Project Settings > Integrations > Blob Storage), the way a
team gets its Langfuse data into a bucket: ``observations_v2/`` (enriched observations, the
default), or the legacy ``traces/`` + ``observations/`` split, and ``scores/``; each file JSON,
JSONL or CSV, perhaps gzipped. Its records use ClickHouse's snake_case names, times as
``2026-11-20 10:00:00.000000`` in UTC, ``""`` for what is not set (langfuse-docs,
content/docs/api-and-data-platform/features/blob-storage-export-fields.mdx, d0bb31e1). They were
"not a recognized format" (found in review). Expected values are worked out by hand beside each
test from the usage Langfuse stored: its ``usage_details`` are exclusive buckets (``input`` is
what remains once ``input_cached_tokens`` is split out), the trap design §3 normalizes.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import time

import pytest

from lib.ingest.formats import langfuse
from lib.ingest.pipeline import detect_format, ingest_paths
from lib.store import Lake
from tests.ingest.conftest import live_rows


def _when(minute: int, second: float = 0.0) -> str:
    return f"2026-11-20 10:{minute:02d}:{second:09.6f}"


def generation(oid: str, minute: int, **fields) -> dict:
    """An enriched observation (observations_v2/) of a GENERATION, every documented field."""
    row = {
        "id": oid, "trace_id": f"t-{oid}", "project_id": "proj-1", "environment": "production",
        "type": "GENERATION", "parent_observation_id": "", "start_time": _when(minute),
        "end_time": _when(minute, 1.5), "name": "answer", "metadata": {"feature": "support"},
        "level": "DEFAULT", "status_message": "", "version": "", "input": "What is my plan?",
        "output": "Pro.", "provided_model_name": "gpt-4o",
        "model_parameters": "{\"temperature\":0.2}",
        # OpenAI said prompt 1000 (800 of them cached), completion 300 (120 reasoning):
        # Langfuse stored them as exclusive buckets
        "usage_details": {"input": 200, "input_cached_tokens": 800, "output": 180,
                          "output_reasoning_tokens": 120, "total": 1300},
        "cost_details": {"input": 0.0005, "input_cached_tokens": 0.001, "output": 0.003,
                         "total": 0.0045},
        "completion_start_time": _when(minute, 0.25), "prompt_name": "support-answer",
        "prompt_version": 7, "total_cost": 0.0045,
        # an integration created before 2026-04-01 writes these two in milliseconds
        "latency": 1500, "time_to_first_token": 250,
        "model_id": "m-gpt-4o", "created_at": _when(minute, 2), "updated_at": _when(minute, 2),
        "prompt_id": "p-7", "tool_calls": [], "tool_call_names": [], "tool_definitions": {},
        "usage_pricing_tier_name": None, "input_price": "0.0000025", "output_price": "0.00001",
        "total_price": None, "user_id": "user-9", "session_id": "sess-3",
        "trace_name": "support-chat", "tags": ["beta"], "release": "2.4.0", "bookmarked": False,
        "public": False,
    }
    row.update(fields)
    return row


def span(oid: str, parent: str, minute: int) -> dict:
    row = generation(oid, minute, type="SPAN", parent_observation_id=parent, name="retrieve",
                     provided_model_name="", model_parameters="", usage_details={},
                     cost_details={}, completion_start_time=None, total_cost=0,
                     prompt_name="", prompt_version=None)
    return row


def failed(oid: str, minute: int) -> dict:
    return generation(oid, minute, level="ERROR", output="",
                      status_message="RateLimitError: Error code: 429 - rate limited",
                      usage_details={}, cost_details={}, total_cost=0,
                      completion_start_time=None)


def score(sid: str, observation: str, **fields) -> dict:
    row = {"id": sid, "timestamp": _when(30), "project_id": "proj-1",
           "environment": "production", "trace_id": f"t-{observation}",
           "observation_id": observation, "session_id": None, "dataset_run_id": None,
           "name": "helpfulness", "value": 0.75, "source": "EVAL", "comment": "clear answer",
           "data_type": "NUMERIC", "string_value": None, "created_at": _when(30),
           "updated_at": _when(30)}
    row.update(fields)
    return row


def trace(tid: str) -> dict:
    return {"id": tid, "timestamp": _when(0), "name": "support-chat",
            "environment": "production", "project_id": "proj-1", "metadata": {},
            "user_id": "user-9", "session_id": "sess-3", "release": "2.4.0", "version": None,
            "public": False, "bookmarked": False, "tags": [], "input": None, "output": None,
            "created_at": _when(0), "updated_at": _when(0)}


def as_jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def as_json(rows: list[dict]) -> bytes:
    return json.dumps(rows).encode()


def as_csv(rows: list[dict]) -> bytes:
    """The export's CSV: values as text, null empty, objects and arrays as JSON text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(rows[0]))
    for row in rows:
        writer.writerow(["" if v is None else json.dumps(v) if isinstance(v, (dict, list))
                         else str(v).lower() if isinstance(v, bool) else v
                         for v in row.values()])
    return out.getvalue().encode()


def _ingest(tmp_path, files: dict[str, bytes]):
    """Write ``files`` (name -> bytes) under tmp_path/export, aged, and ingest the folder."""
    root = tmp_path / "export"
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        old = time.time() - 600
        os.utime(path, (old, old))
    lake = Lake(tmp_path / "store")
    report = ingest_paths(lake, [str(root)])
    return lake, {os.path.relpath(f.source, root): f for f in report.files}


REQUEST_COLUMNS = ("request_id, trace_id, parent_id, ts, latency_ms, ttft_ms, model, status, "
                   "error_type, input_tokens, cached_input_tokens, output_tokens, "
                   "reasoning_tokens, logged_cost_usd, prompt_name, prompt_version, user_id, "
                   "session_id, app_version, environment, feature")


@pytest.mark.parametrize("layout", ["jsonl", "json", "csv", "jsonl.gz"])
def test_enriched_observations_store_true_tokens_times_and_trace_context(tmp_path, layout):
    rows = [generation("g1", 0), span("s1", "g1", 1), failed("g2", 2)]
    data = {"jsonl": as_jsonl, "json": as_json, "csv": as_csv,
            "jsonl.gz": lambda r: gzip.compress(as_jsonl(r))}[layout](rows)
    name = f"proj-1/observations_v2/2026-11-20T10-00-00Z.{layout}"
    lake, files = _ingest(tmp_path, {name: data})
    f = files[name]
    assert (f.format, f.error, f.quarantined) == ("langfuse", None, 0)
    assert f.stored == {"requests": 2, "spans": 3}
    got = live_rows(lake, "requests", REQUEST_COLUMNS)
    ts = "2026-11-20 10:0{}:00+00:00"
    assert [tuple(str(v) if i == 3 else v for i, v in enumerate(r)) for r in got] == [
        # input 200 + 800 cached = the 1,000 OpenAI was sent; output 180 + 120 reasoning = 300;
        # latency and time to first token from the times (1.5 s, 0.25 s), never the
        # milliseconds-or-seconds ``latency`` / ``time_to_first_token``; root: no parent
        ("g1", "t-g1", None, ts.format(0), 1500.0, 250.0, "gpt-4o", "ok", None, 1000, 800, 300,
         120, 0.0045, "support-answer", "7", "user-9", "sess-3", "2.4.0", "production",
         "support"),
        # a failed call: no usage, a zero cost as Langfuse wrote it, its error type named
        ("g2", "t-g2", None, ts.format(2), 1500.0, None, "gpt-4o", "error", "RateLimitError",
         None, 0, None, 0, 0.0, "support-answer", "7", "user-9", "sess-3", "2.4.0",
         "production", "support"),
    ]
    spans = live_rows(lake, "spans", "span_id, parent_id, kind, duration_ms")
    assert spans == [("g1", None, "llm", 1500.0), ("g2", None, "llm", 1500.0),
                     ("s1", "g1", "other", 1500.0)]
    (attributes,) = live_rows(lake, "requests", "attributes", "WHERE request_id = 'g1'")[0]
    assert json.loads(attributes)["trace_name"] == "support-chat"
    assert json.loads(attributes)["tags"] == ["beta"]


def test_the_legacy_split_export_stores_observations_and_scores_and_says_what_traces_lack(
        tmp_path):
    # legacy mode: observations carry no trace fields; their trace is a file of its own
    legacy = generation("g1", 0)
    for key in ("user_id", "session_id", "trace_name", "tags", "release", "bookmarked",
                "public"):
        del legacy[key]
    legacy["parent_observation_id"] = None  # (null here, "" in observations_v2)
    lake, files = _ingest(tmp_path, {
        "proj-1/observations/2026-11-20.jsonl": as_jsonl([legacy]),
        "proj-1/traces/2026-11-20.jsonl": as_jsonl([trace("t-g1")]),
        "proj-1/scores/2026-11-20.jsonl": as_jsonl([
            score("sc1", "g1"),
            score("sc2", "g1", name="correct", data_type="BOOLEAN", value=1, source="ANNOTATION",
                  comment=None),
            score("sc3", "g1", name="tone", data_type="CATEGORICAL", value=0,
                  string_value="friendly", source="API", comment=None)]),
    })
    assert files["proj-1/observations/2026-11-20.jsonl"].stored == {"requests": 1, "spans": 1}
    traces = files["proj-1/traces/2026-11-20.jsonl"]
    assert (traces.format, traces.error, traces.stored) == ("langfuse", None, {})
    assert traces.not_read == {langfuse.TRACES_ALONE: 1}
    assert files["proj-1/scores/2026-11-20.jsonl"].stored == {"evals": 3}
    assert live_rows(lake, "requests", "user_id, session_id, input_tokens, output_tokens") == [
        (None, None, 1000, 300)]
    assert live_rows(lake, "evals", "request_id, metric, source, score, passed, label, judge, "
                                    "explanation") == [
        ("g1", "correct", "feedback", 1.0, True, "true", "human", None),
        ("g1", "helpfulness", "online", 0.75, None, None, None, "clear answer"),
        # a category with no score config: Langfuse stores 0, which is no score
        ("g1", "tone", "feedback", None, None, "friendly", None, None),
    ]


def test_a_bad_value_is_quarantined_naming_the_export_s_own_field(tmp_path):
    bad = generation("g2", 1, usage_details={"input": "lots", "output": 5})
    late = generation("g3", 2, start_time="2026-13-40 10:00:00.000000")
    lake, files = _ingest(tmp_path, {"observations_v2/a.jsonl": as_jsonl(
        [generation("g1", 0), bad, late])})
    f = files["observations_v2/a.jsonl"]
    assert f.stored == {"requests": 1, "spans": 1} and f.quarantined == 2
    assert f.reasons == [
        "line 2: usage_details.input is not an integer: lots",
        "line 3: start_time is not a timestamp: 2026-13-40 10:00:00.000000",
    ]
    assert live_rows(lake, "quarantine", "line, raw LIKE '%\"g2\"%'",
                     "WHERE line = 2") == [(2, True)]


def test_each_table_of_the_export_is_recognized_in_each_layout():
    for rows in ([generation("g1", 0)], [score("sc1", "g1")], [trace("t1")],
                 [span("s1", "g1", 0)]):
        for data in (as_jsonl(rows), as_json(rows), as_csv(rows)):
            assert detect_format(data[:65536], "export") is langfuse.FORMAT, data[:80]


def test_a_dataset_run_s_scores_are_its_version(tmp_path):
    # two Langfuse experiments (dataset runs) of a dataset: pooled under no version, they
    # could never be compared (evals review)
    scores = [score(f"sc{run}{i}", f"g{run}{i}", dataset_run_id=f"run-v{run}", trace_id=None,
                    value=float(i % 2), data_type="BOOLEAN", source="API", comment=None)
              for run in (1, 2) for i in range(3)]
    lake, files = _ingest(tmp_path, {"scores/a.jsonl": as_jsonl(scores)})
    assert files["scores/a.jsonl"].stored == {"evals": 6}
    assert live_rows(lake, "evals", "version, source, count(*)", "GROUP BY ALL") == [
        ("run-v1", "offline", 3), ("run-v2", "offline", 3)]
