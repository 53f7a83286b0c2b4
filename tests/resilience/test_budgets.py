"""Budgets that hold: reservations under concurrency, hard stops, soft alerts, degrading by tier."""
from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from taelio_core.calllog import DuckDBCallLog
from taelio_core.config.policy import ChainEntry
from taelio_core.config.pricing import Pricer
from taelio_core.errors import BudgetExceeded, ConfigError
from taelio_core.guards.budgets import BudgetGuard, SpendRow, estimate_input_tokens, spend_from_log
from taelio_core.providers.function import FunctionProvider
from taelio_core.routing.generation import Completion, Usage
from tests.resilience.support import INPUTS, FakeClock, policy, router, run, scripted

ROOT = Path(__file__).resolve().parents[2]


def _worst(r, *, tier, ref, task="idea"):
    request = r.render(task, INPUTS, tier)
    return r.budgets.worst_case(request, ChainEntry.parse(ref), r.clock.now())


def _costly(fraction: float = 1.0):
    """Uses max_tokens of output and the estimated input: costs (close to) the worst case."""
    async def fn(model, request):
        for _ in range(5):
            await asyncio.sleep(0)  # let the other 99 requests pile up in flight
        return Completion(text="spent", finish_reason="stop", usage=Usage(
            input_tokens=int(estimate_input_tokens(request) * fraction),
            output_tokens=int(request.settings.max_tokens * fraction)))
    return fn


@pytest.mark.parametrize("fraction", [1.0, 0.3])
def test_a_hundred_concurrent_requests_never_overshoot_a_hard_budget(tmp_path, fraction):
    """The free tier's chain is one entry (c:c1): 100 requests at once against room for 5.5 worst cases."""
    worst = _worst(router({}), tier="free", ref="c:c1")
    already = Decimal("10")
    limit = already + worst * Decimal("5.5")
    extra = f"[budgets.tier.free]\nmonthly = {limit}\nhard = true\n"
    clock = FakeClock()
    pol = policy(extra)
    log = DuckDBCallLog(tmp_path / "log.duckdb")
    budgets = BudgetGuard(pol, Pricer(pol.model.pricing), clock=clock,
                          spent=[SpendRow(tier="free", provider="c", month="2026-11", day=None, cost_usd=already)])
    r = router({"c": FunctionProvider("c", _costly(fraction))}, extra=extra, clock=clock, budgets=budgets, sink=log)

    async def burst():
        return await asyncio.gather(*(r.agenerate("free", "idea", INPUTS) for _ in range(100)),
                                    return_exceptions=True)

    outcomes = run(burst())
    served = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    assert len(served) + len(refused) == 100
    assert len(served) == 5  # exactly what fits at worst-case cost while all 100 are in flight
    spent = budgets.spent("tier", "free")
    assert spent == already + sum(o.cost_usd for o in served)
    assert spent <= limit  # overshoot: none (bounded by the in-flight worst case in general)
    assert budgets.status()[0].reserved_usd == 0  # every reservation was replaced by a real cost
    log.flush()
    counts = dict(log.query("SELECT status, count(*) AS n FROM requests GROUP BY status").itertuples(index=False))
    assert counts == {"ok": 5, "rejected": 95}
    log.close()


def test_a_hard_stop_raises_one_clear_message_and_logs_a_rejected_row(tmp_path):
    extra = "[budgets.tier.pro]\nmonthly = 0.0001\nhard = true\n"
    log = DuckDBCallLog(tmp_path / "log.duckdb")
    a = scripted("a", ["x"])
    r = router({"a": a}, extra=extra, sink=log)
    with pytest.raises(BudgetExceeded) as info:
        run(r.agenerate("pro", "idea", INPUTS))
    message = str(info.value)
    assert message.startswith("Budget reached for pro/idea: the pro tier monthly budget of $0.0001 has $0.0001 left")
    assert "\n" not in message and a.calls == []
    log.flush()
    row = log.query("SELECT status, n_attempts, n_skipped, error FROM requests").iloc[0]
    assert (row["status"], row["n_attempts"], row["n_skipped"]) == ("rejected", 0, 3)
    assert row["error"] == message
    log.close()


def test_a_soft_budget_alerts_once_and_does_not_stop(caplog):
    extra = "[budgets.tier.pro]\nmonthly = 0.0001\nalert_pct = 50\n"
    r = router({"a": scripted("a", ["x"])}, extra=extra)
    with caplog.at_level(logging.WARNING, logger="taelio.budgets"):
        results = [run(r.agenerate("pro", "idea", INPUTS)) for _ in range(3)]
    assert all(x.ok for x in results)
    alerts = [rec for rec in caplog.records if "budget alert" in rec.getMessage()]
    assert len(alerts) == 1 and "the pro tier monthly budget" in alerts[0].getMessage()
    status = {(s.scope, s.name): s for s in r.budgets.status()}[("tier", "pro")]
    assert status.state == "spent" and status.used_pct > 100


def test_a_provider_budget_skips_only_that_provider():
    extra = "[budgets.provider.a]\ndaily = 0.0001\nhard = true\n"
    r = router({"a": scripted("a", ["x"]), "b": scripted("b", ["from b"])}, extra=extra)
    result = run(r.agenerate("pro", "idea", INPUTS))
    assert result.provider == "b"
    assert result.skipped[0].reason.startswith("budget: the a provider daily budget of $0.0001 has $0.0001 left")


def test_a_tier_degrades_to_another_chain_and_the_trace_says_why():
    extra = ("[budgets.tier.pro]\nmonthly = 100\n[[budgets.degrade]]\ntier = \"pro\"\nat_pct = 90\n"
             "use = \"free\"\n")
    clock = FakeClock()
    pol = policy(extra)
    budgets = BudgetGuard(pol, Pricer(pol.model.pricing), clock=clock,
                          spent=[SpendRow(tier="pro", provider="a", month="2026-11", day=None,
                                          cost_usd=Decimal("91"))])
    r = router({"a": scripted("a", ["pro answer"]), "c": scripted("c", ["free answer"])}, extra=extra,
               clock=clock, budgets=budgets)
    result = run(r.agenerate("pro", "idea", INPUTS))
    assert result.provider == "c" and result.tier == "pro"
    assert result.routing_reason == ("pro has used 91% of its monthly budget ($91.00 of $100.00): "
                                     "served with the free chain")
    below = BudgetGuard(pol, Pricer(pol.model.pricing), clock=clock,
                        spent=[SpendRow(tier="pro", provider="a", month="2026-11", day=None, cost_usd=Decimal("89"))])
    r2 = router({"a": scripted("a", ["pro answer"])}, extra=extra, clock=clock, budgets=below)
    assert run(r2.agenerate("pro", "idea", INPUTS)).routing_reason is None


def test_spend_comes_from_the_log_at_start_up(tmp_path):
    log = DuckDBCallLog(tmp_path / "log.duckdb")
    clock = FakeClock()
    r = router({"a": scripted("a", ["x"])}, clock=clock, sink=log)
    first = run(r.agenerate("pro", "idea", INPUTS))
    log.flush()
    rows = spend_from_log(log, clock.now())
    log.close()
    assert [(x.tier, x.provider, x.day) for x in rows] == [("pro", "a", "2026-11-26")]
    pol2 = policy("[budgets.tier]\npro = 5\n[budgets.provider.a]\ndaily = 1\n")
    restarted = BudgetGuard(pol2, Pricer(pol2.model.pricing), clock=clock, spent=rows)
    assert restarted.spent("tier", "pro") == first.cost_usd
    assert restarted.spent("provider", "a", "daily") == first.cost_usd


def test_simulated_calls_do_not_count_unless_asked():
    from taelio_core.providers.simulated import SimProfile, SimulatedProvider
    extra = "[budgets.tier.pro]\nmonthly = 0.0001\nhard = true\n"
    sim = SimulatedProvider(name="a", profile=SimProfile(speed=0))
    r = router({"a": sim}, extra=extra)
    assert run(r.agenerate("pro", "idea", INPUTS)).ok
    r2 = router({"a": SimulatedProvider(name="a", profile=SimProfile(speed=0))},
                extra=extra + "[budgets]\ncount_simulated = true\n")
    with pytest.raises(BudgetExceeded):
        run(r2.agenerate("pro", "idea", INPUTS))


@pytest.mark.parametrize("bad, key", [
    ("[budgets.tier]\npro = -5\n", "budgets.tier.pro.monthly"),
    ("[budgets.tier]\npro = \"lots\"\n", "budgets.tier.pro.monthly"),
    ("[budgets.provider.a]\ndaily = -1\n", "budgets.provider.a.daily"),
    ("[budgets.tier.pro]\nmonthly = 5\nalert_pct = 150\n", "budgets.tier.pro.alert_pct"),
    ("[[budgets.degrade]]\ntier = \"pro\"\nat_pct = 90\nuse = \"gold\"\n", "budgets.degrade.0.use"),
])
def test_negative_or_non_numeric_budgets_are_config_errors(bad, key):
    with pytest.raises(ConfigError) as info:
        policy(bad)
    assert f"key '{key}'" in str(info.value) and "test.toml:" in str(info.value)


def test_cli_hard_stop_exits_4_with_one_sentence(tmp_path):
    pol = policy("[budgets]\ncount_simulated = true\n[budgets.tier.pro]\nmonthly = 0.0000001\nhard = true\n")
    path = tmp_path / "p.toml"
    path.write_text(pol.text)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TAELIO_MODE": "demo"}
    db = tmp_path / "log.duckdb"
    base = [sys.executable, "-m", "taelio_core", "--policy", str(path), "--db", str(db), "generate", "--tier",
            "pro", "--prompt", "A lighthouse"]
    out = subprocess.run(base, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 4
    errors = [line for line in out.stderr.splitlines() if line.startswith("taelio:")]
    assert len(errors) == 1 and "Budget reached for pro/idea" in errors[0]
    assert "Traceback" not in out.stderr
    out = subprocess.run(base + ["--json", "--stream"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 4
    import json
    doc = json.loads(out.stdout)
    assert doc["error_class"] == "BudgetExceeded" and doc["exit_code"] == 4
    log = DuckDBCallLog(db)
    assert log.query("SELECT count(*) AS n FROM requests WHERE status = 'rejected'")["n"].iloc[0] == 2
    log.close()


def test_a_stream_abandoned_mid_way_releases_its_reservation():
    from taelio_core.routing.generation import StreamEnd, TextDelta

    def events(model, request):
        yield TextDelta(text="first words")
        yield TextDelta(text=" more")
        yield StreamEnd(usage=Usage(input_tokens=5, output_tokens=5), finish_reason="stop")

    extra = "[budgets.tier.pro]\nmonthly = 1000\nhard = true\n"
    r = router({"a": FunctionProvider("a", lambda m, q: "x", stream_fn=events)}, extra=extra)

    async def read_one_chunk():
        stream = r.astream("pro", "idea", INPUTS)
        agen = stream.__aiter__()
        first = await anext(agen)
        held = {(s.scope, s.name): s.reserved_usd for s in r.budgets.status()}[("tier", "pro")]
        await agen.aclose()  # the reader goes away
        return first, held

    first, held = run(read_one_chunk())
    assert first == "first words" and held > 0
    assert {(s.scope, s.name): s.reserved_usd for s in r.budgets.status()}[("tier", "pro")] == 0
