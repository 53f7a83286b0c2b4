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

Beside the wall-clock rates, each run reports CPU per request, which the machine's load barely moves (the
rates above halve when other work takes the cores): ``record()``'s own thread CPU, this process's CPU (the
recording thread, the writer thread and, for DuckDB, its engine), and for PostgreSQL the server's CPU (the
postmaster and every backend, from ``/proc``). Python holds the GIL for all but the engine's share, so
``1e6 / process_cpu_us`` is the most this process could ingest on one core, and ``1e6 / server_cpu_us`` the
most one PostgreSQL backend could take.

    PYTHONPATH=. python benchmarks/bench_pg_ingest.py [--requests 100000]
"""
from __future__ import annotations

import argparse
import json
import os
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


def server_cpu(data_dir: Path | None) -> float:
    """CPU seconds of a PostgreSQL cluster so far: the postmaster, its live children, and the children it reaped."""
    if data_dir is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue              # exited meanwhile: counted in the postmaster's reaped children
        pid = int(stat.parent.name)
        if pid == postmaster:
            total += sum(int(f) for f in fields[11:15])       # utime, stime, cutime, cstime
        elif int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def _writer(log: object, results: list, *, alone: bool, data_dir: Path | None = None) -> dict:
    server0, cpu0 = server_cpu(data_dir), time.process_time()
    started, thread0 = time.perf_counter(), time.thread_time()
    for result in results:
        log.record(result)  # type: ignore[attr-defined]
    recorded, record_cpu = time.perf_counter(), time.thread_time() - thread0
    if alone:
        server0, cpu0 = server_cpu(data_dir), time.process_time()
    log.flush()  # type: ignore[attr-defined]
    done = time.perf_counter()
    cpu, server = time.process_time() - cpu0, server_cpu(data_dir) - server0
    count = log.count_requests()  # type: ignore[attr-defined]
    log.close()  # type: ignore[attr-defined]
    assert count == len(results), (count, len(results))
    seconds = done - recorded if alone else done - started
    n = len(results)
    attempts = sum(len(r.attempts) for r in results)
    return {"requests": n, "attempts": attempts, "seconds": round(seconds, 3),
            "requests_per_s": round(n / seconds), "rows_per_s": round((n + attempts) / seconds),
            "record_us": round((recorded - started) / n * 1e6, 2), "record_cpu_us": round(record_cpu / n * 1e6, 2),
            "process_cpu_us": round(cpu / n * 1e6, 2), "server_cpu_us": round(server / n * 1e6, 2)}


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
                out[f"postgresql {name}"] = _writer(pg, results, alone=alone, data_dir=server.data_dir)
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
               unit="us/request", baseline=f"DuckDB log {duck['record_us']:,} us",
               note=f"its own thread's CPU {pg['record_cpu_us']} us (DuckDB log {duck['record_cpu_us']} us); the rest "
                    "is waiting for the GIL and the cores"),
        Figure(part="pg-ingest", name="CPU per request end to end, this process (record + writer)",
               value=pg["process_cpu_us"], unit="us", baseline=f"DuckDB {duck['process_cpu_us']} us",
               note=f"PostgreSQL server {pg['server_cpu_us']} us a request besides; writer alone: this process "
                    f"{pg_alone['process_cpu_us']} us, server {pg_alone['server_cpu_us']} us (DuckDB "
                    f"{duck_alone['process_cpu_us']} us)"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    rows = measure(args.requests)
    for name, row in rows.items():
        print(f"{name:>20}: {row['requests_per_s']:>8,} requests/s ({row['rows_per_s']:,} rows/s, "
              f"record() {row['record_us']} us, its CPU {row['record_cpu_us']} us; CPU per request: process "
              f"{row['process_cpu_us']} us, server {row['server_cpu_us']} us)")
    verdict = "meets" if rows["postgresql writer"]["requests_per_s"] >= TARGET else "misses"
    print(f"PostgreSQL end to end {verdict} the {TARGET:,}/s target")
    out = ROOT / "benchmarks" / "results" / "bench_pg_ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(timespec="seconds"), "results": rows,
                               "command": " ".join(["python", "benchmarks/bench_pg_ingest.py", *sys.argv[1:]])},
                              indent=2) + "\n")


if __name__ == "__main__":
    main()
