"""The Sandbox page's results: A vs B per tier with bands, per provider, charts over virtual time, traces, export.

Charts are Plotly figures built from ``SimulationReport`` series: answers by
provider over virtual time (an outage shows as one provider's band
collapsing while the others widen) and availability / fallback rate of A
against B.
"""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from taelio_core.formatting import metric as metric_text
from taelio_core.sandbox.policy_edit import policy_to_toml
from taelio_core.sandbox.simulation import SimulationReport

__all__ = ["readable", "sample_traces", "served_figure", "show_results", "tier_delta_table", "timeline_figure"]

KEY_METRICS = ("availability", "fallback_rate", "cost_usd", "p50_ms", "p95_ms", "p99_ms", "budget_burn_pct")
_PERCENT = {"availability", "fallback_rate"}


def _fmt(name: str, value: float, *, signed: bool = False) -> str:
    return metric_text(name, value, signed=signed)


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """A per-tier or per-provider table of a run, every figure in the dashboard's format, column names as words."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = [_fmt(column, float(v)) for v in out[column]]
    names = {c: c.replace("_usd", "").replace("_pct", "").replace("_ms", "").replace("err_", "errors: ")
             .replace("_", " ") for c in out.columns}
    names |= {"cost_per_1k": "cost per 1k", "budget_burn_pct": "budget burn", "projected_month_pct": "projected month"}
    return out.rename(columns=names)


def tier_delta_table(report: SimulationReport) -> pd.DataFrame:
    """Per tier and key metric: A, B, B − A and its band across seeds, and the verdict."""
    comparison = report.comparison()
    assert comparison is not None
    rows = []
    for row in comparison[comparison["metric"].isin(KEY_METRICS)].to_dict(orient="records"):
        m = row["metric"]
        band = (f"{_fmt(m, row['delta_low'], signed=True)} … {_fmt(m, row['delta_high'], signed=True)}"
                if row["seeds"] > 1 else "one seed")
        rows.append({"tier": row["tier"], "metric": row["label"], "A": _fmt(m, row["a"]), "B": _fmt(m, row["b"]),
                     "B − A": _fmt(m, row["delta"], signed=True), "band across seeds": band, "verdict": row["verdict"]})
    return pd.DataFrame(rows)


def served_figure(report: SimulationReport, arm: str) -> go.Figure:
    series = report.series(arm)
    fig = go.Figure()
    for provider, group in series.dropna(subset=["provider"]).groupby("provider"):
        fig.add_trace(go.Scatter(x=group["bucket_s"] / 3600, y=group["served"], name=str(provider),
                                 stackgroup="one", mode="lines"))
    _mark_scenario(fig, report)
    fig.update_layout(title=f"Answers by provider over virtual time (policy {arm})", xaxis_title="hours",
                      yaxis_title="requests answered", height=320, margin={"t": 40, "b": 40, "l": 40, "r": 10})
    return fig


def timeline_figure(report: SimulationReport) -> go.Figure:
    fig = go.Figure()
    arms = ["A"] + (["B"] if report.policy_b is not None else [])
    for arm in arms:
        overall = report.series(arm).drop_duplicates("bucket_s")
        fig.add_trace(go.Scatter(x=overall["bucket_s"] / 3600, y=overall["fallback_rate"] * 100,
                                 name=f"fallback rate {arm} (%)", mode="lines"))
        fig.add_trace(go.Scatter(x=overall["bucket_s"] / 3600, y=(1 - overall["availability"]) * 100,
                                 name=f"unserved {arm} (%)", mode="lines", line={"dash": "dot"}))
    _mark_scenario(fig, report)
    fig.update_layout(title="Fallback rate and unserved share over virtual time", xaxis_title="hours",
                      yaxis_title="% of requests", height=320, margin={"t": 40, "b": 40, "l": 40, "r": 10})
    return fig


def _mark_scenario(fig: go.Figure, report: SimulationReport) -> None:
    for model in report.models.models.values():
        for outage in model.outages:
            if outage.start_s > 0 and math.isfinite(outage.end_s):
                fig.add_vrect(x0=outage.start_s / 3600, x1=outage.end_s / 3600, fillcolor="red", opacity=0.08,
                              line_width=0, annotation_text=f"{model.provider} {outage.error}")
                return


def sample_traces(traces: list[dict[str, object]], limit: int = 6) -> list[dict[str, object]]:
    """Up to ``limit`` traces, failed and truncated ones first (one per status), then the others in order."""
    first_of_status: dict[object, dict[str, object]] = {}
    for trace in traces:
        if trace["status"] != "ok":
            first_of_status.setdefault(trace["status"], trace)
    chosen = list(first_of_status.values())[:limit]
    chosen += [t for t in traces if all(t is not c for c in chosen)][:limit - len(chosen)]
    return sorted(chosen, key=lambda t: t["i"])


def show_results(report: SimulationReport, *, stale: bool = False) -> None:
    scenario = report.scenario.label if report.scenario else "no scenario"
    st.subheader("Results")
    if stale:
        st.warning("These results are from an earlier configuration: the policies, traffic, models, scenario "
                   "or seeds have changed since. Run again to see the current one.", icon=":material/history:")
    st.caption(f"{'Stale · ' if stale else ''}Run {report.run_id} · {report.traffic.description} · {scenario} · "
               f"seeds {report.seeds} · {report.requests_simulated:,} requests simulated in {report.wall_s:.1f} s "
               f"({report.rate:,.0f}/s) · saved as source=sandbox")
    seeds = len(report.seeds)
    if report.policy_b is not None:
        st.markdown(f"**B ({report.policy_b.name}) against A ({report.policy_a.name}), per tier**")
        st.caption(f"A and B are means over {seeds} seed{'s' if seeds != 1 else ''}; the band is the lowest and "
                   "highest B − A of one seed. \"same\": the difference is within the band, or no larger than "
                   "one policy's own spread across seeds.")
        st.dataframe(tier_delta_table(report), hide_index=True, width="stretch")
    tab_a, tab_b = st.tabs([f"Policy A · {report.policy_a.name}",
                            f"Policy B · {report.policy_b.name}" if report.policy_b else "Policy B"])
    for tab, arm in ((tab_a, "A"), (tab_b, "B")):
        if arm == "B" and report.policy_b is None:
            continue
        with tab:
            st.caption(f"One seed ({report.seeds[0]}) in detail"
                       + (f"; the table above averages all {seeds}." if seeds > 1 else "."))
            st.dataframe(readable(report.tiers(arm)), hide_index=True, width="stretch")
            st.dataframe(readable(report.providers(arm)), hide_index=True, width="stretch")
            st.plotly_chart(served_figure(report, arm), key=f"sandbox_served_{arm}")
    st.plotly_chart(timeline_figure(report), key="sandbox_timeline")
    with st.expander("Sample traces (failed and truncated ones first)"):
        for arm in ("A", "B") if report.policy_b is not None else ("A",):
            for trace in sample_traces(report.traces(arm)):
                st.markdown(f"**{arm} · request {trace['i']}** · {trace['tier']}/{trace['task']} · "
                            f"{trace['status']} · {trace['latency_ms']:,.0f} ms")
                st.dataframe(pd.DataFrame(trace["attempts"])[
                    ["n", "provider", "model", "status", "error_type", "latency_ms", "cost_usd"]],
                    hide_index=True, width="stretch")
    st.markdown("**Export**")
    c1, c2 = st.columns(2)
    if report.policy_b is not None:
        c1.download_button("Download policy B (TOML)", policy_to_toml(report.policy_b), file_name=f"{report.policy_b.name}.toml",
                           mime="application/toml", key="sandbox_export_b")
    c2.download_button("Download policy A (TOML)", policy_to_toml(report.policy_a), file_name=f"{report.policy_a.name}.toml",
                       mime="application/toml", key="sandbox_export_a")
