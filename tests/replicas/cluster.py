"""Several ``taelio serve`` replicas on one PostgreSQL call log and one Redis, with the fake provider behind them.

The replica test and ``benchmarks/bench_replicas.py`` both start one of these::

    with Cluster.start(tmp, replicas=3, database_url=pg_url, redis=redis_server) as cluster:
        cluster.replicas[1].kill()           # kill -9, as an OOM killer or a lost node would
        cluster.replicas[1].restart()        # same working directory and environment: its journal replays
        cluster.sql("SELECT count(*) AS n FROM requests")

Every replica is a real ``python -m taelio_core serve`` process on its own free port and its own working
directory, exactly as a user would start it behind a load balancer: the same ``DATABASE_URL``,
``REDIS_URL``, ``JWT_SECRET`` and policy file for all. The fake provider server runs in its own process
(``RemoteFake``), so the client process measures only itself. The test reads PostgreSQL with plain SQL
through ``psycopg``, never through the code under test.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from taelio_core.api.auth import AuthSettings, mint_token
from tests.api.server import KEYS, SECRET, RemoteFake, wait_until_ready
from tests.policies import policy_text
from tests.servers import RedisServer, free_port

__all__ = ["BREAKER_MODELS", "BUDGET", "Cluster", "Replica", "replica_policy_text"]

ROOT = Path(__file__).resolve().parents[2]
# The load's chain: gemini first (20% of its calls fault), then openai, then anthropic.
LOAD_CHAIN = ["gemini:g-1", "openai:o-1", "anthropic:a-1"]
# One model per breaker check, used by nothing else, so an open breaker never changes another test's chain.
BREAKER_MODELS = ("a-brk-1", "a-brk-2")
# A hard budget of a few cents on its own tier; input is free, output $100/Mtok, 20 tokens at most: a request's
# worst case is $0.002 and the fake's 17 output tokens cost $0.0017.
BUDGET = {"tier": "capped", "cap_usd": 0.05, "max_tokens": 20, "output_per_mtok": 100.0}


def replica_policy_text() -> str:
    """Tiers for each check: ``pro`` for the load, ``brk-N`` for the breakers, ``capped`` for the budget."""
    routes: dict[str, dict[str, list[str]]] = {"pro": {"idea": LOAD_CHAIN}}
    for n, model in enumerate(BREAKER_MODELS, 1):
        routes[f"brk-{n}"] = {"idea": [f"anthropic:{model}", "openai:o-1"]}
    routes[BUDGET["tier"]] = {"idea": ["openai:o-capped"]}
    pricing = {"gemini:g-1": (1.0, 2.0), "openai:o-1": (3.0, 6.0), "anthropic:a-1": (2.0, 4.0),
               **{f"anthropic:{m}": (2.0, 4.0) for m in BREAKER_MODELS},
               "openai:o-capped": (0.0, BUDGET["output_per_mtok"])}
    return policy_text(
        name="replicas", providers={"gemini": "gemini", "openai": "openai", "anthropic": "anthropic"},
        tasks={"idea": {"label": "Story idea", "user": "Premise: {prompt} ({genre}, {tone})"}},
        routes=routes, pricing=pricing,
        # Generous clocks: thousands of requests on a busy 2-core machine must not turn into timeouts.
        defaults={"timeout_s": 120, "max_tokens": BUDGET["max_tokens"]},
        resilience={"max_retries": 0, "deadline_s": 600},
        # Five failures in a row open a breaker; spread 20% faults never make five in a row. A long
        # cool-down keeps it open while the other replicas are asked.
        breakers={"consecutive_failures": 5, "cooldown_s": 600},
        budgets={"tier": {BUDGET["tier"]: {"monthly": BUDGET["cap_usd"], "hard": True}}})


class ReplicaFake(RemoteFake):
    """The fake provider server in its own process, with spread faults for load."""

    def fail_every(self, provider: str, fault: str, every: int, *, model: str | None = None) -> None:
        httpx.post(self.url + "/_fake/fail_every",
                   json={"provider": provider, "fault": fault, "every": every, "model": model}).raise_for_status()

    def fail_model(self, provider: str, model: str, fault: str, *, times: int | None) -> None:
        httpx.post(self.url + "/_fake/fail", json={"provider": provider, "model": model, "fault": fault,
                                                   "times": times}).raise_for_status()


@dataclass(kw_only=True)
class Replica:
    """One ``taelio serve`` process; ``kill`` and ``restart`` keep its port, directory and environment."""

    index: int
    port: int
    workdir: Path
    env: dict[str, str]
    workers: int = 1                 # ``taelio serve --workers N``: N processes behind one port
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"serve-{self.starts}.stderr"

    def spawn(self) -> None:
        self.starts += 1
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen([sys.executable, "-m", "taelio_core", "serve", "--port", str(self.port),
                                          "--workers", str(self.workers)], env=self.env, cwd=self.workdir,
                                         stdout=subprocess.DEVNULL, stderr=stderr)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        assert self.proc is not None
        wait_until_ready(self.url, self.proc, self.stderr_path, timeout_s=timeout_s, name=f"replica {self.index}")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush; what ``record()`` accepted survives only in its journal."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def restart(self) -> None:
        self.spawn()
        self.wait_ready()

    def terminate(self, timeout_s: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode


@dataclass(kw_only=True)
class Cluster:
    fake: ReplicaFake
    replicas: list[Replica]
    database_url: str
    redis: RedisServer | None
    policy_path: Path
    _tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def start(cls, tmp: Path, *, replicas: int, database_url: str, redis: RedisServer | None,
              extra_env: dict[str, str] | None = None, workers: int = 1) -> Cluster:
        fake = ReplicaFake()
        try:
            policy = tmp / "replicas.toml"
            policy.write_text(replica_policy_text())
            env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("JWT_")}
            env.update(fake.env(**KEYS), JWT_SECRET=SECRET, TAELIO_POLICY=str(policy), DATABASE_URL=database_url,
                       PYTHONPATH=str(ROOT), TAELIO_MODE="live", **(extra_env or {}))
            if redis is not None:
                env["REDIS_URL"] = redis.url
            members = []
            for index in range(replicas):
                workdir = tmp / f"replica-{index}"
                workdir.mkdir()
                members.append(Replica(index=index, port=free_port(), workdir=workdir, env=dict(env),
                                       workers=workers))
            cluster = cls(fake=fake, replicas=members, database_url=database_url, redis=redis, policy_path=policy)
        except BaseException:
            fake.stop()
            raise
        try:
            for replica in members:     # started together: they open (and migrate) one database at once
                replica.spawn()
            for replica in members:
                replica.wait_ready()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        try:
            for replica in self.replicas:
                replica.terminate()
        finally:
            self.fake.stop()

    def headers(self, sub: str = "alice", tier: str = "pro") -> dict[str, str]:
        token = self._tokens.get((sub, tier))
        if token is None:
            token = self._tokens[(sub, tier)] = mint_token(AuthSettings(secret=SECRET), sub=sub, tier=tier,
                                                           ttl_s=6 * 3600)
        return {"Authorization": f"Bearer {token}"}

    def sql(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        """Rows of a query on the shared PostgreSQL, read with plain ``psycopg`` (not through Taelio)."""
        import psycopg
        from psycopg.rows import dict_row
        with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
            return list(conn.execute(query, params))

    def wait_rows(self, request_ids: list[str], timeout_s: float = 180.0) -> set[str]:
        """Poll until every id is in ``requests`` (each replica flushes its log off the request path)."""
        deadline, stored = time.monotonic() + timeout_s, set()
        while True:
            rows = self.sql("SELECT DISTINCT request_id FROM requests WHERE request_id = ANY(%s)", [request_ids])
            stored = {r["request_id"] for r in rows}
            if len(stored) >= len(set(request_ids)) or time.monotonic() > deadline:
                return stored
            time.sleep(0.3)
