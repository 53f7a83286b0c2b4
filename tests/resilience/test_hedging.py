"""Hedging: a slow first entry gets company; the first answer wins; the loser is cancelled, logged, priced."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from taelio_core.errors import ProviderUnavailable
from taelio_core.guards.resilience import HedgeConfig
from taelio_core.providers.function import FunctionProvider
from taelio_core.routing.clock import LoopClock
from tests.resilience.support import INPUTS, answer, never, router, run, scripted, streaming, words

HEDGE = "[resilience]\nmax_retries = 0\n[hedging.pro]\nafter_ms = 1\nfloor_ms = 0\n"


def _clock():
    return LoopClock(datetime(2026, 1, 1, tzinfo=timezone.utc))


def test_a_slow_first_entry_is_hedged_and_the_loser_cancelled_and_priced():
    cancelled = {"a": False}

    async def slow(model, request):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled["a"] = True
            raise
        return answer()

    r = router({"a": FunctionProvider("a", slow), "b": scripted("b", ["from b"])}, extra=HEDGE, clock=_clock())
    result = run(r.agenerate("pro", "idea", INPUTS))
    assert result.status == "ok" and result.provider == "b" and result.text == "from b"
    by_provider = {a.provider: a for a in result.attempts}
    assert by_provider["b"].hedge and by_provider["b"].status == "ok"
    assert by_provider["a"].status == "cancelled" and not by_provider["a"].hedge
    assert by_provider["a"].cost_usd is not None and by_provider["a"].cost_usd > 0  # priced on estimated input
    assert "estimated input" in by_provider["a"].price_source
    assert cancelled["a"]
    assert sorted(a.n for a in result.attempts) == [1, 2]
    assert result.fallback_depth == 1


def test_no_hedge_when_the_first_entry_answers_in_time():
    b = scripted("b", ["from b"])
    r = router({"a": scripted("a", ["from a"]), "b": b},
               extra="[hedging.pro]\nafter_ms = 60000\n", clock=_clock())
    result = run(r.agenerate("pro", "idea", INPUTS))
    assert [a.provider for a in result.attempts] == ["a"] and b.calls == []


def test_a_first_entry_failing_before_the_threshold_falls_back_normally():
    r = router({"a": scripted("a", [ProviderUnavailable]), "b": scripted("b", ["from b"])},
               extra="[resilience]\nmax_retries = 0\n[hedging.pro]\nafter_ms = 60000\n", clock=_clock())
    result = run(r.agenerate("pro", "idea", INPUTS))
    assert [(a.provider, a.status, a.hedge) for a in result.attempts] == [("a", "error", False), ("b", "ok", False)]


def test_when_both_racers_fail_the_walk_goes_on():
    async def slow_fail(model, request):
        await asyncio.sleep(0.01)
        raise ProviderUnavailable("down", provider="a", model=model, http_status=503)

    r = router({"a": FunctionProvider("a", slow_fail), "b": scripted("b", [ProviderUnavailable]),
                "c": scripted("c", ["from c"])}, extra=HEDGE, clock=_clock())
    result = run(r.agenerate("pro", "idea", INPUTS))
    assert result.provider == "c"
    assert sorted((a.provider, a.status, a.hedge) for a in result.attempts) == [
        ("a", "error", False), ("b", "error", True), ("c", "ok", False)]


def test_streams_race_on_the_first_token():
    async def slow_stream(model, request):
        await asyncio.Event().wait()
        yield  # pragma: no cover

    class Slow(FunctionProvider):
        def stream(self, model, request):
            return slow_stream(model, request)

    r = router({"a": Slow("a", never), "b": streaming("b", lambda m, q: words("Fast", " answer"))},
               extra=HEDGE, clock=_clock())

    async def go():
        stream = r.astream("pro", "idea", INPUTS)
        return [x async for x in stream], stream.result

    items, result = run(go())
    assert items == ["Fast", " answer"] and result.provider == "b" and result.status == "ok"
    assert {(a.provider, a.status) for a in result.attempts} == {("a", "cancelled"), ("b", "ok")}


def test_the_threshold_can_be_learnt_from_recent_p95():
    cfg = HedgeConfig(after_ms="p95", min_samples=5, default_ms=900, floor_ms=10)
    assert cfg.threshold_ms([100.0] * 4) == 900          # too few samples: the default
    assert cfg.threshold_ms([float(x) for x in range(1, 101)]) == 95.05
    assert cfg.threshold_ms([1.0] * 10) == 10            # never below the floor
    r = router({"a": scripted("a", ["x"])}, clock=_clock())
    run(r.agenerate("pro", "idea", INPUTS))
    assert len(r.recent_ttft("a:a1")) == 1


def test_hedging_config_is_validated():
    import pytest

    from taelio_core.errors import ConfigError
    from tests.resilience.support import policy
    with pytest.raises(ConfigError, match="hedging.gold"):
        policy("[hedging.gold]\nafter_ms = 5\n")
    with pytest.raises(ConfigError, match="hedging.pro.after_ms"):
        policy("[hedging.pro]\nafter_ms = \"p99\"\n")
