"""The discrete-event sandbox's parts that hold no routing rule: the event queue, the pre-drawn luck, the
outcome of a try, and the result columns."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from taelio_core.providers.simulated import Outage, RateLimit, ScriptedTry
from taelio_core.sandbox.columns import STATUSES, AttemptColumns, RequestColumns
from taelio_core.sandbox.events import END, WAKE, EventQueue
from taelio_core.sandbox.models import ModelSet, ProviderModel
from taelio_core.sandbox.outcomes import BLOCK, TRIES, LuckTable, ProviderOutcomes


# ---- the event queue ------------------------------------------------------------------------------
def test_events_run_in_time_order_with_arrivals_merged_and_ties_first_scheduled_first() -> None:
    queue = EventQueue()
    seen: list[tuple[str, float, int]] = []

    def arrive(now: float, i: int) -> None:
        seen.append(("arrive", now, i))
        queue.schedule(now + 1.0, END, i)
        queue.schedule(now + 1.0, WAKE, i)

    queue.run([0.0, 0.5, 1.0], arrive, lambda t, i: seen.append(("end", t, i)),
              lambda t, i: seen.append(("wake", t, i)))
    assert seen == [("arrive", 0.0, 0), ("arrive", 0.5, 1),
                    ("end", 1.0, 0), ("wake", 1.0, 0),   # due at 1.0: before the arrival at 1.0
                    ("arrive", 1.0, 2), ("end", 1.5, 1), ("wake", 1.5, 1), ("end", 2.0, 2), ("wake", 2.0, 2)]


def test_an_event_scheduled_in_the_past_runs_now_not_back_in_time() -> None:
    queue = EventQueue()
    times: list[float] = []

    def arrive(now: float, i: int) -> None:
        queue.schedule(now - 5.0, END, i)

    queue.run([3.0], arrive, lambda t, i: times.append(t), lambda t, i: None)
    assert times == [3.0]


def test_the_check_stops_a_run_between_arrivals_and_hears_how_many_arrived() -> None:
    queue = EventQueue()
    arrived: list[int] = []
    heard: list[int] = []

    def check(n: int) -> bool:
        heard.append(n)
        return n < 20

    queue.run([float(k) for k in range(100)], lambda t, i: arrived.append(i), lambda t, i: None,
              lambda t, i: None, check=check, check_every=10)
    assert heard == [10, 20] and arrived == list(range(20))


# ---- pre-drawn luck -------------------------------------------------------------------------------
def test_luck_depends_only_on_seed_model_request_and_try_not_on_the_order_it_is_asked_for() -> None:
    forward = LuckTable(7, "openai:gpt-4.1")
    backward = LuckTable(7, "openai:gpt-4.1")
    keys = [(0, 0), (5, 1), (BLOCK + 3, 0), (3 * BLOCK + 1, 2), (42, TRIES + 1), (9 * BLOCK, 3)]
    first = [forward.draw(i, t) for i, t in keys]
    second = [backward.draw(i, t) for i, t in reversed(keys)][::-1]
    assert first == second
    # far blocks were evicted and drawn again on the way back: still the same numbers
    assert [forward.draw(i, t) for i, t in keys] == first


def test_luck_differs_between_seeds_models_requests_and_tries() -> None:
    a = LuckTable(1, "openai:gpt-4.1")
    assert a.draw(0, 0) != LuckTable(2, "openai:gpt-4.1").draw(0, 0)
    assert a.draw(0, 0) != LuckTable(1, "anthropic:claude").draw(0, 0)
    assert len({a.draw(i, t) for i in range(50) for t in range(TRIES + 2)}) == 50 * (TRIES + 2)


def test_pre_drawn_luck_has_the_distributions_it_claims() -> None:
    z, u = LuckTable(3, "gemini:flash").block_arrays(0)
    assert abs(float(np.mean(z))) < 0.02 and abs(float(np.std(z)) - 1.0) < 0.02
    assert abs(float(np.mean(u)) - 0.5) < 0.01 and 0.0 <= float(u.min()) and float(u.max()) < 1.0


# ---- the outcome of a try -------------------------------------------------------------------------
def _models(**profile: object) -> ModelSet:
    limits = profile.pop("limits", {})
    return ModelSet(models={"p:m": ProviderModel(provider="p", model="m", **profile),  # type: ignore[arg-type]
                            "p:n": ProviderModel(provider="p", model="n")}, limits=limits)  # type: ignore[arg-type]


def _try(outcomes: ProviderOutcomes, i: int, now: float = 0.0, t: int = 0, k: int = 0):
    return outcomes.attempt(k, i, t, now, own_timeout_s=30.0, input_tokens=100, output_tokens=200)


def test_a_policy_that_adds_models_does_not_change_the_luck_of_the_models_both_policies_share() -> None:
    one = ProviderOutcomes(_models(error_rates={"unavailable": 0.2}), ["p:m"], seed=4)
    two = ProviderOutcomes(_models(error_rates={"unavailable": 0.2}), ["p:n", "p:m"], seed=4)
    assert [_try(one, i) for i in range(300)] == [_try(two, i, k=1) for i in range(300)]


def test_error_rates_and_median_latency_come_out_as_the_model_says() -> None:
    outcomes = ProviderOutcomes(_models(latency_ms=800.0, error_rates={"unavailable": 0.1, "rate_limited": 0.05}),
                                ["p:m"], seed=9)
    tries = [_try(outcomes, i) for i in range(40_000)]
    errors = [e for _s, e, *_ in tries]
    assert abs(errors.count("unavailable") / len(tries) - 0.1) < 0.01
    assert abs(errors.count("rate_limited") / len(tries) - 0.05) < 0.006
    answered = [s for s, e, *_ in tries if e is None]
    assert abs(float(np.median(answered)) - 0.8) < 0.02
    assert all(out == 200 for _s, e, _r, _in, out, _cut in tries if e is None)
    assert all(out == 0 for _s, e, _r, _in, out, _cut in tries if e is not None)


def test_an_outage_fails_every_try_inside_its_window_and_none_outside() -> None:
    outcomes = ProviderOutcomes(_models(outages=(Outage(start_s=100.0, end_s=200.0, error="unavailable"),)),
                                ["p:m"], seed=1)
    assert all(_try(outcomes, i, now=150.0)[1] == "unavailable" for i in range(200))
    assert all(_try(outcomes, i, now=250.0)[1] is None for i in range(200))


def test_a_simulated_timeout_hangs_for_the_entrys_own_timeout() -> None:
    outcomes = ProviderOutcomes(_models(error_rates={"timeout": 1.0}), ["p:m"], seed=1)
    seconds, error, *_ = outcomes.attempt(0, 0, 0, 0.0, own_timeout_s=12.5, input_tokens=1, output_tokens=1)
    assert (seconds, error) == (12.5, "timeout")


def test_a_provider_over_its_requests_per_minute_answers_429_with_the_wait_as_retry_after() -> None:
    outcomes = ProviderOutcomes(_models(limits={"p": RateLimit(rpm=60)}), ["p:m", "p:n"], seed=1)
    results = [_try(outcomes, i, now=0.0, k=i % 2) for i in range(61)]   # the bucket is the provider's
    assert [e for _s, e, *_ in results[:60]] == [None] * 60
    assert results[60][1] == "rate_limited" and results[60][2] == pytest.approx(1.0)
    assert _try(outcomes, 61, now=1.0)[1] is None      # one request a second refills


def test_a_fault_script_replaces_the_luck() -> None:
    def script(i: int, provider: str, model: str, tried: int) -> ScriptedTry:
        return ScriptedTry(error="timeout" if tried else "rate_limited", latency_s=0.25, retry_after_s=2.0)

    outcomes = ProviderOutcomes(_models(), ["p:m"], seed=1, script=script)
    assert _try(outcomes, 3, t=0) == (0.25, "rate_limited", 2.0, 100, 0, False)
    assert _try(outcomes, 3, t=1)[:2] == (30.0, "timeout")


# ---- the columns ----------------------------------------------------------------------------------
def test_request_columns_become_the_frame_the_summaries_read_with_names_restored() -> None:
    columns = RequestColumns(3, ["openai:gpt-4.1", "anthropic:claude-3-haiku"])
    columns.write(2, status=STATUSES.index("ok"), entry=1, latency_ms=900.0, ttft_ms=math.nan, cost_usd=0.002,
                  unpriced=False, n_attempts=2, fallback_depth=1, n_skipped=0, input_tokens=100, output_tokens=300)
    columns.write(0, status=STATUSES.index("failed"), entry=-1, latency_ms=60_000.0, ttft_ms=math.nan,
                  cost_usd=0.0, unpriced=False, n_attempts=3, fallback_depth=3, n_skipped=1, input_tokens=100,
                  output_tokens=0, reason="degraded")
    frame = columns.frame(np.array([0.0, 1.0, 2.0]), np.array([1, 0, 0]), np.array([0, 1, 1]), ("free", "pro"),
                          ("idea", "story"))
    assert frame["i"].tolist() == [0, 2]   # request 1 was never written
    assert frame["tier"].tolist() == ["pro", "free"] and frame["task"].tolist() == ["idea", "story"]
    assert frame["status"].tolist() == ["failed", "ok"]
    assert frame["provider"].isna().tolist() == [True, False] and frame["provider"][1] == "anthropic"
    assert frame["model"][1] == "claude-3-haiku"
    assert frame["routing_reason"][0] == "degraded" and pd.isna(frame["routing_reason"][1])
    assert frame["n_attempts"].tolist() == [3, 2] and frame["cost_usd"].tolist() == [0.0, 0.002]


def test_attempt_columns_keep_each_attempt_with_its_error_class_and_unknown_cost_as_nan() -> None:
    columns = AttemptColumns(["openai:gpt-4.1", "gemini:flash"])
    columns.append(4, 10.0, 1, STATUSES.index("error"), "rate_limited", 50.0, math.nan)
    columns.append(4, 11.5, 0, STATUSES.index("ok"), None, 700.0, 0.001)
    frame = columns.frame(np.array([0, 0, 0, 0, 1]), ("free", "pro"))
    assert frame[["provider", "model", "status"]].values.tolist() == [["gemini", "flash", "error"],
                                                                      ["openai", "gpt-4.1", "ok"]]
    assert frame["error_type"][0] == "rate_limited" and pd.isna(frame["error_type"][1])
    assert frame["tier"].tolist() == ["pro", "pro"]
    assert math.isnan(frame["cost_usd"][0]) and frame["cost_usd"][1] == 0.001


# ---- a streamed try -------------------------------------------------------------------------------
def _live_stream(latency_s: float, cut: bool, words: int, error: str | None = None) -> tuple[float, str | None,
                                                                                            float | None]:
    """The live simulator's stream in virtual time: (when it ended, how, when its first text came)."""
    from taelio_core.errors import ProviderError
    from taelio_core.providers.simulated import CURRENT_REQUEST, RequestSpec, SimulatedProvider
    from taelio_core.routing.generation import ChatRequest, GenerationSettings, TextDelta
    from taelio_core.sandbox.loop import VirtualTimeLoop

    def script(i: int, provider: str, model: str, tried: int) -> ScriptedTry:
        return ScriptedTry(error=error, latency_s=latency_s, cut=cut)

    provider = SimulatedProvider(name="p", profile=ProviderModel(provider="p", model="m", ttft_ms=150.0),
                                 script=script)
    request = ChatRequest(system="s", user="u", settings=GenerationSettings(max_tokens=4000, timeout_s=30.0))
    loop = VirtualTimeLoop()
    seen: dict[str, float | None] = {"first": None}

    async def run() -> tuple[float, str | None]:
        CURRENT_REQUEST.set(RequestSpec(0, 10, int(words / 0.75) + 1, text=True))
        try:
            async for event in provider.stream("m", request):
                if isinstance(event, TextDelta) and seen["first"] is None:
                    seen["first"] = loop.time()
        except ProviderError as e:
            return loop.time(), "truncated" if seen["first"] is not None else e.error_type
        return loop.time(), None

    end, how = loop.run_until_complete(run())
    loop.close()
    return end, how, seen["first"]


@pytest.mark.parametrize("latency_s,cut,error", [(2.0, True, None), (2.0, False, None), (0.1, False, None),
                                                 (1.2, True, None), (0.5, False, "unavailable")])
def test_a_streamed_try_ends_when_and_how_the_live_simulators_stream_ends(latency_s, cut, error) -> None:
    from taelio_core.providers.simulated import simulated_text
    from taelio_core.routing.generation import ChatRequest

    words = 120
    pieces = len(simulated_text(ChatRequest(system="s", user="u"), provider="p", model="m",
                                words=max(12, int((int(words / 0.75) + 1) * 0.75))).split(" "))
    outcomes = ProviderOutcomes(_models(ttft_ms=150.0), ["p:m"], seed=0)
    end, how, first = outcomes.stream(0, latency_s, error, cut, pieces, 30.0, 15.0)
    live_end, live_how, live_first = _live_stream(latency_s, cut, words, error)
    assert (how, first) == (live_how, live_first)
    assert end == pytest.approx(live_end, abs=1e-9)


def test_a_stream_without_a_first_token_in_time_is_a_timeout_and_one_cut_by_its_limit_is_truncated() -> None:
    outcomes = ProviderOutcomes(_models(ttft_ms=150.0), ["p:m"], seed=0)
    assert outcomes.stream(0, 0.1, "timeout", False, 10, 5.0, 1.0) == (0.1, "timeout", None)
    assert outcomes.stream(0, 3.0, "timeout", False, 10, 5.0, 1.0) == (1.0, "timeout", None)
    assert outcomes.stream(0, 9.0, None, False, 40, 5.0, 1.0) == (5.0, "truncated", 0.15)
