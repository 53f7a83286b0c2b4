"""Routes a request through its tier x task chain until a provider answers.

One code path serves whole and streamed answers, live traffic, experiments
and the sandbox. This module holds the public API (``route``, ``agenerate``,
``astream``, ``aprobe`` and their blocking twins) and what
every request shares: its context (``context.RequestContext``), its deadline, the guards consulted
around each attempt (``guards.Guards``: circuit breakers, budgets, health marks)
and the call log that gets each finished ``GenerationResult``.
``chain_walk.ChainWalk`` walks the chain (retries, hedging, fallback) and
returns the result; ``attempts.AttemptRunner`` makes and prices each call.

Time comes only from the injected ``Clock`` and timeouts from the running
loop, so the sandbox can run this same router in virtual time.

The router is async. ``Router.generate``/``stream``/``probe`` are
blocking twins for threads (Streamlit, the CLI); they run the coroutine on
one shared background loop, so many threads can generate at once.
"""
from __future__ import annotations

import asyncio
import random
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from taelio_core.config.policy import ChainEntry, RoutingPolicy
from taelio_core.config.pricing import Pricer
from taelio_core.errors import InputError, TaelioError
from taelio_core.guards.attempt_guards import Guards
from taelio_core.guards.breakers import CircuitBreakers
from taelio_core.guards.budgets import BudgetGuard
from taelio_core.providers.base import Provider
from taelio_core.routing.attempts import AttemptRunner
from taelio_core.routing.chain_walk import ChainWalk, Truncated, WalkSetup
from taelio_core.routing.clock import Clock, SystemClock
from taelio_core.routing.context import CallSink, Guard, RequestContext, new_id
from taelio_core.routing.generation import ChatRequest
from taelio_core.routing.inputs import Inputs, check_inputs
from taelio_core.routing.route_plan import PolicyPlan, compile_plan
from taelio_core.routing.runtime import background_loop
from taelio_core.routing.streams import GenerationStream
from taelio_core.routing.trace import GenerationResult, RouteEntry

if TYPE_CHECKING:
    from taelio_core.config.traffic_split import TrafficSplit

# CallSink, Guard, RequestContext and GenerationStream live in ``context`` and ``streams``; they are
# re-exported here because callers think of them as the router's.
__all__ = ["CallSink", "GenerationStream", "Guard", "Guards", "RequestContext", "Router", "Truncated", "new_id"]

_RENDERED_MAX = 256  # rendered requests kept per plan: a repeated prompt (the sandbox, retries of a form)
_NO_ANSWER = frozenset({"rejected", "failed"})  # the statuses raise_for_status raises on


class _Active:
    """The policy in force and everything compiled from it. Replaced whole by ``use_policy``."""

    __slots__ = ("policy", "plan", "runner", "setup", "rendered", "prepared", "routes")

    def __init__(self, policy: RoutingPolicy, plan: PolicyPlan, runner: AttemptRunner, setup: WalkSetup) -> None:
        self.policy, self.plan, self.runner, self.setup = policy, plan, runner, setup
        self.rendered: dict[tuple[str, str | None, Inputs], ChatRequest] = {}
        # The inputs as the caller gave them -> (checked, rendered): a repeated request is checked and rendered
        # once (both are pure functions of the inputs and this plan).
        self.prepared: dict[tuple[str, str, Inputs], tuple[Inputs, ChatRequest]] = {}
        # (tier, task) -> (chain, traffic split) for requests that pin no provider; only valid names get here.
        self.routes: dict[tuple[str, str], tuple[tuple[ChainEntry, ...], TrafficSplit | None]] = {}


class Router:
    def __init__(self, policy: RoutingPolicy, providers: dict[str, Provider], *,
                 pricer: Pricer | None = None, sink: CallSink | None = None, clock: Clock | None = None,
                 source: str = "live", guards: Sequence[Guard] = (), breakers: CircuitBreakers | None = None,
                 budgets: BudgetGuard | None = None, rng: random.Random | None = None) -> None:
        """``breakers`` and ``budgets`` default to fresh ones from the policy (budgets then start from
        zero spend: ``Taelio.open`` passes ones loaded from the call log). ``guards`` come after them."""
        missing = [name for name in policy.providers if name not in providers]
        if missing:
            raise TaelioError(f"no provider object for {', '.join(missing)}")
        self.providers = providers
        kinds = {name: cfg.kind for name, cfg in policy.providers.items()}
        self.pricer = pricer or Pricer(policy.model.pricing, kinds)
        self.sink = sink
        self.clock = clock or SystemClock()
        self.source = source
        self.rng = rng or random.Random()
        self.breakers = breakers or CircuitBreakers(policy.model.breakers, clock=self.clock,
                                                    unhealthy_s=policy.model.resilience.unhealthy_s)
        self.budgets = budgets or BudgetGuard(
            policy, self.pricer, clock=self.clock,
            simulated_providers=[n for n, p in providers.items() if p.simulated])
        self.guards = Guards(self.breakers, self.budgets, guards)
        self._active = self._activate(policy, self.pricer)

    # ---- the plan ------------------------------------------------------------------
    def _activate(self, policy: RoutingPolicy, pricer: Pricer | None = None) -> _Active:
        plan = compile_plan(policy, pricer)   # None: a Pricer of this policy's own price overrides
        runner = AttemptRunner(plan, self.clock)
        setup = WalkSetup(providers=self.providers, guards=self.guards, runner=runner, clock=self.clock,
                          rng=self.rng, resilience=policy.model.resilience, hedging=policy.model.hedging,
                          policy_name=policy.name)
        return _Active(policy, plan, runner, setup)

    def use_policy(self, policy: RoutingPolicy) -> None:
        """Route new requests by ``policy``: its plan is compiled, then swapped in whole. A request holds the
        plan it started with to its end (its chain, settings, rules and prices), so none sees parts of two.
        Breaker and budget state carry over (they describe the providers, not the policy)."""
        missing = [name for name in policy.providers if name not in self.providers]
        if missing:
            raise TaelioError(f"no provider object for {', '.join(missing)}")
        self._active = self._activate(policy)

    @property
    def policy(self) -> RoutingPolicy:
        return self._active.policy

    @property
    def plan(self) -> PolicyPlan:
        return self._active.plan

    @property
    def runner(self) -> AttemptRunner:
        return self._active.runner

    # ---- selection info ------------------------------------------------------------
    def route(self, tier: str, task: str) -> list[RouteEntry]:
        """The chain for ``tier`` x ``task``, each entry with whether it can be used and why not."""
        self._check_names(tier, task)
        out = []
        for entry in self.policy.chain(tier, task):
            provider = self.providers[entry.provider]
            availability = provider.availability()
            reason = availability.reason
            if availability.available:
                reason = self.guards.peek(entry) or ""
            out.append(RouteEntry(provider=entry.provider, model=entry.model,
                                  available=availability.available and not reason,
                                  reason=reason, simulated=provider.simulated))
        return out

    def _check_names(self, tier: str, task: str, provider: str | None = None,
                     policy: RoutingPolicy | None = None) -> None:
        policy = policy or self.policy
        if tier not in policy.model.tiers:
            raise InputError(f"unknown tier '{tier}' (tiers: {', '.join(policy.tiers)})", field="tier")
        if task not in policy.model.tasks:
            raise InputError(f"unknown task '{task}' (tasks: {', '.join(policy.tasks)})", field="task")
        if provider is not None and provider not in policy.providers:
            raise InputError(f"unknown provider '{provider}' (providers: {', '.join(policy.providers)})",
                             field="provider")

    def chain_for(self, tier: str, task: str, provider: str | None = None,
                  policy: RoutingPolicy | None = None) -> tuple[ChainEntry, ...]:
        policy = policy or self.policy
        self._check_names(tier, task, provider, policy)
        chain = policy.chain(tier, task)
        if provider is None:
            return chain
        if not policy.tier(tier).allow_provider_override:
            raise InputError(f"tier '{tier}' does not allow choosing a provider", field="provider")
        chosen = tuple(e for e in chain if e.provider == provider)
        if not chosen:
            raise InputError(f"provider '{provider}' is not in the {tier} chain for {task}", field="provider")
        return chosen

    def render(self, task: str, inputs: Inputs, tier: str | None = None,
               active: _Active | None = None) -> ChatRequest:
        active = active or self._active
        key = (task, tier, inputs)
        rendered = active.rendered
        request = rendered.get(key)
        if request is None:
            policy = active.policy
            cfg = policy.task(task)
            variables = inputs.variables(cfg.needs)
            settings = policy.settings(tier or policy.tiers[0], task)
            request = ChatRequest(system=cfg.system.format(**variables), user=cfg.user.format(**variables),
                                  settings=settings, task=task, variables=tuple(variables.items()))
            if len(rendered) >= _RENDERED_MAX:
                rendered.clear()
            rendered[key] = request
        return request

    # ---- execution --------------------------------------------------------------------
    def _context(self, tier: str, task: str, inputs: Inputs, *, provider: str | None, parent_id: str | None,
                 experiment_id: str | None, source: str | None, user_id: str | None,
                 deadline_s: float | None = None, active: _Active) -> RequestContext:
        policy = active.policy
        route = active.routes.get((tier, task)) if provider is None else None
        if route is None:
            chain = self.chain_for(tier, task, provider, policy)
            split = policy.split(tier, task) if provider is None else None
            if provider is None:
                active.routes[(tier, task)] = (chain, split)
        else:
            chain, split = route
        try:
            prepared = active.prepared.get((task, tier, inputs))
        except TypeError:  # an unhashable field (not text): check_inputs names it
            prepared = None
        if prepared is None:
            checked = check_inputs(inputs)
            prepared = (checked, self.render(task, checked, tier, active))
            if len(active.prepared) >= _RENDERED_MAX:
                active.prepared.clear()
            active.prepared[(task, tier, inputs)] = prepared
        inputs, request = prepared
        if deadline_s is not None and not deadline_s > 0:
            raise InputError(f"the deadline must be a positive number of seconds, not {deadline_s!r}",
                             field="deadline")
        reason = None
        if split is not None:
            arm = split.choose(user_id)
            chain, reason = arm.chain, split.reason(arm)
        ctx = RequestContext(
            request_id=new_id(), parent_id=parent_id, tier=tier, task=task,
            source=source or self.source, inputs=inputs, request=request,
            started_at=self.clock.now(), t0=self.clock.monotonic(), experiment_id=experiment_id,
            user_id=user_id, chain=chain, chain_tier=tier,
            deadline_s=deadline_s or policy.model.resilience.deadline_s, routing_reason=reason,
            pinned_provider=provider)
        out = self.guards.reroute(ctx) if self.guards.can_reroute else None
        if out is not None:
            use, why = out
            degraded = policy.chain(use, task)
            if provider is not None:
                degraded = tuple(e for e in degraded if e.provider == provider) or degraded
            ctx.chain, ctx.chain_tier, ctx.routing_reason = degraded, use, why
            ctx.request = self.render(task, inputs, use, active)
        return ctx

    def _walk(self, ctx: RequestContext, active: _Active, *, streaming: bool, exclude: Collection[str] = (),
              continue_on_truncation: bool = False) -> ChainWalk:
        return ChainWalk(active.setup, ctx, streaming=streaming, exclude=exclude,
                         continue_on_truncation=continue_on_truncation)

    def _log(self, result: GenerationResult) -> GenerationResult:
        if self.sink is not None:
            self.sink.record(result)
        return result

    async def agenerate(self, tier: str, task: str, inputs: Inputs, *, provider: str | None = None,
                        parent_id: str | None = None, experiment_id: str | None = None,
                        source: str | None = None, user_id: str | None = None,
                        exclude: Collection[str] = (), deadline_s: float | None = None) -> GenerationResult:
        """The whole answer, or ``AllProvidersFailed`` carrying every attempt, or ``BudgetExceeded`` when a
        hard budget left nothing to try (the request is logged either way).

        ``deadline_s`` overrides the policy's ``[resilience] deadline_s`` for this request.
        """
        active = self._active   # read once: this request's plan, to its end
        ctx = self._context(tier, task, inputs, provider=provider, parent_id=parent_id, experiment_id=experiment_id,
                            source=source, user_id=user_id, deadline_s=deadline_s, active=active)
        walk = ChainWalk(active.setup, ctx, streaming=False, exclude=exclude)
        try:
            result = await walk.run()
        except asyncio.CancelledError:  # the caller went away: the walk concluded it as cancelled
            if walk.result is not None:
                self._log(walk.result)
            raise
        if self.sink is not None:
            self.sink.record(result)
        return result.raise_for_status() if result.status in _NO_ANSWER else result

    def astream(self, tier: str, task: str, inputs: Inputs, *, provider: str | None = None,
                parent_id: str | None = None, experiment_id: str | None = None, source: str | None = None,
                user_id: str | None = None, exclude: Collection[str] = (),
                continue_on_truncation: bool = False, deadline_s: float | None = None) -> GenerationStream:
        """Text chunks as they arrive. After the last one, ``stream.result`` holds the trace.

        A failure before the first chunk falls back silently. A stream that
        breaks after text was shown ends the request as ``truncated``, or, with
        ``continue_on_truncation``, yields a ``Truncated`` marker and goes on
        with the next entry.
        """
        active = self._active
        ctx = self._context(tier, task, inputs, provider=provider, parent_id=parent_id, experiment_id=experiment_id,
                            source=source, user_id=user_id, deadline_s=deadline_s, active=active)
        return GenerationStream(self._walk(ctx, active, streaming=True, exclude=exclude,
                                           continue_on_truncation=continue_on_truncation),
                                request_id=ctx.request_id, sink=self.sink)

    async def aprobe(self, provider: str, task: str, *, model: str | None = None,
                     prompt: str = "A lighthouse keeper finds a message.", max_tokens: int = 64) -> GenerationResult:
        """A tiny live request to one provider (the seed's ``POST /providers/test``), logged as source=test.

        Uses ``model``, or else the first model that provider has for ``task`` in the policy. Never raises on
        provider failure: the result says what happened.
        """
        self._check_names(self.policy.tiers[0], task, provider)
        for tier in self.policy.tiers:
            entries = [e for e in self.policy.chain(tier, task)
                       if e.provider == provider and model in (None, e.model)]
            if entries:
                break
        else:
            which = f"model '{model}'" if model else "model"
            raise InputError(f"provider '{provider}' has no {which} for task '{task}' in any chain",
                             field="model" if model else "provider")
        inputs = check_inputs(Inputs(prompt=prompt, genre="any", tone="any", idea=prompt))
        request = self.render(task, inputs, tier)
        request = replace(request, settings=replace(request.settings, max_tokens=max_tokens))
        return await self.arun(request, (entries[0],), tier=tier, task=task, inputs=inputs, source="test")

    async def arun(self, request: ChatRequest, chain: Sequence[ChainEntry], *, tier: str, task: str,
                   inputs: Inputs, source: str | None = None, experiment_id: str | None = None,
                   parent_id: str | None = None, routing_reason: str | None = None) -> GenerationResult:
        """An already-rendered request through an explicit chain: an experiment's variant, the judge, a probe.

        The same attempt, guard, pricing and logging path as ``agenerate``,
        but the caller chose the template, the settings and the exact
        provider:model entries. Never raises on provider failure: the result
        says what happened.
        """
        active = self._active
        self._check_names(tier, task, policy=active.policy)
        for entry in chain:
            if entry.provider not in self.providers:
                raise InputError(f"unknown provider '{entry.provider}' (providers: {', '.join(self.providers)})",
                                 field="provider")
        ctx = RequestContext(request_id=new_id(), parent_id=parent_id, tier=tier, task=task,
                             source=source or self.source, inputs=inputs, request=request,
                             started_at=self.clock.now(), t0=self.clock.monotonic(), experiment_id=experiment_id,
                             chain=tuple(chain), chain_tier=tier, routing_reason=routing_reason,
                             deadline_s=active.policy.model.resilience.deadline_s)
        return self._log(await self._walk(ctx, active, streaming=False).run())

    def probe(self, provider: str, task: str, **kw: object) -> GenerationResult:
        return background_loop().run(self.aprobe(provider, task, **kw))  # type: ignore[arg-type]

    def recent_ttft(self, ref: str) -> list[float]:
        """Recent first-token times (ms) of ``provider:model``'s answers, for a learnt hedging threshold."""
        return self.guards.recent_ttft(ref)

    # ---- blocking twins, for threads ---------------------------------------------------
    def generate(self, tier: str, task: str, inputs: Inputs, **kw: object) -> GenerationResult:
        return background_loop().run(self.agenerate(tier, task, inputs, **kw))  # type: ignore[arg-type]

    def stream(self, tier: str, task: str, inputs: Inputs, **kw: object) -> GenerationStream:
        """A stream usable with a plain ``for`` loop from any thread."""
        return self.astream(tier, task, inputs, **kw)  # type: ignore[arg-type]
