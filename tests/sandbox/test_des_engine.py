"""The discrete-event engine carries out what a core's walks ask for, in virtual time, and keeps columns.

The core here is a test double with one deliberately simple rule (try the
entries in order; after a failure wait ``wait_s`` once, then move on), so
each test can say exactly which steps the engine must have carried out."""
from __future__ import annotations

import math

import numpy as np

from taelio_core.providers.simulated import ScriptedTry
from taelio_core.sandbox.engine import DONE, TRY, WAIT, run_engine
from taelio_core.sandbox.models import ModelSet, ProviderModel
from taelio_core.sandbox.outcomes import ProviderOutcomes
from taelio_core.sandbox.traffic import Traffic, synthetic_traffic

REFS = ["a:one", "b:two"]


class InOrderWalk:
    """Entries in order; a failed entry is retried once after ``wait_s``, then the walk moves on."""

    def __init__(self, i: int, now: float, limit_s: float, wait_s: float) -> None:
        self.i, self.t0, self.limit_s, self.wait_s = i, now, limit_s, wait_s
        self.k, self.retried, self.rows, self.answered = 0, False, [], None
        self.wait_next = False
        self.started = now
        self.steps: list[tuple] = []

    def step(self, now: float) -> tuple:
        if self.answered is not None or self.k >= len(REFS):
            out: tuple = (DONE,)
        elif self.wait_next:
            self.wait_next = False
            out = (WAIT, self.wait_s)
        else:
            self.started = now
            out = (TRY, self.k, self.limit_s, 30.0, 10_000)
        self.steps.append((now, *out))
        return out

    def outcome(self, now: float, seconds: float, error: str | None, retry_after_s: float, used_in: int,
                used_out: int, ttft_s: float | None) -> None:
        assert math.isclose(now - self.started, seconds)
        self.rows.append((self.started, self.k, "ok" if error is None else "error", error, seconds * 1000.0,
                          used_out * 1e-6))
        if error is None:
            self.answered = self.k
        elif not self.retried:
            self.retried, self.wait_next = True, True
        else:
            self.k, self.retried = self.k + 1, False

    def numbers(self) -> tuple:
        last = self.rows[-1]
        ok = self.answered is not None
        return ("ok" if ok else "failed", self.answered if ok else -1, (last[0] - self.t0) * 1000 + last[4],
                math.nan, sum(r[5] for r in self.rows), False, len(self.rows),
                sum(r[2] != "ok" for r in self.rows), 0, 100, 10, None)

    def attempt_rows(self) -> list[tuple]:
        return self.rows

    def result(self) -> dict[str, object]:
        return {"status": self.numbers()[0], "attempts": len(self.rows)}


class InOrderCore:
    refs = REFS

    def __init__(self, limit_s: float = 30.0, wait_s: float = 1.0) -> None:
        self.limit_s, self.wait_s = limit_s, wait_s
        self.walks: dict[int, InOrderWalk] = {}

    def begin(self, i: int, tier: str, task: str, now: float, input_tokens: int, output_tokens: int) -> InOrderWalk:
        walk = self.walks[i] = InOrderWalk(i, now, self.limit_s, self.wait_s)
        return walk


def _traffic(arrivals: list[float]) -> Traffic:
    n = len(arrivals)
    return Traffic(start=synthetic_traffic(requests=1, tiers=["free"], tasks=["idea"]).start,
                   arrival_s=np.array(arrivals), tier_idx=np.zeros(n, dtype=np.int16),
                   task_idx=np.zeros(n, dtype=np.int16), input_tokens=np.full(n, 100),
                   output_tokens=np.full(n, 10), tiers=("free",), tasks=("idea",))


def _outcomes(script) -> ProviderOutcomes:
    models = ModelSet(models={r: ProviderModel(provider=r.split(":")[0], model=r.split(":")[1]) for r in REFS})
    return ProviderOutcomes(models, REFS, seed=0, script=script)


def test_a_failed_try_waits_as_the_walk_asks_then_falls_back_and_every_step_happens_at_its_instant() -> None:
    def script(i: int, provider: str, model: str, tried: int) -> ScriptedTry:
        return ScriptedTry(error="unavailable" if provider == "a" else None, latency_s=0.5)

    core = InOrderCore(wait_s=2.0)
    run = run_engine(core, _traffic([10.0]), _outcomes(script))
    assert core.walks[0].steps == [(10.0, TRY, 0, 30.0, 30.0, 10_000), (10.5, WAIT, 2.0),
                                   (12.5, TRY, 0, 30.0, 30.0, 10_000), (13.0, TRY, 1, 30.0, 30.0, 10_000), (13.5, DONE)]
    frame = run.requests.frame(np.array([10.0]), np.zeros(1, dtype=int), np.zeros(1, dtype=int), ("free",),
                               ("idea",))
    assert frame["status"].tolist() == ["ok"] and frame["model"].tolist() == ["two"]
    assert frame["latency_ms"].tolist() == [3500.0] and frame["n_attempts"].tolist() == [3]
    attempts = run.attempts.frame(np.zeros(1, dtype=int), ("free",))
    assert attempts["t_s"].tolist() == [10.0, 12.5, 13.0]
    assert attempts["status"].tolist() == ["error", "error", "ok"]


def test_an_attempt_longer_than_its_limit_ends_at_the_limit_as_a_timeout() -> None:
    def script(i: int, provider: str, model: str, tried: int) -> ScriptedTry:
        return ScriptedTry(latency_s=5.0 if provider == "a" else 0.2)

    core = InOrderCore(limit_s=1.5, wait_s=0.0)
    run = run_engine(core, _traffic([0.0]), _outcomes(script))
    assert [(r[1], r[3], r[4]) for r in core.walks[0].rows] == [(0, "timeout", 1500.0), (0, "timeout", 1500.0),
                                                               (1, None, 200.0)]
    assert run.virtual_s == 3.2


def test_the_try_index_counts_per_request_and_entry_so_the_luck_of_a_retry_is_its_own() -> None:
    asked: list[tuple[int, str, int]] = []

    def script(i: int, provider: str, model: str, tried: int) -> ScriptedTry:
        asked.append((i, provider, tried))
        return ScriptedTry(error="unavailable" if provider == "a" else None, latency_s=0.1)

    run_engine(InOrderCore(wait_s=0.1), _traffic([0.0, 0.05]), _outcomes(script))
    assert sorted(asked) == [(0, "a", 0), (0, "a", 1), (0, "b", 0), (1, "a", 0), (1, "a", 1), (1, "b", 0)]


def test_overlapping_requests_are_interleaved_in_virtual_time_and_each_is_written_once() -> None:
    def script(i: int, provider: str, model: str, tried: int) -> ScriptedTry:
        failing = i % 50 == 0 or (i + tried) % 3 == 0
        return ScriptedTry(error="unavailable" if failing else None, latency_s=0.3 + (i % 7) / 10)

    arrivals = [k * 0.1 for k in range(500)]
    run = run_engine(InOrderCore(wait_s=0.7), _traffic(arrivals), _outcomes(script), sample=set())
    assert run.finished == 500 and bool(run.requests.written.all())
    assert len(run.attempts) == int(run.requests.n_attempts.sum())
    assert run.traces and all(t["status"] != "ok" for t in run.traces)  # only the unusual ones: none sampled


def test_sampled_requests_keep_their_full_result_and_the_rest_only_numbers() -> None:
    def script(i: int, provider: str, model: str, tried: int) -> ScriptedTry:
        return ScriptedTry(latency_s=0.1)

    run = run_engine(InOrderCore(), _traffic([0.0, 1.0, 2.0, 3.0]), _outcomes(script), sample={1, 3})
    assert [t["i"] for t in run.traces] == [1, 3] and run.traces[0]["arrival_s"] == 1.0


def test_progress_can_stop_a_run_and_the_run_says_how_far_it_got() -> None:
    def script(i: int, provider: str, model: str, tried: int) -> ScriptedTry:
        return ScriptedTry(latency_s=0.1)

    heard: list[float] = []

    def progress(share: float) -> bool:
        heard.append(share)
        return share < 0.2

    run = run_engine(InOrderCore(), _traffic([float(k) for k in range(5000)]), _outcomes(script), progress=progress)
    assert 0 < run.finished < 5000 and heard[-1] >= 0.2
    assert not bool(run.requests.written.all())


def test_a_finished_run_becomes_the_arm_the_summaries_read_and_survives_pickling_between_processes() -> None:
    import pickle

    from taelio_core.sandbox.engine import arm_run
    from taelio_core.sandbox.results import provider_summary, tier_summary
    from tests.sandbox.conftest import current_policy

    def script(i: int, provider: str, model: str, tried: int) -> ScriptedTry:
        return ScriptedTry(error="unavailable" if provider == "a" and i % 2 else None, latency_s=0.25)

    traffic = _traffic([float(k) for k in range(10)])
    run = pickle.loads(pickle.dumps(run_engine(InOrderCore(wait_s=0.5), traffic, _outcomes(script))))
    arm = arm_run("p", 3, traffic, run)
    tiers = tier_summary(arm, current_policy(), traffic.duration_s).set_index("tier")
    assert tiers.at["all", "requests"] == 10 and tiers.at["all", "availability"] == 1.0
    assert tiers.at["all", "fallback_rate"] == 0.5
    providers = provider_summary(arm).set_index("provider")
    assert providers.at["a", "attempts"] == 15 and providers.at["b", "served"] == 5
