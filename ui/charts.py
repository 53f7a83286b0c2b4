"""Plotly figures for the dashboard, built from the analytics DataFrames.

Each function takes the small, already-aggregated frame that
``taelio_core.analytics`` returned and only draws it.
"""
from __future__ import annotations

from datetime import datetime

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

__all__ = ["show", "availability", "burndown", "cost_box", "cost_stacked", "errors_stacked", "fallback_lines",
           "latency_lines", "share_pie", "spend_bars", "tokens_area"]

_HEIGHT = 330
_COLORS = px.colors.qualitative.Safe


def show(title: str, fig: go.Figure, key: str) -> None:
    """A chart under its heading."""
    st.subheader(title)
    st.plotly_chart(fig, key=key)


def _style(fig: go.Figure, *, y_title: str = "", money: bool = False, pct: bool = False) -> go.Figure:
    fig.update_layout(template="plotly_white", height=_HEIGHT, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, title_text=""),
                      hovermode="x unified", yaxis_title=y_title, xaxis_title="")
    if money:
        fig.update_yaxes(tickprefix="$")
    if pct:
        fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return fig


def cost_stacked(df: pd.DataFrame) -> go.Figure:
    data = df.assign(series=df["provider"] + " · " + df["tier"], cost_usd=df["cost_usd"].fillna(0.0))
    fig = px.bar(data, x="bucket", y="cost_usd", color="series", color_discrete_sequence=_COLORS,
                 labels={"cost_usd": "cost", "bucket": ""}, hover_data={"attempts": True, "unpriced": True})
    fig.update_layout(barmode="stack")
    return _style(fig, y_title="USD", money=True)


def share_pie(df: pd.DataFrame, names: str) -> go.Figure:
    data = df[df["cost_usd"].fillna(0) > 0]
    fig = px.pie(data, names=names, values="cost_usd", hole=0.5, color_discrete_sequence=_COLORS)
    fig.update_traces(textinfo="percent+label", hovertemplate="%{label}: $%{value:,.4f}<extra></extra>")
    fig.update_layout(showlegend=False)
    return _style(fig)


def tokens_area(df: pd.DataFrame) -> go.Figure:
    long = df.melt(id_vars="bucket", value_vars=["input_tokens", "output_tokens"], var_name="kind",
                   value_name="tokens")
    long["kind"] = long["kind"].str.replace("_tokens", "")
    fig = px.area(long, x="bucket", y="tokens", color="kind", color_discrete_sequence=_COLORS)
    return _style(fig, y_title="tokens")


def cost_box(df: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for i, row in enumerate(df[df["priced"] > 0].itertuples()):
        fig.add_trace(go.Box(name=f"{row.model}", x=[row.model], q1=[row.q1], median=[row.median], q3=[row.q3],
                             lowerfence=[row.p05], upperfence=[row.p95], mean=[row.mean],
                             marker_color=_COLORS[i % len(_COLORS)], boxpoints=False))
    fig.update_layout(showlegend=False, hovermode="closest")
    _style(fig, y_title="USD per request", money=True)
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(type="log", dtick=1, tickformat="$~g", tickprefix="")
    return fig


def spend_bars(df: pd.DataFrame, by: str) -> go.Figure:
    data = df.head(10).iloc[::-1]
    fig = px.bar(data, x="cost_usd", y=by, orientation="h", color_discrete_sequence=_COLORS,
                 hover_data={"requests": True, "share": ":.1%"}, labels={"cost_usd": "USD", by: ""})
    fig.update_layout(hovermode="closest")
    fig = _style(fig)
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(tickprefix="$")
    return fig


def burndown(curve: pd.DataFrame, row: pd.Series, *, month_start: datetime, month_end: datetime,
             now: datetime) -> go.Figure:
    mine = curve[(curve["scope"] == row["scope"]) & (curve["name"] == row["name"])]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=list(mine["day"]), y=list(mine["cumulative_usd"]), mode="lines+markers",
                             name="spent", line=dict(color=_COLORS[0], width=3)))
    fig.add_trace(go.Scatter(x=[now, month_end], y=[row["spent_usd"], row["projected_usd"]], mode="lines",
                             name="projection", line=dict(color=_COLORS[1], dash="dash")))
    fig.add_trace(go.Scatter(x=[month_start, month_end], y=[row["limit_usd"]] * 2, mode="lines",
                             name="budget", line=dict(color="#c0392b", width=1)))
    alert = row["limit_usd"] * row["alert_pct"] / 100
    fig.add_trace(go.Scatter(x=[month_start, month_end], y=[alert] * 2, mode="lines",
                             name=f"{row['alert_pct']:.0f} % alert", line=dict(color="#e67e22", dash="dot", width=1)))
    fig = _style(fig, y_title="", money=True)
    fig.update_layout(height=200, showlegend=False, margin=dict(l=10, r=10, t=10, b=10), hovermode="closest")
    fig.update_xaxes(tickformat="%d %b", nticks=5)
    return fig


def latency_lines(df: pd.DataFrame) -> go.Figure:
    long = df.melt(id_vars=["bucket", "provider"], value_vars=["p50_ms", "p95_ms"],
                   var_name="percentile", value_name="ms")
    long["percentile"] = long["percentile"].str.replace("_ms", "")
    fig = px.line(long, x="bucket", y="ms", color="provider", line_dash="percentile",
                  color_discrete_sequence=_COLORS)
    return _style(fig, y_title="latency (ms)")


def errors_stacked(df: pd.DataFrame) -> go.Figure:
    data = df.groupby(["bucket", "error_type"], as_index=False)["errors"].sum()
    fig = px.bar(data, x="bucket", y="errors", color="error_type", color_discrete_sequence=px.colors.qualitative.Set2)
    fig.update_layout(barmode="stack")
    return _style(fig, y_title="failed attempts")


def fallback_lines(df: pd.DataFrame) -> go.Figure:
    fig = px.line(df, x="bucket", y="rate", color="tier", markers=True, color_discrete_sequence=_COLORS,
                  hover_data={"requests": True, "fallbacks": True})
    return _style(fig, y_title="fallback rate", pct=True)


def availability(df: pd.DataFrame) -> go.Figure:
    fig = px.line(df, x="bucket", y="availability", color="provider", color_discrete_sequence=_COLORS,
                  hover_data={"attempts": True})
    fig = _style(fig, y_title="successful attempts", pct=True)
    fig.update_yaxes(range=[0, 1.02])
    return fig
