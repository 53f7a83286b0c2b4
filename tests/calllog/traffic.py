"""Shared test traffic: a router over function-driven providers with mixed faults, and a child-process entry point.

Run as a script, it logs requests into a DuckDB file and prints each request id
on stdout once ``record()`` has accepted it (the router records before it
returns), so a parent test knows exactly what was acknowledged.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from taelio_core.errors import (  # noqa: E402
    AuthFailed,
    BadResponse,
    ContentBlocked,
    ModelNotFound,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from taelio_core.config.policy_parser import load_policy  # noqa: E402
from taelio_core.providers.function import FunctionProvider  # noqa: E402
from taelio_core.routing.generation import ChatRequest, Completion, Usage  # noqa: E402
from taelio_core.routing.router import CallSink, Router  # noqa: E402

FAULTS = [
    (RateLimited, 429), (ProviderUnavailable, 503), (ProviderTimeout, None), (AuthFailed, 401),
    (ModelNotFound, 404), (BadResponse, 200), (ContentBlocked, 200),
]


def faulty_router(sink: CallSink | None, *, fault_rate: float = 0.2, seed: int = 0, source: str = "test") -> Router:
    """The seed policy over function providers that fail ``fault_rate`` of calls, cycling through fault classes."""
    policy = load_policy("seed")
    rng = random.Random(seed)

    def make(name: str) -> FunctionProvider:
        async def answer(model: str, request: ChatRequest) -> Completion:
            await asyncio.sleep(0)
            if rng.random() < fault_rate:
                cls, status = rng.choice(FAULTS)
                extra = {"retry_after": 0.0} if cls is RateLimited else {}
                raise cls(f"injected {cls.__name__}", provider=name, model=model, http_status=status, **extra)
            return Completion(text=f"answer from {name}:{model}", usage=Usage(input_tokens=20, output_tokens=40),
                              finish_reason="stop", response_model=model)
        return FunctionProvider(name, answer)

    providers = {name: make(name) for name in policy.providers}
    return Router(policy, providers, sink=sink, source=source)


def arrow_batch(results: list, prefix: str) -> tuple:
    """``results`` as the log's (requests, attempts) Arrow tables, under fresh ids ``<prefix>-<i>``."""
    from dataclasses import replace

    from taelio_core.calllog.arrow import ATTEMPT_SCHEMA, REQUEST_SCHEMA, rows_to_table
    from taelio_core.calllog.rows import encode

    requests, attempts = [], []
    for i, result in enumerate(results):
        request, rows = encode(replace(result, request_id=f"{prefix}-{i}"))
        requests.append(request)
        attempts.extend(rows)
    return rows_to_table(requests, REQUEST_SCHEMA, store_text=True), rows_to_table(attempts, ATTEMPT_SCHEMA)


def finished_results(n: int, *, seed: int = 0, fault_rate: float = 0.2) -> list:
    """``n`` finished requests (ok or failed, with their attempts) from ``faulty_router``, cycling tiers and tasks."""
    from taelio_core.errors import AllProvidersFailed
    from taelio_core.routing.inputs import Inputs

    router = faulty_router(None, fault_rate=fault_rate, seed=seed)
    tiers, tasks = router.policy.tiers, router.policy.tasks
    out = []
    for i in range(n):
        try:
            out.append(router.generate(tiers[i % len(tiers)], tasks[i % len(tasks)],
                                       Inputs(prompt=f"A premise number {i} about a lighthouse")))
        except AllProvidersFailed as e:
            out.append(e.result)
    return out


def start_child(db: Path | str, *args: str) -> subprocess.Popen[str]:
    """Run this file as a logging child process on ``db``; return once it says it is ready."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(db), *args], stdout=subprocess.PIPE,
                             text=True, env=env)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def main() -> None:
    from taelio_core.calllog import DuckDBCallLog, PostgresCallLog
    from taelio_core.calllog.base import CallLog
    from taelio_core.errors import AllProvidersFailed
    from taelio_core.routing.inputs import Inputs

    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--count", type=int, default=0, help="stop after this many (0: until killed)")
    parser.add_argument("--flush-interval", type=float, default=0.2)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between requests")
    parser.add_argument("--journal", default="write")
    parser.add_argument("--idle-release", type=float, default=1.0)
    parser.add_argument("--spool", default="data", help="a PostgreSQL log's journal folder")
    args = parser.parse_args()
    log: CallLog
    if args.db.startswith("postgresql://"):
        log = PostgresCallLog(args.db, flush_interval=args.flush_interval, journal=args.journal, spool=args.spool)
    else:
        log = DuckDBCallLog(args.db, flush_interval=args.flush_interval, journal=args.journal,
                            idle_release=args.idle_release)
    router = faulty_router(log, seed=1)
    tiers = router.policy.tiers
    print("ready", flush=True)
    n = 0
    while args.count == 0 or n < args.count:
        try:
            result = router.generate(tiers[n % len(tiers)], "idea", Inputs(prompt=f"premise {n}"))
        except AllProvidersFailed as e:
            result = e.result
        sys.stdout.write(result.request_id + "\n")
        sys.stdout.flush()
        n += 1
        if args.pause:
            import time
            time.sleep(args.pause)
    log.close()
    print(f"done {n} lock_waits={getattr(log, 'lock_waits', 0)} commits={log.commits} "
          f"opens={getattr(log, 'opens', 0)} yields={getattr(log, 'yields', 0)}", flush=True)


if __name__ == "__main__":
    main()
