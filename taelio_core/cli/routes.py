"""``taelio routes`` and ``taelio providers``: the seed's selection info and provider list."""
from __future__ import annotations

import argparse
import sys

from taelio_core.cli import add_json_flag, emit_json
from taelio_core.cli.common import open_engine
from taelio_core.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("routes", help="the provider chain for each tier x task, with availability")
    p.add_argument("--tier", help="only this tier")
    p.add_argument("--task", help="only this task")
    add_json_flag(p)
    p.set_defaults(func=run_routes)

    p = subparsers.add_parser("providers", help="each provider: configured or not, host, models used")
    add_json_flag(p)
    p.set_defaults(func=run_providers)


def run_routes(args: argparse.Namespace) -> int:
    engine = open_engine(args, log=False)
    policy = engine.policy
    if args.tier and args.tier not in policy.tiers:
        raise InputError(f"--tier: unknown tier '{args.tier}' (tiers: {', '.join(policy.tiers)})", field="tier")
    if args.task and args.task not in policy.tasks:
        raise InputError(f"--task: unknown task '{args.task}' (tasks: {', '.join(policy.tasks)})", field="task")
    routes = []
    for tier in policy.tiers:
        for task in policy.tasks:
            if (args.tier and tier != args.tier) or (args.task and task != args.task):
                continue
            chain = engine.router.route(tier, task)
            routes.append({"tier": tier, "task": task, "chain": [e.as_dict() for e in chain]})
    if args.json:
        emit_json({"policy": policy.name, "mode": engine.mode, "routes": routes})
        return 0
    out = sys.stdout
    out.write(f"policy {policy.name} ({policy.source}), mode: {engine.mode}\n")
    for route in routes:
        parts = []
        for e in route["chain"]:
            mark = "" if e["available"] else f" [skipped: {e['reason']}]"
            if e["simulated"]:
                mark = " [simulated]"
            parts.append(f"{e['provider']}:{e['model']}{mark}")
        out.write(f"{route['tier']:>8} {route['task']:<8} " + " -> ".join(parts) + "\n")
    return 0


def run_providers(args: argparse.Namespace) -> int:
    engine = open_engine(args, log=False)
    rows = []
    for name, cfg in engine.policy.providers.items():
        provider = engine.providers[name]
        availability = provider.availability()
        rows.append({
            "provider": name, "kind": cfg.kind, "configured": availability.available,
            "reason": availability.reason if not availability.available else "",
            "simulated": provider.simulated, "host": provider.host,
            "models": engine.policy.models_of(name),
        })
    if args.json:
        emit_json({"mode": engine.mode, "providers": rows})
        return 0
    for row in rows:
        state = "simulated" if row["simulated"] else ("configured" if row["configured"] else row["reason"])
        host = f" @ {row['host']}" if row["host"] else ""
        sys.stdout.write(f"{row['provider']:<12} {row['kind']:<18} {state}{host}\n"
                         f"{'':<12} models: {', '.join(row['models']) or '(none in any chain)'}\n")
    return 0
