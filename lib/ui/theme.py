"""Page-wide styling the theme in .streamlit/config.toml cannot express."""

import streamlit as st

# A KPI card's value is 2.25rem whatever room it has: five in a row on a 1,100 px laptop cut
# "$316.53" to "$3…". Scaled with the viewport (and never above Streamlit's own size), the values
# of a row of four to six cards fit from 1,100 px up; labels wrap rather than end in "…".
_CSS = """
<style>
[data-testid="stMetricValue"] { font-size: clamp(1.3rem, 2.3vw, 2.25rem); }
[data-testid="stMetricLabel"] p, [data-testid="stMetricLabel"] div {
  white-space: normal; overflow: visible; text-overflow: clip; }
</style>
"""


def apply() -> None:
    """Add the page-wide style (a style-only element takes no room on the page)."""
    st.html(_CSS)
