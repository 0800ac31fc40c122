"""Sightline: the Streamlit entry point. Sets up the page, the navigation and the global filters,
then runs the selected page (pages/*.py). Start it with `streamlit run app.py`."""

import streamlit as st

st.set_page_config(page_title="Sightline", page_icon=":material/monitoring:", layout="wide")

from lib.ui import filters, store  # noqa: E402  (set_page_config must come first)

engine = store.engine()
store.ensure_demo_data()

# Pages are declared here, explicitly; a page appears only once it exists.
PAGES = {
    "Monitor": [
        st.Page("pages/overview.py", title="Overview", icon=":material/monitoring:",
                url_path="overview", default=True),
    ],
    "Operate": [
        st.Page("pages/data.py", title="Data", icon=":material/database:", url_path="data"),
    ],
}

page = st.navigation(PAGES)
filters.sidebar(engine)
page.run()
