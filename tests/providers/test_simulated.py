"""The simulator's timeout fault: quick where a person waits (demo mode), the whole timeout where time is virtual.

A real provider that times out takes the attempt's whole timeout (30 s by
default). The simulator built for demo mode gives up after
``SIM_TIMEOUT_WAIT_S`` instead, and says so in the error, so the Generate
page shows the timeout and the fallback within seconds. A ``SimProfile``
built without that setting (the default) still waits out the whole timeout.
Everything runs on a virtual-time loop, so every duration is exact.
"""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taelio_core.config.settings import load_settings
from taelio_core.errors import ProviderTimeout
from taelio_core.providers import SIM_TIMEOUT_WAIT_S, SimProfile, SimulatedProvider, build_providers
from taelio_core.routing.clock import LoopClock
from taelio_core.routing.generation import ChatRequest, GenerationSettings
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Router
from tests.experiments.virtual_time import VirtualTimeLoop
from tests.policies import build_policy

START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def _timing_out_policy(timeout_s: float = 30.0):  # noqa: ANN202
    return build_policy(
        providers={"stuck": "simulated", "fine": "simulated"}, defaults={"timeout_s": timeout_s},
        resilience={"max_retries": 0}, breakers={"enabled": False},
        routes={"pro": {"idea": ["stuck:s-1", "fine:f-1"]}},
        simulator={"stuck": {"error_rates": {"timeout": 1.0}},
                   "fine": {"latency_ms": 100, "latency_sigma": 0, "ttft_ms": 20}})


def _elapsed(provider: SimulatedProvider, *, streaming: bool, timeout_s: float = 30.0) -> tuple[float, str]:
    """Virtual seconds until the provider fails, and its error message."""
    request = ChatRequest(system="", user="Premise: a lighthouse",
                          settings=GenerationSettings(timeout_s=timeout_s, max_tokens=100))
    loop = VirtualTimeLoop()

    async def fail() -> None:
        if streaming:
            async for _ in provider.stream("m", request):
                pass
        else:
            await provider.complete("m", request)

    try:
        with pytest.raises(ProviderTimeout) as info:
            loop.run_until_complete(fail())
        return loop.time(), str(info.value)
    finally:
        loop.close()


@pytest.mark.parametrize("mode", ["demo", "live"])
def test_a_built_simulator_times_out_quickly_and_the_router_falls_back(mode: str):
    """Demo mode (every provider simulated) and a policy's own simulated providers behave alike."""
    policy = _timing_out_policy()
    providers = build_providers(policy, load_settings(env={}), mode=mode)
    loop = VirtualTimeLoop()
    try:
        router = Router(policy, providers, clock=LoopClock(START, loop))
        result = loop.run_until_complete(router.agenerate("pro", "idea", Inputs(prompt="A lighthouse")))
    finally:
        loop.close()
    stuck, fine = result.attempts
    assert stuck.error_type == "timeout" and stuck.latency_ms == pytest.approx(SIM_TIMEOUT_WAIT_S * 1000)
    assert "a real provider would hang until the attempt's timeout: 30 s" in stuck.error
    assert fine.ok and result.provider == "fine"
    assert SIM_TIMEOUT_WAIT_S < 30.0 / 5


@pytest.mark.parametrize("streaming", [False, True])
def test_a_profile_without_a_wait_takes_the_whole_attempt_timeout(streaming: bool):
    provider = SimulatedProvider(name="stuck", profile=SimProfile(error_rates={"timeout": 1.0}))
    elapsed, message = _elapsed(provider, streaming=streaming, timeout_s=30.0)
    assert elapsed == pytest.approx(30.0) and message == "simulated timeout"


@pytest.mark.parametrize("streaming", [False, True])
def test_the_wait_is_scaled_by_speed_and_never_longer_than_the_timeout(streaming: bool):
    quick = SimulatedProvider(name="s", profile=SimProfile(error_rates={"timeout": 1.0}, timeout_wait_s=2.0,
                                                           speed=0.25))
    assert _elapsed(quick, streaming=streaming)[0] == pytest.approx(0.5)
    short = SimulatedProvider(name="s", profile=SimProfile(error_rates={"timeout": 1.0}, timeout_wait_s=2.0))
    elapsed, message = _elapsed(short, streaming=streaming, timeout_s=0.75)
    assert elapsed == pytest.approx(0.75) and message == "simulated timeout"   # the timeout itself was shorter
    instant = SimulatedProvider(name="s", profile=SimProfile(error_rates={"timeout": 1.0}, speed=0.0))
    assert _elapsed(instant, streaming=streaming)[0] == 0.0


def test_the_simulated_text_repeats_no_sentence_before_using_the_others():
    from taelio_core.providers.simulated import _SENTENCES, simulated_text

    request = ChatRequest(system="", user="Premise: a lighthouse", task="idea",
                          variables=(("prompt", "A lighthouse keeper finds a message"),))
    text = simulated_text(request, provider="gemini", model="gemini-2.5-flash", words=100)
    used = [s for s in _SENTENCES for _ in range(text.count(s))]
    assert len(used) == 10 and sorted(used) == sorted(_SENTENCES)
    assert simulated_text(request, provider="gemini", model="gemini-2.5-flash", words=100) == text


def test_two_prompt_variants_get_different_answers_and_the_same_prompt_the_same_one():
    """Demo mode answers from the rendered request, so a Compare experiment between two prompt templates shows
    a difference (text and token counts), and repeating a prompt repeats its answer."""
    def answer(template: str, prompt: str = "A lighthouse keeper finds a message"):  # noqa: ANN202
        policy = build_policy(providers={"openai": "openai"}, routes={"pro": {"idea": ["openai:gpt-4.1"]}},
                              tasks={"idea": {"user": template}})
        router = Router(policy, build_providers(policy, load_settings(env={}), mode="demo", speed=0.0))
        result = router.generate("pro", "idea", Inputs(prompt=prompt))
        return result.text, result.attempts[0].usage

    terse, terse_usage = answer("Premise: {prompt}")
    vivid, vivid_usage = answer("Write a vivid, surprising story idea in three sentences. Premise: {prompt}")
    assert terse.startswith("[simulated openai:gpt-4.1]") and vivid.startswith("[simulated openai:gpt-4.1]")
    assert terse != vivid
    assert vivid_usage.input_tokens > terse_usage.input_tokens
    assert vivid_usage.output_tokens != terse_usage.output_tokens
    assert answer("Premise: {prompt}") == (terse, terse_usage)
    assert answer("Premise: {prompt}", "A city of rain")[0] != terse
