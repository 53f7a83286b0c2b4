"""Everything the Costs and Health pages chart, each read in one go.

Why: every read of the call log opens the DuckDB file (the log is shared
with the CLI and other processes, so nobody holds it), and opening and
closing costs 30-120 ms on a busy machine whatever the file's size, more
than the rollup queries themselves. A page that ran its nine queries one by
one paid that nine times. Here a page's queries share one ``rollup.read``:
one open, one rollup refresh, one consistent snapshot, and one cache entry
in the dashboard.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from taelio_core.analytics import budget_burn, reliability, rollup, spend
from taelio_core.analytics.filters import Filters
from taelio_core.analytics.rollup import Reader
from taelio_core.calllog import CallLog
from taelio_core.policy import Budgets

__all__ = ["CostsView", "HealthView", "costs_view", "health_view"]


@dataclass(frozen=True, kw_only=True)
class CostsView:
    headline: spend.Headline
    cost: pd.DataFrame               # per time bucket x provider x tier
    by_provider: pd.DataFrame
    by_task: pd.DataFrame
    by_tier: pd.DataFrame
    usage: pd.DataFrame
    distribution: pd.DataFrame       # cost per request by model
    budget_status: pd.DataFrame
    budget_curve: pd.DataFrame


def costs_view(log: CallLog | Reader, filters: Filters, budgets: Budgets, *, now: datetime) -> CostsView:
    def read(r: Reader) -> CostsView:
        return CostsView(
            headline=spend.headline(r, filters),
            cost=spend.cost_by_provider_tier(r, filters),
            by_provider=spend.spend_by(r, filters, "provider"),
            by_task=spend.spend_by(r, filters, "task"),
            by_tier=spend.spend_by(r, filters, "tier"),
            usage=spend.usage_over_time(r, filters),
            distribution=spend.cost_distribution_by_model(r, filters),
            budget_status=budget_burn.budget_status(r, budgets, filters, now=now),
            budget_curve=budget_burn.budget_burndown(r, budgets, filters, now=now),
        )
    return rollup.read(log, read)


@dataclass(frozen=True, kw_only=True)
class HealthView:
    success: pd.DataFrame            # per provider
    latency: pd.DataFrame            # per provider: p50/p95/p99, TTFT
    latency_over_time: pd.DataFrame
    errors: pd.DataFrame             # per provider x error type
    errors_over_time: pd.DataFrame
    fallback: pd.DataFrame           # per tier
    fallback_over_time: pd.DataFrame
    availability: pd.DataFrame


def health_view(log: CallLog | Reader, filters: Filters) -> HealthView:
    def read(r: Reader) -> HealthView:
        return HealthView(
            success=reliability.success_by_provider(r, filters),
            latency=reliability.latency_by_provider(r, filters),
            latency_over_time=reliability.latency_over_time(r, filters),
            errors=reliability.errors_by_type(r, filters),
            errors_over_time=reliability.errors_over_time(r, filters),
            fallback=reliability.fallback_rate(r, filters),
            fallback_over_time=reliability.fallback_rate_over_time(r, filters),
            availability=reliability.availability_over_time(r, filters),
        )
    return rollup.read(log, read)
