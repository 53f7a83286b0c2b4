"""OpenAI through the official ``openai`` SDK (its async client, one per event loop).

The only module that imports ``openai``. The OpenAI-compatible adapter
(Ollama, vLLM, LM Studio) subclasses ``OpenAIProvider``, so it shares this
module's request building, stream handling and ``map_error``.

SDK retries are off (``max_retries=0``): the router owns retrying and
falling back. Streams ask for ``stream_options.include_usage`` so the token
counts come from the provider even when streaming, and a stream that ends
without a finish reason (the SDK ends a cut stream quietly) is a
``BadResponse``.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from taelio_core.errors import BadResponse, ContentBlocked, ProviderError, RateLimited, UnexpectedError
from taelio_core.providers.base import LoopLocal, Provider, billed, close_quietly
from taelio_core.providers.registry import find_kind
from taelio_core.routing.generation import ChatRequest, Completion, StreamEnd, StreamEvent, TextDelta, Usage
from taelio_core.providers.transport import (
    connection_failure,
    detail_of,
    error_body,
    other_failure,
    sdk_timeout,
    status_failure,
    where,
)

if TYPE_CHECKING:  # the SDK itself loads on first use (see _new_client)
    import openai

__all__ = ["OpenAIProvider", "map_error"]

# Finish reasons that mean the provider refused to answer.
BLOCKED_FINISH = frozenset({"content_filter"})


def map_error(exc: BaseException, *, provider: str, model: str,
              streaming: bool = False) -> ProviderError | UnexpectedError:
    """Every exception the ``openai`` SDK (or its transport) raises, as one ``ProviderError`` subclass."""
    import openai

    if isinstance(exc, ProviderError):
        return exc
    at = where(provider, model)
    kw: dict[str, Any] = {"provider": provider, "model": model}
    if isinstance(exc, openai.APIStatusError):
        status = int(getattr(exc, "status_code", 0) or 0)
        if status == 400 and _code(exc) == "content_filter":  # Azure-style prompt filter
            return ContentBlocked(f"{at} blocked the prompt with its content filter (HTTP 400).", http_status=400,
                                  **kw)
        return status_failure(exc, status, provider=provider, model=model, detail=_detail(exc))
    if isinstance(exc, openai.APIConnectionError):
        return connection_failure(exc, timed_out=isinstance(exc, openai.APITimeoutError), provider=provider,
                                  model=model, streaming=streaming)
    if isinstance(exc, openai.APIResponseValidationError):
        return BadResponse(f"{at} sent a response that does not match the API's schema.",
                           http_status=getattr(exc, "status_code", None), **kw)
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        return ContentBlocked(f"{at} stopped the answer with its content filter.", http_status=200, **kw)
    if isinstance(exc, openai.LengthFinishReasonError):
        return BadResponse(f"{at} ran out of tokens before the answer could be parsed.", http_status=200, **kw)
    if isinstance(exc, openai.APIError):  # an error event inside a stream: no HTTP status
        if "rate_limit" in (_code(exc) or ""):
            return RateLimited(f"{at} is rate limited (reported mid-stream): {_detail(exc)}.", **kw)
        return BadResponse(f"{at} reported an error mid-stream: {_detail(exc)}.", **kw)
    # Left: transport errors, unparseable bodies, client-side errors (credentials, webhooks, websockets).
    return other_failure(exc, provider=provider, model=model, streaming=streaming, client_errors=openai.OpenAIError)


def _detail(exc: BaseException) -> str:
    return detail_of(error_body(exc).get("message") or getattr(exc, "message", "") or "")


def _code(exc: BaseException) -> str | None:
    inner = error_body(exc)
    code = inner.get("code") or inner.get("type")
    return str(code) if code else None


def _usage(usage: Any) -> Usage:
    """OpenAI's ``prompt_tokens`` already includes the cached ones."""
    if usage is None:
        return Usage()
    details = getattr(usage, "prompt_tokens_details", None)
    return Usage(input_tokens=int(usage.prompt_tokens or 0), output_tokens=int(usage.completion_tokens or 0),
                 cached_tokens=int(getattr(details, "cached_tokens", 0) or 0))


class OpenAIProvider(Provider):
    """Chat Completions on api.openai.com, or on ``base_url``."""

    kind = "openai"
    facts = find_kind("openai", discover=False)  # SDK, key and base-URL variables, catalogue id: one registry
    # The name of the output limit: OpenAI's current name; OpenAI-compatible servers use the older one.
    max_tokens_param = "max_completion_tokens"
    # Sent when no key is configured, so the SDK never falls back to $OPENAI_API_KEY (which would send
    # an OpenAI key to some other server).
    placeholder_key = "no-key"

    def __init__(self, *, name: str, api_key: str | None = None, base_url: str | None = None,
                 key_env: str = "", key_required: bool = True) -> None:
        super().__init__(name=name, api_key=api_key, base_url=base_url, key_required=key_required, key_env=key_env)
        self._clients: LoopLocal[openai.AsyncOpenAI] = LoopLocal(self._new_client)

    def _new_client(self) -> openai.AsyncOpenAI:
        import openai  # the SDK loads on first use: commands that only read the policy (routes) never pay for it
        return openai.AsyncOpenAI(api_key=self._api_key or self.placeholder_key, base_url=self.base_url,
                                  max_retries=0, timeout=60.0)

    def _params(self, model: str, request: ChatRequest) -> dict[str, Any]:
        messages = [{"role": "user", "content": request.user}]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        return {"model": model, "messages": messages, self.max_tokens_param: request.settings.max_tokens,
                "temperature": request.settings.temperature, "timeout": sdk_timeout(request.settings.timeout_s)}

    def _error(self, exc: BaseException, model: str, *, streaming: bool = False) -> ProviderError | UnexpectedError:
        return map_error(exc, provider=self.name, model=model, streaming=streaming)

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        try:
            response = await self._clients.get().chat.completions.create(**self._params(model, request))
            if not getattr(response, "choices", None):
                raise BadResponse(f"{where(self.name, model)} answered with no choices.", provider=self.name,
                                  model=model, http_status=200)
            choice = response.choices[0]
            text = (choice.message.content if choice.message else None) or ""
            finish = choice.finish_reason
            refusal = getattr(choice.message, "refusal", None)
        except ProviderError:
            raise
        except Exception as e:  # noqa: BLE001 - every SDK error is mapped in one place
            raise self._error(e, model) from e
        self._check_finish(model, finish, text, refused=bool(refusal))
        return Completion(text=text, usage=_usage(response.usage), finish_reason=finish,
                          response_model=response.model or model)

    def _check_finish(self, model: str, finish: str | None, text: str, *, refused: bool = False) -> None:
        if finish and finish not in BLOCKED_FINISH and text.strip():
            return  # the usual answer: nothing to build
        kw: dict[str, Any] = {"provider": self.name, "model": model, "http_status": 200}
        at = where(self.name, model)
        if finish in BLOCKED_FINISH or (refused and not text.strip()):
            raise ContentBlocked(f"{at} blocked the answer (finish reason {finish or 'refusal'}).", **kw)
        if not finish:
            raise BadResponse(f"{at} ended the answer without a finish reason.", **kw)
        if not text.strip():
            raise BadResponse(f"{at} returned an empty completion.", **kw)

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        try:
            events = await self._clients.get().chat.completions.create(
                **self._params(model, request), stream=True, stream_options={"include_usage": True})
        except Exception as e:  # noqa: BLE001
            raise self._error(e, model) from e
        finish: str | None = None
        usage: Usage | None = None
        response_model = ""
        parts: list[str] = []
        received = False  # once an event arrived, a broken connection is a stream cut short
        try:
            async for chunk in events:
                received = True
                response_model = getattr(chunk, "model", None) or response_model
                if getattr(chunk, "usage", None) is not None:
                    usage = _usage(chunk.usage)
                for choice in chunk.choices or ():
                    content = choice.delta.content if choice.delta else None
                    if content:
                        parts.append(content)
                        yield TextDelta(text=content)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except Exception as e:  # noqa: BLE001
            raise billed(self._error(e, model, streaming=received), usage) from e
        finally:
            await close_quietly(events)
        try:
            self._check_finish(model, finish, "".join(parts))
        except ProviderError as error:
            raise billed(error, usage) from None
        yield StreamEnd(usage=usage or Usage(), finish_reason=finish or "", response_model=response_model or model)

    async def warm(self) -> None:
        self._clients.get()

    async def aclose(self) -> None:
        client = self._clients.discard()
        if client is not None:
            await client.close()

