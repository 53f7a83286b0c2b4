"""Call-log ingest into PostgreSQL through COPY, beside DuckDB's writer, in one run (issue 17 §5, first line).

What is measured, each into a fresh log (a throwaway PostgreSQL cluster on this machine, ``fsync=off`` as
in the tests, and a DuckDB file in a temporary folder), with the same requests from the real router over
function-driven providers (20% faults, so there are fallbacks), cloned with fresh ids:

* ``writer``: ``record()`` for N requests (with their attempts), then ``flush()``: requests/s end to end,
  one thread recording while the writer thread commits batches (journal ``write``, the default);
* ``writer alone``: the same N recorded first with the writer held back, then one ``flush()``: the
  writer's own throughput (Arrow columns, CSV, COPY; DuckDB: Arrow insert).

PostgreSQL's inserts also fire the rollup triggers (``analytics/pg_rollup.py``) and DuckDB's writer folds
its rollups after each commit: both logs keep the dashboard's rollups current, as in production.

    PYTHONPATH=. python benchmarks/bench_pg_ingest.py [--requests 100000]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import Figure, PartContext  # noqa: E402

TARGET = 30_000


def _writer(log: object, results: list, *, alone: bool) -> dict:
    started = time.perf_counter()
    for result in results:
        log.record(result)  # type: ignore[attr-defined]
    recorded = time.perf_counter()
    log.flush()  # type: ignore[attr-defined]
    done = time.perf_counter()
    count = log.count_requests()  # type: ignore[attr-defined]
    log.close()  # type: ignore[attr-defined]
    assert count == len(results), (count, len(results))
    seconds = done - recorded if alone else done - started
    attempts = sum(len(r.attempts) for r in results)
    return {"requests": len(results), "attempts": attempts, "seconds": round(seconds, 3),
            "requests_per_s": round(len(results) / seconds), "rows_per_s": round((len(results) + attempts) / seconds),
            "record_us": round((recorded - started) / len(results) * 1e6, 2)}


def measure(n: int) -> dict[str, dict]:
    from benchmarks.bench_ingest import sample_results
    from taelio_core.calllog import DuckDBCallLog, PostgresCallLog
    from tests.servers import postgres_server
    results = sample_results(n)
    folder = Path(tempfile.mkdtemp(prefix="taelio-bench-pg-"))
    out: dict[str, dict] = {}
    try:
        with postgres_server() as server:
            for alone in (False, True):
                held = {"flush_interval": 3600, "max_batch": n + 1} if alone else {}
                name = "alone" if alone else "writer"
                url = server.new_database(f"ingest_{name}")
                pg = PostgresCallLog(url, spool=folder, **held)
                out[f"postgresql {name}"] = _writer(pg, results, alone=alone)
                duck = DuckDBCallLog(folder / f"{name}.duckdb", **held)
                out[f"duckdb {name}"] = _writer(duck, results, alone=alone)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def run(ctx: PartContext) -> list[Figure]:
    if shutil.which("initdb") is None and not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return [Figure(part="pg-ingest", name="(skipped)", value=None, unit="", note="PostgreSQL is not installed")]
    rows = measure(20_000 if ctx.quick else 100_000)
    ctx.raw["pg-ingest"] = rows
    pg, duck = rows["postgresql writer"], rows["duckdb writer"]
    pg_alone, duck_alone = rows["postgresql alone"], rows["duckdb alone"]
    return [
        Figure(part="pg-ingest", name="PostgreSQL writer (COPY), requests/s end to end", value=pg["requests_per_s"],
               unit="req/s", baseline=f"DuckDB writer {duck['requests_per_s']:,} req/s", target=f">= {TARGET:,} req/s",
               met=pg["requests_per_s"] >= TARGET,
               note=f"{pg['requests']:,} requests, {pg['attempts'] / pg['requests']:.2f} attempts each; "
                    f"rows/s {pg['rows_per_s']:,} (DuckDB {duck['rows_per_s']:,})"),
        Figure(part="pg-ingest", name="PostgreSQL writer alone (one flush of recorded rows), requests/s",
               value=pg_alone["requests_per_s"], unit="req/s",
               baseline=f"DuckDB writer alone {duck_alone['requests_per_s']:,} req/s"),
        Figure(part="pg-ingest", name="record() on the request path, PostgreSQL log", value=pg["record_us"],
               unit="us/request", baseline=f"DuckDB log {duck['record_us']:,} us"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    rows = measure(args.requests)
    for name, row in rows.items():
        print(f"{name:>20}: {row['requests_per_s']:>8,} requests/s ({row['rows_per_s']:,} rows/s, "
              f"record() {row['record_us']} us)")
    verdict = "meets" if rows["postgresql writer"]["requests_per_s"] >= TARGET else "misses"
    print(f"PostgreSQL end to end {verdict} the {TARGET:,}/s target")
    out = ROOT / "benchmarks" / "results" / "bench_pg_ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(timespec="seconds"), "results": rows,
                               "command": " ".join(["python", "benchmarks/bench_pg_ingest.py", *sys.argv[1:]])},
                              indent=2) + "\n")


if __name__ == "__main__":
    main()
