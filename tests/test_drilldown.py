"""Chart selection → window (pure; AppTest cannot simulate a Plotly selection)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lib.drilldown import (
    earlier_on_the_clock,
    local_window,
    parse_window_param,
    parse_x,
    selection_window,
    wall_clock,
    window_param,
)


def utc(*a):
    return datetime(*a, tzinfo=UTC)


def test_box_selection_in_the_display_zone():
    sel = {"selection": {"points": [], "box": [{"x": ["2026-11-19 20:05:30.5",
                                                       "2026-11-19 20:59:10"],
                                                 "y": [0, 100]}]}}
    # Paris is UTC+1 in November: 20:05 local = 19:05 UTC; widened to whole minutes
    assert selection_window(sel, "Europe/Paris") == (utc(2026, 11, 19, 19, 5),
                                                     utc(2026, 11, 19, 20, 0))
    assert selection_window(sel, "UTC") == (utc(2026, 11, 19, 20, 5), utc(2026, 11, 19, 21, 0))


def test_reversed_box_and_epoch_ms():
    ms = utc(2026, 11, 19, 18, 0).timestamp() * 1000
    sel = {"selection": {"box": [{"x": [ms + 3_600_000, ms]}]}}
    assert selection_window(sel, "UTC") == (utc(2026, 11, 19, 18), utc(2026, 11, 19, 19))


def test_points_cover_their_buckets():
    sel = {"selection": {"box": [], "points": [{"x": "2026-11-19 18:00"},
                                               {"x": "2026-11-19 16:00"}]}}
    assert selection_window(sel, "UTC", bucket_seconds=3600) == (utc(2026, 11, 19, 16),
                                                                 utc(2026, 11, 19, 19))


def test_clamp_tiny_and_empty():
    sel = {"selection": {"box": [{"x": ["2026-11-19 18:00:10", "2026-11-19 18:00:20"]}]}}
    assert selection_window(sel, "UTC") == (utc(2026, 11, 19, 18, 0), utc(2026, 11, 19, 18, 1))
    wide = {"selection": {"box": [{"x": ["2026-11-18 00:00", "2026-11-30 00:00"]}]}}
    assert selection_window(wide, "UTC", clamp=(utc(2026, 11, 19), utc(2026, 11, 20))) == \
        (utc(2026, 11, 19), utc(2026, 11, 20))
    outside = {"selection": {"box": [{"x": ["2026-11-01", "2026-11-02"]}]}}
    assert selection_window(outside, "UTC", clamp=(utc(2026, 11, 19), utc(2026, 11, 20))) is None
    assert selection_window({"selection": {"points": [], "box": []}}, "UTC") is None
    assert selection_window(None, "UTC") is None
    assert parse_x("not a time", "UTC") is None


def test_window_param_round_trip():
    w = (utc(2026, 11, 19, 18, 30), utc(2026, 11, 19, 19, 10))
    assert window_param(*w) == "2026-11-19T18:30:00Z..2026-11-19T19:10:00Z"
    assert parse_window_param(window_param(*w)) == w
    assert parse_window_param("2026-11-19T19:00..2026-11-19T18:00") is None
    assert parse_window_param("garbage") is None
    assert parse_window_param(None) is None


def test_a_link_s_window_outside_the_years_of_url_times_is_no_window():
    # the Explore page failed (OverflowError) on the baseline before a window from year 1
    assert parse_window_param("0001-01-01T00:00:00Z..9999-12-31T23:59:59Z") is None
    assert parse_window_param("0001-01-01T00:00:00+01:00..2026-11-19T18:00:00Z") is None
    assert parse_window_param("1969-12-31T00:00:00Z..2026-11-19T18:00:00Z") is None
    assert parse_window_param("1970-01-01T00:00:00Z..2200-01-01T00:00:00Z") == (
        utc(1970, 1, 1), utc(2200, 1, 1))


def test_figures_are_identical_across_runs_so_selections_survive():
    """Streamlit clears a chart's selection when its figure spec changes between runs; event
    traces must not come out in a run-dependent order (lib.charts.add_events)."""
    import polars as pl

    from lib.charts import time_figure

    frame = pl.DataFrame({"bucket": [utc(2026, 11, 19, h) for h in range(4)], "n": [1, 2, 3, 4]})
    kinds = ["deploy", "incident", "prompt_change", "model_change", "note"]
    events = pl.DataFrame({"ts": [utc(2026, 11, 19, 1, i) for i in range(5)], "kind": kinds,
                           "title": kinds})
    specs = {time_figure(frame, "bucket", [("n", "n")], y_title="n", tz="UTC",
                         events=events.sample(fraction=1.0, shuffle=True, seed=seed)).to_json()
             for seed in range(6)}
    assert len(specs) == 1


def test_local_window_reads_wall_clock_times_in_the_zone():
    # Paris is UTC+1 in November, UTC+2 in July.
    assert local_window(datetime(2026, 11, 20, 13, 0), datetime(2026, 11, 20, 14, 30),
                        "Europe/Paris") == (datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
                                            datetime(2026, 11, 20, 13, 30, tzinfo=UTC))
    assert local_window(datetime(2026, 7, 1, 0, 0), datetime(2026, 7, 2, 0, 0),
                        "Europe/Paris")[0] == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)
    assert wall_clock(datetime(2026, 6, 30, 22, 0, tzinfo=UTC), "Europe/Paris") == \
        datetime(2026, 7, 1, 0, 0)


def test_local_window_needs_both_ends_in_order():
    t = datetime(2026, 11, 20, 13, 0)
    assert local_window(None, t, "UTC") is None and local_window(t, None, "UTC") is None
    assert local_window(t, t, "UTC") is None


def test_epoch_ms_count_the_wall_clock_the_chart_draws():
    # A point drawn at 12:00 on New York's clocks is, in Plotly's milliseconds, 12:00 "UTC":
    # read as epoch time it was 5 hours off the string form of the same point.
    wall = datetime(2026, 3, 2, 12, 0, tzinfo=UTC).timestamp() * 1000
    ny = "America/New_York"
    assert parse_x(wall, ny) == parse_x("2026-03-02 12:00", ny) == utc(2026, 3, 2, 17)


def test_a_day_or_a_week_earlier_is_on_the_zone_s_clock():
    week, day = timedelta(days=7), timedelta(days=1)
    # Monday 09:00-12:00 in Berlin (CET) against the Monday before, still summer time: 09:00
    # there too, 07:00 UTC (168 hours back was 10:00 in Berlin)
    assert earlier_on_the_clock(utc(2026, 10, 26, 8), utc(2026, 10, 26, 11), week,
                                "Europe/Berlin") == (utc(2026, 10, 19, 7), utc(2026, 10, 19, 10))
    assert earlier_on_the_clock(utc(2026, 10, 26, 8), utc(2026, 10, 26, 11), week, "UTC") == \
        (utc(2026, 10, 19, 8), utc(2026, 10, 19, 11))
    # spring: a day before Monday 09:00 CEST is Sunday 09:00 CEST, and Saturday's is CET
    assert earlier_on_the_clock(utc(2026, 3, 30, 7), utc(2026, 3, 30, 8), day,
                                "Europe/Berlin") == (utc(2026, 3, 29, 7), utc(2026, 3, 29, 8))
    assert earlier_on_the_clock(utc(2026, 3, 29, 7), utc(2026, 3, 29, 8), day,
                                "Europe/Berlin") == (utc(2026, 3, 28, 8), utc(2026, 3, 28, 9))
    # a window within the hour the clocks skipped has no such hour a day later: its own length
    skipped = earlier_on_the_clock(utc(2026, 3, 30, 0, 30), utc(2026, 3, 30, 0, 40), day,
                                   "Europe/Berlin")
    assert skipped[1] - skipped[0] == timedelta(minutes=10)


def test_a_day_earlier_on_the_day_the_clocks_went_back_is_as_long_as_the_window():
    # 02:00-03:00 in Berlin the day after the change: on the day of it, 02:00 happened twice;
    # from the first 02:00 to 03:00 was two hours for a window of one (review)
    day = timedelta(days=1)
    assert earlier_on_the_clock(utc(2026, 10, 26, 1), utc(2026, 10, 26, 2), day,
                                "Europe/Berlin") == (utc(2026, 10, 25, 1), utc(2026, 10, 25, 2))
    # a window ending in the repeated hour: its first reading, an hour long too
    assert earlier_on_the_clock(utc(2026, 10, 26, 0, 30), utc(2026, 10, 26, 1, 30), day,
                                "Europe/Berlin") == (utc(2026, 10, 24, 23, 30),
                                                     utc(2026, 10, 25, 0, 30))
    # Lord Howe's clocks go back half an hour: 01:45-02:15 a day later is 30 minutes long
    lord_howe = earlier_on_the_clock(utc(2026, 4, 5, 15, 15), utc(2026, 4, 5, 15, 45), day,
                                     "Australia/Lord_Howe")
    assert lord_howe[1] - lord_howe[0] == timedelta(minutes=30)
