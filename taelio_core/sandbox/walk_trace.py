"""The full trace of one sampled Sandbox request: what the live router's ``GenerationResult`` would say.

Most simulated requests leave only numbers in the columns; the few the page
shows as sample traces (and the differential test, which reads them all) are
rebuilt here from the walk's compact record, as the same trace objects the
live router logs.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from taelio_core.routing.decision_state import to_decimal
from taelio_core.routing.generation import Usage
from taelio_core.routing.trace import Attempt, GenerationResult, RouteEntry, Skip

if TYPE_CHECKING:
    from taelio_core.sandbox.walk import ChainSteps

__all__ = ["walk_result"]


def walk_result(walk: ChainSteps) -> GenerationResult:
    core = walk.core
    plan = core.plan
    attempts = []
    for n, a in enumerate(walk.tries, 1):
        entry = plan.entries[a.k]
        cost = None if a.cost is None else to_decimal(a.cost)
        attempts.append(Attempt(
            n=n, provider=entry.provider, model=entry.model, status=a.status, started_at=core.at(a.start),
            latency_ms=a.seconds * 1000.0, error_type=a.error,
            ttft_ms=None if a.ttft is None else a.ttft * 1000.0,
            error=None if a.error is None else f"simulated {a.error.replace('_', ' ')}",
            usage=Usage(input_tokens=a.used_in, output_tokens=a.used_out), cost_usd=cost,
            price_source=a.source, simulated=True, retry=a.retry, wait_ms=a.wait_s * 1000.0,
            retry_after_s=a.retry_after, finish_reason="stop" if a.status == "ok" else None,
            response_model=entry.model if a.status == "ok" else None))
    skipped = tuple(Skip(provider=plan.entries[k].provider, model=plan.entries[k].model, reason=why)
                    for k, why in walk.skipped)
    reasons = {(s.provider, s.model): s.reason for s in skipped}
    chain = tuple(RouteEntry(provider=plan.entries[k].provider, model=plan.entries[k].model,
                             available=(plan.entries[k].provider, plan.entries[k].model) not in reasons,
                             reason=reasons.get((plan.entries[k].provider, plan.entries[k].model), ""),
                             simulated=True) for k in walk.entries)
    served = attempts[-1] if walk.status in ("ok", "truncated") else None
    status, latency, ttft = walk.status, walk.numbers()[2], walk.numbers()[3]
    return GenerationResult(
        request_id=f"sandbox-{walk.i}", parent_id=None, tier=walk.tier, task=walk.task,
        policy=core.policy.name,
        source="sandbox", status=status, started_at=core.at(walk.t0), text="[simulated]" if served else "",
        provider=served.provider if served else None, model=served.model if served else None,
        latency_ms=latency, ttft_ms=None if math.isnan(ttft) else ttft, chain=chain, attempts=tuple(attempts), skipped=skipped,
        error=walk.rejected if status == "rejected" and walk.rejected else None,
        routing_reason=walk.reason, simulated=True)
