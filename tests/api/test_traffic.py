"""``taelio serve`` when traffic is cut: a client that leaves mid-stream, and SIGTERM during traffic."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from taelio_core.calllog import DuckDBCallLog
from tests.api.server import ApiServer

pytestmark = pytest.mark.timeout(600)
BODY = {"prompt": "A lighthouse keeper finds a bottle", "genre": "Mystery", "tone": "Bleak"}


def _leave_after_first_text(api: ApiServer, path: str, body: dict, *, sub: str) -> str:
    """Stream ``path`` and hang up after the first text event; the request id the server gave."""
    headers = {**api.headers(sub=sub), "Accept": "text/event-stream"}
    with httpx.stream("POST", api.url + path, json=body, headers=headers, timeout=60) as response:
        request_id = response.headers["x-taelio-request-id"]
        for line in response.iter_lines():
            if line.startswith("event: text") or line.startswith("data: {\"id\""):
                break                                                   # one chunk, then hang up
    return request_id


def _wait_abandoned(api: ApiServer, before: int) -> int:
    deadline = time.monotonic() + 30
    while api.fake.abandoned == before and time.monotonic() < deadline:
        time.sleep(0.1)
    return api.fake.abandoned


def test_a_client_that_leaves_mid_stream_cancels_the_call_and_the_chain_walk_logs_it_with_its_attempts(
        api: ApiServer) -> None:
    api.fake.fail("gemini", "server_error")                            # the first entry fails: a fallback
    api.fake.set_text("openai", " ".join(["word"] * 400))
    api.fake.chunk_delay_s = 0.05                                      # 200 chunks: ~10 s if read to the end
    abandoned_before = api.fake.abandoned
    try:
        request_id = _leave_after_first_text(api, "/generate/idea", BODY, sub="leaver")
        rows = api.wait_logged("request_id = ?", [request_id], 1)
        assert _wait_abandoned(api, abandoned_before) == abandoned_before + 1  # the stream was dropped, not read
    finally:
        api.fake.chunk_delay_s = 0.0
    time.sleep(1.5)                                                    # two more flushes: no second row comes
    rows = api.requests_where("request_id = ?", [request_id])
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["status"], row["source"], row["user_id"]) == ("cancelled", "api", "leaver")
    assert (row["provider"], row["model"]) == ("openai", "o-1")        # who was answering when the client left
    with DuckDBCallLog(api.db) as log:
        attempts = log.query("SELECT n, provider, status, error_type, error, cost_usd FROM attempts "
                             "WHERE request_id = ? ORDER BY n", [request_id])
    assert [tuple(a) for a in attempts[["n", "provider", "status", "error_type"]].itertuples(index=False)] == [
        (1, "gemini", "error", "unavailable"), (2, "openai", "cancelled", "caller_cancelled")]
    cancelled = attempts.iloc[1]
    assert cancelled["error"].startswith("cancelled: the caller went away after ")
    assert cancelled["cost_usd"] > 0                                   # estimated input and shown text, priced
    # the server carries on
    assert httpx.post(api.url + "/generate/idea", json=BODY, headers=api.headers(), timeout=60).status_code == 200


def test_a_client_that_leaves_the_full_story_stream_logs_the_part_in_flight_as_cancelled_and_starts_no_story(
        api: ApiServer) -> None:
    api.fake.set_text("gemini", " ".join(["word"] * 400))
    api.fake.chunk_delay_s = 0.05
    abandoned_before = api.fake.abandoned
    try:
        parent_id = _leave_after_first_text(api, "/multi-agent/full-story-orchestrated", BODY, sub="story-leaver")
        rows = api.wait_logged("parent_id = ?", [parent_id], 1)
        assert _wait_abandoned(api, abandoned_before) == abandoned_before + 1
    finally:
        api.fake.chunk_delay_s = 0.0
    time.sleep(1.5)
    rows = api.requests_where("parent_id = ?", [parent_id])
    assert list(zip(rows["task"], rows["status"])) == [("idea", "cancelled")]
    with DuckDBCallLog(api.db) as log:
        attempts = log.query("SELECT provider, status FROM attempts WHERE request_id = ?", [rows["request_id"][0]])
    assert list(zip(attempts["provider"], attempts["status"])) == [("gemini", "cancelled")]


def test_an_openai_sdk_style_stream_left_mid_way_is_logged_once_as_cancelled(api: ApiServer) -> None:
    api.fake.set_text("gemini", " ".join(["word"] * 400))
    api.fake.chunk_delay_s = 0.05
    try:
        body = {"model": "taelio/idea", "stream": True, "messages": [{"role": "user", "content": "A lighthouse"}]}
        request_id = _leave_after_first_text(api, "/v1/chat/completions", body, sub="sdk-leaver")
        api.wait_logged("request_id = ?", [request_id], 1)
    finally:
        api.fake.chunk_delay_s = 0.0
    time.sleep(1.5)
    rows = api.requests_where("request_id = ?", [request_id])
    assert list(rows["status"]) == ["cancelled"]
    with DuckDBCallLog(api.db) as log:
        attempts = log.query("SELECT status FROM attempts WHERE request_id = ?", [request_id])
    assert list(attempts["status"]) == ["cancelled"]


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
