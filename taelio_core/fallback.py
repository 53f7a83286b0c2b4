"""Walks a request's chain: skip, try, retry, hedge, fall back, all within the request's deadline.

For each entry in order:

* skip it when it cannot be used (no key, excluded, an open breaker, a spent
  budget, no time left before the deadline); the reason goes in the trace;
* try it, with an attempt timeout capped by the time left;
* on failure apply the error class's rule (``resilience.decide_retry``):
  wait for Retry-After or back off and retry the same entry, or fall back
  at once. Each retry is its own ``Attempt`` with ``retry`` = 1, 2...;
* a stream that broke after text was shown is ``truncated``, never retried:
  the request ends there, or (``continue_on_truncation``) the caller gets a
  ``Truncated`` marker and the walk goes on with the next entry.

With hedging on for the tier, the first entry tried gets a head start of
``threshold`` ms; if it has produced no first token by then, the next
usable entry starts too (``hedge=True``) and whichever gives a first token
(or, not streaming, an answer) first wins. The loser is cancelled and
logged as ``cancelled``. Racers are not retried: the walk simply moves on.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from taelio_core.attempts import Outcome, _Start
from taelio_core.errors import RateLimited
from taelio_core.policy import ChainEntry
from taelio_core.providers.base import Provider
from taelio_core.resilience import decide_retry

if TYPE_CHECKING:
    from taelio_core.context import RequestContext
    from taelio_core.router import Router

__all__ = ["ChainWalk", "Truncated"]


@dataclass(frozen=True, kw_only=True)
class Truncated:
    """Yielded by a stream when an answer broke mid-way and the router moves to the next entry."""

    provider: str
    model: str
    reason: str


@dataclass(kw_only=True)
class _Racer:
    entry: ChainEntry
    provider: Provider
    start: _Start
    gen: AsyncIterator[str | Outcome]
    hedge: bool
    task: asyncio.Task[str | Outcome] | None = None


class ChainWalk:
    def __init__(self, router: Router, ctx: RequestContext, *, streaming: bool, exclude: Collection[str],
                 continue_on_truncation: bool) -> None:
        self.r, self.ctx = router, ctx
        self.streaming, self.exclude, self.continue_on_truncation = streaming, exclude, continue_on_truncation
        self.cfg = router.policy.model.resilience
        self.entries = list(ctx.chain)
        self.index = 0

    # ---- the walk ----------------------------------------------------------------------
    async def run(self) -> AsyncIterator[str | Truncated]:
        ctx = self.ctx
        while self.index < len(self.entries):
            entry = self.entries[self.index]
            self.index += 1
            provider = self.r.providers[entry.provider]
            if not self._admit(entry, provider):
                continue
            retries = 0
            hedge_ms = self._hedge_threshold(entry)
            while True:
                outcome: Outcome | None = None
                if hedge_ms is not None:
                    head_start_s, hedge_ms, handled = hedge_ms / 1000.0, None, False
                    async for item in self._race(entry, provider, head_start_s):
                        if isinstance(item, Outcome):
                            outcome = item
                        elif isinstance(item, bool):
                            handled = item
                        else:
                            yield item
                    if handled:  # the race decided (a winner, or every racer failed)
                        if ctx.result is not None:
                            return
                        break
                elif not self.streaming:  # the whole answer: one await, no generator layers
                    outcome = await self._complete(entry, provider, retry=retries)
                else:
                    box: list[Outcome] = []
                    async for text in _relay(self._one(entry, provider, retry=retries, hedge=False), box):
                        yield text
                    outcome = box[0]
                assert outcome is not None
                settled = self._settle(outcome)
                if settled is True:
                    return
                if isinstance(settled, Truncated):
                    yield settled
                    break
                attempt = outcome.attempt
                retry_after = outcome.error.retry_after if isinstance(outcome.error, RateLimited) else None
                decision = decide_retry(self.cfg, error_type=attempt.error_type, retry_after=retry_after,
                                        retries=retries, remaining_s=self._remaining(), rng=self.r.rng)
                if decision.wait_s is None:
                    break
                await self.r.clock.sleep(decision.wait_s)
                retries += 1
                if not self._admit(entry, provider):
                    break
        truncated = [a for a in ctx.attempts if a.status == "truncated"]
        if truncated and not any(a.ok for a in ctx.attempts):
            # Text was shown and nothing after it answered: the caller saw a cut answer.
            self.r._conclude(ctx, "truncated", truncated[-1])
            return
        self.r._conclude(ctx, "failed", None)

    def _remaining(self) -> float:
        return self.ctx.deadline - self.r.clock.monotonic()

    def _admit(self, entry: ChainEntry, provider: Provider) -> bool:
        reason = self.r._skip_reason(self.ctx, entry, provider, self.exclude)
        if reason is None and self._remaining() <= 0:
            self.r._release(self.ctx, entry)
            reason = f"the request's deadline ({self.ctx.deadline_s:g} s) has passed"
        if reason is not None:
            self.r._skip(self.ctx, entry, reason)
            return False
        return True

    def _record(self, outcome: Outcome) -> None:
        self.r._record_attempt(self.ctx, outcome.attempt)

    def _settle(self, outcome: Outcome) -> bool | Truncated:
        """Record an attempt. True: it ended the request. A ``Truncated`` marker: text broke off and the
        caller asked to go on. False: it failed before any text (retry or fall back)."""
        self._record(outcome)
        attempt = outcome.attempt
        if attempt.ok:
            self.r._conclude(self.ctx, "ok", attempt)
            return True
        if attempt.status != "truncated":
            return False
        if not self.continue_on_truncation:
            self.r._conclude(self.ctx, "truncated", attempt)
            return True
        return Truncated(provider=attempt.provider, model=attempt.model, reason=attempt.plain_error)

    def _timeout(self) -> tuple[float, bool]:
        """The next attempt's timeout: the entry's own, cut to the time left before the deadline (capped)."""
        own, remaining = self.ctx.request.settings.timeout_s, self._remaining()
        return max(0.001, min(own, remaining)), remaining < own

    def _complete(self, entry: ChainEntry, provider: Provider, *, retry: int) -> Awaitable[Outcome]:
        timeout_s, capped = self._timeout()
        return self.r.runner.complete(self.ctx, entry, provider, timeout_s=timeout_s, retry=retry, capped=capped)

    def _one(self, entry: ChainEntry, provider: Provider, *, retry: int, hedge: bool,
             start: _Start | None = None) -> AsyncIterator[str | Outcome]:
        runner = self.r.runner
        timeout_s, capped = self._timeout()
        make = runner.stream if self.streaming else runner.as_stream
        return make(self.ctx, entry, provider, timeout_s=timeout_s, retry=retry, hedge=hedge, start=start,
                    capped=capped)

    # ---- hedging -----------------------------------------------------------------------
    def _hedge_threshold(self, entry: ChainEntry) -> float | None:
        hedge = self.r.policy.model.hedging.get(self.ctx.chain_tier)
        if hedge is None or self.ctx.attempts or self.index >= len(self.entries):
            return None
        return hedge.threshold_ms(self.r.recent_ttft(entry.ref))

    async def _race(self, entry: ChainEntry, provider: Provider,
                    head_start_s: float) -> AsyncIterator[str | Truncated | Outcome | bool]:
        """Yields text; then ``True`` when it settled the request or used up its racers, or an ``Outcome``
        (the first entry finished alone before the threshold: the caller treats it as a normal attempt)."""
        first = self._racer(entry, provider, hedge=False)
        racers = [first]
        try:
            done, _ = await asyncio.wait([first.task], timeout=head_start_s)  # type: ignore[list-item]
            if not done:
                second = self._next_usable()
                if second is not None:
                    racers.append(self._racer(second[0], second[1], hedge=True))
            elif isinstance(first.task.result(), Outcome):  # type: ignore[union-attr]
                racers.clear()  # finished alone: the caller records it like any attempt
                yield first.task.result()  # type: ignore[union-attr]
                return
            while racers:
                done, _ = await asyncio.wait([x.task for x in racers],  # type: ignore[misc]
                                             return_when=asyncio.FIRST_COMPLETED)
                for racer in [x for x in racers if x.task in done]:
                    item = racer.task.result()  # type: ignore[union-attr]
                    racers.remove(racer)
                    if isinstance(item, Outcome) and not item.attempt.ok:
                        self._record(item)
                        continue
                    # A winner: the first text chunk, or a whole answer.
                    for loser in racers:
                        await self._cancel(loser)
                    racers.clear()
                    async for out in self._finish_winner(racer, item):
                        yield out
                    yield True
                    return
            yield True  # every racer failed: the walk goes on after them
        finally:
            for racer in racers:
                await self._cancel(racer)

    def _racer(self, entry: ChainEntry, provider: Provider, *, hedge: bool) -> _Racer:
        start = self.r.runner.start()
        gen = self._one(entry, provider, retry=0, hedge=hedge, start=start)
        racer = _Racer(entry=entry, provider=provider, start=start, gen=gen, hedge=hedge)
        racer.task = asyncio.ensure_future(anext(gen))  # type: ignore[arg-type]
        return racer

    def _next_usable(self) -> tuple[ChainEntry, Provider] | None:
        while self.index < len(self.entries):
            entry = self.entries[self.index]
            self.index += 1
            provider = self.r.providers[entry.provider]
            if self._admit(entry, provider):
                return entry, provider
        return None

    async def _cancel(self, racer: _Racer) -> None:
        task, racer.task = racer.task, None
        if task is None:
            return
        if task.done() and not task.cancelled() and task.exception() is None and isinstance(task.result(), Outcome):
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
        self.r._record_attempt(self.ctx, self.r.runner.cancelled(self.ctx, racer.entry, racer.provider,
                                                                 racer.start, hedge=racer.hedge))

    async def _finish_winner(self, racer: _Racer, first: str | Outcome) -> AsyncIterator[str | Truncated]:
        box: list[Outcome] = [first] if isinstance(first, Outcome) else []
        if isinstance(first, str):
            yield first
            async for text in _relay(racer.gen, box):
                yield text
        outcome = box[0]
        settled = self._settle(outcome)
        if isinstance(settled, Truncated):
            yield settled


async def _relay(gen: AsyncIterator[str | Outcome], box: list[Outcome]) -> AsyncIterator[str]:
    """Pass an attempt's text on; put its ``Outcome`` (always last) in ``box``."""
    async for item in gen:
        if isinstance(item, Outcome):
            box.append(item)
        else:
            yield item
