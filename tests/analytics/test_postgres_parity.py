"""Every analytics function gives the same result on PostgreSQL as on DuckDB, over the same seeded log.

The same ``GenerationResult`` values go into a real DuckDB file and a real (throwaway) PostgreSQL
database, each through its call log's own writer; each public analytics function then runs on both, under several filters, and the results
must be equal: DataFrames column for column with the same dtypes (floats to 1e-9 relative: the two
engines round a DECIMAL average or a numeric division in the last bit differently), dataclasses field
by field. ``COVERED`` names every public function of ``taelio_core.analytics``; a new one fails
``test_every_public_analytics_function_is_covered`` until it is added here.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import io
import pkgutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import taelio_core.analytics as A
from taelio_core.analytics import budget_burn
from taelio_core.calllog import DuckDBCallLog
from taelio_core.calllog.postgres import PostgresCallLog
from taelio_core.config.policy_schema import BudgetLimit, Budgets
from tests.seeded_log import FIXED_NOW as NOW, build_results, seed_log

TODAY = NOW.date()
FILTERS = {
    "all": A.Filters(),
    "last 5 days": A.Filters.last_days(5, today=TODAY),
    "pro on two providers": A.Filters(tiers=("pro",), providers=("openai", "anthropic")),
    "a window of ideas": A.Filters(start=TODAY - timedelta(days=12), end=TODAY - timedelta(days=3), tasks=("idea",)),
    "live: the last two hours, minute buckets": A.Filters(sources=("live",)),
    "nothing matches": A.Filters(tiers=("nobody",)),
}
BUDGETS = Budgets(count_simulated=True, tier={"free": BudgetLimit(monthly=Decimal("0.5")),
                                              "pro": BudgetLimit(monthly=Decimal("50"), alert_pct=10)},
                  provider={"openai": BudgetLimit(monthly=Decimal("1"))})
CONFIGURED = {"openai": None, "anthropic": None, "gemini": None, "mistral": "no API key"}

# Each public function that reads the log, called as the dashboard and the CLI call it: name -> call(log, filters).
COVERED: dict[str, Any] = {
    "cost_by_provider_tier": lambda log, f: [A.cost_by_provider_tier(log, f, bucket=b) for b in ("hour", "day", "week")],
    "usage_over_time": lambda log, f: [A.usage_over_time(log, f), A.usage_over_time(log, f, bucket="hour")],
    "headline": lambda log, f: A.headline(log, f),
    "cost_distribution_by_model": lambda log, f: A.cost_distribution_by_model(log, f),
    "spend_by": lambda log, f: [A.spend_by(log, f, by) for by in ("task", "tier", "provider", "model", "source",
                                                                  ("provider", "model"))],
    "latency_by_provider": lambda log, f: A.latency_by_provider(log, f),
    "latency_over_time": lambda log, f: A.latency_over_time(log, f, bucket="day"),
    "fallback_rate": lambda log, f: A.fallback_rate(log, f),
    "fallback_rate_over_time": lambda log, f: A.fallback_rate_over_time(log, f, bucket="hour"),
    "errors_by_type": lambda log, f: A.errors_by_type(log, f),
    "errors_over_time": lambda log, f: A.errors_over_time(log, f, bucket="day"),
    "success_by_provider": lambda log, f: A.success_by_provider(log, f),
    "availability_over_time": lambda log, f: A.availability_over_time(log, f, bucket="week"),
    "provider_health": lambda log, f: A.provider_health(log, CONFIGURED, f, now=NOW),
    "budget_spend": lambda log, f: [budget_burn.budget_spend(log, now=NOW, count_simulated=c) for c in (False, True)],
    "budget_spend_from_raw": lambda log, f: [budget_burn.budget_spend_from_raw(log, now=NOW, count_simulated=c)
                                             for c in (False, True)],
    "budget_status": lambda log, f: A.budget_status(log, BUDGETS, f, now=NOW),
    "budget_burndown": lambda log, f: A.budget_burndown(log, BUDGETS, f, now=NOW),
    "list_requests": lambda log, f: [A.list_requests(log, f, limit=25), A.list_requests(log, f, search="LIGHTHOUSE 1"),
                                     A.list_requests(log, f, statuses=("failed",), offset=3, limit=10),
                                     A.list_requests(log, f, search="50%_", user="user-2")],
    "requests_by_source": lambda log, f: A.requests_by_source(log),
    "search_window": lambda log, f: [_windowed_search(log, f, steps) for steps in (0, 1, 2, 3)],
    "request_detail": lambda log, f: [A.request_detail(log, rid) for rid in _some_ids(log) + ["no-such-request"]],
    "export_requests": lambda log, f: pd.read_parquet(io.BytesIO(A.export_requests(log, f, "parquet"))),
    "top_users": lambda log, f: [A.top_users(log, f), A.top_users(log, f, limit=2)],
    "costs_view": lambda log, f: A.costs_view(log, f, BUDGETS, now=NOW),
    "health_view": lambda log, f: A.health_view(log, f, now=NOW),
    "time_axis": lambda log, f: A.rollup.read(log, lambda r: A.time_buckets.time_axis(r, f, now=NOW)),
}
# Public functions that do not read the log (pure computations over values, or SQL builders the above use).
NOT_READS = {"month_bounds", "bucket_for", "choose_bucket", "choose_step", "budget_rule", "budget_sources",
             "check_bucket", "day_start", "histogram_quantiles", "id_time", "fine_rollups",
             # the rollups' own machinery, per backend (the parity above runs through them)
             "build_fine", "drop_fine", "refresh", "invalidate", "read", "is_postgres_log", "fold_after_write",
             "refold_sql"}


def _free_and_instant(result: Any) -> Any:
    attempts = tuple(dataclasses.replace(a, cost_usd=Decimal(0), latency_ms=0.0, ttft_ms=0.0) if a.ok else a
                     for a in result.attempts)
    return dataclasses.replace(result, attempts=attempts)


def _windowed_search(log: Any, f: A.Filters, steps: int) -> Any:
    """A window of ``steps`` slices of 40 requests, and the search in it, as the Calls page runs them."""
    window = A.search_window(log, f, steps=steps, step_requests=40)
    return window, A.list_requests(log, f, search="lighthouse", search_since=window.since, limit=20)


def _some_ids(log: Any) -> list[str]:
    page, _ = A.list_requests(log, A.Filters(), limit=400)
    ids = sorted(page["request_id"])
    return ids[::37]


def _public_functions() -> set[str]:
    names = set()
    for info in pkgutil.iter_modules(A.__path__):
        module = importlib.import_module(f"taelio_core.analytics.{info.name}")
        for name in getattr(module, "__all__", ()):
            if inspect.isfunction(getattr(module, name)):
                names.add(name)
    return names


def test_every_public_analytics_function_is_covered():
    missing = _public_functions() - set(COVERED) - NOT_READS
    assert not missing, f"add these to COVERED (or NOT_READS, if they do not read the log): {sorted(missing)}"


@pytest.fixture(scope="module")
def both_logs(pg_server, tmp_path_factory) -> Any:
    results = build_results(now=NOW, n=300, days=20)
    # Users (the API's callers), so top_users has something to rank.
    results = [dataclasses.replace(r, user_id=f"user-{i % 5}") if i % 3 == 0 else r for i, r in enumerate(results)]
    # Free answers in 0 ms: the histograms' zero bin (2^-12500 underflows on PostgreSQL, not on DuckDB).
    results = [_free_and_instant(r) if i % 25 == 2 else r for i, r in enumerate(results)]
    # Live traffic over the last two hours only: the minute-grain rollups.
    results += build_results(now=NOW, n=60, days=2 / 24, seed=11, source="live")
    folder = tmp_path_factory.mktemp("parity")
    seed_log(folder / "log.duckdb", results, now=NOW)
    # The same values through the PostgreSQL call log's own writer (COPY batches; the triggers fold them).
    pg_log = PostgresCallLog(pg_server.new_database("analytics_parity"), spool=folder / "spool")
    for result in results:
        pg_log.record(result)
    pg_log.flush(timeout=60)
    duck_log = DuckDBCallLog(folder / "log.duckdb")
    yield duck_log, pg_log
    duck_log.close()
    pg_log.close()


def _equal(a: Any, b: Any, where: str) -> None:
    if isinstance(a, pd.DataFrame):
        assert isinstance(b, pd.DataFrame), where
        pd.testing.assert_frame_equal(_in_utc(a), _in_utc(b), check_exact=False, rtol=1e-9, obj=where)
    elif dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for field in dataclasses.fields(a):
            _equal(getattr(a, field.name), getattr(b, field.name), f"{where}.{field.name}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), f"{where}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            _equal(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            _equal(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, rel=1e-9), where
    else:
        assert _plain(a) == _plain(b), f"{where}: {a!r} != {b!r}"


def _in_utc(frame: pd.DataFrame) -> pd.DataFrame:
    """Times with a zone in UTC: DuckDB names the machine's zone (Etc/UTC here), PostgreSQL's session says UTC."""
    out = frame.copy()
    for column in out.columns[[isinstance(t, pd.DatetimeTZDtype) for t in out.dtypes]]:
        out[column] = out[column].dt.tz_convert("UTC")
    return out


def _plain(value: Any) -> Any:
    """Missing values compare equal whatever their kind (None, NaN, NaT, NA); arrays as lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


@pytest.mark.parametrize("name", sorted(COVERED))
@pytest.mark.parametrize("label", list(FILTERS))
def test_the_analytics_function_gives_the_same_result_on_postgresql_as_on_duckdb(both_logs, name, label):
    duck_log, pg_log = both_logs
    f = FILTERS[label]
    want = COVERED[name](duck_log, f)
    got = COVERED[name](pg_log, f)
    _equal(want, got, f"{name} ({label})")


def test_the_parity_check_can_fail_on_a_row_postgresql_has_and_duckdb_lacks(both_logs):
    duck_log, pg_log = both_logs
    before = A.headline(pg_log, FILTERS["all"])
    pg_log.write(lambda con: con.execute(
        "INSERT INTO attempts (request_id, n, ts, source, tier, task, provider, model, status, cost_usd) "
        "SELECT request_id, 9, ts, source, tier, task, provider, model, 'ok', 1 FROM attempts LIMIT 1"))
    try:
        with pytest.raises(AssertionError):
            _equal(A.headline(duck_log, FILTERS["all"]), A.headline(pg_log, FILTERS["all"]), "headline")
        assert A.headline(pg_log, FILTERS["all"]).spend_usd == before.spend_usd + 1     # the trigger folded it
    finally:
        pg_log.write(lambda con: con.execute("DELETE FROM attempts WHERE n = 9"))
    _equal(before, A.headline(pg_log, FILTERS["all"]), "headline after the delete")   # and unfolded it
