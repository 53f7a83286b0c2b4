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
    ProviderUnavailable,
    RateLimited,
)
from taelio_core.providers.gemini import GeminiProvider, map_error
from taelio_core.routing.generation import Usage
from tests.fakeserver import FakeServer, Fault
from tests.providers.adapter_contract import (
    SYSTEM,
    USER,
    AdapterContract,
    call,
    chat_request,
    failure,
    http_response,
    stream_deltas,
)


def _api_error(status: int, rpc_status: str, message: str = "synthetic", details: list | None = None,
               **kw: object) -> genai_errors.APIError:
    body = {"error": {"code": status, "message": message, "status": rpc_status, **({"details": details}
                                                                                   if details else {})}}
    cls = genai_errors.ClientError if status < 500 else genai_errors.ServerError
    return cls(status, body, http_response(status, body=body, **kw))  # type: ignore[arg-type]


SDK_CASES = [
    (_api_error(429, "RESOURCE_EXHAUSTED", headers={"retry-after": "5"}), RateLimited),
    (_api_error(400, "INVALID_ARGUMENT", "API key not valid.", [{"reason": "API_KEY_INVALID"}]), AuthFailed),
    (_api_error(401, "UNAUTHENTICATED"), AuthFailed),
    (_api_error(403, "PERMISSION_DENIED"), AuthFailed),
    (_api_error(404, "NOT_FOUND"), ModelNotFound),
    (_api_error(400, "INVALID_ARGUMENT", "too long"), BadRequest),
    (_api_error(500, "INTERNAL"), ProviderUnavailable),
    (_api_error(503, "UNAVAILABLE"), ProviderUnavailable),
    (genai_errors.APIError(0, {"error": {"message": "busy", "status": "UNAVAILABLE"}}), ProviderUnavailable),
    (genai_errors.APIError(0, {"error": {"message": "?"}}), BadResponse),
    (genai_errors.UnknownApiResponseError("Failed to parse response as JSON."), BadResponse),
    (ValueError("bad"), BadResponse),
]


class TestGemini(AdapterContract):
    name, model, key = "gemini", "gemini-1.5-flash", "AIzaSyTest0123456789abcdefghijklmnop"
    status_overrides = {"auth": 400}  # Gemini answers a wrong key with 400 INVALID_ARGUMENT / API_KEY_INVALID
    refused_suffix = "/"
    finish_reason = "STOP"
    map_error = staticmethod(map_error)
    sdk_cases = SDK_CASES
    sdk_roots = [c for c in vars(genai_errors).values() if isinstance(c, type) and issubclass(c, Exception)
                 and c.__module__ == genai_errors.__name__]
    min_sdk_classes = 5

    def make(self, base_url: str | None, key: str | None) -> GeminiProvider:
        return GeminiProvider(name="gemini", api_key=key, base_url=base_url, key_env="GEMINI_API_KEY")

    def test_complete_returns_text_usage_and_sends_settings(self, provider: GeminiProvider,
                                                            fake_server: FakeServer) -> None:
        fake_server.set_usage("gemini", input_tokens=2000, output_tokens=70, cached_tokens=1536)
        completion = call(provider, self.model, chat_request(max_tokens=321, temperature=0.25))
        assert completion.text == f"A fake gemini answer from {self.model}: a lighthouse keeper finds a message."
        assert completion.usage == Usage(input_tokens=2000, output_tokens=70, cached_tokens=1536)
        assert completion.finish_reason == "STOP"
        [sent] = fake_server.requests
        assert sent.path == f"/v1/models/{self.model}:generateContent"  # google-genai 3.x defaults to v1
        assert sent.headers["x-goog-api-key"] == self.key
        assert sent.body["systemInstruction"]["parts"] == [{"text": SYSTEM}]
        assert sent.body["contents"][0]["parts"] == [{"text": USER}]
        assert sent.body["generationConfig"] == {"maxOutputTokens": 321, "temperature": 0.25}

    def test_a_stream_uses_server_sent_events(self, provider: GeminiProvider, fake_server: FakeServer) -> None:
        stream_deltas(provider, self.model)
        sent = fake_server.requests[-1]
        assert sent.path == f"/v1/models/{self.model}:streamGenerateContent" and sent.query == {"alt": ["sse"]}

    @pytest.mark.parametrize("streaming", [False, True])
    def test_a_blocked_prompt_is_content_blocked(self, provider: GeminiProvider, fake_server: FakeServer,
                                                 streaming: bool) -> None:
        fake_server.fail("gemini", Fault(kind="blocked", where="prompt"))
        err = failure(provider, self.model, streaming=streaming)
        assert isinstance(err, ContentBlocked) and err.http_status == 200
        assert "block reason SAFETY" in str(err)

    def test_retry_after_comes_from_the_header_or_from_retry_info(self) -> None:
        info = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"}]
        body = {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details": info}}
        from_info = map_error(genai_errors.ClientError(429, body, None), provider="gemini", model=self.model)
        assert isinstance(from_info, RateLimited) and from_info.retry_after == 13.0 and from_info.http_status == 429
        from_header = map_error(_api_error(429, "RESOURCE_EXHAUSTED", details=info, headers={"retry-after": "2"}),
                                provider="gemini", model=self.model)
        assert isinstance(from_header, RateLimited) and from_header.retry_after == 2.0
