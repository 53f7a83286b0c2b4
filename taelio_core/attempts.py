"""One attempt at one chain entry: call the provider once, time it, price it, classify how it ended.

Every way a call can end becomes an ``Attempt`` (never an exception): an
answer, a ``ProviderError``, a timeout, an adapter bug, a stream that broke
after text was shown (``truncated``) or stopped without a finish reason, or a
hedged call cancelled because another answered first (``cancelled``; priced
on its estimated input, as providers bill a request they started on). The
``ProviderError`` rides along in ``Outcome`` so the retry rules can read it
(``RateLimited.retry_after``).

Time comes from the injected ``Clock`` and timeouts from the running loop,
so the sandbox can run all of this in virtual time.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from taelio_core.budgets import estimate_input_tokens
from taelio_core.clock import Clock
from taelio_core.errors import BadResponse, ProviderError, ProviderTimeout
from taelio_core.generation import StreamEnd, TextDelta, Usage
from taelio_core.policy import ChainEntry
from taelio_core.pricing import Pricer
from taelio_core.providers.base import Provider
from taelio_core.trace import Attempt

if TYPE_CHECKING:
    from taelio_core.context import RequestContext

__all__ = ["AttemptRunner", "Outcome"]


@dataclass(frozen=True, kw_only=True)
class Outcome:
    attempt: Attempt
    error: ProviderError | None = None


@dataclass(frozen=True, kw_only=True)
class _Start:
    started: datetime
    t0: float


class AttemptRunner:
    def __init__(self, pricer: Pricer, clock: Clock) -> None:
        self.pricer = pricer
        self.clock = clock

    def start(self) -> _Start:
        return _Start(started=self.clock.now(), t0=self.clock.monotonic())

    async def complete(self, ctx: RequestContext, entry: ChainEntry, provider: Provider, *, timeout_s: float,
                       retry: int = 0, hedge: bool = False, start: _Start | None = None,
                       capped: bool = False) -> Outcome:
        """The whole answer in one call."""
        start = start or self.start()
        try:
            async with asyncio.timeout(timeout_s):
                completion = await provider.complete(entry.model, ctx.request)
            if not completion.text.strip():
                raise BadResponse("the provider returned an empty completion", provider=entry.provider,
                                  model=entry.model, http_status=200)
        except TimeoutError:
            error = ProviderTimeout(_timeout_message(timeout_s, capped), provider=entry.provider,
                                    model=entry.model)
            return self.failed(ctx, entry, provider, start, error, retry=retry, hedge=hedge)
        except ProviderError as error:
            return self.failed(ctx, entry, provider, start, error, retry=retry, hedge=hedge)
        except Exception as exc:  # noqa: BLE001 - an adapter bug must not take the request down
            error = BadResponse(f"unexpected {type(exc).__name__} from the adapter", provider=entry.provider,
                                model=entry.model)
            return self.failed(ctx, entry, provider, start, error, retry=retry, hedge=hedge)
        latency = (self.clock.monotonic() - start.t0) * 1000.0
        price = self.pricer.price(entry.provider, entry.model, completion.usage, start.started)
        return Outcome(attempt=Attempt(
            n=0, provider=entry.provider, model=entry.model, status="ok", started_at=start.started,
            latency_ms=latency, ttft_ms=latency, usage=completion.usage, cost_usd=price.cost_usd,
            price_source=price.source, finish_reason=completion.finish_reason,
            response_model=completion.response_model or entry.model, simulated=provider.simulated,
            text=completion.text, retry=retry, hedge=hedge))

    async def as_stream(self, ctx: RequestContext, entry: ChainEntry, provider: Provider, *, timeout_s: float,
                        retry: int = 0, hedge: bool = False, start: _Start | None = None,
                        capped: bool = False) -> AsyncIterator[str | Outcome]:
        """``complete`` shaped like ``stream`` (no text, then the outcome), so races treat both alike."""
        yield await self.complete(ctx, entry, provider, timeout_s=timeout_s, retry=retry, hedge=hedge, start=start,
                                  capped=capped)

    async def stream(self, ctx: RequestContext, entry: ChainEntry, provider: Provider, *, timeout_s: float,
                     retry: int = 0, hedge: bool = False, start: _Start | None = None,
                     capped: bool = False) -> AsyncIterator[str | Outcome]:
        """Text chunks as they arrive, then the ``Outcome`` (always last)."""
        start = start or self.start()
        tags = {"retry": retry, "hedge": hedge}
        deadline = asyncio.get_running_loop().time() + timeout_s
        parts: list[str] = []
        ttft: float | None = None
        events = provider.stream(entry.model, ctx.request)
        end: StreamEnd | None = None
        error: ProviderError | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        event = await anext(events)
                except StopAsyncIteration:
                    break
                if isinstance(event, TextDelta):
                    if not event.text:
                        continue
                    if ttft is None:
                        ttft = (self.clock.monotonic() - start.t0) * 1000.0
                    parts.append(event.text)
                    yield event.text
                elif isinstance(event, StreamEnd):
                    end = event
                    break
            if end is None:
                # The OpenAI SDK ends a cut stream quietly: no finish reason is the only sign.
                error = BadResponse("the stream ended without a finish reason", provider=entry.provider,
                                    model=entry.model)
            elif not "".join(parts).strip():
                error = BadResponse("the provider returned an empty completion", provider=entry.provider,
                                    model=entry.model, http_status=200)
        except TimeoutError:
            error = ProviderTimeout(_timeout_message(timeout_s, capped), provider=entry.provider,
                                    model=entry.model)
        except ProviderError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001
            error = BadResponse(f"unexpected {type(exc).__name__} from the adapter", provider=entry.provider,
                                model=entry.model)
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # noqa: BLE001 - closing a broken stream may fail again
                    pass
        if error is not None:
            yield self.failed(ctx, entry, provider, start, error, ttft=ttft, partial="".join(parts),
                              usage=end.usage if end else None, **tags)
            return
        assert end is not None
        latency = (self.clock.monotonic() - start.t0) * 1000.0
        price = self.pricer.price(entry.provider, entry.model, end.usage, start.started)
        yield Outcome(attempt=Attempt(
            n=0, provider=entry.provider, model=entry.model, status="ok", started_at=start.started,
            latency_ms=latency, ttft_ms=ttft, usage=end.usage, cost_usd=price.cost_usd, price_source=price.source,
            finish_reason=end.finish_reason, response_model=end.response_model or entry.model,
            simulated=provider.simulated, text="".join(parts), **tags))

    def failed(self, ctx: RequestContext, entry: ChainEntry, provider: Provider, start: _Start,
               error: ProviderError, *, ttft: float | None = None, partial: str = "", usage: Usage | None = None,
               retry: int = 0, hedge: bool = False) -> Outcome:
        usage = usage or Usage()
        price = self.pricer.price(entry.provider, entry.model, usage, start.started) if (
            usage.input_tokens or usage.output_tokens) else None
        truncated = bool(partial)
        message = str(error)
        if truncated:
            message = f"stopped after {len(partial):,} characters of text: {message}"
        attempt = Attempt(
            n=0, provider=entry.provider, model=entry.model, status="truncated" if truncated else "error",
            started_at=start.started, latency_ms=(self.clock.monotonic() - start.t0) * 1000.0, ttft_ms=ttft,
            error_type=error.error_type, error=message,
            http_status=error.http_status, usage=usage, cost_usd=price.cost_usd if price else None,
            price_source=price.source if price else None, simulated=provider.simulated, text=partial,
            retry=retry, hedge=hedge)
        return Outcome(attempt=attempt, error=error)

    def cancelled(self, ctx: RequestContext, entry: ChainEntry, provider: Provider, start: _Start, *,
                  retry: int = 0, hedge: bool = False) -> Attempt:
        """A hedged call that lost the race.

        Its tokens are unknown (the provider never reported them), so usage
        stays zero, but it is priced on its estimated input, which providers
        bill once they start on a request.
        """
        estimate = Usage(input_tokens=estimate_input_tokens(ctx.request))
        price = self.pricer.price(entry.provider, entry.model, estimate, start.started)
        return Attempt(
            n=0, provider=entry.provider, model=entry.model, status="cancelled", started_at=start.started,
            latency_ms=(self.clock.monotonic() - start.t0) * 1000.0, error_type="cancelled",
            error="cancelled: another entry answered first", cost_usd=price.cost_usd,
            price_source=None if price.source is None else f"{price.source} (estimated input; cancelled)",
            simulated=provider.simulated, retry=retry, hedge=hedge)


def _timeout_message(timeout_s: float, capped: bool) -> str:
    """``capped``: the attempt's timeout was cut short to keep the request within its deadline."""
    return "no answer before the request's deadline" if capped else f"no answer within {timeout_s:g} s"
