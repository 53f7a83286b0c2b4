"""Parts measured by other scripts in ``benchmarks/``, run as their own processes and read back as figures.

``bench_ingest.py``, ``bench_pages.py``, ``bench_fanout.py``,
``bench_sandbox.py`` and ``bench_hedging.py`` are written to run on their
own; here each runs in a child process with a timeout (so a hung browser or a
slow machine cannot stall the whole run), and its JSON file or its printed
table becomes ``Figure`` lines. A script that is not in this checkout yet
gives one line saying so.
"""
from __future__ import annotations

import re
import time

from benchmarks.harness import RESULTS, ROOT, Figure, PartContext, last_json, run_script

__all__ = ["fanout", "hedging", "ingest", "pages", "sandbox"]


def _missing(part: str, script: str) -> list[Figure] | None:
    if (ROOT / "benchmarks" / script).exists():
        return None
    return [Figure(part=part, name=script, value=None, unit="", note="not in this checkout yet")]


def _failed(part: str, script: str, code: int | None, out: str) -> list[Figure]:
    tail = " / ".join(out.strip().splitlines()[-3:])[-300:]
    why = "timed out" if code is None else f"exit {code}"
    return [Figure(part=part, name=script, value=None, unit="", note=f"{why}: {tail}")]


def ingest(ctx: PartContext) -> list[Figure]:
    script = "bench_ingest.py"
    if (gone := _missing("ingest", script)) is not None:
        return gone
    started = time.time()
    args = ["--requests", "50000" if ctx.quick else "200000", "--row-requests", "1000" if ctx.quick else "2000"]
    code, out = run_script(script, args, timeout=ctx.left())
    data = last_json(RESULTS / "bench_ingest.json", started)
    if code != 0 or data is None:
        return _failed("ingest", script, code, out)
    rows = data["results"]
    ctx.raw["ingest"] = rows
    writer, naive = rows[0], rows[-1]
    return [
        Figure(part="ingest", name=f"call-log writer, requests/s ({writer['method']})",
               value=writer["requests_per_s"], unit="req/s",
               baseline=f"row-at-a-time {naive['requests_per_s']:,} req/s", target=">= 100,000 req/s",
               met=writer["requests_per_s"] >= 100_000,
               note=f"{writer['attempts'] / writer['requests']:.2f} attempts per request"),
        Figure(part="ingest", name="call-log writer rows/s (requests + attempts)", value=writer["rows_per_s"],
               unit="rows/s", baseline=f"row-at-a-time {naive['rows_per_s']:,} rows/s"),
        Figure(part="ingest", name="writer / row-at-a-time", value=writer["x_row_at_a_time"], unit="x"),
        Figure(part="ingest", name="record() on the request path", value=writer["record_us"], unit="us/request",
               baseline=f"row-at-a-time {naive['record_us']:,} us"),
        *_ingest_extra(rows, data.get("low_rate", [])),
    ]


def _ingest_extra(rows: list[dict], low: list[dict]) -> list[Figure]:
    """The writer alone (its own throughput, and record() with nothing competing), and CPU at a low rate."""
    figures = []
    alone = next((r for r in rows if r["method"].startswith("writer alone")), None)
    if alone is not None:
        figures += [
            Figure(part="ingest", name="writer alone, requests/s (rows recorded first, then one flush)",
                   value=alone["requests_per_s"], unit="req/s",
                   baseline=f"row-at-a-time {rows[-1]['requests_per_s']:,} req/s",
                   target=">= 100,000 req/s", met=alone["requests_per_s"] >= 100_000),
            Figure(part="ingest", name="record() alone (writer idle)", value=alone["record_us"], unit="us/request"),
        ]
    if len(low) >= 2:
        now, before = low[0], low[-1]
        figures.append(Figure(part="ingest", name=f"writer CPU per request, {now['method']}",
                              value=now["writer_cpu_ms_per_request"], unit="ms",
                              baseline=f"{before['method']}: {before['writer_cpu_ms_per_request']} ms"))
    return figures


def pages(ctx: PartContext) -> list[Figure]:
    script = "bench_pages.py"
    if (gone := _missing("pages", script)) is not None:
        return gone
    sizes = (1_000_000,) if ctx.quick else (1_000_000, 10_000_000)
    figures: list[Figure] = []
    rss: dict[int, float] = {}
    for requests in sizes:
        started = time.time()
        db = RESULTS / f"bench-{requests // 1000}k.duckdb"
        code, out = run_script(script, ["--requests", str(requests), "--rounds", "1" if ctx.quick else "3",
                                        "--db", str(db)], timeout=ctx.left())
        data = last_json(RESULTS / "bench_pages.json", started)
        if code != 0 or data is None:
            figures += _failed("pages", f"{script} at {requests:,}", code, out)
            continue
        ctx.raw[f"pages_{requests}"] = data
        label = f"{requests / 1e6:g}M"
        limit = 2.0 if requests <= 1_000_000 else 4.0
        for name, t in data["pages"].items():
            first = t.get("first_load_s", t.get("first_s", 0.0))
            figures.append(Figure(part="pages", name=f"{name} fully drawn, {label}", value=t["after_median_s"],
                                  unit="s", baseline=f"first load {first:.2f} s", target=f"<= {limit:g} s",
                                  met=t["after_median_s"] <= limit))
        if data.get("peak_rss_mb"):
            rss[requests] = data["peak_rss_mb"]
            figures.append(Figure(part="pages", name=f"Streamlit peak RSS, {label}", value=data["peak_rss_mb"],
                                  unit="MB"))
    if len(rss) == 2:
        small, big = sorted(rss)
        growth = rss[big] / rss[small]
        figures.append(Figure(part="pages", name="peak RSS 10M / 1M", value=growth, unit="x",
                              target="~1 (does not grow with the log)", met=growth <= 1.25))
    return figures


def fanout(ctx: PartContext) -> list[Figure]:
    script = "bench_fanout.py"
    if (gone := _missing("fanout", script)) is not None:
        return gone
    code, out = run_script(script, ["--inputs", "3" if ctx.quick else "5"], timeout=ctx.left())
    rows = re.findall(r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", out, re.M)
    if code != 0 or not rows:
        return _failed("fanout", script, code, out)
    ctx.raw["fanout"] = out
    return [Figure(part="fanout", name=f"wall / slowest variant, {n} variants", value=float(median), unit="x",
                   baseline=f"sequential would be {float(seq):.2f}x; worst input {float(worst):.3f}x",
                   target="<= 1.15", met=float(median) <= 1.15) for n, median, worst, seq in rows]


def sandbox(ctx: PartContext) -> list[Figure]:
    script = "bench_sandbox.py"
    if (gone := _missing("sandbox", script)) is not None:
        return gone
    started = time.time()
    args = ["--requests", "20000", "--router-requests", "2000", "--week", "200000"] if ctx.quick else []
    code, out = run_script(script, args, timeout=ctx.left())
    data = last_json(RESULTS / "bench_sandbox.json", started)
    if code != 0 or data is None:
        return _failed("sandbox", script, code, out)
    ctx.raw["sandbox"] = data
    router = f"asyncio engine over the live router {data['router_per_s']:,.0f} req/s"
    figures = [
        Figure(part="sandbox", name="simulated requests/s, asyncio engine over the live router, one process",
               value=data["router_per_s"], unit="req/s", baseline=f"{data['router_per_cpu_s']:,.0f} per CPU second",
               target=">= 20,000 req/s", met=data["router_per_s"] >= 20_000,
               note=f"{data.get('python_calls_per_request', 0):,.0f} Python calls per request"),
        Figure(part="sandbox", name="discrete-event engine floor (a core that decides nothing), one seed, one core",
               value=data["des_floor_per_s"], unit="req/s", baseline=router,
               note=f"{data['des_floor_per_cpu_s']:,.0f} per CPU second: the engine's own cost per request, "
                    "not the Sandbox's rate"),
        Figure(part="sandbox", name=f"discrete-event engine floor, {data['des_floor_seeds']} seeds on "
                                    f"{data['des_floor_seed_workers']} worker processes",
               value=data["des_floor_seeds_per_s"], unit="req/s",
               baseline=f"{data['des_floor_seeds_cpu_per_request_us']:.1f} us CPU per request",
               note="process start and sending the columns back included"),
    ]
    if "des_core_per_s" in data:
        figures.append(Figure(part="sandbox", name="simulated requests/s, discrete-event engine over the decision "
                                                   "core, one seed, one core",
                              value=data["des_core_per_s"], unit="req/s", baseline=router, target=">= 20,000 req/s",
                              met=data["des_core_per_s"] >= 20_000,
                              note=f"{data['des_core_per_cpu_s']:,.0f} per CPU second"))
        figures.append(Figure(part="sandbox", name=f"the same, {data['des_core_seeds']} seeds on "
                                                   f"{data['des_core_seed_workers']} worker processes",
                              value=data["des_core_seeds_per_s"], unit="req/s",
                              baseline=f"{data['des_core_seeds_cpu_per_request_us']:.1f} us CPU per request",
                              target=">= 35,000 req/s", met=data["des_core_seeds_per_s"] >= 35_000,
                              note="process start included"))
    if "des_core_week_ab_wall_s" in data:
        figures.append(Figure(part="sandbox", name=f"A/B of {data['des_core_week_requests']:,} requests over a "
                                                   "simulated week (simulate, 2 worker processes, comparison table)",
                              value=data["des_core_week_ab_wall_s"], unit="s", target="< 60 s",
                              met=data["des_core_week_ab_wall_s"] < 60, baseline=_week_cpu(data),
                              note=f"load average after the run {data.get('load_after')}"))
    return figures


def _week_cpu(data: dict) -> str:
    """The A/B's CPU beside its wall time: the simulating workers' (per request) and the parent's."""
    if "des_core_week_ab_workers_cpu_s" not in data:
        return ""
    return (f"{data['des_core_week_ab_workers_cpu_s']:.1f} CPU s in the workers "
            f"({data['des_core_week_cpu_per_request_us']:.1f} us per request), "
            f"{data['des_core_week_ab_parent_cpu_s']:.1f} in the parent")


def hedging(ctx: PartContext) -> list[Figure]:
    script = "bench_hedging.py"
    if (gone := _missing("hedging", script)) is not None:
        return gone
    code, out = run_script(script, ["--requests", "200" if ctx.quick else "600"], timeout=ctx.left())
    match = re.search(r"p99 with hedging / without: ([\d.]+); extra calls: ([\d.]+)%", out)
    if code != 0 or match is None:
        return _failed("hedging", script, code, out)
    return [Figure(part="hedging", name="p99 with hedging / without (6% of first calls slow)",
                   value=float(match.group(1)), unit="x", baseline=f"{match.group(2)}% extra calls",
                   target="< 1", met=float(match.group(1)) < 1.0)]
