"""Writing a batch of requests and attempts into PostgreSQL with ``COPY``.

Why COPY: a row-at-a-time ``INSERT`` costs a round trip and a parse per row;
``COPY ... FROM STDIN`` streams the whole batch in one statement. Two inputs,
one way in:

* the writer's queued rows (``rows.encode`` tuples) go through binary COPY
  row by row (``postgres_binary.py``: no Arrow table, no text for the server
  to parse back);
* whole Arrow tables (``append_rows``: bulk loads, ``taelio log copy``) go
  through Arrow's C++ CSV writer in PostgreSQL's CSV dialect, with no Python
  call per value: every string is quoted, a NULL is an empty unquoted field
  (so ``''`` and NULL stay apart), decimals are exact text, times ISO-8601 UTC.

Live batches carry fresh request ids and go straight into the tables. A
replayed journal, a bulk load and ``taelio log copy`` may carry requests the
database already has: they go through session-local staging tables and
``INSERT ... ON CONFLICT DO NOTHING`` on the primary keys, so each request
and attempt lands once however often it is sent. If a live batch meets a
key it already holds (a journal replayed while its writer was still
committing), it is retried that way.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from taelio_core.calllog.arrow import ATTEMPT_SCHEMA, REQUEST_SCHEMA
from taelio_core.calllog.postgres_binary import binary_cursor, request_rows, sanitized, write_rows
from taelio_core.calllog.rows import widened

if TYPE_CHECKING:
    import psycopg

__all__ = ["copy_rows", "copy_tables", "csv_bytes", "is_data_error"]

Row = tuple[Any, ...]
_CSV = pa_csv.WriteOptions(include_header=False, quoting_style="needed")


def _nul_free(table: pa.Table) -> pa.Table:
    """PostgreSQL text cannot hold NUL: a provider's stray ``\\x00`` becomes U+FFFD rather than lose the row."""
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) and pc.any(pc.match_substring(table[i], "\x00")).as_py():
            table = table.set_column(i, field, pc.replace_substring(table[i], "\x00", "\ufffd"))
    return table


def csv_bytes(table: pa.Table) -> bytes:
    """``table`` as PostgreSQL-readable CSV (no header)."""
    sink = io.BytesIO()
    pa_csv.write_csv(_nul_free(table), sink, _CSV)
    return sink.getvalue()


def _copy(cur: psycopg.Cursor[Any], table_name: str, table: pa.Table) -> None:
    if not table.num_rows:
        return
    with cur.copy(f"COPY {table_name} ({', '.join(table.schema.names)}) FROM STDIN (FORMAT csv)") as copy:
        copy.write(csv_bytes(table))


# (cursor, requests table, attempts table) -> None: COPY both into the tables named
CopyBoth = Callable[[Any, str, str], None]


def _store(conn: psycopg.Connection[Any], copy_both: CopyBoth, count: int, *, skip_stored: bool,
           cursor: Callable[[], Any] | None = None) -> int:
    """Run ``copy_both`` in one transaction, straight into the tables or (``skip_stored``, or when a key is
    already there) through the staging tables; return how many of the ``count`` requests were new."""
    import psycopg
    cursor = cursor or conn.cursor
    if not skip_stored:
        try:
            with conn.transaction(), cursor() as cur:
                copy_both(cur, "requests", "attempts")
            return count
        except psycopg.errors.UniqueViolation:
            pass          # some were stored already: take the careful path below
    with conn.transaction(), cursor() as cur:
        for table in ("requests", "attempts"):
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS _taelio_{table} (LIKE {table} INCLUDING DEFAULTS) "
                        "ON COMMIT DELETE ROWS")
        copy_both(cur, "_taelio_requests", "_taelio_attempts")
        r_cols, a_cols = ", ".join(REQUEST_SCHEMA.names), ", ".join(ATTEMPT_SCHEMA.names)
        cur.execute(f"INSERT INTO requests ({r_cols}) SELECT {r_cols} FROM _taelio_requests "
                    "ON CONFLICT DO NOTHING")
        added = cur.rowcount
        cur.execute(f"INSERT INTO attempts ({a_cols}) SELECT {a_cols} FROM _taelio_attempts ON CONFLICT DO NOTHING")
    return max(added, 0)


def copy_tables(conn: psycopg.Connection[Any], requests: pa.Table, attempts: pa.Table, *,
                skip_stored: bool = False) -> int:
    """Write both Arrow tables in one transaction (CSV); return how many requests were new.

    ``skip_stored``: some requests may already be stored (a replay, a bulk load, ``log copy``).
    """
    def copy_both(cur: psycopg.Cursor[Any], requests_table: str, attempts_table: str) -> None:
        _copy(cur, requests_table, requests)
        _copy(cur, attempts_table, attempts)
    return _store(conn, copy_both, requests.num_rows, skip_stored=skip_stored)


def copy_rows(conn: psycopg.Connection[Any], requests: list[Row], attempts: list[Row], *, store_text: bool,
              skip_stored: bool = False) -> int:
    """Queued rows (``rows.encode`` tuples) into the tables by binary COPY; return how many requests were new.

    Text PostgreSQL cannot hold fails the whole COPY: the batch is then cleaned and sent once more.
    """
    import psycopg
    requests = request_rows(requests, REQUEST_SCHEMA, store_text=store_text)
    attempts = widened(attempts, ATTEMPT_SCHEMA.names)

    def copy_both(cur: psycopg.Cursor[Any], requests_table: str, attempts_table: str) -> None:
        write_rows(cur, requests_table, REQUEST_SCHEMA, requests)
        write_rows(cur, attempts_table, ATTEMPT_SCHEMA, attempts)
    try:
        return _store(conn, copy_both, len(requests), skip_stored=skip_stored, cursor=lambda: binary_cursor(conn))
    except (UnicodeEncodeError, psycopg.errors.CharacterNotInRepertoire, psycopg.errors.UntranslatableCharacter):
        requests, attempts = sanitized(requests), sanitized(attempts)
    return _store(conn, copy_both, len(requests), skip_stored=skip_stored, cursor=lambda: binary_cursor(conn))


def is_data_error(exc: BaseException) -> bool:
    """True when the rows themselves are at fault (a value PostgreSQL refuses), not the server or the schema."""
    import psycopg
    return isinstance(exc, (psycopg.errors.DataError, psycopg.errors.NotNullViolation,
                            psycopg.errors.CheckViolation, pa.ArrowException, TypeError, ValueError, OverflowError))
