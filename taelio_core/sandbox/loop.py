"""An asyncio event loop whose clock is virtual.

The sandbox must run the real router, whose timeouts are ``asyncio.timeout``
and whose providers wait with ``asyncio.sleep``. Rather than patch those, we
give them a loop whose ``time()`` is a number we own: when no callback is
ready, the loop's "I/O poll" jumps the clock straight to the next scheduled
timer instead of waiting. Everything scheduled on the loop (sleeps,
timeouts, ``call_later``, back-offs) then runs in virtual time, in order, as
fast as the CPU allows, and a run is exactly reproducible.

The loop does no I/O: it has no sockets and no self-pipe, so it can only run
code that waits on timers and futures, which is all a simulated provider does.
"""
from __future__ import annotations

import asyncio
import asyncio.base_events as base_events
import itertools
from asyncio import events
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

__all__ = ["VirtualTimeLoop", "VirtualTimeStall"]


class VirtualTimeStall(RuntimeError):
    """Nothing is ready and nothing is scheduled, yet the awaited work is not done."""


class _JumpingSelector:
    """Stands in for the I/O selector: 'waiting' moves the clock forward instead."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop

    def select(self, timeout: float | None) -> list[Any]:
        if timeout is None:
            raise VirtualTimeStall("the virtual-time loop has nothing scheduled but the work is not finished")
        if timeout > 0:
            self._loop._now += timeout
        return []

    def close(self) -> None:
        pass


class VirtualTimeLoop(base_events.BaseEventLoop):
    """A loop whose time starts at ``start`` (seconds) and only moves when it must."""

    def __init__(self, start: float = 0.0) -> None:
        super().__init__()
        self._now = float(start)
        self._selector = _JumpingSelector(self)
        # Virtual time is exact: a timer due at t fires at t, never early or late.
        self._clock_resolution = 1e-9
        self._heap: list[tuple[float, int, events.TimerHandle]] = []
        self._sequence = itertools.count()

    def time(self) -> float:
        return self._now

    # The base loop keeps TimerHandles in a heap ordered by their Python-level
    # ``__lt__``; with ~3 timers per simulated request that comparison was the
    # loop's largest cost. Keying the heap by (when, sequence) tuples compares
    # in C and keeps FIFO order among timers due at the same instant.
    def call_at(self, when: float, callback: Callable[..., object], *args: object,
                context: Any = None) -> events.TimerHandle:
        timer = events.TimerHandle(when, callback, args, self, context)
        heappush(self._heap, (when, next(self._sequence), timer))
        timer._scheduled = True
        return timer

    def _run_once(self) -> None:
        heap, ready = self._heap, self._ready
        if not ready and not self._stopping:
            while heap and heap[0][2]._cancelled:
                heappop(heap)
            if not heap:
                raise VirtualTimeStall("the virtual-time loop has nothing scheduled but the work is not finished")
            when = heap[0][0]
            if when > self._now:
                self._now = when
        now = self._now
        while heap and heap[0][0] <= now:
            timer = heappop(heap)[2]
            if not timer._cancelled:
                timer._scheduled = False
                ready.append(timer)
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle._cancelled:
                handle._run()

    def _process_events(self, event_list: list[Any]) -> None:
        pass

    def _write_to_self(self) -> None:
        pass  # single-threaded: nobody needs waking

    def close(self) -> None:
        if self.is_running():
            raise RuntimeError("cannot close a running event loop")
        if not self.is_closed():
            self._heap.clear()
            super().close()

    def run_until(self, when: float) -> None:
        """Run every callback due up to virtual time ``when``, then stop with the clock at ``when``."""
        asyncio.set_event_loop(self)
        stopper = self.call_at(when, self.stop)
        try:
            self.run_forever()
        finally:
            stopper.cancel()
            asyncio.set_event_loop(None)
