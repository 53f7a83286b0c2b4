"""``taelio serve`` as a real process on a free port, with the fake provider server behind it.

One server per test module (``ApiServer.start`` in a module-scoped fixture):
the real SDKs talk to ``tests/fakeserver`` in this process, the API runs in a
child process exactly as a user starts it, and the tests talk to it over
HTTP. The call log is a real DuckDB file the test reads through the same
sharing protocol as any second process.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from taelio_core.api.auth import AuthSettings, mint_token
from taelio_core.calllog import DuckDBCallLog
from tests.fakeserver import FakeServer
from tests.policies import policy_text

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-secret-for-the-api-0123456789abcdef"
# Keys planted so tests can prove they never come back in a response, a header, a log line or the call log.
KEYS = {"OPENAI_API_KEY": "sk-planted-openai-7f3a9c2e5b1d4f6a8c0e",
        "ANTHROPIC_API_KEY": "sk-ant-planted-anthropic-2b4d6f8a0c1e3a5c",
        "GEMINI_API_KEY": "AIza-planted-gemini-9e8d7c6b5a4f3e2d1c0b"}
CHAIN = ["gemini:g-1", "openai:o-1", "anthropic:a-1"]


def api_policy_text() -> str:
    """Three real provider kinds (answered by the fake server), the seed's two tasks, and tiers for the limits."""
    chains = {"idea": CHAIN, "story": CHAIN}
    return policy_text(
        name="apitest", providers={"gemini": "gemini", "openai": "openai", "anthropic": "anthropic"},
        tasks={"idea": {"label": "Story idea", "user": "Premise: {prompt} ({genre}, {tone})"},
               "story": {"label": "Story", "user": "Idea: {idea}", "needs": "idea"}},
        tiers={"free": {"label": "Free"}, "pro": {"label": "Pro", "allow_provider_override": True},
               "admin": {"label": "Admin", "allow_provider_override": True},
               "tiny": {"requests_per_minute": 3}, "thrifty": {"tokens_per_day": 5}, "broke": {}},
        routes={t: chains for t in ("free", "pro", "admin", "tiny", "thrifty", "broke")},
        # Generous clocks: a thousand requests at once on a busy 2-core machine must not turn into timeouts.
        defaults={"timeout_s": 120}, resilience={"max_retries": 0, "deadline_s": 600, "first_token_s": 300},
        breakers={"enabled": False},        # faults in the load test must not change later tests' chains
        budgets={"tier": {"broke": {"monthly": 0, "hard": True}}},
        pricing={"gemini:g-1": (1.0, 2.0), "openai:o-1": (3.0, 6.0), "anthropic:a-1": (2.0, 4.0)})


class RemoteFake:
    """The fake provider server in its own process (``python -m tests.fakeserver``), scripted over HTTP.

    For load: in this process it would share the GIL with the thousand clients it is measured against.
    """

    def __init__(self) -> None:
        # http.server's listen backlog is 5: a thousand clients at once would see resets (faults nobody scripted).
        code = ("import socketserver, sys; socketserver.TCPServer.request_queue_size = 1024; "
                "from tests.fakeserver.__main__ import main; sys.exit(main(['--zero-latency']))")
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        line = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if not line.startswith("READY "):
            raise RuntimeError(f"the fake server did not start: {line!r}")
        self.url = line.removeprefix("READY ")

    # The same base URLs and variables an in-process fake gives (its methods only read ``url``).
    def base_url(self, provider: str) -> str:
        return FakeServer.base_url(self, provider)  # type: ignore[arg-type]

    def env(self, **keys: str) -> dict[str, str]:
        return FakeServer.env(self, **keys)  # type: ignore[arg-type]

    def fail(self, provider: str, fault: str, *, times: int | None = 1) -> None:
        httpx.post(self.url + "/_fake/fail", json={"provider": provider, "fault": fault, "times": times}).raise_for_status()

    def reset(self) -> None:
        httpx.post(self.url + "/_fake/reset", json={}).raise_for_status()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(url: str, proc: subprocess.Popen, stderr_path: Path, *, timeout_s: float = 90.0,
                     name: str = "taelio serve") -> None:
    """Poll ``/readyz`` until it answers 200; the server's stderr in the error if it exits or never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited {proc.returncode}: {stderr_path.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not become ready: {stderr_path.read_text(errors='replace')[-4000:]}")


@dataclass(kw_only=True)
class ApiServer:
    fake: FakeServer | RemoteFake
    url: str
    db: Path
    stderr_path: Path
    proc: subprocess.Popen
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, tmp: Path, *, workers: int = 1, extra_env: dict[str, str] | None = None,
              remote_fake: bool = False) -> ApiServer:
        fake = RemoteFake() if remote_fake else FakeServer().start()
        policy = tmp / "api.toml"
        policy.write_text(api_policy_text())
        db = tmp / "api.duckdb"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("JWT_")}
        env.update(fake.env(**KEYS), JWT_SECRET=SECRET, TAELIO_POLICY=str(policy), DATABASE_URL=str(db),
                   PYTHONPATH=str(ROOT), TAELIO_MODE="live", **(extra_env or {}))
        stderr_path = tmp / "serve.stderr"
        proc = subprocess.Popen([sys.executable, "-m", "taelio_core", "serve", "--port", str(port),
                                 "--workers", str(workers)], env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                                stderr=stderr_path.open("wb"))
        server = cls(fake=fake, url=f"http://127.0.0.1:{port}", db=db, stderr_path=stderr_path, proc=proc, env=env)
        server.wait_ready()
        return server

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        wait_until_ready(self.url, self.proc, self.stderr_path, timeout_s=timeout_s)

    def token(self, sub: str = "alice", tier: str = "pro", ttl_s: int = 3600, secret: str = SECRET) -> str:
        return mint_token(AuthSettings(secret=secret), sub=sub, tier=tier, ttl_s=ttl_s)

    def headers(self, sub: str = "alice", tier: str = "pro") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, tier)}"}

    def terminate(self, timeout_s: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        finally:
            self.fake.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.terminate()
        else:
            self.fake.stop()

    def requests_where(self, sql_where: str, params: list | None = None, *, columns: str = "*"):  # noqa: ANN201
        """Rows of the server's call log (read through the log's own sharing protocol while it runs)."""
        with DuckDBCallLog(self.db) as log:
            return log.query(f"SELECT {columns} FROM requests WHERE {sql_where}", params or [])

    def wait_logged(self, sql_where: str, params: list | None, count: int, timeout_s: float = 180.0):  # noqa: ANN201
        """Poll until ``count`` rows match (the server flushes its log every half second)."""
        deadline = time.monotonic() + timeout_s
        while True:
            rows = self.requests_where(sql_where, params)
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.3)
