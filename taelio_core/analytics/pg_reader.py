"""Analytics reads on a PostgreSQL call log: the same queries, the same DataFrames as on DuckDB.

``PostgresReader`` is ``rollup.Reader`` over the session the PostgreSQL call
log's ``write(fn)`` hands out (``calllog.postgres_sql.PostgresSession``): it
takes the analytics SQL with DuckDB's ``?`` placeholders and returns frames
typed as DuckDB's ``.df()`` types them, so code downstream of a query (and
the parity test) cannot tell the backends apart. What differs is the
``dialect`` (``analytics/dialect.py``) and the minute-grain rollups
(``pg_rollup.build_fine``). Nothing is refreshed before reading: triggers
keep the rollups current (``pg_rollup``).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from taelio_core.analytics import pg_rollup
from taelio_core.analytics.dialect import POSTGRES
from taelio_core.analytics.rollup import Reader

__all__ = ["PostgresReader", "is_postgres_log", "read"]

T = TypeVar("T")


def is_postgres_log(log: Any) -> bool:
    """Whether ``log`` is a PostgreSQL call log (its module, or where it says it lives)."""
    return (type(log).__module__.startswith("taelio_core.calllog.postgres")
            or str(getattr(log, "location", "")).startswith(("postgresql://", "postgres://")))


class PostgresReader(Reader):
    """A ``PostgresSession`` inside one transaction; ``query`` as on a ``CallLog`` (``?`` placeholders)."""

    dialect = POSTGRES

    def build_fine(self, *, start: datetime, end: datetime, minutes: int = 1) -> list[str]:
        return pg_rollup.build_fine(self.con, start=start, end=end, minutes=minutes)

    def drop_fine(self, tables: list[str]) -> None:
        pg_rollup.drop_fine(self.con, tables)


# Memory for each sort and hash of an analytics read, for this transaction only (``SET LOCAL``). PostgreSQL's
# default (4 MB) made the hourly percentiles over 30 days of latency histogram spill their grouping and their
# window sort to disk; these reads group rollup rows (tens of MB at most), never raw rows in bulk.
WORK_MEM = "64MB"


def read(log: Any, fn: Callable[[PostgresReader], T]) -> T:
    """``fn(reader)`` in one transaction of the log's own connection (its ``write``), sorts and hashes in memory."""
    def work(session: Any) -> T:
        session.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        return fn(PostgresReader(session))
    return log.write(work)
