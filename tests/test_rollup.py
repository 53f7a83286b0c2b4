"""The hourly rollups give the same numbers as SQL over the raw rows: at first, after more rows arrive, with filters.

Every expected value here is computed by a separate SQL statement over the
raw ``requests`` and ``attempts`` tables of a real DuckDB file (or by numpy),
never through the rollup.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from taelio_core import analytics as A
from taelio_core.analytics import rollup
from taelio_core.calllog import DuckDBCallLog
from taelio_core.calllog.arrow import ATTEMPT_SCHEMA, REQUEST_SCHEMA, rows_to_table
from taelio_core.calllog.rows import encode
from taelio_core.config.policy_parser import load_policy
from taelio_core.demo import generate_demo_data
from tests.seeded_log import FIXED_NOW as NOW, build_results, seed_log

TODAY = NOW.date()
FILTERS = [
    A.Filters(),
    A.Filters.last_days(5, today=TODAY),
    A.Filters(tiers=("pro",), providers=("openai", "anthropic")),
    A.Filters(start=TODAY - timedelta(days=12), end=TODAY - timedelta(days=3), tasks=("idea",), sources=("demo",)),
    A.Filters(sources=("live",)),
]


def _raw(log: DuckDBCallLog, table: str, filters: A.Filters, select: str, group: str = "") -> pd.DataFrame:
    where, params = filters.where()
    tail = f"GROUP BY {group} ORDER BY {group}" if group else ""
    return log.query(f"SELECT {select} FROM {table} {where} {tail}", params)


def _check_against_raw(log: DuckDBCallLog, f: A.Filters) -> None:
    # Spend, priced and unpriced attempts, requests, tokens: exactly the raw sums.
    h = A.headline(log, f)
    a = _raw(log, "attempts", f, "sum(cost_usd)::VARCHAR AS spend, count(cost_usd) AS priced, "
             "count(*) FILTER (WHERE cost_usd IS NULL AND (input_tokens > 0 OR output_tokens > 0)) AS unpriced").iloc[0]
    r = _raw(log, "requests", f, "count(*) AS n, coalesce(sum(input_tokens), 0) AS tin").iloc[0]
    assert h.spend_usd == (None if a["spend"] is None or pd.isna(a["spend"]) else Decimal(a["spend"]))
    assert (h.priced_attempts, h.unpriced_attempts) == (a["priced"], a["unpriced"])
    assert (h.requests, h.input_tokens) == (r["n"], r["tin"])

    # Fallback rate per tier, exactly.
    got = A.fallback_rate(log, f)
    want = _raw(log, "requests", f, "tier, count(*) AS requests, count(*) FILTER (WHERE fallback_depth > 0) AS "
                "fallbacks, (count(*) FILTER (WHERE fallback_depth > 0) / count(*))::DOUBLE AS rate", "tier")
    pd.testing.assert_frame_equal(got, want, check_dtype=False)

    # Cost per day x provider x tier, attempts and unpriced, exactly (the cost as the same DOUBLE).
    got = A.cost_by_provider_tier(log, f, bucket="day")
    want = _raw(log, "attempts", f, "date_trunc('day', ts AT TIME ZONE 'UTC') AS bucket, provider, tier, "
                "sum(CASE WHEN cost_usd IS NULL AND NOT (input_tokens > 0 OR output_tokens > 0) THEN 0 "
                "ELSE cost_usd END)::DOUBLE AS cost_usd, count(*) AS attempts, count(*) FILTER (WHERE cost_usd "
                "IS NULL AND (input_tokens > 0 OR output_tokens > 0)) AS unpriced", "bucket, provider, tier")
    pd.testing.assert_frame_equal(got, want, check_dtype=False)

    # Errors per hour x type x provider, and success per provider.
    got = A.errors_over_time(log, f, bucket="hour")
    want = _raw(log, "attempts", f, "date_trunc('hour', ts AT TIME ZONE 'UTC') AS bucket, "
                "error_type, provider, count(*) FILTER (WHERE error_type IS NOT NULL) AS errors",
                "bucket, error_type, provider")
    want = want[want["errors"] > 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    got = A.success_by_provider(log, f)
    want = _raw(log, "attempts", f, "provider, count(*) AS attempts, count(*) FILTER (WHERE status = 'ok') AS ok",
                "provider")
    pd.testing.assert_frame_equal(got[["provider", "attempts", "ok"]], want, check_dtype=False)

    # Requests by outcome and tokens per day.
    got = A.usage_over_time(log, f, bucket="day")
    want = _raw(log, "requests", f, "date_trunc('day', ts AT TIME ZONE 'UTC') AS bucket, count(*) AS requests, "
                "count(*) FILTER (WHERE status = 'ok') AS ok, count(*) FILTER (WHERE status <> 'ok') AS not_ok, "
                "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens", "bucket")
    pd.testing.assert_frame_equal(got, want, check_dtype=False)

    # The request list's count (from the rollup) is the raw count.
    _, total = A.list_requests(log, f, limit=1)
    assert total == r["n"]


@pytest.mark.parametrize("f", FILTERS, ids=["all", "last5d", "pro-openai-anthropic", "idea-range", "live-none"])
def test_rollup_figures_equal_raw_sql_with_filters(tmp_path: Path, f: A.Filters):
    seeded = seed_log(tmp_path / "calls.duckdb", now=NOW)
    with DuckDBCallLog(seeded.path) as log:
        _check_against_raw(log, f)


def test_rollup_stays_exact_as_more_rows_arrive_in_old_and_new_hours(tmp_path: Path):
    seeded = seed_log(tmp_path / "calls.duckdb", now=NOW)
    with DuckDBCallLog(seeded.path) as log:
        before = A.headline(log, A.Filters())
        # More traffic: some in hours already folded, some later, some from another source.
        for batch in (build_results(n=80, seed=11, now=NOW), build_results(n=40, seed=12, now=NOW + timedelta(hours=3),
                                                                  days=1, source="live")):
            for result in batch:
                log.record(result)
            log.flush(timeout=30)
            for f in FILTERS:
                _check_against_raw(log, f)
        after = A.headline(log, A.Filters())
        assert after.requests == before.requests + 120
        # One row per group: folding merged the new rows into the groups they belong to.
        for table, keys in (("attempt_rollup",
                             "hour, source, tier, task, provider, model, status, error_type, simulated"),
                            ("request_rollup", "hour, source, tier, task, provider, model, status, fell_back"),
                            ("latency_histogram", "hour, source, tier, task, provider, metric, bin")):
            n = log.query(f"SELECT count(*) AS rows, count(DISTINCT ({keys})) AS groups FROM {table}").iloc[0]
            assert n["rows"] == n["groups"] > 0


def test_refresh_folds_each_row_once_and_ignores_rows_the_log_ignored(tmp_path: Path):
    seeded = seed_log(tmp_path / "calls.duckdb", now=NOW)
    with DuckDBCallLog(seeded.path) as log:
        requests, attempts = log.query("SELECT count(*) FROM requests").iloc[0, 0], \
            log.query("SELECT count(*) FROM attempts").iloc[0, 0]
        log.write(rollup.invalidate)         # the writer folded the seeded rows already: fold them again
        assert log.write(rollup.refresh) == requests + attempts
        assert log.write(rollup.refresh) == 0
        spend = A.headline(log, A.Filters()).spend_usd
        # The same requests again (a bulk load or a journal replayed twice): the log skips the requests
        # it holds already, and so does the rollup.
        rows = [encode(result) for result in seeded.results[:30]]
        written = log.append_rows(rows_to_table([q for q, _ in rows], REQUEST_SCHEMA),
                                  rows_to_table([a for _, attempts in rows for a in attempts], ATTEMPT_SCHEMA))
        assert written == 0                  # append_rows counts the requests it wrote, not those it was given
        assert log.query("SELECT count(*) FROM requests").iloc[0, 0] == requests
        assert log.write(rollup.refresh) == 0
        assert A.headline(log, A.Filters()).spend_usd == spend


def test_the_writer_folds_new_traffic_so_the_first_read_after_it_has_nothing_left_to_fold(tmp_path: Path):
    seeded = seed_log(tmp_path / "calls.duckdb", now=NOW)
    with DuckDBCallLog(seeded.path) as log:
        A.headline(log, A.Filters())
        for result in build_results(n=60, seed=21, now=NOW + timedelta(hours=2), days=1, source="live"):
            log.record(result)
        log.flush(timeout=30)
        assert log.write(rollup.refresh) == 0        # the writer's fold took them all
        rows = [encode(result) for result in build_results(n=30, seed=22, now=NOW + timedelta(hours=5), days=1)]
        written = log.append_rows(rows_to_table([q for q, _ in rows], REQUEST_SCHEMA),
                                  rows_to_table([a for _, attempts in rows for a in attempts], ATTEMPT_SCHEMA))
        assert written == 30
        assert log.write(rollup.refresh) == 0        # and so did the bulk append
        for f in FILTERS:
            _check_against_raw(log, f)


def test_rows_nobody_folded_are_folded_by_the_next_read_so_figures_stay_exact(tmp_path: Path):
    """A writer that does not fold (another tool, a plain DuckDB client) leaves the fold to the reads."""
    seeded = seed_log(tmp_path / "calls.duckdb", now=NOW)
    with DuckDBCallLog(seeded.path, fold_rollups=False) as log:
        A.headline(log, A.Filters())
        for result in build_results(n=50, seed=31, now=NOW + timedelta(hours=1), days=1, source="live"):
            log.record(result)
        log.flush(timeout=30)
        assert log.query("SELECT count(*) FROM requests").iloc[0, 0] == len(seeded.results) + 50
        for f in FILTERS:
            _check_against_raw(log, f)
    with duckdb.connect(str(seeded.path)) as con:       # a plain client copies ten requests under new ids
        con.execute("INSERT INTO attempts SELECT * REPLACE (request_id || 'x' AS request_id) FROM attempts "
                    "WHERE request_id IN (SELECT request_id FROM requests ORDER BY request_id LIMIT 10)")
        con.execute("INSERT INTO requests SELECT * REPLACE (request_id || 'x' AS request_id) FROM requests "
                    "ORDER BY request_id LIMIT 10")
    with DuckDBCallLog(seeded.path) as log:
        for f in FILTERS:
            _check_against_raw(log, f)


def test_rollup_is_rebuilt_when_rows_disappear(tmp_path: Path):
    seeded = seed_log(tmp_path / "calls.duckdb", now=NOW)
    with DuckDBCallLog(seeded.path) as log:
        A.headline(log, A.Filters())
        log.write(lambda con: con.execute("DELETE FROM attempts WHERE tier = 'admin'"))
        log.write(lambda con: con.execute("DELETE FROM requests WHERE tier = 'admin'"))
        for f in FILTERS[:3]:
            _check_against_raw(log, f)
        assert A.fallback_rate(log, A.Filters())["tier"].tolist() == ["free", "pro"]


def test_histogram_percentiles_are_within_the_stated_error_of_exact_sql(tmp_path: Path):
    """Demo traffic (lognormal latencies, thousands of attempts): every percentile within QUANTILE_ERROR."""
    path = tmp_path / "demo.duckdb"
    with DuckDBCallLog(path) as log:
        generate_demo_data(log, load_policy(None), days=3, requests=4000, seed=3,
                           now=datetime(2026, 11, 20, tzinfo=UTC))
        f = A.Filters()
        got = A.latency_by_provider(log, f).set_index("provider")
        want = log.query("""
            SELECT provider, count(*) AS ok_attempts, quantile_cont(latency_ms, 0.5) AS p50_ms,
                   quantile_cont(latency_ms, 0.95) AS p95_ms, quantile_cont(latency_ms, 0.99) AS p99_ms,
                   quantile_cont(ttft_ms, 0.5) AS ttft_p50_ms, quantile_cont(ttft_ms, 0.95) AS ttft_p95_ms
            FROM attempts WHERE status = 'ok' GROUP BY provider""").set_index("provider")
        assert len(want) >= 2
        for provider in want.index:
            assert got.loc[provider, "ok_attempts"] == want.loc[provider, "ok_attempts"]
            for col in ("p50_ms", "p95_ms", "p99_ms", "ttft_p50_ms", "ttft_p95_ms"):
                assert got.loc[provider, col] == pytest.approx(want.loc[provider, col], rel=A.QUANTILE_ERROR)
        over = A.latency_over_time(log, f, bucket="day")
        exact = log.query("""
            SELECT date_trunc('day', ts AT TIME ZONE 'UTC') AS bucket, provider,
                   quantile_cont(latency_ms, 0.95) AS p95_ms
            FROM attempts WHERE status = 'ok' GROUP BY ALL ORDER BY bucket, provider""")
        np.testing.assert_allclose(over["p95_ms"], exact["p95_ms"], rtol=A.QUANTILE_ERROR)
        dist = A.cost_distribution_by_model(log, f).set_index("model")
        costs = log.query("SELECT model, quantile_cont(cost_usd::DOUBLE, 0.5) AS median, min(cost_usd)::DOUBLE AS "
                          "min FROM requests WHERE model IS NOT NULL GROUP BY model").set_index("model")
        for model in costs.index:
            assert dist.loc[model, "median"] == pytest.approx(costs.loc[model, "median"], rel=A.QUANTILE_ERROR)
            assert dist.loc[model, "min"] == costs.loc[model, "min"]


def test_page_views_read_everything_in_one_snapshot(tmp_path: Path):
    seeded = seed_log(tmp_path / "calls.duckdb", now=NOW)
    with DuckDBCallLog(seeded.path) as log:
        f = A.Filters.last_days(10, today=TODAY)
        from taelio_core.config.policy_schema import Budgets
        budgets = Budgets.model_validate({"tier": {"pro": {"monthly": 5}}, "provider": {"openai": {"monthly": 1}}})
        costs = A.costs_view(log, f, budgets, now=NOW)
        assert costs.headline == A.headline(log, f)
        pd.testing.assert_frame_equal(costs.by_task, A.spend_by(log, f, "task"))
        pd.testing.assert_frame_equal(costs.budget_status, A.budget_status(log, budgets, f, now=NOW))
        health = A.health_view(log, f, now=NOW)
        pd.testing.assert_frame_equal(health.fallback, A.fallback_rate(log, f))
        pd.testing.assert_frame_equal(health.latency, A.latency_by_provider(log, f))
