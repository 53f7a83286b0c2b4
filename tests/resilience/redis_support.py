"""Small builders for the Redis shared-state tests: what the breakers read of a request and an attempt."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from taelio_core.config.policy import ChainEntry
from taelio_core.routing.trace import Attempt

ROOT = Path(__file__).resolve().parents[2]


def ctx_for(request_id: str) -> Any:
    """The part of a ``RequestContext`` the breakers use."""
    return SimpleNamespace(request_id=request_id)


def entry(ref: str) -> ChainEntry:
    provider, model = ref.split(":")
    return ChainEntry(provider=provider, model=model)


def failed_attempt(provider: str, model: str, *, at: datetime | None = None,
                   error_type: str = "timeout") -> Attempt:
    return Attempt(n=1, provider=provider, model=model, status="error", started_at=at or datetime.now(UTC),
                   latency_ms=5.0, error_type=error_type, error="no answer")


def ok_attempt(provider: str, model: str, *, at: datetime | None = None) -> Attempt:
    return Attempt(n=1, provider=provider, model=model, status="ok", started_at=at or datetime.now(UTC),
                   latency_ms=5.0)


def worker(command: str, **args: Any) -> subprocess.Popen[str]:
    """A worker process (``tests/resilience/redis_workers.py``) with its own Redis link."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "tests.resilience.redis_workers", command, json.dumps(args)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)


def release(procs: list[subprocess.Popen[str]]) -> None:
    """Wait until every worker printed ``ready``, then let them all go at once."""
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()


def result(proc: subprocess.Popen[str], timeout: float = 300) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])
