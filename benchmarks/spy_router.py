"""Sequential router calls against the local fake OpenAI server, for a py-spy profile, and its summary.

    py-spy record -r 250 -f raw -o spy.txt -- python benchmarks/spy_router.py 2000
    python benchmarks/spy_router.py --summary spy.txt

The summary keeps only samples taken inside the timed loop and prints the share of them that Taelio's own
functions hold (inclusive), so the part outside the provider call is
``Router.agenerate`` minus ``OpenAIProvider.complete``.
"""
from __future__ import annotations

import asyncio
import collections
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TIMED = "timed_loop"


async def timed_loop(call, n: int) -> float:  # noqa: ANN001 - a bench_router call
    t0 = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - t0) / n * 1000.0


async def run(url: str, n: int) -> None:
    from benchmarks.bench_router import taelio_call
    call, close, _ = taelio_call(url + "/v1", None)
    for _ in range(100):
        await call()
    print(f"{await timed_loop(call, n):.3f} ms per call")
    await close()


def summary(path: str, top: int = 14) -> None:
    total, inclusive = 0, collections.Counter()
    for line in open(path):
        stack, _, count = line.rstrip().rpartition(" ")
        if f"{TIMED} (" not in stack:
            continue
        n = int(count)
        total += n
        names = {re.sub(r" \(.*", "", f) for f in stack.split(";") if "taelio_core/" in f}
        for name in names:
            inclusive[name] += n
    print(f"{total} samples in the timed loop")
    for name, n in inclusive.most_common(top):
        print(f"{n / max(total, 1):6.1%}  {name}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--summary"]:
        summary(sys.argv[2])
    else:
        from benchmarks.harness import fake_server
        with fake_server() as url:
            asyncio.run(run(url, int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
