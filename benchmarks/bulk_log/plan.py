"""Everything the demo-traffic simulation needs from a policy, turned into numpy arrays once.

The simulation (``demo.traffic``) works on whole columns, so it cannot ask
the policy questions row by row. This module asks them up front: the chain
of every tier x task as entry indices, each entry's simulator profile and
unit prices, the hourly volume curve over the window, and the outages.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from taelio_core.config.policy import RoutingPolicy
from taelio_core.config.pricing import Pricer
from taelio_core.demo.traffic import DemoOutage as Outage
from taelio_core.demo.traffic import demo_outages
from taelio_core.providers import profile_from_config
from taelio_core.routing.generation import Usage

__all__ = ["ERROR_KINDS", "SUCCESS", "DemoPlan", "build_plan"]

# Attempt outcomes the simulation draws, in this order; SUCCESS is one past the last.
ERROR_KINDS = ("rate_limited", "unavailable", "timeout", "auth_failed", "model_not_found", "bad_request",
               "content_blocked", "bad_response", "truncated")
SUCCESS = len(ERROR_KINDS)
# Used when a policy's [simulator] table does not name a class: the rare failures real traffic has.
DEFAULT_RATES = {"rate_limited": 0.03, "unavailable": 0.02, "timeout": 0.01}
RARE_RATES = {"auth_failed": 0.0008, "model_not_found": 0.0006, "bad_request": 0.0005, "content_blocked": 0.002,
              "bad_response": 0.002, "truncated": 0.003}
# Median latency of a failed attempt, by class (ms). Timeouts take the attempt's timeout; bad
# responses and cut streams take part of a full answer's time.
ERROR_MS = np.array([90.0, 250.0, 0.0, 120.0, 140.0, 110.0, 450.0, 0.0, 0.0])
# Retry rules for the retryable classes (rate_limited, unavailable, timeout): chance and most retries.
RETRY_P = np.array([0.7, 0.5, 0.2])
MAX_RETRY = np.array([2, 1, 1])
_US = 1_000_000


@dataclass(frozen=True, kw_only=True, eq=False)
class DemoPlan:
    policy: str
    tiers: list[str]
    tasks: list[str]
    entries: list[tuple[str, str]]            # (provider, model), each once
    entry_provider: np.ndarray                # provider index of each entry
    providers: list[str]
    rates: np.ndarray                         # (entries, kinds) probability per attempt
    sigma: np.ndarray
    ttft_ms: np.ndarray
    ms_per_token: np.ndarray
    retry_after_ms: np.ndarray
    in_units: np.ndarray                      # 1e-10 USD per input token
    out_units: np.ndarray
    priced: np.ndarray
    price_source: list[str | None]
    route_index: np.ndarray                   # (tiers, tasks) -> route
    routes: list[tuple[int, int]]             # route -> (tier, task)
    chain: np.ndarray                         # (routes, longest chain) entry indices, -1 padded
    chain_len: np.ndarray
    out_mean: np.ndarray                      # per route
    in_mean: np.ndarray
    max_tokens: np.ndarray
    timeout_ms: np.ndarray
    tier_weights: np.ndarray
    task_weights: np.ndarray
    pair: tuple[int, int] | None              # (idea task, story task) of the orchestrated flow
    hour_start_us: np.ndarray
    hour_span_us: np.ndarray
    hour_weights: np.ndarray
    load: np.ndarray                          # each hour's traffic relative to the mean
    outages: list[Outage]
    outage_provider: np.ndarray
    outage_start_us: np.ndarray
    outage_end_us: np.ndarray

    def route_of(self, tier: np.ndarray, task: np.ndarray) -> np.ndarray:
        return self.route_index[tier, task]


def _providers_in_chains(policy: RoutingPolicy) -> list[str]:
    seen: dict[str, None] = {}
    for chain in policy.chains.values():
        for entry in chain:
            seen[entry.provider] = None
    return list(seen)


def build_plan(policy: RoutingPolicy, *, days: int, seed: int, now: datetime) -> DemoPlan:
    now = now.astimezone(UTC)
    tiers, tasks = policy.tiers, policy.tasks
    providers = _providers_in_chains(policy)
    entries: list[tuple[str, str]] = []
    for chain in policy.chains.values():
        for entry in chain:
            if (entry.provider, entry.model) not in entries:
                entries.append((entry.provider, entry.model))
    profiles = {name: profile_from_config(policy.model.simulator.get(name)) for name in providers}
    rates = np.zeros((len(entries), len(ERROR_KINDS)))
    for i, (provider, _model) in enumerate(entries):
        given = profiles[provider].error_rates or DEFAULT_RATES
        for k, kind in enumerate(ERROR_KINDS):
            rates[i, k] = given.get(kind, RARE_RATES.get(kind, 0.0))
    prof = [profiles[p] for p, _ in entries]
    kinds = {name: cfg.kind for name, cfg in policy.providers.items()}
    pricer = Pricer(policy.model.pricing, kinds)
    in_units, out_units, priced, sources = [], [], [], []
    for provider, model in entries:
        # Per-token prices, at a size below any tier boundary; 10k tokens x 1e-10 USD units.
        p_in = pricer.price(provider, model, Usage(input_tokens=10_000), now)
        p_out = pricer.price(provider, model, Usage(output_tokens=10_000), now)
        ok = p_in.cost_usd is not None and p_out.cost_usd is not None
        priced.append(ok)
        in_units.append(int((p_in.cost_usd or Decimal(0)) * 1_000_000) if ok else 0)
        out_units.append(int((p_out.cost_usd or Decimal(0)) * 1_000_000) if ok else 0)
        sources.append(p_in.source if ok else None)

    routes = [(ti, ki) for ti in range(len(tiers)) for ki in range(len(tasks))]
    route_index = np.arange(len(routes)).reshape(len(tiers), len(tasks))
    longest = max(len(c) for c in policy.chains.values())
    chain = np.full((len(routes), longest), -1, np.int32)
    chain_len = np.zeros(len(routes), np.int32)
    out_mean, in_mean, max_tokens, timeout_ms = (np.zeros(len(routes)) for _ in range(4))
    for r, (ti, ki) in enumerate(routes):
        refs = policy.chain(tiers[ti], tasks[ki])
        chain_len[r] = len(refs)
        for j, ref in enumerate(refs):
            chain[r, j] = entries.index((ref.provider, ref.model))
        settings = policy.settings(tiers[ti], tasks[ki])
        max_tokens[r] = settings.max_tokens
        timeout_ms[r] = settings.timeout_s * 1000.0
        out_mean[r] = min(max(30.0, 0.45 * settings.max_tokens), settings.max_tokens)
    for r, (ti, ki) in enumerate(routes):
        cfg = policy.task(tasks[ki])
        in_mean[r] = 1.33 * len((cfg.system + " " + cfg.user).split()) + 25
        if cfg.needs is not None:
            in_mean[r] += out_mean[route_index[ti, tasks.index(cfg.needs)]]

    pair = None
    for ki, name in enumerate(tasks):
        needs = policy.task(name).needs
        if needs is not None:
            pair = (tasks.index(needs), ki)
            break
    task_weights = np.array([2.0 if any(policy.task(t).needs == name for t in tasks) else 1.0 for name in tasks])
    tier_weights = 0.5 ** np.arange(len(tiers))

    start = now - timedelta(days=days)
    end_us = int(now.timestamp() * _US) - 60 * _US
    hour_start_us = int(start.timestamp() * _US) + np.arange(days * 24, dtype=np.int64) * 3600 * _US
    hour_span_us = np.clip(end_us - hour_start_us, 0, 3600 * _US)
    hours = (hour_start_us // (3600 * _US)) % 24
    weekday = ((hour_start_us // (86400 * _US)) + 3) % 7          # 1970-01-01 was a Thursday (3)
    distance = np.minimum(np.abs(hours - 15), 24 - np.abs(hours - 15))
    diurnal = 0.25 + np.exp(-(distance / 5.0) ** 2)
    weekly = np.where(weekday >= 5, 0.65, 1.0)
    growth = np.linspace(0.8, 1.2, len(hours))
    weights = diurnal * weekly * growth * hour_span_us / (3600 * _US)
    load = np.clip(weights / weights[weights > 0].mean(), 0.4, 2.0)

    outages = demo_outages(policy, days=days, seed=seed, now=now)
    return DemoPlan(
        policy=policy.name, tiers=tiers, tasks=tasks, entries=entries, providers=providers,
        entry_provider=np.array([providers.index(p) for p, _ in entries], np.int32), rates=rates,
        sigma=np.array([p.latency_sigma for p in prof]), ttft_ms=np.array([p.ttft_ms for p in prof]),
        ms_per_token=np.array([max(0.5, (p.latency_ms - p.ttft_ms) / p.output_tokens) for p in prof]),
        retry_after_ms=np.array([p.retry_after_s * 1000.0 for p in prof]),
        in_units=np.array(in_units, np.int64), out_units=np.array(out_units, np.int64),
        priced=np.array(priced, bool), price_source=sources, route_index=route_index, routes=routes,
        chain=chain, chain_len=chain_len, out_mean=out_mean, in_mean=in_mean, max_tokens=max_tokens,
        timeout_ms=timeout_ms, tier_weights=tier_weights / tier_weights.sum(),
        task_weights=task_weights / task_weights.sum(), pair=pair, hour_start_us=hour_start_us,
        hour_span_us=hour_span_us, hour_weights=weights / weights.sum(), load=load, outages=outages,
        outage_provider=np.array([providers.index(o.provider) for o in outages], np.int32),
        outage_start_us=np.array([int(o.start.timestamp() * _US) for o in outages], np.int64),
        outage_end_us=np.array([int(o.end.timestamp() * _US) for o in outages], np.int64))
