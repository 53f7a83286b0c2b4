"""Bulk call-log rows for benchmarks only (10M rows in minutes): nothing a user sees comes from here.

The demo data users see (``taelio demo-data``, "Load demo data") is made by
the real router in virtual time (``taelio_core.demo``). The benchmarks need
millions of rows, which that would take too long to make, so this
approximates what the router does, in bulk with numpy,
from the same policy (``plan``): every tier x task chain in its fallback
order; the ``[simulator]`` profiles' lognormal latency, time to first token
and error rates; 429s retried after Retry-After (more of them at busy
hours), 5xx and timeouts sometimes retried, auth and model-not-found
failures falling straight through, the odd stream cut mid-answer; two
provider outages; volume that follows the day and the week; idea -> story
pairs under one parent id; prices from the router's own ``Pricer``.

Rows are consistent (a request's attempts, fallback depth and cost are its
attempts'), marked ``source='demo'`` and simulated, and their text says
"[simulated]". They are appended as Arrow batches of ~200k requests, each
one stretch of time, so a 10M-request log takes minutes. The same ``seed``
and ``now`` give the same rows (ids included: running it twice adds nothing).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np
import pyarrow as pa

from taelio_core.calllog.arrow import hex_ids
from taelio_core.calllog.base import CallLog
from benchmarks.bulk_log.plan import DemoPlan, build_plan
from benchmarks.bulk_log.tables import GENRES, PREMISES, TONES, USERS, DemoText, attempt_table, request_table
from benchmarks.bulk_log.traffic import OK, Outcome, simulate
from taelio_core.config.policy import RoutingPolicy
from taelio_core.demo.generator import demo_size

__all__ = ["generate_bulk_log"]

CHUNK = 200_000        # requests per Arrow batch
PAIR_SHARE = 0.3       # share of requests that are half of an idea -> story pair
DOOMED_SHARE = 0.003   # requests every provider rejects (400: too long), so they fail whole


def generate_bulk_log(log: CallLog, policy: RoutingPolicy, *, days: int = 30, requests: int | None = None,
                       seed: int = 0, now: datetime | None = None,
                       progress: Callable[[float], None] | None = None) -> int:
    """Write simulated requests (default 400 a day) over the ``days`` before ``now``; return how many were new.

    ``progress`` gets the fraction done (0.0 to 1.0) after each batch.
    """
    total, now = demo_size(days, requests, now)
    rng = np.random.default_rng([seed, int(now.timestamp())])
    plan = build_plan(policy, days=days, seed=seed, now=now)
    text = DemoText.build(policy, plan)
    per_hour = rng.multinomial(total, plan.hour_weights)
    if progress is not None:
        progress(0.0)
    written = done = 0
    for hours in _batches(per_hour):
        req, att = _batch(rng, plan, text, plan.hour_start_us[hours], plan.hour_span_us[hours], per_hour[hours],
                          plan.load[hours])
        written += log.append_rows(req, att)      # fewer than given when the log holds some already
        done += req.num_rows
        if progress is not None:
            progress(min(1.0, done / total))
    if progress is not None and total == 0:
        progress(1.0)
    return written


def _batches(per_hour: np.ndarray) -> list[np.ndarray]:
    """Consecutive runs of hours holding about CHUNK requests each."""
    out, start, acc = [], 0, 0
    for h, count in enumerate(per_hour.tolist()):
        acc += count
        if acc >= CHUNK:
            out.append(np.arange(start, h + 1))
            start, acc = h + 1, 0
    if acc:
        out.append(np.arange(start, len(per_hour)))
    return out


def _batch(rng: np.random.Generator, plan: DemoPlan, text: DemoText, hour_start: np.ndarray, hour_span: np.ndarray,
           counts: np.ndarray, hour_load: np.ndarray) -> tuple[pa.Table, pa.Table]:
    n = int(counts.sum())
    hour = np.repeat(np.arange(len(counts)), counts)
    ts_us = hour_start[hour] + (rng.random(n) * hour_span[hour]).astype(np.int64)
    order = np.argsort(ts_us, kind="stable")
    ts_us, hour = ts_us[order], hour[order]
    load = hour_load[hour]
    streamed = rng.random(n) < 0.7
    doomed = rng.random(n) < DOOMED_SHARE
    tier = rng.choice(len(plan.tiers), size=n, p=plan.tier_weights)
    task = rng.choice(len(plan.tasks), size=n, p=plan.task_weights).astype(np.int64)
    premise = rng.integers(0, len(PREMISES) * len(GENRES) * len(TONES), n)
    user = np.minimum(rng.zipf(1.4, n), USERS) - 1

    # Pairs: `first` is the orchestrated idea, `second` the story built on it, started once the idea is in.
    n_pairs = int(n * PAIR_SHARE) // 2 if plan.pair is not None else 0
    shuffled = rng.permutation(n)
    first, second = np.sort(shuffled[:n_pairs]), shuffled[n_pairs:2 * n_pairs]
    lead = np.setdiff1d(np.arange(n), second, assume_unique=True)
    if n_pairs:
        assert plan.pair is not None
        task[first] = plan.pair[0]
        for column in (tier, premise, user, streamed, doomed):
            column[second] = column[first]
    route = plan.route_of(tier, task)
    a = simulate(rng, plan, route[lead], ts_us[lead], load[lead], streamed[lead], doomed[lead])
    where_first = np.searchsorted(lead, first)
    idea_ok = a.status[where_first] == OK
    if n_pairs:
        # The story on each idea; where the idea failed, the user asks for an idea again later.
        task[second] = np.where(idea_ok, plan.pair[1], plan.pair[0])
        gap_ms = np.where(idea_ok, rng.lognormal(np.log(800), 0.5, n_pairs), rng.lognormal(np.log(20_000), 0.5, n_pairs))
        ts_us[second] = ts_us[first] + ((a.elapsed_ms[where_first] + gap_ms) * 1000.0).astype(np.int64)
        route[second] = plan.route_of(tier[second], task[second])
    b = simulate(rng, plan, route[second], ts_us[second], load[second], streamed[second], doomed[second])
    o = _merge(n, (lead, a), (second, b))

    request_ids = hex_ids(rng, n, ts_us // 1000)
    parent_of = np.full(n, -1, np.int64)
    parent_of[first] = np.arange(n_pairs)
    parent_of[second[idea_ok]] = np.arange(n_pairs)[idea_ok]
    parent_pool = hex_ids(rng, n_pairs)
    parent_ids = parent_pool.take(pa.array(np.maximum(parent_of, 0), mask=parent_of < 0)) if n_pairs else (
        pa.nulls(n, pa.string()))
    req = request_table(plan=plan, text=text, o=o, ts_us=ts_us, tier=tier, task=task, route=route,
                        premise=premise, user=user, request_ids=request_ids, parent_ids=parent_ids)
    att = attempt_table(plan=plan, text=text, att=o.attempts, tier=tier, task=task, request_ids=request_ids)
    return req, att


def _merge(n: int, *parts: tuple[np.ndarray, Outcome]) -> Outcome:
    """Per-request arrays back in request order; attempt rows pointing at request positions."""
    fields = ["status", "served", "elapsed_ms", "ttft_ms", "n_attempts", "n_failed", "in_tok", "out_tok",
              "cost_units", "unpriced", "last_kind"]
    merged = {}
    for name in fields:
        sample = getattr(parts[0][1], name)
        column = np.empty(n, sample.dtype)
        for rows, outcome in parts:
            column[rows] = getattr(outcome, name)
        merged[name] = column
    attempts: dict[str, list[np.ndarray]] = {}
    for rows, outcome in parts:
        for key, values in outcome.attempts.items():
            attempts.setdefault(key, []).append(rows[values] if key == "row" else values)
    joined = {key: np.concatenate(values) for key, values in attempts.items()}
    return Outcome(**merged, attempts=joined)
