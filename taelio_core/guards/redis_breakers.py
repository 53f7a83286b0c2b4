"""Breakers and provider marks shared by every replica: a ``BreakerStore`` in Redis.

Why this shape: the breaker's rules stay in ``breakers.py`` (one copy, run in
Python); Redis holds each ``provider:model`` (and ``provider:*`` mark: "key
rejected", "model retired?") as a versioned value in one hash, and a write is
a compare-and-set script: it lands only if nobody wrote that breaker since
this process read it, else it returns the current value and the rule runs
again on it. So a half-open trial is taken by exactly one replica.

Reads come from a mirror that the link's thread refreshes every ``poll_s``
(0.25 s): an admission whose breakers are closed, or open with a cool-down
still running, costs no round trip, and a breaker opened by one replica
makes the others skip that entry within one refresh. Outcomes of attempts
(``submit``) are written by the link's thread, batched per breaker, so the
request path never waits for them. Until they are written, this process reads
the breaker with them applied (``_ahead``): the replica that saw the failure
which opens a breaker skips the entry on its very next request, as the
in-process store does, instead of one pipeline later.

While Redis is down the store works on a per-process copy of the last
mirror; when Redis is back the mirror is read again and the copy dropped.

Each value is the decision core's ``BreakerCell`` as JSON; its failure-rate
window travels as runs of outcomes per second (``[second, failed, count]``),
so its size grows with how many distinct seconds the window holds, not with
the request rate.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TypeVar

import redis

from taelio_core.guards.breakers import BreakerState, InProcessBreakerStore
from taelio_core.guards.redis_link import RedisLink, SharedStateDown

__all__ = ["RedisBreakerStore"]

T = TypeVar("T")
MAX_TRIES = 8
# KEYS[1]: the breakers hash. ARGV: field, expected version, new json. -> 1, or the current "version|json".
CAS = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
local version = 0
if current then version = tonumber(string.match(current, '^(%d+)|')) end
if version ~= tonumber(ARGV[2]) then return current end
redis.call('HSET', KEYS[1], ARGV[1], (version + 1) .. '|' .. ARGV[3])
return 1
"""


def encode(s: BreakerState) -> str:
    runs: list[list[int]] = []
    for when, failed in s.window():
        second = int(when)
        if runs and runs[-1][0] == second and runs[-1][1] == int(failed):
            runs[-1][2] += 1
        else:
            runs.append([second, int(failed), 1])
    return json.dumps({"s": s.state, "r": s.reason, "u": s.until_s, "c": s.consecutive, "o": runs,
                       "p": s.probe_owner, "t": s.changed_s}, separators=(",", ":"))


def decode(text: str) -> tuple[int, BreakerState]:
    version, _, body = text.partition("|")
    d = json.loads(body)
    cell = BreakerState()
    cell.state, cell.reason, cell.until_s, cell.consecutive = d["s"], d["r"], d["u"], d["c"]
    cell.probe_owner, cell.changed_s = d["p"], d["t"]
    for second, failed, count in d["o"]:
        for _ in range(count):
            cell.push(float(second), bool(failed))
    return int(version), cell


def _assign(target: BreakerState, source: BreakerState) -> None:
    copy = source.copy()
    for name in BreakerState.__slots__:
        setattr(target, name, getattr(copy, name))


class RedisBreakerStore:
    """A ``BreakerStore`` shared through Redis; ``submit`` defers a write to the link's thread."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.hash = link.prefix + "breakers"
        self._mirror: dict[str, tuple[int, BreakerState]] = {}
        self._raw: dict[str, str] = {}
        self._lock = threading.RLock()
        self._local: InProcessBreakerStore | None = None
        self._sha: str | None = None
        self._pending: list[tuple[str, Callable[[BreakerState], object], Callable[[object], None]]] = []
        # Outcomes submitted but not yet written, per breaker, and the mirror's state with them applied.
        self._unsent: dict[str, list[Callable[[BreakerState], object]]] = {}
        self._ahead: dict[str, BreakerState] = {}
        link.subscribe(on_up=self._back, on_down=self._go_local, on_poll=self._refresh)
        if link.up:
            try:
                self._refresh()
            except SharedStateDown:
                pass
        else:
            self._go_local()

    # ---- BreakerStore ------------------------------------------------------------------
    def update(self, key: str, fn: Callable[[BreakerState], T]) -> T:
        """Run the rule on this process's latest copy; write it only if it changed, and only if nobody else did."""
        with self._lock:
            if not self.link.up:
                return self._go_local().update(key, fn)
            ahead = self._ahead.get(key)
            if ahead is not None:
                work = ahead.copy()
                before = encode(work)
                result = fn(work)
                if encode(work) == before:
                    return result             # decided on what this process knows, nothing to write
                self._send()                  # write the outcomes it was decided after, then decide again
            version, state = self._mirror.get(key, (0, BreakerState()))
            for _ in range(MAX_TRIES):
                work = state.copy()
                before = encode(work)
                result = fn(work)
                after = encode(work)
                if after == before:
                    return result
                try:
                    reply = self.link.run(lambda c: self._cas(c, key, version, after))
                except SharedStateDown:
                    return self._go_local().update(key, fn)
                if reply == 1:
                    self._mirror[key] = (version + 1, work)
                    return result
                version, state = decode(reply) if reply else (0, BreakerState())
                self._mirror[key] = (version, state)
            raise RuntimeError(f"breaker {key}: {MAX_TRIES} writers in a row changed it first")

    def submit(self, key: str, fn: Callable[[BreakerState], T], then: Callable[[T], None]) -> None:
        """``then(update(key, fn))``, on the link's thread (an outcome nobody waits for)."""
        if not self.link.up:
            then(self.update(key, fn))
            return
        with self._lock:
            view = self._ahead.get(key) or self._mirror.get(key, (0, BreakerState()))[1]
            work = view.copy()
            fn(work)
            self._ahead[key] = work
            self._unsent.setdefault(key, []).append(fn)
            self._pending.append((key, fn, then))
            first = len(self._pending) == 1
        if first:
            self.link.defer(self._send)

    def _send(self) -> None:
        """Every queued outcome: the rules run per breaker on this process's copy, then one compare-and-set per
        changed breaker, all in one pipelined round trip; a breaker someone else changed meanwhile is done again
        on the value Redis returned."""
        with self._lock:
            queued, self._pending = self._pending, []
        by_key: dict[str, list[tuple[Callable[[BreakerState], object], Callable[[object], None]]]] = {}
        for key, fn, then in queued:
            by_key.setdefault(key, []).append((fn, then))
        for _ in range(MAX_TRIES):
            if not by_key:
                return
            writes: dict[str, tuple[int, BreakerState, str]] = {}
            results: dict[str, list[object]] = {}
            with self._lock:
                for key, steps in by_key.items():
                    version, state = self._mirror.get(key, (0, BreakerState()))
                    work = state.copy()
                    results[key] = [fn(work) for fn, _then in steps]
                    writes[key] = (version, work, encode(work))
            try:
                replies = self.link.run(lambda c: self._cas_many(c, writes))
            except SharedStateDown:
                with self._lock:
                    for key, steps in by_key.items():
                        self._settle(key, [fn for fn, _then in steps])
                for key, steps in by_key.items():
                    for fn, then in steps:
                        then(self._go_local().update(key, fn))
                return
            retry: dict[str, list[tuple[Callable[[BreakerState], object], Callable[[object], None]]]] = {}
            with self._lock:
                for (key, (version, work, _text)), reply in zip(writes.items(), replies):
                    if reply == 1:
                        self._mirror[key] = (version + 1, work)
                        self._settle(key, [fn for fn, _then in by_key[key]])
                    else:
                        self._mirror[key] = decode(reply) if reply else (0, BreakerState())
                        retry[key] = by_key[key]
                        self._settle(key, [])
            for key, steps in by_key.items():
                if key not in retry:
                    for (_fn, then), out in zip(steps, results[key]):
                        then(out)
            by_key = retry
        raise RuntimeError(f"breakers {sorted(by_key)}: {MAX_TRIES} writers in a row changed them first")

    def snapshot(self) -> dict[str, BreakerState]:
        with self._lock:
            if not self.link.up:
                return self._go_local().snapshot()
            states = {k: s.copy() for k, (_, s) in self._mirror.items()}
            states.update((k, s.copy()) for k, s in self._ahead.items())
            return states

    def is_closed(self, key: str) -> bool:
        local = self._local
        if local is not None and not self.link.up:
            return local.is_closed(key)
        ahead = self._ahead.get(key)
        if ahead is not None:
            return ahead.state == "closed"
        held = self._mirror.get(key)
        return held is None or held[1].state == "closed"

    def _settle(self, key: str, written: list[Callable[[BreakerState], object]]) -> None:
        """``key``'s mirror changed or ``written`` outcomes reached Redis: re-apply the rest. Under ``_lock``."""
        left = [fn for fn in self._unsent.get(key, ()) if not any(fn is w for w in written)]
        if not left:
            self._unsent.pop(key, None)
            self._ahead.pop(key, None)
            return
        self._unsent[key] = left
        work = self._mirror.get(key, (0, BreakerState()))[1].copy()
        for fn in left:
            fn(work)
        self._ahead[key] = work

    # ---- the link's hooks ----------------------------------------------------------------
    def _cas(self, client: redis.Redis, key: str, version: int, value: str) -> object:
        if self._sha is None:
            self._sha = client.script_load(CAS)
        try:
            return client.evalsha(self._sha, 1, self.hash, key, version, value)
        except redis.exceptions.NoScriptError:
            self._sha = client.script_load(CAS)
            return client.evalsha(self._sha, 1, self.hash, key, version, value)

    def _cas_many(self, client: redis.Redis, writes: dict[str, tuple[int, BreakerState, str]]) -> list[object]:
        if self._sha is None:
            self._sha = client.script_load(CAS)
        pipe = client.pipeline(transaction=False)
        for key, (version, _work, text) in writes.items():
            pipe.evalsha(self._sha, 1, self.hash, key, version, text)
        try:
            return pipe.execute()
        except redis.exceptions.NoScriptError:      # a restarted Redis forgot it: nothing was written
            self._sha = None
            return self._cas_many(client, writes)

    def _refresh(self, client: redis.Redis | None = None) -> None:
        raw = self.link.run(lambda c: c.hgetall(self.hash)) if client is None else client.hgetall(self.hash)
        with self._lock:
            for key, text in raw.items():
                if self._raw.get(key) == text:
                    continue
                version, state = decode(text)
                held = self._mirror.get(key)
                if held is None or held[0] <= version:
                    self._mirror[key] = (version, state)
                    self._raw[key] = text
                    if key in self._unsent:
                        self._settle(key, [])
            for key in set(self._mirror) - set(raw):      # Redis lost its data (restarted empty)
                if self._mirror[key][0] > 0:
                    del self._mirror[key]
                    self._raw.pop(key, None)
                    if key in self._unsent:
                        self._settle(key, [])

    def _go_local(self) -> InProcessBreakerStore:
        with self._lock:
            if self._local is None:
                local = InProcessBreakerStore()
                for key, (_, state) in self._mirror.items():
                    local.update(key, lambda s, src=state: _assign(s, src))
                self._local = local
            return self._local

    def _back(self) -> None:
        """Redis answers again: its states win over what this process learnt alone meanwhile."""
        with self._lock:
            self._mirror.clear()
            self._raw.clear()
            self._refresh(self.link.client)
            for key in list(self._unsent):
                self._settle(key, [])
            self._local = None
