"""Top users read from the daily user rollup give exactly what the same sums over the raw requests give.

The expected values come from plain SQL over the raw ``requests`` rows of a real DuckDB file, never
through the rollup; checked at first, with filters, and again after more requests arrive (a fold).
"""
from __future__ import annotations

import dataclasses
from datetime import timedelta

import pandas as pd

from taelio_core import analytics as A
from taelio_core.calllog import DuckDBCallLog
from tests.seeded_log import FIXED_NOW as NOW, build_results, seed_log

TODAY = NOW.date()
FILTERS = [A.Filters(), A.Filters.last_days(5, today=TODAY), A.Filters(tiers=("pro",), providers=("openai",)),
           A.Filters(start=TODAY - timedelta(days=12), end=TODAY - timedelta(days=3), tasks=("idea",))]


def _with_users(results, offset=0):  # noqa: ANN001, ANN202
    return [dataclasses.replace(r, user_id=f"user-{(i + offset) % 7}") if i % 4 else r for i, r in enumerate(results)]


def _raw(log: DuckDBCallLog, f: A.Filters) -> pd.DataFrame:
    where, params = f.where(extra=("user_id IS NOT NULL",))
    return log.query(f"""
        SELECT user_id, count(*) AS requests, count(*) FILTER (WHERE status <> 'ok') AS failed,
               sum(input_tokens) + sum(output_tokens) AS tokens,
               count(*) FILTER (WHERE cost_usd IS NULL AND input_tokens + output_tokens > 0) AS unpriced,
               sum(cost_usd)::DOUBLE AS cost_usd
        FROM requests {where}
        GROUP BY user_id ORDER BY cost_usd DESC NULLS LAST, requests DESC, user_id LIMIT 100""", params)


def test_top_users_from_the_rollup_equal_the_sums_over_the_raw_requests_before_and_after_more_arrive(tmp_path):
    path = tmp_path / "log.duckdb"
    seed_log(path, _with_users(build_results(now=NOW, n=200)), now=NOW)
    with DuckDBCallLog(path) as log:
        for f in FILTERS:
            got = A.top_users(log, f, limit=100)
            assert len(got) > 0 or f.providers
            pd.testing.assert_frame_equal(got, _raw(log, f), check_dtype=False)
        for result in _with_users(build_results(now=NOW, n=60, seed=3, days=4), offset=3):
            log.record(dataclasses.replace(result, request_id="more-" + result.request_id))
        log.flush(timeout=30)
        for f in FILTERS:
            pd.testing.assert_frame_equal(A.top_users(log, f, limit=100), _raw(log, f), check_dtype=False)
        assert A.top_users(log, A.Filters(), limit=100)["requests"].sum() == log.query(
            "SELECT count(*) AS n FROM requests WHERE user_id IS NOT NULL")["n"].iloc[0]
