"""The Request page's trace waterfall, hovered in Chromium: each span's tooltip gives its start
and its own length (found in review: a span starting at 1,500 ms and lasting 100 ms read "lasts
1,600 ms", its end, since Plotly's %{x} is the end of a bar drawn from a base)."""

from __future__ import annotations

import json

import pytest

from lib.ingest.pipeline import ingest_paths
from lib.store import Lake
from tests.e2e.conftest import AppServer, assert_no_exception, wait_for_app

pytestmark = pytest.mark.e2e

# an agent span of 2 s holding the model call (300 ms from 200 ms) and a tool (100 ms from 1.5 s)
SPANS = [
    {"span_id": "root", "trace_id": "t1", "ts": "2026-11-20T10:00:00Z", "duration_ms": 2000.0,
     "name": "agent", "kind": "agent", "status": "ok"},
    {"span_id": "tool", "trace_id": "t1", "parent_id": "root", "ts": "2026-11-20T10:00:01.500Z",
     "duration_ms": 100.0, "name": "search tool", "kind": "tool", "status": "ok"},
]
CALL = {"request_id": "call-1", "trace_id": "t1", "parent_id": "root",
        "ts": "2026-11-20T10:00:00.200Z", "latency_ms": 300.0, "provider": "openai",
        "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5, "status": "ok",
        "service": "api"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("waterfall")
    (root / "req.jsonl").write_text(json.dumps(CALL) + "\n")
    (root / "spans.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SPANS))
    ingest_paths(Lake(root / "store"), [str(root / "req.jsonl"), str(root / "spans.jsonl")])
    s = AppServer(root / "store", env={"SIGHTLINE_DEMO": "0"})
    yield s
    s.stop()


def test_each_span_s_tooltip_gives_its_start_and_its_own_length(server, page):
    page.goto(f"{server.url}/request?request=call-1&range=custom&from=2026-11-20T00:00:00Z"
              "&to=2026-11-21T00:00:00Z")
    wait_for_app(page)
    assert_no_exception(page)
    bars = page.locator('[data-testid="stPlotlyChart"]').first.locator(".bars path")
    tips = []
    for i in range(bars.count()):
        bars.nth(i).hover(force=True)
        page.wait_for_timeout(300)
        tips.append(page.evaluate("() => Array.from(document.querySelectorAll("
                                  "'.hoverlayer text')).map(t => t.textContent).join(' ')"))
    said = {name: tip for tip in tips for name in ("agent", "search tool", "gpt-4o")
            if name in tip}
    assert "starts at 0 ms, lasts 2,000 ms" in said["agent"]
    assert "starts at 1,500 ms, lasts 100 ms" in said["search tool"]
    assert "starts at 200 ms, lasts 300 ms" in said["gpt-4o"]
