"""What the three adapters share below their SDKs: HTTP status, transport errors, Retry-After.

All three SDKs speak HTTP through ``httpx2``, and some of its errors reach
the caller unwrapped (google-genai lets ``ReadTimeout`` and ``ConnectError``
escape; every SDK lets a stream that breaks mid-body raise a raw
``RemoteProtocolError``). Each adapter's own ``map_error`` handles its SDK's
exception classes and hands status codes and transport errors to this
module, so an HTTP 503 or a refused connection means the same thing
whichever SDK saw it. Only this module imports ``httpx2``.

An exception that none of this knows (not an SDK error, not a transport
error, not a parse error) is not turned into a provider fault: it becomes an
``UnexpectedError`` around the original, which breakers ignore and the
attempt runner logs with its traceback (the httpx way: map what you know,
let the rest show).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from taelio_core.errors import (
    AuthFailed,
    BadRequest,
    BadResponse,
    ModelNotFound,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    UnexpectedError,
)

if TYPE_CHECKING:  # the SDK itself loads on first use (see _new_client)
    import httpx2

__all__ = ["CONNECT_TIMEOUT_S", "connection_failure", "detail_of", "error_body", "error_for_status",
           "map_transport_error", "other_failure", "retry_after_seconds", "sdk_timeout", "status_failure", "where"]

_MAX_DETAIL = 180
# Connecting to a provider takes milliseconds; one that has not accepted the connection by then is unreachable,
# and the request was never sent (a connect timeout), which is not the same as a provider slow to answer.
CONNECT_TIMEOUT_S = 5.0


@lru_cache(maxsize=64)
def sdk_timeout(total_s: float) -> httpx2.Timeout:
    """The SDK's own timers for one call: ``total_s`` to read the answer, at most ``CONNECT_TIMEOUT_S`` to connect.

    One object per value (a policy has a handful of timeouts; nothing mutates it): building an ``httpx2.Timeout``
    costs a dozen Python calls on every request."""
    import httpx2  # loads with the first client, as the SDKs do: commands that only read the policy never pay

    return httpx2.Timeout(total_s, connect=min(CONNECT_TIMEOUT_S, total_s))


def async_transport() -> httpx2.AsyncHTTPTransport:
    """An explicit httpx2 transport for SDKs that would otherwise pick aiohttp when it happens to be
    installed (google-genai does), whose exceptions no mapper here knows."""
    import httpx2

    return httpx2.AsyncHTTPTransport()


def where(provider: str, model: str) -> str:
    return f"{provider}:{model}" if model else provider


def detail_of(message: object) -> str:
    """The first sentence of a provider's error text, on one line and short (redaction happens later)."""
    try:
        text = " ".join(str(message or "").split())
    except Exception:  # noqa: BLE001 - an exception whose __str__ fails must not break the mapping
        text = type(message).__name__
    match = re.search(r"(?<=[.!?])\s", text)
    if match:
        text = text[: match.start()]
    text = text.rstrip(".")
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _sentence(summary: str, status: int | None, detail: str) -> str:
    status_part = f" (HTTP {status})" if status else ""
    return f"{summary}{status_part}" + (f": {detail}" if detail else "") + "."


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if not headers:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms:
            return max(0.0, float(ms) / 1000.0)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = parsedate_to_datetime(value)
            return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError, OverflowError):
        return None


def error_for_status(status: int, *, provider: str, model: str, detail: str = "",
                     retry_after: float | None = None) -> ProviderError:
    """The error class an HTTP status means, the same for every provider."""
    at = where(provider, model)
    kw: dict[str, Any] = {"provider": provider, "model": model, "http_status": status}
    if status == 429:
        wait = f", retry after {retry_after:g} s" if retry_after is not None else ""
        return RateLimited(_sentence(f"{at} is rate limited{wait}", status, detail), retry_after=retry_after, **kw)
    if status in (401, 403):
        return AuthFailed(_sentence(f"{at} rejected the API key", status, detail), **kw)
    if status == 404:
        return ModelNotFound(_sentence(f"{at}: model not found (retired or misspelt?)", status, detail), **kw)
    if status == 408:
        return ProviderTimeout(_sentence(f"{at} timed out on the server", status, detail), **kw)
    if 400 <= status < 500:
        return BadRequest(_sentence(f"{at} rejected the request", status, detail), **kw)
    if status >= 500:
        return ProviderUnavailable(_sentence(f"{at} is unavailable", status, detail), **kw)
    return BadResponse(_sentence(f"{at} answered with an unexpected status", status, detail), **kw)


def map_transport_error(exc: BaseException, *, provider: str, model: str,
                        streaming: bool = False) -> ProviderError | None:
    """An ``httpx2`` error as a ``ProviderError``, or None if ``exc`` is not one.

    ``streaming`` is true once a stream's response has begun: a connection
    that breaks then is a stream cut short (``BadResponse``), not an outage.
    """
    import httpx2

    at = where(provider, model)
    kw: dict[str, Any] = {"provider": provider, "model": model}
    if isinstance(exc, httpx2.ConnectTimeout | httpx2.PoolTimeout):
        return _never_sent(ProviderTimeout(f"{at} timed out connecting (never sent).", **kw))
    if isinstance(exc, httpx2.TimeoutException):
        return ProviderTimeout(f"{at} timed out waiting for an answer.", **kw)
    if isinstance(exc, httpx2.ConnectError):
        return _never_sent(ProviderUnavailable(f"{at} could not be reached (connection refused or failed; "
                                               "never sent).", **kw))
    if streaming and isinstance(exc, httpx2.NetworkError | httpx2.RemoteProtocolError):
        return BadResponse(f"{at} cut the stream off before it finished.", **kw)
    if isinstance(exc, httpx2.NetworkError | httpx2.RemoteProtocolError | httpx2.ProxyError):
        return ProviderUnavailable(f"{at} dropped the connection (reset or closed).", **kw)
    if isinstance(exc, httpx2.UnsupportedProtocol | httpx2.LocalProtocolError | httpx2.InvalidURL):
        return BadRequest(f"{at} could not be called: the base URL or request is invalid.", **kw)
    response = getattr(exc, "response", None) if isinstance(exc, httpx2.HTTPStatusError) else None
    if response is not None:
        return error_for_status(response.status_code, provider=provider, model=model,
                                retry_after=retry_after_seconds(response.headers))
    if isinstance(exc, httpx2.DecodingError | httpx2.TooManyRedirects | httpx2.StreamError
                  | httpx2.CookieConflict | httpx2.HTTPError):
        return BadResponse(f"{at} sent a response that could not be read ({type(exc).__name__}).", **kw)
    return None


def _never_sent(error: ProviderError) -> ProviderError:
    error.sent = False
    return error


def error_body(exc: BaseException) -> dict:
    """The ``error`` object of an SDK exception's JSON body (or the body itself), or {}."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        return inner if isinstance(inner, dict) else body
    return {}


def status_failure(exc: BaseException, status: int, *, provider: str, model: str, detail: str) -> ProviderError:
    """An SDK's HTTP-status exception, with Retry-After read from its response."""
    response = getattr(exc, "response", None)
    return error_for_status(status, provider=provider, model=model, detail=detail,
                            retry_after=retry_after_seconds(getattr(response, "headers", None)))


def connection_failure(exc: BaseException, *, timed_out: bool, provider: str, model: str,
                       streaming: bool = False) -> ProviderError:
    """An SDK's connection or timeout exception, classified by the transport error that caused it."""
    kw: dict[str, Any] = {"provider": provider, "model": model}
    if timed_out:
        return ProviderTimeout(f"{where(provider, model)} timed out waiting for an answer.", **kw)
    cause = exc.__cause__
    mapped = map_transport_error(cause, provider=provider, model=model, streaming=streaming) if cause else None
    return mapped or ProviderUnavailable(f"{where(provider, model)} could not be reached (connection failed).", **kw)


def other_failure(exc: BaseException, *, provider: str, model: str, streaming: bool = False,
                  client_errors: type[BaseException] | tuple[type[BaseException], ...] = ()
                  ) -> ProviderError | UnexpectedError:
    """What is left once an adapter has mapped its SDK's API errors: transport errors, unparseable
    responses (``ValueError``: JSON, pydantic and the SDKs' parse errors), the SDK's client-side errors
    (``client_errors``: missing credentials and the like); anything else is an ``UnexpectedError``."""
    at = where(provider, model)
    kw: dict[str, Any] = {"provider": provider, "model": model}
    transport = map_transport_error(exc, provider=provider, model=model, streaming=streaming)
    if transport is not None:
        return transport
    if isinstance(exc, ValueError):
        # json.JSONDecodeError, pydantic.ValidationError and the SDKs' parse errors are ValueErrors.
        return BadResponse(f"{at} sent a malformed response ({type(exc).__name__}).", http_status=200, **kw)
    if client_errors and isinstance(exc, client_errors):
        return BadRequest(f"{at} could not be called ({type(exc).__name__}): {detail_of(exc)}.", **kw)
    # KeyError, TypeError, AttributeError... from our own code (or an SDK that changed): a bug, not the provider.
    error = UnexpectedError(f"unexpected {type(exc).__name__} in Taelio's {provider} adapter", **kw)
    error.__cause__ = exc
    return error
