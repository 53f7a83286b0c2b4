"""Call-log ingest, side by side in one run: the batched writer against row-at-a-time INSERT.

What is measured, each into a fresh DuckDB file:

* ``writer``: ``DuckDBCallLog.record()`` for N requests (with their attempts), then ``flush()``:
  requests/s end to end, and the cost of ``record()`` alone on the request path, for each
  journal mode (``write``, the default; ``off``; ``fsync``, on fewer requests since it pays a
  disk flush per request);
* ``row-at-a-time``: one ``INSERT`` per request and per attempt, autocommit, as a naive logger would.

The requests come from the real router over function-driven providers (20% faults, so
there are fallbacks), cloned with fresh ids. Results are printed as a table and written to
``benchmarks/results/bench_ingest.json``. Run from the repository root:

    PYTHONPATH=. python benchmarks/bench_ingest.py [--requests 200000]
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


def bench_writer(folder: Path, results: list, journal: str) -> dict:
    log = DuckDBCallLog(folder / f"writer-{journal}.duckdb", journal=journal)
    started = time.perf_counter()
    for result in results:
        log.record(result)
    recorded = time.perf_counter()
    log.flush()
    done = time.perf_counter()
    count = log.count_requests()
    log.close()
    assert count == len(results), (count, len(results))
    attempts = sum(len(r.attempts) for r in results)
    seconds = done - started
    return {"method": f"writer (journal={journal})", "requests": len(results), "attempts": attempts,
            "seconds": round(seconds, 3), "requests_per_s": round(len(results) / seconds),
            "rows_per_s": round((len(results) + attempts) / seconds),
            "record_us": round((recorded - started) / len(results) * 1e6, 2)}


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
    attempts = sum(len(r.attempts) for r in results)
    return {"method": "row-at-a-time INSERT", "requests": len(results), "attempts": attempts,
            "seconds": round(seconds, 3), "requests_per_s": round(len(results) / seconds),
            "rows_per_s": round((len(results) + attempts) / seconds),
            "record_us": round(seconds / len(results) * 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000, help="requests through the writer")
    parser.add_argument("--fsync-requests", type=int, default=2_000)
    parser.add_argument("--row-requests", type=int, default=2_000, help="requests inserted row by row")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="taelio-bench-"))
    try:
        results = sample_results(args.requests)
        rows = [
            bench_writer(folder, results, "write"),
            bench_writer(folder, results, "off"),
            bench_writer(folder, results[:args.fsync_requests], "fsync"),
            bench_row_at_a_time(folder, results[:args.row_requests]),
        ]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    baseline = rows[-1]["requests_per_s"]
    for row in rows:
        row["x_row_at_a_time"] = round(row["requests_per_s"] / baseline, 1)
    header = ["method", "requests", "attempts", "seconds", "requests_per_s", "rows_per_s", "record_us",
              "x_row_at_a_time"]
    widths = [max(len(h), *(len(f"{r[h]:,}" if isinstance(r[h], int) else str(r[h])) for r in rows)) for h in header]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join((f"{r[h]:,}" if isinstance(r[h], int) else str(r[h])).rjust(w) for h, w in zip(header, widths)))
    target = 100_000
    verdict = "meets" if rows[0]["requests_per_s"] >= target else "misses"
    print(f"\nwriter (default journal) {rows[0]['requests_per_s']:,} requests/s: {verdict} the {target:,}/s target")
    out = ROOT / "benchmarks" / "results" / "bench_ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(timespec="seconds"), "python": sys.version.split()[0],
                               "duckdb": duckdb.__version__, "machine": platform.machine(), "target_requests_per_s":
                               target, "results": rows}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
