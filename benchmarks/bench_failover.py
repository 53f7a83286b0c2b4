"""Failover: the latency a broken first entry adds per request, before and after a breaker opens, against LiteLLM.

Two-entry chains whose second entry is a healthy local fake OpenAI server:

* ``down``: the first entry's base URL is a loopback port nothing listens on (connection refused);
* ``slow``: the first entry is a fake server that answers nothing within the 1 s attempt timeout.

Contenders, interleaved request by request: a bare ``openai`` call straight to
the healthy server (the baseline), Taelio's ``Router`` (circuit breakers from
the policy when the resilience code is present; retries off so the figure is
the fallback itself), and LiteLLM's ``Router`` with the same two deployments,
``fallbacks`` and the same timeout. Added latency = contender minus bare, per
request, split into requests that still tried the broken entry and requests
after Taelio's breaker opened (the entry skipped).

    PYTHONPATH=. python benchmarks/bench_failover.py [--quick]
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from benchmarks.bench_router import KEY, MODEL, SYSTEM, bare_call, messages  # noqa: E402
from benchmarks.harness import Figure, PartContext, fake_server, percentile, run_standalone  # noqa: E402

# Long enough that the healthy server answers in time even on a loaded machine (its p99 reached ~0.5 s).
TIMEOUT_S = 1.0
POLICY = """
name = "bench-failover"
[defaults]
timeout_s = {timeout}
max_tokens = 400
temperature = 0.8
[providers.first]
kind = "openai"
base_url = "{first}"
[providers.second]
kind = "openai"
base_url = "{second}"
[tasks.idea]
system = "{system}"
user = "Premise: {{prompt}}\\nGenre: {{genre}}\\nTone: {{tone}}\\nGive me one story idea."
[tiers.pro]
[routes.pro]
idea = ["first:{model}", "second:{model}"]
"""
RESILIENCE = """
[resilience]
max_retries = 0
[breakers]
consecutive_failures = 5
cooldown_s = 600
"""


def has_breakers() -> bool:
    return importlib.util.find_spec("taelio_core.guards.breakers") is not None


def closed_url() -> str:
    from tests.fakeserver import closed_port

    return f"http://127.0.0.1:{closed_port()}/v1"


def make_slow(url: str) -> None:
    body = json.dumps({"provider": "openai", "fault": {"kind": "timeout", "delay_s": 3}, "times": None}).encode()
    request = urllib.request.Request(url + "/_fake/fail", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def taelio_router(first: str, second: str):  # noqa: ANN201
    from taelio_core.config.policy_parser import parse_policy
    from taelio_core.providers.openai import OpenAIProvider
    from taelio_core.routing.router import Router

    text = POLICY.format(timeout=TIMEOUT_S, first=first, second=second, system=SYSTEM, model=MODEL)
    if has_breakers():
        text += RESILIENCE
    policy = parse_policy(text)
    providers = {"first": OpenAIProvider(name="first", api_key=KEY, base_url=first),
                 "second": OpenAIProvider(name="second", api_key=KEY, base_url=second)}
    return Router(policy, providers), providers


def litellm_router(first: str, second: str):  # noqa: ANN201
    import litellm

    deployment = {"model": f"openai/{MODEL}", "api_key": KEY, "timeout": TIMEOUT_S}
    return litellm.Router(
        model_list=[{"model_name": "primary", "litellm_params": {**deployment, "api_base": first}},
                    {"model_name": "backup", "litellm_params": {**deployment, "api_base": second}}],
        fallbacks=[{"primary": ["backup"]}], num_retries=0, timeout=TIMEOUT_S)


async def scenario(name: str, first: str, second: str, requests: int, ctx: PartContext) -> list[Figure]:
    from taelio_core.errors import AllProvidersFailed
    from taelio_core.routing.inputs import Inputs

    bare, bare_close = bare_call(second)
    router, providers = taelio_router(first, second)
    try:
        peer = litellm_router(first, second)
    except ImportError:
        peer = None
    msgs = messages()
    inputs = Inputs(prompt="A lighthouse keeper finds a message.")
    base: list[float] = []
    tried: list[float] = []      # Taelio requests that still attempted the broken entry
    skipped: list[float] = []    # ... and those where it was skipped (breaker open)
    litellm_ms: list[float] = []
    failures = {"taelio": 0, "litellm": 0}
    for _ in range(3):           # warm the healthy path of each contender
        await bare()
        if peer is not None:
            await peer.acompletion(model="backup", messages=msgs)
    deadline = time.monotonic() + ctx.left() / 2
    for i in range(requests):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        await bare()
        base.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        try:
            result = await router.agenerate("pro", "idea", inputs)
        except AllProvidersFailed:
            failures["taelio"] += 1
            continue
        elapsed = (time.perf_counter() - t0) * 1000
        (tried if any(a.provider == "first" for a in result.attempts) else skipped).append(elapsed)
        if peer is not None:
            t0 = time.perf_counter()
            try:
                await peer.acompletion(model="primary", messages=msgs, max_completion_tokens=400, temperature=0.8)
            except Exception:  # noqa: BLE001 - LiteLLM's own error tree; a failed request is counted, not timed
                failures["litellm"] += 1
                continue
            litellm_ms.append((time.perf_counter() - t0) * 1000)
    await bare_close()
    for provider in providers.values():
        await provider.aclose()
    b50 = percentile(base, 50)
    peer50 = percentile(litellm_ms, 50) - b50 if litellm_ms else None
    ctx.raw[name] = {"bare_p50_ms": b50, "taelio_tried_ms": tried, "taelio_skipped_ms": skipped,
                     "litellm_ms": litellm_ms, "breakers": has_breakers(),
                     "failed_requests": failures}
    peer_text = f"LiteLLM +{peer50:.1f} ms (p50, all requests)" if peer50 is not None else "LiteLLM not run"
    out = [Figure(part="failover", name=f"{name}: added p50, entry still tried ({len(tried)} req)",
                  value=percentile(tried, 50) - b50 if tried else None, unit="ms", baseline=peer_text,
                  note=f"bare p50 {b50:.2f} ms; requests where both entries failed: {failures}")]
    if has_breakers():
        value = percentile(skipped, 50) - b50 if skipped else None
        out.append(Figure(part="failover", name=f"{name}: added p50, breaker open ({len(skipped)} req)",
                          value=value, unit="ms", baseline=peer_text, target="<= 1 ms",
                          met=None if value is None else value <= 1.0))
    else:
        out.append(Figure(part="failover", name=f"{name}: added p50, breaker open", value=None, unit="ms",
                          baseline=peer_text, target="<= 1 ms",
                          note="no circuit breakers in this checkout (taelio_core.guards.breakers missing)"))
    return out


async def bench(ctx: PartContext) -> list[Figure]:
    requests = 12 if ctx.quick else 30
    figures: list[Figure] = []
    with fake_server() as good, fake_server() as slow:
        figures += await scenario("down (connection refused)", closed_url(), good + "/v1", requests, ctx)
        make_slow(slow)
        figures += await scenario(f"slow (no answer in {TIMEOUT_S:g} s)", slow + "/v1", good + "/v1",
                                  requests, ctx)
    return figures


def run(ctx: PartContext) -> list[Figure]:
    return asyncio.run(bench(ctx))


def main() -> None:
    run_standalone(run, __doc__.splitlines()[0], seconds=120.0)


if __name__ == "__main__":
    main()
