"""The retry, hedging and fallback walk over one request's chain, within the request's deadline.

For each entry in order:

* skip it when it cannot be used (no key, excluded, an open breaker, a spent
  budget, no time left before the deadline); the reason goes in the trace;
* try it, with timers from ``resilience.attempt_limits``: its own timeout,
  cut to its share of the time left, and for a stream a first-token timeout;
* on failure apply the error class's rule (``decisions.after_outcome``):
  wait for Retry-After or back off and retry the same entry, or fall back
  at once. Each retry is its own ``Attempt`` with ``retry`` = 1, 2... and the
  wait before it (``wait_ms``); only a move to another entry is a fallback;
* a stream that broke after text was shown is ``truncated``, never retried:
  the request ends there, or (``continue_on_truncation``) the caller gets a
  ``Truncated`` marker and the walk goes on with the next entry.

With hedging on for the tier, the first entry tried gets a head start of
``threshold`` ms; if it has produced no first token by then, the next
usable entry starts too (``hedge=True``) and whichever gives a first token
(or, not streaming, an answer) first wins. The loser is cancelled and
logged as ``cancelled``. Racers are not retried: the walk simply moves on.

A caller that goes away (its task is cancelled, or it closes the stream: a
client that disconnected, a page or CLI that stopped reading) ends the
request as ``cancelled``: the attempt in flight is recorded as cancelled
(with the text it had shown and an estimated cost), its guards are settled,
and the result is concluded like any other, with every attempt; the stream
that logs results (``streams.GenerationStream``) logs it.

Like pydantic-ai's ``FallbackModel``, a ``ChainWalk`` has one public way in
(``run`` for a whole answer, ``stream`` for text then the result) and
*returns* its ``GenerationResult``; the guards it consults are one
``Guards`` object, and every attempt it fell back on is in the result.
"""
from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Collection, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from taelio_core.config.policy import ChainEntry
from taelio_core.guards.attempt_guards import Guards
from taelio_core.guards.resilience import AttemptLimits, HedgeConfig, ResilienceConfig, attempt_limits
from taelio_core.providers.base import Provider
from taelio_core.routing.attempts import AttemptRunner, AttemptStart
from taelio_core.routing.clock import Clock
from taelio_core.routing.context import failure_sentence
from taelio_core.routing.decisions import after_outcome
from taelio_core.routing.trace import Attempt, GenerationResult, RouteEntry, Skip

if TYPE_CHECKING:
    from taelio_core.routing.context import RequestContext

__all__ = ["ChainWalk", "Truncated", "WalkSetup"]


@dataclass(frozen=True, kw_only=True)
class Truncated:
    """Yielded by a stream when an answer broke mid-way and the router moves to the next entry."""

    provider: str
    model: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class WalkSetup:
    """What every walk of one router shares."""

    providers: Mapping[str, Provider]
    guards: Guards
    runner: AttemptRunner
    clock: Clock
    rng: random.Random
    resilience: ResilienceConfig
    hedging: Mapping[str, HedgeConfig]
    policy_name: str
    chains: dict[tuple[ChainEntry, ...], _ChainFacts] = field(default_factory=dict)


class _ChainFacts:
    """What every walk of one chain shares, found with one hash of the chain per request: which entries could
    be tried at all (a key, not excluded) and, once a request has used it, the chain as its result shows it."""

    __slots__ = ("usable", "routes")

    def __init__(self, usable: list[bool]) -> None:
        self.usable = usable
        self.routes: tuple[RouteEntry, ...] | None = None


@dataclass(kw_only=True, slots=True)
class _Flight:
    """The attempt in progress, so that a request cancelled under it can record it, with the text it showed."""

    entry: ChainEntry
    provider: Provider
    start: AttemptStart
    retry: int = 0
    hedge: bool = False
    wait_ms: float = 0.0
    ttft: float | None = None
    text: list[str] = field(default_factory=list)
    attempt: Attempt | None = None      # how it ended, once it has

    def shown(self, text: str, clock: Clock) -> None:
        if self.ttft is None:
            self.ttft = (clock.monotonic() - self.start.t0) * 1000.0
        self.text.append(text)


@dataclass(kw_only=True)
class _Racer:
    entry: ChainEntry
    provider: Provider
    start: AttemptStart
    gen: AsyncIterator[str | Attempt]
    hedge: bool
    task: asyncio.Task[str | Attempt] | None = None


class ChainWalk:
    """One request's walk. ``await walk.run()`` for the whole answer; ``async for item in walk.stream()`` for
    text (and ``Truncated`` markers), ending with the ``GenerationResult``."""

    def __init__(self, setup: WalkSetup, ctx: RequestContext, *, streaming: bool, exclude: Collection[str] = (),
                 continue_on_truncation: bool = False) -> None:
        self._s, self._ctx = setup, ctx
        self._streaming, self._exclude, self._continue = streaming, exclude, continue_on_truncation
        self._entries = list(ctx.chain)
        # Which entries could be tried at all (a key, not excluded), once per request: the time they need.
        facts = setup.chains.get(ctx.chain) if not exclude else None
        if facts is None:
            providers = setup.providers
            facts = _ChainFacts([e.ref not in exclude and providers[e.provider].availability().available
                                 for e in self._entries])
            if not exclude:
                setup.chains[ctx.chain] = facts   # a provider's key does not come or go while it runs
        self._facts = facts
        self._usable = facts.usable
        self._index = 0
        self._result: GenerationResult | None = None
        self._flight: _Flight | None = None

    @property
    def result(self) -> GenerationResult | None:
        """The concluded result: set when the walk ended, cancelled included (a cancelled ``stream`` raises)."""
        return self._result

    def run(self) -> Awaitable[GenerationResult]:
        """The whole answer. Without streaming or hedging this is the walk's own coroutine, not one wrapping
        it: each coroutine layer costs a Python call at every resume of the provider's I/O."""
        if self._streaming or self._s.hedging.get(self._ctx.chain_tier) is not None:
            return self._run_streamed()
        return self._walk_whole()

    async def _run_streamed(self) -> GenerationResult:
        async for _ in self.stream():
            pass
        assert self._result is not None
        return self._result

    async def stream(self) -> AsyncIterator[str | Truncated | GenerationResult]:
        try:
            async with aclosing(self._walk()) as items:  # closed now, not when collected: the provider call too
                async for item in items:
                    yield item
        except (asyncio.CancelledError, GeneratorExit):
            if self._result is None:
                self._conclude_cancelled()
            raise
        finally:
            # A caller that stops reading a stream (or is cancelled) must not leave a budget reservation or a
            # half-open trial held forever.
            self._s.guards.release_all(self._ctx)
        if self._result is not None:
            yield self._result

    # ---- the walk ----------------------------------------------------------------------
    async def _walk(self) -> AsyncIterator[str | Truncated]:
        ctx = self._ctx
        while self._index < len(self._entries):
            entry = self._entries[self._index]
            self._index += 1
            provider = self._s.providers[entry.provider]
            if not self._admit(entry, provider):
                continue
            retries, wait_ms = 0, 0.0
            hedge_ms = self._hedge_threshold(entry)
            while True:
                attempt: Attempt | None = None
                if hedge_ms is not None:
                    head_start_s, hedge_ms, handled = hedge_ms / 1000.0, None, False
                    async with aclosing(self._race(entry, provider, head_start_s)) as items:
                        async for item in items:
                            if isinstance(item, Attempt):
                                attempt = item
                            elif isinstance(item, bool):
                                handled = item
                            else:
                                yield item
                    if handled:  # the race decided (a winner, or every racer failed)
                        if self._result is not None:
                            return
                        break
                elif not self._streaming:  # the whole answer: one await, no generator layers
                    self._flight = _Flight(entry=entry, provider=provider, start=self._s.runner.start(),
                                           retry=retries, wait_ms=wait_ms)
                    attempt = await self._s.runner.complete(ctx, entry, provider, self._limits(),
                                                            retry=retries, wait_ms=wait_ms)
                else:
                    flight = _Flight(entry=entry, provider=provider, start=self._s.runner.start(), retry=retries,
                                     wait_ms=wait_ms)
                    async with aclosing(self._in_flight(flight, self._one(entry, provider, retry=retries,
                                                                          wait_ms=wait_ms, hedge=False))) as texts:
                        async for text in texts:
                            yield text
                    attempt = flight.attempt
                self._flight = None
                assert attempt is not None
                settled = self._settle(attempt)
                if settled is True:
                    return
                if isinstance(settled, Truncated):
                    yield settled
                    break
                limits = self._limits()
                wait = after_outcome(self._s.resilience, attempt.status, attempt.error_type, attempt.retry_after_s,
                                     retries, self._remaining(), limits.timeout_s,
                                     self._usable_after() * ctx.request.settings.timeout_s, self._s.rng.random)
                if wait < 0:   # FALL_BACK (settled above: never STOP here)
                    break
                await self._s.clock.sleep(wait)
                retries, wait_ms = retries + 1, wait * 1000.0
                if not self._admit(entry, provider):
                    break
        self._conclude_unanswered()

    async def _walk_whole(self) -> GenerationResult:
        """``_walk`` for a whole answer without hedging: the same decisions (the decision core's admit and
        after_outcome) in one coroutine, with no generator layers; its per-attempt code is the call.

        The clock is read once per event: the admission's reading (the time left) also sets the attempt's
        timers, and the attempt's start is taken once, after the provider's client is made."""
        ctx, s, entries = self._ctx, self._s, self._entries
        try:
            while self._index < len(entries):
                entry = entries[self._index]
                self._index += 1
                provider = s.providers[entry.provider]
                remaining = self._admit_at(entry, provider)
                if remaining is None:
                    continue
                retries, wait_ms = 0, 0.0
                while True:
                    limits = self._limits(remaining)
                    await provider.warm()
                    start = s.runner.start()
                    self._flight = _Flight(entry=entry, provider=provider, start=start, retry=retries,
                                           wait_ms=wait_ms)
                    attempt = await s.runner.complete(ctx, entry, provider, limits, retry=retries, wait_ms=wait_ms,
                                                      start=start)
                    self._flight = None
                    self._record(attempt)
                    if attempt.status == "ok":
                        self._conclude("ok", attempt)
                        return self._result  # type: ignore[return-value]
                    remaining = self._remaining()   # the clock, read once for this decision
                    wait = after_outcome(s.resilience, attempt.status, attempt.error_type, attempt.retry_after_s,
                                         retries, remaining, self._limits(remaining).timeout_s,
                                         self._usable_after() * ctx.request.settings.timeout_s, s.rng.random)
                    if wait < 0:
                        break
                    await s.clock.sleep(wait)
                    retries, wait_ms = retries + 1, wait * 1000.0
                    remaining = self._admit_at(entry, provider)
                    if remaining is None:
                        break
            self._conclude_unanswered()
            return self._result  # type: ignore[return-value]
        except asyncio.CancelledError:
            if self._result is None:
                self._conclude_cancelled()
            raise
        finally:
            if ctx.in_flight:   # nothing stays held, however the walk ended
                s.guards.release_all(ctx)

    def _conclude_unanswered(self) -> None:
        ctx = self._ctx
        truncated = [a for a in ctx.attempts if a.status == "truncated"]
        if truncated and not any(a.ok for a in ctx.attempts):
            # Text was shown and nothing after it answered: the caller saw a cut answer.
            self._conclude("truncated", truncated[-1])
            return
        self._conclude("failed", None)

    def _remaining(self) -> float:
        ctx = self._ctx
        return ctx.t0 + ctx.deadline_s - self._s.clock.monotonic()

    def _usable_after(self) -> int:
        """Entries after the current one that could be tried (a key, not excluded): the time they need."""
        return sum(self._usable[self._index:])

    def _limits(self, remaining_s: float | None = None) -> AttemptLimits:
        return attempt_limits(self._s.resilience, own_timeout_s=self._ctx.request.settings.timeout_s,
                              remaining_s=self._remaining() if remaining_s is None else remaining_s,
                              entries_left=1 + self._usable_after(), streaming=self._streaming)

    def _admit(self, entry: ChainEntry, provider: Provider) -> bool:
        return self._admit_at(entry, provider) is not None

    def _admit_at(self, entry: ChainEntry, provider: Provider) -> float | None:
        """The seconds left before the request's deadline when ``entry`` is admitted; None when it is skipped
        (the reason goes in the trace)."""
        ctx = self._ctx
        reason = self._s.guards.admit(ctx, entry, provider, self._exclude, usable=self._usable[self._index - 1])
        remaining = 0.0
        if reason is None:
            remaining = self._remaining()
            if remaining <= 0:
                self._s.guards.release(ctx, entry)
                reason = f"the request's deadline ({ctx.deadline_s:g} s) has passed"
        if reason is not None:
            ctx.skipped.append(Skip(provider=entry.provider, model=entry.model, reason=reason))
            return None
        return remaining

    def _record(self, attempt: Attempt) -> None:
        ctx = self._ctx
        attempt = attempt.numbered(len(ctx.attempts) + 1)
        ctx.attempts.append(attempt)
        self._s.guards.observe(ctx, attempt)

    def _settle(self, attempt: Attempt) -> bool | Truncated:
        """Record an attempt. True: it ended the request. A ``Truncated`` marker: text broke off and the
        caller asked to go on. False: it failed before any text (retry or fall back)."""
        self._record(attempt)
        if attempt.ok:
            self._conclude("ok", attempt)
            return True
        if attempt.status != "truncated":
            return False
        if not self._continue:
            self._conclude("truncated", attempt)
            return True
        return Truncated(provider=attempt.provider, model=attempt.model, reason=attempt.plain_error)

    async def _in_flight(self, flight: _Flight, items: AsyncIterator[str | Attempt]) -> AsyncIterator[str]:
        """The text of the attempt in flight, noted in ``flight`` (the walk's while it runs, for a caller that
        goes away) until its ``Attempt`` ends it, kept as ``flight.attempt``. ``items`` is closed on the way out,
        not when collected, so a caller that leaves closes the provider's stream at once."""
        self._flight = flight
        async with aclosing(items) as stream:  # type: ignore[type-var]
            async for item in stream:
                if isinstance(item, Attempt):
                    flight.attempt = item
                else:
                    flight.shown(item, self._s.clock)
                    yield item

    def _one(self, entry: ChainEntry, provider: Provider, *, retry: int, hedge: bool, wait_ms: float = 0.0,
             start: AttemptStart | None = None) -> AsyncIterator[str | Attempt]:
        runner = self._s.runner
        make = runner.stream if self._streaming else runner.as_stream
        return make(self._ctx, entry, provider, self._limits(), retry=retry, hedge=hedge, wait_ms=wait_ms,
                    start=start)

    # ---- the result --------------------------------------------------------------------
    def _conclude_cancelled(self) -> None:
        """The caller went away: record the attempt in flight as cancelled, then conclude the request."""
        flight, self._flight = self._flight, None
        if flight is None:
            self._conclude("cancelled", None, error="The caller went away before any provider answered.")
            return
        attempt = self._s.runner.cancelled(self._ctx, flight.entry, flight.provider, flight.start,
                                           retry=flight.retry, hedge=flight.hedge, wait_ms=flight.wait_ms,
                                           by_caller=True, partial="".join(flight.text), ttft=flight.ttft)
        self._record(attempt)
        # Like a cut answer, it was served (in part) by the entry that had shown text; else by nobody.
        self._conclude("cancelled", attempt if attempt.text else None,
                       error=f"The caller went away while {attempt.provider}:{attempt.model} was answering "
                             f"({len(attempt.text):,} characters shown); the call was cancelled.")

    def _conclude(self, status: str, attempt: Attempt | None, *, error: str | None = None) -> None:
        ctx, s = self._ctx, self._s
        latency = (s.clock.monotonic() - ctx.t0) * 1000.0
        if status == "failed" and ctx.budget_blocked and not ctx.attempts:
            status = "rejected"
            reasons = [k.reason for k in ctx.skipped if k.reason.startswith("budget:")] or ["a budget is spent"]
            error = f"Budget reached for {ctx.tier}/{ctx.task}: {reasons[0].removeprefix('budget: ')}."
        elif status == "failed":
            error = failure_sentence(ctx)
        elif status == "truncated" and attempt is not None:
            error = f"{attempt.provider}:{attempt.model} stopped mid-answer ({attempt.plain_error})"
        ttft = None
        if attempt is not None and attempt.ttft_ms is not None:
            ttft = (attempt.started_at - ctx.started_at).total_seconds() * 1000.0 + attempt.ttft_ms
        self._result = GenerationResult(
            request_id=ctx.request_id, parent_id=ctx.parent_id, tier=ctx.tier, task=ctx.task,
            policy=s.policy_name, source=ctx.source, status=status, started_at=ctx.started_at,
            text=attempt.text if attempt is not None else "",
            provider=attempt.provider if attempt else None, model=attempt.model if attempt else None,
            latency_ms=latency, ttft_ms=ttft, chain=self._route_entries(),
            attempts=tuple(ctx.attempts), skipped=tuple(ctx.skipped), error=error,
            routing_reason=ctx.routing_reason, prompt=ctx.request.user, experiment_id=ctx.experiment_id,
            simulated=bool(attempt and attempt.simulated), user_id=ctx.user_id, pinned_provider=ctx.pinned_provider)

    def _route_entries(self) -> tuple[RouteEntry, ...]:
        ctx, providers = self._ctx, self._s.providers
        if not ctx.skipped:  # the usual case: the same entries every time for this chain
            routes = self._facts.routes
            if routes is None:
                routes = self._facts.routes = tuple(
                    RouteEntry(provider=e.provider, model=e.model, available=True,
                               simulated=providers[e.provider].simulated) for e in ctx.chain)
            return routes
        skipped = {(k.provider, k.model): k.reason for k in ctx.skipped}
        return tuple(RouteEntry(provider=e.provider, model=e.model, available=(e.provider, e.model) not in skipped,
                                reason=skipped.get((e.provider, e.model), ""),
                                simulated=providers[e.provider].simulated) for e in ctx.chain)

    # ---- hedging -----------------------------------------------------------------------
    def _hedge_threshold(self, entry: ChainEntry) -> float | None:
        hedge = self._s.hedging.get(self._ctx.chain_tier)
        if hedge is None or self._ctx.attempts or self._index >= len(self._entries):
            return None
        return hedge.threshold_ms(self._s.guards.recent_ttft(entry.ref))

    async def _race(self, entry: ChainEntry, provider: Provider,
                    head_start_s: float) -> AsyncIterator[str | Truncated | Attempt | bool]:
        """Yields text; then ``True`` when it settled the request or used up its racers, or an ``Attempt``
        (the first entry finished alone before the threshold: the caller treats it as a normal attempt)."""
        first = self._racer(entry, provider, hedge=False)
        racers = [first]
        by_caller = False
        try:
            done, _ = await asyncio.wait([first.task], timeout=head_start_s)  # type: ignore[list-item]
            if not done:
                second = self._next_usable()
                if second is not None:
                    racers.append(self._racer(second[0], second[1], hedge=True))
            elif isinstance(first.task.result(), Attempt):  # type: ignore[union-attr]
                racers.clear()  # finished alone: the caller records it like any attempt
                yield first.task.result()  # type: ignore[union-attr]
                return
            while racers:
                done, _ = await asyncio.wait([x.task for x in racers],  # type: ignore[misc]
                                             return_when=asyncio.FIRST_COMPLETED)
                for racer in [x for x in racers if x.task in done]:
                    item = racer.task.result()  # type: ignore[union-attr]
                    racers.remove(racer)
                    if isinstance(item, Attempt) and not item.ok:
                        self._record(item)
                        continue
                    # A winner: the first text chunk, or a whole answer.
                    for loser in racers:
                        await self._cancel(loser)
                    racers.clear()
                    async with aclosing(self._finish_winner(racer, item)) as outs:
                        async for out in outs:
                            yield out
                    yield True
                    return
            yield True  # every racer failed: the walk goes on after them
        except (asyncio.CancelledError, GeneratorExit):
            by_caller = True
            raise
        finally:
            for racer in racers:
                await self._cancel(racer, by_caller=by_caller)

    def _racer(self, entry: ChainEntry, provider: Provider, *, hedge: bool) -> _Racer:
        start = self._s.runner.start()
        gen = self._one(entry, provider, retry=0, hedge=hedge, start=start)
        racer = _Racer(entry=entry, provider=provider, start=start, gen=gen, hedge=hedge)
        racer.task = asyncio.ensure_future(anext(gen))  # type: ignore[arg-type]
        return racer

    def _next_usable(self) -> tuple[ChainEntry, Provider] | None:
        while self._index < len(self._entries):
            entry = self._entries[self._index]
            self._index += 1
            provider = self._s.providers[entry.provider]
            if self._admit(entry, provider):
                return entry, provider
        return None

    async def _cancel(self, racer: _Racer, *, by_caller: bool = False) -> None:
        task, racer.task = racer.task, None
        if task is None:
            return
        if task.done() and not task.cancelled() and task.exception() is None and isinstance(task.result(), Attempt):
            self._record(task.result())  # it finished in the same instant as the winner: log it as it ended
            return
        task.cancel()
        try:
            await task
        except BaseException:  # noqa: BLE001 - the racer's cancellation, or its own failure
            pass
        try:
            await racer.gen.aclose()  # type: ignore[attr-defined]
        except BaseException:  # noqa: BLE001
            pass
        self._record(self._s.runner.cancelled(self._ctx, racer.entry, racer.provider, racer.start,
                                              hedge=racer.hedge, by_caller=by_caller))

    async def _finish_winner(self, racer: _Racer, first: str | Attempt) -> AsyncIterator[str | Truncated]:
        attempt = first if isinstance(first, Attempt) else None
        if isinstance(first, str):
            flight = _Flight(entry=racer.entry, provider=racer.provider, start=racer.start, hedge=racer.hedge)
            flight.shown(first, self._s.clock)
            yield first
            async with aclosing(self._in_flight(flight, racer.gen)) as texts:
                async for text in texts:
                    yield text
            attempt = flight.attempt
            self._flight = None
        assert attempt is not None
        settled = self._settle(attempt)
        if isinstance(settled, Truncated):
            yield settled
