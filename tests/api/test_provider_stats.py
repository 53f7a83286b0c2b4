"""``GET /providers/health``'s per-provider figures run on both call-log backends and agree."""
from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from taelio_core.api.routes import _provider_stats
from taelio_core.calllog import DuckDBCallLog
from taelio_core.calllog.postgres import PostgresCallLog
from tests.seeded_log import build_results


@pytest.fixture
def logs(pg_url, tmp_path):
    # The last hour of the real clock: the endpoint reads "the last hour" of the clock it runs under.
    results = build_results(now=datetime.now(UTC), n=40, days=1 / 48, source="live")
    duck, pg = DuckDBCallLog(tmp_path / "log.duckdb"), PostgresCallLog(pg_url, spool=tmp_path / "spool")
    for log in (duck, pg):
        for result in results:
            log.record(result)
        log.flush(timeout=60)
    yield duck, pg
    duck.close()
    pg.close()


def test_provider_health_figures_are_the_same_on_postgresql_as_on_duckdb(logs):
    duck, pg = logs
    on_duck = _provider_stats(SimpleNamespace(engine=SimpleNamespace(log=duck)))
    on_pg = _provider_stats(SimpleNamespace(engine=SimpleNamespace(log=pg)))
    assert on_duck and sum(row["attempts"] for row in on_duck) > 0
    assert [row["provider"] for row in on_pg] == [row["provider"] for row in on_duck]
    for a, b in zip(on_duck, on_pg):
        assert int(a["attempts"]) == int(b["attempts"])
        for key in ("success_rate", "p50_ms", "p95_ms"):
            assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-9), (a["provider"], key)
