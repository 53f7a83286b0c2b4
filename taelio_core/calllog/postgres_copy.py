"""Writing a batch of requests and attempts into PostgreSQL with ``COPY``.

Why COPY, and why CSV from Arrow: a row-at-a-time ``INSERT`` costs a round
trip and a parse per row; ``COPY ... FROM STDIN`` streams the whole batch in
one statement. The batch is already an Arrow table (``arrow.rows_to_table``,
shared with DuckDB), and Arrow's C++ CSV writer turns it into PostgreSQL's CSV
dialect without a Python call per value: every string is quoted, a NULL is
an empty unquoted field (so ``''`` and NULL stay apart), decimals are exact
text, times are ISO-8601 in UTC.

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
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from taelio_core.calllog.arrow import ATTEMPT_SCHEMA, REQUEST_SCHEMA, rows_to_table

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


def copy_tables(conn: psycopg.Connection[Any], requests: pa.Table, attempts: pa.Table, *,
                skip_stored: bool = False) -> int:
    """Write both tables in one transaction; return how many requests were new.

    ``skip_stored``: some requests may already be stored (a replay, a bulk load, ``log copy``).
    """
    import psycopg
    if not skip_stored:
        try:
            with conn.transaction(), conn.cursor() as cur:
                _copy(cur, "requests", requests)
                _copy(cur, "attempts", attempts)
            return requests.num_rows
        except psycopg.errors.UniqueViolation:
            pass          # some were stored already: take the careful path below
    with conn.transaction(), conn.cursor() as cur:
        for table in ("requests", "attempts"):
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS _taelio_{table} (LIKE {table} INCLUDING DEFAULTS) "
                        "ON COMMIT DELETE ROWS")
        _copy(cur, "_taelio_requests", requests)
        _copy(cur, "_taelio_attempts", attempts)
        r_cols, a_cols = ", ".join(REQUEST_SCHEMA.names), ", ".join(ATTEMPT_SCHEMA.names)
        cur.execute(f"INSERT INTO requests ({r_cols}) SELECT {r_cols} FROM _taelio_requests "
                    "ON CONFLICT DO NOTHING")
        added = cur.rowcount
        cur.execute(f"INSERT INTO attempts ({a_cols}) SELECT {a_cols} FROM _taelio_attempts ON CONFLICT DO NOTHING")
    return max(added, 0)


def copy_rows(conn: psycopg.Connection[Any], requests: list[Row], attempts: list[Row], *, store_text: bool,
              skip_stored: bool = False) -> int:
    """Queued rows (``rows.encode`` tuples) into the tables; return how many requests were new."""
    return copy_tables(conn, rows_to_table(requests, REQUEST_SCHEMA, store_text=store_text),
                       rows_to_table(attempts, ATTEMPT_SCHEMA), skip_stored=skip_stored)


def is_data_error(exc: BaseException) -> bool:
    """True when the rows themselves are at fault (a value PostgreSQL refuses), not the server or the schema."""
    import psycopg
    return isinstance(exc, (psycopg.errors.DataError, psycopg.errors.NotNullViolation,
                            psycopg.errors.CheckViolation, pa.ArrowException, TypeError, ValueError, OverflowError))
