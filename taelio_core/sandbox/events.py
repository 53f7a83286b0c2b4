"""The sandbox's one queue of events in virtual time: arrivals, attempt ends and retry wake-ups.

A discrete-event simulation needs no event loop of asyncio's kind: nothing
waits, every request is a small record, and "waiting" is an event pushed
onto a heap at the instant it is due. Arrivals are already sorted (they are
the traffic's arrival column), so they are read from that column in step
with the heap instead of being pushed onto it: a million arrivals cost a
pointer, not a million heap operations.

Order is total and reproducible: by time; at the same instant, heap events
(attempt ends, wake-ups) before the arrival at that instant, and among heap
events first scheduled, first run.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from heapq import heappop, heappush

__all__ = ["ARRIVE", "END", "WAKE", "EventQueue"]

ARRIVE, END, WAKE = 0, 1, 2

# Called with (now, request index); an END or WAKE handler may schedule further events.
Handler = Callable[[float, int], None]


class EventQueue:
    """Runs ``on_arrival`` at each ``arrivals[i]`` and each scheduled (time, kind, request) in order."""

    __slots__ = ("_heap", "_seq", "now")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, int]] = []
        self._seq = 0
        self.now = 0.0

    def schedule(self, when: float, kind: int, request: int) -> None:
        """Run ``kind``'s handler for ``request`` at virtual second ``when`` (never before now)."""
        self._seq += 1
        heappush(self._heap, (when if when > self.now else self.now, self._seq, kind, request))

    def __len__(self) -> int:
        return len(self._heap)

    def run(self, arrivals: Sequence[float], on_arrival: Handler, on_end: Handler, on_wake: Handler, *,
            check: Callable[[int], bool] | None = None, check_every: int = 4096) -> None:
        """Every arrival and every event they cause, in order, until both are exhausted.

        ``check(arrived)`` is called every ``check_every`` arrivals; returning False stops the run there.
        """
        heap = self._heap
        n = len(arrivals)
        i = 0
        next_check = check_every if check is not None else n + 1
        handlers = (on_arrival, on_end, on_wake)
        while i < n:
            t = arrivals[i]
            while heap and heap[0][0] <= t:
                when, _seq, kind, request = heappop(heap)
                self.now = when
                handlers[kind](when, request)
            self.now = t
            on_arrival(t, i)
            i += 1
            if i >= next_check:
                next_check += check_every
                if not check(i):  # type: ignore[misc]
                    return
        while heap:
            when, _seq, kind, request = heappop(heap)
            self.now = when
            handlers[kind](when, request)
