"""Everything consulted around an attempt, as one object: availability, breakers, budgets, health marks.

The chain walk asks ``admit`` before it tries an entry (a reason to skip
it, or None: then every guard holds what it needs, a budget reservation or
a half-open trial), and tells the result of each attempt to ``observe``, or
calls ``release`` when an admitted entry was not tried after all. Breakers
keep the health marks (a rejected key, a missing model) and budgets the
spend; ``Guards`` only runs them in order and undoes a partial admission, so
neither the walk nor the router needs to know how many guards there are.
It also remembers recent first-token times per ``provider:model``, which a
learnt hedging threshold reads.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from taelio_core.config.policy import ChainEntry

if TYPE_CHECKING:
    from taelio_core.guards.breakers import CircuitBreakers
    from taelio_core.guards.budgets import BudgetGuard
    from taelio_core.providers.base import Provider
    from taelio_core.routing.context import Guard, RequestContext
    from taelio_core.routing.trace import Attempt

__all__ = ["Guards", "TTFT_SAMPLES"]

TTFT_SAMPLES = 200  # recent first-token times kept per provider:model, for a learnt hedging threshold


class Guards:
    """The breakers, the budgets and any extra ``Guard``, consulted together (in that order)."""

    def __init__(self, breakers: CircuitBreakers, budgets: BudgetGuard, extra: Sequence[Guard] = ()) -> None:
        self.breakers = breakers
        self.budgets = budgets
        self._all: tuple[Guard, ...] = (breakers, budgets, *extra)
        self._ttft: dict[str, deque[float]] = {}
        # Only guards that can reroute are asked (BudgetGuard says whether its policy has degrade rules).
        self._rerouters = [g.reroute for g in self._all
                           if getattr(g, "reroute", None) is not None and getattr(g, "reroutes", True)]
        self.can_reroute = bool(self._rerouters)   # the router skips ``reroute`` when nothing can

    def admit(self, ctx: RequestContext, entry: ChainEntry, provider: Provider,
              exclude: Collection[str] = (), *, usable: bool = False) -> str | None:
        """Why ``entry`` cannot be tried now, or None, and then every guard holds its part for it.
        ``usable``: the caller already knows the entry is not excluded and its provider has a key."""
        if not usable:
            if entry.ref in exclude:
                return "excluded by the caller"
            availability = provider.availability()
            if not availability.available:
                return availability.reason or "unavailable"
        admitted: list[Guard] = []
        for guard in self._all:
            if guard is self.breakers and ctx.source == "test":
                continue  # a manual probe is how one checks a provider whose circuit is open
            reason = guard.admit(ctx, entry)
            if reason is not None:
                for earlier in admitted:
                    _release(earlier, ctx, entry)
                if getattr(guard, "stops_request", False):
                    ctx.budget_blocked = True
                return reason
            admitted.append(guard)
        ctx.in_flight.append(entry)
        return None

    def release(self, ctx: RequestContext, entry: ChainEntry) -> None:
        """``entry`` was admitted but will not be tried: give back what the guards hold for it."""
        if entry in ctx.in_flight:
            ctx.in_flight.remove(entry)
        for guard in self._all:
            _release(guard, ctx, entry)

    def release_all(self, ctx: RequestContext) -> None:
        """A request that ends early (a caller stopped reading, a cancellation) holds nothing afterwards."""
        for entry in list(ctx.in_flight):
            self.release(ctx, entry)

    def observe(self, ctx: RequestContext, attempt: Attempt) -> None:
        """One attempt ended: each guard learns from it, and what it held for the entry is settled."""
        for i, held in enumerate(ctx.in_flight):
            if held.provider == attempt.provider and held.model == attempt.model:
                del ctx.in_flight[i]
                break
        if attempt.status == "ok" and attempt.ttft_ms is not None:
            ref = f"{attempt.provider}:{attempt.model}"
            self._ttft.setdefault(ref, deque(maxlen=TTFT_SAMPLES)).append(attempt.ttft_ms)
        for guard in self._all:
            guard.observe(ctx, attempt)

    def reroute(self, ctx: RequestContext) -> tuple[str, str] | None:
        """(tier, why) when a guard serves this request with another tier's chains (a budget rule)."""
        for reroute in self._rerouters:
            out = reroute(ctx)
            if out is not None:
                return out
        return None

    def peek(self, entry: ChainEntry) -> str | None:
        """Why the breakers would skip ``entry`` now, without taking a trial (for selection info)."""
        return self.breakers.peek(entry)

    def recent_ttft(self, ref: str) -> list[float]:
        """Recent first-token times (ms) of ``provider:model``'s answers."""
        return list(self._ttft.get(ref, ()))


def _release(guard: Guard, ctx: RequestContext, entry: ChainEntry) -> None:
    release = getattr(guard, "release", None)
    if release is not None:
        release(ctx, entry)
