"""Keep Streamlit's legacy `pages/` auto-discovery from ever running a page on its own.

Streamlit starts every server in "pages directory" mode when a `pages/` folder sits beside the
entry script, and leaves it only once a run calls `st.navigation`. A first visit to a deep link
(say `/explore?...`, a shared URL) on a fresh server would therefore run `pages/explore.py`
directly, with the auto-discovered file list as navigation and without our sidebar filters.
Every page calls :func:`ensure_entrypoint` first: in that mode it switches the server to
`st.navigation` mode and reruns, so app.py runs and resolves the same URL to the same page.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def ensure_entrypoint() -> None:
    """Rerun through app.py if this page was started by the legacy pages/ discovery."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
