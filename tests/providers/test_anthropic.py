"""The Anthropic adapter through the real ``anthropic`` SDK against the local fake server."""
from __future__ import annotations

import anthropic
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
from taelio_core.providers.anthropic import AnthropicProvider, map_error
from taelio_core.routing.generation import Usage
from tests.fakeserver import FakeServer
from tests.providers.adapter_contract import (
    HTTP_REQUEST,
    SYSTEM,
    USER,
    AdapterContract,
    call,
    chat_request,
    http_response,
    status_error,
)


def _stream_error(kind: str) -> anthropic.APIStatusError:
    """What the SDK raises for an ``event: error`` inside a 200 stream."""
    return status_error(anthropic.APIStatusError, 200, body={"type": "error", "error": {"type": kind, "message": kind}})


SDK_CASES = [
    (anthropic.APIConnectionError(request=HTTP_REQUEST), ProviderUnavailable),
    (anthropic.APITimeoutError(request=HTTP_REQUEST), ProviderTimeout),
    (status_error(anthropic.RateLimitError, 429, headers={"retry-after": "4"}), RateLimited),
    (status_error(anthropic.AuthenticationError, 401), AuthFailed),
    (status_error(anthropic.PermissionDeniedError, 403), AuthFailed),
    (status_error(anthropic.NotFoundError, 404), ModelNotFound),
    (status_error(anthropic.BadRequestError, 400), BadRequest),
    (status_error(anthropic.UnprocessableEntityError, 422), BadRequest),
    (status_error(anthropic.ConflictError, 409), BadRequest),
    (status_error(anthropic.RequestTimeoutError, 408), ProviderTimeout),
    (status_error(anthropic.InternalServerError, 500), ProviderUnavailable),
    (status_error(anthropic.ServiceUnavailableError, 503), ProviderUnavailable),
    (status_error(anthropic.OverloadedError, 529), ProviderUnavailable),
    (status_error(anthropic.APIStatusError, 418), BadRequest),
    (_stream_error("overloaded_error"), ProviderUnavailable),
    (_stream_error("rate_limit_error"), RateLimited),
    (anthropic.APIResponseValidationError(response=http_response(200), body=None), BadResponse),
    (anthropic.APIError("boom", HTTP_REQUEST, body=None), BadResponse),
    (anthropic.AnthropicError("no credentials"), BadRequest),
    (ValueError("Expecting value: line 1 column 1"), BadResponse),
]


class TestAnthropic(AdapterContract):
    name, model, key = "anthropic", "claude-3-haiku-20240307", "sk-ant-test-0123456789abcdef"
    finish_reason = "end_turn"  # the stream's usage comes from message_start and message_delta
    map_error = staticmethod(map_error)
    sdk_cases, sdk_roots, min_sdk_classes = SDK_CASES, [anthropic.AnthropicError], 20

    def make(self, base_url: str | None, key: str | None) -> AnthropicProvider:
        return AnthropicProvider(name="anthropic", api_key=key, base_url=base_url, key_env="ANTHROPIC_API_KEY")

    def test_complete_adds_cache_reads_to_input_and_sends_the_system_prompt(self, provider: AnthropicProvider,
                                                                            fake_server: FakeServer) -> None:
        fake_server.set_usage("anthropic", input_tokens=1500, output_tokens=90, cached_tokens=1200)
        completion = call(provider, self.model, chat_request(max_tokens=321))
        assert completion.text == f"A fake anthropic answer from {self.model}: a lighthouse keeper finds a message."
        # The wire says input_tokens=300 and cache_read_input_tokens=1200: Taelio counts all 1500 as input.
        assert completion.usage == Usage(input_tokens=1500, output_tokens=90, cached_tokens=1200)
        assert completion.finish_reason == "end_turn"
        [sent] = fake_server.requests
        assert sent.path == "/v1/messages" and sent.key == self.key
        assert sent.body["model"] == self.model and sent.body["max_tokens"] == 321
        assert sent.body["system"] == SYSTEM
        assert sent.body["messages"] == [{"role": "user", "content": USER}]
        assert "temperature" not in sent.body  # API version 2026-10-21 rejects sampling parameters
        assert "anthropic-version" in sent.headers

    def test_rate_limit_carries_retry_after(self) -> None:
        err = map_error(status_error(anthropic.RateLimitError, 429, headers={"retry-after": "4"}), provider="anthropic",
                        model=self.model)
        assert isinstance(err, RateLimited) and err.retry_after == 4.0 and err.http_status == 429

    def test_a_refusal_in_a_stream_is_content_blocked(self, provider: AnthropicProvider,
                                                      fake_server: FakeServer) -> None:
        fake_server.fail("anthropic", "blocked")
        with pytest.raises(ContentBlocked, match="stop reason refusal"):
            call(provider, self.model, streaming=True)
