"""One engine per Streamlit server process, and the first-start demo data."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import streamlit as st

from lib import demo, pricing
from lib.store import Engine, Lake, store_root
from lib.store.lake import removed_batches


def demo_enabled() -> bool:
    """First-start demo data is on unless SIGHTLINE_DEMO is 0/false/no/off."""
    return os.environ.get("SIGHTLINE_DEMO", "1").strip().lower() not in {"0", "false", "no", "off"}


@st.cache_resource(show_spinner=False)
def _engine_for(root: str) -> Engine:
    # One connection per process; queries take a cursor each (lib.store.engine).
    return Engine(Lake(root), memory_limit="1GB", auto_refresh=False)


def engine() -> Engine:
    """The process-wide engine for the configured store (SIGHTLINE_STORE or data/store).
    Its views move to the newest manifest version only in :func:`refresh_for_run`."""
    return _engine_for(str(store_root()))


def refresh_for_run() -> Engine:
    """Called once at the top of every script run (app.py): pick up new batches, then keep that
    version for the whole run so a page never mixes two versions of the lake: pinned for this
    run's thread, as another session's run (or a download) refreshes the one engine meanwhile."""
    eng = engine()
    eng.refresh()
    eng.pin()
    return eng


def ensure_demo_data() -> None:
    """On an empty store, generate the demo data once, with a progress indicator, and say so."""
    eng = engine()
    lake = eng.lake
    if not demo_enabled() or eng.commits():  # (as of this run's refresh; checked again below)
        return
    problem = pricing.overrides_problem()
    if problem:  # demo costs are priced like ingested ones: not at the wrong prices
        st.error(f"No demo data was generated: the price overrides cannot be read: {problem}")
        return
    lake.root.mkdir(parents=True, exist_ok=True)
    lock_path = Path(lake.root) / ".first-start.lock"
    with st.status("First start: generating 30 days of demo data…", expanded=True) as status:
        bar = st.progress(0.0, text="Waiting for another process that is generating demo data…")
        with open(lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # two servers starting at once write it only once
            try:
                if not lake.commits():
                    result = demo.write(lake, progress=lambda f, text: bar.progress(f, text=text))
                    st.write(f"Wrote {result.requests:,} requests, {result.evals:,} eval scores "
                             f"and {result.events} events in {result.seconds:.1f} s. "
                             "Each page's banner gives the command that takes it out "
                             "(`SIGHTLINE_DEMO=0` only keeps a new, empty store from being "
                             "seeded).")
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        bar.progress(1.0, text="Done")
        status.update(label="Demo data ready", state="complete", expanded=False)
    eng.refresh(force=True)


def live_demo_batches(eng: Engine) -> list[str]:
    """Ids of the demo batches live in the store (the app shows a banner while there is one):
    written, and not taken out since (``python -m lib remove``)."""
    commits = eng.commits()
    removed = removed_batches(commits)
    return [c.commit_id for c in commits
            if c.kind == "demo" and c.added and c.commit_id not in removed]
