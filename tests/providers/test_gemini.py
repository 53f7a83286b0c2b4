"""The Gemini adapter through the real ``google-genai`` SDK against the local fake server."""
from __future__ import annotations

import pytest
from google.genai import errors as genai_errors

from taelio_core.errors import (
    AuthFailed,
    BadRequest,
    BadResponse,
    ContentBlocked,
    ModelNotFound,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from taelio_core.generation import Usage
from taelio_core.providers.gemini import GeminiProvider, map_error
from tests.fakeserver import FakeServer, Fault
from tests.providers.adapter_contract import (
    SYSTEM,
    USER,
    AdapterContract,
    all_subclasses,
    assert_specific,
    bare_instance,
    call,
    chat_request,
    failure,
    http_response,
    stream_deltas,
)

KEY = "AIzaSyTest0123456789abcdefghijklmnop"
MODEL = "gemini-1.5-flash"


class TestGeminiContract(AdapterContract):
    name, model, key = "gemini", MODEL, KEY
    status_overrides = {"auth": 400}  # Gemini answers a wrong key with 400 INVALID_ARGUMENT / API_KEY_INVALID

    def make(self, base_url: str | None, key: str | None) -> GeminiProvider:
        return GeminiProvider(name="gemini", api_key=key, base_url=base_url, key_env="GEMINI_API_KEY")

    def refused_base_url(self, refused_url: str) -> str:
        return refused_url + "/"

    def map_error(self, exc: BaseException, **kw: object) -> ProviderError:
        return map_error(exc, **kw)  # type: ignore[arg-type]


@pytest.fixture
def provider(fake_server: FakeServer) -> GeminiProvider:
    return GeminiProvider(name="gemini", api_key=KEY, base_url=fake_server.base_url("gemini"))


def test_complete_returns_text_usage_and_sends_settings(provider: GeminiProvider, fake_server: FakeServer) -> None:
    fake_server.set_usage("gemini", input_tokens=2000, output_tokens=70, cached_tokens=1536)
    completion = call(provider, MODEL, chat_request(max_tokens=321, temperature=0.25))
    assert completion.text == f"A fake gemini answer from {MODEL}: a lighthouse keeper finds a message."
    assert completion.usage == Usage(input_tokens=2000, output_tokens=70, cached_tokens=1536)
    assert completion.finish_reason == "STOP"
    [sent] = fake_server.requests
    assert sent.path == f"/v1/models/{MODEL}:generateContent"  # google-genai 3.x defaults to v1 (not v1beta)
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.body["systemInstruction"]["parts"] == [{"text": SYSTEM}]
    assert sent.body["contents"][0]["parts"] == [{"text": USER}]
    assert sent.body["generationConfig"] == {"maxOutputTokens": 321, "temperature": 0.25}


def test_stream_uses_sse_and_takes_usage_metadata_from_the_last_chunk(provider: GeminiProvider,
                                                                      fake_server: FakeServer) -> None:
    fake_server.set_usage("gemini", input_tokens=900, output_tokens=33, cached_tokens=512)
    completion, deltas = stream_deltas(provider, MODEL)
    assert len(deltas) > 3 and "".join(deltas) == completion.text
    assert completion.usage == Usage(input_tokens=900, output_tokens=33, cached_tokens=512)
    sent = fake_server.requests[-1]
    assert sent.path == f"/v1/models/{MODEL}:streamGenerateContent" and sent.query == {"alt": ["sse"]}


@pytest.mark.parametrize("streaming", [False, True])
def test_a_blocked_prompt_is_content_blocked(provider: GeminiProvider, fake_server: FakeServer,
                                             streaming: bool) -> None:
    fake_server.fail("gemini", Fault(kind="blocked", where="prompt"))
    err = failure(provider, MODEL, streaming=streaming)
    assert isinstance(err, ContentBlocked) and err.http_status == 200
    assert "block reason SAFETY" in str(err)


def _client_error(status: int, body: dict, **kw: object) -> genai_errors.APIError:
    cls = genai_errors.ClientError if status < 500 else genai_errors.ServerError
    return cls(status, body, http_response(status, body=body, **kw))  # type: ignore[arg-type]


SDK_CASES = [
    (_client_error(429, {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}},
                   headers={"retry-after": "5"}), RateLimited),
    (_client_error(400, {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT",
                                   "details": [{"reason": "API_KEY_INVALID"}]}}), AuthFailed),
    (_client_error(401, {"error": {"code": 401, "message": "no", "status": "UNAUTHENTICATED"}}), AuthFailed),
    (_client_error(403, {"error": {"code": 403, "message": "no", "status": "PERMISSION_DENIED"}}), AuthFailed),
    (_client_error(404, {"error": {"code": 404, "message": "gone", "status": "NOT_FOUND"}}), ModelNotFound),
    (_client_error(400, {"error": {"code": 400, "message": "too long", "status": "INVALID_ARGUMENT"}}), BadRequest),
    (_client_error(500, {"error": {"code": 500, "message": "oops", "status": "INTERNAL"}}), ProviderUnavailable),
    (_client_error(503, {"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}), ProviderUnavailable),
    (genai_errors.APIError(0, {"error": {"message": "busy", "status": "UNAVAILABLE"}}), ProviderUnavailable),
    (genai_errors.APIError(0, {"error": {"message": "?"}}), BadResponse),
    (genai_errors.UnknownApiResponseError("Failed to parse response as JSON."), BadResponse),
    (ValueError("bad"), BadResponse),
]


@pytest.mark.parametrize(("exc", "expected"), SDK_CASES, ids=[f"{type(e).__name__}-{i}" for i, (e, _) in
                                                               enumerate(SDK_CASES)])
def test_each_sdk_exception_lands_on_a_specific_class(exc: BaseException, expected: type) -> None:
    err = map_error(exc, provider="gemini", model=MODEL)
    assert type(err) is expected


def test_retry_after_comes_from_the_header_or_from_retry_info() -> None:
    body = {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED",
                      "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"}]}}
    from_info = map_error(genai_errors.ClientError(429, body, None), provider="gemini", model=MODEL)
    assert isinstance(from_info, RateLimited) and from_info.retry_after == 13.0 and from_info.http_status == 429
    from_header = map_error(_client_error(429, body, headers={"retry-after": "2"}), provider="gemini", model=MODEL)
    assert isinstance(from_header, RateLimited) and from_header.retry_after == 2.0


def test_every_genai_exception_class_lands_on_a_specific_subclass() -> None:
    classes = [c for c in vars(genai_errors).values() if isinstance(c, type) and issubclass(c, Exception)
               and c.__module__ == genai_errors.__name__]
    classes += [c for root in list(classes) for c in all_subclasses(root)]
    assert genai_errors.ClientError in classes and genai_errors.ServerError in classes
    for cls in classes:
        assert_specific(map_error(bare_instance(cls), provider="gemini", model=MODEL), cls)
