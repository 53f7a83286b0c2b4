"""Throwaway PostgreSQL and Redis servers, started and stopped by the tests themselves.

Each is a real server process on a free port of 127.0.0.1, in a temporary directory. Outside CI a test that
needs one skips with the reason when the binaries are absent; under ``CI=true`` it fails instead, since
``.ci/run`` installs both (``postgresql`` and ``redis-server``).

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user and its commands
run through ``runuser`` (the recipe in ``shared/FACTS.md``). ``fsync=off``: for tests only.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "RedisServer", "free_port", "postgres_server", "redis_server", "wait_until"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _missing(what: str) -> None:
    reason = f"{what} is not installed (.ci/run installs it with apt)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; under CI=true nothing skips for a missing server")
    pytest.skip(reason)


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PostgresServer:
    """A running throwaway cluster; ``url`` is a ``postgresql://`` URL to its ``postgres`` database."""

    url: str
    port: int
    data_dir: Path
    bin_dir: Path
    as_user: list[str]

    def _ctl(self, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args],
                       check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def start(self) -> None:
        sock = self.data_dir.parent
        self._ctl("-o", f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                  "-l", str(sock / "log"), "-w", "start")

    def new_database(self, name: str) -> str:
        """Create an empty database and return its URL: one per test keeps tests apart on one server."""
        import psycopg
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = _pg_bin()
    if bin_dir is None:
        _missing("PostgreSQL (initdb)")
    assert bin_dir is not None
    root = Path(tempfile.mkdtemp(prefix="taelio-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "taelio"],
                   check=True, capture_output=True, timeout=300)
    port = free_port()
    server = PostgresServer(url=f"postgresql://taelio@127.0.0.1:{port}/postgres", port=port, data_dir=data,
                            bin_dir=bin_dir, as_user=as_user)
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        except subprocess.SubprocessError:
            pass
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class RedisServer:
    """A running throwaway Redis; ``stop()`` and ``start()`` simulate an outage on the same port."""

    url: str
    port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not listen on port {self.port} within 30 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        _missing("redis-server")
    port = free_port()
    server = RedisServer(url=f"redis://127.0.0.1:{port}/0", port=port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_until(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    """Poll ``predicate`` until it holds; fail the test if it has not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the condition did not hold within the time allowed"
        time.sleep(0.02)
