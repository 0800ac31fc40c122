"""How current a page is: what has landed in the lake since a page read it, and when a page left
open should run again by itself (its auto-refresh interval).

Pure: the app's watcher (lib/ui/freshness.py) lists the manifest's commits every few seconds
and asks these functions what to say and whether to rerun.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from lib import formatting
from lib.store.lake import Commit

# Auto-refresh choices, as written in the URL (``refresh=5m``): seconds between runs. Grafana's
# picker offers the same steps; "off" (the default) never reruns a page by itself.
REFRESH_CHOICES: dict[str, int | None] = {
    "off": None, "10s": 10, "30s": 30, "1m": 60, "5m": 300, "15m": 900, "1h": 3600}
REFRESH_LABELS = {"off": "Off", "10s": "Every 10 s", "30s": "Every 30 s", "1m": "Every minute",
                  "5m": "Every 5 min", "15m": "Every 15 min", "1h": "Every hour"}

# Commit kinds that change what a page shows. A compaction rewrites files with the same rows,
# and "seen" / "failed" batches record files read without storing a row: none is news.
_DATA_KINDS = {"ingest", "demo", "reprice", "remove"}


@dataclass(frozen=True)
class Landed:
    """What changed the lake's data since a page read it: batches stored (rows by table),
    repriced and taken out, and the newest of them (``latest_at``: ISO-8601 UTC, or None)."""

    batches: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    reprices: int = 0
    removals: int = 0
    latest_at: str | None = None

    def __bool__(self) -> bool:
        return bool(self.batches or self.reprices or self.removals)


def landed_since(read: Iterable[Commit], now: Iterable[Commit], *,
                 quarantine: bool = True) -> Landed:
    """What the commits ``now`` in the manifest hold that the commits a page ``read`` did not:
    the data-changing ones only (a compaction or a file found already stored is no news); with
    ``quarantine`` false, rows quarantined are no news either (only the Data page shows them:
    elsewhere a batch of bad lines alone was announced, and a Refresh changed nothing)."""
    known = {c.commit_id for c in read}
    batches = reprices = removals = 0
    rows: dict[str, int] = {}
    latest = None
    for c in now:
        if c.commit_id in known or c.kind not in _DATA_KINDS:
            continue
        if c.kind == "reprice":
            reprices += 1
        elif c.kind == "remove":
            removals += 1
        else:
            added = {t: n for t, n in (c.rows or {}).items() if isinstance(n, int) and n > 0
                     and (quarantine or t != "quarantine")}
            if not added:  # a batch whose every row was a duplicate stored nothing new
                continue
            batches += 1
            for table, n in added.items():
                rows[table] = rows.get(table, 0) + n
        latest = max(latest or c.committed_at, c.committed_at)
    return Landed(batches, rows, reprices, removals, latest)


def describe_landed(landed: Landed) -> str:
    """One line for people: '2 batches (1,204 requests, 30 evals), 1 reprice, 1 removal'."""
    parts = []
    if landed.batches:
        parts.append(f"{formatting.plural(landed.batches, 'batch', 'batches')} "
                     f"({formatting.table_rows(landed.rows)})")
    if landed.reprices:
        parts.append(formatting.plural(landed.reprices, "reprice"))
    if landed.removals:
        parts.append(formatting.plural(landed.removals, "batch taken out", "batches taken out"))
    return ", ".join(parts)


def clock(at: datetime, now: datetime, tz: str) -> str:
    """``at`` as the time of day in ``tz``, with its date before it when ``now`` is another day
    there: a page left open overnight said "computed at 23:10:04" beside "the newest at
    01:02:03", and which day each was could not be told."""
    zone = ZoneInfo(tz)
    local = at.astimezone(zone)
    return f"{local:%H:%M:%S}" if local.date() == now.astimezone(zone).date() \
        else f"{local:%Y-%m-%d %H:%M:%S}"


def refresh_seconds(choice: str | None) -> int | None:
    """Seconds between a page's runs for the URL's ``refresh`` value; None when off or unknown."""
    return REFRESH_CHOICES.get(choice or "off")


def due_for_rerun(every_s: int | None, ran_at: datetime, now: datetime, *, moving: bool,
                  landed: Landed) -> bool:
    """Whether a page that ran at ``ran_at`` should run again at ``now``, refreshing every
    ``every_s`` seconds (None: never by itself). A moving window ("Last 24 hours") shows other
    numbers as time passes, so it reruns each interval; a fixed window reruns only when data
    has landed since (its numbers cannot change otherwise)."""
    if every_s is None or (now - ran_at).total_seconds() < every_s:
        return False
    return moving or bool(landed)
