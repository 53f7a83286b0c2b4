"""Sandbox: try a routing policy on simulated or replayed traffic before it goes live."""
from __future__ import annotations

import streamlit as st

from ui.sandbox import (
    REPORT,
    REPORT_CONFIG,
    choose_models,
    choose_traffic,
    edit_policy_b,
    pick_policy_a,
    run_panel,
)
from ui.sandbox_results import show_results
from ui.shell import get_engine

engine = get_engine()
st.title("Sandbox")
st.caption("Makes the live router's decisions (the same decision core) in virtual time with simulated "
           "providers: a day of traffic takes seconds. Nothing here touches a real provider or live analytics.")

log = engine.log
with st.expander("1 · Policies", expanded=True):
    policy_a = pick_policy_a(engine)
    if policy_a is None:
        st.stop()
    st.markdown("**Policy B** (the candidate)")
    policy_b = edit_policy_b(policy_a)

with st.expander("2 · Traffic and provider models", expanded=True):
    traffic = choose_traffic(policy_a, log)
    if traffic is not None:
        st.caption(f"{traffic.description}; tiers: "
                   + ", ".join(f"{t} {n:,}" for t, n in traffic.tier_counts().items()))
    models = choose_models([policy_a] + ([policy_b] if policy_b else []), log)

st.markdown("#### 3 · Run")
config = run_panel(policy_a, policy_b, traffic, models, log)

report = st.session_state.get(REPORT)
if report is not None:
    show_results(report, stale=st.session_state.get(REPORT_CONFIG) != config)
