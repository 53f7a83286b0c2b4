"""A new policy is compiled into a new plan and swapped in whole: no request sees parts of two plans."""
from __future__ import annotations

import asyncio
from decimal import Decimal

from taelio_core.errors import ProviderUnavailable
from tests.policies import build_policy
from tests.resilience.support import INPUTS, FakeClock, answer, router, scripted

PLAN_B = dict(providers={"a": "simulated", "b": "simulated", "c": "simulated"},
              defaults={"timeout_s": 5.0, "max_tokens": 100},
              tiers={"free": {}, "pro": {"allow_provider_override": True}},
              routes={"free": {"idea": ["c:c1"]}, "pro": {"idea": ["c:c1", "a:a1"]}},
              pricing={"a:a1": (1, 1), "b:b1": (1, 1), "c:c1": (1, 1)},
              resilience={"max_retries": 0})


def test_a_request_in_flight_keeps_the_plan_it_started_with_when_the_policy_changes() -> None:
    clock = FakeClock()
    tokens = answer("from a", input_tokens=1000, output_tokens=1000)
    r = router({"a": scripted("a", [ProviderUnavailable, tokens]), "b": scripted("b", ["from b"]),
                "c": scripted("c", [answer("from c", input_tokens=1000, output_tokens=1000)])},
               extra="[resilience]\nbackoff_base_s = 0.5\n", clock=clock)
    policy_a = r.policy
    policy_b = build_policy(name="plan-b", **PLAN_B)

    async def main():
        first = asyncio.ensure_future(r.agenerate("pro", "idea", INPUTS))
        while not clock.sleeps:            # the first request failed on a and waits to retry it
            await asyncio.sleep(0)
        r.use_policy(policy_b)             # ... when the policy changes
        second = await r.agenerate("pro", "idea", INPUTS)
        return await first, second

    first, second = asyncio.run(main())
    # The first request finished under plan A: A's name, A's chain, A's retry rule, A's price for a:a1.
    assert first.policy == policy_a.name == "test"
    assert [e.ref for e in first.chain] == ["a:a1", "b:b1", "c:c1"]
    assert [(a.provider, a.status, a.retry) for a in first.attempts] == [("a", "error", 0), ("a", "ok", 1)]
    assert first.attempts[-1].cost_usd == Decimal("2")          # 1000 + 1000 tokens at $1000/M (A), not $1/M (B)
    # The next request is all plan B.
    assert second.policy == "plan-b"
    assert [e.ref for e in second.chain] == ["c:c1", "a:a1"]
    assert second.provider == "c" and second.attempts[-1].cost_usd == Decimal("0.002")
    assert r.plan.name == "plan-b" and r.policy is policy_b


def test_a_policy_naming_a_provider_the_router_has_no_object_for_is_refused_and_changes_nothing() -> None:
    r = router({})
    before = r.plan
    bad = build_policy(name="bad", providers={"zzz": "simulated"}, routes={"pro": {"idea": ["zzz:z1"]}})
    try:
        r.use_policy(bad)
    except Exception as e:  # noqa: BLE001 - the message is what is checked
        assert "no provider object for zzz" in str(e)
    else:
        raise AssertionError("a policy with an unknown provider was accepted")
    assert r.plan is before
