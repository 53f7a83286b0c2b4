"""What the router did for one request: the chain, the skips, every attempt, the answer.

These values are what the CLI prints, the dashboard draws as a timeline, and
the call log stores. They are plain data: no provider objects, no keys.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from taelio_core.errors import PLAIN_WORDS, AllProvidersFailed, BudgetExceeded
from taelio_core.routing.generation import Usage

__all__ = ["Attempt", "GenerationResult", "RouteEntry", "Skip", "retry_words"]


def retry_words(retry: int | None, wait_ms: float | None) -> str:
    """How a trace shows a retry of the same entry ("retry 2 after 340 ms"), or "" for a first try."""
    if not retry or retry != retry:  # None, 0 or NaN (a log row)
        return ""
    wait = wait_ms if wait_ms is not None and wait_ms == wait_ms else 0.0
    return f"retry {int(retry)} after {wait:,.0f} ms"


@dataclass(frozen=True, kw_only=True)
class RouteEntry:
    """One entry of a tier x task chain, as the seed's selection info shows it."""

    provider: str
    model: str
    available: bool
    reason: str = ""
    simulated: bool = False

    @property
    def ref(self) -> str:
        return f"{self.provider}:{self.model}"

    def as_dict(self) -> dict[str, object]:
        return {"provider": self.provider, "model": self.model, "available": self.available,
                "reason": self.reason, "simulated": self.simulated}


@dataclass(frozen=True, kw_only=True)
class Skip:
    provider: str
    model: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Attempt:
    n: int
    provider: str
    model: str
    status: str                      # ok | error | truncated | cancelled
    started_at: datetime
    latency_ms: float
    ttft_ms: float | None = None
    error_type: str | None = None
    error: str | None = None
    http_status: int | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: Decimal | None = None
    price_source: str | None = None
    finish_reason: str | None = None
    response_model: str | None = None
    simulated: bool = False
    retry: int = 0                   # 0 for the first try of an entry, 1.. for retries of the same entry
    hedge: bool = False              # started because the entry before it was slow
    wait_ms: float = 0.0             # the backoff (or Retry-After) wait before this retry
    retry_after_s: float | None = None  # what a 429 asked for
    sent: bool | None = None         # False: never left (connect failure); True: sent, no answer; None: unknown
    text: str = field(default="", repr=False)  # the answer, or the part shown before a stream broke

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def numbered(self, n: int) -> Attempt:
        """This attempt as the ``n``-th of its request (the router numbers attempts as they end)."""
        if self.n == n:
            return self
        if self.n == 0:
            # Fresh from the attempt runner and not yet shared with anyone: number it in place, which
            # costs a tenth of ``dataclasses.replace`` on the request path.
            object.__setattr__(self, "n", n)
            return self
        return replace(self, n=n)

    @property
    def plain_error(self) -> str:
        if self.error_type is None:
            return ""
        return PLAIN_WORDS.get(self.error_type, self.error_type)

    def as_dict(self) -> dict[str, object]:
        return {"n": self.n, "provider": self.provider, "model": self.model, "status": self.status,
                "error_type": self.error_type, "error": self.error, "http_status": self.http_status,
                "latency_ms": round(self.latency_ms, 2),
                "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 2),
                "input_tokens": self.usage.input_tokens, "output_tokens": self.usage.output_tokens,
                "cached_tokens": self.usage.cached_tokens,
                "cost_usd": None if self.cost_usd is None else float(self.cost_usd),
                "price_source": self.price_source, "simulated": self.simulated, "retry": self.retry,
                "hedge": self.hedge, "wait_ms": round(self.wait_ms, 2), "sent": self.sent}


@dataclass(frozen=True, kw_only=True)
class GenerationResult:
    request_id: str
    parent_id: str | None
    tier: str
    task: str
    policy: str
    source: str
    status: str                      # ok | failed | truncated | rejected
    started_at: datetime
    text: str
    provider: str | None
    model: str | None
    latency_ms: float
    ttft_ms: float | None
    chain: tuple[RouteEntry, ...]
    attempts: tuple[Attempt, ...]
    skipped: tuple[Skip, ...]
    error: str | None = None
    routing_reason: str | None = None    # e.g. a budget rule that switched chains
    prompt: str = ""                      # the rendered user prompt
    experiment_id: str | None = None
    simulated: bool = False
    user_id: str | None = None
    pinned_provider: str | None = None   # the caller chose this provider: the chain was cut to its entries

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def raise_for_status(self) -> GenerationResult:
        """This result when it has an answer (a cut one included); ``BudgetExceeded`` or ``AllProvidersFailed``
        (carrying every attempt the walk fell back on) when it has none."""
        if self.status == "rejected":
            raise BudgetExceeded(self.error or "a hard budget is spent", scope=self.tier)
        if self.status == "failed":
            raise AllProvidersFailed(self.error or "every provider failed", attempts=self.attempts,
                                     skipped=self.skipped, result=self)
        return self

    @property
    def exit_code(self) -> int:
        """The CLI's exit code for this result: 0 answered, 3 no answer (failed, or cut off mid-answer with no
        later entry completing it), 4 refused by a hard budget."""
        return {"ok": 0, "rejected": 4}.get(self.status, 3)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for attempt in self.attempts:
            total = total + attempt.usage
        return total

    @property
    def cost_usd(self) -> Decimal | None:
        """Sum over attempts; None when any attempt with tokens could not be priced."""
        total = Decimal(0)
        for attempt in self.attempts:
            if attempt.cost_usd is None:
                if attempt.usage.input_tokens or attempt.usage.output_tokens:
                    return None
                continue
            total += attempt.cost_usd
        return total

    @property
    def fallback_depth(self) -> int:
        """How many times the walk moved on to another chain entry: the entries tried that did not serve the
        answer (all of them when none did). Retries of one entry are not fallbacks (``retries`` counts them)."""
        served = (self.provider, self.model) if self.ok else None
        return len({(a.provider, a.model) for a in self.attempts} - {served})

    @property
    def retries(self) -> int:
        """Attempts that retried the same entry."""
        return sum(1 for a in self.attempts if a.retry)

    def as_dict(self) -> dict[str, object]:
        cost = self.cost_usd
        return {"request_id": self.request_id, "parent_id": self.parent_id, "status": self.status,
                "tier": self.tier, "task": self.task, "policy": self.policy, "source": self.source,
                "text": self.text, "provider": self.provider, "model": self.model,
                "simulated": self.simulated,
                "cost_usd": None if cost is None else float(cost),
                "latency_ms": round(self.latency_ms, 2),
                "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 2),
                "input_tokens": self.usage.input_tokens, "output_tokens": self.usage.output_tokens,
                "error": self.error, "routing_reason": self.routing_reason,
                "pinned_provider": self.pinned_provider, "fallback_depth": self.fallback_depth,
                "retries": self.retries,
                "chain": [e.as_dict() for e in self.chain],
                "skipped": [{"provider": s.provider, "model": s.model, "reason": s.reason} for s in self.skipped],
                "attempts": [a.as_dict() for a in self.attempts]}
