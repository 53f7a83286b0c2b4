"""Traffic: replay keeps every logged request; synthetic traffic follows its mix and curve."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from taelio_core.calllog import DuckDBCallLog
from taelio_core.errors import InputError
from taelio_core.sandbox.arm import run_events
from taelio_core.sandbox.models import models_from_policy
from taelio_core.sandbox.replay import run_policy
from taelio_core.sandbox.traffic import parse_window, replay_traffic, synthetic_traffic
from tests.sandbox.conftest import current_policy, fill_log

START = datetime(2026, 11, 10, tzinfo=timezone.utc)  # fixed-date-ok: logged at this date and replayed over explicit START-based windows


def test_replay_keeps_every_logged_request_with_its_tier_mix_and_timing(tmp_path) -> None:
    db = tmp_path / "log.duckdb"
    fill_log(db, requests=240, start=START, step_s=300)
    fill_log(db, requests=30, start=START, step_s=300, source="test", seed=1)  # not replayed: other source
    log = DuckDBCallLog(db)
    logged = log.query("SELECT tier, count(*) AS n FROM requests WHERE source = 'demo' GROUP BY tier")
    first_ts = log.query("SELECT min(ts) AS t FROM requests WHERE source = 'demo'")["t"].iloc[0]

    traffic = replay_traffic(log, START, START + timedelta(days=30), sources=("demo",))
    assert len(traffic) == 240
    assert traffic.tier_counts() == dict(zip(logged["tier"], logged["n"].astype(int)))
    assert traffic.start == first_ts.to_pydatetime()
    assert traffic.arrival_s[0] == 0 and np.all(np.diff(traffic.arrival_s) > 0)

    # Policy B lacks the admin tier: those requests are still replayed, and counted as rejected.
    policy = current_policy()
    text = policy.text.replace('[tiers.admin]\nlabel = "Admin"\nallow_provider_override = true\n', "")
    text = text.split("[routes.admin]")[0] + "[budgets.tier]" + text.split("[budgets.tier]")[1]
    text = text.replace("admin = 200.0\n", "")
    from taelio_core.config.policy_parser import parse_policy
    no_admin = parse_policy(text, source="no-admin.toml")
    for engine in (run_events, run_policy):   # the discrete-event engine and the asyncio one alike
        run = engine(no_admin, traffic, models_from_policy(policy), seed=1)
        assert len(run.requests) == 240
        assert run.requests.groupby("tier").size().to_dict() == traffic.tier_counts()
        rejected = run.requests[run.requests["status"] == "rejected"]
        assert set(rejected["tier"]) == {"admin"} and len(rejected) == traffic.tier_counts()["admin"]
        assert "unknown tier 'admin'" in rejected["routing_reason"].iloc[0]
    log.close()


def test_replay_of_an_empty_window_says_so(tmp_path) -> None:
    db = tmp_path / "log.duckdb"
    fill_log(db, requests=5, start=START)
    log = DuckDBCallLog(db)
    with pytest.raises(InputError, match="no logged requests from live, api, demo between 2025-01-01"):
        replay_traffic(log, datetime(2025, 1, 1, tzinfo=timezone.utc), datetime(2025, 1, 8, tzinfo=timezone.utc))  # fixed-date-ok: an explicit window over a log seeded at START
    log.close()


def test_synthetic_traffic_follows_count_mix_and_duration() -> None:
    traffic = synthetic_traffic(requests=20_000, tiers=["free", "pro"], tasks=["idea", "story"], seed=1,
                                duration_s=3600, mix={("free", "idea"): 3, ("pro", "story"): 1})
    assert len(traffic) == 20_000 and traffic.duration_s <= 3600
    counts = traffic.tier_counts()
    assert set(counts) == {"free", "pro"}
    assert abs(counts["free"] / 20_000 - 0.75) < 0.02
    free_tasks = set(traffic.task_idx[traffic.tier_idx == 0].tolist())
    assert free_tasks == {0}


def test_daily_curve_is_busier_in_the_afternoon_than_at_night() -> None:
    traffic = synthetic_traffic(requests=50_000, tiers=["free"], tasks=["idea"], seed=1, curve="daily",
                                start=datetime(2026, 1, 1, tzinfo=timezone.utc))  # fixed-date-ok: start passed in
    hours = (traffic.arrival_s // 3600).astype(int)
    assert np.sum(hours == 16) > 3 * np.sum(hours == 4)


def test_windows_parse_and_bad_ones_name_the_problem() -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)  # fixed-date-ok: passed as now=; the other windows are absolute
    assert parse_window("7d", now=now) == (now - timedelta(days=7), now)
    # An absolute window never reads the clock; ``now`` is passed all the same, so none could be met.
    assert parse_window("2026-11-01..2026-11-08", now=now) == (  # fixed-date-ok: absolute window, now= injected
        datetime(2026, 11, 1, tzinfo=timezone.utc),  # fixed-date-ok: the window's own start
        datetime(2026, 11, 9, tzinfo=timezone.utc))  # fixed-date-ok: the window's own end (the day after)
    with pytest.raises(InputError, match="not a window like 7d"):
        parse_window("last week", now=now)
    with pytest.raises(InputError, match="ends before it starts"):
        parse_window("2026-11-08..2026-11-01", now=now)  # fixed-date-ok: absolute window, now= injected
