"""``taelio log copy --from X --to Y``: move a call log's whole history between DuckDB and PostgreSQL.

The copying is ``calllog/history_copy`` (requests and attempts, then every history table of
``calllog/history_tables``). Here: the flags, one progress line per batch and table on stderr, and each log
opened as the writer would open it: a PostgreSQL log keeps its crash journal (and replays dead ones) under
``TAELIO_JOURNAL_DIR``, like every other process on that database, not in a ``data/`` of its own.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from taelio_core.cli import emit_json
from taelio_core.errors import CallLogError, ConfigError

if TYPE_CHECKING:
    from taelio_core.calllog.base import CallLog
    from taelio_core.calllog.history_copy import CopyReport
    from taelio_core.config.settings import Settings

__all__ = ["add_copy_parser", "run_copy"]


def add_copy_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    c = sub.add_parser("copy", help="copy a log's whole history (requests, attempts, experiments, votes, Sandbox "
                                    "runs, breaker events, alerts) into another log (DuckDB <-> PostgreSQL); "
                                    "a second run adds nothing")
    c.add_argument("--from", dest="source", required=True, metavar="URL",
                   help="duckdb:///path.duckdb, a .duckdb path, or postgresql://user:password@host:5432/db")
    c.add_argument("--to", dest="destination", required=True, metavar="URL", help="the same forms as --from")
    c.add_argument("--batch", type=int, default=None, help="rows per transaction (default 20000)")
    return c


def _open(value: str, flag: str, settings: Settings, *, must_exist: bool) -> CallLog:
    """The log ``value`` names; a mistake in it, or a log that cannot be opened, is one sentence naming ``flag``."""
    from taelio_core.calllog import DuckDBCallLog, PostgresCallLog
    from taelio_core.config.settings import ACCEPTED_DB_FORMS, PostgresTarget, database_target
    target = database_target(value, source=flag)
    if not isinstance(target, PostgresTarget) and "://" not in value and not value.strip().lower().endswith(
            ".duckdb") and not Path(target).exists():      # a new file: named as DATABASE_URL would name it
        raise ConfigError(f"'{value.strip()}' is neither a duckdb:/// URL nor a .duckdb file; accepted forms: "
                          f"{ACCEPTED_DB_FORMS}", source=flag)
    if must_exist and isinstance(target, PostgresTarget) and not _holds_log(target.url):
        raise ConfigError(f"there is no call log in {target.shown}", source=flag)
    try:
        if isinstance(target, PostgresTarget):
            return PostgresCallLog(target.url, store_text=True, journal=settings.journal_mode,
                                   spool=settings.journal_dir)
        path = Path(target)
        if must_exist and not path.is_file():
            raise ConfigError(f"there is no call log at {path}", source=flag)
        return DuckDBCallLog(path, store_text=True, journal=settings.journal_mode)
    except CallLogError as e:
        raise ConfigError(str(e), source=flag) from None


def _holds_log(url: str) -> bool:
    """False when the database has no Taelio tables: opening it as a log would create them in a source."""
    import psycopg
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            return bool(conn.execute("SELECT to_regclass('_migrations') IS NOT NULL").fetchone()[0])
    except psycopg.Error:
        return True         # unreachable: the log's own open says why, without the password


def run_copy(args: argparse.Namespace) -> int:
    from taelio_core.calllog.history_copy import BATCH, copy_log
    from taelio_core.config.settings import load_settings
    batch = BATCH if args.batch is None else args.batch
    if batch < 1:
        raise ConfigError(f"must be at least 1, not {batch}", source="--batch")
    settings = load_settings()
    source = _open(args.source, "--from", settings, must_exist=True)
    try:
        destination = _open(args.destination, "--to", settings, must_exist=False)
        try:
            if destination.location == source.location:
                raise ConfigError(f"is the same log as --from ({source.location})", source="--to")
            shown_from, shown_to = source.location, destination.location

            def say(p: object) -> None:
                sys.stderr.write(f"taelio: {p.sentence(shown_from, shown_to)}\n")  # type: ignore[attr-defined]
                sys.stderr.flush()
            done = copy_log(source, destination, batch=batch, progress=say)
        finally:
            destination.close()
    finally:
        source.close()
    if args.json:
        emit_json({"from": shown_from, "to": shown_to, **done.as_dict()})
    else:
        sys.stdout.write(_summary(done, shown_from, shown_to))
    return 0


def _summary(done: CopyReport, shown_from: str, shown_to: str) -> str:
    r = done.requests
    text = (f"Copied {r.read:,} requests ({r.attempts:,} attempts) from {shown_from} to {shown_to}: "
            f"{r.added:,} new, {r.read - r.added:,} already there.\n")
    held = [t for t in done.tables if t.read]
    if held:
        text += "Other history: " + "; ".join(f"{t.table} {t.read:,} ({t.added:,} new)" for t in held) + ".\n"
    return text
