"""One contract for every call-log backend: the same behaviours on a DuckDB file and on a real PostgreSQL."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from taelio_core.calllog import DuckDBCallLog, PostgresCallLog
from taelio_core.calllog.arrow import ATTEMPT_SCHEMA, REQUEST_SCHEMA, rows_to_table
from taelio_core.calllog.base import CallLog
from taelio_core.calllog.rows import encode
from tests.calllog.traffic import finished_results


@pytest.fixture(params=["duckdb", "postgresql"])
def open_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    """A function that opens (or reopens) one log of the backend under test."""
    if request.param == "duckdb":
        def opener(**kw: object) -> CallLog:
            return DuckDBCallLog(tmp_path / "log.duckdb", **kw)
    else:
        url = request.getfixturevalue("pg_url")

        def opener(**kw: object) -> CallLog:
            return PostgresCallLog(url, spool=tmp_path, **kw)
    yield opener


def _tables(results: list) -> tuple[pa.Table, pa.Table]:
    rows = [encode(r, store_text=True) for r in results]
    return (rows_to_table([r for r, _ in rows], REQUEST_SCHEMA, store_text=True),
            rows_to_table([a for _, attempts in rows for a in attempts], ATTEMPT_SCHEMA))


def _recorded(open_log, results: list) -> CallLog:  # noqa: ANN001
    """A log of the backend under test holding ``results``, recorded and flushed."""
    log = open_log(flush_interval=0.05)
    for result in results:
        log.record(result)
    log.flush(timeout=60)
    return log


def test_recorded_requests_and_their_attempts_are_stored_after_a_flush(open_log) -> None:
    results = finished_results(40, seed=3)
    log = _recorded(open_log, results)
    assert log.count_requests() == 40 and log.writer_status().pending == 0
    counts = log.query("SELECT (SELECT count(*) FROM attempts) AS attempts, "
                       "(SELECT sum(n_attempts) FROM requests) AS expected").iloc[0]
    assert counts["attempts"] == counts["expected"] == sum(len(r.attempts) for r in results)
    one = results[7]
    row = log.query("SELECT request_id, tier, task, status, cost_usd, ts, trace FROM requests WHERE request_id = ?",
                    [one.request_id]).iloc[0]
    assert (row["tier"], row["task"], row["status"]) == (one.tier, one.task, one.status)
    assert row["ts"].tzinfo is not None and '"chain"' in row["trace"]
    priced = one.cost_usd
    assert (priced is None and row["cost_usd"] != row["cost_usd"]) or Decimal(str(row["cost_usd"])) == priced
    log.close()


def test_query_takes_question_marks_numbered_and_named_parameters(open_log) -> None:
    log = open_log()
    assert log.query("SELECT ? AS a, ? AS b", [2, "x"]).iloc[0].tolist() == [2, "x"]
    assert log.query("SELECT $2 AS a, $1 AS b", ["first", "second"]).iloc[0].tolist() == ["second", "first"]
    assert log.query("SELECT $name AS a, '100%' AS pct", {"name": "z"}).iloc[0].tolist() == ["z", "100%"]
    assert log.query("SELECT '?' AS q WHERE 1 = ?", [1]).iloc[0].tolist() == ["?"]
    log.close()


def test_write_runs_another_modules_sql_in_one_transaction_and_rolls_back_on_error(open_log) -> None:
    log = open_log()
    now = datetime(2026, 12, 1, tzinfo=UTC)
    log.write(lambda con: con.execute(
        "INSERT INTO breaker_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [now, "openai", "gpt-4", "closed", "open", "5 failures in a row", None, 42]))

    def half_then_fail(con) -> None:  # noqa: ANN001
        con.execute("INSERT INTO breaker_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [now, "gemini", "*", "closed", "open", "key rejected", None, 43])
        raise RuntimeError("changed my mind")
    with pytest.raises(RuntimeError):
        log.write(half_then_fail)
    got = log.write(lambda con: con.execute("SELECT provider, pid FROM breaker_events").fetchall())
    assert [tuple(r) for r in got] == [("openai", 42)]
    log.close()


def test_append_rows_twice_adds_the_requests_once(open_log) -> None:
    requests, attempts = _tables(finished_results(25, seed=4))
    log = open_log()
    assert log.append_rows(requests, attempts) == 25
    assert log.append_rows(requests, attempts) == 0
    n = log.query("SELECT (SELECT count(*) FROM requests) AS r, (SELECT count(*) FROM attempts) AS a").iloc[0]
    assert (n["r"], n["a"]) == (25, attempts.num_rows)
    log.close()


def test_the_migrations_are_recorded_once_and_a_reopen_applies_none(open_log) -> None:
    from taelio_core.calllog.schema import MIGRATIONS
    open_log().close()
    log = open_log()
    names = log.query("SELECT name FROM _migrations ORDER BY name")["name"].tolist()
    assert set(names) >= {name for name, _ in MIGRATIONS} and len(names) == len(set(names))
    log.close()


def test_a_malformed_request_is_set_aside_and_the_rest_are_stored(open_log) -> None:
    from dataclasses import replace
    results = finished_results(9, seed=6)
    poison = replace(results[4], status=None)           # status is NOT NULL in the schema
    log = open_log(flush_interval=0.05)
    for result in [*results[:4], poison, *results[5:]]:
        log.record(result)
    log.flush(timeout=60)
    assert log.count_requests() == 8 and log.rejected == 1
    status = log.writer_status()
    assert status.set_aside == 1 and "set aside" in (status.last_error or "")
    log.close()


def test_writer_status_names_the_log_without_a_password(open_log) -> None:
    log = open_log()
    status = log.writer_status()
    assert status.location == log.location and status.pending == 0 and status.last_error is None
    assert "@" not in status.location
    log.close()


def test_health_reads_the_newest_breaker_transition_even_when_two_share_a_microsecond(open_log) -> None:
    from taelio_core.config.policy_parser import load_policy
    from taelio_core.monitoring.health import health_report
    policy = load_policy("seed")
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    log = open_log()
    provider, model = health_report(policy=policy, now=at, call_log=log).states.iloc[0][["provider", "model"]]
    for before, after in (("closed", "open"), ("open", "closed")):       # same ts: only the order tells them apart
        log.write(lambda con, b=before, a=after: con.execute(
            "INSERT INTO breaker_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [at, provider, model, b, a, "test", None, 1]))
    report = health_report(policy=policy, now=at, call_log=log)
    assert report.history["to_state"].tolist() == ["closed", "open"]
    states = report.states[(report.states["provider"] == provider) & (report.states["model"] == model)]
    assert states["state"].tolist() == ["closed"]
    log.close()


def test_log_totals_count_every_request_and_its_exact_cost(open_log) -> None:
    from taelio_core.calllog.totals import log_totals
    results = finished_results(30, seed=12)
    log = _recorded(open_log, results)
    totals = log_totals(log)
    assert totals.total.requests == 30 and sum(t.requests for t in totals.by_tier) == 30
    assert totals.total.attempts == sum(len(r.attempts) for r in results)
    assert totals.total.cost_usd == sum((r.cost_usd for r in results if r.cost_usd is not None), Decimal(0))
    assert totals.total.p50_latency_ms is not None and {t.name for t in totals.by_provider} <= {
        a.provider for r in results for a in r.attempts}
    log.close()
