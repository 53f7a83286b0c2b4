"""Budgets shared by every replica: a ``BudgetStore`` in Redis, one Lua script per step.

Why Lua: a hard budget holds across N processes only if "is there room?" and
"take it" are one step. ``reserve`` checks every capped key and reserves on
every counted key inside one script, so spend can pass a hard budget by at
most what requests already in flight cost beyond their worst case, never
N × the budget (LiteLLM #26672: a $10 key spent $217 across pods).

Layout (``taelio:`` prefix): hashes ``budget:spent`` and ``budget:reserved``
(field = the JSON budget key, value = integer nano-dollars, so sums are
exact; a reservation is rounded up, a cost to the nearest nano-dollar),
``budget:holds`` (hold → amount and keys) with ``budget:expiry`` (a sorted set
by deadline: a process killed mid-attempt cannot hold budget for ever; each
``reserve`` drops a few expired holds), and ``budget:seeded`` (period labels
already seeded from the call log).

Seeding is idempotent (LiteLLM #28247: several pods re-seeding a counter
with INCRBYFLOAT inflated it N times): a label's spend is added only by the
seeder whose ``SADD`` of that label returned 1, inside the same script.

When Redis is down the store serves from a per-process ``InProcessBudgetStore``
that starts from the last shared figures it saw; hard budgets are then
refused (``fail_closed``, the default: policy ``[budgets] when_redis_down``)
or checked per process. When Redis is back, the spend settled meanwhile is
added to the shared counters and the holds dropped meanwhile are released,
once, after an idempotent re-seed.
"""
from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from functools import lru_cache

import redis

from taelio_core.guards.budget_ledger import HOLD_TTL_S
from taelio_core.guards.budget_store import Denial, InProcessBudgetStore, Key
from taelio_core.guards.redis_link import RedisLink, SharedStateDown

__all__ = ["RedisBudgetStore", "SeedSource"]

NANO = Decimal("0.000000001")
SeedSource = Callable[[], tuple[Mapping[Key, Decimal], Sequence[str]]]

# KEYS: spent, reserved, holds, expiry. Shared by every script: drop one hold and give back what it reserved.
_DROP = """
local function drop(hold)
  local held = redis.call('HGET', KEYS[3], hold)
  if not held then return end
  local amount = nil
  for part in string.gmatch(held, '[^\\n]+') do
    if amount == nil then amount = tonumber(part)
    else redis.call('HINCRBY', KEYS[2], part, -amount) end
  end
  redis.call('HDEL', KEYS[3], hold)
  redis.call('ZREM', KEYS[4], hold)
end
"""
# ARGV: hold, amount, ttl_s, n_keys, key..., n_caps, (cap_key, cap)...  -> nil, or {cap_key, used}
RESERVE = _DROP + """
local now = tonumber(redis.call('TIME')[1])
for _, stale in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 16)) do drop(stale) end
drop(ARGV[1])
local amount = tonumber(ARGV[2])
local n = tonumber(ARGV[4])
local c = 5 + n
for i = 1, tonumber(ARGV[c]) do
  local key = ARGV[c + 2 * i - 1]
  local used = tonumber(redis.call('HGET', KEYS[1], key) or '0') + tonumber(redis.call('HGET', KEYS[2], key) or '0')
  if used + amount > tonumber(ARGV[c + 2 * i]) then return {key, tostring(used)} end
end
local held = ARGV[2]
for i = 1, n do
  redis.call('HINCRBY', KEYS[2], ARGV[4 + i], amount)
  held = held .. '\\n' .. ARGV[4 + i]
end
redis.call('HSET', KEYS[3], ARGV[1], held)
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[1])
return false
"""
# ARGV: hold, cost ('' = none), key...  -> the keys' spend afterwards
SETTLE = _DROP + """
drop(ARGV[1])
local out = {}
for i = 3, #ARGV do
  if ARGV[2] ~= '' then redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[2]) end
  out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[i]) or '0'
end
return out
"""
# ARGV: hold...
RELEASE = _DROP + """
for i = 1, #ARGV do drop(ARGV[i]) end
return #ARGV
"""
# KEYS[5]: seeded labels. ARGV: n_labels, label..., (key, label, amount)...  -> the labels seeded by this call
SEED = """
local fresh, out = {}, {}
local n = tonumber(ARGV[1])
for i = 1, n do
  if redis.call('SADD', KEYS[5], ARGV[1 + i]) == 1 then fresh[ARGV[1 + i]] = true; out[#out + 1] = ARGV[1 + i] end
end
for i = n + 2, #ARGV, 3 do
  if fresh[ARGV[i + 1]] then redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 2]) end
end
return out
"""


def _nano(amount: Decimal, rounding: str) -> int:
    return int((amount / NANO).quantize(Decimal(1), rounding=rounding))


def _dollars(nano: str | int | None) -> Decimal:
    return Decimal(int(nano or 0)) * NANO


@lru_cache(maxsize=4096)
def _encode(key: Key) -> str:
    return json.dumps(list(key), separators=(",", ":"))


def _decode(text: str) -> Key:
    scope, name, period, label = json.loads(text)
    return (scope, name, period, label)


class RedisBudgetStore:
    """A ``BudgetStore`` shared through Redis, with a per-process fallback while Redis is away."""

    shared = True

    def __init__(self, link: RedisLink, *, fail_closed: bool = True, seed_source: SeedSource | None = None,
                 hold_ttl_s: float = HOLD_TTL_S) -> None:
        self.link, self.fail_closed, self.hold_ttl_s = link, fail_closed, hold_ttl_s
        self.seed_source = seed_source
        p = link.prefix + "budget:"
        self._keys = [p + "spent", p + "reserved", p + "holds", p + "expiry", p + "seeded"]
        self._sha: dict[str, str] = {}
        self._lock = threading.Lock()
        self._seed_args: tuple[dict[Key, Decimal], tuple[str, ...]] = ({}, ())
        self._mirror: tuple[dict[Key, Decimal], dict[Key, Decimal]] = ({}, {})
        self._local: InProcessBudgetStore | None = None
        self._owed: dict[Key, Decimal] = {}        # settled while Redis was down: added to it once it is back
        self._orphans: set[str] = set()            # holds taken in Redis, ended while it was down
        # Each reservation gets its own hold name: a retry re-reserves under the caller's name before the
        # previous attempt's settlement (sent later, off the request path) has dropped the old one.
        self._holds: dict[str, str] = {}
        self._pending: list[tuple[str, str, tuple[Key, ...], Decimal | None]] = []   # for the link's thread
        self._serial = itertools.count()
        link.subscribe(on_up=self._catch_up, on_down=self._go_local, on_poll=self._refresh)
        if not link.up:
            self._go_local()

    # ---- scripts -----------------------------------------------------------------------
    def _eval(self, client: redis.Redis, name: str, script: str, args: Sequence[object]) -> object:
        sha = self._sha.get(name)
        if sha is None:
            sha = self._sha[name] = client.script_load(script)
        try:
            return client.evalsha(sha, len(self._keys), *self._keys, *args)
        except redis.exceptions.NoScriptError:     # a restarted Redis forgot it
            self._sha[name] = client.script_load(script)
            return client.evalsha(self._sha[name], len(self._keys), *self._keys, *args)

    # ---- BudgetStore -------------------------------------------------------------------
    def seed(self, spent: Mapping[Key, Decimal], labels: Sequence[str]) -> None:
        self._seed_args = (dict(spent), tuple(labels))
        try:
            self.link.run(lambda c: self._seed(c, spent, labels))
        except SharedStateDown:
            if self._local is not None:
                self._local.seed(spent, labels)

    def _seed(self, client: redis.Redis, spent: Mapping[Key, Decimal], labels: Sequence[str]) -> set[str]:
        """Add ``spent`` for the labels no one seeded yet; return those labels."""
        args: list[object] = [len(labels), *labels]
        for key, amount in spent.items():
            args += [_encode(key), key[3], _nano(amount, ROUND_HALF_EVEN)]
        return set(self._eval(client, "seed", SEED, args))  # type: ignore[call-overload]

    def reserve(self, hold: str, amount: Decimal, keys: Sequence[Key], caps: Mapping[Key, Decimal]) -> Denial | None:
        if not self.link.up:
            previous = self._holds.pop(hold, None)
            if previous is not None:
                with self._lock:
                    self._orphans.add(previous)
            return self._reserve_locally(hold, amount, keys, caps)
        token = f"{hold}#{os.getpid()}.{next(self._serial)}"
        previous = self._holds.pop(hold, None)
        if previous is not None:
            self._queue(("release", previous, (), None))
        args: list[object] = [token, _nano(amount, ROUND_CEILING), int(self.hold_ttl_s), len(keys),
                              *map(_encode, keys), len(caps)]
        if not caps:       # only soft budgets: nothing to refuse, so the reservation need not wait for Redis
            self._holds[hold] = token
            self._queue(("reserve", token, tuple(keys), amount))
            return None
        for key, cap in caps.items():
            args += [_encode(key), _nano(cap, ROUND_FLOOR)]
        try:
            denied = self.link.run(lambda c: self._eval(c, "reserve", RESERVE, args))
        except SharedStateDown:
            return self._reserve_locally(hold, amount, keys, caps)
        if denied is None:
            self._holds[hold] = token
            return None
        key_text, used = denied  # type: ignore[misc]
        key = _decode(key_text)
        return Denial(key=key, cap=caps[key], used=_dollars(used))

    def _reserve_locally(self, hold: str, amount: Decimal, keys: Sequence[Key],
                         caps: Mapping[Key, Decimal]) -> Denial | None:
        local = self._go_local()
        if caps and self.fail_closed:
            key = next(iter(caps))
            spent, reserved = local.snapshot()
            return Denial(key=key, cap=caps[key], used=spent.get(key, Decimal(0)) + reserved.get(key, Decimal(0)),
                          reason=f"{self.link.status().split(';')[0]}, and hard budgets are closed while it is "
                                 "(policy [budgets] when_redis_down = \"closed\")")
        return local.reserve(hold, amount, keys, caps)

    def release(self, hold: str) -> None:
        token = self._holds.pop(hold, hold)
        if not self.link.up:
            self._end_locally(token, (), None)
            return
        self._queue(("release", token, (), None))

    def settle(self, hold: str, keys: Sequence[Key], cost: Decimal | None) -> dict[Key, Decimal]:
        """Sent by the link's thread: the reservation covers the spend until then (a conservative lag)."""
        token = self._holds.pop(hold, hold)
        if not self.link.up:
            return self._end_locally(token, keys, cost)
        self._queue(("settle", token, tuple(keys), cost))
        spent = self._mirror[0]
        return {key: spent.get(key, Decimal(0)) + (cost or 0) for key in keys}

    def _queue(self, op: tuple[str, str, tuple[Key, ...], Decimal | None]) -> None:
        """(kind, hold, keys, amount): a reservation without a cap, a release or a settlement, sent in order."""
        with self._lock:
            self._pending.append(op)
            first = len(self._pending) == 1
        if first:
            self.link.defer(self._send)

    def _send(self) -> None:
        """Every settlement and release queued since the last send, in one pipelined round trip."""
        with self._lock:
            ops, self._pending = self._pending, []
        if not ops:
            return

        def send(client: redis.Redis) -> None:
            for name, script in (("settle", SETTLE), ("release", RELEASE), ("reserve", RESERVE)):
                if name not in self._sha:
                    self._sha[name] = client.script_load(script)
            pipe = client.pipeline(transaction=False)
            for kind, token, keys, cost in ops:
                if kind == "release":
                    pipe.evalsha(self._sha["release"], len(self._keys), *self._keys, token)
                elif kind == "reserve":
                    pipe.evalsha(self._sha["reserve"], len(self._keys), *self._keys, token,
                                 _nano(cost or Decimal(0), ROUND_CEILING), int(self.hold_ttl_s), len(keys),
                                 *map(_encode, keys), 0)
                else:
                    pipe.evalsha(self._sha["settle"], len(self._keys), *self._keys, token,
                                 "" if cost is None else _nano(cost, ROUND_HALF_EVEN), *map(_encode, keys))
            try:
                pipe.execute()
            except redis.exceptions.NoScriptError:      # a restarted Redis forgot them: nothing ran, send again
                self._sha.clear()
                send(client)
        try:
            self.link.run(send)
        except SharedStateDown:
            for kind, token, keys, cost in ops:
                if kind != "reserve":
                    self._end_locally(token, keys, cost)

    def _end_locally(self, hold: str, keys: Sequence[Key], cost: Decimal | None) -> dict[Key, Decimal]:
        local = self._go_local()
        with self._lock:
            self._orphans.add(hold)
            if cost is not None:
                for key in keys:
                    self._owed[key] = self._owed.get(key, Decimal(0)) + cost
        return local.settle(hold, keys, cost)

    def snapshot(self) -> tuple[dict[Key, Decimal], dict[Key, Decimal]]:
        """The shared figures now (one round trip; the request path never needs them)."""
        if not self.link.up:
            return self._go_local().snapshot()
        try:
            self._refresh()
        except SharedStateDown:
            return self._go_local().snapshot()
        return dict(self._mirror[0]), dict(self._mirror[1])

    # ---- the link's hooks ----------------------------------------------------------------
    def _read(self, client: redis.Redis) -> tuple[dict[Key, Decimal], dict[Key, Decimal]]:
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(self._keys[0])
        pipe.hgetall(self._keys[1])
        spent, reserved = pipe.execute()
        return ({_decode(k): _dollars(v) for k, v in spent.items()},
                {_decode(k): max(Decimal(0), _dollars(v)) for k, v in reserved.items()})

    def _refresh(self) -> None:
        self._mirror = self.link.run(self._read)

    def _go_local(self) -> InProcessBudgetStore:
        """The per-process store, started from the last shared spend this process saw."""
        with self._lock:
            if self._local is None:
                local = InProcessBudgetStore()
                spent, labels = self._mirror[0], {key[3] for key in self._mirror[0]}
                seed_spent, seed_labels = (spent, labels) if spent else self._seed_args
                local.seed(seed_spent, sorted(set(seed_labels)))
                self._local = local
            return self._local

    def _catch_up(self) -> None:
        """Redis answers again: re-seed (a no-op unless it lost its data), add what was spent meanwhile, drop
        the holds that ended meanwhile, then let the request path back. Runs with the link still marked down."""
        client = self.link.client
        spent, labels = self.seed_source() if self.seed_source is not None else self._seed_args
        fresh = self._seed(client, spent, labels)
        with self._lock:
            # A period seeded just now (Redis lost its data) took the log's spend, which holds what was owed.
            owed = {k: v for k, v in self._owed.items() if k[3] not in fresh}
            orphans = sorted(self._orphans)
            self._owed = {k: v for k, v in self._owed.items() if k in owed}
        pipe = client.pipeline(transaction=False)
        for key, amount in owed.items():
            pipe.hincrby(self._keys[0], _encode(key), _nano(amount, ROUND_HALF_EVEN))
        pipe.execute()
        if orphans:
            self._eval(client, "release", RELEASE, orphans)
        self._mirror = self._read(client)
        with self._lock:
            for key, amount in owed.items():
                self._owed[key] -= amount
            self._owed = {k: v for k, v in self._owed.items() if v}
            self._orphans -= set(orphans)
            self._local = None
