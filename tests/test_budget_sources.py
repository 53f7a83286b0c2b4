"""Which logged sources count toward budgets: one rule, from ``calllog.sources``, read by the budget query."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from taelio_core.analytics.budget_burn import budget_spend
from taelio_core.calllog import DuckDBCallLog
from taelio_core.calllog.sources import BILLED_SOURCES, REPLAY_SOURCES, SOURCES
from tests.seeded_log import FIXED_NOW, build_results, seed_log


def _spent(results) -> Decimal:  # noqa: ANN001
    return sum((a.cost_usd for r in results for a in r.attempts
                if a.cost_usd is not None and r.started_at.month == FIXED_NOW.month), Decimal(0))


def test_api_traffic_counts_toward_budgets_and_demo_traffic_never_does(tmp_path: Path):
    api = build_results(now=FIXED_NOW, n=40, days=5, seed=1, source="api")
    demo = build_results(now=FIXED_NOW, n=40, days=5, seed=2, source="demo")
    seeded = seed_log(tmp_path / "calls.duckdb", api + demo, now=FIXED_NOW)
    with DuckDBCallLog(seeded.path) as log:
        rows = budget_spend(log, now=FIXED_NOW)
    counted = sum((Decimal(c) for c in rows["cost"]), Decimal(0))
    assert _spent(api) > 0 and counted == _spent(api)


def test_every_billed_or_replayed_source_is_a_known_source():
    assert set(BILLED_SOURCES) <= set(SOURCES) and set(REPLAY_SOURCES) <= set(SOURCES)
    assert "demo" not in BILLED_SOURCES and "sandbox" not in BILLED_SOURCES
