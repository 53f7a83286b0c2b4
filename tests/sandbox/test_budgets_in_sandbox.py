"""Budgets act in virtual time: a tier degrades to another tier's chains at the configured share."""
from __future__ import annotations

import pytest

from taelio_core.sandbox.arm import run_events
from taelio_core.sandbox.models import models_from_policy
from taelio_core.sandbox.replay import run_policy
from taelio_core.sandbox.traffic import synthetic_traffic
from tests.sandbox.conftest import current_policy

DEGRADE = '[[budgets.degrade]]\ntier = "free"\nat_pct = 50\nuse = "pro"\n'


@pytest.mark.parametrize("run_policy", [run_events, run_policy], ids=["events", "asyncio"])
def test_free_tier_degrades_when_half_its_budget_is_spent(run_policy) -> None:
    policy = current_policy(extra=DEGRADE)
    text = policy.text.replace("free = 50.0", "free = 1.0")
    from taelio_core.config.policy_parser import parse_policy
    policy = parse_policy(text, source="degrade.toml")
    # Sparse traffic (one request a minute) so no two requests are in flight at once.
    traffic = synthetic_traffic(requests=1200, tiers=["free"], tasks=["idea"], seed=1, duration_s=72_000,
                                mix={("free", "idea"): 1.0})
    run = run_policy(policy, traffic, models_from_policy(policy), seed=1)
    req = run.requests.sort_values("arrival_s", ignore_index=True)
    degraded = req["routing_reason"].notna() & (req["status"] != "rejected")
    assert degraded.any() and not degraded.iloc[0]
    first = int(degraded.idxmax())
    spent_before = req["cost_usd"].iloc[:first].cumsum()
    assert spent_before.iloc[-1] >= 0.5  # 50 % of the $1 monthly budget
    assert spent_before.iloc[-2] < 0.5 + req["cost_usd"].max()
    assert degraded.iloc[first:].all()  # stays degraded for the rest of the month
    assert "pro" in str(req.at[first, "routing_reason"])
    # Degraded requests use the pro chain.
    pro_first = policy.chain("pro", "idea")[0]
    assert (req.loc[first:, "provider"] == pro_first.provider).mean() > 0.8
