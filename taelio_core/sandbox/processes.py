"""Independent sandbox runs (one per seed and policy) in worker processes, one per idle core.

The seeds that make a comparison's bands share nothing while they run, so
each is a job in its own process: a run is CPU-bound Python, and a second
core only helps from a second process. Workers are spawned (not forked: the
dashboard's process holds threads and open files), each job reports its
share done through shared memory, and a cancel stops them all.
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from taelio_core.errors import TaelioError

__all__ = ["Cancelled", "Report", "idle_cores", "run_in_processes"]

T = TypeVar("T")
# A job's progress callback: its share done (0..1); returns False when the caller cancelled.
Report = Callable[[float], bool]


class Cancelled(TaelioError):
    def __init__(self, share: float) -> None:
        super().__init__(f"the runs were cancelled at {share * 100:.0f}%")
        self.share = share


def idle_cores() -> int:
    """Cores nobody else is using: on a busy machine extra processes only fight each other (measured)."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        return cores
    return max(1, min(cores, int(cores - load + 0.5) + 1))


_shared: dict[str, Any] = {}


def _init_worker(shares: Any, cancel: Any) -> None:
    _shared["shares"], _shared["cancel"] = shares, cancel


def _job(k: int, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    shares, cancel = _shared["shares"], _shared["cancel"]

    def report(share: float) -> bool:
        shares[k] = share
        return not cancel.is_set()
    return fn(report, *args)


def run_in_processes(fn: Callable[..., T], jobs: Sequence[tuple[Any, ...]], *, workers: int,
                     progress: Callable[[float], bool | None] | None = None) -> list[T]:
    """``fn(report, *args)`` for each ``args`` of ``jobs``, in ``workers`` spawned processes; results in
    order. ``fn`` must be importable by name (a module-level function). ``progress`` hears the mean share
    done; returning False cancels every job and raises ``Cancelled``."""
    context = multiprocessing.get_context("spawn")
    shares, cancel = context.Array("d", len(jobs), lock=False), context.Event()
    pool = ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context, initializer=_init_worker,
                               initargs=(shares, cancel))
    try:
        futures = [pool.submit(_job, k, fn, args) for k, args in enumerate(jobs)]
        pending = set(futures)
        while pending:
            _done, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
            if any(f.done() and f.exception() is not None for f in futures):
                break
            if progress is not None and progress(sum(shares) / len(jobs)) is False:
                cancel.set()
                raise Cancelled(sum(shares) / len(jobs))
        return [f.result() for f in futures]
    finally:
        cancel.set()  # also when the caller is interrupted (Streamlit's rerun on Cancel)
        pool.shutdown(wait=True, cancel_futures=True)
