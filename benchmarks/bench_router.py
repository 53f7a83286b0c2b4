"""Router overhead: what Taelio's router (call log on) and LiteLLM's Router add over a bare ``openai`` call.

All three contenders call the same local fake OpenAI-protocol server (its own
process, zero artificial latency) with the same messages and settings:

* ``bare``: ``openai.AsyncOpenAI(max_retries=0).chat.completions.create``;
* ``taelio``: ``Router.agenerate`` over a one-entry chain (the real OpenAI
  adapter), with a real ``DuckDBCallLog`` on a temporary file as its sink;
* ``litellm``: ``litellm.Router.acompletion`` with one deployment and a
  fallback deployment configured, logging at its defaults.

Blocks of calls are interleaved (bare, taelio, litellm, in a rotating order)
so machine drift hits all three alike. Reported: p50 and p99 per call of each
contender, and the added p50/p99 (contender minus bare), sequentially and with
50 requests in flight at once; and, immune to machine noise, the Python
function calls each contender makes per request beyond the bare call.

    PYTHONPATH=. python benchmarks/bench_router.py [--quick]
"""
from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from benchmarks.harness import Figure, PartContext, fake_server, percentile, run_standalone  # noqa: E402

MODEL = "gpt-4o-mini"
SYSTEM = "You are a creative writing partner."
USER_TEMPLATE = "Premise: {prompt}\nGenre: {genre}\nTone: {tone}\nGive me one story idea."
PROMPT = "A lighthouse keeper finds a message."
POLICY = """
name = "bench"
[defaults]
timeout_s = 30
max_tokens = 400
temperature = 0.8
[providers.openai]
kind = "openai"
base_url = "{base_url}"
[tasks.idea]
system = "{system}"
user = "Premise: {{prompt}}\\nGenre: {{genre}}\\nTone: {{tone}}\\nGive me one story idea."
[tiers.pro]
[routes.pro]
idea = ["openai:{model}"]
"""
KEY = "sk-bench-000000000000"
Call = Callable[[], Awaitable[object]]


def messages() -> list[dict[str, str]]:
    user = USER_TEMPLATE.format(prompt=PROMPT, genre="any", tone="any")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def bare_call(base_url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import openai

    client = openai.AsyncOpenAI(api_key=KEY, base_url=base_url, max_retries=0, timeout=60.0)
    msgs = messages()

    async def call() -> object:
        response = await client.chat.completions.create(model=MODEL, messages=msgs, max_completion_tokens=400,
                                                        temperature=0.8, timeout=30.0)
        assert response.choices[0].message.content
        return response

    return call, client.close


def taelio_call(base_url: str, db: Path | None) -> tuple[Call, Callable[[], Awaitable[None]], object]:
    from taelio_core.calllog import DuckDBCallLog
    from taelio_core.config.policy_parser import parse_policy
    from taelio_core.providers.openai import OpenAIProvider
    from taelio_core.routing.inputs import Inputs
    from taelio_core.routing.router import Router

    policy = parse_policy(POLICY.format(base_url=base_url, system=SYSTEM, model=MODEL))
    provider = OpenAIProvider(name="openai", api_key=KEY, base_url=base_url)
    log = DuckDBCallLog(db) if db is not None else None
    router = Router(policy, {"openai": provider}, sink=log)
    inputs = Inputs(prompt=PROMPT)

    async def call() -> object:
        result = await router.agenerate("pro", "idea", inputs)
        assert result.status == "ok"
        return result

    async def close() -> None:
        await provider.aclose()

    return call, close, log


def litellm_call(base_url: str, fallback_url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import litellm

    router = litellm.Router(
        model_list=[
            {"model_name": "bench", "litellm_params": {"model": f"openai/{MODEL}", "api_base": base_url,
                                                       "api_key": KEY}},
            {"model_name": "bench-fallback", "litellm_params": {"model": f"openai/{MODEL}",
                                                                "api_base": fallback_url, "api_key": KEY}},
        ],
        fallbacks=[{"bench": ["bench-fallback"]}], num_retries=0)
    msgs = messages()

    async def call() -> object:
        response = await router.acompletion(model="bench", messages=msgs, max_completion_tokens=400,
                                            temperature=0.8, timeout=30.0)
        assert response.choices[0].message.content
        return response

    async def close() -> None:
        return None

    return call, close


async def timed(call: Call) -> float:
    t0 = time.perf_counter()
    await call()
    return (time.perf_counter() - t0) * 1000.0


async def timed_cpu(call: Call) -> tuple[float, float]:
    """Wall ms and the event-loop thread's CPU ms for one call (sequential only: nothing else runs meanwhile)."""
    c0, t0 = time.thread_time(), time.perf_counter()
    await call()
    return (time.perf_counter() - t0) * 1000.0, (time.thread_time() - c0) * 1000.0


async def measure(contenders: dict[str, Call], *, rounds: int, block: int, concurrency: int,
                  deadline: float) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per-call wall ms and CPU ms of each contender, blocks interleaved in a rotating order.

    CPU ms is the event-loop thread's (the request path's, not the call-log writer thread's): per call when
    sequential, the block's divided by its calls when concurrent. ``offpath`` collects, per block, the CPU
    the process spent in other threads (the call-log writer) per call.
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    offpath: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for name in names:   # warm up: connections, imports, first-call caches
        for _ in range(max(5, concurrency // 5)):
            await asyncio.gather(*(contenders[name]() for _ in range(concurrency)))
    for r in range(rounds):
        if time.monotonic() > deadline:
            break
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            call = contenders[name]
            p0, th0, calls0 = time.process_time(), time.thread_time(), len(samples[name])
            if concurrency == 1:
                for _ in range(block):
                    wall, used = await timed_cpu(call)
                    samples[name].append(wall)
                    cpu[name].append(used)
            else:
                for _ in range(max(1, block // concurrency)):
                    c0 = time.thread_time()
                    samples[name].extend(await asyncio.gather(*(timed(call) for _ in range(concurrency))))
                    cpu[name].append((time.thread_time() - c0) * 1000.0 / concurrency)
            other = (time.process_time() - p0) - (time.thread_time() - th0)
            offpath[name].append(other * 1000.0 / max(1, len(samples[name]) - calls0))
    return samples, cpu, offpath


async def bench(ctx: PartContext) -> list[Figure]:
    figures: list[Figure] = []
    with fake_server() as url, fake_server() as fallback_url, tempfile.TemporaryDirectory() as tmp:
        base = url + "/v1"
        bare, bare_close = bare_call(base)
        taelio, taelio_close, log = taelio_call(base, Path(tmp) / "calls.duckdb")
        # The same router with no call log: separates the router's own cost from the log's.
        nolog, nolog_close, _ = taelio_call(base, None)
        contenders: dict[str, Call] = {"bare": bare, "taelio": taelio, "taelio-nolog": nolog}
        closes = [bare_close, taelio_close, nolog_close]
        try:
            import litellm  # noqa: F401

            peer, peer_close = litellm_call(base, fallback_url + "/v1")
            contenders["litellm"] = peer
            closes.append(peer_close)
        except ImportError:
            ctx.raw["litellm"] = "not installed: pip install -r benchmarks/requirements.txt"
        try:
            for label, concurrency in (("sequential", 1), ("50 concurrent", 50)):
                rounds = 6 if ctx.quick else 20
                block = (100 if ctx.quick else 250) if concurrency > 1 else (30 if ctx.quick else 100)
                share = ctx.left() / 2.2 if concurrency == 1 else ctx.left() - 20
                samples, cpu, offpath = await measure(contenders, rounds=rounds, block=block, concurrency=concurrency,
                                        deadline=time.monotonic() + max(5.0, share))
                figures += summarise(label, samples, cpu, ctx)
                if concurrency == 1:
                    figures += await count_calls(contenders, ctx)
                if offpath.get("taelio"):
                    off = percentile(offpath["taelio"], 50) - percentile(offpath["bare"], 50)
                    figures.append(Figure(part="router", name=f"call-log writer CPU off the request path, {label}",
                                          value=off, unit="ms/request", baseline="(other threads, minus bare's)",
                                          note="CPU in the DuckDB writer thread; competes for the GIL"))
        finally:
            for close in closes:
                await close()
            log.flush()
            ctx.raw["taelio_logged_requests"] = log.count_requests()
            log.close()
    return figures


async def count_calls(contenders: dict[str, Call], ctx: PartContext, n: int = 100) -> list[Figure]:
    """Python function calls per request on the request path (the event-loop thread), counted by cProfile.

    A count does not depend on how busy the machine is, so it separates "does more work" from "waited
    longer" where a fraction of a millisecond drowns in run-queue noise. The call-log writer's thread is
    not counted (its cost is the "off the request path" figure).
    """
    counts: dict[str, float] = {}
    for name, call in contenders.items():
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(n):
            await call()
        profiler.disable()
        counts[name] = pstats.Stats(profiler).total_calls / n
    ctx.raw["python_calls_per_request"] = counts
    bare = counts["bare"]
    out = []
    for name in ("taelio", "taelio-nolog"):
        if name not in counts:
            continue
        added = counts[name] - bare
        peer = counts.get("litellm")
        ratio = (peer - bare) / added if peer is not None and added > 0 else None
        out.append(Figure(part="router", name=f"added Python calls per request ({name}), sequential", value=added,
                          unit="calls", baseline=(f"LiteLLM +{peer - bare:,.0f} calls" if peer is not None
                                                  else "LiteLLM not run"), target="<= 80", met=added <= 80,
                          note=f"bare SDK call: {bare:,.0f} calls; LiteLLM adds {ratio:.1f}x as many"
                          if ratio else f"bare SDK call: {bare:,.0f} calls"))
    return out


def summarise(label: str, samples: dict[str, list[float]], cpu: dict[str, list[float]],
              ctx: PartContext) -> list[Figure]:
    """Added latency (contender minus bare) in wall time, and in client CPU time.

    On a machine shared by many busy processes, wall time per call swings by
    milliseconds whatever the code does; the client CPU a call costs does not
    wait in the run queue, so the CPU figures are the ones that resolve a
    0.25 ms target. Both are reported.
    """
    def stats(values: dict[str, list[float]]) -> dict[str, tuple[float, float, int]]:
        return {name: (percentile(v, 50), percentile(v, 99), len(v)) for name, v in values.items() if v}

    wall, used = stats(samples), stats(cpu)
    ctx.raw[label] = {"wall": {k: {"p50_ms": round(a, 4), "p99_ms": round(b, 4), "n": n} for k, (a, b, n) in
                               wall.items()},
                      "cpu": {k: {"p50_ms": round(a, 4), "p99_ms": round(b, 4), "n": n} for k, (a, b, n) in
                              used.items()}}
    if "bare" not in wall or "taelio" not in wall:
        return [Figure(part="router", name=f"added latency, {label}", value=None, unit="ms",
                       note="ran out of time before any sample")]
    out = []
    # Issue 15's targets: p50 <= 0.25 ms; CPU p99 <= 0.5 ms (wall p99 keeps issue 8's 1 ms); >= 20x LiteLLM.
    for kind, table, p99_target in (("wall", wall, 1.0), ("CPU", used, 0.5)):
        b50, b99, _ = table["bare"]
        t50, t99, n = table["taelio"]
        peer = table.get("litellm")
        add50, add99 = t50 - b50, t99 - b99
        l50 = peer[0] - b50 if peer else None
        l99 = peer[1] - b99 if peer else None
        note = f"bare SDK {kind} p50 {b50:.2f} ms, p99 {b99:.2f} ms; {n} samples each"
        out.append(Figure(part="router", name=f"added p50 ({kind}), {label}", value=add50, unit="ms",
                          baseline=f"LiteLLM +{l50:.2f} ms" if l50 is not None else "LiteLLM not run",
                          target="<= 0.25 ms", met=add50 <= 0.25, note=note))
        out.append(Figure(part="router", name=f"added p99 ({kind}), {label}", value=add99, unit="ms",
                          baseline=f"LiteLLM +{l99:.2f} ms" if l99 is not None else "LiteLLM not run",
                          target=f"<= {p99_target:g} ms", met=add99 <= p99_target))
        if "taelio-nolog" in table:
            nolog50 = table["taelio-nolog"][0] - b50
            out.append(Figure(part="router", name=f"added p50 ({kind}) with no call log, {label}", value=nolog50,
                              unit="ms", baseline="same router, sink=None", target="<= 0.25 ms",
                              met=nolog50 <= 0.25))
        if l50 is not None:
            ratio = l50 / add50 if add50 > 0 else float("inf")
            out.append(Figure(part="router", name=f"LiteLLM added / Taelio added, p50 ({kind}), {label}",
                              value=ratio, unit="x", baseline=f"Taelio +{add50:.3f} ms, LiteLLM +{l50:.2f} ms",
                              target=">= 20x", met=ratio >= 20))
    return out


def run(ctx: PartContext) -> list[Figure]:
    return asyncio.run(bench(ctx))


def main() -> None:
    run_standalone(run, __doc__.splitlines()[0], seconds=240.0)


if __name__ == "__main__":
    main()
