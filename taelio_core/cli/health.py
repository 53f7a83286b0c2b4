"""``taelio health``: circuit breakers, unhealthy marks, their history, and budgets.

Breaker state is per process, so a fresh CLI process shows each breaker as
its last logged transition left it (an open breaker whose cool-down is over
shows as half-open: the next request is its trial). With ``REDIS_URL`` it
shows the shared states instead, and first says whether the shared state is
connected ("shared state unavailable since HH:MM ...").
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

import pandas as pd

from taelio_core.cli import add_json_flag, emit_json
from taelio_core.cli.common import money, open_engine
from taelio_core.monitoring.health import health_report

if TYPE_CHECKING:
    from taelio_core.wiring import Taelio


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("health", help="circuit breakers, unhealthy providers/models, and budgets")
    p.add_argument("--history", type=int, default=20, metavar="N", help="show the last N transitions (default 20)")
    add_json_flag(p)
    p.set_defaults(func=run_health)


def run_health(args: argparse.Namespace) -> int:
    if args.history < 0:
        from taelio_core.errors import InputError
        raise InputError("--history must be 0 or more", field="history")
    engine = open_engine(args)
    try:
        shared = engine.shared
        report = health_report(policy=engine.policy, now=engine.router.clock.now(), call_log=engine.log,
                               budgets=engine.router.budgets, history_limit=args.history, shared=shared,
                               breakers=engine.router.breakers if shared is not None else None)
        guard = guard_details(engine)
        if args.json:
            emit_json(report.as_dict() | guard)
            return 0
        out = sys.stdout
        if report.shared_state is not None:
            out.write(f"{report.shared_state[:1].upper()}{report.shared_state[1:]}\n\n")
        out.write("Circuit breakers (shared through Redis):\n" if report.live else
                  "Circuit breakers (as last logged; state is kept per process):\n")
        for row in report.states.itertuples(index=False):
            detail = f" until {_hms(row.until)}" if row.state == "open" and not pd.isna(row.until) else ""
            reason = f" ({row.reason})" if row.reason else ""
            out.write(f"  {row.provider}:{row.model}: {row.state}{detail}{reason}\n")
        out.write("\nBudgets this period:\n")
        if engine.mode == "demo" and not engine.policy.model.budgets.count_simulated:
            out.write("  (demo mode: simulated calls cost nothing and do not count against budgets)\n")
        if report.budgets.empty:
            out.write("  none configured\n")
        else:
            out.write(f"  {guard['budget_rule']}\n  {guard['budget_scope']}\n")
        for row in report.budgets.itertuples(index=False):
            kind = "hard" if row.hard else "soft"
            out.write(f"  {row.scope} {row.name} {row.period}: {money(row.spent_usd)} of {money(row.limit_usd)} "
                      f"({row.used_pct:.1f}%, {kind}, alert at {row.alert_pct:g}%): {row.state}\n")
        write_writer_status(out, guard["call_log"])
        if args.history:
            out.write(f"\nLast {args.history} transitions:\n")
            if report.history.empty:
                out.write("  none logged\n")
            for row in report.history.itertuples(index=False):
                out.write(f"  {pd.Timestamp(row.ts):%Y-%m-%d %H:%M:%S} {row.provider}:{row.model} "
                          f"{row.from_state} -> {row.to_state}: {row.reason}\n")
        return 0
    finally:
        engine.close()


def guard_details(engine: Taelio) -> dict[str, object]:
    """What ``taelio health`` adds to the health report: the budget rule and scope, and the log writer's counters."""
    from taelio_core.analytics.budget_burn import budget_rule
    shared = getattr(engine.router.budgets.store, "shared", False)
    scope = ("Budgets, circuit breakers and rate limits are shared by every Taelio process with this REDIS_URL."
             if engine.shared is not None else
             "Budgets are shared by every Taelio process on this machine (a ledger beside the log); circuit "
             "breakers are kept per process." if shared else
             "Budgets are kept by this process only; circuit breakers too.")
    status = engine.log.writer_status() if engine.log is not None else None
    return {"budget_rule": budget_rule(engine.policy.model.budgets.count_simulated), "budget_scope": scope,
            "call_log": status.as_dict() if status is not None else None}


def write_writer_status(out: TextIO, status: dict | None) -> None:
    if status is None:
        return
    out.write(f"\nCall log {status['location']}:\n")
    out.write(f"  writer (this process): {status['pending']} waiting, {status['replayed']} replayed from dead "
              f"processes' journals at open, {status['rejected']} malformed set aside; "
              f"last error: {status['last_error'] or 'none'}\n")
    if status["set_aside"]:
        out.write(f"  {status['set_aside']} malformed request(s) wait in {status['set_aside_dir']} (any process)\n")


def _hms(value: object) -> str:
    return f"{pd.Timestamp(value):%H:%M:%S}"
