"""Fixtures shared by the resilience tests."""
from __future__ import annotations

import pytest


@pytest.fixture
def server():
    """A throwaway Redis as its server object: ``stop()``/``start()`` make an outage on the same port."""
    from tests.servers import redis_server
    with redis_server() as s:
        yield s
