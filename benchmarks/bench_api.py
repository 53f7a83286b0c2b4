"""HTTP API overhead: what ``taelio serve`` adds over the in-process router, beside LiteLLM's proxy.

Every contender calls the same local fake OpenAI-protocol server (its own
process, zero artificial latency), one-entry chain, same request:

* ``router``: ``Router.agenerate`` / ``Router.astream`` in this process (call log on);
* ``api``: the same request through ``taelio serve --workers 1`` (``POST /generate/idea``, JSON and SSE),
  from an ``httpx`` client with a kept-alive connection;
* ``api /v1`` and ``direct``: an OpenAI chat request through Taelio's ``/v1/chat/completions`` and straight
  to the fake server, from the same ``httpx`` client;
* ``litellm proxy``: the same OpenAI chat request through ``litellm --config`` (one deployment on the fake
  server), when ``litellm[proxy]`` is installed (``LITELLM_PROXY_BIN`` or ``litellm`` on the PATH).

Blocks of calls are interleaved so machine drift hits all alike. Reported: p50/p99 added by the HTTP layer
(api − router), the added p50 of Taelio's /v1 and of LiteLLM's proxy over the direct call, and the throughput
of 200 concurrent SSE streams with ``--workers 1`` and ``--workers 2``.

    PYTHONPATH=. python benchmarks/bench_api.py [--quick]
"""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import ROOT, Figure, PartContext, child_env, fake_server, percentile, run_standalone  # noqa: E402

KEY = "sk-bench-000000000000"
PROXY_KEY = "sk-bench-proxy-master-0123456789abcdef"
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
MODEL = "gpt-4o-mini"
POLICY = """
name = "bench-api"
[defaults]
timeout_s = 30
max_tokens = 400
[providers.openai]
kind = "openai"
base_url = "{base_url}"
[tasks.idea]
user = "Premise: {{prompt}}\\nGenre: {{genre}}\\nTone: {{tone}}\\nGive me one story idea."
[tiers.pro]
[routes.pro]
idea = ["openai:{model}"]
[breakers]
enabled = false
"""
BODY = {"prompt": "A lighthouse keeper finds a message.", "genre": "any", "tone": "any"}
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Premise: A lighthouse keeper finds a message."}]}
Call = Callable[[], Awaitable[object]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    import httpx
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


@contextmanager
def taelio_serve(env: dict[str, str], workers: int) -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "taelio_core", "serve", "--port", str(port), "--workers",
                             str(workers)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def serve_env(fake: str, tmp: Path) -> tuple[Path, dict[str, str]]:
    """The bench policy (one OpenAI entry on the fake server) written in ``tmp``, and ``taelio serve``'s env."""
    policy = tmp / "bench.toml"
    policy.write_text(POLICY.format(base_url=fake + "/v1", model=MODEL))
    return policy, child_env(OPENAI_API_KEY=KEY, JWT_SECRET=SECRET, TAELIO_POLICY=str(policy), TAELIO_MODE="live",
                             DATABASE_URL=str(tmp / "api.duckdb"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu_per_call(call: Call, n: int, pid: int | None = None) -> float:
    """CPU ms per call: of this process (``pid`` None), or of the server process ``pid``."""
    before = time.process_time() if pid is None else cpu_seconds(pid)
    for _ in range(n):
        await call()
    after = time.process_time() if pid is None else cpu_seconds(pid)
    return (after - before) * 1000.0 / n


@contextmanager
def litellm_proxy(base_url: str, tmp: Path) -> Iterator[str | None]:
    binary = os.environ.get("LITELLM_PROXY_BIN") or shutil.which("litellm")
    if not binary:
        yield None
        return
    config = tmp / "litellm.yaml"
    # The proxy refuses to start without a master key (it would accept every request): it checks that key as
    # Taelio checks its JWT, so both sides authenticate every request.
    config.write_text(f"model_list:\n  - model_name: {MODEL}\n    litellm_params:\n      model: openai/{MODEL}\n"
                      f"      api_base: {base_url}\n      api_key: {KEY}\n"
                      f"general_settings:\n  master_key: {PROXY_KEY}\n")
    port = free_port()
    env = {**child_env(), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    proc = subprocess.Popen([binary, "--config", str(config), "--port", str(port), "--num_workers", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, timeout_s=180)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


async def measure(contenders: dict[str, Call], *, rounds: int, block: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:   # rotate the order each round
            for _ in range(block):
                t0 = time.perf_counter()
                await contenders[name]()
                samples[name].append((time.perf_counter() - t0) * 1000.0)
    return samples


async def streams_per_second(url: str, token: str, *, streams: int, in_flight: int) -> float:
    import httpx
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    gate = asyncio.Semaphore(in_flight)
    # One connection per stream, as 200 separate clients would open (a kept-alive connection reused just as
    # the server's keep-alive timer closes it fails with ReadError: a client-side race, not the server's).
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def one() -> None:
            async with gate, client.stream("POST", "/generate/idea", json=BODY, headers=headers) as response:
                assert response.status_code == 200
                async for _ in response.aiter_bytes():
                    pass
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(streams)))
        return streams / (time.perf_counter() - t0)


async def bench(ctx: PartContext) -> list[Figure]:
    import httpx

    from taelio_core.api.auth import AuthSettings, mint_token
    from taelio_core.config.settings import load_settings
    from taelio_core.routing.inputs import Inputs
    from taelio_core.wiring import Taelio

    rounds, block = (6, 10) if ctx.quick else (20, 25)
    figures: list[Figure] = []
    with fake_server() as fake, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        policy, env = serve_env(fake, tmp)
        engine = Taelio.open(policy=policy, database=tmp / "router.duckdb",
                             settings=load_settings(env={"OPENAI_API_KEY": KEY, "TAELIO_MODE": "live"}))
        token = mint_token(AuthSettings(secret=SECRET), sub="bench", tier="pro", ttl_s=3600)
        auth = {"Authorization": f"Bearer {token}"}
        inputs = Inputs(**BODY)
        with taelio_serve(env, workers=1) as (api, api_pid), litellm_proxy(fake + "/v1", tmp) as proxy:
            async with httpx.AsyncClient(timeout=60) as client:
                async def router_json() -> object:
                    return await engine.router.agenerate("pro", "idea", inputs)

                async def router_stream() -> object:
                    return [c async for c in engine.router.astream("pro", "idea", inputs)]

                async def api_json() -> object:
                    response = await client.post(api + "/generate/idea", json=BODY, headers=auth)
                    assert response.status_code == 200, response.text
                    return response

                async def api_stream() -> object:
                    async with client.stream("POST", api + "/generate/idea", json=BODY,
                                             headers={**auth, "Accept": "text/event-stream"}) as response:
                        return [c async for c in response.aiter_bytes()]

                async def direct_chat() -> object:
                    return (await client.post(fake + "/v1/chat/completions", json=CHAT,
                                              headers={"Authorization": f"Bearer {KEY}"})).json()

                async def api_chat() -> object:
                    body = {**CHAT, "model": "taelio/idea"}
                    return (await client.post(api + "/v1/chat/completions", json=body, headers=auth)).json()

                contenders: dict[str, Call] = {"router": router_json, "api": api_json,
                                               "router stream": router_stream, "api stream": api_stream,
                                               "direct": direct_chat, "api /v1": api_chat}
                if proxy:
                    async def proxy_chat() -> object:
                        response = await client.post(proxy + "/v1/chat/completions", json=CHAT,
                                                     headers={"Authorization": f"Bearer {PROXY_KEY}"})
                        assert response.status_code == 200, response.text
                        return response
                    contenders["litellm proxy"] = proxy_chat
                for call in contenders.values():          # warm up every path once
                    await call()
                samples = await measure(contenders, rounds=rounds, block=block)
                # CPU per request is far less sensitive to a busy machine than wall time: the server's own
                # CPU per request through HTTP against this process's CPU per in-process router call.
                n_cpu = 100 if ctx.quick else 400
                cpu = {"router": await cpu_per_call(router_json, n_cpu),
                       "api": await cpu_per_call(api_json, n_cpu, api_pid),
                       "router stream": await cpu_per_call(router_stream, n_cpu),
                       "api stream": await cpu_per_call(api_stream, n_cpu, api_pid)}
        engine.close()
        ctx.raw["samples"] = {k: len(v) for k, v in samples.items()}
        p = {name: (percentile(v, 50), percentile(v, 99)) for name, v in samples.items()}
        for kind, inproc, http in (("JSON", "router", "api"), ("SSE", "router stream", "api stream")):
            add50, add99 = p[http][0] - p[inproc][0], p[http][1] - p[inproc][1]
            figures.append(Figure(part="api", name=f"HTTP layer added p50 ({kind})", value=add50, unit="ms",
                                  baseline=f"router {p[inproc][0]:.2f} ms, API {p[http][0]:.2f} ms",
                                  note="wall time, client included; on a busy machine the CPU figure is the one "
                                       "to judge by" if kind == "JSON" else ""))
            figures.append(Figure(part="api", name=f"HTTP layer added p99 ({kind})", value=add99, unit="ms",
                                  baseline=f"router {p[inproc][1]:.2f} ms, API {p[http][1]:.2f} ms"))
            added_cpu = cpu[http] - cpu[inproc]
            figures.append(Figure(part="api", name=f"HTTP layer added CPU per request, server side ({kind})",
                                  value=added_cpu, unit="ms", target="<= 1 ms", met=added_cpu <= 1.0,
                                  baseline=f"router {cpu[inproc]:.2f} ms, API server {cpu[http]:.2f} ms CPU"))
        taelio_added = p["api /v1"][0] - p["direct"][0]
        if proxy:
            litellm_added = p["litellm proxy"][0] - p["direct"][0]
            ratio = litellm_added / taelio_added if taelio_added > 0 else None
            figures.append(Figure(part="api", name="LiteLLM proxy added / Taelio API added, p50 (/v1, JSON)",
                                  value=ratio, unit="x", target=">= 5x", met=None if ratio is None else ratio >= 5,
                                  baseline=f"Taelio +{taelio_added:.2f} ms, LiteLLM +{litellm_added:.2f} ms "
                                           f"over a direct call ({p['direct'][0]:.2f} ms)"))
        else:
            figures.append(Figure(part="api", name="Taelio API /v1 added over a direct call, p50", value=taelio_added,
                                  unit="ms", note="LiteLLM proxy not measured: litellm[proxy] is not installed"))
        streams = 200 if ctx.quick else 1000
        for workers in (1, 2):
            with taelio_serve(env, workers=workers) as (api, _):
                rate = await streams_per_second(api, token, streams=streams, in_flight=200)
            figures.append(Figure(part="api", name=f"SSE streams/s, 200 in flight, --workers {workers}",
                                  value=rate, unit="streams/s", note=f"{streams} streams in all"))
    return figures


def run(ctx: PartContext) -> list[Figure]:
    return asyncio.run(bench(ctx))


def main() -> None:
    run_standalone(run, __doc__.splitlines()[0], seconds=600.0)


if __name__ == "__main__":
    main()
