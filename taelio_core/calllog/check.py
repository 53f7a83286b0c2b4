"""The check a call log passes before Taelio writes to it, so a damaged file never swallows requests.

Why: a log with a dropped ``requests`` table, or a file truncated mid-block,
still opens in DuckDB. Before this check, a ``generate`` against it printed
"status ok" and exited 0 while the request stayed only in the journal, and
every later read failed with a raw catalogue or I/O error. Now the open
refuses such a file in one sentence that names it, says what is wrong and how
to recover (``LogUnusable``, exit 1 in the CLI, a page in the dashboard).

What is checked, cheaply enough for every open (a few ms on a 10M-row log):

* the file is at least as long as the blocks DuckDB's header says are in use
  (``used_blocks`` × ``block_size`` after the 12 KiB of headers): a truncated
  file is caught here, not at the first read of a missing block;
* each table and column that the file's *recorded* migrations create is
  there (the expected shape comes from running those same migrations on an
  empty in-memory database, so it can never drift from ``schema.py``);
* a file with tables but no ``_migrations`` is someone else's database:
  Taelio refuses to add its tables to it unless ``adopt`` is set
  (``TAELIO_ADOPT_LOG=1``).
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb

from taelio_core.calllog.schema import MIGRATIONS, migrate
from taelio_core.errors import LogUnusable

__all__ = ["HEADER_BYTES", "check_log", "expected_columns"]

HEADER_BYTES = 3 * 4096          # DuckDB's main header and its two database headers
_TABLES = """SELECT table_name, column_name FROM information_schema.columns
             WHERE table_schema = 'main' AND table_catalog = current_database()"""


@lru_cache(maxsize=8)
def expected_columns(applied: tuple[str, ...]) -> dict[str, frozenset[str]]:
    """table -> columns after running the migrations named in ``applied`` (in ``MIGRATIONS`` order)."""
    con = duckdb.connect(":memory:")
    try:
        migrate(con, [m for m in MIGRATIONS if m[0] in applied])
        return _columns(con)
    finally:
        con.close()


def _columns(con: Any) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for table, column in con.execute(_TABLES).fetchall():
        out.setdefault(table, set()).add(column)
    return {t: frozenset(c) for t, c in out.items()}


def check_log(con: duckdb.DuckDBPyConnection, path: Path, *, had_wal: bool, adopt: bool = False) -> None:
    """Raise ``LogUnusable`` unless ``con`` (just opened on ``path``) is a readable Taelio log, or empty."""
    if not had_wal:                 # a WAL replayed at open may hold blocks not yet in the file
        _check_length(con, path)
    try:
        present = _columns(con)
        applied = ()
        if "_migrations" in present:
            applied = tuple(r[0] for r in con.execute("SELECT name FROM _migrations").fetchall())
    except duckdb.Error as e:
        raise LogUnusable(path, f"cannot be read ({_first_line(e)})") from None
    if "_migrations" not in present:
        if present and not adopt:
            names = ", ".join(sorted(present)[:3]) + (", ..." if len(present) > 3 else "")
            raise LogUnusable(path, f"holds other tables ({names}) and no Taelio log",
                              recovery="name another file with --db or DATABASE_URL, or set TAELIO_ADOPT_LOG=1 "
                                       "to add Taelio's tables to it")
        return
    known = {name for name, _ in MIGRATIONS}
    expected = expected_columns(tuple(n for n in applied if n in known))
    gone = sorted(t for t in expected if t not in present)
    if gone:
        names = ", ".join(f"'{t}'" for t in gone)
        raise LogUnusable(path, f"is damaged: its table {names} is missing" if len(gone) == 1
                          else f"is damaged: its tables {names} are missing")
    for table, columns in sorted(expected.items()):
        missing = sorted(columns - present[table])
        if missing:
            raise LogUnusable(path, f"is damaged: its table '{table}' lacks the column(s) {', '.join(missing)}")
    try:                            # the catalogue can be fine while the data blocks are not
        for table in ("requests", "attempts"):
            if table in present:
                con.execute(f"SELECT * FROM {table} ORDER BY rowid DESC LIMIT 1").fetchall()
    except duckdb.Error as e:
        raise LogUnusable(path, f"cannot be read ({_first_line(e)})") from None


def _check_length(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    try:
        row = con.execute("PRAGMA database_size").fetchone()
        size = os.path.getsize(path)
    except (duckdb.Error, OSError):
        return
    if row is None:
        return
    # Used blocks, not total: DuckDB shortens a file whose last blocks are free, but keeps counting them.
    block_size, used_blocks = int(row[2]), int(row[4])
    expected = HEADER_BYTES + block_size * used_blocks if used_blocks else 0
    if size < expected:
        raise LogUnusable(path, f"is truncated: it holds {size:,} bytes, and its blocks in use need {expected:,}")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
