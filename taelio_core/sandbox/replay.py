"""The older sandbox engine: the live async router over a traffic sample, on a virtual-time asyncio loop.

Kept for what the discrete-event engine (``arm``, ``walk``) does not cover yet:
policies with hedging or live traffic splits, and tests that add their own guards.

``run_policy`` builds a ``taelio_core.routing.router.Router`` exactly as live does
(same class, same guards), gives it the simulator (``SimulatedProvider``, as demo mode does), a
``LoopClock`` and a ``VirtualTimeLoop``, then starts each request at its
arrival second as its own task. Sleeps, timeouts, breakers and back-offs all
run in virtual time, so a day of traffic takes seconds.

What makes it fast: no call log (the sink keeps one compact tuple per request
and per attempt, turned into DataFrames at the end), providers that only
sleep and pick a number, and a loop whose timer heap compares in C.
Progress is reported between slices of virtual time; the callback may cancel.
"""
from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from taelio_core.config.policy import RoutingPolicy
from taelio_core.config.pricing import Pricer
from taelio_core.errors import AllProvidersFailed, BudgetExceeded, TaelioError
from taelio_core.guards.budgets import BudgetGuard
from taelio_core.providers.simulated import CURRENT_REQUEST, RequestSpec, Script, SimulatedProvider
from taelio_core.routing.clock import LoopClock
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Guard, Router
from taelio_core.routing.trace import GenerationResult
from taelio_core.sandbox.loop import VirtualTimeLoop
from taelio_core.sandbox.models import ModelSet, RateLimit
from taelio_core.sandbox.traffic import Traffic

__all__ = ["ArmRun", "Progress", "SimulationCancelled", "run_in_virtual_time", "run_policy", "sandbox_providers"]

# Called with the share of requests finished (0..1); return False to cancel.
Progress = Callable[[float], bool | None]
GuardFactory = Callable[[RoutingPolicy, LoopClock], Sequence[Guard]]

REQUEST_COLUMNS = ["i", "arrival_s", "tier", "task", "status", "provider", "model", "latency_ms", "ttft_ms",
                   "cost_usd", "unpriced", "n_attempts", "fallback_depth", "n_skipped", "input_tokens",
                   "output_tokens", "routing_reason"]
ATTEMPT_COLUMNS = ["i", "t_s", "tier", "provider", "model", "status", "error_type", "latency_ms", "cost_usd"]
# Short on purpose: the router checks every character of the inputs.
_INPUTS = Inputs(prompt="sim", genre="", tone="", idea="sim")
_SLICES = 50


class SimulationCancelled(TaelioError):
    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"the simulation was cancelled after {done:,} of {total:,} requests")
        self.done, self.total = done, total


@dataclass(kw_only=True)
class ArmRun:
    """One policy over one traffic sample with one seed."""

    policy: str
    seed: int
    requests: pd.DataFrame
    attempts: pd.DataFrame
    traces: list[dict[str, object]]
    wall_s: float
    virtual_s: float
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Simulated requests per wall-clock second."""
        return len(self.requests) / self.wall_s if self.wall_s > 0 else math.inf


UNUSUAL_TRACES = 3


class _CompactSink:
    """The router's ``CallSink`` for the sandbox: one tuple per request and attempt, no database."""

    def __init__(self, traffic: Traffic, sample: set[int]) -> None:
        self.start = traffic.start
        self.arrival = traffic.arrival_s
        self.requests: list[tuple] = []
        self.attempts: list[tuple] = []
        self.traces: list[dict[str, object]] = []
        self.sample = sample
        self.unusual: dict[str, int] = {}     # traces kept per status other than ok (see record)

    def record(self, result: GenerationResult) -> None:
        i = CURRENT_REQUEST.get().index
        cost, unpriced, tokens_in, tokens_out = 0.0, False, 0, 0
        start = self.start
        for a in result.attempts:
            usage = a.usage
            tokens_in += usage.input_tokens
            tokens_out += usage.output_tokens
            if a.cost_usd is not None:
                attempt_cost = float(a.cost_usd)
                cost += attempt_cost
            else:
                attempt_cost = math.nan
                unpriced = unpriced or bool(usage.input_tokens or usage.output_tokens)
            self.attempts.append((i, (a.started_at - start).total_seconds(), result.tier, a.provider, a.model,
                                  a.status, a.error_type, a.latency_ms, attempt_cost))
        depth = sum(1 for a in result.attempts if a.status != "ok")
        self.requests.append((i, float(self.arrival[i]), result.tier, result.task, result.status, result.provider,
                              result.model, result.latency_ms, result.ttft_ms, cost, unpriced,
                              len(result.attempts), depth, len(result.skipped), tokens_in, tokens_out,
                              result.routing_reason))
        # The sample is drawn before the run, so it rarely holds a failure: the first few requests of each
        # status other than ok are kept too, so the traces show how requests fail, not only that they work.
        unusual = result.status != "ok" and self.unusual.get(result.status, 0) < UNUSUAL_TRACES
        if unusual:
            self.unusual[result.status] = self.unusual.get(result.status, 0) + 1
        if i in self.sample or unusual:
            trace = result.as_dict()
            trace["i"], trace["arrival_s"] = i, float(self.arrival[i])
            self.traces.append(trace)

    def rejected(self, i: int, tier: str, task: str, reason: str) -> None:
        """A request the router refused before any attempt (unknown tier/task, a hard budget)."""
        self.requests.append((i, float(self.arrival[i]), tier, task, "rejected", None, None, math.nan, math.nan,
                              0.0, False, 0, 0, 0, 0, 0, reason))


def sandbox_providers(provider_names: list[str], models: ModelSet, *, seed: int, loop_start: float = 0.0,
                      script: Script | None = None) -> dict[str, SimulatedProvider]:
    """The simulator for each provider: each model behaves as its ``ProviderModel``; a model only policy B
    uses behaves as the provider's first one (``ModelSet.get``)."""
    out = {}
    for name in provider_names:
        profiles = {m.model: m for m in models.models.values() if m.provider == name}
        default = next(iter(profiles.values()), None) or models.get(name, "")
        out[name] = SimulatedProvider(name=name, profile=default, profiles=profiles, seed=seed,
                                      limit=models.limits.get(name, RateLimit()), script=script,
                                      loop_start=loop_start)
    return out


def _sample_indices(traffic: Traffic, per_tier: int = 4) -> set[int]:
    """A few requests per tier, from the start, the middle and the end of the traffic."""
    chosen: set[int] = set()
    n = len(traffic)
    for k in range(len(traffic.tiers)):
        rows = (traffic.tier_idx == k).nonzero()[0]
        if rows.size:
            picks = {int(rows[int(j)]) for j in (rows.size * f for f in (0, 0.34, 0.5, 0.67)) if j < rows.size}
            chosen |= set(list(picks)[:per_tier])
    return {i for i in chosen if i < n}


def run_policy(policy: RoutingPolicy, traffic: Traffic, models: ModelSet, *, seed: int = 0,
               script: Script | None = None, progress: Progress | None = None,
               guards: GuardFactory | None = None) -> ArmRun:
    """Every request of ``traffic`` through ``policy``'s router; returns compact results."""
    wall0 = time.perf_counter()
    loop = VirtualTimeLoop()
    clock = LoopClock(traffic.start, loop)
    clock.monotonic()  # anchor: virtual second 0 is traffic.start
    providers = sandbox_providers(list(policy.providers), models, seed=seed, script=script)
    sink = _CompactSink(traffic, _sample_indices(traffic))
    pricer = Pricer(policy.model.pricing, {name: cfg.kind for name, cfg in policy.providers.items()})
    # Breakers come from the policy on the virtual clock (the router's default); budgets must count
    # simulated spend, or a sandbox could never hit one; the router's jitter is seeded.
    budgets = BudgetGuard(policy, pricer, clock=clock, count_simulated=True)
    router = Router(policy, providers, pricer=pricer, sink=sink, clock=clock, source="sandbox",
                    guards=guards(policy, clock) if guards else (), budgets=budgets, rng=random.Random(seed))
    tiers = [traffic.tiers[k] for k in traffic.tier_idx.tolist()]
    tasks = [traffic.tasks[k] for k in traffic.task_idx.tolist()]
    inputs_tok, outputs_tok = traffic.input_tokens.tolist(), traffic.output_tokens.tolist()
    agenerate = router.agenerate

    async def one(i: int) -> None:
        CURRENT_REQUEST.set(RequestSpec(i, inputs_tok[i], outputs_tok[i]))
        try:
            await agenerate(tiers[i], tasks[i], _INPUTS)
        except AllProvidersFailed:
            pass  # recorded by the sink already
        except (BudgetExceeded, TaelioError) as e:
            sink.rejected(i, tiers[i], tasks[i], str(e))

    run_in_virtual_time(loop, traffic.arrival_s.tolist(), one, progress=progress)
    requests = pd.DataFrame.from_records(sink.requests, columns=REQUEST_COLUMNS).sort_values("i", ignore_index=True)
    attempts = pd.DataFrame.from_records(sink.attempts, columns=ATTEMPT_COLUMNS)
    return ArmRun(policy=policy.name, seed=seed, requests=requests, attempts=attempts,
                  traces=sorted(sink.traces, key=lambda t: t["i"]), wall_s=time.perf_counter() - wall0,
                  virtual_s=loop.time())


def run_in_virtual_time(loop: VirtualTimeLoop, arrival: list[float], one: Callable[[int], Awaitable[None]], *,
                        progress: Progress | None = None) -> None:
    """Start ``one(i)`` as its own task at virtual second ``arrival[i]`` (sorted) and run until every one has
    finished; then close the loop. ``progress`` hears the share done between slices and may cancel."""
    n = len(arrival)
    state = {"done": 0}
    drained = loop.create_future()
    failures: list[BaseException] = []

    async def run(i: int) -> None:
        try:
            await one(i)
        except Exception as e:  # noqa: BLE001 - re-raised below, once the loop is closed
            failures.append(e)
        finally:
            state["done"] += 1
            if state["done"] == n and not drained.done():
                drained.set_result(None)

    def arrive(i: int) -> None:
        when = arrival[i]
        while i < n and arrival[i] <= when:
            loop.create_task(run(i))
            i += 1
        if i < n:
            loop.call_at(arrival[i], arrive, i)

    if n:
        loop.call_at(arrival[0], arrive, 0)
    try:
        horizon = arrival[-1] if n else 0.0
        for k in range(1, _SLICES + 1):
            loop.run_until(horizon * k / _SLICES)
            if progress is not None and progress(0.98 * state["done"] / max(n, 1)) is False:
                raise SimulationCancelled(state["done"], n)
        if n:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(drained)
        if failures:
            raise failures[0]
        if progress is not None:
            progress(1.0)
    finally:
        _shutdown(loop)


def _shutdown(loop: VirtualTimeLoop) -> None:
    """Cancel whatever is still running (after a cancel) and close the loop."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    asyncio.set_event_loop(None)
    loop.close()
