"""Dashboard reads while traffic arrives (issue 15 §4), side by side in one run, on the same files.

* **File size per million requests**, three ways: the benchmarks' bulk log
  (``bench_analytics``' cached ``bench-<N>k.duckdb``, ``benchmarks.bulk_log``)
  as written, the same file once the rollups are built, and a fresh log
  written through the real writer (``record()`` + ``flush()`` of router
  results, as ``bench_ingest`` does). Sizes are of the closed (checkpointed)
  file; the writer's log is small, so its fixed part (schema, empty tables) is
  measured on an empty log and taken off before scaling.
* **Calls search** at each size: the first search the Calls page runs (``search_window`` from the
  rollup, then the search in that newest slice) beside the whole-range search ("Search everything") and
  the search before issue 15 (one
  ``ILIKE ? ESCAPE`` over seven columns, reproduced here as SQL, page + count)
  beside ``list_requests(search=...)`` now, for a word a tenth of the prompts
  hold, a word no request holds, a provider's name, and the first 12
  characters of a request id.
* **First dashboard read after new traffic** at the largest size: one query
  (``headline``) and the Costs page's read (``costs_view``: 9 queries, one
  open) right after 1 request and after 1,000 requests arrive through
  ``record()`` + ``flush()``, with the
  writer folding the rollups after its commit (now) and with reads folding
  them (before: ``fold_rollups=False``), each beside the same read with no new
  traffic. The writer's ``flush()`` time is shown too: the fold moved there.

    PYTHONPATH=. python benchmarks/bench_reads.py [--sizes 1000000,10000000] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import Figure, PartContext  # noqa: E402

SEARCH_TARGET_MS = 300.0
FIRST_READ_TARGET_MS = 80.0
# The search before issue 15 (taelio_core/analytics/calls.py at 12943bf), as SQL: the baseline.
_OLD_COLUMNS = ("prompt", "output", "request_id", "error", "parent_id", "provider", "model")


def _ms(fn, *args, **kwargs) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return (time.perf_counter() - t0) * 1000.0


def _old_search(log, term: str) -> None:  # noqa: ANN001
    from taelio_core.analytics.calls import _COLS

    pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    where = "WHERE (" + " OR ".join(f"{c} ILIKE ? ESCAPE '\\'" for c in _OLD_COLUMNS) + ")"
    params = [pattern] * len(_OLD_COLUMNS)
    log.query(f"SELECT {_COLS} FROM requests {where} ORDER BY ts DESC, request_id LIMIT 200 OFFSET 0", params)
    log.query(f"SELECT count(*) AS n FROM requests {where}", params)


def file_sizes(sizes: tuple[int, ...], ctx: PartContext, writer_requests: int) -> list[Figure]:
    from benchmarks.bench_analytics import fill
    from benchmarks.bench_ingest import sample_results
    from taelio_core.analytics import rollup
    from taelio_core.calllog import DuckDBCallLog

    figures = []
    for requests in sizes:
        path = fill(requests, ctx)
        with DuckDBCallLog(path, fold_rollups=False) as log:
            have = log.count_requests()
        raw_mb = path.stat().st_size / 1e6
        with DuckDBCallLog(path) as log:
            log.write(rollup.refresh)
        rolled_mb = path.stat().st_size / 1e6
        label = f"{have / 1e6:g}M"
        figures.append(Figure(part="reads", name=f"file size per million requests, bulk log ({label})",
                              value=rolled_mb / (have / 1e6), unit="MB",
                              baseline=f"{raw_mb / (have / 1e6):.1f} MB before this run built the rollups",
                              note=f"{rolled_mb:,.0f} MB in all, {have:,} requests (benchmarks/bulk_log)"))
    with tempfile.TemporaryDirectory() as folder:
        empty, full = Path(folder) / "empty.duckdb", Path(folder) / "writer.duckdb"
        DuckDBCallLog(empty, journal="off").close()
        results = sample_results(writer_requests)
        with DuckDBCallLog(full, journal="off") as log:
            for result in results:
                log.record(result)
            log.flush()
        fixed_mb, full_mb = empty.stat().st_size / 1e6, full.stat().st_size / 1e6
        attempts = sum(len(r.attempts) for r in results) / len(results)
        figures.append(Figure(part="reads", name="file size per million requests, real writer",
                              value=(full_mb - fixed_mb) / (writer_requests / 1e6), unit="MB",
                              baseline=f"{full_mb / (writer_requests / 1e6):.1f} MB with the empty log's "
                                       f"{fixed_mb:.1f} MB",
                              note=f"{writer_requests:,} router results ({attempts:.2f} attempts each, prompt "
                                   "and output stored) through record() + flush(), rollups folded"))
    return figures


def search(requests: int, ctx: PartContext, runs: int) -> list[Figure]:
    from benchmarks.bench_analytics import fill
    from taelio_core import analytics as A
    from taelio_core.calllog import DuckDBCallLog

    path = fill(requests, ctx)
    figures = []
    with DuckDBCallLog(path) as log:
        label = f"{log.count_requests() / 1e6:g}M"
        some_id = log.query("SELECT request_id FROM requests ORDER BY ts DESC LIMIT 1").iloc[0, 0]
        terms = {"a word in 1 prompt in 8": "lighthouse", "a word no request holds": "zqxjv-none",
                 "a provider's name": "gemini", "a request id's first 12 characters": some_id[:12]}
        A.list_requests(log, A.Filters())          # rollups current, file in the page cache
        for what, term in terms.items():
            if ctx.left() < 30:
                break
            new = [_ms(A.list_requests, log, A.Filters(), search=term) for _ in range(runs)]
            old_runs = 1 if requests >= 10_000_000 else max(1, runs // 2)    # 4-90 s each at 10M
            old = [_ms(_old_search, log, term) for _ in range(old_runs)]
            first = [_ms(_first_search, log, term) for _ in range(runs)]
            matched = A.list_requests(log, A.Filters(), search=term)[1]
            window = A.search_window(log, A.Filters())
            in_window = A.list_requests(log, A.Filters(), search=term, search_since=window.since)[1]
            since = f"{window.since:%Y-%m-%d %H:%M} on" if window.since else "the whole range"
            target = f"<= {SEARCH_TARGET_MS:g} ms" if requests >= 10_000_000 else ""
            value, full = statistics.median(first), statistics.median(new)
            figures.append(Figure(part="reads", name=f"Calls search, first window, {what}, {label}", value=value,
                                  unit="ms", baseline=f"whole range {full:,.0f} ms ({full / value:.0f}x); before "
                                                      f"issue 15 {statistics.median(old):,.0f} ms",
                                  target=target, met=(value <= SEARCH_TARGET_MS) if target else None,
                                  note=f"window + page of 200 + count over the newest {window.requests:,} requests "
                                       f"({since}): {in_window:,} matches there, "
                                       f"{matched:,} in the whole range; median of {runs} "
                                       f"(before: of {old_runs})"))
            figures.append(Figure(part="reads", name=f"Calls search, whole range, {what}, {label}", value=full,
                                  unit="ms", baseline=f"before {statistics.median(old):,.0f} ms "
                                                      f"({statistics.median(old) / full:.0f}x)",
                                  note=f"{matched:,} matches; page of 200 + count; median of {runs} "
                                       f"(before: of {old_runs}); 'Search everything' on the page"))
    return figures


def _first_search(log, term: str) -> None:  # noqa: ANN001
    """What the Calls page runs for a new search: the window from the rollup, then the search inside it."""
    from taelio_core import analytics as A

    window = A.search_window(log, A.Filters())
    A.list_requests(log, A.Filters(), search=term, search_since=window.since)


def first_read(requests: int, ctx: PartContext, rounds: int) -> list[Figure]:
    from benchmarks.bench_analytics import fill
    from benchmarks.bench_ingest import sample_results
    from taelio_core import analytics as A
    from taelio_core.calllog import DuckDBCallLog
    from taelio_core.config.policy_parser import load_policy

    path = fill(requests, ctx)
    budgets = load_policy(None).model.budgets
    pool = sample_results(2000)
    label = f"{requests / 1e6:g}M"
    reads = {"headline (one query)": lambda log: A.headline(log, A.Filters()),
             "Costs page (costs_view, 9 queries)":
                 lambda log: A.costs_view(log, A.Filters(), budgets, now=datetime.now(UTC))}
    figures = []
    for (what, read), burst in ((r, b) for r in reads.items() for b in (1, 1000)):
        med: dict[bool, dict[str, float]] = {}
        for writer_folds in (False, True):
            times: dict[str, list[float]] = {"first": [], "again": [], "flush": []}
            with DuckDBCallLog(path, fold_rollups=writer_folds) as log:
                read(log)
                for i in range(rounds):
                    if ctx.left() < 20:
                        break
                    for k in range(burst):
                        log.record(replace(pool[(i * burst + k) % len(pool)], request_id=uuid.uuid4().hex))
                    times["flush"].append(_ms(log.flush))
                    times["first"].append(_ms(read, log))
                    times["again"].append(_ms(read, log))
            if times["first"]:
                med[writer_folds] = {k: statistics.median(v) for k, v in times.items()}
        if len(med) < 2:
            continue
        now, old = med[True], med[False]
        target = f"<= {FIRST_READ_TARGET_MS:g} ms" if requests >= 10_000_000 and burst == 1 else ""
        figures.append(Figure(
            part="reads", name=f"first {what} after {burst:,} new request{'s' * (burst > 1)}, {label}",
            value=now["first"], unit="ms",
            baseline=f"reads folding: {old['first']:.0f} ms; no new traffic: {now['again']:.0f} ms",
            target=target, met=(now["first"] <= FIRST_READ_TARGET_MS) if target else None,
            note=f"median of {rounds} rounds; the writer's flush() {now['flush']:.0f} ms with its fold, "
                 f"{old['flush']:.0f} ms without"))
    return figures


def run(ctx: PartContext, sizes: tuple[int, ...] | None = None, rounds: int = 5) -> list[Figure]:
    sizes = sizes or ((1_000_000,) if ctx.quick else (1_000_000, 10_000_000))
    figures = file_sizes(sizes, ctx, writer_requests=20_000 if ctx.quick else 100_000)
    for requests in sizes:
        figures += search(requests, ctx, 3 if ctx.quick else rounds)
    figures += first_read(sizes[-1], ctx, 3 if ctx.quick else rounds)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1800.0)
    parser.add_argument("--search-only", action="store_true", help="only the Calls search figures")
    args = parser.parse_args()
    ctx = PartContext(quick=False, deadline=time.monotonic() + args.seconds)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    figures = ([f for n in sizes for f in search(n, ctx, args.rounds)] if args.search_only
               else run(ctx, sizes, args.rounds))
    for f in figures:
        print(" | ".join(f.cells()), f.note, flush=True)


if __name__ == "__main__":
    main()
