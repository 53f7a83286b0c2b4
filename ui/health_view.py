"""The Health page's provider table and its Test provider buttons."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from taelio_core import analytics as A
from taelio_core.errors import TaelioError
from taelio_core.wiring import Taelio
from ui.cache import bump, cached, rounded_now
from ui.sidebar import unavailable_reasons
from ui.text import MS_FORMAT, PCT_FORMAT, escape_markdown, fmt_ms, fmt_pct
from ui.trace_view import render_trace, trace_from_result

__all__ = ["ERROR_COLUMNS", "PROVIDER_COLUMNS", "STATUS_ICON", "TABLE_COLUMNS", "breaker_panel", "health_table",
           "last_errors", "per_provider", "probe_models", "render_probe", "status_rule"]

# The status table fits the page: the last error's text is cut in the cell (read it whole below the
# table, ``last_errors``), the short columns are small.
TABLE_COLUMNS = {
    "provider": st.column_config.TextColumn(pinned=True),
    "last error": st.column_config.TextColumn(width="medium"),
}
PROVIDER_COLUMNS = {
    "success_rate": st.column_config.NumberColumn("success", format=PCT_FORMAT),
    **{c: st.column_config.NumberColumn(label, format=MS_FORMAT)
       for c, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99"), ("ttft_p50_ms", "TTFT p50"))},
}
ERROR_COLUMNS = {"error_type": st.column_config.TextColumn("error"),
                 "share_of_attempts": st.column_config.NumberColumn("share of attempts", format=PCT_FORMAT)}


def status_rule() -> str:
    """How a provider's status is decided, from the thresholds the analytics use."""
    return (f"Status from the last hour of attempts: healthy ≥ {fmt_pct(A.HEALTHY_MIN)} success, degraded below, "
            f"down below {fmt_pct(A.DOWN_BELOW)} or when the last {A.DOWN_STREAK} attempts failed; not "
            "configured = no API key, so the router skips it. Times in UTC.")


def last_errors(table: pd.DataFrame) -> None:
    """Each provider's last error in full (the table's cell shows its start)."""
    errors = table[table["last error"] != "–"] if len(table) else table
    if len(errors):
        with st.expander(f"Last errors in full ({len(errors)})", icon=":material/error:"):
            for row in errors.to_dict("records"):
                st.markdown(f"**{escape_markdown(row['provider'])}** · {row['last error at']} UTC")
                st.code(row["last error"], language=None, wrap_lines=True)


def per_provider(success: pd.DataFrame, latency: pd.DataFrame) -> pd.DataFrame:
    """Success and latency per provider, one row each, success as a percentage."""
    merged = success.merge(latency, on="provider", how="left")
    merged["success_rate"] = merged["success_rate"] * 100
    return merged[["provider", "attempts", "success_rate", "p50_ms", "p95_ms", "p99_ms", "ttft_p50_ms"]]

STATUS_ICON = {"healthy": "🟢 healthy", "degraded": "🟠 degraded", "down": "🔴 down",
               "not configured": "⚪ not configured", "no recent calls": "⚫ no recent calls"}


def health_table(engine: Taelio, filters: A.Filters) -> pd.DataFrame:
    """Per provider in the policy: key, status and recent figures, ready to show."""
    health = cached(engine, A.provider_health, unavailable_reasons(engine), filters, now=rounded_now())
    rows = []
    for r in health.to_dict("records"):
        at = r["last_error_at"]
        simulated = getattr(engine.providers.get(r["provider"]), "simulated", False)
        rows.append({
            "provider": r["provider"],
            "key": "simulated (demo)" if simulated else ("configured" if r["configured"] else r["reason"]),
            "status": STATUS_ICON.get(r["status"], r["status"]),
            "attempts (1 h)": r["attempts"],
            "success": fmt_pct(r["success_rate"]),
            "p50": fmt_ms(r["p50_ms"]), "p95": fmt_ms(r["p95_ms"]), "TTFT p50": fmt_ms(r["ttft_p50_ms"]),
            "last error": r["last_error"] or "–",
            # Times in UTC (the caption says so): short cells keep the table inside the page.
            "last error at": "–" if at is None or pd.isna(at) else pd.Timestamp(at).strftime("%d %b %H:%M"),
        })
    return pd.DataFrame(rows)


def probe_models(policy, provider: str, task: str) -> list[str]:  # noqa: ANN001 - RoutingPolicy
    """The models ``provider`` has for ``task`` in any tier's chain, in chain order."""
    return list(dict.fromkeys(e.model for tier in policy.tiers for e in policy.chain(tier, task)
                              if e.provider == provider))


def render_probe(engine: Taelio) -> None:
    """Test a provider: one tiny request to the chosen provider:model for a task, shown and logged (source=test)."""
    policy = engine.policy
    st.caption("Sends one tiny request to the chosen model. It is logged with source = test"
               + (" and answered by the simulator (demo mode)." if engine.mode == "demo"
                  else " and costs a fraction of a cent."))
    c1, c2, c3, c4 = st.columns([2, 2, 3, 1], vertical_alignment="bottom")
    provider = c1.selectbox("Provider", list(policy.providers), key="probe_provider")
    task = c2.selectbox("Task", policy.tasks, key="probe_task")
    models = probe_models(policy, provider, task)
    model = c3.selectbox("Model", models, key=f"probe_model_{provider}_{task}", disabled=not models,
                         placeholder="No model of this provider serves this task")
    if c4.button("Test provider", icon=":material/network_check:", key="probe_run", disabled=not models):
        try:
            with st.spinner(f"Testing {provider}:{model} with a {task} request…"):
                result = engine.router.probe(provider, task, model=model)
        except TaelioError as e:
            st.error(escape_markdown(str(e)), icon=":material/error:")
            return
        bump(engine)
        st.session_state["probe_result"] = result
    result = st.session_state.get("probe_result")
    if result is not None:
        if result.ok:
            st.success(f"{result.provider}:{result.model} answered in {fmt_ms(result.latency_ms)}.",
                       icon=":material/check_circle:")
        with st.expander("Probe trace", expanded=not result.ok):
            render_trace(trace_from_result(result), title=f"Test of {result.attempts[0].provider if result.attempts else 'provider'}")


def _when(value: object) -> str:
    """A timestamp as UTC text; a dash where there is none (a table would print "None")."""
    return "–" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def breaker_panel(report) -> None:  # noqa: ANN001 - taelio_core.monitoring.health.HealthReport
    """Circuit breakers per provider:model, and their logged transitions."""
    st.subheader("Circuit breakers")
    states = report.states.copy()
    if len(states):
        icons = {"closed": "🟢 closed", "open": "🔴 open", "half_open": "🟡 half-open", "half-open": "🟡 half-open"}
        states["state"] = [icons.get(str(v), str(v)) for v in states["state"]]
        for column in ("until", "changed_at"):
            if column in states:
                states[column] = [_when(v) for v in states[column]]
        if "reason" in states:
            states["reason"] = states["reason"].fillna("")
    st.dataframe(states, hide_index=True, width="stretch",
                 column_config={"until": st.column_config.TextColumn("open until"),
                                "changed_at": st.column_config.TextColumn("changed")})
    source = "this dashboard's router" if report.live else "the last transitions in the log"
    st.caption(f"States from {source}. An open breaker makes the router skip that entry until the cool-down "
               "ends; then one trial request decides whether it closes.")
    with st.expander(f"Breaker transitions ({len(report.history)})", icon=":material/history:"):
        st.dataframe(report.history, hide_index=True, width="stretch")
