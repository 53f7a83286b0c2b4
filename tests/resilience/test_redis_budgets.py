"""Issue 17 §2: budgets shared through Redis (``REDIS_URL``), and the three LiteLLM failures they must not repeat.

* #26672, a $10 key spent $217 across pods: many processes reserving against one hard budget at once pass it
  by no more than what their in-flight calls cost beyond their worst case;
* #28247, a counter re-seeded from the database with INCRBYFLOAT by several pods at once, inflated N times:
  several processes seeding one period at the same moment add the log's spend once;
* #42653, Redis probed once at boot, so a pod that started while it was down counted budgets alone for life:
  a process started while Redis was down joins the shared budget once Redis is back, with no restart.

Every process here is a real one (``redis_workers.py``) on a real throwaway Redis.
"""
from __future__ import annotations

import json
from decimal import Decimal

import redis

from taelio_core.guards.redis_budgets import RedisBudgetStore
from taelio_core.guards.redis_link import RedisLink
from tests.resilience.redis_support import release, result, worker
from tests.servers import wait_until as _wait_until

KEY = ("tier", "free", "monthly", "2026-12")     # fixed-date-ok: period labels passed to the store, no clock
OTHER = ("provider", "sim", "monthly", "2026-12")




def test_a_reservation_counts_spend_and_every_other_reservation_against_the_hard_cap(redis_url):
    link = RedisLink(redis_url)
    try:
        store = RedisBudgetStore(link)
        store.seed({KEY: Decimal("1.5")}, ["2026-12"])
        assert store.reserve("r1|sim:s1", Decimal("0.3"), [KEY, OTHER], {KEY: Decimal("2")}) is None
        denial = store.reserve("r2|sim:s1", Decimal("0.3"), [KEY], {KEY: Decimal("2")})
        assert denial is not None and denial.key == KEY and denial.used == Decimal("1.8")
        assert store.reserve("r2|sim:s1", Decimal("0.2"), [KEY], {KEY: Decimal("2")}) is None   # 2.0 fits exactly
        store.settle("r1|sim:s1", [KEY, OTHER], Decimal("0.1"))
        store.release("r2|sim:s1")
        link.flush()
        spent, reserved = store.snapshot()
        assert spent == {KEY: Decimal("1.6"), OTHER: Decimal("0.1")}
        assert reserved == {KEY: Decimal(0), OTHER: Decimal(0)}
    finally:
        link.close()


def test_a_retry_reserving_again_before_the_last_settlement_is_sent_keeps_its_own_reservation(redis_url):
    link = RedisLink(redis_url)
    try:
        store = RedisBudgetStore(link)
        assert store.reserve("r1|sim:s1", Decimal("0.3"), [KEY], {KEY: Decimal("1")}) is None
        store.settle("r1|sim:s1", [KEY], Decimal("0.2"))          # queued for the link's thread
        assert store.reserve("r1|sim:s1", Decimal("0.3"), [KEY], {KEY: Decimal("1")}) is None   # the retry
        link.flush()
        spent, reserved = store.snapshot()
        assert spent[KEY] == Decimal("0.2") and reserved[KEY] == Decimal("0.3")
    finally:
        link.close()


def test_many_processes_spending_against_one_hard_budget_pass_it_by_at_most_their_in_flight_excess(redis_url):
    """LiteLLM #26672. True costs run from 0.5 to 1.2 × the reserved worst case, so the bound is not zero:
    spend ≤ cap + what in-flight calls cost beyond their worst case (one call in flight per process). Each
    worker stops after twenty refusals in a row, so the budget ends up used, to within what was in flight."""
    worst, cap, processes = Decimal("0.001"), Decimal("0.05"), 4
    procs = [worker("spend", url=redis_url, cap=str(cap), worst=str(worst), seed=i) for i in range(processes)]
    release(procs)
    outcomes = [result(p) for p in procs]
    served = [o["served"] for o in outcomes]
    spent = sum(Decimal(o["spent"]) for o in outcomes)
    bound = cap + processes * worst * Decimal("0.2")
    assert all(n > 0 for n in served), served                   # every process really spent against the budget
    assert cap - processes * worst * Decimal("1.2") < spent <= bound, (spent, bound)   # used, never passed
    link = RedisLink(redis_url)
    try:
        shared, reserved = RedisBudgetStore(link).snapshot()
    finally:
        link.close()
    assert shared[KEY] == spent and reserved[KEY] == 0            # Redis agrees with the workers, nothing held


def test_several_processes_seeding_one_period_at_once_add_the_logs_spend_once(redis_url):
    """LiteLLM #28247: six processes seed the month from the log at the same moment; the spend counts once."""
    procs = [worker("seed", url=redis_url, amount="3.25", label="2026-12") for _ in range(6)]
    release(procs)
    for p in procs:
        result(p)
    link = RedisLink(redis_url)
    try:
        store = RedisBudgetStore(link)
        assert store.snapshot()[0] == {KEY: Decimal("3.25")}
        store.seed({KEY: Decimal("3.25")}, ["2026-12"])            # a restarted replica seeds again: no change
        assert store.snapshot()[0] == {KEY: Decimal("3.25")}
    finally:
        link.close()


def test_a_process_started_while_redis_was_down_joins_the_shared_budget_once_it_is_back(server):
    """LiteLLM #42653: no probe-once-at-boot. The late process sees what another process spent after Redis came
    back, and is refused by the shared hard budget it would have passed alone."""
    redis_url = server.url
    server.stop()
    late = worker("late", url=redis_url, cap="1.0", worst="0.3")
    first = json.loads(late.stdout.readline())
    assert first["started_up"] is False
    assert first["status"].startswith("shared state unavailable since ")
    server.start()
    link = RedisLink(redis_url)
    try:
        other = RedisBudgetStore(link)
        assert other.reserve("o|sim:s1", Decimal("0.8"), [KEY], {KEY: Decimal("1.0")}) is None
        other.settle("o|sim:s1", [KEY], Decimal("0.8"))
        link.flush()
    finally:
        link.close()
    late.stdin.write("go\n")
    late.stdin.flush()
    out = result(late)
    assert out == {"up": True, "denied": True, "used": "0.800000000"}


def test_while_redis_is_down_hard_budgets_are_refused_by_default_and_checked_per_process_if_the_policy_says(
        server):
    redis_url = server.url
    closed_link, open_link = RedisLink(redis_url, retry_s=0.1), RedisLink(redis_url, retry_s=0.1)
    try:
        closed, opened = RedisBudgetStore(closed_link), RedisBudgetStore(open_link, fail_closed=False)
        closed.seed({KEY: Decimal("0.5")}, ["2026-12"])
        opened.seed({KEY: Decimal("0.5")}, ["2026-12"])
        server.stop()
        denial = closed.reserve("c|sim:s1", Decimal("0.1"), [KEY], {KEY: Decimal("1")})
        assert denial is not None and denial.reason is not None
        assert denial.reason.startswith("shared state unavailable since ")
        assert closed.reserve("c|sim:s1", Decimal("0.1"), [KEY], {}) is None      # a soft budget still counts
        assert opened.reserve("o|sim:s1", Decimal("0.4"), [KEY], {KEY: Decimal("1")}) is None
        assert opened.reserve("o2|sim:s1", Decimal("0.4"), [KEY], {KEY: Decimal("1")}) is not None  # 0.5 + 0.4 + 0.4
        assert opened.snapshot()[0] == {KEY: Decimal("0.5")}       # the last shared figure, kept per process
        server.start()
        _wait_until(lambda: closed_link.up and open_link.up)
        assert closed.reserve("c2|sim:s1", Decimal("0.1"), [KEY], {KEY: Decimal("1")}) is None
    finally:
        closed_link.close()
        open_link.close()


def test_spend_settled_while_redis_was_unreachable_is_added_to_it_once_when_it_answers_again(redis_url):
    """A network outage (Redis keeps its data): the spend counted per process meanwhile joins the shared figure."""
    link = RedisLink(redis_url, retry_s=0.1)
    admin = redis.Redis.from_url(redis_url)
    try:
        store = RedisBudgetStore(link, fail_closed=False)
        store.seed({KEY: Decimal("1")}, ["2026-12"])
        assert store.reserve("before|sim:s1", Decimal("0.2"), [KEY], {KEY: Decimal("5")}) is None
        admin.client_pause(1500, all=True)                        # every other client's command waits: a timeout
        assert store.reserve("during|sim:s1", Decimal("0.2"), [KEY], {KEY: Decimal("5")}) is None
        assert not link.up
        store.settle("before|sim:s1", [KEY], Decimal("0.15"))     # reserved in Redis, ended while it was away
        store.settle("during|sim:s1", [KEY], Decimal("0.05"))
        _wait_until(lambda: link.up)
        link.flush()
        spent, reserved = store.snapshot()
        assert spent == {KEY: Decimal("1.2")} and reserved == {KEY: Decimal(0)}
        link.flush()
        assert store.snapshot()[0] == {KEY: Decimal("1.2")}      # pushed once
    finally:
        admin.close()
        link.close()


def test_redis_that_lost_its_data_is_seeded_again_from_the_log_once(server):
    redis_url = server.url
    log_spend = {"value": Decimal("2")}
    link = RedisLink(redis_url, retry_s=0.1)
    try:
        store = RedisBudgetStore(link, seed_source=lambda: ({KEY: log_spend["value"]}, ["2026-12"]))
        store.seed({KEY: Decimal("2")}, ["2026-12"])
        server.stop()
        assert store.reserve("x|sim:s1", Decimal("0.1"), [KEY], {KEY: Decimal("5")}) is not None   # closed
        log_spend["value"] = Decimal("2.4")                       # what the log holds when Redis comes back empty
        server.start()
        _wait_until(lambda: link.up)
        assert store.snapshot()[0] == {KEY: Decimal("2.4")}
    finally:
        link.close()


def test_a_re_seed_that_cannot_read_the_log_does_not_keep_the_shared_state_away(server):
    def unreadable_log():  # noqa: ANN202
        raise RuntimeError("the call log is closed")
    link = RedisLink(server.url, retry_s=0.1)
    try:
        store = RedisBudgetStore(link, seed_source=unreadable_log)
        server.stop()
        assert store.reserve("x|sim:s1", Decimal("0.1"), [KEY], {KEY: Decimal("5")}) is not None
        server.start()
        _wait_until(lambda: link.up)
        assert store.reserve("y|sim:s1", Decimal("0.1"), [KEY], {KEY: Decimal("5")}) is None
    finally:
        link.close()
