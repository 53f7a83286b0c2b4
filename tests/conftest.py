"""Test-wide guards.

* No test reaches the internet: any socket connection to an address outside
  the loopback range fails at once, so a real provider call cannot happen.
* Real keys from the developer's shell never leak into tests: provider key,
  base-URL and mode variables are cleared for every test.
* ``fake_server`` / ``refused_url`` (from ``tests/fakeserver/fixtures.py``):
  a local server speaking the real OpenAI, Anthropic and Gemini protocols,
  for adapter and CLI tests through the real SDKs.
"""
from __future__ import annotations

import ipaddress
import socket

import pytest

pytest_plugins = ["tests.fakeserver.fixtures"]

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo

CLEARED_ENV = [
    "GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL", "TAELIO_MODE", "TAELIO_POLICY", "DATABASE_URL",
    "TAELIO_STORE_TEXT", "TAELIO_JOURNAL",
]


class NetworkBlocked(RuntimeError):
    pass


def _is_local(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
    elif isinstance(address, str | bytes):
        return True  # AF_UNIX socket path
    else:
        return False
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_local(address):
        raise NetworkBlocked(f"test tried to reach {address!r}: tests may only use loopback servers")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_local(address):
        raise NetworkBlocked(f"test tried to reach {address!r}: tests may only use loopback servers")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: object, *args: object, **kw: object):  # noqa: ANN202
    name = host.decode() if isinstance(host, bytes) else host
    if name not in (None, "localhost") and not _is_local((name, 0)):
        raise NetworkBlocked(f"test tried to resolve {name!r}: tests may only use loopback servers")
    return _real_getaddrinfo(host, *args, **kw)


@pytest.fixture(autouse=True, scope="session")
def _block_network() -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _real_getaddrinfo  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path, request) -> None:
    for name in CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    # Never read the developer's .streamlit/secrets.toml: run each test from its own folder.
    if "no_chdir" not in request.keywords:
        monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def pg_server():
    """One throwaway PostgreSQL for the session; give each test its own database with ``new_database``."""
    from tests.servers import postgres_server
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server, request) -> str:
    """A fresh, empty PostgreSQL database for this test."""
    import re
    import uuid
    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:8]
    return pg_server.new_database(name)


@pytest.fixture
def redis_url():
    """A throwaway Redis for this test, as its URL; a test that stops and restarts Redis uses
    ``tests.servers.redis_server()`` itself, for the server object."""
    from tests.servers import redis_server
    with redis_server() as server:
        yield server.url

