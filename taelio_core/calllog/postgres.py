"""The call log in PostgreSQL (``DATABASE_URL=postgresql://...``): one log for several processes and machines.

Why it is built this way: the write path is DuckDB's (``queued.py``):
``record`` journals and queues, a writer thread commits batches, here with
``COPY`` (``postgres_copy.py``) on a connection it holds. A ``kill -9`` loses
nothing: the journal lives on the local disk (``<spool>/postgres-<host>-
<port>-<db>.journal/``), and the next process to open the same database from
the same folder (a restarted replica) replays it; the primary keys make the
replay land each request once, even if the dead writer had committed it.

Reads and other modules' writes borrow connections from a small
``psycopg_pool`` pool, so the dashboard, the API and the writer never wait for
each other as DuckDB's processes wait for its file. Callers keep writing
DuckDB's ``?`` placeholders and reading DuckDB-typed DataFrames
(``postgres_sql.py``). The schema is the same named migrations, applied on
open under an advisory lock (``postgres_schema.py``).

The URL's password goes to libpq and nowhere else: ``location`` is the URL
without it, and every error is scrubbed of it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from taelio_core.calllog.batch import commit_rows
from taelio_core.calllog.postgres_copy import copy_rows, copy_tables, is_data_error
from taelio_core.calllog.postgres_schema import migrate
from taelio_core.calllog.postgres_sql import PostgresSession, frame, to_psycopg
from taelio_core.calllog.queued import FLUSH_INTERVAL_S, MAX_BATCH, QueuedCallLog
from taelio_core.errors import CallLogError, redact
from taelio_core.redaction import register_url_secrets, safe_url

if TYPE_CHECKING:
    import pandas as pd
    import psycopg

__all__ = ["PostgresCallLog", "spool_name"]

T = TypeVar("T")
Row = tuple[Any, ...]
CONNECT_TIMEOUT_S = 10
POOL_SIZE = 4


def spool_name(url: str) -> str:
    """``postgres-<host>-<port>-<database>``: the local name of this database's journal and rejects."""
    parts = urlsplit(url)
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    host = (parts.hostname or "local").replace("/", "_")
    database = (unquote(parts.path.lstrip("/")) or parts.username or "postgres").replace("/", "_")
    return f"postgres-{host}-{port}-{database}"


class PostgresCallLog(QueuedCallLog):
    def __init__(self, url: str, *, store_text: bool = True, journal: str = "write", spool: str | Path = "data",
                 flush_interval: float = FLUSH_INTERVAL_S, max_batch: int = MAX_BATCH,
                 pool_size: int = POOL_SIZE) -> None:
        register_url_secrets(url)
        self._url = url
        self.location = safe_url(url)
        self.spool = Path(spool) / spool_name(url)
        super().__init__(self.spool, journal=journal, store_text=store_text, flush_interval=flush_interval,
                         max_batch=max_batch)
        self._con: psycopg.Connection[Any] | None = None     # the writer's (writer thread only)
        self._pool: Any = None
        with self._connect() as conn:
            try:
                migrate(conn)
            except Exception as e:
                raise CallLogError(f"cannot upgrade the log {self.location}: {self._scrub(e)}") from None
            self.replayed = self._replay(conn)
        self._open_pool(pool_size)

    # ---- connections -----------------------------------------------------------------------
    def _scrub(self, exc: BaseException | str) -> str:
        """An error's first line without the password (``redact`` skips passwords under 6 characters)."""
        text = str(exc).strip()
        text = (text.splitlines() or [type(exc).__name__])[0]
        password = urlsplit(self._url).password
        for secret in filter(None, {password, password and unquote(password)}):
            text = text.replace(secret, "********")
        return redact(text.replace(self._url, self.location))

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg
        try:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                   application_name="taelio")
        except psycopg.Error as e:
            raise CallLogError(f"cannot connect to the log {self.location}: {self._scrub(e)}") from None
        _configure(conn)
        return conn

    def _open_pool(self, size: int) -> None:
        from psycopg_pool import ConnectionPool
        # ``check``: a connection the server dropped (a restart, a failover) is replaced when borrowed, not
        # handed to a reader; one round trip per borrow.
        self._pool = ConnectionPool(self._url, min_size=1, max_size=max(1, size), open=True, configure=_configure,
                                    check=ConnectionPool.check_connection,
                                    kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S,
                                            "application_name": "taelio"}, name="taelio-calllog")

    def _borrow(self) -> Any:  # noqa: ANN401 - the pool's connection context
        if self._pool is None:
            raise CallLogError("the call log is closed")
        return self._pool.connection(timeout=CONNECT_TIMEOUT_S)

    def _writer_connection(self) -> psycopg.Connection[Any]:
        if self._con is None or self._con.closed:
            self._con = self._connect()
        return self._con

    def _release(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            try:
                con.close()
            except Exception:  # noqa: BLE001 - a broken connection: nothing left to release
                pass

    def _commit_rows(self, requests: list[Row], attempts: list[Row], con: Any, *,  # noqa: ANN401
                     skip_stored: bool = False) -> int:
        import psycopg
        try:
            bad, by_request = commit_rows(con, requests, attempts, store_text=self.store_text,
                                          skip_stored=skip_stored, insert=copy_rows, data_error=is_data_error)
        except psycopg.Error as e:
            raise CallLogError(f"the log {self.location} refused a batch: {self._scrub(e)}") from None
        return self._set_aside(bad, by_request, self._scrub)

    def append_rows(self, requests: pa.Table, attempts: pa.Table) -> int:
        """Write whole Arrow tables in one transaction, now (bulk loads: demo data, imports, ``log copy``)."""
        import psycopg
        requests, attempts = self._conformed(requests, attempts)
        with self._borrow() as conn:
            try:
                return copy_tables(conn, requests, attempts, skip_stored=True)
            except psycopg.Error as e:
                raise CallLogError(f"cannot append to the log {self.location}: {self._scrub(e)}") from None

    def _closed_writer(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # ---- reading, and other modules' tables ----------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> pd.DataFrame:
        import psycopg
        text, args = to_psycopg(sql, params)
        with self._borrow() as conn:
            try:
                return frame(conn.execute(text, args))
            except psycopg.OperationalError as e:
                raise CallLogError(f"cannot read the log {self.location}: {self._scrub(e)}") from None

    def write(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(session)`` in one transaction; ``session`` takes DuckDB-style SQL (``PostgresSession``)."""
        with self._borrow() as conn:
            with conn.transaction():
                return fn(PostgresSession(conn))


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Every connection: UTC, and JSON read back as text (as DuckDB gives it) rather than parsed."""
    from psycopg.types.string import TextLoader
    for name in ("json", "jsonb"):
        conn.adapters.register_loader(name, TextLoader)
    conn.execute("SET TIME ZONE 'UTC'")
