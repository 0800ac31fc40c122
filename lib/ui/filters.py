"""The global filters in the sidebar, kept in the URL so a copied link reproduces the view.

The entry script (app.py) calls :func:`sidebar` on every run, before the page; pages call
:func:`current`. Widget values live in session state (so they survive page switches) and are
mirrored into ``st.query_params`` on every run (so the URL always says what is on screen).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import streamlit as st

from lib.filters import (
    DIMENSIONS,
    PRESET_LABELS,
    PRESETS,
    TIME_KEYS,
    Filters,
    column_for_key,
    key_for_column,
)
from lib.store import Engine
from lib.ui import widgets
from lib.ui.navigation import ensure_entrypoint

ZONES = ["UTC", "Europe/London", "Europe/Paris", "America/New_York", "America/Los_Angeles",
         "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney"]
DIM_LABELS = {"environment": "Environment", "service": "Service", "provider": "Provider",
              "model": "Model", "feature": "Feature", "customer": "Customer",
              "prompt_version": "Prompt version"}


# Not "only how times are shown": a day's bar, a 12 h bucket and the picker's dates start at the
# zone's midnight, so the per-bar numbers change with it (the window's instants do not).
ZONE_HELP = ("Data is stored in UTC. The zone sets how times are shown, where chart buckets "
             "and days start (a day's bar runs from local midnight) and which days the date "
             "picker means; changing it keeps the window's instants.")


def _query_dict() -> dict[str, list[str]]:
    qp = st.query_params
    return {k: qp.get_all(k) for k in qp.keys()}


# A sidebar list offers at most this many values, those with the most requests; past it, a value
# is typed (2,000,000 customers are no list).
MAX_LISTED_VALUES = 5000


@st.cache_data(ttl=300, show_spinner=False, max_entries=64)
def _dimension_values(_engine: Engine, version: str, column: str, limit: int) -> list[str]:
    """Up to ``limit`` values of ``column``, most requests first."""
    frame = _engine.query(
        f"SELECT {column} AS v, count(*) AS n FROM requests WHERE {column} IS NOT NULL "
        f"GROUP BY 1 ORDER BY n DESC, v LIMIT {int(limit)}")
    return frame["v"].to_list()


# The URL keys pages read besides the filters (tests/test_page_keys.py finds every key the
# code reads or writes and checks it is here): a link's other keys are named as unknown.
PAGE_KEYS = frozenset({"by", "whatif", "source", "request", "window", "baseline", "metric",
                       "q", "sort", "order", "errors", "page", "objective", "reference",
                       "column", "compare_a", "compare_b", "failed_metric", "against", "rank",
                       "at", "feedback", "refresh"})
# Session key: the URL's filter keys as the sidebar last wrote them.
SYNCED_QUERY = "_synced_query"


def sidebar(engine: Engine) -> Filters:
    """Render the filters in the sidebar and return them. First run of a session: from the URL."""
    now = datetime.now(UTC)
    # Each widget's value comes from the URL when the session has none: on the first run, and
    # after st.switch_page, which drops the entry script's widget state (Streamlit 1.67).
    initial = Filters.from_query(_query_dict(), now)
    zone = ZoneInfo(initial.tz)
    defaults = {
        "f_range": initial.preset,
        "f_tz": initial.tz,
        "f_dates": _dates_of(initial.start, initial.end, zone),
        "f_custom": (initial.start, initial.end),
        "f_other": {c: list(v) for c, v in initial.values if c not in DIMENSIONS.values()},
        **{f"f_{key}": list(initial.get(column)) for key, column in DIMENSIONS.items()},
    }
    if "f_range" not in st.session_state:  # the URL is read: say what of it was passed over
        for problem in Filters.query_problems(_query_dict(), PAGE_KEYS):
            st.warning(f"This link's {problem}.", icon=":material/link_off:")
    # The URL's filters changed outside the sidebar since it last wrote them (the browser's
    # Back or Forward): the widgets follow the URL. Otherwise the sidebar's state wrote itself
    # back over the URL Back had restored, and Back undid nothing. A URL without any filter is
    # a page opened by its bare address (or an in-page link without a query): the filters stay.
    synced, url = st.session_state.get(SYNCED_QUERY), url_filters_query()
    moved = synced is not None and bool(url) and url != synced
    for key, value in defaults.items():
        if key not in st.session_state or moved:
            st.session_state[key] = value
    if moved:
        st.session_state["f_dates_tz"] = initial.tz

    with st.sidebar:
        st.markdown("#### Filters")
        options = list(PRESETS) + ["custom"]
        preset = st.selectbox("Time range", options, key="f_range",
                              format_func=lambda k: PRESET_LABELS[k])
        tz = st.selectbox("Time zone", sorted(set(ZONES) | {st.session_state["f_tz"]}),
                          key="f_tz", help=ZONE_HELP)
        zone = ZoneInfo(tz)
        if preset == "custom":
            if st.session_state.get("f_dates_tz", initial.tz) != tz:
                # The zone changed: the window stays the same instants (only how times are
                # shown changes), so the picker's dates are those of the window in the new zone;
                # read in it, the old zone's dates made another window (7 days became 8).
                cs, ce = st.session_state["f_custom"]
                st.session_state["f_dates"] = _dates_of(cs, ce, zone)
            st.session_state["f_dates_tz"] = tz
            dates = st.date_input("Dates (inclusive)", key="f_dates", format="YYYY-MM-DD")
            if isinstance(dates, (tuple, list)) and len(dates) == 2:
                start = datetime.combine(dates[0], time(0), zone).astimezone(UTC)
                end = datetime.combine(dates[1] + timedelta(days=1), time(0), zone
                                       ).astimezone(UTC)
                # Keep an exact window that came from a URL or a chart selection (not midnight).
                cs, ce = st.session_state["f_custom"]
                if _dates_of(cs, ce, zone) == tuple(dates):
                    start, end = cs, ce
            else:
                start, end = st.session_state["f_custom"]
            st.session_state["f_custom"] = (start, end)
            base = Filters(start=start, end=end, preset="custom", tz=tz)
            if (start.astimezone(zone).time(), end.astimezone(zone).time()) != (time(0), time(0)):
                # the picker shows whole days; say which instants the window holds
                st.caption(f"Exactly {start.astimezone(zone):%Y-%m-%d %H:%M} → "
                           f"{end.astimezone(zone):%Y-%m-%d %H:%M}")
        else:
            base = Filters.last(preset, now)
            base = Filters(start=base.start, end=base.end, preset=preset, tz=tz)
            # Switching to "Custom" starts from this window, exactly (its whole days reached
            # into the future, and the Overview showed a drop that was not there).
            st.session_state["f_custom"] = (base.start, base.end)
            st.session_state["f_dates"] = _dates_of(base.start, base.end, zone)
            st.session_state["f_dates_tz"] = tz
        values = dict(st.session_state.get("f_other", {}))
        for key, column in DIMENSIONS.items():
            known = _dimension_values(engine, engine.version, column, MAX_LISTED_VALUES + 1)
            capped = len(known) > MAX_LISTED_VALUES  # (it stopped at 5,000, saying nothing)
            selected = st.session_state.get(f"f_{key}", [])
            st.multiselect(
                DIM_LABELS[key], list(dict.fromkeys(selected + known[:MAX_LISTED_VALUES])),
                key=f"f_{key}", placeholder="All" if not capped else "All (type to add any)",
                accept_new_options=capped,
                # values from logs: their bidi controls shown as escapes ("evil\u202e…" read
                # reversed); the values themselves, and so the URL and the filter, are as logged
                format_func=widgets.shown_str,
                help=f"The {MAX_LISTED_VALUES:,} values with the most requests are listed; "
                     "type another to filter on it." if capped else None)
            if st.session_state[f"f_{key}"]:
                values[column] = st.session_state[f"f_{key}"]
        for column in list(st.session_state.get("f_other", {})):
            # (a link's text: inert, the key too: an attribute key "__v__" read as a bold "v")
            label = widgets.md_escape(key_for_column(column))
            shown = widgets.md_escape(", ".join(values[column]))
            if st.button(f"✕ {label} = {shown}", key=f"f_rm_{column}",
                         help="Remove this filter (it came from a link or a drill-down)"):
                st.session_state["f_other"].pop(column)
                values.pop(column)
                st.rerun()
        st.caption(f"Times shown in **{tz}**.")

    filters = Filters(start=base.start, end=base.end, preset=base.preset, tz=tz,
                      values=tuple(sorted((c, tuple(sorted(v))) for c, v in values.items())))
    st.session_state["_current_filters"] = filters
    sync_query(filters)
    return filters


def link_slot() -> None:
    """The sidebar's place for :func:`exact_window_link` (below whatever app.py put under the
    filters): filled once the page has run, as the link holds the page's settings."""
    st.session_state["_link_slot"] = st.sidebar.empty()


def exact_window_link() -> None:
    """Under the sidebar's filters, for a moving window ("Last 7 days"): a link to its exact
    instants with the page's settings, for sharing (a shared "Last 7 days" shows other numbers
    next week). Called before the page runs (its empty state may stop the run) and again
    after (with the settings the page wrote)."""
    filters, slot = (st.session_state.get("_current_filters"),
                     st.session_state.get("_link_slot"))
    if filters is None or slot is None or filters.preset == "custom":
        return
    query = {k: st.query_params.get_all(k) for k in st.query_params}
    query.update(filters.pinned().to_query())
    slot.caption(f"[Link to this exact window](?{urlencode(query, doseq=True)}), for sharing: "
                 "it will show the same requests next week.")


def current() -> Filters:
    """The filters the sidebar built on this run. Every page calls this first, so it is also
    where a page started outside app.py's navigation is sent back through it."""
    ensure_entrypoint()
    f = st.session_state.get("_current_filters")
    if f is None:  # a page run on its own (tests): fall back to the URL
        f = Filters.from_query(_query_dict(), datetime.now(UTC))
    return f


def sync_query(filters: Filters) -> None:
    """Make the URL's filter keys equal ``filters`` (page-specific keys are left alone)."""
    wanted = filters.to_query()
    current = {key: st.query_params.get_all(key) for key in st.query_params.keys()}
    new = {k: v for k, v in current.items() if not (_is_filter_key(k) and k not in wanted)}
    new.update(wanted)
    if new != current:
        # One change of the URL, not one per key: the browser gets a history entry for each,
        # and Back then stepped through them one by one.
        st.query_params.from_dict({k: v if len(v) > 1 else v[0] for k, v in new.items()})
    st.session_state[SYNCED_QUERY] = url_filters_query()


def _dates_of(start: datetime, end: datetime, zone: ZoneInfo) -> tuple[date, date]:
    """The first and last day (inclusive, in ``zone``) of the window ``[start, end)``: what the
    date picker shows for it."""
    return start.astimezone(zone).date(), (end - timedelta(microseconds=1)).astimezone(zone).date()


def url_filters_query() -> dict[str, list[str]]:
    """The URL's filter keys and their values."""
    return {k: v for k, v in _query_dict().items() if _is_filter_key(k)}


def _is_filter_key(key: str) -> bool:
    return key in TIME_KEYS or column_for_key(key) is not None


def set_window(start: datetime, end: datetime) -> None:
    """Switch the global window to an exact custom range (used by drill-downs)."""
    st.session_state["f_range"] = "custom"
    zone = ZoneInfo(st.session_state.get("f_tz", "UTC"))
    st.session_state["f_dates"] = _dates_of(start, end, zone)
    st.session_state["f_custom"] = (start, end)
    st.session_state["f_dates_tz"] = st.session_state.get("f_tz", "UTC")


def add_filter(column: str, values: list[str]) -> None:
    """Add a filter on any column or attribute key (used by drill-downs and 'filter on this')."""
    for key, col in DIMENSIONS.items():
        if col == column:
            st.session_state[f"f_{key}"] = list(values)
            return
    st.session_state.setdefault("f_other", {})[column] = list(values)
