"""Turns a ``GenerationResult`` into the rows the call log stores.

Kept apart from any database so every backend (DuckDB now, PostgreSQL later)
writes exactly the same columns.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from taelio_core.trace import GenerationResult

__all__ = ["ATTEMPT_COLUMNS", "REQUEST_COLUMNS", "attempt_rows", "request_row"]

REQUEST_COLUMNS = [
    "request_id", "parent_id", "ts", "source", "tier", "task", "policy", "status", "provider", "model",
    "simulated", "latency_ms", "ttft_ms", "input_tokens", "output_tokens", "cached_tokens", "cost_usd",
    "n_attempts", "fallback_depth", "n_skipped", "experiment_id", "user_id", "prompt_sha256", "prompt",
    "output", "output_sha256", "error", "routing_reason", "trace",
]
ATTEMPT_COLUMNS = [
    "request_id", "n", "ts", "source", "tier", "task", "provider", "model", "response_model", "simulated",
    "status", "error_type", "error", "http_status", "latency_ms", "ttft_ms", "input_tokens", "output_tokens",
    "cached_tokens", "cost_usd", "price_source", "finish_reason", "retry", "hedge",
]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def request_row(result: GenerationResult, *, store_text: bool = True) -> dict[str, Any]:
    usage = result.usage
    cost = result.cost_usd
    trace = {"chain": [e.as_dict() for e in result.chain],
             "skipped": [{"provider": s.provider, "model": s.model, "reason": s.reason} for s in result.skipped]}
    return {
        "request_id": result.request_id, "parent_id": result.parent_id, "ts": result.started_at,
        "source": result.source, "tier": result.tier, "task": result.task, "policy": result.policy,
        "status": result.status, "provider": result.provider, "model": result.model,
        "simulated": result.simulated, "latency_ms": result.latency_ms, "ttft_ms": result.ttft_ms,
        "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens, "cost_usd": cost, "n_attempts": len(result.attempts),
        "fallback_depth": result.fallback_depth, "n_skipped": len(result.skipped),
        "experiment_id": result.experiment_id, "user_id": result.user_id,
        "prompt_sha256": sha256(result.prompt), "prompt": result.prompt if store_text else None,
        "output": result.text if store_text else None, "output_sha256": sha256(result.text) if result.text else None,
        "error": result.error, "routing_reason": result.routing_reason, "trace": json.dumps(trace),
    }


def attempt_rows(result: GenerationResult) -> list[dict[str, Any]]:
    return [{
        "request_id": result.request_id, "n": a.n, "ts": a.started_at, "source": result.source,
        "tier": result.tier, "task": result.task, "provider": a.provider, "model": a.model,
        "response_model": a.response_model, "simulated": a.simulated, "status": a.status,
        "error_type": a.error_type, "error": a.error, "http_status": a.http_status, "latency_ms": a.latency_ms,
        "ttft_ms": a.ttft_ms, "input_tokens": a.usage.input_tokens, "output_tokens": a.usage.output_tokens,
        "cached_tokens": a.usage.cached_tokens, "cost_usd": a.cost_usd, "price_source": a.price_source,
        "finish_reason": a.finish_reason, "retry": a.retry, "hedge": a.hedge,
    } for a in result.attempts]
