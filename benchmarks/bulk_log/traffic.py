"""Walks many requests through their chains at once, the way the router walks one.

Each step of the loop is one attempt for every request still going: draw
its outcome from the entry's error rates (raised for an outage, and for
429s at busy hours), then succeed, retry the same entry (429 after
Retry-After, 5xx and timeouts with backoff), or fall back to the next entry
until the chain runs out. What comes out is per request (status, the entry
that served it, totals) and per attempt (parallel arrays).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from benchmarks.bulk_log.plan import ERROR_KINDS, ERROR_MS, MAX_RETRY, RETRY_P, SUCCESS, DemoPlan

__all__ = ["FAILED", "OK", "TRUNC", "Outcome", "simulate"]

OK, FAILED, TRUNC = 0, 1, 2
RATE_LIMITED, UNAVAILABLE, TIMEOUT = 0, 1, 2
BAD_REQUEST, BAD_RESPONSE = ERROR_KINDS.index("bad_request"), ERROR_KINDS.index("bad_response")
TRUNCATED = ERROR_KINDS.index("truncated")
# HTTP status by outcome (-1: none). 5xx is drawn separately.
_HTTP = np.array([429, 0, -1, 401, 404, 400, 200, 200, -1, -1])


@dataclass(kw_only=True)
class Outcome:
    status: np.ndarray
    served: np.ndarray          # entry index that answered (or whose stream broke), -1 for none
    elapsed_ms: np.ndarray      # the request's latency, waits included
    ttft_ms: np.ndarray
    n_attempts: np.ndarray
    n_failed: np.ndarray
    in_tok: np.ndarray
    out_tok: np.ndarray
    cost_units: np.ndarray      # 1e-10 USD
    unpriced: np.ndarray        # an attempt with tokens had no price
    last_kind: np.ndarray
    attempts: dict[str, np.ndarray] = field(default_factory=dict)


def simulate(rng: np.random.Generator, plan: DemoPlan, route: np.ndarray, ts_us: np.ndarray, load: np.ndarray,
             streamed: np.ndarray, doomed: np.ndarray) -> Outcome:
    """``doomed`` requests (too long, say) get a 400 from every provider, so they fail whole."""
    n = len(route)
    pos = np.zeros(n, np.int32)
    retry = np.zeros(n, np.int32)
    o = Outcome(status=np.full(n, FAILED, np.int8), served=np.full(n, -1, np.int32), elapsed_ms=np.zeros(n),
                ttft_ms=np.full(n, np.nan), n_attempts=np.zeros(n, np.int32), n_failed=np.zeros(n, np.int32),
                in_tok=np.zeros(n, np.int64), out_tok=np.zeros(n, np.int64), cost_units=np.zeros(n, np.int64),
                unpriced=np.zeros(n, bool), last_kind=np.full(n, -1, np.int8))
    parts: list[dict[str, np.ndarray]] = []
    active = np.arange(n)
    step = 0
    while active.size:
        m = active.size
        r = route[active]
        e = plan.chain[r, pos[active]]
        start_us = ts_us[active] + (o.elapsed_ms[active] * 1000.0).astype(np.int64)
        kind = _draw(rng, plan, e, start_us, load[active], streamed[active])
        kind[doomed[active]] = BAD_REQUEST
        ok, trunc = kind == SUCCESS, kind == TRUNCATED

        out_tok = np.where(ok, np.clip(plan.out_mean[r] * rng.lognormal(0.0, 0.45, m), 8, plan.max_tokens[r]), 0
                           ).astype(np.int64)
        in_tok = np.where(ok, np.maximum(10.0, plan.in_mean[r] * rng.lognormal(0.0, 0.25, m)), 0).astype(np.int64)
        sigma = plan.sigma[e]
        ttft = plan.ttft_ms[e] * np.exp(sigma * rng.standard_normal(m))
        full = ttft + np.maximum(out_tok, plan.out_mean[r]) * plan.ms_per_token[e] * np.exp(
            0.5 * sigma * rng.standard_normal(m))
        latency = ERROR_MS[np.minimum(kind, SUCCESS - 1)] * np.exp(0.4 * rng.standard_normal(m))
        latency = np.where(ok, full, latency)
        latency = np.where(kind == TIMEOUT, plan.timeout_ms[r] * rng.uniform(1.0, 1.01, m), latency)
        latency = np.where(trunc | (kind == BAD_RESPONSE), full * rng.uniform(0.2, 0.9, m), latency)
        att_ttft = np.where(ok, np.where(streamed[active], ttft, latency), np.where(trunc, ttft, np.nan))
        cost = np.where(ok, in_tok * plan.in_units[e] + out_tok * plan.out_units[e], 0)
        five_xx = rng.choice(np.array([500, 502, 503]), size=m, p=[0.2, 0.2, 0.6])
        parts.append({"row": active, "n": np.full(m, step + 1, np.int32), "start_us": start_us, "entry": e,
                      "kind": kind, "latency": latency, "ttft": att_ttft, "in_tok": in_tok, "out_tok": out_tok,
                      "cost": cost, "priced": ok & plan.priced[e], "retry": retry[active].copy(),
                      "http": np.where(kind == UNAVAILABLE, five_xx, _HTTP[kind]),
                      "cut_by": rng.integers(0, 2, m)})

        before = o.elapsed_ms[active]
        o.elapsed_ms[active] = before + latency
        o.n_attempts[active] += 1
        o.n_failed[active] += (~ok).astype(np.int32)
        o.in_tok[active] += in_tok
        o.out_tok[active] += out_tok
        o.cost_units[active] += cost
        o.unpriced[active] |= ok & ~plan.priced[e]
        o.last_kind[active] = np.where(ok, -1, kind)
        finished = ok | trunc
        o.status[active[ok]] = OK
        o.status[active[trunc]] = TRUNC
        o.served[active[finished]] = e[finished]
        o.ttft_ms[active[finished]] = before[finished] + att_ttft[finished]

        retryable = np.minimum(kind, TIMEOUT)
        again = ~finished & (kind <= TIMEOUT) & (retry[active] < MAX_RETRY[retryable]) & (
            rng.random(m) < RETRY_P[retryable])
        wait = np.where(kind == RATE_LIMITED, plan.retry_after_ms[e], 200.0 * 2.0 ** retry[active])
        wait = wait * rng.uniform(0.8, 1.5, m)
        o.elapsed_ms[active[again]] += wait[again]
        retry[active[again]] += 1
        moved = ~finished & ~again
        pos[active[moved]] += 1
        retry[active[moved]] = 0
        exhausted = moved & (pos[active] >= plan.chain_len[r])
        active = active[~(finished | exhausted)]
        step += 1
    if parts:
        o.attempts = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return o


def _draw(rng: np.random.Generator, plan: DemoPlan, e: np.ndarray, start_us: np.ndarray, load: np.ndarray,
          streamed: np.ndarray) -> np.ndarray:
    """One outcome per attempt: an index into ERROR_KINDS, or SUCCESS."""
    rates = plan.rates[e]
    rates[:, RATE_LIMITED] *= load                     # 429s follow the traffic
    rates[~streamed, TRUNCATED] = 0.0                  # only a stream can break mid-answer
    for p, begin, end in zip(plan.outage_provider, plan.outage_start_us, plan.outage_end_us):
        hit = (plan.entry_provider[e] == p) & (start_us >= begin) & (start_us < end)
        rates[hit, UNAVAILABLE] = 0.8
        rates[hit, TIMEOUT] = 0.1
    return (rng.random(len(e))[:, None] >= np.cumsum(rates, axis=1)).sum(axis=1)
