"""Any OpenAI-compatible server (Ollama, vLLM, LM Studio, llama.cpp): the seed's "add more providers" path.

A policy entry names it, gives its ``base_url`` and, if the server wants
one, the environment variable holding its key (``api_key_env``)::

    [providers.ollama]
    kind = "openai_compatible"
    base_url = "http://localhost:11434/v1"

It reuses the OpenAI adapter (and so the ``openai`` SDK, still imported only
in ``providers/openai.py``) with two differences: the output limit is sent
as ``max_tokens``, which these servers understand (OpenAI's newer
``max_completion_tokens`` is not universal), and a server with no key
configured gets a placeholder, never ``$OPENAI_API_KEY``.
"""
from __future__ import annotations

from taelio_core.providers.base import Availability
from taelio_core.providers.registry import find_kind
from taelio_core.providers.openai import OpenAIProvider

__all__ = ["OpenAICompatibleProvider"]


class OpenAICompatibleProvider(OpenAIProvider):
    kind = "openai_compatible"
    facts = find_kind("openai_compatible", discover=False)  # SDK, key and base-URL variables: one registry
    max_tokens_param = "max_tokens"

    def __init__(self, *, name: str, api_key: str | None = None, base_url: str | None = None,
                 key_env: str = "", key_required: bool = False) -> None:
        super().__init__(name=name, api_key=api_key, base_url=base_url, key_env=key_env, key_required=key_required)

    def availability(self) -> Availability:
        if not self.base_url:
            return Availability(available=False, reason="no base_url configured")
        return super().availability()
