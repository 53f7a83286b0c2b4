"""The Costs page's larger pieces: headline figures, budget cards and the export buttons."""
from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from taelio_core import analytics as A
from taelio_core.wiring import Taelio
from ui import charts
from ui.text import fmt_pct, fmt_tokens, money

__all__ = ["render_budgets", "render_export", "render_headline"]

_LEVEL_BOX = {"over": st.error, "projected over": st.warning, "alert": st.warning}
_LEVEL_TEXT = {"over": "over budget", "projected over": "projected to go over by month end",
               "alert": "alert threshold reached", "ok": "on track"}


def render_headline(h: A.Headline, filters: A.Filters) -> None:
    days = (filters.end - filters.start).days + 1 if filters.start and filters.end else None
    delta = None
    if h.spend_change is not None:
        delta = f"{h.spend_change:+,.0%} vs prev. {days} d"      # short: a metric's delta is one line
    elif days and not h.previous_covered:
        delta = "too little history"
    elif days:
        delta = f"prev. {days} d: {money(h.previous_spend_usd, unpriced='none')}"
    cols = st.columns(5)
    cols[0].metric("Spend", money(h.spend_usd, unpriced="no priced calls"), delta=delta,
                   delta_color="inverse" if h.spend_change is not None else "off",
                   delta_arrow="auto" if h.spend_change is not None else "off",
                   help="Sum of every priced attempt in the period (failed attempts that were billed included)"
                        + (f", against the {days} days before it ({money(h.previous_spend_usd, unpriced='none')})."
                           if days and h.previous_covered else
                           f". The log does not reach back over the {days} days before it, so there is no "
                           "comparison." if days else "."))
    cols[1].metric("Requests", f"{h.requests:,}", help=f"{h.ok_requests:,} answered")
    cols[2].metric("Cost per request", money(h.cost_per_request, unpriced="–"))
    cols[3].metric("Tokens", fmt_tokens(h.input_tokens + h.output_tokens), delta_color="off", delta_arrow="off",
                   delta=f"{fmt_tokens(h.input_tokens)} in · {fmt_tokens(h.output_tokens)} out")
    cols[4].metric("Unpriced calls", f"{h.unpriced_attempts:,}", delta=fmt_pct(h.unpriced_share) + " of billed",
                   delta_color="off", delta_arrow="off",
                   help="Attempts that used tokens but whose model has no known price. Their cost is missing "
                        "from the totals: it is never counted as $0.")


def render_budgets(engine: Taelio, status: pd.DataFrame, curve: pd.DataFrame, now: datetime) -> None:
    """Budget cards and burn-down charts from ``A.budget_status`` and ``A.budget_burndown``."""
    if status.empty:
        st.info("No monthly budgets are set. Add them to the policy file under `[budgets.tier]` and "
                "`[budgets.provider]` (USD per calendar month); see the README.", icon=":material/savings:")
        return
    start, end = A.month_bounds(now)
    st.caption(f"Month to date ({start:%B %Y}, UTC), against the monthly budgets in the policy "
               f"`{engine.policy.name}`. Charts: spent as a share of each budget (solid) and the projection to "
               "month end at the current rate (dashed).")
    for scope in ("tier", "provider"):
        rows = status[status["scope"] == scope]
        if rows.empty:
            continue
        st.markdown(f"**Per {scope}**")
        cols = st.columns(min(3, len(rows)))
        for i, row in enumerate(rows.to_dict("records")):
            with cols[i % len(cols)].container(border=True):
                _budget_card(pd.Series(row))
        st.plotly_chart(charts.burndown(curve, rows, month_start=start, month_end=end, now=now),
                        key=f"burn-{scope}", config={"displayModeBar": False})


def _budget_card(row: pd.Series) -> None:
    st.markdown(f"**{row['name']}** · {money(row['spent_usd'])} of {money(row['limit_usd'])}")
    st.progress(min(row["spent_pct"] / 100, 1.0), text=f"{row['spent_pct']:.0f} % spent")
    runs_out = row["runs_out_on"]
    out_text = f"runs out on {runs_out:%d %b}" if runs_out is not None else "does not run out this month"
    st.caption(f"Projected {money(row['projected_usd'])} by month end ({row['projected_pct']:.0f} %); "
               f"at this rate it {out_text}.")
    box = _LEVEL_BOX.get(row["level"])
    if box is not None:
        box(f"{row['scope'].capitalize()} {row['name']}: {_LEVEL_TEXT[row['level']]} "
            f"({row['alerts']}).", icon=":material/warning:")


def render_export(engine: Taelio, filters: A.Filters, requests: int) -> None:
    st.caption(f"The {requests:,} filtered requests, one row each (prompts and outputs left out).")
    c1, c2, _ = st.columns([1, 1, 3])
    c1.download_button("CSV", data=lambda: A.export_requests(engine.log, filters, "csv"),
                       file_name="taelio-requests.csv", mime="text/csv", icon=":material/download:",
                       on_click="ignore")
    c2.download_button("Parquet", data=lambda: A.export_requests(engine.log, filters, "parquet"),
                       file_name="taelio-requests.parquet", mime="application/vnd.apache.parquet",
                       icon=":material/download:", on_click="ignore")
