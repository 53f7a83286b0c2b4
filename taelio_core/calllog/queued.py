"""The call log's write path shared by every backend: a journalled queue, drained by one writer thread.

Why it is built this way: ``record`` is on the request path, so it does the
least that keeps the promise "returned means not lost": it encodes the
request as plain tuples (``rows.encode``), appends them to this process's
journal with one ``write()`` (``journal.py``) and queues them. Everything else
(Arrow columns, text hashes, the insert) happens in the writer thread, in
bulk. A ``kill -9`` loses nothing: the next open of the log, by any process,
replays the dead process's journal.

The writer takes a batch at most every ``flush_interval`` (0.5 s), at once
when ``flush()`` asks or ``max_batch`` rows wait, and on a clean exit. A
batch that fails stays queued (and journalled) and is tried again with
backoff. A backend says how a batch goes in (``_commit_rows``) and which
connection it holds (``_writer_connection``, ``_release``); DuckDB also lets
go of its file when another process waits (``_release_if_due``).
"""
from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any

import pyarrow as pa

from taelio_core.calllog.arrow import ATTEMPT_SCHEMA, REQUEST_SCHEMA, complete_text, conform
from taelio_core.calllog.base import CallLog, WriterStatus
from taelio_core.calllog.batch import set_aside
from taelio_core.calllog.journal import JOURNAL_MODES, Journal, dead_journals, encode_record, read_segment
from taelio_core.calllog.rows import encode
from taelio_core.calllog.sharing import first_line
from taelio_core.errors import CallLogError
from taelio_core.routing.trace import GenerationResult

__all__ = ["FLUSH_INTERVAL_S", "MAX_BATCH", "QueuedCallLog"]

log = logging.getLogger("taelio.calllog")
MAX_BATCH = 100_000
FLUSH_INTERVAL_S = 0.5

Row = tuple[Any, ...]


class QueuedCallLog(CallLog):
    """``record`` journals and queues; a daemon thread commits batches. ``flush``/``close`` wait for it."""

    def __init__(self, journal_at: Path, *, journal: str, store_text: bool, flush_interval: float,
                 max_batch: int) -> None:
        if journal not in JOURNAL_MODES:
            raise CallLogError(f"unknown journal mode '{journal}' (modes: {', '.join(JOURNAL_MODES)})")
        self.store_text = store_text
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self._requests: list[Row] = []
        self._attempts: list[Row] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)      # the writer waits here for rows
        self._idle = threading.Condition(self._lock)      # flush() waits here for the writer
        self._flush_now = False
        self._in_flight = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._last_write = 0.0                               # monotonic time of the writer's last commit
        self._first_queued = 0.0                             # monotonic time the oldest queued row arrived
        self.last_error: str | None = None
        self.replayed = 0            # requests recovered from dead processes' journals on open
        self.rejected = 0            # malformed requests set aside
        self.commits = 0             # batches the writer committed
        self._journal_at = journal_at
        self._journal = None if journal == "off" else Journal(journal_at, fsync=journal == "fsync")

    # ---- the backend's part ------------------------------------------------------------------
    @abstractmethod
    def _writer_connection(self) -> Any:  # noqa: ANN401 - the backend's connection
        """The connection the writer commits with (opened on first use, held as the backend sees fit)."""

    @abstractmethod
    def _commit_rows(self, requests: list[Row], attempts: list[Row], con: Any, *,  # noqa: ANN401
                     skip_stored: bool = False) -> int:
        """Commit one batch; malformed requests are set aside, not retried. Returns how many were set aside.

        ``skip_stored``: the batch may hold requests already stored (a replay): store those once.
        """

    def _after_commit(self, con: Any) -> None:  # noqa: ANN401
        """After each committed batch, on the writer's connection (DuckDB folds its rollups here)."""

    def _release(self) -> None:
        """Let go of the writer's connection (after a failure, and when the writer stops)."""

    def _release_if_due(self) -> None:
        """Between batches: let go of the connection when the backend wants to."""

    def _poll_s(self) -> float | None:
        """How often the idle writer wakes to call ``_release_if_due`` (None: only for rows)."""
        return None

    def _wanted_elsewhere(self) -> bool:
        """True when the batch gathering now should be committed at once (another process waits)."""
        return False

    # ---- what every backend reports and checks ------------------------------------------------
    def _set_aside(self, bad: list[tuple[Row, BaseException]], by_request: dict[str, list[Row]],
                   describe: Any = first_line) -> int:  # noqa: ANN401 - exception -> safe sentence
        """Keep malformed requests in ``<log>.rejected/`` for a person to look at; return how many."""
        if not bad:
            return 0
        target = set_aside(self._journal_at, bad, by_request)
        self.rejected += len(bad)
        self.last_error = f"{len(bad)} malformed request(s) set aside in {target}: {describe(bad[0][1])}"
        return len(bad)

    def _conformed(self, requests: pa.Table, attempts: pa.Table) -> tuple[pa.Table, pa.Table]:
        """``append_rows``' tables with the log's columns, text hashes filled in; one sentence if they cannot be."""
        try:
            requests = conform(requests, REQUEST_SCHEMA, "requests")
            attempts = conform(attempts, ATTEMPT_SCHEMA, "attempts")
        except (ValueError, pa.ArrowInvalid) as e:
            raise CallLogError(f"cannot append to the log: {first_line(e)}") from None
        return complete_text(requests, self.store_text), attempts

    def writer_status(self) -> WriterStatus:
        folder = self._journal_at.with_name(self._journal_at.name + ".rejected")
        set_aside_n = 0
        for segment in sorted(folder.glob("*.seg")) if folder.is_dir() else ():
            set_aside_n += len(read_segment(segment)[0])
        return WriterStatus(location=self.location, pending=self.pending, replayed=self.replayed,
                            rejected=self.rejected, set_aside=set_aside_n, set_aside_dir=str(folder),
                            last_error=self.last_error)

    # ---- replay ----------------------------------------------------------------------------
    def _replay(self, con: Any) -> int:  # noqa: ANN401 - the backend's connection
        """Write what dead processes journalled but never flushed, once; return how many requests."""
        total = 0
        skip = self._journal.stem if self._journal else None
        for dead in dead_journals(self._journal_at, skip=skip):
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
            if queued == 1:
                self._first_queued = time.monotonic()
                self._wake.notify()
            elif queued >= self.max_batch:
                self._wake.notify()
        if journal is not None and journal.fsync:
            journal.sync(fd)

    def _run(self) -> None:
        failures = 0
        try:
            while True:
                with self._lock:
                    if not self._requests and not self._closed:
                        self._wake.wait(timeout=self._poll_s())
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
                    self._after_commit(con)
                    failures = 0
                    if not set_aside:
                        self.last_error = None
                    self._release_if_due()
                except Exception as e:  # noqa: BLE001 - keep the rows and try again
                    self.last_error = first_line(e)
                    failures += 1
                    if failures == 1:
                        log.warning("the log %s could not take %d request(s) (%s); they wait in memory, and are %s",
                                    self.location, len(requests), self.last_error, self._kept_where())
                    self._release()
                    with self._lock:
                        self._requests[:0] = requests
                        self._attempts[:0] = attempts
                        self._in_flight = 0       # queued again: counted once by ``pending`` while we back off
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
        """Let a burst gather into one batch, never holding rows longer than ``flush_interval``. Under ``_lock``.

        The window opens when the oldest queued row arrived, not when the writer came back for it: under steady
        traffic the rows queued while a batch was committing have waited already, and go at once (the writer
        used to sit out a full interval after every commit, idle with work queued). At low rates nothing
        changes: the first row of an empty queue opens the window, and the burst behind it joins its batch.
        """
        deadline = self._first_queued + self.flush_interval
        while not (self._closed or self._flush_now or len(self._requests) >= self.max_batch):
            left = deadline - time.monotonic()
            if left <= 0 or self._wanted_elsewhere():
                return
            poll = self._poll_s()
            self._wake.wait(timeout=left if poll is None else min(left, poll))

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
        self._closed_writer()
        if stranded:
            raise CallLogError(f"{stranded} request(s) could not be written to the log {self.location} "
                               f"({self.last_error or 'the writer stopped'}): they are {self._kept_where()}")

    def _closed_writer(self) -> None:
        """After the writer has stopped: release what else the backend holds (a connection pool)."""

    def _kept_where(self) -> str:
        if self._journal is None:
            return "lost when this process exits (TAELIO_JOURNAL=off)"
        return f"kept in the journal {self._journal.dir} and written by the next open of the log"

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except CallLogError as e:
            sys.stderr.write(f"taelio: {e}\n")
