"""Where budget spend and reservations live: behind one interface, so budgets hold across processes.

Why an interface: a hard budget only holds if every process that spends
against it reserves from the same place. ``BudgetGuard`` decides *what* to
reserve (an attempt's worst-case cost, on every budget it counts against);
a ``BudgetStore`` makes the check-and-reserve atomic:

* ``InProcessBudgetStore``: dictionaries under a lock. Enough for one
  process (the sandbox, tests, a single server process).
* ``LedgerBudgetStore`` (``budget_ledger.py``): a small file beside the call
  log, under ``flock``, so every Taelio process on one machine (the
  dashboard, CLI commands, workers) shares one ledger.
* ``RedisBudgetStore`` (``redis_budgets.py``, ``REDIS_URL``): the same five methods with one Lua
  script per call (``reserve`` is the only one that must check and write in
  one step).

Keys are ``(scope, name, period, label)``: ``("tier", "free", "monthly",
"2026-12")``. Every amount is a ``Decimal`` in US dollars.

The overshoot bound: ``reserve`` admits an attempt only if spend plus every
reservation plus its own worst case fits the limit, so spend can pass a hard
limit only by what attempts already in flight cost beyond their worst-case
estimate (nothing, while the estimate is conservative).
"""
from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from taelio_core.routing.decision_state import BudgetBook, from_decimal, to_decimal

__all__ = ["BudgetStore", "Denial", "InProcessBudgetStore", "Key"]

Key = tuple[str, str, str, str]  # (scope, name, period, label)


@dataclass(frozen=True, kw_only=True)
class Denial:
    """Why ``reserve`` refused: the first budget the attempt would pass, and what it had used."""

    key: Key
    cap: Decimal
    used: Decimal        # spent + reserved by others, before this attempt
    reason: str | None = None   # set when the budget could not be checked at all (shared state unavailable)


class BudgetStore(Protocol):
    """Spend and reservations per budget key. Every method is atomic with respect to every other caller."""

    def seed(self, spent: Mapping[Key, Decimal], labels: Sequence[str]) -> None:
        """Add ``spent`` (from the call log) for each period label not yet known to the store, once."""

    def reserve(self, hold: str, amount: Decimal, keys: Sequence[Key], caps: Mapping[Key, Decimal]) -> Denial | None:
        """Reserve ``amount`` on every key in ``keys`` unless a key in ``caps`` would pass its cap."""

    def release(self, hold: str) -> None:
        """Drop ``hold``'s reservation (the attempt was never made)."""

    def settle(self, hold: str, keys: Sequence[Key], cost: Decimal | None) -> dict[Key, Decimal]:
        """Drop ``hold``'s reservation and add ``cost`` to ``keys``; return their spend afterwards."""

    def snapshot(self) -> tuple[dict[Key, Decimal], dict[Key, Decimal]]:
        """(spent, reserved) for every key the store knows."""


class InProcessBudgetStore:
    """One process's budgets, in memory: the decision core's ``BudgetBook`` (running sums of pico-dollars,
    the same book the Sandbox holds) under a lock, with dollars as ``Decimal`` at this interface."""

    shared = False       # what the Health page says about the scope of budgets

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.book = BudgetBook()

    def seed(self, spent: Mapping[Key, Decimal], labels: Sequence[str]) -> None:
        with self._lock:
            self.book.seed({key: from_decimal(amount) for key, amount in spent.items()}, list(labels))

    def reserve(self, hold: str, amount: Decimal, keys: Sequence[Key], caps: Mapping[Key, Decimal]) -> Denial | None:
        pico_caps = {key: from_decimal(cap) for key, cap in caps.items()}
        with self._lock:
            denial = self.book.reserve(hold, from_decimal(amount, up=True), tuple(keys), pico_caps)
        if denial is None:
            return None
        return Denial(key=denial.key, cap=caps[denial.key], used=to_decimal(denial.used))

    def release(self, hold: str) -> None:
        with self._lock:
            self.book.release(hold)

    def settle(self, hold: str, keys: Sequence[Key], cost: Decimal | None) -> dict[Key, Decimal]:
        with self._lock:
            spent = self.book.settle(hold, keys, None if cost is None else from_decimal(cost))
        return {key: to_decimal(amount) for key, amount in spent.items()}

    def snapshot(self) -> tuple[dict[Key, Decimal], dict[Key, Decimal]]:
        with self._lock:
            spent, reserved = dict(self.book.spent), dict(self.book.reserved)
        return ({k: to_decimal(v) for k, v in spent.items()},
                {k: to_decimal(max(0, v)) for k, v in reserved.items()})
