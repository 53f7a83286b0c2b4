"""The call log's interface, so a second backend (PostgreSQL) can slot in later.

Callers only ``record`` finished requests (never blocking), ``query`` for
DataFrames, and ``flush``/``close``. Everything else is the backend's business.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:       # only for annotations: importing pandas costs ~0.6 s, which `taelio routes` need not pay
    import pandas as pd
    import pyarrow as pa

    from taelio_core.routing.trace import GenerationResult

__all__ = ["CallLog", "WriterStatus", "insert_frame"]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class WriterStatus:
    """What the log's writer has done in this process, and what waits: shown by Health and ``taelio health``."""

    location: str
    pending: int = 0             # recorded, not yet committed
    replayed: int = 0            # requests recovered from dead processes' journals when this process opened the log
    rejected: int = 0            # malformed requests this process set aside
    set_aside: int = 0           # malformed requests set aside by any process, still in ``<db>.rejected/``
    set_aside_dir: str = ""
    last_error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class CallLog(ABC):
    #: Where the log lives, safe to show (a path, never a password).
    location: str = ""

    @abstractmethod
    def record(self, result: GenerationResult) -> None:
        """Queue a finished request and its attempts. Returns at once."""

    @abstractmethod
    def append_rows(self, requests: pa.Table, attempts: pa.Table) -> int:
        """Write whole Arrow tables (the columns of ``calllog.arrow``) at once; return the requests written."""

    @abstractmethod
    def flush(self, timeout: float | None = None) -> None:
        """Block until everything recorded so far is in the database."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> pd.DataFrame:
        """Run a read query (parameterised: never format values into ``sql``)."""

    @abstractmethod
    def write(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(connection)`` in one short write transaction (other modules' own tables)."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release the file."""

    def writer_status(self) -> WriterStatus:
        return WriterStatus(location=self.location)

    def count_requests(self, source: str | None = None) -> int:
        if source is None:
            df = self.query("SELECT count(*) AS n FROM requests")
        else:
            df = self.query("SELECT count(*) AS n FROM requests WHERE source = ?", [source])
        return int(df["n"].iloc[0])

    def __enter__(self) -> CallLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def insert_frame(con: Any, table: str, frame: pd.DataFrame) -> None:  # noqa: ANN401 - either backend's connection
    """Insert ``frame``'s rows (its columns in the table's order) in one statement, inside ``CallLog.write``.

    Row-at-a-time inserts manage ~700 rows/s in DuckDB; a registered frame goes in as one batch. PostgreSQL's
    session (``PostgresSession.insert_frame``) streams it with ``COPY``.
    """
    bulk = getattr(con, "insert_frame", None)
    if bulk is not None:
        bulk(table, frame)
        return
    con.register("_taelio_frame", frame)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM _taelio_frame")
    finally:
        con.unregister("_taelio_frame")
