"""``taelio experiment create|run|status|results|list``: the Compare page's experiments, from a shell.

Same core code as the page (``taelio_core.experiments``), so a run started
here shows on the page and the other way round. A variant is given as
``[LABEL=]PROVIDER:MODEL[;key=value...]`` (keys: system, user, temperature,
max_tokens, timeout_s) or as a JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import ValidationError

from taelio_core.cli import add_json_flag, emit_json
from taelio_core.cli.common import money, open_engine
from taelio_core.errors import InputError
from taelio_core.experiments import Experiments, ExperimentSpec, Progress, VariantSpec, parse_csv, single_prompt

__all__ = ["parse_variant", "register"]

_KEYS = {"system", "user", "temperature", "max_tokens", "timeout_s", "label", "model"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("experiment", help="A/B experiments across prompts and providers")
    sub = p.add_subparsers(dest="experiment_command", metavar="ACTION")
    sub.required = True

    c = sub.add_parser("create", help="create an experiment (variants x inputs)")
    c.add_argument("--name", required=True)
    c.add_argument("--tier", default="pro", help="tier the calls are charged to (default: pro)")
    c.add_argument("--task", default="idea", help="policy task whose templates are the default (default: idea)")
    c.add_argument("--variant", action="append", default=[], metavar="SPEC",
                   help="[LABEL=]PROVIDER:MODEL[;user=...;system=...;temperature=..;max_tokens=..] or JSON; "
                        "at least two")
    source = c.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="a single input prompt")
    source.add_argument("--csv", help="a CSV file with a 'prompt' column (genre, tone and others optional)")
    source.add_argument("--set", dest="input_set", help="a saved input set")
    c.add_argument("--genre", default="", help="with --prompt")
    c.add_argument("--tone", default="", help="with --prompt")
    c.add_argument("--save-set", help="also save these inputs as a named set")
    c.add_argument("--concurrency", type=int, default=4, help="inputs in flight at once (default 4)")
    c.add_argument("--cost-cap", help="stop runs once this many USD are spent")
    add_json_flag(c)
    c.set_defaults(func=run_create)

    r = sub.add_parser("run", help="run the missing cells (resumes; Ctrl-C cancels cleanly)")
    r.add_argument("experiment_id")
    r.add_argument("--concurrency", type=int, help="override the experiment's concurrency")
    r.add_argument("--cost-cap", help="override the experiment's cost cap (USD)")
    r.add_argument("--retry-failed", action="store_true", help="also redo failed cells")
    r.add_argument("--judge", action="store_true", help="then run the LLM judge on every pair")
    r.add_argument("--estimate", action="store_true", help="only print the cost estimate")
    add_json_flag(r)
    r.set_defaults(func=run_run)

    s = sub.add_parser("status", help="cells done, failed and pending; spend")
    s.add_argument("experiment_id")
    add_json_flag(s)
    s.set_defaults(func=run_status)

    res = sub.add_parser("results", help="per-variant summary, leaderboard and verdict")
    res.add_argument("experiment_id")
    res.add_argument("--pair", help="two variant ids for the verdict, e.g. v1,v3 (default: the top two)")
    add_json_flag(res)
    res.set_defaults(func=run_results)

    ls = sub.add_parser("list", help="all experiments")
    add_json_flag(ls)
    ls.set_defaults(func=run_list)


def parse_variant(text: str) -> VariantSpec:
    """``[LABEL=]PROVIDER:MODEL[;key=value...]`` or a JSON object, as a ``VariantSpec``."""
    text = text.strip()
    try:
        if text.startswith("{"):
            return VariantSpec.model_validate(json.loads(text))
        head, *rest = text.split(";")
        fields: dict[str, object] = {}
        label, sep, ref = head.partition("=")
        fields.update({"label": label.strip(), "model": ref} if sep else {"model": head})
        for part in rest:
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in _KEYS:
                raise InputError(f"--variant '{text}': '{part}' is not key=value with a key among "
                                 f"{', '.join(sorted(_KEYS))}", field="variant")
            fields[key] = value.replace("\\n", "\n")
        return VariantSpec.model_validate(fields)
    except json.JSONDecodeError as e:
        raise InputError(f"--variant: not valid JSON ({e.msg})", field="variant") from None
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "value"
        raise InputError(f"--variant '{text}': {where}: {err['msg']}", field="variant") from None


def _money_arg(value: str | None, flag: str) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(value.strip().lstrip("$"))
    except InvalidOperation:
        raise InputError(f"{flag}: '{value}' is not an amount in USD", field=flag.strip("-")) from None
    if amount <= 0:
        raise InputError(f"{flag}: the cap must be more than 0", field=flag.strip("-"))
    return amount


def _open(args: argparse.Namespace):  # noqa: ANN202
    engine = open_engine(args)
    return engine, Experiments.open(engine.router, engine.log)


def run_create(args: argparse.Namespace) -> int:
    variants = [parse_variant(v) for v in args.variant]
    if len(variants) < 2:
        raise InputError("--variant: give at least two variants to compare", field="variant")
    engine, ex = _open(args)
    try:
        if args.prompt is not None:
            rows, kind = single_prompt(args.prompt, args.genre, args.tone), "prompt"
        elif args.csv is not None:
            path = Path(args.csv)
            try:
                data = path.read_bytes()
            except OSError as e:
                raise InputError(f"--csv: cannot read {path}: {e.strerror}", field="csv") from None
            rows, kind = parse_csv(data, source=path.name), "csv"
        else:
            rows, kind = ex.store.load_set(args.input_set), "set"
        try:
            spec = ExperimentSpec(name=args.name, tier=args.tier, task=args.task, variants=variants,
                                  concurrency=args.concurrency, cost_cap_usd=_money_arg(args.cost_cap, "--cost-cap"),
                                  inputs_kind=kind)
        except ValidationError as e:
            err = e.errors()[0]
            raise InputError(f"--{err['loc'][0]}: {err['msg']}".replace("_", "-", 1), field=str(err["loc"][0])) from None
        experiment = ex.store.create(spec, rows)
        if args.save_set:
            ex.store.save_set(args.save_set, rows)
        estimate = ex.runner.estimate(experiment.experiment_id)
        if args.json:
            emit_json({"experiment_id": experiment.experiment_id, "variants": len(experiment.variants),
                       "inputs": len(experiment.inputs), "estimate": _estimate_dict(estimate)})
        else:
            sys.stdout.write(f"created {experiment.experiment_id}: {len(experiment.variants)} variants x "
                             f"{len(experiment.inputs)} inputs\nestimate: {estimate.sentence()}\n"
                             f"run it: taelio experiment run {experiment.experiment_id}\n")
        return 0
    finally:
        engine.close()


def _estimate_dict(estimate) -> dict[str, object]:  # noqa: ANN001
    return {"cells": estimate.cells, "expected_usd": float(estimate.expected_usd),
            "max_usd": float(estimate.max_usd), "unpriced": list(estimate.unpriced)}


def _bar(p: Progress) -> str:
    width = 24
    filled = int(width * p.fraction)
    eta = "" if p.eta_s is None else f", ETA {p.eta_s:.0f} s"
    return (f"\r[{'#' * filled}{'.' * (width - filled)}] {p.run_done}/{p.run_total} calls{eta}, "
            f"spent {money(p.spent_usd)}   ")


def _watch(handle, quiet: bool) -> Progress:  # noqa: ANN001
    shown = ""
    try:
        while not handle.done:
            line = _bar(handle.progress) if handle.progress is not None else ""
            if line != shown and not quiet:
                sys.stderr.write(line)
                shown = line
            time.sleep(0.2)
    except KeyboardInterrupt:
        sys.stderr.write("\ncancelling: waiting for the calls in flight to finish...\n")
        handle.cancel()
    final = handle.result()
    if not quiet:
        sys.stderr.write(_bar(final) + "\n")
    return final


def run_run(args: argparse.Namespace) -> int:
    engine, ex = _open(args)
    try:
        experiment = ex.store.load(args.experiment_id)
        estimate = ex.runner.estimate(experiment.experiment_id, retry_failed=args.retry_failed)
        if args.estimate:
            if args.json:
                emit_json(_estimate_dict(estimate))
            else:
                sys.stdout.write(estimate.sentence() + "\n")
            return 0
        sys.stderr.write(f"{experiment.experiment_id}: {estimate.sentence()}\n")
        cap = _money_arg(args.cost_cap, "--cost-cap")
        kw = {"concurrency": args.concurrency, "cost_cap": cap}
        final = _watch(ex.runner.start(experiment.experiment_id, retry_failed=args.retry_failed, **kw), args.json)
        judged = None
        if args.judge and final.state == "finished":
            judged = _watch(ex.judge.start(experiment.experiment_id, **kw), args.json)
        doc = {"experiment_id": experiment.experiment_id, "state": final.state, "message": final.message,
               "done": final.done, "failed": final.failed, "total": final.total, "run_calls": final.run_done,
               "spent_usd": float(final.spent_usd), "elapsed_s": round(final.elapsed_s, 3),
               "judge": None if judged is None else {"state": judged.state, "pairs": judged.run_done,
                                                      "message": judged.message}}
        if args.json:
            emit_json(doc)
        else:
            sys.stdout.write(final.message + "\n" + (judged.message + "\n" if judged else ""))
        return 0 if final.state in ("finished", "cancelled") else 1
    finally:
        engine.close()


def run_status(args: argparse.Namespace) -> int:
    engine, ex = _open(args)
    try:
        experiment = ex.store.load(args.experiment_id)
        cells = ex.store.cells(experiment.experiment_id)
        total = len(experiment.inputs) * len(experiment.variants)
        ok = sum(c.ok for c in cells.values())
        doc = {"experiment_id": experiment.experiment_id, "name": experiment.name, "tier": experiment.tier,
               "task": experiment.task, "variants": [{"id": v.variant_id, "label": v.label, "model": v.ref}
                                                     for v in experiment.variants],
               "inputs": len(experiment.inputs), "cells": total, "ok": ok, "failed": len(cells) - ok,
               "pending": total - len(cells), "spent_usd": float(ex.store.spent(experiment.experiment_id)),
               "cost_cap_usd": None if experiment.cost_cap_usd is None else float(experiment.cost_cap_usd),
               "votes": len(ex.store.votes(experiment.experiment_id))}
        if args.json:
            emit_json(doc)
            return 0
        out = sys.stdout
        out.write(f"{experiment.experiment_id} {experiment.name!r}: {len(experiment.variants)} variants x "
                  f"{len(experiment.inputs)} inputs\n")
        for v in doc["variants"]:  # type: ignore[union-attr]
            out.write(f"  {v['id']}: {v['label']} ({v['model']})\n")
        out.write(f"cells: {ok} ok, {doc['failed']} failed, {doc['pending']} pending of {total}; "
                  f"spent {money(Decimal(str(doc['spent_usd'])))}; {doc['votes']} votes\n")
        return 0
    finally:
        engine.close()


def run_results(args: argparse.Namespace) -> int:
    engine, ex = _open(args)
    try:
        pair = None
        if args.pair:
            parts = [p.strip() for p in args.pair.split(",")]
            if len(parts) != 2:
                raise InputError("--pair: give two variant ids separated by a comma, e.g. v1,v2", field="pair")
            experiment = ex.store.load(args.experiment_id)
            for p in parts:
                experiment.variant(p)
            pair = (parts[0], parts[1])
        res = ex.results(args.experiment_id, pair=pair)
        if args.json:
            emit_json(res.as_dict())
            return 0
        out = sys.stdout
        cols = ["variant", "label", "calls", "error_rate", "mean_latency_ms", "p95_latency_ms", "cost_per_call_usd",
                "wins", "losses", "ties", "cost_per_win_usd", "rating"]
        out.write(res.summary[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}") + "\n\n")
        if res.leaderboard is not None:
            out.write(f"leaderboard (Bradley-Terry on {res.leaderboard_source}, 95% CI):\n")
            for rank, (name, rating, low, high) in enumerate(res.leaderboard.ranked(), start=1):
                out.write(f"  {rank}. {res.label(name)}: {rating:.0f} ({low:.0f}-{high:.0f})\n")
        if res.verdict is not None:
            out.write(f"votes: {res.verdict.text}\n")
        if res.judge_verdict is not None:
            out.write(f"judge: {res.judge_verdict.text}\n")
        return 0
    finally:
        engine.close()


def run_list(args: argparse.Namespace) -> int:
    engine, ex = _open(args)
    try:
        df = ex.store.list()
        if args.json:
            emit_json(df.to_dict("records"))
        else:
            sys.stdout.write(df.to_string(index=False) + "\n" if len(df) else "no experiments yet\n")
        return 0
    finally:
        engine.close()
