"""One policy over one traffic sample, as a discrete-event simulation over the decision core.

The engine owns time and luck, the core owns every decision. Each request is
a *walk* the core gives out (``Core.begin``); the engine asks it for its
next step at the current virtual instant and carries the step out:

* ``TRY``: call chain entry ``k``. The engine draws the try's outcome
  (``taelio_core.sandbox.outcomes``), cuts it at the attempt's limit the walk
  gave (a call that would take longer ends as a ``timeout`` at the limit) and
  schedules its end on the event queue; at the end it hands the outcome back
  (``Walk.outcome``) and asks again.
* ``WAIT``: a back-off or a Retry-After: the engine schedules a wake-up.
* ``DONE``: the walk is over; its numbers go into the columns, and for a
  sampled request its full result (``Walk.result``) into the traces.

Nothing here chooses an entry, retries, skips or prices: a different core
(a test's, the live one) gives a different run, never a different engine.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from taelio_core.sandbox.columns import STATUSES, AttemptColumns, RequestColumns
from taelio_core.sandbox.events import END, WAKE, EventQueue
from taelio_core.sandbox.outcomes import ProviderOutcomes
from taelio_core.sandbox.replay import ArmRun
from taelio_core.sandbox.traffic import Traffic

__all__ = ["DONE", "TRY", "WAIT", "Core", "EngineRun", "Walk", "arm_run", "run_engine", "sample_indices"]

TRY, WAIT, DONE = 0, 1, 2
_STATUS = {name: code for code, name in enumerate(STATUSES)}
UNUSUAL_TRACES = 3


class Walk(Protocol):
    """One request's walk through its chain, as the decision core keeps it.

    ``step(now)`` returns ``(TRY, k, limit_s, own_timeout_s, max_tokens)`` (call entry ``k`` of the
    engine's refs; the attempt may last ``limit_s``; a silent provider hangs ``own_timeout_s``; an answer
    stops at ``max_tokens``), for a stream ``(TRY, k, limit_s, own_timeout_s, max_tokens, first_token_s,
    words)``, ``(WAIT, seconds)`` or ``(DONE,)``. After a TRY the engine calls ``outcome`` once, at the
    instant the attempt ended; a stream's error may be ``"truncated"`` and ``ttft_s`` its first token.
    """

    def step(self, now: float) -> tuple: ...

    def outcome(self, now: float, seconds: float, error: str | None, retry_after_s: float, input_tokens: int,
                output_tokens: int, ttft_s: float | None) -> None: ...

    def numbers(self) -> tuple[str, int, float, float, float, bool, int, int, int, int, int, str | None]:
        """(status, entry or -1, latency_ms, ttft_ms, cost_usd, unpriced, attempts, fallback depth, skipped,
        input tokens, output tokens, routing reason)."""
        ...

    def attempt_rows(self) -> Sequence[tuple[float, int, str, str | None, float, float]]:
        """Per attempt: (start second, entry, status, error class, latency_ms, cost_usd or NaN)."""
        ...

    def result(self) -> dict[str, object]:
        """The full trace (``GenerationResult.as_dict()``), asked only for sampled requests."""
        ...


class Core(Protocol):
    """The decision core for one policy, with its state (breakers, budgets, marks) in virtual time."""

    refs: Sequence[str]   # entry k is refs[k] ("provider:model")

    def begin(self, i: int, tier: str, task: str, now: float, input_tokens: int, output_tokens: int) -> Walk: ...


Progress = Callable[[float], "bool | None"]


@dataclass(kw_only=True)
class EngineRun:
    """What one run keeps: the columns (compact, cheap to send between processes) and the sampled traces."""

    requests: RequestColumns
    attempts: AttemptColumns
    traces: list[dict[str, object]] = field(default_factory=list)
    virtual_s: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    finished: int = 0


def arm_run(policy_name: str, seed: int, traffic: Traffic, run: EngineRun) -> ArmRun:
    """The run as the summaries read it (``results``): DataFrames built once, in the process that reads them."""
    requests = run.requests.frame(traffic.arrival_s, traffic.tier_idx, traffic.task_idx, traffic.tiers,
                                  traffic.tasks)
    attempts = run.attempts.frame(traffic.tier_idx, traffic.tiers)
    return ArmRun(policy=policy_name, seed=seed, requests=requests, attempts=attempts, traces=run.traces,
                  wall_s=run.wall_s, virtual_s=run.virtual_s, meta={"cpu_s": run.cpu_s, "engine": "events"})


def sample_indices(traffic: Traffic, per_tier: int = 4) -> set[int]:
    """A few requests per tier, from the start, the middle and the end of the traffic."""
    chosen: set[int] = set()
    for k in range(len(traffic.tiers)):
        rows = (traffic.tier_idx == k).nonzero()[0]
        if rows.size:
            picks = {int(rows[int(j)]) for j in (rows.size * f for f in (0, 0.34, 0.5, 0.67)) if j < rows.size}
            chosen |= set(list(picks)[:per_tier])
    return chosen


def run_engine(core: Core, traffic: Traffic, outcomes: ProviderOutcomes, *, sample: set[int] | None = None,
               progress: Progress | None = None, trace_all: bool = False) -> EngineRun:
    """Every request of ``traffic`` through ``core``'s walks, in virtual time. ``progress(share)`` may return
    False to stop early (``EngineRun.finished`` says how many requests were written)."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    n = len(traffic)
    refs = list(core.refs)
    requests, attempts = RequestColumns(n, refs), AttemptColumns(refs)
    sample = sample_indices(traffic) if sample is None else sample
    traces: list[dict[str, object]] = []
    unusual: dict[str, int] = {}
    queue = EventQueue()
    tiers = [traffic.tiers[k] for k in traffic.tier_idx.tolist()]
    tasks = [traffic.tasks[k] for k in traffic.task_idx.tolist()]
    tokens_in, tokens_out = traffic.input_tokens.tolist(), traffic.output_tokens.tolist()
    walks: dict[int, Walk] = {}
    pending: dict[int, tuple] = {}         # request -> the outcome its running attempt will end with
    width = len(refs)
    tries: dict[int, int] = {}             # request * width + entry -> tries so far (the luck's try index)
    attempt, stream = outcomes.attempt, outcomes.stream
    schedule = queue.schedule
    append_attempt = attempts.append
    write = requests.write
    done = [0]

    def advance(now: float, i: int, walk: Walk) -> None:
        step = walk.step(now)
        kind = step[0]
        if kind == TRY:
            k, limit = step[1], step[2]
            key = i * width + k
            t = tries.get(key, 0)
            tries[key] = t + 1
            out = tokens_out[i]
            if out > step[4]:
                out = step[4]   # the provider stops at max_tokens
            seconds, error, retry_after, used_in, used_out, cut = attempt(k, i, t, now, step[3], tokens_in[i], out)
            ttft = None
            if len(step) > 5:   # a stream: (..., first_token_s, words in the answer)
                seconds, error, ttft = stream(k, seconds, error, cut, step[6], limit, step[5])
                if error is not None:
                    used_out = 0
            elif seconds > limit:  # the attempt's own timer fires first
                seconds, error, used_out = limit, "timeout", 0
            pending[i] = (seconds, error, retry_after, used_in, used_out, ttft)
            schedule(now + seconds, END, i)
        elif kind == WAIT:
            schedule(now + step[1], WAKE, i)
        else:
            finish(i, walk)

    def finish(i: int, walk: Walk) -> None:
        del walks[i]
        numbers = walk.numbers()
        status = numbers[0]
        write(i, _STATUS[status], *numbers[1:])
        base = i * width
        for t_s, k, a_status, error, a_latency, a_cost in walk.attempt_rows():
            tries.pop(base + k, None)
            append_attempt(i, t_s, k, _STATUS[a_status], error, a_latency, a_cost)
        done[0] += 1
        odd = status != "ok" and unusual.get(status, 0) < UNUSUAL_TRACES
        if odd:
            unusual[status] = unusual.get(status, 0) + 1
        if trace_all or odd or i in sample:
            trace = walk.result()
            trace["i"], trace["arrival_s"] = i, float(traffic.arrival_s[i])
            traces.append(trace)

    def on_arrival(now: float, i: int) -> None:
        walk = walks[i] = core.begin(i, tiers[i], tasks[i], now, tokens_in[i], tokens_out[i])
        advance(now, i, walk)

    def on_end(now: float, i: int) -> None:
        walk = walks[i]
        walk.outcome(now, *pending.pop(i))
        advance(now, i, walk)

    def on_wake(now: float, i: int) -> None:
        advance(now, i, walks[i])

    def check(arrived: int) -> bool:
        return progress is None or progress(0.98 * done[0] / max(n, 1)) is not False

    queue.run(traffic.arrival_s.tolist(), on_arrival, on_end, on_wake, check=check,
              check_every=max(1024, n // 50))
    if progress is not None and done[0] == n:
        progress(1.0)
    attempts.freeze()
    return EngineRun(requests=requests, attempts=attempts, traces=sorted(traces, key=lambda t: int(t["i"])),
                     virtual_s=queue.now, wall_s=time.perf_counter() - wall0, cpu_s=time.process_time() - cpu0,
                     finished=done[0])

