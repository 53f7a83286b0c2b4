"""Worker processes for the Redis shared-state tests: ``python -m tests.resilience.redis_workers CMD ARGS_JSON``.

Each worker is a real process with its own ``RedisLink``, as a replica would be; it prints one JSON line.
Workers that must run at once print ``ready`` and wait for a line on stdin (``release`` in redis_support).
"""
from __future__ import annotations

import json
import random
import sys
import time
from decimal import Decimal

from taelio_core.guards.redis_budgets import RedisBudgetStore
from taelio_core.guards.redis_link import RedisLink

KEY = ("tier", "free", "monthly", "2026-12")


def _wait() -> None:
    print("ready", flush=True)
    sys.stdin.readline()


def spend(url: str, cap: str, worst: str, seed: int) -> dict:
    """Reserve the worst case, hold it a moment (the call in flight), settle a true cost in [0.5, 1.2] × worst."""
    link = RedisLink(url)
    store = RedisBudgetStore(link)
    rng = random.Random(seed)
    cap_d, worst_d = Decimal(cap), Decimal(worst)
    served, spent, over = 0, Decimal(0), Decimal(0)
    _wait()
    refused = 0
    for i in range(10_000):
        hold = f"{seed}-{i}|sim:s1"
        if store.reserve(hold, worst_d, [KEY], {KEY: cap_d}) is not None:
            refused += 1          # others' reservations may still wait for their settlement: try a little later
            if refused == 20:
                break
            time.sleep(0.05)
            continue
        refused = 0
        time.sleep(rng.uniform(0, 0.002))
        cost = (worst_d * Decimal(rng.randint(50, 120)) / 100).quantize(Decimal("0.000000001"))
        store.settle(hold, [KEY], cost)
        served, spent, over = served + 1, spent + cost, over + max(Decimal(0), cost - worst_d)
    link.close()
    return {"served": served, "spent": str(spent), "over_worst": str(over)}


def seed(url: str, amount: str, label: str) -> dict:
    link = RedisLink(url)
    store = RedisBudgetStore(link)
    _wait()
    store.seed({KEY: Decimal(amount)}, [label])
    link.close()
    return {"seeded": True}


def late(url: str, cap: str, worst: str) -> dict:
    """Start (Redis down), say so, wait for 'go' on stdin, wait for the link, then reserve once."""
    link = RedisLink(url, retry_s=0.2)
    store = RedisBudgetStore(link)
    print(json.dumps({"started_up": link.up, "status": link.status()}), flush=True)
    sys.stdin.readline()
    deadline = time.monotonic() + 60
    while not link.up and time.monotonic() < deadline:
        time.sleep(0.05)
    denial = store.reserve("late|sim:s1", Decimal(worst), [KEY], {KEY: Decimal(cap)})
    link.close()
    return {"up": link.up, "denied": denial is not None, "used": str(denial.used) if denial else None}


def open_breaker(url: str, ref: str, failures: int) -> dict:
    """Record ``failures`` timeouts on ``ref`` through this process's breakers (opens it with the defaults)."""
    from datetime import UTC, datetime

    from taelio_core.guards.breakers import CircuitBreakers
    from taelio_core.guards.redis_breakers import RedisBreakerStore
    from taelio_core.routing.clock import SystemClock
    from tests.resilience.redis_support import ctx_for, failed_attempt

    link = RedisLink(url)
    breakers = CircuitBreakers(clock=SystemClock(), store=RedisBreakerStore(link))
    provider, model = ref.split(":")
    for i in range(failures):
        breakers.observe(ctx_for(f"w{i}"), failed_attempt(provider, model, at=datetime.now(UTC)))
    link.flush()
    state = breakers.state_of(ref)
    link.close()
    return {"state": state}


if __name__ == "__main__":
    command, args = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(globals()[command](**args)), flush=True)
