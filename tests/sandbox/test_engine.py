"""The engine runs the real router: same decisions as live for the same outcomes; analytic rates hold."""
from __future__ import annotations

import asyncio
import hashlib
import math
import random

import numpy as np

from taelio_core.config.pricing import Pricer
from taelio_core.errors import AllProvidersFailed, ModelNotFound, ProviderUnavailable, RateLimited
from taelio_core.providers.function import FunctionProvider
from taelio_core.providers.simulated import CURRENT_REQUEST, RequestSpec
from taelio_core.providers.simulated import ScriptedTry as Outcome
from taelio_core.routing.generation import Usage
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Router
from taelio_core.sandbox.models import ModelSet, ProviderModel, models_from_policy
from taelio_core.sandbox.replay import SimulationCancelled, run_policy
from taelio_core.sandbox.traffic import synthetic_traffic
from tests.sandbox.conftest import current_policy

CLASSES = [None, None, None, "unavailable", "rate_limited", "timeout", "model_not_found"]


def script(i: int, provider: str, model: str, tried: int) -> Outcome:
    digest = hashlib.sha256(f"{i}|{provider}|{model}|{tried}".encode()).digest()
    return Outcome(error=CLASSES[digest[0] % len(CLASSES)], latency_s=0.001 + digest[1] / 10_000, retry_after_s=0.0)


def _decisions_from_attempts(attempts) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    for row in attempts.itertuples():
        error = row.error_type if isinstance(row.error_type, str) else None
        out.setdefault(int(row.i), []).append((row.provider, row.model, row.status, error))
    return out


def test_sandbox_and_live_make_identical_routing_decisions_for_the_same_outcomes() -> None:
    # Time-dependent rules (breaker windows, back-off sleeps) are off: live runs these 150 requests in
    # a second of real time, the sandbox over a virtual day. Retries stay on, with no waiting.
    policy = current_policy(timeout_s=0.05, extra="[resilience]\nbackoff_base_s = 0.0\nbackoff_max_s = 0.0\n"
                                                  "[breakers]\nenabled = false\n")
    traffic = synthetic_traffic(requests=150, tiers=policy.tiers, tasks=policy.tasks, seed=3)
    sandbox = run_policy(policy, traffic, models_from_policy(policy), seed=9, script=script)

    errors = {"unavailable": ProviderUnavailable, "rate_limited": RateLimited, "model_not_found": ModelNotFound}

    def live_fn(name: str):
        async def fn(model: str, request) -> str:
            spec = CURRENT_REQUEST.get()
            key = f"{name}:{model}"
            tried = spec.tries.get(key, 0)
            spec.tries[key] = tried + 1
            outcome = script(spec.index, name, model, tried)
            if outcome.error == "timeout":
                await asyncio.sleep(5)  # longer than the policy's 0.05 s timeout: the router times out
            if outcome.error == "rate_limited":
                raise RateLimited("scripted", provider=name, model=model, retry_after=outcome.retry_after_s)
            if outcome.error is not None:
                raise errors[outcome.error]("scripted", provider=name, model=model)
            return "a live answer"
        return fn

    results = []

    class Sink:
        def record(self, result) -> None:
            results.append((CURRENT_REQUEST.get().index, result))

    router = Router(policy, {n: FunctionProvider(n, live_fn(n)) for n in policy.providers}, sink=Sink(),
                    rng=random.Random(9))

    async def live() -> None:
        for i in range(len(traffic)):
            CURRENT_REQUEST.set(RequestSpec(i, 100, 100))
            try:
                await router.agenerate(traffic.tiers[traffic.tier_idx[i]], traffic.tasks[traffic.task_idx[i]],
                                       Inputs(prompt="p", idea="i"))
            except AllProvidersFailed:
                pass
    asyncio.run(live())

    live_decisions = {i: [(a.provider, a.model, a.status, a.error_type) for a in r.attempts] for i, r in results}
    assert _decisions_from_attempts(sandbox.attempts) == live_decisions
    live_served = {i: (r.status, r.provider, r.model) for i, r in results}
    sandbox_served = {int(r.i): (r.status, r.provider if isinstance(r.provider, str) else None,
                               r.model if isinstance(r.model, str) else None) for r in sandbox.requests.itertuples()}
    assert sandbox_served == live_served
    # The script really exercised fallbacks, timeouts and total failures.
    statuses = [s for s, _, _ in live_served.values()]
    assert "failed" in statuses and statuses.count("ok") > 100
    assert any(a[3] == "timeout" for d in live_decisions.values() for a in d)
    assert any(len({a[:2] for a in d}) < len(d) for d in live_decisions.values())  # retries of an entry


def _one_pair_traffic(policy, n: int, seed: int = 1):
    return synthetic_traffic(requests=n, tiers=policy.tiers, tasks=policy.tasks, seed=seed,
                             mix={("pro", "idea"): 1.0}, token_sigma=0.0)


def test_first_entry_failing_at_rate_p_gives_fallback_rate_p_and_the_expected_cost() -> None:
    # The analytic case: independent failures, straight to the next entry (no retry, no breaker).
    policy = current_policy(extra="[resilience]\nmax_retries = 0\n[breakers]\nenabled = false\n")
    p, n = 0.2, 4000
    first, second = policy.chain("pro", "idea")[:2]
    models = ModelSet(models={
        first.ref: ProviderModel(provider=first.provider, model=first.model, error_rates={"unavailable": p}),
        second.ref: ProviderModel(provider=second.provider, model=second.model),
    })
    traffic = _one_pair_traffic(policy, n)
    run = run_policy(policy, traffic, models, seed=4)
    req = run.requests
    assert len(req) == n and (req["status"] == "ok").all()
    sigma = math.sqrt(p * (1 - p) / n)
    fallback = float((req["fallback_depth"] > 0).mean())
    assert abs(fallback - p) < 4 * sigma

    tokens = Usage(input_tokens=int(traffic.input_tokens[0]), output_tokens=int(traffic.output_tokens[0]))
    pricer = Pricer(policy.model.pricing, {k: v.kind for k, v in policy.providers.items()})
    c1 = float(pricer.price(first.provider, first.model, tokens, traffic.start).cost_usd)
    c2 = float(pricer.price(second.provider, second.model, tokens, traffic.start).cost_usd)
    expected = n * ((1 - p) * c1 + p * c2)
    tolerance = 4 * n * abs(c2 - c1) * sigma
    assert c1 != c2
    assert abs(float(req["cost_usd"].sum()) - expected) < tolerance


def test_same_seed_reproduces_the_run_and_another_seed_does_not() -> None:
    policy = current_policy()
    traffic = synthetic_traffic(requests=800, tiers=policy.tiers, tasks=policy.tasks, seed=2)
    models = models_from_policy(policy)
    a = run_policy(policy, traffic, models, seed=5).requests
    b = run_policy(policy, traffic, models, seed=5).requests
    c = run_policy(policy, traffic, models, seed=6).requests
    cols = ["status", "provider", "model", "latency_ms", "cost_usd", "n_attempts"]
    assert a[cols].equals(b[cols])
    assert not a[cols].equals(c[cols])


def test_requests_overlap_in_virtual_time_and_a_day_of_traffic_takes_a_day() -> None:
    policy = current_policy()
    traffic = synthetic_traffic(requests=500, tiers=policy.tiers, tasks=policy.tasks, seed=2, duration_s=86_400)
    run = run_policy(policy, traffic, models_from_policy(policy), seed=1)
    assert run.virtual_s >= traffic.duration_s
    assert run.virtual_s < traffic.duration_s + 200  # the last request's chain, not another day
    ok = run.requests[run.requests["status"] == "ok"]
    assert np.median(ok["latency_ms"]) > 500  # simulated latency is measured in virtual milliseconds


def test_progress_is_reported_and_returning_false_cancels() -> None:
    policy = current_policy()
    traffic = synthetic_traffic(requests=400, tiers=policy.tiers, tasks=policy.tasks, seed=2)
    seen: list[float] = []
    run_policy(policy, traffic, models_from_policy(policy), progress=lambda s: seen.append(s))
    assert seen[-1] == 1.0 and seen == sorted(seen)

    def cancel_at_half(share: float) -> bool:
        return share < 0.5
    try:
        run_policy(policy, traffic, models_from_policy(policy), progress=cancel_at_half)
    except SimulationCancelled as e:
        assert 0 < e.done < e.total == 400
    else:
        raise AssertionError("the run was not cancelled")


def test_sample_traces_include_failed_requests_even_when_the_drawn_sample_holds_none() -> None:
    from ui.sandbox_results import sample_traces

    policy = current_policy()
    traffic = synthetic_traffic(requests=300, tiers=policy.tiers, tasks=policy.tasks, duration_s=3600, seed=0)

    def rare_failures(i: int, provider: str, model: str, tried: int) -> Outcome:
        # Every 50th request fails on every entry of its chain; the others are answered at once.
        return Outcome(error="unavailable" if i % 50 == 7 else None, latency_s=0.001, retry_after_s=0.0)

    run = run_policy(policy, traffic, models_from_policy(policy), seed=0, script=rare_failures)
    failed = set(run.requests.loc[run.requests["status"] != "ok", "i"])
    assert failed, "the script must make some requests fail"
    traced = {t["i"]: t["status"] for t in run.traces}
    assert any(traced.get(i) not in (None, "ok") for i in failed)
    shown = sample_traces(run.traces)
    assert len(shown) <= 6 and any(t["status"] != "ok" for t in shown)
