"""``taelio log repair``: move a log that fails the open check aside, start a new one, replay the journals.

Why: the open check (``check.py``) refuses a damaged log and says to move it
aside; this does exactly that, so nobody has to type paths: the damaged file
(and its WAL) keep their bytes under a dated name for forensics or a manual
salvage, a new log is created at the same path, and the journals of processes
whose requests never reached the old file are written into the new one. A
sound file that is simply not Taelio's is never moved.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from taelio_core.errors import LogUnusable

__all__ = ["Repair", "repair_log"]


@dataclass(frozen=True, kw_only=True)
class Repair:
    path: str
    problem: str | None           # what the check found; None when the log was sound
    moved_to: str | None          # where the damaged file went
    replayed: int                 # journalled requests written into the new log

    def sentence(self) -> str:
        if self.problem is None:
            return f"the log {self.path} passed the check: nothing to repair ({self.replayed} request(s) replayed)"
        return (f"the log {self.path} {self.problem}: moved it to {self.moved_to} and started a new log there; "
                f"{self.replayed} journalled request(s) written into it")

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "problem": self.problem, "moved_to": self.moved_to, "replayed": self.replayed}


def repair_log(path: Path, *, now: datetime | None = None, store_text: bool = True) -> Repair:
    """Check ``path``; if it is damaged, move it (and its WAL) aside and open a new log, replaying journals."""
    from taelio_core.calllog.duckdb import DuckDBCallLog
    try:
        log = DuckDBCallLog(path, store_text=store_text)
    except LogUnusable as e:
        if not e.damaged:
            raise
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
        target = path.with_name(f"{path.name}.damaged-{stamp}")
        path.rename(target)
        wal = path.with_name(path.name + ".wal")
        if wal.exists():
            wal.rename(target.with_name(target.name + ".wal"))
        log = DuckDBCallLog(path, store_text=store_text)
        try:
            return Repair(path=str(path), problem=e.problem, moved_to=str(target), replayed=log.replayed)
        finally:
            log.close()
    try:
        return Repair(path=str(path), problem=None, moved_to=None, replayed=log.replayed)
    finally:
        log.close()
