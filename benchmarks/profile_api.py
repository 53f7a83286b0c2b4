"""Where ``taelio serve`` spends its CPU per request: yappi's CPU clock inside a running server under load.

Starts the fake provider server and the API app on uvicorn (one worker, the settings ``taelio serve``
uses) inside a wrapper that runs yappi with its CPU clock on every thread, sends JSON ``POST
/generate/idea`` requests one after another (as ``bench_api`` measures them), and prints CPU µs per request
by layer (the library a function's file belongs to) and the functions with the most own CPU. A CPU clock
is not fooled by a busy machine the way wall-clock sampling is; yappi slows every call alike, so read the
shares, not the absolute µs. Needs ``yappi`` (``pip install yappi``).

    PYTHONPATH=. python benchmarks/profile_api.py [--requests 2000] [--stream] [--top 30]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.util
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_api import BODY, SECRET, free_port, serve_env, wait_http  # noqa: E402
from benchmarks.harness import fake_server  # noqa: E402

# The server: yappi (CPU clock, all threads) around the same uvicorn.run ``taelio serve`` makes. SIGUSR1 clears
# the stats (after the warm-up); on exit they are saved where argv[2] says.
SERVER = """
import signal, sys, yappi, uvicorn
signal.signal(signal.SIGTERM, lambda *_: None)  # as serve does: uvicorn re-raises SIGTERM after its shutdown
yappi.set_clock_type("cpu")
yappi.start(builtins=False, profile_threads=True)
signal.signal(signal.SIGUSR1, lambda *_: yappi.clear_stats())
from taelio_core.cli.serve import uvicorn_options
uvicorn.run("taelio_core.api.app:app_from_env", factory=True, host="127.0.0.1", port=int(sys.argv[1]),
            **uvicorn_options())
yappi.stop()
yappi.get_func_stats().save(sys.argv[2], type="pstat")
"""
# (layer, substring of a function's file), first match wins.
LAYERS = (
    ("taelio api", "taelio_core/api/"), ("taelio call log", "taelio_core/calllog/"),
    ("taelio core (routing, guards, pricing, providers)", "taelio_core/"), ("pydantic", "pydantic"),
    ("json", "/json/"), ("jwt", "/jwt/"), ("prometheus", "prometheus_client"), ("openai SDK", "/openai/"),
    ("httpx2/httpcore2 (provider HTTP)", "/httpx2/"), ("httpx2/httpcore2 (provider HTTP)", "/httpcore2/"),
    ("fastapi", "/fastapi/"), ("starlette", "/starlette/"), ("anyio", "/anyio/"), ("uvicorn", "/uvicorn/"),
    ("h11", "/h11/"), ("duckdb/pyarrow", "duckdb"), ("duckdb/pyarrow", "pyarrow"), ("asyncio", "/asyncio/"),
    ("threading/queue", "threading.py"), ("threading/queue", "queue.py"), ("logging", "/logging/"),
    ("typing", "typing.py"), ("builtins", "~"),
)


# Functions on a request's way through the HTTP layer, for their inclusive CPU ("file:function" substrings).
PATH = ("httptools_impl.py:run_asgi", "proxy_headers.py:__call__", "starlette/applications.py:__call__",
        "taelio_core/api/app.py:__call__", "middleware/exceptions.py:__call__", "fastapi/routing.py:app",
        "dependencies/utils.py:solve_dependencies", "taelio_core/api/service.py:authed",
        "taelio_core/api/auth.py:verify_token", "taelio_core/api/limits.py:admit",
        "taelio_core/api/routes.py:generate", "taelio_core/api/service.py:generate",
        "taelio_core/routing/router.py:agenerate", "taelio_core/routing/trace.py:as_dict",
        "taelio_core/routing/chain_walk.py:run", "taelio_core/routing/attempts.py:complete",
        "taelio_core/providers/openai.py:complete", "fastapi/routing.py:run_endpoint_function",
        "fastapi/dependencies/utils.py:request_body_to_args", "fastapi/routing.py:get_request_handler",
        "starlette/responses.py:render", "starlette/responses.py:__call__", "fastapi/routing.py:serialize_response",
        "taelio_core/api/metrics.py:observe", "fastapi/routing.py:_prepare_response_content",
        "starlette/requests.py:body", "fastapi/routing.py:_extract_endpoint_context",
        "calllog/duckdb.py:_run", "analytics/rollup.py:fold_after_write", "calllog/duckdb.py:record")


def layer_of(path: str) -> str:
    for name, needle in LAYERS:
        if needle in path:
            return name
    return "other stdlib"


def summarize(stats_path: Path, requests: int, top: int) -> str:
    stats = pstats.Stats(str(stats_path)).stats  # type: ignore[attr-defined]
    by_layer: collections.Counter[str] = collections.Counter()
    own: list[tuple[float, str]] = []
    for (path, line, name), (_cc, _nc, tottime, _cum, _callers) in stats.items():
        by_layer[layer_of(path)] += tottime
        short = path.split("site-packages/")[-1].split("/wt/api/")[-1]
        own.append((tottime, f"{name} ({short}:{line})"))
    total = sum(by_layer.values())
    us = 1e6 / requests
    out = [f"{requests} requests, {total * us:.0f} µs CPU per request under yappi", "", "by layer:"]
    out += [f"  {t * us:7.0f} µs {t / total:6.1%}  {name}" for name, t in by_layer.most_common()]
    out += ["", "inclusive CPU of the request's path (yappi follows coroutines across awaits):"]
    for (path, line, name), (_cc, nc, _tottime, cumtime, _callers) in sorted(stats.items(), key=lambda kv: -kv[1][3]):
        if any(file in path and name.split(".")[-1] == func for file, _, func in map(lambda n: n.partition(":"), PATH)):
            short = path.split("site-packages/")[-1].split("/wt/api/")[-1]
            out.append(f"  {cumtime * us:7.0f} µs  {nc / requests:5.1f}x  {name} ({short}:{line})")
    out += ["", f"top {top} functions by own CPU:"]
    out += [f"  {t * us:7.1f} µs  {name}" for t, name in sorted(own, reverse=True)[:top]]
    return "\n".join(out)


async def load(url: str, headers: dict[str, str], requests: int) -> None:
    import httpx
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(requests):
            response = await client.post(url + "/generate/idea", json=BODY, headers=headers)
            assert response.status_code == 200, response.text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--stream", action="store_true", help="SSE requests instead of JSON")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    if importlib.util.find_spec("yappi") is None:
        sys.stderr.write("profile_api: yappi is not installed (pip install yappi)\n")
        return 2
    from taelio_core.api.auth import AuthSettings, mint_token
    token = mint_token(AuthSettings(secret=SECRET), sub="bench", tier="pro", ttl_s=3600)
    headers = {"Authorization": f"Bearer {token}"} | ({"Accept": "text/event-stream"} if args.stream else {})
    with fake_server() as fake, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        _, env = serve_env(fake, tmp)
        port, out = free_port(), tmp / "server.pstat"
        proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(out)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url + "/readyz", proc)
            asyncio.run(load(url, headers, 200))                      # warm: connections, caches
            time.sleep(1.0)                                           # the call log's flush of the warm-up
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(0.2)
            asyncio.run(load(url, headers, args.requests))
            time.sleep(1.0)                                           # ...and of these requests
        finally:
            proc.terminate()
            proc.wait(timeout=120)
        print(summarize(out, args.requests, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
