"""Issue 17 §2 end to end: ``REDIS_URL`` puts the engine's guards in Redis; Health, ``taelio health`` and
``/readyz`` say when the shared state is unavailable, and requests keep flowing meanwhile."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from taelio_core.api.app import create_app
from taelio_core.api.auth import AuthSettings, mint_token
from taelio_core.config.settings import load_settings
from taelio_core.errors import BudgetExceeded, ConfigError
from taelio_core.guards.redis_budgets import RedisBudgetStore
from taelio_core.guards.redis_link import RedisLink
from taelio_core.routing.inputs import Inputs
from taelio_core.wiring import Taelio
from tests.policies import policy_text

ROOT = Path(__file__).resolve().parents[2]
SINCE = re.compile(r"shared state unavailable since \d\d:\d\d UTC")
SECRET = "test-secret-for-the-redis-tests-0123456789"


def _policy(tmp_path: Path, *, hard: bool = True) -> Path:
    path = tmp_path / "shared.toml"
    path.write_text(policy_text(
        name="shared", providers={"sim": "simulated"}, routes={"free": {"idea": ["sim:s1"]}},
        defaults={"timeout_s": 20, "max_tokens": 60}, resilience={"max_retries": 0},
        simulator={"sim": {"latency_ms": 1, "ttft_ms": 1}}, pricing={"sim:s1": (1000.0, 1000.0)},
        extra=f"[budgets]\ncount_simulated = true\n[budgets.tier.free]\nmonthly = 5\nhard = {str(hard).lower()}\n"))
    return path


def _open(tmp_path: Path, url: str, *, hard: bool = True) -> Taelio:
    settings = load_settings(env={"TAELIO_MODE": "live", "REDIS_URL": url})
    return Taelio.open(policy=str(_policy(tmp_path, hard=hard)), settings=settings, database=tmp_path / "log.duckdb")


def test_with_redis_url_a_request_reserves_and_settles_its_cost_in_redis(tmp_path, server):
    engine = _open(tmp_path, server.url)
    try:
        assert isinstance(engine.router.budgets.store, RedisBudgetStore)
        result = engine.router.generate("free", "idea", Inputs(prompt="A lighthouse keeper"))
        assert result.ok
        engine.shared.flush()
        cost = result.attempts[0].cost_usd
        assert cost is not None and cost > 0
        link = RedisLink(server.url)                                  # what any other replica reads
        try:
            spent, reserved = RedisBudgetStore(link).snapshot()
        finally:
            link.close()
        key = next(k for k in spent if k[:3] == ("tier", "free", "monthly"))
        assert spent[key] == cost.quantize(Decimal("0.000000001")) and reserved[key] == 0
        assert engine.health(history_limit=0).shared_state == f"shared state in Redis at {server.url}: connected"
    finally:
        engine.close()


def test_while_redis_is_down_requests_flow_and_health_readyz_and_the_cli_say_since_when(tmp_path, server):
    server.stop()
    engine = _open(tmp_path, server.url, hard=False)
    try:
        assert engine.router.generate("free", "idea", Inputs(prompt="A lighthouse keeper")).ok   # per process
        assert SINCE.match(engine.health(history_limit=0).shared_state)
        app = create_app(auth=AuthSettings(secret=SECRET), engine=engine)
        with TestClient(app) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200                           # still in rotation: requests flow
            assert SINCE.match(ready.json()["shared_state"])
            token = mint_token(AuthSettings(secret=SECRET), sub="ann", tier="free", ttl_s=600)
            answer = client.post("/generate/idea", headers={"Authorization": f"Bearer {token}"},
                                 json={"prompt": "A lighthouse keeper"})
            assert answer.status_code == 200, answer.text
    finally:
        engine.close()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update({"PYTHONPATH": str(ROOT), "TAELIO_MODE": "live", "REDIS_URL": server.url})
    cli = subprocess.run([sys.executable, "-m", "taelio_core", "--policy", str(_policy(tmp_path)), "--db",
                          str(tmp_path / "log.duckdb"), "health"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert re.match(r"Shared state unavailable since \d\d:\d\d UTC", cli.stdout.splitlines()[0]), cli.stdout


def test_hard_budgets_refuse_requests_while_redis_is_down_by_default_and_the_answer_says_why(tmp_path, server):
    server.stop()
    engine = _open(tmp_path, server.url)
    try:
        with pytest.raises(BudgetExceeded) as caught:
            engine.router.generate("free", "idea", Inputs(prompt="A lighthouse keeper"))
        message = str(caught.value)
        assert "budget cannot be checked" in message and SINCE.search(message)
        assert 'when_redis_down = "closed"' in message
        server.start()
        deadline = time.monotonic() + 60
        while not engine.shared.up and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.router.generate("free", "idea", Inputs(prompt="A lighthouse keeper")).ok   # no restart
    finally:
        engine.close()


def test_a_redis_url_of_another_kind_is_refused_with_the_variable_named():
    with pytest.raises(ConfigError, match="REDIS_URL.*not a Redis URL"):
        _ = load_settings(env={"REDIS_URL": "http://cache:6379"}).redis_url


def test_the_redis_password_never_shows_in_what_health_and_readyz_say():
    from tests.servers import free_port
    url = f"redis://:s3cret-redis-pass@127.0.0.1:{free_port()}/0"     # nothing listens there
    settings = load_settings(env={"REDIS_URL": url})
    link = RedisLink(settings.redis_url)
    try:
        assert SINCE.match(link.status()) and "s3cret-redis-pass" not in link.status()
        assert "127.0.0.1" in link.status()
    finally:
        link.close()
