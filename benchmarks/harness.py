"""The pieces every benchmark part shares: figures, local servers, percentiles, the machine, the report.

A part is a function ``run(ctx: PartContext) -> list[Figure]``. A ``Figure``
is one line of the table: what was measured, Taelio's number, the baseline
measured next to it in the same run, and the target it is judged against.
Keeping that shape for every part is what lets ``python -m benchmarks`` print
one table and write one ``BENCHMARKS.md`` for seven very different things.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

__all__ = ["Figure", "PartContext", "RESULTS", "ROOT", "fake_server", "machine", "percentile", "run_script",
           "run_standalone", "versions"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(kw_only=True)
class Figure:
    """One measured line: Taelio's value beside its baseline, and whether it meets its target."""

    part: str
    name: str
    value: float | None
    unit: str
    baseline: str = ""           # what the value is compared with, e.g. "LiteLLM +3.10 ms"
    target: str = ""             # e.g. "<= 0.25 ms"
    met: bool | None = None      # None: no target, or not measurable here
    note: str = ""

    def cells(self) -> list[str]:
        verdict = {True: "met", False: "MISSED", None: ""}[self.met]
        return [self.part, self.name, _fmt(self.value, self.unit), self.baseline, self.target, verdict]


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"
    return f"{text} {unit}".strip()


@dataclass(kw_only=True)
class PartContext:
    quick: bool
    deadline: float              # time.monotonic() by which the part must have stopped
    raw: dict[str, object] = field(default_factory=dict)   # free-form detail, saved in the JSON

    def left(self) -> float:
        return self.deadline - time.monotonic()


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100), like numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


@contextmanager
def fake_server(*, zero_latency: bool = True) -> Iterator[str]:
    """The project's fake provider server in its own process (so it does not share our GIL); yields its URL."""
    args = [sys.executable, "-m", "benchmarks.serve_fake", "--port", "0"] + (["--zero-latency"] if zero_latency else [])
    proc = subprocess.Popen(args, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"the fake server did not start: {line!r}")
        yield line.split(" ", 1)[1]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_script(script: str, args: list[str], *, timeout: float) -> tuple[int | None, str]:
    """Run ``benchmarks/<script>`` as its own process, bounded by ``timeout``; returns (exit code, stdout)."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT,
                            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=max(1.0, timeout))
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 15)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            out, _ = proc.communicate()
        return None, out


def machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = match.group(1) if match else platform.processor() or "unknown"
    except OSError:
        pass
    mem_gb = None
    try:
        match = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        mem_gb = round(int(match.group(1)) / 1024 / 1024, 1) if match else None
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "memory_gb": mem_gb, "cpu": cpu, "os": platform.platform(),
            "python": sys.version.split()[0], "load_avg": [round(x, 1) for x in os.getloadavg()]}


def versions() -> dict[str, str]:
    out = {}
    for name in ("openai", "litellm", "duckdb", "pyarrow", "pandas", "streamlit", "playwright", "httpx2", "httpx"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        out["taelio"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                       text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def last_json(path: Path, since: float) -> dict | None:
    """The JSON a plugged script wrote, if it wrote it after ``since`` (wall clock)."""
    try:
        if path.stat().st_mtime < since:
            return None
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_standalone(run: Callable[[PartContext], list[Figure]], description: str, seconds: float) -> None:
    """``python benchmarks/bench_X.py [--quick] [--seconds N]``: one part on its own, its figures printed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=seconds, help="time budget")
    args = parser.parse_args()
    ctx = PartContext(quick=args.quick, deadline=time.monotonic() + args.seconds)
    for f in run(ctx):
        print(" | ".join(f.cells()), f.note)


def figures_as_json(figures: list[Figure]) -> list[dict[str, object]]:
    return [asdict(f) for f in figures]
