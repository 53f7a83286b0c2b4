"""A streamed answer: iterate it for text, then read its trace.

Built by ``Router.astream``; usable with ``async for`` on the caller's loop,
or a plain ``for`` from any thread (it then runs on the shared background
loop).
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterator
from typing import TYPE_CHECKING

from taelio_core.context import RequestContext
from taelio_core.fallback import Truncated
from taelio_core.runtime import background_loop
from taelio_core.trace import GenerationResult

if TYPE_CHECKING:
    from taelio_core.router import Router

__all__ = ["GenerationStream"]


class GenerationStream:
    """Iterate (``async for`` or plain ``for``) for text; then read ``result``.

    ``result`` is set for every outcome; ``raise_for_status()`` raises
    ``AllProvidersFailed`` when no entry answered.
    """

    def __init__(self, router: Router, ctx: RequestContext, exclude: Collection[str],
                 continue_on_truncation: bool) -> None:
        self._router, self._ctx = router, ctx
        self._exclude, self._continue = exclude, continue_on_truncation

    @property
    def request_id(self) -> str:
        return self._ctx.request_id

    @property
    def result(self) -> GenerationResult | None:
        return self._ctx.result

    def __aiter__(self) -> AsyncIterator[str | Truncated]:
        return self._router._execute(self._ctx, streaming=True, exclude=self._exclude,
                                     continue_on_truncation=self._continue)

    def __iter__(self) -> Iterator[str | Truncated]:
        return background_loop().iterate(self.__aiter__())

    def raise_for_status(self) -> GenerationResult:
        return self._router._finish(self._ctx)
