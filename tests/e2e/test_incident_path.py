"""The on-call path in a real browser: Overview → box-select the outage on a time chart →
Explore on that window ranks the outage's provider first → open a request → its prompt (with a
``<script>`` in it) shows as text and runs nothing → the URL reproduces the view in a new page."""

from __future__ import annotations

import shutil
from datetime import timedelta
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from lib.demo import PLAN
from lib.store import Lake
from tests.conftest import DEMO_END, make_request, requests_table
from tests.e2e.conftest import (
    NAV_LINKS,
    AppServer,
    assert_no_exception,
    screenshot,
    wait_for_app,
)

pytestmark = pytest.mark.e2e

OUTAGE = DEMO_END - timedelta(days=7) + timedelta(seconds=PLAN["outage_at"] * 7 * 86400)
PLANTED = "e2e-script-1"
PAYLOAD = "<script>document.title='pwned';window.__pwned=1</script> why is my bill so high?"


@pytest.fixture(scope="module")
def incident_server(demo_store, tmp_path_factory):
    """A copy of the demo store plus one failing anthropic call during the outage whose prompt
    carries markup."""
    root = tmp_path_factory.mktemp("incident") / "store"
    shutil.copytree(demo_store, root)
    row = make_request(0, request_id=PLANTED, trace_id=PLANTED, ts=OUTAGE + timedelta(minutes=20),
                       provider="anthropic", model="claude-sonnet-4-20250514", status="error",
                       error_type="529", error_message="Overloaded", input_text=PAYLOAD,
                       output_text=None, session_id="e2e-session", latency_ms=420.0)
    Lake(root).append({"requests": requests_table([row])}, source="e2e")
    server = AppServer(root)
    yield server
    server.stop()


def drag_box(page, chart_index: int, t0: str, t1: str, down: float = 10) -> None:
    """Drag a selection box on a Plotly time chart from t0 to t1 (axis times, as drawn), the
    pointer going ``down`` pixels as it goes."""
    chart = page.locator('[data-testid="stPlotlyChart"]').nth(chart_index)
    chart.scroll_into_view_if_needed()
    box = chart.evaluate(
        """(el, [t0, t1]) => {
            const gd = el.querySelector('.js-plotly-plot');
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const r = gd.getBoundingClientRect();
            return {x0: r.left + xa._offset + xa.d2p(t0), x1: r.left + xa._offset + xa.d2p(t1),
                    y: r.top + ya._offset + ya._length * 0.5};
        }""", [t0, t1])
    page.mouse.move(box["x0"], box["y"])
    page.mouse.down()
    page.mouse.move((box["x0"] + box["x1"]) / 2, box["y"] + down / 2, steps=5)
    page.mouse.move(box["x1"], box["y"] + down, steps=5)
    page.mouse.up()


def test_incident_path(incident_server, page, browser):
    day = (OUTAGE - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (OUTAGE + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    page.goto(f"{incident_server.url}/?range=custom&from={day}&to={end}")
    wait_for_app(page)
    assert_no_exception(page)

    # 1. Box-select the outage on the "Requests and errors" chart (times drawn in UTC).
    t0 = (OUTAGE - timedelta(minutes=15)).strftime("%Y-%m-%d %H:%M")
    t1 = (OUTAGE + timedelta(minutes=45)).strftime("%Y-%m-%d %H:%M")
    drag_box(page, 0, t0, t1)
    page.wait_for_url("**/explore?**", timeout=60_000)
    wait_for_app(page)
    assert_no_exception(page)
    screenshot(page, "e2e_explore")

    # 2. Explore shows the selected window and names the outage's provider first.
    query = parse_qs(urlparse(page.url).query)
    start, stop = query["window"][0].split("..")
    assert start <= OUTAGE.strftime("%Y-%m-%dT%H:%M:%SZ") < stop
    assert query["from"] == [day]  # the same global filters
    headline = page.locator('[data-testid="stAlert"] [data-testid="stMarkdownContainer"]'
                            ).filter(has_text="explains").first
    assert headline.inner_text().startswith("provider anthropic's error rate went from")

    # 3. Find the request with markup in its prompt and open it.
    search = page.get_by_label("Search prompts, responses and errors")
    search.fill("<script>")
    search.press("Enter")
    wait_for_app(page)
    assert "1 request · showing" in page.get_by_text(" · showing").inner_text()
    page.get_by_role("link", name="Open request").click()
    page.wait_for_url(f"**/request?**request={PLANTED}**", timeout=60_000)
    wait_for_app(page)
    assert_no_exception(page)
    screenshot(page, "e2e_request")

    # 4. The prompt is shown as text: visible with its markup, no script element, nothing ran.
    assert page.get_by_text(PAYLOAD, exact=False).first.is_visible()
    assert page.evaluate("() => document.title") != "pwned"
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.evaluate("""() => Array.from(document.querySelectorAll('script'))
                                  .every(s => !s.textContent.includes('pwned'))""")

    # 5. The URL reproduces the view in a new page.
    url = page.url
    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        other.goto(url)
        wait_for_app(other)
        assert_no_exception(other)
        assert other.get_by_text(PAYLOAD, exact=False).first.is_visible()
        assert other.get_by_label("Request id").input_value() == PLANTED
        assert parse_qs(urlparse(other.url).query)["from"] == [day]
    finally:
        other.context.close()


def test_a_narrow_drag_never_opens_the_whole_range(incident_server, page):
    # On 7 days an hour is ~3 px. A drag narrower than Plotly's smallest box (12 px) that went
    # more down than across was taken as a band across the whole width, and Explore opened on
    # the whole 7 days as if that were the selection. Time charts now select along x only: such
    # a drag selects nothing, and one of a few hours opens those hours.
    start = (OUTAGE - timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (OUTAGE + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    page.goto(f"{incident_server.url}/?range=custom&from={start}&to={end}")
    wait_for_app(page)

    def at(hours: float) -> str:
        return (OUTAGE + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M")

    drag_box(page, 0, at(-1), at(2), down=40)  # ~9 px across, 40 down
    with pytest.raises(PlaywrightTimeout):
        page.wait_for_url("**/explore?**", timeout=8_000)
    drag_box(page, 0, at(-3), at(5), down=40)  # ~25 px across
    page.wait_for_url("**/explore?**", timeout=60_000)
    lo, hi = parse_qs(urlparse(page.url).query)["window"][0].split("..")
    assert lo <= OUTAGE.strftime("%Y-%m-%dT%H:%M:%SZ") < hi
    assert lo >= at(-4).replace(" ", "T") and hi <= at(6).replace(" ", "T")


def test_back_undoes_one_step_at_a_time(incident_server, page):
    # Explore on the outage → "Errors only" → "Filter on …": before, Back left the filter and
    # the toggle on (the page wrote its state back over the URL Back restored).
    window = (f"{(OUTAGE - timedelta(minutes=30)).strftime('%Y-%m-%dT%H:%M:%SZ')}.."
              f"{(OUTAGE + timedelta(minutes=60)).strftime('%Y-%m-%dT%H:%M:%SZ')}")
    day = (OUTAGE - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (OUTAGE + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    page.goto(f"{incident_server.url}/explore?range=custom&from={day}&to={end}"
              f"&window={window}&metric=error_rate")
    wait_for_app(page)
    toggle = page.get_by_text("Errors only")
    toggle.click()
    page.wait_for_url("**errors=1**", timeout=30_000)
    wait_for_app(page)
    page.get_by_role("button", name="Filter on").click()
    page.wait_for_url(lambda url: "errors=1&" in url and len(parse_qs(urlparse(url).query)) > 6,
                      timeout=30_000)
    wait_for_app(page)
    filtered = parse_qs(urlparse(page.url).query)
    added = set(filtered) - {"range", "from", "to", "window", "metric", "errors"}
    assert len(added) == 1  # the ranking's first value, as a filter

    def state():
        query = parse_qs(urlparse(page.url).query)
        switch = page.locator('[role="switch"], [data-testid="stCheckbox"] input').first
        return set(query) & added, query.get("errors"), switch.is_checked()

    page.go_back()
    wait_for_app(page)
    page.wait_for_timeout(1500)  # (the rerun after a Back writes nothing back)
    assert state() == (set(), ["1"], True)
    page.go_back()
    wait_for_app(page)
    page.wait_for_timeout(1500)
    assert state() == (set(), None, False)
    assert parse_qs(urlparse(page.url).query)["window"] == [window]


def test_a_page_change_is_one_step_back_with_its_settings(incident_server, page):
    # Streamlit's own links pushed the bare page, then the sidebar its filters and the page its
    # kept settings: Back from Cost went to Cost without its setting, not to Quality
    # (a fixed window: the demo data is fixed in time, so "Last 30 days" goes empty one day)
    week = (f"range=custom&from={DEMO_END - timedelta(days=7):%Y-%m-%dT%H:%M:%SZ}"
            f"&to={DEMO_END:%Y-%m-%dT%H:%M:%SZ}")
    page.goto(f"{incident_server.url}/cost?{week}")
    wait_for_app(page)
    depth = page.evaluate("history.length")
    stack = page.get_by_role("combobox", name="Stack by", exact=True)
    stack.click()
    page.get_by_role("option", name="Customer", exact=True).click()
    page.wait_for_url("**by=customer**", timeout=30_000)
    wait_for_app(page)
    # the page's own link has its new setting at once (it was drawn a run behind)
    assert "by=customer" in page.locator(NAV_LINKS, has_text="Cost").get_attribute("href")
    for title in ("Quality", "Cost"):
        page.locator(NAV_LINKS, has_text=title).click()
        page.wait_for_url(f"**/{title.lower()}?**", timeout=30_000)
        wait_for_app(page)
    # the link carried the filters and Cost's setting: the page wrote nothing more
    assert "by=customer" in page.url and week in unquote(page.url)
    assert page.evaluate("history.length") == depth + 3
    page.go_back()
    wait_for_app(page)
    assert page.locator("h1").first.inner_text() == "Quality" and "/quality?" in page.url
    page.go_back()
    wait_for_app(page)
    assert page.locator("h1").first.inner_text() == "Cost" and "by=customer" in page.url
    assert stack.input_value() == "Customer"


def test_a_download_gives_times_in_the_zone_on_screen(incident_server, page):
    # The file is made on click, in a thread that sees no session state: it came out in UTC
    # while the page showed New York (found by a review in a real browser).
    day = (OUTAGE - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (OUTAGE + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    page.goto(f"{incident_server.url}/?range=custom&from={day}&to={end}&tz=America/New_York")
    wait_for_app(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="CSV").first.click()
    text = open(download.value.path()).read()
    header, first = text.splitlines()[:2]
    assert header.startswith("bucket,") and first.split(",")[0].endswith(("-0500", "-0400"))
