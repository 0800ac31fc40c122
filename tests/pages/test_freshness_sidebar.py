"""AppTest: the sidebar's auto-refresh is read from the URL, written back to it, carried by the
links to the other pages, and says when the page was computed."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import streamlit

from tests.pages.test_foundation_pages import run_app


def _picker(at):
    (box,) = [s for s in at.sidebar.selectbox if s.label == "Auto-refresh"]
    return box


def _links(at) -> list[str]:
    return [e.proto.query_string for e in at.sidebar.get("page_link")]


def _sidebar_text(at) -> str:
    return " ".join(c.value for c in at.sidebar.caption)


def test_the_url_s_auto_refresh_is_chosen_and_carried_by_every_link(monkeypatch, demo_store):
    at = run_app(monkeypatch, demo_store, "pages/latency.py", {"range": "7d", "refresh": "5m"})
    assert _picker(at).value == "5m"
    # (with its date: a page left open for days said only the time of day)
    assert re.search(r"Computed at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(UTC\) · "
                     r"refreshes every 5 min\.", _sidebar_text(at))
    links = _links(at)
    assert len(links) >= 8 and all("refresh=5m" in q for q in links), links
    assert at.query_params["refresh"] == "5m"
    # a key of the app's own, not "no filter Sightline knows"
    assert not [w for w in at.warning if "link" in w.value], [w.value for w in at.warning]


def test_turning_it_off_takes_it_out_of_the_url_and_the_links(monkeypatch, demo_store):
    at = run_app(monkeypatch, demo_store, "pages/overview.py", {"range": "7d", "refresh": "1m"})
    _picker(at).set_value("off").run()
    assert not at.exception
    assert "refresh" not in at.query_params
    assert not any("refresh=" in q for q in _links(at))
    assert "refreshes" not in _sidebar_text(at)
    _picker(at).set_value("30s").run()
    assert at.query_params["refresh"] == "30s"
    assert all("refresh=30s" in q for q in _links(at))


def test_an_unknown_interval_is_said_and_left_off(monkeypatch, demo_store):
    at = run_app(monkeypatch, demo_store, query={"range": "7d", "refresh": "2m"})
    assert _picker(at).value == "off"
    (warning,) = [w.value for w in at.warning if "auto-refresh" in w.value]
    assert "`2m` is not one Sightline offers" in warning
    assert "refresh" not in at.query_params


def test_a_request_s_link_carries_it(monkeypatch, demo_store):
    """The Latency page's links to its slowest requests keep the auto-refresh on: every link
    of the app carries it, as the sidebar's do."""
    at = run_app(monkeypatch, demo_store, "pages/latency.py",
                 {"range": "custom", "from": "2026-11-13T12:00:00Z",
                  "to": "2026-11-20T12:00:00Z", "refresh": "5m"})
    (slowest,) = [d.value for d in at.dataframe if "link" in d.value.columns]
    assert len(slowest) and all("refresh=5m" in link for link in slowest["link"])


def test_a_drill_down_carries_it(monkeypatch):
    """A drill-down (a chart selection, "Show those days") switches page with the filters and
    the auto-refresh: without it, the page it opens turned the auto-refresh off."""
    from lib.filters import Filters
    from lib.ui import freshness, widgets

    opened = []
    monkeypatch.setattr(streamlit, "switch_page",
                        lambda page, query_params=None: opened.append((page, query_params)))
    monkeypatch.setattr(freshness, "url_query", lambda: {"refresh": ["5m"]})
    f = Filters.last("24h", datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    widgets.open_page("pages/explore.py", f, window="a..b", metric="p95_latency")
    ((page, query),) = opened
    assert page == "pages/explore.py"
    assert query == {**f.to_query(), "refresh": ["5m"], "window": "a..b",
                     "metric": "p95_latency"}


def test_back_to_a_view_without_it_turns_it_off(monkeypatch, demo_store):
    """The browser's Back to before it was turned on gives a URL without refresh=: the page
    follows the URL (it wrote the choice back and kept rerunning); a URL naming another
    interval sets that one."""
    at = run_app(monkeypatch, demo_store, "pages/overview.py", {"range": "7d"})
    _picker(at).set_value("10s").run()
    assert at.query_params["refresh"] == "10s"
    at.query_params.pop("refresh")  # Back
    at.run()
    assert _picker(at).value == "off" and "refresh" not in at.query_params
    at.query_params["refresh"] = "1h"  # Forward to another
    at.run()
    assert _picker(at).value == "1h"


def test_an_unknown_interval_is_quoted_inertly(monkeypatch, demo_store):
    """The link's value is quoted in a code span: a backtick in it ended the span, and what
    followed was rendered, a link to anywhere inside Sightline's own warning."""
    at = run_app(monkeypatch, demo_store,
                 query={"range": "7d", "refresh": "x`[Sign in again](https://evil.example)`"})
    (warning,) = [w.value for w in at.warning if "auto-refresh" in w.value]
    assert warning.count("`") == 2, warning  # one code span, whole
    assert "`x'[Sign in again](https://evil.example)'`" in warning
    assert _picker(at).value == "off"
