"""What lets callers written for DuckDB talk to PostgreSQL unchanged: placeholders, result frames, a session.

Why: every caller of ``CallLog.query``/``write`` writes ``?`` (or ``$name``)
placeholders and reads a pandas DataFrame typed as DuckDB's ``.df()`` types
it. psycopg wants ``%s``/``%(name)s`` (so a literal ``%`` must be doubled)
and returns tuples. ``to_psycopg`` translates the placeholders outside string
literals, quoted names and comments; ``frame`` builds the DataFrame with the
dtypes DuckDB gives (DECIMAL as float64, integers with NULLs as nullable
Int, TIMESTAMPTZ as UTC datetimes, JSON as text); ``PostgresSession`` is what
``write(fn)`` hands ``fn``: ``execute``/``executemany``/``fetchone``/
``fetchall``/``df`` over one psycopg connection in one transaction.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import psycopg

__all__ = ["PostgresSession", "frame", "to_psycopg"]

_TOKEN = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|::|\?|\$(\d+|[A-Za-z_]\w*)|%""", re.S)

Params = Sequence[Any] | Mapping[str, Any]


def to_psycopg(sql: str, params: Params | None = ()) -> tuple[str, list[Any] | dict[str, Any]]:
    """``sql`` with DuckDB's ``?``, ``$1`` and ``$name`` placeholders as psycopg's, and the parameters to match.

    The result always goes to psycopg *with* parameters (an empty list when there are none), so every
    literal ``%`` is doubled, in strings and comments too: psycopg reads the whole text.
    """
    named = isinstance(params, Mapping)
    given: Any = dict(params) if named else list(params or ())
    positional: list[Any] = []
    out: list[str] = []
    last = 0
    kinds: set[str] = set()
    for m in _TOKEN.finditer(sql):
        token = m.group(0)
        out.append(sql[last:m.start()])
        last = m.end()
        if token == "?":
            kinds.add("?")
            out.append("%s")
        elif token.startswith("$"):
            name = m.group(1)
            if name.isdigit():
                kinds.add("$n")
                index = int(name) - 1
                if named or not 0 <= index < len(given):
                    raise ValueError(f"the query names parameter ${name}, but {len(given)} were given")
                positional.append(given[index])
                out.append("%s")
            else:
                if not named:
                    raise ValueError(f"the query names parameter ${name}, but the parameters are not a mapping")
                kinds.add("$name")
                out.append(f"%({name})s")
        else:
            out.append(token.replace("%", "%%"))
    out.append(sql[last:])
    if len(kinds) > 1:
        raise ValueError(f"the query mixes placeholder styles ({', '.join(sorted(kinds))})")
    if "$n" in kinds:
        return "".join(out), positional
    return "".join(out), given


# PostgreSQL type OIDs (pg_type.oid) that need converting to match DuckDB's DataFrames.
_INTS = {20: "Int64", 21: "Int16", 23: "Int32"}
_NUMPY_INTS = {20: "int64", 21: "int16", 23: "int32"}
_FLOATS = {700, 701, 1700}          # float4, float8, numeric
_BOOL = 16
_TIMESTAMPTZ = 1184
_NAIVE_TIMES = {1114, 1082}         # timestamp, date
_TEXTS = {25, 1043, 1042, 19, 114, 3802}   # text, varchar, char, name, json, jsonb


def frame(cursor: psycopg.Cursor[Any]) -> pd.DataFrame:
    """The cursor's rows as a DataFrame with the dtypes DuckDB's ``.df()`` would give."""
    import pandas as pd
    description = cursor.description or []
    names = [d.name for d in description]
    rows = cursor.fetchall()
    columns = list(zip(*rows)) if rows else [()] * len(names)
    # Keyed by position, then named: two columns may share a name (``SELECT a.x, b.x``).
    df = pd.DataFrame({i: _column(d.type_code, list(values), pd)
                       for i, (d, values) in enumerate(zip(description, columns))}, index=pd.RangeIndex(len(rows)))
    df.columns = names
    return df


def _column(oid: int, values: list[Any], pd: Any) -> Any:  # noqa: ANN401 - pandas, passed in to stay lazy
    has_null = any(v is None for v in values)
    if oid in _FLOATS:
        return pd.array([float("nan") if v is None else float(v) for v in values], dtype="float64")
    if oid in _INTS:
        return pd.array(values, dtype=_INTS[oid] if has_null else _NUMPY_INTS[oid])
    if oid == _BOOL:
        return pd.array(values, dtype="boolean" if has_null else "bool")
    if oid == _TIMESTAMPTZ:
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True).astype("datetime64[us, UTC]")
    if oid in _NAIVE_TIMES:
        return pd.to_datetime(pd.Series(values, dtype=object)).astype("datetime64[us]")
    if oid in _TEXTS and any(v is not None for v in values):
        return pd.Series(values, dtype="str")
    return pd.Series(values, dtype=object)


class PostgresSession:
    """One transaction on one connection, with DuckDB's calling conventions (``?`` placeholders, ``.df()``)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.connection = conn
        self._cursor = conn.cursor()

    def execute(self, sql: str, params: Params | None = ()) -> PostgresSession:
        query, args = to_psycopg(sql, params)
        self._cursor.execute(query, args)
        return self

    def executemany(self, sql: str, rows: Sequence[Params]) -> PostgresSession:
        if not rows:
            return self
        query = to_psycopg(sql, rows[0])[0]
        self._cursor.executemany(query, [to_psycopg(sql, r)[1] for r in rows])
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()

    def df(self) -> pd.DataFrame:
        return frame(self._cursor)

    def insert_frame(self, table: str, df: pd.DataFrame) -> None:
        """``df``'s rows into ``table`` (columns in the table's order) with one ``COPY``."""
        import pyarrow as pa

        from taelio_core.calllog.postgres_copy import csv_bytes
        if df.empty:
            return
        data = csv_bytes(pa.Table.from_pandas(df, preserve_index=False))
        with self._cursor.copy(f"COPY {table} FROM STDIN (FORMAT csv)") as copy:
            copy.write(data)

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount
