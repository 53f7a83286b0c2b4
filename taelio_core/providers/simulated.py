"""The offline simulator: seeded, configurable, and plainly marked as simulated.

It stands in for real providers in demo mode, drives the sandbox, and fills
the log with demo traffic. Latency, time to first token, failure rates by
class and output length come from a ``SimProfile`` (set in the policy's
``[simulator]`` table). The text is short, deterministic for a given prompt,
genre and tone, and starts with "[simulated]" so nobody mistakes it for a
real model's answer.
"""
from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from taelio_core.errors import (
    AuthFailed,
    BadResponse,
    ContentBlocked,
    ModelNotFound,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from taelio_core.generation import ChatRequest, Completion, StreamEnd, StreamEvent, TextDelta, Usage
from taelio_core.providers.base import Availability, Provider

__all__ = ["SimProfile", "SimulatedProvider", "simulated_text"]

ERROR_CLASSES: dict[str, tuple[type[ProviderError], int | None]] = {
    "rate_limited": (RateLimited, 429),
    "unavailable": (ProviderUnavailable, 503),
    "timeout": (ProviderTimeout, None),
    "auth_failed": (AuthFailed, 401),
    "model_not_found": (ModelNotFound, 404),
    "content_blocked": (ContentBlocked, 200),
    "bad_response": (BadResponse, 200),
}


@dataclass(frozen=True, kw_only=True)
class SimProfile:
    """How a simulated provider behaves. Latencies in milliseconds."""

    latency_ms: float = 600.0          # median total latency
    latency_sigma: float = 0.35        # lognormal spread
    ttft_ms: float = 150.0             # median time to first token (streaming)
    error_rates: dict[str, float] = field(default_factory=dict)  # error_type -> probability
    retry_after_s: float = 1.0
    output_tokens: int = 180           # mean output tokens
    speed: float = 1.0                 # multiply all delays (0 = instant, for tests)
    # How long a simulated timeout hangs before it fails. None waits out the attempt's whole timeout, as a
    # real provider would; demo mode sets a few seconds, so nobody sits through a 30 s timeout on Generate.
    timeout_wait_s: float | None = None


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
    seed = int.from_bytes(hashlib.sha256(f"{provider}|{model}|{request.task}|{request.user}".encode()).digest()[:8],
                          "big")
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
    """Offline provider. ``name`` may be a real provider's name in demo mode."""

    kind = "simulated"
    simulated = True

    def __init__(self, *, name: str, profile: SimProfile | None = None, seed: int = 0,
                 profiles: dict[str, SimProfile] | None = None) -> None:
        super().__init__(name=name, key_required=False)
        self.profile = profile or SimProfile()
        self.profiles = profiles or {}
        self._rng = random.Random(seed)

    def availability(self) -> Availability:
        return Availability(available=True, reason="simulated")

    def _profile(self, model: str) -> SimProfile:
        return self.profiles.get(model, self.profile)

    def _outcome(self, model: str, request: ChatRequest) -> tuple[float, float, ProviderError | None, int]:
        p = self._profile(model)
        rng = self._rng
        latency = p.latency_ms * rng.lognormvariate(0.0, p.latency_sigma) / 1000.0 * p.speed
        ttft = min(latency, p.ttft_ms * rng.lognormvariate(0.0, p.latency_sigma) / 1000.0 * p.speed)
        words = max(12, int(rng.gauss(p.output_tokens, p.output_tokens * 0.2) * 0.75))
        words = min(words, int(request.settings.max_tokens * 0.75) or words)
        error: ProviderError | None = None
        roll = rng.random()
        acc = 0.0
        for error_type, rate in p.error_rates.items():
            acc += rate
            if roll < acc:
                cls, status = ERROR_CLASSES.get(error_type, (ProviderUnavailable, 503))
                kw = {"retry_after": p.retry_after_s} if cls is RateLimited else {}
                message = f"simulated {error_type.replace('_', ' ')}"
                if error_type == "timeout" and p.timeout_wait_s is not None \
                        and p.timeout_wait_s < request.settings.timeout_s:
                    message += (f" (cut to {p.timeout_wait_s:g} s in the simulator; a real provider would "
                                f"take the whole {request.settings.timeout_s:g} s attempt timeout)")
                error = cls(message, provider=self.name, model=model, http_status=status, **kw)
                break
        return latency, ttft, error, words

    def _hang(self, model: str, request: ChatRequest) -> float:
        """Seconds a simulated timeout waits before it fails (scaled by ``speed``, like every delay)."""
        p = self._profile(model)
        wait = request.settings.timeout_s
        if p.timeout_wait_s is not None:
            wait = min(wait, p.timeout_wait_s)
        return wait * p.speed

    def _usage(self, request: ChatRequest, text: str) -> Usage:
        input_tokens = max(1, int(len((request.system + " " + request.user).split()) * 1.33))
        return Usage(input_tokens=input_tokens, output_tokens=max(1, int(len(text.split()) * 1.33)))

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        latency, _ttft, error, words = self._outcome(model, request)
        await asyncio.sleep(latency if error is None or error.error_type != "timeout" else self._hang(model, request))
        if error is not None:
            raise error
        text = simulated_text(request, provider=self.name, model=model, words=words)
        return Completion(text=text, usage=self._usage(request, text), finish_reason="stop", response_model=model)

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        latency, ttft, error, words = self._outcome(model, request)
        if error is not None:
            await asyncio.sleep(ttft if error.error_type != "timeout" else self._hang(model, request))
            raise error
        text = simulated_text(request, provider=self.name, model=model, words=words)
        pieces = text.split(" ")
        await asyncio.sleep(ttft)
        step = max(0.0, latency - ttft) / max(1, len(pieces) // 4)
        for i in range(0, len(pieces), 4):
            if i:
                await asyncio.sleep(step)
            chunk = " ".join(pieces[i:i + 4])
            yield TextDelta(text=chunk if i == 0 else " " + chunk)
        yield StreamEnd(usage=self._usage(request, text), finish_reason="stop", response_model=model)
