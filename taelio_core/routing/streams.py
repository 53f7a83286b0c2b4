"""A streamed answer: iterate it for text, then read its trace.

Built by ``Router.astream``; usable with ``async for`` on the caller's loop,
or a plain ``for`` from any thread (it then runs on the shared background
loop). The chain walk's stream ends with the ``GenerationResult``; this
wrapper keeps it as ``result`` and hands it to the call log.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from taelio_core.routing.chain_walk import ChainWalk, Truncated
from taelio_core.routing.runtime import background_loop
from taelio_core.routing.trace import GenerationResult

if TYPE_CHECKING:
    from taelio_core.routing.context import CallSink

__all__ = ["GenerationStream"]


class GenerationStream:
    """Iterate (``async for`` or plain ``for``) for text; then read ``result``.

    ``result`` is set for every outcome once iteration ends; ``raise_for_status()``
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
        async for item in self._walk.stream():
            if isinstance(item, GenerationResult):
                self._result = item
                if self._sink is not None:
                    self._sink.record(item)
            else:
                yield item

    def __iter__(self) -> Iterator[str | Truncated]:
        return background_loop().iterate(self.__aiter__())

    def raise_for_status(self) -> GenerationResult:
        if self._result is None:
            raise RuntimeError("the stream has not been read to its end")
        return self._result.raise_for_status()
