"""What one request carries through the router, and the two things that watch it: guards and the call log.

``RequestContext`` is the request's state while its chain is walked (the
chain, the attempts and skips so far, what the guards hold for it, its
deadline); the walk returns the ``GenerationResult`` built from it.
``Guard`` is the protocol circuit breakers and budgets implement (``guards.Guards``
runs them together);
``CallSink`` is where the finished ``GenerationResult`` goes. They live
apart from ``router`` so that the breakers, budgets, attempts and chain walk
can name them without importing the router.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from taelio_core.config.policy import ChainEntry
from taelio_core.routing.generation import ChatRequest
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.trace import Attempt, GenerationResult, Skip

__all__ = ["CallSink", "Guard", "RequestContext", "failure_sentence", "new_id"]


def new_id() -> str:
    """A 128-bit id as 32 hex characters (the shape of ``uuid4().hex``, at a tenth of its cost).

    As in UUIDv7, the first 48 bits are the time in milliseconds since the epoch and the other 80 are
    random: the call log finds a request by id in the hour its id names instead of scanning every row
    (``analytics.calls.id_time``), and the demo generator's ids have the same shape.
    """
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


class CallSink(Protocol):
    """Where finished requests go (the call log). Must not block."""

    def record(self, result: GenerationResult) -> None: ...


class Guard(Protocol):
    """A rule consulted around each attempt: circuit breakers, budgets.

    ``admit`` returns a reason to skip the entry, or None (and may hold
    something for it: a reservation, a half-open trial). Each admitted entry
    then gets exactly one ``observe`` per attempt, or a ``release`` if it
    was not tried after all. Optional: ``release``; ``reroute(ctx)`` to serve
    the request with another tier's chains, returning (tier, why); and
    ``stops_request = True`` when a request skipped by it everywhere is
    ``rejected`` rather than ``failed``.
    """

    def admit(self, ctx: RequestContext, entry: ChainEntry) -> str | None: ...

    def observe(self, ctx: RequestContext, attempt: Attempt) -> None: ...


@dataclass(kw_only=True, slots=True)
class RequestContext:
    """A request while its chain is walked (a ``__slots__`` record: it is on every hot path)."""

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
    chain_tier: str = ""                # whose chains serve it (another tier's after a budget rule)
    deadline_s: float = 60.0
    attempts: list[Attempt] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    routing_reason: str | None = None
    budget_blocked: bool = False
    in_flight: list[ChainEntry] = field(default_factory=list)   # admitted by the guards, not yet observed
    pinned_provider: str | None = None  # the caller chose this provider

    @property
    def deadline(self) -> float:
        """The deadline on the clock's monotonic scale."""
        return self.t0 + self.deadline_s


def failure_sentence(ctx: RequestContext) -> str:
    parts: list[str] = []
    tries: list[int] = []
    for a in ctx.attempts:  # retries of one entry that failed the same way are said once
        part = f"{a.provider}:{a.model} {a.plain_error}"
        if parts and parts[-1] == part and a.retry:
            tries[-1] += 1
            continue
        parts.append(part)
        tries.append(1)
    parts = [p + (f" ({n} tries)" if n > 1 else "") for p, n in zip(parts, tries)]
    parts += [f"{s.provider}:{s.model} skipped ({s.reason})" for s in ctx.skipped]
    if not ctx.attempts and ctx.skipped:
        head = f"No provider could be tried for {ctx.tier}/{ctx.task}"
    else:
        head = f"Every provider failed for {ctx.tier}/{ctx.task}"
    return head + ": " + "; ".join(parts) + "."
