"""Provider health: which providers work right now, how fast, and what fails."""
from __future__ import annotations

import streamlit as st

from taelio_core import analytics as A
from ui import charts
from ui.alerts_view import alerts_panel
from ui.empty_state import no_match, require_data
from ui.guard_view import render_guards
from ui.cache import cached, rounded_now
from ui.health_view import (
    ERROR_COLUMNS,
    PROVIDER_COLUMNS,
    TABLE_COLUMNS,
    breaker_panel,
    health_table,
    last_errors,
    per_provider,
    render_probe,
    status_rule,
)
from ui.shell import get_engine
from ui.sidebar import current_filters
from ui.text import fmt_pct

engine = get_engine()
filters = current_filters()
st.title("Provider health")

auto = st.toggle("Auto-refresh every 15 s", key="health_auto",
                 help="Keeps the status table current, e.g. on a wall screen.")


@st.fragment(run_every=15 if auto else None)
def status_panel() -> None:
    table = health_table(engine, filters)
    st.dataframe(table, hide_index=True, width="stretch", column_config=TABLE_COLUMNS)
    st.caption(status_rule())
    last_errors(table)
    breaker_panel(engine.health())


status_panel()
render_guards(engine)
alerts_panel(engine, kinds=("provider_outage",), title="Outage alerts")

with st.expander("Test a provider", expanded=False, icon=":material/network_check:"):
    render_probe(engine)

if not require_data(engine, "latency percentiles, errors by type, fallback rate per tier and availability "
                            "over time for every provider"):
    st.stop()

# Every chart below comes from one read of the log (one open, one snapshot), cached as one.
view: A.HealthView = cached(engine, A.health_view, filters, now=rounded_now())
success = view.success
if no_match(int(success["attempts"].sum()) if len(success) else 0):
    st.stop()

axis = view.axis
c1, c2 = st.columns(2)
with c1:
    charts.show("Latency percentiles", view.latency_over_time, charts.latency_lines, "latency", axis=axis,
                empty="No attempt succeeded in this range, so there is no latency to show.")
with c2:
    charts.show("Errors by type", view.errors_over_time, charts.errors_stacked, "errors", axis=axis,
                empty="No errors in this range: every attempt succeeded.")

c1, c2 = st.columns(2)
with c1:
    st.subheader("Fallback rate per tier")
    fallback = view.fallback
    cols = st.columns(max(len(fallback), 1))
    for col, row in zip(cols, fallback.to_dict("records")):
        col.metric(f"{row['tier']}", fmt_pct(row["rate"]), help=f"{row['fallbacks']:,} of {row['requests']:,} "
                   "requests needed at least one fallback")
    charts.show("", view.fallback_over_time, charts.fallback_lines, "fallback", axis=axis,
                empty="No requests in this range.")
with c2:
    charts.show("Availability", view.availability, charts.availability, "availability", axis=axis,
                empty="No attempts in this range.")
st.caption(f"Over time: one point per {axis.label} (UTC); Health keeps hourly or finer points up to a month, "
           "so an outage of a few hours shows" + ("; the shaded last one is still filling." if axis.partial_from
                                                   is not None else "."))

st.subheader("Success, latency and errors per provider")
c1, c2 = st.columns(2)
c1.dataframe(per_provider(success, view.latency), hide_index=True, width="stretch", column_config=PROVIDER_COLUMNS)
if view.errors.empty:
    c2.caption("No errors in this range.")
else:
    c2.dataframe(view.errors.assign(share_of_attempts=view.errors["share_of_attempts"] * 100), hide_index=True,
                 width="stretch", column_config=ERROR_COLUMNS)
