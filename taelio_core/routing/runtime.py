"""One background event loop for callers that are threads, not coroutines.

Streamlit runs each session in its own thread and the CLI is synchronous.
Rather than start a loop per call (and lose the SDKs' connection pools),
they submit coroutines to this shared loop and wait on the result, so any
number of threads can generate at once without blocking each other.
"""
from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["BackgroundLoop", "background_loop"]

T = TypeVar("T")


class BackgroundLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="taelio-loop", daemon=True)
        self._thread.start()

    def _check_thread(self) -> None:
        if threading.current_thread() is self._thread:
            raise RuntimeError("blocking call made from the background loop itself; await the async method")

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait; a thread interrupted while waiting (Ctrl-C) cancels it first."""
        self._check_thread()
        return self._wait(coro)

    def _wait(self, coro: Awaitable[T]) -> T:
        step = _Step()
        future = asyncio.run_coroutine_threadsafe(step.run(coro), self.loop)
        try:
            return future.result()
        except BaseException:
            if not future.done():
                future.cancel()  # not started yet: it never will
                asyncio.run_coroutine_threadsafe(step.cancel(), self.loop).result()
            raise

    def iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        """Drive an async iterator from a plain thread, one item at a time.

        A thread that stops early closes it; one interrupted while waiting for the next item (Ctrl-C)
        cancels that step first, so the iterator ends as cancelled (a stream logs its request so).
        """
        self._check_thread()
        finished = False
        try:
            while True:
                try:
                    item = self._wait(anext(agen))  # type: ignore[arg-type]
                except StopAsyncIteration:
                    finished = True
                    return
                yield item
        finally:
            aclose = getattr(agen, "aclose", None)
            if not finished and aclose is not None:
                asyncio.run_coroutine_threadsafe(aclose(), self.loop).result()

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)


class _Step:
    """One coroutine run for a thread, cancellable on the loop until it has unwound (its ``finally`` blocks ran)."""

    task: asyncio.Task[Any] | None = None

    async def run(self, coro: Awaitable[T]) -> T:
        self.task = asyncio.current_task()
        return await coro

    async def cancel(self) -> None:
        task = self.task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])


_lock = threading.Lock()
_instance: BackgroundLoop | None = None


def background_loop() -> BackgroundLoop:
    global _instance
    with _lock:
        if _instance is None:
            _instance = BackgroundLoop()
            atexit.register(_instance.stop)
        return _instance
