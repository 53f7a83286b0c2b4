"""The hourly rollups on PostgreSQL, kept current by the database itself: statement triggers on the raw tables.

Why not the DuckDB way (a row-id watermark folded by one writer): on PostgreSQL
several replicas insert at once, and a serial id does not commit in order, so a
watermark would skip rows committed late. Instead every statement that inserts
into ``requests`` or ``attempts`` (each ``COPY`` batch of any replica, a
``taelio log copy``, a hand-made ``INSERT``) folds its own rows, through a
transition table, into the same rollup tables as DuckDB's (migration
``006_analytics_rollups``), in the same transaction: a reader never sees a raw
row that the rollups lack, or the reverse. Folding is an upsert that adds
counts and sums and takes minima and maxima (unique keys with ``NULLS NOT
DISTINCT``, PostgreSQL 15), so concurrent batches touching the same hour
merge instead of conflicting; groups are inserted in key order, so two
batches lock shared keys in the same order (no deadlock). Since migration
``postgres_rollup_fold_hashed`` the batch is grouped first (hashed) and only
the groups are sorted.

A ``DELETE`` recomputes the hours its rows fell in from what remains (sums
cannot un-take a minimum), and ``TRUNCATE`` empties the rollups. Rows are
never updated (the log is append-only).

The grouping, sums and histogram bins are the same as ``rollup.py``'s (the
parity test, ``tests/analytics/test_pg_parity.py``, checks every analytics
function against DuckDB on the same log). ``log2`` is ``ln(v) / ln(2)``
nudged so that powers of two land in their own bin, as with DuckDB's ``log2``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["MIGRATION", "MIGRATIONS", "build_fine", "ROLLUP_TABLES", "drop_fine", "refold_sql"]

# PostgreSQL has no log2 for floats; log(2, numeric) is exact but costs ~70 us a value (it made a 1M-row load
# 5x slower). ln(v) / ln(2) is off by a few 1e-14 at powers of two, hence the nudge (checked: 2^-80..2^80 land
# in their own bin, and 300k other values in the same bin as the numeric log).
_BIN = "CASE WHEN v > 0 THEN floor(8 * ln(v) / ln(2::DOUBLE PRECISION) + 1e-11)::INTEGER ELSE -100000 END"
_UNPRICED = "(cost_usd IS NULL AND (input_tokens > 0 OR output_tokens > 0))"
_HOUR = "date_trunc('hour', ts AT TIME ZONE 'UTC')"
_DAY = "date_trunc('day', ts AT TIME ZONE 'UTC')"
_HIST = ("n = r.n + excluded.n", "lo = least(r.lo, excluded.lo)", "hi = greatest(r.hi, excluded.hi)")


def _sum(column: str) -> str:
    """A merged sum that stays NULL only when both sides are (an unpriced group plus a priced one is priced)."""
    return f"{column} = coalesce(r.{column} + excluded.{column}, r.{column}, excluded.{column})"


# table -> (its keys, how an existing row and a new group merge, the group query over ``{rows}``)
_ROLLUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str, str]] = {
    "attempt_rollup": (
        ("hour", "source", "tier", "task", "provider", "model", "status", "error_type", "simulated"),
        ("attempts = r.attempts + excluded.attempts", "first_attempts = r.first_attempts + excluded.first_attempts",
         "priced = r.priced + excluded.priced", "unpriced = r.unpriced + excluded.unpriced", _sum("cost_usd"),
         "input_tokens = r.input_tokens + excluded.input_tokens",
         "output_tokens = r.output_tokens + excluded.output_tokens", "last_ts = greatest(r.last_ts, excluded.last_ts)"),
        "attempts", """
        SELECT {time} AS hour, source, tier, task, provider, model, status, error_type, simulated,
               count(*) AS attempts, count(*) FILTER (WHERE n = 1) AS first_attempts,
               count(cost_usd) AS priced, count(*) FILTER (WHERE """ + _UNPRICED + """) AS unpriced,
               sum(cost_usd) AS cost_usd, sum(input_tokens)::BIGINT AS input_tokens,
               sum(output_tokens)::BIGINT AS output_tokens, max(ts) AS last_ts
        FROM {rows} AS x GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9"""),
    "latency_histogram": (
        ("hour", "source", "tier", "task", "provider", "metric", "bin"), _HIST, "attempts", """
        SELECT hour, source, tier, task, provider, metric, """ + _BIN + """ AS bin, count(*) AS n,
               min(v) AS lo, max(v) AS hi
        FROM (SELECT {time} AS hour, source, tier, task, provider, 'latency' AS metric, latency_ms AS v
              FROM {rows} AS x WHERE status = 'ok' AND latency_ms IS NOT NULL
              UNION ALL
              SELECT {time}, source, tier, task, provider, 'ttft', ttft_ms
              FROM {rows} AS y WHERE status = 'ok' AND ttft_ms IS NOT NULL) AS m
        GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7"""),
    "request_rollup": (
        ("hour", "source", "tier", "task", "provider", "model", "status", "fell_back"),
        ("requests = r.requests + excluded.requests", "priced = r.priced + excluded.priced", _sum("cost_usd"),
         "cost_min = least(r.cost_min, excluded.cost_min)", "cost_max = greatest(r.cost_max, excluded.cost_max)",
         "input_tokens = r.input_tokens + excluded.input_tokens",
         "output_tokens = r.output_tokens + excluded.output_tokens", "last_ts = greatest(r.last_ts, excluded.last_ts)"),
        "requests", """
        SELECT {time} AS hour, source, tier, task, provider, model, status, fallback_depth > 0 AS fell_back,
               count(*) AS requests, count(cost_usd) AS priced, sum(cost_usd) AS cost_usd,
               min(cost_usd) AS cost_min, max(cost_usd) AS cost_max,
               sum(input_tokens)::BIGINT AS input_tokens, sum(output_tokens)::BIGINT AS output_tokens,
               max(ts) AS last_ts
        FROM {rows} AS x GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"""),
    "request_cost_histogram": (
        ("day", "source", "tier", "task", "provider", "model", "bin"), _HIST, "requests", """
        SELECT day, source, tier, task, provider, model, """ + _BIN + """ AS bin, count(*) AS n,
               min(v) AS lo, max(v) AS hi
        FROM (SELECT {day} AS day, source, tier, task, provider, model, cost_usd::DOUBLE PRECISION AS v
              FROM {rows} AS x WHERE cost_usd IS NOT NULL AND model IS NOT NULL) AS m
        GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7"""),
    "user_rollup": (
        ("day", "source", "tier", "task", "provider", "user_id"),
        ("requests = r.requests + excluded.requests", "failed = r.failed + excluded.failed",
         "unpriced = r.unpriced + excluded.unpriced", _sum("cost_usd"),
         "input_tokens = r.input_tokens + excluded.input_tokens",
         "output_tokens = r.output_tokens + excluded.output_tokens", "last_ts = greatest(r.last_ts, excluded.last_ts)"),
        "requests", """
        SELECT {day} AS day, source, tier, task, provider, user_id,
               count(*) AS requests, count(*) FILTER (WHERE status <> 'ok') AS failed,
               count(*) FILTER (WHERE cost_usd IS NULL AND input_tokens + output_tokens > 0) AS unpriced,
               sum(cost_usd) AS cost_usd, sum(input_tokens)::BIGINT AS input_tokens,
               sum(output_tokens)::BIGINT AS output_tokens, max(ts) AS last_ts
        FROM {rows} AS x WHERE user_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6"""),
}


def _groups(table: str, rows: str) -> str:
    return _ROLLUPS[table][3].format(time=_HOUR, day=_DAY, rows=rows)


def _columns(table: str) -> str:
    """The columns the group query gives, in its order: inserts name them, since a column added by a later
    migration (``simulated``) sits at the table's end but among the keys in the query."""
    keys, merge, _source, _sql = _ROLLUPS[table]
    return ", ".join((*keys, *(m.split(" = ", 1)[0] for m in merge)))


def _upsert(table: str, rows: str, *, hashed: bool = False) -> str:
    """Fold ``rows``' groups into ``table``, in key order (so concurrent folds lock shared keys alike).

    ``hashed``: group first in a materialized CTE (planned on its own, so PostgreSQL may hash the rows) and
    sort only the groups; otherwise the planner sorts every raw row to both group and order them (the
    latency histogram sorted two rows per attempt, spilling to disk at 30k-request batches).
    """
    keys, merge, _source, _sql = _ROLLUPS[table]
    on_conflict = f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(merge)};"
    if not hashed:
        return f"INSERT INTO {table} AS r ({_columns(table)}) {_groups(table, rows)}\n{on_conflict}"
    grouped = _groups(table, rows).rsplit("ORDER BY", 1)[0]
    order = ", ".join(str(i) for i in range(1, len(keys) + 1))
    return (f"WITH g AS MATERIALIZED ({grouped})\n"
            f"INSERT INTO {table} AS r ({_columns(table)}) SELECT * FROM g ORDER BY {order}\n{on_conflict}")


def _time_of(table: str) -> str:
    return _DAY if _ROLLUPS[table][0][0] == "day" else _HOUR


def _recompute(table: str, touched: str) -> str:
    """Replace ``table``'s rows of the hours (days) in ``touched`` (a relation of ``ts``) by their raw rows' groups."""
    time_col, source, expr = _ROLLUPS[table][0][0], _ROLLUPS[table][2], _time_of(table)
    spans = f"(SELECT DISTINCT {expr} AS t FROM {touched} AS o)"
    return (f"DELETE FROM {table} WHERE {time_col} IN {spans};\n"
            f"INSERT INTO {table} ({_columns(table)}) "
            f"{_groups(table, f'(SELECT * FROM {source} WHERE {expr} IN {spans})')};")


def _functions(*, hashed: bool = False) -> str:
    out = []
    for source in ("requests", "attempts"):
        mine = [t for t, spec in _ROLLUPS.items() if spec[2] == source]
        inserts = "\n".join(_upsert(t, "new_rows", hashed=hashed) for t in mine)
        deletes = "\n".join(_recompute(t, "old_rows") for t in mine)
        truncates = "\n".join(f"DELETE FROM {t};" for t in mine)
        out.append(f"""
CREATE OR REPLACE FUNCTION taelio_fold_{source}() RETURNS trigger LANGUAGE plpgsql AS $fold$
BEGIN
{inserts}
RETURN NULL;
END $fold$;
CREATE OR REPLACE FUNCTION taelio_unfold_{source}() RETURNS trigger LANGUAGE plpgsql AS $unfold$
BEGIN
{deletes}
RETURN NULL;
END $unfold$;
CREATE OR REPLACE FUNCTION taelio_clear_{source}() RETURNS trigger LANGUAGE plpgsql AS $clear$
BEGIN
{truncates}
RETURN NULL;
END $clear$;
DROP TRIGGER IF EXISTS taelio_fold ON {source};
CREATE TRIGGER taelio_fold AFTER INSERT ON {source} REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION taelio_fold_{source}();
DROP TRIGGER IF EXISTS taelio_unfold ON {source};
CREATE TRIGGER taelio_unfold AFTER DELETE ON {source} REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION taelio_unfold_{source}();
DROP TRIGGER IF EXISTS taelio_clear ON {source};
CREATE TRIGGER taelio_clear AFTER TRUNCATE ON {source} FOR EACH STATEMENT EXECUTE FUNCTION taelio_clear_{source}();""")
    return "\n".join(out)


def _key(table: str) -> str:
    keys = ", ".join(_ROLLUPS[table][0])
    return f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_key ON {table} ({keys}) NULLS NOT DISTINCT;"


def _keys() -> str:
    return "\n".join(_key(t) for t in _ROLLUPS)


ROLLUP_TABLES = tuple(_ROLLUPS)


def refold_sql(tables: tuple[str, ...] = ROLLUP_TABLES, *, hashed: bool = True) -> str:
    """Empty the rollup ``tables`` and fold all the raw rows into them again, one ``INSERT ... SELECT`` each.

    For rows that reached the raw tables while the fold triggers were off (a bulk load that disables them
    and builds the rollups once at the end, far faster than a fold per batch), and for a database migrated
    with history already in it. Each table's statements stand alone, so separate sessions may refold
    separate tables at once.
    """
    return (chr(10).join(f"DELETE FROM {t};" for t in tables) + chr(10)
            + chr(10).join(_upsert(t, _ROLLUPS[t][2], hashed=hashed) for t in tables))


# After the rollup tables exist (006, 013 on PostgreSQL): their keys, the triggers, and one fold of any rows
# already there (a database migrated with history in it). The raw tables' indexes are the call log's
# (calllog/postgres_schema.py: primary keys, ts). A rollup added later needs a migration of its own that
# re-creates the functions: this one runs once.
MIGRATION = ("postgres_rollup_triggers", f"""
{_keys()}
{_functions()}
{refold_sql(hashed=False)}
""")

# The same triggers, folding each batch through hash-grouped, key-ordered groups (``_upsert(hashed=True)``):
# the fold of a 7,500-request batch took about as long as its COPY, most of it sorting raw rows.
FOLD_HASHED = ("postgres_rollup_fold_hashed", _functions(hashed=True))

# The analytics reads' own index on PostgreSQL: a request's detail lists the other requests under its parent
# (``calls.request_detail``, an idea and the story built on it). Without it that lookup scanned the day around
# the request through the ``ts`` index: ~760 ms at 10M requests. Partial: most requests have no parent.
# Built without CONCURRENTLY (migrations run in a transaction): on a large log it holds writes for its build.
PARENT_INDEX = ("postgres_requests_parent_index",
                "CREATE INDEX IF NOT EXISTS requests_parent ON requests (parent_id, ts) WHERE parent_id IS NOT NULL;")

# The Health page's hourly latency percentiles over 30 days (``reliability.latency_over_time`` with hourly
# buckets, grouped by ``date_trunc('hour', hour)``, provider and bin): read in that order from this index, the
# rows need neither the hash grouping nor the sort before the window sums (~410 -> ~270 ms at 10M requests,
# load ~6). It covers what the query reads (index-only); the price is that a fold's update of ``n``, ``lo``
# or ``hi`` can no longer be a HOT update.
HOURLY_LATENCY_INDEX = ("postgres_latency_histogram_hourly_index", """
CREATE INDEX IF NOT EXISTS latency_histogram_hourly ON latency_histogram
    (metric, date_trunc('hour', hour), provider, bin) INCLUDE (hour, n, lo, hi);""")

# ``simulated`` became a key of the attempt rollup (DuckDB's ``014_attempt_rollup_simulated`` added the column),
# so the budget spend reads whole hours from it instead of the month's raw attempts (~290 ms on 2 December at
# 10M requests, growing with the day of the month). The unique key, the triggers' upsert and the rollup's rows
# change together: inserts wait (SHARE lock) while the rollup is re-keyed and refolded from the raw rows.
ATTEMPT_SIMULATED = ("postgres_attempt_rollup_simulated", f"""
LOCK TABLE attempts IN SHARE MODE;
DROP INDEX IF EXISTS attempt_rollup_key;
DELETE FROM attempt_rollup;
{_key("attempt_rollup")}
{_functions(hashed=True)}
{refold_sql(("attempt_rollup",))}
""")

# In order, after DuckDB's named migrations (append-only: a change to the triggers is a new entry here).
MIGRATIONS = [MIGRATION, FOLD_HASHED, PARENT_INDEX, HOURLY_LATENCY_INDEX, ATTEMPT_SIMULATED]


_FINE_GRAINS = {1: "date_trunc('minute', ts AT TIME ZONE 'UTC')",
                5: "date_bin('5 minutes', ts AT TIME ZONE 'UTC', TIMESTAMP '2000-01-01')",
                15: "date_bin('15 minutes', ts AT TIME ZONE 'UTC', TIMESTAMP '2000-01-01')"}


def build_fine(con: Any, *, start: datetime, end: datetime, minutes: int = 1) -> list[str]:
    """``rollup.build_fine`` on PostgreSQL: temporary minute-grain twins of the hourly rollups over ``[start, end)``.

    ``con`` is the call log's session (DuckDB-style ``$name`` parameters).

    A temporary table shadows the stored one of the same name (``pg_temp`` is searched first), so every query
    written for the rollups reads them unchanged until ``drop_fine``.
    """
    grain = _FINE_GRAINS[minutes]          # a closed set: KeyError for anything else
    made = []
    for table, (keys, _merge, source, sql) in _ROLLUPS.items():
        if keys[0] != "hour":
            continue
        rows = f"(SELECT * FROM {source} WHERE ts >= $lo AND ts < $hi)"
        con.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")
        con.execute(f"CREATE TEMP TABLE {table} AS {sql.format(time=grain, day=_DAY, rows=rows)}",
                    {"lo": start, "hi": end})
        made.append(table)
    return made


def drop_fine(con: Any, tables: list[str]) -> None:
    for table in tables:
        con.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")
