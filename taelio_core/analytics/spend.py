"""Where the money and the tokens went: cost, usage and the headline figures.

Spend is summed over *attempts*, so a failed attempt that was billed counts,
and a provider is charged for what it served or tried. An attempt that used
tokens but has no known price is *unpriced*: its cost stays NULL (never 0),
and the figures here count such attempts so the UI can say how much of the
total is missing. Every aggregation runs in DuckDB.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pandas as pd

from taelio_core.analytics.filters import Filters, bucket_for, check_bucket
from taelio_core.calllog import CallLog

__all__ = ["DIMENSIONS", "Headline", "cost_by_provider_tier", "cost_distribution_by_model", "headline",
           "spend_by", "usage_over_time"]

# Columns a "most expensive ..." breakdown may group by (a closed set: safe in SQL text).
DIMENSIONS = ("task", "tier", "provider", "model", "source")
_UNPRICED = "(cost_usd IS NULL AND (input_tokens > 0 OR output_tokens > 0))"
# An attempt that used no tokens cost nothing even when it has no price; one that did stays NULL.
_COST = "sum(CASE WHEN cost_usd IS NULL AND NOT " + _UNPRICED + " THEN 0 ELSE cost_usd END)::DOUBLE"


def _bucket(bucket: str | None, filters: Filters) -> str:
    return check_bucket(bucket or bucket_for(filters))


def cost_by_provider_tier(log: CallLog, filters: Filters, *, bucket: str | None = None) -> pd.DataFrame:
    """One row per time bucket x provider x tier: cost (NULL when nothing in it was priced), attempts, unpriced."""
    b = _bucket(bucket, filters)
    where, params = filters.where()
    return log.query(f"""
        SELECT date_trunc('{b}', ts AT TIME ZONE 'UTC') AS bucket, provider, tier,
               {_COST} AS cost_usd,
               count(*) AS attempts,
               count(*) FILTER (WHERE {_UNPRICED}) AS unpriced
        FROM attempts {where}
        GROUP BY ALL ORDER BY bucket, provider, tier""", params)


def usage_over_time(log: CallLog, filters: Filters, *, bucket: str | None = None) -> pd.DataFrame:
    """Requests (by outcome) and tokens per time bucket."""
    b = _bucket(bucket, filters)
    where, params = filters.where()
    return log.query(f"""
        SELECT date_trunc('{b}', ts AT TIME ZONE 'UTC') AS bucket,
               count(*) AS requests,
               count(*) FILTER (WHERE status = 'ok') AS ok,
               count(*) FILTER (WHERE status <> 'ok') AS not_ok,
               sum(input_tokens)::BIGINT AS input_tokens,
               sum(output_tokens)::BIGINT AS output_tokens
        FROM requests {where}
        GROUP BY ALL ORDER BY bucket""", params)


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
        if self.spend_usd is None or not self.previous_spend_usd:
            return None
        return float((self.spend_usd - self.previous_spend_usd) / self.previous_spend_usd)


def _totals(log: CallLog, filters: Filters) -> tuple[int, int, Decimal | None, int, int, int, int]:
    where_r, params_r = filters.where()
    where_a, params_a = filters.where()
    row = log.query(f"""
        WITH r AS (SELECT count(*) AS requests, count(*) FILTER (WHERE status = 'ok') AS ok,
                          coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
                          coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens
                   FROM requests {where_r}),
             a AS (SELECT sum(cost_usd)::VARCHAR AS spend,
                          count(*) FILTER (WHERE cost_usd IS NOT NULL) AS priced,
                          count(*) FILTER (WHERE {_UNPRICED}) AS unpriced
                   FROM attempts {where_a})
        SELECT * FROM r, a""", params_r + params_a).iloc[0]
    spend = None if pd.isna(row["spend"]) else Decimal(row["spend"])
    return (int(row["requests"]), int(row["ok"]), spend, int(row["input_tokens"]), int(row["output_tokens"]),
            int(row["priced"]), int(row["unpriced"]))


def headline(log: CallLog, filters: Filters) -> Headline:
    requests, ok, spend, tin, tout, priced, unpriced = _totals(log, filters)
    prev_requests = prev_spend = None
    previous = filters.previous()
    if previous is not None:
        prev_requests, _, prev_spend, *_ = _totals(log, previous)
    return Headline(requests=requests, ok_requests=ok, spend_usd=spend, previous_requests=prev_requests,
                    previous_spend_usd=prev_spend, input_tokens=tin, output_tokens=tout,
                    priced_attempts=priced, unpriced_attempts=unpriced)


def cost_distribution_by_model(log: CallLog, filters: Filters) -> pd.DataFrame:
    """Per model that served requests: the spread of cost per request (quartiles, whiskers, mean).

    Requests whose cost is unknown are left out of the spread and counted in ``unpriced``.
    """
    where, params = filters.where(extra=("model IS NOT NULL",))
    return log.query(f"""
        SELECT provider, model,
               count(cost_usd) AS priced, count(*) - count(cost_usd) AS unpriced,
               min(cost_usd)::DOUBLE AS min,
               quantile_cont(cost_usd::DOUBLE, 0.05) AS p05,
               quantile_cont(cost_usd::DOUBLE, 0.25) AS q1,
               quantile_cont(cost_usd::DOUBLE, 0.5) AS median,
               quantile_cont(cost_usd::DOUBLE, 0.75) AS q3,
               quantile_cont(cost_usd::DOUBLE, 0.95) AS p95,
               max(cost_usd)::DOUBLE AS max,
               avg(cost_usd)::DOUBLE AS mean
        FROM requests {where}
        GROUP BY ALL ORDER BY median DESC NULLS LAST, provider, model""", params)


def spend_by(log: CallLog, filters: Filters, by: str | tuple[str, ...] = "task") -> pd.DataFrame:
    """Spend grouped by ``by`` (task, tier, provider, model, source), most expensive first, with its share."""
    dims = (by,) if isinstance(by, str) else tuple(by)
    bad = [d for d in dims if d not in DIMENSIONS]
    if bad or not dims:
        raise ValueError(f"can group spend by {', '.join(DIMENSIONS)}, not {', '.join(bad) or 'nothing'}")
    cols = ", ".join(dims)
    where, params = filters.where()
    return log.query(f"""
        SELECT {cols}, {_COST} AS cost_usd, count(*) AS attempts,
               count(*) FILTER (WHERE n = 1) AS requests,   -- each tried request has exactly one attempt 1
               count(*) FILTER (WHERE {_UNPRICED}) AS unpriced,
               (sum(cost_usd) / nullif(sum(sum(cost_usd)) OVER (), 0))::DOUBLE AS share
        FROM attempts {where}
        GROUP BY ALL ORDER BY cost_usd DESC NULLS LAST, {cols}""", params)
