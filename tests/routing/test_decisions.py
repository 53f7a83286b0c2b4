"""The decision core's functions agree with the rules they replace: windows, prices, budgets, plans."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from taelio_core.config.policy_parser import load_policy
from taelio_core.config.pricing import Pricer
from taelio_core.guards.budgets import BudgetGuard
from taelio_core.guards.resilience import BreakerConfig
from taelio_core.routing.decision_state import OPEN, BreakerCell, BudgetBook, from_decimal, to_decimal
from taelio_core.routing.decisions import (
    SKIP_OPEN,
    SKIP_TRIAL,
    breaker_admit,
    breaker_record,
    breaker_skip_text,
    budget_admit,
    budget_settle,
    budget_skip_text,
)
from taelio_core.routing.generation import ChatRequest, GenerationSettings, Usage
from taelio_core.routing.route_plan import compile_plan
from tests.routing.fault_script import fault_policy


def test_the_ring_buffer_window_holds_exactly_the_outcomes_a_plain_list_would() -> None:
    rng = random.Random(4)
    cell, plain, t = BreakerCell(), [], 0.0
    for _ in range(2000):
        t += rng.random() * 3
        failed = rng.random() < 0.4
        cell.push(t, failed)
        plain.append((t, failed))
        horizon = t - 20.0
        cell.evict_before(horizon)
        plain = [o for o in plain if o[0] >= horizon]
        assert cell.window() == plain
        assert (cell.count, cell.failures) == (len(plain), sum(f for _, f in plain))


def test_a_breaker_opens_half_opens_for_one_trial_and_closes() -> None:
    cfg = BreakerConfig(consecutive_failures=3, cooldown_s=10.0)
    cell = BreakerCell()
    for k in range(3):
        event = breaker_record(cell, 100.0 + k, "r1", True, cfg)
    assert cell.state == OPEN and event is not None and event.reason == "3 failures in a row"
    assert event.until_s == 112.0
    assert breaker_admit(cell, 105.0, "r2") == (SKIP_OPEN, None)
    assert breaker_skip_text(SKIP_OPEN, cell) == (
        f"circuit open until {datetime.fromtimestamp(112, UTC):%H:%M:%S} (3 failures in a row)")
    code, event = breaker_admit(cell, 113.0, "r3")
    assert code == 0 and event is not None and event.to_state == "half_open"
    assert breaker_admit(cell, 113.5, "r4")[0] == SKIP_TRIAL
    event = breaker_record(cell, 114.0, "r3", False, cfg)
    assert cell.state == "closed" and event is not None and event.reason == "trial request succeeded"


def test_a_failure_rate_over_the_window_opens_once_min_calls_were_made() -> None:
    cfg = BreakerConfig(consecutive_failures=100, failure_rate=0.5, window_s=60, min_calls=4)
    cell = BreakerCell()
    outcomes = [True, False, True, False]
    events = [breaker_record(cell, float(k), "r", f, cfg) for k, f in enumerate(outcomes)]
    assert events[-1] is None                  # the last was a success: nothing opens on a success
    event = breaker_record(cell, 4.0, "r", True, cfg)
    assert event is not None and event.reason == "3 of the last 5 calls failed"


MOMENTS = [datetime(2026, 11, 30, 23, 30, tzinfo=UTC), datetime(2025, 3, 1, 9, 0, tzinfo=UTC)]


@pytest.mark.parametrize("name", ["current", "seed"])
def test_bound_prices_equal_the_pricers_for_every_model_of_the_built_in_policies(name: str) -> None:
    policy = load_policy(name)
    pricer = Pricer(policy.model.pricing, {n: c.kind for n, c in policy.providers.items()})
    plan = compile_plan(policy, pricer)
    checked = 0
    for entry in plan.entries:
        for at in MOMENTS:
            for usage in (Usage(input_tokens=812, output_tokens=311), Usage(input_tokens=250_000, output_tokens=9),
                          Usage(input_tokens=1000, output_tokens=50, cached_tokens=400)):
                want = pricer.price(entry.provider, entry.model, usage, at)
                cost, source = entry.price.cost(usage.input_tokens, usage.output_tokens, usage.cached_tokens,
                                                at.timestamp())
                assert source == want.source
                assert (None if cost is None else to_decimal(cost)) == want.cost_usd, (entry.ref, usage, at)
                checked += want.cost_usd is not None
    assert checked > 10


def test_the_worst_case_and_the_budget_denial_read_as_the_budget_guard_says() -> None:
    policy = fault_policy()
    pricer = Pricer(policy.model.pricing, {n: c.kind for n, c in policy.providers.items()})
    plan = compile_plan(policy, pricer)
    at = datetime(2026, 11, 30, 23, 58, tzinfo=UTC)
    request = ChatRequest(system="s" * 300, user="u" * 600, settings=GenerationSettings(max_tokens=400), task="idea")
    guard = BudgetGuard(policy, pricer, clock=type("C", (), {"now": lambda self: at})(), count_simulated=True)
    entry = plan.entries[plan.index("gemini:gemini-2.5-flash")]
    tokens_in = 900 // 3 + 16
    worst = entry.price.worst_case(tokens_in, 400, at.timestamp())
    assert to_decimal(worst) == guard.worst_case(request, entry.entry, at)

    book, rules = BudgetBook(), plan.budget_rules("free", "gemini")
    cap = from_decimal(Decimal("0.03"))
    spent = 0
    for k in range(100):
        denial = budget_admit(book, rules, ("r", k), worst, at.timestamp())
        if denial is not None:
            break
        cost = worst // 2
        budget_settle(book, rules, ("r", k), cost, at.timestamp())
        spent += cost
    assert denial is not None and denial.cap == cap and denial.used == spent
    assert spent + worst > cap >= spent
    assert budget_skip_text(denial, worst).startswith("budget: the free tier daily budget of $0.03 has $")
    # A new day: the daily key is another one, with nothing spent on it.
    assert budget_admit(book, rules, "next", worst, (at + timedelta(minutes=5)).timestamp()) is None


def test_a_plan_gives_each_entry_one_index_and_each_route_its_entries_in_chain_order() -> None:
    policy = fault_policy()
    plan = compile_plan(policy)
    for (tier, task), chain in policy.chains.items():
        route = plan.route(tier, task)
        assert [plan.entries[i].ref for i in route.entries] == [e.ref for e in chain]
        assert route.settings == policy.settings(tier, task)
    refs = [e.ref for e in plan.entries]
    assert len(refs) == len(set(refs))
    for e in plan.entries:
        assert plan.keys[e.entry_key] == e.ref and plan.keys[e.provider_key] == f"{e.provider}:*"
