"""Round-robin load over the replicas, as a load balancer would send it.

Request ``i`` goes to replica ``i % n``. When that replica refuses the
connection or drops it (it was killed), the request was never acknowledged:
the driver counts it and sends it again to the next replica, as a load
balancer retries on another backend. Only answers the client received are
*acknowledged*; those are the ones that must be in PostgreSQL exactly once.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.replicas.cluster import Cluster

__all__ = ["Answer", "LoadResult", "run_load"]

BODY = {"prompt": "A lighthouse keeper finds a bottle", "genre": "Mystery", "tone": "Bleak"}
# What a replica that is down (or dies mid-request) looks like to a client.
GONE = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)


@dataclass(frozen=True, kw_only=True)
class Answer:
    index: int                  # the request's number in the load
    replica: int                # who answered
    status: int
    doc: dict[str, Any]
    sent_at: float              # time.monotonic() when sent, and when answered
    answered_at: float


@dataclass(kw_only=True)
class LoadResult:
    answers: list[Answer] = field(default_factory=list)
    unacknowledged: int = 0     # sent to a replica that died (or was down) before answering; sent again elsewhere
    seconds: float = 0.0

    @property
    def ok(self) -> list[Answer]:
        return [a for a in self.answers if a.status == 200]

    def not_ok(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200]


async def run_load(cluster: Cluster, requests: int, *, concurrency: int, tier: str = "pro", users: int = 50,
                   on_answer: Callable[[int], object] | None = None,
                   until: Callable[[LoadResult], bool] | None = None, only: list[int] | None = None,
                   timeout_s: float = 300.0) -> LoadResult:
    """Send at least ``requests`` round-robin, and with ``until``, on until ``until(result so far)`` is true.

    ``concurrency`` requests are in flight at once. ``on_answer(count)`` runs after each answer (a test
    kills a replica from it); it may return an awaitable. ``only`` names the replicas to use (default all).
    """
    result, counter = LoadResult(), iter(range(10**9))
    replicas = [cluster.replicas[i] for i in only] if only is not None else cluster.replicas
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8)
    clients = [httpx.AsyncClient(base_url=r.url, timeout=timeout_s, limits=limits) for r in replicas]
    headers = {(u, tier): cluster.headers(sub=f"user-{u}", tier=tier) for u in range(users)}
    pending: list[asyncio.Task[object]] = []

    async def one(i: int) -> None:
        target = i % len(replicas)
        for _ in range(50 * len(replicas)):
            t0 = time.monotonic()
            try:
                response = await clients[target].post("/generate/idea", json=BODY, headers=headers[(i % users, tier)])
            except GONE:
                result.unacknowledged += 1
                target = (target + 1) % len(replicas)
                await asyncio.sleep(0.01)
                continue
            result.answers.append(Answer(index=i, replica=replicas[target].index, status=response.status_code,
                                         doc=response.json(), sent_at=t0, answered_at=time.monotonic()))
            if on_answer is not None:
                maybe = on_answer(len(result.answers))
                if asyncio.iscoroutine(maybe):
                    pending.append(asyncio.ensure_future(maybe))
            return
        raise RuntimeError(f"request {i}: no replica accepted it")

    async def worker() -> None:
        while True:
            i = next(counter)
            if i >= requests and (until is None or until(result)):
                return
            await one(i)

    t0 = time.monotonic()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if pending:
            await asyncio.gather(*pending)
    finally:
        result.seconds = time.monotonic() - t0
        for client in clients:
            await client.aclose()
    return result
