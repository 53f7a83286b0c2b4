"""The same seeded call log in DuckDB and in PostgreSQL, for the parity test.

Both logs receive the same ``GenerationResult`` values: DuckDB through the real ``DuckDBCallLog``,
PostgreSQL through a stand-in until the PostgreSQL call log exists: its tables from the DuckDB
migrations (``DOUBLE`` spelled ``DOUBLE PRECISION``) plus ``pg_rollup.MIGRATION``, and the DuckDB file's
rows copied in with ``COPY`` (so the rollup triggers fold them as any writer's batch would be).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from taelio_core.analytics import pg_rollup
from taelio_core.analytics.pg_reader import PostgresReader
from taelio_core.calllog import CallLog, DuckDBCallLog
from taelio_core.calllog.schema import MIGRATIONS

T = TypeVar("T")


class StandInPostgresLog(CallLog):
    """Just enough of a PostgreSQL call log for the analytics: ``write(fn)`` and ``query``."""

    def __init__(self, url: str) -> None:
        import psycopg
        self.location = url
        self.con = psycopg.connect(url)

    def record(self, result: Any) -> None:
        raise NotImplementedError

    def append_rows(self, requests: Any, attempts: Any) -> int:
        raise NotImplementedError

    def flush(self, timeout: float | None = None) -> None:
        pass

    def query(self, sql: str, params: Any = ()) -> pd.DataFrame:
        return self.write(lambda con: PostgresReader(con).query(sql, params))

    def write(self, fn: Callable[[Any], T]) -> T:
        with self.con.transaction():
            return fn(self.con)

    def close(self) -> None:
        self.con.close()


def create_schema(url: str) -> None:
    import psycopg
    with psycopg.connect(url, autocommit=True) as con:
        for _name, sql in MIGRATIONS:
            con.execute(re.sub(r"\bDOUBLE\b(?! PRECISION)", "DOUBLE PRECISION", sql))
        pg_rollup.install(con)


def copy_rows(duck: Path, url: str) -> None:
    """Every request and attempt of the DuckDB file into PostgreSQL, one ``COPY`` per table."""
    import psycopg
    log = DuckDBCallLog(duck)
    try:
        frames = {t: log.query(f"SELECT * REPLACE (cost_usd::VARCHAR AS cost_usd) FROM {t}")   # exact decimals
                  for t in ("requests", "attempts")}
    finally:
        log.close()
    with psycopg.connect(url) as con, con.cursor() as cur:
        for table, frame in frames.items():
            cols = list(frame.columns)
            with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                for row in frame.astype(object).itertuples(index=False):
                    copy.write_row([None if _missing(v) else v for v in row])
        con.commit()


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
