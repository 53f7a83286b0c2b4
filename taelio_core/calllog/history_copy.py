"""``taelio log copy``: move a call log's history between DuckDB and PostgreSQL, in batches, idempotently.

Why batches of whole requests: a request and its attempts are written in one
transaction by every writer, so a copy does the same: it pages through the
source's requests in ``(ts, request_id)`` order (keyset pagination: every
page costs the same at 10M rows, unlike ``OFFSET``), takes each page's
attempts with them, and hands both to the destination's ``append_rows``,
which skips what it already holds (PostgreSQL: ``ON CONFLICT DO NOTHING`` on
the primary keys; DuckDB: the anti-join on ``request_id``). So a second run,
or a run resumed after an interruption, adds nothing twice.

Then every other table that holds history (experiments, votes, judge
verdicts, input sets, Sandbox runs, breaker events, alerts: the list and its
keys are ``history_tables.HISTORY_TABLES``), each with its own progress and
its own key, so it too adds nothing on a second run. The rollups are never
copied: the destination folds them from the requests and attempts it takes
(DuckDB after each append; PostgreSQL's triggers in each statement).

Values travel as Arrow columns with the log's exact types (``DECIMAL(18,
10)`` money stays exact; no float round trip through pandas).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from taelio_core.calllog.arrow import ATTEMPT_SCHEMA, REQUEST_SCHEMA
from taelio_core.calllog.base import CallLog
from taelio_core.calllog.history_tables import (HISTORY_TABLES, HistoryTable, append_table, arrow_rows, count_rows,
                                                read_pages)

if TYPE_CHECKING:
    from taelio_core.calllog.duckdb import DuckDBCallLog
    from taelio_core.calllog.postgres import PostgresCallLog

__all__ = ["BATCH", "CopyProgress", "CopyReport", "TableProgress", "copy_history", "copy_log", "source_batches"]

BATCH = 20_000
_REQUESTS = ", ".join(REQUEST_SCHEMA.names)
_ATTEMPTS = ", ".join(ATTEMPT_SCHEMA.names)
_PAGE = (f"SELECT {_REQUESTS} FROM requests WHERE ts > ? OR (ts = ? AND request_id > ?) "
         "ORDER BY ts, request_id LIMIT ?")
_FIRST_PAGE = f"SELECT {_REQUESTS} FROM requests ORDER BY ts, request_id LIMIT ?"


@dataclass(frozen=True, kw_only=True)
class CopyProgress:
    total: int            # requests in the source when the copy began
    read: int             # requests read so far
    added: int            # of those, new to the destination
    attempts: int         # attempts read so far

    def sentence(self, source: str, destination: str) -> str:
        skipped = self.read - self.added
        return (f"{self.read:,} of {self.total:,} requests read from {source}, {self.added:,} added to "
                f"{destination}" + (f" ({skipped:,} already there)" if skipped else ""))

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "read": self.read, "added": self.added, "attempts": self.attempts}


def source_batches(source: CallLog, batch: int = BATCH) -> Iterator[tuple[pa.Table, pa.Table]]:
    """The source's requests, ``batch`` at a time in ``(ts, request_id)`` order, each with its attempts."""
    from taelio_core.calllog.duckdb import DuckDBCallLog
    fetch = _duckdb_fetch(source) if isinstance(source, DuckDBCallLog) else _postgres_fetch(source)  # type: ignore[arg-type]
    after: tuple[Any, str] | None = None
    while True:
        requests, attempts = fetch(after, batch)
        if requests.num_rows == 0:
            return
        yield requests, attempts
        last = requests.slice(requests.num_rows - 1).to_pylist()[0]
        after = (last["ts"], last["request_id"])


Fetch = Callable[[tuple[Any, str] | None, int], tuple[pa.Table, pa.Table]]


def _duckdb_fetch(log: DuckDBCallLog) -> Fetch:
    def fetch(after: tuple[Any, str] | None, n: int) -> tuple[pa.Table, pa.Table]:
        with log.connect() as con:
            if after is None:
                requests = con.sql(_FIRST_PAGE, params=[n]).to_arrow_table()
            else:
                requests = con.sql(_PAGE, params=[after[0], after[0], after[1], n]).to_arrow_table()
            _ids = requests.select(["request_id"])     # noqa: F841 - read by DuckDB by name
            attempts = con.sql(f"SELECT {_ATTEMPTS} FROM attempts WHERE request_id IN "
                               "(SELECT request_id FROM _ids) ORDER BY request_id, n").to_arrow_table()
        return requests.cast(REQUEST_SCHEMA), attempts.cast(ATTEMPT_SCHEMA)
    return fetch


def _postgres_fetch(log: PostgresCallLog) -> Fetch:
    from taelio_core.calllog.postgres_sql import to_psycopg

    def fetch(after: tuple[Any, str] | None, n: int) -> tuple[pa.Table, pa.Table]:
        def read(con: Any) -> tuple[pa.Table, pa.Table]:  # noqa: ANN401 - the session's psycopg connection
            sql, args = (to_psycopg(_FIRST_PAGE, [n]) if after is None
                         else to_psycopg(_PAGE, [after[0], after[0], after[1], n]))
            rows = con.connection.execute(sql, args).fetchall()
            requests = arrow_rows(rows, REQUEST_SCHEMA)
            ids = requests["request_id"].to_pylist()
            attempt_rows = con.connection.execute(
                f"SELECT {_ATTEMPTS} FROM attempts WHERE request_id = ANY(%s) ORDER BY request_id, n",
                [ids]).fetchall() if ids else []
            return requests, arrow_rows(attempt_rows, ATTEMPT_SCHEMA)
        return log.write(read)
    return fetch


def copy_history(source: CallLog, destination: CallLog, *, batch: int = BATCH,
                 progress: Callable[[CopyProgress], None] = lambda p: None) -> CopyProgress:
    """Copy every request and attempt of ``source`` into ``destination``; what it read and added."""
    total = source.count_requests()
    done = CopyProgress(total=total, read=0, added=0, attempts=0)
    progress(done)
    for requests, attempts in source_batches(source, batch):
        added = destination.append_rows(requests, attempts)
        done = CopyProgress(total=max(total, done.read + requests.num_rows), read=done.read + requests.num_rows,
                            added=done.added + added, attempts=done.attempts + attempts.num_rows)
        progress(done)
    return done


@dataclass(frozen=True, kw_only=True)
class TableProgress:
    table: str
    total: int            # rows in the source's table when its copy began
    read: int
    added: int            # of those, new to the destination

    def sentence(self, source: str, destination: str) -> str:
        skipped = self.read - self.added
        return (f"{self.table}: {self.read:,} of {self.total:,} rows read from {source}, {self.added:,} added to "
                f"{destination}" + (f" ({skipped:,} already there)" if skipped else ""))

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "read": self.read, "added": self.added}


@dataclass(frozen=True, kw_only=True)
class CopyReport:
    requests: CopyProgress
    tables: tuple[TableProgress, ...]     # every history table, empty ones included

    def as_dict(self) -> dict[str, Any]:
        return {**self.requests.as_dict(), "tables": {t.table: t.as_dict() for t in self.tables}}


def copy_table(source: CallLog, destination: CallLog, table: HistoryTable, *, batch: int = BATCH,
               progress: Callable[[TableProgress], None] = lambda p: None) -> TableProgress:
    """Copy the rows of one history table that ``destination`` lacks, ``batch`` per transaction."""
    total = count_rows(source, table)
    done = TableProgress(table=table.name, total=total, read=0, added=0)
    if total:
        progress(done)
    for page in read_pages(source, table, batch):
        added = append_table(destination, table, page)
        done = TableProgress(table=table.name, total=max(total, done.read + page.num_rows),
                             read=done.read + page.num_rows, added=done.added + added)
        progress(done)
    return done


def copy_log(source: CallLog, destination: CallLog, *, batch: int = BATCH,
             progress: Callable[[CopyProgress | TableProgress], None] = lambda p: None) -> CopyReport:
    """The whole history: requests and attempts first (cells point at them), then every history table.

    ``progress`` hears of each batch; a table with no rows is copied silently.
    """
    requests = copy_history(source, destination, batch=batch, progress=progress)
    tables = tuple(copy_table(source, destination, table, batch=batch, progress=progress)
                   for table in HISTORY_TABLES)
    return CopyReport(requests=requests, tables=tables)
