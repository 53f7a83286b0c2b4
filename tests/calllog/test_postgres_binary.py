"""The writer's binary COPY (``calllog/postgres_binary.py``) against a real PostgreSQL: it stores exactly what the
Arrow + CSV path stores, including the edges of its two hand-written dumpers (times, money), and it keeps text
PostgreSQL cannot hold rather than setting the request aside."""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from taelio_core.calllog import PostgresCallLog
from taelio_core.calllog.arrow import ATTEMPT_SCHEMA, REQUEST_SCHEMA, rows_to_table
from taelio_core.calllog.postgres_binary import binary_cursor
from taelio_core.calllog.postgres_copy import copy_rows, copy_tables
from taelio_core.calllog.rows import REQUEST_COLUMNS, encode, micros
from tests.calllog.traffic import finished_results

COST = REQUEST_COLUMNS.index("cost_usd")
TS = REQUEST_COLUMNS.index("ts")
# 1e-10 USD units: zero, the smallest amount, amounts whose base-10000 digits end in zeros or not, just under
# 10M USD, and a negative one (a refund); times before and after PostgreSQL's 2000-01-01 zero.
EDGE_COSTS = [0, 1, 10_000, 123_456_789, 10**12, 5 * 10**10 + 7, 10**17 - 1, -25_000_000_001]
EDGE_TIMES = [datetime(1970, 1, 1, tzinfo=UTC), datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
              datetime(2000, 1, 1, tzinfo=UTC), datetime(2026, 12, 2, 15, 0, 0, 1, tzinfo=UTC)]


def _rows(store_text: bool = True) -> tuple[list, list]:
    results = finished_results(60, seed=7)
    requests, attempts = [], []
    for i, result in enumerate(results):
        request, rows = encode(result, store_text=store_text)
        request = list(request)
        if i < len(EDGE_COSTS):
            request[COST] = EDGE_COSTS[i]
        if i < len(EDGE_TIMES):
            request[TS] = micros(EDGE_TIMES[i])
        requests.append(tuple(request))
        attempts.extend(rows)
    return requests, attempts


def _stored(conn: psycopg.Connection) -> tuple[list, list]:
    return (conn.execute("SELECT * FROM requests ORDER BY request_id").fetchall(),
            conn.execute("SELECT * FROM attempts ORDER BY request_id, n").fetchall())


@pytest.mark.parametrize("store_text", [True, False], ids=["text", "hashes-only"])
def test_binary_copy_stores_exactly_what_the_csv_path_stores(pg_url: str, tmp_path: Path, store_text: bool) -> None:
    PostgresCallLog(pg_url, spool=tmp_path).close()            # the schema
    requests, attempts = _rows(store_text)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        copy_tables(conn, rows_to_table(requests, REQUEST_SCHEMA, store_text=store_text),
                    rows_to_table(attempts, ATTEMPT_SCHEMA))
        by_csv = _stored(conn)
        conn.execute("TRUNCATE requests, attempts")
        assert copy_rows(conn, requests, attempts, store_text=store_text) == len(requests)
        by_binary = _stored(conn)
    assert by_binary == by_csv and len(by_binary[0]) == 60 and len(by_binary[1]) == len(attempts)
    costs = {row[COST] for row in by_binary[0]}
    assert {Decimal(units).scaleb(-10) for units in EDGE_COSTS} <= costs
    assert set(EDGE_TIMES) <= {row[TS] for row in by_binary[0]}
    assert all(row[REQUEST_COLUMNS.index("prompt_sha256")] for row in by_binary[0])


def test_the_binary_dumpers_stay_on_the_writers_cursor(pg_url: str) -> None:
    from psycopg.pq import Format
    with psycopg.connect(pg_url, autocommit=True) as conn:
        mine = binary_cursor(conn).adapters.get_dumper_by_oid(1184, Format.BINARY)
        theirs = conn.adapters.get_dumper_by_oid(1184, Format.BINARY)
        assert mine is not theirs and mine.__name__ == "_Micros"


def test_a_replayed_batch_through_binary_copy_lands_each_request_once(pg_url: str, tmp_path: Path) -> None:
    PostgresCallLog(pg_url, spool=tmp_path).close()
    requests, attempts = _rows()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert copy_rows(conn, requests[:30], attempts, store_text=True) == 30   # its attempts: all, as a replay
        assert copy_rows(conn, requests, attempts, store_text=True, skip_stored=True) == 30
        assert copy_rows(conn, requests, attempts, store_text=True) == 0        # meets the keys: careful path
        stored_requests, stored_attempts = _stored(conn)
    assert len(stored_requests) == 60 and len(stored_attempts) == len(attempts)


def test_text_postgresql_cannot_hold_is_stored_cleaned_and_nothing_is_set_aside(pg_url: str, tmp_path: Path) -> None:
    results = finished_results(5, seed=2)
    nul = replace(results[0], text="nul \x00 inside")
    surrogate = replace(results[1], text="broken \ud800 escape", prompt="also \udfff here")
    log = PostgresCallLog(pg_url, spool=tmp_path, flush_interval=0.05)
    for result in (nul, surrogate, *results[2:]):
        log.record(result)
    log.flush(timeout=60)
    out = log.query("SELECT request_id, prompt, output FROM requests").set_index("request_id")
    assert len(out) == 5 and log.writer_status().rejected == 0
    assert out.loc[nul.request_id, "output"] == "nul \ufffd inside"
    assert tuple(out.loc[surrogate.request_id, ["output", "prompt"]]) == ("broken ? escape", "also ? here")
    log.close()


def test_an_integer_column_value_beyond_32_bits_is_set_aside_not_cut_to_its_low_bits(pg_url: str,
                                                                                      tmp_path: Path) -> None:
    results = finished_results(6, seed=4)
    first = results[2].attempts[0]
    poison = replace(results[2], attempts=(replace(first, http_status=2**32 + 429), *results[2].attempts[1:]))
    log = PostgresCallLog(pg_url, spool=tmp_path, flush_interval=0.05)
    for result in (*results[:2], poison, *results[3:]):
        log.record(result)
    log.flush(timeout=60)
    stored = set(log.query("SELECT request_id FROM requests")["request_id"])
    assert stored == {r.request_id for r in results} - {poison.request_id}
    assert log.writer_status().rejected == 1 and "http_status" in log.writer_status().last_error
    assert log.query("SELECT count(*) AS n FROM attempts WHERE http_status = 429 AND request_id = ?",
                     [poison.request_id])["n"].iloc[0] == 0
    log.close()


def test_a_row_journalled_before_the_later_columns_is_stored_with_their_defaults(pg_url: str, tmp_path: Path) -> None:
    from taelio_core.calllog.rows import ATTEMPT_COLUMNS
    PostgresCallLog(pg_url, spool=tmp_path).close()
    request, attempts = encode(finished_results(1, seed=5)[0])
    old_request = request[:REQUEST_COLUMNS.index("retries")]           # before migration 012
    old_attempts = [a[:ATTEMPT_COLUMNS.index("wait_ms")] for a in attempts]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert copy_rows(conn, [old_request], old_attempts, store_text=True, skip_stored=True) == 1
        assert conn.execute("SELECT retries, pinned_provider FROM requests").fetchone() == (0, None)
        assert conn.execute("SELECT DISTINCT wait_ms, sent FROM attempts").fetchall() == [(0.0, None)]
