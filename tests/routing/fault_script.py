"""The fixed fault script: one policy, 320 requests and what every provider does on every try.

The script exercises every decision the router makes: provider outages, 429
bursts with a Retry-After that fits and one that does not, streams cut after
their first chunk, a rejected key and a retired model (health marks), silent
providers (timeouts, the deadline's share), a hard daily budget that runs
out and comes back at midnight, a provider budget that runs out, a degrade
rule, and breakers that open, half-open (one trial, others skipped while it
is in flight) and close. It starts at 23:57 UTC on the last day of a month,
so the daily and monthly budget periods both roll over during it.

Both sides of the differential test run it: the live async router
(``run_live``: simulated providers on the virtual-time loop) and the Sandbox.
What each side must produce, per request, is ``decision_record``; the golden
file ``golden_decisions.jsonl`` holds what the live router decided.

A try's outcome depends only on (request, provider:model, try number), as in
``providers.simulated.Script``; back-off jitter only on (request, k-th draw of
that request) through ``KeyedJitter``: neither depends on the order in which
concurrent requests happen to run.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from taelio_core.config.policy import RoutingPolicy
from taelio_core.config.policy_parser import parse_policy
from taelio_core.errors import AllProvidersFailed, BudgetExceeded
from taelio_core.providers.simulated import CURRENT_REQUEST, RequestSpec, ScriptedTry
from taelio_core.routing.clock import LoopClock
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Router
from taelio_core.routing.trace import GenerationResult
from taelio_core.sandbox.loop import VirtualTimeLoop
from taelio_core.sandbox.models import models_from_policy
from taelio_core.sandbox.replay import run_in_virtual_time, sandbox_providers

__all__ = ["GOLDEN", "INPUTS", "REQUESTS", "SEED", "START", "FaultRequest", "KeyedJitter", "decision_record",
           "fault_policy", "outcome", "read_golden", "run_live", "write_golden"]

GOLDEN = Path(__file__).with_name("golden_decisions.jsonl")
SEED = 15
START = datetime(2026, 11, 30, 23, 57, 0, tzinfo=UTC)   # midnight (a new day and month) at t = 180 s
N = 320
INPUTS = Inputs(prompt="A lighthouse keeper finds a message", genre="Mystery", tone="Dark", idea="A lighthouse")

POLICY = """
name = "fault-script"
[defaults]
timeout_s = 2.0
max_tokens = 400
temperature = 0.8

[providers.gemini]
kind = "gemini"
[providers.openai]
kind = "openai"
[providers.anthropic]
kind = "anthropic"

[tasks.idea]
system = "You are a creative writing partner. Reply with one vivid, original story idea in a short paragraph."
user = "Premise: {prompt}\\nGenre: {genre}\\nTone: {tone}\\nGive me one story idea."
max_tokens = 400
[tasks.story]
system = "You are a fiction writer. Write a complete short story from the idea you are given."
user = "Idea: {idea}\\nGenre: {genre}\\nTone: {tone}\\nWrite the story (about 500 words)."
max_tokens = 1500
needs = "idea"

[tiers.free]
[tiers.pro]
allow_provider_override = true
[tiers.admin]
allow_provider_override = true

[routes.free]
idea  = ["gemini:gemini-2.5-flash", "openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5"]
story = ["gemini:gemini-2.5-flash", "openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5"]
[routes.pro]
idea  = ["openai:gpt-4.1", "anthropic:claude-sonnet-4-5", "gemini:gemini-2.5-pro"]
story = ["anthropic:claude-sonnet-4-5", "openai:gpt-4.1", "gemini:gemini-2.5-pro"]
[routes.admin]
idea  = ["anthropic:claude-sonnet-4-5", "openai:gpt-4.1", "gemini:gemini-2.5-pro"]
story = ["openai:gpt-4.1", "anthropic:claude-sonnet-4-5", "gemini:gemini-2.5-pro"]

[resilience]
deadline_s = 9.0
first_token_s = 1.0
max_retries = 2
backoff_base_s = 0.25
backoff_max_s = 2.0
max_retry_after_s = 3.0
unhealthy_s = 90.0

[breakers]
consecutive_failures = 3
failure_rate = 0.5
window_s = 30.0
min_calls = 6
cooldown_s = 12.0

[budgets]
count_simulated = true
[budgets.tier.free]
daily = 0.03
hard = true
[budgets.tier.pro]
daily = 0.2
[budgets.provider.anthropic]
monthly = 0.1
hard = true
[[budgets.degrade]]
tier = "pro"
at_pct = 60
period = "daily"
use = "free"

[simulator.gemini]
ttft_ms = 180
[simulator.openai]
ttft_ms = 350
[simulator.anthropic]
ttft_ms = 300
"""


def fault_policy() -> RoutingPolicy:
    return parse_policy(POLICY, source="fault-script.toml")


def _h(*parts: object) -> int:
    """A stable 64-bit draw from ``parts`` (the same in every process)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


@dataclass(frozen=True, kw_only=True)
class FaultRequest:
    i: int
    arrival_s: float        # virtual seconds after START (to the nanosecond)
    tier: str
    task: str
    stream: bool
    input_tokens: int
    output_tokens: int


def _requests() -> tuple[FaultRequest, ...]:
    out, t = [], 0.0
    for i in range(N):
        h = _h("request", i)
        # 0.4-1.4 s apart (about 290 s in all), off the millisecond grid of try latencies: no attempt ends at
        # the very instant another request arrives, so no result depends on how a tie is broken.
        t = round(t + 0.4 + (h % 1_000_000_000) / 1e9, 9)
        tier = ("free", "free", "pro", "pro", "admin")[(h >> 10) % 5]
        task = "story" if (h >> 20) % 4 == 0 else "idea"
        out.append(FaultRequest(i=i, arrival_s=t, tier=tier, task=task, stream=(h >> 30) % 3 == 0,
                                input_tokens=200 + (h >> 40) % 600, output_tokens=100 + (h >> 50) % 300))
    return tuple(out)


REQUESTS = _requests()


def outcome(i: int, provider: str, model: str, tried: int) -> ScriptedTry:
    """What ``provider:model`` does on try ``tried`` (from 0) of request ``i``."""
    h = _h("try", i, provider, model, tried)
    latency = (150 + h % 1200) / 1000.0                # whole milliseconds
    ok = ScriptedTry(latency_s=latency)

    def fail(error: str, retry_after_s: float = 1.0) -> ScriptedTry:
        return ScriptedTry(error=error, latency_s=latency, retry_after_s=retry_after_s)

    # Outages and bursts, by request index (the script is a function of the request, not of time).
    if provider == "gemini" and 40 <= i < 90:
        return fail("unavailable")                       # gemini down: its breakers open, trials fail
    if provider == "openai" and 110 <= i < 125:
        return fail("rate_limited", 0.4) if tried == 0 else ok   # 429 burst, Retry-After fits
    if provider == "openai" and 125 <= i < 135:
        return fail("rate_limited", 8.0)                 # Retry-After over max_retry_after_s: fall back
    if provider == "anthropic" and i in (203, 204):
        return fail("auth_failed")                       # the key is rejected: a provider-wide mark
    if model == "gemini-2.5-flash" and 285 <= i < 290:
        return fail("model_not_found")                   # retired model: its own mark
    if model == "gpt-4.1" and 200 <= i < 240:
        return fail("timeout")                           # silent: hangs until the attempt's timeout
    if 262 <= i < 266 and tried < 2:
        return fail("timeout")                           # everyone silent: the deadline runs out
    if model == "claude-haiku-4-5" and 230 <= i < 250 and tried == 0:
        return fail("unavailable")
    # Now and then, anywhere.
    roll = (h >> 12) % 100
    if roll < 4:
        return fail("unavailable")
    if roll < 6:
        return fail("timeout")
    if roll < 8:
        return fail("bad_response")
    if roll < 9:
        return fail("rate_limited", 0.25)
    if roll < 17:
        return ScriptedTry(latency_s=latency, cut=True)  # a stream breaks after its first chunk
    return ok


class KeyedJitter(random.Random):
    """Back-off jitter drawn from (seed, request, k-th draw of that request): the same whatever order
    concurrent requests run in. ``random()`` is what ``Random.uniform`` calls."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self._seed = seed
        self._draws: dict[int, int] = {}

    def random(self) -> float:
        i = CURRENT_REQUEST.get().index
        k = self._draws.get(i, 0)
        self._draws[i] = k + 1
        return jitter(self._seed, i, k)


def jitter(seed: int, i: int, k: int) -> float:
    """The ``k``-th uniform draw in [0, 1) of request ``i``."""
    return (_h("jitter", seed, i, k) >> 11) / float(1 << 53)


def _money(value: object) -> str | None:
    return None if value is None else str(value)


def decision_record(req: FaultRequest, result: GenerationResult) -> dict[str, object]:
    """What the router decided for one request, in a form both sides can produce and compare."""
    served = f"{result.provider}:{result.model}" if result.provider else None
    return {
        "i": req.i, "tier": req.tier, "task": req.task, "stream": req.stream,
        "status": result.status, "served": served, "routing_reason": result.routing_reason,
        "latency_ms": round(result.latency_ms, 3),
        "attempts": [[f"{a.provider}:{a.model}", a.status, a.error_type, a.retry, round(a.wait_ms, 3),
                      round(a.latency_ms, 3), _money(a.cost_usd)] for a in result.attempts],
        "skipped": [[f"{s.provider}:{s.model}", s.reason] for s in result.skipped],
    }


def run_live(policy: RoutingPolicy | None = None,
             requests: Iterable[FaultRequest] = REQUESTS) -> list[dict[str, object]]:
    """Every request of the script through the live async ``Router``, in virtual time."""
    policy = policy or fault_policy()
    requests = list(requests)
    loop = VirtualTimeLoop()
    clock = LoopClock(START, loop)
    clock.monotonic()  # virtual second 0 is START
    providers = sandbox_providers(list(policy.providers), models_from_policy(policy), seed=SEED, script=outcome)
    results: dict[int, GenerationResult] = {}

    class Sink:
        def record(self, result: GenerationResult) -> None:
            results[CURRENT_REQUEST.get().index] = result

    router = Router(policy, providers, sink=Sink(), clock=clock, source="sandbox", rng=KeyedJitter(SEED))

    async def one(k: int) -> None:
        req = requests[k]
        CURRENT_REQUEST.set(RequestSpec(req.i, req.input_tokens, req.output_tokens, text=req.stream))
        if req.stream:
            async for _ in router.astream(req.tier, req.task, INPUTS):
                pass
            return
        try:
            await router.agenerate(req.tier, req.task, INPUTS)
        except (AllProvidersFailed, BudgetExceeded):
            pass  # recorded by the sink already

    run_in_virtual_time(loop, [r.arrival_s for r in requests], one)
    return [decision_record(r, results[r.i]) for r in requests]


def write_golden(records: list[dict[str, object]], path: Path = GOLDEN) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def read_golden(path: Path = GOLDEN) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


if __name__ == "__main__":   # python -m tests.routing.fault_script: rewrite the golden file (explain why!)
    write_golden(run_live())
