"""Where routing code gets the time.

The router, breakers and budgets never call ``time`` directly: they ask a
``Clock``. Live traffic uses ``SystemClock``; the sandbox runs the same router
on an event loop whose time is virtual, through ``LoopClock``, so 100,000
requests take seconds and every timer, timeout and back-off still applies.
"""
from __future__ import annotations

import asyncio
import time
from functools import partial
from datetime import datetime, timedelta, timezone
from typing import Protocol

__all__ = ["Clock", "LoopClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time (UTC, tz-aware): stamps log rows, picks prices and budget periods."""

    def monotonic(self) -> float:
        """Seconds on a monotonic scale: measures latency and deadlines."""

    async def sleep(self, seconds: float) -> None:
        """Wait, in this clock's time."""


class SystemClock:
    """Real time.

    ``now`` and ``monotonic`` are the C functions themselves, not methods wrapping them: the router reads
    the clock several times per request, and a Python frame per reading was a tenth of its added calls."""

    now = partial(datetime.now, timezone.utc)   # a partial, like a builtin, is not bound to the instance
    monotonic = staticmethod(time.perf_counter)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class LoopClock:
    """Time as the running event loop sees it, anchored at ``start``.

    On an ordinary loop this is real time; on the sandbox's virtual-time loop
    it is virtual time, which is the point: ``asyncio.sleep`` and
    ``asyncio.timeout`` follow the same loop clock.
    """

    def __init__(self, start: datetime, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._start = start
        self._loop = loop
        self._t0: float | None = None
        self._now_at: float | None = None   # the loop time ``_now`` was made for: many readings share
        self._now = start                   # one virtual instant, and a datetime costs ~1 us to build

    def _loop_time(self) -> float:
        loop = self._loop or asyncio.get_running_loop()
        t = loop.time()
        if self._t0 is None:
            self._t0 = t
        return t

    def now(self) -> datetime:
        t = self._loop_time()
        if t != self._now_at:
            self._now_at, self._now = t, self._start + timedelta(seconds=t - (self._t0 or 0.0))
        return self._now

    def monotonic(self) -> float:
        return self._loop_time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
