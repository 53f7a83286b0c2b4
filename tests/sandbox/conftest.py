"""Shared pieces for sandbox tests: a policy with short timeouts, small traffic."""
from __future__ import annotations

import pytest

from taelio_core.config.policy import RoutingPolicy

from taelio_core.config.policy_parser import load_policy, parse_policy


def current_policy(timeout_s: float = 30.0, extra: str = "") -> RoutingPolicy:
    text = load_policy("current").text.replace("timeout_s = 30.0", f"timeout_s = {timeout_s}")
    return parse_policy(text + "\n" + extra, source="test-current.toml")


@pytest.fixture
def policy() -> RoutingPolicy:
    return current_policy()


class StepClock:
    """Wall time that moves ``step`` seconds per reading, from ``start``: spreads logged requests over days."""

    def __init__(self, start, step: float) -> None:
        self._t = 0.0
        self._mono = 0.0  # latency and deadlines: moves only by sleeps, so no request outlives its deadline
        self._start = start
        self._step = step

    def now(self):
        from datetime import timedelta
        self._t += self._step
        return self._start + timedelta(seconds=self._t)

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        self._mono += seconds


def fill_log(path, *, requests: int, start, step_s: float = 600.0, source: str = "demo", seed: int = 0) -> None:
    """Log ``requests`` demo requests through the real router (demo simulator, instant) into a DuckDB file."""
    import random

    from taelio_core.calllog import DuckDBCallLog
    from taelio_core.config.settings import load_settings
    from taelio_core.errors import AllProvidersFailed
    from taelio_core.providers import build_providers
    from taelio_core.routing.inputs import Inputs
    from taelio_core.routing.router import Router

    # A short attempt timeout keeps the logged timeouts short too (the simulator at speed 0 is instant).
    policy = current_policy(timeout_s=0.01)
    log = DuckDBCallLog(path)
    providers = build_providers(policy, load_settings(), mode="demo", seed=seed, speed=0.0)
    router = Router(policy, providers, sink=log, clock=StepClock(start, step_s), source=source)
    rng = random.Random(seed)
    for _ in range(requests):
        tier = rng.choice(["free", "free", "pro", "admin"])
        task = rng.choice(policy.tasks)
        try:
            router.generate(tier, task, Inputs(prompt="A lighthouse", genre="Mystery", tone="Dark"))
        except AllProvidersFailed:
            pass
    log.close()
