"""lib/ui/widgets.for_display: what a table is given to show."""

from __future__ import annotations

import polars as pl

from lib.ui import widgets
from lib.ui.widgets import for_display


def test_whole_columns_are_rounded_and_missing_text_is_blank():
    frame = pl.DataFrame({"latency_ms": [16923.4, 1039.5, None], "cost_usd": [0.00123, None, 1.0],
                          "error_type": ["timeout", None, None], "n": [1, 2, 3]})
    shown = for_display(frame, ("latency_ms", "not_a_column"))
    assert shown["latency_ms"].to_list() == [16923.0, 1040.0, None]  # a number stays missing
    assert shown["cost_usd"].to_list() == [0.00123, None, 1.0]  # not listed: untouched
    assert shown["error_type"].to_list() == ["timeout", "", ""]
    assert shown["n"].to_list() == [1, 2, 3] and shown.columns == frame.columns


def test_downloads_give_times_in_the_zone_the_page_shows():
    # A table showing 19:04 in New York downloaded "00:04+0000": another date in a spreadsheet.
    from datetime import UTC, datetime

    t = datetime(2026, 11, 24, 0, 4, 18, tzinfo=UTC)
    frame = pl.DataFrame({"first_seen": [t], "naive": [t.replace(tzinfo=None)], "n": [1]})
    out = widgets.in_shown_zone(frame, "America/New_York")
    assert out.schema["first_seen"].time_zone == "America/New_York"
    assert out["first_seen"][0] == t  # the same instant
    assert "2026-11-23T19:04:18.000000-0500" in out.write_csv()
    assert out["naive"].to_list() == frame["naive"].to_list()  # a time without a zone is left


def test_text_from_logs_makes_no_link_even_a_bare_url():
    # GFM links a bare URL after reading the escapes: "http\://evil\.test" in a headline was a
    # live link (checked in Chromium). A zero-width space after the scheme breaks it.
    shown = widgets.md_escape("see http://evil.test, HTTPS://x.y/z and www.evil.test [a](b)")
    assert "http://" not in shown.replace("\\", "").lower()
    assert "www." not in shown.replace("\\", "").lower()
    assert shown.replace("\u200b", "").replace("\\", "") == \
        "see http://evil.test, HTTPS://x.y/z and www.evil.test [a](b)"  # reads the same
    assert "\\[a\\]\\(b\\)" in shown


def test_a_download_is_named_after_its_window_in_the_page_s_zone():
    from datetime import UTC, datetime

    from lib.filters import Filters

    f = Filters(start=datetime(2026, 11, 20, 3, 0, tzinfo=UTC),
                end=datetime(2026, 11, 27, 3, 0, tzinfo=UTC), tz="America/Los_Angeles")
    assert widgets.file_stem("spend_by_model", f) == \
        "spend_by_model_2026-11-19T1900_2026-11-26T1900_America-Los_Angeles"
    assert widgets.file_stem("drift", None) == "drift"
    # and after its filters: two features' files told apart (the name was the same)
    chat = Filters(start=f.start, end=f.end, tz="UTC", values=(("feature", ("chat",)),
                                                              ("model", ("gpt-4o", "o3 mini"))))
    # ("o3 mini" cannot be spelled: a hash of the filters tells it from "o3-mini")
    import re

    assert re.fullmatch(r"spend_2026-11-20T0300_2026-11-27T0300_UTC_feature-chat_"
                        r"model-gpt-4o\+o3-mini-[0-9a-f]{8}", widgets.file_stem("spend", chat))
    hostile = Filters(start=f.start, end=f.end, tz="UTC",
                      values=(("customer_id", ("../../etc/passwd", "x" * 200, "y" * 50)),))
    stem = widgets.file_stem("spend", hostile)
    assert stem.startswith("spend_2026-11-20T0300_2026-11-27T0300_UTC_filters-")
    assert len(stem) < 100 and "/" not in stem
    named = {v: widgets.file_stem("spend", Filters(start=f.start, end=f.end, tz="UTC",
                                                   values=(("feature", (v,)),)))
             for v in ("聊天", "搜索", "a/b", "a-b", "chat", "chat.", "x" * 40 + "1",
                       "x" * 40 + "2")}
    assert len(set(named.values())) == len(named)  # two filters, two names
    assert named["a-b"].endswith("_feature-a-b") and named["chat"].endswith("_feature-chat")
    assert "/" not in named["a/b"] and named["a/b"] != named["a-b"]


def test_a_table_shows_bidi_controls_from_logs_as_escapes():
    # "live \u202eevil\u202c" displays as "live live": a name that reads as another
    frame = pl.DataFrame({"model": ["gpt-4o", "live \u202eevil\u202c"], "ar": ["مرحبا\u200f", None],
                          "n": [1, 2]})
    shown = widgets.shown_text(frame)
    assert shown["model"].to_list() == ["gpt-4o", "live \\u202eevil\\u202c"]
    assert shown["ar"].to_list() == ["مرحبا\u200f", None]  # a right-to-left mark stays
    assert shown["n"].to_list() == [1, 2] and widgets.shown_text("x") == "x"


def test_text_from_logs_in_markdown_stays_on_one_line():
    # a value's line breaks ended its sentence's paragraph: the Request page's header
    # "provider **big\n===** · model **gpt-4o\n\n    x**" showed stray "**", a code block and
    # new paragraphs (Chromium); they are written as escapes, as the filters' caption does
    shown = widgets.md_escape("gpt-4o\n\n    x\r\n===\x1b[31m")
    assert "\n" not in shown and "\r" not in shown and "\x1b" not in shown
    assert shown.replace("\\", "") == "gpt-4onn    xrn===x1b[31m"
    # a message of ours quoting the user's text over several lines keeps them apart
    assert widgets.md_escape_lines("Mapping: bad\n  b: *x*") == "Mapping\\: bad  \n  b\\: \\*x\\*"


def test_the_request_page_s_header_of_values_with_line_breaks_is_one_paragraph(monkeypatch,
                                                                               tmp_path):
    from streamlit.testing.v1 import AppTest

    from lib.store import Lake
    from tests.conftest import APP, T0, make_request, requests_table

    lake = Lake(tmp_path / "s")
    lake.append({"requests": requests_table([make_request(
        0, request_id="nl", provider="big\n===", model="gpt-4o\n\n    x",
        feature="l1\nl2\n\n# H2")])}, source="t")
    monkeypatch.setenv("SIGHTLINE_STORE", str(lake.root))
    monkeypatch.setenv("SIGHTLINE_DEMO", "0")
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in {"range": "custom", "from": T0.isoformat(), "to": "2026-03-03T00:00:00Z",
                 "request": "nl"}.items():
        at.query_params[k] = v
    at.run()
    at.switch_page("pages/request.py").run()
    assert not at.exception
    (header,) = [m.value for m in at.markdown if "· provider **" in m.value]
    assert "\n" not in header
    assert "provider **big\\\\n===** · model **gpt\\-4o\\\\n\\\\n    x**" in header


def test_an_entity_from_the_logs_is_shown_as_written_not_read():
    # markdown reads entities: a model logged as "&lt;b&gt;" was shown as "<b>", "&copy;" as
    # "©" (Chromium)
    assert widgets.md_escape("&lt;b&gt; &copy;") == "\\&lt;b\\&gt; \\&copy;"


def test_a_window_that_has_not_ended_is_drawn_to_now():
    # A window holding today, at 22:20: its charts drew the hours to come as hours without
    # traffic, and the 22:15 bucket, two thirds of it still to come, as a whole one (not paler).
    from datetime import UTC, datetime, timedelta

    from lib.charts import PARTIAL_OPACITY, time_figure
    from lib.filters import Filters

    day = datetime(2026, 11, 27, tzinfo=UTC)
    f = Filters.between(day, day + timedelta(days=1))
    now = day + timedelta(hours=22, minutes=20)
    axis = widgets.time_axis(f, 900, now=now)
    assert axis["window"] == (day, now)
    buckets = [day + timedelta(minutes=15 * i) for i in range(96)]
    frame = pl.DataFrame({"bucket": buckets, "requests": [10] * 90 + [0] * 6})
    fig = time_figure(frame, "bucket", [("requests", "Requests")], y_title="requests per 15 min",
                      kind="bar", **axis)
    opacity = fig.data[0].marker.opacity
    assert opacity[89] == PARTIAL_OPACITY and opacity[88] == 1.0  # 22:15 paler, 22:00 whole
    assert str(fig.layout.xaxis.range[1]).startswith("2026-11-27 22:20")
    # an ended window, or one not begun, keeps its whole length
    assert widgets.time_axis(f, 900, now=day + timedelta(days=2))["window"] == (day, f.end)
    assert widgets.time_axis(f, 900, now=day - timedelta(days=1))["window"] == (day, f.end)


def test_a_window_s_caption_is_to_the_second_when_it_does_not_start_on_a_minute():
    # A window from 10:00:30 (an "Investigate" link, 30 minutes before an event) was captioned
    # "10:00", while the request at 10:00:00 was left out of it.
    from datetime import UTC, datetime

    start, end = datetime(2026, 10, 24, 8, 0, 30, tzinfo=UTC), datetime(2026, 10, 24, 9, 0,
                                                                        tzinfo=UTC)
    assert widgets.window_caption(start, end, "Europe/Berlin") == \
        "2026-10-24 10:00:30 → 2026-10-24 11:00:00 Europe/Berlin"
    # on whole minutes (every preset window), to the minute
    assert widgets.window_caption(start.replace(second=0), end, "UTC") == \
        "2026-10-24 08:00 → 2026-10-24 09:00 UTC"
