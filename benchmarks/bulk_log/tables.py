"""Turns simulated outcomes into the call log's two Arrow tables.

Text columns are short and repeat a lot (one prompt per task x premise x
genre x tone, one output per entry x task x premise), so each is a small
dictionary of strings rendered once, with the policy's real templates,
and an index per row. Every string says "[simulated]".
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from taelio_core.calllog.arrow import (
    ATTEMPT_SCHEMA,
    REQUEST_SCHEMA,
    TS_TYPE,
    decimal_from_units,
    strings_from_indices,
)
from benchmarks.bulk_log.plan import ERROR_KINDS, SUCCESS, DemoPlan
from benchmarks.bulk_log.traffic import FAILED, TRUNC, Outcome
from taelio_core.config.policy import RoutingPolicy
from taelio_core.demo.traffic import GENRES, PREMISES, TONES
from taelio_core.errors import PLAIN_WORDS
from taelio_core.routing.inputs import Inputs

__all__ = ["DemoText", "attempt_table", "request_table"]

USERS = 500
STATUS = ["ok", "failed", "truncated"]
ATTEMPT_STATUS = ["error", "ok", "truncated"]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, kw_only=True)
class DemoText:
    """The dictionaries the text columns index into."""

    prompts: list[str]
    outputs: list[str]
    errors: list[str]            # request errors: (route x kind) failures, then per-entry truncations
    attempt_errors: list[str]
    traces: list[str]

    @classmethod
    def build(cls, policy: RoutingPolicy, plan: DemoPlan) -> DemoText:
        prompts = []
        for task in plan.tasks:
            cfg = policy.task(task)
            for premise in PREMISES:
                for genre in GENRES:
                    for tone in TONES:
                        inputs = Inputs(prompt=f"(simulated demo) {premise}", genre=genre, tone=tone,
                                        idea=f"[simulated idea] {premise}")
                        prompts.append(cfg.user.format(**inputs.variables(cfg.needs)))
        outputs = [f"[simulated {p}:{m}] A {task} about {premise}, written for the demo log. Not real model output."
                   for p, m in plan.entries for task in plan.tasks for premise in PREMISES]
        errors = [f"Every provider failed for {plan.tiers[ti]}/{plan.tasks[ki]} (simulated; the last was "
                  f"{PLAIN_WORDS.get(kind, kind)})." for ti, ki in plan.routes for kind in ERROR_KINDS]
        errors += [f"{p}:{m} stopped mid-answer (stream cut off mid-answer)" for p, m in plan.entries]
        attempt_errors = [f"[simulated] {PLAIN_WORDS.get(kind, kind)}" for kind in ERROR_KINDS]
        traces = []
        for ti, ki in plan.routes:
            chain = [{"provider": ref.provider, "model": ref.model, "available": True, "reason": "",
                      "simulated": True} for ref in policy.chain(plan.tiers[ti], plan.tasks[ki])]
            traces.append(json.dumps({"chain": chain, "skipped": []}))
        return cls(prompts=prompts, outputs=outputs, errors=errors, attempt_errors=attempt_errors, traces=traces)


def _floats(values: np.ndarray) -> pa.Array:
    return pa.array(values, type=pa.float64(), mask=np.isnan(values))


def _constant(value: str | None, n: int) -> pa.Array:
    return strings_from_indices([value], np.zeros(n, np.int32)) if value is not None else pa.nulls(n, pa.string())


def request_table(*, plan: DemoPlan, text: DemoText, o: Outcome, ts_us: np.ndarray, tier: np.ndarray,
                  task: np.ndarray, route: np.ndarray, premise: np.ndarray, user: np.ndarray,
                  request_ids: pa.Array, parent_ids: pa.Array) -> pa.Table:
    """One row per request; every array is in request order."""
    n = len(ts_us)
    served = o.served >= 0
    per_task = len(PREMISES) * len(GENRES) * len(TONES)
    prompt_idx = task * per_task + premise
    premise_only = premise // (len(GENRES) * len(TONES))
    out_idx = np.where(served, (np.maximum(o.served, 0) * len(plan.tasks) + task) * len(PREMISES) + premise_only, -1)
    fail_idx = route * len(ERROR_KINDS) + np.maximum(o.last_kind, 0)
    err_idx = np.where(o.status == FAILED, fail_idx,
                       np.where(o.status == TRUNC, len(plan.routes) * len(ERROR_KINDS) + o.served, -1))
    entry_provider = [p for p, _ in plan.entries]
    entry_model = [m for _, m in plan.entries]
    columns = {
        "request_id": request_ids, "parent_id": parent_ids,
        "ts": pa.array(ts_us, type=pa.int64()).cast(TS_TYPE), "source": _constant("demo", n),
        "tier": strings_from_indices(plan.tiers, tier), "task": strings_from_indices(plan.tasks, task),
        "policy": _constant(plan.policy, n), "status": strings_from_indices(STATUS, o.status),
        "provider": strings_from_indices(entry_provider, o.served),
        "model": strings_from_indices(entry_model, o.served), "simulated": pa.array(np.ones(n, bool)),
        "latency_ms": _floats(o.elapsed_ms), "ttft_ms": _floats(o.ttft_ms),
        "input_tokens": pa.array(o.in_tok), "output_tokens": pa.array(o.out_tok),
        "cached_tokens": pa.array(np.zeros(n, np.int64)),
        "cost_usd": decimal_from_units(o.cost_units, ~o.unpriced),
        "n_attempts": pa.array(o.n_attempts), "fallback_depth": pa.array(o.n_failed),
        "n_skipped": pa.array(np.zeros(n, np.int32)), "experiment_id": pa.nulls(n, pa.string()),
        "user_id": strings_from_indices([f"demo-user-{i:04d}" for i in range(USERS)], user),
        "prompt_sha256": strings_from_indices([sha256(p) for p in text.prompts], prompt_idx),
        "prompt": strings_from_indices(text.prompts, prompt_idx),
        "output": strings_from_indices(text.outputs, out_idx),
        "output_sha256": strings_from_indices([sha256(t) for t in text.outputs], out_idx),
        "error": strings_from_indices(text.errors, err_idx), "routing_reason": pa.nulls(n, pa.string()),
        "trace": strings_from_indices(text.traces, route),
    }
    return pa.Table.from_arrays([columns.get(f.name, pa.nulls(n, f.type)) for f in REQUEST_SCHEMA], schema=REQUEST_SCHEMA)


def attempt_table(*, plan: DemoPlan, text: DemoText, att: dict[str, np.ndarray], tier: np.ndarray,
                  task: np.ndarray, request_ids: pa.Array) -> pa.Table:
    """One row per attempt; ``att['row']`` points at the request (in request order)."""
    row, kind, entry = att["row"], att["kind"], att["entry"]
    n = len(row)
    ok = kind == SUCCESS
    truncated = kind == ERROR_KINDS.index("truncated")
    # A stream cut mid-answer is logged with the error that cut it (connection reset or no finish reason).
    cut_type = np.where(att["cut_by"] == 0, ERROR_KINDS.index("unavailable"), ERROR_KINDS.index("bad_response"))
    error_type = np.where(ok, -1, np.where(truncated, cut_type, kind))
    status = np.where(ok, 1, np.where(truncated, 2, 0))
    entry_provider = [p for p, _ in plan.entries]
    entry_model = [m for _, m in plan.entries]
    http = att["http"]
    columns = {
        "request_id": request_ids.take(pa.array(row)), "n": pa.array(att["n"], pa.int32()),
        "ts": pa.array(att["start_us"], type=pa.int64()).cast(TS_TYPE), "source": _constant("demo", n),
        "tier": strings_from_indices(plan.tiers, tier[row]), "task": strings_from_indices(plan.tasks, task[row]),
        "provider": strings_from_indices(entry_provider, entry),
        "model": strings_from_indices(entry_model, entry),
        "response_model": strings_from_indices(entry_model, np.where(ok, entry, -1)),
        "simulated": pa.array(np.ones(n, bool)), "status": strings_from_indices(ATTEMPT_STATUS, status),
        "error_type": strings_from_indices(list(ERROR_KINDS), error_type),
        "error": strings_from_indices(text.attempt_errors, np.where(ok, -1, kind)),
        "http_status": pa.array(http, type=pa.int32(), mask=http < 0),
        "latency_ms": _floats(att["latency"]), "ttft_ms": _floats(att["ttft"]),
        "input_tokens": pa.array(att["in_tok"]), "output_tokens": pa.array(att["out_tok"]),
        "cached_tokens": pa.array(np.zeros(n, np.int64)), "cost_usd": decimal_from_units(att["cost"], att["priced"]),
        "price_source": strings_from_indices(plan.price_source, np.where(att["priced"], entry, -1)),
        "finish_reason": strings_from_indices(["stop"], np.where(ok, 0, -1)),
        "retry": pa.array(att["retry"], pa.int32()), "hedge": pa.array(np.zeros(n, bool)),
    }
    return pa.Table.from_arrays([columns.get(f.name, pa.nulls(n, f.type)) for f in ATTEMPT_SCHEMA], schema=ATTEMPT_SCHEMA)
