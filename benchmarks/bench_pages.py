"""Render every dashboard page in real Chromium with a big call log; report time to fully drawn and peak RSS.

    python benchmarks/bench_pages.py                      # 1M demo requests in benchmarks/results/bench-1m.duckdb
    python benchmarks/bench_pages.py --requests 100000 --loads 3

The log is filled once with the core's demo generator (``taelio_core.demo``)
and reused on later runs when it already holds enough requests. Then one
``streamlit run app.py`` serves it on a free loopback port in demo mode, and
Playwright drives Debian's Chromium:

* *first load*: each page opened once by URL in a fresh browser session, with
  the server's caches cold (the browser loads Streamlit's scripts each time);
* *after the first load*: in one session, ``--rounds`` passes over the pages by
  clicking the sidebar links, as a user does, each timed from the click.

"Fully drawn" is ``tests/browser/harness.py``'s test: the page's title is shown, the script
has stopped, no skeleton is left, and every Plotly chart has its SVG. Peak
RSS is the Streamlit process's ``VmHWM``. The machine's load average is
printed with the figures, since they scale with it. Every wait has a timeout
and the server is always stopped, so the script ends by itself.
"""
from __future__ import annotations

import argparse
import json
import re
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from taelio_core.calllog import DuckDBCallLog  # noqa: E402
from taelio_core.config.policy_parser import load_policy  # noqa: E402
from tests.browser.harness import launch, streamlit_server, wait_drawn  # noqa: E402

# (name, URL path, sidebar link, page title)
PAGES = [("generate", "/", "Generate", "Generate"), ("costs", "/costs", "Costs & budgets", "Costs & budgets"),
         ("health", "/health", "Health", "Provider health"), ("calls", "/calls", "Calls", "Calls")]


def fill(path: Path, requests: int, days: int) -> int:
    from benchmarks.bulk_log import generate_bulk_log

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

        generate_bulk_log(log, load_policy(None), days=days, requests=requests - have, seed=1,
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


def _check(page, what: str) -> None:  # noqa: ANN001
    if page.locator('[data-testid="stException"]').count():
        raise RuntimeError(f"{what} shows an exception: {page.locator('[data-testid=stException]').first.inner_text()}")


def first_load(browser, url: str) -> float:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        t0 = time.perf_counter()
        page.goto(url, timeout=300_000)
        wait_drawn(page, timeout_ms=300_000, settle_ms=0)
        elapsed = time.perf_counter() - t0
        _check(page, url)
        return elapsed
    finally:
        context.close()


def navigate(page, link: str, title: str) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    # A link's accessible name starts with its icon's ligature text ("payments Costs & budgets").
    page.locator('[data-testid="stSidebar"]').get_by_role("link", name=re.compile(re.escape(link) + "$")).click()
    page.wait_for_function("""t => [...document.querySelectorAll('[data-testid="stMain"] h1')]
                                     .some(h => h.innerText.trim() === t)""", arg=title, timeout=300_000)
    wait_drawn(page, timeout_ms=300_000, settle_ms=0)
    elapsed = time.perf_counter() - t0
    _check(page, title)
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3, help="passes over the pages after the first load")
    ap.add_argument("--db", type=Path, default=None)
    args = ap.parse_args()
    db = args.db or ROOT / "benchmarks" / "results" / f"bench-{args.requests // 1000}k.duckdb"
    total = fill(db, args.requests, args.days)

    from playwright.sync_api import sync_playwright

    results: dict[str, dict[str, float]] = {}
    with streamlit_server({"DATABASE_URL": str(db), "TAELIO_MODE": "demo"}, cwd=db.parent) as (url, proc):
        with sync_playwright() as p:
            browser = launch(p)
            try:
                for name, path, _link, _title in PAGES:
                    results[name] = {"first_load_s": round(first_load(browser, url + path), 3)}
                    print(f"{name:9s} first load {results[name]['first_load_s']:6.2f} s", flush=True)
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                page.goto(url + "/", timeout=300_000)
                wait_drawn(page, timeout_ms=300_000, settle_ms=0)
                times: dict[str, list[float]] = {name: [] for name, *_ in PAGES}
                for _ in range(args.rounds):
                    for name, _path, link, title in PAGES[1:] + PAGES[:1]:
                        times[name].append(navigate(page, link, title))
                context.close()
            finally:
                browser.close()
        rss = peak_rss_mb(proc.pid)  # while the server still runs
    for name, values in times.items():
        results[name].update(after_median_s=round(statistics.median(values), 3), after_max_s=round(max(values), 3))
        print(f"{name:9s} after the first load: median {statistics.median(values):5.2f} s, "
              f"max {max(values):5.2f} s ({len(values)} visits)")
    load = os.getloadavg()
    print(f"streamlit peak RSS: {rss:.0f} MB" if rss else "streamlit peak RSS: unknown")
    print(f"load average (1/5/15 min): {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs")
    report = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "requests": total, "pages": results,
              "peak_rss_mb": None if rss is None else round(rss), "loadavg": load, "cpus": os.cpu_count()}
    out = ROOT / "benchmarks" / "results" / "bench_pages.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
