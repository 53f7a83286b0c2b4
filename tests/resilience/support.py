"""Shared fakes for the resilience tests: a small policy, a fake clock, scripted providers."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from taelio_core.config.policy import RoutingPolicy
from taelio_core.errors import ProviderError
from taelio_core.providers.function import FunctionProvider
from taelio_core.routing.generation import ChatRequest, Completion, StreamEnd, TextDelta, Usage
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Router
from tests.policies import build_policy

INPUTS = Inputs(prompt="A lighthouse keeper finds a message")


def policy(extra: str = "") -> RoutingPolicy:
    """Three simulated providers; pro routes a → b → c, free only c (the cheap one); ``extra`` is raw TOML."""
    return build_policy(
        providers={"a": "simulated", "b": "simulated", "c": "simulated"},
        defaults={"timeout_s": 5.0, "max_tokens": 100},
        tiers={"free": {}, "pro": {"allow_provider_override": True}},
        routes={"free": {"idea": ["c:c1"]}, "pro": {"idea": ["a:a1", "b:b1", "c:c1"]}},
        pricing={"a:a1": (1000, 1000), "b:b1": (1000, 1000), "c:c1": (10, 10)}, extra=extra)


class FakeClock:
    """Time that moves only when the router sleeps or a test advances it."""

    def __init__(self) -> None:
        self.t = 0.0
        self.start = datetime(2026, 11, 26, 14, 0, 0, tzinfo=timezone.utc)
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.t += seconds


def answer(text: str = "An answer.", *, input_tokens: int = 10, output_tokens: int = 20) -> Completion:
    return Completion(text=text, usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
                      finish_reason="stop")


def scripted(name: str, script: list[Any]) -> FunctionProvider:
    """Each call takes the next item: a ProviderError class/instance to raise, or a Completion/str to return.

    The last item repeats.
    """
    state = {"i": 0}

    def fn(model: str, request: ChatRequest) -> Any:
        item = script[min(state["i"], len(script) - 1)]
        state["i"] += 1
        if isinstance(item, type) and issubclass(item, ProviderError):
            raise item(f"scripted {item.__name__}", provider=name, model=model)
        if isinstance(item, Exception):
            raise item
        if callable(item) and not isinstance(item, Completion | str):
            return item(model, request)
        return answer(item) if isinstance(item, str) else item

    return FunctionProvider(name, fn)


def streaming(name: str, events: Callable[[str, ChatRequest], list[Any]]) -> FunctionProvider:
    return FunctionProvider(name, lambda m, r: answer(), stream_fn=events)


def words(*parts: str, finish: bool = True) -> list[Any]:
    out: list[Any] = [TextDelta(text=p) for p in parts]
    if finish:
        out.append(StreamEnd(usage=Usage(input_tokens=5, output_tokens=len(parts)), finish_reason="stop"))
    return out


async def never(model: str, request: ChatRequest) -> Completion:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def router(providers: dict[str, Any], *, extra: str = "", clock: Any = None, seed: int = 1, **kw: Any) -> Router:
    import random
    pol = policy(extra)
    full = {n: providers.get(n) or scripted(n, ["unused"]) for n in pol.providers}
    return Router(pol, full, clock=clock or FakeClock(), rng=random.Random(seed), **kw)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
