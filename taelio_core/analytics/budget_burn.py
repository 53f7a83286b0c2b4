"""Month-to-date spend against the policy's monthly budgets, and where it is heading.

Budgets live in the policy (``[budgets.tier]`` and ``[budgets.provider]``,
USD per calendar month in UTC; ``alert_pct`` defaults to 80). This module
only reads the log: it sums each tier's and provider's spend since the first
of the month in DuckDB (whole hours from the exact hourly rollup, the hour
holding ``now`` from the raw attempts up to ``now``), projects it to the month's end at the burn rate so
far, and says on which day the budget runs out at that rate.

Alerts, most severe first: **over** (100 % spent), **projected over** (the
month-end projection exceeds the limit), **alert** (``alert_pct`` reached).
"""
from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd

from taelio_core.analytics import rollup
from taelio_core.analytics.filters import Filters
from taelio_core.analytics.rollup import Reader
from taelio_core.calllog import CallLog
from taelio_core.policy import Budgets

__all__ = ["LEVELS", "budget_burndown", "budget_status", "month_bounds"]

LEVELS = ("ok", "alert", "projected over", "over")
Log = CallLog | Reader
# Early in a month a few hours of spend would project wildly: count at least this much elapsed time.
MIN_ELAPSED = timedelta(hours=6)


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    now = now.astimezone(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    days = calendar.monthrange(now.year, now.month)[1]
    return start, start + timedelta(days=days)


def _limits(budgets: Budgets) -> list[tuple[str, str, Decimal, float]]:
    out = []
    for scope, table in (("tier", budgets.tier), ("provider", budgets.provider)):
        for name, limit in table.items():
            if limit.monthly is not None:
                out.append((scope, name, limit.monthly, limit.alert_pct))
    return out


def _month_sql(filters: Filters, start: datetime, now: datetime) -> tuple[str, list]:
    """SQL for this month's attempts up to ``now`` as (day, tier, provider, cost_usd) rows, and its parameters."""
    this_hour = max(now.astimezone(UTC).replace(minute=0, second=0, microsecond=0), start)
    sources = Filters(sources=filters.sources)
    rolled, rolled_params = sources.where(time_column="hour", extra=("hour >= ?", "hour < ?"))
    tail, tail_params = sources.where(extra=("ts >= ?", "ts <= ?"))
    sql = f"""
        SELECT hour::DATE AS day, tier, provider, cost_usd FROM attempt_rollup {rolled}
        UNION ALL
        SELECT (ts AT TIME ZONE 'UTC')::DATE, tier, provider, cost_usd FROM attempts {tail}"""
    return sql, [start.replace(tzinfo=None), this_hour.replace(tzinfo=None), *rolled_params,
                 this_hour, now, *tail_params]


def budget_burndown(log: Log, budgets: Budgets, filters: Filters, *, now: datetime) -> pd.DataFrame:
    """Per budget and day of this month so far: the day's spend and the cumulative spend (USD)."""
    limits = _limits(budgets)
    columns = ["scope", "name", "day", "spent_usd", "cumulative_usd"]
    if not limits:
        return pd.DataFrame(columns=columns)
    start, _end = month_bounds(now)
    month, params = _month_sql(filters, start, now)
    tiers = sorted({n for s, n, *_ in limits if s == "tier"}) or [""]
    providers = sorted({n for s, n, *_ in limits if s == "provider"}) or [""]
    marks_t = ", ".join("?" for _ in tiers)
    marks_p = ", ".join("?" for _ in providers)
    return rollup.read(log, lambda r: r.query(f"""
        WITH month AS (SELECT * FROM ({month}) WHERE cost_usd IS NOT NULL),
             daily AS (
                SELECT 'tier' AS scope, tier AS name, day, sum(cost_usd) AS spent
                FROM month WHERE tier IN ({marks_t}) GROUP BY ALL
                UNION ALL
                SELECT 'provider' AS scope, provider AS name, day, sum(cost_usd) AS spent
                FROM month WHERE provider IN ({marks_p}) GROUP BY ALL)
        SELECT scope, name, day, spent::DOUBLE AS spent_usd,
               (sum(spent) OVER (PARTITION BY scope, name ORDER BY day))::DOUBLE AS cumulative_usd
        FROM daily ORDER BY scope DESC, name, day""", [*params, *tiers, *providers]))


def budget_status(log: Log, budgets: Budgets, filters: Filters, *, now: datetime) -> pd.DataFrame:
    """One row per monthly budget: spent, share, month-end projection, run-out date, alert level."""
    limits = _limits(budgets)
    columns = ["scope", "name", "limit_usd", "alert_pct", "spent_usd", "spent_pct", "projected_usd",
               "projected_pct", "runs_out_on", "level", "alerts"]
    if not limits:
        return pd.DataFrame(columns=columns)
    start, end = month_bounds(now)
    elapsed = max(now.astimezone(UTC) - start, MIN_ELAPSED)
    month_span = end - start
    month, params = _month_sql(filters, start, now)

    def both(r: Reader) -> tuple[pd.DataFrame, pd.DataFrame]:
        totals = r.query(f"""
            WITH month AS ({month})
            SELECT 'tier' AS scope, tier AS name, sum(cost_usd)::VARCHAR AS spent FROM month GROUP BY tier
            UNION ALL
            SELECT 'provider', provider, sum(cost_usd)::VARCHAR FROM month GROUP BY provider""", params)
        return totals, budget_burndown(r, budgets, filters, now=now)

    totals, curve = rollup.read(log, both)
    spent_by = {(r["scope"], r["name"]): Decimal(r["spent"]) for r in totals.to_dict("records")
                if r["spent"] is not None and not pd.isna(r["spent"])}
    rows = []
    for scope, name, limit, alert_pct in limits:
        spent = spent_by.get((scope, name), Decimal(0))
        rate_per_s = spent / Decimal(elapsed.total_seconds())
        projected = rate_per_s * Decimal(month_span.total_seconds())
        runs_out = _runs_out_on(curve, scope, name, limit, spent, rate_per_s, start, end)
        pct = float(spent / limit * 100) if limit else (100.0 if spent else 0.0)
        proj_pct = float(projected / limit * 100) if limit else (100.0 if projected else 0.0)
        alerts = []
        if pct >= 100:
            alerts.append("over")
        if proj_pct > 100 and pct < 100:
            alerts.append("projected over")
        if alert_pct <= pct < 100:
            alerts.append("alert")
        level = max(alerts, key=LEVELS.index) if alerts else "ok"
        rows.append({"scope": scope, "name": name, "limit_usd": float(limit), "alert_pct": alert_pct,
                     "spent_usd": float(spent), "spent_pct": pct, "projected_usd": float(projected),
                     "projected_pct": proj_pct, "runs_out_on": runs_out, "level": level,
                     "alerts": ", ".join(alerts)})
    return pd.DataFrame(rows, columns=columns)


def _runs_out_on(curve: pd.DataFrame, scope: str, name: str, limit: Decimal, spent: Decimal,
                 rate_per_s: Decimal, start: datetime, end: datetime) -> date | None:
    """The day the budget is (or will be, at this rate) used up; None if not this month."""
    if spent >= limit:
        mine = curve[(curve["scope"] == scope) & (curve["name"] == name)
                     & (curve["cumulative_usd"] >= float(limit))]
        if len(mine):
            day = mine["day"].iloc[0]
            return day.date() if hasattr(day, "date") else day
        return None
    if rate_per_s <= 0:
        return None
    when = start + timedelta(seconds=float(limit / rate_per_s))
    return when.date() if when < end else None
