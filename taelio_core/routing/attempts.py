"""One attempt at one chain entry: call the provider once, time it, price it, classify how it ended.

Every way a call can end becomes an ``Attempt`` (never an exception): an
answer, a ``ProviderError``, a timeout, a stream that broke after text was
shown (``truncated``, priced on the usage the provider reported before the
cut) or stopped without a finish reason, a call cancelled in flight because
another entry answered first or its caller went away (``cancelled``, built by
``cancelled`` for the chain walk; priced on its estimated input and shown
text, as providers bill a request they started on), or an exception no
adapter's mapper knows (``unexpected``: a Taelio bug, logged with its
traceback to the process log and never counted against the provider).

The SDK client is made (``Provider.warm``) before the attempt's timer
starts, so a slow first client setup is not a provider timeout. A stream
has two timers: the first text must come within ``first_token_s``, the whole
answer within ``timeout_s``.

Time comes from the injected ``Clock`` and timeouts from the running loop,
so the sandbox can run all of this in virtual time.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from taelio_core.config.policy import ChainEntry
from taelio_core.errors import BadResponse, ProviderError, ProviderTimeout, RateLimited, UnexpectedError
from taelio_core.guards.budgets import estimate_input_tokens
from taelio_core.guards.resilience import AttemptLimits
from taelio_core.providers.base import Provider
from taelio_core.routing.clock import Clock
from taelio_core.routing.decision_state import to_decimal
from taelio_core.routing.generation import StreamEnd, TextDelta, Usage
from taelio_core.routing.route_plan import PolicyPlan
from taelio_core.routing.trace import Attempt

if TYPE_CHECKING:
    from taelio_core.routing.context import RequestContext

__all__ = ["AttemptRunner", "AttemptStart"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class AttemptStart:
    started: datetime
    t0: float


@dataclass(frozen=True, kw_only=True, slots=True)
class _Tags:
    retry: int = 0
    hedge: bool = False
    wait_ms: float = 0.0


class AttemptRunner:
    """Makes each call (the I/O, the timeout, the stream) and prices it with the plan's bound prices."""

    def __init__(self, plan: PolicyPlan, clock: Clock) -> None:
        self.plan = plan
        self.clock = clock

    def _price(self, entry: ChainEntry, usage: Usage, started: datetime) -> tuple[Decimal | None, str | None]:
        cost, source = self.plan.price_of(entry).cost(usage.input_tokens, usage.output_tokens, usage.cached_tokens,
                                                      started.timestamp())
        return (None if cost is None else to_decimal(cost)), source

    def start(self) -> AttemptStart:
        return AttemptStart(started=self.clock.now(), t0=self.clock.monotonic())

    async def complete(self, ctx: RequestContext, entry: ChainEntry, provider: Provider, limits: AttemptLimits, *,
                       retry: int = 0, hedge: bool = False, wait_ms: float = 0.0,
                       start: AttemptStart | None = None) -> Attempt:
        """The whole answer in one call. A caller that passes ``start`` has made the provider's client
        (``Provider.warm``) before taking it; else it is made here, before the attempt's timer starts."""
        if start is None:
            await provider.warm()
            start = self.start()
        try:
            async with asyncio.timeout(limits.timeout_s):
                completion = await provider.complete(entry.model, ctx.request)
            if not completion.text.strip():
                raise BadResponse("the provider returned an empty completion", provider=entry.provider,
                                  model=entry.model, http_status=200)
        except TimeoutError:
            error: ProviderError | UnexpectedError = _timeout(entry, limits, first_token=False)
        except ProviderError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - our bug must not take the request down: logged, then fall back
            error = _unexpected(exc, entry)
        else:
            latency = (self.clock.monotonic() - start.t0) * 1000.0
            cost, source = self._price(entry, completion.usage, start.started)
            return Attempt(
                n=0, provider=entry.provider, model=entry.model, status="ok", started_at=start.started,
                latency_ms=latency, ttft_ms=latency, usage=completion.usage, cost_usd=cost,
                price_source=source, finish_reason=completion.finish_reason,
                response_model=completion.response_model or entry.model, simulated=provider.simulated,
                text=completion.text, retry=retry, hedge=hedge, wait_ms=wait_ms)
        tags = _Tags(retry=retry, hedge=hedge, wait_ms=wait_ms)
        return self.failed(ctx, entry, provider, start, error, tags=tags)

    async def as_stream(self, ctx: RequestContext, entry: ChainEntry, provider: Provider, limits: AttemptLimits, *,
                        retry: int = 0, hedge: bool = False, wait_ms: float = 0.0,
                        start: AttemptStart | None = None) -> AsyncIterator[str | Attempt]:
        """``complete`` shaped like ``stream`` (no text, then the attempt), so races treat both alike."""
        if start is not None:
            await provider.warm()
        yield await self.complete(ctx, entry, provider, limits, retry=retry, hedge=hedge, wait_ms=wait_ms,
                                  start=start)

    async def stream(self, ctx: RequestContext, entry: ChainEntry, provider: Provider, limits: AttemptLimits, *,
                     retry: int = 0, hedge: bool = False, wait_ms: float = 0.0,
                     start: AttemptStart | None = None) -> AsyncIterator[str | Attempt]:
        """Text chunks as they arrive, then the ``Attempt`` (always last)."""
        tags = _Tags(retry=retry, hedge=hedge, wait_ms=wait_ms)
        await provider.warm()
        start = start or self.start()
        loop_time = asyncio.get_running_loop().time
        deadline = loop_time() + limits.timeout_s
        first_deadline = deadline if limits.first_token_s is None else min(deadline,
                                                                           loop_time() + limits.first_token_s)
        parts: list[str] = []
        ttft: float | None = None
        events = provider.stream(entry.model, ctx.request)
        end: StreamEnd | None = None
        error: ProviderError | UnexpectedError | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout_at(first_deadline if ttft is None else deadline):
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
            error = _timeout(entry, limits, first_token=ttft is None and first_deadline < deadline)
        except ProviderError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - our bug: logged with its traceback, then fall back
            error = _unexpected(exc, entry)
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # noqa: BLE001 - closing a broken stream may fail again
                    pass
        if error is not None:
            # A stream cut short is billed as the provider billed it: the usage it reported before the cut.
            usage = end.usage if end else getattr(error, "usage", None)
            yield self.failed(ctx, entry, provider, start, error, ttft=ttft, partial="".join(parts), usage=usage,
                              tags=tags)
            return
        assert end is not None
        latency = (self.clock.monotonic() - start.t0) * 1000.0
        cost, source = self._price(entry, end.usage, start.started)
        yield Attempt(
            n=0, provider=entry.provider, model=entry.model, status="ok", started_at=start.started,
            latency_ms=latency, ttft_ms=ttft, usage=end.usage, cost_usd=cost, price_source=source,
            finish_reason=end.finish_reason, response_model=end.response_model or entry.model,
            simulated=provider.simulated, text="".join(parts), retry=retry, hedge=hedge, wait_ms=wait_ms)

    def failed(self, ctx: RequestContext, entry: ChainEntry, provider: Provider, start: AttemptStart,
               error: ProviderError | UnexpectedError, *, ttft: float | None = None, partial: str = "",
               usage: Usage | None = None, tags: _Tags = _Tags()) -> Attempt:
        usage = usage or Usage()
        cost, source = self._price(entry, usage, start.started) if (
            usage.input_tokens or usage.output_tokens) else (None, None)
        truncated = bool(partial)
        message = str(error)
        if truncated:
            message = f"stopped after {len(partial):,} characters of text: {message}"
        return Attempt(
            n=0, provider=entry.provider, model=entry.model, status="truncated" if truncated else "error",
            started_at=start.started, latency_ms=(self.clock.monotonic() - start.t0) * 1000.0, ttft_ms=ttft,
            error_type="truncated" if truncated else error.error_type, error=message,
            http_status=error.http_status, usage=usage, cost_usd=cost, price_source=source, simulated=provider.simulated, text=partial,
            retry=tags.retry, hedge=tags.hedge, wait_ms=tags.wait_ms,
            retry_after_s=error.retry_after if isinstance(error, RateLimited) else None,
            sent=getattr(error, "sent", None))

    def cancelled(self, ctx: RequestContext, entry: ChainEntry, provider: Provider, start: AttemptStart, *,
                  retry: int = 0, hedge: bool = False, wait_ms: float = 0.0, by_caller: bool = False,
                  partial: str = "", ttft: float | None = None) -> Attempt:
        """A call cancelled in flight: a hedged call that lost the race, or (``by_caller``) one whose caller
        went away (a client that disconnected, a page or CLI that stopped reading) after ``partial`` was shown.

        Its tokens are unknown (the provider never reported them), so usage
        stays zero, but it is priced on its estimated input and the estimated
        tokens of the text it had sent, which providers bill once they start.
        """
        estimate = Usage(input_tokens=estimate_input_tokens(ctx.request),
                         output_tokens=len(partial.encode("utf-8", "surrogatepass")) // 3 if partial else 0)
        cost, source = self._price(entry, estimate, start.started)
        if by_caller:
            shown = f" after {len(partial):,} characters of text" if partial else " before any text"
            why, error_type, what = f"the caller went away{shown}", "caller_cancelled", "estimated input and output"
        else:
            why, error_type, what = "another entry answered first", "cancelled", "estimated input"
        return Attempt(
            n=0, provider=entry.provider, model=entry.model, status="cancelled", started_at=start.started,
            latency_ms=(self.clock.monotonic() - start.t0) * 1000.0, ttft_ms=ttft, error_type=error_type,
            error=f"cancelled: {why}", cost_usd=cost,
            price_source=None if source is None else f"{source} ({what}; cancelled)",
            simulated=provider.simulated, text=partial, retry=retry, hedge=hedge, wait_ms=wait_ms)


def _timeout(entry: ChainEntry, limits: AttemptLimits, *, first_token: bool) -> ProviderTimeout:
    if first_token:
        text = f"sent, no first token within {limits.first_token_s:g} s"
    elif limits.cut:
        text = f"sent, no answer within {limits.timeout_s:.3g} s ({limits.cut})"
    else:
        text = f"sent, no answer within {limits.timeout_s:g} s"
    error = ProviderTimeout(text, provider=entry.provider, model=entry.model)
    error.sent = True
    return error


def _unexpected(exc: BaseException, entry: ChainEntry) -> UnexpectedError:
    """An exception no mapper knows: log it with its traceback (the process log, never the call log)."""
    cause = exc.__cause__ if isinstance(exc, UnexpectedError) and exc.__cause__ is not None else exc
    log.error("unexpected %s from the %s adapter (%s:%s); falling back", type(cause).__name__, entry.provider,
              entry.provider, entry.model, exc_info=cause)
    if isinstance(exc, UnexpectedError):
        return exc
    error = UnexpectedError(f"unexpected {type(exc).__name__} in Taelio's {entry.provider} adapter",
                            provider=entry.provider, model=entry.model)
    error.__cause__ = exc
    return error
