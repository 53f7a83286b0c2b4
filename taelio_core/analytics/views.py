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
from datetime import datetime, timedelta

import pandas as pd

from taelio_core.analytics import budget_burn, reliability, rollup, spend
from taelio_core.analytics.filters import Filters
from taelio_core.analytics.rollup import Reader
from taelio_core.analytics.time_buckets import TimeAxis, fine_rollups, time_axis
from taelio_core.calllog import CallLog
from taelio_core.config.policy_schema import Budgets

__all__ = ["HEALTH_DENSE_FROM", "HEALTH_HOURLY_UP_TO", "CostsView", "HealthView", "costs_view", "health_view"]

# Health charts stay hourly (or finer) up to a month: a 3.5-hour outage must show, not average into a day;
# when the traffic is dense enough for an hourly rate to mean something (HEALTH_DENSE_FROM attempts an hour).
HEALTH_HOURLY_UP_TO = timedelta(days=31)
HEALTH_DENSE_FROM = 2.0


@dataclass(frozen=True, kw_only=True)
class CostsView:
    headline: spend.Headline
    axis: TimeAxis                   # the bucket of every chart over time
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
        axis = time_axis(r, filters, now=now)
        with fine_rollups(r, axis):
            cost = spend.cost_by_provider_tier(r, filters, bucket=axis.bucket)
            usage = spend.usage_over_time(r, filters, bucket=axis.bucket)
        return CostsView(
            headline=spend.headline(r, filters),
            axis=axis,
            cost=cost,
            by_provider=spend.spend_by(r, filters, "provider"),
            by_task=spend.spend_by(r, filters, "task"),
            by_tier=spend.spend_by(r, filters, "tier"),
            usage=usage,
            distribution=spend.cost_distribution_by_model(r, filters),
            budget_status=budget_burn.budget_status(r, budgets, filters, now=now),
            budget_curve=budget_burn.budget_burndown(r, budgets, filters, now=now),
        )
    return rollup.read(log, read)


@dataclass(frozen=True, kw_only=True)
class HealthView:
    axis: TimeAxis                   # the bucket of every chart over time
    success: pd.DataFrame            # per provider
    latency: pd.DataFrame            # per provider: p50/p95/p99, TTFT
    latency_over_time: pd.DataFrame
    errors: pd.DataFrame             # per provider x error type
    errors_over_time: pd.DataFrame
    fallback: pd.DataFrame           # per tier
    fallback_over_time: pd.DataFrame
    availability: pd.DataFrame


def health_view(log: CallLog | Reader, filters: Filters, *, now: datetime) -> HealthView:
    def read(r: Reader) -> HealthView:
        axis = time_axis(r, filters, now=now, hourly_up_to=HEALTH_HOURLY_UP_TO, dense_from=HEALTH_DENSE_FROM)
        with fine_rollups(r, axis):
            b = axis.bucket
            latency_over_time = reliability.latency_over_time(r, filters, bucket=b)
            errors_over_time = reliability.errors_over_time(r, filters, bucket=b)
            fallback_over_time = reliability.fallback_rate_over_time(r, filters, bucket=b)
            availability = reliability.availability_over_time(r, filters, bucket=b)
        return HealthView(
            axis=axis,
            success=reliability.success_by_provider(r, filters),
            latency=reliability.latency_by_provider(r, filters),
            latency_over_time=latency_over_time,
            errors=reliability.errors_by_type(r, filters),
            errors_over_time=errors_over_time,
            fallback=reliability.fallback_rate(r, filters),
            fallback_over_time=fallback_over_time,
            availability=availability,
        )
    return rollup.read(log, read)
