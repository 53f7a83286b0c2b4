"""Startup: how long ``import taelio_core`` and each ``taelio`` command take to start, beside LiteLLM's import.

Why: every CLI call is a fresh process, so its start-up is paid every time
(issue 13 found 2.6-3.8 s for ``taelio --help`` on a quiet machine, ~10 s of
CPU on a loaded one). Each figure is the median wall time of a few fresh
processes; the baseline beside it is a bare ``python -c pass`` measured in
the same run (so a loaded machine shows up in both), and ``import litellm``
when LiteLLM is installed (``benchmarks/requirements.txt``; set
``TAELIO_BENCH_PYTHON`` to a venv's python that has it). ``python -X
importtime`` gives the five slowest imports of ``taelio routes`` (saved in
the run's JSON), to see what to make lazy next.

Targets (issue 13, on a quiet machine): ``taelio --help`` <= 0.3 s,
``taelio routes`` <= 0.6 s.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import Figure, PartContext, child_env, run_standalone  # noqa: E402

__all__ = ["run"]

COMMANDS: dict[str, list[str]] = {
    "taelio --help": ["--help"],
    "taelio routes": ["routes"],
    "taelio providers": ["providers"],
    "taelio stats (empty log)": ["stats"],
    "taelio health": ["health", "--history", "0"],
}
TARGETS = {"taelio --help": 0.3, "taelio routes": 0.6}


def _wall(args: list[str], *, cwd: Path, python: str = sys.executable, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run([python, *args], cwd=cwd, env=env or child_env(TAELIO_MODE="demo"), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=300, check=False)
    return time.perf_counter() - t0


def _median(args: list[str], runs: int, **kw: object) -> float:
    return statistics.median(_wall(args, **kw) for _ in range(runs))  # type: ignore[arg-type]


def slowest_imports(args: list[str], *, cwd: Path, top: int = 5) -> list[tuple[str, float]]:
    """The ``top`` imports with the largest cumulative time (ms) under ``python -X importtime``."""
    out = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=cwd, env=child_env(TAELIO_MODE="demo"),
                         capture_output=True, text=True, timeout=300, check=False)
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split("|"))
        if cumulative.isdigit() and name.count(" ") == 0:
            rows.append((name, int(cumulative) / 1000))
    return sorted(rows, key=lambda r: -r[1])[:top]


def run(ctx: PartContext) -> list[Figure]:
    runs = 3 if ctx.quick else 5
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        env = child_env(TAELIO_MODE="demo", DATABASE_URL=str(cwd / "bench.duckdb"))
        bare = _median(["-c", "pass"], runs, cwd=cwd, env=env)
        base = f"python -c pass {bare:.3f} s"
        imp = _median(["-c", "import taelio_core"], runs, cwd=cwd, env=env)
        figures.append(Figure(part="startup", name="import taelio_core", value=imp, unit="s", baseline=base))
        for name, args in COMMANDS.items():
            if ctx.left() < 5:
                break
            value = _median(["-m", "taelio_core", *args], runs, cwd=cwd, env=env)
            target = TARGETS.get(name)
            figures.append(Figure(part="startup", name=name, value=value, unit="s", baseline=base,
                                  target=f"<= {target} s (quiet machine)" if target else "",
                                  met=None if target is None else value <= target))
        # LiteLLM last: its import alone can outlast the part's time budget on a loaded machine.
        peer_python = os.environ.get("TAELIO_BENCH_PYTHON", sys.executable)
        peer_env = child_env(LITELLM_LOCAL_MODEL_COST_MAP="True")
        has_litellm = ctx.left() > 60 and subprocess.run(
            [peer_python, "-c", "import litellm"], env=peer_env, capture_output=True, timeout=300, check=False
        ).returncode == 0
        if has_litellm:
            peer = _median(["-c", "import litellm"], min(runs, 3), cwd=cwd, python=peer_python, env=peer_env)
            figures[0].baseline += f"; import litellm {peer:.3f} s"
        else:
            figures[0].note = ("litellm not installed here (benchmarks/requirements.txt; TAELIO_BENCH_PYTHON), or no "
                               "time left in the part's budget to import it")
        ctx.raw["slowest_imports_routes"] = slowest_imports(["-m", "taelio_core", "routes"], cwd=cwd)
        ctx.raw["load_average"] = os.getloadavg()
    return figures


if __name__ == "__main__":
    run_standalone(run, __doc__.splitlines()[0], 120)
