"""The app shell every page runs inside: page config, navigation links and the shared sidebar.

``app.py`` draws it and runs the chosen page. Streamlit, however, remembers
per process whether an app "uses a pages directory" (a ``pages/`` folder
next to the main script) until the first ``st.navigation`` call; until then
a session that opens a page's URL directly (a bookmarked ``/costs`` right
after a restart, and every AppTest run) executes that page file alone,
without ``app.py``. So the navigation is drawn by us, as links in the
sidebar (Streamlit's own list is hidden in ``.streamlit/config.toml``), and
``ensure_shell`` draws the whole sidebar from inside a page that ran alone.
The page then works exactly as it would under ``app.py``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

__all__ = ["FILTERED_PAGES", "PAGES", "draw_shell", "ensure_shell"]

# (script, title, icon): the dashboard's pages, in menu order.
PAGES = (
    ("pages/generate.py", "Generate", ":material/auto_awesome:"),
    ("pages/costs.py", "Costs & budgets", ":material/payments:"),
    ("pages/health.py", "Health", ":material/monitor_heart:"),
    ("pages/calls.py", "Calls", ":material/list_alt:"),
    ("pages/compare.py", "Compare", ":material/compare:"),
    ("pages/sandbox.py", "Sandbox", ":material/science:"),
)
# The pages that read the logged data through the sidebar's filter; the others do not show it.
FILTERED_PAGES = frozenset({"pages/costs.py", "pages/health.py", "pages/calls.py"})


def _configure() -> None:
    st.set_page_config(page_title="Taelio", page_icon=":material/alt_route:", layout="wide")


def _sidebar(script: str) -> None:
    from ui.engine import open_engine
    from ui.sidebar import render_sidebar

    engine = open_engine()
    with st.sidebar:
        st.markdown("### :material/alt_route: Taelio")
        for path, title, icon in PAGES:
            st.page_link(path, label=title, icon=icon)
        st.divider()
    render_sidebar(engine, with_filters=script in FILTERED_PAGES)


def draw_shell():  # noqa: ANN201 - st.navigation's page object
    """For ``app.py``: configure, register the pages, draw the sidebar; returns the page to run."""
    _configure()
    pages = {path: st.Page(path, title=title, icon=icon, default=i == 0)
             for i, (path, title, icon) in enumerate(PAGES)}
    page = st.navigation(list(pages.values()), position="hidden")
    _sidebar(next((path for path, p in pages.items() if p.url_path == page.url_path), ""))
    return page


def ensure_shell() -> None:
    """Draw the shell when Streamlit ran this page without ``app.py``."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False  # what st.navigation records: later runs go through app.py
        _configure()
        _sidebar(_running_page())


def _running_page() -> str:
    """The page script this run executes (``pages/<name>.py``), found on the call stack.

    Run alone, a page is not known to Streamlit's page registry by its path, but its
    code runs under its own file name.
    """
    frame = sys._getframe(1)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.parent.name == "pages":
            return f"pages/{path.name}"
        frame = frame.f_back
    return ""
