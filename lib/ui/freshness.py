"""A page left open says how current it is: when it was computed, that new data has landed since
(with a button to show it), and, when asked (the sidebar's "Auto-refresh", ``refresh=`` in the
URL), runs again by itself, as a Grafana dashboard on a wall screen does.

The check is a fragment that reruns every few seconds on its own, apart from the page: it stats
the manifest folder (a commit changes it) and lists the new commits only when it changed, so an
open page costs the server next to nothing between batches.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import streamlit as st

from lib import freshness
from lib.charts import local_time
from lib.filters import Filters, code_quoted
from lib.store import Engine
from lib.store.lake import Lake
from lib.ui import navigation

PARAM = "refresh"  # the URL key: one of freshness.REFRESH_CHOICES
KEY = "f_refresh"  # its widget's session key
SYNCED = "_synced_refresh"  # the URL's value as the sidebar last wrote it
# Seconds between two looks at the manifest for new data (SIGHTLINE_WATCH_S; 0: never look).
WATCH_ENV = "SIGHTLINE_WATCH_S"
DEFAULT_WATCH_S = 30


def watch_seconds() -> float | None:
    """Seconds between two checks for new data (None: the check is off)."""
    raw = os.environ.get(WATCH_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_WATCH_S
    except ValueError:
        value = DEFAULT_WATCH_S
    return value if value > 0 else None


def picker() -> str:
    """The sidebar's auto-refresh choice (a key of freshness.REFRESH_CHOICES), from the URL on
    a session's first run, or when the URL's changed since the sidebar wrote it (the browser's
    Back or Forward); kept in the URL.
    A link's unknown interval is said above the page, as the filters' link problems are."""
    url = st.query_params.get(PARAM)
    # The URL decides once it differs from what the sidebar last wrote: every link of the app
    # carries the choice (lib.ui.widgets' links and drill-downs, the sidebar's), so a URL
    # without it is a view without it, as the browser's Back to before it was turned on is.
    if KEY not in st.session_state or url != st.session_state.get(SYNCED):
        if url is not None and url not in freshness.REFRESH_CHOICES:
            # (quoted as the filters' link problems are: a backtick in it ended a code span,
            # and what followed was rendered, a link to anywhere in Sightline's own warning)
            st.warning(f"This link's auto-refresh `{code_quoted(url, 40)}` is not one Sightline "
                       f"offers ({', '.join(freshness.REFRESH_CHOICES)}): it is off.",
                       icon=":material/link_off:")
        st.session_state[KEY] = url if url in freshness.REFRESH_CHOICES else "off"
    choice = st.sidebar.selectbox(
        "Auto-refresh", list(freshness.REFRESH_CHOICES), key=KEY,
        format_func=freshness.REFRESH_LABELS.get,
        help="Runs the page again by itself: a moving window (\"Last 24 hours\") every "
             "interval, a fixed one only when new data has landed in it.")
    if choice == "off":
        st.query_params.pop(PARAM, None)
    elif st.query_params.get(PARAM) != choice:
        st.query_params[PARAM] = choice
    st.session_state[SYNCED] = st.query_params.get(PARAM)
    return choice


def url_query() -> dict[str, list[str]]:
    """The auto-refresh's URL key (none when off), for links to the other pages."""
    choice = st.session_state.get(KEY, st.query_params.get(PARAM))
    return {PARAM: [choice]} if choice in freshness.REFRESH_CHOICES and choice != "off" else {}


def link_query(filters: Filters) -> dict[str, list[str]]:
    """The URL query of a link to a view of ``filters``: the filters and the auto-refresh."""
    return {**filters.to_query(), **url_query()}


def computed_caption(filters: Filters, choice: str) -> None:
    """When this run read the data, in the shown zone, and the auto-refresh in force; with its
    date, as it stays drawn while the page is left open (for days, on a wall screen)."""
    at = local_time(datetime.now(UTC), filters.tz)
    every = "" if choice == "off" else f" · refreshes {freshness.REFRESH_LABELS[choice].lower()}"
    st.sidebar.caption(f"Computed at {at:%Y-%m-%d %H:%M:%S} ({filters.tz}){every}.")


SEEN = "_freshness_seen"  # the version this session's last run showed: its commits, and when


def watch(engine: Engine, filters: Filters, choice: str) -> None:
    """Above the page: a notice once new data lands, or a rerun when the auto-refresh is due.
    Reruns itself every few seconds (nothing is drawn while nothing has landed)."""
    st.session_state[SEEN] = (engine.version, engine.commits(), datetime.now(UTC))
    every = freshness.refresh_seconds(choice)
    period = min((s for s in (every, watch_seconds()) if s), default=None)
    if period is None:
        return
    st.fragment(_watch, run_every=period)(engine.lake, every, filters.preset != "custom",
                                          filters.tz)


def page_ran(engine: Engine) -> None:
    """After the page: the version it showed in the end (an upload on the Data page moves the
    run to the version it made), so its own batch is not news to it."""
    version, _, ran_at = st.session_state.get(SEEN, (None, None, datetime.now(UTC)))
    if engine.version != version:
        st.session_state[SEEN] = (engine.version, engine.commits(), ran_at)


def _watch(lake: Lake, every: int | None, moving: bool, tz: str) -> None:
    version, commits, ran_at = st.session_state[SEEN]
    landed = freshness.Landed()
    if lake.version() != version:
        landed = freshness.landed_since(commits, lake.commits(), quarantine=(
            st.session_state.get(navigation.CURRENT_PAGE) == "Data"))
    if freshness.due_for_rerun(every, ran_at, datetime.now(UTC), moving=moving, landed=landed):
        st.rerun(scope="app")
    if not landed:
        return
    now = datetime.now(UTC)
    newest = freshness.clock(datetime.fromisoformat(landed.latest_at), now, tz)
    left, right = st.columns([5, 1], vertical_alignment="center")
    left.info(f"New data since this page was computed at {freshness.clock(ran_at, now, tz)} "
              f"({tz}): {freshness.describe_landed(landed)}, the newest at {newest}.",
              icon=":material/update:")
    if right.button("Refresh", key="freshness_show", icon=":material/refresh:"):
        st.rerun(scope="app")
