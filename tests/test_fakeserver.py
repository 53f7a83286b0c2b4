"""The fake provider server's own behaviour: fault queueing, recording, and the standalone process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fakeserver import FakeServer, Fault

ROOT = Path(__file__).resolve().parents[1]


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": "Bearer k-123"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def chat(base: str, model: str = "gpt-4") -> tuple[int, dict]:
    return post(f"{base}/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "hi"}]})


def test_faults_are_used_in_order_model_first_then_provider_wide(fake_server: FakeServer) -> None:
    fake_server.fail("openai", Fault.named("server_error"))
    fake_server.fail("openai", Fault.named("not_found"), model="gpt-4", times=2)
    statuses = [chat(fake_server.url)[0] for _ in range(4)]
    assert statuses == [404, 404, 500, 200]
    assert [r.fault for r in fake_server.requests] == ["not_found", "not_found", "server_error", None]


def test_a_repeating_fault_lasts_until_cleared(fake_server: FakeServer) -> None:
    fake_server.fail("openai", "unavailable", times=None)
    assert [chat(fake_server.url)[0] for _ in range(3)] == [503, 503, 503]
    fake_server.clear()
    assert chat(fake_server.url)[0] == 200


def test_a_spread_fault_hits_every_nth_request_after_the_queued_ones(fake_server: FakeServer) -> None:
    fake_server.fail_every("openai", "unavailable", 3)
    fake_server.fail("openai", "server_error")
    assert [chat(fake_server.url)[0] for _ in range(7)] == [500, 200, 200, 503, 200, 200, 503]
    fake_server.clear()
    assert [chat(fake_server.url)[0] for _ in range(3)] == [200, 200, 200]


def test_requests_are_recorded_with_key_body_and_model(fake_server: FakeServer) -> None:
    status, body = chat(fake_server.url, model="gpt-4.1")
    assert status == 200 and body["model"] == "gpt-4.1"
    [rec] = fake_server.requests
    assert (rec.provider, rec.protocol, rec.model, rec.key, rec.stream) == ("openai", "openai", "gpt-4.1", "k-123",
                                                                         False)
    assert rec.body["messages"][0]["content"] == "hi"


def test_an_expected_key_makes_any_other_key_fail_as_the_real_api_does(fake_server: FakeServer) -> None:
    fake_server.expected_keys["openai"] = "sk-the-right-one-123"
    status, body = chat(fake_server.url)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


def test_unknown_fault_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault(kind="explode")


def test_standalone_process_serves_and_is_scriptable_over_http() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakeserver", "--port", "0"], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().strip()
        assert ready.startswith("READY http://127.0.0.1:")
        base = ready.split(" ", 1)[1]
        assert post(f"{base}/_fake/fail", {"provider": "openai", "fault": "rate_limited"})[0] == 200
        status, body = chat(base)
        assert status == 429 and body["error"]["code"] == "rate_limit_exceeded"
        assert chat(base)[0] == 200
        assert post(f"{base}/_fake/fail_every", {"provider": "openai", "fault": "unavailable", "every": 2})[0] == 200
        assert [chat(base)[0] for _ in range(2)] == [200, 503]
        with urllib.request.urlopen(f"{base}/_fake/requests", timeout=10) as response:
            recorded = json.loads(response.read())["requests"]
        assert [r["fault"] for r in recorded] == ["rate_limited", None, None, "unavailable"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
