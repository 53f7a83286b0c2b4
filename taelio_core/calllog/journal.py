"""A durable append-only journal, so a killed process loses nothing ``record()`` accepted.

The call log writes to DuckDB in batches, off the request path; rows waiting
for the next batch live in memory. To survive ``kill -9`` (or an OOM kill,
or a crash), ``record()`` first appends the rows to this process's journal
with one ``write()`` call; once that returns they are in the kernel and
survive the process. With ``fsync`` mode each record is also forced to the
disk, which survives a power cut too, at ~2 ms a request here.

Layout, next to the database ``x.duckdb``::

    x.duckdb.journal/<pid>-<token>.lock          held (flock) while the owner lives
    x.duckdb.journal/<pid>-<token>.<seq>.seg     segments: frames of (length, crc32, pickle)

The writer rotates to a new segment when it takes a batch and deletes the old
ones once that batch is committed. Whoever opens the log next (any process)
replays the segments of every journal whose lock it can take (its owner is
dead). The tables have no primary keys (migration 005 dropped them: they cost
~5x per insert), so the replay skips the requests already stored (an anti-join
on ``request_id``, ``duckdb.py``): a row committed before the crash is not
written twice, and a replay that is itself interrupted can simply run again.

A lock file is created under a temporary name, locked, then renamed, so no
process can ever see a live owner's lock file unlocked.
"""
from __future__ import annotations

import fcntl
import io
import os
import pickle
import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DeadJournal", "JOURNAL_MODES", "Journal", "dead_journals", "encode_record", "frame", "journal_dir",
           "read_segment"]

JOURNAL_MODES = ("write", "fsync", "off")
_FRAME = struct.Struct("<II")          # payload length, crc32 of the payload


def journal_dir(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".journal")


class Journal:
    """This process's journal for one log file. The caller serialises ``append`` and ``rotate``."""

    def __init__(self, db_path: Path, *, fsync: bool = False) -> None:
        self.dir = journal_dir(db_path)
        self.fsync = fsync
        self.stem = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._seq = 0
        self._open: list[tuple[int, Path]] = []       # rotated segments, not yet committed

    def _claim(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.dir / f"{self.stem}.lock"
        temp = self.dir / f".{self.stem}.lock.tmp"
        fd = os.open(temp, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(temp, final)
        self._lock_fd = fd

    def append(self, payload: bytes) -> int:
        """Write one framed record; returns the fd written to (for ``sync``)."""
        if self._fd is None:
            if self._lock_fd is None:
                self._claim()
            self._seq += 1
            path = self.dir / f"{self.stem}.{self._seq:06d}.seg"
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._open.append((self._fd, path))
        fd = self._fd
        os.write(fd, frame(payload))
        return fd

    @staticmethod
    def sync(fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError:  # the segment was committed and closed meanwhile: nothing left to protect
            pass

    def rotate(self) -> list[tuple[int, Path]]:
        """Start a new segment at the next append; return every segment not yet committed."""
        self._fd = None
        return list(self._open)

    def discard(self, segments: list[tuple[int, Path]]) -> None:
        """The rows in ``segments`` are committed: delete them."""
        for fd, path in segments:
            try:
                os.close(fd)
            except OSError:
                pass
            path.unlink(missing_ok=True)
        done = {path for _, path in segments}
        self._open = [s for s in self._open if s[1] not in done]

    @property
    def uncommitted(self) -> int:
        return len(self._open)

    def close(self) -> None:
        """Release the lock. Segments still here (a failed final flush) are replayed by the next open."""
        if self._lock_fd is None:
            return
        if not self._open:
            (self.dir / f"{self.stem}.lock").unlink(missing_ok=True)
        for fd, _ in self._open:
            try:
                os.close(fd)
            except OSError:
                pass
        os.close(self._lock_fd)
        self._lock_fd = None
        try:
            self.dir.rmdir()              # only if empty: other processes may still journal here
        except OSError:
            pass


def frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def encode_record(record: Any) -> bytes:
    return pickle.dumps(record, protocol=5)


class _PlainValues(pickle.Unpickler):
    """Journal records are tuples of str/int/float/bool/None: refuse anything that names a class."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"journal records hold plain values only, not {module}.{name}")


def read_segment(path: Path) -> tuple[list[Any], int]:
    """The records in a segment, and how many bytes at its end were torn or damaged."""
    data = path.read_bytes()
    records, offset = [], 0
    while offset + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, offset)
        start, end = offset + _FRAME.size, offset + _FRAME.size + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            break
        try:
            records.append(_PlainValues(io.BytesIO(data[start:end])).load())
        except Exception:  # noqa: BLE001 - a damaged frame ends the readable part
            break
        offset = end
    return records, len(data) - offset


@dataclass(kw_only=True)
class DeadJournal:
    """A journal whose owner is gone, locked by us until ``release``."""

    stem: str
    segments: list[Path]
    lock_fd: int
    lock_path: Path

    def release(self, *, delete: bool) -> None:
        if delete:
            for path in self.segments:
                path.unlink(missing_ok=True)
            self.lock_path.unlink(missing_ok=True)
        os.close(self.lock_fd)


def dead_journals(db_path: Path, *, skip: str | None = None) -> Iterator[DeadJournal]:
    """Each journal next to ``db_path`` whose owner has died, locked for replay."""
    folder = journal_dir(db_path)
    if not folder.is_dir():
        return
    stems: dict[str, list[Path]] = {}
    for path in folder.iterdir():
        if path.suffix == ".seg":
            stems.setdefault(path.name.split(".")[0], []).append(path)
        elif path.suffix == ".lock" and not path.name.startswith("."):
            stems.setdefault(path.stem, [])
    for stem, segments in sorted(stems.items()):
        if stem == skip:
            continue
        lock_path = folder / f"{stem}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:          # its owner is alive
            os.close(fd)
            continue
        # Re-list under the lock: another process may have replayed it just before.
        segments = sorted(p for p in folder.glob(f"{stem}.*.seg"))
        yield DeadJournal(stem=stem, segments=segments, lock_fd=fd, lock_path=lock_path)
