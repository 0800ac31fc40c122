"""Shared widgets: cached metric calls, KPI tiles, charts with downloads, empty states, banners."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from lib import charts, formatting, pricing
from lib.filters import Filters
from lib.store import Engine, store_option
from lib.ui import freshness, navigation

_METRICS: dict[str, Callable] = {}


@st.cache_data(ttl=600, show_spinner=False, max_entries=500)
def _cached_call(name: str, root: str, version: str, key: str, args: tuple, kwargs: tuple,
                 prices: tuple, _engine: Engine, _filters: Filters):
    return _METRICS[name](_engine, _filters, *args, **dict(kwargs))


def cached(fn: Callable, engine: Engine, filters: Filters, *args, **kwargs):
    """``fn(engine, filters, *args, **kwargs)``, cached per (store version, filters, arguments,
    price overrides file).

    Results, not raw rows, are cached: metric functions return small aggregated frames. The
    Cost page's token mix, cache savings and what-if price stored tokens at the current prices:
    keyed on the store alone, a prices.yaml edit showed there only once the cache expired.
    """
    name = f"{fn.__module__}.{fn.__qualname__}"
    _METRICS[name] = fn
    return _cached_call(name, str(engine.lake.root), engine.version, repr(filters), args,
                        tuple(sorted(kwargs.items())), pricing.overrides_stamp(), engine, filters)


def kpi_tiles(frame: pl.DataFrame, columns: int = 4, compare: bool = True) -> None:
    """KPI tiles from :func:`lib.metrics.overview.kpis`: value and change vs the previous period
    (no change when ``compare`` is false: the previous period is not comparable)."""
    rows = frame.to_dicts()
    for start in range(0, len(rows), columns):
        cols = st.columns(columns)
        for col, row in zip(cols, rows[start:start + columns]):
            with col:
                d = (formatting.delta(row["value"], row["previous"], row["unit"]) if compare
                     else None)
                helps = f"Previous period: {formatting.by_unit(row['previous'], row['unit'])}"
                # A rate's change whose 95% interval holds 0 is drawn grey: noise, not news
                noise = row.get("change_low") is not None and \
                    row["change_low"] <= 0 <= row["change_high"]
                if row.get("change_low") is not None and row["unit"] == "count":
                    high = "+∞" if row["change_high"] == float("inf") \
                        else f"{row['change_high']:+.0%}"
                    helps += (f". 95% interval of the change: {row['change_low']:+.0%} to "
                              f"{high}" + (": within noise." if noise else "."))
                elif row.get("change_low") is not None and row["unit"] == "ms":
                    high = "+∞" if row["change_high"] == float("inf") \
                        else f"{row['change_high']:+.0%}"
                    helps += (". The two periods' 95% intervals of their p95 allow a change "
                              f"from {row['change_low']:+.0%} to {high}"
                              + (": within noise." if noise else "."))
                elif row.get("change_low") is not None:
                    # (two decimals where one would round a bound to 0: "+0.0 to +0.4")
                    places = 2 if min(abs(row["change_low"]), abs(row["change_high"])) < 0.0005 \
                        else 1
                    helps += (f" ({row['previous_n']:,} against {row['n']:,} now). 95% interval "
                              f"of the change: {100 * row['change_low']:+.{places}f} to "
                              f"{100 * row['change_high']:+.{places}f} points"
                              + (": within noise." if noise else "."))
                if row.get("caveat"):  # a change that cannot be read as news: not coloured
                    helps += f". {row['caveat']}."
                # (a change that rounds to nothing is no news either: "+0.0%" was drawn red)
                unchanged = d is not None and d.lstrip("+-") in ("0.0%", "0.00 pp")
                st.metric(
                    row["label"], formatting.by_unit(row["value"], row["unit"]), d,
                    delta_color="off" if noise or row.get("caveat") or unchanged else
                    "normal" if row["higher_is_better"] else "inverse",
                    help=helps, border=True,
                )


def downloads(frame: pl.DataFrame | Callable[[], pl.DataFrame], name: str, key: str, *,
              windowed: bool = True, filters: Filters | None = None) -> None:
    """CSV and Parquet downloads of exactly the data behind a chart or table (``frame``, or a
    function that makes it when a download is clicked: a list longer than what is shown), its
    times in the zone the page shows (with their UTC offset, as "2026-11-23T19:04:18-0500").
    The file is named after the sidebar's window (:func:`file_stem`), or ``filters``' when the
    data is of another window (Explore's), unless ``windowed`` is false: data the window does
    not select (the Data page's) would pass for that window's.
    The CSV's text that a spreadsheet would run as a formula is made inert
    (:func:`lib.formatting.csv_safe`)."""
    made = frame if callable(frame) else lambda: frame
    # Read now: a download is made on click, in a thread that sees no session state.
    zone = shown_zone()
    name = file_stem(name, None if not windowed else filters
                     or st.session_state.get("_current_filters"))

    def make() -> pl.DataFrame:
        return in_shown_zone(made(), zone)

    row = st.container(horizontal=True, gap="small")
    with row:
        st.download_button("CSV", lambda: formatting.csv_safe(make()).write_csv(),
                           file_name=f"{name}.csv",
                           mime="text/csv", key=f"{key}_csv", icon=":material/download:",
                           on_click="ignore", type="tertiary")

        def parquet() -> bytes:
            buf = io.BytesIO()
            make().write_parquet(buf)
            return buf.getvalue()

        st.download_button("Parquet", parquet, file_name=f"{name}.parquet",
                           mime="application/vnd.apache.parquet", key=f"{key}_pq",
                           icon=":material/download:", on_click="ignore", type="tertiary")


def file_name_part(text: str) -> str:
    """``text`` in a file name's characters on every system, at most 40 of them."""
    import re

    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-.")[:40] or "-"


def file_name_value(text: str) -> str:
    """A value from the logs (a version, a metric) as part of a download's name: ``text`` in
    :func:`file_name_part`'s characters, with a short hash of it when that changed it, so two
    promptfoo prompt labels alike in their first 40 characters keep two names. As it was, a
    prompt's whole text went into the name twice (855 characters, slashes and newlines)."""
    import hashlib

    safe = file_name_part(text)
    if safe == text:
        return safe
    return f"{safe}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def file_stem(name: str, filters: Filters | None) -> str:
    """A download's file name without its extension: ``name``, the sidebar's window in its
    zone and its filters ("spend_by_model_2026-11-20T0300_2026-11-27T0300_UTC_feature-chat"),
    so two weeks' files, or two features', neither overwrite nor pass for each other. Filters
    past 80 characters are a short hash of them ("filters-1a2b3c4d")."""
    if filters is None:
        return name
    fmt = "%Y-%m-%dT%H%M"
    start, end = (charts.local_time(t, filters.tz).strftime(fmt)
                  for t in (filters.start, filters.end))
    stem = f"{name}_{start}_{end}_{filters.tz.replace('/', '-')}"
    if not filters.values:
        return stem
    import hashlib

    safe = file_name_part
    part = "_".join(f"{safe(column)}-{'+'.join(safe(v) for v in values)}"
                    for column, values in filters.values)
    digest = hashlib.sha256(repr(filters.values).encode()).hexdigest()[:8]
    if len(part) > 80:
        return f"{stem}_filters-{digest}"
    # a value the name could not spell ("聊天", "a/b", 41 characters): two such filters would
    # share a name but for their hash
    lossy = any(safe(v) != v for _, values in filters.values for v in values)
    return f"{stem}_{part}-{digest}" if lossy else f"{stem}_{part}"


def shown_zone() -> str:
    """The zone the sidebar shows times in (UTC before the sidebar has run)."""
    current = st.session_state.get("_current_filters")
    return getattr(current, "tz", "UTC")


def in_shown_zone(frame: pl.DataFrame, zone: str) -> pl.DataFrame:
    """``frame`` with its zoned times in ``zone``: a download's times as on the page (a table's
    "19:04" was "00:04+0000" in its CSV, another date once in a spreadsheet)."""
    zoned = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime) and t.time_zone]
    return frame.with_columns(pl.col(zoned).dt.convert_time_zone(zone)) if zoned else frame


def chart(fig: go.Figure, data: pl.DataFrame, *, key: str, name: str, on_select: bool = False,
          filters: Filters | None = None):
    """Show a Plotly figure with downloads of its data. With ``on_select`` the selection
    (box or points) is returned for drill-down, else None."""
    event = st.plotly_chart(fig, key=key, on_select="rerun" if on_select else "ignore",
                            selection_mode=("box", "points") if on_select else ("points",),
                            config={"displaylogo": False})
    downloads(data, name, key, filters=filters)
    return event if on_select else None


def empty_state(title: str, body: str, command: str | None = None) -> None:
    """Say what is missing and what to do about it."""
    with st.container(border=True):
        st.markdown(f"**{title}**")
        st.markdown(body)
        if command:
            st.code(command, language="bash")


def no_requests_in_window(engine: Engine, filters: Filters, page: str) -> None:
    """The empty state of a window without requests, then stop the page. When requests match
    the sidebar's other filters at other times, a button opens ``page`` on the days they span:
    "widen the time range" cannot help a store whose requests are all from 2021."""
    with st.container(border=True):
        st.markdown("**No requests in this window**")
        requests_elsewhere(engine, filters, page,
                           "Nothing matches the time range and filters in the sidebar. ")
    st.stop()


def requests_elsewhere(engine: Engine, filters: Filters, page: str, lead: str = "",
                       key: str = "show_days") -> None:
    """Say where the requests matching ``filters`` (but not their window) are, after ``lead``,
    with a button that opens ``page`` on the whole days they span in the sidebar's zone; or,
    when none are anywhere, to widen the range or clear filters."""
    from lib.metrics import overview

    n, first, last = cached(overview.requests_span, engine, filters)
    span = n and window_caption(first, last, filters.tz, to_the_minute=True)
    st.markdown(lead + ("Widen the time range or clear some filters." if not n else
                        f"{formatting.plural(n, 'request')} with these filters "
                        f"{'is' if n == 1 else 'are'} from "
                        f"{md_escape(span)}:"))
    if n:
        zone = ZoneInfo(filters.tz)
        # whole days in the sidebar's zone, as its date picker reads them
        start = datetime.combine(first.astimezone(zone).date(), time(0), zone)
        end = datetime.combine(last.astimezone(zone).date() + timedelta(days=1), time(0), zone)
        days = filters.with_window(start.astimezone(UTC), end.astimezone(UTC))
        # A button, not a link: a link to the page it is on left the old window in the address
        # bar, so a reload or a copied link showed the empty window again.
        if st.button("Show those days", key=key, icon=":material/date_range:",
                     help=f"Opens {window_caption(days.start, days.end, filters.tz)}"):
            open_page(page, days)


def stop_if_no_requests(engine: Engine, why: str) -> None:
    """On a store without requests, say what to run (``why`` says what the page needs) and stop
    the page."""
    if engine.row_count("requests") == 0:
        opt = store_option(engine.lake.root)
        empty_state("No requests in the store yet",
                    f"{why} Ingest your logs, or write the demo data:",
                    f"python -m lib ingest path/to/logs/{opt}\npython -m lib demo{opt}")
        evals = engine.row_count("evals")
        if evals:  # (a store of eval results alone: they are on the Quality page)
            shown = st.session_state.get("_current_filters")
            page_link("pages/quality.py", f"The store has {formatting.plural(evals, 'eval')}: "
                      "see them on the Quality page", shown.to_query() if shown else {},
                      icon=":material/fact_check:")
        st.stop()


def freshness_note(engine: Engine, filters: Filters) -> None:
    """A warning when no request at all has arrived for the end of the window (a stalled
    pipeline would otherwise read as a drop in traffic, and lower a projection)."""
    from lib.metrics import overview

    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)  # (cached a minute, with the page's results)
    last, ahead, latest = cached(overview.arrivals, engine, filters, minute)
    if ahead:
        at = charts.local_time(latest, filters.tz).strftime("%Y-%m-%d %H:%M")
        st.info(f"{formatting.plural(ahead, 'request is', 'requests are')} stamped after now, "
                f"the latest at **{at}** ({filters.tz}): a logger's clock is ahead of time. "
                "They count in the windows that reach their times.",
                icon=":material/update:")
    if overview.stale_gap(last, filters, now) is not None:
        at = charts.local_time(last, filters.tz).strftime("%Y-%m-%d %H:%M")
        # how long before the window's end (or before now, for a window still running)
        since = (f"{formatting.duration(now - last)} ago" if filters.end >= now else
                 f"{formatting.duration(filters.end - last)} before the window's end")
        st.warning(
            f"No request has arrived since **{at}** ({filters.tz}), {since}: the end of the "
            "window is empty, and its totals, charts and changes count that as no traffic. If "
            "logs should be arriving, check the ingest (the Data page lists the latest "
            "batches).", icon=":material/schedule:")


def demo_banner(batch_ids: list[str], root) -> None:
    """Says the store holds demo data, and how to take it out (``batch_ids``: its batches, in
    the store at ``root``)."""
    opt = store_option(root)
    removal = "; ".join(f"`python -m lib remove {b}{opt}`" for b in batch_ids)
    st.info("You are looking at **demo data** (generated on first start). Ingest your own logs "
            f"with `python -m lib ingest PATH{opt}`; take the demo data out with {removal} "
            # (SIGHTLINE_DEMO=0 only keeps an empty store empty: restarting with it on this
            # store, as "or start on an empty store with SIGHTLINE_DEMO=0" read, changed nothing)
            "(`SIGHTLINE_DEMO=0` keeps a new, empty store from being seeded).",
            icon=":material/science:")


def problems_banner(engine: Engine) -> None:
    """Unreadable files in the lake, named by path (never a traceback)."""
    problems = engine.problems()
    if problems:
        with st.expander(f"⚠️ {len(problems)} unreadable file(s) in the store are skipped"):
            for p in problems[:50]:
                st.text(shown_str(p))


# -- added for the analysis pages (cost, latency, quality, explore, request) --------------------
def query_value(param: str, default: str | None = None) -> str | None:
    """A page-specific URL key's value (first one), or ``default``."""
    v = st.query_params.get(param)
    return default if v in (None, "") else v


def url_moved(key: str, param: str) -> bool:
    """True when widget ``key`` takes its value from the URL key ``param``: on its first run, and
    when the URL's value changed since the page last wrote or read it (the browser's Back or
    Forward), which the widget then follows instead of writing its own state back over it."""
    seen = st.session_state.get(f"_url_seen_{key}", _UNSEEN)
    return key not in st.session_state or (seen is not _UNSEEN
                                           and seen != st.query_params.get(param))


def kept_value(key: str, param: str) -> str | None:
    """The value widget ``key`` last had in this session, when the page is opened anew (its
    widget state went with the page) from a URL without ``param``: a link from another page
    carries only the filters, and a Latency objective of 5 s was back at 2 s after a visit to
    the Overview. It is what the sidebar's link to the page carries
    (:func:`lib.ui.navigation.remember_setting`). A link that has the key, and Back or Forward
    within the page, win."""
    if param in st.query_params or key in st.session_state:
        return None
    return navigation.setting(param)


def url_seen(key: str, param: str) -> None:
    """Record the URL's value of ``param`` after widget ``key`` wrote it (see :func:`url_moved`)."""
    st.session_state[f"_url_seen_{key}"] = st.query_params.get(param)


_UNSEEN = object()


def query_selectbox(label: str, options: list, param: str, default=None, *,
                    format_func: Callable = str, key: str | None = None, **kw):
    """A selectbox whose value is kept in the URL key ``param`` (read on first run and after Back
    or Forward, written when it is not the default or the URL has the key) so a copied link
    reproduces it."""
    key = key or f"qp_{param}"
    if url_moved(key, param):
        wanted = query_value(param, None) or kept_value(key, param)
        match = [o for o in options if str(o) == wanted]
        st.session_state[key] = match[0] if match else (default if default in options
                                                        else (options[0] if options else None))
        if not match and query_value(param, None) is not None and options:
            # (a link's value that is not offered was passed over without a word, as the
            # sidebar's filters are not: review)
            st.warning(f"This link's {md_escape(label.lower())} "
                       f"“{md_escape(formatting.cut(wanted, 60))}” is not one of the choices "
                       # (quoted: a choice's label is capitalised, and read mid-sentence)
                       f"here: showing “{md_escape(format_func(st.session_state[key]))}”.",
                       icon=":material/link_off:")
    elif st.session_state[key] not in options and options:
        st.session_state[key] = default if default in options else options[0]
    value = st.selectbox(label, options, key=key, format_func=format_func, **kw)
    first = default if default in options else (options[0] if options else None)
    # A default not yet in the URL is not written: each write is a browser history entry,
    # which Back would have to step through. Nor is the default that replaced a URL value no
    # longer offered (versions of another source): the link still opens this view, and one
    # change of a setting made three entries.
    url = st.query_params.get(param)
    stale = url is not None and url not in {str(o) for o in options}
    if value is not None and url != str(value) and \
            (param in st.query_params or value != first) and not (stale and value == first):
        st.query_params[param] = str(value)
    url_seen(key, param)
    navigation.remember_setting(param)
    return value


def query_text(label: str, param: str, default: str = "", *, key: str | None = None, **kw
               ) -> str:
    """A text input kept in the URL key ``param`` (removed from the URL when empty)."""
    key = key or f"qp_{param}"
    if url_moved(key, param):
        st.session_state[key] = query_value(param, default) or ""
    value = st.text_input(label, key=key, **kw)
    if value:
        if st.query_params.get(param) != value:
            st.query_params[param] = value
    elif param in st.query_params:
        del st.query_params[param]
    url_seen(key, param)
    return value


def query_number(label: str, param: str, default: float, *, key: str | None = None, **kw
                 ) -> float:
    """A number input kept in the URL key ``param``."""
    key = key or f"qp_{param}"
    if url_moved(key, param):
        try:
            number = float(query_value(param, None) or kept_value(key, param) or default)
        except (TypeError, ValueError):
            number = float(default)
        # a link's "nan" or "inf" is a float too: an objective of nan counted every request
        # as within it ("Within –: 100.0%") under an empty input
        st.session_state[key] = number if math.isfinite(number) else float(default)
    value = st.number_input(label, key=key, **kw)
    text = f"{value:g}"
    if st.query_params.get(param) != text and (param in st.query_params or value != default):
        st.query_params[param] = text
    url_seen(key, param)
    navigation.remember_setting(param)
    return value


def export_downloads(export: Callable[[str], str], name: str, key: str,
                     filters: Filters | None = None) -> None:
    """CSV and Parquet downloads of a result too large to hold as a frame: ``export(fmt)`` writes
    it to a file (e.g. streamed from DuckDB) and returns the path; it runs only on click and
    nothing is capped. Named after ``filters``' window and values (:func:`file_stem`) when given:
    the rows are of that window (Explore's), which may not be the sidebar's."""
    name = file_stem(name, filters)
    def reader(fmt: str):
        def read():
            path = export(fmt)
            try:
                with open(path, "rb") as fh:
                    return fh.read()
            finally:
                import os

                os.unlink(path)
        return read

    row = st.container(horizontal=True, gap="small")
    with row:
        st.download_button("CSV (all rows)", reader("csv"), file_name=f"{name}.csv",
                           mime="text/csv", key=f"{key}_csv", icon=":material/download:",
                           on_click="ignore", type="tertiary")
        st.download_button("Parquet (all rows)", reader("parquet"), file_name=f"{name}.parquet",
                           mime="application/vnd.apache.parquet", key=f"{key}_pq",
                           icon=":material/download:", on_click="ignore", type="tertiary")


def time_axis(filters: Filters, bucket_s: int, start=None, end=None, now=None) -> dict:
    """The x axis every time chart of a page takes (``window``, ``bucket_s``, ``tz``), so charts
    side by side line up: the window ``[start, end)`` (default: the filters'), drawn and read
    back in :func:`lib.charts.chart_zone`'s zone, which a caption explains when it is not the
    sidebar's. A window that has not ended at ``now`` (default: the clock's) is drawn to now:
    the hours to come drew as hours without traffic, and the bucket now is in, a quarter
    of it past, as a whole one (not paler): a drop that was not there (found in review)."""
    start, end = start or filters.start, end or filters.end
    now = now or datetime.now(UTC)
    if start < now < end:
        end = now
    zone = charts.chart_zone(filters.tz, start, end, bucket_s)
    if zone != filters.tz:
        st.caption(f"Charts are drawn at {charts.zone_label(zone)}, the offset of "
                   f"{md_escape(filters.tz)} at the window's end: the clocks went back in this "
                   "window, and the hour that happened twice would put two buckets at one "
                   "time. Tables, and charts of other windows, show times in the sidebar's "
                   "zone.")
    return dict(window=(start, end), bucket_s=bucket_s, tz=zone)


def unpriced_note(unpriced: int, bars: str = "bars") -> str:
    """A caption's sentence saying that ``unpriced`` requests are not in the cost ``bars``
    ("" when there are none)."""
    are = "is" if unpriced == 1 else "are"
    return (f" {formatting.plural(unpriced, 'request')} without a price {are} not in the "
            f"{bars}: their cost is unknown, not $0 (see the Data page)." if unpriced else "")


def shown_text(frame):
    """``frame`` (a Polars frame; anything else as it is) with the bidi controls
    (:data:`lib.formatting.BIDI_CONTROLS`; the marks right-to-left text needs stay) in its
    text columns written as escapes (``\\u202e``), as a table shows it; the downloads keep the
    text as logged."""
    if not isinstance(frame, pl.DataFrame):
        return frame
    texts = [c for c, t in frame.schema.items() if t == pl.String]
    exprs = []
    for c in texts:
        e = pl.col(c)
        for ch in formatting.BIDI_CONTROLS:
            e = e.str.replace_all(ch, f"\\u{ord(ch):04x}", literal=True)
        exprs.append(e)
    return frame.with_columns(exprs) if exprs else frame


def shown_str(value) -> str:
    """``value`` as text with its bidi controls written as escapes, as :func:`shown_text` writes
    a table's: for text from logs shown outside a table (a selectbox's ``format_func``, a batch's
    note, a path), where "report\u202egnp.jsonl" would read as "reportlnosj.png"."""
    text = str(value)
    for ch in formatting.BIDI_CONTROLS:
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text


def dataframe(data, **kwargs):
    """``st.dataframe`` of :func:`shown_text` of ``data``: every table of log values."""
    return st.dataframe(shown_text(data), **kwargs)


def md_escape(text) -> str:
    """Text from logs made inert for Streamlit markdown (no formatting, links or HTML), on one
    line. A bare URL is linked after escapes are read (GFM's autolinks), so a zero-width space
    goes after its scheme or "www", which no longer reads as a link and looks the same. Bidi
    controls are shown as escapes (:func:`shown_str`): a caption's "model = x\u202e…" read
    backwards. So are line breaks and other control characters (``\\n``), as the pages'
    caption of the filters writes them: a value's blank line ended the sentence's paragraph,
    and the Request page's header "model **gpt-4o\\n\\n    x**" became a code block between
    two stray "**". An "&" is escaped too: markdown reads entities, and a model logged as
    "&lt;b&gt;" was shown as "<b>"."""
    import re

    text = re.sub(r"[\x00-\x1f\x7f-\x9f]",
                  lambda m: m.group().encode("unicode_escape").decode("ascii"), shown_str(text))
    text = re.sub(r"(?i)(\b(?:https?|ftp)):(?=//)|(\bwww)(?=\.)",
                  lambda m: (m[1] + "\u200b:") if m[1] else m[2] + "\u200b", text)
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])", r"\\\1", text)


def md_escape_lines(text) -> str:
    """:func:`md_escape` of each line of ``text``, the lines kept apart (a hard line break):
    for a message of ours over several lines that quotes the user's text (a YAML error)."""
    return "  \n".join(md_escape(line) for line in str(text).splitlines())


def window_caption(start, end, tz: str, to_the_minute: bool = False) -> str:
    """'2026-10-24 10:00 → 2026-10-24 11:00 Europe/Berlin': the window in zone ``tz``, to the
    minute, or to the second when either end is not on a minute (a window from 10:00:30 read
    "10:00" while the request at 10:00:00 was left out of it, found in review), unless
    ``to_the_minute`` (the span of some requests' times, not a window's bounds)."""
    from zoneinfo import ZoneInfo

    whole = to_the_minute or all(t.second == 0 and t.microsecond == 0 for t in (start, end))
    fmt = "%Y-%m-%d %H:%M" if whole else "%Y-%m-%d %H:%M:%S"
    z = ZoneInfo(tz)
    return f"{start.astimezone(z).strftime(fmt)} → {end.astimezone(z).strftime(fmt)} {tz}"


def for_display(frame: pl.DataFrame, whole: tuple[str, ...] = ()) -> pl.DataFrame:
    """``frame`` as a table shows it: the ``whole`` columns (milliseconds, tokens per second)
    rounded to integers, so a "localized" format gives them thousands separators and no
    decimals ("16,923", not "16923" or "16,923.5"), and missing text as "" rather than
    Streamlit's "None". Downloads keep the frame as computed."""
    return frame.with_columns(
        *[pl.col(c).round(0) for c in whole if c in frame.columns],
        pl.col(pl.String).fill_null(""))


def request_query(request_id: str, ts=None) -> dict[str, str]:
    """The Request page's URL keys for one request: its id, and its time (``at``) when known,
    which picks it among requests stored under one id (lib.metrics.requests.namesakes)."""
    return {"request": request_id, **({"at": request_at(ts)} if ts is not None else {})}


def request_at(ts) -> str:
    """A request's time as the Request page's ``at`` URL key: UTC, to the microsecond."""
    from datetime import UTC

    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def request_choices(frame: pl.DataFrame, tz: str) -> tuple[list[tuple], Callable]:
    """The options of a selectbox that opens one of ``frame``'s requests, one a row:
    ``(request_id, ts)``, and their labels: the id, with its time in zone ``tz`` where the id is
    listed twice (a source's ids repeating days apart: by its id alone the link opened the newest
    request stored under it, and two like labels could not be told apart)."""
    from collections import Counter

    ids = frame["request_id"].to_list()
    counts = Counter(ids)
    zone = ZoneInfo(tz)

    def label(option: tuple) -> str:
        rid, ts = option
        return shown_str(rid) + (f" · {ts.astimezone(zone):%Y-%m-%d %H:%M:%S}"
                                 if counts[rid] > 1 else "")

    return list(zip(ids, frame["ts"].to_list(), strict=True)), label


def with_request_links(frame: pl.DataFrame, filters: Filters, at: str = "ts") -> pl.DataFrame:
    """``frame`` with a ``link`` column first: for each ``request_id``, the URL of the Request
    page on that request (at its time, the column ``at``, when the frame has it: an id may name
    two requests) with ``filters`` (relative, so it works behind any host or path)."""
    base = urlencode(freshness.link_query(filters), doseq=True)
    times = frame[at].to_list() if at in frame.columns else [None] * frame.height
    links = [f"request?{urlencode(request_query(rid, ts))}&{base}"
             for rid, ts in zip(frame["request_id"].to_list(), times, strict=True)]
    return frame.with_columns(pl.Series("link", links, pl.String)).select(
        ["link", *frame.columns])


def page_link(page: str, label: str, query_params: dict, icon: str | None = None) -> None:
    """``st.page_link`` to ``page`` (a file under pages/) with ``query_params``; a plain link
    when the page runs outside the app's navigation (its file run on its own, as tests do),
    where Streamlit knows no page to link to."""
    from streamlit.errors import StreamlitPageNotFoundError

    # (the auto-refresh too: a URL without it is a view without it, as Back to one must be)
    query_params = {**query_params, **freshness.url_query()}
    try:
        st.page_link(page, label=label, icon=icon, query_params=query_params)
    except StreamlitPageNotFoundError:
        name = page.rsplit("/", 1)[-1].removesuffix(".py")
        st.markdown(f"[{md_escape(label)}]({name}?{urlencode(query_params, doseq=True)})")


def explore_link(filters: Filters, start, end, metric: str = "error_rate") -> str:
    """The (relative) URL of Explore on the window ``[start, end)`` with ``filters``."""
    from lib.drilldown import window_param

    return "explore?" + urlencode({**freshness.link_query(filters),
                                   "window": window_param(start, end), "metric": metric},
                                  doseq=True)


LINK_COLUMN = st.column_config.LinkColumn(
    "Open", display_text="Open ↗", width="small",
    help="The request's own page, in a new tab; the link can be shared.")


# Session key: (request id, URL query) of the Explore view a request was opened from.
BACK_TO_EXPLORE = "_back_to_explore"


def open_page(page: str, filters: Filters, **params: str) -> None:
    """Switch to ``page`` with ``filters`` and page-specific URL keys in the query string.

    Streamlit 1.67's ``st.switch_page`` drops the sidebar's widget state; the sidebar rebuilds it
    from this URL, which carries the same filters, so the new page opens with the user's filters.
    """
    st.switch_page(page, query_params={**freshness.link_query(filters), **params})
