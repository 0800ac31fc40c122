"""Shared widgets: cached metric calls, KPI tiles, charts with downloads, empty states, banners."""

from __future__ import annotations

import io
from collections.abc import Callable

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from lib import formatting
from lib.filters import Filters
from lib.store import Engine

_METRICS: dict[str, Callable] = {}


@st.cache_data(ttl=600, show_spinner=False, max_entries=500)
def _cached_call(name: str, root: str, version: str, key: str, args: tuple, kwargs: tuple,
                 _engine: Engine, _filters: Filters):
    return _METRICS[name](_engine, _filters, *args, **dict(kwargs))


def cached(fn: Callable, engine: Engine, filters: Filters, *args, **kwargs):
    """``fn(engine, filters, *args, **kwargs)``, cached per (store version, filters, arguments).

    Results, not raw rows, are cached: metric functions return small aggregated frames.
    """
    name = f"{fn.__module__}.{fn.__qualname__}"
    _METRICS[name] = fn
    engine.refresh()
    return _cached_call(name, str(engine.lake.root), engine.version, repr(filters), args,
                        tuple(sorted(kwargs.items())), engine, filters)


def kpi_tiles(frame: pl.DataFrame, columns: int = 4) -> None:
    """KPI tiles from :func:`lib.metrics.overview.kpis`: value and change vs the previous period."""
    rows = frame.to_dicts()
    for start in range(0, len(rows), columns):
        cols = st.columns(columns)
        for col, row in zip(cols, rows[start:start + columns]):
            with col:
                d = formatting.delta(row["value"], row["previous"], row["unit"])
                st.metric(
                    row["label"], formatting.by_unit(row["value"], row["unit"]), d,
                    delta_color="normal" if row["higher_is_better"] else "inverse",
                    help=f"Previous period: {formatting.by_unit(row['previous'], row['unit'])}",
                    border=True,
                )


def downloads(frame: pl.DataFrame, name: str, key: str) -> None:
    """CSV and Parquet downloads of exactly the data behind a chart or table."""
    c1, c2, _ = st.columns([1, 1, 6])
    with c1:
        st.download_button("CSV", lambda: frame.write_csv(), file_name=f"{name}.csv",
                           mime="text/csv", key=f"{key}_csv", icon=":material/download:",
                           on_click="ignore", type="tertiary")
    with c2:
        def parquet() -> bytes:
            buf = io.BytesIO()
            frame.write_parquet(buf)
            return buf.getvalue()

        st.download_button("Parquet", parquet, file_name=f"{name}.parquet",
                           mime="application/vnd.apache.parquet", key=f"{key}_pq",
                           icon=":material/download:", on_click="ignore", type="tertiary")


def chart(fig: go.Figure, data: pl.DataFrame, *, key: str, name: str, on_select: bool = False):
    """Show a Plotly figure with downloads of its data. With ``on_select`` the selection
    (box or points) is returned for drill-down, else None."""
    event = st.plotly_chart(fig, key=key, on_select="rerun" if on_select else "ignore",
                            selection_mode=("box", "points") if on_select else ("points",),
                            config={"displaylogo": False})
    downloads(data, name, key)
    return event if on_select else None


def empty_state(title: str, body: str, command: str | None = None) -> None:
    """Say what is missing and what to do about it."""
    with st.container(border=True):
        st.markdown(f"**{title}**")
        st.markdown(body)
        if command:
            st.code(command, language="bash")


def demo_banner() -> None:
    st.info("You are looking at **demo data** (generated on first start). Ingest your own logs "
            "with `python -m lib ingest PATH`, or start on an empty store with `SIGHTLINE_DEMO=0`.",
            icon=":material/science:")


def problems_banner(engine: Engine) -> None:
    """Unreadable files in the lake, named by path (never a traceback)."""
    problems = engine.problems()
    if problems:
        with st.expander(f"⚠️ {len(problems)} unreadable file(s) in the store are skipped"):
            for p in problems[:50]:
                st.text(p)
