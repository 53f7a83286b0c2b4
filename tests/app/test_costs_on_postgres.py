"""The dashboard pointed at PostgreSQL (``DATABASE_URL=postgresql://...``) shows the Costs figures SQL gives.

The traffic is written through the real PostgreSQL call log (its writer, its migrations, the rollup
triggers); the expected figures are computed by plain SQL over the raw ``attempts`` and ``requests`` rows
in PostgreSQL, never through the analytics code or the rollups the page reads.
"""
from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from taelio_core.calllog import open_call_log
from taelio_core.config.settings import load_settings
from taelio_core.formatting import money
from tests.app.conftest import make_app, metric, open_page
from tests.seeded_log import build_results, clock_now

pytestmark = pytest.mark.timeout(180)


def test_costs_on_postgresql_show_the_spend_and_requests_sql_gives_over_the_raw_rows(pg_url, monkeypatch):
    now = clock_now()
    monkeypatch.setenv("DATABASE_URL", pg_url)
    log = open_call_log(load_settings())
    try:
        for result in build_results(now=now, days=20, n=240):
            log.record(result)
        log.flush(timeout=30)
    finally:
        log.close()

    at = open_page(make_app(), "costs")
    start = at.session_state["filters"].start_ts
    with psycopg.connect(pg_url) as con:
        spend, unpriced = con.execute(
            "SELECT sum(cost_usd), count(*) FILTER (WHERE cost_usd IS NULL AND output_tokens > 0) "
            "FROM attempts WHERE ts >= %s", [start]).fetchone()
        requests = con.execute("SELECT count(*) FROM requests WHERE ts >= %s", [start]).fetchone()[0]
    assert spend > 0 and unpriced > 0 and requests == 240
    assert metric(at, "Spend") == money(Decimal(spend))
    assert metric(at, "Requests") == f"{requests:,}"
    assert metric(at, "Unpriced calls") == f"{unpriced:,}"
    assert len(at.get("plotly_chart")) >= 6

    # Health and Calls read the same database without an error (the alerts panel, the request list).
    for page in ("health", "calls"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
