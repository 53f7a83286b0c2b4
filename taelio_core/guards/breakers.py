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

The transitions are the decision core's (``routing.decisions``: ``breaker_admit``,
``breaker_record``, ``breaker_mark``), over a compact ``BreakerCell`` (float
epoch seconds, a ring-buffer window); this class is their live adapter.
State lives behind ``BreakerStore`` (an atomic read-modify-write per key),
so a shared store (``RedisBreakerStore`` with ``REDIS_URL``) can replace
``InProcessBreakerStore`` when several replicas must agree. Time comes from the injected ``Clock``:
the sandbox runs breakers in virtual time. Every transition goes to
``on_transition`` (the call log's ``breaker_events`` table, via ``health``).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Protocol, TypeVar

from taelio_core.config.policy import ChainEntry
from taelio_core.guards.resilience import BreakerConfig
from taelio_core.routing.clock import Clock
from taelio_core.routing.decision_state import CLOSED, HALF_OPEN, OPEN, BreakerCell
from taelio_core.routing.decisions import (
    OUT_AUTH,
    OUT_CANCELLED,
    OUT_FAILED,
    OUT_MODEL,
    OUT_OK,
    REASON_AUTH,
    REASON_MODEL,
    Transition,
    breaker_admit,
    breaker_drop_probe,
    breaker_mark,
    breaker_outcome,
    breaker_record,
    breaker_skip_text,
)
from taelio_core.routing.trace import Attempt

if TYPE_CHECKING:
    from taelio_core.routing.context import RequestContext

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "BreakerEvent", "BreakerState", "BreakerStore", "CircuitBreakers",
           "InProcessBreakerStore"]

T = TypeVar("T")
BreakerState = BreakerCell   # what a store holds per key (plain numbers and strings: a shared store serialises it)


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
            state = self._states.get(key)
            if state is None:
                state = self._states[key] = BreakerCell()
            return fn(state)

    def snapshot(self) -> dict[str, BreakerState]:
        with self._lock:
            return {k: v.copy() for k, v in self._states.items()}

    def closed(self, provider_key: str, entry_key: str) -> bool:
        """Both keys closed (the lock-free read below, for an entry's two keys in one call)."""
        states = self._states
        a, b = states.get(provider_key), states.get(entry_key)
        return (a is None or a.state == CLOSED) and (b is None or b.state == CLOSED)

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
        # Optional on a store: a cheap "closed?" read that skips the locked update when nothing can change.
        self._is_closed: Callable[[str], bool] | None = getattr(self.store, "is_closed", None)
        self._closed: Callable[[str, str], bool] | None = getattr(self.store, "closed", None)
        self._pkeys: dict[str, str] = {}
        # Optional too: ``submit(key, fn, then)`` runs an update nobody waits for later, then ``then(result)``.
        self._submit: Callable[..., None] | None = getattr(self.store, "submit", None)

    # ---- Guard -------------------------------------------------------------------------
    def _pkey(self, provider: str) -> str:
        key = self._pkeys.get(provider)
        if key is None:
            key = self._pkeys[provider] = _provider_key(provider)
        return key

    def admit(self, ctx: RequestContext, entry: ChainEntry) -> str | None:
        pkey = self._pkeys.get(entry.provider) or self._pkey(entry.provider)
        if self._closed is not None and self._closed(pkey, entry.ref):
            return None   # the usual case: nothing to decide, no lock taken
        for key in (pkey, entry.ref):
            reason = self._admit_key(key, ctx.request_id)
            if reason is not None:
                self.release(ctx, entry)  # a trial taken on the provider-wide key must not stay held
                return reason
        return None

    def release(self, ctx: RequestContext, entry: ChainEntry) -> None:
        """The entry was admitted but not tried: give back a half-open trial this request held."""
        owner = ctx.request_id
        for key in (_provider_key(entry.provider), entry.ref):
            if self._is_closed is not None and self._is_closed(key):
                continue  # only a half-open breaker holds a trial
            self.store.update(key, lambda s: breaker_drop_probe(s, owner))

    def observe(self, ctx: RequestContext, attempt: Attempt) -> None:
        outcome = breaker_outcome(attempt.status, attempt.error_type, self.config)
        if outcome == OUT_CANCELLED or outcome == OUT_AUTH:
            entry = ChainEntry(provider=attempt.provider, model=attempt.model)
            if outcome == OUT_AUTH:
                self._mark(_provider_key(entry.provider), REASON_AUTH)
            self.release(ctx, entry)
            return
        ref = f"{attempt.provider}:{attempt.model}"
        pkey = self._pkeys.get(attempt.provider) or self._pkey(attempt.provider)
        if outcome == OUT_OK and self._closed is not None and self._closed(pkey, ref) and self.config.enabled:
            # The usual case: a success on closed breakers only joins the entry's window.
            self._write(ref, partial(breaker_record, now=self.clock.now().timestamp(), owner=ctx.request_id,
                                     failed=False, cfg=self.config))
            return
        # A trial on the provider-wide key that got any answer but "key rejected" clears it.
        self._record(pkey, ctx.request_id, failed=None)
        if outcome == OUT_MODEL:
            self._mark(ref, REASON_MODEL)
            return
        self._record(ref, ctx.request_id, failed=False if outcome == OUT_OK else (True if outcome == OUT_FAILED
                                                                                  else None))

    # ---- reading -----------------------------------------------------------------------
    def peek(self, entry: ChainEntry) -> str | None:
        """Why ``entry`` would be skipped now, without taking a trial slot (for selection info)."""
        if not self.config.enabled:
            return None
        states = self.store.snapshot()
        now = self.clock.now().timestamp()
        for key in (_provider_key(entry.provider), entry.ref):
            s = states.get(key)
            if s is None or s.state == CLOSED:
                continue
            if s.state == OPEN and s.until_s is not None and now < s.until_s:
                return breaker_skip_text(1, s)
            if s.state == HALF_OPEN and s.probe_owner is not None:
                return breaker_skip_text(2, s)
        return None

    def states(self) -> dict[str, BreakerState]:
        """Every breaker seen so far (``provider:model`` or ``provider:*``), as copies."""
        return self.store.snapshot()

    def state_of(self, ref: str) -> str:
        state = self.store.snapshot().get(ref)
        return CLOSED if state is None else state.state

    # ---- transitions -------------------------------------------------------------------
    def _admit_key(self, key: str, request_id: str) -> str | None:
        if not self.config.enabled or (self._is_closed is not None and self._is_closed(key)):
            return None
        now = self.clock.now().timestamp()

        def step(s: BreakerState) -> tuple[str | None, Transition | None]:
            code, event = breaker_admit(s, now, request_id)
            return (breaker_skip_text(code, s) if code else None), event

        reason, event = self.store.update(key, step)
        self._emit(key, event)
        return reason

    def _record(self, key: str, request_id: str, *, failed: bool | None) -> None:
        """``failed`` None: an outcome that says nothing about the provider's health."""
        if not self.config.enabled or (failed is None and self._is_closed is not None and self._is_closed(key)):
            return  # nothing to learn, no trial to end
        cfg, now = self.config, self.clock.now().timestamp()
        self._write(key, lambda s: breaker_record(s, now, request_id, failed, cfg))

    def _mark(self, key: str, reason: str) -> None:
        """Open ``key`` for ``unhealthy_s`` because of a failure no retry will fix."""
        now, seconds = self.clock.now().timestamp(), self.unhealthy_s
        self._write(key, lambda s: breaker_mark(s, now, reason, seconds))

    def _write(self, key: str, step: Callable[[BreakerState], Transition | None]) -> None:
        """An outcome nobody waits for: a store with ``submit`` (Redis) writes it off the request path."""
        if self._submit is not None:
            self._submit(key, step, lambda event: self._emit(key, event))
            return
        event = self.store.update(key, step)
        if event is not None:
            self._emit(key, event)

    def _emit(self, key: str, event: Transition | None) -> None:
        if event is None or not self.listeners:
            return
        provider, _, model = key.partition(":")
        out = BreakerEvent(ts=datetime.fromtimestamp(event.at_s, UTC), provider=provider, model=model,
                           from_state=event.from_state, to_state=event.to_state, reason=event.reason,
                           until=None if event.until_s is None else datetime.fromtimestamp(event.until_s, UTC))
        for listener in self.listeners:
            listener(out)
