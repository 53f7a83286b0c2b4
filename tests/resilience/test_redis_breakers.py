"""Issue 17 §2: circuit breakers, provider marks and rate limits shared through Redis (``REDIS_URL``)."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from taelio_core.api.limits import LimitExceeded, UserLimits
from taelio_core.api.redis_limits import RedisLimitStore
from taelio_core.guards.breakers import CircuitBreakers
from taelio_core.guards.redis_breakers import RedisBreakerStore, decode, encode
from taelio_core.guards.redis_link import RedisLink
from taelio_core.guards.resilience import BreakerConfig
from taelio_core.routing.clock import SystemClock
from tests.policies import build_policy
from tests.resilience.redis_support import ctx_for, entry, failed_attempt, ok_attempt, result, worker
from tests.servers import wait_until as _wait_until




def _breakers(link: RedisLink, **config: float) -> CircuitBreakers:
    return CircuitBreakers(BreakerConfig(**config), clock=SystemClock(), store=RedisBreakerStore(link))


@contextmanager
def _two_processes(url: str, **config: float) -> Iterator[tuple[list[RedisLink], CircuitBreakers, CircuitBreakers]]:
    """Two processes' links to one Redis and a breaker set on each (as two replicas have)."""
    links = [RedisLink(url), RedisLink(url)]
    try:
        yield links, _breakers(links[0], **config), _breakers(links[1], **config)
    finally:
        for link in links:
            link.close()


def test_a_breaker_state_survives_its_trip_through_redis_with_its_failure_window():
    breakers = CircuitBreakers(clock=SystemClock())
    now = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
    for failed in [True, True, False, True]:
        breakers.observe(ctx_for("r"), (failed_attempt if failed else ok_attempt)("a", "m", at=now))
    state = breakers.states()["a:m"]
    state.until_s = now.timestamp() + 30
    version, back = decode("7|" + encode(state))
    assert version == 7 and back.consecutive == state.consecutive and back.until == state.until
    assert [f for _, f in back.window()] == [f for _, f in state.window()]        # order and outcomes kept
    assert (back.count, back.failures) == (state.count, state.failures) and state.count == 4


def test_a_breaker_opened_by_another_process_makes_this_one_skip_the_entry(redis_url):
    link = RedisLink(redis_url)
    try:
        breakers = _breakers(link)
        assert breakers.admit(ctx_for("r0"), entry("a:m")) is None
        opened = result(worker("open_breaker", url=redis_url, ref="a:m", failures=5))
        assert opened == {"state": "open"}
        _wait_until(lambda: breakers.state_of("a:m") == "open")       # the link's next refresh
        reason = breakers.admit(ctx_for("r1"), entry("a:m"))
        assert reason is not None and reason.startswith("circuit open until ") and "5 failures in a row" in reason
        assert breakers.admit(ctx_for("r1"), entry("a:other")) is None
    finally:
        link.close()


def test_failures_seen_by_two_processes_add_up_in_one_breaker(redis_url):
    with _two_processes(redis_url, consecutive_failures=4) as (links, one, two):
        for i in range(2):
            one.observe(ctx_for(f"a{i}"), failed_attempt("a", "m"))
            links[0].flush()
            two.observe(ctx_for(f"b{i}"), failed_attempt("a", "m"))
            links[1].flush()
        _wait_until(lambda: one.state_of("a:m") == "open")
        assert one.states()["a:m"].reason == "4 failures in a row"


def test_after_the_cool_down_exactly_one_of_several_processes_takes_the_trial(redis_url):
    links = [RedisLink(redis_url) for _ in range(4)]
    try:
        replicas = [_breakers(link, consecutive_failures=1, cooldown_s=0) for link in links]
        replicas[0].observe(ctx_for("x"), failed_attempt("a", "m"))
        links[0].flush()
        for r in replicas:
            _wait_until(lambda r=r: r.state_of("a:m") == "open")
        reasons: list[str | None] = [None] * len(replicas)
        go = threading.Barrier(len(replicas))

        def admit(i: int) -> None:
            go.wait()
            reasons[i] = replicas[i].admit(ctx_for(f"trial-{i}"), entry("a:m"))
        threads = [threading.Thread(target=admit, args=(i,)) for i in range(len(replicas))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert reasons.count(None) == 1, reasons
        assert all(r == "circuit half-open: a trial request is in flight" for r in reasons if r is not None)
    finally:
        for link in links:
            link.close()


def test_a_rejected_key_seen_by_one_process_keeps_the_provider_out_of_another(redis_url):
    links = [RedisLink(redis_url), RedisLink(redis_url)]
    try:
        one, two = (_breakers(link) for link in links)
        one.observe(ctx_for("r"), failed_attempt("a", "m", error_type="auth_failed"))
        links[0].flush()
        _wait_until(lambda: two.state_of("a:*") == "open")
        reason = two.admit(ctx_for("r2"), entry("a:another-model"))
        assert reason is not None and "(key rejected)" in reason
    finally:
        for link in links:
            link.close()


def test_breakers_work_per_process_while_redis_is_down_and_read_the_shared_state_again_after(server):
    link = RedisLink(server.url, retry_s=0.1)
    try:
        breakers = _breakers(link, consecutive_failures=2)
        breakers.observe(ctx_for("r"), failed_attempt("b", "m", error_type="auth_failed"))
        link.flush()
        server.stop()
        breakers.admit(ctx_for("probe"), entry("a:m"))                  # nothing to write: no error either
        for i in range(2):
            breakers.observe(ctx_for(f"r{i}"), failed_attempt("a", "m"))
        link.flush()
        _wait_until(lambda: not link.up)
        assert breakers.state_of("a:m") == "open" and breakers.state_of("b:*") == "open"   # per process
        server.start()                                                  # back, and empty: its state wins
        _wait_until(lambda: link.up)
        assert breakers.state_of("a:m") == "closed" and breakers.state_of("b:*") == "closed"
        assert breakers.admit(ctx_for("after"), entry("a:m")) is None
    finally:
        link.close()


def test_a_users_requests_per_minute_are_counted_across_replicas(redis_url):
    policy = build_policy(providers={"sim": "simulated"}, routes={"free": {"idea": ["sim:s1"]}},
                          tiers={"free": {"requests_per_minute": 3}})
    links = [RedisLink(redis_url), RedisLink(redis_url)]
    clock = lambda: 1_800_000_010.0  # noqa: E731 - one fixed minute
    try:
        replicas = [UserLimits(policy, RedisLimitStore(link), now=clock) for link in links]
        replicas[0].admit("free", "ann")
        replicas[1].admit("free", "ann")
        replicas[0].admit("free", "ann")
        with pytest.raises(LimitExceeded, match="3 requests a minute"):
            replicas[1].admit("free", "ann")
        replicas[1].admit("free", "bob")                                 # another user's own count
    finally:
        for link in links:
            link.close()


def test_rate_limits_count_per_process_while_redis_is_down(server):
    policy = build_policy(providers={"sim": "simulated"}, routes={"free": {"idea": ["sim:s1"]}},
                          tiers={"free": {"requests_per_minute": 1}})
    link = RedisLink(server.url)
    try:
        limits = UserLimits(policy, RedisLimitStore(link), now=lambda: 1_800_000_010.0)
        server.stop()
        limits.admit("free", "ann")
        assert not link.up
        with pytest.raises(LimitExceeded):
            limits.admit("free", "ann")
    finally:
        link.close()


def test_the_process_that_sees_the_opening_failure_skips_the_entry_on_its_very_next_request(redis_url):
    """Outcomes reach Redis on the link's thread; until then this process reads the breaker with them applied."""
    with _two_processes(redis_url, consecutive_failures=5) as (links, one, two):
        for i in range(3):
            one.observe(ctx_for(f"r{i}"), failed_attempt("a", "m"))
        assert one.states()["a:m"].consecutive == 3                      # read before it is written
        links[0].flush()
        _wait_until(lambda: "a:m" in two.states())
        assert two.states()["a:m"].consecutive == one.states()["a:m"].consecutive == 3   # written once each
        for i in range(3, 5):
            assert one.admit(ctx_for(f"r{i}"), entry("a:m")) is None
            one.observe(ctx_for(f"r{i}"), failed_attempt("a", "m"))
        # No flush, no wait: the sixth request on the same process is skipped at once.
        reason = one.admit(ctx_for("r5"), entry("a:m"))
        assert reason is not None and "5 failures in a row" in reason
        links[0].flush()
        _wait_until(lambda: two.state_of("a:m") == "open")
        assert two.states()["a:m"].reason == one.states()["a:m"].reason == "5 failures in a row"
