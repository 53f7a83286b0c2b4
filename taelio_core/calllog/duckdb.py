"""The call log in a DuckDB file, written off the request path in batches, journalled so a crash loses nothing.

Why it is built this way:

* After each commit (and each bulk append) the writer folds the new rows
  into the dashboard's rollups (``analytics/rollup.py``, ``_fold``): at 10M
  rows a fold costs 100-350 ms, which the first dashboard read after new
  traffic used to pay.
* ``record`` is on the request path, so it does the least that keeps the
  promise "returned means not lost": it encodes the request as plain tuples
  (``rows.encode``), appends them to this process's journal with one
  ``write()`` (``journal.py``) and queues them. Everything else (Arrow
  columns, text hashes, the insert) happens in the writer thread, in bulk,
  column by column. A ``kill -9`` loses nothing: the next open of the file,
  by any process, replays the dead process's journal.
* Row-at-a-time inserts manage ~700 rows/s; an Arrow batch, a hundred times
  more. The writer flushes one Arrow batch per table at most every
  ``flush_interval`` (0.5 s), at once when ``flush()`` asks, and on a clean
  exit. Each flush has a fixed cost in DuckDB (a few statements, a commit:
  ~5 ms of CPU on a loaded 2-core box), so at steady low rates the interval,
  not the rows, sets the writer's CPU; 0.5 s keeps a request visible within
  a second. The tables carry no primary-key indexes (migration 005: they
  cost ~5x per insert); a replay, or a bulk load run twice, skips the
  requests already stored instead (an anti-join on request_id within the
  batch's times).
* DuckDB lets only one process open a file at a time, and the
  dashboard and the CLI must share it with the router. Opening, inserting,
  checkpointing and closing on every flush cost 2.5-3.7 ms of CPU per
  request at low rates, competing with the router for the GIL and the
  cores. So the writer **holds one connection while traffic keeps
  arriving** and lets go (DuckDB checkpoints on the last close):
  - when another Taelio process waits for the file (``sharing.py``: a
    waiter touches a file in ``<db>.waiting/`` while it retries; the writer
    looks every ``_POLL_S`` while it holds the file, commits what it has
    and lets go), and then
    opens per flush, as before, until nobody has waited for ``share_for``
    seconds, so a dashboard running a page's queries pays the wait once;
  - after ``idle_release`` seconds without a new request (1 s by default):
    long enough that steady traffic, even at a few requests a second, keeps
    the connection, and short enough that a plain DuckDB client (which
    cannot signal) gets the file within a second of the traffic stopping.
  ``idle_release=0`` restores open-per-flush (``bench_ingest`` measures both
  side by side). Other processes' readers and writers already retry a lock
  with backoff, so a yield costs them one commit plus their next retry,
  never an error.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd
import pyarrow as pa

from taelio_core.calllog.arrow import rows_to_table
from taelio_core.calllog.batch import commit_rows, insert_tables
from taelio_core.calllog.check import check_log
from taelio_core.calllog.queued import FLUSH_INTERVAL_S, MAX_BATCH, QueuedCallLog
from taelio_core.calllog.schema import migrate
from taelio_core.calllog.sharing import first_line, open_with_retry, others_waiting
from taelio_core.errors import CallLogError, LogUnusable

__all__ = ["DuckDBCallLog", "LOCK_TIMEOUT_S", "migrate", "rows_to_table"]

T = TypeVar("T")
log = logging.getLogger("taelio.calllog")
LOCK_TIMEOUT_S = 60.0
IDLE_RELEASE_S = 1.0
SHARE_FOR_S = 1.0
_POLL_S = 0.05          # how often a writer holding the file, with nothing to write, looks for waiters

class DuckDBCallLog(QueuedCallLog):
    def __init__(self, path: str | Path, *, store_text: bool = True, flush_interval: float = FLUSH_INTERVAL_S,
                 lock_timeout: float = LOCK_TIMEOUT_S, journal: str = "write", max_batch: int = MAX_BATCH,
                 idle_release: float = IDLE_RELEASE_S, share_for: float = SHARE_FOR_S, adopt: bool = False,
                 fold_rollups: bool = True) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        super().__init__(self.path, journal=journal, store_text=store_text, flush_interval=flush_interval,
                         max_batch=max_batch)
        self.lock_timeout = lock_timeout
        self.idle_release = idle_release
        self.share_for = share_for
        self.adopt = adopt           # add Taelio's tables to a DuckDB file that holds other tables
        self.fold_rollups = fold_rollups   # fold the dashboard's rollups after each commit (False: reads fold)
        self._con: duckdb.DuckDBPyConnection | None = None   # the writer's held connection (writer thread only)
        self._shared_until = 0.0                             # open per flush until then: someone waited
        self.lock_waits = 0          # lock conflicts met (and retried)
        self.opens = 0               # connections it opened for them (fewer: it held one across batches)
        self.yields = 0              # times the writer let go because another process waited
        self._prepare()

    # ---- opening ---------------------------------------------------------------------------
    def _prepare(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CallLogError(f"cannot create the log's folder {self.path.parent}: {e.strerror}") from None
        if self.path.exists() and not self.path.is_file():
            raise CallLogError(f"the log {self.path} is not a file")
        had_wal = self.path.with_name(self.path.name + ".wal").exists()
        with self.connect() as con:
            check_log(con, self.path, had_wal=had_wal, adopt=self.adopt)
            try:
                migrate(con)
            except duckdb.Error as e:
                raise CallLogError(f"cannot upgrade the log {self.path}: {first_line(e)}") from None
            self.replayed = self._replay(con)

    def _count_wait(self) -> None:
        self.lock_waits += 1

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file for one operation, retrying while another process holds it.

        While this process's writer holds the file, this is a new connection to the same
        database instance (DuckDB caches it per process): instant, and no lock to wait for.
        """
        con = open_with_retry(self.path, self.lock_timeout, self._count_wait)
        try:
            yield con
        finally:
            con.close()

    # ---- writing (the queue and the writer thread: ``queued.py``) -----------------------------
    def _poll_s(self) -> float | None:
        return None if self._con is None else _POLL_S   # holding the file: wake now and then to let go

    def _wanted_elsewhere(self) -> bool:
        return self._con is not None and others_waiting(self.path)

    def _after_commit(self, con: duckdb.DuckDBPyConnection) -> None:
        self._fold(con)

    def _writer_connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = open_with_retry(self.path, self.lock_timeout, self._count_wait)
            self.opens += 1
        return self._con

    def _release_if_due(self) -> None:
        """Let go of the file when idle long enough, or while another process waits for it."""
        if self._con is None:
            return
        now = time.monotonic()
        if others_waiting(self.path):
            self._shared_until = now + self.share_for
            self.yields += 1
        elif now >= self._shared_until and now - self._last_write < self.idle_release:
            return
        self._release()

    def _release(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            try:
                con.close()      # the last connection to the file: DuckDB checkpoints the WAL into it
            except duckdb.Error as e:
                self.last_error = first_line(e)

    def _commit_rows(self, requests: list[tuple[Any, ...]], attempts: list[tuple[Any, ...]],
                     con: duckdb.DuckDBPyConnection, *, skip_stored: bool = False) -> int:
        """Insert queued rows; malformed ones go to ``<db>.rejected/`` (``batch.commit_rows``). Returns how many."""
        bad, by_request = commit_rows(con, requests, attempts, store_text=self.store_text, skip_stored=skip_stored)
        return self._set_aside(bad, by_request)

    def append_rows(self, requests: pa.Table, attempts: pa.Table) -> int:
        """Write whole Arrow tables in one transaction, now (bulk loads: demo data, imports)."""
        requests, attempts = self._conformed(requests, attempts)
        with self.connect() as con:
            written = insert_tables(con, requests, attempts, skip_stored=True)
            self._fold(con)
            return written

    def _fold(self, con: duckdb.DuckDBPyConnection) -> None:
        """Fold the rows just committed into the dashboard's rollups, so the next read need not.

        ``analytics/rollup.py`` owns what the rollups hold; this only says when. The rows are committed
        already: a fold that fails leaves them to the next read, which folds whatever is past the watermark.
        """
        if not self.fold_rollups:
            return
        from taelio_core.analytics.rollup import fold_after_write    # analytics imports calllog: not at the top
        try:
            fold_after_write(con)
        except duckdb.Error as e:
            log.warning("the rollups of %s were not folded after a write (%s); the next read folds them",
                        self.path, first_line(e))

    # ---- reading ---------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> pd.DataFrame:
        with self.connect() as con:
            try:
                return con.execute(sql, params).df()
            except duckdb.IOException as e:       # a block the file no longer has: the file, not the query
                raise LogUnusable(self.path, f"cannot be read ({first_line(e)})") from None

    def write(self, fn: Callable[[Any], T]) -> T:
        with self.connect() as con:
            con.execute("BEGIN")
            try:
                out = fn(con)
                con.execute("COMMIT")
                return out
            except BaseException:
                con.execute("ROLLBACK")
                raise

