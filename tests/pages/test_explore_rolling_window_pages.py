"""Explore's request table on a rolling window ("Last 7 days"): the next page, clicked after the
clock's minute turned (the window's end moved on a minute), opened the first page."""

from __future__ import annotations

from datetime import datetime, timedelta

from streamlit.testing.v1 import AppTest

from lib.ui import filters as ui_filters
from tests.conftest import APP, DEMO_END


class _Clock(datetime):
    at = DEMO_END - timedelta(hours=1)

    @classmethod
    def now(cls, tz=None):
        return cls.at if tz is None else cls.at.astimezone(tz)


def test_the_next_page_after_the_minute_turned(monkeypatch, demo_store):
    monkeypatch.setenv("SIGHTLINE_STORE", str(demo_store))
    monkeypatch.setenv("SIGHTLINE_DEMO", "0")
    monkeypatch.setattr(ui_filters, "datetime", _Clock)  # the sidebar's "now"
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["range"] = "7d"
    at.query_params["page"] = "3"
    at.run()
    at.switch_page("pages/explore.py").run()
    assert not at.exception
    assert at.number_input(key="ex_page").value == 3
    _Clock.at += timedelta(minutes=1)
    at.number_input(key="ex_page").set_value(4).run()
    assert at.number_input(key="ex_page").value == 4
    assert at.query_params["page"] in ("4", ["4"])
    # "Errors only" still starts on the first page
    at.toggle(key="ex_errors").set_value(True).run()
    assert at.number_input(key="ex_page").value == 1
