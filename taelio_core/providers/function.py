"""A provider driven by a plain function, for tests and experiments.

The function gets ``(model, request)`` and returns a ``Completion``, a string,
or raises a ``ProviderError``; it may be async. With ``stream_fn`` a test can
script a stream event by event, including one that breaks half-way.
"""
from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from taelio_core.providers.base import Provider, chunked
from taelio_core.routing.generation import ChatRequest, Completion, StreamEvent, Usage

__all__ = ["FunctionProvider"]


class FunctionProvider(Provider):
    kind = "function"

    def __init__(self, name: str, fn: Callable[[str, ChatRequest], Any], *,
                 stream_fn: Callable[[str, ChatRequest], Iterable[StreamEvent | Exception]] | None = None,
                 available: bool = True) -> None:
        super().__init__(name=name, api_key="function" if available else None, key_required=True)
        self.fn = fn
        self.stream_fn = stream_fn
        self.calls: list[tuple[str, ChatRequest]] = []

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        self.calls.append((model, request))
        out = self.fn(model, request)
        if inspect.isawaitable(out):
            out = await out
        if isinstance(out, str):
            out = Completion(text=out, usage=Usage(input_tokens=len(request.user.split()),
                                                   output_tokens=len(out.split())),
                             finish_reason="stop", response_model=model)
        return out

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        if self.stream_fn is None:
            completion = await self.complete(model, request)
            async for event in chunked(completion):
                yield event
            return
        self.calls.append((model, request))
        for item in self.stream_fn(model, request):
            if isinstance(item, Exception):
                raise item
            yield item
