"""Each arm runs on the engine that can run it, and the discrete-event engine is reproducible and fair."""
from __future__ import annotations

import pytest

from taelio_core.sandbox.arm import run_arm, run_events
from taelio_core.sandbox.models import models_from_policy
from taelio_core.sandbox.replay import SimulationCancelled
from taelio_core.sandbox.traffic import synthetic_traffic
from tests.sandbox.conftest import current_policy


def test_a_policy_without_hedging_or_splits_runs_on_the_discrete_event_engine() -> None:
    policy = current_policy()
    traffic = synthetic_traffic(requests=300, tiers=policy.tiers, tasks=policy.tasks, seed=1)
    run = run_arm(policy, traffic, models_from_policy(policy), seed=1)
    assert run.meta["engine"] == "events" and len(run.requests) == 300


def test_a_policy_with_hedging_runs_on_the_asyncio_engine_and_says_why() -> None:
    policy = current_policy(extra="[hedging.pro]\nafter_ms = 500\n")
    traffic = synthetic_traffic(requests=50, tiers=policy.tiers, tasks=policy.tasks, seed=1)
    run = run_arm(policy, traffic, models_from_policy(policy), seed=1)
    assert run.meta["engine"] == "asyncio" and run.meta["why"] == "the policy uses hedging"
    assert len(run.requests) == 50


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    policy = current_policy()
    traffic = synthetic_traffic(requests=2000, tiers=policy.tiers, tasks=policy.tasks, seed=1)
    models = models_from_policy(policy)
    one, two = (run_events(policy, traffic, models, seed=5) for _ in range(2))
    assert one.requests.equals(two.requests) and one.attempts.equals(two.attempts)
    other = run_events(policy, traffic, models, seed=6)
    assert not other.attempts["latency_ms"].equals(one.attempts["latency_ms"])


def test_policy_a_and_b_meet_the_same_luck_where_they_send_a_request_to_the_same_model() -> None:
    from taelio_core.config.policy_parser import parse_policy
    a = current_policy()
    # B only changes the last entry of the pro idea chain.
    old = 'idea  = ["openai:gpt-4.1", "anthropic:claude-sonnet-4-5", "gemini:gemini-2.5-pro"]'
    assert old in a.text
    b = parse_policy(a.text.replace(old, old.replace("gemini-2.5-pro", "gemini-2.5-flash")), source="b.toml")
    traffic = synthetic_traffic(requests=3000, tiers=["pro"], tasks=["idea"], seed=3, mix={("pro", "idea"): 1})
    models = models_from_policy(a, b)
    ra, rb = run_events(a, traffic, models, seed=2), run_events(b, traffic, models, seed=2)
    reached = set(ra.attempts.loc[ra.attempts["model"] == "gemini-2.5-pro", "i"])
    same = ~ra.requests["i"].isin(reached)
    assert 0 < len(reached) < 100 and same.sum() > 2900
    # Every request that never reached the changed entry met exactly the same luck under both policies.
    columns = ["provider", "model", "latency_ms", "n_attempts", "cost_usd"]
    assert ra.requests.loc[same, columns].equals(rb.requests.loc[same, columns])
    assert not ra.requests.loc[~same, "model"].equals(rb.requests.loc[~same, "model"])


def test_cancelling_a_discrete_event_run_stops_it_with_how_far_it_got() -> None:
    policy = current_policy()
    traffic = synthetic_traffic(requests=20_000, tiers=policy.tiers, tasks=policy.tasks, seed=1)
    with pytest.raises(SimulationCancelled, match="cancelled after"):
        run_events(policy, traffic, models_from_policy(policy), seed=1, progress=lambda share: share < 0.3)
