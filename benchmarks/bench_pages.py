"""Render every dashboard page in real Chromium with a big call log; report time to fully drawn and peak RSS.

    python benchmarks/bench_pages.py                      # 1M demo requests in benchmarks/results/bench-1m.duckdb
    python benchmarks/bench_pages.py --requests 100000 --loads 3

The log is filled once with the core's demo generator (``taelio_core.demo``)
and reused on later runs when it already holds enough requests. Then one
``streamlit run app.py`` serves it on a free loopback port in demo mode, and
Playwright drives Debian's Chromium: for each page, the *first load* (cold
caches) and then ``--loads`` fresh page loads after it (each a new browser
session, so nothing but Streamlit's server-side caches carries over). "Fully
drawn" is the FACTS.md recipe: the script has stopped, no skeleton is left,
and every Plotly chart has its SVG. Peak RSS is the Streamlit process's
``VmHWM``. Every wait has a timeout and the server is always stopped, so the
script ends by itself.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from taelio_core.calllog import DuckDBCallLog  # noqa: E402
from taelio_core.policy import load_policy  # noqa: E402
from tests.browser.harness import launch, streamlit_server, wait_drawn  # noqa: E402

PAGES = [("generate", "/"), ("costs", "/costs"), ("health", "/health"), ("calls", "/calls")]


def fill(path: Path, requests: int, days: int) -> int:
    from taelio_core.demo import generate_demo_data

    path.parent.mkdir(parents=True, exist_ok=True)
    log = DuckDBCallLog(path)
    try:
        have = log.count_requests()
        if have >= requests:
            print(f"reusing {path} ({have:,} requests)", flush=True)
            return have
        print(f"generating {requests - have:,} demo requests into {path} …", flush=True)
        t0 = time.perf_counter()
        last = [0.0]

        def progress(fraction: float) -> None:
            if time.perf_counter() - last[0] > 10:
                last[0] = time.perf_counter()
                print(f"  {fraction:.0%}", flush=True)

        generate_demo_data(log, load_policy(None), days=days, requests=requests - have, seed=1,
                           progress=progress)
        log.flush()
        print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
        return log.count_requests()
    finally:
        log.close()


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def timed_load(browser, url: str) -> float:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        t0 = time.perf_counter()
        page.goto(url, timeout=120_000)
        wait_drawn(page, timeout_ms=120_000, settle_ms=0)
        elapsed = time.perf_counter() - t0
        if page.locator('[data-testid="stException"]').count():
            raise RuntimeError(f"{url} shows an exception: {page.locator('[data-testid=stException]').inner_text()}")
        return elapsed
    finally:
        context.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--loads", type=int, default=5, help="page loads after the first one, per page")
    ap.add_argument("--db", type=Path, default=None)
    args = ap.parse_args()
    db = args.db or ROOT / "benchmarks" / "results" / f"bench-{args.requests // 1000}k.duckdb"
    total = fill(db, args.requests, args.days)

    from playwright.sync_api import sync_playwright

    results = {}
    with streamlit_server({"DATABASE_URL": str(db), "TAELIO_MODE": "demo"}, cwd=db.parent) as (url, proc):
        with sync_playwright() as p:
            browser = launch(p)
            try:
                for name, path in PAGES:
                    first = timed_load(browser, url + path)
                    after = [timed_load(browser, url + path) for _ in range(args.loads)]
                    results[name] = {"first_s": round(first, 3), "after_median_s": round(statistics.median(after), 3),
                                     "after_max_s": round(max(after), 3)}
                    print(f"{name:9s} first load {first:6.2f} s   after: median {statistics.median(after):5.2f} s, "
                          f"max {max(after):5.2f} s", flush=True)
            finally:
                browser.close()
        rss = peak_rss_mb(proc.pid)
    print(f"streamlit peak RSS: {rss:.0f} MB" if rss else "streamlit peak RSS: unknown")
    report = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "requests": total, "pages": results,
              "peak_rss_mb": None if rss is None else round(rss)}
    out = ROOT / "benchmarks" / "results" / "bench_pages.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
