"""A silent provider must not block the fallbacks (issue 13, B4: failoverbench's "silent upstream").

The shipped policies (``seed`` and ``current``) run here unchanged, in the
sandbox's virtual time, with one provider that never answers (not an error:
no byte at all). Whichever provider is silent, on every tier x task chain,
whole answers and streams, the request is served by the first entry after
it, well within the request's deadline. Before the fix a silent Gemini took
30 s + 29.4 s (a timeout, then a retry of the same entry) and the deadline
then skipped openai and anthropic.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from taelio_core.config.policy_parser import load_policy
from taelio_core.providers.function import FunctionProvider
from taelio_core.routing.clock import LoopClock
from taelio_core.routing.generation import ChatRequest, Completion, Usage
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Router
from taelio_core.sandbox.loop import VirtualTimeLoop

START = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
INPUTS = Inputs(prompt="A lighthouse keeper finds a message", genre="Mystery", tone="Dark")
PROVIDERS = ("gemini", "openai", "anthropic")


async def _silent(model: str, request: ChatRequest) -> Completion:
    await asyncio.Event().wait()  # never answers, never fails
    raise AssertionError("unreachable")


def _answer(model: str, request: ChatRequest) -> Completion:
    return Completion(text=f"An answer from {model}.", usage=Usage(input_tokens=50, output_tokens=20),
                      finish_reason="stop", response_model=model)


def _run(policy_name: str, silent: str, tier: str, task: str, *, streaming: bool):  # noqa: ANN202
    policy = load_policy(policy_name)
    providers = {name: FunctionProvider(name, _silent if name == silent else _answer) for name in policy.providers}
    loop = VirtualTimeLoop()
    try:
        router = Router(policy, providers, clock=LoopClock(START, loop))

        async def go():  # noqa: ANN202
            if not streaming:
                return await router.agenerate(tier, task, INPUTS)
            stream = router.astream(tier, task, INPUTS)
            async for _ in stream:
                pass
            return stream.result

        started = loop.time()
        result = loop.run_until_complete(go())
        return policy, result, loop.time() - started
    finally:
        loop.close()


CASES = [(policy, silent, streaming) for policy in ("seed", "current") for silent in PROVIDERS
         for streaming in (False, True)]


@pytest.mark.parametrize(("policy_name", "silent", "streaming"), CASES,
                         ids=[f"{p}-{s}-silent-{'stream' if st else 'whole'}" for p, s, st in CASES])
def test_with_one_silent_provider_every_chain_is_served_by_the_next_entry(policy_name: str, silent: str,
                                                                           streaming: bool) -> None:
    policy = load_policy(policy_name)
    for tier in policy.tiers:
        for task in policy.tasks:
            chain = policy.chain(tier, task)
            if silent not in {e.provider for e in chain}:
                continue
            _, result, elapsed = _run(policy_name, silent, tier, task, streaming=streaming)
            expected = next(e for e in chain if e.provider != silent)
            where = f"{policy_name} {tier}/{task} with {silent} silent"
            assert result.ok, f"{where}: {result.error}"
            assert (result.provider, result.model) == (expected.provider, expected.model), where
            tried = [a for a in result.attempts if a.provider == silent]
            # Tried once, timed out, and not retried: a retry would have eaten the fallbacks' time.
            if chain[0].provider == silent:
                assert [(a.error_type, a.retry) for a in tried] == [("timeout", 0)], where
                assert result.fallback_depth == 1, where
            assert elapsed < policy.model.resilience.deadline_s, where


def test_the_shipped_worst_case_for_a_chain_of_three_is_what_the_docs_say() -> None:
    """docs/resilience.md: one silent entry costs 20 s (whole answers) or 15 s (streams) with the defaults."""
    _, whole, whole_s = _run("seed", "gemini", "free", "idea", streaming=False)
    _, streamed, streamed_s = _run("seed", "gemini", "free", "idea", streaming=True)
    assert whole.attempts[0].latency_ms == pytest.approx(20_000) and whole_s == pytest.approx(20.0)
    assert "its share of the 60 s left for 3 entries" in whole.attempts[0].error
    assert streamed.attempts[0].latency_ms == pytest.approx(15_000) and streamed_s == pytest.approx(15.0)
    assert "no first token within 15 s" in streamed.attempts[0].error
    assert whole.attempts[0].sent is True  # it was sent and nothing came back


def test_two_silent_entries_still_leave_the_third_its_share() -> None:
    policy = load_policy("seed")
    providers = {name: FunctionProvider(name, _answer if name == "anthropic" else _silent)
                 for name in policy.providers}
    loop = VirtualTimeLoop()
    try:
        router = Router(policy, providers, clock=LoopClock(START, loop))
        result = loop.run_until_complete(router.agenerate("free", "idea", INPUTS))
    finally:
        loop.close()
    assert result.provider == "anthropic"
    assert [(a.provider, a.error_type) for a in result.attempts] == [
        ("gemini", "timeout"), ("openai", "timeout"), ("anthropic", None)]
    assert result.fallback_depth == 2


# ---- the same through the real SDKs, against the fake server's never-answering fault ---------------------------

def _sdk_policy(provider: str) -> str:
    from tests.resilience.fault_matrix import MODELS, NEXT

    lines = ['name = "silent"', "[defaults]", "timeout_s = 5", "max_tokens = 50"]
    for name in MODELS:
        lines += [f"[providers.{name}]", f'kind = "{name}"']
    lines += ["[tasks.idea]", 'user = "Premise: {prompt}"', "[tiers.pro]", "[routes.pro]",
              f'idea = ["{provider}:{MODELS[provider]}", "{NEXT[provider]}:{MODELS[NEXT[provider]]}"]',
              # The shipped rules with short times: a 6 s deadline shared by two entries, 1.5 s to a first token
              # (room enough for the next entry's real call on a loaded machine).
              "[resilience]", "deadline_s = 6", "first_token_s = 1.5", "backoff_base_s = 0.01", "backoff_max_s = 0.02"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_through_the_real_sdk_a_silent_provider_falls_back_in_its_share_of_the_deadline(
        fake_server, provider: str, streaming: bool) -> None:  # noqa: ANN001
    from taelio_core.config.policy_parser import parse_policy
    from taelio_core.config.settings import load_settings
    from taelio_core.providers import build_providers
    from tests.fakeserver import Fault
    from tests.resilience.fault_matrix import KEYS, NEXT

    policy = parse_policy(_sdk_policy(provider), source="silent.toml")
    router = Router(policy, build_providers(policy, load_settings(env=fake_server.env(**KEYS)), mode="live"))
    fake_server.fail(provider, Fault.timeout(delay_s=60.0), times=None)  # sent, and never answered
    if streaming:
        stream = router.stream("pro", "idea", INPUTS)
        text = "".join(x for x in stream if isinstance(x, str))
        result = stream.result
        assert text == result.text
    else:
        result = router.generate("pro", "idea", INPUTS)
    assert result.ok and result.provider == NEXT[provider], result.error
    silent = [a for a in result.attempts if a.provider == provider]
    assert [(a.error_type, a.sent) for a in silent] == [("timeout", True)]  # not retried: no time for it
    assert ("no first token within 1.5 s" if streaming else "its share of the 6 s left") in silent[0].error
    assert any(r.provider == provider for r in fake_server.requests)  # it did reach the server


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_request_that_never_left_is_told_apart_from_one_sent_and_unanswered(fake_server, provider: str) -> None:  # noqa: ANN001
    from taelio_core.config.policy_parser import parse_policy
    from taelio_core.config.settings import load_settings
    from taelio_core.providers import build_providers
    from tests.fakeserver import closed_port
    from tests.resilience.fault_matrix import KEYS, NEXT

    base = f"http://127.0.0.1:{closed_port()}"
    text = _sdk_policy(provider).replace(f'[providers.{provider}]\nkind = "{provider}"',
                                         f'[providers.{provider}]\nkind = "{provider}"\nbase_url = "{base}/"')
    policy = parse_policy(text, source="refused.toml")
    router = Router(policy, build_providers(policy, load_settings(env=fake_server.env(**KEYS)), mode="live"))
    result = router.generate("pro", "idea", INPUTS)
    assert result.provider == NEXT[provider]
    refused = [a for a in result.attempts if a.provider == provider]
    assert refused and all(a.sent is False and "never sent" in (a.error or "") for a in refused)


def test_a_connect_timeout_or_refusal_is_never_sent_and_a_read_timeout_was_sent() -> None:
    import httpx2

    from taelio_core.providers.transport import CONNECT_TIMEOUT_S, map_transport_error, sdk_timeout

    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/x")
    for exc in (httpx2.ConnectTimeout("slow connect", request=request), httpx2.ConnectError("refused", request=request)):
        err = map_transport_error(exc, provider="p", model="m")
        assert err is not None and err.sent is False and "never sent" in str(err)
    read = map_transport_error(httpx2.ReadTimeout("slow read", request=request), provider="p", model="m")
    assert read is not None and read.sent is None and read.error_type == "timeout"
    # The SDKs connect within CONNECT_TIMEOUT_S whatever the attempt's timeout, so an unreachable host fails
    # as "never sent" before the attempt's own timer would call it a silent provider.
    timers = sdk_timeout(30.0)
    assert (timers.connect, timers.read) == (CONNECT_TIMEOUT_S, 30.0) and sdk_timeout(1.0).connect == 1.0


class _SlowSetup(FunctionProvider):
    """Like the SDK adapters: the client is made on first use, unless ``warm`` made it already; making it is
    slow here (a loaded machine: 22 of 174 attempts in issue 13 timed out this way without reaching the server)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, _answer)
        self.client: object | None = None

    async def warm(self) -> None:
        if self.client is None:
            await asyncio.sleep(10.0)
            self.client = object()

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        await self.warm()
        return await super().complete(model, request)


def test_client_setup_is_not_counted_against_the_attempts_timeout() -> None:
    policy = load_policy("seed")
    providers = {name: _SlowSetup(name) for name in policy.providers}
    loop = VirtualTimeLoop()
    try:
        router = Router(policy, providers, clock=LoopClock(START, loop))
        result = loop.run_until_complete(router.agenerate("free", "idea", INPUTS, deadline_s=15))
    finally:
        loop.close()
    # The 10 s setup is longer than the attempt's 5 s share of the 15 s deadline, but happens before its timer.
    assert result.ok and [a.error_type for a in result.attempts] == [None]
    assert result.attempts[0].latency_ms < 1.0
