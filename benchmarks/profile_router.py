"""Where Taelio's added time per request goes: a cProfile diff of the bare SDK call and the router.

Both make the same call to the same local fake OpenAI server (``harness.fake_server``); the router has a
one-entry chain and no call log (the log's writer runs in its own thread: ``bench_router`` reports it
apart). Each function's own time and call count in the bare run are subtracted from the router run's, so
what is left is what the router adds. Functions called as often in both runs (the SDK's, the transport's) are
left out: their differences are noise. cProfile slows every call alike, so read the shares, not the µs.

    PYTHONPATH=. python benchmarks/profile_router.py [--calls 300] [--top 30]
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_router import bare_call, taelio_call  # noqa: E402
from benchmarks.harness import fake_server  # noqa: E402


async def profile(url: str, calls: int) -> dict[str, pstats.Stats]:
    bare, bare_close = bare_call(url + "/v1")
    taelio, taelio_close, _ = taelio_call(url + "/v1", None)
    try:
        for _ in range(50):                     # warm both: connections, caches
            await bare()
            await taelio()
        out = {}
        for name, call in (("bare", bare), ("taelio", taelio)):
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(calls):
                await call()
            profiler.disable()
            out[name] = pstats.Stats(profiler)
        return out
    finally:
        await bare_close()
        await taelio_close()


def _where(key: tuple[str, int, str]) -> str:
    path, line, name = key
    return f"{path.split('site-packages/')[-1].replace(str(ROOT) + '/', '')}:{line} {name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    with fake_server() as url:
        stats = asyncio.run(profile(url, args.calls))
    bare, taelio = stats["bare"].stats, stats["taelio"].stats   # type: ignore[attr-defined]
    rows = []
    for key, (_, calls, own, _, _) in taelio.items():
        b = bare.get(key, (0, 0, 0.0, 0.0, None))
        if calls > b[1]:        # only what the router adds: the SDK's own functions run as often in both
            rows.append((own - b[2], calls - b[1], key))
    rows.sort(reverse=True)
    added = sum(r[0] for r in rows if r[0] > 0)
    n = args.calls
    print(f"added Python calls per request: "
          f"{(stats['taelio'].total_calls - stats['bare'].total_calls) / n:,.0f}")   # type: ignore[attr-defined]
    print(f"{'share':>6} {'own µs':>8} {'calls':>6}  function (own time added per request, under cProfile)")
    for own, count, key in rows[:args.top]:
        print(f"{own / added:6.1%} {own / n * 1e6:8.1f} {count / n:6.1f}  {_where(key)}")


if __name__ == "__main__":
    main()
