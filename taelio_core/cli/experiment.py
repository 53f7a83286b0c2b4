"""``taelio experiment create|run|status|results|vote|list``: the Compare page's experiments, from a shell.

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
from taelio_core.experiments import (
    Experiments,
    ExperimentSpec,
    Progress,
    VariantSpec,
    next_matchup,
    parse_csv,
    single_prompt,
)
from taelio_core.experiments.assertions import parse_checks
from taelio_core.experiments.display import summary_table, text_table

__all__ = ["parse_variant", "register"]

_KEY_CHOICES = {"a": "left", "b": "right", "t": "tie", "x": "both_bad", "tie": "tie", "both_bad": "both_bad"}

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
    c.add_argument("--check", action="append", default=[], metavar="CHECK",
                   help="a check on every answer, e.g. 'contains: {genre}', 'max_length: 400', 'json', "
                        "'rubric: ...', '[v2] regex: ^A'; repeatable")
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

    v = sub.add_parser("vote", help="vote blind between two answers (A, B, tie, both bad), or record one vote")
    v.add_argument("experiment_id")
    v.add_argument("--voter", help="your name, stored with each vote")
    v.add_argument("--input", type=int, dest="input_id", help="record one vote: the input's number")
    v.add_argument("--left", help="record one vote: the variant id shown as A")
    v.add_argument("--right", help="record one vote: the variant id shown as B")
    v.add_argument("--choice", choices=["a", "b", "tie", "both_bad"], help="record one vote: the verdict")
    add_json_flag(v)
    v.set_defaults(func=run_vote)

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
            checks = parse_checks("\n".join(args.check), source="--check")
            spec = ExperimentSpec(name=args.name, tier=args.tier, task=args.task, variants=variants, assertions=checks,
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
        e = res.experiment
        cells = res.matrix[res.matrix.status != "pending"]
        out.write(f"{e.experiment_id} {e.name!r}: {len(e.variants)} variants x {len(e.inputs)} inputs; "
                  f"{int((cells.status == 'ok').sum())} of {len(res.matrix)} cells ok; "
                  f"spent {money(ex.store.spent(e.experiment_id))}; {res.n_votes} votes, {res.n_judged} judged pairs\n\n")
        board = "best rated first" if res.leaderboard is not None else "no ratings yet"
        out.write(f"Variants ({board}; latency of ok answers; money per call):\n")
        out.write(text_table(summary_table(res), ["Variant", "Model", "Calls", "Errors", "Mean latency", "p95 latency",
                                                  "Cost per call", "Wins", "Losses", "Ties", "Cost per win",
                                                  "Rating", "Rating 95% CI"]
                                  + (["Checks passed"] if e.assertions else [])))
        if res.leaderboard is not None:
            out.write(f"\nRatings: Bradley-Terry on {res.leaderboard_source}, Elo scale, 95% CI.\n")
        if res.verdict is not None:
            out.write(f"\nvotes: {res.verdict.text}\n")
        if res.judge_verdict is not None:
            out.write(f"judge: {res.judge_verdict.text}\n")
        return 0
    finally:
        engine.close()


def run_vote(args: argparse.Namespace) -> int:
    """One recorded vote with --input/--left/--right/--choice; otherwise blind pairs on stdin until q or EOF."""
    engine, ex = _open(args)
    try:
        experiment = ex.store.load(args.experiment_id)
        one = [args.input_id, args.left, args.right, args.choice]
        if any(x is not None for x in one):
            if any(x is None for x in one):
                raise InputError("--input, --left, --right and --choice go together to record one vote",
                                 field="choice")
            if args.input_id not in {r.input_id for r in experiment.inputs}:
                raise InputError(f"--input: experiment {experiment.experiment_id} has no input {args.input_id}",
                                 field="input")
            for flag, vid in (("--left", args.left), ("--right", args.right)):
                if vid not in experiment.labels:
                    raise InputError(f"{flag}: no variant '{vid}' (variants: {', '.join(experiment.labels)})",
                                     field=flag.strip("-"))
            choice = _KEY_CHOICES[args.choice]
            vote_id = ex.store.add_vote(experiment.experiment_id, args.input_id, args.left, args.right, choice,
                                        voter=args.voter)
            doc = {"vote_id": vote_id, "experiment_id": experiment.experiment_id, "input_id": args.input_id,
                   "left": args.left, "right": args.right, "choice": choice}
            emit_json(doc) if args.json else sys.stdout.write(f"recorded {choice} on input #{args.input_id}\n")
            return 0
        return _vote_interactively(ex, experiment, args.voter)
    finally:
        engine.close()


def _vote_interactively(ex: Experiments, experiment, voter: str | None) -> int:  # noqa: ANN001
    import random

    out, skip, count = sys.stdout, set(), 0
    rng = random.Random()
    while True:
        m = next_matchup(ex.store, experiment, rng=rng, voter=voter, skip=skip)
        if m is None:
            out.write("nothing (more) to vote on: a pair needs two ok answers to the same input\n")
            break
        out.write(f"\n=== input #{m.input_id} ===\n{m.prompt}\n\n--- A ---\n{m.left_text}\n\n--- B ---\n"
                  f"{m.right_text}\n\n[a] A better  [b] B better  [t] tie  [x] both bad  [s] skip  [q] quit: ")
        out.flush()
        key = sys.stdin.readline()
        if not key:
            break
        key = key.strip().lower()
        if key == "q":
            break
        if key == "s":
            skip.add((m.input_id, *sorted((m.left, m.right))))
            continue
        if key not in ("a", "b", "t", "x"):
            out.write(f"'{key}' is not one of a, b, t, x, s, q\n")
            continue
        ex.store.add_vote(experiment.experiment_id, m.input_id, m.left, m.right, _KEY_CHOICES[key], voter=voter)
        count += 1
        out.write(f"recorded. A was {experiment.labels[m.left]}, B was {experiment.labels[m.right]}.\n")
    out.write(f"{count} vote{'s' if count != 1 else ''} recorded\n")
    return 0


def run_list(args: argparse.Namespace) -> int:
    engine, ex = _open(args)
    try:
        df = ex.store.list()
        if args.json:
            emit_json(df.to_dict("records"))
        else:
            table = df.assign(created_at=df.created_at.map(lambda t: f"{t:%Y-%m-%d %H:%M}"))
            sys.stdout.write(text_table(table.astype(str)) if len(df) else "no experiments yet\n")
        return 0
    finally:
        engine.close()
