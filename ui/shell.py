"""The app shell every page runs inside: page config, navigation links and the shared sidebar.

``app.py`` calls ``run_app()``: it configures the page, registers the pages
with ``st.navigation`` (``ui.navigation``), draws the sidebar (Streamlit's
own page list is hidden in ``.streamlit/config.toml``; our links are drawn
here) and runs the chosen page.

Pages open with ``get_engine()``. When Streamlit ran the page file alone
(before any ``st.navigation`` call in this process it still follows the
``pages/`` folder convention: see ``ui.navigation``), ``get_engine`` draws the
same shell first, so the page looks and works exactly as under ``app.py``.
The shell needs no name for the page it runs: the pages that read the log
through the sidebar's filter draw it there themselves (``ui.sidebar``).
"""
from __future__ import annotations

import streamlit as st

from taelio_core.wiring import Taelio
from ui.cache import open_engine
from ui.navigation import PAGES, inside_app, navigation, running_inside_app
from ui.sidebar import render_sidebar

__all__ = ["PAGES", "get_engine", "run_app"]


def _draw() -> None:
    st.set_page_config(page_title="Taelio", page_icon=":material/alt_route:", layout="wide")
    engine = open_engine()
    with st.sidebar:
        st.markdown("### :material/alt_route: Taelio")
        for path, title, icon in PAGES:
            st.page_link(path, label=title, icon=icon)
        st.divider()
    render_sidebar(engine)


def run_app() -> None:
    """For ``app.py``: configure, register the pages, draw the sidebar, run the chosen page."""
    page = navigation()
    _draw()
    with running_inside_app():
        page.run()


def get_engine() -> Taelio:
    """For a page: the shared engine, with the shell drawn around the page."""
    if not inside_app():
        _draw()    # Streamlit ran this page file alone: the same shell around it
    return open_engine()
