"""Time buckets start on the wall clock of the sidebar's zone: a "12 h" bar is midnight to noon
in Los Angeles, an hour is :00 to :00 in Kolkata (+05:30), a week starts on Monday. Counts per
bucket are checked against a count done in Python with zoneinfo, on rows whose answer is known."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from lib import charts, drilldown
from lib.filters import Filters
from lib.metrics import buckets, cost, latency, overview, quality
from tests.conftest import make_request, requests_table

LA = ZoneInfo("America/Los_Angeles")
KOLKATA = ZoneInfo("Asia/Kolkata")


def _python_buckets(times: list[datetime], seconds: int, zone, end: datetime) -> Counter:
    """Bucket starts (UTC) counted the plain way: the local wall-clock time at the window end's
    offset, floored to ``seconds`` from local midnight of 1970-01-01 (Mondays for weeks)."""
    offset = end.astimezone(zone).utcoffset()
    anchor = timedelta(days=4) if seconds == 7 * 86400 else timedelta(0)
    epoch = datetime(1970, 1, 1)
    out = Counter()
    for t in times:
        local = t.astimezone(UTC).replace(tzinfo=None) + offset
        n = (local - epoch - anchor) // timedelta(seconds=seconds)
        start_local = epoch + anchor + n * timedelta(seconds=seconds)
        out[(start_local - offset).replace(tzinfo=UTC)] += 1
    return out


def _bucket_requests(frame: pl.DataFrame) -> pl.DataFrame:
    """``bucket, requests`` of a frame over time: the error types' long frame repeats its
    bucket's requests on each of the bucket's rows (``requests_in_bucket``); the others have
    one row per bucket or per bucket and group."""
    if "requests_in_bucket" in frame.columns:
        return frame.group_by("bucket").agg(pl.col("requests_in_bucket").max())
    return frame.group_by("bucket").agg(pl.col("requests").max())


def _store(lake, times):
    # every third request failed, so the error chart has rows too
    lake.append({"requests": requests_table(
        [make_request(i, ts=t, latency_ms=100.0 + i, status="error" if i % 3 == 0 else "ok")
         for i, t in enumerate(times)])}, source="t")


@pytest.mark.parametrize(("zone_name", "seconds", "local_starts"), [
    ("America/Los_Angeles", 12 * 3600, {0, 12}),
    ("Asia/Kolkata", 3600, set(range(24))),
    ("Asia/Kolkata", 3 * 3600, {0, 3, 6, 9, 12, 15, 18, 21}),
    ("UTC", 86400, {0}),
])
def test_buckets_start_on_the_zones_wall_clock(lake, engine, zone_name, seconds, local_starts):
    zone = ZoneInfo(zone_name)
    start = datetime(2026, 11, 10, 3, 17, tzinfo=UTC)
    end = start + timedelta(days=4)
    times = [start + timedelta(minutes=37 * k) for k in range(150)]
    _store(lake, times)
    f = Filters.between(start, end)
    f = Filters(start=f.start, end=f.end, preset="custom", tz=zone_name)
    frame = overview.timeseries(engine, f, seconds)
    got = {b: n for b, n in zip(frame["bucket"], frame["requests"], strict=True) if n}
    assert got == dict(_python_buckets(times, seconds, zone, end))
    assert sum(frame["requests"]) == len(times)
    # every bucket, empty or not, starts at one of the zone's wall-clock starts
    locals_ = [b.astimezone(zone) for b in frame["bucket"]]
    assert {t.hour for t in locals_} <= local_starts and {t.minute for t in locals_} == {0}
    # the grid has no gap and no duplicate: consecutive starts are one bucket apart
    assert all(b - a == timedelta(seconds=seconds)
               for a, b in zip(frame["bucket"], frame["bucket"][1:], strict=False))
    # and the first bucket holds the window's start
    assert frame["bucket"][0] <= start < frame["bucket"][0] + timedelta(seconds=seconds)


def test_every_bucketed_metric_uses_the_same_buckets(lake, engine):
    start = datetime(2026, 11, 10, 0, 0, tzinfo=UTC)
    end = start + timedelta(days=3)
    times = [start + timedelta(minutes=41 * k) for k in range(100)]
    _store(lake, times)
    f = Filters(start=start, end=end, preset="custom", tz="America/Los_Angeles")
    want = dict(_python_buckets(times, 12 * 3600, LA, end))
    series = {
        "overview": overview.timeseries(engine, f, 12 * 3600),
        "latency": latency.percentiles_over_time(engine, f, 12 * 3600),
        "cost": cost.spend_over_time(engine, f, seconds=12 * 3600),
        "errors": quality.errors_over_time(engine, f, 12 * 3600),
    }
    for name, frame in series.items():
        got = {b: n for b, n in _bucket_requests(frame).iter_rows() if n}
        assert got == want, name


def test_a_week_starts_on_monday_in_the_zone():
    # 2026-11-25 is a Wednesday; in Los Angeles (UTC−8 in November) its week began on
    # Monday 2026-11-23 00:00 local, 08:00 UTC
    t = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    clock = buckets.bucket_clock(7 * 86400, LA, t - timedelta(days=30), t)
    start = buckets.bucket_start(t, clock)
    assert start == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert start.astimezone(LA).strftime("%A %H:%M") == "Monday 00:00"


def test_the_shift_is_zero_in_utc_and_for_whole_hour_zones_at_an_hour_or_less():
    assert buckets.bucket_shift(86400, timedelta(0)) == 0
    assert buckets.bucket_shift(3600, timedelta(hours=-8)) == 0
    assert buckets.bucket_shift(900, timedelta(hours=5, minutes=30)) == 0
    assert buckets.bucket_shift(3600, timedelta(hours=5, minutes=30)) == 1800
    assert buckets.bucket_shift(86400, timedelta(hours=-8)) == 16 * 3600


def _local_days(times: list[datetime], zone) -> Counter:
    """Rows per local day, each day keyed by the UTC instant its first local second begins
    (zoneinfo's reading of local midnight; where the clocks skip midnight, the change)."""
    return Counter(datetime.combine(t.astimezone(zone).date(), time(0), tzinfo=zone)
                   .astimezone(UTC) for t in times)


@pytest.mark.parametrize(("zone_name", "start"), [
    # Los Angeles: clocks back 2026-11-01 09:00 UTC (that day is 25 hours)
    ("America/Los_Angeles", datetime(2026, 10, 29, 12, 0, tzinfo=UTC)),
    # Los Angeles: clocks forward 2026-03-08 10:00 UTC (23 hours)
    ("America/Los_Angeles", datetime(2026, 3, 5, 12, 0, tzinfo=UTC)),
    # Santiago: clocks forward at midnight on 2026-09-06, which starts at 01:00
    ("America/Santiago", datetime(2026, 9, 3, 12, 0, tzinfo=UTC)),
])
def test_over_a_change_of_the_clocks_days_still_start_at_local_midnight(lake, engine, zone_name,
                                                                         start):
    zone = ZoneInfo(zone_name)
    end = start + timedelta(days=5)
    times = [start + timedelta(hours=5 * k) for k in range(24)]
    _store(lake, times)
    f = Filters(start=start, end=end, preset="custom", tz=zone_name)
    want = dict(_local_days(times, zone))
    for name, frame in {"overview": overview.timeseries(engine, f, 86400),
                        "latency": latency.percentiles_over_time(engine, f, 86400),
                        "cost": cost.spend_over_time(engine, f, seconds=86400),
                        "errors": quality.errors_over_time(engine, f, 86400)}.items():
        got = {b: n for b, n in _bucket_requests(frame).iter_rows() if n}
        assert got == want, name
    frame = overview.timeseries(engine, f, 86400)
    starts = frame["bucket"].to_list()
    # one bucket a local day, no gap, no duplicate; the day of the change is 23 or 25 hours
    first, last = (t.astimezone(zone).date() for t in (start, end - timedelta(microseconds=1)))
    days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    assert starts == [datetime.combine(d, time(0), tzinfo=zone).astimezone(UTC) for d in days]
    widths = {b - a for a, b in zip(starts, starts[1:], strict=False)}
    assert timedelta(hours=24) in widths and len(widths) == 2
    assert widths - {timedelta(hours=24)} <= {timedelta(hours=23), timedelta(hours=25)}
    # the chart's x axis starts at the first day's start, and a click on a day's bar opens
    # that whole day, 23 or 25 hours included
    axis = charts.axis_range((start, end), zone_name, 86400)
    assert axis[0] == starts[0].astimezone(zone).replace(tzinfo=None)
    for a, b in zip(starts, starts[1:], strict=False):
        point = {"selection": {"points": [{"x": a.astimezone(zone).strftime("%Y-%m-%d %H:%M")}]}}
        assert drilldown.selection_window(point, zone_name, 86400) == (a, b)


@pytest.mark.parametrize("zone_name", ["America/Los_Angeles", "Australia/Lord_Howe",
                                       "America/Santiago", "Europe/London", "Asia/Kolkata"])
@pytest.mark.parametrize("seconds", [3600, 3 * 3600, 12 * 3600, 86400, 7 * 86400])
def test_every_instant_falls_in_the_one_bucket_that_holds_it(zone_name, seconds):
    # over a year of changes of the clocks (Lord Howe's are half an hour), in SQL and in Python
    import duckdb

    zone = ZoneInfo(zone_name)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=365)
    clock = buckets.bucket_clock(seconds, zone, start, end)
    epochs = [start.timestamp() + k * 7919.3 for k in range(3990)]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    sql = buckets.bucket_sql(clock, "to_timestamp(e)")
    got = con.execute(f"SELECT e, epoch({sql}) FROM unnest($e) t(e) ORDER BY e",
                      {"e": epochs}).fetchall()
    for e, bucket in got:
        key = clock.key(e)
        assert clock.start_epoch(key) == bucket
        assert clock.start_epoch(key) <= e < clock.start_epoch(key + 1)
    if seconds >= 3 * 3600:  # on the zone's clock: a start's local time is a whole bucket
        for e, bucket in got:
            local = datetime.fromtimestamp(bucket, zone)
            if local.utcoffset() == datetime.fromtimestamp(bucket - 1, zone).utcoffset():
                since = local.replace(tzinfo=None) - datetime(1970, 1, 5 if seconds > 86400
                                                              else 1)
                assert since.total_seconds() % seconds == 0, (e, local)


def test_a_window_of_many_years_keeps_one_offset_and_small_sql():
    # (a link to 1970-2200 made 17 MB of SQL, 27 s a chart, a branch per change in each branch)
    five = buckets.bucket_clock(7 * 86400, LA, datetime(2021, 1, 1, tzinfo=UTC),
                                datetime(2025, 12, 31, tzinfo=UTC))
    assert len(five.changes) == 10 and len(buckets.grid_sql(five)) < 20_000
    ages = buckets.bucket_clock(7 * 86400, LA, datetime(1970, 1, 1, tzinfo=UTC),
                                datetime(2200, 1, 1, tzinfo=UTC))
    assert ages.changes == () and len(buckets.bucket_sql(ages)) < 200
