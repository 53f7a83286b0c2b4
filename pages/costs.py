"""Costs and budgets: what was spent, on what, and where this month is heading."""
from __future__ import annotations

import streamlit as st

from taelio_core import analytics as A
from ui import charts
from ui.alerts_view import alerts_panel
from ui.costs_view import render_budgets, render_export, render_headline
from ui.empty_state import no_match, open_analytics_page
from ui.engine import cached, rounded_now

engine, filters = open_analytics_page(
    "Costs & budgets", "spend per provider and tier over time, tokens, cost per request by model, the most "
                       "expensive tasks and tiers, and this month's budgets")
now = rounded_now()
# Every figure on the page comes from one read of the log (one open, one snapshot), cached as one.
view: A.CostsView = cached(engine, A.costs_view, filters, engine.policy.model.budgets, now=now)
headline = view.headline
render_headline(headline, filters)
if no_match(headline.requests):
    st.stop()

c1, c2 = st.columns([2, 1])
with c1:
    charts.show("Spend by provider × tier", charts.cost_stacked(view.cost), "cost_stacked")
with c2:
    charts.show("Share of spend", charts.share_pie(view.by_provider, "provider"), "share_pie")

c1, c2 = st.columns(2)
with c1:
    charts.show("Tokens over time", charts.tokens_area(view.usage), "tokens")
with c2:
    dist = view.distribution
    charts.show("Cost per request by model", charts.cost_box(dist), "cost_box")
    unpriced = dist[dist["unpriced"] > 0]
    if len(unpriced):
        st.caption("Unpriced requests, left out of the spread: "
                   + ", ".join(f"{m} ({n:,})" for m, n in zip(unpriced["model"], unpriced["unpriced"])))

st.subheader("Most expensive")
c1, c2 = st.columns(2)
for col, by, frame in ((c1, "task", view.by_task), (c2, "tier", view.by_tier)):
    with col:
        st.markdown(f"**By {by}**")
        st.plotly_chart(charts.spend_bars(frame, by), key=f"top_{by}")

st.subheader("Budgets this month")
render_budgets(engine, view.budget_status, view.budget_curve, now)
alerts_panel(engine, kinds=("budget_alert", "budget_over", "budget_projected"), title="Budget alerts")

st.subheader("Export")
render_export(engine, filters, headline.requests)
