"""1,000 concurrent requests with 20% injected faults, through the real router, into a real DuckDB file."""
from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from taelio_core.calllog import DuckDBCallLog
from taelio_core.errors import AllProvidersFailed
from taelio_core.routing.inputs import Inputs
from tests.calllog.traffic import faulty_router

N = 1000


@pytest.mark.timeout(300)
def test_thousand_concurrent_requests_reconcile_exactly(tmp_path: Path) -> None:
    log = DuckDBCallLog(tmp_path / "load.duckdb", flush_interval=0.05)
    router = faulty_router(log, fault_rate=0.2, seed=11)
    tiers = router.policy.tiers

    async def burst():
        calls = [router.agenerate(tiers[i % len(tiers)], ("idea", "story")[i % 2], Inputs(prompt=f"premise {i}"))
                 for i in range(N)]
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(burst())
    unexpected = [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, AllProvidersFailed)]
    assert unexpected == []
    results = [o.result if isinstance(o, AllProvidersFailed) else o for o in outcomes]
    failed = sum(isinstance(o, AllProvidersFailed) for o in outcomes)
    log.flush(timeout=60)

    requests = log.query("SELECT request_id, status, n_attempts, fallback_depth FROM requests")
    assert len(requests) == N
    assert set(requests["request_id"]) == {r.request_id for r in results}
    by_status = Counter(requests["status"])
    assert by_status["failed"] == failed and by_status["ok"] == N - failed
    total_attempts = sum(len(r.attempts) for r in results)
    assert total_attempts > N                                   # the faults really caused fallbacks
    counts = log.query("SELECT count(*) AS n, count(*) FILTER (WHERE status <> 'ok') AS errors FROM attempts").iloc[0]
    assert counts["n"] == total_attempts == requests["n_attempts"].sum()
    assert counts["errors"] == sum(1 for r in results for a in r.attempts if not a.ok)
    per_request = dict(zip(requests["request_id"], requests["n_attempts"]))
    assert all(per_request[r.request_id] == len(r.attempts) for r in results)
    kinds = set(log.query("SELECT DISTINCT error_type FROM attempts WHERE error_type IS NOT NULL")["error_type"])
    assert {"rate_limited", "unavailable", "timeout", "auth_failed", "model_not_found"} <= kinds
    assert log.last_error is None
    log.close()
