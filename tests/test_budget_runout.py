"""A budget spent at a tiny rate runs out "not this month", never in a date past the calendar (it crashed Costs)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taelio_core import analytics as A
from taelio_core.calllog import DuckDBCallLog
from taelio_core.config.policy_schema import Budgets
from tests.test_time_buckets import request_at, write_log

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)


def test_a_budget_spent_at_a_tiny_rate_does_not_run_out_this_month(tmp_path) -> None:
    tiny = request_at(NOW - timedelta(hours=2))
    path = write_log(tmp_path / "tiny.duckdb", [tiny])
    budgets = Budgets.model_validate({"tier": {"free": {"monthly": 10_000_000_000}}})
    with DuckDBCallLog(path) as log:
        status = A.budget_status(log, budgets, A.Filters(), now=NOW)
    row = status.set_index("name").loc["free"]
    assert float(row["spent_usd"]) == 0.001 and row["runs_out_on"] is None
