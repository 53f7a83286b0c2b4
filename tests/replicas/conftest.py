"""One cluster per module: throwaway PostgreSQL and Redis, three ``taelio serve`` replicas, the fake provider.

Starting three replicas costs ~10 s on this machine, so the module shares them; each test uses its own
tier (its own chain, breakers and budget) so no test changes another's routes.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.replicas.cluster import Cluster
from tests.servers import RedisServer, redis_server


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(pg_server, shared_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    database_url = pg_server.new_database(f"replicas_{uuid.uuid4().hex[:8]}")
    with Cluster.start(tmp_path_factory.mktemp("replicas"), replicas=3, database_url=database_url,
                       redis=shared_redis) as started:
        yield started


@pytest.fixture(autouse=True)
def _fresh_faults(request: pytest.FixtureRequest) -> None:
    if "cluster" in request.fixturenames:
        request.getfixturevalue("cluster").fake.reset()
