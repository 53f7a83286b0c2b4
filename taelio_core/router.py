"""Routes a request through its tier x task chain until a provider answers.

One code path serves whole and streamed answers, live traffic, experiments
and the sandbox: ``_execute`` walks the chain, skips entries that cannot be
used (no key, an open breaker, a spent budget: each ``Guard`` says why), tries
the rest in order, prices every attempt, and hands the finished
``GenerationResult`` to the call log. It takes its time from an injected
``Clock`` and its timeouts from the running loop, so the sandbox can run it
in virtual time.

The router is async. ``Router.generate``/``stream``/``full_story`` are
blocking twins for threads (Streamlit, the CLI); they run the coroutine on
one shared background loop, so many threads can generate at once.
"""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from taelio_core.clock import Clock, SystemClock
from taelio_core.errors import (
    AllProvidersFailed,
    BadResponse,
    InputError,
    ProviderError,
    ProviderTimeout,
    TaelioError,
)
from taelio_core.generation import ChatRequest, StreamEnd, TextDelta, Usage
from taelio_core.inputs import check_inputs
from taelio_core.policy import ChainEntry, RoutingPolicy
from taelio_core.pricing import Pricer
from taelio_core.providers.base import Provider
from taelio_core.runtime import background_loop
from taelio_core.trace import Attempt, GenerationResult, Inputs, RouteEntry, Skip, StoryResult

__all__ = ["CallSink", "GenerationStream", "Guard", "Router", "Truncated"]


class CallSink(Protocol):
    """Where finished requests go (the call log). Must not block."""

    def record(self, result: GenerationResult) -> None: ...


class Guard(Protocol):
    """A rule consulted around each attempt: circuit breakers, budgets, health marks.

    ``admit`` returns a reason to skip the entry, or None. ``observe`` sees
    every finished attempt.
    """

    def admit(self, ctx: RequestContext, entry: ChainEntry) -> str | None: ...

    def observe(self, ctx: RequestContext, attempt: Attempt) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Truncated:
    """Yielded by a stream when an answer broke mid-way and the router moves to the next entry."""

    provider: str
    model: str
    reason: str


@dataclass(kw_only=True)
class RequestContext:
    request_id: str
    parent_id: str | None
    tier: str
    task: str
    source: str
    inputs: Inputs
    request: ChatRequest
    started_at: datetime
    t0: float
    experiment_id: str | None = None
    user_id: str | None = None
    chain: tuple[ChainEntry, ...] = ()
    attempts: list[Attempt] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    routing_reason: str | None = None
    result: GenerationResult | None = None


class Router:
    def __init__(self, policy: RoutingPolicy, providers: dict[str, Provider], *,
                 pricer: Pricer | None = None, sink: CallSink | None = None, clock: Clock | None = None,
                 source: str = "live", guards: Sequence[Guard] = ()) -> None:
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
        self.guards = list(guards)

    # ---- selection info ------------------------------------------------------------
    def route(self, tier: str, task: str) -> list[RouteEntry]:
        """The chain for ``tier`` x ``task``, each entry with whether it can be used and why not."""
        self._check_names(tier, task)
        out = []
        for entry in self.policy.chain(tier, task):
            provider = self.providers[entry.provider]
            availability = provider.availability()
            out.append(RouteEntry(provider=entry.provider, model=entry.model, available=availability.available,
                                  reason=availability.reason, simulated=provider.simulated))
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
        cfg = self.policy.task(task)
        variables = inputs.variables(cfg.needs)
        settings = self.policy.settings(tier or self.policy.tiers[0], task)
        return ChatRequest(system=cfg.system.format(**variables), user=cfg.user.format(**variables),
                           settings=settings, task=task, variables=tuple(variables.items()))

    # ---- execution --------------------------------------------------------------------
    def _context(self, tier: str, task: str, inputs: Inputs, *, provider: str | None, parent_id: str | None,
                 experiment_id: str | None, source: str | None, user_id: str | None) -> RequestContext:
        inputs = check_inputs(inputs)
        chain = self.chain_for(tier, task, provider)
        reason = None
        split = self.policy.split(tier, task) if provider is None else None
        if split is not None:
            arm = split.choose(user_id)
            chain, reason = arm.chain, split.reason(arm)
        return RequestContext(
            request_id=uuid.uuid4().hex, parent_id=parent_id, tier=tier, task=task,
            source=source or self.source, inputs=inputs, request=self.render(task, inputs, tier),
            started_at=self.clock.now(), t0=self.clock.monotonic(), experiment_id=experiment_id,
            user_id=user_id, chain=chain, routing_reason=reason)

    async def agenerate(self, tier: str, task: str, inputs: Inputs, *, provider: str | None = None,
                        parent_id: str | None = None, experiment_id: str | None = None,
                        source: str | None = None, user_id: str | None = None,
                        exclude: Collection[str] = ()) -> GenerationResult:
        """The whole answer, or ``AllProvidersFailed`` carrying every attempt (the request is logged either way)."""
        ctx = self._context(tier, task, inputs, provider=provider, parent_id=parent_id,
                            experiment_id=experiment_id, source=source, user_id=user_id)
        async for _ in self._execute(ctx, streaming=False, exclude=exclude, continue_on_truncation=False):
            pass
        return self._finish(ctx)

    def astream(self, tier: str, task: str, inputs: Inputs, *, provider: str | None = None,
                parent_id: str | None = None, experiment_id: str | None = None, source: str | None = None,
                user_id: str | None = None, exclude: Collection[str] = (),
                continue_on_truncation: bool = False) -> GenerationStream:
        """Text chunks as they arrive. After the last one, ``stream.result`` holds the trace.

        A failure before the first chunk falls back silently. A stream that
        breaks after text was shown ends the request as ``truncated``, or, with
        ``continue_on_truncation``, yields a ``Truncated`` marker and goes on
        with the next entry.
        """
        ctx = self._context(tier, task, inputs, provider=provider, parent_id=parent_id,
                            experiment_id=experiment_id, source=source, user_id=user_id)
        return GenerationStream(self, ctx, exclude, continue_on_truncation)

    async def afull_story(self, tier: str, inputs: Inputs, *, source: str | None = None,
                          user_id: str | None = None, idea_task: str = "idea",
                          story_task: str = "story") -> StoryResult:
        """The seed's full-story-orchestrated: an idea, then a story on it, each routed on its own."""
        parent_id = uuid.uuid4().hex
        try:
            idea = await self.agenerate(tier, idea_task, inputs, parent_id=parent_id, source=source, user_id=user_id)
        except AllProvidersFailed as e:
            raise AllProvidersFailed(f"no idea could be generated: {e}", attempts=e.attempts,
                                     result=StoryResult(parent_id=parent_id, idea=e.result, story=None)) from None
        story_inputs = replace(inputs, idea=idea.text)
        try:
            story = await self.agenerate(tier, story_task, story_inputs, parent_id=parent_id, source=source,
                                         user_id=user_id)
        except AllProvidersFailed as e:
            raise AllProvidersFailed(f"the idea was generated, but no story: {e}", attempts=e.attempts,
                                     result=StoryResult(parent_id=parent_id, idea=idea, story=e.result)) from None
        return StoryResult(parent_id=parent_id, idea=idea, story=story)

    async def aprobe(self, provider: str, task: str, *, prompt: str = "A lighthouse keeper finds a message.",
                     max_tokens: int = 64) -> GenerationResult:
        """A tiny live request to one provider (the seed's ``POST /providers/test``), logged as source=test.

        Uses the first model that provider has for ``task`` in the policy. Never raises on provider failure:
        the result says what happened.
        """
        self._check_names(self.policy.tiers[0], task, provider)
        for tier in self.policy.tiers:
            entries = [e for e in self.policy.chain(tier, task) if e.provider == provider]
            if entries:
                break
        else:
            raise InputError(f"provider '{provider}' has no model for task '{task}' in any chain", field="provider")
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
        ctx = RequestContext(request_id=uuid.uuid4().hex, parent_id=parent_id, tier=tier, task=task,
                             source=source or self.source, inputs=inputs, request=request,
                             started_at=self.clock.now(), t0=self.clock.monotonic(), experiment_id=experiment_id,
                             chain=tuple(chain), routing_reason=routing_reason)
        async for _ in self._execute(ctx, streaming=False, exclude=(), continue_on_truncation=False):
            pass
        assert ctx.result is not None
        return ctx.result

    def probe(self, provider: str, task: str, **kw: object) -> GenerationResult:
        return background_loop().run(self.aprobe(provider, task, **kw))  # type: ignore[arg-type]

    async def _execute(self, ctx: RequestContext, *, streaming: bool, exclude: Collection[str],
                       continue_on_truncation: bool) -> AsyncIterator[str | Truncated]:
        for entry in ctx.chain:
            provider = self.providers[entry.provider]
            reason = self._skip_reason(ctx, entry, provider, exclude)
            if reason is not None:
                ctx.skipped.append(Skip(provider=entry.provider, model=entry.model, reason=reason))
                continue
            shown = False
            attempt: Attempt | None = None
            if streaming:
                stream = self._attempt_stream(ctx, entry, provider)
                async for item in stream:
                    if isinstance(item, Attempt):
                        attempt = item
                    else:
                        shown = True
                        yield item
            else:
                attempt = await self._attempt(ctx, entry, provider)
            assert attempt is not None
            ctx.attempts.append(attempt)
            for guard in self.guards:
                guard.observe(ctx, attempt)
            if attempt.ok:
                self._conclude(ctx, "ok", attempt)
                return
            if attempt.status == "truncated":
                if not continue_on_truncation:
                    self._conclude(ctx, "truncated", attempt)
                    return
                yield Truncated(provider=entry.provider, model=entry.model, reason=attempt.plain_error)
            del shown
        self._conclude(ctx, "failed", None)

    def _skip_reason(self, ctx: RequestContext, entry: ChainEntry, provider: Provider,
                     exclude: Collection[str]) -> str | None:
        if entry.ref in exclude:
            return "excluded by the caller"
        availability = provider.availability()
        if not availability.available:
            return availability.reason or "unavailable"
        for guard in self.guards:
            reason = guard.admit(ctx, entry)
            if reason is not None:
                return reason
        return None

    async def _attempt(self, ctx: RequestContext, entry: ChainEntry, provider: Provider) -> Attempt:
        clock = self.clock
        started, t0 = clock.now(), clock.monotonic()
        timeout = ctx.request.settings.timeout_s
        try:
            async with asyncio.timeout(timeout):
                completion = await provider.complete(entry.model, ctx.request)
            if not completion.text.strip():
                raise BadResponse("the provider returned an empty completion", provider=entry.provider,
                                  model=entry.model, http_status=200)
        except TimeoutError:
            error = ProviderTimeout(f"no answer within {timeout:g} s", provider=entry.provider, model=entry.model)
            return self._failed(ctx, entry, provider, started, t0, error)
        except ProviderError as error:
            return self._failed(ctx, entry, provider, started, t0, error)
        except Exception as exc:  # noqa: BLE001 - an adapter bug must not take the request down
            error = BadResponse(f"unexpected {type(exc).__name__} from the adapter", provider=entry.provider,
                                model=entry.model)
            return self._failed(ctx, entry, provider, started, t0, error)
        latency = (clock.monotonic() - t0) * 1000.0
        price = self.pricer.price(entry.provider, entry.model, completion.usage, started)
        return Attempt(n=len(ctx.attempts) + 1, provider=entry.provider, model=entry.model, status="ok",
                       started_at=started, latency_ms=latency, ttft_ms=latency, usage=completion.usage,
                       cost_usd=price.cost_usd, price_source=price.source, finish_reason=completion.finish_reason,
                       response_model=completion.response_model or entry.model, simulated=provider.simulated,
                       text=completion.text)

    async def _attempt_stream(self, ctx: RequestContext, entry: ChainEntry,
                              provider: Provider) -> AsyncIterator[str | Attempt]:
        """Yields text chunks, then the finished ``Attempt`` (always last)."""
        clock = self.clock
        loop = asyncio.get_running_loop()
        started, t0 = clock.now(), clock.monotonic()
        timeout = ctx.request.settings.timeout_s
        deadline = loop.time() + timeout
        parts: list[str] = []
        ttft: float | None = None
        events = provider.stream(entry.model, ctx.request)
        end: StreamEnd | None = None
        error: ProviderError | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        event = await anext(events)
                except StopAsyncIteration:
                    break
                if isinstance(event, TextDelta):
                    if not event.text:
                        continue
                    if ttft is None:
                        ttft = (clock.monotonic() - t0) * 1000.0
                    parts.append(event.text)
                    yield event.text
                elif isinstance(event, StreamEnd):
                    end = event
                    break
            if end is None:
                error = BadResponse("the stream ended without a finish reason", provider=entry.provider,
                                    model=entry.model)
            elif not "".join(parts).strip():
                error = BadResponse("the provider returned an empty completion", provider=entry.provider,
                                    model=entry.model, http_status=200)
        except TimeoutError:
            error = ProviderTimeout(f"no answer within {timeout:g} s", provider=entry.provider, model=entry.model)
        except ProviderError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001
            error = BadResponse(f"unexpected {type(exc).__name__} from the adapter", provider=entry.provider,
                                model=entry.model)
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # noqa: BLE001 - closing a broken stream may fail again
                    pass
        if error is not None:
            yield self._failed(ctx, entry, provider, started, t0, error, ttft=ttft, partial="".join(parts),
                               usage=end.usage if end else Usage())
            return
        assert end is not None
        latency = (clock.monotonic() - t0) * 1000.0
        price = self.pricer.price(entry.provider, entry.model, end.usage, started)
        yield Attempt(n=len(ctx.attempts) + 1, provider=entry.provider, model=entry.model, status="ok",
                      started_at=started, latency_ms=latency, ttft_ms=ttft, usage=end.usage, cost_usd=price.cost_usd,
                      price_source=price.source, finish_reason=end.finish_reason,
                      response_model=end.response_model or entry.model, simulated=provider.simulated,
                      text="".join(parts))

    def _failed(self, ctx: RequestContext, entry: ChainEntry, provider: Provider, started: datetime, t0: float,
                error: ProviderError, *, ttft: float | None = None, partial: str = "",
                usage: Usage | None = None) -> Attempt:
        usage = usage or Usage()
        price = self.pricer.price(entry.provider, entry.model, usage, started) if (
            usage.input_tokens or usage.output_tokens) else None
        return Attempt(n=len(ctx.attempts) + 1, provider=entry.provider, model=entry.model,
                       status="truncated" if partial else "error", started_at=started,
                       latency_ms=(self.clock.monotonic() - t0) * 1000.0, ttft_ms=ttft,
                       error_type=error.error_type, error=str(error), http_status=error.http_status, usage=usage,
                       cost_usd=price.cost_usd if price else None, price_source=price.source if price else None,
                       simulated=provider.simulated, text=partial)

    def _conclude(self, ctx: RequestContext, status: str, attempt: Attempt | None) -> None:
        latency = (self.clock.monotonic() - ctx.t0) * 1000.0
        error = None
        if status == "failed":
            error = _failure_sentence(ctx)
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
            latency_ms=latency, ttft_ms=ttft, chain=tuple(self._route_entries(ctx)),
            attempts=tuple(ctx.attempts), skipped=tuple(ctx.skipped), error=error,
            routing_reason=ctx.routing_reason, prompt=ctx.request.user, experiment_id=ctx.experiment_id,
            simulated=bool(served and served.simulated), user_id=ctx.user_id)
        if self.sink is not None:
            self.sink.record(ctx.result)

    def _route_entries(self, ctx: RequestContext) -> list[RouteEntry]:
        skipped = {(s.provider, s.model): s.reason for s in ctx.skipped}
        return [RouteEntry(provider=e.provider, model=e.model, available=(e.provider, e.model) not in skipped,
                           reason=skipped.get((e.provider, e.model), ""),
                           simulated=self.providers[e.provider].simulated) for e in ctx.chain]

    def _finish(self, ctx: RequestContext) -> GenerationResult:
        result = ctx.result
        assert result is not None
        if result.status == "failed":
            raise AllProvidersFailed(result.error or "every provider failed", attempts=result.attempts,
                                     skipped=result.skipped, result=result)
        return result

    # ---- blocking twins, for threads ---------------------------------------------------
    def generate(self, tier: str, task: str, inputs: Inputs, **kw: object) -> GenerationResult:
        return background_loop().run(self.agenerate(tier, task, inputs, **kw))  # type: ignore[arg-type]

    def full_story(self, tier: str, inputs: Inputs, **kw: object) -> StoryResult:
        return background_loop().run(self.afull_story(tier, inputs, **kw))  # type: ignore[arg-type]

    def stream(self, tier: str, task: str, inputs: Inputs, **kw: object) -> GenerationStream:
        """A stream usable with a plain ``for`` loop from any thread."""
        return self.astream(tier, task, inputs, **kw)  # type: ignore[arg-type]


class GenerationStream:
    """Iterate (``async for`` or plain ``for``) for text; then read ``result``.

    ``result`` is set for every outcome; ``raise_for_status()`` raises
    ``AllProvidersFailed`` when no entry answered.
    """

    def __init__(self, router: Router, ctx: RequestContext, exclude: Collection[str],
                 continue_on_truncation: bool) -> None:
        self._router, self._ctx = router, ctx
        self._exclude, self._continue = exclude, continue_on_truncation

    @property
    def request_id(self) -> str:
        return self._ctx.request_id

    @property
    def result(self) -> GenerationResult | None:
        return self._ctx.result

    def __aiter__(self) -> AsyncIterator[str | Truncated]:
        return self._router._execute(self._ctx, streaming=True, exclude=self._exclude,
                                     continue_on_truncation=self._continue)

    def __iter__(self) -> Iterator[str | Truncated]:
        return background_loop().iterate(self.__aiter__())

    def raise_for_status(self) -> GenerationResult:
        return self._router._finish(self._ctx)


def _failure_sentence(ctx: RequestContext) -> str:
    parts = [f"{a.provider}:{a.model} {a.plain_error}" for a in ctx.attempts]
    parts += [f"{s.provider}:{s.model} skipped ({s.reason})" for s in ctx.skipped]
    if not ctx.attempts and ctx.skipped:
        head = f"No provider could be tried for {ctx.tier}/{ctx.task}"
    else:
        head = f"Every provider failed for {ctx.tier}/{ctx.task}"
    return head + ": " + "; ".join(parts) + "."
