"""The sidebar every page shares: mode, data filter, and where the log lives.

The filter widgets are drawn only on the pages that read the log through
them (Costs, Health, Calls): the shell leaves a place for them, and a page's
first ``current_filters()`` call draws them there; elsewhere the place says
where the filter is. Streamlit drops a
widget's value when a run does not draw it, so each value is also kept under a
key of its own and handed back when the filter is drawn again: a filter set on
Costs is still set after a visit to Generate. The resulting ``Filters`` is kept
in ``st.session_state["filters"]`` for the pages to read with
``current_filters()``.
"""
from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import streamlit as st

from taelio_core.analytics import SOURCES, Filters, requests_by_source
from taelio_core.wiring import Taelio
from ui.demo_data import demo_data_section
from ui.cache import cached, data_version, on_bump

__all__ = ["DEFAULT_DAYS", "current_filters", "log_status", "render_sidebar", "unavailable_reasons"]

DEFAULT_DAYS = 30
_FILTERS = "filters"
_WIDGETS = ("filter_sources", "filter_dates", "filter_tiers", "filter_tasks", "filter_providers")
_NOT_HERE = "The data filter is on Costs, Health and Calls once the log holds requests."

# This run's filter place in the sidebar (per script thread: each session's run has its own thread).
_this_run = threading.local()


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


def unavailable_reasons(engine: Taelio) -> dict[str, str | None]:
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
    reasons = unavailable_reasons(engine)
    lines = [f"{'✅' if reason is None else '⚪'} **{name}**" + ("" if reason is None else f" — {reason}")
             for name, reason in reasons.items()]
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


def render_sidebar(engine: Taelio) -> None:
    """Mode, a place for the data filter (see ``current_filters``) and the log's location."""
    policy = engine.policy
    with st.sidebar:
        _mode_badge(engine)
        st.divider()
        place = st.empty()
        place.caption(_NOT_HERE)
        _this_run.filters = (place, engine)
        demo_data_section(engine)
        st.divider()
        status = st.empty()

    def show_status() -> None:
        status.caption(log_status(engine.log.location, data_version(engine), policy.name))

    show_status()
    on_bump(show_status)     # a request logged later in this run updates the count at once


def log_status(location: str, requests: int, policy: str) -> str:
    """The sidebar's last line: where the log lives, how many requests it holds, and the policy."""
    noun = "request" if requests == 1 else "requests"
    return f"Call log: `{location}`  \n{requests:,} {noun} logged · policy `{policy}`"


def _default_sources(engine: Taelio) -> dict[str, list[str]]:
    """In live mode, once live traffic exists, the filter starts on live traffic only (demo figures would mix
    made-up spend into production's). Only as a default: a choice the user made is kept."""
    if "filter_sources" in st.session_state or engine.mode != "live":
        return {}
    return {"default": ["live"]} if cached(engine, requests_by_source).get("live") else {}


def _filter_widgets(engine: Taelio) -> Filters:
    policy = engine.policy
    _restore_kept()
    st.markdown("**Data shown**")
    sources = st.multiselect("Source", SOURCES, key="filter_sources", placeholder="All sources",
                             help="live: real traffic; demo: simulated; sandbox and experiment runs; "
                                  "test: provider probes", **_default_sources(engine))
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
    """The sidebar's selection, its widgets drawn in the sidebar on the first call of a run.

    Without a sidebar (a page run on its own in a test), the kept selection or the default range.
    """
    place = getattr(_this_run, "filters", None)
    if place is not None:
        _this_run.filters = None
        slot, engine = place
        with slot.container():
            return _filter_widgets(engine)
    return st.session_state.get(_FILTERS) or Filters.last_days(DEFAULT_DAYS)
