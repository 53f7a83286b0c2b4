"""How an experiment's numbers read, for the Compare page and ``taelio experiment results`` alike.

The results module keeps floats (NaN where there is nothing, never 0, so
charts can use them); people read text. One place turns a per-variant row
into text with the project's one format for money, milliseconds and
percentages (``taelio_core.formatting``), and puts the variants in
the order that means something: best rated first when there is a
leaderboard, else the order the experiment lists them.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from taelio_core.experiments.results import ExperimentResults
from taelio_core.formatting import milliseconds as ms
from taelio_core.formatting import money, percent

__all__ = ["MISSING", "summary_table", "text_table", "variant_order"]

MISSING = "–"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _count(value: float | None) -> str:
    return MISSING if _missing(value) else f"{value:,.0f}"


def variant_order(res: ExperimentResults) -> list[str]:
    """Variant ids best first when there is a leaderboard; otherwise as the experiment lists them."""
    if res.leaderboard is not None:
        return [name for name, *_ in res.leaderboard.ranked()]
    return [v.variant_id for v in res.experiment.variants]


def summary_table(res: ExperimentResults) -> pd.DataFrame:
    """One text row per variant, in ``variant_order``: what the page's tables and the CLI print."""
    s = res.summary.set_index("variant").loc[variant_order(res)]
    board = res.leaderboard is not None
    table = pd.DataFrame({
        "Variant": s.label, "Model": s.model, "Calls": s.calls.map(_count),
        "Errors": s.error_rate.map(percent),
        "Mean latency": s.mean_latency_ms.map(ms), "p95 latency": s.p95_latency_ms.map(ms),
        "Tokens in": s.mean_input_tokens.map(_count), "Tokens out": s.mean_output_tokens.map(_count),
        "Cost per call": s.cost_per_call_usd.map(money), "Total cost": s.total_cost_usd.map(money),
        "Wins": s.wins.map(_count), "Losses": s.losses.map(_count), "Ties": s.ties.map(_count),
        "Cost per win": [money(v, unpriced=MISSING if not w else "unpriced")
                         for v, w in zip(s.cost_per_win_usd, s.wins, strict=True)],
        "Rating": s.rating.map(_count) if board else MISSING,
        "Rating 95% CI": [f"{lo:,.0f}–{hi:,.0f}" if board else MISSING
                          for lo, hi in zip(s.rating_low, s.rating_high, strict=True)],
    }, index=s.index)
    if "assertion_pass_rate" in s:
        table["Checks passed"] = s.assertion_pass_rate.map(percent)
    return table.reset_index(drop=True)


def text_table(table: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """A plain aligned table for a terminal: first column left, the rest right-aligned."""
    cols = list(columns or table.columns)
    body = [[str(v) for v in row] for row in table[cols].itertuples(index=False)]
    widths = [max(len(c), *(len(r[i]) for r in body)) if body else len(c) for i, c in enumerate(cols)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(cols), "  ".join("-" * w for w in widths), *(line(r) for r in body)]) + "\n"
