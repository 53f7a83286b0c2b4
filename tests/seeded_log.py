"""A call log with hand-built traffic, for the analytics, AppTest and browser tests.

The requests are built as ``GenerationResult`` values and written through the
real ``DuckDBCallLog`` into a real DuckDB file. The values are kept, so tests
can compute what every chart should say in plain Python, independently of
the SQL under test.

Every caller names the clock its traffic ends at (``now=``); there is no
default. A test that passes ``FIXED_NOW`` must also pass it to the code under
test (``now=``/``today=``); a test of a running dashboard, whose filters use
the real clock, seeds with ``clock_now()``. Mixing the two breaks as soon as
the calendar moves past the fixed date's window.
"""
from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from taelio_core.calllog import DuckDBCallLog
from taelio_core.routing.generation import Usage
from taelio_core.routing.trace import Attempt, GenerationResult, RouteEntry, Skip

FIXED_NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def clock_now() -> datetime:
    """The real clock, as a running dashboard reads it (whole seconds)."""
    return datetime.now(UTC).replace(microsecond=0)


CHAINS = {
    "free": [("gemini", "gemini-1.5-flash"), ("openai", "gpt-3.5-turbo"), ("anthropic", "claude-3-haiku-20240307")],
    "pro": [("openai", "gpt-4"), ("anthropic", "claude-3-sonnet-20240229"), ("gemini", "gemini-1.5-pro")],
    "admin": [("anthropic", "claude-3-sonnet-20240229"), ("openai", "gpt-4"), ("gemini", "gemini-1.5-pro")],
}
ERRORS = [("rate_limited", 429), ("unavailable", 503), ("timeout", None), ("auth_failed", 401)]


@dataclass(frozen=True, kw_only=True)
class Seeded:
    path: Path
    results: list[GenerationResult]
    now: datetime


def _price(model: str, usage: Usage) -> Decimal | None:
    if model == "gemini-1.5-pro":           # this model is "unpriced" in the seeded data
        return None
    per_in = {"gemini-1.5-flash": Decimal("0.075"), "gpt-3.5-turbo": Decimal("0.5"), "gpt-4": Decimal("30"),
              "claude-3-haiku-20240307": Decimal("0.25"), "claude-3-sonnet-20240229": Decimal("3")}[model]
    return (per_in * usage.input_tokens + per_in * 2 * usage.output_tokens) / Decimal(1_000_000)


def build_results(*, now: datetime, n: int = 240, days: int = 20, seed: int = 7,
                  source: str = "demo") -> list[GenerationResult]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        tier = ("free", "free", "pro", "admin")[i % 4]
        task = "idea" if i % 3 else "story"
        ts = now - timedelta(days=days) + timedelta(seconds=rng.uniform(0, days * 86400 - 60))
        if i < 6:  # a few in the last hour, for the health window
            ts = now - timedelta(minutes=5 + i)
        chain = CHAINS[tier]
        failures = 0 if i % 5 else (1 if i % 10 else 2)
        if i % 47 == 0:
            failures = 3        # every entry failed
        attempts = []
        t = ts
        for k, (provider, model) in enumerate(chain[:min(failures + 1, 3)]):
            failed = k < failures
            err, status = ERRORS[(i + k) % len(ERRORS)] if failed else (None, None)
            usage = Usage() if failed else Usage(input_tokens=100 + i, output_tokens=200 + 2 * i)
            cost = _price(model, usage) if not failed else None
            latency = 100.0 + (i * 37 % 900) + 400 * k
            attempts.append(Attempt(
                n=k + 1, provider=provider, model=model, status="error" if failed else "ok", started_at=t,
                latency_ms=latency, ttft_ms=None if failed else latency / 4, error_type=err,
                error=f"{provider}: {err} (seeded)" if failed else None, http_status=status, usage=usage,
                cost_usd=cost, price_source=None if cost is None else "seeded", simulated=False,
                text="" if failed else f"Answer {i} about a lighthouse"))
            t = t + timedelta(milliseconds=latency)
        served = attempts[-1] if attempts[-1].ok else None
        out.append(GenerationResult(
            request_id=f"req-{i:04d}-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}", parent_id=None, tier=tier,
            task=task, policy="seed", source=source, status="ok" if served else "failed", started_at=ts,
            text=served.text if served else "", provider=served.provider if served else None,
            model=served.model if served else None, latency_ms=sum(a.latency_ms for a in attempts),
            ttft_ms=served.ttft_ms if served else None,
            chain=tuple(RouteEntry(provider=p, model=m, available=True) for p, m in chain),
            attempts=tuple(attempts), skipped=tuple(Skip(provider=p, model=m, reason="no API key")
                                                    for p, m in chain[len(attempts):] if failures == 3),
            error=None if served else f"Every provider failed for {tier}/{task}: seeded.",
            prompt=f"Premise {i}: a lighthouse keeper finds a message" + (" <b>bold</b>" if i == 1 else "")))
    return out


def seed_log(path: Path, results: list[GenerationResult] | None = None, *, now: datetime) -> Seeded:
    results = results if results is not None else build_results(now=now)
    log = DuckDBCallLog(path)
    for result in results:
        log.record(result)
    log.flush(timeout=30)
    log.close()
    return Seeded(path=path, results=results, now=now)
