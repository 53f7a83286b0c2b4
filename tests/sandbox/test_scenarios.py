"""Scenario presets bend the provider models, and the router's response shows in the results."""
from __future__ import annotations

import math

import pytest

from taelio_core.errors import InputError
from taelio_core.sandbox.arm import run_events
from taelio_core.sandbox.replay import run_policy
from taelio_core.sandbox.models import (
    SCENARIOS,
    ModelSet,
    ProviderModel,
    apply_scenario,
    models_from_policy,
    outage_start,
    parse_scenario,
)
from taelio_core.sandbox.results import provider_summary, tier_summary, time_series
from taelio_core.sandbox.traffic import synthetic_traffic
from tests.sandbox.conftest import current_policy

QUIET = {"error_rates": {}}
# Both engines must show each scenario: the discrete-event one over the decision core, the asyncio one over
# the live router.
ENGINES = pytest.mark.parametrize("run_policy", [run_events, run_policy], ids=["events", "asyncio"])


def quiet_models(policy) -> ModelSet:
    """Providers that never fail on their own, so only the scenario acts."""
    base = models_from_policy(policy)
    return ModelSet(models={ref: ProviderModel(provider=m.provider, model=m.model, latency_ms=m.latency_ms)
                            for ref, m in base.models.items()})


@ENGINES
def test_openai_down_for_30_minutes_opens_its_breaker_and_recovery_closes_it(run_policy) -> None:
    policy = current_policy()
    traffic = synthetic_traffic(requests=6000, tiers=policy.tiers, tasks=policy.tasks, seed=1, duration_s=3 * 3600)
    models = apply_scenario(quiet_models(policy), parse_scenario("openai-down-30m"),
                            duration_s=traffic.duration_s, policies=[policy])
    run = run_policy(policy, traffic, models, seed=1)
    start = outage_start(traffic.duration_s)
    req = run.requests
    during = req[(req["arrival_s"] >= start + 60) & (req["arrival_s"] < start + 1740)]
    after = req[req["arrival_s"] >= start + 1860]
    assert (during["provider"] == "openai").sum() == 0
    assert (after["provider"] == "openai").sum() > 0.2 * len(after)
    assert (during["fallback_depth"].gt(0) | during["n_skipped"].gt(0)).mean() > 0.2
    # The breaker opened: most requests that would try OpenAI during the outage skip it instead.
    skipped = int(during["n_skipped"].gt(0).sum())
    tried_openai = run.attempts[(run.attempts["provider"] == "openai")
                                & run.attempts["t_s"].between(start + 60, start + 1740)]
    assert skipped > 2 * len(tried_openai) > 0
    assert (req["status"] == "ok").all()  # the fallbacks caught every request
    att = run.attempts
    failed = att[(att["provider"] == "openai") & (att["status"] == "error")]
    assert set(failed["error_type"]) == {"unavailable"}
    assert failed["t_s"].min() >= start and failed["t_s"].max() < start + 1800
    series = time_series(run, buckets=6)  # 30-minute buckets: the second holds the outage
    openai = series[series["provider"] == "openai"].set_index("bucket_s")["served"]
    assert openai.get(1800.0 * 2, 0) < 0.2 * openai.get(0.0)


@ENGINES
def test_anthropic_limited_to_50_rpm_answers_429_with_retry_after_beyond_it(run_policy) -> None:
    policy = current_policy()
    traffic = synthetic_traffic(requests=3000, tiers=["pro"], tasks=["story"], seed=1, duration_s=600,
                                mix={("pro", "story"): 1.0})  # 300 rpm, anthropic first
    models = apply_scenario(quiet_models(policy), parse_scenario("anthropic-rate-limited-50rpm"),
                            duration_s=traffic.duration_s, policies=[policy])
    run = run_policy(policy, traffic, models, seed=1)
    att = run.attempts
    anthropic = att[att["provider"] == "anthropic"]
    served = anthropic[anthropic["status"] == "ok"]
    # A full bucket of 50 at the start, then 50 per minute.
    assert 50 * 9 <= len(served) <= 50 + 50 * 10 + 1
    assert set(anthropic.loc[anthropic["status"] == "error", "error_type"]) == {"rate_limited"}
    assert (run.requests["status"] == "ok").all()


@ENGINES
def test_gemini_p95_x4_keeps_the_median_and_quadruples_the_p95(run_policy) -> None:
    policy = current_policy()
    base = quiet_models(policy)
    slowed = apply_scenario(base, parse_scenario("gemini-p95-x4"), duration_s=1, policies=[policy])
    before, after = base.models["gemini:gemini-2.5-flash"], slowed.models["gemini:gemini-2.5-flash"]
    assert after.latency_ms == before.latency_ms
    assert math.isclose(after.p95_ms / after.latency_ms, 4 * before.p95_ms / before.latency_ms)
    traffic = synthetic_traffic(requests=4000, tiers=["free"], tasks=["idea"], seed=2, mix={("free", "idea"): 1})
    a = provider_summary(run_policy(policy, traffic, base, seed=1)).set_index("model")
    b = provider_summary(run_policy(policy, traffic, slowed, seed=1)).set_index("model")
    ratio = b.at["gemini-2.5-flash", "p95_ms"] / a.at["gemini-2.5-flash", "p95_ms"]
    assert 3.0 < ratio < 5.0
    assert 0.9 < b.at["gemini-2.5-flash", "p50_ms"] / a.at["gemini-2.5-flash", "p50_ms"] < 1.1


@ENGINES
def test_a_retired_model_answers_404_and_its_chain_falls_back(run_policy) -> None:
    policy = current_policy()
    scenario = parse_scenario("retired:openai:gpt-4.1")
    models = apply_scenario(quiet_models(policy), scenario, duration_s=1, policies=[policy])
    traffic = synthetic_traffic(requests=500, tiers=["pro"], tasks=["idea"], seed=2, mix={("pro", "idea"): 1})
    run = run_policy(policy, traffic, models, seed=1)
    att = run.attempts
    retired = att[att["model"] == "gpt-4.1"]
    # 404s until the router marks the entry unhealthy; then it is skipped, not called.
    assert 0 < len(retired) < 500 and set(retired["error_type"]) == {"model_not_found"}
    assert (run.requests["n_skipped"] > 0).sum() + len(retired) >= 500
    summary = tier_summary(run, policy, traffic.duration_s).set_index("tier")
    assert summary.at["pro", "availability"] == 1.0 and summary.at["pro", "fallback_rate"] == 1.0
    assert SCENARIOS["model-retired"].kind == "retired"


def test_unknown_scenarios_and_providers_are_named() -> None:
    with pytest.raises(InputError, match="unknown scenario 'openai-down'"):
        parse_scenario("openai-down")
    with pytest.raises(InputError, match="must be a number, not 'soon'"):
        parse_scenario("down:openai:soon")
    with pytest.raises(InputError, match="names provider 'mistral'"):
        apply_scenario(quiet_models(current_policy()), parse_scenario("rpm:mistral:5"), duration_s=1,
                       policies=[current_policy()])
    assert parse_scenario("none") is None
