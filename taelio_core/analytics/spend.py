"""Where the money and the tokens went: cost, usage and the headline figures.

Spend is summed over *attempts*, so a failed attempt that was billed counts,
and a provider is charged for what it served or tried. An attempt that used
tokens but has no known price is *unpriced*: its cost stays NULL (never 0),
and the figures here count such attempts so the UI can say how much of the
total is missing. Every aggregation runs in DuckDB, over the hourly rollups
(``rollup.py``): sums and counts there are exact, so every figure here is
exactly what the same sum over the raw rows gives; only the cost-per-request
quartiles come from a histogram (within ``rollup.QUANTILE_ERROR``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import pandas as pd

from taelio_core.analytics import rollup
from taelio_core.analytics.filters import Filters, bucket_for, check_bucket
from taelio_core.analytics.rollup import Reader
from taelio_core.calllog import CallLog

__all__ = ["DIMENSIONS", "Headline", "cost_by_provider_tier", "cost_distribution_by_model", "headline",
           "spend_by", "usage_over_time"]

# Columns a "most expensive ..." breakdown may group by (a closed set: safe in SQL text).
DIMENSIONS = ("task", "tier", "provider", "model", "source")
# An attempt that used no tokens cost nothing even when it has no price; a group of only unpriced
# attempts stays NULL (as sum() over raw rows mapping unpriced costs to NULL and the rest to 0 would).
_COST = "(CASE WHEN sum(attempts) > sum(unpriced) THEN coalesce(sum(cost_usd), 0) END)::DOUBLE PRECISION"
Log = CallLog | Reader


def _bucket(bucket: str | None, filters: Filters) -> str:
    return check_bucket(bucket or bucket_for(filters))


def cost_by_provider_tier(log: Log, filters: Filters, *, bucket: str | None = None) -> pd.DataFrame:
    """One row per time bucket x provider x tier: cost (NULL when nothing in it was priced), attempts, unpriced."""
    b = _bucket(bucket, filters)
    where, params = filters.where(time_column="hour")
    return rollup.read(log, lambda r: r.query(f"""
        SELECT date_trunc('{b}', hour) AS bucket, provider, tier, {_COST} AS cost_usd,
               sum(attempts)::BIGINT AS attempts, sum(unpriced)::BIGINT AS unpriced
        FROM attempt_rollup {where}
        GROUP BY 1, 2, 3 ORDER BY bucket, provider, tier""", params))


def usage_over_time(log: Log, filters: Filters, *, bucket: str | None = None) -> pd.DataFrame:
    """Requests (by outcome) and tokens per time bucket."""
    b = _bucket(bucket, filters)
    where, params = filters.where(time_column="hour")
    return rollup.read(log, lambda r: r.query(f"""
        SELECT date_trunc('{b}', hour) AS bucket,
               sum(requests)::BIGINT AS requests,
               coalesce(sum(requests) FILTER (WHERE status = 'ok'), 0)::BIGINT AS ok,
               coalesce(sum(requests) FILTER (WHERE status <> 'ok'), 0)::BIGINT AS not_ok,
               sum(input_tokens)::BIGINT AS input_tokens,
               sum(output_tokens)::BIGINT AS output_tokens
        FROM request_rollup {where}
        GROUP BY 1 ORDER BY bucket""", params))


@dataclass(frozen=True, kw_only=True)
class Headline:
    """The figures at the top of the Costs page, for the period and the one before it."""

    requests: int
    ok_requests: int
    spend_usd: Decimal | None          # None: nothing in the period had a price
    previous_requests: int | None
    previous_spend_usd: Decimal | None
    input_tokens: int
    output_tokens: int
    priced_attempts: int
    unpriced_attempts: int
    # Whether the log's history (under the same sources, tiers, tasks, providers) reaches back to the start
    # of the previous period: a comparison against a window that held 17 hours of data says nothing.
    previous_covered: bool = False

    @property
    def cost_per_request(self) -> Decimal | None:
        if self.spend_usd is None or not self.requests:
            return None
        return self.spend_usd / self.requests

    @property
    def unpriced_share(self) -> float | None:
        billed = self.priced_attempts + self.unpriced_attempts
        return self.unpriced_attempts / billed if billed else None

    @property
    def spend_change(self) -> float | None:
        """Relative change against the previous period (0.25 = +25 %), None when it cannot be said."""
        if self.spend_usd is None or not self.previous_spend_usd or not self.previous_covered:
            return None
        return float((self.spend_usd - self.previous_spend_usd) / self.previous_spend_usd)


def _totals(log: Log, filters: Filters) -> tuple[int, int, Decimal | None, int, int, int, int]:
    where, params = filters.where(time_column="hour")
    row = rollup.read(log, lambda r: r.query(f"""
        WITH r AS (SELECT coalesce(sum(requests), 0)::BIGINT AS requests,
                          coalesce(sum(requests) FILTER (WHERE status = 'ok'), 0)::BIGINT AS ok,
                          coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
                          coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens
                   FROM request_rollup {where}),
             a AS (SELECT sum(cost_usd)::VARCHAR AS spend, coalesce(sum(priced), 0)::BIGINT AS priced,
                          coalesce(sum(unpriced), 0)::BIGINT AS unpriced
                   FROM attempt_rollup {where})
        SELECT * FROM r, a""", params + params)).iloc[0]
    spend = None if pd.isna(row["spend"]) else Decimal(row["spend"])
    return (int(row["requests"]), int(row["ok"]), spend, int(row["input_tokens"]), int(row["output_tokens"]),
            int(row["priced"]), int(row["unpriced"]))


def headline(log: Log, filters: Filters) -> Headline:
    def both(r: Reader) -> Headline:
        requests, ok, spend, tin, tout, priced, unpriced = _totals(r, filters)
        prev_requests = prev_spend = None
        covered = False
        previous = filters.previous()
        if previous is not None:
            prev_requests, _, prev_spend, *_ = _totals(r, previous)
            covered = _history_reaches(r, filters, previous.start_ts)
        return Headline(requests=requests, ok_requests=ok, spend_usd=spend, previous_requests=prev_requests,
                        previous_spend_usd=prev_spend, input_tokens=tin, output_tokens=tout,
                        priced_attempts=priced, unpriced_attempts=unpriced, previous_covered=covered)
    return rollup.read(log, both)


def _history_reaches(r: Reader, filters: Filters, start: datetime | None) -> bool:
    """Whether the log holds data (of the filter's kind, any date) from ``start``'s hour or before."""
    if start is None:
        return False
    where, params = filters.where(time_column="hour", dates=False)
    first = r.query(f"SELECT min(hour) AS first FROM request_rollup {where}", params).iloc[0]["first"]
    return first is not None and not pd.isna(first) and pd.Timestamp(first) <= pd.Timestamp(start.replace(tzinfo=None))


def cost_distribution_by_model(log: Log, filters: Filters) -> pd.DataFrame:
    """Per model that served requests: the spread of cost per request (quartiles, whiskers, mean).

    Requests whose cost is unknown are left out of the spread and counted in ``unpriced``. Counts, min,
    max and mean are exact; the quantiles come from the cost histogram (within ``rollup.QUANTILE_ERROR``).
    """
    where, params = filters.where(time_column="hour", extra=("model IS NOT NULL",))
    where_d, params_d = filters.where(time_column="day")
    spread = rollup.histogram_quantiles(
        "request_cost_histogram", (("provider", "provider"), ("model", "model")), where_d,
        {"p05": 0.05, "q1": 0.25, "median": 0.5, "q3": 0.75, "p95": 0.95})
    return rollup.read(log, lambda r: r.query(f"""
        WITH s AS ({spread}),
             t AS (SELECT provider, model, sum(priced)::BIGINT AS priced,
                          (sum(requests) - sum(priced))::BIGINT AS unpriced,
                          min(cost_min)::DOUBLE PRECISION AS min, max(cost_max)::DOUBLE PRECISION AS max,
                          (sum(cost_usd) / nullif(sum(priced), 0))::DOUBLE PRECISION AS mean
                   FROM request_rollup {where} GROUP BY provider, model)
        SELECT t.provider, t.model, priced, unpriced, min, p05, q1, median, q3, p95, max, mean
        FROM t LEFT JOIN s ON t.provider IS NOT DISTINCT FROM s.provider AND t.model = s.model
        ORDER BY median DESC NULLS LAST, t.provider, t.model""", params_d + params))


def spend_by(log: Log, filters: Filters, by: str | tuple[str, ...] = "task") -> pd.DataFrame:
    """Spend grouped by ``by`` (task, tier, provider, model, source), most expensive first, with its share."""
    dims = (by,) if isinstance(by, str) else tuple(by)
    bad = [d for d in dims if d not in DIMENSIONS]
    if bad or not dims:
        raise ValueError(f"can group spend by {', '.join(DIMENSIONS)}, not {', '.join(bad) or 'nothing'}")
    cols = ", ".join(dims)
    where, params = filters.where(time_column="hour")
    return rollup.read(log, lambda r: r.query(f"""
        SELECT {cols}, {_COST} AS cost_usd, sum(attempts)::BIGINT AS attempts,
               sum(first_attempts)::BIGINT AS requests,   -- each tried request has exactly one attempt 1
               sum(unpriced)::BIGINT AS unpriced,
               (sum(cost_usd) / nullif(sum(sum(cost_usd)) OVER (), 0))::DOUBLE PRECISION AS share
        FROM attempt_rollup {where}
        GROUP BY {cols} ORDER BY cost_usd DESC NULLS LAST, {cols}""", params))
