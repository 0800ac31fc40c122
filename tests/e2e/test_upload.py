"""Upload in the browser: good rows are stored, bad lines are quarantined and named, and the same
file uploaded again adds nothing."""

from __future__ import annotations

import json

import pytest

from lib.ui.upload import MAPPING_EXAMPLE
from tests.e2e.conftest import AppServer, assert_no_exception, screenshot, wait_for_app

pytestmark = pytest.mark.e2e


def _jsonl(tmp_path):
    good = [{"request_id": f"up-{i}", "ts": f"2026-11-20T10:0{i}:00Z", "provider": "openai",
             "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 500, "latency_ms": 800,
             "status": "ok", "feature": "chat", "ttft": 0.2} for i in range(3)]
    lines = [json.dumps(r) for r in good]
    lines.insert(1, '{"request_id": "broken", "ts": ')  # line 2: not JSON
    lines.append(json.dumps({**good[0], "request_id": "neg", "input_tokens": -5}))  # line 5
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def empty_server(tmp_path):
    server = AppServer(tmp_path / "store", env={"SIGHTLINE_DEMO": "0"})
    yield server
    server.stop()


REPORT = '[data-testid="stCode"]:has-text("total: ")'  # (the ingest report's last line)


def press_for_report(page, button: str) -> str:
    """Click ``button``, wait for the run it starts, and return the report it shows: a report
    other than the one shown before the click (the page keeps the last), as the app may look
    idle between the click's run and the rerun that shows the report (seen on a loaded
    machine: the empty store's commands were read as the report)."""
    before = page.locator(REPORT).all_inner_texts()
    page.get_by_role("button", name=button).click()
    page.wait_for_function(
        """(before) => {
            const shown = [...document.querySelectorAll('[data-testid="stCode"]')]
                .map(e => e.innerText).filter(t => t.includes('total: '));
            return shown.length > 0 && JSON.stringify(shown) !== JSON.stringify(before);
        }""", arg=before, timeout=90_000)
    wait_for_app(page)
    return page.locator(REPORT).first.inner_text()


def _upload(page, path) -> str:
    # (the expander: the empty store's box names it too)
    page.get_by_test_id("stExpander").get_by_text("Upload logs or eval results").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
    return press_for_report(page, "Ingest 1 file(s)")


def test_upload_stores_good_rows_and_quarantines_bad_ones(empty_server, page, tmp_path):
    path = _jsonl(tmp_path)
    page.goto(f"{empty_server.url}/data")
    wait_for_app(page)
    assert_no_exception(page)
    report = _upload(page, path)
    assert "calls.jsonl" in report
    assert "stored 3 requests" in report
    assert "2 quarantined" in report
    assert "line 2" in report and "line 5" in report
    # a field that looks like a canonical column under another name is pointed at
    assert "note: fields not read as columns (kept in attributes): ttft (is it ttft_ms" in report
    # the page's header already names the new manifest version (it said "empty" before)
    assert "manifest version 1:" in page.locator('[data-testid="stMain"]').inner_text()
    screenshot(page, "upload_report")

    # The page now lists the quarantine with its reasons, and the tiles count the new rows.
    page.reload()
    wait_for_app(page)
    assert_no_exception(page)
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert "2 input record(s) failed validation" in body
    tiles = dict(zip(page.locator('[data-testid="stMetricLabel"]').all_inner_texts(),
                     page.locator('[data-testid="stMetricValue"]').all_inner_texts()))
    assert tiles["Requests"] == "3"
    assert tiles["Quarantine"] == "2"

    # Uploading the same file again adds nothing.
    report = _upload(page, path)
    assert "already ingested" in report
    page.reload()
    wait_for_app(page)
    tiles = dict(zip(page.locator('[data-testid="stMetricLabel"]').all_inner_texts(),
                     page.locator('[data-testid="stMetricValue"]').all_inner_texts()))
    assert tiles["Requests"] == "3"


OWN_SHAPE = [
    {"id": "a1", "started": 1763632800, "timing": {"duration": 1.5}, "llm": {"name": "gpt-4o"},
     "usage": {"prompt": 1000, "completion": 500}, "team": "search"},
    {"id": "a2", "started": 1763632860, "timing": {"duration": 0.5}, "llm": {"name": "gpt-4o"},
     "usage": {"prompt": 2000, "completion": -5}, "team": "search"},
]
MAPPING = MAPPING_EXAMPLE  # the example the page shows in the empty text area works as is


def test_a_file_of_ones_own_shape_is_checked_then_ingested_with_a_mapping_typed_on_the_page(
        empty_server, page, tmp_path):
    path = tmp_path / "own.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in OWN_SHAPE))
    page.goto(f"{empty_server.url}/data")
    wait_for_app(page)
    # (the expander: the empty store's box names it too)
    page.get_by_test_id("stExpander").get_by_text("Upload logs or eval results").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
    wait_for_app(page)

    # Checked as it is: no format knows it, and the page says how to describe it here.
    report = press_for_report(page, "Check 1 file(s)")
    assert "own.jsonl: error: not a recognized format" in report
    assert "dry run: nothing was stored" in report
    main = page.locator('[data-testid="stMain"]')
    assert "choose Format → your own shape: a YAML mapping" in main.inner_text()

    page.get_by_role("combobox", name="Format").click()
    page.keyboard.type("your own")
    page.get_by_role("option", name="your own shape: a YAML mapping").click()
    wait_for_app(page)
    page.get_by_role("textbox", name="Mapping (YAML): which of your fields is which column"
                     ).fill(MAPPING)
    page.keyboard.press("Control+Enter")
    wait_for_app(page)

    report = press_for_report(page, "Check 1 file(s)")
    assert "[mapping:Data page]: would store 1 request; 0 duplicate(s); 1 to quarantine" in report
    assert "line 2: output_tokens is negative: -5" in report
    assert "Checked: nothing was stored" in main.inner_text()
    assert "manifest version empty" in main.inner_text()

    report = press_for_report(page, "Ingest 1 file(s)")
    assert "[mapping:Data page]: stored 1 request; 0 duplicate(s); 1 quarantined" in report
    assert_no_exception(page)
    screenshot(page, "upload_mapping")
    tiles = dict(zip(page.locator('[data-testid="stMetricLabel"]').all_inner_texts(),
                     page.locator('[data-testid="stMetricValue"]').all_inner_texts()))
    assert (tiles["Requests"], tiles["Quarantine"]) == ("1", "1")
