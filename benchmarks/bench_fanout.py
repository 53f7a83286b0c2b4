"""Fan-out: an input's wall time divided by its slowest variant's latency (target <= 1.15).

Real time, real router, real DuckDB file: 2, 4 and 8 variants, each a
simulated provider:model with a fixed latency (no spread), over a few inputs
run one at a time so inputs do not overlap. Run one after another, the
ratio would be the summed latency over the slowest (1.4, 2.8 and 5.6 here);
run together it should stay near 1.

    python benchmarks/bench_fanout.py [--inputs 5]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taelio_core.calllog import DuckDBCallLog  # noqa: E402
from taelio_core.config.policy_parser import parse_policy  # noqa: E402
from taelio_core.experiments import ExperimentSpec, Experiments, VariantSpec, parse_csv  # noqa: E402
from taelio_core.providers import SimProfile, SimulatedProvider  # noqa: E402
from taelio_core.routing.router import Router  # noqa: E402

POLICY = """
[providers.sim]
kind = "simulated"
[tasks.idea]
user = "Premise: {prompt}"
max_tokens = 200
[tiers.pro]
[routes.pro]
idea = ["sim:m0"]
"""


def latencies(n: int) -> list[float]:
    """n latencies from 200 to 500 ms, the slowest last."""
    return [200.0 + 300.0 * i / max(1, n - 1) for i in range(n)]


async def measure(n: int, inputs: int, folder: Path) -> tuple[float, float, float]:
    lat = latencies(n)
    profiles = {f"m{i}": SimProfile(latency_ms=ms, latency_sigma=0.0, output_tokens=60) for i, ms in enumerate(lat)}
    log = DuckDBCallLog(folder / f"fanout{n}.duckdb")
    router = Router(parse_policy(POLICY), {"sim": SimulatedProvider(name="sim", profiles=profiles)}, sink=log)
    ex = Experiments.open(router, log)
    spec = ExperimentSpec(name=f"fanout {n}", concurrency=1,
                          variants=[VariantSpec(model=f"sim:m{i}") for i in range(n)])
    exp = ex.store.create(spec, parse_csv("prompt\n" + "\n".join(f"premise {i}" for i in range(inputs))))
    progress = await ex.runner.arun(exp.experiment_id)
    cells = ex.store.cells(exp.experiment_id)
    ratios = []
    for row in exp.inputs:
        slowest = max(cells[(row.input_id, v.variant_id)].latency_ms or 0.0 for v in exp.variants)
        ratios.append(progress.input_wall_ms[row.input_id] / slowest)
    log.close()
    return statistics.median(ratios), max(ratios), sum(lat) / max(lat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=5)
    args = parser.parse_args()
    print(f"{'variants':>8}  {'wall/slowest (median)':>22}  {'worst':>6}  {'if sequential':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (2, 4, 8):
            median, worst, sequential = asyncio.run(measure(n, args.inputs, Path(tmp)))
            flag = "ok" if median <= 1.15 else "OVER TARGET"
            print(f"{n:>8}  {median:>22.3f}  {worst:>6.3f}  {sequential:>13.2f}  {flag}")


if __name__ == "__main__":
    main()
