"""The budget spend reads whole hours from the attempt rollup (``simulated`` is one of its keys) and the current
hour from the raw rows: it must give exactly what the month's raw attempts give, on both backends.

Simulated and real attempts share every hour here (the same traffic twice, once simulated), in hours already
folded, in rows the writer did not fold, in the hour still being written (before and after ``now``) and in the
month before; only the real ones count unless a rehearsal says so (``count_simulated``).
"""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pytest

from taelio_core.analytics import pg_rollup, rollup
from taelio_core.analytics.budget_burn import budget_spend, budget_spend_from_raw, month_bounds
from taelio_core.calllog import DuckDBCallLog, PostgresCallLog
from taelio_core.calllog.arrow import ATTEMPT_SCHEMA, REQUEST_SCHEMA, rows_to_table
from taelio_core.calllog.postgres_copy import copy_tables
from taelio_core.calllog.postgres_schema import migrate, postgres_migrations
from taelio_core.calllog.rows import encode
from taelio_core.calllog.schema import MIGRATIONS
from tests.seeded_log import FIXED_NOW, build_results, seed_log

NOW = FIXED_NOW + timedelta(minutes=37)      # mid-hour: the current hour holds rows before and after it


def _traffic() -> list:
    """Real live traffic over 25 days (into the month before) and the same traffic again, simulated."""
    real = build_results(now=NOW, n=200, days=25, seed=21, source="live")
    real += [replace(r, request_id=f"{r.request_id}-later", started_at=NOW + timedelta(minutes=10),
                     attempts=tuple(replace(a, started_at=NOW + timedelta(minutes=10)) for a in r.attempts))
             for r in real[:4]]                           # the current hour, after now: never counted yet
    simulated = [replace(r, request_id=f"{r.request_id}-sim", simulated=True,
                         attempts=tuple(replace(a, simulated=True) for a in r.attempts)) for r in real]
    return real + simulated


def _expected(results: list, *, count_simulated: bool) -> dict:
    """(day, tier, provider) -> spend, summed in Python from the attempts themselves."""
    start, _ = month_bounds(NOW)
    out: dict = {}
    for r in results:
        for a in r.attempts:
            if a.cost_usd is None or not start <= a.started_at <= NOW or (a.simulated and not count_simulated):
                continue
            key = (a.started_at.astimezone(UTC).date(), r.tier, a.provider)
            out[key] = out.get(key, Decimal(0)) + a.cost_usd
    return out


def _raw(log: object, *, count_simulated: bool) -> dict:
    return _as_dict(budget_spend_from_raw(log, now=NOW, count_simulated=count_simulated))


def _as_dict(frame: object) -> dict:
    return {(r.day.date() if hasattr(r.day, "date") else r.day, r.tier, r.provider): Decimal(r.cost)
            for r in frame.itertuples(index=False)}


def _check(log: object, results: list) -> None:
    for count_simulated in (False, True):
        spend = _as_dict(budget_spend(log, now=NOW, count_simulated=count_simulated))
        assert spend == _raw(log, count_simulated=count_simulated)
        assert spend == _expected(results, count_simulated=count_simulated)
    real, rehearsal = (sum(_expected(results, count_simulated=c).values()) for c in (False, True))
    assert 0 < real < rehearsal


def test_duckdb_spend_counts_only_real_attempts_from_folded_unfolded_and_current_hours(tmp_path: Path):
    results = _traffic()
    db = tmp_path / "calls.duckdb"
    seed_log(db, results, now=NOW)                       # the writer folded these
    con = duckdb.connect(str(db))                        # a plain client's rows: past the watermark, not folded
    con.execute("INSERT INTO attempts SELECT * REPLACE (request_id || '-plain' AS request_id) FROM attempts")
    con.close()
    with DuckDBCallLog(db) as log:
        _check(log, results + [replace(r, request_id=f"{r.request_id}-plain") for r in results])
        keyed = log.query("SELECT count(*) AS rows, count(DISTINCT (hour, source, tier, task, provider, model, "
                          "status, error_type, simulated)) AS groups, count(DISTINCT simulated) AS kinds "
                          "FROM attempt_rollup").iloc[0]
        assert keyed["rows"] == keyed["groups"] and keyed["kinds"] == 2


def test_duckdb_migration_014_regroups_the_folded_rows_by_simulated(tmp_path: Path):
    results = _traffic()
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))                        # a log as it was before 014, its rows folded then
    from taelio_core.calllog.schema import migrate as duck_migrate
    duck_migrate(con, MIGRATIONS[:MIGRATIONS.index(next(m for m in MIGRATIONS if m[0].startswith("014")))])
    requests, attempts = zip(*(encode(r) for r in results), strict=True)
    con.register("q", rows_to_table(list(requests), REQUEST_SCHEMA).to_pandas())
    con.register("a", rows_to_table([row for rows in attempts for row in rows], ATTEMPT_SCHEMA).to_pandas())
    con.execute("INSERT INTO requests BY NAME SELECT * FROM q")
    con.execute("INSERT INTO attempts BY NAME SELECT * FROM a")
    old_keys = ", ".join(k for k in rollup._ROLLUPS["attempts"][0].keys if k != "simulated")
    con.execute(f"""INSERT INTO attempt_rollup BY NAME SELECT date_trunc('hour', ts AT TIME ZONE 'UTC') AS hour,
                    {old_keys.removeprefix('hour, ')}, count(*) AS attempts, 0 AS first_attempts, 0 AS priced,
                    0 AS unpriced, sum(cost_usd) AS cost_usd, 0 AS input_tokens, 0 AS output_tokens,
                    max(ts) AS last_ts FROM attempts GROUP BY ALL""")
    n = con.execute("SELECT count(*) FROM attempts").fetchone()[0]
    con.execute("INSERT INTO rollup_watermarks VALUES ('attempts', ?, ?, now())", [n, n])
    con.close()
    with DuckDBCallLog(db) as log:                       # applies 014
        migrated = log.query("SELECT * FROM attempt_rollup ORDER BY ALL")
        assert set(migrated["simulated"]) == {False, True}
        log.write(rollup.invalidate)                     # the same rows folded from scratch
        log.write(rollup.refresh)
        refolded = log.query("SELECT * FROM attempt_rollup ORDER BY ALL")
        assert migrated.equals(refolded)
        _check(log, results)


def _copy(conn: psycopg.Connection, results: list) -> None:
    requests, attempts = zip(*(encode(r) for r in results), strict=True)
    copy_tables(conn, rows_to_table(list(requests), REQUEST_SCHEMA, store_text=True),
                rows_to_table([row for rows in attempts for row in rows], ATTEMPT_SCHEMA))


def test_postgresql_spend_counts_only_real_attempts_from_the_rollup_and_the_current_hour(pg_url: str,
                                                                                        tmp_path: Path):
    results = _traffic()
    log = PostgresCallLog(pg_url, spool=tmp_path)
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            _copy(conn, results[: len(results) // 2])    # two batches folded by the triggers into shared hours
            _copy(conn, results[len(results) // 2:])
        _check(log, results)
    finally:
        log.close()


def test_postgresql_migration_rekeys_a_rollup_folded_without_simulated(pg_url: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    results = _traffic()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        names = [name for name, _ in postgres_migrations()]
        migrate(conn, postgres_migrations()[:names.index("postgres_attempt_rollup_simulated")])
        # The unique key and triggers as they were before: no ``simulated`` (the column holds its default).
        keys, merge, source, sql = pg_rollup._ROLLUPS["attempt_rollup"]
        old = (tuple(k for k in keys if k != "simulated"), merge, source,
               sql.replace(" simulated,", "").replace(", 9 ORDER", " ORDER").removesuffix(", 9"))
        assert old[3].count("9") == 0
        with monkeypatch.context() as m:
            m.setitem(pg_rollup._ROLLUPS, "attempt_rollup", old)
            conn.execute("DROP INDEX attempt_rollup_key;" + pg_rollup._key("attempt_rollup")
                         + pg_rollup._functions(hashed=True))
        _copy(conn, results)
        assert conn.execute("SELECT count(*) FROM attempt_rollup WHERE simulated").fetchone()[0] == 0
    log = PostgresCallLog(pg_url, spool=tmp_path)        # applies postgres_attempt_rollup_simulated
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            migrated = sorted(conn.execute("SELECT * FROM attempt_rollup").fetchall(), key=repr)
            conn.execute(pg_rollup.refold_sql(("attempt_rollup",)))
            assert migrated == sorted(conn.execute("SELECT * FROM attempt_rollup").fetchall(), key=repr)
            assert {row[-1] for row in conn.execute("SELECT simulated FROM attempt_rollup").fetchall()} == {False,
                                                                                                             True}
        _check(log, results)
        with psycopg.connect(pg_url, autocommit=True) as conn:   # and the new triggers fold by simulated too
            _copy(conn, [replace(r, request_id=f"{r.request_id}-again") for r in results])
            folded = sorted(conn.execute("SELECT * FROM attempt_rollup").fetchall(), key=repr)
            conn.execute(pg_rollup.refold_sql(("attempt_rollup",)))
            assert folded == sorted(conn.execute("SELECT * FROM attempt_rollup").fetchall(), key=repr)
    finally:
        log.close()
