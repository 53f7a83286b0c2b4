"""CPU per JSON request of the API's ASGI app alone: no sockets, no uvicorn, the router stubbed with a canned answer.

What FastAPI, the middleware, auth, body parsing, metrics and the JSON answer cost per ``POST /generate/idea``,
measured as this process's CPU time (``time.process_time``), which a busy machine disturbs far less than wall
time. Prints the best and the median of five blocks. To compare two checkouts, run it with each on PYTHONPATH:

    PYTHONPATH=. python benchmarks/asgi_cpu.py [--requests 1000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.bench_api import BODY, MODEL, POLICY, SECRET


async def measure(requests: int) -> list[float]:
    from taelio_core.api.app import create_app
    from taelio_core.api.auth import AuthSettings, mint_token
    from taelio_core.config.settings import load_settings
    from taelio_core.routing.trace import GenerationResult
    from taelio_core.wiring import Taelio

    policy = Path(tempfile.mkdtemp()) / "bench.toml"
    policy.write_text(POLICY.format(base_url="http://127.0.0.1:9/v1", model=MODEL))
    engine = Taelio.open(policy=policy, database=None,
                         settings=load_settings(env={"OPENAI_API_KEY": "sk-unused", "TAELIO_MODE": "live"}))
    canned = GenerationResult(request_id="0" * 32, parent_id=None, tier="pro", task="idea", policy="bench-api",
                              source="api", status="ok", started_at=datetime.now(timezone.utc), text="An idea. " * 40,
                              provider="openai", model=MODEL, latency_ms=1.0, ttft_ms=1.0, chain=(), attempts=(),
                              skipped=())

    async def agenerate(*args: object, **kw: object) -> GenerationResult:
        return canned

    engine.router.agenerate = agenerate  # type: ignore[method-assign]
    app = create_app(auth=AuthSettings(secret=SECRET), engine=engine)
    token = mint_token(AuthSettings(secret=SECRET), sub="bench", tier="pro", ttl_s=3600)
    body = json.dumps(BODY).encode()
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode()),
               (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/generate/idea", "raw_path": b"/generate/idea",
             "query_string": b"", "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 2)}

    async def one() -> None:
        status: list[int] = []
        sent = False

        async def receive() -> dict[str, object]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()
            return {}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])  # type: ignore[arg-type]

        await app(dict(scope), receive, send)
        assert status == [200], status

    blocks = []
    async with app.router.lifespan_context(app):
        for _ in range(200):
            await one()
        for _ in range(5):
            t0 = time.process_time()
            for _ in range(requests):
                await one()
            blocks.append((time.process_time() - t0) / requests * 1e6)
    engine.close()
    return blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    blocks = sorted(asyncio.run(measure(parser.parse_args().requests)))
    print(f"ASGI app CPU per JSON request: best {blocks[0]:.0f} µs, median {blocks[2]:.0f} µs")


if __name__ == "__main__":
    main()
