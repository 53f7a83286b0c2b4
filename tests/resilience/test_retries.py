"""Retry rules per error class, backoff with full jitter, and the request deadline (router level)."""
from __future__ import annotations

import random
import re

import pytest

from datetime import datetime, timezone

from taelio_core.routing.clock import LoopClock
from taelio_core.errors import (
    AllProvidersFailed,
    AuthFailed,
    BadRequest,
    ModelNotFound,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from taelio_core.guards.resilience import ResilienceConfig
from taelio_core.routing.decisions import FALL_BACK, STOP, after_outcome
from taelio_core.providers.function import FunctionProvider
from tests.resilience.support import INPUTS, FakeClock, never, router, run, scripted


def _attempts(result):
    return [(a.provider, a.status, a.error_type, a.retry) for a in result.attempts]


def test_unavailable_is_retried_with_backoff_then_succeeds_on_the_same_entry():
    clock = FakeClock()
    r = router({"a": scripted("a", [ProviderUnavailable, ProviderUnavailable, "fine"])}, clock=clock)
    result = run(r.agenerate("pro", "idea", INPUTS))
    assert result.status == "ok" and result.provider == "a"
    assert _attempts(result) == [("a", "error", "unavailable", 0), ("a", "error", "unavailable", 1),
                                 ("a", "ok", None, 2)]
    # Full jitter: each wait is in [0, base * 2^n] (base 0.5 s by default).
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 0.5 and 0 <= clock.sleeps[1] <= 1.0


def test_timeouts_use_at_most_k_retries_then_fall_back():
    r = router({"a": scripted("a", [ProviderTimeout]), "b": scripted("b", ["from b"])},
               extra="[resilience]\nmax_retries = 1\n")
    result = run(r.agenerate("pro", "idea", INPUTS))
    assert result.provider == "b"
    assert _attempts(result) == [("a", "error", "timeout", 0), ("a", "error", "timeout", 1), ("b", "ok", None, 0)]


@pytest.mark.parametrize("error, error_type", [(AuthFailed, "auth_failed"), (ModelNotFound, "model_not_found"),
                                               (BadRequest, "bad_request")])
def test_auth_model_and_request_errors_fall_back_at_once(error, error_type):
    clock = FakeClock()
    r = router({"a": scripted("a", [error]), "b": scripted("b", ["from b"])}, clock=clock)
    result = run(r.agenerate("pro", "idea", INPUTS))
    assert _attempts(result) == [("a", "error", error_type, 0), ("b", "ok", None, 0)]
    assert clock.sleeps == []


def _rate_limited(retry_after):
    def fn(model, request):
        raise RateLimited("slow down", provider="a", model=model, http_status=429, retry_after=retry_after)
    return fn


def test_rate_limit_waits_for_retry_after_when_it_fits_in_the_deadline():
    clock = FakeClock()
    calls = {"n": 0}

    def fn(model, request):
        calls["n"] += 1
        if calls["n"] == 1:
            _rate_limited(2.0)(model, request)
        return "after waiting"

    r = router({"a": FunctionProvider("a", fn)}, clock=clock)
    result = run(r.agenerate("pro", "idea", INPUTS))
    assert result.provider == "a" and clock.sleeps == [2.0]
    assert _attempts(result) == [("a", "error", "rate_limited", 0), ("a", "ok", None, 1)]
    assert result.attempts[0].http_status == 429


def test_rate_limit_falls_back_when_retry_after_does_not_fit():
    clock = FakeClock()
    r = router({"a": FunctionProvider("a", _rate_limited(120.0)), "b": scripted("b", ["from b"])}, clock=clock)
    result = run(r.agenerate("pro", "idea", INPUTS, deadline_s=30))
    assert clock.sleeps == [] and result.provider == "b"
    assert _attempts(result) == [("a", "error", "rate_limited", 0), ("b", "ok", None, 0)]


def test_rate_limit_without_retry_after_falls_back():
    r = router({"a": FunctionProvider("a", _rate_limited(None)), "b": scripted("b", ["from b"])})
    result = run(r.agenerate("pro", "idea", INPUTS))
    assert [a.provider for a in result.attempts] == ["a", "b"]


def test_no_request_outlives_its_deadline():
    """Without the deadline share, a provider that never answers has its timeout cut to the deadline, and the
    rest are skipped."""
    r = router({"a": FunctionProvider("a", never), "b": scripted("b", ["late"])},
               clock=LoopClock(datetime(2026, 1, 1, tzinfo=timezone.utc)),
               extra="[resilience]\nshare_deadline = false\n")
    with pytest.raises(AllProvidersFailed) as info:
        run(r.agenerate("pro", "idea", INPUTS, deadline_s=0.05))
    result = info.value.result
    assert [(a.provider, a.error_type) for a in result.attempts] == [("a", "timeout")]
    # not the 5 s attempt timeout, but what was left of the 0.05 s deadline (a real clock: a hair under it)
    assert re.fullmatch(r"sent, no answer within 0\.0\d+ s \(the request's deadline\)", result.attempts[0].error)
    assert [(s.provider, s.reason) for s in result.skipped] == [
        ("b", "the request's deadline (0.05 s) has passed"), ("c", "the request's deadline (0.05 s) has passed")]


def test_a_bad_deadline_is_an_input_error():
    from taelio_core.errors import InputError
    r = router({})
    with pytest.raises(InputError, match="deadline"):
        run(r.agenerate("pro", "idea", INPUTS, deadline_s=-1))


def test_the_retry_rules_of_the_decision_core():
    cfg, rng = ResilienceConfig(max_retries=2, backoff_base_s=1, backoff_max_s=3), random.Random(3)

    def after(cfg, error_type, retries, retry_after=None, draw=rng.random):
        return after_outcome(cfg, "error", error_type, retry_after, retries, 100.0, 0.0, 0.0, draw)

    assert after(cfg, "unavailable", 5) == FALL_BACK          # retries used
    waits = [after(cfg, "timeout", 1) for _ in range(200)]
    assert all(0 <= w <= 2 for w in waits) and max(waits) > 1  # full jitter over [0, 1 * 2^1]
    cfg5 = ResilienceConfig(max_retries=5, backoff_base_s=1, backoff_max_s=3)
    capped = [after(cfg5, "timeout", 4, draw=random.Random(i).random) for i in range(50)]
    assert max(capped) <= 3 < 1 * 2 ** 4  # the cap, not 2^n
    assert after(cfg, "bad_request", 0) == FALL_BACK
    assert after(cfg, "rate_limited", 0, retry_after=40) == FALL_BACK  # over max_retry_after_s (30)
    assert after(cfg, "rate_limited", 0, retry_after=2.5) == 2.5       # Retry-After, waited exactly
    assert after_outcome(cfg, "ok", None, None, 0, 100.0, 0.0, 0.0, rng.random) == STOP
    assert after_outcome(cfg, "truncated", "truncated", None, 0, 100.0, 0.0, 0.0, rng.random) == STOP
    assert after_outcome(cfg, "truncated", "truncated", None, 0, 100.0, 0.0, 0.0, rng.random,
                         continue_on_truncation=True) == FALL_BACK


def test_the_failure_sentence_says_retries_once():
    r = router({"a": scripted("a", [ProviderUnavailable]), "b": scripted("b", [AuthFailed]),
                "c": scripted("c", [BadRequest])}, extra="[resilience]\nbackoff_base_s = 0\n")
    with pytest.raises(AllProvidersFailed) as info:
        run(r.agenerate("pro", "idea", INPUTS))
    assert str(info.value) == ("Every provider failed for pro/idea: a:a1 unavailable (server error or connection "
                               "failed) (3 tries); b:b1 key rejected; c:c1 request rejected.")
    assert len(info.value.attempts) == 5
