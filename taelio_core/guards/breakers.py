"""Circuit breakers per provider:model, and health marks for rejected keys and retired models.

Why: a provider that is down should cost one failed call per cool-down, not
one per request. Each ``provider:model`` has a breaker::

    closed ──(N failures in a row, or failure rate ≥ r over the window
              once min_calls were made)──▶ open
    open ──(cool-down over; the next request is let through as a trial)──▶ half_open
    half_open ──trial ok──▶ closed        half_open ──trial failed──▶ open

A rejected key (401/403) opens a provider-wide mark ``provider:*`` and a
missing model (404) opens that entry's breaker, both for ``unhealthy_s`` and
with a plain reason ("key rejected", "model retired?"), then a trial decides
as usual.

State lives behind ``BreakerStore`` (an atomic read-modify-write per key),
so a shared store (``RedisBreakerStore`` with ``REDIS_URL``) can replace
``InProcessBreakerStore`` when several replicas must agree; a step may run
more than once on fresher state there, so it starts by clearing its events. Time comes from the injected ``Clock``:
the sandbox runs breakers in virtual time. Every transition goes to
``on_transition`` (the call log's ``breaker_events`` table, via ``health``).
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, TypeVar

from taelio_core.config.policy import ChainEntry
from taelio_core.guards.resilience import BreakerConfig
from taelio_core.routing.clock import Clock
from taelio_core.routing.trace import Attempt

if TYPE_CHECKING:
    from taelio_core.routing.context import RequestContext

__all__ = ["BreakerEvent", "BreakerState", "BreakerStore", "CircuitBreakers", "InProcessBreakerStore"]

T = TypeVar("T")
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
REASON_AUTH, REASON_MODEL = "key rejected", "model retired?"


@dataclass(kw_only=True)
class BreakerState:
    """One breaker's state. Plain data, so a shared store can serialise it."""

    state: str = CLOSED
    reason: str = ""
    until: datetime | None = None          # open: when a trial may go through
    consecutive: int = 0
    outcomes: deque[tuple[datetime, bool]] = field(default_factory=deque)  # (when, failed) within the window
    probe_owner: str | None = None         # request id holding the half-open trial
    changed_at: datetime | None = None

    def copy(self) -> BreakerState:
        return replace(self, outcomes=deque(self.outcomes))


@dataclass(frozen=True, kw_only=True)
class BreakerEvent:
    ts: datetime
    provider: str
    model: str                              # "*" for a provider-wide mark
    from_state: str
    to_state: str
    reason: str
    until: datetime | None = None


class BreakerStore(Protocol):
    """Where breaker state lives. ``update`` must be atomic per key (a lock, a transaction, a Lua script)."""

    def update(self, key: str, fn: Callable[[BreakerState], T]) -> T: ...

    def snapshot(self) -> dict[str, BreakerState]: ...


class InProcessBreakerStore:
    """State for this process only (the default)."""

    def __init__(self) -> None:
        self._states: dict[str, BreakerState] = {}
        self._lock = threading.Lock()

    def update(self, key: str, fn: Callable[[BreakerState], T]) -> T:
        with self._lock:
            state = self._states.setdefault(key, BreakerState())
            return fn(state)

    def snapshot(self) -> dict[str, BreakerState]:
        with self._lock:
            return {k: v.copy() for k, v in self._states.items()}

    def is_closed(self, key: str) -> bool:
        """A lock-free read for the common case. A breaker that opens just after this read lets one more
        request through: the same as if that request had taken the lock a moment earlier."""
        state = self._states.get(key)
        return state is None or state.state == CLOSED


def _provider_key(provider: str) -> str:
    return f"{provider}:*"


class CircuitBreakers:
    """A router ``Guard``: skips entries whose breaker (or provider mark) is open, and learns from attempts."""

    def __init__(self, config: BreakerConfig | None = None, *, clock: Clock, unhealthy_s: float = 600.0,
                 store: BreakerStore | None = None,
                 on_transition: Callable[[BreakerEvent], None] | None = None) -> None:
        self.config = config or BreakerConfig()
        self.clock = clock
        self.unhealthy_s = unhealthy_s
        self.store = store or InProcessBreakerStore()
        self.listeners: list[Callable[[BreakerEvent], None]] = [on_transition] if on_transition else []
        self._window = timedelta(seconds=self.config.window_s)
        # Optional on a store: a cheap "closed?" read that skips the locked update when nothing can change.
        self._is_closed: Callable[[str], bool] | None = getattr(self.store, "is_closed", None)
        # Optional too: ``submit(key, fn, then)`` runs an update whose result nobody waits for, later.
        self._submit: Callable[..., None] | None = getattr(self.store, "submit", None)

    # ---- Guard -------------------------------------------------------------------------
    def admit(self, ctx: RequestContext, entry: ChainEntry) -> str | None:
        for key in (_provider_key(entry.provider), entry.ref):
            reason = self._admit_key(key, ctx.request_id)
            if reason is not None:
                self.release(ctx, entry)  # a trial taken on the provider-wide key must not stay held
                return reason
        return None

    def release(self, ctx: RequestContext, entry: ChainEntry) -> None:
        """The entry was admitted but not tried: give back a half-open trial this request held."""
        for key in (_provider_key(entry.provider), entry.ref):
            if self._is_closed is not None and self._is_closed(key):
                continue  # only a half-open breaker holds a trial
            self.store.update(key, lambda s: _drop_probe(s, ctx.request_id))

    def observe(self, ctx: RequestContext, attempt: Attempt) -> None:
        if attempt.status == "cancelled" or attempt.error_type == "auth_failed":
            entry = ChainEntry(provider=attempt.provider, model=attempt.model)
            if attempt.error_type == "auth_failed":
                self._mark(_provider_key(entry.provider), REASON_AUTH)
            self.release(ctx, entry)
            return
        ref = f"{attempt.provider}:{attempt.model}"
        # A trial on the provider-wide key that got any answer but "key rejected" clears it.
        self._record(_provider_key(attempt.provider), ctx.request_id, failed=None)
        if attempt.error_type == "model_not_found":
            self._mark(ref, REASON_MODEL)
            return
        counted = attempt.status == "truncated" or (attempt.error_type in self.config.count)
        if attempt.ok:
            self._record(ref, ctx.request_id, failed=False)
        elif counted:
            self._record(ref, ctx.request_id, failed=True)
        else:
            self._record(ref, ctx.request_id, failed=None)

    # ---- reading -----------------------------------------------------------------------
    def peek(self, entry: ChainEntry) -> str | None:
        """Why ``entry`` would be skipped now, without taking a trial slot (for selection info)."""
        if not self.config.enabled:
            return None
        states = self.store.snapshot()
        for key in (_provider_key(entry.provider), entry.ref):
            s = states.get(key)
            if s is None or s.state == CLOSED:
                continue
            if s.state == OPEN and s.until is not None and self.clock.now() < s.until:
                return f"circuit open until {s.until:%H:%M:%S}" + (f" ({s.reason})" if s.reason else "")
            if s.state == HALF_OPEN and s.probe_owner is not None:
                return "circuit half-open: a trial request is in flight"
        return None

    def states(self) -> dict[str, BreakerState]:
        """Every breaker seen so far (``provider:model`` or ``provider:*``), as copies."""
        return self.store.snapshot()

    def state_of(self, ref: str) -> str:
        return self.store.snapshot().get(ref, BreakerState()).state

    # ---- transitions -------------------------------------------------------------------
    def _admit_key(self, key: str, request_id: str) -> str | None:
        if not self.config.enabled or (self._is_closed is not None and self._is_closed(key)):
            return None
        now = self.clock.now()
        events: list[BreakerEvent] = []

        def step(s: BreakerState) -> str | None:
            events.clear()              # a shared store may run the step again on a fresher state
            if s.state == CLOSED:
                return None
            if s.state == OPEN:
                if s.until is not None and now < s.until:
                    why = f" ({s.reason})" if s.reason else ""
                    return f"circuit open until {s.until:%H:%M:%S}{why}"
                events.append(self._move(key, s, HALF_OPEN, s.reason, now))
                s.probe_owner = request_id
                return None
            if s.probe_owner is None or s.probe_owner == request_id:
                s.probe_owner = request_id
                return None
            return "circuit half-open: a trial request is in flight"

        reason = self.store.update(key, step)
        self._emit(events)
        return reason

    def _record(self, key: str, request_id: str, *, failed: bool | None) -> None:
        """``failed`` None: an outcome that says nothing about the provider's health."""
        if failed is None and self._is_closed is not None and self._is_closed(key):
            return  # nothing to learn, no trial to end
        cfg, now = self.config, self.clock.now()
        events: list[BreakerEvent] = []

        def step(s: BreakerState) -> None:
            events.clear()
            if s.state == HALF_OPEN and s.probe_owner == request_id:
                s.probe_owner = None
                if failed is True:
                    events.append(self._open(key, s, "trial request failed", now, cfg.cooldown_s))
                    return
                events.append(self._move(key, s, CLOSED, "trial request succeeded" if failed is False
                                         else "trial request answered", now))
                s.consecutive, s.outcomes = 0, deque()
                return
            if failed is None or s.state != CLOSED:
                return
            s.outcomes.append((now, failed))
            horizon = now - self._window
            while s.outcomes and s.outcomes[0][0] < horizon:
                s.outcomes.popleft()
            s.consecutive = s.consecutive + 1 if failed else 0
            if not failed:
                return
            n = len(s.outcomes)
            failures = sum(1 for _, f in s.outcomes if f)
            if s.consecutive >= cfg.consecutive_failures:
                events.append(self._open(key, s, f"{s.consecutive} failures in a row", now, cfg.cooldown_s))
            elif n >= cfg.min_calls and failures / n >= cfg.failure_rate:
                events.append(self._open(key, s, f"{failures} of the last {n} calls failed", now, cfg.cooldown_s))

        if self.config.enabled:
            self._write(key, step, events)

    def _mark(self, key: str, reason: str) -> None:
        """Open ``key`` for ``unhealthy_s`` because of a failure no retry will fix."""
        now = self.clock.now()
        events: list[BreakerEvent] = []

        def step(s: BreakerState) -> None:
            events.clear()
            s.probe_owner = None
            events.append(self._open(key, s, reason, now, self.unhealthy_s))

        self._write(key, step, events)

    def _write(self, key: str, step: Callable[[BreakerState], None], events: list[BreakerEvent]) -> None:
        """An outcome nobody waits for: a store with ``submit`` (Redis) writes it off the request path."""
        if self._submit is not None:
            self._submit(key, step, lambda: self._emit(events))
            return
        self.store.update(key, step)
        self._emit(events)

    def _open(self, key: str, s: BreakerState, reason: str, now: datetime, seconds: float) -> BreakerEvent:
        s.until = now + timedelta(seconds=seconds)
        s.consecutive, s.outcomes = 0, deque()
        return self._move(key, s, OPEN, reason, now)

    def _move(self, key: str, s: BreakerState, to: str, reason: str, now: datetime) -> BreakerEvent:
        provider, _, model = key.partition(":")
        event = BreakerEvent(ts=now, provider=provider, model=model, from_state=s.state, to_state=to,
                             reason=reason, until=s.until if to == OPEN else None)
        s.state, s.changed_at = to, now
        if to == OPEN:
            s.reason = reason
        elif to == CLOSED:
            s.reason, s.until = "", None
        return event

    def _emit(self, events: list[BreakerEvent]) -> None:
        for event in events:
            for listener in self.listeners:
                listener(event)


def _drop_probe(s: BreakerState, request_id: str) -> None:
    if s.probe_owner == request_id:
        s.probe_owner = None
