"""Taelio's dashboard: ``streamlit run app.py``.

Builds the engine once, draws the shared sidebar (mode, data filter, log
location), then runs the page chosen in the navigation.
"""
from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Taelio", page_icon=":material/alt_route:", layout="wide")

from ui.engine import get_engine  # noqa: E402 - set_page_config must come first
from ui.sidebar import render_sidebar  # noqa: E402

PAGES = [
    st.Page("pages/generate.py", title="Generate", icon=":material/auto_awesome:", default=True),
    st.Page("pages/costs.py", title="Costs & budgets", icon=":material/payments:"),
    st.Page("pages/health.py", title="Health", icon=":material/monitor_heart:"),
    st.Page("pages/calls.py", title="Calls", icon=":material/list_alt:"),
]

page = st.navigation(PAGES)
engine = get_engine()
render_sidebar(engine)
page.run()
