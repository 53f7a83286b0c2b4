"""A whole provider kind in one module, as a Cohere or Hugging Face adapter would be: the registry test's subject.

It registers itself with its facts (key variables, base-URL variable, catalogue id) and nothing else in
Taelio names it. Its "SDK" is a plain function, so the test needs no network and no new dependency.
"""
from __future__ import annotations

from collections.abc import AsyncIterator

from taelio_core.providers import Provider, register_provider
from taelio_core.providers.base import chunked
from taelio_core.routing.generation import ChatRequest, Completion, StreamEvent, Usage


@register_provider(label="Throwaway", sdk=None, key_env=("THROWAWAY_API_KEY", "THROWAWAY_TOKEN"),
                   base_url_env="THROWAWAY_BASE_URL", catalogue_id="openai")
class ThrowawayProvider(Provider):
    kind = "throwaway"

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        text = f"throwaway {model} via {self.base_url} with key {self._api_key[:3]}...: {request.user}"
        return Completion(text=text, usage=Usage(input_tokens=1000, output_tokens=2000), finish_reason="stop",
                          response_model=model)

    def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        async def events() -> AsyncIterator[StreamEvent]:
            async for event in chunked(await self.complete(model, request)):
                yield event
        return events()
