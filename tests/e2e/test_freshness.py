"""A page left open in the browser: it says when new data has landed and shows it on a click, its
auto-refresh shows it by itself, and a page's own upload is not announced as news."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from lib.ingest.pipeline import ingest_paths
from lib.store import Lake
from tests.e2e.conftest import AppServer, assert_no_exception, screenshot, wait_for_app
from tests.e2e.test_upload import press_for_report

pytestmark = pytest.mark.e2e

NOTICE = "New data since this page was computed"


def _calls(folder, n: int):
    """A canonical JSONL file of ``n`` requests stamped in the last few minutes."""
    now = datetime.now(UTC)
    path = folder / f"calls-{uuid.uuid4().hex[:8]}.jsonl"
    path.write_text("".join(json.dumps({
        "request_id": f"{path.stem}-{i}", "ts": (now - timedelta(minutes=2, seconds=i)).isoformat(),
        "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 100, "output_tokens": 20,
        "latency_ms": 400, "status": "ok"}) + "\n" for i in range(n)))
    return path


def _ingest(store, path) -> None:
    """A batch lands, as from a cron's ``python -m lib ingest`` (the same pipeline, in this
    process: a second Python starting took longer than the page's look for it)."""
    report = ingest_paths(Lake(store), [str(path)])
    assert sum(report.totals()["stored"].values()) > 0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("freshness")
    store = root / "store"
    _ingest(store, _calls(root, 5))
    # (a look at the manifest every second, not every 30: the test waits for it)
    s = AppServer(store, env={"SIGHTLINE_DEMO": "0", "SIGHTLINE_WATCH_S": "1"})
    s.files = root
    yield s
    s.stop()


def _requests_tile(page) -> str:
    tiles = dict(zip(page.locator('[data-testid="stMetricLabel"]').all_inner_texts(),
                     page.locator('[data-testid="stMetricValue"]').all_inner_texts()))
    return tiles["Requests"]


def test_new_data_is_announced_and_shown_on_a_click(server, page):
    page.goto(f"{server.url}/?range=24h")
    wait_for_app(page)
    before = int(_requests_tile(page))
    assert page.get_by_text(NOTICE).count() == 0
    _ingest(server.store, _calls(server.files, 3))
    notice = page.get_by_text(NOTICE)
    notice.wait_for(timeout=15_000)
    assert "1 batch (3 requests)" in notice.inner_text()
    assert int(_requests_tile(page)) == before  # the page itself is as it was computed
    screenshot(page, "freshness_notice")
    page.get_by_role("button", name="Refresh", exact=True).click()
    wait_for_app(page)
    assert_no_exception(page)
    assert int(_requests_tile(page)) == before + 3
    assert page.get_by_text(NOTICE).count() == 0


def test_auto_refresh_shows_new_data_by_itself(server, page):
    page.goto(f"{server.url}/?range=24h&refresh=10s")
    wait_for_app(page)
    before = int(_requests_tile(page))
    assert "refreshes every 10 s" in page.locator('[data-testid="stSidebar"]').inner_text()
    # the sidebar's links keep it on every page
    hrefs = page.locator('[data-testid="stSidebar"] [data-testid="stPageLink"] a').all()
    assert all("refresh=10s" in a.get_attribute("href") for a in hrefs)
    _ingest(server.store, _calls(server.files, 2))
    deadline = time.time() + 30
    while int(_requests_tile(page)) != before + 2:
        assert time.time() < deadline, "the page did not refresh by itself"
        page.wait_for_timeout(500)
    assert_no_exception(page)


def test_a_page_s_own_upload_is_not_news_to_it(server, page):
    page.goto(f"{server.url}/data")
    wait_for_app(page)
    page.get_by_test_id("stExpander").get_by_text("Upload logs or eval results").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        str(_calls(server.files, 4)))
    assert "stored 4 requests" in press_for_report(page, "Ingest 1 file(s)")
    page.wait_for_timeout(3_000)  # three looks at the manifest
    assert page.get_by_text(NOTICE).count() == 0
    assert_no_exception(page)
