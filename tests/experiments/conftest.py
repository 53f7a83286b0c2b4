"""Experiments run against the simulator with exact latencies (sigma 0) and a real DuckDB file."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from taelio_core.calllog import DuckDBCallLog
from taelio_core.config.policy_parser import parse_policy
from taelio_core.experiments import Experiments
from taelio_core.providers import SimProfile, SimulatedProvider
from taelio_core.routing.clock import LoopClock
from taelio_core.routing.router import Router
from tests.policies import policy_text

POLICY = policy_text(
    name="exp-test", providers={"sim": "simulated"},
    # The runner tests script outages cell by cell and retry at once; a breaker would (rightly) skip the
    # provider for its cool-down instead. Breakers have their own tests under tests/resilience.
    breakers={"enabled": False},
    tasks={"idea": {"system": "You write ideas.", "user": "Premise: {prompt}\nGenre: {genre}", "max_tokens": 200}},
    tiers={"pro": {"allow_provider_override": True}}, routes={"pro": {"idea": ["sim:a", "sim:b"]}},
    pricing={**{f"sim:{m}": (1.0, 2.0) for m in "abcd"}, "sim:judge": (1.0, 1.0)},
    judge={"chain": ["sim:judge"], "rubric": "Prefer vivid ideas."})
LATENCY_MS = {"a": 400.0, "b": 700.0, "c": 1000.0, "d": 1300.0, "judge": 50.0}


@pytest.fixture
def policy():  # noqa: ANN201
    return parse_policy(POLICY, source="exp-test.toml")


@pytest.fixture
def sim() -> SimulatedProvider:
    profiles = {m: SimProfile(latency_ms=ms, latency_sigma=0.0, output_tokens=60) for m, ms in LATENCY_MS.items()}
    return SimulatedProvider(name="sim", profiles=profiles, seed=3)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[DuckDBCallLog]:
    call_log = DuckDBCallLog(tmp_path / "log.duckdb")
    yield call_log
    call_log.close()


@pytest.fixture
def router(policy, sim, log) -> Router:  # noqa: ANN001
    return Router(policy, {"sim": sim}, sink=log, clock=LoopClock(datetime(2026, 1, 5, tzinfo=timezone.utc)),
                  source="live")


@pytest.fixture
def experiments(router, log) -> Experiments:  # noqa: ANN001
    return Experiments.open(router, log)
