"""The OpenAI adapter through the real ``openai`` SDK against the local fake server."""
from __future__ import annotations

import openai
import pytest

from taelio_core.errors import (
    AuthFailed,
    BadRequest,
    BadResponse,
    ContentBlocked,
    ModelNotFound,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from taelio_core.providers.openai import OpenAIProvider, map_error
from taelio_core.routing.generation import Usage
from tests.fakeserver import FakeServer
from tests.providers.adapter_contract import (
    HTTP_REQUEST,
    SYSTEM,
    USER,
    AdapterContract,
    bare_instance,
    call,
    chat_request,
    http_response,
    status_error,
    stream_deltas,
)


SDK_CASES = [
    (openai.APIConnectionError(request=HTTP_REQUEST), ProviderUnavailable),
    (openai.APITimeoutError(request=HTTP_REQUEST), ProviderTimeout),
    (status_error(openai.RateLimitError, 429, headers={"retry-after": "3"}), RateLimited),
    (status_error(openai.AuthenticationError, 401), AuthFailed),
    (status_error(openai.PermissionDeniedError, 403), AuthFailed),
    (status_error(openai.NotFoundError, 404), ModelNotFound),
    (status_error(openai.BadRequestError, 400), BadRequest),
    (status_error(openai.UnprocessableEntityError, 422), BadRequest),
    (status_error(openai.ConflictError, 409), BadRequest),
    (status_error(openai.InternalServerError, 500), ProviderUnavailable),
    (status_error(openai.InternalServerError, 503), ProviderUnavailable),
    (status_error(openai.APIStatusError, 418), BadRequest),
    (openai.BadRequestError("filtered", response=http_response(400), body={"code": "content_filter"}),
     ContentBlocked),
    (openai.APIResponseValidationError(response=http_response(200), body=None), BadResponse),
    (openai.APIError("An error occurred during streaming", HTTP_REQUEST, body={"type": "server_error"}),
     BadResponse),
    (openai.APIError("slow down", HTTP_REQUEST, body={"code": "rate_limit_exceeded"}), RateLimited),
    (openai.ContentFilterFinishReasonError(), ContentBlocked),
    (bare_instance(openai.LengthFinishReasonError), BadResponse),
    (openai.OpenAIError("The api_key client option must be set"), BadRequest),
    (ValueError("Expecting value: line 1 column 1"), BadResponse),
]


class TestOpenAI(AdapterContract):
    name, model, key = "openai", "gpt-4", "sk-test-openai-0123456789abcdef"
    refused_suffix = "/v1"
    map_error = staticmethod(map_error)
    sdk_cases, sdk_roots, min_sdk_classes = SDK_CASES, [openai.OpenAIError], 15

    def make(self, base_url: str | None, key: str | None) -> OpenAIProvider:
        return OpenAIProvider(name="openai", api_key=key, base_url=base_url, key_env="OPENAI_API_KEY")

    def test_complete_returns_text_usage_and_sends_settings(self, provider: OpenAIProvider,
                                                            fake_server: FakeServer) -> None:
        fake_server.set_usage("openai", input_tokens=1200, output_tokens=85, cached_tokens=1024)
        completion = call(provider, self.model, chat_request(max_tokens=321, temperature=0.25))
        assert completion.text == f"A fake openai answer from {self.model}: a lighthouse keeper finds a message."
        assert completion.usage == Usage(input_tokens=1200, output_tokens=85, cached_tokens=1024)
        assert completion.finish_reason == "stop"
        [sent] = fake_server.requests
        assert sent.path == "/v1/chat/completions" and sent.key == self.key
        assert sent.headers["authorization"] == f"Bearer {self.key}"
        assert sent.body["model"] == self.model
        assert sent.body["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
        assert sent.body["max_completion_tokens"] == 321 and sent.body["temperature"] == 0.25
        assert not sent.stream

    def test_a_stream_asks_for_usage_on_its_last_chunk(self, provider: OpenAIProvider,
                                                       fake_server: FakeServer) -> None:
        stream_deltas(provider, self.model)
        [sent] = fake_server.requests
        assert sent.stream and sent.body["stream_options"] == {"include_usage": True}

    def test_no_key_sends_a_placeholder_never_the_environment_key(self, fake_server: FakeServer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-123456")
        provider = OpenAIProvider(name="openai", api_key=None, base_url=fake_server.base_url("openai"), key_env="X")
        assert provider.availability().reason == "no API key (set X)"
        call(provider, self.model)
        assert fake_server.requests[-1].key == OpenAIProvider.placeholder_key

    def test_rate_limit_carries_retry_after_from_either_header(self) -> None:
        err = map_error(status_error(openai.RateLimitError, 429, headers={"retry-after": "3"}), provider="openai",
                        model=self.model)
        assert isinstance(err, RateLimited) and err.retry_after == 3.0 and err.http_status == 429
        err = map_error(status_error(openai.RateLimitError, 429, headers={"retry-after-ms": "1500"}), provider="openai",
                        model=self.model)
        assert isinstance(err, RateLimited) and err.retry_after == 1.5
