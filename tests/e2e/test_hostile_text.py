"""Text from the logs that looks like code, markup or a formula, on every page in a real
browser: nothing of it runs, renders as markup or reaches outside the machine, and it is shown
as logged (escaped, not dropped). The checks a review made by hand, kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlparse

import pytest

from lib.store import Lake
from tests.conftest import make_request, requests_table
from tests.e2e.conftest import AppServer, assert_no_exception, wait_for_app
from tests.metrics.test_quality import evals_table

pytestmark = pytest.mark.e2e

HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
           "**b** [x](javascript:alert(1)) # H", "$x^2$ :red[x]", "l1\nl2\n\n# H2",
           '=HYPERLINK("http://evil.test","x")', "http://evil.test/a"]
NOW = datetime.now(UTC).replace(microsecond=0)
PAGES = ["", "cost", "latency", "quality", "drift", "explore", "request", "data"]
# What would show that text from the logs was read as markup.
MARKUP = """() => ({
  images: [...document.querySelectorAll('img')].map(i => i.getAttribute('src') || '')
            .filter(s => s === 'x' || s.includes('evil')),
  links: [...document.querySelectorAll('a')].map(a => a.getAttribute('href') || '')
           .filter(h => /javascript:|evil/i.test(h)),
  latex: document.querySelectorAll('.katex').length,
  headings: [...document.querySelectorAll('[data-testid="stMarkdownContainer"] h1,'
             + '[data-testid="stMarkdownContainer"] h2')].map(h => h.textContent)
             .filter(t => t === 'H' || t === 'H2'),
  quotes: [...document.querySelectorAll('.legendtext, .xtick, .ytick')]
            .map(e => e.textContent).filter(t => /&(quot|lt|gt|amp);/.test(t)),
})"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    lake = Lake(tmp_path_factory.mktemp("hostile") / "store")
    start = NOW - timedelta(days=2)
    rows = [make_request(0, request_id=f"r{i}", ts=start + timedelta(minutes=7 * i),
                         model=HOSTILE[i % 7], feature=HOSTILE[(i + 1) % 7],
                         customer_id=HOSTILE[(i + 2) % 7], service=HOSTILE[(i + 3) % 7],
                         provider=HOSTILE[(i + 4) % 7], error_type=HOSTILE[(i + 5) % 7],
                         status="error" if i % 4 == 0 else "ok", session_id="s",
                         error_message=HOSTILE[i % 7], input_text=HOSTILE[(i + 6) % 7],
                         output_text=HOSTILE[i % 7], finish_reason=HOSTILE[(i + 1) % 7],
                         prompt_version=HOSTILE[i % 3], cost_usd=0.01)
            for i in range(400)]
    evals = [{"eval_id": f"e{i}", "ts": start + timedelta(minutes=11 * i),
              "source": "online" if i % 2 else "offline", "case_id": f"c{i % 40}",
              "request_id": f"r{i}", "version": HOSTILE[i % 2], "metric": HOSTILE[i % 7],
              "score": (i % 10) / 10, "passed": i % 3 > 0, "label": HOSTILE[(i + 2) % 7],
              "explanation": HOSTILE[(i + 3) % 7]} for i in range(240)]
    lake.append({"requests": requests_table(rows), "evals": evals_table(evals)}, source="t")
    s = AppServer(lake.root)
    yield s
    s.stop()


@pytest.mark.parametrize("path", PAGES)
def test_text_from_the_logs_runs_nothing_renders_no_markup_and_fetches_nothing(server, page,
                                                                             path):
    dialogs, outside = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: outside.append(r.url)
            if urlparse(r.url).hostname not in {"127.0.0.1", None} and
            not r.url.startswith("data:") else None)
    query = {"range": "7d", "request": "r1"} if path == "request" else {"range": "7d"}
    page.goto(f"{server.url}/{path}?{urlencode(query)}")
    wait_for_app(page)
    assert_no_exception(page)
    # hover every chart across its width: Plotly's hovers are text from the logs too
    for plot in page.locator(".js-plotly-plot .nsewdrag").all():
        box = plot.bounding_box()
        if box:
            for f in (0.2, 0.5, 0.8):
                page.mouse.move(box["x"] + box["width"] * f, box["y"] + box["height"] / 2)
    page.wait_for_timeout(300)
    assert dialogs == []
    assert page.evaluate(MARKUP) == {"images": [], "links": [], "latex": 0, "headings": [],
                                     "quotes": []}
    assert outside == []  # a self-hosted page asks no other host (the favicon did)


def test_the_request_page_shows_the_text_as_logged(server, page):
    page.goto(f"{server.url}/request?{urlencode({'range': '7d', 'request': 'r1'})}")
    wait_for_app(page)
    text = page.locator('[data-testid="stMain"]').inner_text()
    # (r1: model HOSTILE[1], feature HOSTILE[2], prompt HOSTILE[0])
    assert "model <img src=x onerror=alert(1)>" in text
    assert "feature **b** [x](javascript:alert(1)) # H" in text
    assert "<script>alert(1)</script>" in text
