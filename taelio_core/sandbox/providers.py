"""Simulated providers for the sandbox: cheap, seeded, and fair between policies.

A ``SandboxProvider`` stands in for one provider of the policy. Each call
decides its outcome from the ``ProviderModel`` of the model asked for, the
virtual time (outages, rate limits) and a random stream that depends only on
(seed, request, provider:model, try). That last point is what makes A against
B fair: when both policies send request 1234 to ``openai:gpt-4.1`` they get
the same answer, so the difference between the runs is the policy's.

The request being simulated (its index and token sizes) reaches the provider
through a context variable that the engine sets in each request's task, so
nothing in the router has to know it is being simulated.

Tests can replace the random draw with a script (``Outcome`` per request,
provider, model and try) to check the sandbox routes exactly as live does.
"""
from __future__ import annotations

import asyncio
import contextvars
import math
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from taelio_core.errors import (
    BadResponse,
    ModelNotFound,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from taelio_core.generation import ChatRequest, Completion, StreamEnd, StreamEvent, TextDelta, Usage
from taelio_core.providers.base import Availability, Provider
from taelio_core.sandbox.models import ModelSet, ProviderModel, RateLimit

__all__ = ["CURRENT_REQUEST", "Outcome", "RequestSpec", "SandboxProvider", "Script", "sandbox_providers"]

_AVAILABLE = Availability(available=True, reason="simulated")
_ERRORS: dict[str, tuple[type[ProviderError], int | None, float]] = {
    # error class -> (exception, HTTP status, how long the failure takes as a share of a normal call)
    "rate_limited": (RateLimited, 429, 0.05),
    "unavailable": (ProviderUnavailable, 503, 0.2),
    "model_not_found": (ModelNotFound, 404, 0.05),
    "bad_response": (BadResponse, 200, 1.0),
}


class RequestSpec:
    """The simulated request a task is working on (set per task; read by providers)."""

    __slots__ = ("index", "input_tokens", "output_tokens", "tries")

    def __init__(self, index: int, input_tokens: int, output_tokens: int) -> None:
        self.index = index
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.tries: dict[str, int] = {}


CURRENT_REQUEST: contextvars.ContextVar[RequestSpec] = contextvars.ContextVar("taelio_sandbox_request")


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """A scripted result for one try: ``error`` is an error class, or None for an answer."""

    error: str | None = None
    latency_s: float = 0.5
    retry_after_s: float = 1.0


# (request index, provider, model, try number from 0) -> Outcome
Script = Callable[[int, str, str, int], Outcome]


class _Bucket:
    """A token bucket refilled continuously in virtual time (one per limit)."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, per_minute: float) -> None:
        self.capacity = per_minute
        self.level = per_minute
        self.rate = per_minute / 60.0
        self.stamp = 0.0

    def take(self, amount: float, now: float) -> float:
        """Take ``amount``; returns 0, or the seconds until it would have been available (nothing taken)."""
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.level >= amount:
            self.level -= amount
            return 0.0
        return (min(amount, self.capacity) - self.level) / self.rate


class SandboxProvider(Provider):
    kind = "simulated"
    simulated = True

    def __init__(self, *, name: str, models: ModelSet, seed: int, loop_start: float = 0.0,
                 script: Script | None = None) -> None:
        super().__init__(name=name, key_required=False)
        self._models = models
        self._by_model: dict[str, ProviderModel] = {}
        self._seed = seed
        self._start = loop_start
        self._script = script
        limit = models.limits.get(name, RateLimit())
        self._rpm = _Bucket(limit.rpm) if limit.rpm else None
        self._tpm = _Bucket(limit.tpm) if limit.tpm else None
        self._salt = {}  # model -> stable integer, for the random stream

    def availability(self) -> Availability:
        return _AVAILABLE

    def _model(self, model: str) -> ProviderModel:
        found = self._by_model.get(model)
        if found is None:
            found = self._by_model[model] = self._models.get(self.name, model)
            self._salt[model] = _stable_hash(f"{self.name}:{model}")
        return found

    def _decide(self, model: str, request: ChatRequest) -> tuple[float, ProviderError | None, int, int]:
        """(seconds the call takes, the error or None, input tokens, output tokens)."""
        spec = CURRENT_REQUEST.get(None) or RequestSpec(0, 200, 200)
        behaviour = self._model(model)
        key = f"{self.name}:{model}"
        tried = spec.tries.get(key, 0)
        spec.tries[key] = tried + 1
        timeout_s = request.settings.timeout_s
        out_tokens = min(spec.output_tokens, request.settings.max_tokens)
        if self._script is not None:
            outcome = self._script(spec.index, self.name, model, tried)
            return (outcome.latency_s if outcome.error != "timeout" else timeout_s * 2.0,
                    self._error(outcome.error, model, outcome.retry_after_s), spec.input_tokens, out_tokens)
        loop = asyncio.get_running_loop()
        now = loop.time() - self._start
        for outage in behaviour.outages:
            if outage.covers(now):
                if outage.error == "timeout":
                    return timeout_s * 2.0, None, spec.input_tokens, out_tokens
                share = _ERRORS.get(outage.error, _ERRORS["unavailable"])[2]
                return (behaviour.latency_ms / 1000.0 * share,
                        self._error(outage.error, model, behaviour.retry_after_s), spec.input_tokens, 0)
        wait = self._rpm.take(1.0, now) if self._rpm is not None else 0.0
        if not wait and self._tpm is not None:
            wait = self._tpm.take(float(spec.input_tokens + out_tokens), now)
        if wait:
            return (behaviour.latency_ms / 1000.0 * 0.05,
                    RateLimited("simulated rate limit", provider=self.name, model=model, http_status=429,
                                retry_after=round(max(wait, 0.001), 3)), spec.input_tokens, 0)
        rng = random.Random(hash((self._seed, spec.index, self._salt[model], tried)))
        latency = behaviour.latency_ms / 1000.0 * math.exp(behaviour.latency_sigma * rng.gauss(0.0, 1.0))
        roll = rng.random()
        for error_class, rate in behaviour.error_rates.items():
            if roll < rate:
                if error_class == "timeout":
                    return timeout_s * 2.0, None, spec.input_tokens, out_tokens
                share = _ERRORS.get(error_class, _ERRORS["unavailable"])[2]
                return (latency * share, self._error(error_class, model, behaviour.retry_after_s),
                        spec.input_tokens, 0)
            roll -= rate
        return latency, None, spec.input_tokens, out_tokens

    def _error(self, error_class: str | None, model: str, retry_after: float) -> ProviderError | None:
        if error_class is None or error_class == "timeout":
            return None
        cls, status, _share = _ERRORS.get(error_class, _ERRORS["unavailable"])
        message = f"simulated {error_class.replace('_', ' ')}"
        if cls is RateLimited:
            return RateLimited(message, provider=self.name, model=model, http_status=status, retry_after=retry_after)
        return cls(message, provider=self.name, model=model, http_status=status)

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        seconds, error, input_tokens, output_tokens = self._decide(model, request)
        await asyncio.sleep(seconds)
        if error is not None:
            raise error
        return Completion(text="[simulated]", usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
                          finish_reason="stop", response_model=model)

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        seconds, error, input_tokens, output_tokens = self._decide(model, request)
        behaviour = self._model(model)
        first = min(seconds, behaviour.ttft_ms / 1000.0)
        await asyncio.sleep(first)
        if error is not None:
            raise error
        yield TextDelta(text="[simulated]")
        await asyncio.sleep(seconds - first)
        yield StreamEnd(usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens), finish_reason="stop",
                        response_model=model)


def _stable_hash(text: str) -> int:
    """A hash that is the same in every process (``hash(str)`` is salted per process)."""
    value = 0xCBF29CE484222325
    for byte in text.encode():
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def sandbox_providers(provider_names: list[str], models: ModelSet, *, seed: int, loop_start: float = 0.0,
                      script: Script | None = None) -> dict[str, Provider]:
    return {name: SandboxProvider(name=name, models=models, seed=seed, loop_start=loop_start, script=script)
            for name in provider_names}
