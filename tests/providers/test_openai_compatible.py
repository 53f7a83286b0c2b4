"""An OpenAI-compatible server (Ollama, vLLM...) through the OpenAI adapter, against the fake server."""
from __future__ import annotations

import openai
import pytest

from taelio_core.config.policy_parser import parse_policy, policy_path
from taelio_core.config.settings import load_settings
from taelio_core.providers import build_providers
from taelio_core.providers.openai import map_error
from taelio_core.providers.openai_compatible import OpenAICompatibleProvider
from taelio_core.routing.generation import Usage
from tests.fakeserver import FakeServer
from tests.providers.adapter_contract import AdapterContract, call, chat_request, stream_deltas
from tests.providers.test_openai import SDK_CASES

MODEL = "llama3.2"


class TestOpenAICompatible(AdapterContract):
    """The whole contract again: the same SDK, but under another name, path and output-limit parameter."""

    name, model, key = "ollama", MODEL, "local-server-key-123456"  # a key of no known shape: redaction must hold
    refused_suffix = "/v1"
    map_error = staticmethod(map_error)
    sdk_cases, sdk_roots = SDK_CASES, [openai.OpenAIError]  # the same mapper as the OpenAI adapter

    def make(self, base_url: str | None, key: str | None) -> OpenAICompatibleProvider:
        return OpenAICompatibleProvider(name="ollama", api_key=key, base_url=base_url, key_env="OLLAMA_KEY",
                                        key_required=True)


def test_sends_max_tokens_and_answers_with_usage(fake_server: FakeServer) -> None:
    provider = OpenAICompatibleProvider(name="ollama", base_url=fake_server.base_url("ollama"))
    fake_server.set_usage("ollama", input_tokens=30, output_tokens=12)
    completion = call(provider, MODEL, chat_request(max_tokens=99, temperature=0.5))
    assert completion.text == f"A fake ollama answer from {MODEL}: a lighthouse keeper finds a message."
    assert completion.usage == Usage(input_tokens=30, output_tokens=12)
    [sent] = fake_server.requests
    assert sent.path == "/ollama/v1/chat/completions" and sent.provider == "ollama"
    assert sent.body["max_tokens"] == 99 and "max_completion_tokens" not in sent.body
    assert sent.body["temperature"] == 0.5
    streamed, _ = stream_deltas(provider, MODEL)
    assert streamed.text == completion.text and streamed.usage == completion.usage


def test_a_keyless_server_is_available_and_never_gets_the_openai_key(fake_server: FakeServer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key-must-not-leave-123")
    provider = OpenAICompatibleProvider(name="ollama", base_url=fake_server.base_url("ollama"))
    assert provider.availability().available
    call(provider, MODEL)
    assert fake_server.requests[-1].key == OpenAICompatibleProvider.placeholder_key


def test_without_a_base_url_it_is_unavailable_and_says_why() -> None:
    availability = OpenAICompatibleProvider(name="ollama").availability()
    assert not availability.available and availability.reason == "no base_url configured"


def test_a_required_key_that_is_missing_makes_it_unavailable(fake_server: FakeServer) -> None:
    provider = OpenAICompatibleProvider(name="vllm", base_url=fake_server.base_url("vllm"), key_env="VLLM_KEY",
                                        key_required=True)
    assert provider.availability().reason == "no API key (set VLLM_KEY)"


def test_build_providers_makes_one_from_the_policy(fake_server: FakeServer) -> None:
    text = policy_path("current").read_text(encoding="utf-8")
    text = text.replace('# [providers.ollama]\n# kind = "openai_compatible"\n# base_url = "http://localhost:11434/v1"',
                        f'[providers.ollama]\nkind = "openai_compatible"\nbase_url = "{fake_server.base_url("ollama")}"')
    assert "[providers.ollama]" in text
    policy = parse_policy(text, source="test.toml")
    providers = build_providers(policy, load_settings(env={"OPENAI_API_KEY": "sk-x-123456789"}), mode="live")
    ollama = providers["ollama"]
    assert isinstance(ollama, OpenAICompatibleProvider) and ollama.availability().available
    assert call(ollama, MODEL).text.startswith("A fake ollama answer")
