"""Analytics at scale: every dashboard query over 1M and 10M demo requests (with attempts), cold and warm.

The logs are generated once with the benchmarks' bulk generator
(``benchmarks.bulk_log.generate_bulk_log``) into
``benchmarks/results/bench-<N>k.duckdb`` (the same files ``bench_pages.py``
uses) and reused while they hold enough requests: 10M takes minutes and about
a gigabyte. Every public query function in ``taelio_core.analytics`` that
needs only ``(log, filters)`` is timed with the default filters (all time):

* ``cold``: its first run in this process (DuckDB's buffers empty; the OS page cache may be warm);
* ``warm``: the median of the next runs.

Every query reads the hourly rollups (``taelio_core/analytics/rollup.py``),
which the first read after new rows folds them into: that fold is timed on
its own first ("rollup fold"), once for the whole freshly generated log, and
again after 1,000 more requests arrive (what a dashboard paid after a burst when reads folded; the
writer folds now, ``bench_reads`` compares the two).
Each query opens the file (the call log's open-per-operation design), so the
open is timed too ("open + count(*)").

The baseline, measured in the same run on the same file, is a full scan that
any query must at least match: ``SELECT count(*), sum(cost_usd) FROM requests``.

    PYTHONPATH=. python benchmarks/bench_analytics.py [--sizes 1000000,10000000] [--warm 5]
"""
from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import RESULTS, Figure, PartContext  # noqa: E402

TARGET_WARM_MS = 250.0


def log_path(requests: int) -> Path:
    return RESULTS / f"bench-{requests // 1000}k.duckdb"


def fill(requests: int, ctx: PartContext) -> Path:
    """The cached demo log holding at least ``requests`` requests."""
    from taelio_core.calllog import DuckDBCallLog
    from benchmarks.bulk_log import generate_bulk_log
    from taelio_core.config.policy_parser import load_policy

    path = log_path(requests)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = DuckDBCallLog(path)
    try:
        have = log.count_requests()
        if have < requests:
            t0 = time.perf_counter()
            generate_bulk_log(log, load_policy(None), days=30, requests=requests - have, seed=1)
            log.flush()
            ctx.raw[f"generate_{requests}_s"] = round(time.perf_counter() - t0, 1)
    finally:
        log.close()
    return path


def queries() -> dict[str, object]:
    """Every analytics function callable as ``fn(log, filters)``."""
    import taelio_core.analytics as analytics

    out = {}
    for name in analytics.__all__:
        fn = getattr(analytics, name)
        if not inspect.isfunction(fn) or fn.__module__.endswith(".views"):
            continue        # a page's bundle of queries: timed apart (``extra_queries``)
        params = list(inspect.signature(fn).parameters.values())
        required = [p for p in params if p.default is inspect.Parameter.empty
                    and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if [p.name for p in required] == ["log", "filters"]:
            out[name] = fn
    return out


def extra_queries(log) -> dict[str, object]:  # noqa: ANN001
    """The dashboard's queries that need more than filters, with the arguments the pages give them."""
    from datetime import UTC, datetime

    import taelio_core.analytics as analytics
    from taelio_core.config.policy_parser import load_policy

    policy, now = load_policy(None), datetime.now(UTC)
    out: dict[str, object] = {}
    if hasattr(analytics, "provider_health"):
        configured = {name: None for name in policy.providers}
        out["provider_health"] = lambda lg, f: analytics.provider_health(lg, configured, f, now=now)
    budgets = getattr(policy.model, "budgets", None)
    if budgets is not None and hasattr(analytics, "budget_status"):
        out["budget_status"] = lambda lg, f: analytics.budget_status(lg, budgets, f, now=now)
        out["budget_burndown"] = lambda lg, f: analytics.budget_burndown(lg, budgets, f, now=now)
    if hasattr(analytics, "costs_view") and budgets is not None:
        out["page read: costs_view (9 queries)"] = lambda lg, f: analytics.costs_view(lg, f, budgets, now=now)
        out["page read: health_view (8 queries)"] = lambda lg, f: analytics.health_view(lg, f, now=now)
    newest = log.query("SELECT request_id FROM requests ORDER BY ts DESC LIMIT 1")
    if hasattr(analytics, "request_detail") and len(newest):
        request_id = newest.iloc[0, 0]
        out["request_detail"] = lambda lg, f: analytics.request_detail(lg, request_id)
    return out


def budget_figures(log, label: str, warm_runs: int) -> list[Figure]:  # noqa: ANN001
    """The budget queries from the rollup (now) and from the month's raw attempts (before migration
    ``014_attempt_rollup_simulated``), alternating in one run, at the log's newest row and at the end of the
    month before it (when the log reaches back that far).

    Times the log holds, not the clock: the raw query's cost grows with the day of the month (every attempt
    since the 1st), so it is timed early and late in a month.
    """
    from datetime import timedelta
    from unittest import mock

    import taelio_core.analytics as analytics
    from taelio_core.analytics import budget_burn
    from taelio_core.config.policy_parser import load_policy

    first, newest = (t.to_pydatetime() for t in log.query("SELECT min(ts) AS a, max(ts) AS b FROM attempts").iloc[0])
    month_end = budget_burn.month_bounds(newest)[0] - timedelta(microseconds=1)
    # A rehearsal (``count_simulated``): the bulk log is all demo traffic, which the policy's budgets skip, so only
    # then do the month's rows count, as live traffic's would (the rows above time the policy's own budgets).
    budgets = load_policy(None).model.budgets.model_copy(update={"count_simulated": True})
    figures = []
    for now in (newest, month_end) if first < month_end else (newest,):
        start, _ = budget_burn.month_bounds(now)
        month = int(log.query("SELECT count(*) AS n FROM attempts WHERE ts >= ? AND ts <= ?", [start, now]).iloc[0, 0])
        for rehearsal in (False, True):             # the bulk log is demo traffic: only a rehearsal counts it
            assert budget_burn.budget_spend(log, now=now, count_simulated=rehearsal).equals(
                budget_burn.budget_spend_from_raw(log, now=now, count_simulated=rehearsal))
        calls = {"budget_spend": lambda now=now: budget_burn.budget_spend(log, now=now, count_simulated=True),
                 "budget_status": lambda now=now: analytics.budget_status(log, budgets, now=now),
                 "budget_burndown": lambda now=now: analytics.budget_burndown(log, budgets, now=now)}
        for name, call in calls.items():
            rolled, raw = [], []
            for _ in range(warm_runs + 1):          # the first pair warms both
                rolled.append(timed_ms(call))
                with mock.patch.object(budget_burn, "budget_spend", budget_burn.budget_spend_from_raw):
                    raw.append(timed_ms(call))      # budget_status and burndown call it by this name
            after, before = statistics.median(rolled[1:]), statistics.median(raw[1:])
            figures.append(Figure(part="analytics",
                                  name=f"{name} (rehearsal: demo counts) warm on day {now.day} of the month, {label}",
                                  value=after, unit="ms",
                                  baseline=f"raw attempts (before) {before:.0f} ms: {before / after:.1f}x",
                                  note=f"{month:,} attempts this month up to {now:%Y-%m-%d %H:%M} UTC"))
    return figures


def timed_ms(fn, *args) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t0) * 1000.0


def measure(requests: int, warm_runs: int, ctx: PartContext) -> list[Figure]:
    from taelio_core.analytics import Filters
    from taelio_core.calllog import DuckDBCallLog

    path = fill(requests, ctx)
    size_mb = path.stat().st_size / 1e6
    log = DuckDBCallLog(path, fold_rollups=False)     # the folds timed below are timed here, not in the writer
    label = f"{requests / 1e6:g}M"
    figures: list[Figure] = []      # the file size per million requests: bench_reads, measured three ways
    try:
        from taelio_core.analytics import rollup
        from benchmarks.bulk_log import generate_bulk_log
        from taelio_core.config.policy_parser import load_policy

        t0 = time.perf_counter()
        folded = log.write(rollup.refresh)
        fold_ms = (time.perf_counter() - t0) * 1000.0
        figures.append(Figure(part="analytics", name=f"rollup fold on first read, {label}", value=fold_ms / 1000,
                              unit="s", note=f"{folded:,} new rows (requests + attempts) folded"))
        generate_bulk_log(log, load_policy(None), days=1, requests=1000, seed=int(time.time()))
        t0 = time.perf_counter()
        folded = log.write(rollup.refresh)
        figures.append(Figure(part="analytics", name=f"rollup fold after 1,000 new requests, {label}",
                              value=(time.perf_counter() - t0) * 1000.0, unit="ms",
                              note=f"{folded:,} new rows folded"))
        opens = [timed_ms(log.count_requests) for _ in range(warm_runs)]
        figures.append(Figure(part="analytics", name=f"open + count(*), {label}", value=statistics.median(opens),
                              unit="ms", note="every query pays one open of the file"))
        filters = Filters()
        scan = "SELECT count(*), sum(cost_usd) FROM requests"
        base_cold = timed_ms(log.query, scan)
        base_warm = statistics.median(timed_ms(log.query, scan) for _ in range(warm_runs))
        detail = {}
        for name, fn in {**queries(), **extra_queries(log)}.items():
            if ctx.left() < 5:
                break
            try:
                cold = timed_ms(fn, log, filters)
            except Exception as e:  # noqa: BLE001 - one query's failure must not hide the others' timings
                figures.append(Figure(part="analytics", name=f"{name}, {label}", value=None, unit="ms",
                                      note=f"failed: {type(e).__name__}: {str(e)[:120]}"))
                continue
            warm = statistics.median(timed_ms(fn, log, filters) for _ in range(warm_runs))
            detail[name] = {"cold_ms": round(cold, 1), "warm_ms": round(warm, 1)}
            target = f"<= {TARGET_WARM_MS:g} ms" if requests >= 10_000_000 and "page read" not in name else ""
            figures.append(Figure(part="analytics", name=f"{name} warm, {label}", value=warm, unit="ms",
                                  baseline=f"cold {cold:.0f} ms; full scan {base_warm:.0f} ms",
                                  target=target, met=(warm <= TARGET_WARM_MS) if target else None))
        if ctx.left() > 5:
            figures += budget_figures(log, label, warm_runs)
        ctx.raw[label] = {"scan_cold_ms": base_cold, "scan_warm_ms": base_warm, "queries": detail,
                          "file_mb": size_mb}
    finally:
        log.close()
    return figures


def run(ctx: PartContext, sizes: tuple[int, ...] | None = None, warm_runs: int = 5) -> list[Figure]:
    try:
        import taelio_core.analytics  # noqa: F401
        import taelio_core.demo  # noqa: F401
    except ImportError as e:
        return [Figure(part="analytics", name="every dashboard query", value=None, unit="ms",
                       note=f"not in this checkout: {e}")]
    sizes = sizes or ((1_000_000,) if ctx.quick else (1_000_000, 10_000_000))
    figures: list[Figure] = []
    for requests in sizes:
        figures += measure(requests, 3 if ctx.quick else warm_runs, ctx)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1800.0)
    args = parser.parse_args()
    ctx = PartContext(quick=False, deadline=time.monotonic() + args.seconds)
    for f in run(ctx, tuple(int(s) for s in args.sizes.split(",")), args.warm):
        print(" | ".join(f.cells()), f.note)


if __name__ == "__main__":
    main()
