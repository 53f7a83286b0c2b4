"""Analytics reads on a PostgreSQL call log: the same queries, the same DataFrames as on DuckDB.

``PostgresReader`` is ``rollup.Reader``'s twin for a psycopg connection. The
analytics SQL is written with DuckDB's ``?`` placeholders; here they become
psycopg's ``%s`` (outside quoted text), and results come back with the
column types DuckDB's ``.df()`` gives, so code downstream of a query (and
the parity test) cannot tell the backends apart:

=====================  ===============================
PostgreSQL             pandas (as DuckDB)
=====================  ===============================
bigint/int/smallint    int64 / int32 / int16 (Int64... with NULLs)
numeric, float         float64
text, varchar, json    str (JSON stays text); object when none
boolean                bool (``boolean`` with NULLs)
timestamptz            datetime64[us, Etc/UTC]
timestamp, date        datetime64[us]
arrays                 object (lists)
=====================  ===============================

The rollups need no refresh here: triggers keep them current (``pg_rollup``).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import pandas as pd

from taelio_core.analytics import pg_rollup
from taelio_core.analytics.dialect import POSTGRES

__all__ = ["PostgresReader", "is_postgres_log", "read", "to_pyformat"]

T = TypeVar("T")
_TOKENS = re.compile(r"'(?:[^']|'')*'|\?|%")
_INTS = {"int8": "Int64", "int4": "Int32", "int2": "Int16"}
_FLOATS = {"numeric", "float8", "float4"}
_TEXT = {"text", "varchar", "bpchar", "json", "jsonb", "name", "uuid"}


def to_pyformat(sql: str) -> str:
    """``?`` placeholders as ``%s``, and a literal ``%`` doubled, both outside quoted text."""
    def swap(m: re.Match[str]) -> str:
        token = m.group(0)
        return "%s" if token == "?" else "%%" if token == "%" else token
    return _TOKENS.sub(swap, sql)


def is_postgres_log(log: Any) -> bool:
    """Whether ``log`` is a PostgreSQL call log (its module, or where it says it lives)."""
    return (type(log).__module__.startswith("taelio_core.calllog.postgres")
            or str(getattr(log, "location", "")).startswith(("postgresql://", "postgres://")))


class PostgresReader:
    """A psycopg connection inside one transaction; ``query`` as on a ``CallLog`` (``?`` placeholders)."""

    dialect = POSTGRES

    def __init__(self, con: Any) -> None:
        self.con = con

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> pd.DataFrame:
        from psycopg.types.string import TextLoader
        with self.con.cursor() as cur:
            for name in ("json", "jsonb"):
                cur.adapters.register_loader(name, TextLoader)     # as DuckDB: JSON comes back as text
            cur.execute(to_pyformat(sql), list(params) if not isinstance(params, dict) else params)
            rows = cur.fetchall()
            columns = [(d.name, _type_name(cur, d.type_code)) for d in cur.description or ()]
        return _frame(rows, columns)

    def build_fine(self, *, start: datetime, end: datetime, minutes: int = 1) -> list[str]:
        return pg_rollup.build_fine(self.con, start=start, end=end, minutes=minutes)

    def drop_fine(self, tables: list[str]) -> None:
        pg_rollup.drop_fine(self.con, tables)


def _type_name(cur: Any, oid: int) -> str:
    info = cur.adapters.types.get(oid)     # an array's oid finds its element's type: tell them apart
    if info is None or info.array_oid == oid:
        return "array"
    return info.name


def _frame(rows: list[tuple], columns: list[tuple[str, str]]) -> pd.DataFrame:
    names = [name for name, _ in columns]
    data = {}
    for i, (name, kind) in enumerate(columns):
        values = [row[i] for row in rows]
        data[name] = _column(values, kind)
    frame = pd.DataFrame(data, columns=names)
    if len(set(names)) != len(names):            # a dict cannot hold two columns of one name: rebuild by position
        frame = pd.concat([_column([row[i] for row in rows], kind).rename(name)
                           for i, (name, kind) in enumerate(columns)], axis=1)
    return frame


def _column(values: list[Any], kind: str) -> pd.Series:
    if kind in _INTS:       # as DuckDB: numpy integers, nullable ones only when a value is missing
        return pd.Series(values, dtype=_INTS[kind] if None in values else _INTS[kind].lower())
    if kind in _FLOATS:
        return pd.Series([float("nan") if v is None else float(v) for v in values], dtype="float64")
    if kind in _TEXT:       # as DuckDB: a column of no text at all (empty, or only NULLs) stays object
        return pd.Series(values, dtype="str" if any(v is not None for v in values) else "object")
    if kind == "bool":
        return pd.Series(values, dtype="boolean" if any(v is None for v in values) else "bool")
    if kind == "timestamptz":
        return pd.Series(pd.to_datetime(values, utc=True), dtype="datetime64[us, UTC]").dt.tz_convert("Etc/UTC")
    if kind in ("timestamp", "date"):
        return pd.Series(pd.to_datetime(values), dtype="datetime64[us]")
    return pd.Series(values, dtype="object")


def read(log: Any, fn: Callable[[PostgresReader], T]) -> T:
    """``fn(reader)`` in one transaction of the log's own connection (its ``write``)."""
    # The call log's ``write`` hands over a ``PostgresSession`` (DuckDB-style SQL); the reader wants psycopg itself.
    return log.write(lambda con: fn(PostgresReader(getattr(con, "connection", con))))
