"""The sidebar every page shares: mode, data filter, and where the log lives.

The filter widgets are drawn only on the pages that read the log through
them (Costs, Health, Calls); elsewhere they would do nothing. Streamlit drops a
widget's value when a run does not draw it, so each value is also kept under a
key of its own and handed back when the filter is drawn again: a filter set on
Costs is still set after a visit to Generate. The resulting ``Filters`` is kept
in ``st.session_state["filters"]`` for the pages to read with
``current_filters()``.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import streamlit as st

from taelio_core.analytics import SOURCES, Filters
from taelio_core.engine import Taelio
from ui.demo_data import demo_data_section
from ui.engine import data_version

__all__ = ["DEFAULT_DAYS", "current_filters", "provider_keys", "render_sidebar"]

DEFAULT_DAYS = 30
_FILTERS = "filters"
_WIDGETS = ("filter_sources", "filter_dates", "filter_tiers", "filter_tasks", "filter_providers")


def _restore_kept() -> None:
    """Give each filter widget back the value it had when last drawn (see the module docstring)."""
    for key in _WIDGETS:
        kept = st.session_state.get(f"kept_{key}")
        if key not in st.session_state and kept is not None:
            st.session_state[key] = kept


def _keep() -> None:
    for key in _WIDGETS:
        if key in st.session_state:
            st.session_state[f"kept_{key}"] = st.session_state[key]


def provider_keys(engine: Taelio) -> dict[str, str | None]:
    """Provider name -> None when it can be used, else the reason it cannot (e.g. no API key)."""
    out = {}
    for name, provider in engine.providers.items():
        availability = provider.availability()
        out[name] = None if availability.available else (availability.reason or "unavailable")
    return out


def _mode_badge(engine: Taelio) -> None:
    if engine.mode == "demo":
        st.badge("Demo mode", icon=":material/science:", color="orange")
        st.caption("No API key is set: the offline simulator stands in for every provider, "
                   "priced as the real model would be. Nothing costs money.")
        return
    st.badge("Live", icon=":material/bolt:", color="green")
    keys = provider_keys(engine)
    lines = [f"{'✅' if reason is None else '⚪'} **{name}**" + ("" if reason is None else f" — {reason}")
             for name, reason in keys.items()]
    st.markdown("  \n".join(lines))


def _date_range() -> tuple[date | None, date | None]:
    today = datetime.now(UTC).date()
    # The default only when the widget has no value yet: passing both would make Streamlit warn.
    default = {} if "filter_dates" in st.session_state else {
        "value": (today - timedelta(days=DEFAULT_DAYS - 1), today)}
    picked = st.date_input("Dates (UTC)", max_value=today + timedelta(days=1), key="filter_dates",
                           format="YYYY-MM-DD", **default)
    if isinstance(picked, tuple | list):
        if len(picked) == 2:
            return picked[0], picked[1]
        if len(picked) == 1:           # the user has picked the first day of a range so far
            return picked[0], picked[0]
        return None, None
    return picked, picked


def render_sidebar(engine: Taelio, *, with_filters: bool = True) -> Filters:
    """Mode, the data filter (``with_filters``: on the pages that read the log) and the log's location."""
    policy = engine.policy
    with st.sidebar:
        _mode_badge(engine)
        st.divider()
        if with_filters:
            filters = _filter_widgets(engine)
        else:
            filters = current_filters()
            st.caption("The data filter is on Costs, Health and Calls.")
        demo_data_section(engine)
        st.divider()
        total = data_version(engine)
        st.caption(f"Call log: `{engine.log.location}`  \n{total:,} requests logged · policy `{policy.name}`")
    return filters


def _filter_widgets(engine: Taelio) -> Filters:
    policy = engine.policy
    _restore_kept()
    st.markdown("**Data shown**")
    sources = st.multiselect("Source", SOURCES, key="filter_sources", placeholder="All sources",
                             help="live: real traffic; demo: simulated; sandbox and experiment runs; "
                                  "test: provider probes")
    start, end = _date_range()
    tiers = st.multiselect("Tier", policy.tiers, key="filter_tiers", placeholder="All tiers")
    tasks = st.multiselect("Task", policy.tasks, key="filter_tasks", placeholder="All tasks")
    providers = st.multiselect("Provider", list(policy.providers), key="filter_providers",
                               placeholder="All providers",
                               help="For requests: who served them. For attempts: who was tried.")
    _keep()
    filters = Filters(start=start, end=end, sources=tuple(sources), tiers=tuple(tiers), tasks=tuple(tasks),
                      providers=tuple(providers))
    st.session_state[_FILTERS] = filters
    return filters


def current_filters() -> Filters:
    """The sidebar's selection (the default range when a page runs on its own, e.g. in a test)."""
    return st.session_state.get(_FILTERS) or Filters.last_days(DEFAULT_DAYS)
