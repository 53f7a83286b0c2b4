"""Month-to-date spend against the policy's monthly budgets, and where it is heading.

Budgets live in the policy (``[budgets.tier]`` and ``[budgets.provider]``,
USD per calendar month in UTC; ``alert_pct`` defaults to 80). This module
only reads the log: ``budget_spend`` is **the** spend query for budgets, with
one rule about which rows count (``calllog.sources.BILLED_SOURCES``, ``budget_rule``). The
guard that enforces budgets (``budgets.spend_from_log``, hence ``taelio
health`` and the Health page) and the Costs page's cards read it, so they
show the same figure; the sidebar's filters do not apply to budgets (a budget
is what the provider will bill, whatever the page shows). From its rows this
module projects spend to the month's end at the burn rate so far, and says on
which day the budget runs out at that rate.

It reads the month's whole hours from the attempt rollup (``simulated`` is one of
its keys since migration ``014_attempt_rollup_simulated``: the rule needs it) and
only the current hour up to ``now`` from the raw ``attempts``, so it costs the
same on the 2nd of the month as on the 30th and gives exactly what the raw rows
give (sums of DECIMAL stay exact; the rollups are current inside the read).

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
from taelio_core.calllog.sources import BILLED_SOURCES
from taelio_core.config.policy_schema import Budgets

__all__ = ["LEVELS", "budget_burndown", "budget_rule", "budget_sources", "budget_spend", "budget_spend_from_raw",
           "budget_status", "month_bounds"]

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




def budget_sources(count_simulated: bool) -> tuple[str, ...]:
    """The sources whose spend counts: demo traffic only in a rehearsal on simulated calls (``count_simulated``)."""
    return (*BILLED_SOURCES, "demo") if count_simulated else BILLED_SOURCES


def budget_rule(count_simulated: bool) -> str:
    """The rule ``budget_spend`` applies, in words, for the pages and the CLI."""
    if count_simulated:
        return ("Budgets count the priced attempts of live and API traffic, experiments, provider tests and (a rehearsal: "
                "budgets.count_simulated is set) simulated and demo calls, this month (UTC); sandbox runs never "
                "count.")
    return ("Budgets count the priced attempts of live and API traffic, experiments and provider tests this month (UTC); "
            "demo data, sandbox runs and simulated calls never count.")


def budget_spend(log: Log, *, now: datetime, count_simulated: bool = False) -> pd.DataFrame:
    """This month's spend up to ``now`` that budgets count, per UTC day, tier and provider.

    Columns ``day`` (date), ``tier``, ``provider``, ``cost`` (exact, as text: ``Decimal(cost)``).
    """
    start, _end = month_bounds(now)
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)   # the hour still being written
    sources = budget_sources(count_simulated)
    # The rule, alike on both sides: priced, a counted source, not simulated unless a rehearsal says so.
    return rollup.read(log, lambda r: r.query(f"""
        SELECT day, tier, provider, sum(cost)::VARCHAR AS cost
        FROM (SELECT CAST(hour AS DATE) AS day, tier, provider, cost_usd AS cost FROM attempt_rollup
              WHERE hour >= ? AND hour < ? AND cost_usd IS NOT NULL
                    AND source IN ({', '.join('?' for _ in sources)}) AND (NOT simulated OR ?)
              UNION ALL
              SELECT CAST(ts AT TIME ZONE 'UTC' AS DATE), tier, provider, cost_usd FROM attempts
              WHERE ts >= ? AND ts <= ? AND cost_usd IS NOT NULL
                    AND source IN ({', '.join('?' for _ in sources)}) AND (NOT simulated OR ?)) AS month
        GROUP BY 1, 2, 3 ORDER BY day, tier, provider""",
        [start.replace(tzinfo=None), hour.replace(tzinfo=None), *sources, count_simulated,   # rollup hours: naive UTC
         hour, now, *sources, count_simulated]))


def budget_spend_from_raw(log: Log, *, now: datetime, count_simulated: bool = False) -> pd.DataFrame:
    """``budget_spend`` summed from the month's raw attempts alone: the reference it must equal, and what it cost
    before the rollup could answer it (the tests and ``benchmarks/bench_analytics.py`` compare the two)."""
    start, _end = month_bounds(now)
    sources = budget_sources(count_simulated)
    return rollup.read(log, lambda r: r.query(f"""
        SELECT CAST(ts AT TIME ZONE 'UTC' AS DATE) AS day, tier, provider, sum(cost_usd)::VARCHAR AS cost
        FROM attempts WHERE ts >= ? AND ts <= ? AND cost_usd IS NOT NULL
             AND source IN ({', '.join('?' for _ in sources)}) AND (NOT simulated OR ?)
        GROUP BY 1, 2, 3 ORDER BY day, tier, provider""", [start, now, *sources, count_simulated]), rollups=False)


def _daily(rows: pd.DataFrame, limits: list[tuple[str, str, Decimal, float]]) -> dict[tuple[str, str], dict]:
    """(scope, name) -> {day: Decimal spent} for each budget in ``limits``."""
    out: dict[tuple[str, str], dict] = {(scope, name): {} for scope, name, *_ in limits}
    for r in rows.itertuples(index=False):
        day = r.day.date() if hasattr(r.day, "date") else r.day
        for key in (("tier", str(r.tier)), ("provider", str(r.provider))):
            if key in out:
                out[key][day] = out[key].get(day, Decimal(0)) + Decimal(str(r.cost))
    return out


def budget_burndown(log: Log, budgets: Budgets, filters: Filters | None = None, *, now: datetime,
                    rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per budget and day of this month so far: the day's spend and the cumulative spend (USD).

    ``filters`` is accepted for symmetry with the page's other queries and ignored (see the module's docstring).
    """
    del filters
    limits = _limits(budgets)
    columns = ["scope", "name", "day", "spent_usd", "cumulative_usd"]
    if not limits:
        return pd.DataFrame(columns=columns)
    if rows is None:
        rows = budget_spend(log, now=now, count_simulated=budgets.count_simulated)
    out = []
    for (scope, name), days in sorted(_daily(rows, limits).items(), key=lambda kv: (kv[0][0] != "tier", kv[0])):
        total = Decimal(0)
        for day in sorted(days):
            total += days[day]
            out.append({"scope": scope, "name": name, "day": pd.Timestamp(day), "spent_usd": float(days[day]),
                        "cumulative_usd": float(total)})
    return pd.DataFrame(out, columns=columns)


def budget_status(log: Log, budgets: Budgets, filters: Filters | None = None, *, now: datetime) -> pd.DataFrame:
    """One row per monthly budget: spent, share, month-end projection, run-out date, alert level."""
    limits = _limits(budgets)
    columns = ["scope", "name", "limit_usd", "alert_pct", "spent_usd", "spent_pct", "projected_usd",
               "projected_pct", "runs_out_on", "level", "alerts"]
    if not limits:
        return pd.DataFrame(columns=columns)
    start, end = month_bounds(now)
    elapsed = max(now.astimezone(UTC) - start, MIN_ELAPSED)
    month_span = end - start
    spend_rows = budget_spend(log, now=now, count_simulated=budgets.count_simulated)
    curve = budget_burndown(log, budgets, filters, now=now, rows=spend_rows)
    spent_by = {key: sum(days.values(), Decimal(0)) for key, days in _daily(spend_rows, limits).items()}
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
    seconds = float(limit / rate_per_s)
    if seconds >= (end - start).total_seconds():      # not this month (and no date past datetime's range)
        return None
    when = start + timedelta(seconds=seconds)
    return when.date() if when < end else None
