"""What each simulated provider call does, drawn ahead with numpy so every policy meets the same luck.

The luck of one try is two numbers: ``z`` (a standard normal that sets the
call's lognormal latency) and ``u`` (a uniform that picks its error class, if
any). ``LuckTable`` draws them for one (seed, provider:model) in blocks of
requests, each block from its own ``SeedSequence([seed, hash(provider:model),
block])``: a value depends only on (seed, provider:model, request, try), never
on which policy asked first, which other models exist or in which order the
blocks were needed. Policy A and policy B that send request 1234 to
``openai:gpt-4.1`` for the second time get the same latency and the same error.

``ProviderOutcomes`` turns luck into an outcome with the provider model
(``taelio_core.sandbox.models.ProviderModel``), in the same order of checks as
the live simulator (``taelio_core.providers.simulated``): an outage window
first, then the provider's rate-limit buckets (a 429 with the wait as
Retry-After), then the error roll. A simulated timeout hangs for the entry's
own timeout. A fault ``Script`` replaces all of it, as it does in the live
simulator, so a differential test drives both with the same faults.

Nothing here decides anything about routing: the decision core does that.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from taelio_core.providers.simulated import ERROR_CLASSES, RateLimit, Script, TokenBucket, stable_hash, stream_plan
from taelio_core.sandbox.models import ModelSet

__all__ = ["BLOCK", "TRIES", "LuckTable", "ProviderOutcomes"]

BLOCK = 16_384   # requests per drawn block
TRIES = 4        # tries per request and model held in a block; later tries are drawn one by one
_KEPT_BLOCKS = 4  # blocks kept per model: requests in flight span seconds, a block hours


class LuckTable:
    """(z, u) for every (request, try) of one provider:model under one seed."""

    __slots__ = ("_blocks", "_key")

    def __init__(self, seed: int, ref: str) -> None:
        self._key = (int(seed) & 0xFFFFFFFFFFFFFFFF, stable_hash(ref))
        self._blocks: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def draw(self, i: int, t: int) -> tuple[float, float]:
        if t >= TRIES:
            rng = np.random.default_rng(np.random.SeedSequence([*self._key, 1 << 40, i, t]))
            return float(rng.standard_normal()), float(rng.random())
        b, row = divmod(i, BLOCK)
        block = self._blocks.get(b)
        if block is None:
            block = self._block(b)
        k = row * TRIES + t
        return block[0].item(k), block[1].item(k)

    def block_arrays(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Block ``b`` as arrays of shape (BLOCK, TRIES): for vectorised use."""
        rng = np.random.default_rng(np.random.SeedSequence([*self._key, b]))
        return rng.standard_normal((BLOCK, TRIES)), rng.random((BLOCK, TRIES))

    def _block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        # Kept as arrays, read with ``item``: most models serve few requests, and turning a whole block
        # into a list (~2 ms a block) cost more than the reads it sped up.
        z, u = self.block_arrays(b)
        block = (z.ravel(), u.ravel())
        if len(self._blocks) >= _KEPT_BLOCKS:
            del self._blocks[min(self._blocks)]
        self._blocks[b] = block
        return block


class ProviderOutcomes:
    """The outcome of each try, for the provider:models ``refs`` (indexed as in ``refs``) under ``seed``.

    ``attempt`` returns ``(seconds, error, retry_after_s, input_tokens, output_tokens, cut)``: how long the
    call takes before it answers or fails, its ``ERROR_CLASSES`` name or None, what a 429 says, its usage,
    and whether a streamed answer breaks mid-way (only a fault script says so: sandbox traffic is not
    streamed). ``stream`` turns such an outcome into a stream's timeline.
    Rate-limit buckets hold state in virtual time, so tries must be asked for in time order (the event
    queue's order).
    """

    def __init__(self, models: ModelSet, refs: Sequence[str], *, seed: int, script: Script | None = None) -> None:
        self.refs = list(refs)
        self._script = script
        self._luck = [LuckTable(seed, ref) for ref in self.refs]
        self._names: list[tuple[str, str]] = [tuple(ref.split(":", 1)) for ref in self.refs]  # type: ignore[misc]
        profiles = [models.get(p, m) for p, m in self._names]
        self._median_s = [p.latency_ms / 1000.0 * p.speed for p in profiles]
        self._sigma = [p.latency_sigma for p in profiles]
        self._speed = [p.speed for p in profiles]
        self._ttft = [p.ttft_ms / 1000.0 * p.speed for p in profiles]
        self._wait = [p.timeout_wait_s for p in profiles]
        self._retry_after = [p.retry_after_s for p in profiles]
        self._outages = [tuple((o.start_s, o.end_s, o.error) for o in p.outages) for p in profiles]
        self._errors = [tuple((e, r) for e, r in p.error_rates.items() if r > 0) for p in profiles]
        buckets: dict[str, tuple[TokenBucket | None, TokenBucket | None]] = {}
        for provider, _model in self._names:
            if provider not in buckets:
                limit = models.limits.get(provider, RateLimit())
                buckets[provider] = (TokenBucket(limit.rpm) if limit.rpm else None,
                                     TokenBucket(limit.tpm) if limit.tpm else None)
        self._buckets = [buckets[p] for p, _m in self._names]
        self._share = {name: c.share for name, c in ERROR_CLASSES.items()}

    def luck(self, k: int) -> LuckTable:
        return self._luck[k]

    def attempt(self, k: int, i: int, t: int, now: float, own_timeout_s: float, input_tokens: int,
                output_tokens: int) -> tuple[float, str | None, float, int, int]:
        """Try ``t`` (from 0, counted per request and model) of request ``i`` at model ``k``, started at
        ``now`` (virtual seconds from the traffic's start). ``own_timeout_s`` is how long a silent provider
        hangs (the entry's timeout); the caller cuts the attempt at its own limit."""
        if self._script is not None:
            provider, model = self._names[k]
            scripted = self._script(i, provider, model, t)
            error = scripted.error
            if error == "timeout":
                seconds = self._hang(k, own_timeout_s)
            else:
                seconds = scripted.latency_s * self._speed[k]
            return (seconds, error, scripted.retry_after_s, input_tokens, 0 if error else output_tokens,
                    scripted.cut)
        z, u = self._luck[k].draw(i, t)
        latency = self._median_s[k] * math.exp(self._sigma[k] * z)
        for start, end, error in self._outages[k]:
            if start <= now < end:
                return (self._failure(k, error, latency, own_timeout_s), error, self._retry_after[k], input_tokens, 0,
                        False)
        rpm, tpm = self._buckets[k]
        wait = rpm.take(1.0, now) if rpm is not None else 0.0
        if not wait and tpm is not None:
            wait = tpm.take(float(input_tokens + output_tokens), now)
        if wait:
            return (latency * self._share["rate_limited"], "rate_limited", round(max(wait, 0.001), 3),
                    input_tokens, 0, False)
        for error, rate in self._errors[k]:
            if u < rate:
                return (self._failure(k, error, latency, own_timeout_s), error, self._retry_after[k], input_tokens, 0,
                        False)
            u -= rate
        return latency, None, self._retry_after[k], input_tokens, output_tokens, False

    def stream(self, k: int, seconds: float, error: str | None, cut: bool, pieces: int, limit_s: float,
               first_token_s: float) -> tuple[float, str | None, float | None]:
        """A streamed try as the live attempt sees it: (when it ends, its error or None, its first token's
        time or None), from the try's outcome, the answer's length in words, and the attempt's two timers.
        ``"truncated"`` is an answer that broke (or ran out of time) after text was shown."""
        first = seconds if error == "timeout" else min(seconds, self._ttft[k])
        if first > first_token_s:
            return first_token_s, "timeout", None
        if error is not None:
            return first, error, None
        size, step, cut_at = stream_plan(seconds, first, pieces, cut=cut, bulk=True)
        if cut_at is not None:
            chunk = -(-cut_at // size)
            if chunk == 0:   # it broke before its first chunk: no text shown
                return first, "bad_response", None
            end, error = first + chunk * step, "truncated"
        else:
            end = first + (-(-pieces // size)) * step if step else first
        if end > limit_s:
            return limit_s, "truncated", first
        return end, error, first

    def _failure(self, k: int, error: str, latency: float, own_timeout_s: float) -> float:
        if error == "timeout":
            return self._hang(k, own_timeout_s)
        return latency * self._share.get(error, self._share["unavailable"])

    def _hang(self, k: int, own_timeout_s: float) -> float:
        wait = own_timeout_s if self._wait[k] is None else min(own_timeout_s, self._wait[k])  # type: ignore[type-var]
        return wait * self._speed[k]
