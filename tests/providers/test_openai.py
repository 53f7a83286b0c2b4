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
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from taelio_core.generation import Usage
from taelio_core.providers.openai import OpenAIProvider, map_error
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

KEY = "sk-test-openai-0123456789abcdef"
MODEL = "gpt-4"


class TestOpenAIContract(AdapterContract):
    name, model, key = "openai", MODEL, KEY

    def make(self, base_url: str | None, key: str | None) -> OpenAIProvider:
        return OpenAIProvider(name="openai", api_key=key, base_url=base_url, key_env="OPENAI_API_KEY")

    def refused_base_url(self, refused_url: str) -> str:
        return refused_url + "/v1"

    def map_error(self, exc: BaseException, **kw: object) -> ProviderError:
        return map_error(exc, **kw)  # type: ignore[arg-type]


@pytest.fixture
def provider(fake_server: FakeServer) -> OpenAIProvider:
    return OpenAIProvider(name="openai", api_key=KEY, base_url=fake_server.base_url("openai"))


def test_complete_returns_text_usage_and_sends_settings(provider: OpenAIProvider, fake_server: FakeServer) -> None:
    fake_server.set_usage("openai", input_tokens=1200, output_tokens=85, cached_tokens=1024)
    completion = call(provider, MODEL, chat_request(max_tokens=321, temperature=0.25))
    assert completion.text == f"A fake openai answer from {MODEL}: a lighthouse keeper finds a message."
    assert completion.usage == Usage(input_tokens=1200, output_tokens=85, cached_tokens=1024)
    assert completion.finish_reason == "stop"
    [sent] = fake_server.requests
    assert sent.path == "/v1/chat/completions" and sent.key == KEY
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["model"] == MODEL
    assert sent.body["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    assert sent.body["max_completion_tokens"] == 321 and sent.body["temperature"] == 0.25
    assert not sent.stream


def test_stream_yields_text_as_it_arrives_and_usage_from_the_last_chunk(provider: OpenAIProvider,
                                                                       fake_server: FakeServer) -> None:
    fake_server.set_usage("openai", input_tokens=700, output_tokens=40, cached_tokens=512)
    completion, deltas = stream_deltas(provider, MODEL)
    assert len(deltas) > 3 and "".join(deltas) == completion.text
    assert completion.usage == Usage(input_tokens=700, output_tokens=40, cached_tokens=512)
    [sent] = fake_server.requests
    assert sent.stream and sent.body["stream_options"] == {"include_usage": True}


def test_no_key_sends_a_placeholder_never_the_environment_key(fake_server: FakeServer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-123456")
    provider = OpenAIProvider(name="openai", api_key=None, base_url=fake_server.base_url("openai"), key_env="X")
    assert provider.availability().reason == "no API key (set X)"
    call(provider, MODEL)
    assert fake_server.requests[-1].key == OpenAIProvider.placeholder_key


def _status(cls: type[openai.APIStatusError], status: int, **kw: object) -> openai.APIStatusError:
    return cls("synthetic", response=http_response(status, **kw), body=None)  # type: ignore[arg-type]


SDK_CASES = [
    (openai.APIConnectionError(request=HTTP_REQUEST), ProviderUnavailable),
    (openai.APITimeoutError(request=HTTP_REQUEST), ProviderTimeout),
    (_status(openai.RateLimitError, 429, headers={"retry-after": "3"}), RateLimited),
    (_status(openai.AuthenticationError, 401), AuthFailed),
    (_status(openai.PermissionDeniedError, 403), AuthFailed),
    (_status(openai.NotFoundError, 404), ModelNotFound),
    (_status(openai.BadRequestError, 400), BadRequest),
    (_status(openai.UnprocessableEntityError, 422), BadRequest),
    (_status(openai.ConflictError, 409), BadRequest),
    (_status(openai.InternalServerError, 500), ProviderUnavailable),
    (_status(openai.InternalServerError, 503), ProviderUnavailable),
    (_status(openai.APIStatusError, 418), BadRequest),
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


@pytest.mark.parametrize(("exc", "expected"), SDK_CASES, ids=[f"{type(e).__name__}-{i}" for i, (e, _) in
                                                               enumerate(SDK_CASES)])
def test_each_sdk_exception_lands_on_a_specific_class(exc: BaseException, expected: type) -> None:
    err = map_error(exc, provider="openai", model=MODEL)
    assert type(err) is expected
    assert err.__class__ is not ProviderError


def test_rate_limit_carries_retry_after_from_the_header() -> None:
    err = map_error(_status(openai.RateLimitError, 429, headers={"retry-after": "3"}), provider="openai", model=MODEL)
    assert isinstance(err, RateLimited) and err.retry_after == 3.0 and err.http_status == 429
    err = map_error(_status(openai.RateLimitError, 429, headers={"retry-after-ms": "1500"}), provider="openai",
                    model=MODEL)
    assert isinstance(err, RateLimited) and err.retry_after == 1.5


def test_every_openai_exception_class_lands_on_a_specific_subclass() -> None:
    classes = [openai.OpenAIError, *all_subclasses(openai.OpenAIError)]
    assert len(classes) > 15
    for cls in classes:
        assert_specific(map_error(bare_instance(cls), provider="openai", model=MODEL), cls)
