"""AppTest: the Data page as a browser review found it: text from logs shown as logged but without
its bidi controls reordering it, downloads named and made for what they hold, the upload's advice
in the page's own words, and an empty store or a store's replaced files said as they are."""

from __future__ import annotations

import io
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from lib import formatting, schema
from tests.pages.test_foundation_pages import run_app

RLO = "\u202e"  # right-to-left override: "report\u202egnp.jsonl" reads "reportlnosj.png"


def _store(tmp_path, files: dict[str, bytes]):
    """A lake holding ``files`` (name: bytes), ingested from ``tmp_path``."""
    from lib.ingest.pipeline import ingest_paths
    from lib.store import Lake

    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    lake = Lake(tmp_path / "store")
    ingest_paths(lake, [str(tmp_path / n) for n in files])
    return lake


@pytest.fixture
def downloads(monkeypatch):
    """The download buttons the page makes: {file name: its data, a function made on click}."""
    import streamlit

    made, real = {}, streamlit.download_button

    def record(label, data, file_name=None, *args, **kwargs):
        made[file_name] = data
        return real(label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(streamlit, "download_button", record)
    return made


def _made(downloads: dict, name: str, ext: str):
    """The data of the download ``name`` (whatever window its file name carries) as ``ext``."""
    (made,) = [d for n, d in downloads.items() if n.startswith(name) and n.endswith(f".{ext}")]
    return made()


def _report(at) -> str:
    (text,) = [c.value for c in at.code if c.value.startswith("upload:")]
    return text


def _page_alone(monkeypatch, store):
    """The Data page's file run on its own (filters from the URL): AppTest delivers no button
    presses to a page reached by switch_page (Streamlit 1.67), and an upload needs one."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import APP

    monkeypatch.setenv("SIGHTLINE_STORE", str(store))
    monkeypatch.setenv("SIGHTLINE_DEMO", "0")
    at = AppTest.from_file(str(Path(APP).parent / "pages" / "data.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _upload(at, name: str, data: bytes, button: str = "upload_check"):
    at.file_uploader(key="upload_files").set_value((name, data, "application/octet-stream")).run()
    at.button(key=button).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# -- 1, 3: text from logs ----------------------------------------------------------------------

def test_batch_notes_show_bidi_controls_as_escapes(monkeypatch, tmp_path):
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    row = canonical_request(0)
    row["prompt_tokens"] = row.pop("input_tokens")  # a note: "is it input_tokens?"
    lake = _store(tmp_path, {f"report{RLO}gnp.jsonl": jsonl_bytes([row])})
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    (note,) = [t.value for t in at.text if "prompt_tokens" in t.value]
    assert RLO not in note
    assert "report\\u202egnp.jsonl" in note


def test_the_quarantine_file_list_shows_bidi_controls_as_escapes_and_filters_on_the_name(
        monkeypatch, tmp_path):
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    name = f"report{RLO}gnp.jsonl"
    lake = _store(tmp_path, {name: jsonl_bytes([canonical_request(0, input_tokens=-1)]),
                             "b.jsonl": jsonl_bytes([canonical_request(1, input_tokens=-2)])})
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    box = at.selectbox(key="quarantine_file")
    assert str(tmp_path / "report\\u202egnp.jsonl") in box.options
    assert not any(RLO in o for o in box.options)
    box.set_value(str(tmp_path / name)).run()  # the value is the name as logged
    assert not at.exception
    assert at.dataframe[2].value["line"].tolist() == [1]
    assert at.dataframe[2].value["source_file"].tolist() == [
        str(tmp_path / "report\\u202egnp.jsonl")]


def test_the_quarantine_download_is_named_after_the_file_and_check_picked(
        monkeypatch, tmp_path, downloads):
    # (it was quarantine.csv whatever was picked: two downloads passed for each other, review)
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    lake = _store(tmp_path, {"a.jsonl": jsonl_bytes([canonical_request(0, input_tokens=-1)]),
                             "b.jsonl": jsonl_bytes([canonical_request(1, input_tokens=-2)])})
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    assert "quarantine.csv" in downloads
    at.selectbox(key="quarantine_file").set_value(str(tmp_path / "b.jsonl")).run()
    assert "quarantine_b.jsonl.csv" in downloads  # (the file's name, not its folders)
    at.selectbox(key="quarantine_check").set_value("input_tokens is negative").run()
    assert "quarantine_b.jsonl_input_tokens-is-negative.csv" in downloads
    made = downloads["quarantine_b.jsonl_input_tokens-is-negative.csv"]()
    assert pl.read_csv(io.StringIO(made))["reason"].to_list() == ["input_tokens is negative: -2"]


def test_the_sidebar_lists_show_bidi_controls_as_escapes_and_filter_on_the_value(
        monkeypatch, tmp_path):
    from lib.store import Lake
    from tests.conftest import make_request, requests_table

    evil = f"<script>alert(2)</script>{RLO}evil"
    now = datetime.now(UTC)
    Lake(tmp_path / "s").append({"requests": requests_table(
        [make_request(0, ts=now - timedelta(minutes=5), model=evil)])}, source="t")
    at = run_app(monkeypatch, tmp_path / "s", query={"range": "24h"})
    box = at.multiselect(key="f_model")
    assert box.options == ["<script>alert(2)</script>\\u202eevil"]
    box.set_value([evil]).run()
    assert not at.exception
    assert at.query_params["model"] == evil  # the URL and the filter have the value as logged
    assert at.session_state["_current_filters"].get("model") == (evil,)


# -- 2, 7: the upload's report ------------------------------------------------------------------

def test_a_check_says_an_ingest_would_keep_the_quarantined_records(monkeypatch, tmp_path):
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    bad = jsonl_bytes([canonical_request(i, input_tokens=-1) for i in range(7)])
    at = _page_alone(monkeypatch, tmp_path / "store")
    report = _report(_upload(at, "bad.jsonl", bad))
    assert "… and 2 more (“Ingest” keeps them all in the quarantine below)" in report
    assert "the quarantine keeps them all" not in report  # a check stores nothing
    at.button(key="upload_go").click().run()
    # (the page lists the newest 1,000: "lists them all" promised more)
    assert "… and 2 more (under Quarantine below: its downloads hold them all)" in _report(at)


def test_the_upload_s_advice_names_the_page_s_controls(monkeypatch, tmp_path):
    at = _page_alone(monkeypatch, tmp_path / "store")
    report = _report(_upload(at, "fields.jsonl", b'{"a": 1, "b": 2}\n{"a": 3, "b": 4}\n'))
    assert "--mapping" not in report and "--format" not in report
    assert "describe them with Format → “your own shape: a YAML mapping” (docs/mapping.md)" \
        in report
    assert "or choose its format under Format above" in report
    # the fields are text: a mapping can describe them
    assert any("your own shape" in i.value for i in at.info)


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
                                  bytes((i * 197 + 13) % 256 for i in range(600))],
                         ids=["png", "random"])
def test_a_binary_upload_is_offered_no_mapping(monkeypatch, tmp_path, data):
    at = _page_alone(monkeypatch, tmp_path / "store")
    report = _report(_upload(at, "picture.png", data))
    assert "binary data that is not a known format" in report
    assert not any("your own shape" in i.value for i in at.info)  # no box offering a mapping
    assert "--mapping" not in report and "your own shape" not in report
    # bytes that name what they are say so, and no Format reads an image (review); others may
    # be a format's, then chosen under Format
    assert report.split("\n")[0].endswith(
        "): by its first bytes, a PNG image" if data.startswith(b"\x89PNG")
        else "); if it is one of them, choose it under Format above")


def test_the_upload_says_its_size_limit_and_the_way_round_it(monkeypatch, tmp_path):
    # (a file over the limit is refused in the browser with a red chip, before the page runs)
    at = run_app(monkeypatch, tmp_path / "store", "pages/data.py")
    (said,) = [c.value for c in at.caption if "MB per file" in c.value]
    assert said.startswith("Up to ") and "`python -m lib ingest PATH --store " in said


def _banner(at) -> tuple[str, str]:
    """(kind, words) of the upload's banner."""
    said = [(kind, e.value) for kind in ("error", "warning", "info", "success")
            for e in getattr(at, kind) if not e.value.startswith("To read such fields")
            and "MB per file" not in e.value and "failed validation" not in e.value
            and "No quarantined input" not in e.value and "has a cost" not in e.value]
    assert len(said) == 1, said
    return said[0]


def test_the_banner_says_what_an_upload_did(monkeypatch, tmp_path):
    # "Ingested." over a report of nothing stored, and "The others went in." after the only
    # file failed, misled (review)
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    at = _page_alone(monkeypatch, tmp_path / "store")
    good = jsonl_bytes([canonical_request(i) for i in range(3)])
    assert _banner(_upload(at, "good.jsonl", good, "upload_go")) == (
        "success", "Ingested: 3 row(s) stored. The report below is the same as `python -m lib "
                   "ingest` prints.")
    assert _banner(_upload(at, "again.jsonl", good, "upload_go"))[0] == "warning"
    assert _banner(at)[1].startswith("Nothing new was stored: see the report below")
    bad = jsonl_bytes([canonical_request(9, input_tokens=-1)])
    assert _banner(_upload(at, "bad.jsonl", bad, "upload_go")) == (
        "warning", "Nothing new was stored: every row was quarantined (listed under Quarantine "
                   "below).")
    assert _banner(_upload(at, "cut.jsonl.gz", b"\x1f\x8b\x08\x00\x00", "upload_go")) == (
        "error", "1 of 1 file(s) could not be read: see the report below.")
    at.button(key="upload_check").click().run()
    assert _banner(at) == ("error", "1 of 1 file(s) could not be read: see the report below. "
                                    "Checked: nothing was stored.")


def test_the_report_stays_after_the_page_runs_again_and_an_unreadable_upload_is_listed(
        monkeypatch, tmp_path):
    # the report was gone at the next run of the page (any widget), and a file that could not
    # be read left no trace anywhere (review): it is listed as a batch of kind "seen"
    at = _page_alone(monkeypatch, tmp_path / "store")
    _upload(at, "cut.jsonl.gz", b"\x1f\x8b\x08\x00\x00", "upload_go")
    said = _report(at)
    assert "upload:cut.jsonl.gz: error: truncated gzip stream" in said
    at.run()
    assert _report(at) == said and _banner(at)[0] == "error"
    from lib.metrics import inventory
    from lib.store import Engine, Lake

    engine = Engine(Lake(tmp_path / "store"))
    try:
        (row,) = inventory.batches(engine).select("kind", "source", "note").rows()
    finally:
        engine.close()
    assert row[:2] == ("seen", "upload:cut.jsonl.gz")
    assert row[2].startswith("truncated gzip stream")


def test_two_uploaded_files_of_one_name_are_told_apart(monkeypatch, tmp_path):
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    at = _page_alone(monkeypatch, tmp_path / "store")
    at.file_uploader(key="upload_files").set_value([
        ("log.jsonl", jsonl_bytes([canonical_request(1)]), "application/octet-stream"),
        ("log.jsonl", jsonl_bytes([canonical_request(2)]), "application/octet-stream")]).run()
    at.button(key="upload_go").click().run()
    (text,) = [c.value for c in at.code if c.value.startswith("upload:")]
    assert [line.split(" [")[0] for line in text.split("\n")[:2]] == [
        "upload:log.jsonl", "upload:log.jsonl (2)"]


def test_a_numbered_name_never_repeats_a_file_s_own_name():
    # "log.jsonl (2)" was given to the second "log.jsonl" beside a file of that very name: two
    # sources of one name in the report, the batches and the quarantine (review)
    from lib.ui.upload import distinct_names

    assert distinct_names(["log.jsonl", "log.jsonl", "log.jsonl (2)"]) == [
        "log.jsonl", "log.jsonl (3)", "log.jsonl (2)"]
    assert distinct_names(["a", "a (2)", "a", "a"]) == ["a", "a (2)", "a (3)", "a (4)"]


def test_the_upload_s_remove_commands_name_the_app_s_store(monkeypatch, tmp_path):
    # "python -m lib remove ID" without --store, pasted into a shell, looked for the batch in
    # data/store while the app showed another store (review)
    import shlex

    from lib.store import store_option
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    at = _page_alone(monkeypatch, tmp_path / "store")
    row = canonical_request(0)
    row["prompt_tokens"] = row.pop("input_tokens")  # a hint: the batch may go in again
    report = _report(_upload(at, "fields.jsonl", jsonl_bytes([row]), "upload_go"))
    store = shlex.quote(str((tmp_path / "store").resolve()))
    assert store_option(tmp_path / "store") == f" --store {store}"
    (said,) = [line for line in report.split("\n") if "python -m lib remove" in line]
    assert said.endswith(f" --store {store}")
    (info,) = [i.value for i in at.info if "your own shape" in i.value]
    assert f"`python -m lib remove BATCH_ID --store {store}`" in info


def test_a_mapping_s_error_shows_the_user_s_keys_as_typed(monkeypatch, tmp_path):
    # the key quoted in the error was rendered as markdown: "**bold** [link](http://x)" read
    # "bold link", and the key the user got wrong could not be read (review)
    at = _page_alone(monkeypatch, tmp_path / "store")
    at.file_uploader(key="upload_files").set_value(
        ("a.jsonl", b'{"id": 1}\n', "application/octet-stream")).run()
    at.selectbox(key="upload_format").set_value("your own shape: a YAML mapping").run()
    at.text_area(key="upload_mapping").set_value(
        "table: requests\ncolumns:\n  \"**bold** [link](http://x)\": id\n").run()
    at.button(key="upload_check").click().run()
    (error,) = [e.value for e in at.error]
    assert "\\*\\*bold\\*\\* \\[link\\]" in error


# -- 4, 5, 6: downloads ------------------------------------------------------------------------

def test_the_data_page_s_downloads_are_not_named_after_the_sidebar_s_window(
        monkeypatch, tmp_path, downloads):
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    lake = _store(tmp_path, {"a.jsonl": jsonl_bytes([canonical_request(0, input_tokens=-1),
                                                     canonical_request(1, model="acme-7")])})
    run_app(monkeypatch, lake.root, "pages/data.py",
            query={"range": "custom", "from": "2026-10-01T00:00:00Z",
                   "to": "2026-10-05T00:00:00Z", "tz": "Asia/Kolkata"})
    assert {"quarantine.csv", "quarantine.parquet", "batches.csv", "batches.parquet",
            "unpriced_models.csv", "unpriced_models.parquet"} <= set(downloads)
    assert not [n for n in downloads if "2026" in n]


def test_the_quarantine_says_which_raw_texts_reached_the_limit(monkeypatch, tmp_path, downloads):
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    limit = schema.RAW_MAX_CHARS
    lines = [jsonl_bytes([canonical_request(0)]).strip(),  # (a JSON lines file)
             b"short, not json",
             b"x" * (limit - 1),  # whole
             b"y" * limit,  # whole too, but no longer told from a cut one
             b"z" * (limit + 500),  # cut
             "é".encode() * limit,  # cut at 2,000 bytes: 1,000 characters
             # whole: 1,500 characters in 3,000 bytes, not JSON (it was flagged cut, review)
             b'{"broken": "' + "é".encode() * 1500]
    lake = _store(tmp_path, {"a.jsonl": b"\n".join(lines) + b"\n"})
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    cut = pl.read_parquet(io.BytesIO(_made(downloads, "quarantine", "parquet"))).sort("line")
    assert cut["line"].to_list() == [2, 3, 4, 5, 6, 7]
    assert cut["raw_cut"].to_list() == [False, False, True, True, True, False]
    assert cut["raw"][5] == '{"broken": "' + "é" * 1500
    shown = at.dataframe[2].value.sort_values("line")
    assert shown["raw_cut"].tolist() == [False, False, True, True, True, False]


def test_a_csv_download_makes_formulas_inert_and_keeps_numbers(monkeypatch, tmp_path, downloads):
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    formulas = ["=HYPERLINK(\"http://evil.test\",\"x\")", "+1+1", "@SUM(A1)",
                "-2+3+cmd|' /C calc'!A0", "\tx"]
    lines = [jsonl_bytes([canonical_request(1)]).strip(),  # (a JSON lines file)
             *(f.encode() for f in formulas), b"-3", b"plain"]
    lake = _store(tmp_path, {"a.jsonl": b"\n".join(lines) + b"\n",
                             "b.jsonl": jsonl_bytes([canonical_request(0, model="=acme()")])})
    run_app(monkeypatch, lake.root, "pages/data.py")
    raw = pl.read_csv(io.StringIO(_made(downloads, "quarantine", "csv")))["raw"].to_list()
    assert sorted(raw) == sorted(["'" + f for f in formulas] + ["-3", "plain"])
    # the model's cell, not its request count
    unpriced = pl.read_csv(io.StringIO(_made(downloads, "unpriced_models", "csv")))
    assert unpriced["model"].to_list() == ["'=acme()"] and unpriced["requests"].to_list() == [1]
    # Parquet keeps the text as logged
    logged = pl.read_parquet(io.BytesIO(_made(downloads, "quarantine", "parquet")))["raw"].to_list()
    assert sorted(logged) == sorted([*formulas, "-3", "plain"])


def test_csv_safe_prefixes_only_text_a_spreadsheet_would_run():
    frame = pl.DataFrame({"t": ["=1", "+1", "@a", "\tb", "\rc", "-x", "-", "-2+3", "-3", "-.5",
                                "-1e3", "a=b", None],
                          "n": [-1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]})
    safe = formatting.csv_safe(frame)
    assert safe["t"].to_list() == ["'=1", "'+1", "'@a", "'\tb", "'\rc", "'-x", "'-", "'-2+3",
                                   "-3", "-.5", "-1e3", "a=b", None]
    assert safe["n"].to_list() == frame["n"].to_list()


# -- 8: an empty store, replaced files ----------------------------------------------------------

def test_an_empty_store_says_nothing_was_ingested_and_points_to_the_upload(monkeypatch, tmp_path):
    at = run_app(monkeypatch, tmp_path / "empty", "pages/data.py")
    assert [c.value for c in at.caption].count("Nothing has been ingested yet.") == 2
    assert not at.success  # not "every row passed validation", not "every request has a cost"
    (box,) = [m.value for m in at.markdown if "python -m lib" not in m.value
              and "Upload" in m.value]
    assert "**Upload logs or eval results**" in box


def test_files_replaced_by_compaction_are_said_to_be_kept_an_hour_not_leftovers(monkeypatch,
                                                                                 tmp_path):
    from lib.store import Lake
    from lib.store.compact import compact
    from tests.conftest import make_request, requests_table

    lake = Lake(tmp_path / "s")
    for i in range(3):
        lake.append({"requests": requests_table([make_request(i)])}, source=f"t{i}")
    compact(lake, min_files=1)
    stray = next((lake.root / "requests").iterdir()) / "stray.parquet"
    stray.write_bytes(b"not ours")
    old = time.time() - 600  # (files under 5 minutes old may be a writer's, and are not listed)
    for path in (lake.root / "requests").rglob("*"):
        os.utime(path, (old, old))
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    (expander,) = [e for e in at.expander if "readers ignore them" in e.label]
    assert expander.label.startswith("4 file(s)")
    said = [c.value for c in at.caption if c.value.endswith(".") and " file(s). " in c.value]
    assert said[0].startswith("3 file(s). Replaced by compaction, `reprice` or `remove` less "
                              "than 1 hour ago: kept for 1 hour for readers that started before")
    assert said[1].startswith("1 file(s). Listed by no batch: leftovers of interrupted writes")
    assert "Leftovers of interrupted writes, files removed by compaction" not in " ".join(said)
    # The compaction's batch stores no rows: its cells read "None", as the columns' help says
    # (it said "Blank", review)
    import json

    batches = next(d for d in at.dataframe if "commit_id" in d.value.columns)
    row = batches.value[batches.value["kind"] == "compact"].iloc[0]
    assert row["rows"] != row["rows"] and row["quarantined"] != row["quarantined"]  # (NaN)
    helps = {c.get("label"): c.get("help", "") for c in
             json.loads(batches.proto.columns).values()}
    assert helps["Rows stored"].startswith("None for compact, reprice and remove")
    assert helps["Quarantined"].startswith("None for compact, reprice and remove")


def test_markdown_of_text_from_logs_shows_bidi_controls_as_escapes():
    # (every page's caption of its filters: "model = <script>…\u202eevil" read backwards)
    from lib.ui import widgets

    shown = widgets.md_escape(f"model = gpt{RLO}evil")
    assert RLO not in shown and shown.replace("\\\\", "\\").endswith("gpt\\u202eevil")


def test_an_upload_waiting_for_another_writer_says_so(tmp_path):
    # The upload (Check too) waits for a cron ingest or a compaction holding the store; its bar
    # said "Starting…" at 0% all along, as if hung (found in review).
    from lib.store import Lake
    from lib.ui.upload import waiting_text
    from tests.conftest import make_request, requests_table

    lake = Lake(tmp_path / "store")
    lake.append({"requests": requests_table([make_request(1)])}, source="a")
    page = Lake(lake.root)  # another process's view (a lock is per open file)
    assert waiting_text(page) is None and waiting_text(page.checking()) is None
    with lake.writer_lock():
        assert "Waiting for another writer" in waiting_text(page)
        assert "Waiting for another writer" in waiting_text(page.checking())
        assert waiting_text(lake) is None  # its own lock: nothing to wait for
    assert waiting_text(page) is None
    assert waiting_text(Lake(tmp_path / "none")) is None  # no store yet: nothing made either
    assert not (tmp_path / "none").exists()


def test_the_unpriced_advice_names_the_prices_file_and_store_the_app_reads(monkeypatch,
                                                                            tmp_path):
    """With SIGHTLINE_PRICES and SIGHTLINE_STORE set for the app, the advice under "Requests
    without a cost" names that file and gives a reprice command that reaches them: "add it to
    prices.yaml, then run `python -m lib reprice`" edited a file the app does not read and
    repriced another store."""
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    lake = _store(tmp_path, {"a.jsonl": jsonl_bytes([canonical_request(0, model="my-ft")])})
    prices = tmp_path / "my prices.yaml"
    prices.write_text("models: []\n")
    monkeypatch.setenv("SIGHTLINE_PRICES", str(prices))
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    (advice,) = [w.value for w in at.warning if "cost is left empty" in w.value]
    assert f"`{prices}`" in advice and "`prices.yaml`" not in advice
    root = lake.root.resolve()
    assert f"`python -m lib reprice --store {root} --prices '{prices.resolve()}'`" in advice
    # (only the reason listed is explained: all three were, whatever the list held, review)
    assert "**no price**" in advice
    assert "**no input token count logged**" not in advice and "**timed out" not in advice


def test_a_prices_file_that_cannot_be_read_is_said_above_the_advice_to_edit_it(monkeypatch,
                                                                               tmp_path):
    # "add the model's prices to my prices.yaml" under a file of broken YAML, which stops every
    # ingest and reprice, said nothing of it (review); the upload and reprice say so
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    lake = _store(tmp_path, {"a.jsonl": jsonl_bytes([canonical_request(0, model="my-ft")])})
    prices = tmp_path / "my prices.yaml"
    monkeypatch.setenv("SIGHTLINE_PRICES", str(prices))
    prices.write_text("models: [\n")
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    (said,) = [e.value for e in at.error if "cannot be read" in e.value]
    assert said.startswith(f"`{prices}` cannot be read, so every ingest and `reprice` stops")
    prices.write_text("models: []\n")  # mended: nothing said
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    assert not [e for e in at.error if "cannot be read" in e.value]


def test_the_data_page_s_commands_reach_the_store_the_app_reads(monkeypatch, tmp_path):
    """The upload's way round its size limit and the way to take a batch out name the store
    (the app's SIGHTLINE_STORE, often set for it alone): bare, they went to data/store."""
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    lake = _store(tmp_path, {"a.jsonl": jsonl_bytes([canonical_request(0)])})
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    captions = " ".join(c.value for c in at.caption)
    root = lake.root.resolve()
    assert f"`python -m lib ingest PATH --store {root}` on the server" in captions
    assert f"`python -m lib remove COMMIT --reason TEXT --store {root}`" in captions


def test_the_cost_and_request_pages_name_the_prices_file_the_app_reads(monkeypatch, tmp_path):
    """The Cost page's caption and the Request page's help named prices.yaml whatever
    SIGHTLINE_PRICES said (review), as the Data page's advice did."""
    from lib.ui.widgets import md_escape
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    lake = _store(tmp_path, {"a.jsonl": jsonl_bytes([canonical_request(0, model="my-ft")])})
    prices = tmp_path / "negotiated.yaml"
    prices.write_text("models: []\n")
    monkeypatch.setenv("SIGHTLINE_PRICES", str(prices))
    cost = run_app(monkeypatch, lake.root, "pages/cost.py", {"range": "all"})
    captions = " ".join(c.value for c in cost.caption)
    assert f"(cost engine: genai-prices + {md_escape(str(prices))})" in captions
    assert "prices.yaml" not in captions
    request = run_app(monkeypatch, lake.root, "pages/request.py", {"request": "r0"})
    (cost_tile,) = [m for m in request.metric if m.label == "Cost"]
    assert cost_tile.help.endswith(f"overrides in {prices})")


def test_an_upload_waits_for_another_session_s_upload_and_says_so(tmp_path):
    # The app's sessions share one Lake (the cached engine's): while one session's upload holds
    # the lock, another's waited on it under "Starting…" (the lock looked like this thread's own)
    import threading

    from lib.store import Lake
    from lib.ui.upload import waiting_text
    from tests.conftest import make_request, requests_table

    lake = Lake(tmp_path / "store")
    lake.append({"requests": requests_table([make_request(1)])}, source="a")
    holding, done = threading.Event(), threading.Event()

    def first_upload():
        with lake.writer_lock():
            holding.set()
            done.wait(10)

    writer = threading.Thread(target=first_upload)
    writer.start()
    try:
        assert holding.wait(10)
        assert "Waiting for another writer" in waiting_text(lake)
    finally:
        done.set()
        writer.join()
    assert waiting_text(lake) is None


def test_a_store_without_requests_is_not_told_every_request_has_a_cost(monkeypatch, tmp_path):
    # a store of eval results alone read "Every request has a cost" (review)
    import json

    row = {"eval_id": "e1", "ts": "2026-11-25T10:00:00Z", "metric": "accuracy", "score": 0.5,
           "version": "v1", "case_id": "c1"}
    lake = _store(tmp_path, {"evals.jsonl": (json.dumps(row) + "\n").encode()})
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    assert not [s.value for s in at.success if "has a cost" in s.value]
    assert [c.value for c in at.caption if c.value.startswith("No requests are stored")]


def test_the_tiles_say_how_long_ago_the_last_ingest_was_in_days(monkeypatch, tmp_path):
    # a latency's units: "last ingest 4320.0 min ago" of three days (review)
    from lib.store import Lake
    from tests.conftest import make_request, requests_table

    lake = Lake(tmp_path / "store")
    with lake.begin("t", ingested_at=datetime.now(UTC) - timedelta(days=3, minutes=1)) as batch:
        batch.add({"requests": requests_table([make_request(0)])})
        batch.commit()
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    (tile,) = [m for m in at.metric if m.label == "Requests"]
    assert tile.help == "1 rows in 1 file(s); last ingest 3 days ago"


def test_the_quarantine_download_reads_the_newest_files_when_clicked_late(
        monkeypatch, tmp_path, downloads):
    # clicked hours after the page ran, the files it read had been compacted and deleted, and
    # the download failed without a word (review)
    from lib.ingest.pipeline import ingest_paths
    from lib.store import compact
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    lake = _store(tmp_path, {"a.jsonl": jsonl_bytes([canonical_request(0, input_tokens=-1)])})
    run_app(monkeypatch, lake.root, "pages/data.py")
    (tmp_path / "b.jsonl").write_bytes(jsonl_bytes([canonical_request(1, input_tokens=-2)]))
    ingest_paths(lake, [str(tmp_path / "b.jsonl")], compact_min_files=0)
    compact.compact(lake, min_files=1)
    assert compact.gc(lake, older_than_s=0)  # the files the page read, gone
    made = pl.read_csv(io.StringIO(_made(downloads, "quarantine", "csv")))
    assert sorted(made["reason"].to_list()) == ["input_tokens is negative: -1",
                                                "input_tokens is negative: -2"]


def test_a_check_s_report_goes_once_the_files_or_format_change(monkeypatch, tmp_path):
    # "Checked: … the report below says what Ingest would store" stayed over the report of one
    # file once a second was added, under "Ingest 2 file(s)" (review)
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    at = _page_alone(monkeypatch, tmp_path / "store")
    one = ("a.jsonl", jsonl_bytes([canonical_request(1)]), "application/octet-stream")
    two = ("b.jsonl", jsonl_bytes([canonical_request(2)]), "application/octet-stream")
    _upload(at, *one[:2])
    assert _report(at).startswith("upload:a.jsonl")
    at.run()
    assert _report(at).startswith("upload:a.jsonl")  # the same files: it stays
    at.selectbox(key="upload_format").set_value("csv").run()
    assert not [c for c in at.code if c.value.startswith("upload:")]
    at.selectbox(key="upload_format").set_value("auto-detect").run()
    at.button(key="upload_check").click().run()
    at.file_uploader(key="upload_files").set_value([one, two]).run()
    assert not [c for c in at.code if c.value.startswith("upload:")]
    assert not [i for i in at.info if i.value.startswith("Checked")]
    # an ingest's report stays: it says what was done
    at.button(key="upload_go").click().run()
    at.file_uploader(key="upload_files").set_value([one]).run()
    assert _report(at).startswith("upload:a.jsonl")
    assert "stored 1 request" in _report(at).split("\n")[1]


def test_an_upload_of_many_files_reports_every_compaction_it_made(monkeypatch, tmp_path):
    # compaction runs after each file of an upload: only the last file's was reported, and it
    # had merged nothing, so the report hid the two the upload made (review)
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    monkeypatch.setenv("SIGHTLINE_COMPACT_MIN_FILES", "3")
    at = _page_alone(monkeypatch, tmp_path / "store")
    at.file_uploader(key="upload_files").set_value([
        (f"{i}.jsonl", jsonl_bytes([canonical_request(i)]), "application/octet-stream")
        for i in range(9)]).run()
    at.button(key="upload_go").click().run()
    from lib.store import Lake

    assert sum(c.kind == "compact" for c in Lake(tmp_path / "store").commits()) == 2
    assert _report(at).split("\n")[-1] == "compacted 8 small files into 2"


def test_an_upload_of_models_without_a_price_says_so_and_points_below(monkeypatch, tmp_path):
    import shlex

    from tests.ingest.conftest import canonical_request, jsonl_bytes

    at = _page_alone(monkeypatch, tmp_path / "store")
    rows = [canonical_request(0), canonical_request(1, provider="acme", model="acme-ultra-9")]
    report = _report(_upload(at, "calls.jsonl", jsonl_bytes(rows), "upload_go"))
    store = shlex.quote(str((tmp_path / "store").resolve()))
    (said,) = [line for line in report.split("\n")
              if "note:" in line and "without a cost" in line]
    assert said.strip() == (
        "note: 1 request stored without a cost (unknown, not $0): acme acme-ultra-9 (1); their "
        "models have no price: add them to prices.yaml (or `priced_as` the model they answered "
        f"as), then run `python -m lib reprice --store {store}`: see “Requests without a cost” "
        "below.")
    # a warning, not a success: that spend is missing from every total
    assert ("warning", "Ingested: 2 row(s) stored, 1 request of them without a cost (see the "
                       "note). The report below is the same as `python -m lib ingest` prints."
            ) in [("warning", w.value) for w in at.warning]
    assert not any(s.value.startswith("Ingested") for s in at.success)


def test_a_check_says_which_models_have_no_price_before_the_ingest(monkeypatch, tmp_path):
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    at = _page_alone(monkeypatch, tmp_path / "store")
    rows = [canonical_request(0), canonical_request(1, provider="acme", model="acme-ultra-9")]
    report = _report(_upload(at, "calls.jsonl", jsonl_bytes(rows)))
    (said,) = [line for line in report.split("\n")
              if "note:" in line and "without a cost" in line]
    assert said.strip().startswith("note: 1 request would be stored without a cost (unknown, "
                                   "not $0): acme acme-ultra-9 (1); their models have no price")


def test_a_file_and_a_check_no_input_fails_together_are_said_to_match_nothing(monkeypatch,
                                                                              tmp_path):
    # The check list is every file's: picking one file and another file's check showed an
    # empty table and said nothing (review).
    from tests.ingest.conftest import canonical_request, jsonl_bytes

    lake = _store(tmp_path, {"a.jsonl": jsonl_bytes([canonical_request(0, input_tokens=-1)]),
                             "b.jsonl": jsonl_bytes([canonical_request(1, output_tokens=-2)])})
    at = run_app(monkeypatch, lake.root, "pages/data.py")
    said = "No quarantined input of this file failed this check"
    assert not any(said in c.value for c in at.caption)
    at.selectbox(key="quarantine_file").set_value(str(tmp_path / "b.jsonl")).run()
    at.selectbox(key="quarantine_check").set_value("input_tokens is negative").run()
    assert not at.exception
    assert any(said in c.value for c in at.caption)
