"""Inspect AI's default log form, the binary ``.eval`` zip (format ``inspect-eval``), gives the
rows the same log gives in JSON (format ``inspect``), reads one sample at a time, and fails or
quarantines bad input with one clear line.

The real logs in tests/ingest/fixtures/inspect/ were written by inspect_ai 0.3.285 itself
(make_logs.py there says how to regenerate them): ``arith.eval`` as Inspect writes it, and
``arith.json.gz`` the same log converted to JSON by Inspect. Expected values are computed here
from the JSON Inspect wrote (and from Inspect's own metrics), never copied from a reader's output.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import tracemalloc
import warnings
from datetime import datetime
from pathlib import Path

import pytest

from lib.ingest.formats import inspect_ai
from lib.ingest.formats.inspect_ai import UNFINISHED
from lib.ingest.pipeline import ingest_paths
from lib.store import Engine, Lake
from tests.ingest.conftest import stored_rows

if sys.version_info >= (3, 14):
    import zipfile
else:
    from backports.zstd import zipfile

FIXTURES = Path(__file__).parent / "fixtures" / "inspect"
LINEAGE = ("source_file", "batch_id", "ingested_at")
# Inspect's letters, as its value_to_float reads them: (passed, score).
LETTERS = {"C": (True, 1.0), "I": (False, 0.0), "P": (None, 0.5), "N": (False, 0.0)}


def real_json() -> dict:
    return json.loads(gzip.decompress((FIXTURES / "arith.json.gz").read_bytes()))


def expected_rows(doc: dict) -> list[tuple]:
    """(case_id, epoch, metric, score, passed, label, explanation, answer, ts) of every eval row
    of the Inspect log ``doc``, worked out here from the documented mapping."""
    out = []
    for sample in doc["samples"]:
        for scorer, score in (sample.get("scores") or {}).items():
            value = score["value"]
            parts = value.items() if isinstance(value, dict) else [(None, value)]
            for key, v in parts:
                passed, num = LETTERS.get(v, (None, v)) if isinstance(v, str) else (None, v)
                out.append((str(sample["id"]), sample["epoch"],
                            scorer if key is None else f"{scorer}/{key}", float(num), passed,
                            v if isinstance(v, str) else None, score.get("explanation"),
                            score.get("answer"), datetime.fromisoformat(sample["completed_at"])))
    return sorted(out, key=repr)


def lake_rows(lake) -> list[tuple]:
    """The same columns as :func:`expected_rows`, as stored."""
    eng = Engine(lake)
    try:
        rows = eng.query("SELECT case_id, epoch, metric, score, passed, label, explanation, "
                         "json_extract_string(attributes, '$.answer'), ts FROM evals").rows()
    finally:
        eng.close()
    return sorted(rows, key=repr)


def quarantine(lake) -> list[tuple]:
    eng = Engine(lake)
    try:
        return eng.query("SELECT line, reason FROM quarantine ORDER BY line, reason").rows()
    finally:
        eng.close()


def write_eval(path: Path, doc: dict, members: list[tuple[str, bytes | dict]] | None = None,
               compression=zipfile.ZIP_ZSTANDARD, header: bool = True) -> Path:
    """An Inspect-shaped ``.eval`` zip of ``doc``: _journal/start.json, each sample of ``doc``
    as samples/<id>_epoch_<n>.json in its order (or ``members``: (name, bytes or JSON value)),
    then header.json (the log without samples) unless ``header`` is False."""
    head = {k: v for k, v in doc.items() if k != "samples"}
    if members is None:
        members = [(f"samples/{s['id']}_epoch_{s['epoch']}.json", s) for s in doc["samples"]]
    with zipfile.ZipFile(path, "w", compression=compression) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a name twice: a re-logged sample
        z.writestr("_journal/start.json", json.dumps(
            {"version": doc.get("version"), "eval": doc["eval"], "plan": doc.get("plan")}))
        for name, content in members:
            z.writestr(name, content if isinstance(content, bytes) else json.dumps(content))
        if header:
            z.writestr("header.json", json.dumps(head))
    return path


def inspect_sort(samples: list[dict]) -> list[dict]:
    """Samples in the order Inspect's sort_samples gives them (inspect_ai/log/_log.py)."""
    return sorted(samples, key=lambda s: (s["epoch"], s["id"] if isinstance(s["id"], str)
                                          else str(s["id"]).zfill(20)))


# -- real logs written by inspect_ai -------------------------------------------------------------
def test_a_real_eval_log_gives_one_row_per_sample_epoch_and_score(lake, totals):
    doc = real_json()
    report = ingest_paths(lake, [str(FIXTURES / "arith.eval")]).files[0]
    expected = expected_rows(doc)
    assert (report.error, report.format, report.quarantined) == (None, "inspect-eval", 0)
    # 4 samples x 2 epochs x (match, includes, answer_length, breakdown's 2 values)
    assert report.stored == {"evals": len(expected)} and len(expected) == 40
    assert lake_rows(lake) == expected
    ev = doc["eval"]
    assert totals("SELECT list(DISTINCT run_id), list(DISTINCT model), list(DISTINCT dataset), "
                  "list(DISTINCT version), count(*) FILTER (passed), count(DISTINCT eval_id) "
                  "FROM evals") == (
        # (the commit the run was made at, with changes not committed: another commit's run is
        # another version to compare, where task and model alone pooled them, review)
        [ev["run_id"]], [ev["model"]], [ev["dataset"]["name"]],
        [f"{ev['task']}@{ev['model']} {ev['revision']['commit']}+dirty"],
        sum(1 for r in expected if r[4]), len(expected))
    # Inspect's own metrics (mean over samples of the mean over epochs) equal the stored means.
    metrics = {s["name"]: next(iter(s["metrics"].values()))["value"]
               for s in doc["results"]["scores"]}
    means = totals("SELECT avg(score) FILTER (metric = 'match'), "
                   "avg(score) FILTER (metric = 'includes'), "
                   "avg(score) FILTER (metric = 'answer_length'), "
                   "avg(score) FILTER (metric = 'breakdown/exact'), "
                   "avg(score) FILTER (metric = 'breakdown/contains') FROM evals")
    assert means == pytest.approx(tuple(metrics[m] for m in (
        "match", "includes", "answer_length", "exact", "contains")))
    assert len(set(metrics.values())) > 1 and 0 < metrics["match"] < 1  # the log varies


def test_the_eval_and_json_forms_of_a_log_give_identical_rows(tmp_path):
    by_form = {}
    for name in ("arith.eval", "arith.json.gz"):
        lake = Lake(tmp_path / name / "store")
        report = ingest_paths(lake, [str(FIXTURES / name)]).files[0]
        assert (report.error, report.quarantined) == (None, 0)
        by_form[report.format] = stored_rows(lake, "evals", LINEAGE)
    assert set(by_form) == {"inspect-eval", "inspect"}
    assert len(by_form["inspect"]) == len(expected_rows(real_json()))
    assert by_form["inspect-eval"] == by_form["inspect"]


def test_a_log_whose_process_died_gives_the_samples_written(lake, totals):
    path = FIXTURES / "crashed.eval"
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        start = json.loads(z.read("_journal/start.json"))
        samples = [json.loads(z.read(n)) for n in names if n.startswith("samples/")]
    assert "header.json" not in names and 0 < len(samples) < 8  # what Inspect left
    report = ingest_paths(lake, [str(path)]).files[0]
    expected = expected_rows({"samples": samples})
    assert (report.error, report.stored, report.quarantined) == (None, {"evals": len(expected)}, 0)
    assert lake_rows(lake) == expected
    assert totals("SELECT list(DISTINCT run_id) FROM evals")[0] == [start["eval"]["run_id"]]
    # said: stored as if it were a whole run, it read as one (review)
    assert report.notes == [f"1 {UNFINISHED}"]
    # the same run as a JSON log still "started" says so too
    doc = {**start, "status": "started", "samples": samples}
    assert [n for c in inspect_ai.FORMAT.parse(io.BytesIO(json.dumps(doc).encode()), "log.json")
            for n in c.not_read] == [UNFINISHED]


def test_a_run_reduced_by_other_than_the_mean_says_its_figures_differ_from_inspect_s(lake,
                                                                                     totals):
    # Inspect reduces a sample's 3 epochs to their mode before its accuracy; each epoch stored,
    # Sightline's pass rate is the mean reducer's: said, not a silent other number
    path = FIXTURES / "reduced_mode.eval"
    doc = read_eval(path)
    inspect_says = {s["name"]: (s["reducer"], s["metrics"]["accuracy"]["value"])
                    for s in doc["results"]["scores"]}
    report = ingest_paths(lake, [str(path)]).files[0]
    assert (report.error, report.quarantined) == (None, 0)
    stored = dict(zip(("match", "includes"), totals(
        "SELECT avg(passed::DOUBLE) FILTER (metric = 'match'), "
        "avg(passed::DOUBLE) FILTER (metric = 'includes') FROM evals"), strict=True))
    assert {m: r for m, (r, _) in inspect_says.items()} == {"match": "mode", "includes": "mode"}
    assert any(stored[m] != pytest.approx(v) for m, (_, v) in inspect_says.items())
    assert report.notes == [f"1 {inspect_ai.REDUCED.format(reducers='mode')}"]
    # a run reduced by the mean (Inspect's default, no reducer written) says nothing
    plain = ingest_paths(lake, [str(FIXTURES / "arith.eval")]).files[0]
    assert (plain.error, plain.notes) == (None, [])


def test_invalidated_samples_are_not_stored_and_their_rerun_counts_once(lake, tmp_path, totals):
    # inspect_ai.log.invalidate_samples marks samples not to be trusted ("invalidation": its
    # provenance, as inspect_ai 0.3.285 writes it); the eval set's retry runs them again under
    # new uuids and copies the others. Stored, they counted in the pass rate, and twice once the
    # retry's log came: 21 rows of 15 (sample, epoch) for one metric, found in review.
    doc = real_json()
    marked = {(s["id"], s["epoch"]) for s in doc["samples"][:3]}
    for sample in doc["samples"][:3]:
        sample["invalidation"] = {"timestamp": "2026-11-28T03:40:38.922863Z", "author": "me",
                                  "reason": "bad target", "metadata": {}}
    doc["invalidated"] = True
    first = write_eval(tmp_path / "invalidated.eval", doc)
    report = ingest_paths(lake, [str(first)]).files[0]
    kept = expected_rows({"samples": doc["samples"][3:]})
    assert (report.error, report.stored, report.quarantined) == (None, {"evals": len(kept)}, 0)
    assert report.notes == [f"3 {inspect_ai.INVALIDATED}"]
    # the retry's log: the marked samples run again (new uuids), the others copied
    retry = real_json()
    retry["eval"] = {**retry["eval"], "run_id": "retry-run", "eval_id": "retry-eval"}
    for sample in retry["samples"]:
        if (sample["id"], sample["epoch"]) in marked:
            sample["uuid"] = f"rerun-{sample['uuid']}"
    second = write_eval(tmp_path / "retry.eval", retry)
    report = ingest_paths(lake, [str(second)]).files[0]
    assert report.stored == {"evals": len(expected_rows(retry)) - len(kept)}
    assert lake_rows(lake) == expected_rows(retry)  # each (sample, epoch, score) once


def read_eval(path: Path) -> dict:
    """An Inspect ``.eval`` log as one document: its header (or start journal) and its samples."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        doc = json.loads(z.read("header.json" if "header.json" in names
                                else "_journal/start.json"))
        doc["samples"] = [json.loads(z.read(n)) for n in names if n.startswith("samples/")]
    return doc


def test_a_retry_s_log_adds_only_the_samples_it_ran_again(lake, totals):
    # `inspect eval-retry` writes a new log (new run and eval ids) that copies the samples the
    # failed run completed, uuid and scores, and runs the others again: Inspect leaves both logs
    # in its folder, and each sample counts once
    first, retry = (read_eval(FIXTURES / "retry" / n) for n in ("first.eval", "retry.eval"))
    assert first["status"] == "error" and retry["status"] == "success"
    assert first["eval"]["run_id"] != retry["eval"]["run_id"]
    scored = {s["uuid"]: s for s in first["samples"] if s.get("scores")}
    errored = [s for s in first["samples"] if s.get("error") and not s.get("scores")]
    copied = [s for s in retry["samples"] if s["uuid"] in scored]
    assert len(errored) == 1 and len(copied) == len(scored) == len(retry["samples"]) - 1
    report = ingest_paths(lake, [str(FIXTURES / "retry")])
    by_name = {Path(f.source).name: f for f in report.files}
    expected = expected_rows(retry)  # every sample of the retry: the copied ones and the rerun
    assert by_name["first.eval"].stored == {"evals": len(expected_rows(first))}
    assert by_name["first.eval"].notes == [
        "1 log(s) of a run that ended as 'error': its scored samples are stored, a retry's log "
        "adds the others.", "1 sample(s) that ended in an error, without a score: not read"]
    assert by_name["retry.eval"].duplicates == {"evals": len(expected_rows({"samples": copied}))}
    assert lake_rows(lake) == expected and len(expected) == 12
    # the copied samples keep the run that scored them first
    assert totals("SELECT count(DISTINCT run_id) FROM evals") == (2,)


# -- the same log as .eval and as JSON -----------------------------------------------------------
def spoiled_log() -> tuple[dict, set]:
    """The real log with more ids (numbers past 9, text) and a bad value in 3 samples; the
    (id, epoch) of those."""
    doc = real_json()
    extra = []
    for sample in doc["samples"]:
        more = json.loads(json.dumps(sample))
        more["id"] = {1: 10, 2: "b", 3: 20}.get(sample["id"], "a")
        extra.append(more)
    samples = doc["samples"] + extra
    samples[1]["target"] = float("inf")                            # the whole sample
    samples[2]["scores"]["answer_length"]["value"] = float("nan")  # one score
    samples[9]["scores"]["match"]["explanation"] = "\ud800"        # one score
    doc["samples"] = inspect_sort(samples)
    return doc, {(samples[i]["id"], samples[i]["epoch"]) for i in (1, 2, 9)}


def test_quarantine_lines_are_those_of_the_log_in_json(tmp_path):
    doc, spoiled = spoiled_log()
    json_path = tmp_path / "log.json"
    json_path.write_text(json.dumps(doc))
    # members written in reverse order: the lines come from Inspect's order, not the zip's
    members = [(f"samples/{s['id']}_epoch_{s['epoch']}.json", s) for s in doc["samples"]][::-1]
    eval_path = write_eval(tmp_path / "log.eval", doc, members)
    got = {}
    for path in (json_path, eval_path):
        lake = Lake(tmp_path / f"lake-{path.suffix[1:]}")
        report = ingest_paths(lake, [str(path)]).files[0]
        assert report.error is None
        got[report.format] = (stored_rows(lake, "evals", LINEAGE), quarantine(lake))
    assert got["inspect-eval"][0] == got["inspect"][0]
    assert len(got["inspect"][0]) == len(expected_rows(doc)) - 5 - 2  # a sample's 5, 2 scores
    json_q, eval_q = got["inspect"][1], got["inspect-eval"][1]
    bad_lines = [i + 1 for i, s in enumerate(doc["samples"]) if (s["id"], s["epoch"]) in spoiled]
    assert len(bad_lines) == 3
    assert [line for line, _ in json_q] == bad_lines
    assert [line for line, _ in eval_q] == bad_lines
    for (line, reason), (_, eval_reason) in zip(json_q, eval_q):
        s = doc["samples"][line - 1]
        assert eval_reason == f"samples/{s['id']}_epoch_{s['epoch']}.json: {reason}"


def test_a_bad_value_of_the_header_quarantines_every_sample_naming_the_header(lake, tmp_path):
    doc = real_json()
    doc["eval"]["model"] = "\ud800"  # text no column can store
    complete = write_eval(tmp_path / "done.eval", doc)
    running = write_eval(tmp_path / "running.eval", doc, header=False)
    reports = ingest_paths(lake, [str(complete), str(running)]).files
    assert [(f.error, f.stored, f.quarantined) for f in reports] == \
        [(None, {}, len(doc["samples"]))] * 2
    reasons = {reason for _, reason in quarantine(lake)}
    assert reasons == {f"{member}: eval.model is not valid UTF-8 text: \ufffd"
                       for member in ("header.json", "_journal/start.json")}


# -- bad input -----------------------------------------------------------------------------------
def test_files_that_cannot_be_read_fail_alone_with_one_line(lake, tmp_path):
    real = (FIXTURES / "arith.eval").read_bytes()
    cut = tmp_path / "cut.eval"
    cut.write_bytes(real[: len(real) // 2])
    csv_zip = io.BytesIO()
    with zipfile.ZipFile(csv_zip, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("data.csv", "a,b\n1,2\n")
    (tmp_path / "data.zip").write_bytes(csv_zip.getvalue())
    (tmp_path / "data.eval").write_bytes(csv_zip.getvalue())
    encrypted = tmp_path / "locked.eval"
    write_eval(encrypted, real_json())
    encrypted.write_bytes(_encrypt(encrypted.read_bytes(), "header.json"))
    not_json = tmp_path / "header.eval"
    with zipfile.ZipFile(not_json, "w") as z:
        z.writestr("header.json", "{oops")
    good = tmp_path / "good.eval"
    good.write_bytes(real)
    paths = [cut, tmp_path / "data.zip", tmp_path / "data.eval", encrypted, not_json, good]
    reports = {Path(f.source).name: f for f in ingest_paths(lake, [str(p) for p in paths]).files}
    errors = {name: f.error for name, f in reports.items()}
    assert errors["cut.eval"].startswith("not a complete zip file (cut short, or copied while "
                                         "Inspect was writing it?): ")
    assert errors["data.zip"].startswith("binary data that is not a known format")
    assert errors["data.eval"] == ("not an Inspect eval log: the zip holds neither header.json "
                                   "nor _journal/start.json (it holds data.csv)")
    assert errors["locked.eval"] == ("header.json is encrypted (password-protected): Sightline "
                                     "does not decrypt logs")
    assert errors["header.eval"].startswith("header.json is not valid JSON: Expecting ")
    assert all("\n" not in e and "Traceback" not in e for e in errors.values() if e)
    assert (errors["good.eval"], reports["good.eval"].stored) == (None, {"evals": 40})
    assert reports["cut.eval"].format == "inspect-eval" and reports["cut.eval"].stored == {}


def _encrypt(data: bytes, name: str) -> bytes:
    """``data`` (a zip) with member ``name`` marked encrypted (general purpose flag bit 0) in its
    local and central headers, as a password-protected zip has it."""
    out = bytearray(data)
    for signature, flags_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        at = out.find(signature)
        while at >= 0:
            if out[at + name_at: at + name_at + len(name)] == name.encode():
                out[at + flags_at] |= 0x1
            at = out.find(signature, at + 1)
    return bytes(out)


def test_a_sample_that_cannot_be_read_is_quarantined_and_the_others_go_on(lake, tmp_path):
    doc = real_json()
    samples = doc["samples"]  # epoch 1: ids 1, 2, 3, q-four, then epoch 2
    members = [(f"samples/{s['id']}_epoch_{s['epoch']}.json", s) for s in samples]
    members[1] = (members[1][0], b'{"id": 2, "epoch": 1, "scores": ')  # cut JSON
    members[2] = (members[2][0], b"[1, 2]")                              # JSON, not an object
    path = write_eval(tmp_path / "log.eval", doc, members)
    path.write_bytes(_encrypt(path.read_bytes(), members[4][0]))
    report = ingest_paths(lake, [str(path)]).files[0]
    assert report.error is None
    got = quarantine(lake)
    assert [line for line, _ in got] == [2, 3, 5]
    assert got[0][1].startswith("samples/2_epoch_1.json is not valid JSON: Expecting value")
    assert got[1][1] == "samples/3_epoch_1.json is not an object"
    assert got[2][1] == ("samples/1_epoch_2.json is encrypted (password-protected): Sightline "
                         "does not decrypt logs")
    kept = [s for i, s in enumerate(samples) if i not in (1, 2, 4)]
    assert lake_rows(lake) == expected_rows({"samples": kept})


def test_a_huge_sample_is_never_read_into_memory(lake, tmp_path):
    doc = real_json()
    huge = 100 * 2**20  # uncompressed, about; zstd makes it a few KiB
    path = write_eval(tmp_path / "log.eval", doc, header=False)  # header written below
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_ZSTANDARD) as z:
        with z.open("samples/zz_epoch_1.json", "w", force_zip64=True) as member:
            member.write(b'{"id": "zz", "epoch": 1, "pad": "')
            block = b"x" * 2**20
            for _ in range(huge // len(block) - 1):
                member.write(block)
            member.write(b'"}')
        size = z.getinfo("samples/zz_epoch_1.json").file_size
        z.writestr("header.json", json.dumps({k: v for k, v in doc.items() if k != "samples"}))
    assert path.stat().st_size < 2**20 and size > huge * 0.98
    # warm: what the first ingest of a process loads (modules, price tables) is not the file's
    ingest_paths(Lake(tmp_path / "warm"), [str(FIXTURES / "crashed.eval")])
    tracemalloc.start()
    try:
        report = ingest_paths(lake, [str(path)]).files[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.error is None and peak < 16 * 2**20, f"{peak:,} bytes at the peak"
    line = len(doc["samples"]) // 2 + 1  # zz sorts after q-four in epoch 1 (text ids by text)
    assert quarantine(lake) == [(line, (
        f"samples/zz_epoch_1.json is {size:,} bytes uncompressed, larger than the limit "
        "of 67,108,864 bytes for one JSON document: not read"))]
    assert lake_rows(lake) == expected_rows(doc)


def test_a_member_damaged_or_lying_about_its_size_is_quarantined(lake, tmp_path):
    doc = real_json()
    path = write_eval(tmp_path / "log.eval", doc, compression=zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        lying, damaged = z.getinfo("samples/2_epoch_1.json"), z.getinfo("samples/3_epoch_1.json")
        directory = z.start_dir
    # the central directory claims 100 bytes where there are thousands
    entry = data.find(b"PK\x01\x02", directory)
    while data[entry + 46: entry + 46 + len(lying.filename)] != lying.filename.encode():
        entry = data.find(b"PK\x01\x02", entry + 1)
    data[entry + 24: entry + 28] = (100).to_bytes(4, "little")
    # bytes in the middle of the other's compressed data overwritten
    start = damaged.header_offset + 30 + len(damaged.filename)
    middle = start + damaged.compress_size // 2
    data[middle: middle + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    report = ingest_paths(lake, [str(path)]).files[0]
    assert report.error is None
    got = quarantine(lake)
    assert [line for line, _ in got] == [2, 3]
    assert got[0][1].startswith("samples/2_epoch_1.json cannot be decompressed (damaged): ")
    assert got[1][1].startswith("samples/3_epoch_1.json cannot be decompressed (damaged): ")
    assert lake_rows(lake) == expected_rows({"samples": [
        s for i, s in enumerate(doc["samples"]) if i not in (1, 2)]})


# -- forms of the file ---------------------------------------------------------------------------
def test_older_deflate_logs_renamed_or_gzipped_logs_and_relogged_samples(lake, tmp_path):
    doc = real_json()
    samples = doc["samples"]
    first = json.loads(json.dumps(samples[0]))
    first["scores"] = {"match": {"value": "I"}}  # superseded: Inspect reads the last of a name
    members = [(f"samples/{first['id']}_epoch_1.json", first)] + \
        [(f"samples/{s['id']}_epoch_{s['epoch']}.json", s) for s in samples]
    deflate = write_eval(tmp_path / "older.eval", doc, members, compression=zipfile.ZIP_DEFLATED)
    renamed = tmp_path / "log.bin"  # known by its content
    renamed.write_bytes((FIXTURES / "arith.eval").read_bytes())
    gzipped = tmp_path / "log.eval.gz"
    gzipped.write_bytes(gzip.compress((FIXTURES / "crashed.eval").read_bytes()))
    reports = ingest_paths(lake, [str(deflate), str(renamed), str(gzipped)]).files
    assert [(f.error, f.format, f.quarantined) for f in reports] == [(None, "inspect-eval", 0)] * 3
    assert reports[0].stored == {"evals": len(expected_rows(doc))}
    # older.eval and log.bin are the same run: log.bin's rows are all duplicates
    assert reports[1].duplicates == {"evals": len(expected_rows(doc))}
    with zipfile.ZipFile(FIXTURES / "crashed.eval") as z:
        crashed = [json.loads(z.read(n)) for n in z.namelist() if n.startswith("samples/")]
    assert reports[2].stored == {"evals": len(expected_rows({"samples": crashed}))}


@pytest.mark.parametrize("changes, version", [
    ({"revision": {"type": "git", "commit": "0123456789abcdef", "dirty": False}},
     "arith@mockllm/model 01234567"),
    ({"revision": None, "task_version": 2}, "arith v2@mockllm/model"),
    ({"revision": None}, "arith@mockllm/model"),
    ({"metadata": {"version": "release-7"}}, "release-7"),  # (said by the user: as said)
])
def test_a_run_s_version_names_its_task_version_and_commit(lake, tmp_path, totals, changes,
                                                           version):
    doc = real_json()
    doc["eval"].update(changes)
    path = tmp_path / "log.json"
    path.write_text(json.dumps(doc))
    assert ingest_paths(lake, [str(path)]).files[0].quarantined == 0
    assert totals("SELECT list(DISTINCT version) FROM evals") == ([version],)
