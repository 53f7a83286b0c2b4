"""What a sandbox run measured: per tier, per provider, over virtual time, and A against B.

The numbers a product team decides on, per tier: cost, latency p50/p95/p99
of answered requests, fallback rate (requests whose first attempt did not
answer), availability (share answered) and budget burn (cost against the
tier's monthly budget, also projected over a month at this rate). Per
provider: its share of the answers, attempts, error rates by class, cost
and latency. ``compare`` turns several seeds of A and B into deltas with a
band (lowest and highest per-seed delta) so a difference within noise is
visibly within noise.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from taelio_core.config.policy import RoutingPolicy
from taelio_core.sandbox.replay import ArmRun

__all__ = ["METRICS", "compare", "provider_summary", "tier_summary", "time_series"]

# metric -> (label, True when higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "requests": ("requests", True),
    "availability": ("availability", True),
    "fallback_rate": ("fallback rate", False),
    "cost_usd": ("cost (USD)", False),
    "cost_per_1k": ("cost per 1k requests (USD)", False),
    "p50_ms": ("latency p50 (ms)", False),
    "p95_ms": ("latency p95 (ms)", False),
    "p99_ms": ("latency p99 (ms)", False),
    "budget_burn_pct": ("budget burn (% of monthly)", False),
    "projected_month_pct": ("projected monthly burn (%)", False),
}
MONTH_S = 30 * 86_400.0


def _quantiles(values: pd.Series) -> tuple[float, float, float]:
    if values.empty:
        return math.nan, math.nan, math.nan
    q = np.quantile(values.to_numpy(dtype=float), [0.5, 0.95, 0.99])
    return float(q[0]), float(q[1]), float(q[2])


def _group_row(df: pd.DataFrame) -> dict[str, float]:
    n = len(df)
    ok = df[df["status"] == "ok"]
    p50, p95, p99 = _quantiles(ok["latency_ms"])
    cost = float(df["cost_usd"].sum())
    return {"requests": n, "served": len(ok), "availability": len(ok) / n if n else math.nan,
            "fallback_rate": float(((df["fallback_depth"] > 0) | (df["n_skipped"] > 0)).mean()) if n else math.nan,
            "cost_usd": cost, "cost_per_1k": cost / n * 1000 if n else math.nan,
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
            "unpriced": int(df["unpriced"].sum())}


def tier_summary(run: ArmRun, policy: RoutingPolicy, duration_s: float) -> pd.DataFrame:
    """One row per tier plus ``all``."""
    rows = []
    df = run.requests
    for tier, group in list(df.groupby("tier", sort=False)) + [("all", df)]:
        row = {"tier": tier, **_group_row(group)}
        budget = _tier_budget(policy, tier)
        row["budget_usd"] = budget
        row["budget_burn_pct"] = row["cost_usd"] / budget * 100 if budget else math.nan
        row["projected_month_pct"] = (row["cost_usd"] / max(duration_s, 1.0) * MONTH_S / budget * 100
                                      if budget else math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def _tier_budget(policy: RoutingPolicy, tier: str) -> float | None:
    if tier == "all":
        limits = [b.monthly for b in policy.model.budgets.tier.values() if b.monthly is not None]
        return float(sum(limits)) if limits else None
    limit = policy.model.budgets.tier.get(tier)
    return float(limit.monthly) if limit is not None and limit.monthly is not None else None


def provider_summary(run: ArmRun) -> pd.DataFrame:
    """One row per provider:model that was tried."""
    att = run.attempts
    total_served = max(1, int((run.requests["status"] == "ok").sum()))
    rows = []
    for (provider, model), group in att.groupby(["provider", "model"], sort=True):
        ok = group[group["status"] == "ok"]
        p50, p95, p99 = _quantiles(ok["latency_ms"])
        row = {"provider": provider, "model": model, "attempts": len(group), "served": len(ok),
               "share_of_answers": len(ok) / total_served, "success_rate": len(ok) / len(group),
               "cost_usd": float(group["cost_usd"].fillna(0).sum()), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}
        errors = group["error_type"].value_counts()
        for error, count in errors.items():
            row[f"err_{error}"] = count / len(group)
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.fillna({c: 0.0 for c in out.columns if c.startswith("err_")}) if not out.empty else out


def time_series(run: ArmRun, *, buckets: int = 48) -> pd.DataFrame:
    """Per bucket of virtual time: answers by provider, availability, fallback rate, p95 latency."""
    req = run.requests
    if req.empty:
        return pd.DataFrame(columns=["bucket_s", "provider", "served", "availability", "fallback_rate", "p95_ms"])
    horizon = max(float(req["arrival_s"].max()), 1.0)
    width = horizon / buckets
    bucket = np.minimum((req["arrival_s"].to_numpy() // width).astype(int), buckets - 1)
    req = req.assign(bucket_s=bucket * width)
    served = (req[req["status"] == "ok"].groupby(["bucket_s", "provider"]).size().rename("served")
              .reset_index())
    overall = req.groupby("bucket_s").apply(_bucket_row, include_groups=False).reset_index()
    return served.merge(overall, on="bucket_s", how="right")


def _bucket_row(df: pd.DataFrame) -> pd.Series:
    ok = df["status"] == "ok"
    latencies = df.loc[ok, "latency_ms"]
    return pd.Series({"availability": float(ok.mean()),
                      "fallback_rate": float(((df["fallback_depth"] > 0) | (df["n_skipped"] > 0)).mean()),
                      "p95_ms": float(np.quantile(latencies, 0.95)) if len(latencies) else math.nan,
                      "requests": len(df)})


def compare(a_runs: Sequence[ArmRun], b_runs: Sequence[ArmRun], policy_a: RoutingPolicy,
            policy_b: RoutingPolicy, duration_s: float) -> pd.DataFrame:
    """Per tier and metric: A and B (mean over seeds), B - A with its band across seeds, and which is better."""
    per_seed = []
    for a, b in zip(a_runs, b_runs):
        sa = tier_summary(a, policy_a, duration_s).set_index("tier")
        sb = tier_summary(b, policy_b, duration_s).set_index("tier")
        per_seed.append((sa, sb))
    rows = []
    tiers = list(dict.fromkeys(t for sa, sb in per_seed for t in list(sa.index) + list(sb.index)))
    for tier in tiers:
        for metric, (label, higher_better) in METRICS.items():
            a_vals = [_get(sa, tier, metric) for sa, _ in per_seed]
            b_vals = [_get(sb, tier, metric) for _, sb in per_seed]
            deltas = [bv - av for av, bv in zip(a_vals, b_vals)]
            finite = [d for d in deltas if not math.isnan(d)]
            delta = float(np.mean(finite)) if finite else math.nan
            low = float(min(finite)) if finite else math.nan
            high = float(max(finite)) if finite else math.nan
            # Noise: how far one policy's own figure moves from seed to seed. A difference no larger than
            # that (or a per-seed band that holds zero) is "same", even if every seed leans one way.
            noise = max(_spread(a_vals), _spread(b_vals))
            if not finite or metric == "requests" or (low <= 0 <= high and len(finite) > 1):
                verdict = "same" if finite else ""
            elif delta == 0 or abs(delta) <= noise:
                verdict = "same"
            else:
                verdict = "B better" if (delta > 0) == higher_better else "A better"
            rows.append({"tier": tier, "metric": metric, "label": label, "a": _nanmean(a_vals), "b": _nanmean(b_vals),
                         "delta": delta, "delta_low": low, "delta_high": high, "seeds": len(per_seed),
                         "verdict": verdict})
    return pd.DataFrame(rows)


def _get(frame: pd.DataFrame, tier: str, metric: str) -> float:
    if tier not in frame.index or metric not in frame.columns:
        return math.nan
    value = frame.at[tier, metric]
    return math.nan if value is None else float(value)


def _spread(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(max(finite) - min(finite)) if len(finite) > 1 else 0.0


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan
