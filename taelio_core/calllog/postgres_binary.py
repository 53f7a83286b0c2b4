"""Queued rows (``rows.encode`` tuples) into PostgreSQL's binary ``COPY``, with no Arrow table or CSV between.

Why: the writer used to turn each batch into Arrow columns and then into CSV
(``postgres_copy.csv_bytes``), and PostgreSQL parsed every timestamp, decimal
and number back out of that text. Measured on 30k requests by thread and
backend CPU (which the machine's load barely moves; ``benchmarks/
bench_pg_ingest.py`` reports the same CPU figures for the whole pipeline):
Arrow + CSV cost the writer thread ~15 us of CPU a request and the server
~28 us; binary ``COPY`` fed row by row through psycopg's C row formatter
~6.5 us and ~23 us. Less time in the writer thread is also more of the GIL
left to ``record()`` on the request path.

The rows already hold what PostgreSQL's binary format wants: times are
integer microseconds (since 1970 here, since 2000 there) and money integer
units of 1e-10 USD, so two small dumpers (``_Micros``, ``_Units``) write them
without a ``datetime`` or ``Decimal``; every other column goes through
psycopg's own C dumpers, chosen by ``set_types`` from the Arrow schema's
types (one list of columns and types for both backends).

Text PostgreSQL cannot hold (a NUL, or a lone surrogate from a provider's
broken escape) fails the ``COPY``; ``sanitized`` then cleans the batch the way
the Arrow path did (U+FFFD for NUL, ``?`` for a surrogate) and it is sent
again, so such a request is stored, not set aside. Hashes are computed before
that, from the text as received. One trap of the C dumpers: ``int4`` keeps the
low 32 bits of a larger integer, silently, where Arrow refused it; so
``write_rows`` checks the INTEGER columns' range first (``_check_int4``, a
C-level pass per column) and such a request is still set aside.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from taelio_core.calllog.rows import REQUEST_COLUMNS, sha256, widened

if TYPE_CHECKING:
    import psycopg

__all__ = ["binary_cursor", "request_rows", "sanitized", "write_rows"]

Row = tuple[Any, ...]
_PG_EPOCH_US = 946_684_800_000_000          # 2000-01-01 UTC, PostgreSQL's zero, in µs since 1970
_INT8 = struct.Struct("!q")
_NUMERIC_HEAD = struct.Struct("!hhhh")      # ndigits, weight, sign, dscale
_NEGATIVE = 0x4000
_SCALE = 10                                 # the log's DECIMAL(18, 10)
_INT4_MAX = 2**31 - 1


# Arrow type test -> the PostgreSQL type binary COPY writes; anything else (varchar, JSON) is text: in binary
# COPY both take the text's UTF-8 bytes.
_PG_TYPES = ((pa.types.is_timestamp, "timestamptz"), (pa.types.is_decimal, "numeric"), (pa.types.is_boolean, "bool"),
             (pa.types.is_float64, "float8"), (pa.types.is_int64, "int8"), (pa.types.is_int32, "int4"))


def _pg_type(field: pa.Field) -> str:
    return next((name for matches, name in _PG_TYPES if matches(field.type)), "text")


@cache
def _dumpers() -> tuple[type, type]:
    """Built on first use: psycopg is imported only by a process that opens a PostgreSQL log."""
    from psycopg import postgres
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class _Micros(Dumper):
        """Integer µs since 1970 (``rows.micros``) -> ``timestamptz``."""
        format = Format.BINARY
        oid = postgres.types["timestamptz"].oid

        def dump(self, obj: int) -> bytes:
            if type(obj) is not int:
                raise TypeError(f"a time must be integer microseconds, not {type(obj).__name__}")
            try:
                return _INT8.pack(obj - _PG_EPOCH_US)
            except struct.error:
                raise OverflowError("timestamp out of range") from None

    class _Units(Dumper):
        """Integer units of 1e-10 USD (``rows.cost_units``) -> ``numeric`` with scale 10, exactly.

        PostgreSQL's numeric is base-10000 digits with the point between digits: the 10 decimal places
        become 3 base-10000 digits once the units are multiplied by 100.
        """
        format = Format.BINARY
        oid = postgres.types["numeric"].oid

        def dump(self, obj: int) -> bytes:
            if type(obj) is not int:
                raise TypeError(f"money must be integer units of 1e-10 USD, not {type(obj).__name__}")
            sign = 0
            if obj < 0:
                sign, obj = _NEGATIVE, -obj
            value = obj * 100
            digits = []
            while value:
                value, digit = divmod(value, 10_000)
                digits.append(digit)
            if not digits:
                return _NUMERIC_HEAD.pack(0, 0, 0, _SCALE)
            weight = len(digits) - 4
            low = 0
            while digits[low] == 0:          # trailing zero digits are implied
                low += 1
            digits = digits[low:][::-1]
            return _NUMERIC_HEAD.pack(len(digits), weight, sign, _SCALE) + struct.pack(f"!{len(digits)}h", *digits)

    return _Micros, _Units


def binary_cursor(conn: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
    """A cursor whose binary COPY dumps ``timestamptz`` from µs and ``numeric`` from 1e-10 units.

    The dumpers are registered by type only (``register_dumper(None, ...)``), on this cursor's own copy of the
    adapters: ``set_types`` picks them, and nothing else on the connection sees them.
    """
    cur = conn.cursor()
    for dumper in _dumpers():
        cur.adapters.register_dumper(None, dumper)
    return cur


def _check_int4(rows: Sequence[Row], schema: pa.Schema, types: list[str]) -> None:
    """Refuse an INTEGER column's value outside 32 bits: psycopg's C dumper would silently keep its low 32 bits
    (Arrow refused it, so the request was set aside: it still is). One C-level pass per column, no Python per value.
    """
    for i, kind in enumerate(types):
        if kind != "int4":
            continue
        values = list(filter(None, map(itemgetter(i), rows)))     # NULLs and zeros need no check
        if values and (max(values) > _INT4_MAX or min(values) < -_INT4_MAX - 1):
            bad = next(v for v in values if not -_INT4_MAX - 1 <= v <= _INT4_MAX)
            raise OverflowError(f"{schema.names[i]} {bad} does not fit an INTEGER column")


def write_rows(cur: psycopg.Cursor[Any], table: str, schema: pa.Schema, rows: Sequence[Row]) -> None:
    """``rows`` (tuples in ``schema``'s column order) into ``table`` through one binary COPY."""
    if not rows:
        return
    types = [_pg_type(f) for f in schema]
    _check_int4(rows, schema, types)
    with cur.copy(f"COPY {table} ({', '.join(schema.names)}) FROM STDIN (FORMAT binary)") as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


_P_SHA, _PROMPT, _OUTPUT, _O_SHA = (REQUEST_COLUMNS.index(c) for c in ("prompt_sha256", "prompt", "output",
                                                                        "output_sha256"))


def request_rows(rows: list[Row], schema: pa.Schema, *, store_text: bool) -> list[Row]:
    """Queued request rows as stored: the text hashes ``record()`` left out filled in, in the writer thread
    (as ``arrow.rows_to_table`` does for DuckDB), and the text dropped when the log keeps hashes only."""
    out = []
    for row in widened(rows, schema.names):
        p_sha, prompt, output, o_sha = row[_P_SHA:_O_SHA + 1]
        if p_sha is None and prompt is not None:
            p_sha = sha256(prompt)
        if o_sha is None and output:
            o_sha = sha256(output)
        if not store_text:
            prompt = output = None
        out.append((*row[:_P_SHA], p_sha, prompt, output, o_sha, *row[_O_SHA + 1:]))
    return out


def _clean(value: Any) -> Any:  # noqa: ANN401 - any column's value
    if not isinstance(value, str):
        return value
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def sanitized(rows: list[Row]) -> list[Row]:
    """Rows with text PostgreSQL can hold: NUL as U+FFFD, a lone surrogate as ``?`` (as the Arrow path stores it)."""
    return [tuple(_clean(v) for v in row) for row in rows]
