"""Gemini through ``google-genai`` (``from google import genai``), its async client, one per event loop.

The only module that imports ``google.genai``. ``google-generativeai`` is
end-of-life; ``google-genai`` is its maintained successor. The SDK does not
retry unless told to (no ``retry_options`` are given), takes its timeout in
milliseconds, and lets raw ``httpx2`` timeouts and connection errors escape:
``map_error`` catches those too. The system prompt goes in
``system_instruction``. A safety stop shows as a candidate ``finishReason``
(SAFETY, PROHIBITED_CONTENT, BLOCKLIST, SPII...) or, for the prompt, as
``promptFeedback.blockReason``; both are ``ContentBlocked``.
"""
from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from taelio_core.errors import AuthFailed, BadResponse, ContentBlocked, ProviderError, UnexpectedError
from taelio_core.providers.base import LoopLocal, Provider, billed, close_quietly
from taelio_core.providers.registry import find_kind
from taelio_core.routing.generation import ChatRequest, Completion, StreamEnd, StreamEvent, TextDelta, Usage
from taelio_core.providers.transport import (
    async_transport,
    detail_of,
    error_for_status,
    other_failure,
    retry_after_seconds,
    where,
)

if TYPE_CHECKING:  # the SDK itself loads on first use (see _new_client)
    from google import genai
    from google.genai import errors as genai_errors
    from google.genai import types

__all__ = ["GeminiProvider", "map_error"]

BLOCKED_FINISH = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                            "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR"})
# Status names of google.rpc.Code, for errors that arrive without an HTTP code.
_RPC_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
               "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ABORTED": 409, "ALREADY_EXISTS": 409,
               "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "INTERNAL": 500, "UNKNOWN": 500,
               "DATA_LOSS": 500, "UNIMPLEMENTED": 501, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}


def map_error(exc: BaseException, *, provider: str, model: str,
              streaming: bool = False) -> ProviderError | UnexpectedError:
    """Every exception ``google-genai`` (or the raw ``httpx2`` under it) raises, as one ``ProviderError`` subclass."""
    from google.genai import errors as genai_errors

    if isinstance(exc, ProviderError):
        return exc
    at = where(provider, model)
    kw: dict[str, Any] = {"provider": provider, "model": model}
    if isinstance(exc, genai_errors.APIError):  # ClientError (4xx), ServerError (5xx), and the rest
        status = _status_code(exc)
        details = getattr(exc, "details", None)
        details = details if isinstance(details, dict) else {}
        message = detail_of(getattr(exc, "message", None) or "")
        if status == 400 and _reason(details) == "API_KEY_INVALID":
            return AuthFailed(f"{at} rejected the API key (HTTP 400): {message}.", http_status=400, **kw)
        response = getattr(exc, "response", None)
        retry_after = retry_after_seconds(getattr(response, "headers", None)) if response is not None else None
        if retry_after is None:
            retry_after = _retry_delay(details)
        if status:
            return error_for_status(status, provider=provider, model=model, detail=message, retry_after=retry_after)
        return BadResponse(f"{at} reported an error: {message or 'no details'}.", **kw)
    if isinstance(exc, genai_errors.ContinuationInterruptedError):  # a response that broke off after progress
        return BadResponse(f"{at} broke off the answer after it had begun.", **kw)
    # Left: the raw httpx2 errors google-genai lets escape, unparseable bodies (UnknownApiResponseError and
    # pydantic's ValidationError are ValueErrors), anything else.
    return other_failure(exc, provider=provider, model=model, streaming=streaming)


def _status_code(exc: genai_errors.APIError) -> int:
    code = getattr(exc, "code", None)
    if isinstance(code, int) and 100 <= code < 600:
        return code
    return _RPC_STATUS.get(str(getattr(exc, "status", None) or ""), 0)


def _error_details(details: dict) -> list[dict]:
    inner = details.get("error", details)
    found = inner.get("details") if isinstance(inner, dict) else None
    return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []


def _reason(details: dict) -> str | None:
    for detail in _error_details(details):
        if detail.get("reason"):
            return str(detail["reason"])
    return None


def _retry_delay(details: dict) -> float | None:
    """google.rpc.RetryInfo's ``retryDelay`` ("7s", "1.5s"), Gemini's Retry-After."""
    for detail in _error_details(details):
        match = re.fullmatch(r"\s*([0-9.]+)s\s*", str(detail.get("retryDelay", "")))
        if match:
            return float(match.group(1))
    return None


def _name(value: Any) -> str | None:
    """An SDK enum (or a plain string the SDK did not recognise) as its name."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _usage(meta: Any) -> Usage:
    """``promptTokenCount`` includes cached tokens; thinking tokens are billed as output."""
    if meta is None:
        return Usage()
    output = int(meta.candidates_token_count or 0) + int(meta.thoughts_token_count or 0)
    return Usage(input_tokens=int(meta.prompt_token_count or 0), output_tokens=output,
                 cached_tokens=int(meta.cached_content_token_count or 0))


def _text(candidate: Any) -> str:
    content = getattr(candidate, "content", None)
    parts = getattr(content, "parts", None) or ()
    return "".join(p.text for p in parts if getattr(p, "text", None) and not getattr(p, "thought", False))


class GeminiProvider(Provider):
    """The Gemini API (generativelanguage.googleapis.com), or ``base_url``."""

    kind = "gemini"
    facts = find_kind("gemini", discover=False)  # SDK, key and base-URL variables, catalogue id: one registry

    def __init__(self, *, name: str, api_key: str | None = None, base_url: str | None = None,
                 key_env: str = "", key_required: bool = True) -> None:
        super().__init__(name=name, api_key=api_key, base_url=base_url, key_required=key_required, key_env=key_env)
        self._clients: LoopLocal[genai.Client] = LoopLocal(self._new_client)

    def _new_client(self) -> genai.Client:
        # The SDK loads on first use: commands that only read the policy (routes) never pay for it.
        from google import genai
        from google.genai import types

        # Keep the Client itself (not just .aio): a dropped Client closes its transport.
        # An explicit transport keeps google-genai on httpx2 even where aiohttp is installed.
        options = types.HttpOptions(base_url=self.base_url, async_client_args={"transport": async_transport()})
        return genai.Client(api_key=self._api_key or "no-key", vertexai=False, http_options=options)

    def _config(self, request: ChatRequest) -> types.GenerateContentConfig:
        from google.genai import types

        return types.GenerateContentConfig(
            system_instruction=request.system or None, max_output_tokens=request.settings.max_tokens,
            temperature=request.settings.temperature,
            http_options=types.HttpOptions(timeout=max(1, int(request.settings.timeout_s * 1000))))

    def _check(self, model: str, response: Any) -> tuple[str, str | None]:
        """(text, finish reason) of one response or stream chunk; raises on a block."""
        kw: dict[str, Any] = {"provider": self.name, "model": model, "http_status": 200}
        at = where(self.name, model)
        feedback = getattr(response, "prompt_feedback", None)
        block = _name(getattr(feedback, "block_reason", None))
        if block and block != "BLOCKED_REASON_UNSPECIFIED":
            raise ContentBlocked(f"{at} blocked the prompt (block reason {block}).", **kw)
        candidates = getattr(response, "candidates", None) or ()
        if not candidates:
            return "", None
        finish = _name(candidates[0].finish_reason)
        if finish in BLOCKED_FINISH:
            raise ContentBlocked(f"{at} blocked the answer (finish reason {finish}).", **kw)
        return _text(candidates[0]), finish

    def _finish(self, model: str, finish: str | None, text: str) -> None:
        kw: dict[str, Any] = {"provider": self.name, "model": model, "http_status": 200}
        at = where(self.name, model)
        if not finish or finish == "FINISH_REASON_UNSPECIFIED":
            raise BadResponse(f"{at} ended the answer without a finish reason.", **kw)
        if not text.strip():
            raise BadResponse(f"{at} returned an empty completion (finish reason {finish}).", **kw)

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        try:
            response = await self._clients.get().aio.models.generate_content(
                model=model, contents=request.user, config=self._config(request))
            text, finish = self._check(model, response)
        except ProviderError:
            raise
        except Exception as e:  # noqa: BLE001 - every SDK error is mapped in one place
            raise map_error(e, provider=self.name, model=model) from e
        self._finish(model, finish, text)
        return Completion(text=text, usage=_usage(response.usage_metadata), finish_reason=finish or "",
                          response_model=response.model_version or model)

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        try:
            chunks = await self._clients.get().aio.models.generate_content_stream(
                model=model, contents=request.user, config=self._config(request))
        except Exception as e:  # noqa: BLE001
            raise map_error(e, provider=self.name, model=model) from e
        finish: str | None = None
        usage = Usage()
        response_model = ""
        parts: list[str] = []
        received = False  # once an event arrived, a broken connection is a stream cut short
        try:
            async for chunk in chunks:
                received = True
                text, chunk_finish = self._check(model, chunk)
                finish = chunk_finish or finish
                if chunk.usage_metadata is not None:
                    usage = _usage(chunk.usage_metadata)
                response_model = chunk.model_version or response_model
                if text:
                    parts.append(text)
                    yield TextDelta(text=text)
        except ProviderError as error:
            raise billed(error, usage)
        except Exception as e:  # noqa: BLE001
            raise billed(map_error(e, provider=self.name, model=model, streaming=received), usage) from e
        finally:
            await close_quietly(chunks)
        try:
            self._finish(model, finish, "".join(parts))
        except ProviderError as error:
            raise billed(error, usage) from None
        yield StreamEnd(usage=usage, finish_reason=finish, response_model=response_model or model)

    async def warm(self) -> None:
        self._clients.get()

    async def aclose(self) -> None:
        client = self._clients.discard()
        if client is not None:
            await client.aio.aclose()
