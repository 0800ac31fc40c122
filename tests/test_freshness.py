"""What a page left open says has landed since it ran, and when its auto-refresh reruns it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lib import freshness
from lib.freshness import Landed, describe_landed, due_for_rerun, landed_since
from lib.store.lake import Commit


def commit(cid: str, kind: str = "ingest", rows=None, at: str = "2026-11-28T10:00:00+00:00"):
    return Commit(commit_id=cid, kind=kind, source="x", content_hash=None, committed_at=at,
                  rows=rows if rows is not None else {}, added=[])


READ = [commit("a", rows={"requests": 10}), commit("b", "demo", rows={"requests": 5})]


def test_nothing_new_is_nothing_landed():
    landed = landed_since(READ, READ)
    assert not landed
    assert landed == Landed()


def test_new_batches_are_counted_by_table_and_the_newest_time_kept():
    now = READ + [
        commit("c", rows={"requests": 3, "evals": 2}, at="2026-11-28T10:05:00+00:00"),
        commit("d", rows={"requests": 1, "quarantine": 1}, at="2026-11-28T10:07:30+00:00"),
    ]
    landed = landed_since(READ, now)
    assert landed.batches == 2
    assert landed.rows == {"requests": 4, "evals": 2, "quarantine": 1}
    assert landed.latest_at == "2026-11-28T10:07:30+00:00"
    assert describe_landed(landed) == "2 batches (2 evals, 1 quarantined row, 4 requests)"


def test_a_compaction_or_a_file_already_stored_is_no_news():
    now = READ + [commit("c", "compact", rows={"requests": 15}), commit("s", "seen"),
                  commit("f", "failed"), commit("dup", rows={"requests": 0})]
    assert not landed_since(READ, now)


def test_reprices_and_removals_change_what_a_page_shows():
    now = READ + [commit("r", "reprice", rows={"requests": 10}),
                  commit("x", "remove", at="2026-11-28T11:00:00+00:00")]
    landed = landed_since(READ, now)
    assert (landed.batches, landed.reprices, landed.removals) == (0, 1, 1)
    assert landed.latest_at == "2026-11-28T11:00:00+00:00"
    assert describe_landed(landed) == "1 reprice, 1 batch taken out"


def test_a_batch_taken_out_is_not_the_page_s_own_commit_seen_again():
    # the page read a and b; b's removal and a new batch landed since
    now = READ + [commit("c", rows={"requests": 1}), commit("x", "remove")]
    assert describe_landed(landed_since(READ, now)) == "1 batch (1 request), 1 batch taken out"


RAN = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
NEWS = Landed(batches=1, rows={"requests": 1}, latest_at="2026-11-28T10:00:05+00:00")


@pytest.mark.parametrize("every, after_s, moving, landed, due", [
    (None, 3600, True, NEWS, False),     # off: never by itself
    (60, 59, True, NEWS, False),         # not yet
    (60, 60, True, Landed(), True),      # a moving window moves with time
    (60, 60, False, Landed(), False),    # a fixed window with nothing new shows the same
    (60, 61, False, NEWS, True),         # ... and reruns once data lands in the lake
])
def test_due_for_rerun(every, after_s, moving, landed, due):
    now = RAN + timedelta(seconds=after_s)
    assert due_for_rerun(every, RAN, now, moving=moving, landed=landed) is due


def test_refresh_choices_read_from_the_url():
    assert freshness.refresh_seconds("5m") == 300
    assert freshness.refresh_seconds("10s") == 10
    assert freshness.refresh_seconds("off") is None
    assert freshness.refresh_seconds(None) is None
    assert freshness.refresh_seconds("2m") is None  # unknown: off (the sidebar says so)
    assert set(freshness.REFRESH_LABELS) == set(freshness.REFRESH_CHOICES)


def test_a_time_of_another_day_than_now_says_its_date():
    """A page left open overnight said 'computed at 23:10:04' beside 'the newest at 01:02:03':
    which day each was could not be told."""
    at = datetime(2026, 11, 27, 23, 10, 4, tzinfo=UTC)
    assert freshness.clock(at, at + timedelta(minutes=5), "UTC") == "23:10:04"
    assert freshness.clock(at, at + timedelta(hours=2), "UTC") == "2026-11-27 23:10:04"
    # the day is the shown zone's: 23:10 UTC is 18:10 the same day in New York
    assert freshness.clock(at, at + timedelta(hours=2), "America/New_York") == "18:10:04"


def test_rows_quarantined_alone_are_news_only_where_the_quarantine_is_shown():
    now = READ + [commit("q", rows={"quarantine": 2}),
                  commit("c", rows={"requests": 1, "quarantine": 1})]
    assert landed_since(READ, now).rows == {"requests": 1, "quarantine": 3}
    elsewhere = landed_since(READ, now, quarantine=False)
    assert (elsewhere.batches, elsewhere.rows) == (1, {"requests": 1})
    assert not landed_since(READ, READ + [commit("q", rows={"quarantine": 2})],
                            quarantine=False)
