"""Anthropic through the official ``anthropic`` SDK (its async client, one per event loop).

The only module that imports ``anthropic``. The system prompt goes in the
Messages API's top-level ``system`` field. Temperature is not sent: API
version 2026-10-21, which SDK 2.x speaks, rejects it (HTTP 400). Anthropic reports cache reads
(and cache writes) apart from ``input_tokens``; Taelio's ``Usage`` counts
every input token in ``input_tokens``, so they are added back here.
Streams take their usage from ``message_start`` and ``message_delta``, and
end only when a stop reason arrived; ``refusal`` is a ``ContentBlocked``.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from taelio_core.errors import BadResponse, ContentBlocked, ProviderError, UnexpectedError
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
    import anthropic

__all__ = ["AnthropicProvider", "map_error"]

BLOCKED_STOP = frozenset({"refusal"})
# Anthropic's error types, as the HTTP status each one comes with (used for errors sent inside a stream).
ERROR_TYPE_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                     "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                     "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}


def map_error(exc: BaseException, *, provider: str, model: str,
              streaming: bool = False) -> ProviderError | UnexpectedError:
    """Every exception the ``anthropic`` SDK (or its transport) raises, as one ``ProviderError`` subclass."""
    import anthropic

    if isinstance(exc, ProviderError):
        return exc
    at = where(provider, model)
    kw: dict[str, Any] = {"provider": provider, "model": model}
    if isinstance(exc, anthropic.APIStatusError):
        status = int(getattr(exc, "status_code", 0) or 0)
        if status < 400:  # an error event inside a 200 stream: its type says what it means
            status = ERROR_TYPE_STATUS.get(getattr(exc, "type", None) or error_body(exc).get("type") or "", 500)
        return status_failure(exc, status, provider=provider, model=model, detail=_detail(exc))
    if isinstance(exc, anthropic.APIConnectionError):
        return connection_failure(exc, timed_out=isinstance(exc, anthropic.APITimeoutError), provider=provider,
                                  model=model, streaming=streaming)
    if isinstance(exc, anthropic.APIResponseValidationError):
        return BadResponse(f"{at} sent a response that does not match the API's schema.",
                           http_status=getattr(exc, "status_code", None), **kw)
    if isinstance(exc, anthropic.APIError):
        return BadResponse(f"{at} reported an error: {detail_of(getattr(exc, 'message', exc))}.", **kw)
    # Left: transport errors, unparseable bodies, client-side errors (credentials, retry markers).
    return other_failure(exc, provider=provider, model=model, streaming=streaming,
                         client_errors=anthropic.AnthropicError)


def _detail(exc: BaseException) -> str:
    message = getattr(exc, "api_message", None) or error_body(exc).get("message")
    return detail_of(message or getattr(exc, "message", ""))


def _usage(usage: Any, *, output_tokens: int | None = None) -> Usage:
    """Anthropic's ``input_tokens`` excludes cache reads and writes: add them back."""
    if usage is None:
        return Usage()
    cache_read = int(getattr(usage, "cache_read_input_tokens", 0) or 0)
    cache_write = int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
    return Usage(input_tokens=int(getattr(usage, "input_tokens", 0) or 0) + cache_read + cache_write,
                 output_tokens=int(output_tokens if output_tokens is not None else usage.output_tokens or 0),
                 cached_tokens=cache_read)


class AnthropicProvider(Provider):
    """The Messages API on api.anthropic.com, or on ``base_url``."""

    kind = "anthropic"
    facts = find_kind("anthropic", discover=False)  # SDK, key and base-URL variables, catalogue id: one registry

    def __init__(self, *, name: str, api_key: str | None = None, base_url: str | None = None,
                 key_env: str = "", key_required: bool = True) -> None:
        super().__init__(name=name, api_key=api_key, base_url=base_url, key_required=key_required, key_env=key_env)
        self._clients: LoopLocal[anthropic.AsyncAnthropic] = LoopLocal(self._new_client)

    def _new_client(self) -> anthropic.AsyncAnthropic:
        import anthropic  # the SDK loads on first use: commands that only read the policy (routes) never pay for it
        return anthropic.AsyncAnthropic(api_key=self._api_key or "no-key", base_url=self.base_url, max_retries=0,
                                        timeout=60.0)

    def _params(self, model: str, request: ChatRequest) -> dict[str, Any]:
        # No temperature: API version 2026-10-21 (sent by SDK 2.x) rejects sampling parameters with a 400,
        # and the SDK no longer accepts them.
        params: dict[str, Any] = {"model": model, "max_tokens": request.settings.max_tokens,
                                  "messages": [{"role": "user", "content": request.user}],
                                  "timeout": sdk_timeout(request.settings.timeout_s)}
        if request.system:
            params["system"] = request.system
        return params

    def _check_stop(self, model: str, stop: str | None, text: str) -> None:
        kw: dict[str, Any] = {"provider": self.name, "model": model, "http_status": 200}
        at = where(self.name, model)
        if stop in BLOCKED_STOP:
            raise ContentBlocked(f"{at} refused to answer (stop reason {stop}).", **kw)
        if not stop:
            raise BadResponse(f"{at} ended the answer without a stop reason.", **kw)
        if not text.strip():
            raise BadResponse(f"{at} returned an empty completion.", **kw)

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        try:
            message = await self._clients.get().messages.create(**self._params(model, request))
            text = "".join(block.text for block in message.content or () if getattr(block, "type", "") == "text")
            stop = message.stop_reason
        except Exception as e:  # noqa: BLE001 - every SDK error is mapped in one place
            raise map_error(e, provider=self.name, model=model) from e
        self._check_stop(model, stop, text)
        return Completion(text=text, usage=_usage(message.usage), finish_reason=stop,
                          response_model=message.model or model)

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        try:
            events = await self._clients.get().messages.create(**self._params(model, request), stream=True)
        except Exception as e:  # noqa: BLE001
            raise map_error(e, provider=self.name, model=model) from e
        start_usage: Any = None
        output_tokens: int | None = None
        delta_usage: Any = None
        stop: str | None = None
        response_model = ""
        parts: list[str] = []
        received = False  # once an event arrived, a broken connection is a stream cut short
        try:
            async for event in events:
                received = True
                kind = getattr(event, "type", "")
                if kind == "message_start":
                    start_usage = event.message.usage
                    response_model = event.message.model or response_model
                elif kind == "content_block_delta" and getattr(event.delta, "type", "") == "text_delta":
                    if event.delta.text:
                        parts.append(event.delta.text)
                        yield TextDelta(text=event.delta.text)
                elif kind == "message_delta":
                    stop = event.delta.stop_reason or stop
                    delta_usage = event.usage
                    output_tokens = event.usage.output_tokens if event.usage is not None else output_tokens
        except Exception as e:  # noqa: BLE001
            error = map_error(e, provider=self.name, model=model, streaming=received)
            raise billed(error, _reported(start_usage, delta_usage, output_tokens)) from e
        finally:
            await close_quietly(events)
        try:
            self._check_stop(model, stop, "".join(parts))
        except ProviderError as error:
            raise billed(error, _reported(start_usage, delta_usage, output_tokens)) from None
        yield StreamEnd(usage=_stream_usage(start_usage, delta_usage, output_tokens), finish_reason=stop or "",
                        response_model=response_model or model)

    async def warm(self) -> None:
        self._clients.get()

    async def aclose(self) -> None:
        client = self._clients.discard()
        if client is not None:
            await client.close()


def _reported(start: Any, delta: Any, output_tokens: int | None) -> Usage | None:
    """What a stream cut short had reported (``message_start`` carries the input side): None before that."""
    return _stream_usage(start, delta, output_tokens) if start is not None else None


def _stream_usage(start: Any, delta: Any, output_tokens: int | None) -> Usage:
    """message_start carries the input side; message_delta the final output count (and may repeat the input side)."""
    def pick(name: str) -> int:
        value = getattr(delta, name, None) if delta is not None else None
        return int(value if value is not None else getattr(start, name, 0) or 0)

    cache_read = pick("cache_read_input_tokens")
    output = output_tokens if output_tokens is not None else int(getattr(start, "output_tokens", 0) or 0)
    return Usage(input_tokens=pick("input_tokens") + cache_read + pick("cache_creation_input_tokens"),
                 output_tokens=output, cached_tokens=cache_read)
