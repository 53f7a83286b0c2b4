"""The one interface every provider implements.

A provider turns a rendered ``ChatRequest`` into text, either whole
(``complete``) or as a stream of events (``stream``). It raises only
``ProviderError`` subclasses: each adapter maps its SDK's exceptions in one
function, so the router never sees an SDK type.
"""
from __future__ import annotations

import asyncio
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

from taelio_core.errors import BadResponse, ProviderError, register_secret
from taelio_core.redaction import register_url_secrets, safe_url
from taelio_core.routing.generation import ChatRequest, Completion, StreamEnd, StreamEvent, TextDelta, Usage

__all__ = ["Availability", "LoopLocal", "Provider", "billed", "close_quietly"]

C = TypeVar("C")


@dataclass(frozen=True, kw_only=True)
class Availability:
    available: bool
    reason: str = ""


class Provider(ABC):
    """A named provider from the policy (``openai``, ``local-ollama``...).

    ``name`` is the policy's name for it; ``kind`` says which adapter serves it.
    ``simulated`` is true when the offline simulator stands in for it (demo mode).
    """

    kind: ClassVar[str] = ""

    def __init__(self, *, name: str, api_key: str | None = None, base_url: str | None = None,
                 key_required: bool = True, key_env: str = "") -> None:
        self.name = name
        self._api_key = api_key
        register_secret(api_key)  # whatever its shape, no error message may show it
        register_url_secrets(base_url)  # a password or ?key= in the URL, likewise
        self.base_url = base_url
        self.key_required = key_required
        self.key_env = key_env

    simulated: bool = False

    def __repr__(self) -> str:  # never shows the key
        return f"<{type(self).__name__} {self.name!r} base_url={safe_url(self.base_url)!r}>"

    @property
    def has_key(self) -> bool:
        return bool(self._api_key)

    def availability(self) -> Availability:
        if self.key_required and not self._api_key:
            hint = f" (set {self.key_env})" if self.key_env else ""
            return Availability(available=False, reason=f"no API key{hint}")
        return Availability(available=True)

    @property
    def host(self) -> str | None:
        """The base URL's host and port, safe to show (no userinfo, no path, no query)."""
        if not self.base_url:
            return None
        shown = safe_url(self.base_url)
        return urlsplit(shown).netloc or shown

    @abstractmethod
    async def complete(self, model: str, request: ChatRequest) -> Completion:
        """One whole completion, or a ``ProviderError``."""

    @abstractmethod
    def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """``TextDelta`` events, then exactly one ``StreamEnd``.

        A stream that stops without a finish reason raises ``BadResponse``.
        """

    async def warm(self) -> None:
        """Make this event loop's SDK client now, before an attempt's timer starts: a slow first client setup
        (SSL context, connection pool) on a loaded machine is not the provider's timeout."""

    async def aclose(self) -> None:
        """Release clients. Safe to call more than once."""


async def collect(events: AsyncIterator[StreamEvent], *, provider: str, model: str) -> Completion:
    """Gather a stream into a ``Completion`` (for providers that only stream)."""
    parts: list[str] = []
    async for event in events:
        if isinstance(event, TextDelta):
            parts.append(event.text)
        elif isinstance(event, StreamEnd):
            return Completion(text="".join(parts), usage=event.usage, finish_reason=event.finish_reason,
                              response_model=event.response_model or model)
    raise BadResponse("the stream ended without a finish reason", provider=provider, model=model)


async def chunked(completion: Completion, *, size: int = 3) -> AsyncIterator[StreamEvent]:
    """Stream a whole completion a few words at a time (for providers that only complete)."""
    words = completion.text.split(" ")
    for i in range(0, len(words), size):
        piece = " ".join(words[i:i + size])
        yield TextDelta(text=piece if i == 0 else " " + piece)
    yield StreamEnd(usage=completion.usage, finish_reason=completion.finish_reason,
                    response_model=completion.response_model)


def billed(error: BaseException, usage: Usage | None) -> BaseException:
    """``error`` carrying the usage the provider reported before a stream broke (it bills that much), if any."""
    if isinstance(error, ProviderError) and usage is not None and (usage.input_tokens or usage.output_tokens):
        error.usage = usage
    return error


async def close_quietly(stream: Any) -> None:
    """Close an SDK stream (``close()`` or ``aclose()``); a broken stream may fail again on close, and the error
    that matters has already been raised."""
    close = getattr(stream, "close", None) or getattr(stream, "aclose", None)
    if close is None:
        return
    try:
        await close()
    except Exception:  # noqa: BLE001
        pass


class LoopLocal(Generic[C]):
    """One SDK client per event loop.

    Async HTTP clients keep connection pools bound to the loop that opened
    them; the router may run on a background loop, in ``asyncio.run`` from the
    CLI, or on the sandbox's loop, so each loop gets its own client.
    """

    def __init__(self, factory: Callable[[], C]) -> None:
        self._factory = factory
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, C] = weakref.WeakKeyDictionary()
        # The last loop asked for (weakly) and its client: nearly every call comes from the same loop, and a
        # WeakKeyDictionary lookup is a Python call; twice per request (warm, then the call).
        self._last: tuple[weakref.ref[asyncio.AbstractEventLoop], C] | None = None

    def get(self) -> C:
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0]() is loop:
            return last[1]
        client = self._clients.get(loop)
        if client is None:
            client = self._factory()
            self._clients[loop] = client
        self._last = (weakref.ref(loop), client)
        return client

    def discard(self) -> C | None:
        """Forget (and return, for closing) the running loop's client, if it has one."""
        self._last = None
        return self._clients.pop(asyncio.get_running_loop(), None)

    def all(self) -> list[Any]:
        return list(self._clients.values())


ZERO = Usage()
