"""Plotly figures for the dashboard, built from the analytics DataFrames.

Each function takes the small, already-aggregated frame that
``taelio_core.analytics`` returned and only draws it. Building a figure with
plotly express costs 0.1-0.8 s of CPU (profiled: ~2 s for the Costs page's
eight, more than reading the data), so each figure is kept with
``st.cache_resource`` keyed on its input frame: a page revisited with the
same data redraws at once, and new data (a new frame) builds a new figure.
Figures are only read after they are built (``st.plotly_chart`` serialises
them), so sharing one between sessions is safe.

Charts over time take the page's ``TimeAxis``: ticks read in its bucket
(minutes, hours, days), a bucket with one point is drawn as a marker, and the
last bucket, when it was still filling, is shaded "so far" so its lower
count does not read as a cliff. A chart with nothing to draw is a sentence
(``show``), never an empty frame.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from taelio_core.analytics.time_buckets import TimeAxis

__all__ = ["show", "availability", "burndown", "cost_box", "cost_stacked", "errors_stacked", "fallback_lines",
           "latency_lines", "share_pie", "spend_bars", "tokens_area"]

_HEIGHT = 330
_figure_cache = st.cache_resource(ttl=600, max_entries=128, show_spinner=False)
_COLORS = px.colors.qualitative.Safe


def show(title: str, frame: pd.DataFrame, draw: Callable[..., go.Figure], key: str, *, empty: str,
         **kwargs: object) -> None:
    """A chart under its heading: ``draw(frame, **kwargs)``, or the sentence ``empty`` when it has no rows."""
    if title:
        st.subheader(title)
    if frame is None or frame.empty:
        st.caption(empty)
        return
    st.plotly_chart(draw(frame, **kwargs), key=key)


_TICKS = {"minute": "%H:%M", "hour": "%d %b %H:%M", "day": "%d %b", "week": "%d %b %Y"}
_HOVER = {"minute": "%d %b %H:%M UTC", "hour": "%d %b %H:00 UTC", "day": "%d %b %Y", "week": "week of %d %b %Y"}


def _sparse(df: pd.DataFrame, series: str | None = None) -> bool:
    """True when some series has a single point: a line through one point draws nothing, a marker does."""
    if series is None or series not in df:
        return df["bucket"].nunique() < 2
    return bool(df.groupby(series)["bucket"].nunique().min() < 2)


def _over_time(fig: go.Figure, axis: TimeAxis, buckets: pd.Series, *, bars: bool = False) -> go.Figure:
    """Ticks and hover in the axis' bucket, room around a single bucket, and the partial last bucket shaded."""
    length = pd.Timedelta(axis.length)
    fig.update_xaxes(tickformat=_TICKS[axis.bucket], hoverformat=_HOVER[axis.bucket])
    xs = pd.to_datetime(buckets).dropna()
    if len(xs) and xs.nunique() < 4:            # Plotly would zoom to a sliver of a millisecond around it
        fig.update_xaxes(range=[xs.min() - length, xs.max() + 2 * length])
    if bars:
        fig.update_traces(width=length.total_seconds() * 1000 * 0.8, offset=0, selector=dict(type="bar"))
    if axis.partial_from is not None:
        start = pd.Timestamp(axis.partial_from).tz_convert("UTC").tz_localize(None)
        fig.add_vrect(x0=start, x1=start + length, fillcolor="#8a8fa3", opacity=0.12, line_width=0, layer="below",
                      annotation_text="so far", annotation_position="top left")
    return fig


def _style(fig: go.Figure, *, y_title: str = "", money: bool = False, pct: bool = False) -> go.Figure:
    fig.update_layout(template="plotly_white", height=_HEIGHT, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, title_text=""),
                      hovermode="x unified", yaxis_title=y_title, xaxis_title="")
    if money:
        fig.update_yaxes(tickprefix="$")
    if pct:
        fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return fig


@_figure_cache
def cost_stacked(df: pd.DataFrame, *, axis: TimeAxis) -> go.Figure:
    data = df.assign(series=df["provider"] + " · " + df["tier"], cost_usd=df["cost_usd"].fillna(0.0))
    fig = px.bar(data, x="bucket", y="cost_usd", color="series", color_discrete_sequence=_COLORS,
                 labels={"cost_usd": "cost", "bucket": ""}, hover_data={"attempts": True, "unpriced": True})
    fig.update_layout(barmode="stack")
    return _over_time(_style(fig, y_title="USD", money=True), axis, data["bucket"], bars=True)


@_figure_cache
def share_pie(df: pd.DataFrame, *, names: str) -> go.Figure:
    data = df[df["cost_usd"].fillna(0) > 0]
    fig = px.pie(data, names=names, values="cost_usd", hole=0.5, color_discrete_sequence=_COLORS)
    fig.update_traces(textinfo="percent+label", hovertemplate="%{label}: $%{value:,.4f}<extra></extra>")
    fig.update_layout(showlegend=False)
    return _style(fig)


@_figure_cache
def tokens_area(df: pd.DataFrame, *, axis: TimeAxis) -> go.Figure:
    long = df.melt(id_vars="bucket", value_vars=["input_tokens", "output_tokens"], var_name="kind",
                   value_name="tokens")
    long["kind"] = long["kind"].str.replace("_tokens", "")
    fig = px.area(long, x="bucket", y="tokens", color="kind", color_discrete_sequence=_COLORS,
                  markers=_sparse(long, "kind"))
    return _over_time(_style(fig, y_title="tokens"), axis, long["bucket"])


@_figure_cache
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


@_figure_cache
def spend_bars(df: pd.DataFrame, *, by: str) -> go.Figure:
    data = df.head(10).iloc[::-1]
    fig = px.bar(data, x="cost_usd", y=by, orientation="h", color_discrete_sequence=_COLORS,
                 hover_data={"requests": True, "share": ":.1%"}, labels={"cost_usd": "USD", by: ""})
    fig.update_layout(hovermode="closest")
    fig = _style(fig)
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(tickprefix="$")
    return fig


@_figure_cache
def burndown(curve: pd.DataFrame, status: pd.DataFrame, *, month_start: datetime, month_end: datetime,
             now: datetime) -> go.Figure:
    """Every budget of one scope on one chart, as a share of its limit: spent so far (solid), the
    projection to month end (dashed), the 100 % line and the lowest alert level."""
    fig = go.Figure()
    for i, row in enumerate(status.to_dict("records")):
        color = _COLORS[i % len(_COLORS)]
        mine = curve[(curve["scope"] == row["scope"]) & (curve["name"] == row["name"])]
        limit = row["limit_usd"] or float("nan")
        fig.add_trace(go.Scatter(x=list(mine["day"]), y=list(mine["cumulative_usd"] / limit), mode="lines",
                                 name=row["name"], legendgroup=row["name"], line=dict(color=color, width=3),
                                 hovertemplate=f"{row['name']}: %{{y:.1%}} of ${row['limit_usd']:,.0f}<extra></extra>"))
        fig.add_trace(go.Scatter(x=[now, month_end], y=[row["spent_pct"] / 100, row["projected_pct"] / 100],
                                 mode="lines", name=f"{row['name']} projected", legendgroup=row["name"],
                                 showlegend=False, line=dict(color=color, dash="dash"),
                                 hovertemplate=f"{row['name']} projected: %{{y:.1%}}<extra></extra>"))
    fig.add_hline(y=1.0, line=dict(color="#c0392b", width=1), annotation_text="budget",
                  annotation_position="top left")
    alert = status["alert_pct"].min() / 100
    fig.add_hline(y=alert, line=dict(color="#e67e22", width=1, dash="dot"),
                  annotation_text=f"{alert:.0%} alert", annotation_position="bottom left")
    fig = _style(fig, y_title="share of budget", pct=True)
    fig.update_layout(hovermode="closest", height=280)
    fig.update_xaxes(range=[month_start, month_end], tickformat="%d %b")
    return fig


@_figure_cache
def latency_lines(df: pd.DataFrame, *, axis: TimeAxis) -> go.Figure:
    long = df.melt(id_vars=["bucket", "provider"], value_vars=["p50_ms", "p95_ms"],
                   var_name="percentile", value_name="ms")
    long["percentile"] = long["percentile"].str.replace("_ms", "")
    fig = px.line(long, x="bucket", y="ms", color="provider", line_dash="percentile",
                  color_discrete_sequence=_COLORS, markers=_sparse(df, "provider"))
    return _over_time(_style(fig, y_title="latency (ms)"), axis, long["bucket"])


@_figure_cache
def errors_stacked(df: pd.DataFrame, *, axis: TimeAxis) -> go.Figure:
    data = df.groupby(["bucket", "error_type"], as_index=False)["errors"].sum()
    fig = px.bar(data, x="bucket", y="errors", color="error_type", color_discrete_sequence=px.colors.qualitative.Set2,
                 labels={"error_type": "error"})
    fig.update_layout(barmode="stack")
    return _over_time(_style(fig, y_title="failed attempts"), axis, data["bucket"], bars=True)


@_figure_cache
def fallback_lines(df: pd.DataFrame, *, axis: TimeAxis) -> go.Figure:
    fig = px.line(df, x="bucket", y="rate", color="tier", markers=_sparse(df, "tier") or len(df) <= 48,
                  color_discrete_sequence=_COLORS, hover_data={"requests": True, "fallbacks": True})
    return _over_time(_style(fig, y_title="fallback rate", pct=True), axis, df["bucket"])


@_figure_cache
def availability(df: pd.DataFrame, *, axis: TimeAxis) -> go.Figure:
    fig = px.line(df, x="bucket", y="availability", color="provider", color_discrete_sequence=_COLORS,
                  hover_data={"attempts": True}, markers=_sparse(df, "provider"))
    fig = _style(fig, y_title="successful attempts", pct=True)
    fig.update_yaxes(range=[0, 1.02])
    return _over_time(fig, axis, df["bucket"])
