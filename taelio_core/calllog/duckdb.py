"""The call log in a DuckDB file, written off the request path in batches.

Why it is built this way:

* DuckDB lets only one process open a file at a time (FACTS.md), and the
  dashboard and the CLI must share one. So no process holds the file longer
  than one flush or one query: every operation opens, works and closes, and a
  lock conflict is retried with backoff. A queued request is never dropped
  because of a lock; it waits for the next flush.
* Row-at-a-time inserts manage ~700 rows/s; an Arrow batch, hundreds of
  thousands. ``record`` only appends to a queue; a writer thread flushes it
  as one Arrow batch per table, promptly when traffic is idle (so a request
  shows in the dashboard within a second) and on a clean exit.
"""
from __future__ import annotations

import atexit
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd
import pyarrow as pa

from taelio_core.calllog.arrow import ATTEMPT_SCHEMA, REQUEST_SCHEMA, conform
from taelio_core.calllog.base import CallLog
from taelio_core.calllog.rows import attempt_rows, request_row
from taelio_core.calllog.schema import MIGRATIONS
from taelio_core.errors import CallLogError
from taelio_core.trace import GenerationResult

__all__ = ["DuckDBCallLog", "LOCK_TIMEOUT_S"]

T = TypeVar("T")
LOCK_TIMEOUT_S = 60.0
_QUANT = Decimal("1e-10")


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


class DuckDBCallLog(CallLog):
    def __init__(self, path: str | Path, *, store_text: bool = True, flush_interval: float = 0.2,
                 lock_timeout: float = LOCK_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.store_text = store_text
        self.flush_interval = flush_interval
        self.lock_timeout = lock_timeout
        self._pending_requests: list[dict[str, Any]] = []
        self._pending_attempts: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._in_flight = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self._prepare()

    # ---- opening ---------------------------------------------------------------------------
    def _prepare(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CallLogError(f"cannot create the log's folder {self.path.parent}: {e.strerror}") from None
        if self.path.exists() and not self.path.is_file():
            raise CallLogError(f"{self.path} is not a file")
        with self.connect() as con:
            migrate(con)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file for one operation, retrying while another process holds it."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while True:
            try:
                con = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as e:
                if _is_lock_error(e) and time.monotonic() < deadline:
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.25)
                    continue
                if _is_lock_error(e):
                    raise CallLogError(f"the log {self.path} stayed locked by another process for "
                                       f"{self.lock_timeout:g} s") from None
                raise CallLogError(f"cannot open the log {self.path}: {_first_line(e)}") from None
            except duckdb.Error as e:
                raise CallLogError(f"cannot open the log {self.path}: {_first_line(e)} "
                                   "(if the file is damaged, move it aside; Taelio will start a new one)") from None
        try:
            con.execute("SET enable_progress_bar = false")
            yield con
        finally:
            con.close()

    # ---- writing ---------------------------------------------------------------------------
    def record(self, result: GenerationResult) -> None:
        req = request_row(result, store_text=self.store_text)
        atts = attempt_rows(result)
        for row in (req, *atts):
            if row["cost_usd"] is not None:
                row["cost_usd"] = row["cost_usd"].quantize(_QUANT)
        with self._cond:
            if self._closed:
                raise CallLogError("the call log is closed")
            self._pending_requests.append(req)
            self._pending_attempts.extend(atts)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="taelio-calllog", daemon=True)
                self._thread.start()
                atexit.register(self.close)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending_requests and not self._closed:
                    self._cond.wait()
                if not self._pending_requests and self._closed:
                    return
                # Let a burst gather into one batch, but never hold rows longer than flush_interval.
                if not self._closed:
                    self._cond.wait(timeout=self.flush_interval)
                requests, self._pending_requests = self._pending_requests, []
                attempts, self._pending_attempts = self._pending_attempts, []
                self._in_flight = len(requests)
            try:
                self._write_batch(requests, attempts)
                self.last_error = None
            except Exception as e:  # noqa: BLE001 - keep the rows and try again
                self.last_error = _first_line(e)
                with self._cond:
                    self._pending_requests[:0] = requests
                    self._pending_attempts[:0] = attempts
                time.sleep(0.5)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _write_batch(self, requests: list[dict[str, Any]] | pa.Table, attempts: list[dict[str, Any]] | pa.Table
                     ) -> None:
        req_table = requests if isinstance(requests, pa.Table) else pa.Table.from_pylist(requests, schema=REQUEST_SCHEMA)
        att_table = attempts if isinstance(attempts, pa.Table) else pa.Table.from_pylist(attempts, schema=ATTEMPT_SCHEMA)
        with self.connect() as con:
            con.execute("BEGIN")
            try:
                con.register("_new_requests", req_table)
                con.register("_new_attempts", att_table)
                con.execute("INSERT OR IGNORE INTO requests SELECT * FROM _new_requests")
                con.execute("INSERT OR IGNORE INTO attempts SELECT * FROM _new_attempts")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def append_rows(self, requests: pa.Table, attempts: pa.Table) -> int:
        """Write whole Arrow tables in one transaction, now (bulk loads: demo data, imports)."""
        try:
            requests = conform(requests, REQUEST_SCHEMA, "requests")
            attempts = conform(attempts, ATTEMPT_SCHEMA, "attempts")
        except (ValueError, pa.ArrowInvalid) as e:
            raise CallLogError(f"cannot append to the log: {_first_line(e)}") from None
        if not self.store_text:
            for name in ("prompt", "output"):
                i = requests.schema.get_field_index(name)
                requests = requests.set_column(i, name, pa.nulls(requests.num_rows, pa.string()))
        self._write_batch(requests, attempts)
        return requests.num_rows

    def flush(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while self._pending_requests or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise CallLogError(f"the log could not be flushed within {timeout:g} s"
                                       + (f": {self.last_error}" if self.last_error else ""))
                self._cond.wait(timeout=0.05 if remaining is None else min(0.05, remaining))
                self._cond.notify_all()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending_requests) + self._in_flight

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()

    # ---- reading ---------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute(sql, params).df()

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


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations this file lacks; return their names."""
    con.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
    done = {row[0] for row in con.execute("SELECT name FROM _migrations").fetchall()}
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        con.execute("BEGIN")
        try:
            con.execute(sql)
            con.execute("INSERT INTO _migrations VALUES (?, now())", [name])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
