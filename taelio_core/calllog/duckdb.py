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

import atexit
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd
import pyarrow as pa

from taelio_core.calllog.arrow import ATTEMPT_SCHEMA, REQUEST_SCHEMA, complete_text, conform, rows_to_table
from taelio_core.calllog.base import CallLog, WriterStatus
from taelio_core.calllog.batch import commit_rows, insert_tables, set_aside
from taelio_core.calllog.check import check_log
from taelio_core.calllog.journal import JOURNAL_MODES, Journal, dead_journals, encode_record, read_segment
from taelio_core.calllog.rows import encode
from taelio_core.calllog.schema import migrate
from taelio_core.calllog.sharing import first_line, open_with_retry, others_waiting
from taelio_core.errors import CallLogError, LogUnusable
from taelio_core.routing.trace import GenerationResult

__all__ = ["DuckDBCallLog", "LOCK_TIMEOUT_S", "migrate", "rows_to_table"]

T = TypeVar("T")
log = logging.getLogger("taelio.calllog")
LOCK_TIMEOUT_S = 60.0
MAX_BATCH = 100_000
FLUSH_INTERVAL_S = 0.5
IDLE_RELEASE_S = 1.0
SHARE_FOR_S = 1.0
_POLL_S = 0.05          # how often a writer holding the file, with nothing to write, looks for waiters

class DuckDBCallLog(CallLog):
    def __init__(self, path: str | Path, *, store_text: bool = True, flush_interval: float = FLUSH_INTERVAL_S,
                 lock_timeout: float = LOCK_TIMEOUT_S, journal: str = "write", max_batch: int = MAX_BATCH,
                 idle_release: float = IDLE_RELEASE_S, share_for: float = SHARE_FOR_S, adopt: bool = False,
                 fold_rollups: bool = True) -> None:
        if journal not in JOURNAL_MODES:
            raise CallLogError(f"unknown journal mode '{journal}' (modes: {', '.join(JOURNAL_MODES)})")
        self.path = Path(path)
        self.location = str(self.path)
        self.store_text = store_text
        self.flush_interval = flush_interval
        self.lock_timeout = lock_timeout
        self.max_batch = max_batch
        self.idle_release = idle_release
        self.share_for = share_for
        self.adopt = adopt           # add Taelio's tables to a DuckDB file that holds other tables
        self.fold_rollups = fold_rollups   # fold the dashboard's rollups after each commit (False: reads fold)
        self._requests: list[tuple[Any, ...]] = []
        self._attempts: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)      # the writer waits here for rows
        self._idle = threading.Condition(self._lock)      # flush() waits here for the writer
        self._flush_now = False
        self._in_flight = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._con: duckdb.DuckDBPyConnection | None = None   # the writer's held connection (writer thread only)
        self._last_write = 0.0                               # monotonic time of the writer's last commit
        self._shared_until = 0.0                             # open per flush until then: someone waited
        self.last_error: str | None = None
        self.replayed = 0            # requests recovered from dead processes' journals on open
        self.lock_waits = 0          # lock conflicts met (and retried)
        self.rejected = 0            # malformed requests set aside in <db>.rejected/
        self.commits = 0             # batches the writer committed
        self.opens = 0               # connections it opened for them (fewer: it held one across batches)
        self.yields = 0              # times the writer let go because another process waited
        self._journal = None if journal == "off" else Journal(self.path, fsync=journal == "fsync")
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

    def _replay(self, con: duckdb.DuckDBPyConnection) -> int:
        """Write what dead processes journalled but never flushed, once; return how many requests."""
        total = 0
        skip = self._journal.stem if self._journal else None
        for dead in dead_journals(self.path, skip=skip):
            requests, attempts, damaged = [], [], 0
            for segment in dead.segments:
                records, torn = read_segment(segment)
                damaged += torn
                for request, request_attempts in records:
                    requests.append(tuple(request))
                    attempts.extend(tuple(a) for a in request_attempts)
            try:
                if requests:
                    self._commit_rows(requests, attempts, con, skip_stored=True)
            except BaseException:
                dead.release(delete=False)      # still on disk: the next open tries again
                raise
            if damaged:
                self.last_error = f"{damaged} damaged bytes at the end of journal {dead.stem} were skipped"
            dead.release(delete=True)
            total += len(requests)
        return total

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

    # ---- writing ---------------------------------------------------------------------------
    def record(self, result: GenerationResult) -> None:
        request, attempts = encode(result, store_text=self.store_text)
        journal = self._journal
        payload = encode_record((request, attempts)) if journal is not None else b""
        with self._lock:
            if self._closed:
                raise CallLogError("the call log is closed")
            fd = journal.append(payload) if journal is not None else -1
            self._requests.append(request)
            self._attempts.extend(attempts)
            queued = len(self._requests)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="taelio-calllog", daemon=True)
                self._thread.start()
                atexit.register(self._close_at_exit)
            if queued == 1 or queued >= self.max_batch:
                self._wake.notify()
        if journal is not None and journal.fsync:
            journal.sync(fd)

    def _run(self) -> None:
        failures = 0
        try:
            while True:
                with self._lock:
                    if not self._requests and not self._closed:
                        # Holding the file: wake now and then to let go when idle or wanted.
                        self._wake.wait(timeout=None if self._con is None else _POLL_S)
                    if not self._requests:
                        if self._closed:
                            return
                        batch = None
                    else:
                        self._gather()
                        self._flush_now = False
                        batch = (self._requests, self._attempts)
                        self._requests, self._attempts = [], []
                        segments = self._journal.rotate() if self._journal is not None else []
                        self._in_flight = len(batch[0])
                        closing = self._closed
                if batch is None:
                    self._release_if_due()
                    continue
                requests, attempts = batch
                try:
                    con = self._writer_connection()
                    set_aside = self._commit_rows(requests, attempts, con)
                    self._last_write = time.monotonic()
                    self.commits += 1
                    if self._journal is not None:
                        self._journal.discard(segments)
                    self._fold(con)
                    failures = 0
                    if not set_aside:
                        self.last_error = None
                    self._release_if_due()
                except Exception as e:  # noqa: BLE001 - keep the rows and try again
                    self.last_error = first_line(e)
                    failures += 1
                    if failures == 1:
                        log.warning("the log %s could not take %d request(s) (%s); they wait in memory, and are %s",
                                    self.path, len(requests), self.last_error, self._kept_where())
                    self._release()
                    with self._lock:
                        self._requests[:0] = requests
                        self._attempts[:0] = attempts
                    if closing and (self._journal is not None or failures >= 3):
                        return          # the journal keeps them for the next open (without one, they are lost)
                    time.sleep(min(2.0, 0.1 * 2 ** failures))
                finally:
                    with self._lock:
                        self._in_flight = 0
                        self._idle.notify_all()
        finally:
            self._release()

    def _gather(self) -> None:
        """Let a burst gather into one batch, never holding rows longer than ``flush_interval``.

        Holding the file, look for waiters meanwhile: one that appears gets the rows so far
        committed and the file handed over at once, not after the interval. Called under ``_lock``.
        """
        deadline = time.monotonic() + self.flush_interval
        while not (self._closed or self._flush_now or len(self._requests) >= self.max_batch):
            left = deadline - time.monotonic()
            if left <= 0 or (self._con is not None and others_waiting(self.path)):
                return
            self._wake.wait(timeout=left if self._con is None else min(left, _POLL_S))

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
        if not bad:
            return 0
        target = set_aside(self.path, bad, by_request)
        self.rejected += len(bad)
        self.last_error = f"{len(bad)} malformed request(s) set aside in {target}: {first_line(bad[0][1])}"
        return len(bad)

    def append_rows(self, requests: pa.Table, attempts: pa.Table) -> int:
        """Write whole Arrow tables in one transaction, now (bulk loads: demo data, imports)."""
        try:
            requests = conform(requests, REQUEST_SCHEMA, "requests")
            attempts = conform(attempts, ATTEMPT_SCHEMA, "attempts")
        except (ValueError, pa.ArrowInvalid) as e:
            raise CallLogError(f"cannot append to the log: {first_line(e)}") from None
        requests = complete_text(requests, self.store_text)
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

    def flush(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._requests or self._in_flight:
                if self._thread is None or not self._thread.is_alive():
                    raise CallLogError("the log's writer has stopped" + (f": {self.last_error}" if self.last_error
                                                                          else ""))
                self._flush_now = True
                self._wake.notify()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise CallLogError(f"the log could not be flushed within {timeout:g} s"
                                       + (f": {self.last_error}" if self.last_error else ""))
                self._idle.wait(timeout=0.05 if remaining is None else min(0.05, remaining))

    def writer_status(self) -> WriterStatus:
        folder = self.path.with_name(self.path.name + ".rejected")
        set_aside = 0
        for segment in sorted(folder.glob("*.seg")) if folder.is_dir() else ():
            set_aside += len(read_segment(segment)[0])
        return WriterStatus(location=self.location, pending=self.pending, replayed=self.replayed,
                            rejected=self.rejected, set_aside=set_aside, set_aside_dir=str(folder),
                            last_error=self.last_error)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._requests) + self._in_flight

    def close(self) -> None:
        """Flush and let go; ``CallLogError`` when requests could not be written (never a silent exit 0)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()
        if self._journal is not None:
            self._journal.close()
        with self._lock:
            stranded = len(self._requests)
        if stranded:
            raise CallLogError(f"{stranded} request(s) could not be written to the log {self.path} "
                               f"({self.last_error or 'the writer stopped'}): they are {self._kept_where()}")

    def _kept_where(self) -> str:
        if self._journal is None:
            return "lost when this process exits (TAELIO_JOURNAL=off)"
        return f"kept in the journal {self._journal.dir} and written by the next open of the log"

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except CallLogError as e:
            sys.stderr.write(f"taelio: {e}\n")

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

