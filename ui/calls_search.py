"""The Calls page's search period: which slice of the filtered range a search covered, and "search older".

A search first covers the newest slice of the filtered range (``taelio_core.analytics.search_window``:
at most ``TAELIO_SEARCH_STEP`` requests, whole hours). The caption says which period was searched and
that its counts are of that period; two buttons widen it by the slice before, or to the whole range.
The number of slices is kept per search (text, filters, statuses, user): a new search starts at one.
"""
from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from taelio_core import analytics as A
from taelio_core.analytics import SearchWindow
from ui.cache import cached

__all__ = ["STEP_ENV", "list_caption", "render_search_older", "search_period", "search_scope"]

STEP_ENV = "TAELIO_SEARCH_STEP"
STEPS_KEY = "calls_search_steps"      # (the search it belongs to, how many slices: 0 = everything)


def step_requests() -> int:
    """How many requests one search slice may hold: ``TAELIO_SEARCH_STEP``, else the default."""
    raw = os.environ.get(STEP_ENV, "").strip()
    if not raw:
        return A.SEARCH_STEP_REQUESTS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        st.warning(f"{STEP_ENV} must be a whole number of requests above 0, not {raw!r}: searching "
                   f"{A.SEARCH_STEP_REQUESTS:,} requests at a time.")
        return A.SEARCH_STEP_REQUESTS
    return value


def search_scope(engine: Any, filters: A.Filters, search: str, statuses: tuple[str, ...],
                 user: str) -> tuple[SearchWindow | None, str]:
    """The window this search covers (None without a search) and the key of the search it belongs to."""
    scope = repr((filters, search.strip(), statuses, user.strip()))
    if not search.strip():
        return None, scope
    held = st.session_state.get(STEPS_KEY)
    steps = held[1] if isinstance(held, tuple) and held[0] == scope else 1
    return cached(engine, A.search_window, filters, statuses=statuses, steps=steps,
                  step_requests=step_requests()), scope


def _day(moment: datetime, today: datetime) -> str:
    days = (today.date() - moment.date()).days
    return "today" if days == 0 else "yesterday" if days == 1 else moment.strftime("%-d %b %Y")


def search_period(window: SearchWindow, now: datetime) -> str:
    """``14:00–16:00 today`` or ``30 Nov 2026 22:00 – today 02:00`` (UTC)."""
    since, until = window.since, window.until or now
    assert since is not None
    end = until - timedelta(microseconds=1)       # 16:00 ends the hour 15:00-16:00, which is today
    if since.date() == end.date():
        return f"{since:%H:%M}–{until:%H:%M} {_day(since, now)}"
    return f"{_day(since, now)} {since:%H:%M} – {_day(end, now)} {until:%H:%M}"


def _older_span(window: SearchWindow) -> str:
    if window.since is None or window.older is None:
        return "the rest of the range"
    hours = round((window.since - window.older) / timedelta(hours=1))
    if hours < 48:
        return f"the {hours} hour{'s' * (hours != 1)} before"
    return f"the {round(hours / 24)} days before"


def list_caption(*, total: int, page_no: int, pages: int, window: SearchWindow | None,
                 now: datetime | None = None) -> str:
    """The line under the search box: what was searched, how many match there, which page."""
    paging = f"page {page_no} of {pages:,} · newest first. Select a row to see its attempts and trace."
    noun = f"{total:,} matching request{'' if total == 1 else 's'}"
    if window is None:
        return f"{noun} · {paging}"
    if window.whole:
        return f"Searched the whole filtered range: {noun} · {paging} The search matches {A.SEARCH_MATCHES}."
    period = search_period(window, now or datetime.now(UTC))
    return (f"Searched {period} (UTC), the newest {window.requests:,} requests of the filtered range: "
            f"{noun} in the searched period · {paging} The search matches {A.SEARCH_MATCHES}.")


def _widen(scope: str, steps: int) -> None:
    st.session_state[STEPS_KEY] = (scope, steps)
    st.session_state["calls_page"] = 1


def render_search_older(window: SearchWindow | None, scope: str) -> None:
    """"Search the 2 hours before" and "Search everything", under a search that covered a slice only."""
    if window is None or window.whole:
        return
    older, everything = st.columns([1, 1])
    older.button(f"Search {_older_span(window)}", key="calls_search_older", icon=":material/history:",
                 on_click=_widen, args=(scope, window.steps + 1), width="stretch")
    everything.button("Search everything", key="calls_search_everything", on_click=_widen, args=(scope, 0),
                      width="stretch")
