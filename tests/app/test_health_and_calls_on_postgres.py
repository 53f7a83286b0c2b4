"""Health and Calls pointed at PostgreSQL (``DATABASE_URL=postgresql://...``) show the figures SQL gives.

The traffic is written through the real PostgreSQL call log (its writer, migrations and rollup triggers);
the expected figures come from plain SQL over the raw ``attempts`` and ``requests`` rows, never through
the analytics code or the rollups the pages read.
"""
from __future__ import annotations

import psycopg
import pytest

from taelio_core.calllog import open_call_log
from taelio_core.config.settings import load_settings
from tests.app.conftest import make_app, open_page
from tests.seeded_log import build_results, clock_now

pytestmark = pytest.mark.timeout(240)


@pytest.fixture()
def pg_traffic(pg_url, monkeypatch):
    """240 requests over 20 days ending now, written by the PostgreSQL call log named by DATABASE_URL."""
    monkeypatch.setenv("DATABASE_URL", pg_url)
    results = build_results(now=clock_now(), days=20, n=240)
    log = open_call_log(load_settings())
    try:
        for result in results:
            log.record(result)
        log.flush(timeout=30)
    finally:
        log.close()
    return results


def _window(at) -> tuple[object, object]:  # noqa: ANN001
    filters = at.session_state["filters"]
    return filters.start_ts, filters.end_ts


def test_health_on_postgresql_shows_each_providers_attempts_and_success_rate_as_sql_counts_them(pg_url, pg_traffic):
    at = open_page(make_app(), "health")
    start, end = _window(at)
    table = next(d.value for d in at.dataframe if "success_rate" in d.value.columns)
    shown = {r["provider"]: (int(r["attempts"]), round(float(r["success_rate"]), 6))
             for r in table.to_dict("records")}
    with psycopg.connect(pg_url) as con:
        rows = con.execute(
            "SELECT provider, count(*), 100.0 * count(*) FILTER (WHERE status = 'ok') / count(*) "
            "FROM attempts WHERE ts >= %s AND ts < %s GROUP BY provider", [start, end]).fetchall()
        tiers = con.execute(
            "SELECT tier, count(*) FILTER (WHERE fallback_depth > 0), count(*) FROM requests "
            "WHERE ts >= %s AND ts < %s GROUP BY tier", [start, end]).fetchall()
    expected = {provider: (n, round(float(rate), 6)) for provider, n, rate in rows}
    assert len(expected) >= 2 and sum(n for n, _ in expected.values()) > 240     # some requests fell back
    assert shown == expected
    # Fallback rate per tier: each tier's metric says "F of N requests needed at least one fallback".
    fallbacks = {m.label: m.help for m in at.metric if m.help and "needed at least one fallback" in m.help}
    assert fallbacks == {tier: f"{f:,} of {n:,} requests needed at least one fallback" for tier, f, n in tiers}


def test_calls_on_postgresql_counts_the_requests_sql_counts_and_opens_a_requests_attempts_in_order(
        pg_url, pg_traffic):
    at = open_page(make_app(), "calls")
    start, end = _window(at)
    with psycopg.connect(pg_url) as con:
        total = con.execute("SELECT count(*) FROM requests WHERE ts >= %s AND ts < %s", [start, end]).fetchone()[0]
    assert total == 240
    assert any(c.value.startswith(f"{total:,} matching requests") for c in at.caption), \
        [c.value for c in at.caption]

    shown = at.dataframe[0].value
    assert len(shown) == 200                                  # the first page of 240
    row = next(i for i, n in enumerate(shown["n_attempts"]) if n == 2)     # a request that fell back once
    request_id = str(shown["request_id"].iloc[row])
    key = at.dataframe[0].key
    at.session_state[key] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    with psycopg.connect(pg_url) as con:
        attempts = con.execute("SELECT provider || ':' || model, status FROM attempts WHERE request_id = %s "
                               "ORDER BY n", [request_id]).fetchall()
        prompt, output = con.execute("SELECT prompt, output FROM requests WHERE request_id = %s",
                                     [request_id]).fetchone()
    detail = at.dataframe[1].value
    assert list(zip(detail["provider:model"], detail["status"])) == attempts
    assert [s for _, s in attempts] == ["error", "ok"]
    text = " ".join(m.value for m in at.markdown).replace("\\", "")
    assert prompt in text and output in text
    assert any(request_id in c.value for c in at.caption)
