"""A request table's "Open" link opens that request's page in a new tab, with the same filters
in its URL, so the link can be shared as is."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from lib.filters import Filters
from lib.metrics import latency
from lib.store import Engine, Lake
from tests.conftest import DEMO_END
from tests.e2e.conftest import AppServer, assert_no_exception, screenshot, wait_for_app

pytestmark = pytest.mark.e2e

START, END = DEMO_END - timedelta(days=2), DEMO_END
QUERY = (f"range=custom&from={START:%Y-%m-%dT%H:%M:%SZ}&to={END:%Y-%m-%dT%H:%M:%SZ}"
         "&provider=openai")


@pytest.fixture(scope="module")
def server(demo_store):
    s = AppServer(demo_store)
    yield s
    s.stop()


def test_the_open_link_of_the_slowest_request_opens_it_with_the_same_filters(server, page):
    filters = Filters.from_query(parse_qs(QUERY), now=END)
    slowest = latency.slowest(Engine(Lake(server.store)), filters, 1)["request_id"][0]

    page.goto(f"{server.url}/latency?{QUERY}")
    wait_for_app(page)
    assert_no_exception(page)
    grid = page.locator('[data-testid="stDataFrame"]').last  # "Slowest requests"
    grid.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    box = grid.bounding_box()
    # The first column of the first row (the grid is a canvas: click by position).
    x, y = box["x"] + 30, box["y"] + 35 + 17
    page.mouse.move(x, y)
    with page.context.expect_page(timeout=15_000) as opened:
        page.mouse.click(x, y)
    tab = opened.value
    wait_for_app(tab)
    assert_no_exception(tab)
    url = urlparse(tab.url)
    query = parse_qs(url.query)
    assert url.path == "/request" and query["request"] == [slowest]
    assert {k: query[k] for k in ("range", "from", "to", "provider")} == \
        {k: v for k, v in parse_qs(QUERY).items()}
    assert tab.get_by_label("Request id").input_value() == slowest
    assert tab.get_by_text("Time to first token").count() == 1
    screenshot(tab, "request-from-link")
