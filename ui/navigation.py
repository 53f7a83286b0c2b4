"""The dashboard's pages, registered with ``st.navigation``, and whether a page runs inside ``app.py``.

Taelio keeps its pages in the top-level ``pages/`` folder and lists them with
``st.navigation`` in ``app.py``. Streamlit documents that it ignores the
``pages/`` folder "as soon as any session of your app executes the
st.navigation command"; until then (the first request after a restart that
opens a page's URL directly, e.g. a bookmarked ``/costs``; and every AppTest
run) it runs that page file alone, without ``app.py``. ``inside_app()`` tells
a page which case it is in; ``ui.shell.get_engine`` then registers the
navigation itself and draws the shell. Only public API: ``st.navigation``,
``st.Page``. See ``docs/dashboard.md``.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

__all__ = ["FILTERED_PAGES", "PAGES", "inside_app", "navigation", "running_inside_app"]

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

# Set while app.py runs the chosen page, in the script thread of that run (sessions run in threads of
# their own, so one session's run never sees another's flag).
_inside = threading.local()


def navigation() -> tuple[Any, str]:
    """Register the pages (navigation drawn by us in the sidebar); the page to run and its script path."""
    pages = {path: st.Page(path, title=title, icon=icon, default=i == 0)
             for i, (path, title, icon) in enumerate(PAGES)}
    page = st.navigation(list(pages.values()), position="hidden")
    script = next((path for path, p in pages.items() if p.url_path == page.url_path), "")
    return page, script


@contextmanager
def running_inside_app() -> Iterator[None]:
    """For ``app.py``: the page run inside this block knows it runs inside the shell."""
    _inside.active = True
    try:
        yield
    finally:
        _inside.active = False


def inside_app() -> bool:
    """True while ``app.py`` runs the page (in this run's script thread)."""
    return bool(getattr(_inside, "active", False))
