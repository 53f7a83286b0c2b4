"""Call-log ingest, side by side in one run: the batched writer against row-at-a-time INSERT.

What is measured, each into a fresh DuckDB file:

* ``writer``: ``DuckDBCallLog.record()`` for N requests (with their attempts), then ``flush()``:
  requests/s end to end (one thread recording while the writer thread writes), for each journal
  mode (``write``, the default; ``off``; ``fsync``, on fewer requests since it pays a disk flush
  per request), and ``record()``'s cost meanwhile;
* ``writer alone``: the same N requests recorded first with the writer held back, then one
  ``flush()``: the writer's own throughput (Arrow columns, hashes, insert), and ``record()``'s
  cost with nothing competing for the GIL (the request path itself);
* ``row-at-a-time``: one ``INSERT`` per request and per attempt, autocommit, as a naive logger would;
* ``low rate``: a steady 50 requests/s into a log already holding ``--prefill`` demo requests, for
  ``--low-seconds``: the process CPU per request beyond ``record()`` (the writer and DuckDB), with
  the writer holding its connection (the default) and with it opening the file for every flush
  (``idle_release=0`` and a flush every 0.2 s: the behaviour before), and held with a 0.2 s flush
  (the two changes apart).

The requests come from the real router over function-driven providers (20% faults, so
there are fallbacks), cloned with fresh ids. Results are printed as a table and written to
``benchmarks/results/bench_ingest.json``. Run from the repository root:

    PYTHONPATH=. python benchmarks/bench_ingest.py [--requests 200000] [--prefill 200000]
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from taelio_core.calllog import DuckDBCallLog  # noqa: E402
from taelio_core.calllog.rows import ATTEMPT_COLUMNS, REQUEST_COLUMNS, attempt_rows, request_row  # noqa: E402
from taelio_core.calllog.schema import migrate  # noqa: E402
from tests.calllog.traffic import finished_results  # noqa: E402


def sample_results(n: int, pool: int = 2000) -> list:
    base = finished_results(min(n, pool), seed=1)
    return [replace(base[i % len(base)], request_id=uuid.uuid4().hex) for i in range(n)]


def _row(method: str, results: list, seconds: float, record_s: float) -> dict:
    attempts = sum(len(r.attempts) for r in results)
    return {"method": method, "requests": len(results), "attempts": attempts, "seconds": round(seconds, 3),
            "requests_per_s": round(len(results) / seconds), "rows_per_s": round((len(results) + attempts) / seconds),
            "record_us": round(record_s / len(results) * 1e6, 2)}


def bench_writer(folder: Path, results: list, journal: str = "write", *, alone: bool = False) -> dict:
    """Record ``results`` then flush. ``alone``: hold the writer back while recording, and time the flush alone."""
    held_back = {"flush_interval": 3600, "max_batch": len(results) + 1} if alone else {}
    log = DuckDBCallLog(folder / f"writer-{journal}{'-alone' if alone else ''}.duckdb", journal=journal, **held_back)
    started = time.perf_counter()
    for result in results:
        log.record(result)
    recorded = time.perf_counter()
    log.flush()
    done = time.perf_counter()
    count = log.count_requests()
    log.close()
    assert count == len(results), (count, len(results))
    if alone:
        return _row("writer alone (flush of recorded rows)", results, done - recorded, recorded - started)
    return _row(f"writer (journal={journal})", results, done - started, recorded - started)


def bench_row_at_a_time(folder: Path, results: list) -> dict:
    con = duckdb.connect(str(folder / "rows.duckdb"))
    migrate(con)
    req_sql = f"INSERT INTO requests ({', '.join(REQUEST_COLUMNS)}) VALUES ({', '.join('?' * len(REQUEST_COLUMNS))})"
    att_sql = f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES ({', '.join('?' * len(ATTEMPT_COLUMNS))})"
    started = time.perf_counter()
    for result in results:
        row = request_row(result)
        con.execute(req_sql, [row[c] for c in REQUEST_COLUMNS])
        for attempt in attempt_rows(result):
            con.execute(att_sql, [attempt[c] for c in ATTEMPT_COLUMNS])
    seconds = time.perf_counter() - started
    count = con.execute("SELECT count(*) FROM requests").fetchone()[0]
    con.close()
    assert count == len(results)
    return _row("row-at-a-time INSERT", results, seconds, seconds)


def prefilled(folder: Path, requests: int) -> Path:
    from benchmarks.bulk_log import generate_bulk_log
    from taelio_core.config.policy_parser import load_policy
    path = folder / "prefilled.duckdb"
    log = DuckDBCallLog(path)
    generate_bulk_log(log, load_policy("seed"), days=7, requests=requests)
    log.close()
    return path


def bench_low_rate(folder: Path, template: Path, results: list, *, idle_release: float, flush_interval: float,
                   rate: float, seconds: float) -> dict:
    db = folder / f"low-{idle_release:g}-{flush_interval:g}.duckdb"
    shutil.copy(template, db)
    log = DuckDBCallLog(db, idle_release=idle_release, flush_interval=flush_interval)
    n = int(rate * seconds)
    record_cpu = 0.0
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i, result in enumerate(results[:n]):
        c = time.thread_time()
        log.record(result)
        record_cpu += time.thread_time() - c
        pause = t0 + (i + 1) / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    log.flush()
    cpu = time.process_time() - cpu0
    commits, opens = log.commits, log.opens
    log.close()
    mode = f"held connection, flush every {flush_interval:g} s" if idle_release > 0 else \
        f"open per flush every {flush_interval:g} s (before)"
    return {"method": f"{rate:g} req/s, {mode}", "requests": n, "commits": commits, "opens": opens,
            "record_us": round(record_cpu / n * 1e6, 1),
            "writer_cpu_ms_per_request": round((cpu - record_cpu) / n * 1e3, 3)}


def _print(rows: list[dict], header: list[str]) -> None:
    def cell(value: object) -> str:
        return f"{value:,}" if isinstance(value, int) else str(value)
    widths = [max(len(h), *(len(cell(r.get(h, ""))) for r in rows)) for h in header]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(cell(r.get(h, "")).rjust(w) for h, w in zip(header, widths)))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000, help="requests through the writer")
    parser.add_argument("--fsync-requests", type=int, default=2_000)
    parser.add_argument("--row-requests", type=int, default=2_000, help="requests inserted row by row")
    parser.add_argument("--prefill", type=int, default=200_000, help="demo requests already in the low-rate log")
    parser.add_argument("--low-rate", type=float, default=50.0, help="requests/s of the low-rate run")
    parser.add_argument("--low-seconds", type=float, default=5.0, help="length of each low-rate run")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="taelio-bench-"))
    try:
        results = sample_results(max(args.requests, int(args.low_rate * args.low_seconds)))
        rows = [
            bench_writer(folder, results[:args.requests], "write"),
            bench_writer(folder, results[:args.requests], alone=True),
            bench_writer(folder, results[:args.requests], "off"),
            bench_writer(folder, results[:args.fsync_requests], "fsync"),
            bench_row_at_a_time(folder, results[:args.row_requests]),
        ]
        template = prefilled(folder, args.prefill)
        low = [bench_low_rate(folder, template, results, idle_release=held, flush_interval=interval,
                              rate=args.low_rate, seconds=args.low_seconds)
               for held, interval in ((1.0, 0.5), (1.0, 0.2), (0.0, 0.2))]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    baseline = rows[-1]["requests_per_s"]
    for row in rows:
        row["x_row_at_a_time"] = round(row["requests_per_s"] / baseline, 1)
    _print(rows, ["method", "requests", "attempts", "seconds", "requests_per_s", "rows_per_s", "record_us",
                  "x_row_at_a_time"])
    _print(low, ["method", "requests", "commits", "opens", "record_us", "writer_cpu_ms_per_request"])
    target = 100_000
    for row in rows[:2]:
        verdict = "meets" if row["requests_per_s"] >= target else "misses"
        print(f"{row['method']}: {row['requests_per_s']:,} requests/s: {verdict} the {target:,}/s target")
    ratio = low[-1]["writer_cpu_ms_per_request"] / max(low[0]["writer_cpu_ms_per_request"], 1e-9)
    print(f"at {args.low_rate:g} req/s on a {args.prefill:,}-request log, the writer before (open per flush every "
          f"0.2 s) cost {ratio:.1f}x the CPU per request of now (held, every 0.5 s)")
    out = ROOT / "benchmarks" / "results" / "bench_ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    out.write_text(json.dumps({"when": when, "python": sys.version.split()[0],
                               "duckdb": duckdb.__version__, "machine": platform.machine(), "target_requests_per_s":
                               target, "command": " ".join(["python", "benchmarks/bench_ingest.py", *sys.argv[1:]]),
                               "prefill": args.prefill, "results": rows, "low_rate": low}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
