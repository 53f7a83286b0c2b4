"""The dashboard pointed at the PostgreSQL the replicas write: its Costs total is the one SQL gives."""
from __future__ import annotations

import asyncio

import pytest

from tests.replicas.cluster import Cluster
from tests.replicas.load import run_load

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_the_dashboard_pointed_at_the_same_postgresql_shows_the_costs_total_sql_gives(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.app.conftest import make_app, metric, open_page
    from ui.text import money
    result = asyncio.run(run_load(cluster, 60, concurrency=6))     # traffic of its own, through all three
    assert result.not_ok() == []
    cluster.wait_rows([a.doc["request_id"] for a in result.answers])
    monkeypatch.setenv("DATABASE_URL", cluster.database_url)
    monkeypatch.setenv("TAELIO_POLICY", str(cluster.policy_path))
    at = open_page(make_app(), "costs")
    filters = at.session_state["filters"]
    where, params = "true", []
    for clause, value in (("ts >= %s", filters.start_ts), ("ts < %s", filters.end_ts)):
        if value is not None:
            where, params = f"{where} AND {clause}", [*params, value]
    if filters.sources:
        where, params = where + " AND source = ANY(%s)", [*params, list(filters.sources)]
    [spend] = cluster.sql(f"SELECT sum(cost_usd) AS s FROM attempts WHERE {where}", params)
    [requests] = cluster.sql(f"SELECT count(*) AS n FROM requests WHERE {where}", params)
    assert requests["n"] >= len(result.answers)
    assert (metric(at, "Spend"), metric(at, "Requests")) == (money(spend["s"]), f"{requests['n']:,}")
