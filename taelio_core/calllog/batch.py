"""Writing one batch of requests and their attempts into the log, and setting malformed ones aside.

Why its own module: the writer (``duckdb.py``) decides *when* to write and
holds the file; this decides *how* a batch goes in. Both tables are inserted
in one transaction from Arrow columns (a hundred times faster than rows). A
malformed row (a NULL where the schema forbids one, a value Arrow cannot
hold) must not block the log forever: it is found by bisection and written to
``<db>.rejected/``, never silently dropped. Errors that are not about the rows
(a lock, a full disk, a damaged file) propagate, and the rows wait for the
writer's next try.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from taelio_core.calllog.arrow import ATTEMPT_SCHEMA, REQUEST_SCHEMA, rows_to_table
from taelio_core.calllog.journal import encode_record, frame

__all__ = ["commit_rows", "insert_tables", "is_data_error", "set_aside"]

Row = tuple[Any, ...]

# Columns are named, so a later migration may add columns (with defaults) without breaking older
# writers. The batch is found by DuckDB's replacement scan of the caller's local variables (fewer
# statements per batch than register/unregister: at low rates the per-batch overhead dominates).
_INSERT_REQUESTS = (f"INSERT INTO requests ({', '.join(REQUEST_SCHEMA.names)}) "
                    f"SELECT {', '.join(REQUEST_SCHEMA.names)} FROM _taelio_requests")
_INSERT_ATTEMPTS = (f"INSERT INTO attempts ({', '.join(ATTEMPT_SCHEMA.names)}) "
                    f"SELECT {', '.join(ATTEMPT_SCHEMA.names)} FROM _taelio_attempts")
# A replayed journal may hold requests committed just before their process died. A request and
# its attempts are always committed together, so the requests table alone says what is stored;
# equal rows have equal ``ts``, so the time bounds let DuckDB skip old row groups at 10M rows.
_STORED = """SELECT DISTINCT request_id FROM requests WHERE ts BETWEEN $lo AND $hi
             AND request_id IN (SELECT request_id FROM _taelio_requests)"""


def is_data_error(exc: BaseException) -> bool:
    """True when the rows themselves are at fault (not the file, a lock or the schema)."""
    return isinstance(exc, (duckdb.ConstraintException, duckdb.ConversionException, duckdb.InvalidInputException,
                            duckdb.OutOfRangeException, pa.ArrowException, TypeError, ValueError, OverflowError))


def insert_tables(con: duckdb.DuckDBPyConnection, requests: pa.Table, attempts: pa.Table,
                  *, skip_stored: bool = False) -> int:
    """Insert both tables in one transaction; return how many requests were new (``skip_stored``)."""
    _taelio_requests, _taelio_attempts = requests, attempts    # noqa: F841 - read by DuckDB by name
    con.execute("BEGIN")
    try:
        if skip_stored and requests.num_rows:
            bounds = {"lo": pc.min(requests["ts"]).as_py(), "hi": pc.max(requests["ts"]).as_py()}
            stored = pa.array(con.execute(_STORED, bounds).fetchnumpy()["request_id"], pa.string())
            if len(stored):
                _taelio_requests = requests.filter(pc.invert(pc.is_in(requests["request_id"], stored)))
                _taelio_attempts = attempts.filter(  # noqa: F841 - read by DuckDB by name
                    pc.invert(pc.is_in(attempts["request_id"], stored)))
        con.execute(_INSERT_REQUESTS)
        con.execute(_INSERT_ATTEMPTS)
        con.execute("COMMIT")
        return _taelio_requests.num_rows
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _insert_rows(con: duckdb.DuckDBPyConnection, requests: list[Row], attempts: list[Row], *, store_text: bool,
                 skip_stored: bool) -> None:
    insert_tables(con, rows_to_table(requests, REQUEST_SCHEMA, store_text=store_text),
                  rows_to_table(attempts, ATTEMPT_SCHEMA), skip_stored=skip_stored)


Insert = Callable[..., Any]     # (con, requests, attempts, *, store_text, skip_stored)


def commit_rows(con: Any, requests: list[Row], attempts: list[Row], *, store_text: bool,  # noqa: ANN401
                skip_stored: bool = False, insert: Insert | None = None,
                data_error: Callable[[BaseException], bool] = is_data_error,
                ) -> tuple[list[tuple[Row, BaseException]], dict[str, list[Row]]]:
    """Insert queued rows, all but the malformed ones; return those (with why) and the attempts by request.

    ``insert`` and ``data_error`` are the backend's (DuckDB's by default; PostgreSQL passes its COPY).
    """
    insert = insert or _insert_rows
    try:
        insert(con, requests, attempts, store_text=store_text, skip_stored=skip_stored)
        return [], {}
    except Exception as e:  # noqa: BLE001
        if not data_error(e):
            raise
    by_request: dict[str, list[Row]] = {}
    for attempt in attempts:
        by_request.setdefault(attempt[0], []).append(attempt)
    bad: list[tuple[Row, BaseException]] = []
    _bisect(con, requests, by_request, bad, insert, data_error, store_text=store_text, skip_stored=skip_stored)
    return bad, by_request


def _bisect(con: Any, requests: list[Row], by_request: dict[str, list[Row]],  # noqa: ANN401
            bad: list[tuple[Row, BaseException]], insert: Insert, data_error: Callable[[BaseException], bool], *,
            store_text: bool, skip_stored: bool) -> None:
    try:
        attempts = [a for r in requests for a in by_request.get(r[0], ())]
        insert(con, requests, attempts, store_text=store_text, skip_stored=skip_stored)
    except Exception as e:  # noqa: BLE001
        if not data_error(e):
            raise
        if len(requests) == 1:
            bad.append((requests[0], e))
            return
        middle = len(requests) // 2
        for half in (requests[:middle], requests[middle:]):
            _bisect(con, half, by_request, bad, insert, data_error, store_text=store_text, skip_stored=skip_stored)


def set_aside(db_path: Path, bad: list[tuple[Row, BaseException]], by_request: dict[str, list[Row]]) -> Path:
    """Write the malformed requests (and their attempts) to ``<db>.rejected/``, journal-framed; return the file."""
    folder = db_path.with_name(db_path.name + ".rejected")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{os.getpid()}-{int(time.time())}.seg"
    with open(target, "ab") as f:
        for request, _error in bad:
            f.write(frame(encode_record((request, by_request.get(request[0], [])))))
    return target
