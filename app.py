"""Taelio's dashboard: ``streamlit run app.py``.

Draws the shell (page config, navigation, the shared sidebar with the mode,
the data filter and the log's location; see ``ui.shell``) and runs the page
chosen in the navigation.
"""
from __future__ import annotations

from ui.shell import run_app

run_app()
