"""How the router reacts to failure: the policy's ``[resilience]``, ``[breakers]`` and ``[hedging]`` tables.

Kept apart from ``config/policy_parser.py`` (which only loads and validates files) so the
rules that decide *retry, wait, or fall back* sit next to the settings that
tune them, and both can be read in one place::

    [resilience]
    deadline_s = 60            # no request outlives this, retries and fallbacks included
    first_token_s = 15         # a stream's first text must come within this (then timeout_s bounds the rest)
    share_deadline = true      # an attempt gets at most (time left) / (usable entries left, itself included)
    max_retries = 2            # per entry, for timeouts and server errors
    backoff_base_s = 0.5       # exponential backoff with full jitter: U(0, min(max, base * 2^n))
    backoff_max_s = 8.0
    max_retry_after_s = 30     # a longer Retry-After falls back instead of waiting
    unhealthy_s = 600          # a rejected key / missing model keeps the entry out this long

    [breakers]                 # per provider:model
    consecutive_failures = 5
    failure_rate = 0.5         # ...or this share of failures over window_s, once min_calls were made
    window_s = 60
    min_calls = 10
    cooldown_s = 30            # then one trial request decides

    [hedging.pro]              # optional, per tier
    after_ms = 2000            # a number, or "p95" to learn it from recent first-token times
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BreakerConfig",
    "HedgeConfig",
    "ResilienceConfig",
    "AttemptLimits",
    "attempt_limits",
    "attempt_timeout",
    "percentile",
]

BREAKER_COUNTED = ("timeout", "unavailable", "rate_limited", "bad_response", "truncated")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResilienceConfig(_Strict):
    deadline_s: float = Field(default=60.0, gt=0, le=3600)
    first_token_s: float = Field(default=15.0, gt=0, le=3600)
    share_deadline: bool = True
    max_retries: int = Field(default=2, ge=0, le=10)
    backoff_base_s: float = Field(default=0.5, ge=0, le=60)
    backoff_max_s: float = Field(default=8.0, ge=0, le=600)
    max_retry_after_s: float = Field(default=30.0, ge=0, le=3600)
    unhealthy_s: float = Field(default=600.0, ge=0, le=86_400)
    retry_on: tuple[Literal["timeout", "unavailable", "bad_response"], ...] = ("timeout", "unavailable")


class BreakerConfig(_Strict):
    enabled: bool = True
    consecutive_failures: int = Field(default=5, ge=1, le=1000)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    window_s: float = Field(default=60.0, gt=0, le=86_400)
    min_calls: int = Field(default=10, ge=1, le=100_000)
    cooldown_s: float = Field(default=30.0, ge=0, le=86_400)
    count: tuple[Literal["timeout", "unavailable", "rate_limited", "bad_response", "truncated",
                         "content_blocked", "bad_request"], ...] = BREAKER_COUNTED


class HedgeConfig(_Strict):
    # A fixed threshold in ms, or "p95": the first entry's recent first-token p95.
    after_ms: float | Literal["p95"] = 2000.0
    min_samples: int = Field(default=20, ge=1, le=10_000)  # "p95" needs this many; until then default_ms
    default_ms: float = Field(default=2000.0, gt=0)
    floor_ms: float = Field(default=50.0, ge=0)            # never hedge sooner than this

    @model_validator(mode="after")
    def _positive(self) -> HedgeConfig:
        if isinstance(self.after_ms, float) and self.after_ms <= 0:
            raise ValueError("after_ms must be a positive number of milliseconds or \"p95\"")
        return self

    def threshold_ms(self, recent_ttft_ms: Sequence[float]) -> float:
        if self.after_ms != "p95":
            return max(float(self.after_ms), self.floor_ms)
        if len(recent_ttft_ms) < self.min_samples:
            return max(self.default_ms, self.floor_ms)
        return max(percentile(recent_ttft_ms, 95.0), self.floor_ms)


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (numpy's default), without numpy on the request path."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, kw_only=True)
class AttemptLimits:
    """How long one attempt may take, and what to say when it runs out.

    ``timeout_s`` bounds the whole answer; ``first_token_s`` (streams) the
    wait for the first text. ``cut`` says why ``timeout_s`` is shorter than
    the entry's own timeout, or is "".
    """

    timeout_s: float
    first_token_s: float | None = None
    cut: str = ""


def attempt_limits(cfg: ResilienceConfig, *, own_timeout_s: float, remaining_s: float, entries_left: int,
                   streaming: bool) -> AttemptLimits:
    """The timers of the next attempt.

    ``entries_left`` counts the usable chain entries not yet tried, this one
    included. With ``share_deadline`` an attempt may use at most its equal
    share of the time left, so a provider that never answers cannot eat the
    time its fallbacks need: with the defaults (60 s, three entries) each gets
    20 s at most, and one silent entry leaves the next 20 s or more.
    """
    timeout = _share_timeout(cfg, own_timeout_s, remaining_s, entries_left)
    cut = ""
    if timeout < own_timeout_s:
        cut = "the request's deadline" if entries_left <= 1 or not cfg.share_deadline else (
            f"its share of the {remaining_s:.3g} s left for {entries_left} entries")
    first = min(cfg.first_token_s, timeout) if streaming else None
    return AttemptLimits(timeout_s=max(0.001, timeout), first_token_s=first, cut=cut)


def attempt_timeout(cfg: ResilienceConfig, own_timeout_s: float, remaining_s: float, entries_left: int) -> float:
    """``attempt_limits(...).timeout_s`` without the rest: the Sandbox asks for it once per simulated try and
    never shows why an attempt was cut, so it skips building the words and the record."""
    return max(0.001, _share_timeout(cfg, own_timeout_s, remaining_s, entries_left))


def _share_timeout(cfg: ResilienceConfig, own_timeout_s: float, remaining_s: float, entries_left: int) -> float:
    share = remaining_s / max(1, entries_left) if cfg.share_deadline else remaining_s
    return share if share < own_timeout_s else own_timeout_s
