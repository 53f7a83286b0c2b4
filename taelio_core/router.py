"""Routes a request through its tier x task chain until a provider answers.

One code path serves whole and streamed answers, live traffic, experiments
and the sandbox. This module holds the public API (``route``, ``agenerate``,
``astream``, ``aprobe`` and their blocking twins) and what
every request shares: its context (``context.RequestContext``), its deadline, the guards consulted
around each attempt (circuit breakers, budgets: each ``Guard`` says why an
entry is skipped) and the finished ``GenerationResult`` handed to the call
log. ``fallback.ChainWalk`` walks the chain (retries, hedging, fallback);
``attempts.AttemptRunner`` makes and prices each call.

Time comes only from the injected ``Clock`` and timeouts from the running
loop, so the sandbox can run this same router in virtual time.

The router is async. ``Router.generate``/``stream``/``probe`` are
blocking twins for threads (Streamlit, the CLI); they run the coroutine on
one shared background loop, so many threads can generate at once.
"""
from __future__ import annotations

import random
from collections import deque
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import replace

from taelio_core.attempts import AttemptRunner
from taelio_core.breakers import CircuitBreakers
from taelio_core.budgets import BudgetGuard
from taelio_core.clock import Clock, SystemClock
from taelio_core.context import CallSink, Guard, RequestContext, failure_sentence, new_id
from taelio_core.errors import AllProvidersFailed, BudgetExceeded, InputError, TaelioError
from taelio_core.fallback import ChainWalk, Truncated
from taelio_core.generation import ChatRequest
from taelio_core.inputs import check_inputs
from taelio_core.policy import ChainEntry, RoutingPolicy
from taelio_core.pricing import Pricer
from taelio_core.providers.base import Provider
from taelio_core.runtime import background_loop
from taelio_core.streams import GenerationStream
from taelio_core.trace import Attempt, GenerationResult, Inputs, RouteEntry, Skip

# CallSink, Guard, RequestContext and GenerationStream live in ``context`` and ``streams``; they are
# re-exported here because callers think of them as the router's.
__all__ = ["CallSink", "GenerationStream", "Guard", "RequestContext", "Router", "Truncated", "new_id"]

TTFT_SAMPLES = 200  # recent first-token times kept per provider:model, for a learnt hedging threshold
_RENDERED_MAX = 256  # rendered requests kept per router: a repeated prompt (the sandbox, retries of a form)


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
        self.policy = policy
        self.providers = providers
        kinds = {name: cfg.kind for name, cfg in policy.providers.items()}
        self.pricer = pricer or Pricer(policy.model.pricing, kinds)
        self.sink = sink
        self.clock = clock or SystemClock()
        self.source = source
        self.rng = rng or random.Random()
        self.runner = AttemptRunner(self.pricer, self.clock)
        self.breakers = breakers or CircuitBreakers(policy.model.breakers, clock=self.clock,
                                                    unhealthy_s=policy.model.resilience.unhealthy_s)
        self.budgets = budgets or BudgetGuard(
            policy, self.pricer, clock=self.clock,
            simulated_providers=[n for n, p in providers.items() if p.simulated])
        self.guards: list[Guard] = [self.breakers, self.budgets, *guards]
        self._ttft: dict[str, deque[float]] = {}
        self._rendered: dict[tuple[str, str | None, Inputs], ChatRequest] = {}
        self._plain_routes: dict[tuple[ChainEntry, ...], tuple[RouteEntry, ...]] = {}

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
                reason = self.breakers.peek(entry) or ""
            out.append(RouteEntry(provider=entry.provider, model=entry.model,
                                  available=availability.available and not reason,
                                  reason=reason, simulated=provider.simulated))
        return out

    def _check_names(self, tier: str, task: str, provider: str | None = None) -> None:
        if tier not in self.policy.model.tiers:
            raise InputError(f"unknown tier '{tier}' (tiers: {', '.join(self.policy.tiers)})", field="tier")
        if task not in self.policy.model.tasks:
            raise InputError(f"unknown task '{task}' (tasks: {', '.join(self.policy.tasks)})", field="task")
        if provider is not None and provider not in self.policy.providers:
            raise InputError(f"unknown provider '{provider}' (providers: {', '.join(self.policy.providers)})",
                             field="provider")

    def chain_for(self, tier: str, task: str, provider: str | None = None) -> tuple[ChainEntry, ...]:
        self._check_names(tier, task, provider)
        chain = self.policy.chain(tier, task)
        if provider is None:
            return chain
        if not self.policy.tier(tier).allow_provider_override:
            raise InputError(f"tier '{tier}' does not allow choosing a provider", field="provider")
        chosen = tuple(e for e in chain if e.provider == provider)
        if not chosen:
            raise InputError(f"provider '{provider}' is not in the {tier} chain for {task}", field="provider")
        return chosen

    def render(self, task: str, inputs: Inputs, tier: str | None = None) -> ChatRequest:
        key = (task, tier, inputs)
        request = self._rendered.get(key)
        if request is None:
            cfg = self.policy.task(task)
            variables = inputs.variables(cfg.needs)
            settings = self.policy.settings(tier or self.policy.tiers[0], task)
            request = ChatRequest(system=cfg.system.format(**variables), user=cfg.user.format(**variables),
                                  settings=settings, task=task, variables=tuple(variables.items()))
            if len(self._rendered) >= _RENDERED_MAX:
                self._rendered.clear()
            self._rendered[key] = request
        return request

    # ---- execution --------------------------------------------------------------------
    def _context(self, tier: str, task: str, inputs: Inputs, *, provider: str | None, parent_id: str | None,
                 experiment_id: str | None, source: str | None, user_id: str | None,
                 deadline_s: float | None = None) -> RequestContext:
        inputs = check_inputs(inputs)
        chain = self.chain_for(tier, task, provider)
        if deadline_s is not None and not deadline_s > 0:
            raise InputError(f"the deadline must be a positive number of seconds, not {deadline_s!r}",
                             field="deadline")
        reason = None
        split = self.policy.split(tier, task) if provider is None else None
        if split is not None:
            arm = split.choose(user_id)
            chain, reason = arm.chain, split.reason(arm)
        ctx = RequestContext(
            request_id=new_id(), parent_id=parent_id, tier=tier, task=task,
            source=source or self.source, inputs=inputs, request=self.render(task, inputs, tier),
            started_at=self.clock.now(), t0=self.clock.monotonic(), experiment_id=experiment_id,
            user_id=user_id, chain=chain, chain_tier=tier,
            deadline_s=deadline_s or self.policy.model.resilience.deadline_s, routing_reason=reason)
        for guard in self.guards:
            reroute = getattr(guard, "reroute", None)
            out = reroute(ctx) if reroute is not None else None
            if out is not None:
                use, why = out
                degraded = self.policy.chain(use, task)
                if provider is not None:
                    degraded = tuple(e for e in degraded if e.provider == provider) or degraded
                ctx.chain, ctx.chain_tier, ctx.routing_reason = degraded, use, why
                ctx.request = self.render(task, inputs, use)
                break
        return ctx

    async def agenerate(self, tier: str, task: str, inputs: Inputs, *, provider: str | None = None,
                        parent_id: str | None = None, experiment_id: str | None = None,
                        source: str | None = None, user_id: str | None = None,
                        exclude: Collection[str] = (), deadline_s: float | None = None) -> GenerationResult:
        """The whole answer, or ``AllProvidersFailed`` carrying every attempt, or ``BudgetExceeded`` when a
        hard budget left nothing to try (the request is logged either way).

        ``deadline_s`` overrides the policy's ``[resilience] deadline_s`` for this request.
        """
        ctx = self._context(tier, task, inputs, provider=provider, parent_id=parent_id,
                            experiment_id=experiment_id, source=source, user_id=user_id, deadline_s=deadline_s)
        async for _ in self._execute(ctx, streaming=False, exclude=exclude, continue_on_truncation=False):
            pass
        return self._finish(ctx)

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
        ctx = self._context(tier, task, inputs, provider=provider, parent_id=parent_id,
                            experiment_id=experiment_id, source=source, user_id=user_id, deadline_s=deadline_s)
        return GenerationStream(self, ctx, exclude, continue_on_truncation)

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
        self._check_names(tier, task)
        for entry in chain:
            if entry.provider not in self.providers:
                raise InputError(f"unknown provider '{entry.provider}' (providers: {', '.join(self.providers)})",
                                 field="provider")
        ctx = RequestContext(request_id=new_id(), parent_id=parent_id, tier=tier, task=task,
                             source=source or self.source, inputs=inputs, request=request,
                             started_at=self.clock.now(), t0=self.clock.monotonic(), experiment_id=experiment_id,
                             chain=tuple(chain), chain_tier=tier, routing_reason=routing_reason,
                             deadline_s=self.policy.model.resilience.deadline_s)
        async for _ in self._execute(ctx, streaming=False, exclude=(), continue_on_truncation=False):
            pass
        assert ctx.result is not None
        return ctx.result

    def probe(self, provider: str, task: str, **kw: object) -> GenerationResult:
        return background_loop().run(self.aprobe(provider, task, **kw))  # type: ignore[arg-type]

    async def _execute(self, ctx: RequestContext, *, streaming: bool, exclude: Collection[str],
                       continue_on_truncation: bool) -> AsyncIterator[str | Truncated]:
        if ctx.result is not None:  # decided before any entry was tried (a spent budget)
            return
        walk = ChainWalk(self, ctx, streaming=streaming, exclude=exclude,
                         continue_on_truncation=continue_on_truncation)
        try:
            async for item in walk.run():
                yield item
        finally:
            # A caller that stops reading a stream (or is cancelled) must not leave a budget reservation or a
            # half-open trial held forever.
            for entry in list(ctx.in_flight):
                self._release(ctx, entry)

    # ---- guards (used by the chain walk) ---------------------------------------------------
    def _skip_reason(self, ctx: RequestContext, entry: ChainEntry, provider: Provider,
                     exclude: Collection[str]) -> str | None:
        """Why ``entry`` cannot be tried now, or None. Admits it with every guard when it can."""
        if entry.ref in exclude:
            return "excluded by the caller"
        availability = provider.availability()
        if not availability.available:
            return availability.reason or "unavailable"
        admitted: list[Guard] = []
        for guard in self.guards:
            if guard is self.breakers and ctx.source == "test":
                continue  # a manual probe is how one checks a provider whose circuit is open
            reason = guard.admit(ctx, entry)
            if reason is not None:
                for earlier in admitted:
                    _release_guard(earlier, ctx, entry)
                if getattr(guard, "stops_request", False):
                    ctx.budget_blocked = True
                return reason
            admitted.append(guard)
        ctx.in_flight.append(entry)
        return None

    def _release(self, ctx: RequestContext, entry: ChainEntry) -> None:
        if entry in ctx.in_flight:
            ctx.in_flight.remove(entry)
        for guard in self.guards:
            _release_guard(guard, ctx, entry)

    def _skip(self, ctx: RequestContext, entry: ChainEntry, reason: str) -> None:
        ctx.skipped.append(Skip(provider=entry.provider, model=entry.model, reason=reason))

    def _record_attempt(self, ctx: RequestContext, attempt: Attempt) -> None:
        attempt = attempt.numbered(len(ctx.attempts) + 1)
        ctx.attempts.append(attempt)
        for i, held in enumerate(ctx.in_flight):
            if held.provider == attempt.provider and held.model == attempt.model:
                del ctx.in_flight[i]
                break
        if attempt.ok and attempt.ttft_ms is not None:
            self._ttft.setdefault(attempt_ref(attempt), deque(maxlen=TTFT_SAMPLES)).append(attempt.ttft_ms)
        for guard in self.guards:
            guard.observe(ctx, attempt)

    def recent_ttft(self, ref: str) -> list[float]:
        """Recent first-token times (ms) of ``provider:model``'s answers, for a learnt hedging threshold."""
        return list(self._ttft.get(ref, ()))

    def _conclude(self, ctx: RequestContext, status: str, attempt: Attempt | None) -> None:
        latency = (self.clock.monotonic() - ctx.t0) * 1000.0
        error = None
        if status == "failed" and ctx.budget_blocked and not ctx.attempts:
            status = "rejected"
            reasons = [s.reason for s in ctx.skipped if s.reason.startswith("budget:")] or ["a budget is spent"]
            error = f"Budget reached for {ctx.tier}/{ctx.task}: {reasons[0].removeprefix('budget: ')}."
        elif status == "failed":
            error = failure_sentence(ctx)
        elif status == "truncated" and attempt is not None:
            error = f"{attempt.provider}:{attempt.model} stopped mid-answer ({attempt.plain_error})"
        served = attempt if attempt is not None else None
        ttft = None
        if served is not None and served.ttft_ms is not None:
            ttft = (served.started_at - ctx.started_at).total_seconds() * 1000.0 + served.ttft_ms
        ctx.result = GenerationResult(
            request_id=ctx.request_id, parent_id=ctx.parent_id, tier=ctx.tier, task=ctx.task,
            policy=self.policy.name, source=ctx.source, status=status, started_at=ctx.started_at,
            text=served.text if served is not None else "",
            provider=served.provider if served else None, model=served.model if served else None,
            latency_ms=latency, ttft_ms=ttft, chain=self._route_entries(ctx),
            attempts=tuple(ctx.attempts), skipped=tuple(ctx.skipped), error=error,
            routing_reason=ctx.routing_reason, prompt=ctx.request.user, experiment_id=ctx.experiment_id,
            simulated=bool(served and served.simulated), user_id=ctx.user_id)
        if self.sink is not None:
            self.sink.record(ctx.result)

    def _route_entries(self, ctx: RequestContext) -> tuple[RouteEntry, ...]:
        if not ctx.skipped:  # the usual case: the same entries every time for this chain
            routes = self._plain_routes.get(ctx.chain)
            if routes is None:
                routes = self._plain_routes[ctx.chain] = tuple(
                    RouteEntry(provider=e.provider, model=e.model, available=True,
                               simulated=self.providers[e.provider].simulated) for e in ctx.chain)
            return routes
        skipped = {(s.provider, s.model): s.reason for s in ctx.skipped}
        return tuple(RouteEntry(provider=e.provider, model=e.model, available=(e.provider, e.model) not in skipped,
                           reason=skipped.get((e.provider, e.model), ""),
                           simulated=self.providers[e.provider].simulated) for e in ctx.chain)

    def _finish(self, ctx: RequestContext) -> GenerationResult:
        result = ctx.result
        assert result is not None
        if result.status == "rejected":
            raise BudgetExceeded(result.error or "a hard budget is spent", scope=result.tier)
        if result.status == "failed":
            raise AllProvidersFailed(result.error or "every provider failed", attempts=result.attempts,
                                     skipped=result.skipped, result=result)
        return result

    # ---- blocking twins, for threads ---------------------------------------------------
    def generate(self, tier: str, task: str, inputs: Inputs, **kw: object) -> GenerationResult:
        return background_loop().run(self.agenerate(tier, task, inputs, **kw))  # type: ignore[arg-type]

    def stream(self, tier: str, task: str, inputs: Inputs, **kw: object) -> GenerationStream:
        """A stream usable with a plain ``for`` loop from any thread."""
        return self.astream(tier, task, inputs, **kw)  # type: ignore[arg-type]


def attempt_ref(attempt: Attempt) -> str:
    return f"{attempt.provider}:{attempt.model}"


def _release_guard(guard: Guard, ctx: RequestContext, entry: ChainEntry) -> None:
    release = getattr(guard, "release", None)
    if release is not None:
        release(ctx, entry)
