"""Upload in the browser: good rows are stored, bad lines are quarantined and named, and the same
file uploaded again adds nothing."""

from __future__ import annotations

import json

import pytest

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


def _upload(page, path) -> str:
    page.get_by_text("Upload logs or eval results").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
    page.get_by_role("button", name="Ingest 1 file(s)").click()
    wait_for_app(page)
    return page.locator('[data-testid="stCode"]').first.inner_text()


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
