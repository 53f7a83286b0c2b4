"""``taelio generate`` and ``taelio test``: route a request, print the answer and its trace."""
from __future__ import annotations

import argparse
import sys
from typing import TextIO

from taelio_core.cli import EXIT_ALL_FAILED, add_json_flag, emit_json
from taelio_core.cli.common import money, open_engine
from taelio_core.errors import AllProvidersFailed, BudgetExceeded, InputError
from taelio_core.routing.inputs import read_prompt
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Truncated
from taelio_core.routing.story_flow import (FULL, PartFinished, PartStarted, PartText, PartTruncated, StoryFinished,
                                           stream_story)
from taelio_core.routing.trace import GenerationResult, retry_words


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help="route one request and print the answer and its trace")
    p.add_argument("--task", default="idea", help="a task from the policy, or 'full' for idea then story")
    p.add_argument("--tier", default="free", help="user tier (default: free)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="the premise")
    source.add_argument("--prompt-file", metavar="PATH",
                        help="read the premise from a UTF-8 file ('-' for stdin), for long premises")
    p.add_argument("--genre", default="", help="genre, e.g. Mystery")
    p.add_argument("--tone", default="", help="tone, e.g. 'Dark and atmospheric'")
    p.add_argument("--idea", help="for a story task: the idea to build on (default: the prompt)")
    p.add_argument("--provider", help="only use this provider's entries (if the tier allows it)")
    p.add_argument("--stream", action="store_true", help="print text as it arrives")
    add_json_flag(p)
    p.set_defaults(func=run_generate)

    p = subparsers.add_parser("test", help="a tiny live probe of one provider (the seed's POST /providers/test)")
    p.add_argument("--provider", required=True, help="provider name from the policy")
    p.add_argument("--task", default="idea", help="task to probe with (default: idea)")
    add_json_flag(p)
    p.set_defaults(func=run_test)


def _announce(engine, out: TextIO) -> None:  # noqa: ANN001
    if engine.mode == "demo":
        out.write("demo mode: no provider key is set, so the offline simulator stands in for each provider "
                  "(nothing costs money; set GEMINI_API_KEY, OPENAI_API_KEY or ANTHROPIC_API_KEY to go live)\n")


def run_generate(args: argparse.Namespace) -> int:
    engine = open_engine(args)
    try:
        info = sys.stderr if args.json else sys.stdout
        _announce(engine, sys.stderr)
        inputs = Inputs(prompt=_prompt(args), genre=args.genre, tone=args.tone, idea=args.idea)
        if args.task == FULL:
            return _run_full(engine, args, inputs, info)
        if args.task not in engine.policy.tasks:
            raise InputError(f"--task: unknown task '{args.task}' (tasks: {', '.join(engine.policy.tasks)}, full)",
                             field="task")
        result = _one(engine, args, args.task, inputs, info, parent_id=None)
        _raise_if_rejected(result)
        if args.json:
            emit_json(result.as_dict())
            args._json_written = True
        else:
            print_trace(result, sys.stdout, text_shown=args.stream)
        if result.status == "failed":
            raise AllProvidersFailed(result.error or "every provider failed", attempts=result.attempts)
        return result.exit_code  # a cut answer no later entry completed is 3, not 0
    finally:
        engine.close()


def _one(engine, args, task: str, inputs: Inputs, info: TextIO, parent_id: str | None) -> GenerationResult:  # noqa: ANN001
    router = engine.router
    if args.stream:
        stream = router.stream(args.tier, task, inputs, provider=args.provider, parent_id=parent_id)
        for chunk in stream:
            if isinstance(chunk, Truncated):
                info.write(f"\n[{chunk.provider}:{chunk.model} stopped mid-answer]\n")
            else:
                info.write(chunk)
                info.flush()
        info.write("\n")
        assert stream.result is not None
        return stream.result
    try:
        return router.generate(args.tier, task, inputs, provider=args.provider, parent_id=parent_id)
    except AllProvidersFailed as e:
        return e.result


def _run_full(engine, args: argparse.Namespace, inputs: Inputs, info: TextIO) -> int:  # noqa: ANN001
    """The core's story flow: with ``--stream`` each part's heading, then its text as it arrives, then its trace."""
    story = None
    for event in stream_story(engine.router, args.tier, inputs, provider=args.provider):
        if isinstance(event, PartStarted) and args.stream:
            info.write(f"=== {event.task} ===\n")
        elif isinstance(event, PartText) and args.stream:
            info.write(event.text)
            info.flush()
        elif isinstance(event, PartTruncated) and args.stream:
            info.write(f"\n[{event.sentence}]\n")
        elif isinstance(event, PartFinished):
            if args.stream:
                info.write("\n")
            if not args.json:
                if not args.stream:
                    sys.stdout.write(f"=== {event.task} ===\n")
                print_trace(event.result, sys.stdout, text_shown=args.stream)
        elif isinstance(event, StoryFinished):
            story = event.result
    assert story is not None
    for part in story.parts:
        _raise_if_rejected(part)
    if args.json:
        emit_json(story.as_dict())
        args._json_written = True
    else:
        sys.stdout.write(f"=== total ===\ncost {money(story.cost_usd)}; latency {story.latency_ms:.0f} ms; "
                         f"{story.input_tokens} in / {story.output_tokens} out tokens; parent {story.parent_id}\n")
    if not story.ok:
        failed = next((p for p in story.parts if not p.ok), story.idea)
        raise AllProvidersFailed(story.error or "every provider failed", attempts=failed.attempts)
    return 0


def _prompt(args: argparse.Namespace) -> str:
    if args.prompt_file is None:
        return args.prompt
    try:
        if args.prompt_file == "-":
            return read_prompt(sys.stdin.buffer, "standard input")
        with open(args.prompt_file, "rb") as f:
            return read_prompt(f, args.prompt_file)
    except OSError as e:
        raise InputError(f"cannot read {args.prompt_file}: {e.strerror}", field="prompt-file") from None


def _raise_if_rejected(result: GenerationResult) -> None:
    """A streamed request stopped by a hard budget ends like a whole one: ``BudgetExceeded``, exit 4."""
    if result.status == "rejected":
        raise BudgetExceeded(result.error or "a hard budget is spent", scope=result.tier)


def print_trace(result: GenerationResult, out: TextIO, *, text_shown: bool = False) -> None:
    if result.text and not text_shown:
        out.write(result.text.rstrip() + "\n")
    out.write("\n")
    served = f"{result.provider}:{result.model}" if result.provider else "nobody"
    sim = " (simulated)" if result.simulated else ""
    out.write(f"status {result.status}; served by {served}{sim}; cost {money(result.cost_usd)}; "
              f"latency {result.latency_ms:.0f} ms; request {result.request_id}\n")
    if result.pinned_provider:
        out.write(f"  pinned to provider {result.pinned_provider}\n")
    for skip in result.skipped:
        out.write(f"  skipped {skip.provider}:{skip.model}: {skip.reason}\n")
    for a in result.attempts:
        detail = "ok" if a.ok else f"{a.status}: {a.plain_error}" + (f" (HTTP {a.http_status})" if a.http_status else "")
        again = f" ({retry_words(a.retry, a.wait_ms)})" if a.retry else ""
        out.write(f"  attempt {a.n} {a.provider}:{a.model}{again}: {detail}; {a.latency_ms:.0f} ms; "
                  f"{a.usage.input_tokens} in / {a.usage.output_tokens} out; {money(a.cost_usd)}\n")
    if result.error and result.status != "ok":
        out.write(f"  {result.error}\n")


def run_test(args: argparse.Namespace) -> int:
    """Probe one provider with the first model it has for the task, logged with source=test."""
    engine = open_engine(args)
    try:
        policy = engine.policy
        if args.provider not in policy.providers:
            raise InputError(f"--provider: unknown provider '{args.provider}' "
                             f"(providers: {', '.join(policy.providers)})", field="provider")
        if args.task not in policy.tasks:
            raise InputError(f"--task: unknown task '{args.task}' (tasks: {', '.join(policy.tasks)})", field="task")
        result = engine.router.probe(args.provider, args.task)
        if args.json:
            emit_json(result.as_dict())
            args._json_written = True
        else:
            print_trace(result, sys.stdout)
        return 0 if result.ok else EXIT_ALL_FAILED
    finally:
        engine.close()
