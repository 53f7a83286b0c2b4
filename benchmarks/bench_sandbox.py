"""How fast the sandbox simulates: requests per second through the real router, and where the time goes.

    PYTHONPATH=. python benchmarks/bench_sandbox.py [--requests 100000] [--profile]

Measures, side by side in one process:

* ``floor``: the same engine (virtual loop, arrivals, one task and one
  ``asyncio.sleep`` per request) with a stub in place of the router: what
  asyncio itself costs per simulated request on this machine;
* ``router``: one policy over N synthetic requests through the real router;
* ``compare``: an A vs B comparison on the same N requests (what the page and
  ``taelio simulate --compare`` run), its wall time, once in this process
  (``workers=1``) and once with one worker process per core (the arms run
  side by side; what the page does on an idle machine).

Rates are given per wall second and per CPU second of the simulating
process: on a shared machine the second is the steadier figure.

The ratio router/floor says how much of the time is routing rather than the
event loop; ``--profile`` prints the top functions by own time.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from taelio_core.config.policy import RoutingPolicy  # noqa: E402

from taelio_core.config.policy_parser import load_policy
from taelio_core.sandbox.loop import VirtualTimeLoop  # noqa: E402
from taelio_core.sandbox.models import ModelSet, models_from_policy  # noqa: E402
from taelio_core.sandbox.replay import run_policy  # noqa: E402
from taelio_core.sandbox.simulation import simulate  # noqa: E402
from taelio_core.sandbox.traffic import synthetic_traffic  # noqa: E402


def floor_rate(arrivals: list[float]) -> float:
    """Requests/s with no router: each request is a task that sleeps a simulated latency."""
    loop = VirtualTimeLoop()
    n = len(arrivals)
    done = loop.create_future()
    state = {"left": n}

    async def one() -> None:
        await asyncio.sleep(0.8)
        state["left"] -= 1
        if not state["left"]:
            done.set_result(None)

    def arrive(i: int) -> None:
        loop.create_task(one())
        if i + 1 < n:
            loop.call_at(arrivals[i + 1], arrive, i + 1)

    t0 = time.perf_counter()
    loop.call_at(arrivals[0], arrive, 0)
    loop.run_until_complete(done)
    loop.close()
    return n / (time.perf_counter() - t0)


def calls_per_request(policy: RoutingPolicy, models: ModelSet, n: int = 2000) -> float:
    """Python function calls per simulated request, counted by cProfile: the work, whatever the machine's load."""
    traffic = synthetic_traffic(requests=n, tiers=policy.tiers, tasks=policy.tasks, seed=2)
    profiler = cProfile.Profile()
    profiler.enable()
    run_policy(policy, traffic, models, seed=2)
    profiler.disable()
    return round(pstats.Stats(profiler).total_calls / n, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--skip-compare", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # budget alerts from the simulated spend
    a, b = load_policy("current"), load_policy("seed")
    traffic = synthetic_traffic(requests=args.requests, tiers=a.tiers, tasks=a.tasks, seed=1)
    models = models_from_policy(a, b)
    result: dict[str, object] = {"requests": args.requests}
    result["floor_per_s"] = round(floor_rate(traffic.arrival_s.tolist()), 0)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
    cpu0 = time.process_time()
    run = run_policy(a, traffic, models, seed=1)
    cpu = time.process_time() - cpu0
    if args.profile:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    result["router_per_s"] = round(run.rate, 0)
    result["router_per_cpu_s"] = round(args.requests / cpu, 0)
    result["router_over_floor"] = round(result["floor_per_s"] / run.rate, 2)  # type: ignore[operator]
    result["python_calls_per_request"] = calls_per_request(a, models)
    if not args.skip_compare:
        cores = os.cpu_count() or 1
        for label, workers in (("compare", 1), ("compare_parallel", cores)):
            t0 = time.perf_counter()
            report = simulate(a, traffic, models, policy_b=b, workers=workers)
            result[f"{label}_wall_s"] = round(time.perf_counter() - t0, 1)
            result[f"{label}_per_s"] = round(report.rate, 0)
        result["compare_workers"] = cores
    print(json.dumps(result, indent=2))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_sandbox.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
