"""The router's own CPU per request, with no I/O: what ``Router.agenerate`` costs around a provider that answers at once.

The bench_router figures put the router beside a real SDK call over a socket, where the call itself costs
~1.5 ms of CPU and its noise on a shared machine (±0.1 ms between blocks) hides a change of a few
microseconds in the router. Here the provider is a ``FunctionProvider`` returning a fixed answer, so
every microsecond measured is the router's: context, guards, decision core, attempt, pricing, result (no
call log). To compare two versions, run it from each checkout, alternately, minutes apart:

    PYTHONPATH=. python benchmarks/router_cpu.py [--blocks 40] [--per-block 500]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_router import MODEL, POLICY, PROMPT, SYSTEM  # noqa: E402


async def measure(blocks: int, per_block: int) -> list[float]:
    """Event-loop thread CPU µs per request, one figure per block, after a warm-up."""
    from taelio_core.config.policy_parser import parse_policy
    from taelio_core.providers.function import FunctionProvider
    from taelio_core.routing.generation import Completion, Usage
    from taelio_core.routing.inputs import Inputs
    from taelio_core.routing.router import Router

    answer = Completion(text="An idea.", usage=Usage(input_tokens=20, output_tokens=30), finish_reason="stop",
                        response_model=MODEL)
    policy = parse_policy(POLICY.format(base_url="http://127.0.0.1:9/v1", system=SYSTEM, model=MODEL))
    provider = FunctionProvider("openai", lambda model, request: answer)
    router = Router(policy, {"openai": provider})
    inputs = Inputs(prompt=PROMPT)
    for _ in range(2000):
        await router.agenerate("pro", "idea", inputs)
    out = []
    for _ in range(blocks):
        provider.calls.clear()   # the fake keeps every call it saw
        c0 = time.thread_time()
        for _ in range(per_block):
            await router.agenerate("pro", "idea", inputs)
        out.append((time.thread_time() - c0) / per_block * 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--per-block", type=int, default=500)
    args = parser.parse_args()
    per_request = sorted(asyncio.run(measure(args.blocks, args.per_block)))
    print(f"router CPU per request, no I/O: median {statistics.median(per_request):.1f} us, "
          f"best block {per_request[0]:.1f} us ({args.blocks} blocks of {args.per_block})")


if __name__ == "__main__":
    main()
