"""How the providers behave: latency, errors, fallbacks, success and health.

All of it is computed in DuckDB from the hourly rollups of ``attempts`` (one
row per provider attempt) and, for fallbacks, of ``requests`` (``rollup.py``):
counts and rates are exact; latency percentiles come from histograms, within
``rollup.QUANTILE_ERROR`` (4.4 %). Provider health reads the raw rows of its
recent window (exact), which the log's time order keeps to a few row groups. A request *fell
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
from datetime import UTC, datetime, timedelta

import pandas as pd

from taelio_core.analytics import rollup
from taelio_core.analytics.filters import Filters, bucket_for, check_bucket
from taelio_core.analytics.rollup import Reader
from taelio_core.calllog import CallLog

Log = CallLog | Reader

__all__ = ["DOWN_BELOW", "DOWN_STREAK", "HEALTHY_MIN", "availability_over_time", "errors_by_type",
           "errors_over_time", "fallback_rate", "fallback_rate_over_time", "latency_by_provider",
           "latency_over_time", "provider_health", "success_by_provider"]

HEALTHY_MIN = 0.90
DOWN_BELOW = 0.50
DOWN_STREAK = 3


def _b(bucket: str | None, filters: Filters) -> str:
    return check_bucket(bucket or bucket_for(filters))


def _latency(filters: Filters, keys: tuple[tuple[str, str], ...], metrics: dict[str, dict[str, float]]) -> tuple[str, list]:
    """Percentiles per ``keys`` of each ``metric`` (latency, ttft) of successful attempts, joined on the keys."""
    names = [name for _, name in keys]
    parts, params = [], []
    for metric, quantiles in metrics.items():
        where, p = filters.where(time_column="hour", extra=(f"metric = '{metric}'",))
        parts.append(rollup.histogram_quantiles("latency_histogram", keys, where, quantiles))
        params += p
    sql = f"({parts[0]}) AS m0"
    for i, part in enumerate(parts[1:], 1):
        sql = f"{sql} FULL OUTER JOIN ({part}) AS m{i} USING ({', '.join(names)})"
    return f"SELECT * FROM {sql}", params


def latency_by_provider(log: Log, filters: Filters) -> pd.DataFrame:
    """Per provider, over its successful attempts: latency p50/p95/p99 and time-to-first-token p50/p95 (ms)."""
    pct, pct_params = _latency(filters, (("provider", "provider"),),
                               {"latency": {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99},
                                "ttft": {"ttft_p50_ms": 0.5, "ttft_p95_ms": 0.95}})
    where, params = filters.where(time_column="hour", extra=("status = 'ok'",))
    return rollup.read(log, lambda r: r.query(f"""
        WITH ok AS (SELECT provider, sum(attempts)::BIGINT AS ok_attempts FROM attempt_rollup {where} GROUP BY provider),
             pct AS ({pct})
        SELECT provider, ok_attempts, p50_ms, p95_ms, p99_ms, ttft_p50_ms, ttft_p95_ms
        FROM ok LEFT JOIN pct USING (provider) ORDER BY provider""", params + pct_params))


def latency_over_time(log: Log, filters: Filters, *, bucket: str | None = None) -> pd.DataFrame:
    """Latency p50/p95/p99 per provider and time bucket (successful attempts)."""
    b = _b(bucket, filters)
    pct, params = _latency(filters, ((f"date_trunc('{b}', hour)", "bucket"), ("provider", "provider")),
                           {"latency": {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}})
    return rollup.read(log, lambda r: r.query(f"{pct} ORDER BY bucket, provider", params))


def _rate(log: Log, filters: Filters, *, table: str, count: str, key: str, hit: str, total_as: str,
          hits_as: str, rate_as: str, bucket: str | None = None) -> pd.DataFrame:
    """Per ``key`` (and time bucket): rows, rows matching ``hit``, and their share. Names are constants."""
    where, params = filters.where(time_column="hour")
    time_col = f"date_trunc('{check_bucket(bucket)}', hour) AS bucket, " if bucket else ""
    order = "bucket, " if bucket else ""
    group = "1, 2" if bucket else "1"
    return rollup.read(log, lambda r: r.query(f"""
        SELECT {time_col}{key}, sum({count})::BIGINT AS {total_as},
               coalesce(sum({count}) FILTER (WHERE {hit}), 0)::BIGINT AS {hits_as},
               (coalesce(sum({count}) FILTER (WHERE {hit}), 0) / sum({count}))::DOUBLE PRECISION AS {rate_as}
        FROM {table} {where} GROUP BY {group} ORDER BY {order}{key}""", params))


_FALLBACKS = {"table": "request_rollup", "count": "requests", "key": "tier", "hit": "fell_back",
              "total_as": "requests", "hits_as": "fallbacks", "rate_as": "rate"}
_SUCCESSES = {"table": "attempt_rollup", "count": "attempts", "key": "provider", "hit": "status = 'ok'",
              "total_as": "attempts", "hits_as": "ok"}


def fallback_rate(log: Log, filters: Filters) -> pd.DataFrame:
    """Per tier: requests, how many fell back, and the rate."""
    return _rate(log, filters, **_FALLBACKS)


def fallback_rate_over_time(log: Log, filters: Filters, *, bucket: str | None = None) -> pd.DataFrame:
    """Per tier and time bucket: requests, fallbacks and the rate."""
    return _rate(log, filters, **_FALLBACKS, bucket=_b(bucket, filters))


def errors_by_type(log: Log, filters: Filters) -> pd.DataFrame:
    """Failed attempts per provider x error type, with their share of that provider's attempts."""
    where, params = filters.where(time_column="hour")
    return rollup.read(log, lambda r: r.query(f"""
        WITH a AS (SELECT provider, error_type, sum(attempts) AS n FROM attempt_rollup {where}
                   GROUP BY provider, error_type),
             shares AS (SELECT provider, error_type, n::BIGINT AS errors,
                               (n / sum(n) OVER (PARTITION BY provider))::DOUBLE PRECISION AS share_of_attempts
                        FROM a)
        SELECT * FROM shares WHERE error_type IS NOT NULL
        ORDER BY provider, errors DESC, error_type""", params))


def errors_over_time(log: Log, filters: Filters, *, bucket: str | None = None) -> pd.DataFrame:
    """Failed attempts per time bucket x error type (x provider)."""
    b = _b(bucket, filters)
    where, params = filters.where(time_column="hour", extra=("error_type IS NOT NULL",))
    return rollup.read(log, lambda r: r.query(f"""
        SELECT date_trunc('{b}', hour) AS bucket, error_type, provider, sum(attempts)::BIGINT AS errors
        FROM attempt_rollup {where} GROUP BY 1, 2, 3 ORDER BY bucket, error_type, provider""", params))


def success_by_provider(log: Log, filters: Filters) -> pd.DataFrame:
    """Per provider: attempts, successes and the success rate."""
    return _rate(log, filters, **_SUCCESSES, rate_as="success_rate")


def availability_over_time(log: Log, filters: Filters, *, bucket: str | None = None) -> pd.DataFrame:
    """Per provider and time bucket: attempts, successes and the share that succeeded."""
    return _rate(log, filters, **_SUCCESSES, rate_as="availability", bucket=_b(bucket, filters))


def provider_health(log: Log, configured: Mapping[str, str | None], filters: Filters, *, now: datetime,
                    window: timedelta = timedelta(hours=1)) -> pd.DataFrame:
    """One row per provider in ``configured`` (name -> None when usable, else why not), in that order.

    Uses the filter's sources, tiers and tasks, but its own time window ending at ``now``. The window's
    figures come from its raw attempts (exact percentiles); the last error's time from the rollup (and the
    raw rows of the hour holding ``now``), then its text from the one raw row at that time.
    """
    names = list(configured)
    base = Filters(sources=filters.sources, tiers=filters.tiers, tasks=filters.tasks, providers=tuple(names))
    this_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    # ``extra`` clauses come first in the WHERE, so their parameters lead.
    recent_where, recent_params = base.where(extra=("ts >= ?", "ts <= ?"))
    rolled_where, rolled_params = base.where(time_column="hour", extra=("error_type IS NOT NULL", "hour < ?"))
    tail_where, tail_params = base.where(extra=("error_type IS NOT NULL", "ts >= ?", "ts <= ?"))

    def query(r: Reader) -> tuple[pd.DataFrame, dict[str, dict]]:
        d = r.dialect
        stats = r.query(f"""
            SELECT provider, count(*) AS attempts,
                   count(*) FILTER (WHERE status = 'ok')::DOUBLE PRECISION / count(*) AS success_rate,
                   {d.quantile("latency_ms", 0.5, "status = 'ok'")} AS p50_ms,
                   {d.quantile("latency_ms", 0.95, "status = 'ok'")} AS p95_ms,
                   {d.quantile("ttft_ms", 0.5, "status = 'ok'")} AS ttft_p50_ms,
                   {d.latest("status", "ts", DOWN_STREAK)} AS latest_statuses,
                   max(ts) AS last_attempt_at
            FROM attempts {recent_where} GROUP BY provider""", [now - window, now, *recent_params])
        last_at = r.query(f"""
            SELECT provider, max(t) AS t FROM (
                SELECT provider, max(last_ts) AS t FROM attempt_rollup {rolled_where} GROUP BY provider
                UNION ALL
                SELECT provider, max(ts) FROM attempts {tail_where} GROUP BY provider) AS both_parts
            GROUP BY provider""", [this_hour.replace(tzinfo=None), *rolled_params, this_hour, now, *tail_params])
        last: dict[str, dict] = {}
        for provider, at in zip(last_at["provider"], last_at["t"]):
            where, params = base.where(extra=("provider = ?", "ts = ?", "error_type IS NOT NULL"))
            row = r.query(f"SELECT error AS last_error, error_type AS last_error_type, ts AS last_error_at "
                          f"FROM attempts {where} LIMIT 1", [provider, at, *params])
            if len(row):
                last[provider] = row.iloc[0].to_dict()
        return stats, last

    stats, last = rollup.read(log, query)
    by_name = {row["provider"]: {**row, **last.get(row["provider"], {})} for row in stats.to_dict("records")}
    for provider, row in last.items():
        by_name.setdefault(provider, row)
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
