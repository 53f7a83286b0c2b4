"""A caller that goes away mid-answer: the chain walk concludes the request as ``cancelled``, with its attempts.

Callers go away in two ways: an asyncio caller is cancelled (the HTTP API
when a client disconnects), and a thread stops iterating or is interrupted
(the Generate page on a rerun or Stop, the CLI on Ctrl-C). Either way the
request is logged once, as ``cancelled``, with every attempt: the one in
flight recorded as cancelled with the text it had shown and an estimated
cost; the provider's stream is closed, and what the guards held is settled.
The HTTP API's own test (a real ``taelio serve`` and a client that hangs up)
is in ``tests/api/test_traffic.py``.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import duckdb

from taelio_core.errors import ProviderUnavailable
from taelio_core.providers.base import Provider
from taelio_core.routing.generation import ChatRequest, Completion, StreamEvent, TextDelta
from taelio_core.routing.story_flow import PartText, stream_story
from taelio_core.routing.trace import GenerationResult
from taelio_core.routing.router import Router
from tests.fakeserver import FakeServer
from tests.policies import build_policy
from tests.resilience.fault_matrix import KEYS, MODELS
from tests.resilience.support import INPUTS, router, scripted

NO_RETRY = "[resilience]\nmax_retries = 0\n"
BUDGET = NO_RETRY + "[budgets.provider.b]\nmonthly = 1000\nhard = true\n"


class ListSink:
    def __init__(self) -> None:
        self.results: list[GenerationResult] = []

    def record(self, result: GenerationResult) -> None:
        self.results.append(result)


class Endless(Provider):
    """Streams ``first`` and then waits forever; knows whether its stream was closed."""

    simulated = False  # a real-looking provider: budgets count its spend

    def __init__(self, name: str, first: str = "Once upon") -> None:
        super().__init__(name=name, api_key="k", key_required=True)
        self.first, self.closed, self.started = first, 0, asyncio.Event()

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        try:
            yield TextDelta(text=self.first)
            await asyncio.Event().wait()
        finally:
            self.closed += 1


def _check_cancelled(result: GenerationResult, shown: str) -> None:
    assert result.status == "cancelled" and result.source == "live"
    assert [(a.n, a.provider, a.status, a.error_type) for a in result.attempts] == [
        (1, "a", "error", "unavailable"), (2, "b", "cancelled", "caller_cancelled")]
    cancelled = result.attempts[1]
    assert cancelled.text == shown and cancelled.ttft_ms is not None
    assert cancelled.error == f"cancelled: the caller went away after {len(shown)} characters of text"
    assert cancelled.cost_usd is not None and cancelled.cost_usd > 0
    assert "estimated input and output" in (cancelled.price_source or "")
    assert (result.provider, result.text) == ("b", shown)
    assert result.error == f"The caller went away while b:b1 was answering ({len(shown)} characters shown); " \
                           "the call was cancelled."


def test_a_cancelled_asyncio_caller_ends_the_request_as_cancelled_logged_once_with_its_attempts() -> None:
    sink, b = ListSink(), Endless("b")
    r = router({"a": scripted("a", [ProviderUnavailable]), "b": b}, sink=sink, extra=BUDGET)

    async def client() -> None:
        stream = r.astream("pro", "idea", INPUTS)
        got: list[str] = []

        async def read() -> None:
            async for item in stream:
                got.append(item)  # type: ignore[arg-type]

        reader = asyncio.create_task(read())
        while not got:
            await asyncio.sleep(0)
        reader.cancel()                                   # what Starlette does when the client disconnects
        await asyncio.gather(reader, return_exceptions=True)
        assert stream.result is sink.results[0]

    asyncio.run(client())
    [result] = sink.results
    _check_cancelled(result, "Once upon")
    assert b.closed == 1                                  # the provider's stream was closed, not left open
    [budget] = r.budgets.status()                         # the hold for the call in flight was settled...
    assert budget.reserved_usd == 0 and budget.spent_usd == result.attempts[1].cost_usd  # ...at its estimate


def test_a_thread_that_stops_reading_ends_the_request_as_cancelled_like_the_generate_page_on_a_rerun() -> None:
    sink, b = ListSink(), Endless("b")
    r = router({"a": scripted("a", [ProviderUnavailable]), "b": b}, sink=sink, extra=NO_RETRY)
    stream = r.stream("pro", "idea", INPUTS)
    for _ in stream:
        break                                             # the page's script stopped: the iterator is closed
    [result] = sink.results
    _check_cancelled(result, "Once upon")
    assert stream.result is result and b.closed == 1


def test_a_story_flow_left_mid_idea_logs_the_idea_as_cancelled_and_never_starts_the_story() -> None:
    sink, b = ListSink(), Endless("b")
    story = build_policy(providers={"a": "simulated", "b": "simulated"}, resilience={"max_retries": 0},
                         tasks={"idea": {"user": "Premise: {prompt}"}, "story": {"user": "{idea}", "needs": "idea"}},
                         routes={"pro": {"idea": ["a:a1", "b:b1"], "story": ["b:b1"]}},
                         pricing={"a:a1": (1000, 1000), "b:b1": (1000, 1000)})
    r = Router(story, {"a": scripted("a", [ProviderUnavailable]), "b": b}, sink=sink)
    for event in stream_story(r, "pro", INPUTS):
        if isinstance(event, PartText):
            break
    [result] = sink.results
    assert result.task == "idea" and result.parent_id is not None
    _check_cancelled(result, "Once upon")


def test_a_cancelled_whole_answer_request_is_logged_as_cancelled_with_the_call_in_flight() -> None:
    sink, b = ListSink(), Endless("b")
    r = router({"a": scripted("a", [ProviderUnavailable]), "b": b}, sink=sink, extra=NO_RETRY)

    async def client() -> None:
        task = asyncio.create_task(r.agenerate("pro", "idea", INPUTS))
        await b.started.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(client())
    [result] = sink.results
    assert result.status == "cancelled" and result.provider is None        # no text was shown: nobody served it
    assert [(a.provider, a.status, a.error_type) for a in result.attempts] == [
        ("a", "error", "unavailable"), ("b", "cancelled", "caller_cancelled")]
    assert result.attempts[1].error == "cancelled: the caller went away before any text"


def test_a_caller_that_leaves_during_a_hedged_race_has_both_racers_logged_as_cancelled_by_the_caller() -> None:
    sink, a, b = ListSink(), Endless("a"), Endless("b")
    r = router({"a": a, "b": b}, sink=sink, extra="[resilience]\nmax_retries = 0\n[hedging.pro]\nafter_ms = 1\n"
                                                  "floor_ms = 0\n")

    async def client() -> None:
        task = asyncio.create_task(r.agenerate("pro", "idea", INPUTS))
        await a.started.wait()
        await b.started.wait()                                              # the hedge started too
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(client())
    [result] = sink.results
    assert result.status == "cancelled"
    assert sorted((x.provider, x.status, x.error_type, x.hedge) for x in result.attempts) == [
        ("a", "cancelled", "caller_cancelled", False), ("b", "cancelled", "caller_cancelled", True)]


def test_ctrl_c_during_a_streamed_cli_generation_logs_the_request_once_as_cancelled(
        fake_server: FakeServer, tmp_path: Path) -> None:
    db, policy = tmp_path / "c.duckdb", tmp_path / "p.toml"
    policy.write_text("\n".join(['name = "c"', "[providers.openai]", 'kind = "openai"', "[tasks.idea]",
                                 'user = "Premise: {prompt}"', "[tiers.pro]", "[routes.pro]",
                                 f'idea = ["openai:{MODELS["openai"]}"]']) + "\n")
    fake_server.set_text("openai", " ".join(["word"] * 400))
    fake_server.chunk_delay_s = 0.05                                        # ~10 s if read to the end
    proc = subprocess.Popen([sys.executable, "-m", "taelio_core", "--db", str(db), "--policy", str(policy),
                             "generate", "--tier", "pro", "--task", "idea", "--prompt", "A lighthouse", "--stream"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ,
                                                                                  **fake_server.env(**KEYS)})
    try:
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        shown, deadline = b"", time.monotonic() + 60
        while b"word" not in shown and time.monotonic() < deadline:         # the text streams to stdout
            shown += proc.stdout.read() or b""
            time.sleep(0.05)
        assert b"word" in shown
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        fake_server.chunk_delay_s = 0.0
        if proc.poll() is None:
            proc.kill()
    con = duckdb.connect(str(db), read_only=True)
    try:
        requests = con.execute("SELECT request_id, status, provider FROM requests").fetchall()
        attempts = con.execute("SELECT status, error_type FROM attempts").fetchall()
    finally:
        con.close()
    assert [r[1:] for r in requests] == [("cancelled", "openai")]
    assert attempts == [("cancelled", "caller_cancelled")]
