"""What an analytics page shows before there is anything to analyse.

An empty log never gets blank charts: the page says what will appear and
offers **Load demo data**, which fills the log with 30 days of simulated
traffic (source=demo) through the core's demo generator, with a progress bar.
A filter that matches nothing says so, and how to widen it.
"""
from __future__ import annotations

import streamlit as st

from taelio_core.engine import Taelio
from taelio_core.errors import TaelioError
from taelio_core.analytics import Filters
from ui.engine import bump, data_version
from ui.shell import get_engine
from ui.sidebar import current_filters

__all__ = ["DEMO_DAYS", "load_demo_data", "no_match", "open_analytics_page", "require_data"]

DEMO_DAYS = 30


def load_demo_data(engine: Taelio, *, days: int = DEMO_DAYS) -> int | None:
    """Run the demo generator with a progress bar; the number of requests written, or None on failure."""
    from taelio_core.demo import generate_demo_data

    bar = st.progress(0.0, text="Generating demo traffic…")

    def progress(fraction: float) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        bar.progress(fraction, text=f"Generating {days} days of demo traffic… {fraction:.0%}")

    try:
        written = generate_demo_data(engine.log, engine.policy, days=days, progress=progress)
    except TaelioError as e:
        bar.empty()
        st.error(f"Demo data could not be loaded: {e}")
        return None
    bump(engine)
    bar.progress(1.0, text=f"Loaded {written:,} demo requests.")
    return written


def require_data(engine: Taelio, what: str) -> bool:
    """True when the log has requests; otherwise explain ``what`` the page will show and offer demo data."""
    if data_version(engine) > 0:
        return True
    with st.container(border=True):
        st.markdown("#### Nothing logged yet")
        st.markdown(f"This page will show {what} as soon as requests are logged: generate a story on the "
                    "**Generate** page, run `taelio generate` from the command line, or load 30 days of "
                    "simulated traffic to explore the dashboard right away.")
        st.caption("Demo data is logged with source = demo and is generated offline: nothing costs money.")
        if st.button("Load demo data", type="primary", icon=":material/dataset:", key="load_demo"):
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
