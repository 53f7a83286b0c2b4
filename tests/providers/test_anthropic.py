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
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from taelio_core.generation import Usage
from taelio_core.providers.anthropic import AnthropicProvider, map_error
from tests.fakeserver import FakeServer
from tests.providers.adapter_contract import (
    HTTP_REQUEST,
    SYSTEM,
    USER,
    AdapterContract,
    all_subclasses,
    assert_specific,
    bare_instance,
    call,
    chat_request,
    http_response,
    stream_deltas,
)

KEY = "sk-ant-test-0123456789abcdef"
MODEL = "claude-3-haiku-20240307"


class TestAnthropicContract(AdapterContract):
    name, model, key = "anthropic", MODEL, KEY

    def make(self, base_url: str | None, key: str | None) -> AnthropicProvider:
        return AnthropicProvider(name="anthropic", api_key=key, base_url=base_url, key_env="ANTHROPIC_API_KEY")

    def map_error(self, exc: BaseException, **kw: object) -> ProviderError:
        return map_error(exc, **kw)  # type: ignore[arg-type]


@pytest.fixture
def provider(fake_server: FakeServer) -> AnthropicProvider:
    return AnthropicProvider(name="anthropic", api_key=KEY, base_url=fake_server.base_url("anthropic"))


def test_complete_adds_cache_reads_to_input_and_sends_the_system_prompt(provider: AnthropicProvider,
                                                                        fake_server: FakeServer) -> None:
    fake_server.set_usage("anthropic", input_tokens=1500, output_tokens=90, cached_tokens=1200)
    completion = call(provider, MODEL, chat_request(max_tokens=321))
    assert completion.text == f"A fake anthropic answer from {MODEL}: a lighthouse keeper finds a message."
    # The wire says input_tokens=300 and cache_read_input_tokens=1200: Taelio counts all 1500 as input.
    assert completion.usage == Usage(input_tokens=1500, output_tokens=90, cached_tokens=1200)
    assert completion.finish_reason == "end_turn"
    [sent] = fake_server.requests
    assert sent.path == "/v1/messages" and sent.key == KEY
    assert sent.body["model"] == MODEL and sent.body["max_tokens"] == 321
    assert sent.body["system"] == SYSTEM
    assert sent.body["messages"] == [{"role": "user", "content": USER}]
    assert "temperature" not in sent.body  # API version 2026-10-21 rejects sampling parameters
    assert "anthropic-version" in sent.headers


def test_stream_takes_usage_from_message_start_and_message_delta(provider: AnthropicProvider,
                                                                 fake_server: FakeServer) -> None:
    fake_server.set_usage("anthropic", input_tokens=800, output_tokens=55, cached_tokens=600)
    completion, deltas = stream_deltas(provider, MODEL)
    assert len(deltas) > 3 and "".join(deltas) == completion.text
    assert completion.usage == Usage(input_tokens=800, output_tokens=55, cached_tokens=600)
    assert completion.finish_reason == "end_turn"
    assert fake_server.requests[-1].stream


def _status(cls: type[anthropic.APIStatusError], status: int, body: object = None,
            **kw: object) -> anthropic.APIStatusError:
    return cls("synthetic", response=http_response(status, **kw), body=body)  # type: ignore[arg-type]


SDK_CASES = [
    (anthropic.APIConnectionError(request=HTTP_REQUEST), ProviderUnavailable),
    (anthropic.APITimeoutError(request=HTTP_REQUEST), ProviderTimeout),
    (_status(anthropic.RateLimitError, 429, headers={"retry-after": "4"}), RateLimited),
    (_status(anthropic.AuthenticationError, 401), AuthFailed),
    (_status(anthropic.PermissionDeniedError, 403), AuthFailed),
    (_status(anthropic.NotFoundError, 404), ModelNotFound),
    (_status(anthropic.BadRequestError, 400), BadRequest),
    (_status(anthropic.UnprocessableEntityError, 422), BadRequest),
    (_status(anthropic.ConflictError, 409), BadRequest),
    (_status(anthropic.RequestTimeoutError, 408), ProviderTimeout),
    (_status(anthropic.InternalServerError, 500), ProviderUnavailable),
    (_status(anthropic.ServiceUnavailableError, 503), ProviderUnavailable),
    (_status(anthropic.OverloadedError, 529), ProviderUnavailable),
    (_status(anthropic.APIStatusError, 418), BadRequest),
    # An error event inside a 200 stream: its type decides.
    (_status(anthropic.APIStatusError, 200, body={"type": "error", "error": {"type": "overloaded_error",
                                                                              "message": "Overloaded"}}),
     ProviderUnavailable),
    (_status(anthropic.APIStatusError, 200, body={"type": "error", "error": {"type": "rate_limit_error",
                                                                              "message": "slow down"}}),
     RateLimited),
    (anthropic.APIResponseValidationError(response=http_response(200), body=None), BadResponse),
    (anthropic.APIError("boom", HTTP_REQUEST, body=None), BadResponse),
    (anthropic.AnthropicError("no credentials"), BadRequest),
    (ValueError("Expecting value: line 1 column 1"), BadResponse),
]


@pytest.mark.parametrize(("exc", "expected"), SDK_CASES, ids=[f"{type(e).__name__}-{i}" for i, (e, _) in
                                                               enumerate(SDK_CASES)])
def test_each_sdk_exception_lands_on_a_specific_class(exc: BaseException, expected: type) -> None:
    err = map_error(exc, provider="anthropic", model=MODEL)
    assert type(err) is expected


def test_rate_limit_carries_retry_after() -> None:
    err = map_error(_status(anthropic.RateLimitError, 429, headers={"retry-after": "4"}), provider="anthropic",
                    model=MODEL)
    assert isinstance(err, RateLimited) and err.retry_after == 4.0 and err.http_status == 429


def test_every_anthropic_exception_class_lands_on_a_specific_subclass() -> None:
    classes = [anthropic.AnthropicError, *all_subclasses(anthropic.AnthropicError)]
    assert len(classes) > 20
    for cls in classes:
        assert_specific(map_error(bare_instance(cls), provider="anthropic", model=MODEL), cls)


def test_a_refusal_in_a_stream_is_content_blocked(provider: AnthropicProvider, fake_server: FakeServer) -> None:
    fake_server.fail("anthropic", "blocked")
    with pytest.raises(ContentBlocked, match="stop reason refusal"):
        call(provider, MODEL, streaming=True)
