"""The call log: every request and every attempt, in DuckDB (PostgreSQL later)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taelio_core.calllog.base import CallLog

if TYPE_CHECKING:
    from taelio_core.calllog.duckdb import DuckDBCallLog
    from taelio_core.config.settings import Settings

__all__ = ["CallLog", "DuckDBCallLog", "open_call_log"]


def open_call_log(settings: Settings, path: str | None = None) -> CallLog:
    """The log named by ``path``, else ``DATABASE_URL``, else ``data/taelio.duckdb``."""
    from taelio_core.calllog.duckdb import DuckDBCallLog    # DuckDB, pandas and pyarrow: only when a log is opened
    from taelio_core.config.settings import database_path
    target = database_path(path, source="--db") if path else settings.database_path
    return DuckDBCallLog(target, store_text=settings.store_text, journal=settings.journal_mode,
                         adopt=settings.adopt_log)


def __getattr__(name: str) -> Any:
    if name == "DuckDBCallLog":
        from taelio_core.calllog.duckdb import DuckDBCallLog
        return DuckDBCallLog
    raise AttributeError(f"module 'taelio_core.calllog' has no attribute {name!r}")
