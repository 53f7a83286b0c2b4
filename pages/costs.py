"""Costs and budgets: what was spent, on what, and where this month is heading."""
from __future__ import annotations

import streamlit as st

from taelio_core import analytics as A
from ui import charts
from ui.alerts_view import alerts_panel
from ui.guard_view import render_budget_rule
from ui.costs_view import render_budgets, render_export, render_headline
from ui.empty_state import no_match, open_analytics_page
from ui.cache import cached, rounded_now
from ui.text import money

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

axis = view.axis
c1, c2 = st.columns([2, 1])
with c1:
    charts.show("Spend by provider × tier", view.cost, charts.cost_stacked, "cost_stacked", axis=axis,
                empty="Nothing was tried in this range, so nothing was spent.")
with c2:
    charts.show("Share of spend", view.by_provider[view.by_provider["cost_usd"].fillna(0) > 0], charts.share_pie,
                "share_pie", names="provider", empty="No priced spend in this range.")

c1, c2 = st.columns(2)
with c1:
    charts.show("Tokens over time", view.usage, charts.tokens_area, "tokens", axis=axis,
                empty="No tokens were used in this range.")
with c2:
    dist = view.distribution
    charts.show("Cost per request by model", dist[dist["priced"] > 0], charts.cost_box, "cost_box",
                empty="No priced requests in this range.")
    unpriced = dist[dist["unpriced"] > 0]
    if len(unpriced):
        st.caption("Unpriced requests, left out of the spread: "
                   + ", ".join(f"{m} ({n:,})" for m, n in zip(unpriced["model"], unpriced["unpriced"])))
st.caption(f"Over time: one point per {axis.label} (UTC), chosen from the span of the data in the filter"
           + ("; the shaded last one is still filling." if axis.partial_from is not None else "."))

st.subheader("Most expensive")
c1, c2 = st.columns(2)
for col, by, frame in ((c1, "task", view.by_task), (c2, "tier", view.by_tier)):
    with col:
        st.markdown(f"**By {by}**")
        charts.show("", frame, charts.spend_bars, f"top_{by}", by=by, empty=f"No spend by {by} in this range.")

st.subheader("Top users")
users = cached(engine, A.top_users, filters)
if users.empty:
    st.caption("No request in this selection carries a user: users come from the HTTP API's tokens "
               "(`taelio serve`).")
else:
    st.dataframe(users.assign(cost=[money(None if c != c else c) for c in users["cost_usd"]]), hide_index=True,
                 width="stretch", column_order=["user_id", "requests", "failed", "tokens", "unpriced", "cost"],
                 column_config={"user_id": st.column_config.TextColumn("user"),
                                "requests": st.column_config.NumberColumn(format="localized"),
                                "tokens": st.column_config.NumberColumn(format="localized")})

st.subheader("Budgets this month")
render_budget_rule(engine)
render_budgets(engine, view.budget_status, view.budget_curve, now)
alerts_panel(engine, kinds=("budget_alert", "budget_over", "budget_projected"), title="Budget alerts")

st.subheader("Export")
render_export(engine, filters, headline.requests)
