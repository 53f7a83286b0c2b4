"""Issue #2's "Done when", end to end: the ``taelio`` CLI as a subprocess, live mode, through each real SDK.

The keys are fake and the SDKs' own base-URL variables point at the local
fake server, so every request goes through ``openai``, ``anthropic`` and
``google-genai`` exactly as it would in production, and the DuckDB file is
checked afterwards with costs recomputed by ``genai_prices.calc_price``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import genai_prices
import pytest

from tests.conftest import CLEARED_ENV
from tests.fakeserver import FakeServer, Fault

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"OPENAI_API_KEY": "sk-live-test-openai-0123456789", "ANTHROPIC_API_KEY": "sk-ant-live-test-0123456789",
        "GEMINI_API_KEY": "AIzaLiveTest0123456789abcdefghijklmn"}
PROVIDER_KEY = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}
# The seed policy's chains used below.
PRO_IDEA = {"openai": "gpt-4", "anthropic": "claude-3-sonnet-20240229", "gemini": "gemini-1.5-pro"}
FREE_IDEA = [("gemini", "gemini-1.5-flash"), ("openai", "gpt-3.5-turbo"), ("anthropic", "claude-3-haiku-20240307")]


def taelio(fake: FakeServer, db: Path, *args: str, keys: dict[str, str] = KEYS) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env.update(fake.env(**keys))
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "taelio_core", "--db", str(db), *args], capture_output=True,
                          text=True, env=env, timeout=120, cwd=db.parent)


def rows(db: Path, sql: str, *params: object) -> list[dict]:
    with duckdb.connect(str(db), read_only=True) as con:
        cur = con.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def catalogue_cost(provider: str, model: str, input_tokens: int, output_tokens: int, cached: int, ts) -> Decimal:  # noqa: ANN001
    usage = genai_prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens,
                               cache_read_tokens=cached or None)
    provider_id = {"gemini": "google"}.get(provider, provider)
    return genai_prices.calc_price(usage, model, provider_id=provider_id,
                                   genai_request_timestamp=ts).total_price


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "log.duckdb"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_generate_answers_through_each_real_sdk(fake_server: FakeServer, db: Path, provider: str,
                                                stream: bool) -> None:
    model = PRO_IDEA[provider]
    out = taelio(fake_server, db, "generate", "--tier", "pro", "--task", "idea", "--provider", provider,
                 "--prompt", "A lighthouse", "--json", *(["--stream"] if stream else []))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["status"], doc["provider"], doc["model"]) == ("ok", provider, model)
    expected = f"A fake {provider} answer from {model}: a lighthouse keeper finds a message."
    assert doc["text"] == expected
    if stream:
        assert expected in out.stderr  # streamed text goes to stderr with --json
    [sent] = fake_server.requests
    assert (sent.provider, sent.model, sent.stream) == (provider, model, stream)
    assert sent.key == KEYS[PROVIDER_KEY[provider]]
    assert "demo mode" not in out.stderr


def test_falls_back_in_chain_order_and_logs_every_attempt_with_catalogue_cost(fake_server: FakeServer,
                                                                              db: Path) -> None:
    fake_server.fail("gemini", "unavailable", times=None)
    fake_server.fail("openai", "auth", times=None)
    fake_server.set_usage("anthropic", input_tokens=1800, output_tokens=240, cached_tokens=1024)
    out = taelio(fake_server, db, "generate", "--tier", "free", "--task", "idea", "--prompt", "A lighthouse",
                 "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["provider"], doc["model"]) == FREE_IDEA[2]
    tried = [a["provider"] for a in doc["attempts"]]
    assert list(dict.fromkeys(tried)) == ["gemini", "openai", "anthropic"]
    assert list(dict.fromkeys(r.provider for r in fake_server.requests)) == ["gemini", "openai", "anthropic"]
    by_provider = {a["provider"]: a for a in doc["attempts"]}
    assert (by_provider["gemini"]["error_type"], by_provider["gemini"]["http_status"]) == ("unavailable", 503)
    assert (by_provider["openai"]["error_type"], by_provider["openai"]["http_status"]) == ("auth_failed", 401)

    [request] = rows(db, "SELECT * FROM requests")
    attempts = rows(db, "SELECT * FROM attempts WHERE request_id = ? ORDER BY n", request["request_id"])
    assert request["status"] == "ok" and request["provider"] == "anthropic"
    # Two moves to another entry; gemini's retries (a 503 is retried) are retries, not fallbacks.
    assert request["fallback_depth"] == 2
    assert request["retries"] == sum(1 for a in attempts if a["retry"]) == len(attempts) - 3
    assert [a["provider"] for a in attempts] == tried
    served = attempts[-1]
    assert (served["status"], served["input_tokens"], served["output_tokens"], served["cached_tokens"]) == \
        ("ok", 1800, 240, 1024)
    expected = catalogue_cost("anthropic", FREE_IDEA[2][1], 1800, 240, 1024, served["ts"])
    assert served["cost_usd"] == pytest.approx(expected, abs=Decimal("1e-10"))
    assert request["cost_usd"] == served["cost_usd"]
    for failed in attempts[:-1]:
        assert failed["status"] == "error" and failed["cost_usd"] is None  # no tokens reported, nothing priced
    for key in KEYS.values():  # the fake echoed the OpenAI key in its 401 body
        assert key not in out.stdout + out.stderr
        assert not rows(db, "SELECT 1 FROM attempts WHERE error LIKE ?", f"%{key}%")


def test_skips_entries_with_no_key(fake_server: FakeServer, db: Path) -> None:
    keys = {k: v for k, v in KEYS.items() if k != "GEMINI_API_KEY"}
    out = taelio(fake_server, db, "generate", "--tier", "free", "--task", "idea", "--prompt", "A lighthouse",
                 "--json", keys=keys)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["provider"] == "openai" and [a["provider"] for a in doc["attempts"]] == ["openai"]
    [skip] = doc["skipped"]
    assert skip["provider"] == "gemini" and "no API key" in skip["reason"]
    assert [r.provider for r in fake_server.requests] == ["openai"]


def test_when_every_entry_fails_it_says_so_and_exits_3(fake_server: FakeServer, db: Path) -> None:
    fake_server.fail("gemini", "server_error", times=None)
    fake_server.fail("openai", "not_found", times=None)
    fake_server.fail("anthropic", Fault.named("blocked"), times=None)
    out = taelio(fake_server, db, "generate", "--tier", "free", "--task", "idea", "--prompt", "A lighthouse")
    assert out.returncode == 3
    assert "Traceback" not in out.stderr
    [message] = [line for line in out.stderr.splitlines() if line.startswith("taelio: ")]
    assert message.startswith("taelio: Every provider failed for free/idea")
    for name, model in FREE_IDEA:
        assert f"{name}:{model}" in message
    [request] = rows(db, "SELECT * FROM requests")
    assert request["status"] == "failed" and request["provider"] is None
    types = {(a["provider"], a["error_type"], a["http_status"]) for a in
             rows(db, "SELECT * FROM attempts WHERE request_id = ?", request["request_id"])}
    assert types == {("gemini", "unavailable", 500), ("openai", "model_not_found", 404),
                     ("anthropic", "content_blocked", 200)}


def test_taelio_test_probes_one_provider_through_its_sdk(fake_server: FakeServer, db: Path) -> None:
    fake_server.set_usage("openai", input_tokens=50, output_tokens=20)
    out = taelio(fake_server, db, "test", "--provider", "openai", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["status"] == "ok" and doc["provider"] == "openai" and doc["source"] == "test"
    [sent] = fake_server.requests
    assert sent.provider == "openai" and sent.body["max_completion_tokens"] == 64
    [request] = rows(db, "SELECT source, status, input_tokens, output_tokens, cost_usd FROM requests")
    assert request["source"] == "test" and (request["input_tokens"], request["output_tokens"]) == (50, 20)
    assert request["cost_usd"] is not None and request["cost_usd"] > 0


def test_taelio_test_reports_a_rejected_key_in_one_sentence(fake_server: FakeServer, db: Path) -> None:
    fake_server.fail("openai", "auth")
    out = taelio(fake_server, db, "test", "--provider", "openai")
    assert out.returncode == 3
    assert "key rejected" in out.stdout and "HTTP 401" in out.stdout
    assert KEYS["OPENAI_API_KEY"] not in out.stdout + out.stderr and "Traceback" not in out.stderr
