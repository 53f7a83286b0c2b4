"""How the providers behave: latency, errors, fallbacks, success and health.

All of it is computed in DuckDB from the ``attempts`` table (one row per
provider attempt) and, for fallbacks, from ``requests``. A request *fell
back* when at least one attempt failed before the answer (``fallback_depth
> 0``): the seed's fallback rate is the share of requests that did.

Provider health is judged on recent attempts (default: the last hour):

* **not configured**: the provider has no key, so the router skips it;
* **no recent calls**: configured, but nothing was tried in the window;
* **down**: success below ``DOWN_BELOW`` or its last ``DOWN_STREAK`` attempts all failed;
* **degraded**: success below ``HEALTHY_MIN``;
* **healthy**: otherwise.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import pandas as pd

from taelio_core.analytics.filters import Filters, bucket_for, check_bucket
from taelio_core.calllog import CallLog

__all__ = ["DOWN_BELOW", "DOWN_STREAK", "HEALTHY_MIN", "availability_over_time", "errors_by_type",
           "errors_over_time", "fallback_rate", "fallback_rate_over_time", "latency_by_provider",
           "latency_over_time", "provider_health", "success_by_provider"]

HEALTHY_MIN = 0.90
DOWN_BELOW = 0.50
DOWN_STREAK = 3


def _b(bucket: str | None, filters: Filters) -> str:
    return check_bucket(bucket or bucket_for(filters))


def latency_by_provider(log: CallLog, filters: Filters) -> pd.DataFrame:
    """Per provider, over its successful attempts: latency p50/p95/p99 and time-to-first-token p50/p95 (ms)."""
    where, params = filters.where(extra=("status = 'ok'",))
    return log.query(f"""
        SELECT provider, count(*) AS ok_attempts,
               quantile_cont(latency_ms, 0.5) AS p50_ms, quantile_cont(latency_ms, 0.95) AS p95_ms,
               quantile_cont(latency_ms, 0.99) AS p99_ms,
               quantile_cont(ttft_ms, 0.5) AS ttft_p50_ms, quantile_cont(ttft_ms, 0.95) AS ttft_p95_ms
        FROM attempts {where} GROUP BY provider ORDER BY provider""", params)


def latency_over_time(log: CallLog, filters: Filters, *, bucket: str | None = None) -> pd.DataFrame:
    """Latency p50/p95/p99 per provider and time bucket (successful attempts)."""
    b = _b(bucket, filters)
    where, params = filters.where(extra=("status = 'ok'",))
    return log.query(f"""
        SELECT date_trunc('{b}', ts AT TIME ZONE 'UTC') AS bucket, provider,
               quantile_cont(latency_ms, 0.5) AS p50_ms, quantile_cont(latency_ms, 0.95) AS p95_ms,
               quantile_cont(latency_ms, 0.99) AS p99_ms
        FROM attempts {where} GROUP BY ALL ORDER BY bucket, provider""", params)


def _rate(log: CallLog, filters: Filters, *, table: str, key: str, hit: str, total_as: str, hits_as: str,
          rate_as: str, bucket: str | None = None) -> pd.DataFrame:
    """Per ``key`` (and time bucket): rows, rows matching ``hit``, and their share. Names are constants."""
    where, params = filters.where()
    time_col = f"date_trunc('{check_bucket(bucket)}', ts AT TIME ZONE 'UTC') AS bucket, " if bucket else ""
    order = "bucket, " if bucket else ""
    return log.query(f"""
        SELECT {time_col}{key}, count(*) AS {total_as}, count(*) FILTER (WHERE {hit}) AS {hits_as},
               (count(*) FILTER (WHERE {hit}) / count(*))::DOUBLE AS {rate_as}
        FROM {table} {where} GROUP BY ALL ORDER BY {order}{key}""", params)


_FALLBACKS = {"table": "requests", "key": "tier", "hit": "fallback_depth > 0", "total_as": "requests",
              "hits_as": "fallbacks", "rate_as": "rate"}
_SUCCESSES = {"table": "attempts", "key": "provider", "hit": "status = 'ok'", "total_as": "attempts",
              "hits_as": "ok"}


def fallback_rate(log: CallLog, filters: Filters) -> pd.DataFrame:
    """Per tier: requests, how many fell back, and the rate."""
    return _rate(log, filters, **_FALLBACKS)


def fallback_rate_over_time(log: CallLog, filters: Filters, *, bucket: str | None = None) -> pd.DataFrame:
    """Per tier and time bucket: requests, fallbacks and the rate."""
    return _rate(log, filters, **_FALLBACKS, bucket=_b(bucket, filters))


def errors_by_type(log: CallLog, filters: Filters) -> pd.DataFrame:
    """Failed attempts per provider x error type, with their share of that provider's attempts."""
    where, params = filters.where()
    return log.query(f"""
        WITH a AS (SELECT provider, error_type FROM attempts {where})
        SELECT provider, error_type, count(*) AS errors,
               (count(*) / any_value(total))::DOUBLE AS share_of_attempts
        FROM (SELECT *, count(*) OVER (PARTITION BY provider) AS total FROM a)
        WHERE error_type IS NOT NULL
        GROUP BY provider, error_type ORDER BY provider, errors DESC, error_type""", params)


def errors_over_time(log: CallLog, filters: Filters, *, bucket: str | None = None) -> pd.DataFrame:
    """Failed attempts per time bucket x error type (x provider)."""
    b = _b(bucket, filters)
    where, params = filters.where(extra=("error_type IS NOT NULL",))
    return log.query(f"""
        SELECT date_trunc('{b}', ts AT TIME ZONE 'UTC') AS bucket, error_type, provider, count(*) AS errors
        FROM attempts {where} GROUP BY ALL ORDER BY bucket, error_type, provider""", params)


def success_by_provider(log: CallLog, filters: Filters) -> pd.DataFrame:
    """Per provider: attempts, successes and the success rate."""
    return _rate(log, filters, **_SUCCESSES, rate_as="success_rate")


def availability_over_time(log: CallLog, filters: Filters, *, bucket: str | None = None) -> pd.DataFrame:
    """Per provider and time bucket: attempts, successes and the share that succeeded."""
    return _rate(log, filters, **_SUCCESSES, rate_as="availability", bucket=_b(bucket, filters))


def provider_health(log: CallLog, configured: Mapping[str, str | None], filters: Filters, *, now: datetime,
                    window: timedelta = timedelta(hours=1)) -> pd.DataFrame:
    """One row per provider in ``configured`` (name -> None when usable, else why not), in that order.

    Uses the filter's sources, tiers and tasks, but its own time window ending at ``now``.
    """
    names = list(configured)
    base = Filters(sources=filters.sources, tiers=filters.tiers, tasks=filters.tasks, providers=tuple(names))
    # ``extra`` clauses come first in the WHERE, so their parameters lead.
    recent_where, recent_params = base.where(extra=("ts >= ?", "ts <= ?"))
    last_where, last_params = base.where(extra=("error_type IS NOT NULL", "ts <= ?"))
    stats = log.query(f"""
        WITH recent AS (
            SELECT provider, count(*) AS attempts,
                   (count(*) FILTER (WHERE status = 'ok') / count(*))::DOUBLE AS success_rate,
                   quantile_cont(latency_ms, 0.5) FILTER (WHERE status = 'ok') AS p50_ms,
                   quantile_cont(latency_ms, 0.95) FILTER (WHERE status = 'ok') AS p95_ms,
                   quantile_cont(ttft_ms, 0.5) FILTER (WHERE status = 'ok') AS ttft_p50_ms,
                   arg_max(status, ts, {DOWN_STREAK}) AS latest_statuses,
                   max(ts) AS last_attempt_at
            FROM attempts {recent_where} GROUP BY provider),
        last_error AS (
            SELECT provider, arg_max(error, ts) AS last_error, arg_max(error_type, ts) AS last_error_type,
                   max(ts) AS last_error_at
            FROM attempts {last_where} GROUP BY provider)
        SELECT * FROM recent FULL OUTER JOIN last_error USING (provider)""",
        [now - window, now, *recent_params, now, *last_params])
    by_name = {row["provider"]: row for row in stats.to_dict("records")}
    rows = []
    for name in names:
        row = by_name.get(name, {})
        attempts = int(row.get("attempts") or 0) if not pd.isna(row.get("attempts")) else 0
        rate = None if attempts == 0 else float(row["success_rate"])
        latest = row.get("latest_statuses")
        latest = list(latest) if latest is not None and not (isinstance(latest, float) and pd.isna(latest)) else []
        rows.append({
            "provider": name,
            "configured": configured[name] is None,
            "reason": configured[name] or "",
            "status": _status(configured[name], attempts, rate, latest),
            "attempts": attempts,
            "success_rate": rate,
            "p50_ms": _num(row.get("p50_ms")),
            "p95_ms": _num(row.get("p95_ms")),
            "ttft_p50_ms": _num(row.get("ttft_p50_ms")),
            "last_error": _text(row.get("last_error")),
            "last_error_type": _text(row.get("last_error_type")),
            "last_error_at": None if pd.isna(row.get("last_error_at", None)) else row["last_error_at"],
            "last_attempt_at": None if pd.isna(row.get("last_attempt_at", None)) else row["last_attempt_at"],
        })
    return pd.DataFrame(rows, columns=["provider", "configured", "reason", "status", "attempts", "success_rate",
                                       "p50_ms", "p95_ms", "ttft_p50_ms", "last_error", "last_error_type",
                                       "last_error_at", "last_attempt_at"])


def _status(reason: str | None, attempts: int, rate: float | None, latest: list[str]) -> str:
    if reason is not None:
        return "not configured"
    if attempts == 0 or rate is None:
        return "no recent calls"
    if rate < DOWN_BELOW or (len(latest) >= DOWN_STREAK and all(s != "ok" for s in latest)):
        return "down"
    if rate < HEALTHY_MIN:
        return "degraded"
    return "healthy"


def _num(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)  # type: ignore[arg-type]


def _text(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
