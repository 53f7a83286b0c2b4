"""The decision core: every routing decision as a synchronous function over compact state.

Live traffic and the Sandbox make the same decisions by calling these
functions: the live async router around each real provider call (through
``guards``, which keep the state behind the stores several replicas can
share), the Sandbox's discrete-event simulation directly. Nothing here
awaits, reads a clock or draws a random number: time is a float (epoch
seconds) passed in, jitter is a ``draw`` callable passed in, money is integer
pico-dollars (``decision_state``), entries are the compiled ``RoutePlan``'s.

* admit an entry: ``breaker_admit`` (breaker state and health marks),
  ``budget_admit`` (a reservation of the worst-case cost), ``past_deadline``;
* decide after an outcome: ``after_outcome`` (retry after which wait, fall
  back, or stop) and ``attempt_timeout`` (the attempt's share of the time left);
* observe an outcome: ``breaker_outcome`` says what it means for the breaker,
  ``breaker_record``/``breaker_mark`` change the cell, ``BudgetBook.settle``
  the spend;
* price the attempt: ``EntryPrice.cost`` (bound per model when a plan compiles).

A breaker transition is returned as a ``Transition`` for the caller to emit
(the live router writes it to the call log's breaker events).
"""
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from taelio_core.formatting import money
from taelio_core.guards.resilience import BreakerConfig, ResilienceConfig
from taelio_core.routing.decision_state import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerCell,
    BudgetBook,
    Denial,
    Key,
    to_decimal,
)
from taelio_core.routing.route_plan import BudgetRule, budget_keys

if TYPE_CHECKING:
    from taelio_core.config.policy_schema import Budgets

__all__ = ["FALL_BACK", "OUT_AUTH", "OUT_CANCELLED", "OUT_FAILED", "OUT_MODEL", "OUT_NEUTRAL", "OUT_OK",
           "REASON_AUTH", "REASON_MODEL", "SKIP_OPEN", "SKIP_TRIAL", "STOP", "Transition", "after_outcome",
           "breaker_admit", "breaker_drop_probe", "breaker_mark", "breaker_outcome", "breaker_record",
           "breaker_skip_text", "budget_admit", "degrade_route", "budget_settle", "budget_skip_text", "budget_skip_words", "deadline_text",
           "past_deadline"]

REASON_AUTH, REASON_MODEL = "key rejected", "model retired?"
SKIP_OPEN, SKIP_TRIAL = 1, 2                 # breaker_admit's reasons to skip (0: admitted)
STOP, FALL_BACK = -2.0, -1.0                 # after_outcome: anything >= 0 is a wait before a retry
# What an outcome means for the entry's breaker.
OUT_OK, OUT_FAILED, OUT_NEUTRAL, OUT_AUTH, OUT_MODEL, OUT_CANCELLED = range(6)


class Transition:
    """A breaker moved: (from, to, reason, until_s) at ``at_s``."""

    __slots__ = ("from_state", "to_state", "reason", "until_s", "at_s")

    def __init__(self, from_state: str, to_state: str, reason: str, until_s: float | None, at_s: float) -> None:
        self.from_state, self.to_state, self.reason, self.until_s, self.at_s = (
            from_state, to_state, reason, until_s, at_s)


# ---- breakers ---------------------------------------------------------------------------
def _move(cell: BreakerCell, to: str, reason: str, now: float) -> Transition:
    event = Transition(cell.state, to, reason, cell.until_s if to == OPEN else None, now)
    cell.state, cell.changed_s = to, now
    if to == OPEN:
        cell.reason = reason
    elif to == CLOSED:
        cell.reason, cell.until_s = "", None
    return event


def _open(cell: BreakerCell, reason: str, now: float, seconds: float) -> Transition:
    cell.until_s = now + seconds
    cell.consecutive = 0
    cell.clear_window()
    return _move(cell, OPEN, reason, now)


def breaker_admit(cell: BreakerCell, now: float, owner: object) -> tuple[int, Transition | None]:
    """(0, or SKIP_OPEN / SKIP_TRIAL; a transition). An open cell whose cool-down is over half-opens and
    gives ``owner`` its one trial."""
    state = cell.state
    if state == CLOSED:
        return 0, None
    if state == OPEN:
        if cell.until_s is not None and now < cell.until_s:
            return SKIP_OPEN, None
        event = _move(cell, HALF_OPEN, cell.reason, now)
        cell.probe_owner = owner
        return 0, event
    if cell.probe_owner is None or cell.probe_owner == owner:
        cell.probe_owner = owner
        return 0, None
    return SKIP_TRIAL, None


def breaker_skip_text(code: int, cell: BreakerCell) -> str:
    """The trace's words for a breaker skip (rendered at the edge, from the cell as it is now)."""
    if code == SKIP_TRIAL:
        return "circuit half-open: a trial request is in flight"
    until = cell.until
    why = f" ({cell.reason})" if cell.reason else ""
    return f"circuit open until {until:%H:%M:%S}{why}"


def breaker_drop_probe(cell: BreakerCell, owner: object) -> None:
    """An admitted entry was not tried: give back the trial ``owner`` held."""
    if cell.probe_owner == owner:
        cell.probe_owner = None


def breaker_record(cell: BreakerCell, now: float, owner: object, failed: bool | None,
                   cfg: BreakerConfig) -> Transition | None:
    """One outcome on ``cell``. ``failed`` None: it says nothing about health (but ends a trial)."""
    state = cell.state
    if state == HALF_OPEN and cell.probe_owner == owner:
        cell.probe_owner = None
        if failed is True:
            return _open(cell, "trial request failed", now, cfg.cooldown_s)
        event = _move(cell, CLOSED, "trial request succeeded" if failed is False else "trial request answered", now)
        cell.consecutive = 0
        cell.clear_window()
        return event
    if failed is None or state != CLOSED:
        return None
    cell.push(now, failed)
    cell.evict_before(now - cfg.window_s)
    if not failed:
        cell.consecutive = 0
        return None
    cell.consecutive += 1
    if cell.consecutive >= cfg.consecutive_failures:
        return _open(cell, f"{cell.consecutive} failures in a row", now, cfg.cooldown_s)
    n, failures = cell.count, cell.failures
    if n >= cfg.min_calls and failures / n >= cfg.failure_rate:
        return _open(cell, f"{failures} of the last {n} calls failed", now, cfg.cooldown_s)
    return None


def breaker_mark(cell: BreakerCell, now: float, reason: str, seconds: float) -> Transition:
    """Open ``cell`` for ``seconds`` because of a failure no retry fixes (a rejected key, a missing model)."""
    cell.probe_owner = None
    return _open(cell, reason, now, seconds)


def breaker_outcome(status: str, error_type: str | None, cfg: BreakerConfig) -> int:
    """What an attempt's end means for its breaker (``OUT_*``)."""
    if status == "ok":
        return OUT_OK
    if status == "cancelled":
        return OUT_CANCELLED
    if error_type == "auth_failed":
        return OUT_AUTH
    if error_type == "model_not_found":
        return OUT_MODEL
    if status == "truncated" or error_type in cfg.count:
        return OUT_FAILED
    return OUT_NEUTRAL


# ---- the deadline and the next step ------------------------------------------------------
def past_deadline(remaining_s: float) -> bool:
    return remaining_s <= 0


def deadline_text(deadline_s: float) -> str:
    return f"the request's deadline ({deadline_s:g} s) has passed"


def after_outcome(cfg: ResilienceConfig, status: str, error_type: str | None, retry_after: float | None,
                  retries: int, remaining_s: float, attempt_s: float, rest_s: float,
                  draw: Callable[[], float], continue_on_truncation: bool = False) -> float:
    """After an attempt at an entry: STOP (the request is over), FALL_BACK (the next entry), or the seconds
    to wait before retrying this entry.

    ``retries`` is how many retries the entry already had; ``attempt_s`` the
    next attempt's timeout and ``rest_s`` the own timeouts of the usable
    entries after it (a timeout is retried only if both still fit);
    ``draw()`` gives a uniform number in [0, 1) for the back-off's full
    jitter, and is called only when a back-off is due.
    """
    if status == "ok":
        return STOP
    if status == "truncated":
        return FALL_BACK if continue_on_truncation else STOP
    if error_type == "rate_limited":
        if retry_after is None or retries >= cfg.max_retries or retry_after > cfg.max_retry_after_s \
                or retry_after >= remaining_s:
            return FALL_BACK
        return retry_after if retry_after > 0.0 else 0.0
    if error_type in cfg.retry_on:
        if retries >= cfg.max_retries:
            return FALL_BACK
        if error_type == "timeout" and rest_s and remaining_s < attempt_s + rest_s:
            return FALL_BACK
        cap = min(cfg.backoff_max_s, cfg.backoff_base_s * (2 ** retries))
        wait = 0.0 + cap * draw()   # full jitter, exactly as random.uniform(0, cap) draws it
        return FALL_BACK if wait >= remaining_s else wait
    return FALL_BACK


# ---- budgets -----------------------------------------------------------------------------
def budget_admit(book: BudgetBook, rules: tuple[BudgetRule, ...], hold: object, worst: int,
                 at_s: float, period_keys: tuple[tuple[Key, ...], dict[Key, int]] | None = None) -> Denial | None:
    """Reserve ``worst`` pico-dollars on every budget in ``rules`` unless a hard one would pass its cap.

    ``period_keys`` is ``budget_keys(rules, at_s)`` when the caller keeps it (it changes once a day: the
    Sandbox asks for a million attempts' worth)."""
    keys, caps = budget_keys(rules, at_s) if period_keys is None else period_keys
    return book.reserve(hold, worst, keys, caps)


def budget_skip_text(denial: Denial, worst: int) -> str:
    """The trace's words for a budget skip, from the core's pico-dollar ``Denial``."""
    return budget_skip_words(denial.key, to_decimal(denial.cap), to_decimal(denial.used), to_decimal(worst))


def budget_skip_words(key: Key, cap: Decimal, used: Decimal, worst: Decimal) -> str:
    """The same words from dollars (a ``BudgetStore``'s answer, at the edge)."""
    scope, name, period, _label = key
    left = max(Decimal(0), cap - used)
    return (f"budget: the {name} {scope} {period} budget of {money(cap)} has {money(left)} left, "
            f"this call may cost {money(worst)}")


def budget_settle(book: BudgetBook, rules: tuple[BudgetRule, ...], hold: object, cost: int | None,
                  started_s: float, period_keys: tuple[tuple[Key, ...], dict[Key, int]] | None = None
                  ) -> dict[Key, int]:
    """An attempt ended: its reservation goes, its cost (None: unpriced or not counted) is spent.
    ``period_keys``: as for ``budget_admit``, at ``started_s``."""
    if cost is None:
        keys: tuple[Key, ...] = ()
    else:
        keys = (budget_keys(rules, started_s) if period_keys is None else period_keys)[0]
    return book.settle(hold, keys, cost)


def degrade_route(budgets: Budgets, tier: str, spent: Callable[[str, str], Decimal]) -> tuple[str, str] | None:
    """(tier whose chains to use, why) when one of ``budgets``' degrade rules applies to ``tier``, else None.

    ``spent(tier, period)`` is the tier's spend in the current period (the live guard's store, or the
    Sandbox's budget book): the rule itself is written once, here.
    """
    for rule in budgets.degrade:
        limit = budgets.tier.get(rule.tier)
        amount = getattr(limit, rule.period) if limit else None
        if rule.tier != tier or not amount:
            continue
        used = spent(rule.tier, rule.period)
        pct = float(used / amount * 100)
        if pct >= rule.at_pct:
            return rule.use, (f"{rule.tier} has used {pct:.0f}% of its {rule.period} budget "
                              f"({money(used)} of {money(amount)}): served with the {rule.use} chain")
    return None
