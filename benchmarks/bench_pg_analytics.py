"""Every dashboard query on PostgreSQL at 1M and 10M requests, warm, beside the same query on DuckDB.

The logs are the analytics benchmark's DuckDB files (``benchmarks/results/bench-<N>k.duckdb``, made by
``bench_analytics.fill``), copied into a throwaway PostgreSQL server (or ``--url``) with ``COPY`` in
500k-row batches; every batch fires the rollup triggers (``taelio_core/analytics/pg_rollup.py``) as a
writer's batch would, so the load time includes folding the rollups. Then each query that
``bench_analytics`` times (every public analytics function taking ``(log, filters)``, plus provider
health, budgets, request detail and the two page reads) runs on both backends with the default
filters (all time): ``warm`` is the median of ``--warm`` runs after a first one.

    PYTHONPATH=. python benchmarks/bench_pg_analytics.py [--sizes 1000000,10000000] [--warm 5] [--url postgresql://...]
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_analytics  # noqa: E402
from benchmarks.harness import Figure, PartContext  # noqa: E402

TARGET_WARM_MS = 500.0
BATCH = 500_000


def open_postgres_log(url: str) -> Any:
    """The PostgreSQL call log for ``url``: opening it applies the migrations (tables, rollup triggers)."""
    from taelio_core.calllog.postgres import PostgresCallLog
    return PostgresCallLog(url, spool=bench_analytics.RESULTS / "pg-spool")


def load(duck: Path, url: str) -> tuple[int, float]:
    """Copy every request and attempt of ``duck`` into the (migrated) database at ``url``; rows and seconds."""
    import duckdb
    import psycopg
    import pyarrow.csv as pacsv

    src = duckdb.connect(str(duck), read_only=True)
    rows, t0 = 0, time.perf_counter()
    with psycopg.connect(url) as con, con.cursor() as cur:
        for table in ("requests", "attempts"):
            cols = [r[0] for r in src.execute(f"DESCRIBE {table}").fetchall()]
            select = ", ".join("cost_usd::VARCHAR AS cost_usd" if c == "cost_usd" else c for c in cols)
            reader = src.execute(f"SELECT {select} FROM {table}").to_arrow_reader(BATCH)
            for batch in reader:
                buf = io.BytesIO()
                pacsv.write_csv(batch, buf, pacsv.WriteOptions(include_header=False))
                with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN (FORMAT csv)") as copy:
                    copy.write(buf.getvalue())
                con.commit()             # one batch, one transaction: the triggers fold it
                rows += batch.num_rows
    src.close()
    return rows, time.perf_counter() - t0


def timed_ms(fn: Any, *args: Any) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t0) * 1000.0


def measure(requests: int, url: str, warm_runs: int, ctx: PartContext) -> list[Figure]:
    from taelio_core.analytics import Filters, health_view
    from taelio_core.calllog import DuckDBCallLog

    duck_path = bench_analytics.fill(requests, ctx)
    label = f"{requests / 1e6:g}M"
    pg = open_postgres_log(url)
    figures = []
    try:
        have = pg.count_requests()
        if have < requests:
            rows, seconds = load(duck_path, url)
            figures.append(Figure(part="pg analytics", name=f"load {label} requests + attempts by COPY, rollups folded",
                                  value=rows / seconds, unit="rows/s", note=f"{rows:,} rows in {seconds:.0f} s"))
        duck = DuckDBCallLog(duck_path)
        try:
            filters = Filters()
            named = {**bench_analytics.queries(), **bench_analytics.extra_queries(duck)}
            for name in [n for n in named if n.startswith("page read: health_view")]:
                named[name] = lambda lg, f: health_view(lg, f, now=datetime.now(UTC))    # it takes ``now``
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
        finally:
            duck.close()
    finally:
        pg.close()
    return figures


def run(ctx: PartContext, sizes: tuple[int, ...] = (1_000_000,), warm_runs: int = 5, url: str = "") -> list[Figure]:
    with ExitStack() as stack:
        if not url:
            from tests.servers import postgres_server
            url = stack.enter_context(postgres_server()).new_database("bench_pg_analytics")
        figures: list[Figure] = []
        for requests in sizes:
            figures += measure(requests, url, warm_runs, ctx)
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
