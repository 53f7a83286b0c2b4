"""The call log: every request and every attempt, in DuckDB (the default) or PostgreSQL (``DATABASE_URL``)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taelio_core.calllog.base import CallLog

if TYPE_CHECKING:
    from taelio_core.calllog.duckdb import DuckDBCallLog
    from taelio_core.calllog.postgres import PostgresCallLog
    from taelio_core.config.settings import Settings

__all__ = ["CallLog", "DuckDBCallLog", "PostgresCallLog", "open_call_log"]


def open_call_log(settings: Settings, path: str | None = None) -> CallLog:
    """The log named by ``path`` (``--db``), else ``DATABASE_URL``, else ``data/taelio.duckdb``."""
    from taelio_core.config.settings import PostgresTarget, database_target
    target = database_target(path, source="--db") if path else settings.database
    if isinstance(target, PostgresTarget):
        from taelio_core.calllog.postgres import PostgresCallLog   # psycopg: only when PostgreSQL is asked for
        return PostgresCallLog(target.url, store_text=settings.store_text, journal=settings.journal_mode,
                               spool=settings.journal_dir)
    from taelio_core.calllog.duckdb import DuckDBCallLog    # DuckDB, pandas and pyarrow: only when a log is opened
    return DuckDBCallLog(target, store_text=settings.store_text, journal=settings.journal_mode,
                         adopt=settings.adopt_log)


def __getattr__(name: str) -> Any:
    if name == "DuckDBCallLog":
        from taelio_core.calllog.duckdb import DuckDBCallLog
        return DuckDBCallLog
    if name == "PostgresCallLog":
        from taelio_core.calllog.postgres import PostgresCallLog
        return PostgresCallLog
    raise AttributeError(f"module 'taelio_core.calllog' has no attribute {name!r}")
