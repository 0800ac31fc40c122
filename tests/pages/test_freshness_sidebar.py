"""AppTest: the sidebar's auto-refresh is read from the URL, written back to it, carried by the
links to the other pages, and says when the page was computed."""

from __future__ import annotations

import re

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


def test_a_link_without_it_keeps_the_session_s_choice(monkeypatch, demo_store):
    """The pages' own links and drill-downs carry the filters, not the auto-refresh: arriving
    by one keeps it on (and puts it back in the URL); a link that has it sets it."""
    at = run_app(monkeypatch, demo_store, "pages/overview.py", {"range": "7d", "refresh": "5m"})
    at.query_params.pop("refresh")
    at.switch_page("pages/cost.py").run()
    assert not at.exception
    assert _picker(at).value == "5m"
    assert at.query_params["refresh"] == "5m"
    at.query_params["refresh"] = "1h"
    at.switch_page("pages/latency.py").run()
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
