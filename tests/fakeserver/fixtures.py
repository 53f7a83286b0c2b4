"""Pytest fixtures for the fake provider server (registered as a plugin by ``tests/conftest.py``)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakeserver.server import FakeServer, closed_port

__all__ = ["fake_server", "refused_url"]


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    """A fresh fake server on a free loopback port, stopped after the test."""
    with FakeServer() as server:
        yield server


@pytest.fixture
def refused_url() -> str:
    """A base URL on a loopback port nothing listens on (connection refused)."""
    return f"http://127.0.0.1:{closed_port()}"
