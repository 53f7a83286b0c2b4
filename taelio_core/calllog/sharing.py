"""How several processes share one DuckDB file: open with lock retry, and say when you are waiting.

DuckDB lets one process at a time open a file: while the router's
writer holds the call log, the dashboard and the CLI cannot even read it. The
writer wants to hold it (an open, insert, checkpoint and close per flush costs
milliseconds of CPU; an insert into an open connection, a fraction of one),
and the others want it promptly. So:

* Whoever meets the lock retries with jittered exponential backoff (5 ms
  doubling to 250 ms), as before; and while it retries it keeps a *waiting
  file* in ``<db>.waiting/``, touched at every retry and removed once it has
  the file (or gives up).
* A writer holding the file looks at that folder between flushes (a
  ``scandir`` of an almost always empty folder, a few microseconds) and lets
  go when someone else waits. A waiting file not touched for ``STALE_S`` is a
  dead waiter's and is ignored, so a ``kill -9`` cannot make writers yield
  for ever.

Only Taelio's own openers signal. A plain ``duckdb`` client (the DuckDB
shell, a notebook) does not: the writer still lets go after a short idle
spell (``DuckDBCallLog.idle_release``), so such a client waits at most that
long after traffic stops.
"""
from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb

from taelio_core.errors import CallLogError

__all__ = ["STALE_S", "WaitingFile", "first_line", "is_lock_error", "open_with_retry", "others_waiting",
           "waiting_dir"]

STALE_S = 2.0          # a live waiter touches its file at least every 250 ms
# Never fetch extensions: a file that merely looks like SQLite would make DuckDB download one.
_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def waiting_dir(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".waiting")


def is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class WaitingFile:
    """This opener's sign that it waits for the file; created lazily, at the first lock conflict."""

    def __init__(self, db_path: Path) -> None:
        self.dir = waiting_dir(db_path)
        self.path = self.dir / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._made = False

    def touch(self) -> None:
        try:
            if not self._made:
                self.dir.mkdir(parents=True, exist_ok=True)
                self.path.touch()
                self._made = True
            else:
                os.utime(self.path)
        except OSError:          # a read-only folder: no signal, the holder's idle release still frees the file
            pass

    def remove(self) -> None:
        if not self._made:
            return
        self.path.unlink(missing_ok=True)
        try:
            self.dir.rmdir()      # only when empty
        except OSError:
            pass
        self._made = False


def others_waiting(db_path: Path) -> bool:
    """True when another process (not this one) is retrying to open ``db_path`` right now."""
    mine = f"{os.getpid()}-"
    now = time.time()
    try:
        with os.scandir(waiting_dir(db_path)) as entries:
            for entry in entries:
                if entry.name.startswith(mine):
                    continue
                try:
                    if now - entry.stat().st_mtime < STALE_S:
                        return True
                except OSError:
                    continue
    except OSError:              # no folder: nobody waits
        return False
    return False


def open_with_retry(path: Path, lock_timeout: float, on_conflict: Callable[[], None] = lambda: None
                    ) -> duckdb.DuckDBPyConnection:
    """Open ``path``, retrying while another process holds it; one clear ``CallLogError`` otherwise."""
    deadline = time.monotonic() + lock_timeout
    delay = 0.005
    waiting = WaitingFile(path)
    try:
        while True:
            try:
                con = duckdb.connect(str(path), config=_CONFIG)
                break
            except duckdb.Error as e:
                if is_lock_error(e):
                    on_conflict()
                    if time.monotonic() < deadline:
                        waiting.touch()
                        time.sleep(delay * (0.5 + random.random()))
                        delay = min(delay * 2, 0.25)
                        continue
                    raise CallLogError(f"the log {path} stayed locked by another process for "
                                       f"{lock_timeout:g} s") from None
                text = first_line(e)
                hint = ""
                if any(word in text.lower() for word in ("not a valid", "corrupt", "checksum", "sqlite")):
                    hint = " (the file is damaged or not a DuckDB log: move it aside and Taelio will start a new one)"
                raise CallLogError(f"cannot open the log {path}: {text}{hint}") from None
    finally:
        waiting.remove()
    con.execute("SET enable_progress_bar = false")
    return con
