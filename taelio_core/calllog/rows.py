"""Turns a ``GenerationResult`` into the rows the call log stores.

Kept apart from any database so every backend (DuckDB now, PostgreSQL later)
writes exactly the same columns.

``encode`` is on the request path (``CallLog.record`` calls it for every
request), so it is built for speed: plain tuples in column order, times as
integer microseconds since the epoch, money as integer units of 1e-10 USD
(the log's ``DECIMAL(18, 10)``), one pass over the attempts, the trace JSON
cached per chain. Tuples of plain values also pickle fast and safely for the
journal. When text is stored, its SHA-256 is left for the database to
compute at insert (off the request path); in hash-only mode it is computed
here, so no text ever reaches the journal.
"""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from taelio_core.routing.trace import GenerationResult, RouteEntry, Skip

__all__ = ["ATTEMPT_COLUMNS", "LATER_DEFAULTS", "REQUEST_COLUMNS", "attempt_rows", "encode", "micros", "request_row", "sha256", "widened"]

REQUEST_COLUMNS = [
    "request_id", "parent_id", "ts", "source", "tier", "task", "policy", "status", "provider", "model",
    "simulated", "latency_ms", "ttft_ms", "input_tokens", "output_tokens", "cached_tokens", "cost_usd",
    "n_attempts", "fallback_depth", "n_skipped", "experiment_id", "user_id", "prompt_sha256", "prompt",
    "output", "output_sha256", "error", "routing_reason", "trace", "retries", "pinned_provider",
]
ATTEMPT_COLUMNS = [
    "request_id", "n", "ts", "source", "tier", "task", "provider", "model", "response_model", "simulated",
    "status", "error_type", "error", "http_status", "latency_ms", "ttft_ms", "input_tokens", "output_tokens",
    "cached_tokens", "cost_usd", "price_source", "finish_reason", "retry", "hedge", "wait_ms", "sent",
]
# Columns added after the first (migration 012): a row written before them (the journal may replay one) or a
# table built without them gets these values.
LATER_DEFAULTS: dict[str, Any] = {"retries": 0, "pinned_provider": None, "wait_ms": 0.0, "sent": None}


def widened(rows: list[tuple[Any, ...]], names: list[str]) -> list[tuple[Any, ...]]:
    """Rows journalled before a later migration's columns, given those columns' defaults (``LATER_DEFAULTS``)."""
    width = len(names)
    if all(len(row) == width for row in rows):
        return rows
    tail = tuple(LATER_DEFAULTS.get(name) for name in names)
    return [row + tail[len(row):] for row in rows]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

RequestTuple = tuple[Any, ...]
AttemptTuple = tuple[Any, ...]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def micros(at: datetime) -> int:
    """Microseconds since the epoch; a naive time is taken as UTC.

    ``timestamp()`` is a C call, 3x cheaper than datetime arithmetic; rounding its float (exact to
    well under a microsecond for this century) gives the same integer.
    """
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return round(at.timestamp() * 1_000_000)


def cost_units(value: Decimal | None) -> int | None:
    return None if value is None else int(value.scaleb(10).to_integral_value())


@lru_cache(maxsize=4096)
def _trace(chain: tuple[RouteEntry, ...], skipped: tuple[Skip, ...]) -> str:
    return json.dumps({"chain": [e.as_dict() for e in chain],
                       "skipped": [{"provider": s.provider, "model": s.model, "reason": s.reason} for s in skipped]})


def encode(result: GenerationResult, *, store_text: bool = True) -> tuple[RequestTuple, list[AttemptTuple]]:
    """The request row and its attempt rows, as tuples in column order."""
    rid, source, tier, task = result.request_id, result.source, result.tier, result.task
    attempts = []
    tin = tout = tcached = retries = 0
    cost = 0
    unpriced = False
    for a in result.attempts:
        usage = a.usage
        units = cost_units(a.cost_usd)
        if units is None:
            unpriced = unpriced or bool(usage.input_tokens or usage.output_tokens)
        else:
            cost += units
        tin += usage.input_tokens
        tout += usage.output_tokens
        tcached += usage.cached_tokens
        retries += a.retry > 0
        attempts.append((rid, a.n, micros(a.started_at), source, tier, task, a.provider, a.model, a.response_model,
                         a.simulated, a.status, a.error_type, a.error, a.http_status, a.latency_ms, a.ttft_ms,
                         usage.input_tokens, usage.output_tokens, usage.cached_tokens, units, a.price_source,
                         a.finish_reason, a.retry, a.hedge, a.wait_ms, a.sent))
    text = result.text
    if store_text:
        prompt, output, prompt_sha, output_sha = result.prompt, text, None, None
    else:
        prompt, output, prompt_sha, output_sha = None, None, sha256(result.prompt), sha256(text) if text else None
    try:
        trace = _trace(result.chain, result.skipped)
    except TypeError:  # an unhashable chain (never from the router): skip the cache
        trace = _trace.__wrapped__(result.chain, result.skipped)
    request = (rid, result.parent_id, micros(result.started_at), source, tier, task, result.policy, result.status,
               result.provider, result.model, result.simulated, result.latency_ms, result.ttft_ms, tin, tout,
               tcached, None if unpriced else cost, len(attempts), result.fallback_depth, len(result.skipped),
               result.experiment_id, result.user_id, prompt_sha, prompt, output, output_sha, result.error,
               result.routing_reason, trace, retries, result.pinned_provider)
    return request, attempts


def _as_dict(columns: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(columns, row))
    out["ts"] = _EPOCH + out["ts"] * _MICRO
    if out["cost_usd"] is not None:
        out["cost_usd"] = Decimal(out["cost_usd"]).scaleb(-10)
    return out


def request_row(result: GenerationResult, *, store_text: bool = True) -> dict[str, Any]:
    """The request row as a dict, hashes filled in (for backends that insert row by row)."""
    request, _ = encode(result, store_text=store_text)
    row = _as_dict(REQUEST_COLUMNS, request)
    if store_text:
        row["prompt_sha256"] = sha256(result.prompt)
        row["output_sha256"] = sha256(result.text) if result.text else None
    return row


def attempt_rows(result: GenerationResult) -> list[dict[str, Any]]:
    return [_as_dict(ATTEMPT_COLUMNS, row) for row in encode(result)[1]]
