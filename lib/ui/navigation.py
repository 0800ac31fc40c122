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


# -- the sidebar's links to the pages --------------------------------------------------------
# Streamlit's own navigation links carry no query: a click pushed the bare page's URL, then the
# sidebar pushed it again with the filters and the page its kept settings, two or three history
# entries a page, and Back stepped through them (a page whose settings were restored seemed to
# forget them). Links of our own carry the filters and the settings each page last had: one
# entry, and the page finds the URL it would write.
CURRENT_PAGE = "_nav_current_page"
PAGE_SETTINGS = "_nav_page_settings"  # {page title: {URL key: value}}


def set_current_page(page) -> None:
    """Record which page this run shows (its title), for :func:`remember_setting`."""
    st.session_state[CURRENT_PAGE] = page.title


def remember_setting(param: str) -> None:
    """Record the URL's value of the current page's setting ``param`` (after its widget wrote
    it; none when the URL has none), so the sidebar's link to the page carries it."""
    page = st.session_state.get(CURRENT_PAGE)
    if page is None:
        return
    settings = st.session_state.setdefault(PAGE_SETTINGS, {}).setdefault(page, {})
    value = st.query_params.get(param)
    if value is None:
        settings.pop(param, None)
    else:
        settings[param] = value


def setting(param: str) -> str | None:
    """The current page's setting ``param`` as :func:`remember_setting` last recorded it (None:
    its default, or none recorded)."""
    page = st.session_state.get(CURRENT_PAGE)
    return st.session_state.get(PAGE_SETTINGS, {}).get(page, {}).get(param)


def sidebar_links(slot, sections: dict[str, list], filters_query: dict) -> None:
    """The pages of ``sections`` ({section title: [st.Page]}) as links in ``slot`` (a
    ``st.sidebar.empty()``, filled again when the filters are known), each with
    ``filters_query`` and the settings its page last had."""
    settings = st.session_state.get(PAGE_SETTINGS, {})
    with slot.container():
        for section, pages in sections.items():
            st.caption(section)
            for page in pages:
                st.page_link(page, query_params={**filters_query,
                                                 **settings.get(page.title, {})})
        st.divider()
