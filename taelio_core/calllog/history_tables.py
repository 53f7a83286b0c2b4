"""The call log's history beyond requests and attempts, table by table: what ``taelio log copy`` moves, and how.

Why a list, and three kinds of table: every table the migrations create
holds one of three things.

* **History** (``HISTORY_TABLES``): what people and processes made and
  cannot make again: experiments with their variants, inputs, checks,
  cells, votes, judge verdicts and grades; saved input sets; Sandbox runs
  with their summaries, series and traces; breaker transitions; alerts
  already sent (copied, so the destination does not send them again).
  Copied, row by row, once.
* **Derived** (``DERIVED_TABLES``): the dashboard's rollups. Never copied:
  the destination folds them from the requests and attempts it takes
  (DuckDB after each append, PostgreSQL by trigger in the same statement),
  so they hold exactly what its raw rows hold, copied or not.
* **Bookkeeping** (``BOOKKEEPING_TABLES``): the migrations applied and
  DuckDB's rollup watermark, which describe the file, not the history.

``tests/calllog/test_history_tables.py`` fails when a migration adds a table
that none of these names, on either backend, so a new table cannot be left
behind by a copy unnoticed.

Why a key per table: a row whose key the destination holds already is not
copied again (``INSERT ... SELECT ... WHERE NOT EXISTS``, the same statement
on both backends), so a second run, or one resumed after an interruption,
adds nothing. A copy never overwrites: a row the destination already has is
kept as it is. Tables with a primary key use it; the two without one
(``breaker_events``, ``sandbox_series``) are keyed by every column, so only a
row identical in every column counts as already there. Key columns that may
be NULL are compared with ``IS NOT DISTINCT FROM``; the others with ``=``,
which lets PostgreSQL hash the anti-join instead of scanning per row.

Values travel as Arrow columns typed as DuckDB types them (money stays exact
``DECIMAL(18, 10)``, times stay UTC instants, JSON stays its text): the
reference schema is the DuckDB migrations applied to an in-memory database.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from taelio_core.calllog.base import CallLog

if TYPE_CHECKING:
    from taelio_core.calllog.duckdb import DuckDBCallLog
    from taelio_core.calllog.postgres import PostgresCallLog

__all__ = ["BOOKKEEPING_TABLES", "DERIVED_TABLES", "HISTORY_TABLES", "HistoryTable", "append_table",
           "arrow_rows", "count_rows", "read_pages", "table_schema"]


@dataclass(frozen=True, kw_only=True)
class HistoryTable:
    name: str
    key: tuple[str, ...] = ()       # the columns that identify a row; () for every column but JSON ones


# In the order a reader would want them whole: an experiment before its cells, a run before its series.
HISTORY_TABLES: tuple[HistoryTable, ...] = (
    HistoryTable(name="experiments", key=("experiment_id",)),
    HistoryTable(name="experiment_variants", key=("experiment_id", "variant_id")),
    HistoryTable(name="experiment_inputs", key=("experiment_id", "input_id")),
    HistoryTable(name="experiment_assertions", key=("experiment_id", "assertion_id")),
    HistoryTable(name="experiment_cells", key=("experiment_id", "input_id", "variant_id")),
    HistoryTable(name="experiment_votes", key=("vote_id",)),
    HistoryTable(name="experiment_judgments", key=("experiment_id", "input_id", "variant_a", "variant_b")),
    HistoryTable(name="experiment_grades", key=("experiment_id", "input_id", "variant_id", "assertion_id")),
    HistoryTable(name="input_sets", key=("name",)),
    HistoryTable(name="sandbox_runs", key=("run_id",)),
    HistoryTable(name="sandbox_summaries", key=("run_id", "arm", "seed", "scope", "key", "metric")),
    HistoryTable(name="sandbox_series"),
    HistoryTable(name="sandbox_traces", key=("run_id", "arm", "seed", "i")),
    HistoryTable(name="breaker_events"),
    HistoryTable(name="alerts", key=("alert_key",)),
)
DERIVED_TABLES = frozenset({"attempt_rollup", "request_rollup", "latency_histogram", "request_cost_histogram",
                            "user_rollup"})
BOOKKEEPING_TABLES = frozenset({"_migrations", "rollup_watermarks"})


@dataclass(frozen=True, kw_only=True)
class _Shape:
    schema: pa.Schema
    nullable: frozenset[str]
    json: frozenset[str]


@lru_cache(maxsize=1)
def _shapes() -> dict[str, _Shape]:
    """Every table's columns, Arrow types and nullability, from DuckDB's migrations on an in-memory database."""
    import duckdb

    from taelio_core.calllog.schema import migrate
    con = duckdb.connect()
    try:
        migrate(con)
        shapes = {}
        for table in HISTORY_TABLES:
            columns = con.execute("SELECT column_name, is_nullable, data_type FROM information_schema.columns "
                                  "WHERE table_name = ? ORDER BY ordinal_position", [table.name]).fetchall()
            schema = con.sql(f"SELECT * FROM {table.name} LIMIT 0").to_arrow_table().schema
            shapes[table.name] = _Shape(
                schema=pa.schema([pa.field(f.name, _storage(f.type)) for f in schema]),
                nullable=frozenset(name for name, nullable, _ in columns if nullable == "YES"),
                json=frozenset(name for name, _, kind in columns if kind == "JSON"))
        return shapes
    finally:
        con.close()


def _storage(kind: pa.DataType) -> pa.DataType:
    """JSON comes out of DuckDB as an Arrow extension type over text: the text is what travels."""
    return kind.storage_type if isinstance(kind, pa.ExtensionType) else kind


def table_schema(table: HistoryTable) -> pa.Schema:
    return _shapes()[table.name].schema


def _key(table: HistoryTable) -> tuple[str, ...]:
    shape = _shapes()[table.name]
    return table.key or tuple(n for n in shape.schema.names if n not in shape.json)


def arrow_rows(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
    """psycopg rows (Decimal money, aware datetimes, JSON as text) as an Arrow table of ``schema``."""
    columns = list(zip(*rows)) if rows else [()] * len(schema)
    return pa.Table.from_arrays([pa.array(list(values), field.type) for field, values in zip(schema, columns)],
                                schema=schema)


# ---- reading ---------------------------------------------------------------------------------------
def count_rows(log: CallLog, table: HistoryTable) -> int:
    return int(log.query(f"SELECT count(*) AS n FROM {table.name}")["n"].iloc[0])


def read_pages(log: CallLog, table: HistoryTable, batch: int) -> Iterator[pa.Table]:
    """``table``'s rows, ``batch`` at a time, in key order: a key is unique, so no row moves between pages."""
    from taelio_core.calllog.duckdb import DuckDBCallLog
    schema = table_schema(table)
    sql = f"SELECT {', '.join(schema.names)} FROM {table.name} ORDER BY {', '.join(_key(table))} LIMIT ? OFFSET ?"
    read = _duckdb_page(log, sql) if isinstance(log, DuckDBCallLog) else _postgres_page(log, sql, schema)  # type: ignore[arg-type]
    offset = 0
    while True:
        page = read(batch, offset)
        if page.num_rows == 0:
            return
        yield page.cast(schema)
        offset += page.num_rows


def _duckdb_page(log: DuckDBCallLog, sql: str) -> Callable[[int, int], pa.Table]:
    def read(n: int, offset: int) -> pa.Table:
        with log.connect() as con:
            page = con.sql(sql, params=[n, offset]).to_arrow_table()
        return pa.Table.from_arrays([c.cast(_storage(c.type)) if isinstance(c.type, pa.ExtensionType) else c
                                     for c in page.columns], names=page.column_names)
    return read


def _postgres_page(log: PostgresCallLog, sql: str, schema: pa.Schema) -> Callable[[int, int], pa.Table]:
    from taelio_core.calllog.postgres_sql import to_psycopg

    def read(n: int, offset: int) -> pa.Table:
        text, args = to_psycopg(sql, [n, offset])
        return arrow_rows(log.write(lambda s: s.connection.execute(text, args).fetchall()), schema)
    return read


# ---- writing ---------------------------------------------------------------------------------------
def _insert_missing(table: HistoryTable, staged: str) -> str:
    """Rows of ``staged`` whose key ``table`` lacks, into ``table``: the same SQL on DuckDB and PostgreSQL."""
    shape = _shapes()[table.name]
    columns = ", ".join(shape.schema.names)
    match = " AND ".join(f"d.{k} IS NOT DISTINCT FROM s.{k}" if k in shape.nullable else f"d.{k} = s.{k}"
                         for k in _key(table))
    return (f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM {staged} AS s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table.name} AS d WHERE {match})")


def append_table(log: CallLog, table: HistoryTable, page: pa.Table) -> int:
    """Add ``page``'s rows that ``log`` lacks to ``table``, in one transaction; return how many were added."""
    from taelio_core.calllog.duckdb import DuckDBCallLog
    if isinstance(log, DuckDBCallLog):
        def duck(con: Any) -> int:  # noqa: ANN401 - DuckDB's connection
            con.register("_taelio_copy", page)
            try:
                return int(con.execute(_insert_missing(table, "_taelio_copy")).fetchone()[0])
            finally:
                con.unregister("_taelio_copy")
        return log.write(duck)

    from taelio_core.calllog.postgres_copy import csv_bytes
    staged = f"_taelio_copy_{table.name}"

    def postgres(session: Any) -> int:  # noqa: ANN401 - the PostgresSession
        conn = session.connection
        conn.execute(f"CREATE TEMP TABLE {staged} (LIKE {table.name}) ON COMMIT DROP")
        with conn.cursor() as cur:
            with cur.copy(f"COPY {staged} ({', '.join(page.schema.names)}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(csv_bytes(page))
            cur.execute(_insert_missing(table, staged))
            return max(cur.rowcount, 0)
    return log.write(postgres)
