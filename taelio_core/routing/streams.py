"""A streamed answer: iterate it for text, then read its trace.

Built by ``Router.astream``; usable with ``async for`` on the caller's loop,
or a plain ``for`` from any thread (it then runs on the shared background
loop). The chain walk's stream ends with the ``GenerationResult``; this
wrapper keeps it as ``result`` and hands it to the call log, a request whose
caller went away (``cancelled``) included.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import TYPE_CHECKING

from taelio_core.routing.chain_walk import ChainWalk, Truncated
from taelio_core.routing.runtime import background_loop
from taelio_core.routing.trace import GenerationResult

if TYPE_CHECKING:
    from taelio_core.routing.context import CallSink

__all__ = ["GenerationStream"]


class GenerationStream:
    """Iterate (``async for`` or plain ``for``) for text; then read ``result``.

    ``result`` is set for every outcome once iteration ends, also when the caller stopped early (closed the
    stream or was cancelled: status ``cancelled``); ``raise_for_status()``
    raises ``AllProvidersFailed`` when no entry answered.
    """

    def __init__(self, walk: ChainWalk, *, request_id: str, sink: CallSink | None = None) -> None:
        self._walk, self._sink = walk, sink
        self._request_id = request_id
        self._result: GenerationResult | None = None

    @property
    def request_id(self) -> str:
        return self._request_id

    @property
    def result(self) -> GenerationResult | None:
        return self._result

    async def __aiter__(self) -> AsyncIterator[str | Truncated]:
        try:
            async with aclosing(self._walk.stream()) as items:
                async for item in items:
                    if isinstance(item, GenerationResult):
                        self._finish(item)
                    else:
                        yield item
        finally:
            # A caller that went away (cancelled, or closed this stream) ends the walk as ``cancelled``: the
            # walk concluded it without yielding it, with every attempt; it is logged here like any result.
            if self._result is None and self._walk.result is not None:
                self._finish(self._walk.result)

    def _finish(self, result: GenerationResult) -> None:
        self._result = result
        if self._sink is not None:
            self._sink.record(result)

    def __iter__(self) -> Iterator[str | Truncated]:
        return background_loop().iterate(self.__aiter__())

    def raise_for_status(self) -> GenerationResult:
        if self._result is None:
            raise RuntimeError("the stream has not been read to its end")
        return self._result.raise_for_status()
