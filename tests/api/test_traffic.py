"""``taelio serve`` when traffic is cut: a client that leaves mid-stream, and SIGTERM during traffic."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.api.server import ApiServer

pytestmark = pytest.mark.timeout(600)
BODY = {"prompt": "A lighthouse keeper finds a bottle", "genre": "Mystery", "tone": "Bleak"}


def test_a_client_that_leaves_mid_stream_cancels_the_call_and_is_logged_as_cancelled(api: ApiServer) -> None:
    api.fake.set_text("gemini", " ".join(["word"] * 400))
    api.fake.chunk_delay_s = 0.05                                      # 200 chunks: ~10 s if read to the end
    abandoned_before = api.fake.abandoned
    try:
        headers = {**api.headers(sub="leaver"), "Accept": "text/event-stream"}
        with httpx.stream("POST", api.url + "/generate/idea", json=BODY, headers=headers, timeout=60) as response:
            request_id = response.headers["x-taelio-request-id"]
            for line in response.iter_lines():
                if line.startswith("event: text"):
                    break                                               # one chunk, then hang up
        rows = api.wait_logged("request_id = ?", [request_id], 1)
        assert list(rows["status"]) == ["cancelled"] and list(rows["source"]) == ["api"]
        deadline = time.monotonic() + 30
        while api.fake.abandoned == abandoned_before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert api.fake.abandoned == abandoned_before + 1     # the provider's stream was dropped, not read out
    finally:
        api.fake.chunk_delay_s = 0.0
    # the server carries on
    assert httpx.post(api.url + "/generate/idea", json=BODY, headers=api.headers(), timeout=60).status_code == 200


def test_sigterm_during_traffic_finishes_what_is_in_flight_flushes_the_log_and_exits_0(tmp_path: Path) -> None:
    server = ApiServer.start(tmp_path)
    server.fake.chunk_delay_s = 0.02
    server.fake.set_text("gemini", " ".join(["word"] * 100))          # 50 chunks: about a second each
    order: list[str] = []
    try:
        async def traffic() -> list[tuple[int, str | None]]:
            async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
                async def call(n: int) -> tuple[int, str | None]:
                    headers = server.headers(sub=f"u{n}")
                    if n % 2:
                        headers["Accept"] = "text/event-stream"
                    try:
                        response = await client.post("/generate/idea", json=BODY, headers=headers)
                    except httpx.TransportError:
                        return 0, None                                   # refused: never acknowledged
                    order.append("answered")
                    return response.status_code, response.headers.get("x-taelio-request-id")

                tasks = [asyncio.create_task(call(n)) for n in range(60)]
                await asyncio.sleep(0.5)                                 # requests are in flight...
                server.proc.send_signal(15)                              # ...when SIGTERM arrives
                order.append("SIGTERM")
                return await asyncio.gather(*tasks)

        outcomes = asyncio.run(traffic())
        assert server.proc.wait(timeout=90) == 0
    finally:
        server.stop()
    acknowledged = [rid for status, rid in outcomes if status == 200]
    assert "answered" in order[order.index("SIGTERM"):]                  # requests in flight at SIGTERM finished
    assert acknowledged and all(status in (200, 0) for status, _ in outcomes)
    from taelio_core.calllog import DuckDBCallLog
    with DuckDBCallLog(server.db) as log:
        logged = set(log.query("SELECT request_id FROM requests WHERE source = 'api'")["request_id"])
    assert set(acknowledged) <= logged                                   # nothing acknowledged is lost
