"""``taelio alerts check|list``: deliver budget and outage alerts from cron, and see what went out.

``check`` is what a cron job or systemd timer runs every minute, so alerts
reach people when nobody has the dashboard open; each alert still goes out
once per threshold per period (``taelio_core.monitoring.alerts``).
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from taelio_core.cli import add_json_flag, emit_json
from taelio_core.cli.common import open_engine
from taelio_core.errors import TaelioError
from taelio_core.monitoring.alerts import check_alerts, recent_alerts, webhook_from

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("alerts", help="budget and outage alerts to a Slack-compatible webhook")
    sub = p.add_subparsers(dest="alerts_command", metavar="ACTION")
    sub.required = True
    c = sub.add_parser("check", help="evaluate alerts now and send the new ones (run it from cron)")
    add_json_flag(c)
    c.set_defaults(func=run_check)
    ls = sub.add_parser("list", help="the latest alerts and when they were sent")
    ls.add_argument("--limit", type=int, default=20)
    add_json_flag(ls)
    ls.set_defaults(func=run_list)


def run_check(args: argparse.Namespace) -> int:
    engine = open_engine(args)
    try:
        if engine.log is None:
            raise TaelioError("alerts need the call log")
        hook = webhook_from(engine.settings)
        done = check_alerts(engine.log, engine.policy, engine.settings, now=engine.router.clock.now())
        doc = {"webhook_host": hook.host if hook else None,
               "alerts": [{"kind": d.alert.kind, "subject": d.alert.subject, "period": d.alert.period,
                           "message": d.alert.text, "status": d.status, "http_status": d.http_status,
                           "error": d.error} for d in done]}
        if args.json:
            emit_json(doc)
        else:
            if hook is None:
                sys.stdout.write("no webhook set (TAELIO_ALERT_WEBHOOK): alerts are logged, not sent\n")
            for d in done:
                sys.stdout.write(f"{d.status:12} {d.alert.text}" + (f" ({d.error})" if d.error else "") + "\n")
            if not done:
                sys.stdout.write("no alerts: budgets within their limits, no breaker open\n")
        return 1 if any(d.status == "failed" for d in done) else 0
    finally:
        engine.close()


def run_list(args: argparse.Namespace) -> int:
    engine = open_engine(args)
    try:
        if engine.log is None:
            raise TaelioError("alerts need the call log")
        df = recent_alerts(engine.log, limit=args.limit)
        if args.json:
            emit_json([{k: (None if not isinstance(v, str) and pd.isna(v) else
                            (v.isoformat() if hasattr(v, "isoformat") else v)) for k, v in row.items()}
                       for row in df.to_dict("records")])
            return 0
        if df.empty:
            sys.stdout.write("no alerts so far\n")
        for r in df.itertuples():
            when = f"{r.sent_at:%Y-%m-%d %H:%M} UTC" if not pd.isna(r.sent_at) else f"not sent ({r.status})"
            sys.stdout.write(f"{when:22} {r.message}\n")
        return 0
    finally:
        engine.close()
