"""The discrete-event engine's floor: what it costs per simulated request with a core that decides nothing.

``FloorCore`` gives every request one try at one entry (fixed per tier x
task) and ends its walk there, answered or not: no guards, no retries, no
prices. What the engine does around it (the event queue, the pre-drawn
luck, the outcome of the try, the columns) is all real. Measured beside the
engine over the real decision core, it says how much of a simulated
request's time is the engine and how much the decisions.

``floor_job`` is one seed's run, importable by name so it can run in a
worker process (``taelio_core.sandbox.processes``).
"""
from __future__ import annotations

import math

from taelio_core.sandbox.engine import DONE, TRY, EngineRun, run_engine
from taelio_core.sandbox.models import ModelSet
from taelio_core.sandbox.outcomes import ProviderOutcomes
from taelio_core.sandbox.processes import Report
from taelio_core.sandbox.traffic import Traffic

__all__ = ["FloorCore", "floor_job"]


class _FloorWalk:
    __slots__ = ("k", "t0", "started", "seconds", "error", "used_in", "used_out", "tried")

    def __init__(self, k: int, now: float) -> None:
        self.k, self.t0, self.tried = k, now, False

    def step(self, now: float) -> tuple:
        if self.tried:
            return (DONE,)
        self.tried, self.started = True, now
        return (TRY, self.k, 30.0, 30.0, 1 << 30)

    def outcome(self, now: float, seconds: float, error: str | None, retry_after_s: float, used_in: int,
                used_out: int, ttft_s: float | None) -> None:
        self.seconds, self.error, self.used_in, self.used_out = seconds, error, used_in, used_out

    def numbers(self) -> tuple:
        ok = self.error is None
        return ("ok" if ok else "failed", self.k if ok else -1, self.seconds * 1000.0, math.nan, 0.0, False, 1,
                0 if ok else 1, 0, self.used_in, self.used_out, None)

    def attempt_rows(self) -> tuple:
        return ((self.started, self.k, "ok" if self.error is None else "error", self.error, self.seconds * 1000.0,
                 math.nan),)

    def result(self) -> dict[str, object]:
        return {"status": self.numbers()[0], "provider": self.k}


class FloorCore:
    def __init__(self, refs: list[str], tiers: tuple[str, ...], tasks: tuple[str, ...]) -> None:
        self.refs = refs
        self._entry = {(t, k): (a * len(tasks) + b) % len(refs) for a, t in enumerate(tiers)
                       for b, k in enumerate(tasks)}

    def begin(self, i: int, tier: str, task: str, now: float, input_tokens: int, output_tokens: int) -> _FloorWalk:
        return _FloorWalk(self._entry[tier, task], now)


def floor_job(report: Report | None, traffic: Traffic, models: ModelSet, seed: int) -> EngineRun:
    refs = sorted(models.models)
    core = FloorCore(refs, traffic.tiers, traffic.tasks)
    return run_engine(core, traffic, ProviderOutcomes(models, refs, seed=seed), progress=report)
