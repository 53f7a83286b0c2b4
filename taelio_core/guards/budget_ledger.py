"""Budgets shared by every Taelio process on one machine: a small ledger file beside the call log, under ``flock``.

Why: each process used to start from the log's spend and then count only its
own calls, so ten ``taelio generate`` processes at once each saw the whole
budget free, and spend reached 164% of a hard limit. The ledger is one JSON
file (``<log>.budgets.json``) that every process reads and rewrites in place
under an exclusive ``flock`` on ``<log>.budgets.lock`` for each reservation
and each settlement, paid only by attempts that a budget applies to.

What it holds: spend per budget key for the periods it knows (seeded once per
period label from the call log, by the first process to open it in that
period, then kept by settlements), the live reservations (each with its
process id, so a ``kill -9`` cannot hold budget for ever: holds of dead
processes, or older than ``hold_ttl_s``, are dropped), and which period labels
were seeded. It is derived state: a missing or unreadable ledger is rebuilt
from the call log (logged as a warning), never an error on the request path.

With `REDIS_URL` the Redis stores take over (`redis_budgets.py`, `redis_breakers.py`); without it the
breakers and health marks stay per process (a breaker that opens in one process does not open in
another).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from taelio_core.guards.budget_store import Denial, Key

__all__ = ["LedgerBudgetStore", "ledger_path"]

log = logging.getLogger("taelio.budgets")
ZERO = Decimal(0)
HOLD_TTL_S = 900.0          # longer than any attempt's deadline


def ledger_path(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".budgets.json")


def _encode(key: Key) -> str:
    return json.dumps(list(key))


def _decode(text: str) -> Key:
    scope, name, period, label = json.loads(text)
    return (scope, name, period, label)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(kw_only=True)
class _State:
    spent: dict[str, Decimal] = field(default_factory=dict)
    holds: dict[str, dict] = field(default_factory=dict)     # hold -> {amount, keys, pid, at}
    seeded: set[str] = field(default_factory=set)
    dirty: bool = False

    def reserved(self, key: str) -> Decimal:
        return sum((Decimal(h["amount"]) for h in self.holds.values() if key in h["keys"]), ZERO)


class LedgerBudgetStore:
    """A ``BudgetStore`` in a file shared by the processes of one machine."""

    shared = True

    def __init__(self, path: Path, *, hold_ttl_s: float = HOLD_TTL_S) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name.removesuffix(".json") + ".lock")
        self.hold_ttl_s = hold_ttl_s
        self._seed: tuple[dict[Key, Decimal], tuple[str, ...]] = ({}, ())
        self._thread_lock = threading.Lock()     # flock is per open file: serialise this process's threads too
        self._fds: tuple[int, int, int] | None = None        # (lock fd, ledger fd, the pid that opened them)
        self._cache: tuple[tuple[int, int, int, int], _State] | None = None

    # ---- the file ----------------------------------------------------------------------
    # Both files stay open for the store's life, the ledger is rewritten in place, and a ledger nobody
    # changed since this process wrote it is not parsed again: a reserve + settle pair went from ~10 ms
    # (open, parse, write a temporary file, rename, on a loaded box) to well under one.
    def _open(self) -> tuple[int, int]:
        if self._fds is None or self._fds[2] != os.getpid():       # a forked child opens its own
            lock = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            data = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._fds = (lock, data, os.getpid())
            self._cache = None
        return self._fds[0], self._fds[1]

    @contextmanager
    def _locked(self) -> Iterator[_State]:
        with self._thread_lock:
            lock, data = self._open()
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self._read(data)
                yield state
                if state.dirty:
                    self._write(data, state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _signature(fd: int) -> tuple[int, int, int, int]:
        st = os.fstat(fd)
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _read(self, fd: int) -> _State:
        signature = self._signature(fd)
        if self._cache is not None and self._cache[0] == signature:
            cached = self._cache[1]
            return _State(spent=dict(cached.spent), holds=dict(cached.holds), seeded=set(cached.seeded))
        raw_bytes = os.pread(fd, signature[1], 0)
        if not raw_bytes:
            state = _State(dirty=True)
            self._apply_seed(state)
            return state
        try:
            raw = json.loads(raw_bytes)
            state = _State(spent={k: Decimal(v) for k, v in raw["spent"].items()}, holds=dict(raw["holds"]),
                           seeded=set(raw["seeded"]))
        except (ValueError, KeyError, TypeError, InvalidOperation, AttributeError) as e:
            log.warning("the budget ledger %s is unreadable (%s); rebuilt from the call log", self.path, e)
            state = _State(dirty=True)
            self._apply_seed(state)
            return state
        now = time.time()
        stale = [h for h, v in state.holds.items()
                 if now - float(v.get("at", 0)) > self.hold_ttl_s or not _alive(int(v.get("pid", 0)))]
        for hold in stale:
            del state.holds[hold]
            state.dirty = True
        return state

    def _write(self, fd: int, state: _State) -> None:
        doc = json.dumps({"spent": {k: str(v) for k, v in state.spent.items()}, "holds": state.holds,
                          "seeded": sorted(state.seeded)}).encode()
        os.pwrite(fd, doc, 0)
        os.ftruncate(fd, len(doc))
        state.dirty = False
        self._cache = (self._signature(fd), _State(spent=dict(state.spent), holds=dict(state.holds),
                                                   seeded=set(state.seeded)))

    def _apply_seed(self, state: _State) -> None:
        spent, labels = self._seed
        fresh = {label for label in labels if label not in state.seeded}
        for key, amount in spent.items():
            if key[3] in fresh:
                name = _encode(key)
                state.spent[name] = state.spent.get(name, ZERO) + amount
        if fresh:
            state.seeded |= fresh
            state.dirty = True

    @staticmethod
    def _mark_seeded(state: _State, keys: Sequence[Key]) -> None:
        """A period this store first meets in a settlement started after every open's seed: nothing to add."""
        for key in keys:
            if key[3] not in state.seeded:
                state.seeded.add(key[3])
                state.dirty = True

    # ---- BudgetStore -------------------------------------------------------------------
    def seed(self, spent: Mapping[Key, Decimal], labels: Sequence[str]) -> None:
        self._seed = (dict(spent), tuple(labels))
        with self._locked() as state:
            self._apply_seed(state)

    def reserve(self, hold: str, amount: Decimal, keys: Sequence[Key], caps: Mapping[Key, Decimal]) -> Denial | None:
        with self._locked() as state:
            self._mark_seeded(state, keys)
            if state.holds.pop(hold, None) is not None:
                state.dirty = True
            for key, cap in caps.items():
                name = _encode(key)
                used = state.spent.get(name, ZERO) + state.reserved(name)
                if used + amount > cap:
                    return Denial(key=key, cap=cap, used=used)
            state.holds[hold] = {"amount": str(amount), "keys": [_encode(k) for k in keys], "pid": os.getpid(),
                                 "at": time.time()}
            state.dirty = True
        return None

    def release(self, hold: str) -> None:
        with self._locked() as state:
            if state.holds.pop(hold, None) is not None:
                state.dirty = True

    def settle(self, hold: str, keys: Sequence[Key], cost: Decimal | None) -> dict[Key, Decimal]:
        with self._locked() as state:
            self._mark_seeded(state, keys)
            if state.holds.pop(hold, None) is not None:
                state.dirty = True
            out = {}
            for key in keys:
                name = _encode(key)
                if cost is not None:
                    state.spent[name] = state.spent.get(name, ZERO) + cost
                    state.dirty = True
                out[key] = state.spent.get(name, ZERO)
            return out

    def snapshot(self) -> tuple[dict[Key, Decimal], dict[Key, Decimal]]:
        with self._locked() as state:
            spent = {_decode(k): v for k, v in state.spent.items()}
            reserved: dict[Key, Decimal] = {}
            for held in state.holds.values():
                for name in held["keys"]:
                    key = _decode(name)
                    reserved[key] = reserved.get(key, ZERO) + Decimal(held["amount"])
            return spent, reserved
