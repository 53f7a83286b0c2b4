"""Costs and Health pick up requests logged by someone else (the CLI, another replica) without a restart.

The pages read the hourly rollups through ``st.cache_data`` keyed on the
log's data version; a new request changes the version, the next run folds it
into the rollups, and the figures match the raw SQL again.
"""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from taelio_core.calllog import DuckDBCallLog
from tests.app.conftest import make_app, metric, open_page
from tests.seeded_log import build_results
from ui import cache as ui_cache
from ui.text import fmt_pct, money

pytestmark = pytest.mark.timeout(180)


def _raw_spend(path, start) -> tuple[str, int]:  # noqa: ANN001
    with DuckDBCallLog(path) as log:
        spend = log.query("SELECT sum(cost_usd)::VARCHAR AS s FROM attempts WHERE ts >= ?", [start]).iloc[0, 0]
        return money(Decimal(spend)), log.count_requests()


def test_a_request_logged_elsewhere_shows_up_on_costs_and_health(seeded_app):
    at = open_page(make_app(), "costs")
    start = at.session_state["filters"].start_ts
    spend, requests = _raw_spend(seeded_app.path, start)
    assert (metric(at, "Spend"), metric(at, "Requests")) == (spend, f"{requests:,}")

    # Another process logs three more requests, one of them a fallback on the pro tier.
    now = datetime.now(UTC).replace(microsecond=0)
    more = [r for r in build_results(n=12, seed=99, now=now, days=1) if r.tier == "pro"][:3]
    assert any(r.fallback_depth > 0 for r in more)
    with DuckDBCallLog(seeded_app.path) as other:
        for result in more:
            other.record(result)
    ui_cache._count.clear()           # what the data version's 2 s TTL does on its own

    at.run()
    spend_after, requests_after = _raw_spend(seeded_app.path, start)
    assert requests_after == requests + 3 and spend_after != spend
    assert (metric(at, "Spend"), metric(at, "Requests")) == (spend_after, f"{requests_after:,}")

    at.switch_page("pages/health.py")
    at.run()
    pro = [r for r in seeded_app.results + more if r.tier == "pro"]
    assert metric(at, "pro") == fmt_pct(sum(1 for r in pro if r.fallback_depth > 0) / len(pro))
