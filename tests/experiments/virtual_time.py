"""An asyncio loop whose clock is virtual, so latencies in tests are exact and instant.

When nothing is ready, the loop jumps its clock to the next timer instead of
waiting. It still waits for real I/O (worker threads writing DuckDB) when
no timer is pending, so ``asyncio.to_thread`` works as usual.
"""
from __future__ import annotations

import asyncio
import selectors


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc, valid-type]
    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None):  # noqa: ANN201
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            return super().select(None)
        assert self.loop is not None
        if self.loop.threads_busy:
            # A worker thread will wake the loop when it finishes; jumping the clock now would let
            # timers overtake real work, so wait for it (briefly, in real time) instead.
            return super().select(min(timeout, 0.05))
        self.loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = 0.0
        self.threads_busy = 0

    def run_in_executor(self, executor, func, *args):  # noqa: ANN001, ANN201
        future = super().run_in_executor(executor, func, *args)
        self.threads_busy += 1

        def done(_: object) -> None:
            self.threads_busy -= 1
        future.add_done_callback(done)
        return future

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)


def run_virtual(coro):  # noqa: ANN001, ANN201
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
