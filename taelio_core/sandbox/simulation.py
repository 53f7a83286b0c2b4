"""A whole sandbox experiment: policy A (and B) over one traffic sample, under a scenario, for several seeds.

This is what the CLI and the Sandbox page call. Every run of an experiment
sees the same ``Traffic`` and, seed for seed, the same provider random
streams, so A and B differ only by their policies. Several seeds give the
band around each delta. The report holds summaries, chart series, sample
traces and throughput; ``taelio_core.sandbox.store`` saves it under a run id.
"""
from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from taelio_core.config.policy import RoutingPolicy
from taelio_core.config.policy_parser import parse_policy
from taelio_core.errors import InputError
from taelio_core.sandbox.models import ModelSet, Scenario, apply_scenario
from taelio_core.sandbox.processes import Cancelled, Report, idle_cores, run_in_processes
from taelio_core.sandbox.arm import as_arm, run_arm
from taelio_core.sandbox.engine import EngineRun
from taelio_core.sandbox.replay import ArmRun, GuardFactory, Progress, SimulationCancelled
from taelio_core.sandbox.results import compare, provider_summary, tier_summary, time_series
from taelio_core.sandbox.traffic import Traffic

__all__ = ["SimulationReport", "simulate"]

MAX_SEEDS = 20
# Below this many simulated requests in all, starting worker processes costs more than it saves.
PARALLEL_FROM = 40_000


@dataclass(kw_only=True)
class SimulationReport:
    run_id: str
    created_at: datetime
    policy_a: RoutingPolicy
    policy_b: RoutingPolicy | None
    traffic: Traffic
    models: ModelSet
    scenario: Scenario | None
    seeds: list[int]
    a_runs: list[ArmRun]
    b_runs: list[ArmRun] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def requests_simulated(self) -> int:
        return sum(len(r.requests) for r in self.a_runs + self.b_runs)

    @property
    def rate(self) -> float:
        """Simulated requests per wall-clock second, over the whole experiment."""
        return self.requests_simulated / self.wall_s if self.wall_s > 0 else math.inf

    def tiers(self, arm: str = "A", seed_index: int = 0) -> pd.DataFrame:
        runs, policy = self._arm(arm)
        return tier_summary(runs[seed_index], policy, self.traffic.duration_s)

    def providers(self, arm: str = "A", seed_index: int = 0) -> pd.DataFrame:
        return provider_summary(self._arm(arm)[0][seed_index])

    def series(self, arm: str = "A", seed_index: int = 0) -> pd.DataFrame:
        return time_series(self._arm(arm)[0][seed_index])

    def traces(self, arm: str = "A", seed_index: int = 0) -> list[dict[str, object]]:
        return self._arm(arm)[0][seed_index].traces

    def comparison(self) -> pd.DataFrame | None:
        if self.policy_b is None:
            return None
        return compare(self.a_runs, self.b_runs, self.policy_a, self.policy_b, self.traffic.duration_s)

    def _arm(self, arm: str) -> tuple[list[ArmRun], RoutingPolicy]:
        if arm == "B":
            if self.policy_b is None:
                raise InputError("this run has no policy B")
            return self.b_runs, self.policy_b
        return self.a_runs, self.policy_a

    def as_dict(self, *, traces: int = 3) -> dict[str, object]:
        """The JSON document ``taelio simulate --json`` prints."""
        def records(df: pd.DataFrame | None) -> list[dict[str, object]]:
            if df is None:
                return []
            return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
                    for row in df.to_dict(orient="records")]
        doc: dict[str, object] = {
            "run_id": self.run_id, "source": "sandbox",
            "policy_a": self.policy_a.name, "policy_b": self.policy_b.name if self.policy_b else None,
            "traffic": {"description": self.traffic.description, "requests": len(self.traffic),
                        "duration_s": self.traffic.duration_s, "start": self.traffic.start.isoformat(),
                        "tier_counts": self.traffic.tier_counts(), **self.traffic.meta},
            "scenario": None if self.scenario is None else {
                "name": self.scenario.name, "label": self.scenario.label,
                "description": self.scenario.describe(self.traffic.duration_s)},
            "seeds": self.seeds, "requests_simulated": self.requests_simulated,
            "wall_s": round(self.wall_s, 3), "requests_per_s": round(self.rate, 1),
            "models": {"source": self.models.source, "rows": self.models.rows()},
            "a": {"tiers": records(self.tiers("A")), "providers": records(self.providers("A")),
                  "traces": self.traces("A")[:traces]},
        }
        if self.policy_b is not None:
            doc["b"] = {"tiers": records(self.tiers("B")), "providers": records(self.providers("B")),
                        "traces": self.traces("B")[:traces]}
            doc["comparison"] = records(self.comparison())
        return doc


def simulate(policy_a: RoutingPolicy, traffic: Traffic, models: ModelSet, *, policy_b: RoutingPolicy | None = None,
             scenario: Scenario | None = None, seed: int = 0, seeds: int = 1, progress: Progress | None = None,
             guards: GuardFactory | None = None, workers: int | None = None) -> SimulationReport:
    """Run A (and B) for ``seeds`` seeds starting at ``seed``. ``progress(share)`` may return False to cancel.

    Large experiments run their (arm, seed) jobs in worker processes, one per idle core (``workers``
    to choose); each job is the same deterministic run either way.
    """
    if not 1 <= seeds <= MAX_SEEDS:
        raise InputError(f"seeds must be between 1 and {MAX_SEEDS}, not {seeds}", field="seeds")
    policies = [policy_a] + ([policy_b] if policy_b is not None else [])
    models = apply_scenario(models.covering(policies), scenario, duration_s=traffic.duration_s, policies=policies)
    seed_list = [seed + k for k in range(seeds)]
    jobs = [(arm, pol, s) for s in seed_list for arm, pol in zip("AB", policies)]
    runs: dict[str, list[ArmRun]] = {"A": [], "B": []}
    wall0 = time.perf_counter()
    chosen = workers
    workers = min(len(jobs), idle_cores()) if chosen is None else max(1, min(chosen, len(jobs)))
    large = len(traffic) * len(jobs) >= PARALLEL_FROM
    if workers > 1 and guards is None and (chosen is not None or large):
        done = _run_in_processes(jobs, traffic, models, workers, progress)
    else:
        done = []
        for n, (arm, policy, s) in enumerate(jobs):
            def part(share: float, n: int = n) -> bool | None:
                return None if progress is None else progress((n + share) / len(jobs))
            done.append(run_arm(policy, traffic, models, seed=s, progress=part, guards=guards))
    for (arm, _policy, _seed), run in zip(jobs, done):
        runs[arm].append(run)
    return SimulationReport(run_id=uuid.uuid4().hex[:12], created_at=datetime.now(timezone.utc), policy_a=policy_a,
                            policy_b=policy_b, traffic=traffic, models=models, scenario=scenario, seeds=seed_list,
                            a_runs=runs["A"], b_runs=runs["B"], wall_s=time.perf_counter() - wall0)


# ---- worker processes -------------------------------------------------------------------------
def _run_job(report: Report, text: str, source: str, traffic: Traffic, models: ModelSet,
             seed: int) -> ArmRun | EngineRun:
    return run_arm(parse_policy(text, source=source), traffic, models, seed=seed, progress=report, compact=True)


def _run_in_processes(jobs: list[tuple[str, RoutingPolicy, int]], traffic: Traffic, models: ModelSet,
                      workers: int, progress: Progress | None) -> list[ArmRun]:
    """Each (arm, seed) job in its own spawned process; progress is the mean of the jobs' shares."""
    try:
        runs = run_in_processes(_run_job, [(pol.text, pol.source, traffic, models, s) for _arm, pol, s in jobs],
                                workers=workers, progress=progress)
        return [as_arm(pol, s, traffic, run) for (_arm, pol, s), run in zip(jobs, runs)]
    except Cancelled as e:
        raise SimulationCancelled(int(e.share * len(traffic)), len(traffic)) from None


def progress_printer(write: Callable[[str], object]) -> Progress:
    """A progress callback for terminals: a line every 10 %."""
    state = {"last": -1}

    def report(share: float) -> None:
        step = int(share * 10)
        if step != state["last"]:
            state["last"] = step
            write(f"simulating... {share * 100:3.0f}%\n")
    return report
