"""The page a user sees when the call log cannot be used: what is wrong, which file, how to recover.

Why a page of its own: a damaged or foreign log file used to reach every page
as Streamlit's raw exception box (``CatalogException``, ``IOException``).
The core says what is wrong in one sentence (``LogUnusable``); this shows it
with the path and the commands that recover, and stops the page.
"""
from __future__ import annotations

import shlex

import streamlit as st

from taelio_core.errors import CallLogError, LogUnusable

__all__ = ["show_log_problem"]


def show_log_problem(err: CallLogError) -> None:
    """Show ``err`` as a page (no traceback), then stop the script run."""
    st.title("The call log cannot be used")
    st.error(str(err))
    if isinstance(err, LogUnusable):
        path = shlex.quote(err.path)
        st.markdown(f"**File:** `{err.path}`")
        st.markdown("**To recover**, stop every Taelio process using it, then either:")
        st.code(f"mv {path} {path}.damaged\n# or: taelio --db {path} log repair", language="bash")
        st.markdown("and reload this page: Taelio starts a new, empty log at the same place. Requests that "
                    "were not yet written stay in the log's journal folder and are written by the next open. "
                    "Or point `DATABASE_URL` at another `.duckdb` file, or restore a backup of this one.")
    st.stop()
