"""Per-user limits of each tier on the HTTP API: requests per minute and tokens per day.

The limits are the policy's (``[tiers.T] requests_per_minute``,
``tokens_per_day``), counted per user (the token's ``sub``) in fixed windows
(the current UTC minute, the current UTC day). The counts live behind
``LimitStore``, the same kind of small interface the breakers and budgets
use, so several replicas share one (``RedisLimitStore`` with ``REDIS_URL``); ``MemoryLimitStore``
keeps them in this process.

Over a limit the caller gets HTTP 429 with ``Retry-After`` (the seconds
until the window ends). Tokens are counted after each answer, as the
provider reported them: a request is refused once the day's tokens are
spent, never cut short.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from taelio_core.config.policy import RoutingPolicy

__all__ = ["LimitExceeded", "LimitStore", "MemoryLimitStore", "UserLimits"]

MINUTE, DAY = 60, 86400


class LimitStore(Protocol):
    """Counters that expire with their window. Implementations must be safe to call from several threads."""

    def add(self, key: str, amount: int, *, window_end: float) -> int:
        """Add ``amount`` to ``key``'s counter for the window ending at ``window_end``; return the new count."""
        ...

    def get(self, key: str, *, window_end: float) -> int: ...


class MemoryLimitStore:
    """This process's counters (one replica). Old windows are dropped as new ones start."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[float, int]] = {}

    def add(self, key: str, amount: int, *, window_end: float) -> int:
        with self._lock:
            end, count = self._counts.get(key, (window_end, 0))
            if end != window_end:
                count = 0
            count += amount
            self._counts[key] = (window_end, count)
            if len(self._counts) > 100_000:
                self._counts = {k: v for k, v in self._counts.items() if v[0] >= window_end - DAY}
            return count

    def get(self, key: str, *, window_end: float) -> int:
        with self._lock:
            end, count = self._counts.get(key, (window_end, 0))
            return count if end == window_end else 0


class LimitExceeded(Exception):
    def __init__(self, *, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.detail, self.retry_after_s = detail, retry_after_s


class UserLimits:
    def __init__(self, policy: RoutingPolicy, store: LimitStore | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self.policy, self.store, self.now = policy, store or MemoryLimitStore(), now

    @staticmethod
    def _window_end(now: float, size: int) -> float:
        return (math.floor(now / size) + 1) * size

    def admit(self, tier: str, sub: str) -> None:
        """Count one request; raise ``LimitExceeded`` when it is over the minute's or the day's limit."""
        cfg = self.policy.tier(tier)
        now = self.now()
        if cfg.tokens_per_day is not None:
            day_end = self._window_end(now, DAY)
            used = self.store.get(f"tok:{tier}:{sub}", window_end=day_end)
            if used >= cfg.tokens_per_day:
                raise LimitExceeded(detail=f"The {tier} tier's limit of {cfg.tokens_per_day:,} tokens a day is "
                                           f"used up for this user; it resets at midnight UTC.",
                                    retry_after_s=max(1, math.ceil(day_end - now)))
        if cfg.requests_per_minute is not None:
            minute_end = self._window_end(now, MINUTE)
            count = self.store.add(f"req:{tier}:{sub}", 1, window_end=minute_end)
            if count > cfg.requests_per_minute:
                raise LimitExceeded(detail=f"The {tier} tier allows {cfg.requests_per_minute} requests a minute "
                                           f"per user; wait for the next minute.",
                                    retry_after_s=max(1, math.ceil(minute_end - now)))

    def spend_tokens(self, tier: str, sub: str, tokens: int) -> None:
        if tokens and self.policy.tier(tier).tokens_per_day is not None:
            self.store.add(f"tok:{tier}:{sub}", tokens, window_end=self._window_end(self.now(), DAY))
