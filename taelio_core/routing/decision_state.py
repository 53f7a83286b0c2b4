"""The compact state routing decisions read and change: one breaker cell per key, and the budget book.

Why its own module: the decision core (``decisions.py``) is a set of
functions over this state, and three callers hold it in three ways. The live
router keeps breaker cells behind a ``BreakerStore`` (in this process, or in
Redis for several replicas) and the budget book behind a ``BudgetStore``;
the Sandbox holds them directly, one set per simulated run. Every record is
a ``__slots__`` class of numbers and short strings, so a store can serialise
it and the Sandbox can hold thousands without paying for dictionaries.

Time is a float: seconds since the epoch (UTC). Money is an integer number of
pico-dollars (1e-12 USD): catalogue prices are given per million tokens with up
to six decimals, so a price per token in pico-dollars is a whole number and
every sum is exact. (Micro-dollars would round a $0.000007 call to zero.)
Datetimes and ``Decimal`` exist only at the edges (``until``, ``to_decimal``).
"""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "PICO", "BreakerCell", "BudgetBook", "Denial", "from_decimal",
           "to_decimal"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
PICO = 10 ** 12                 # pico-dollars per dollar
_PICO_D = Decimal(PICO)


def to_decimal(pico: int) -> Decimal:
    """Pico-dollars as a Decimal of dollars (the edge: the call log, the UI, a shared store)."""
    return Decimal(pico) / _PICO_D


def from_decimal(amount: Decimal, *, up: bool = False) -> int:
    """Dollars as pico-dollars; ``up`` rounds a finer amount up (a reservation must not be short)."""
    scaled = amount * _PICO_D
    if up:
        return int(scaled.to_integral_value(rounding=ROUND_CEILING))
    return int(scaled)


def _at(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


class BreakerCell:
    """One breaker (``provider:model``) or provider-wide mark (``provider:*``).

    The failure-rate window is a ring buffer of (time, failed) with running
    counts, so recording an outcome and evicting old ones never sums the
    window. ``until``/``changed_at`` are datetimes for readers at the edge
    (the Health page); the core reads ``until_s``/``changed_s``.
    """

    __slots__ = ("state", "reason", "until_s", "consecutive", "probe_owner", "changed_s",
                 "_times", "_fails", "_head", "count", "failures")

    def __init__(self) -> None:
        self.state = CLOSED
        self.reason = ""
        self.until_s: float | None = None       # open: when a trial may go through
        self.consecutive = 0
        self.probe_owner: object | None = None   # the request holding the half-open trial
        self.changed_s: float | None = None
        self._times: list[float] = [0.0] * 8
        self._fails: list[bool] = [False] * 8
        self._head = 0
        self.count = 0                           # outcomes in the window
        self.failures = 0                        # of which failed

    # ---- the window --------------------------------------------------------------------
    def push(self, t: float, failed: bool) -> None:
        size = len(self._times)
        if self.count == size:
            order = [(self._head + k) % size for k in range(size)]
            self._times = [self._times[k] for k in order] + [0.0] * size
            self._fails = [self._fails[k] for k in order] + [False] * size
            self._head, size = 0, size * 2
        slot = (self._head + self.count) % size
        self._times[slot] = t
        self._fails[slot] = failed
        self.count += 1
        if failed:
            self.failures += 1

    def evict_before(self, horizon: float) -> None:
        times, fails, size = self._times, self._fails, len(self._times)
        while self.count and times[self._head] < horizon:
            if fails[self._head]:
                self.failures -= 1
            self._head = (self._head + 1) % size
            self.count -= 1

    def clear_window(self) -> None:
        self._head = self.count = self.failures = 0

    def window(self) -> list[tuple[float, bool]]:
        size = len(self._times)
        return [(self._times[(self._head + k) % size], self._fails[(self._head + k) % size])
                for k in range(self.count)]

    # ---- the edge ----------------------------------------------------------------------
    @property
    def until(self) -> datetime | None:
        return _at(self.until_s)

    @property
    def changed_at(self) -> datetime | None:
        return _at(self.changed_s)

    def copy(self) -> BreakerCell:
        other = BreakerCell.__new__(BreakerCell)
        for name in BreakerCell.__slots__:
            value = getattr(self, name)
            setattr(other, name, list(value) if isinstance(value, list) else value)
        return other

    def __repr__(self) -> str:
        return (f"BreakerCell(state={self.state!r}, reason={self.reason!r}, until_s={self.until_s!r}, "
                f"consecutive={self.consecutive}, window={self.count}/{self.failures})")


Key = tuple[str, str, str, str]   # (scope, name, period, label): ("tier", "free", "daily", "2026-12-01")


class Denial:
    """Why a reservation was refused: the first budget it would pass, its cap and what was used before it."""

    __slots__ = ("key", "cap", "used")

    def __init__(self, key: Key, cap: int, used: int) -> None:
        self.key, self.cap, self.used = key, cap, used


class BudgetBook:
    """Spend and reservations per budget key, as running sums of pico-dollars.

    ``reserve`` admits an amount only if spend plus every reservation plus it
    fits each cap; ``settle`` replaces a hold's reservation by the real cost.
    Not locked: the in-process ``BudgetStore`` wraps it in a lock, the
    Sandbox is single-threaded.
    """

    __slots__ = ("spent", "reserved", "holds", "seeded")

    def __init__(self) -> None:
        self.spent: dict[Key, int] = {}
        self.reserved: dict[Key, int] = {}
        self.holds: dict[object, tuple[int, tuple[Key, ...]]] = {}
        self.seeded: set[str] = set()

    def seed(self, spent: dict[Key, int], labels: list[str]) -> None:
        fresh = {label for label in labels if label not in self.seeded}
        for key, amount in spent.items():
            if key[3] in fresh:
                self.spent[key] = self.spent.get(key, 0) + amount
        self.seeded |= fresh

    def reserve(self, hold: object, amount: int, keys: tuple[Key, ...], caps: dict[Key, int]) -> Denial | None:
        spent, reserved = self.spent, self.reserved
        for key, cap in caps.items():
            used = spent.get(key, 0) + reserved.get(key, 0)
            if used + amount > cap:
                return Denial(key, cap, used)
        self.release(hold)
        for key in keys:
            reserved[key] = reserved.get(key, 0) + amount
        self.holds[hold] = (amount, keys)
        return None

    def release(self, hold: object) -> None:
        held = self.holds.pop(hold, None)
        if held is not None:
            amount, keys = held
            reserved = self.reserved
            for key in keys:
                reserved[key] = reserved.get(key, 0) - amount

    def settle(self, hold: object, keys: tuple[Key, ...] | list[Key], cost: int | None) -> dict[Key, int]:
        self.release(hold)
        spent = self.spent
        if cost is not None:
            for key in keys:
                spent[key] = spent.get(key, 0) + cost
        return {key: spent.get(key, 0) for key in keys}
