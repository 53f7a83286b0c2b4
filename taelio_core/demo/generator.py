"""Demo data made by the real router: the demo log is what live traffic would have logged.

``generate_demo_data`` runs the same ``Router`` live traffic uses, with the
one simulator (``providers.simulated``) for every provider, over
``demo_traffic`` in the sandbox's virtual time (``sandbox/replay.py``): chains,
retries, back-offs, breakers, hedging, pricing and the log rows are the live
code's, so demo figures cannot disagree with what routing does. Time is
virtual, so 30 days of traffic take seconds.

Rows are marked ``source='demo'`` (``remove_demo_data`` deletes exactly
those) and ``simulated``, and the answers say "[simulated". They reach the
log as Arrow batches (``CallLog.append_rows``), not row by row.
"""
from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from taelio_core.calllog.arrow import ATTEMPT_SCHEMA, REQUEST_SCHEMA, rows_to_table
from taelio_core.calllog.base import CallLog
from taelio_core.calllog.rows import encode
from taelio_core.config.policy import RoutingPolicy
from taelio_core.demo.traffic import DemoTraffic, demo_outages, demo_traffic
from taelio_core.errors import TaelioError
from taelio_core.providers.simulated import CURRENT_REQUEST, Outage, RequestSpec, Script
from taelio_core.routing.clock import LoopClock
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Router
from taelio_core.routing.trace import GenerationResult
from taelio_core.sandbox.loop import VirtualTimeLoop
from taelio_core.sandbox.models import ModelSet, models_from_policy
from taelio_core.sandbox.replay import run_in_virtual_time, sandbox_providers

__all__ = ["DEFAULT_REQUESTS_PER_DAY", "generate_demo_data"]

DEFAULT_REQUESTS_PER_DAY = 400
BATCH = 5_000          # requests per Arrow batch appended to the log
# Where a policy's [simulator] table sets no error rates: the common failures.
DEFAULT_RATES = {"rate_limited": 0.03, "unavailable": 0.02, "timeout": 0.01}
# Added to every profile that does not name them: the rare failures real traffic has.
RARE_RATES = {"auth_failed": 0.0008, "model_not_found": 0.0006, "bad_request": 0.0005, "content_blocked": 0.002,
              "bad_response": 0.002}
STREAM_CUT_RATE = 0.003   # streams that break mid-answer
STORY_GAP_S = 0.8      # a user reads the idea for about this long before asking for the story
RETRY_GAP_S = 20.0     # after a failed idea, the user tries again about this much later
DEMO_TIMEOUT_WAIT_S = 20.0   # a simulated timeout fails after this long, or the attempt's timeout if shorter


class _LogSink:
    """The router's ``CallSink`` for demo data: encoded rows, appended to the log in Arrow batches."""

    def __init__(self, log: CallLog, seed: int) -> None:
        self.log = log
        self.seed = seed
        self.requests: list[tuple] = []
        self.attempts: list[tuple] = []
        self.written = 0

    def record(self, result: GenerationResult) -> None:
        request, attempts = encode(result)
        # Ids name the time they were made (``context.new_id``), and the router made these in real time:
        # give them the virtual time the request is logged at, so the Calls page finds them by id at once,
        # and bits from (seed, request), so the same arguments make the same rows and a rerun adds nothing.
        rid = demo_id(request[2] // 1000, self.seed, CURRENT_REQUEST.get().index)
        self.requests.append((rid, *request[1:]))
        self.attempts.extend((rid, *a[1:]) for a in attempts)
        if len(self.requests) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.requests:
            return
        self.written += self.log.append_rows(rows_to_table(self.requests, REQUEST_SCHEMA),
                                             rows_to_table(self.attempts, ATTEMPT_SCHEMA))
        self.requests, self.attempts = [], []


def demo_size(days: int, requests: int | None, now: datetime | None) -> tuple[int, datetime]:
    """How many requests (default 400 a day), and the UTC instant the traffic ends; a bad count raises."""
    if days < 1:
        raise ValueError("days must be at least 1")
    total = DEFAULT_REQUESTS_PER_DAY * days if requests is None else int(requests)
    if total < 0:
        raise ValueError("requests must not be negative")
    return total, (now or datetime.now(UTC)).astimezone(UTC)


def demo_id(at_ms: int, seed: int, index: int, salt: str = "request") -> str:
    """A ``context.new_id``-shaped id: the time in its first 48 bits, then bits from (seed, index)."""
    return f"{at_ms:012x}" + hashlib.sha256(f"{salt}|{seed}|{index}".encode()).hexdigest()[:20]


def demo_models(policy: RoutingPolicy, *, days: int, seed: int, now: datetime) -> ModelSet:
    """The policy's simulator profiles, with default failure rates where it sets none and the demo's outages."""
    models = models_from_policy(policy)
    start = (now - timedelta(days=days)).timestamp()
    outages = demo_outages(policy, days=days, seed=seed, now=now)
    updated = {}
    for ref, m in models.models.items():
        rates = {**RARE_RATES, **(m.error_rates or DEFAULT_RATES)}
        mine = tuple(Outage(start_s=o.start.timestamp() - start, end_s=o.end.timestamp() - start)
                     for o in outages if o.provider == m.provider)
        updated[ref] = replace(m, error_rates=dict(rates), outages=m.outages + mine,
                               timeout_wait_s=DEMO_TIMEOUT_WAIT_S, stream_cut_rate=m.stream_cut_rate or STREAM_CUT_RATE)
    return ModelSet(models=updated, limits=models.limits, source="policy")


def generate_demo_data(log: CallLog, policy: RoutingPolicy, *, days: int = 30, requests: int | None = None,
                       seed: int = 0, now: datetime | None = None,
                       progress: Callable[[float], None] | None = None, script: Script | None = None,
                       pair_share: float | None = None) -> int:
    """Route simulated requests (default 400 a day) over the ``days`` before ``now``; return how many were logged.

    ``progress`` gets the share of requests routed (0.0 to 1.0) as virtual time passes. ``script`` replaces the
    simulator's random draws with a fixed fault script (tests); ``pair_share`` overrides the share of ideas
    followed by a story.
    """
    total, now = demo_size(days, requests, now)
    if progress is not None:
        progress(0.0)
    if total == 0:
        if progress is not None:
            progress(1.0)
        return 0
    kw = {} if pair_share is None else {"pair_share": pair_share}
    plan = demo_traffic(policy, days=days, requests=total, seed=seed, now=now, **kw)
    models = demo_models(policy, days=days, seed=seed, now=now)
    loop = VirtualTimeLoop()
    clock = LoopClock(plan.traffic.start, loop)
    clock.monotonic()  # anchor: virtual second 0 is the traffic's start
    sink = _LogSink(log, seed)
    router = Router(policy, sandbox_providers(list(policy.providers), models, seed=seed, script=script),
                    sink=sink, clock=clock, source="demo", rng=random.Random(seed))
    # Progress is the share of requests routed (the last batch is written before 1.0 is reported).
    routed = (lambda share: progress(min(share, 0.99))) if progress is not None else None
    run_in_virtual_time(loop, plan.traffic.arrival_s.tolist(), _request(router, plan, seed), progress=routed)
    sink.flush()
    if progress is not None:
        progress(1.0)
    return sink.written


def _request(router: Router, plan: DemoTraffic, seed: int) -> Callable[[int], Awaitable[None]]:
    traffic = plan.traffic
    tiers = [traffic.tiers[k] for k in traffic.tier_idx.tolist()]
    tasks = [traffic.tasks[k] for k in traffic.task_idx.tolist()]
    streamed, follow_up, is_follow_up = plan.streamed.tolist(), plan.follow_up.tolist(), plan.is_follow_up.tolist()
    out_tokens = traffic.output_tokens.tolist()

    async def one(i: int) -> None:
        if is_follow_up[i]:
            return  # asked by the request it follows, when that one is done
        j = follow_up[i]
        first = await _ask(router, i, tiers[i], tasks[i], plan.inputs[i], user_id=plan.users[i],
                           streamed=streamed[i], parent_id=None, paired=j >= 0, seed=seed, output_tokens=out_tokens[i])
        if j < 0 or plan.story_task is None:
            return
        ok = first is not None and first.status == "ok"
        # The story on the idea, under the idea's parent id; after a failed idea, the idea again, later.
        await asyncio.sleep(STORY_GAP_S if ok else RETRY_GAP_S)
        inputs = plan.inputs[i]
        if ok:
            inputs = Inputs(prompt=inputs.prompt, genre=inputs.genre, tone=inputs.tone, idea=first.text)
        await _ask(router, j, tiers[i], plan.story_task if ok else tasks[i], inputs, user_id=plan.users[i],
                   streamed=streamed[j], parent_id=first.parent_id if ok else None, paired=ok, seed=seed,
                   output_tokens=out_tokens[j])
    return one


async def _ask(router: Router, index: int, tier: str, task: str, inputs: Inputs, *, user_id: str, streamed: bool,
               parent_id: str | None, paired: bool, seed: int, output_tokens: int) -> GenerationResult | None:
    CURRENT_REQUEST.set(RequestSpec(index, 0, output_tokens, text=True))
    if paired and parent_id is None:  # a new flow: its id names the (virtual) time it starts, as new_id's do
        parent_id = demo_id(int(router.clock.now().timestamp() * 1000), seed, index, "flow")
    try:
        if not streamed:
            return await router.agenerate(tier, task, inputs, parent_id=parent_id, user_id=user_id)
        stream = router.astream(tier, task, inputs, parent_id=parent_id, user_id=user_id)
        async for _ in stream:
            pass
        return stream.result
    except TaelioError:
        return None  # every provider failed, or a budget refused it: logged by the router all the same
