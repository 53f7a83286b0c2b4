"""Circuit breakers: opening, cool-down, the half-open trial, health marks, and their logged history."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taelio_core.calllog import DuckDBCallLog
from taelio_core.errors import AuthFailed, BadRequest, ModelNotFound, ProviderUnavailable
from taelio_core.guards.breakers import CircuitBreakers
from taelio_core.monitoring.health import BreakerEventLog, health_report
from taelio_core.providers.function import FunctionProvider
from tests.resilience.support import INPUTS, FakeClock, policy, router, run, scripted

ROOT = Path(__file__).resolve().parents[2]
QUICK = "[resilience]\nmax_retries = 0\n[breakers]\nconsecutive_failures = 3\ncooldown_s = 30\n"


def _served(r, n=1, **kw):
    return [run(r.agenerate("pro", "idea", INPUTS, **kw)) for _ in range(n)]


def test_opens_after_n_consecutive_failures_and_skips_with_the_time():
    clock = FakeClock()
    a = scripted("a", [ProviderUnavailable])
    r = router({"a": a, "b": scripted("b", ["b"])}, extra=QUICK, clock=clock)
    results = _served(r, 4)
    assert [len(x.attempts) for x in results] == [2, 2, 2, 1]
    assert r.breakers.state_of("a:a1") == "open"
    assert results[3].skipped[0].reason == "circuit open until 14:00:30 (3 failures in a row)"
    assert len(a.calls) == 3
    route = {e.ref: e for e in r.route("pro", "idea")}
    assert not route["a:a1"].available and route["a:a1"].reason.startswith("circuit open until 14:00:30")


def test_opens_on_failure_rate_over_the_window_once_min_calls_were_made():
    clock = FakeClock()
    r = router({"a": scripted("a", [ProviderUnavailable, "ok", ProviderUnavailable, "ok", ProviderUnavailable])},
               extra="[resilience]\nmax_retries = 0\n[breakers]\nconsecutive_failures = 100\n"
                     "failure_rate = 0.5\nmin_calls = 5\nwindow_s = 60\n", clock=clock)
    _served(r, 4)
    assert r.breakers.state_of("a:a1") == "closed"  # 2 of 4 failed, but fewer than min_calls
    _served(r, 1)
    assert r.breakers.state_of("a:a1") == "open"
    assert r.breakers.states()["a:a1"].reason == "3 of the last 5 calls failed"


def test_old_failures_leave_the_window():
    clock = FakeClock()
    r = router({"a": scripted("a", [ProviderUnavailable, "ok"] * 10)},
               extra="[resilience]\nmax_retries = 0\n[breakers]\nconsecutive_failures = 100\n"
                     "failure_rate = 0.5\nmin_calls = 3\nwindow_s = 10\n", clock=clock)
    for _ in range(4):
        _served(r, 1)
        clock.advance(11)  # each outcome is alone in its window
    assert r.breakers.state_of("a:a1") == "closed"


def test_after_cool_down_one_trial_decides_closed():
    clock = FakeClock()
    r = router({"a": scripted("a", [ProviderUnavailable] * 3 + ["back"]), "b": scripted("b", ["b"])},
               extra=QUICK, clock=clock)
    _served(r, 3)
    clock.advance(31)
    result = _served(r, 1)[0]
    assert result.provider == "a" and r.breakers.state_of("a:a1") == "closed"


def test_failed_trial_reopens_and_only_one_trial_runs_at_a_time():
    clock = FakeClock()
    gate = asyncio.Event()

    async def slow_fail(model, request):
        await gate.wait()
        raise ProviderUnavailable("down", provider="a", model=model, http_status=503)

    calls = {"n": 0}

    async def a_fn(model, request):
        calls["n"] += 1
        if calls["n"] <= 3:
            raise ProviderUnavailable("down", provider="a", model=model, http_status=503)
        return await slow_fail(model, request)

    r = router({"a": FunctionProvider("a", a_fn), "b": scripted("b", ["b"])}, extra=QUICK, clock=clock)
    _served(r, 3)
    clock.advance(31)

    async def two_at_once():
        trial = asyncio.ensure_future(r.agenerate("pro", "idea", INPUTS))
        await asyncio.sleep(0.01)
        other = await r.agenerate("pro", "idea", INPUTS)
        gate.set()
        return await trial, other

    trial, other = run(two_at_once())
    assert other.skipped[0].reason == "circuit half-open: a trial request is in flight"
    assert [a.provider for a in trial.attempts] == ["a", "b"]
    assert r.breakers.state_of("a:a1") == "open"
    assert r.breakers.states()["a:a1"].reason == "trial request failed"


def test_a_rejected_key_marks_the_whole_provider_unhealthy():
    clock = FakeClock()
    extra = QUICK + '[routes.admin]\nidea = ["a:a2", "c:c1"]\n[tiers.admin]\n'
    r = router({"a": scripted("a", [AuthFailed]), "c": scripted("c", ["c"])}, extra=extra, clock=clock)
    run(r.agenerate("pro", "idea", INPUTS))
    other_model = run(r.agenerate("admin", "idea", INPUTS))
    assert other_model.skipped[0].provider == "a"
    assert other_model.skipped[0].reason == "circuit open until 14:10:00 (key rejected)"


def test_a_missing_model_is_marked_model_retired():
    clock = FakeClock()
    r = router({"a": scripted("a", [ModelNotFound]), "b": scripted("b", ["b"])}, extra=QUICK, clock=clock)
    _served(r, 2)
    assert r.breakers.states()["a:a1"].reason == "model retired?"
    assert r.route("pro", "idea")[0].reason == "circuit open until 14:10:00 (model retired?)"


def test_bad_requests_do_not_open_the_breaker():
    r = router({"a": scripted("a", [BadRequest]), "b": scripted("b", ["b"])}, extra=QUICK)
    _served(r, 5)
    assert r.breakers.state_of("a:a1") == "closed"


def test_transitions_are_logged_and_shown_by_taelio_health(tmp_path):
    db = tmp_path / "log.duckdb"
    log = DuckDBCallLog(db)
    clock = FakeClock()
    events = BreakerEventLog(log)
    pol = policy(QUICK)
    breakers = CircuitBreakers(pol.model.breakers, clock=clock, unhealthy_s=600, on_transition=events)
    r = router({"a": scripted("a", [ProviderUnavailable] * 3 + ["back"]), "b": scripted("b", ["b"])},
               extra=QUICK, clock=clock, breakers=breakers, sink=log)
    _served(r, 3)
    clock.advance(31)
    _served(r, 1)
    events.close()
    log.flush()
    report = health_report(policy=pol, now=clock.now(), call_log=log, breakers=breakers)
    moves = list(zip(report.history["from_state"], report.history["to_state"]))[::-1]
    assert moves == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert report.states.set_index("model").loc["a1", "state"] == "closed"
    log.close()
    # A fresh process reads the same history from the file.
    policy_file = tmp_path / "p.toml"
    policy_file.write_text(pol.text)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "taelio_core", "--policy", str(policy_file), "--db", str(db),
                          "health", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [h["to_state"] for h in doc["history"]] == ["closed", "half_open", "open"]
    assert {b["model"]: b["state"] for b in doc["breakers"]}["a1"] == "closed"
    text = subprocess.run([sys.executable, "-m", "taelio_core", "--policy", str(policy_file), "--db", str(db),
                           "health"], capture_output=True, text=True, env=env, timeout=60)
    assert "a:a1 closed -> open: 3 failures in a row" in text.stdout


def test_an_open_breaker_in_the_log_shows_in_a_fresh_process(tmp_path):
    log = DuckDBCallLog(tmp_path / "log.duckdb")
    clock = FakeClock()
    clock.start = clock.start.replace(year=2099)  # still open when the CLI looks
    events = BreakerEventLog(log)
    pol = policy(QUICK)
    breakers = CircuitBreakers(pol.model.breakers, clock=clock, on_transition=events)
    r = router({"a": scripted("a", [AuthFailed]), "b": scripted("b", ["b"])}, extra=QUICK, clock=clock,
               breakers=breakers)
    _served(r, 1)
    events.close()
    report = health_report(policy=pol, now=clock.now(), call_log=log)
    row = report.states[report.states["model"] == "*"].iloc[0]
    assert (row["provider"], row["state"], row["reason"]) == ("a", "open", "key rejected")
    later = health_report(policy=pol, now=clock.now().replace(year=2100), call_log=log)
    assert later.states[later.states["model"] == "*"].iloc[0]["state"] == "half_open"
    log.close()


def test_breakers_can_be_turned_off():
    r = router({"a": scripted("a", [ProviderUnavailable]), "b": scripted("b", ["b"])},
               extra="[resilience]\nmax_retries = 0\n[breakers]\nenabled = false\nconsecutive_failures = 1\n")
    results = _served(r, 3)
    assert all(len(x.attempts) == 2 for x in results)


@pytest.mark.parametrize("bad, key", [("consecutive_failures = 0", "breakers.consecutive_failures"),
                                      ("failure_rate = 1.5", "breakers.failure_rate"),
                                      ("cooldown = 3", "breakers.cooldown")])
def test_bad_breaker_config_names_the_key_and_line(bad, key):
    from taelio_core.errors import ConfigError
    with pytest.raises(ConfigError) as info:
        policy(f"[breakers]\n{bad}\n")
    assert f"key '{key}'" in str(info.value) and "test.toml:" in str(info.value)
