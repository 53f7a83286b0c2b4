"""The dashboard's pages, registered with ``st.navigation``, and whether a page runs inside ``app.py``.

Taelio keeps its pages in the top-level ``pages/`` folder and lists them with
``st.navigation`` in ``app.py``. Streamlit documents that it ignores the
``pages/`` folder "as soon as any session of your app executes the
st.navigation command"; until then (the first request after a restart that
opens a page's URL directly, e.g. a bookmarked ``/costs``; and every AppTest
run) it runs that page file alone, without ``app.py``. ``inside_app()`` tells
a page which case it is in, and ``ui.shell.get_engine`` then draws the same
shell around it. Only public API (``st.navigation``, ``st.Page``) and a flag
of our own. See ``docs/dashboard.md``.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

__all__ = ["PAGES", "inside_app", "navigation", "running_inside_app"]

# (script, title, icon): the dashboard's pages, in menu order.
PAGES = (
    ("pages/generate.py", "Generate", ":material/auto_awesome:"),
    ("pages/costs.py", "Costs & budgets", ":material/payments:"),
    ("pages/health.py", "Health", ":material/monitor_heart:"),
    ("pages/calls.py", "Calls", ":material/list_alt:"),
    ("pages/compare.py", "Compare", ":material/compare:"),
    ("pages/sandbox.py", "Sandbox", ":material/science:"),
)

# Set while app.py runs the chosen page, in the script thread of that run (sessions run in threads of
# their own, so one session's run never sees another's flag).
_inside = threading.local()


def navigation() -> Any:  # noqa: ANN401 - st.navigation's page object
    """Register the pages (the links are drawn by ``ui.shell`` in the sidebar); the page to run."""
    pages = [st.Page(path, title=title, icon=icon, default=i == 0) for i, (path, title, icon) in enumerate(PAGES)]
    return st.navigation(pages, position="hidden")


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
