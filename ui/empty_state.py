"""What an analytics page shows before there is anything to analyse.

An empty log never gets blank charts: the page says what will appear and
offers **Load demo data** (``ui.demo_data``), which routes 30 days of
simulated traffic through the real router (source=demo): the card gives way
to a progress bar, then the page reruns with the data.
A filter that matches nothing says so, and how to widen it.
"""
from __future__ import annotations

import streamlit as st

from taelio_core.analytics import Filters
from taelio_core.wiring import Taelio
from ui.demo_data import DEMO_DAYS, load_demo_data
from ui.cache import data_version
from ui.shell import get_engine
from ui.sidebar import current_filters

__all__ = ["DEMO_DAYS", "load_demo_data", "no_match", "open_analytics_page", "require_data"]


def require_data(engine: Taelio, what: str) -> bool:
    """True when the log has requests; otherwise explain ``what`` the page will show and offer demo data."""
    if data_version(engine) > 0:
        return True
    card = st.empty()
    with card.container(border=True):
        st.markdown("#### Nothing logged yet")
        st.markdown(f"This page will show {what} as soon as requests are logged: generate a story on the "
                    "**Generate** page, run `taelio generate` from the command line, or load 30 days of "
                    "simulated traffic to explore the dashboard right away.")
        st.caption("Demo data is routed by the real router over simulated providers, logged with source = demo, "
                   "and can be removed again from the sidebar. Nothing costs money.")
        clicked = st.button("Load demo data", type="primary", icon=":material/dataset:", key="load_demo")
    if clicked:
        card.empty()  # the card said "Nothing logged yet": while loading, show only the progress
        if load_demo_data(engine) is not None:
            st.rerun()
    return False


def no_match(filtered_requests: int) -> bool:
    """True (after saying so) when the filter selects nothing."""
    if filtered_requests:
        return False
    st.info("No requests match the filter in the sidebar. Widen the dates or clear a tier, task, "
            "provider or source.", icon=":material/filter_alt_off:")
    return True


def open_analytics_page(title: str, what: str) -> tuple[Taelio, Filters]:
    """Title, engine and filters for a page that needs logged data; stops the page on an empty log."""
    engine = get_engine()
    st.title(title)
    if not require_data(engine, what):
        st.stop()
    return engine, current_filters()
