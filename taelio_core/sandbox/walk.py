"""The Sandbox's side of the decision core: one request's chain walk as synchronous steps.

``SandboxCore`` holds one simulated run's routing state as the decision core
keeps it (a ``BreakerCell`` per breaker key, one ``BudgetBook``, the compiled
``PolicyPlan``) and gives each request a ``ChainSteps``, which the discrete-event
engine (``engine.run_engine``) drives: ``step`` says what to do next, ``outcome``
hears how a try ended. Every decision is a call into ``routing.decisions`` or
``routing.route_plan``: whether an entry is admitted (breaker, health mark,
budget reservation, deadline), the attempt's timeout, retry-or-fall-back and
the wait, what an outcome does to a breaker and a budget, the price. What is
here is only the order in which the live chain walk
(``routing.chain_walk.ChainWalk._walk``) asks those questions, so the two
make the same decisions; the differential test over the fault script checks
that they do.

Not covered yet (``supported`` says so, and the asyncio engine runs such
policies): hedging and live traffic splits. Streamed requests (``streamed``)
are walked as the live stream walk does, without ``continue_on_truncation``.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from decimal import Decimal

from taelio_core.config.policy import RoutingPolicy
from taelio_core.config.pricing import Pricer
from taelio_core.guards.budgets import estimate_input_tokens
from taelio_core.guards.resilience import attempt_limits, attempt_timeout
from taelio_core.providers.simulated import simulated_text
from taelio_core.routing.decision_state import BreakerCell, BudgetBook, to_decimal
from taelio_core.routing.decisions import (
    OUT_AUTH,
    OUT_CANCELLED,
    OUT_FAILED,
    OUT_MODEL,
    OUT_OK,
    REASON_AUTH,
    REASON_MODEL,
    after_outcome,
    breaker_admit,
    breaker_drop_probe,
    breaker_mark,
    breaker_outcome,
    breaker_record,
    breaker_skip_text,
    budget_admit,
    budget_settle,
    budget_skip_text,
    deadline_text,
    degrade_route,
)
from taelio_core.routing.generation import ChatRequest
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.route_plan import PolicyPlan, RoutePlan, budget_keys, compile_plan, period_labels
from taelio_core.routing.trace import GenerationResult
from taelio_core.sandbox.engine import DONE, TRY, WAIT
from taelio_core.sandbox.walk_trace import walk_result

__all__ = ["SANDBOX_INPUTS", "ChainSteps", "SandboxCore", "supported"]

# Short on purpose, as the asyncio engine's: the sandbox does not write answers.
SANDBOX_INPUTS = Inputs(prompt="sim", genre="", tone="", idea="sim")
_NEXT, _SLEEP, _WAKE, _DONE = 0, 1, 2, 3
_PICO = 1e-12


def supported(policy: RoutingPolicy) -> str | None:
    """Why this engine cannot run ``policy`` yet, or None."""
    if policy.model.hedging:
        return "hedging"
    if any(policy.split(tier, task) is not None for tier, task in policy.chains):
        return "live traffic splits"
    return None


class SandboxCore:
    """One simulated run's routing state over a compiled policy. ``refs`` index the plan's entries."""

    def __init__(self, policy: RoutingPolicy, start: datetime, *, seed: int = 0, pricer: Pricer | None = None,
                 jitter: Callable[[int], float] | None = None, inputs: Inputs = SANDBOX_INPUTS,
                 streamed: Collection[int] = (), text: bool = False) -> None:
        """``jitter(i)`` draws request ``i``'s next back-off uniform (default: one seeded stream, in event
        order, as the asyncio engine's router draws); ``streamed`` are the requests sent as streams, and
        ``text`` says whether the simulator writes their answers (its text's length times a stream)."""
        self.policy = policy
        self.plan: PolicyPlan = compile_plan(policy, pricer)
        self.refs = [e.ref for e in self.plan.entries]
        self.start = start
        self.epoch = start.timestamp()
        self.cells = {key: BreakerCell() for key in self.plan.keys}
        self._cell_of = [(self.cells[self.plan.keys[e.provider_key]], self.cells[self.plan.keys[e.entry_key]])
                         for e in self.plan.entries]
        self.book = BudgetBook()
        self.breakers = self.plan.breakers
        self.resilience = self.plan.resilience
        self.unhealthy_s = self.plan.unhealthy_s
        self.budgets = policy.model.budgets
        self.degrade_tiers = {rule.tier for rule in self.budgets.degrade}
        rng = random.Random(seed)
        self.jitter: Callable[[int], float] = jitter or (lambda _i: rng.random())
        # What each tier x task sends, rendered once: the budget estimate reads its length.
        self.requests: dict[tuple[str, str], ChatRequest] = {}
        for (tier, task), route in self.plan.routes.items():
            variables = inputs.variables(route.needs)
            self.requests[(tier, task)] = ChatRequest(system=route.system.format(**variables),
                                                      user=route.user.format(**variables), settings=route.settings,
                                                      task=task, variables=tuple(variables.items()))
        self._estimate = {key: estimate_input_tokens(r) for key, r in self.requests.items()}
        self._rules: dict[tuple[str, int], tuple] = {}
        self._keys: dict[tuple[str, int, int], tuple] = {}
        self._worst: dict[tuple[int, str, str, int], int | None] = {}
        self.streamed = frozenset(streamed)
        self.text = text
        self._words: dict[tuple[str, str, int, int], int] = {}

    def words(self, chain_tier: str, task: str, k: int, output_tokens: int) -> int:
        """How many words the simulator streams for this answer: its text's, when it writes one."""
        if not self.text:
            return 1   # "[simulated]"
        key = (chain_tier, task, k, output_tokens)
        found = self._words.get(key)
        if found is None:
            entry = self.plan.entries[k]
            text = simulated_text(self.requests[(chain_tier, task)], provider=entry.provider, model=entry.model,
                                  words=max(12, int(output_tokens * 0.75)))
            found = self._words[key] = len(text.split(" "))
        return found

    def rules(self, tier: str, k: int) -> tuple:
        """The budgets an attempt of ``tier`` at entry ``k`` counts against (the plan's, looked up once)."""
        found = self._rules.get((tier, k))
        if found is None:
            found = self._rules[(tier, k)] = self.plan.budget_rules(tier, self.plan.entries[k].provider)
        return found

    def budget_keys(self, tier: str, k: int, at_s: float) -> tuple:
        """(the rules, ``budget_keys`` of them at ``at_s``) for an attempt of ``tier`` at entry ``k``: the keys
        name the day and the month, so they are worked out once a day, not twice per attempt."""
        key = (tier, k, int(at_s // 86_400))
        found = self._keys.get(key)
        if found is None:
            rules = self.rules(tier, k)
            found = self._keys[key] = (rules, budget_keys(rules, at_s))
        return found

    def worst(self, k: int, chain_tier: str, task: str, at_s: float) -> int | None:
        """The plan's worst-case cost of entry ``k`` for this route's request, remembered per hour."""
        key = (k, chain_tier, task, int(at_s // 3600))
        try:
            return self._worst[key]
        except KeyError:
            pass
        route = self.plan.routes[(chain_tier, task)]
        found = self._worst[key] = self.plan.entries[k].price.worst_case(
            self._estimate[(chain_tier, task)], route.settings.max_tokens, at_s)
        return found

    def begin(self, i: int, tier: str, task: str, now: float, input_tokens: int, output_tokens: int) -> ChainSteps:
        return ChainSteps(self, i, tier, task, now, output_tokens, i in self.streamed)

    def at(self, now: float) -> datetime:
        return self.start + timedelta(seconds=now)

    # ---- a budget rule that serves a tier with another tier's chains ---------------------------
    def degrade(self, tier: str, now_s: float) -> tuple[str, str] | None:
        """(tier whose chains to use, why): the live guard's degrade rule over the budget book."""
        monthly, daily = period_labels(now_s)

        def spent(tier: str, period: str) -> Decimal:
            label = monthly if period == "monthly" else daily
            return to_decimal(self.book.spent.get(("tier", tier, period, label), 0))
        return degrade_route(self.budgets, tier, spent)


class _Try:
    """One attempt as the walk records it (times in virtual seconds, money in pico-dollars)."""

    __slots__ = ("k", "start", "seconds", "status", "error", "retry", "wait_s", "retry_after", "used_in",
                 "used_out", "cost", "source", "ttft")

    def __init__(self, k: int, start: float, retry: int, wait_s: float) -> None:
        self.k, self.start, self.retry, self.wait_s = k, start, retry, wait_s


class ChainSteps:
    """One request's walk: the engine calls ``step(now)`` and, after each TRY, ``outcome``."""

    __slots__ = ("core", "i", "tier", "task", "route", "chain_tier", "reason", "t0", "deadline", "entries",
                 "index", "current", "retries", "wait_s", "phase", "tries", "skipped", "budget_blocked",
                 "held", "status", "limit", "rejected", "end", "output_tokens", "stream")

    def __init__(self, core: SandboxCore, i: int, tier: str, task: str, now: float, output_tokens: int = 0,
                 stream: bool = False) -> None:
        self.output_tokens, self.stream = output_tokens, stream
        self.core, self.i, self.tier, self.task, self.t0 = core, i, tier, task, now
        self.tries: list[_Try] = []
        self.skipped: list[tuple[int, str]] = []
        self.budget_blocked = False
        self.held: int | None = None
        self.status = ""
        self.end = now
        self.index = 0
        self.retries, self.wait_s, self.current = 0, 0.0, -1
        self.phase = _NEXT
        self.reason: str | None = None
        self.rejected: str | None = None
        route = core.plan.routes.get((tier, task))
        if route is None:
            self.rejected = (f"unknown tier '{tier}'" if tier not in core.policy.model.tiers
                             else f"unknown task '{task}'") + " in this policy"
            self.phase, self.status = _DONE, "rejected"
            self.entries: tuple[int, ...] = ()
            self.route, self.chain_tier, self.deadline = None, tier, now
            return
        self.chain_tier = tier
        if tier in core.degrade_tiers:
            out = core.degrade(tier, core.epoch + now)
            if out is not None:
                self.chain_tier, self.reason = out
                route = core.plan.routes[(self.chain_tier, task)]
        self.route: RoutePlan | None = route
        self.entries = route.entries
        self.deadline = now + route.deadline_s

    # ---- the steps the engine carries out ----------------------------------------------------
    def step(self, now: float) -> tuple:
        phase = self.phase
        if phase == _SLEEP:
            self.phase = _WAKE
            return (WAIT, self.wait_s)
        if phase == _WAKE:
            self.phase = _NEXT
            if self._admit(self.current, now):
                return self._try(now)
            phase = _NEXT
        if phase == _NEXT:
            entries = self.entries
            while self.index < len(entries):
                k = entries[self.index]
                self.index += 1
                if self._admit(k, now):
                    self.current, self.retries, self.wait_s = k, 0, 0.0
                    return self._try(now)
            self._conclude("failed", now)
        return (DONE,)

    def _try(self, now: float) -> tuple:
        settings = self.route.settings  # type: ignore[union-attr]
        own = settings.timeout_s
        self.tries.append(_Try(self.current, now, self.retries, self.wait_s))
        max_tokens = settings.max_tokens
        if self.stream:
            limits = attempt_limits(self.core.resilience, own_timeout_s=own, remaining_s=self.deadline - now,
                                    entries_left=1 + len(self.entries) - self.index, streaming=True)
            self.limit = limits.timeout_s
            words = self.core.words(self.chain_tier, self.task, self.current,
                                    max(1, min(self.output_tokens, max_tokens)))
            return (TRY, self.current, limits.timeout_s, own, max_tokens, limits.first_token_s, words)
        self.limit = attempt_timeout(self.core.resilience, own, self.deadline - now, 1 + len(self.entries) - self.index)
        return (TRY, self.current, self.limit, own, max_tokens)

    def outcome(self, now: float, seconds: float, error: str | None, retry_after_s: float, input_tokens: int,
                output_tokens: int, ttft_s: float | None = None) -> None:
        core = self.core
        attempt = self.tries[-1]
        attempt.seconds = seconds
        attempt.error = error
        attempt.ttft = ttft_s
        attempt.status = "ok" if error is None else ("truncated" if error == "truncated" else "error")
        attempt.retry_after = retry_after_s if error == "rate_limited" else None
        epoch_start = core.epoch + attempt.start
        if error is None:
            attempt.used_in, attempt.used_out = input_tokens, output_tokens
            attempt.cost, attempt.source = core.plan.entries[attempt.k].price.cost(input_tokens, output_tokens, 0,
                                                                                  epoch_start)
        else:  # a failed simulated call reports no usage: nothing to price
            attempt.used_in = attempt.used_out = 0
            attempt.cost, attempt.source = None, None
        self._observe(attempt, core.epoch + now)
        if error is None:
            self._conclude("ok", now)
            return
        if error == "truncated":   # text was shown: the request ends cut (no continue_on_truncation here)
            self._conclude("truncated", now)
            return
        route = self.route
        remaining = self.deadline - now
        usable_after = len(self.entries) - self.index
        own = route.settings.timeout_s  # type: ignore[union-attr]
        timeout = attempt_timeout(core.resilience, own, remaining, 1 + usable_after)
        wait = after_outcome(core.resilience, attempt.status, error, attempt.retry_after, self.retries, remaining,
                             timeout, usable_after * own, lambda: core.jitter(self.i))
        if wait < 0:
            self.phase = _NEXT
            return
        self.retries += 1
        self.wait_s = wait
        self.phase = _SLEEP

    # ---- the guards, in ``Guards``' order: breakers, then budgets ------------------------------
    def _admit(self, k: int, now: float) -> bool:
        core = self.core
        at_s = core.epoch + now
        reason = None
        if core.breakers.enabled:
            for cell in core._cell_of[k]:
                code, _event = breaker_admit(cell, at_s, self)
                if code:
                    reason = breaker_skip_text(code, cell)
                    for held in core._cell_of[k]:
                        breaker_drop_probe(held, self)
                    break
        if reason is None:
            rules, period_keys = core.budget_keys(self.tier, k, at_s)
            if rules:
                worst = core.worst(k, self.chain_tier, self.task, at_s)
                if worst is not None:
                    denial = budget_admit(core.book, rules, (self, k), worst, at_s, period_keys)
                    if denial is not None:
                        reason = budget_skip_text(denial, worst)
                        for cell in core._cell_of[k]:
                            breaker_drop_probe(cell, self)
                        self.budget_blocked = True
        if reason is None and self.deadline - now <= 0:
            self._release(k)
            reason = deadline_text(self.route.deadline_s)  # type: ignore[union-attr]
        if reason is not None:
            self.skipped.append((k, reason))
            return False
        return True

    def _release(self, k: int) -> None:
        core = self.core
        for cell in core._cell_of[k]:
            breaker_drop_probe(cell, self)
        core.book.release((self, k))

    def _observe(self, attempt: _Try, at_s: float) -> None:
        core = self.core
        k = attempt.k
        provider_cell, entry_cell = core._cell_of[k]
        if core.breakers.enabled:
            outcome = breaker_outcome(attempt.status, attempt.error, core.breakers)
            if outcome == OUT_CANCELLED or outcome == OUT_AUTH:
                if outcome == OUT_AUTH:
                    breaker_mark(provider_cell, at_s, REASON_AUTH, core.unhealthy_s)
                breaker_drop_probe(provider_cell, self)
                breaker_drop_probe(entry_cell, self)
            else:
                breaker_record(provider_cell, at_s, self, None, core.breakers)
                if outcome == OUT_MODEL:
                    breaker_mark(entry_cell, at_s, REASON_MODEL, core.unhealthy_s)
                else:
                    breaker_record(entry_cell, at_s, self, False if outcome == OUT_OK
                                   else (True if outcome == OUT_FAILED else None), core.breakers)
        started_s = core.epoch + attempt.start
        rules, period_keys = core.budget_keys(self.tier, k, started_s)
        if rules:
            budget_settle(core.book, rules, (self, k), attempt.cost, started_s, period_keys)

    # ---- the end -----------------------------------------------------------------------------
    def _conclude(self, status: str, now: float) -> None:
        if status == "failed" and self.budget_blocked and not self.tries:
            status = "rejected"
        self.status, self.end, self.phase = status, now, _DONE

    def numbers(self) -> tuple:
        tries = self.tries
        last = tries[-1] if tries else None
        ok = self.status == "ok"
        cost, unpriced, used_in, used_out, depth = 0.0, False, 0, 0, 0
        for a in tries:
            used_in += a.used_in
            used_out += a.used_out
            if a.cost is not None:
                cost += a.cost * _PICO
            elif a.used_in or a.used_out:
                unpriced = True
            if a.status != "ok":
                depth += 1
        latency = (self.end - self.t0) * 1000.0
        ttft = math.nan
        if last is not None and last.ttft is not None and self.status in ("ok", "truncated"):
            ttft = (last.start - self.t0 + last.ttft) * 1000.0
        served = self.status in ("ok", "truncated") and last is not None
        return (self.status, last.k if served else -1, latency, ttft, cost, unpriced,
                len(tries), depth, len(self.skipped), used_in, used_out, self.reason or self.rejected)

    def attempt_rows(self) -> list[tuple]:
        return [(a.start, a.k, a.status, a.error, a.seconds * 1000.0,
                 math.nan if a.cost is None else a.cost * _PICO) for a in self.tries]

    def result(self) -> dict[str, object]:
        return self.generation_result().as_dict()

    def generation_result(self) -> GenerationResult:
        """The request's full trace, as the live router would have built it."""
        return walk_result(self)
