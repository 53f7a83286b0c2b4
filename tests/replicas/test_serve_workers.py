"""``taelio serve --workers 2`` on PostgreSQL and Redis: two worker processes behind one port are two replicas.

Each worker opens its own call log and its own Redis guards (uvicorn starts them from an import string),
so what holds for replicas must hold for them: every answered request lands in PostgreSQL once with its
attempts, one hard budget is enforced across both (on one machine the local budget ledger would share it
too), and a breaker opened by failures seen by either worker is open for both (per-process breakers
would each need their own five failures: this one fails without Redis). That both workers took traffic is read from the
crash journal folder, where each worker process holds its own ``<pid>-<token>.lock`` while it runs.
Every figure is read with plain SQL, never through the code under test.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from taelio_core.calllog.journal import journal_dir
from taelio_core.calllog.postgres import spool_name
from tests.replicas.cluster import BREAKER_MODELS, BUDGET, Cluster
from tests.replicas.load import BODY, Answer
from tests.replicas.test_replicas import assert_each_in_postgresql_once_with_its_attempts
from tests.servers import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def two_workers(pg_server, shared_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    database_url = pg_server.new_database(f"workers_{uuid.uuid4().hex[:8]}")
    with Cluster.start(tmp_path_factory.mktemp("workers"), replicas=1, workers=2, database_url=database_url,
                       redis=shared_redis) as started:
        yield started


def worker_pids(cluster: Cluster) -> set[int]:
    """The processes holding a journal in the one replica's folder: each worker that has logged a request."""
    replica = cluster.replicas[0]
    folder = journal_dir(Path(replica.workdir) / "data" / spool_name(cluster.database_url))
    return {int(lock.name.split("-", 1)[0]) for lock in folder.glob("*.lock")}


def send(cluster: Cluster, requests: int, *, concurrency: int, tier: str = "pro") -> list[Answer]:
    """``requests`` POSTs, ``concurrency`` at a time, each on a new connection: the kernel hands each
    accepted connection to whichever worker takes it, so a new connection per request spreads the load
    (kept-alive connections may all stay with the worker that accepted them first)."""
    replica = cluster.replicas[0]
    answers: list[Answer] = []
    queue = iter(range(requests))

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=replica.url, timeout=300,
                                     limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for i in queue:
                t0 = time.monotonic()
                response = await client.post("/generate/idea", json=BODY,
                                             headers=cluster.headers(sub=f"user-{i % 20}", tier=tier))
                answers.append(Answer(index=i, replica=0, status=response.status_code, doc=response.json(),
                                      sent_at=t0, answered_at=time.monotonic()))

    async def run() -> None:
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(run())
    return answers


def test_two_workers_share_one_hard_budget_and_log_each_answered_request_once(
        two_workers: Cluster) -> None:
    cluster = two_workers
    cap = Decimal(str(BUDGET["cap_usd"]))
    worst = Decimal(BUDGET["max_tokens"]) * Decimal(str(BUDGET["output_per_mtok"])) / 1_000_000
    concurrency = 12
    # Four times the budget's worth of requests, twelve connections at a time, over both workers.
    answers = send(cluster, int(4 * cap / worst), concurrency=concurrency, tier=BUDGET["tier"])

    pids = worker_pids(cluster)
    assert len(pids) == 2 and cluster.replicas[0].proc.pid not in pids, pids   # both workers served
    statuses = {a.status for a in answers}
    assert statuses == {200, 402}, statuses
    answered = [a for a in answers if a.status == 200]
    assert_each_in_postgresql_once_with_its_attempts(cluster, answered)
    [row] = cluster.sql("SELECT sum(cost_usd) AS spent, count(*) AS n FROM requests WHERE tier = %s AND "
                        "status = 'ok'", [BUDGET["tier"]])
    assert row["n"] == len(answered)
    # Per-process budgets would let each worker spend the whole cap: twice the cap in all.
    assert row["spent"] - cap <= concurrency * worst < cap


def test_two_workers_log_a_load_with_faults_each_request_once_with_its_attempts(two_workers: Cluster) -> None:
    cluster = two_workers
    cluster.fake.fail_every("gemini", "unavailable", 5)
    answers = send(cluster, 300, concurrency=12)
    assert {a.status for a in answers} == {200}
    assert any(len(a.doc["attempts"]) == 2 for a in answers)          # some fell back
    assert_each_in_postgresql_once_with_its_attempts(cluster, answers)
    assert len(worker_pids(cluster)) == 2


def test_a_breaker_opened_by_five_failures_through_two_workers_is_open_for_both(two_workers: Cluster) -> None:
    cluster, model = two_workers, BREAKER_MODELS[0]
    cluster.fake.fail_model("anthropic", model, "unavailable", times=None)
    # One request at a time, paced past the shared mirror's refresh (0.25 s), so each worker reads the
    # failures counted so far, whichever of them saw them; on until an answer skips the entry.
    opening: list[Answer] = []
    while len(opening) < 20 and not (opening and _skipped(opening[-1], model)):
        opening += send(cluster, 1, concurrency=1, tier="brk-1")
        time.sleep(0.5)
    assert _skipped(opening[-1], model), [a.doc["attempts"] for a in opening]
    assert sum(1 for a in opening if not _skipped(a, model)) == 5          # consecutive_failures in the policy
    # Then both workers skip it: per-process breakers would leave a worker with fewer than five of its own
    # failures still trying the entry.
    after = send(cluster, 24, concurrency=4, tier="brk-1")
    assert all(_skipped(a, model) for a in after), [a.doc["attempts"] for a in after if not _skipped(a, model)]
    assert {a.doc["provider"] for a in opening + after} == {"openai"}
    assert_each_in_postgresql_once_with_its_attempts(cluster, opening + after)
    [row] = cluster.sql("SELECT count(*) AS n FROM attempts WHERE model = %s AND status = 'error'", [model])
    assert row["n"] == 5
    assert len(worker_pids(cluster)) == 2


def _skipped(answer: Answer, model: str) -> bool:
    return any(s["model"] == model for s in answer.doc["skipped"])
