"""Charts over time are right with one hour of data or a month of it.

The bucket follows the span of the data (minute, hour, day); minute buckets read the same figures as raw
SQL; Health keeps hourly points over a month, so a 3.5-hour outage shows; the bucket still filling at
``now`` is reported as partial; "vs previous period" needs a log that covers the previous period.
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from taelio_core import analytics as A
from taelio_core.analytics.time_buckets import choose_bucket, choose_step
from taelio_core.calllog import DuckDBCallLog
from taelio_core.config.policy_schema import Budgets
from taelio_core.routing.generation import Usage
from taelio_core.routing.trace import Attempt, GenerationResult, RouteEntry

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)          # passed to every function under test
TODAY = NOW.date()


def request_at(ts: datetime, provider: str = "openai", *, ok: bool = True, source: str = "live") -> GenerationResult:
    usage = Usage(input_tokens=100, output_tokens=50) if ok else Usage()
    attempt = Attempt(n=1, provider=provider, model="m", status="ok" if ok else "error", started_at=ts,
                      latency_ms=200.0, ttft_ms=50.0 if ok else None, error_type=None if ok else "unavailable",
                      error=None if ok else f"{provider}: unavailable (test)", http_status=None if ok else 503,
                      usage=usage, cost_usd=Decimal("0.001") if ok else None, price_source="test" if ok else None,
                      simulated=False, text="answer" if ok else "")
    return GenerationResult(
        request_id=uuid.uuid4().hex, parent_id=None, tier="free", task="idea", policy="seed", source=source,
        status="ok" if ok else "failed", started_at=ts, text="answer" if ok else "", provider=provider if ok else None,
        model="m" if ok else None, latency_ms=200.0, ttft_ms=50.0 if ok else None,
        chain=(RouteEntry(provider=provider, model="m", available=True),), attempts=(attempt,), skipped=(),
        error=None if ok else "failed (test)", prompt="p")


def write_log(path: Path, results: list[GenerationResult]) -> Path:
    log = DuckDBCallLog(path)
    for r in results:
        log.record(r)
    log.flush(timeout=30)
    log.close()
    return path


def test_one_busy_hour_is_drawn_in_minutes_that_add_up_to_the_raw_rows(tmp_path) -> None:
    times = [NOW - timedelta(minutes=2, seconds=s) for s in range(0, 3600, 6)]   # 600 requests, ten a minute
    path = write_log(tmp_path / "busy.duckdb", [request_at(t, ok=i % 7 != 0) for i, t in enumerate(times)])
    f = A.Filters.last_days(30, today=TODAY)
    with DuckDBCallLog(path) as log:
        health = A.health_view(log, f, now=NOW)
        raw = log.query("SELECT date_trunc('minute', ts AT TIME ZONE 'UTC') AS bucket, count(*) AS n "
                        "FROM attempts GROUP BY ALL ORDER BY 1")
    assert health.axis.bucket == "minute" and health.axis.step_minutes == 1 and health.axis.label == "minute"
    got = health.availability.groupby("bucket")["attempts"].sum()
    assert list(got.index) == list(raw["bucket"]) and list(got) == list(raw["n"])


def test_the_bucket_follows_the_span_of_the_data() -> None:
    assert choose_bucket(None) == "day"
    assert choose_bucket(timedelta(minutes=40)) == "minute"
    assert choose_bucket(timedelta(hours=3)) == "minute"
    assert choose_bucket(timedelta(hours=20)) == "hour"
    assert choose_bucket(timedelta(days=30)) == "day"
    assert choose_bucket(timedelta(days=30), hourly_up_to=timedelta(days=31)) == "hour"
    assert choose_bucket(timedelta(days=400)) == "week"


def test_a_sub_hour_point_spans_enough_minutes_to_hold_a_few_attempts() -> None:
    assert choose_step(timedelta(minutes=59), 600) == 1                    # ten a minute: minute points
    assert choose_step(timedelta(minutes=59), 60) == 5                     # one a minute: 5-minute points
    assert choose_step(timedelta(minutes=59), 20) == 15
    assert choose_step(timedelta(minutes=59), 2) == 15                     # never coarser than 15 minutes
    assert choose_step(timedelta(0), 1) == 15


def test_one_hour_of_sparse_data_is_drawn_in_15_minute_points_that_add_up_to_the_raw_rows(tmp_path) -> None:
    times = [NOW - timedelta(minutes=m) for m in range(2, 62, 3)]          # 20 requests over the last hour
    results = [request_at(t, ok=i % 4 != 0) for i, t in enumerate(times)]
    path = write_log(tmp_path / "hour.duckdb", results)
    f = A.Filters.last_days(30, today=TODAY)
    with DuckDBCallLog(path) as log:
        view = A.costs_view(log, f, Budgets(), now=NOW)
        health = A.health_view(log, f, now=NOW)
        raw = log.query("SELECT time_bucket(INTERVAL 15 MINUTE, ts AT TIME ZONE 'UTC') AS bucket, count(*) AS n, "
                        "count(*) FILTER (WHERE status <> 'ok') AS errors FROM attempts GROUP BY ALL ORDER BY 1")
    assert view.axis.bucket == "minute" and health.axis.bucket == "minute"
    assert view.axis.step_minutes == 15 and view.axis.label == "15 minutes"
    assert len(view.usage) == len(raw) == 4 and view.usage["requests"].sum() == 20
    assert list(view.usage["bucket"]) == list(raw["bucket"])
    errors = health.errors_over_time.groupby("bucket")["errors"].sum()
    assert errors.sum() == raw["errors"].sum() == 5
    assert health.availability["attempts"].sum() == 20
    # The stored rollups are still hourly afterwards: the minute tables were temporary.
    with DuckDBCallLog(path) as log:
        assert len(A.usage_over_time(log, f, bucket="hour")) <= 2


def test_a_three_and_a_half_hour_outage_shows_on_health_over_a_month(tmp_path) -> None:
    start = NOW - timedelta(days=30)
    outage = (NOW - timedelta(days=10), NOW - timedelta(days=10) + timedelta(hours=3, minutes=30))
    results = []
    t = start
    while t < NOW - timedelta(minutes=1):
        down = outage[0] <= t < outage[1]
        results.append(request_at(t, "openai", ok=not down))
        t += timedelta(minutes=20)
    path = write_log(tmp_path / "month.duckdb", results)
    with DuckDBCallLog(path) as log:
        health = A.health_view(log, A.Filters.last_days(31, today=TODAY), now=NOW)
        daily = A.availability_over_time(log, A.Filters.last_days(31, today=TODAY), bucket="day")
    assert health.axis.bucket == "hour"
    openai = health.availability[health.availability["provider"] == "openai"]
    assert openai["availability"].min() == 0.0                      # whole hours at 0 %: the outage is seen
    assert daily["availability"].min() > 0.8                        # a daily point averages it away


def test_sparse_traffic_over_a_month_stays_daily_on_health_so_single_attempts_do_not_swing_the_rate(tmp_path) -> None:
    results = [request_at(NOW - timedelta(hours=7 * k + 1), "openai", ok=k % 2 == 0) for k in range(100)]
    path = write_log(tmp_path / "sparse.duckdb", results)
    with DuckDBCallLog(path) as log:
        health = A.health_view(log, A.Filters.last_days(31, today=TODAY), now=NOW)
    assert health.axis.bucket == "day"


def test_the_bucket_still_filling_at_now_is_partial_and_a_finished_one_is_not(tmp_path) -> None:
    results = [request_at(NOW - timedelta(hours=h, minutes=5)) for h in range(0, 20)]
    path = write_log(tmp_path / "day.duckdb", results)
    f = A.Filters.last_days(7, today=TODAY)
    with DuckDBCallLog(path) as log:
        filling = A.costs_view(log, f, Budgets(), now=NOW).axis
        later = A.costs_view(log, f, Budgets(), now=NOW + timedelta(hours=3)).axis
    assert filling.bucket == "hour"
    assert filling.partial_from == NOW.replace(minute=0)
    assert later.partial_from is None


def test_spend_is_compared_with_the_previous_period_only_when_the_log_covers_it(tmp_path) -> None:
    young = write_log(tmp_path / "young.duckdb", [request_at(NOW - timedelta(hours=h)) for h in range(1, 18)])
    f = A.Filters.last_days(30, today=TODAY)
    with DuckDBCallLog(young) as log:
        h = A.headline(log, f)
    assert not h.previous_covered and h.spend_change is None

    old = [request_at(NOW - timedelta(days=d)) for d in range(1, 65)]
    covered = write_log(tmp_path / "old.duckdb", old)
    with DuckDBCallLog(covered) as log:
        h = A.headline(log, f)
    assert h.previous_covered and h.spend_change == pytest.approx(0.0, abs=0.04)
