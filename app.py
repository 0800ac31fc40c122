"""Sightline: the Streamlit entry point. Sets up the page, the navigation and the global filters,
then runs the selected page (pages/*.py). Start it with `streamlit run app.py`."""

import streamlit as st

# An emoji, drawn by the browser: Streamlit fetches a ":material/…:" favicon from Google's font
# server, so every page view of a self-hosted dashboard asked an outside host (and showed no
# icon offline). The sidebar's material icons are the bundled font's.
st.set_page_config(page_title="Sightline", page_icon="📈", layout="wide")

from lib.ui import filters, freshness, navigation, store, theme  # noqa: E402  (set_page_config first)

theme.apply()

engine = store.refresh_for_run()

# Pages are declared here, explicitly; a page appears only once it exists.
# (served at /; it reserves a path of its own all the same, which must not be "overview")
OVERVIEW = st.Page("pages/overview.py", title="Overview", icon=":material/monitoring:",
                   url_path="home", default=True)


def _overview_by_its_name() -> None:
    """/overview, as the other pages have their names: the default page is served at / only,
    and a link to /overview (typed, or shared) opened a "Page not found" dialog."""
    st.switch_page(OVERVIEW, query_params={k: st.query_params.get_all(k)
                                           for k in st.query_params})


PAGES = {
    "Monitor": [
        OVERVIEW,
        st.Page(_overview_by_its_name, title="Overview", url_path="overview",
                visibility="hidden"),
        st.Page("pages/cost.py", title="Cost", icon=":material/payments:", url_path="cost"),
        st.Page("pages/latency.py", title="Latency", icon=":material/speed:",
                url_path="latency"),
        st.Page("pages/quality.py", title="Quality", icon=":material/verified:",
                url_path="quality"),
        st.Page("pages/drift.py", title="Drift", icon=":material/compare_arrows:",
                url_path="drift"),
    ],
    "Investigate": [
        st.Page("pages/explore.py", title="Explore", icon=":material/troubleshoot:",
                url_path="explore"),
        st.Page("pages/request.py", title="Request", icon=":material/article:",
                url_path="request"),
    ],
    "Operate": [
        st.Page("pages/data.py", title="Data", icon=":material/database:", url_path="data"),
    ],
}

# The sidebar's links are ours (lib/ui/navigation.py: they carry the filters and each page's
# settings, one browser history entry a page); the hidden alias is not listed.
NAV = {section: [p for p in pages if p.url_path != "overview"] for section, pages in PAGES.items()}
page = st.navigation(PAGES, position="hidden")
navigation.set_current_page(page)
nav = st.sidebar.empty()
# before the demo data is written on first start (half a minute): the sidebar lists the pages by
# their titles meanwhile, with the URL's filters; again once the sidebar has read them
navigation.sidebar_links(nav, NAV, {**filters.url_filters_query(), **freshness.url_query()})
store.ensure_demo_data()
current = filters.sidebar(engine)
refresh = freshness.picker()
freshness.computed_caption(current, refresh)
filters.link_slot()
# (the links carry the auto-refresh too: it holds on every page, as the filters do)
links_query = freshness.link_query(current)
navigation.sidebar_links(nav, NAV, links_query)
# a notice above the page once new data lands (or a rerun, when the auto-refresh is due)
freshness.watch(engine, current, refresh)
# The link to the exact window too, before the page runs: a page's empty state stops the run
# (st.stop), and what is drawn after that is dropped, so an empty "Last 7 days" had no link
filters.exact_window_link()
try:
    page.run()
finally:
    # again once the page has run, with the settings it wrote on this run (its own link was a
    # run behind); after a page's empty state (st.stop) what is drawn here is dropped, and the
    # links drawn before the page ran stay
    navigation.sidebar_links(nav, NAV, links_query)
    freshness.page_ran(engine)
filters.exact_window_link()
