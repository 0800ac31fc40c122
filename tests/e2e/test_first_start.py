"""A new user's first start, in a real browser: empty store → demo data → Overview with KPIs."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import (
    NAV_LINKS,
    AppServer,
    assert_no_exception,
    screenshot,
    wait_for_app,
)

pytestmark = pytest.mark.e2e

KPI_LABELS = ["Requests", "Error rate", "p95 latency", "Cost", "Cached input tokens",
              "Online judge pass rate", "Guardrail triggers"]


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    """A server started on an empty store: the app must seed demo data itself. Shared by the
    module (seeding takes about 20 s): the first test sees the first start."""
    server = AppServer(tmp_path_factory.mktemp("first_start") / "store")
    yield server
    server.stop()


def nav_titles(page) -> list[str]:
    links = page.locator(NAV_LINKS).all_inner_texts()
    return [t.strip().split("\n")[-1] for t in links]


def test_first_start_shows_overview_with_kpis(fresh_server, page):
    # (the module's first test: the server's store is still empty)
    page.goto(fresh_server.url)
    # While the demo data is written, the sidebar already lists our pages (it listed the
    # pages/ folder's files, "app" first, for that half minute).
    page.get_by_text("First start: generating").wait_for(timeout=60_000)
    page.locator(NAV_LINKS).first.wait_for(timeout=10_000)
    during = nav_titles(page)
    assert during[0] == "Overview" and "app" not in during and "overview" not in during
    wait_for_app(page)
    assert_no_exception(page)
    metrics = page.locator('[data-testid="stMetric"]')
    labels = [m.inner_text().split("\n")[0].strip() for m in metrics.all()]
    assert labels == KPI_LABELS
    values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    assert re.fullmatch(r"[\d.]+k", values[0]), values  # ~70k requests in the last 7 days
    # requests and errors, latency, error rate, cost
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 4
    assert "demo data" in page.locator('[data-testid="stAlert"]').first.inner_text()
    # The navigation is ours (sections, explicit pages), never the pages/ folder's own list.
    titles = nav_titles(page)
    assert titles[0] == "Overview" and "Data" in titles
    assert all(t[0].isupper() for t in titles), titles  # no auto-discovered file names
    # Filters live in the URL.
    assert "range=7d" in page.url
    screenshot(page, "first_start_overview")
    # On a small laptop's 1,024 px, beside the sidebar, no figure is cut short ("$314.…"), here
    # and on the Cost page's row of five
    page.set_viewport_size({"width": 1024, "height": 900})
    for url_path in ("overview", "cost"):
        page.goto(f"{fresh_server.url}/{url_path}")
        wait_for_app(page)
        # /overview is the Overview by its name (it opened a "Page not found" dialog)
        assert page.locator('[role="dialog"]').count() == 0
        assert page.locator("h1").first.inner_text() == url_path.capitalize()
        cut = page.evaluate("""() => [...document.querySelectorAll(
            '[data-testid="stMetricValue"], [data-testid="stMetricValue"] *')]
            .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.innerText)""")
        assert cut == [], (url_path, cut)


def test_filters_survive_navigation_and_reload(fresh_server, page):
    page.goto(f"{fresh_server.url}/?range=24h&provider=openai")
    wait_for_app(page)
    assert_no_exception(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert "openai" in sidebar.inner_text()
    page.locator(NAV_LINKS, has_text="Data").click()
    wait_for_app(page)
    assert_no_exception(page)
    assert "/data" in page.url and "provider=openai" in page.url and "range=24h" in page.url
    assert "openai" in page.locator('[data-testid="stSidebar"]').inner_text()
    # The copied URL reproduces the view in a new page.
    other = page.context.new_page()
    other.goto(page.url)
    wait_for_app(other)
    assert other.locator("h1").first.inner_text() == "Data"
    assert "openai" in other.locator('[data-testid="stSidebar"]').inner_text()
    screenshot(other, "data_page")


def test_deep_link_on_a_fresh_server_goes_through_the_app(tmp_path, page):
    """A shared link is often the first request a server gets: it must not fall back to the
    pages/ folder's auto-discovered navigation, and the sidebar filters must apply."""
    server = AppServer(tmp_path / "store", env={"SIGHTLINE_DEMO": "0"})
    try:
        page.goto(f"{server.url}/data?range=24h&provider=openai")
        wait_for_app(page)
        assert_no_exception(page)
        links = page.locator(NAV_LINKS).all_inner_texts()
        titles = [t.strip().split("\n")[-1] for t in links]
        assert "Overview" in titles and "Data" in titles and "app" not in titles, titles
        assert page.locator("h1").first.inner_text() == "Data"
        assert "openai" in page.locator('[data-testid="stSidebar"]').inner_text()
        assert "provider=openai" in page.url
    finally:
        server.stop()
