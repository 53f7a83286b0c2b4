"""Experiments: A vs B over seeds, in one process or several, with the same answers either way."""
from __future__ import annotations

import pytest

from taelio_core.config.policy_parser import load_policy
from taelio_core.sandbox.models import models_from_policy, parse_scenario
from taelio_core.sandbox.replay import SimulationCancelled
from taelio_core.sandbox.simulation import simulate
from taelio_core.sandbox.traffic import synthetic_traffic

COLUMNS = ["i", "status", "provider", "model", "latency_ms", "cost_usd", "n_attempts"]


def test_worker_processes_give_exactly_the_single_process_results() -> None:
    a, b = load_policy("current"), load_policy("seed")
    traffic = synthetic_traffic(requests=1500, tiers=a.tiers, tasks=a.tasks, seed=3)
    models = models_from_policy(a, b)
    scenario = parse_scenario("openai-down-30m")
    one = simulate(a, traffic, models, policy_b=b, scenario=scenario, seeds=2, workers=1)
    many = simulate(a, traffic, models, policy_b=b, scenario=scenario, seeds=2, workers=2)
    for x, y in zip(one.a_runs + one.b_runs, many.a_runs + many.b_runs):
        assert (x.policy, x.seed) == (y.policy, y.seed)
        assert x.requests[COLUMNS].equals(y.requests[COLUMNS])
    assert one.comparison().equals(many.comparison())


def test_same_policy_on_both_sides_gives_zero_deltas_and_seeds_give_bands() -> None:
    a = load_policy("current")
    traffic = synthetic_traffic(requests=1000, tiers=a.tiers, tasks=a.tasks, seed=3)
    report = simulate(a, traffic, models_from_policy(a), policy_b=a, seeds=3, workers=1)
    comparison = report.comparison()
    assert (comparison["delta"].fillna(0) == 0).all() and set(comparison["verdict"]) == {"same"}
    assert report.seeds == [0, 1, 2] and len(report.a_runs) == 3
    latencies = {float(r.requests["latency_ms"].sum()) for r in report.a_runs}
    assert len(latencies) == 3  # each seed is its own draw


def test_cancelling_stops_worker_processes_too() -> None:
    a = load_policy("current")
    traffic = synthetic_traffic(requests=3000, tiers=a.tiers, tasks=a.tasks, seed=3)
    with pytest.raises(SimulationCancelled):
        simulate(a, traffic, models_from_policy(a), policy_b=a, workers=2, progress=lambda share: share < 0.3)


def test_a_difference_no_larger_than_the_spread_across_seeds_is_same_even_if_every_seed_leans_one_way() -> None:
    from taelio_core.sandbox.replay import ArmRun
    from taelio_core.sandbox.results import compare
    import pandas as pd
    from taelio_core.config.policy_parser import load_policy

    policy = load_policy("seed")

    def run(latencies: list[float], seed: int) -> ArmRun:
        n = len(latencies)
        requests = pd.DataFrame({"i": range(n), "arrival_s": [float(k) for k in range(n)], "tier": ["free"] * n,
                                 "task": ["idea"] * n, "status": ["ok"] * n, "provider": ["p"] * n,
                                 "model": ["m"] * n, "latency_ms": latencies, "ttft_ms": latencies,
                                 "cost_usd": [0.001] * n, "unpriced": [False] * n, "n_attempts": [1] * n,
                                 "fallback_depth": [0] * n, "n_skipped": [0] * n, "tokens_in": [10] * n,
                                 "tokens_out": [10] * n, "routing_reason": [""] * n})
        return ArmRun(policy="seed", seed=seed, requests=requests, attempts=pd.DataFrame(), traces=[],
                      wall_s=1.0, virtual_s=float(n))

    # A's own p50 moves by 100 ms from seed to seed; B is 2 ms slower on both seeds: noise, not "A better".
    a = [run([500.0] * 9, 0), run([600.0] * 9, 1)]
    b = [run([502.0] * 9, 0), run([602.0] * 9, 1)]
    table = compare(a, b, policy, policy, 3600.0).set_index(["tier", "metric"])
    assert table.at[("free", "p50_ms"), "delta"] == 2.0
    assert table.at[("free", "p50_ms"), "verdict"] == "same"
    # A real difference, beyond the spread, still has a verdict.
    b = [run([900.0] * 9, 0), run([1000.0] * 9, 1)]
    assert compare(a, b, policy, policy, 3600.0).set_index(["tier", "metric"]).at[("free", "p50_ms"), "verdict"] == "A better"
