"""Hourly rollups of the call log, kept up to date on read, so dashboard queries read thousands of rows, not millions.

Why: at 1M requests, aggregating the raw ``requests`` and ``attempts`` took
0.1-0.9 s per query, and it grows with the log; the dashboard runs ~10 per
page. The rollup tables (migration ``006_analytics_rollups``) hold, per UTC
hour x source x tier x task x provider x model x outcome, only counts, sums,
minima and maxima, so:

* every count, token sum and spend is **exact** (sums add: DECIMAL stays
  DECIMAL), and every filter still applies: the sidebar's dates are whole UTC
  days, so a date range is a range of whole hours;
* percentiles (latency, TTFT, cost per request) come from log-scale
  histograms with 8 bins per octave. A quantile is interpolated between the
  bins holding its two neighbouring values, each bin represented by its
  geometric centre clamped to the smallest and largest value it holds, so it
  is within 2^(1/16) - 1 = **4.4 %** of the exact ``quantile_cont`` (and
  exact when a bin holds one distinct value).

How it stays current: the log is append-only (rows are never updated or
deleted), so new rows get row ids above every folded one, and
``rollup_watermarks`` records the first row id not folded yet and the row
count then (a count that grew means new rows). Folding merges the new
partial groups with the existing rows of the hours they touch (delete and
re-insert), so a rollup holds one row per group and never needs compacting.
Two places fold:

* **the writer** (``calllog/duckdb.py``), right after each batch it commits
  and after each bulk append, calls ``fold_after_write`` in a transaction of
  its own. Folding costs 100-350 ms at 10M rows (mostly merging the latency
  histogram's touched hours), and that is paid off the read path: the first
  dashboard read after new traffic finds nothing left to fold;
* **every read**: ``read()`` still folds whatever is past the watermark
  (``rowid >= watermark`` skips every older row group), in the same
  transaction as the reads, so what a page shows is exact and one consistent
  snapshot even for rows the writer did not fold: a plain DuckDB client's
  inserts, a batch committed a moment before its fold, a writer that skipped
  its fold because a read held the fold lock.

A log that lost rows (a count below the recorded one: only a hand-made
DELETE does that) is rebuilt from scratch, and so is one whose rows were
removed by a caller that says so (``invalidate``: demo removal).
The first read of a large existing log pays the build once (seconds at 10M).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import duckdb
import pandas as pd

from taelio_core.analytics.dialect import DUCKDB
from taelio_core.calllog import CallLog

__all__ = ["BINS_PER_OCTAVE", "QUANTILE_ERROR", "Reader", "build_fine", "fold_after_write", "histogram_quantiles",
           "invalidate", "read", "refresh"]

T = TypeVar("T")
BINS_PER_OCTAVE = 8
QUANTILE_ERROR = 2 ** (1 / (2 * BINS_PER_OCTAVE)) - 1      # 0.0443
_ZERO_BIN = -100_000                                        # values <= 0 (a 0 ms answer, a free call)
_UNPRICED = "(cost_usd IS NULL AND (input_tokens > 0 OR output_tokens > 0))"
_HOUR = "date_trunc('hour', ts AT TIME ZONE 'UTC')"
_BIN = f"CASE WHEN v > 0 THEN floor({BINS_PER_OCTAVE} * log2(v))::INTEGER ELSE {_ZERO_BIN} END"


@dataclass(frozen=True, kw_only=True)
class _Rollup:
    table: str
    keys: tuple[str, ...]
    merge: tuple[str, ...]     # how existing and new rows of one group combine
    delta: str                 # the new rows' groups; placeholders: $lo, $hi (row ids)


_GROUP = ("hour", "source", "tier", "task", "provider")
_HIST_MERGE = ("sum(n)::BIGINT AS n", "min(lo) AS lo", "max(hi) AS hi")
_ROLLUPS: dict[str, tuple[_Rollup, ...]] = {
    "attempts": (
        # ``simulated`` is a key (migration 014) so that the budget spend, which never counts simulated calls
        # unless a rehearsal says so, reads this rollup instead of the month's raw attempts.
        _Rollup(table="attempt_rollup", keys=(*_GROUP, "model", "status", "error_type", "simulated"),
                merge=("sum(attempts)::BIGINT AS attempts", "sum(first_attempts)::BIGINT AS first_attempts",
                       "sum(priced)::BIGINT AS priced", "sum(unpriced)::BIGINT AS unpriced",
                       "sum(cost_usd) AS cost_usd", "sum(input_tokens)::BIGINT AS input_tokens",
                       "sum(output_tokens)::BIGINT AS output_tokens", "max(last_ts) AS last_ts"),
                delta=f"""
            SELECT {_HOUR} AS hour, source, tier, task, provider, model, status, error_type, simulated,
                   count(*) AS attempts, count(*) FILTER (WHERE n = 1) AS first_attempts,
                   count(cost_usd) AS priced, count(*) FILTER (WHERE {_UNPRICED}) AS unpriced,
                   sum(cost_usd) AS cost_usd, sum(input_tokens)::BIGINT AS input_tokens,
                   sum(output_tokens)::BIGINT AS output_tokens, max(ts) AS last_ts
            FROM attempts WHERE rowid >= $lo AND rowid < $hi GROUP BY ALL"""),
        _Rollup(table="latency_histogram", keys=(*_GROUP, "metric", "bin"), merge=_HIST_MERGE, delta=f"""
            SELECT hour, source, tier, task, provider, metric, {_BIN} AS bin, count(*) AS n,
                   min(v) AS lo, max(v) AS hi
            FROM (SELECT {_HOUR} AS hour, source, tier, task, provider, 'latency' AS metric, latency_ms AS v
                  FROM attempts WHERE rowid >= $lo AND rowid < $hi AND status = 'ok' AND latency_ms IS NOT NULL
                  UNION ALL
                  SELECT {_HOUR}, source, tier, task, provider, 'ttft', ttft_ms
                  FROM attempts WHERE rowid >= $lo AND rowid < $hi AND status = 'ok' AND ttft_ms IS NOT NULL)
            GROUP BY ALL"""),
    ),
    "requests": (
        _Rollup(table="request_rollup", keys=(*_GROUP, "model", "status", "fell_back"),
                merge=("sum(requests)::BIGINT AS requests", "sum(priced)::BIGINT AS priced",
                       "sum(cost_usd) AS cost_usd", "min(cost_min) AS cost_min", "max(cost_max) AS cost_max",
                       "sum(input_tokens)::BIGINT AS input_tokens", "sum(output_tokens)::BIGINT AS output_tokens",
                       "max(last_ts) AS last_ts"),
                delta=f"""
            SELECT {_HOUR} AS hour, source, tier, task, provider, model, status, fallback_depth > 0 AS fell_back,
                   count(*) AS requests, count(cost_usd) AS priced, sum(cost_usd) AS cost_usd,
                   min(cost_usd) AS cost_min, max(cost_usd) AS cost_max,
                   sum(input_tokens)::BIGINT AS input_tokens, sum(output_tokens)::BIGINT AS output_tokens,
                   max(ts) AS last_ts
            FROM requests WHERE rowid >= $lo AND rowid < $hi GROUP BY ALL"""),
        _Rollup(table="request_cost_histogram", keys=("day", "source", "tier", "task", "provider", "model", "bin"),
                merge=_HIST_MERGE, delta=f"""
            SELECT day, source, tier, task, provider, model, {_BIN} AS bin, count(*) AS n, min(v) AS lo, max(v) AS hi
            FROM (SELECT date_trunc('day', ts AT TIME ZONE 'UTC') AS day, source, tier, task, provider, model,
                         cost_usd::DOUBLE AS v
                  FROM requests WHERE rowid >= $lo AND rowid < $hi AND cost_usd IS NOT NULL AND model IS NOT NULL)
            GROUP BY ALL"""),
        _Rollup(table="user_rollup", keys=("day", "source", "tier", "task", "provider", "user_id"),
                merge=("sum(requests)::BIGINT AS requests", "sum(failed)::BIGINT AS failed",
                       "sum(unpriced)::BIGINT AS unpriced", "sum(cost_usd) AS cost_usd",
                       "sum(input_tokens)::BIGINT AS input_tokens", "sum(output_tokens)::BIGINT AS output_tokens",
                       "max(last_ts) AS last_ts"),
                delta="""
            SELECT date_trunc('day', ts AT TIME ZONE 'UTC') AS day, source, tier, task, provider, user_id,
                   count(*) AS requests, count(*) FILTER (WHERE status <> 'ok') AS failed,
                   count(*) FILTER (WHERE cost_usd IS NULL AND input_tokens + output_tokens > 0) AS unpriced,
                   sum(cost_usd) AS cost_usd, sum(input_tokens)::BIGINT AS input_tokens,
                   sum(output_tokens)::BIGINT AS output_tokens, max(ts) AS last_ts
            FROM requests WHERE rowid >= $lo AND rowid < $hi AND user_id IS NOT NULL GROUP BY ALL"""),
    ),
}


def _fold(con: duckdb.DuckDBPyConnection, rollup: _Rollup, lo: int, hi: int) -> None:
    """Merge the groups of rows ``lo <= rowid < hi`` into ``rollup.table`` (one row per group kept).

    The touched hours are also named as a range of constants, so DuckDB skips the rollup's row groups
    outside it (rows are appended in time order) instead of testing every row against the list.
    """
    time_col = rollup.keys[0]
    keys = ", ".join(rollup.keys)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _rollup_delta AS {rollup.delta}", {"lo": lo, "hi": hi})
    first, last = con.execute(f"SELECT min({time_col}), max({time_col}) FROM _rollup_delta").fetchone()
    if first is not None:
        span = {"first": first, "last": last}
        touched = (f"{time_col} BETWEEN $first AND $last "
                   f"AND {time_col} IN (SELECT DISTINCT {time_col} FROM _rollup_delta)")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _rollup_merged AS
            SELECT {keys}, {", ".join(rollup.merge)}
            FROM (SELECT * FROM {rollup.table} WHERE {touched} UNION ALL BY NAME SELECT * FROM _rollup_delta)
            GROUP BY {keys}""", span)
        con.execute(f"DELETE FROM {rollup.table} WHERE {touched}", span)
        con.execute(f"INSERT INTO {rollup.table} BY NAME SELECT * FROM _rollup_merged")
        con.execute("DROP TABLE _rollup_merged")
    con.execute("DROP TABLE _rollup_delta")


def invalidate(con: duckdb.DuckDBPyConnection) -> None:
    """Make the next ``refresh`` rebuild every rollup from the raw rows: for a caller that deleted rows.

    A row count alone cannot tell: rows appended since the last fold can hide the ones deleted.
    """
    con.execute("UPDATE rollup_watermarks SET rows_done = 9223372036854775807")


def refresh(con: duckdb.DuckDBPyConnection) -> int:
    """Fold every row past the watermarks into the rollups (inside the caller's transaction); return how many."""
    folded = 0
    for table, rollups in _ROLLUPS.items():
        row = con.execute("SELECT rows_done, next_rowid FROM rollup_watermarks WHERE source_table = ?",
                          [table]).fetchone()
        done, lo = (int(row[0]), int(row[1])) if row else (0, 0)
        total = int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])   # from metadata: cheap
        if total == done:
            continue
        if total < done:            # rows were deleted (by hand: the log never does): start again
            for rollup in rollups:
                con.execute(f"DELETE FROM {rollup.table}")
            done, lo = 0, 0
        hi = int(con.execute(f"SELECT coalesce(max(rowid) + 1, ?) FROM {table} WHERE rowid >= ?",
                             [lo, lo]).fetchone()[0])
        for rollup in rollups:
            _fold(con, rollup, lo, hi)
        con.execute("INSERT OR REPLACE INTO rollup_watermarks VALUES (?, ?, ?, now())", [table, total, hi])
        folded += total - done
    return folded


_MINUTE = "date_trunc('minute', ts AT TIME ZONE 'UTC')"
_ROWS = "rowid >= $lo AND rowid < $hi"


_FINE_GRAINS = {1: _MINUTE, 5: "time_bucket(INTERVAL 5 MINUTE, ts AT TIME ZONE 'UTC')",
                15: "time_bucket(INTERVAL 15 MINUTE, ts AT TIME ZONE 'UTC')"}


def build_fine(con: duckdb.DuckDBPyConnection, *, start: datetime, end: datetime, minutes: int = 1) -> list[str]:
    """Temporary ``minutes``-grain twins of the hourly rollups, over ``start <= ts < end``; returns their names.

    The same groups and sums as the hourly tables (their ``hour`` column holds the start of each 1, 5 or 15
    minutes), built from the raw rows of that span, so every query written for the rollups reads them
    unchanged while they exist (``date_trunc('minute', hour)`` keeps a 5-minute start as it is): a temporary
    table shadows the stored one of the same name on this connection.
    """
    grain = _FINE_GRAINS[minutes]          # a closed set: KeyError for anything else
    made = []
    for table, rollups in _ROLLUPS.items():
        for rollup in rollups:
            if rollup.keys[0] != "hour":
                continue                   # the daily cost histogram has no finer use
            # The rollup's own constant SQL at minute grain; the time bounds are parameters.
            minute_twin = rollup.delta.replace(_HOUR, grain).replace(_ROWS, "ts >= $lo AND ts < $hi")
            con.execute(f"CREATE OR REPLACE TEMP TABLE {rollup.table} AS {minute_twin}", {"lo": start, "hi": end})
            made.append(rollup.table)
    return made


class Reader:
    """A connection inside one transaction whose rollups are current; ``query`` as on a ``CallLog``.

    ``pg_reader.PostgresReader`` is its PostgreSQL twin (same methods); ``dialect`` gives the SQL fragments
    the two engines spell differently.
    """

    dialect = DUCKDB

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> pd.DataFrame:
        return self.con.execute(sql, params).df()

    def build_fine(self, *, start: datetime, end: datetime, minutes: int = 1) -> list[str]:
        return build_fine(self.con, start=start, end=end, minutes=minutes)

    def drop_fine(self, tables: list[str]) -> None:
        for table in tables:
            self.con.execute(f"DROP TABLE IF EXISTS temp.{table}")


# One refresh at a time per process: two sessions folding the same rows would conflict at commit.
_LOCK = threading.Lock()


def read(source: CallLog | Reader, fn: Callable[[Reader], T], *, rollups: bool = True) -> T:
    """``fn(reader)`` on one connection with current rollups (the log's own when ``source`` is a Reader).

    Several queries passed through one ``read`` share the file's open, the refresh and the snapshot. A
    PostgreSQL log gets a ``PostgresReader`` (its rollups are kept by triggers: nothing to refresh).
    ``rollups=False``: ``fn`` reads raw rows only, so no refresh is paid for.
    """
    if not isinstance(source, CallLog):
        return fn(source)          # already a reader (DuckDB's or PostgreSQL's)
    from taelio_core.analytics import pg_reader
    if pg_reader.is_postgres_log(source):
        return pg_reader.read(source, fn)  # type: ignore[arg-type]
    if not rollups:
        return source.write(lambda con: fn(Reader(con)))

    def work(con: duckdb.DuckDBPyConnection) -> T:
        refresh(con)
        return fn(Reader(con))

    with _LOCK:
        try:
            return source.write(work)
        except duckdb.TransactionException:
            return source.write(work)      # another process folded the same rows first: theirs stand


# How long the writer waits for a read holding the fold lock before leaving the fold to the reads.
FOLD_WAIT_S = 1.0


def fold_after_write(con: duckdb.DuckDBPyConnection) -> int:
    """Fold the rows just committed (and any others past the watermarks) in a transaction of its own.

    For the log's writer, after each commit: the rows are already safe, so nothing here may fail the
    batch. A read folding at the same moment takes ``_LOCK`` first; if it holds the lock too long, or
    another connection folded the same rows first (a conflict at commit), the next read folds what is left.
    Returns how many rows were folded here.
    """
    if not _LOCK.acquire(timeout=FOLD_WAIT_S):
        return 0
    try:
        con.execute("BEGIN")
        try:
            folded = refresh(con)
            con.execute("COMMIT")
            return folded
        except BaseException:
            con.execute("ROLLBACK")
            raise
    except duckdb.TransactionException:
        return 0
    finally:
        _LOCK.release()


def histogram_quantiles(table: str, keys: Sequence[tuple[str, str]], where: str,
                        quantiles: dict[str, float]) -> str:
    """SQL: per ``keys`` ((expression, name) pairs), each named quantile of a histogram table's values.

    Like ``quantile_cont``: the value at rank q * (n - 1), interpolated between the two values around it.
    Each of them is read as its bin's representative (see the module docstring for the error bound).
    """
    exprs = ", ".join(f"{expr} AS {name}" for expr, name in keys)
    names = ", ".join(name for _, name in keys)
    ranks, picks, finals = [], [], []
    for i, (alias, q) in enumerate(quantiles.items()):
        # The rank r = q * (total - 1), once per row. For a whole count ``upto`` (values up to this bin),
        # upto > floor(r) is upto > r and upto > ceil(r) is upto - 1 >= r: no floor or ceil per row (PostgreSQL
        # does this arithmetic in numeric; per row it was most of the time of an hourly percentile query).
        ranks.append(f"{q} * (sum(n) OVER (PARTITION BY {names}) - 1) AS _r{i}")
        picks.append(f"min(rep) FILTER (WHERE upto > _r{i}) AS _a{i}, "
                     f"min(rep) FILTER (WHERE upto - 1 >= _r{i}) AS _b{i}, max(_r{i}) AS _r{i}")
        finals.append(f"_a{i} + (_r{i} - floor(_r{i})) * (_b{i} - _a{i}) AS {alias}")
    return f"""
        WITH h AS (SELECT {exprs}, bin, sum(n) AS n, min(lo) AS lo, max(hi) AS hi
                   FROM {table} {where} GROUP BY {", ".join(str(i + 1) for i in range(len(keys) + 1))}),
             c AS (SELECT {names}, sum(n) OVER (PARTITION BY {names} ORDER BY bin ROWS UNBOUNDED PRECEDING) AS upto,
                          {", ".join(ranks)},
                          CASE WHEN bin = {_ZERO_BIN} THEN hi      -- 2^-12500: 0 in DuckDB, an underflow error in PostgreSQL
                               ELSE least(greatest(pow(2::DOUBLE PRECISION, (bin + 0.5) / {BINS_PER_OCTAVE}), lo), hi)
                          END AS rep
                   FROM h)
        SELECT {names}, {", ".join(finals)}
        FROM (SELECT {names}, {", ".join(picks)} FROM c GROUP BY {names}) AS picked"""
