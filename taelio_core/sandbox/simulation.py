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

from taelio_core.errors import InputError
from taelio_core.policy import RoutingPolicy
from taelio_core.sandbox.engine import ArmRun, GuardFactory, Progress, run_policy
from taelio_core.sandbox.models import ModelSet, Scenario, apply_scenario
from taelio_core.sandbox.results import compare, provider_summary, tier_summary, time_series
from taelio_core.sandbox.traffic import Traffic

__all__ = ["SimulationReport", "simulate"]

MAX_SEEDS = 20


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
             guards: GuardFactory | None = None) -> SimulationReport:
    """Run A (and B) for ``seeds`` seeds starting at ``seed``. ``progress(share)`` may return False to cancel."""
    if not 1 <= seeds <= MAX_SEEDS:
        raise InputError(f"seeds must be between 1 and {MAX_SEEDS}, not {seeds}", field="seeds")
    policies = [policy_a] + ([policy_b] if policy_b is not None else [])
    models = apply_scenario(models.covering(policies), scenario, duration_s=traffic.duration_s, policies=policies)
    seed_list = [seed + k for k in range(seeds)]
    jobs = [(arm, pol, s) for s in seed_list for arm, pol in zip("AB", policies)]
    runs: dict[str, list[ArmRun]] = {"A": [], "B": []}
    wall0 = time.perf_counter()
    for n, (arm, policy, s) in enumerate(jobs):
        def part(share: float, n: int = n) -> bool | None:
            return None if progress is None else progress((n + share) / len(jobs))
        runs[arm].append(run_policy(policy, traffic, models, seed=s, progress=part, guards=guards))
    return SimulationReport(run_id=uuid.uuid4().hex[:12], created_at=datetime.now(timezone.utc), policy_a=policy_a,
                            policy_b=policy_b, traffic=traffic, models=models, scenario=scenario, seeds=seed_list,
                            a_runs=runs["A"], b_runs=runs["B"], wall_s=time.perf_counter() - wall0)


def progress_printer(write: Callable[[str], object]) -> Progress:
    """A progress callback for terminals: a line every 10 %."""
    state = {"last": -1}

    def report(share: float) -> None:
        step = int(share * 10)
        if step != state["last"]:
            state["last"] = step
            write(f"simulating... {share * 100:3.0f}%\n")
    return report
