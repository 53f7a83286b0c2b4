"""The virtual-time loop: sleeps, timeouts and timers run in virtual time, exactly and in order."""
from __future__ import annotations

import asyncio

import pytest

from taelio_core.sandbox.loop import VirtualTimeLoop, VirtualTimeStall


def run(coro_fn, start: float = 0.0):
    loop = VirtualTimeLoop(start)
    try:
        return loop.run_until_complete(coro_fn(loop)), loop.time()
    finally:
        loop.close()


def test_an_hour_of_sleep_advances_the_clock_by_exactly_an_hour() -> None:
    async def main(loop):
        t0 = loop.time()
        await asyncio.sleep(3600)
        return loop.time() - t0
    elapsed, now = run(main, start=100.0)
    assert elapsed == 3600
    assert now == 3700


def test_asyncio_timeout_fires_at_its_virtual_deadline() -> None:
    async def main(loop):
        t0 = loop.time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.sleep(60)
        return loop.time() - t0
    elapsed, _ = run(main)
    assert elapsed == 5


def test_timers_fire_in_time_order_and_fifo_at_the_same_instant() -> None:
    order: list[tuple[str, float]] = []

    async def main(loop):
        for name, delay in [("c", 3.0), ("a", 1.0), ("b1", 2.0), ("b2", 2.0), ("b3", 2.0)]:
            loop.call_later(delay, lambda n=name: order.append((n, loop.time())))
        await asyncio.sleep(10)
    run(main)
    assert order == [("a", 1.0), ("b1", 2.0), ("b2", 2.0), ("b3", 2.0), ("c", 3.0)]


def test_concurrent_tasks_overlap_in_virtual_time() -> None:
    async def main(loop):
        await asyncio.gather(*(asyncio.sleep(30) for _ in range(1000)))
        return loop.time()
    result, _ = run(main)
    assert result == 30


def test_cancelled_timers_do_not_fire() -> None:
    fired: list[int] = []

    async def main(loop):
        handle = loop.call_later(1, fired.append, 1)
        loop.call_later(2, fired.append, 2)
        handle.cancel()
        await asyncio.sleep(5)
    run(main)
    assert fired == [2]


def test_waiting_on_something_that_can_never_happen_stalls_loudly() -> None:
    async def main(loop):
        await loop.create_future()
    with pytest.raises(VirtualTimeStall):
        run(main)


def test_run_until_stops_with_the_clock_at_the_given_time() -> None:
    loop = VirtualTimeLoop()
    seen: list[float] = []
    loop.call_at(4.0, seen.append, 4.0)
    loop.call_at(12.0, seen.append, 12.0)
    loop.run_until(10.0)
    assert seen == [4.0] and loop.time() == 10.0
    loop.run_until(20.0)
    assert seen == [4.0, 12.0]
    loop.close()
