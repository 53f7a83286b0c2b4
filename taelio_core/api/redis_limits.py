"""Per-user rate-limit counters shared by every replica: a ``LimitStore`` in Redis.

Each counter is one Redis key per user and window (``taelio:limit:<key>:<window end>``), incremented and
given its expiry in one pipelined round trip, so N replicas count one minute's requests together rather
than allowing N × the limit. While Redis is down the counts are kept per process (``MemoryLimitStore``),
as without ``REDIS_URL``; they rejoin the shared counters when the link is back.
"""
from __future__ import annotations

from taelio_core.api.limits import MemoryLimitStore
from taelio_core.guards.redis_link import RedisLink, SharedStateDown

__all__ = ["RedisLimitStore"]

GRACE_S = 5          # a window's key outlives its end by this much (clock skew between replicas)


class RedisLimitStore:
    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.local = MemoryLimitStore()

    def _key(self, key: str, window_end: float) -> str:
        return f"{self.link.prefix}limit:{key}:{int(window_end)}"

    def add(self, key: str, amount: int, *, window_end: float) -> int:
        name = self._key(key, window_end)

        def incr(client) -> int:  # noqa: ANN001 - redis.Redis
            pipe = client.pipeline(transaction=False)
            pipe.incrby(name, amount)
            pipe.expireat(name, int(window_end) + GRACE_S)
            return int(pipe.execute()[0])
        try:
            return self.link.run(incr)
        except SharedStateDown:
            return self.local.add(key, amount, window_end=window_end)

    def get(self, key: str, *, window_end: float) -> int:
        try:
            return int(self.link.run(lambda c: c.get(self._key(key, window_end))) or 0)
        except SharedStateDown:
            return self.local.get(key, window_end=window_end)
