"""``pg_rollup.refold_sql`` (rollups built once, after a bulk load with the fold triggers off) against a real server:
it must leave exactly the rollups the per-batch triggers leave."""
from __future__ import annotations

from pathlib import Path

import psycopg

from taelio_core.analytics.pg_rollup import ROLLUP_TABLES, refold_sql
from taelio_core.calllog import PostgresCallLog
from taelio_core.calllog.postgres_copy import copy_tables
from tests.calllog.traffic import arrow_batch, finished_results


def _rollups(conn: psycopg.Connection) -> dict[str, list[tuple]]:
    """Every rollup table's rows, in one order whatever order they were written in."""
    return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in ROLLUP_TABLES}


def test_rows_loaded_with_the_triggers_off_then_refolded_give_the_rollups_the_triggers_give(
        pg_url: str, tmp_path: Path) -> None:
    log = PostgresCallLog(pg_url, spool=tmp_path)       # migrated: tables, triggers
    log.close()
    results = finished_results(120, seed=5)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for k in range(3):                              # three batches: the folds merge into the same hours
            copy_tables(conn, *arrow_batch(results, f"b{k}"))
        by_triggers = _rollups(conn)
        assert sum(len(rows) for rows in by_triggers.values()) > 0

        conn.execute("TRUNCATE requests, attempts")     # the clear trigger empties the rollups
        assert all(not rows for rows in _rollups(conn).values())
        conn.execute("ALTER TABLE requests DISABLE TRIGGER USER")
        conn.execute("ALTER TABLE attempts DISABLE TRIGGER USER")
        for k in range(3):
            copy_tables(conn, *arrow_batch(results, f"b{k}"))
        conn.execute("ALTER TABLE requests ENABLE TRIGGER USER")
        conn.execute("ALTER TABLE attempts ENABLE TRIGGER USER")
        assert all(not rows for rows in _rollups(conn).values())   # nothing folded while the triggers were off

        for table in ROLLUP_TABLES:                     # one table at a time, as concurrent sessions would
            conn.execute(refold_sql((table,)))
        assert _rollups(conn) == by_triggers
