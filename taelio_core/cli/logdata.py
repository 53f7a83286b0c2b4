"""``taelio stats`` and ``taelio demo-data``: read totals from the call log, or fill it with demo traffic."""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from decimal import Decimal

from taelio_core.calllog.sources import SOURCES
from taelio_core.calllog.totals import LogTotals, Totals, log_totals, parse_since
from taelio_core.cli import add_json_flag, emit_json
from taelio_core.cli.common import money, open_engine
from taelio_core.demo import DEFAULT_REQUESTS_PER_DAY, demo_outages, generate_demo_data, remove_demo_data
from taelio_core.errors import InputError
from taelio_core.formatting import milliseconds, percent

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("stats", help="totals per provider and tier from the call log")
    p.add_argument("--since", default="7d", help="how far back: 7d, 12h, 30m, 2w, an ISO date, or 'all' (default 7d)")
    p.add_argument("--source", action="append", default=[], metavar="SOURCE",
                   help=f"only this source ({', '.join(SOURCES)}); repeat or comma-separate for several")
    add_json_flag(p)
    p.set_defaults(func=run_stats)

    p = subparsers.add_parser("demo-data", help="fill the call log with realistic simulated traffic (source=demo)")
    p.add_argument("--days", type=_count("--days", 1, 3650), default=30, help="days of history (default 30)")
    p.add_argument("--requests", type=_count("--requests", 0, 100_000_000), default=None,
                   help=f"how many requests in all (default {DEFAULT_REQUESTS_PER_DAY} a day)")
    p.add_argument("--seed", type=_count("--seed", 0, 2**32 - 1), default=0, help="random seed (default 0)")
    p.add_argument("--remove", action="store_true",
                   help="delete every demo request (source=demo) from the log instead; live rows stay")
    add_json_flag(p)
    p.set_defaults(func=run_demo_data)


def _count(flag: str, low: int, high: int):  # noqa: ANN202 - an argparse type
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range ({low} to {high:,})")
        return value
    parse.__name__ = flag
    return parse


def _sources(values: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        for name in (v.strip().lower() for v in value.split(",")):
            if not name:
                continue
            if name not in SOURCES:
                raise InputError(f"--source: unknown source '{name}' (sources: {', '.join(SOURCES)})",
                                 field="source")
            if name not in out:
                out.append(name)
    return tuple(out)


def run_stats(args: argparse.Namespace) -> int:
    try:
        since = parse_since(args.since)
    except ValueError as e:
        raise InputError(f"--since: {e}", field="since") from None
    sources = _sources(args.source)
    engine = open_engine(args)
    try:
        assert engine.log is not None
        totals = log_totals(engine.log, since=since, sources=sources)
        if args.json:
            emit_json({"db": engine.log.location, **totals.as_dict()})
        else:
            _print_totals(totals, engine.log.location)
        return 0
    finally:
        engine.close()


def _print_totals(totals: LogTotals, location: str) -> None:
    out = sys.stdout
    when = "all time" if totals.since is None else f"since {totals.since:%Y-%m-%d %H:%M} UTC"
    which = ", ".join(totals.sources) if totals.sources else "all sources"
    out.write(f"Call log {location}: {when}, {which}\n")
    t = totals.total
    if t.requests == 0:
        out.write("No requests in this range. (Try --since all, or fill a log with 'taelio demo-data'.)\n")
        return
    out.write(f"{t.requests:,} requests, {t.attempts:,} attempts; ok {_pct(t.ok_rate)}, fell back "
              f"{_pct(t.fallback_rate)}; tokens {t.input_tokens:,} in / {t.output_tokens:,} out; "
              f"cost {_cost(t.cost_usd, t.unpriced)}; latency p50 {_ms(t.p50_latency_ms)}, "
              f"p95 {_ms(t.p95_latency_ms)}\n")
    _table(out, "provider", totals.by_provider, "fallback = failed attempts the router moved on from; "
           "latency of successful attempts")
    _table(out, "tier", totals.by_tier, "fallback = requests that needed more than one entry")


def _table(out, label: str, rows: list[Totals], note: str) -> None:  # noqa: ANN001
    header = [label, "requests", "attempts", "ok", "fallback", "tokens in", "tokens out", "cost", "p50", "p95"]
    body = [[r.name, f"{r.requests:,}", f"{r.attempts:,}", _pct(r.ok_rate), _pct(r.fallback_rate),
             f"{r.input_tokens:,}", f"{r.output_tokens:,}", _cost(r.cost_usd, r.unpriced),
             _ms(r.p50_latency_ms), _ms(r.p95_latency_ms)] for r in rows]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *body)]
    out.write(f"\nBy {label} ({note}):\n")
    for i, line in enumerate([header, *body]):
        cells = [c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(line, widths))]
        out.write("  " + "  ".join(cells).rstrip() + "\n")
        if i == 0:
            out.write("  " + "  ".join("-" * w for w in widths) + "\n")


def _pct(value: float | None) -> str:
    return percent(value)


def _ms(value: float | None) -> str:
    return milliseconds(value)


def _cost(value: Decimal, unpriced: int) -> str:
    if unpriced and not value:
        return f"unpriced ({unpriced:,})"
    return money(value) + (f" + {unpriced:,} unpriced" if unpriced else "")


def run_demo_data(args: argparse.Namespace) -> int:
    engine = open_engine(args)
    try:
        assert engine.log is not None
        if args.remove:
            removed = remove_demo_data(engine.log)
            left = engine.log.count_requests()
            if args.json:
                emit_json({"db": engine.log.location, "removed": removed, "requests_left": left})
            else:
                noun = "request" if removed == 1 else "requests"
                sys.stdout.write(f"Removed {removed:,} demo {noun} from {engine.log.location}; "
                                 f"{left:,} other request{'' if left == 1 else 's'} stay.\n")
            return 0
        total = args.requests if args.requests is not None else DEFAULT_REQUESTS_PER_DAY * args.days
        live = sys.stderr.isatty()
        last = [-1]

        def progress(fraction: float) -> None:
            pct = int(fraction * 100)
            if pct == last[0]:
                return
            last[0] = pct
            line = f"demo-data: {pct:3d}% ({int(fraction * total):,} of {total:,} requests)"
            sys.stderr.write(("\r" + line) if live else line + "\n")
            sys.stderr.flush()

        now = datetime.now().astimezone()
        started = time.monotonic()
        written = generate_demo_data(engine.log, engine.policy, days=args.days, requests=total, seed=args.seed,
                                     now=now, progress=progress)
        if live:
            sys.stderr.write("\n")
        elapsed = time.monotonic() - started
        outages = demo_outages(engine.policy, days=args.days, seed=args.seed, now=now)
        if args.json:
            emit_json({"db": engine.log.location, "policy": engine.policy.name, "written": written,
                       "days": args.days, "seed": args.seed, "seconds": round(elapsed, 2),
                       "outages": [{"provider": o.provider, "start": o.start.isoformat(), "end": o.end.isoformat()}
                                   for o in outages]})
        else:
            sys.stdout.write(f"Wrote {written:,} simulated requests (source=demo, policy {engine.policy.name}) "
                             f"over the last {args.days} days to {engine.log.location} in {elapsed:.1f} s.\n")
            for o in outages:
                sys.stdout.write(f"  simulated outage: {o.provider} {o.start:%Y-%m-%d %H:%M} to {o.end:%H:%M} UTC\n")
        return 0
    finally:
        engine.close()
