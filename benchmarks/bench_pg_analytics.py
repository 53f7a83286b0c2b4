"""Every dashboard query on PostgreSQL at 1M and 10M requests, warm, beside the same query on DuckDB.

The logs are the analytics benchmark's DuckDB files (``benchmarks/results/bench-<N>k.duckdb``, made by
``bench_analytics.fill``), bulk-loaded into a throwaway PostgreSQL server (or ``--url``): fold triggers
off and raw-table indexes dropped, one ``COPY`` per table, then the indexes rebuilt, the rollups built
once and the triggers on again (``load``; the schema after is checked to equal the migrations'). The
product's own write path, with its per-batch folds, is timed by ``bench_pg_ingest``. Then each query that
``bench_analytics`` times (every public analytics function taking ``(log, filters)``, plus provider
health, budgets, request detail and the two page reads) runs on both backends with the default
filters (all time): ``warm`` is the median of ``--warm`` runs after a first one. The budget queries are
also timed on PostgreSQL early and late in a month beside the raw-attempts query they replaced
(``bench_analytics.budget_figures``).

    PYTHONPATH=. python benchmarks/bench_pg_analytics.py [--sizes 1000000,10000000] [--warm 5] [--url postgresql://...]
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_analytics  # noqa: E402
from benchmarks.harness import Figure, PartContext  # noqa: E402

TARGET_WARM_MS = 500.0
BATCH = 200_000
STREAMS = 2          # concurrent COPYs per table: PostgreSQL parsing the rows is the bottleneck


def open_postgres_log(url: str) -> Any:
    """The PostgreSQL call log for ``url``: opening it applies the migrations (tables, rollup triggers)."""
    from taelio_core.calllog.postgres import PostgresCallLog
    return PostgresCallLog(url, spool=bench_analytics.RESULTS / "pg-spool")


# The raw tables whose indexes and fold triggers are set aside during the bulk load.
RAW = ("requests", "attempts")


def schema_of(cur: Any) -> list[tuple[str, ...]]:
    """The raw tables' indexes, constraints and enabled triggers, as the catalog spells them (to compare)."""
    cur.execute("""
        SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY(%(t)s)
        UNION ALL
        SELECT 'constraint', conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid::regclass::text = ANY(%(t)s)
        UNION ALL
        SELECT 'trigger', tgname, tgenabled::text FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text = ANY(%(t)s)
        ORDER BY 1, 2""", {"t": list(RAW)})
    return [tuple(r) for r in cur.fetchall()]


def run_sql(url: str, statements: list[str]) -> None:
    """``statements`` in one transaction of a session of their own, with room to sort and hash in memory."""
    import psycopg
    with psycopg.connect(url) as con:
        con.execute("SET synchronous_commit = off")
        con.execute("SET maintenance_work_mem = '512MB'")
        con.execute("SET work_mem = '512MB'")
        for sql in statements:
            con.execute(sql)


def copy_part(src: Any, url: str, table: str, part: int, parts: int) -> int:
    """``COPY`` the rows of DuckDB's ``table`` whose row id is ``part`` modulo ``parts``, on a connection of its own."""
    import psycopg
    import pyarrow.csv as pacsv

    cols = [r[0] for r in src.execute(f"DESCRIBE {table}").fetchall()]
    select = ", ".join("cost_usd::VARCHAR AS cost_usd" if c == "cost_usd" else c for c in cols)
    reader = src.sql(f"SELECT {select} FROM {table} WHERE rowid % {parts} = {part}").to_arrow_reader(BATCH)
    rows = 0
    with psycopg.connect(url) as con, con.cursor() as cur:
        cur.execute("SET synchronous_commit = off")
        with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN (FORMAT csv)") as copy:
            for batch in reader:
                buf = io.BytesIO()
                pacsv.write_csv(batch, buf, pacsv.WriteOptions(include_header=False))
                copy.write(buf.getbuffer())
                rows += batch.num_rows
    src.close()
    return rows


def load(duck: Path, url: str) -> tuple[int, float, dict[str, float]]:
    """Copy every request and attempt of ``duck`` into the (migrated, empty) database at ``url``.

    Benchmark setup, not the product's write path (``bench_pg_ingest`` times that): the fold triggers are
    disabled and the raw tables' keys and indexes dropped, the rows arrive through ``STREAMS`` concurrent
    ``COPY``s per table (CSV from the DuckDB file's Arrow batches, written as they are read), then the keys and indexes are built again from
    the definitions read before dropping them, the rollups are built once (``pg_rollup.refold_sql``), the
    triggers enabled, and the tables vacuumed and analyzed (what autovacuum would do on a live database).
    The catalog's view of the raw tables afterwards must equal the one before: the same schema as the
    product's migrations make. Returns rows, seconds and seconds per step.
    """
    import duckdb
    import psycopg

    from taelio_core.analytics.pg_rollup import ROLLUP_TABLES, refold_sql

    src = duckdb.connect(str(duck), read_only=True)
    rows, steps, t0 = 0, {}, time.perf_counter()

    def step(name: str, since: float) -> float:
        now = time.perf_counter()
        steps[name] = round(now - since, 1)
        return now

    with psycopg.connect(url) as con, con.cursor() as cur:
        cur.execute("SET synchronous_commit = off")
        cur.execute("SET maintenance_work_mem = '1GB'")
        cur.execute("SET work_mem = '1GB'")
        before = schema_of(cur)
        cur.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY(%s) AND "
                    "indexname NOT IN (SELECT conname FROM pg_constraint)", [list(RAW)])
        indexes = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid::regclass::text = ANY(%s)", [list(RAW)])
        constraints = cur.fetchall()
        cur.execute("TRUNCATE " + ", ".join(RAW))          # a load cut short before: start again (rollups emptied)
        for table in RAW:
            cur.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for (table, name, _definition) in constraints:
            cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        for definition in indexes:
            cur.execute("DROP INDEX " + definition.split(" ON ")[0].split()[-1])
        con.commit()
        t = time.perf_counter()
        parts = [(table, k, STREAMS) for table in RAW for k in range(STREAMS)]
        with ThreadPoolExecutor(len(parts)) as pool:
            rows = sum(pool.map(lambda part: copy_part(src.cursor(), url, *part), parts))
        t = step("copy", t)
        with ThreadPoolExecutor(len(RAW)) as pool:        # one session per table: ALTER TABLE locks it whole
            list(pool.map(lambda table: run_sql(url, [f"ALTER TABLE {tb} ADD CONSTRAINT {name} {definition}"
                                                      for (tb, name, definition) in constraints if tb == table]
                                                + [d for d in indexes if f" ON public.{table} " in d]), RAW))
        t = step("keys and indexes", t)
        with ThreadPoolExecutor(len(ROLLUP_TABLES)) as pool:
            list(pool.map(lambda rollup: run_sql(url, [refold_sql((rollup,))]), ROLLUP_TABLES))
        for table in RAW:
            cur.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        con.commit()
        t = step("rollups built once", t)
        after = schema_of(cur)
        if after != before:
            raise RuntimeError(f"the bulk load left a schema unlike the migrations': {before} != {after}")
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("VACUUM (ANALYZE)")
        step("vacuum analyze", t)
    src.close()
    return rows, time.perf_counter() - t0, steps


def timed_ms(fn: Any, *args: Any) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t0) * 1000.0


def measure(requests: int, url: str, warm_runs: int, ctx: PartContext) -> list[Figure]:
    from taelio_core.analytics import Filters, health_view, latency_over_time
    from taelio_core.calllog import DuckDBCallLog

    duck_path = bench_analytics.fill(requests, ctx)
    label = f"{requests / 1e6:g}M"
    pg = open_postgres_log(url)
    figures = []
    try:
        have = pg.count_requests()
        if have < requests:
            rows, seconds, steps = load(duck_path, url)
            figures.append(Figure(part="pg analytics",
                                  name=f"bulk load {label} requests + attempts (COPY, then indexes, rollups built once)",
                                  value=rows / seconds, unit="rows/s",
                                  note=f"{rows:,} rows in {seconds:.0f} s: "
                                       + ", ".join(f"{k} {v:g} s" for k, v in steps.items())))
        duck = DuckDBCallLog(duck_path)
        try:
            filters = Filters()
            named = {**bench_analytics.queries(), **bench_analytics.extra_queries(duck)}
            for name in [n for n in named if n.startswith("page read: health_view")]:
                named[name] = lambda lg, f: health_view(lg, f, now=datetime.now(UTC))    # it takes ``now``
            # The Health page asks for hourly buckets over 30 days (its axis), the heaviest percentile query.
            named["latency_over_time, hourly (the Health page's)"] = (
                lambda lg, f: latency_over_time(lg, f, bucket="hour"))
            for name, fn in named.items():
                if ctx.left() < 5:
                    break
                try:
                    timed_ms(fn, pg, filters)
                    warm = statistics.median(timed_ms(fn, pg, filters) for _ in range(warm_runs))
                except Exception as e:  # noqa: BLE001 - one query's failure must not hide the others' timings
                    figures.append(Figure(part="pg analytics", name=f"{name}, {label}", value=None, unit="ms",
                                          note=f"failed: {type(e).__name__}: {str(e)[:160]}"))
                    continue
                timed_ms(fn, duck, filters)
                duck_warm = statistics.median(timed_ms(fn, duck, filters) for _ in range(warm_runs))
                page = name.startswith("page read")     # several queries: the goal is per query
                figures.append(Figure(part="pg analytics", name=f"{name} warm, PostgreSQL {label}", value=warm,
                                      unit="ms", baseline=f"DuckDB {duck_warm:.0f} ms",
                                      target="" if page else f"<= {TARGET_WARM_MS:g} ms",
                                      met=None if page else warm <= TARGET_WARM_MS))
            if ctx.left() > 5:      # the budget queries early and late in a month, rollup beside raw attempts
                figures += [replace(f, part="pg analytics")
                            for f in bench_analytics.budget_figures(pg, f"PostgreSQL {label}", warm_runs)]
        finally:
            duck.close()
    finally:
        pg.close()
    return figures


def run(ctx: PartContext, sizes: tuple[int, ...] = (), warm_runs: int = 5, url: str = "") -> list[Figure]:
    """``python -m benchmarks --only pg-analytics``: 1M requests on a throwaway server, unless the environment says.

    ``TAELIO_BENCH_PG_SIZES`` (``1000000,10000000``) and ``TAELIO_BENCH_PG_URLS`` (one database URL per size,
    comma-separated) measure databases already loaded (a 10M load took ~11 minutes on 2 busy cores); a database
    holding fewer requests than its size is emptied and loaded again.
    """
    import os
    sizes = sizes or tuple(int(s) for s in os.environ.get("TAELIO_BENCH_PG_SIZES", "1000000").split(","))
    urls = [u for u in os.environ.get("TAELIO_BENCH_PG_URLS", url).split(",") if u]
    urls = urls * len(sizes) if len(urls) == 1 else urls      # one database for every size: reloaded for each
    if urls and len(urls) != len(sizes):
        raise ValueError(f"TAELIO_BENCH_PG_URLS names {len(urls)} databases for {len(sizes)} sizes")
    with ExitStack() as stack:
        if not urls:
            from tests.servers import postgres_server
            urls = [stack.enter_context(postgres_server()).new_database("bench_pg_analytics")] * len(sizes)
        figures: list[Figure] = []
        for requests, at in zip(sizes, urls):
            figures += measure(requests, at, warm_runs, ctx)
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--url", default="", help="an empty PostgreSQL database (default: a throwaway server)")
    parser.add_argument("--seconds", type=float, default=3600.0)
    args = parser.parse_args()
    ctx = PartContext(quick=False, deadline=time.monotonic() + args.seconds)
    for f in run(ctx, tuple(int(s) for s in args.sizes.split(",")), args.warm, args.url):
        print(" | ".join(f.cells()), f.note, flush=True)


if __name__ == "__main__":
    main()
