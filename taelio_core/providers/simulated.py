"""The one offline provider model: demo mode, the sandbox and demo data all use it.

A ``SimulatedProvider`` stands in for one provider of the policy. How each of
its models behaves is a ``SimProfile``: lognormal latency and time to first
token, failure rates by error class, Retry-After, mean output length and
outages (windows of loop time in which every call fails one way); per-provider
rate limits are token buckets. Every failure is one of ``ERROR_CLASSES``, the
one vocabulary, named as the call log names error types. A simulated timeout
hangs like a real one (or ``timeout_wait_s``, a few seconds in demo mode) until
the router's attempt timeout cuts it: the entry's ``timeout_s``, or its share of
the request's deadline when that is less (``docs/resilience.md``).

The answer is derived from the rendered request (system and user prompt):
its text, its output length and its token counts, so two prompt variants give
different answers in demo mode, and the same prompt the same answer. The text
starts with "[simulated" so nobody mistakes it for a real model's.

Draws are seeded. When a ``RequestSpec`` is set for the running task
(``CURRENT_REQUEST``: the sandbox and the demo-data generator set one per
request), each try's draw depends only on (seed, request, provider:model,
try), so two policies that send request 1234 to the same model get the same
answer; and a test can replace the draw with a fault ``Script``.
"""
from __future__ import annotations

import asyncio
import contextvars
import hashlib
import math
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from taelio_core.errors import (
    AuthFailed,
    BadRequest,
    BadResponse,
    ContentBlocked,
    ModelNotFound,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from taelio_core.providers.base import Availability, Provider
from taelio_core.routing.generation import ChatRequest, Completion, StreamEnd, StreamEvent, TextDelta, Usage

if TYPE_CHECKING:  # the policy imports the provider registry, which loads this package: no import at run time
    from taelio_core.config.policy_schema import SimulatorConfig

__all__ = ["CURRENT_REQUEST", "ERROR_CLASSES", "Outage", "RateLimit", "RequestSpec", "Script", "ScriptedTry",
           "SimProfile", "SimulatedProvider", "TokenBucket", "profile_from_config", "simulated_text",
           "stable_hash", "stream_plan"]


@dataclass(frozen=True, kw_only=True)
class ErrorClass:
    """How one class of failure looks: the exception, its HTTP status, and how long it takes as a share of
    a normal call (a 429 comes back at once, a malformed answer after the whole answer)."""

    error: type[ProviderError]
    http_status: int | None
    share: float


# The one error vocabulary of the simulator, by the call log's error_type.
ERROR_CLASSES: dict[str, ErrorClass] = {
    "rate_limited": ErrorClass(error=RateLimited, http_status=429, share=0.05),
    "unavailable": ErrorClass(error=ProviderUnavailable, http_status=503, share=0.2),
    "timeout": ErrorClass(error=ProviderTimeout, http_status=None, share=1.0),
    "auth_failed": ErrorClass(error=AuthFailed, http_status=401, share=0.05),
    "model_not_found": ErrorClass(error=ModelNotFound, http_status=404, share=0.05),
    "bad_request": ErrorClass(error=BadRequest, http_status=400, share=0.05),
    "content_blocked": ErrorClass(error=ContentBlocked, http_status=200, share=0.5),
    "bad_response": ErrorClass(error=BadResponse, http_status=200, share=1.0),
}


@dataclass(frozen=True, kw_only=True)
class Outage:
    """From ``start_s`` to ``end_s`` (loop seconds from the provider's ``loop_start``) every call fails as
    ``error`` (an ``ERROR_CLASSES`` name)."""

    start_s: float
    end_s: float = math.inf
    error: str = "unavailable"

    def covers(self, t: float) -> bool:
        return self.start_s <= t < self.end_s


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """A provider account's limits; ``None`` means unlimited."""

    rpm: float | None = None
    tpm: float | None = None


@dataclass(frozen=True, kw_only=True)
class SimProfile:
    """How one simulated provider:model behaves. Latencies in milliseconds."""

    latency_ms: float = 600.0          # median total latency of a successful call
    latency_sigma: float = 0.35        # lognormal spread (p95 = median * exp(1.645 sigma))
    ttft_ms: float = 150.0             # median time to first token (streaming)
    error_rates: dict[str, float] = field(default_factory=dict)  # ERROR_CLASSES name -> probability per try
    retry_after_s: float = 1.0         # what a 429 says
    output_tokens: int = 180           # mean output tokens
    outages: tuple[Outage, ...] = ()
    stream_cut_rate: float = 0.0       # share of answered streams that break mid-answer (a truncated answer)
    speed: float = 1.0                 # multiply all delays (0 = instant, for tests)
    # How long a simulated timeout hangs before it fails. None hangs for the entry's timeout_s, and the
    # router's attempt timeout (at most the entry's share of the deadline) cuts it first, as it cuts a real
    # provider; demo mode sets a few seconds, so nobody sits through a long timeout on Generate.
    timeout_wait_s: float | None = None


def profile_from_config(cfg: SimulatorConfig | None) -> SimProfile:
    """A policy's ``[simulator.PROVIDER]`` table as a profile (the defaults where there is none)."""
    if cfg is None:
        return SimProfile()
    return SimProfile(latency_ms=cfg.latency_ms, latency_sigma=cfg.latency_sigma, ttft_ms=cfg.ttft_ms,
                      error_rates=dict(cfg.error_rates), retry_after_s=cfg.retry_after_s,
                      output_tokens=cfg.output_tokens)


class RequestSpec:
    """The simulated request a task is working on (set per task by the sandbox and the demo generator).

    Token sizes of 0 mean "derive them from the rendered prompt"; ``text`` says whether to write the
    answer's text (the sandbox only needs its size)."""

    __slots__ = ("index", "input_tokens", "output_tokens", "text", "tries")

    def __init__(self, index: int, input_tokens: int = 0, output_tokens: int = 0, *, text: bool = False) -> None:
        self.index = index
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.text = text
        self.tries: dict[str, int] = {}


CURRENT_REQUEST: contextvars.ContextVar[RequestSpec] = contextvars.ContextVar("taelio_simulated_request")


@dataclass(frozen=True, kw_only=True)
class ScriptedTry:
    """A scripted result for one try: ``error`` is an ``ERROR_CLASSES`` name, or None for an answer."""

    error: str | None = None
    latency_s: float = 0.5
    retry_after_s: float = 1.0
    cut: bool = False       # an answered stream breaks after its first chunk (a truncated answer)


# (request index, provider, model, try number from 0) -> ScriptedTry
Script = Callable[[int, str, str, int], ScriptedTry]


class TokenBucket:
    """A token bucket refilled continuously in loop time (one per limit)."""

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


_OPENERS = ["In", "Beneath", "Beyond", "Long after", "Just before"]
_PLACES = ["a fog-bound harbour", "an abandoned observatory", "a city of glass", "a border town",
           "a lighthouse at the edge of the map", "a night train"]
_SENTENCES = ["The scene widens.", "Someone lies, and someone notices.", "The weather turns.",
              "An old debt comes due.", "A door that was locked stands open.", "The stakes rise.",
              "Nobody sleeps that night.", "The answer waits one step further on.", "A witness changes their story.",
              "The tide comes in early."]
_TWISTS = ["a letter that should not exist", "a stranger who knows their name", "a clock that runs backwards",
           "a map with one island too many", "a promise made decades ago"]


def simulated_text(request: ChatRequest, *, provider: str, model: str, words: int) -> str:
    """Short, deterministic text built from the request's prompt, genre and tone."""
    if request.task == "judge":
        return _simulated_judgment(request)
    prompt = request.variable("prompt") or request.user[:80]
    genre = request.variable("genre")
    genre = "fiction" if genre.lower() in ("", "any") else genre
    tone = request.variable("tone")
    tone = "measured" if tone.lower() in ("", "any") else tone
    key = f"{provider}|{model}|{request.task}|{request.system}|{request.user}"
    seed = int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    rng = random.Random(seed)
    opener, place, twist = rng.choice(_OPENERS), rng.choice(_PLACES), rng.choice(_TWISTS)
    head = f"[simulated {provider}:{model}] "
    if request.task == "story":
        body = (f"{opener} {place}, {prompt.strip().rstrip('.')} is drawn into a {genre.lower()} tale, "
                f"told in a {tone.lower()} voice. Everything turns on {twist}. ")
    else:
        body = (f"A {genre.lower()} idea, {tone.lower()} in tone: {prompt.strip().rstrip('.')}, "
                f"set in {place}, where everything turns on {twist}. ")
    # Dealt from a shuffled deck, so a sentence comes back only after all the others have been used.
    deck: list[str] = []
    sentences = []
    for _ in range(max(1, words // 10)):
        deck = deck or rng.sample(_SENTENCES, len(_SENTENCES))
        sentences.append(deck.pop())
    filler = " ".join(sentences)
    text = head + body + filler
    return " ".join(text.split()[:max(words, 12)])


def _simulated_judgment(request: ChatRequest) -> str:
    """A judge's reply for experiments in demo mode: scores from the answers' own text, so they
    agree in both orders, except that a tie is broken for whichever answer came first (the
    position bias real judges show, which the both-orders check exists to catch)."""
    def score(text: str) -> int:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        return 3 + digest[0] % 6 + (1 if len(text.split()) > 120 else 0)
    a, b = score(request.variable("response_a")), score(request.variable("response_b"))
    winner = "A" if a >= b else "B"
    return f"SCORE_A: {a}\nSCORE_B: {b}\nWINNER: {winner}"


class SimulatedProvider(Provider):
    """Offline provider. ``name`` may be a real provider's name in demo mode.

    ``profiles`` gives a model its own behaviour; other models behave as ``profile``.
    """

    kind = "simulated"
    simulated = True

    def __init__(self, *, name: str, profile: SimProfile | None = None, seed: int = 0,
                 profiles: Mapping[str, SimProfile] | None = None, limit: RateLimit | None = None,
                 script: Script | None = None, loop_start: float = 0.0) -> None:
        super().__init__(name=name, key_required=False)
        self.profile = profile or SimProfile()
        self.profiles = dict(profiles or {})
        self._seed = seed
        self._rng = random.Random(seed)
        self._script = script
        self._start = loop_start
        self._rpm = TokenBucket(limit.rpm) if limit is not None and limit.rpm else None
        self._tpm = TokenBucket(limit.tpm) if limit is not None and limit.tpm else None
        self._salt: dict[str, int] = {}

    def availability(self) -> Availability:
        return _AVAILABLE

    def _profile(self, model: str) -> SimProfile:
        return self.profiles.get(model, self.profile)

    def _decide(self, model: str, request: ChatRequest) -> tuple[float, ProviderError | None, Usage, bool]:
        """(seconds the try takes, its error or None, its usage, whether to write the answer's text)."""
        p = self._profile(model)
        spec = CURRENT_REQUEST.get(None)
        salt = self._salt.get(model)
        if salt is None:
            salt = self._salt[model] = stable_hash(f"{self.name}:{model}")
        if spec is not None:
            key = f"{self.name}:{model}"
            tried = spec.tries.get(key, 0)
            spec.tries[key] = tried + 1
            rng = random.Random(hash((self._seed, spec.index, salt, tried)))
        else:
            tried, rng = 0, self._rng
        input_tokens = spec.input_tokens if spec is not None and spec.input_tokens else _prompt_tokens(request)
        output_tokens = spec.output_tokens if spec is not None and spec.output_tokens else _answer_tokens(
            request, p, salt)
        output_tokens = max(1, min(output_tokens, request.settings.max_tokens))
        text = spec is None or spec.text
        answer = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        refused = Usage(input_tokens=input_tokens, output_tokens=0)
        if self._script is not None and spec is not None:
            scripted = self._script(spec.index, self.name, model, tried)
            error = self._error(scripted.error, model, request, scripted.retry_after_s)
            seconds = self._hang(p, request) if scripted.error == "timeout" else scripted.latency_s * p.speed
            return seconds, error, answer if error is None else refused, text
        latency = p.latency_ms / 1000.0 * math.exp(p.latency_sigma * rng.gauss(0.0, 1.0)) * p.speed
        now = asyncio.get_running_loop().time() - self._start
        for outage in p.outages:
            if outage.covers(now):
                seconds, error = self._failure(outage.error, p, model, request, latency)
                return seconds, error, refused, text
        wait = self._rpm.take(1.0, now) if self._rpm is not None else 0.0
        if not wait and self._tpm is not None:
            wait = self._tpm.take(float(input_tokens + output_tokens), now)
        if wait:
            error = RateLimited("simulated rate limit", provider=self.name, model=model, http_status=429,
                                retry_after=round(max(wait, 0.001), 3))
            return latency * ERROR_CLASSES["rate_limited"].share, error, refused, text
        roll = rng.random()
        for error_class, rate in p.error_rates.items():
            if roll < rate:
                seconds, error = self._failure(error_class, p, model, request, latency)
                return seconds, error, refused, text
            roll -= rate
        return latency, None, answer, text

    def _cut_roll(self, model: str) -> float:
        """A draw for "does this stream break", from the try's own stream when a request is set."""
        spec = CURRENT_REQUEST.get(None)
        if spec is None:
            return self._rng.random()
        tried = spec.tries.get(f"{self.name}:{model}", 1) - 1
        # Only ints in the tuple: a str's hash changes from process to process.
        return random.Random(hash((self._seed, spec.index, self._salt[model], tried, 0xC07))).random()

    def _scripted_cut(self, model: str) -> bool:
        """Whether the script breaks this try's stream (the script is a pure function: asked again)."""
        spec = CURRENT_REQUEST.get(None)
        if spec is None or self._script is None:
            return False
        tried = spec.tries.get(f"{self.name}:{model}", 1) - 1
        return self._script(spec.index, self.name, model, tried).cut

    def _failure(self, error_class: str, p: SimProfile, model: str, request: ChatRequest,
                 latency: float) -> tuple[float, ProviderError | None]:
        if error_class == "timeout":
            return self._hang(p, request), self._error("timeout", model, request, p.retry_after_s)
        share = ERROR_CLASSES.get(error_class, ERROR_CLASSES["unavailable"]).share
        return latency * share, self._error(error_class, model, request, p.retry_after_s)

    @staticmethod
    def _hang(p: SimProfile, request: ChatRequest) -> float:
        """Seconds a simulated timeout waits before it fails (scaled by ``speed``, like every delay)."""
        wait = request.settings.timeout_s
        if p.timeout_wait_s is not None:
            wait = min(wait, p.timeout_wait_s)
        return wait * p.speed

    def _error(self, error_class: str | None, model: str, request: ChatRequest,
               retry_after: float) -> ProviderError | None:
        if error_class is None:
            return None
        known = ERROR_CLASSES.get(error_class, ERROR_CLASSES["unavailable"])
        message = f"simulated {error_class.replace('_', ' ')}"
        p = self._profile(model)
        if error_class == "timeout" and p.timeout_wait_s is not None \
                and p.timeout_wait_s < request.settings.timeout_s:
            message += (f" (cut to {p.timeout_wait_s:g} s in the simulator; a real provider would hang until "
                        f"the attempt's timeout: {request.settings.timeout_s:g} s, or its share of the deadline "
                        f"if that is less)")
        if known.error is RateLimited:
            return RateLimited(message, provider=self.name, model=model, http_status=known.http_status,
                               retry_after=retry_after)
        return known.error(message, provider=self.name, model=model, http_status=known.http_status)

    def _text(self, model: str, request: ChatRequest, usage: Usage, write: bool) -> str:
        if not write:
            return "[simulated]"
        words = max(12, int(usage.output_tokens * 0.75))
        return simulated_text(request, provider=self.name, model=model, words=words)

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        seconds, error, usage, write = self._decide(model, request)
        await asyncio.sleep(seconds)
        if error is not None:
            raise error
        return Completion(text=self._text(model, request, usage, write), usage=usage, finish_reason="stop",
                          response_model=model)

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        seconds, error, usage, write = self._decide(model, request)
        p = self._profile(model)
        first = seconds if error is not None and error.error_type == "timeout" else min(
            seconds, p.ttft_ms / 1000.0 * p.speed)
        await asyncio.sleep(first)
        if error is not None:
            raise error
        pieces = self._text(model, request, usage, write).split(" ")
        if self._script is not None:
            cut = self._scripted_cut(model)
        else:
            cut = bool(p.stream_cut_rate) and self._cut_roll(model) < p.stream_cut_rate
        size, step, cut_at = stream_plan(seconds, first, len(pieces), cut=bool(cut),
                                         bulk=CURRENT_REQUEST.get(None) is not None)
        for i in range(0, len(pieces), size):
            if i:
                await asyncio.sleep(step)
            if cut_at is not None and i >= cut_at:
                raise BadResponse("simulated stream cut off mid-answer (no finish reason)", provider=self.name,
                                  model=model)
            chunk = " ".join(pieces[i:i + size])
            yield TextDelta(text=chunk if i == 0 else " " + chunk)
        if step:
            await asyncio.sleep(step)
        yield StreamEnd(usage=usage, finish_reason="stop", response_model=model)


_AVAILABLE = Availability(available=True, reason="simulated")


def stream_plan(seconds: float, first: float, pieces: int, *, cut: bool, bulk: bool) -> tuple[int, float, int | None]:
    """How a simulated stream of ``pieces`` words is sent: (words per chunk, seconds between chunks, the word
    at which a cut stream breaks, or None). The first chunk comes at ``first``; an uncut stream ends at
    ``seconds``. A person watching (demo mode) sees a few words at a time; bulk runs (the sandbox, demo
    data: ``bulk``) get each answer in about four chunks, which times the same and costs a twentieth.
    The discrete-event sandbox reads the same plan (``sandbox.outcomes.stream_outcome``)."""
    size = 4 if not bulk else max(4, -(-pieces // 4))
    step = max(0.0, seconds - first) / max(1, -(-pieces // size))
    return size, step, (pieces // 2 if cut else None)


def _prompt_tokens(request: ChatRequest) -> int:
    return max(1, int(len((request.system + " " + request.user).split()) * 1.33))


def _answer_tokens(request: ChatRequest, p: SimProfile, salt: int) -> int:
    """The answer's length, from the rendered prompt: the same prompt gets the same length, another prompt
    (a variant's template) another one, within about 20 % of the profile's mean."""
    digest = hashlib.sha256(f"{salt}|{request.system}|{request.user}".encode("utf-8", "surrogatepass")).digest()
    z = (int.from_bytes(digest[:4], "big") / 2**32 - 0.5) * 2.0   # uniform in [-1, 1)
    return max(12, int(p.output_tokens * math.exp(0.2 * z)))


def stable_hash(text: str) -> int:
    """A hash that is the same in every process (``hash(str)`` is salted per process)."""
    value = 0xCBF29CE484222325
    for byte in text.encode():
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value
