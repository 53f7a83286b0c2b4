"""What hedging does to tail latency when one provider is sometimes slow.

Two simulated providers on a real event loop (real ``asyncio.sleep``): the
first entry usually answers in ~20 ms but 6% of its calls take ~400 ms (a
stuck replica, a cold start); the second answers in ~35 ms. The same
seeded workload runs through the router twice, side by side in one run:
without hedging, and with ``[hedging.pro] after_ms = "p95"`` (learnt from
recent first-token times; 60 ms until 20 samples exist). Reported: p50,
p95, p99 of request latency, and how many extra (hedge) calls it cost.

    /work/main/.venv/bin/python -m benchmarks.bench_hedging [--requests 600] [--concurrency 16]
"""
from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from taelio_core.config.policy_parser import parse_policy
from taelio_core.guards.resilience import percentile
from taelio_core.providers.function import FunctionProvider
from taelio_core.routing.clock import SystemClock
from taelio_core.routing.generation import ChatRequest, Completion, Usage
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Router
from tests.policies import policy_text

POLICY = policy_text(name="bench", providers={"fast_usually": "simulated", "steady": "simulated"},
                     defaults={"timeout_s": 5}, breakers={"enabled": False},
                     tasks={"idea": {"user": "{prompt}"}}, routes={"pro": {"idea": ["fast_usually:m1", "steady:m2"]}})
HEDGE = '[hedging.pro]\nafter_ms = "p95"\nmin_samples = 20\ndefault_ms = 60\n'


def provider(name: str, seed: int, median_s: float, slow_share: float, slow_s: float) -> FunctionProvider:
    rng = random.Random(seed)

    async def fn(model: str, request: ChatRequest) -> Completion:
        delay = slow_s if rng.random() < slow_share else median_s * rng.lognormvariate(0, 0.25)
        await asyncio.sleep(delay)
        return Completion(text=f"{name} answered", usage=Usage(input_tokens=20, output_tokens=40),
                          finish_reason="stop")

    return FunctionProvider(name, fn)


async def workload(hedging: bool, requests: int, concurrency: int, seed: int) -> tuple[list[float], int]:
    policy = parse_policy(POLICY + ("\n" + HEDGE if hedging else ""), source="bench.toml")
    providers = {"fast_usually": provider("fast_usually", seed, 0.020, 0.06, 0.400),
                 "steady": provider("steady", seed + 1, 0.035, 0.0, 0.0)}
    router = Router(policy, providers, clock=SystemClock(), rng=random.Random(seed))
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    extra_calls = 0

    async def one() -> None:
        nonlocal extra_calls
        async with gate:
            t0 = time.perf_counter()
            result = await router.agenerate("pro", "idea", Inputs(prompt="A lighthouse"))
            latencies.append((time.perf_counter() - t0) * 1000.0)
            extra_calls += sum(1 for a in result.attempts if a.hedge)

    await asyncio.gather(*(one() for _ in range(requests)))
    return latencies, extra_calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rows = []
    for hedging in (False, True):
        latencies, extra = asyncio.run(workload(hedging, args.requests, args.concurrency, args.seed))
        rows.append(("hedging on (p95)" if hedging else "no hedging", percentile(latencies, 50),
                     percentile(latencies, 95), percentile(latencies, 99), statistics.mean(latencies), extra))
    print(f"{args.requests} requests, concurrency {args.concurrency}; first entry slow (400 ms) on 6% of calls")
    print(f"{'':18} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'hedge calls':>12}")
    for name, p50, p95, p99, mean, extra in rows:
        print(f"{name:18} {p50:8.1f} {p95:8.1f} {p99:8.1f} {mean:8.1f} {extra:>12}")
    base, hedged = rows
    print(f"p99 with hedging / without: {hedged[3] / base[3]:.2f}; "
          f"extra calls: {hedged[5] / args.requests:.1%} of requests")


if __name__ == "__main__":
    main()
