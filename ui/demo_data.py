"""Loading and removing demo data from the dashboard: a progress bar while it loads, then what happened.

Demo data (``taelio_core.demo``) is made by the real router over simulated
traffic and logged with ``source = demo``, so it can always be removed
again. The sidebar's demo section (``demo_data_section``) offers **Load demo
data** in demo mode whatever the log holds, and **Remove demo data** in any
mode once the log holds some. The empty state of the analytics pages uses
``load_demo_data`` too.
"""
from __future__ import annotations

import streamlit as st

from taelio_core.demo import count_demo_requests, generate_demo_data, remove_demo_data
from taelio_core.errors import TaelioError
from taelio_core.wiring import Taelio
from ui.cache import bump, cached

__all__ = ["DEMO_DAYS", "demo_data_section", "load_demo_data"]

DEMO_DAYS = 30
_RESULT = "demo_data_result"   # a sentence kept across the rerun that follows an action


def _plural(n: int) -> str:
    return f"{n:,} demo request{'' if n == 1 else 's'}"


def load_demo_data(engine: Taelio, *, days: int = DEMO_DAYS) -> int | None:
    """Generate ``days`` of demo traffic with a progress bar, then say how much; None when it failed."""
    bar = st.progress(0.0, text=f"Routing {days} days of simulated traffic…")

    def progress(fraction: float) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        bar.progress(fraction, text=f"Routing {days} days of simulated traffic… {fraction:.0%}")

    try:
        written = generate_demo_data(engine.log, engine.policy, days=days, progress=progress)
    except (TaelioError, OSError) as e:
        bar.empty()
        st.error(f"Demo data could not be loaded: {e}")
        return None
    bump(engine)
    bar.progress(1.0, text=f"Loaded {_plural(written)}.")
    st.session_state[_RESULT] = (f"Loaded {_plural(written)} over the last {days} days (source = demo). "
                                 "Remove them at any time from the sidebar.")
    return written


def _remove(engine: Taelio) -> None:
    try:
        gone = remove_demo_data(engine.log)
    except TaelioError as e:
        st.session_state[_RESULT] = f"Demo data could not be removed: {e}"
        return
    bump(engine)
    st.session_state[_RESULT] = f"Removed {_plural(gone)}; other requests stay."


def demo_data_section(engine: Taelio) -> None:
    """The sidebar's demo data controls (call inside ``st.sidebar``)."""
    message = st.session_state.pop(_RESULT, None)
    if message:
        st.success(message, icon=":material/dataset:")
    demo_rows = cached(engine, count_demo_requests)
    if engine.mode == "demo":
        if st.button("Load demo data", icon=":material/dataset:", key="sidebar_load_demo", width="stretch",
                     help=f"Route {DEMO_DAYS} days of simulated traffic through the policy and log it "
                          "(source = demo). Nothing costs money."):
            if load_demo_data(engine) is not None:
                st.rerun()
    if demo_rows:
        if st.button(f"Remove demo data ({demo_rows:,})", icon=":material/delete:", key="sidebar_remove_demo",
                     width="stretch", help="Delete every request logged with source = demo; live rows stay."):
            with st.spinner("Removing demo data…"):
                _remove(engine)
            st.rerun()
