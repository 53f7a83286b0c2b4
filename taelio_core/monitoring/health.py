"""Provider health: breaker states, their history, and budgets, for ``taelio health`` and the Health page.

Why a module of its own: breaker state lives in the process that routes
(the dashboard's, a CLI run's), while its history must outlive it. So every
transition is written to the call log's ``breaker_events`` table, off the
request path (``BreakerEventLog``), and ``health_report`` reads:

* current states from the live breakers when the caller has them (the
  dashboard's engine), else from each breaker's last logged transition
  (a fresh ``taelio health`` process);
* the history of transitions, newest first;
* every budget with what is spent and reserved this period.

The dashboard calls ``Taelio.health()`` (which passes its live breakers and
budgets) and draws the three DataFrames; ``taelio health`` prints them.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from taelio_core.calllog.base import CallLog
from taelio_core.config.policy import RoutingPolicy
from taelio_core.guards.breakers import CLOSED, HALF_OPEN, OPEN, BreakerEvent, CircuitBreakers
from taelio_core.guards.budgets import BudgetGuard

__all__ = ["BreakerEventLog", "HealthReport", "health_report"]

log = logging.getLogger("taelio.health")
STATE_COLUMNS = ["provider", "model", "state", "reason", "until", "changed_at"]
HISTORY_COLUMNS = ["ts", "provider", "model", "from_state", "to_state", "reason", "until"]
BUDGET_COLUMNS = ["scope", "name", "period", "limit_usd", "spent_usd", "reserved_usd", "used_pct", "alert_pct",
                  "hard", "state"]


class BreakerEventLog:
    """A breaker listener that appends each transition to ``breaker_events`` on a worker thread."""

    def __init__(self, call_log: CallLog) -> None:
        self.call_log = call_log
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taelio-breaker-events")
        self._pending: list[Future[None]] = []
        self._pid = os.getpid()

    def __call__(self, event: BreakerEvent) -> None:
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._pool.submit(self._write, event))

    def _write(self, event: BreakerEvent) -> None:
        try:
            self.call_log.write(lambda con: con.execute(
                "INSERT INTO breaker_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [event.ts, event.provider, event.model, event.from_state, event.to_state, event.reason,
                 event.until, self._pid]))
        except Exception as e:  # noqa: BLE001 - health history must never break routing
            log.warning("could not log a breaker transition: %s", str(e).splitlines()[0] if str(e) else e)

    def flush(self) -> None:
        wait(list(self._pending))

    def close(self) -> None:
        self.flush()
        self._pool.shutdown(wait=True)


@dataclass(frozen=True, kw_only=True)
class HealthReport:
    states: pd.DataFrame     # one row per provider:model (and provider:* marks): STATE_COLUMNS
    history: pd.DataFrame    # transitions, newest first: HISTORY_COLUMNS
    budgets: pd.DataFrame    # BUDGET_COLUMNS
    live: bool               # states come from this process's breakers (else from the log)
    shared_state: str | None = None   # with REDIS_URL: "... connected" or "shared state unavailable since HH:MM ..."

    def as_dict(self) -> dict[str, object]:
        def records(df: pd.DataFrame) -> list[dict[str, object]]:
            return [{k: (None if pd.isna(v) else (v.isoformat() if isinstance(v, datetime | pd.Timestamp) else v))
                     for k, v in row.items()} for row in df.to_dict(orient="records")]
        return {"live": self.live, "breakers": records(self.states), "history": records(self.history),
                "budgets": records(self.budgets), "shared_state": self.shared_state}


def health_report(*, policy: RoutingPolicy, now: datetime, call_log: CallLog | None = None,
                  breakers: CircuitBreakers | None = None, budgets: BudgetGuard | None = None,
                  history_limit: int = 200, shared: object | None = None) -> HealthReport:
    """``shared``: the engine's ``RedisLink`` (``REDIS_URL``), whose ``status()`` the report carries."""
    history = _history(call_log, history_limit)
    if breakers is not None:
        states = _live_states(policy, breakers)
    else:
        states = _logged_states(policy, _last_transitions(call_log), now)
    budget_rows = [b.as_dict() for b in budgets.status()] if budgets is not None else []
    return HealthReport(states=states, history=history,
                        budgets=pd.DataFrame(budget_rows, columns=BUDGET_COLUMNS), live=breakers is not None,
                        shared_state=shared.status() if shared is not None else None)  # type: ignore[attr-defined]


def _entries(policy: RoutingPolicy) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for provider in policy.providers:
        for model in policy.models_of(provider):
            seen[(provider, model)] = None
    return list(seen)


def _live_states(policy: RoutingPolicy, breakers: CircuitBreakers) -> pd.DataFrame:
    snapshot = breakers.states()
    rows = []
    for provider, model in _entries(policy):
        s = snapshot.get(f"{provider}:{model}")
        rows.append({"provider": provider, "model": model, "state": s.state if s else CLOSED,
                     "reason": s.reason if s else "", "until": s.until if s and s.state == OPEN else None,
                     "changed_at": s.changed_at if s else None})
    for key, s in snapshot.items():
        provider, _, model = key.partition(":")
        if model == "*" and s.changed_at is not None:
            rows.append({"provider": provider, "model": "*", "state": s.state, "reason": s.reason,
                         "until": s.until if s.state == OPEN else None, "changed_at": s.changed_at})
    return pd.DataFrame(rows, columns=STATE_COLUMNS)


def _logged_states(policy: RoutingPolicy, latest: pd.DataFrame, now: datetime) -> pd.DataFrame:
    last = {(str(row["provider"]), str(row["model"])): row for row in latest.to_dict(orient="records")}
    rows = []
    keys = _entries(policy) + [k for k in last if k[1] == "*"]
    for provider, model in keys:
        row = last.get((provider, model))
        if row is None:
            rows.append({"provider": provider, "model": model, "state": CLOSED, "reason": "", "until": None,
                         "changed_at": None})
            continue
        state, until = str(row["to_state"]), row["until"]
        reason = "" if state == CLOSED else str(row["reason"] or "")
        if state == OPEN and until is not None and not pd.isna(until) and pd.Timestamp(until) <= pd.Timestamp(now):
            state, reason = HALF_OPEN, f"cool-down over ({reason}): the next request is a trial"
        rows.append({"provider": provider, "model": model, "state": state, "reason": reason,
                     "until": until if state == OPEN else None, "changed_at": row["ts"]})
    return pd.DataFrame(rows, columns=STATE_COLUMNS)


def _inserted(call_log: CallLog) -> str:
    """The column that orders rows as they were inserted, for transitions logged in the same microsecond."""
    from taelio_core.analytics.pg_reader import is_postgres_log
    return "ctid" if is_postgres_log(call_log) else "rowid"     # breaker_events is append-only on both


def _history(call_log: CallLog | None, limit: int) -> pd.DataFrame:
    if call_log is None:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    return call_log.query(f"SELECT {', '.join(HISTORY_COLUMNS)} FROM breaker_events "
                          f"ORDER BY ts DESC, {_inserted(call_log)} DESC LIMIT ?", [limit])


def _last_transitions(call_log: CallLog | None) -> pd.DataFrame:
    if call_log is None:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    columns = ", ".join(HISTORY_COLUMNS)
    return call_log.query(f"SELECT {columns} FROM (SELECT {columns}, row_number() OVER (PARTITION BY provider, model "
                          f"ORDER BY ts DESC, {_inserted(call_log)} DESC) AS newest FROM breaker_events) AS b "
                          "WHERE newest = 1")
