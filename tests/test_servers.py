"""The throwaway servers the several-replicas tests use really start, answer, and stop."""
from __future__ import annotations

import socket

from tests.servers import redis_server


def test_a_throwaway_postgresql_database_answers_sql(pg_url: str) -> None:
    import psycopg
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT 40 + 2").fetchone() == (42,)


def test_a_throwaway_redis_answers_and_is_gone_after_stop() -> None:
    import redis
    with redis_server() as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        server.stop()
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=0.5).close()
            reachable = True
        except OSError:
            reachable = False
        assert not reachable
        server.start()
        assert redis.Redis.from_url(server.url).ping()
