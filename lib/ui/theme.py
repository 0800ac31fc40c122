"""Page-wide styling the theme in .streamlit/config.toml cannot express."""

import streamlit as st

# A KPI card's value is 2.25rem whatever room it has: five in a row on a 1,100 px laptop cut
# "$316.53" to "$3…". Scaled with the card's own width (a container query: the viewport's width
# says nothing of the sidebar), never above Streamlit's own size, the values fit from a 1,024 px
# window with the sidebar open; labels wrap between words rather than end in "…".
_CSS = """
<style>
[data-testid="stMetric"] { container-type: inline-size; }
[data-testid="stMetricValue"] { font-size: clamp(1.05rem, 18cqi, 2.25rem); }
[data-testid="stMetricLabel"] p, [data-testid="stMetricLabel"] div {
  white-space: normal; overflow: visible; text-overflow: clip; word-break: normal;
  overflow-wrap: normal; }
</style>
"""


def apply() -> None:
    """Add the page-wide style (a style-only element takes no room on the page)."""
    st.html(_CSS)
