"""Totals over the call log per provider and per tier: what ``taelio stats`` prints.

Provider figures come from attempts (a provider is judged on every call
made to it, fallbacks included); tier figures from requests (a tier is
judged on what its users got). Money stays ``Decimal``; a sum that
includes an unpriced call is reported beside the count of unpriced calls,
never as if they cost $0.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from taelio_core.calllog.base import CallLog

__all__ = ["LogTotals", "Totals", "log_totals", "parse_since"]

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime | None:
    """``7d``, ``12h``, ``30m``, ``2w``, an ISO date or time (UTC unless it says), or ``all`` (None).

    Raises ``ValueError`` with a sentence that says what is accepted.
    """
    now = now or datetime.now(UTC)
    value = text.strip().lower()
    if value in ("all", "ever"):
        return None
    span = _SPAN.match(value)
    if span:
        return now - timedelta(**{_UNITS[span.group(2)]: float(span.group(1))})
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"'{text}' is not a time span like 7d, 12h, 30m or 2w, an ISO date like 2026-11-01, "
                         "or 'all'") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


@dataclass(frozen=True, kw_only=True)
class Totals:
    """One row: a provider, a tier, or everything."""

    name: str
    requests: int
    attempts: int
    ok_rate: float | None
    fallback_rate: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    unpriced: int               # calls with tokens but no price: cost_usd leaves them out
    p50_latency_ms: float | None
    p95_latency_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "requests": self.requests, "attempts": self.attempts, "ok_rate": self.ok_rate,
                "fallback_rate": self.fallback_rate, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cost_usd": str(self.cost_usd), "unpriced": self.unpriced,
                "p50_latency_ms": self.p50_latency_ms, "p95_latency_ms": self.p95_latency_ms}


@dataclass(frozen=True, kw_only=True)
class LogTotals:
    since: datetime | None
    sources: tuple[str, ...]
    total: Totals
    by_provider: list[Totals]
    by_tier: list[Totals]

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since.isoformat() if self.since else None, "sources": list(self.sources),
                "total": self.total.as_dict(), "by_provider": [t.as_dict() for t in self.by_provider],
                "by_tier": [t.as_dict() for t in self.by_tier]}


# Request-level figures, grouped by tier (or by nothing for the total). Placeholders: {group}, {group_by}, {where},
# and the percentiles {p50}/{p95} in the log's dialect (DuckDB or PostgreSQL).
_REQUESTS_SQL = """
SELECT {group} AS name, count(*) AS requests, coalesce(sum(n_attempts), 0) AS attempts,
       avg((status = 'ok')::INT) AS ok_rate, avg((fallback_depth > 0)::INT) AS fallback_rate,
       coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens,
       coalesce(sum(cost_usd), 0)::VARCHAR AS cost_usd, count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced,
       {p50} AS p50, {p95} AS p95
FROM requests WHERE {where} {group_by} ORDER BY requests DESC, name
"""
# Provider figures from attempts. Fell back: a failed attempt the router moved on from (the next
# attempt is a new entry, not a retry). Latency percentiles are of successful attempts.
_PROVIDERS_SQL = """
WITH a AS (
    SELECT provider, request_id, status, input_tokens, output_tokens, cost_usd, latency_ms,
           lead(retry) OVER (PARTITION BY request_id ORDER BY n) AS next_retry
    FROM attempts WHERE {where})
SELECT provider AS name, count(DISTINCT request_id) AS requests, count(*) AS attempts,
       avg((status = 'ok')::INT) AS ok_rate,
       avg((status <> 'ok' AND next_retry = 0)::INT) AS fallback_rate,
       coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens,
       coalesce(sum(cost_usd), 0)::VARCHAR AS cost_usd,
       count(*) FILTER (WHERE cost_usd IS NULL AND (input_tokens > 0 OR output_tokens > 0)) AS unpriced,
       {p50} AS p50, {p95} AS p95
FROM a GROUP BY provider ORDER BY attempts DESC, name
"""


def log_totals(log: CallLog, *, since: datetime | None = None, sources: tuple[str, ...] = ()) -> LogTotals:
    """Totals per provider, per tier and overall, for calls at or after ``since`` from ``sources`` (all if empty)."""
    clauses, params = ["true"], []
    if since is not None:
        clauses.append("ts >= ?")
        params.append(since)
    if sources:
        clauses.append("source IN (" + ", ".join("?" for _ in sources) + ")")
        params.extend(sources)
    where = " AND ".join(clauses)
    from taelio_core.analytics.dialect import DUCKDB, POSTGRES
    from taelio_core.analytics.pg_reader import is_postgres_log
    dialect = POSTGRES if is_postgres_log(log) else DUCKDB
    req = {"p50": dialect.quantile("latency_ms", 0.5), "p95": dialect.quantile("latency_ms", 0.95)}
    ok = {"p50": dialect.quantile("latency_ms", 0.5, "status = 'ok'"),
          "p95": dialect.quantile("latency_ms", 0.95, "status = 'ok'")}
    total_rows = _rows(log, _REQUESTS_SQL.format(group="'total'", group_by="", where=where, **req), params)
    empty = Totals(name="total", requests=0, attempts=0, ok_rate=None, fallback_rate=None, input_tokens=0,
                   output_tokens=0, cost_usd=Decimal(0), unpriced=0, p50_latency_ms=None, p95_latency_ms=None)
    total = total_rows[0] if total_rows and total_rows[0].requests else empty
    return LogTotals(since=since, sources=tuple(sources), total=total,
                     by_provider=_rows(log, _PROVIDERS_SQL.format(where=where, **ok), params),
                     by_tier=_rows(log, _REQUESTS_SQL.format(group="tier", group_by="GROUP BY tier", where=where,
                                                             **req), params))


def _rows(log: CallLog, sql: str, params: list[Any]) -> list[Totals]:
    frame = log.query(sql, params)
    out = []
    for row in frame.itertuples(index=False):
        out.append(Totals(name=str(row.name), requests=int(row.requests), attempts=int(row.attempts or 0),
                          ok_rate=_num(row.ok_rate), fallback_rate=_num(row.fallback_rate),
                          input_tokens=int(row.input_tokens or 0), output_tokens=int(row.output_tokens or 0),
                          cost_usd=Decimal(row.cost_usd) if row.cost_usd else Decimal(0),
                          unpriced=int(row.unpriced), p50_latency_ms=_num(row.p50), p95_latency_ms=_num(row.p95)))
    return out


def _num(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if number != number else round(number, 4)
