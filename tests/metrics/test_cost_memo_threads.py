"""The Cost page's memo of its one scan is used by every session of the server at once: two of
them evicted one entry twice, or one the other had just stored, and the page failed with a
KeyError."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime, timedelta

from lib.filters import Filters
from lib.metrics import cost


class _Engine:  # the app's engine, as far as the memo sees it
    auto_refresh = False
    version = "v1"


def test_sessions_at_once_share_the_memo_without_a_key_error(monkeypatch):
    monkeypatch.setattr(cost, "_tokens_query", lambda engine, filters: filters.start)
    monkeypatch.setattr(cost, "_PER_MODEL_DAY", {})
    engine, errors = _Engine(), []

    def session(n: int) -> None:
        try:
            for i in range(3000):
                start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n * 10_000 + i)
                f = Filters.between(start, start + timedelta(hours=1))
                assert cost._tokens_by_model_day(engine, f) == start
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # (threads switch as often as a busy server's may)
    try:
        threads = [threading.Thread(target=session, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(cost._PER_MODEL_DAY) <= 32
