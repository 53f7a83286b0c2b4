"""``taelio serve`` under load: 1,000 concurrent requests (200 of them SSE) with 20% provider faults.

The fake provider server runs in its own process here, so the test process is only the clients.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.api.server import ApiServer

pytestmark = pytest.mark.timeout(600)
BODY = {"prompt": "A lighthouse keeper finds a bottle", "genre": "Mystery", "tone": "Bleak"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer.start(tmp_path_factory.mktemp("load"), extra_env={"TAELIO_STORE_USER": "hash"},
                             remote_fake=True)
    try:
        yield server
    finally:
        server.stop()


async def one_json(client: httpx.AsyncClient, api: ApiServer, n: int) -> tuple[str, dict]:
    response = await client.post("/generate/idea", json=BODY, headers=api.headers(sub=f"user-{n % 50}"))
    assert response.status_code == 200, response.text
    doc = response.json()
    return doc["request_id"], doc


async def one_stream(client: httpx.AsyncClient, api: ApiServer, n: int) -> tuple[str, dict]:
    headers = {**api.headers(sub=f"user-{n % 50}"), "Accept": "text/event-stream"}
    async with client.stream("POST", "/generate/idea", json=BODY, headers=headers) as response:
        assert response.status_code == 200
        text, trace = [], None
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                data = json.loads(line[6:])
                if "text" in data and "part" in data:
                    text.append(data["text"])
                elif "attempts" in data:
                    trace = data
        assert trace is not None and "".join(text) == trace["text"]
        return response.headers["x-taelio-request-id"], trace


def test_a_thousand_concurrent_requests_with_faults_are_all_answered_and_logged_once(api: ApiServer) -> None:
    api.fake.fail("gemini", "unavailable", times=200)              # 20% of requests meet a provider fault

    async def run() -> list[tuple[str, dict]]:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        async with httpx.AsyncClient(base_url=api.url, timeout=300, limits=limits) as client:
            calls = [one_stream(client, api, n) if n % 5 == 0 else one_json(client, api, n) for n in range(1000)]
            return await asyncio.gather(*calls)

    answers = asyncio.run(run())
    assert len(answers) == 1000 and sum(1 for n in range(1000) if n % 5 == 0) == 200
    for _, doc in answers:
        assert doc["status"] == "ok" and doc["text"], doc
        assert [a["provider"] for a in doc["attempts"]] in (["gemini"], ["gemini", "openai"]), [(a["provider"], a["error_type"], a["error"], a["latency_ms"]) for a in doc["attempts"]]
    # One fallback per injected fault, and no other (the policy's clocks are generous: a slow fake is no fault).
    why = Counter(doc["attempts"][0]["error_type"] for _, doc in answers if len(doc["attempts"]) == 2)
    assert why == {"unavailable": 200}, why
    ids = [request_id for request_id, _ in answers]
    assert len(set(ids)) == 1000
    api.wait_logged("source = 'api' AND task = 'idea'", None, 1000)
    rows = api.requests_where("source = 'api' AND task = 'idea'", columns="request_id, user_id, status")
    assert sorted(rows["request_id"]) == sorted(ids)                  # exactly one row per request
    hashed = {hashlib.sha256(f"user-{i}".encode()).hexdigest() for i in range(50)}
    assert set(rows["user_id"]) == hashed                              # TAELIO_STORE_USER=hash
    assert set(rows["status"]) == {"ok"}


