"""Live traffic splits, read back from the call log with the experiments' statistics.

The router records the arm it chose in ``routing_reason`` ("split
pro.idea=claude", see ``TrafficSplit.reason``). Here each arm gets its
success rate with a Wilson interval, mean and p95 latency and cost per
call, and the two busiest arms are compared: success rates with Fisher's
exact test, latencies with the Mann–Whitney U test (latency is skewed, so no
t-test). Requests are independent here, not paired, so these are the
unpaired counterparts of the tests used for experiments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from scipy import stats as sps

from taelio_core.calllog.base import CallLog
from taelio_core.experiments.stats import wilson

__all__ = ["SplitAnalysis", "analyse_splits"]

ARM_PATTERN = r"split ([a-z0-9_\-]+)\.([a-z0-9_\-]+)=([a-z0-9_\-]+)"


@dataclass(frozen=True, kw_only=True)
class SplitAnalysis:
    tier: str
    task: str
    arms: pd.DataFrame          # one row per arm
    sentences: tuple[str, ...]  # plain-words comparison of the two busiest arms


def analyse_splits(log: CallLog, *, since: datetime | None = None, source: str | None = None) -> list[SplitAnalysis]:
    where = "routing_reason LIKE '%split %'"
    params: list[object] = []
    if since is not None:
        where += " AND ts >= ?"
        params.append(since)
    if source is not None:
        where += " AND source = ?"
        params.append(source)
    df = log.query(f"""
        SELECT regexp_extract(routing_reason, '{ARM_PATTERN}', 1) AS split_tier,
               regexp_extract(routing_reason, '{ARM_PATTERN}', 2) AS split_task,
               regexp_extract(routing_reason, '{ARM_PATTERN}', 3) AS arm,
               status, latency_ms, CAST(cost_usd AS DOUBLE) AS cost_usd, provider, model
        FROM requests WHERE {where}""", params)
    df = df[df.arm != ""]
    out = []
    for (tier, task), group in df.groupby(["split_tier", "split_task"], sort=True):
        out.append(_analyse(str(tier), str(task), group))
    return out


def _analyse(tier: str, task: str, df: pd.DataFrame) -> SplitAnalysis:
    rows = []
    for arm, g in df.groupby("arm", sort=True):
        ok = g[g.status == "ok"]
        ci = wilson(len(ok), len(g))
        lat = ok.latency_ms.dropna().to_numpy(dtype=float)
        priced = g.cost_usd.notna().all()
        served = ok.provider.fillna("?") + ":" + ok.model.fillna("?")
        rows.append({"arm": arm, "requests": len(g), "ok": len(ok), "success_rate": ci.estimate,
                     "success_low": ci.low, "success_high": ci.high,
                     "mean_latency_ms": float(lat.mean()) if lat.size else math.nan,
                     "p95_latency_ms": float(np.quantile(lat, 0.95)) if lat.size else math.nan,
                     "cost_per_call_usd": float(g.cost_usd.mean()) if priced else math.nan,
                     "total_cost_usd": float(g.cost_usd.sum()) if priced else math.nan,
                     "served_by": served.value_counts().index[0] if len(served) else ""})
    arms = pd.DataFrame(rows).sort_values("requests", ascending=False).reset_index(drop=True)
    sentences: list[str] = []
    if len(arms) >= 2:
        a, b = arms.iloc[0], arms.iloc[1]
        table = [[int(a.ok), int(a.requests - a.ok)], [int(b.ok), int(b.requests - b.ok)]]
        p_success = float(sps.fisher_exact(table).pvalue)
        better = a if a.success_rate >= b.success_rate else b
        worse = b if better is a else a
        rates = (f"{better.arm} {better.success_rate:.1%} (95% CI {better.success_low:.1%}–{better.success_high:.1%}) "
                 f"vs {worse.arm} {worse.success_rate:.1%} (95% CI {worse.success_low:.1%}–{worse.success_high:.1%})")
        if p_success < 0.05:
            sentences.append(f"Success rate: {rates}; the difference is real (Fisher's exact p = {p_success:.3f}).")
        else:
            sentences.append(f"Success rate: {rates}; no real difference yet (p = {p_success:.2f}).")
        la = df[(df.arm == a.arm) & (df.status == "ok")].latency_ms.dropna()
        lb = df[(df.arm == b.arm) & (df.status == "ok")].latency_ms.dropna()
        if len(la) and len(lb):
            p_lat = float(sps.mannwhitneyu(la, lb, alternative="two-sided").pvalue)
            faster = a if la.median() <= lb.median() else b
            slower = b if faster is a else a
            median = {a.arm: la.median(), b.arm: lb.median()}
            head = (f"Latency: {faster.arm} median {median[faster.arm]:.0f} ms vs {slower.arm} "
                    f"{median[slower.arm]:.0f} ms")
            sentences.append(head + (f"; {faster.arm} is faster (Mann–Whitney p = {p_lat:.3f})." if p_lat < 0.05
                                     else f"; no real difference yet (p = {p_lat:.2f})."))
    return SplitAnalysis(tier=tier, task=task, arms=arms, sentences=tuple(sentences))
