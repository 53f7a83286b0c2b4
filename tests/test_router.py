"""Router behaviour with function-driven providers: order, skips, fallback, streams, traces."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from decimal import Decimal

import pytest

from taelio_core.errors import (
    AllProvidersFailed,
    AuthFailed,
    BadResponse,
    InputError,
    ProviderUnavailable,
    RateLimited,
)
from taelio_core.config.policy_parser import load_policy, parse_policy
from taelio_core.providers.function import FunctionProvider
from taelio_core.routing.generation import ChatRequest, Completion, StreamEnd, TextDelta, Usage
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Router, Truncated
from taelio_core.routing.trace import GenerationResult

# Retries off: these tests are about chain order and traces (retry rules: tests/resilience/test_retries.py).
POLICY = parse_policy(load_policy("seed").text + "\n[resilience]\nmax_retries = 0\n", source="seed.toml")
INPUTS = Inputs(prompt="A mysterious lighthouse keeper", genre="Mystery", tone="Dark and atmospheric")


def answer(text: str = "An answer.") -> Callable[[str, ChatRequest], Completion]:
    return lambda model, req: Completion(text=f"{text} ({model})", usage=Usage(input_tokens=100, output_tokens=50),
                                         finish_reason="stop")


def fail(exc: Exception) -> Callable[[str, ChatRequest], Completion]:
    def fn(model: str, req: ChatRequest) -> Completion:
        raise exc
    return fn


class Sink:
    def __init__(self) -> None:
        self.results: list[GenerationResult] = []

    def record(self, result: GenerationResult) -> None:
        self.results.append(result)


def make_router(gemini=None, openai=None, anthropic=None, *, available=("gemini", "openai", "anthropic")):  # noqa: ANN001, ANN202
    fns = {"gemini": gemini or answer(), "openai": openai or answer(), "anthropic": anthropic or answer()}
    providers = {name: FunctionProvider(name, fn, available=name in available) for name, fn in fns.items()}
    sink = Sink()
    return Router(POLICY, providers, sink=sink), providers, sink


def test_first_available_entry_answers_and_is_priced() -> None:
    router, providers, sink = make_router()
    result = asyncio.run(router.agenerate("pro", "idea", INPUTS))
    assert (result.status, result.provider, result.model) == ("ok", "openai", "gpt-4")
    assert result.text == "An answer. (gpt-4)"
    # gpt-4 at $30/$60 per million tokens
    assert result.cost_usd == Decimal(100 * 30 + 50 * 60) / Decimal(1_000_000)
    assert [a.price_source for a in result.attempts] == ["genai-prices 0.2.3"]
    assert sink.results == [result]
    assert providers["anthropic"].calls == [] and providers["gemini"].calls == []


def test_prompt_is_rendered_from_the_task_template() -> None:
    router, providers, _ = make_router()
    asyncio.run(router.agenerate("free", "idea", INPUTS))
    _model, request = providers["gemini"].calls[0]
    assert "A mysterious lighthouse keeper" in request.user and "Genre: Mystery" in request.user
    assert request.settings.max_tokens == 400


def test_falls_back_in_chain_order_and_records_each_failure() -> None:
    router, _, _ = make_router(
        openai=fail(RateLimited("slow down", retry_after=3, http_status=429)),
        anthropic=fail(ProviderUnavailable("boom", http_status=503)))
    result = asyncio.run(router.agenerate("pro", "idea", INPUTS))
    assert result.provider == "gemini" and result.model == "gemini-1.5-pro"
    assert [(a.provider, a.status, a.error_type, a.http_status) for a in result.attempts] == [
        ("openai", "error", "rate_limited", 429), ("anthropic", "error", "unavailable", 503),
        ("gemini", "ok", None, None)]
    assert result.fallback_depth == 2


def test_entries_without_a_key_are_skipped_with_the_reason() -> None:
    router, providers, _ = make_router(available=("gemini",))
    route = router.route("pro", "story")
    assert [(e.provider, e.available) for e in route] == [("anthropic", False), ("openai", False), ("gemini", True)]
    result = asyncio.run(router.agenerate("pro", "story", INPUTS))
    assert result.provider == "gemini" and len(result.attempts) == 1
    assert [(s.provider, s.reason) for s in result.skipped] == [("anthropic", "no API key"), ("openai", "no API key")]


def test_every_provider_failing_raises_one_sentence_with_every_attempt_and_still_logs() -> None:
    router, _, sink = make_router(
        gemini=fail(AuthFailed("key rejected", http_status=401)),
        openai=fail(ProviderUnavailable("down", http_status=500)), available=("gemini", "openai"))
    with pytest.raises(AllProvidersFailed) as info:
        asyncio.run(router.agenerate("free", "idea", INPUTS))
    err = info.value
    assert len(err.attempts) == 2
    assert str(err) == ("Every provider failed for free/idea: gemini:gemini-1.5-flash key rejected; "
                        "openai:gpt-3.5-turbo unavailable (server error or connection failed); "
                        "anthropic:claude-3-haiku-20240307 skipped (no API key).")
    assert sink.results[0].status == "failed" and sink.results[0].provider is None


def test_an_empty_completion_is_a_bad_response_and_falls_back() -> None:
    router, _, _ = make_router(gemini=lambda m, r: Completion(text="  ", usage=Usage(), finish_reason="stop"))
    result = asyncio.run(router.agenerate("free", "idea", INPUTS))
    assert result.attempts[0].error_type == "bad_response" and result.provider == "openai"


def test_an_adapter_bug_never_escapes_is_not_the_providers_fault_and_is_logged_with_its_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    router, _, sink = make_router(gemini=fail(KeyError("choices")))
    for _ in range(POLICY.model.breakers.consecutive_failures + 1):
        result = asyncio.run(router.agenerate("free", "idea", INPUTS))
        assert result.attempts[0].error_type == "unexpected" and "KeyError" in result.attempts[0].error
        assert result.ok and result.provider == "openai"  # it still falls back: the user gets an answer
    # Breakers ignore our bugs: gemini is still tried after more failures than open a breaker.
    assert router.breakers.state_of("gemini:gemini-1.5-flash") == "closed"
    assert [a.provider for a in sink.results[-1].attempts] == ["gemini", "openai"]
    bug = [r for r in caplog.records if r.name == "taelio_core.routing.attempts" and r.exc_info]
    assert bug and bug[0].exc_info[0] is KeyError  # the traceback is in the process log...
    assert "Traceback" not in (result.attempts[0].error or "")  # ...never in the call log's text


def test_attempt_timeout_comes_from_the_task_settings() -> None:
    async def slow(model: str, req: ChatRequest) -> Completion:
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    text = POLICY.text.replace('[tasks.idea]\n', '[tasks.idea]\ntimeout_s = 0.05\n')
    from taelio_core.config.policy_parser import parse_policy
    policy = parse_policy(text)
    providers = {"gemini": FunctionProvider("gemini", slow), "openai": FunctionProvider("openai", answer()),
                 "anthropic": FunctionProvider("anthropic", answer())}
    result = asyncio.run(Router(policy, providers).agenerate("free", "idea", INPUTS))
    assert result.attempts[0].error_type == "timeout" and result.provider == "openai"


def test_unpriced_model_leaves_cost_none() -> None:
    text = POLICY.text.replace('"openai:gpt-4", "anthropic:claude-3-sonnet-20240229", "gemini:gemini-1.5-pro"]\nstory',
                               '"openai:my-finetune", "anthropic:claude-3-sonnet-20240229"]\nstory')
    from taelio_core.config.policy_parser import parse_policy
    router = Router(parse_policy(text), make_router()[1])
    result = asyncio.run(router.agenerate("pro", "idea", INPUTS))
    assert result.model == "my-finetune" and result.cost_usd is None
    assert result.attempts[0].price_source is None


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"tier": "gold"}, "tier"), ({"task": "poem"}, "task"), ({"provider": "mistral"}, "provider")])
def test_unknown_names_are_input_errors(kwargs: dict, field: str) -> None:
    router, _, _ = make_router()
    args = {"tier": "pro", "task": "idea", **kwargs}
    with pytest.raises(InputError) as info:
        asyncio.run(router.agenerate(args["tier"], args["task"], INPUTS, provider=args.get("provider")))
    assert info.value.field == field


def test_provider_override_only_where_the_tier_allows_it() -> None:
    router, _, _ = make_router()
    with pytest.raises(InputError, match="does not allow"):
        asyncio.run(router.agenerate("free", "idea", INPUTS, provider="openai"))
    result = asyncio.run(router.agenerate("pro", "idea", INPUTS, provider="gemini"))
    assert (result.provider, result.model, len(result.chain)) == ("gemini", "gemini-1.5-pro", 1)


def _stream_router(events_by_provider: dict[str, list]) -> tuple[Router, Sink]:  # noqa: ANN001
    providers = {name: FunctionProvider(name, answer(), stream_fn=(lambda evs: (lambda m, r: evs))(evs))
                 for name, evs in events_by_provider.items()}
    sink = Sink()
    return Router(POLICY, providers, sink=sink), sink


END = StreamEnd(usage=Usage(input_tokens=10, output_tokens=3), finish_reason="stop")


def test_stream_failure_before_first_chunk_falls_back_transparently() -> None:
    router, _ = _stream_router({
        "gemini": [ProviderUnavailable("down", http_status=503)],
        "openai": [TextDelta(text="Hello"), TextDelta(text=" world"), END],
        "anthropic": [END]})

    async def go() -> tuple[list, GenerationResult]:
        stream = router.astream("free", "idea", INPUTS)
        chunks = [c async for c in stream]
        return chunks, stream.result

    chunks, result = asyncio.run(go())
    assert chunks == ["Hello", " world"]
    assert result.status == "ok" and result.text == "Hello world" and result.provider == "openai"
    assert result.attempts[0].error_type == "unavailable" and result.ttft_ms is not None


def test_stream_broken_after_text_is_truncated_never_success() -> None:
    router, sink = _stream_router({
        "gemini": [TextDelta(text="Once upon"), BadResponse("connection reset")],
        "openai": [TextDelta(text="Fresh"), END], "anthropic": [END]})

    async def go(cont: bool) -> tuple[list, GenerationResult]:
        stream = router.astream("free", "idea", INPUTS, continue_on_truncation=cont)
        return [c async for c in stream], stream.result

    chunks, result = asyncio.run(go(False))
    assert chunks == ["Once upon"]
    assert result.status == "truncated" and result.text == "Once upon" and result.attempts[0].status == "truncated"
    assert sink.results[-1].status == "truncated"

    chunks, result = asyncio.run(go(True))
    assert chunks[0] == "Once upon" and isinstance(chunks[1], Truncated) and chunks[2:] == ["Fresh"]
    assert result.status == "ok" and result.text == "Fresh" and result.provider == "openai"


def test_stream_that_stops_without_a_finish_reason_is_caught() -> None:
    router, _ = _stream_router({"gemini": [TextDelta(text="Half a")],
                                "openai": [TextDelta(text="Whole"), END], "anthropic": [END]})

    async def go() -> GenerationResult:
        stream = router.astream("free", "idea", INPUTS)
        _ = [c async for c in stream]
        return stream.result

    result = asyncio.run(go())
    assert result.status == "truncated" and result.attempts[0].error_type == "truncated"


def test_sync_twins_serve_many_threads_at_once() -> None:
    active = {"now": 0, "max": 0}
    release = asyncio.Event()

    async def slow(model: str, req: ChatRequest) -> str:
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        if active["max"] == 8:
            release.set()
        await asyncio.wait_for(release.wait(), timeout=10)   # every call waits until all 8 are in flight
        active["now"] -= 1
        return "done"

    providers = {n: FunctionProvider(n, slow) for n in ("gemini", "openai", "anthropic")}
    router = Router(POLICY, providers)
    results: list[GenerationResult] = []
    threads = [threading.Thread(target=lambda: results.append(router.generate("free", "idea", INPUTS)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(r.ok for r in results)
    assert active["max"] == 8   # no thread's request blocked another's


def test_sync_stream_iterates_from_a_thread() -> None:
    router, _ = _stream_router({"gemini": [TextDelta(text="a"), TextDelta(text="b"), END],
                                "openai": [END], "anthropic": [END]})
    stream = router.stream("free", "idea", INPUTS)
    assert list(stream) == ["a", "b"] and stream.result.text == "ab"


def test_probe_is_logged_as_a_test_request() -> None:
    router, providers, sink = make_router()
    result = asyncio.run(router.aprobe("anthropic", "story"))
    assert result.source == "test" and result.provider == "anthropic" and result.ok
    assert providers["anthropic"].calls[0][1].settings.max_tokens == 64
    assert sink.results == [result]
