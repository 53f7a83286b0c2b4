"""How fast the sandbox simulates: the asyncio engine over the live router beside the discrete-event engine.

    PYTHONPATH=. python benchmarks/bench_sandbox.py [--requests 100000] [--week 1000000] [--profile]

Measures, side by side in one run (each rate per wall second and per CPU
second of the simulating process: on a shared machine the second is the
steadier figure):

* ``router``: one policy over N synthetic requests through the live async
  router on the virtual-time asyncio loop (the engine the page runs today);
* ``des_floor``: the discrete-event engine (``taelio_core.sandbox.engine``)
  with ``FloorCore``, a core that decides nothing: what the event queue, the
  pre-drawn luck, the try outcomes and the columns cost per request;
* ``des_floor_seeds``: several seeds of that, one worker process per core
  (``taelio_core.sandbox.processes``), results sent back to the parent;
* ``des_core``: the discrete-event engine over the decision core (what the
  page and ``taelio simulate`` run): one seed on one core, several seeds on
  every core, and the week's A/B through ``simulate`` (comparison table
  included), the three figures issue 15 sets goals for.

``--profile`` prints the router run's top functions by own time.
"""
from __future__ import annotations

import argparse
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
from taelio_core.config.policy_parser import load_policy  # noqa: E402
from taelio_core.sandbox.models import ModelSet, models_from_policy  # noqa: E402
from taelio_core.sandbox.arm import run_events  # noqa: E402
from taelio_core.sandbox.processes import run_in_processes  # noqa: E402
from taelio_core.sandbox.replay import run_policy  # noqa: E402
from taelio_core.sandbox.simulation import simulate  # noqa: E402
from taelio_core.sandbox.traffic import Traffic, synthetic_traffic  # noqa: E402

from benchmarks.sandbox_floor import floor_job  # noqa: E402


def calls_per_request(policy: RoutingPolicy, models: ModelSet, n: int = 2000) -> float:
    """Python function calls per simulated request, counted by cProfile: the work, whatever the machine's load."""
    traffic = synthetic_traffic(requests=n, tiers=policy.tiers, tasks=policy.tasks, seed=2)
    profiler = cProfile.Profile()
    profiler.enable()
    run_policy(policy, traffic, models, seed=2)
    profiler.disable()
    return round(pstats.Stats(profiler).total_calls / n, 1)


def des_floor(traffic: Traffic, models: ModelSet, result: dict[str, object]) -> None:
    """The discrete-event engine with a core that decides nothing: one seed here, then seeds in processes."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    run = floor_job(None, traffic, models, 1)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    result["des_floor_per_s"] = round(run.finished / wall, 0)
    result["des_floor_per_cpu_s"] = round(run.finished / cpu, 0)
    cores = os.cpu_count() or 1
    seeds = 2 * cores
    t0 = time.perf_counter()
    runs = run_in_processes(floor_job, [(traffic, models, s) for s in range(seeds)], workers=cores)
    wall = time.perf_counter() - t0
    result["des_floor_seeds"], result["des_floor_seed_workers"] = seeds, cores
    result["des_floor_seeds_per_s"] = round(sum(r.finished for r in runs) / wall, 0)
    result["des_floor_seeds_cpu_per_request_us"] = round(sum(r.cpu_s for r in runs) / sum(r.finished for r in runs)
                                                         * 1e6, 2)


def _events_job(report: object, policy_text: str, source: str, traffic: Traffic, models: ModelSet,
                seed: int) -> tuple[int, float]:
    """One seed of the discrete-event engine over the decision core, in a worker: (requests, CPU seconds)."""
    from taelio_core.config.policy_parser import parse_policy
    cpu0 = time.process_time()
    run = run_events(parse_policy(policy_text, source=source), traffic, models, seed=seed)
    return len(run.requests), time.process_time() - cpu0


def des_core(policy: RoutingPolicy, policy_b: RoutingPolicy, traffic: Traffic, models: ModelSet,
             week: int, result: dict[str, object]) -> None:
    """The discrete-event engine over the decision core: one seed here; seeds on every core; the week's A/B."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    run = run_events(policy, traffic, models, seed=1)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    result["des_core_engine"] = run.meta.get("engine")
    result["des_core_per_s"] = round(len(traffic) / wall, 0)
    result["des_core_per_cpu_s"] = round(len(traffic) / cpu, 0)
    cores = os.cpu_count() or 1
    seeds = 2 * cores
    t0 = time.perf_counter()
    done = run_in_processes(_events_job, [(policy.text, policy.source, traffic, models, s) for s in range(seeds)],
                            workers=cores)
    wall = time.perf_counter() - t0
    result["des_core_seeds"], result["des_core_seed_workers"] = seeds, cores
    result["des_core_seeds_per_s"] = round(sum(n for n, _ in done) / wall, 0)
    result["des_core_seeds_cpu_per_request_us"] = round(sum(c for _, c in done) / sum(n for n, _ in done) * 1e6, 2)
    week_traffic = synthetic_traffic(requests=week, tiers=policy.tiers, tasks=policy.tasks, seed=3,
                                     duration_s=7 * 86_400.0, curve="daily")
    t0, cpu0 = time.perf_counter(), time.process_time()
    report = simulate(policy, week_traffic, models, policy_b=policy_b, workers=2)
    table = report.comparison()
    result["des_core_week_ab_wall_s"] = round(time.perf_counter() - t0, 1)
    # Where the A/B's time goes: the simulating workers' CPU, and this process's (columns to DataFrames,
    # the comparison table). Wall far above (workers' CPU / 2 + this) is the machine's load, not the work.
    workers_cpu = sum(float(r.meta.get("cpu_s", 0.0)) for r in report.a_runs + report.b_runs)
    result["des_core_week_ab_workers_cpu_s"] = round(workers_cpu, 1)
    result["des_core_week_ab_parent_cpu_s"] = round(time.process_time() - cpu0, 1)
    result["des_core_week_cpu_per_request_us"] = round(workers_cpu / (2 * week) * 1e6, 2)
    result["des_core_week_requests"] = week
    result["load_after"] = [round(x, 1) for x in os.getloadavg()]
    result["des_core_week_ab_rows"] = 0 if table is None else len(table)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--router-requests", type=int, default=20_000,
                        help="requests for the asyncio engine (it is the slow one)")
    parser.add_argument("--week", type=int, default=1_000_000, help="requests in the simulated week's A/B")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # budget alerts from the simulated spend
    a, b = load_policy("current"), load_policy("seed")
    traffic = synthetic_traffic(requests=args.requests, tiers=a.tiers, tasks=a.tasks, seed=1)
    models = models_from_policy(a, b)
    result: dict[str, object] = {"requests": args.requests, "router_requests": args.router_requests}
    few = traffic.head(args.router_requests)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
    cpu0 = time.process_time()
    run = run_policy(a, few, models, seed=1)
    cpu = time.process_time() - cpu0
    if args.profile:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    result["router_per_s"] = round(run.rate, 0)
    result["router_per_cpu_s"] = round(len(few) / cpu, 0)
    result["python_calls_per_request"] = calls_per_request(a, models)
    des_floor(traffic, models, result)
    des_core(a, b, traffic, models, args.week, result)
    print(json.dumps(result, indent=2))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_sandbox.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
