"""``taelio simulate``: run policies through the sandbox from the terminal.

Both ``taelio simulate --policy A.toml ...`` and ``taelio --policy A.toml
simulate ...`` name policy A (the subcommand's flag wins when both are
given). Traffic is synthetic (``--requests N``) or replayed from the log
(``--replay 7d``). The run is saved to the log file's sandbox tables unless
``--no-save``.
"""
from __future__ import annotations

import argparse
import math
import sys
from datetime import timedelta

from taelio_core.calllog import open_call_log
from taelio_core.calllog.sources import REPLAY_SOURCES
from taelio_core.cli import add_json_flag, emit_json
from taelio_core.config.policy_parser import load_policy
from taelio_core.config.settings import load_settings
from taelio_core.errors import InputError
from taelio_core.formatting import metric
from taelio_core.sandbox.fitting import fit_models
from taelio_core.sandbox.models import SCENARIOS, models_from_policy, parse_scenario
from taelio_core.sandbox.simulation import SimulationReport, progress_printer, simulate
from taelio_core.sandbox.store import save_report
from taelio_core.sandbox.traffic import parse_window, replay_traffic, synthetic_traffic

MAX_REQUESTS = 5_000_000


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("simulate", help="replay or synthesise traffic through policies in virtual time",
                              description="Run policy A (and B with --compare) through the real router with "
                                          "simulated providers in virtual time, and report cost, latency, "
                                          "fallback rate and availability per tier.")
    p.add_argument("--policy", dest="sim_policy", metavar="A",
                   help="policy A: name or TOML path (default: the global --policy, $TAELIO_POLICY or seed)")
    p.add_argument("--compare", metavar="B", help="policy B to compare against A on the same traffic and seeds")
    traffic = p.add_mutually_exclusive_group(required=True)
    traffic.add_argument("--requests", type=int, metavar="N", help="N synthetic requests")
    traffic.add_argument("--replay", metavar="WINDOW",
                         help="replay the log: 7d, 24h, 90m (ending now) or 2026-11-01..2026-11-08")
    p.add_argument("--source", default=",".join(REPLAY_SOURCES),
                   help=f"with --replay: logged sources to replay, comma-separated (default: {','.join(REPLAY_SOURCES)})")
    p.add_argument("--duration", default="24h", help="synthetic traffic spread over this long (default 24h)")
    p.add_argument("--curve", choices=("flat", "daily"), default="flat", help="synthetic arrival rate over time")
    p.add_argument("--scenario", help=f"a preset ({', '.join(SCENARIOS)}) or down:PROVIDER:MINUTES, "
                                      "rpm:PROVIDER:N, slow:PROVIDER:FACTOR, retired:PROVIDER:MODEL")
    p.add_argument("--models", choices=("policy", "log"), default="policy",
                   help="provider models from the policy's [simulator] tables or fitted from the log")
    p.add_argument("--seed", type=int, default=0, help="first random seed (default 0)")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds; deltas get a band across them")
    p.add_argument("--no-save", action="store_true", help="do not store the run in the log file")
    add_json_flag(p)
    p.set_defaults(func=run_simulate)


def _duration(text: str) -> float:
    units = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
    body, unit = text[:-1], text[-1:]
    try:
        value = float(body) * units[unit]
    except (KeyError, ValueError):
        raise InputError(f"--duration: '{text}' is not a duration like 24h, 90m or 7d", field="duration") from None
    if not 0 < value < math.inf:
        raise InputError("--duration: must be above 0", field="duration")
    return value


def run_simulate(args: argparse.Namespace) -> int:
    policy_a = load_policy(args.sim_policy or args.policy)
    policy_b = load_policy(args.compare) if args.compare else None
    policies = [policy_a] + ([policy_b] if policy_b else [])
    scenario = parse_scenario(args.scenario)
    sources = tuple(s.strip() for s in args.source.split(",") if s.strip())
    needs_log = args.replay is not None or args.models == "log" or not args.no_save
    log = open_call_log(load_settings(), args.db) if needs_log else None
    try:
        if args.replay is not None:
            start, end = parse_window(args.replay)
            traffic = replay_traffic(log, start, end, sources=sources)
        else:
            if not 1 <= args.requests <= MAX_REQUESTS:
                raise InputError(f"--requests: must be between 1 and {MAX_REQUESTS:,}", field="requests")
            traffic = synthetic_traffic(requests=args.requests, tiers=policy_a.tiers, tasks=policy_a.tasks,
                                        seed=args.seed, duration_s=_duration(args.duration), curve=args.curve)
        models = models_from_policy(*policies)
        if args.models == "log":
            end = traffic.start + timedelta(seconds=traffic.duration_s + 1) if args.replay else None
            start, end = (traffic.start, end) if end else parse_window("7d")
            models = fit_models(log, models, start, end, sources=sources)
        report = simulate(policy_a, traffic, models, policy_b=policy_b, scenario=scenario, seed=args.seed,
                          seeds=args.seeds, progress=progress_printer(sys.stderr.write))
        if log is not None and not args.no_save:
            save_report(log, report)
    finally:
        if log is not None:
            log.close()
    if args.json:
        emit_json(report.as_dict())
        return 0
    _print(report)
    return 0


def _print(report: SimulationReport) -> None:
    out = sys.stdout
    out.write(f"run {report.run_id}: {report.traffic.description}\n")
    if report.scenario is not None:
        out.write(f"scenario: {report.scenario.label}: {report.scenario.describe(report.traffic.duration_s)}\n")
    out.write(f"seeds {report.seeds}; {report.requests_simulated:,} requests simulated in {report.wall_s:.1f} s "
              f"({report.rate:,.0f}/s)\n\n")
    columns = ("requests", "availability", "fallback_rate", "cost_usd", "p50_ms", "p95_ms", "p99_ms",
               "budget_burn_pct")
    widths = (10, 14, 15, 12, 10, 10, 10, 13)
    header = f"{'tier':<8}" + "".join(f"{c.replace('_usd', '').replace('_pct', '').replace('_ms', '').replace('_', ' '):>{w}}"
                                      for c, w in zip(columns, widths)) + "\n"
    arms = [("A", report.policy_a.name)] + ([("B", report.policy_b.name)] if report.policy_b else [])
    for arm, name in arms:
        out.write(f"policy {arm}: {name}\n" + header)
        for row in report.tiers(arm).to_dict(orient="records"):
            out.write(f"{row['tier']:<8}" + "".join(f"{metric(c, row[c]):>{w}}" for c, w in zip(columns, widths))
                      + "\n")
        out.write("\n")
    comparison = report.comparison()
    if comparison is not None:
        out.write("B - A (band across seeds):\n")
        for row in comparison[comparison["tier"] == "all"].to_dict(orient="records"):
            if row["metric"] == "requests":
                continue
            m = row["metric"]
            out.write(f"  {row['label']:<30}{metric(m, row['delta'], signed=True):>14}  "
                      f"[{metric(m, row['delta_low'], signed=True)}, {metric(m, row['delta_high'], signed=True)}]  "
                      f"{row['verdict']}\n")
