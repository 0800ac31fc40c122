"""The only package that imports Streamlit: the engine per server, filters, caching, widgets."""
