"""Provider health: which providers work right now, how fast, and what fails."""
from __future__ import annotations

import streamlit as st

from taelio_core import analytics as A
from ui import charts
from ui.alerts_view import alerts_panel
from ui.empty_state import no_match, require_data
from ui.engine import cached
from ui.health_view import breaker_panel, health_table, render_probe
from ui.shell import get_engine
from ui.sidebar import current_filters

engine = get_engine()
filters = current_filters()
st.title("Provider health")

auto = st.toggle("Auto-refresh every 15 s", key="health_auto",
                 help="Keeps the status table current, e.g. on a wall screen.")


@st.fragment(run_every=15 if auto else None)
def status_panel() -> None:
    st.dataframe(health_table(engine, filters), hide_index=True, width="stretch")
    st.caption("Status from the last hour of attempts: healthy ≥ 90 % success, degraded below, down below "
               "50 % or when the last 3 attempts failed; not configured = no API key, so the router skips it.")
    breaker_panel(engine.health())


status_panel()
alerts_panel(engine, kinds=("provider_outage",), title="Outage alerts")

with st.expander("Test a provider", expanded=False, icon=":material/network_check:"):
    render_probe(engine)

if not require_data(engine, "latency percentiles, errors by type, fallback rate per tier and availability "
                            "over time for every provider"):
    st.stop()

# Every chart below comes from one read of the log (one open, one snapshot), cached as one.
view: A.HealthView = cached(engine, A.health_view, filters)
success = view.success
if no_match(int(success["attempts"].sum()) if len(success) else 0):
    st.stop()

c1, c2 = st.columns(2)
with c1:
    charts.show("Latency percentiles", charts.latency_lines(view.latency_over_time), "latency")
with c2:
    charts.show("Errors by type", charts.errors_stacked(view.errors_over_time), "errors")

c1, c2 = st.columns(2)
with c1:
    st.subheader("Fallback rate per tier")
    fallback = view.fallback
    cols = st.columns(max(len(fallback), 1))
    for col, row in zip(cols, fallback.to_dict("records")):
        col.metric(f"{row['tier']}", f"{row['rate']:.1%}", help=f"{row['fallbacks']:,} of {row['requests']:,} "
                   "requests needed at least one fallback")
    st.plotly_chart(charts.fallback_lines(view.fallback_over_time), key="fallback")
with c2:
    st.subheader("Availability")
    st.plotly_chart(charts.availability(view.availability), key="availability")

st.subheader("Success, latency and errors per provider")
c1, c2 = st.columns(2)
c1.dataframe(success.merge(view.latency, on="provider", how="left"), hide_index=True, width="stretch",
             column_order=["provider", "attempts", "success_rate", "p50_ms", "p95_ms", "p99_ms", "ttft_p50_ms"],
             column_config={"success_rate": st.column_config.NumberColumn("success", format="percent"),
                            **{c: st.column_config.NumberColumn(c.replace("_ms", "").replace("_", " "),
                                                                format="%.0f ms")
                               for c in ("p50_ms", "p95_ms", "p99_ms", "ttft_p50_ms")}})
c2.dataframe(view.errors, hide_index=True, width="stretch",
             column_config={"share_of_attempts": st.column_config.NumberColumn("share", format="percent")})
