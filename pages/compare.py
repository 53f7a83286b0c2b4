"""Compare: A/B experiments across prompts and providers, blind votes, and a verdict with its interval."""
from __future__ import annotations

import streamlit as st

from taelio_core.errors import TaelioError
from ui.compare import create_form, experiments, pick_experiment, run_panel
from ui.compare_views import live_splits, matrix_view, results_view, side_by_side, vote_view

st.title("Compare")
st.caption("Run prompt × provider variants on the same inputs, vote blind, and read a verdict you can defend.")

try:
    ex = experiments()
except TaelioError as e:
    st.error(str(e))
    st.stop()

with st.expander("New experiment", expanded=ex.store.list().empty):
    create_form(ex)

experiment_id = pick_experiment(ex)
if experiment_id is not None:
    try:
        run_panel(ex, experiment_id)
        tabs = st.tabs(["Side by side", "Matrix", "Vote (blind)", "Leaderboard", "Live splits"],
                       key="compare_tab", on_change="rerun")
        views = [side_by_side, matrix_view, None, None, None]
        for tab, view in zip(tabs, views, strict=True):
            if not tab.open:
                continue   # only the open tab is computed (the leaderboard bootstraps)
            with tab:
                if view is not None:
                    view(ex.results(experiment_id, n_boot=200))
                elif tab is tabs[2]:
                    vote_view(ex, experiment_id)
                elif tab is tabs[3]:
                    results_view(ex, experiment_id)
                else:
                    live_splits(ex)
    except TaelioError as e:
        st.error(str(e))
else:
    st.subheader("Live splits")
    live_splits(ex)
