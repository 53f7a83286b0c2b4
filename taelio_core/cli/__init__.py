"""The ``taelio`` command line: a thin shell over ``taelio_core``.

Each command lives in its own module with a ``register(subparsers)`` that
adds its parser and sets ``func``. Exit codes (documented in the README):

    0  ok
    2  usage or config error (bad flag, bad policy, bad input)
    3  every provider failed
    4  a hard budget stopped the request

Every command takes ``--json``; with it, stdout carries exactly one JSON
document and anything else (streamed text, progress) goes to stderr.
Errors are one sentence on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from importlib import import_module

from taelio_core.errors import AllProvidersFailed, BudgetExceeded, ConfigError, InputError, TaelioError

__all__ = ["EXIT_ALL_FAILED", "EXIT_BUDGET", "EXIT_OK", "EXIT_USAGE", "UsageError", "main"]

EXIT_OK, EXIT_USAGE, EXIT_ALL_FAILED, EXIT_BUDGET = 0, 2, 3, 4

# Modules under taelio_core.cli that each add one or more commands.
COMMAND_MODULES = ["routes", "generate", "logdata", "health", "experiment", "simulate", "serve", "alerts",
                   "logrepair"]
# command -> (its module, its one-line help), so that ``taelio --help`` and ``taelio X`` import only what X
# needs: importing every command module (pandas, the SDKs, scipy...) cost seconds before the first line of
# help. ``tests/cli/test_startup.py`` checks this table against what the modules register.
COMMANDS: dict[str, tuple[str, str]] = {
    "routes": ("routes", "the provider chain for each tier x task, with availability"),
    "providers": ("routes", "each provider: configured or not, host, models used"),
    "generate": ("generate", "route one request and print the answer and its trace"),
    "test": ("generate", "a tiny live probe of one provider (the seed's POST /providers/test)"),
    "stats": ("logdata", "totals per provider and tier from the call log"),
    "demo-data": ("logdata", "fill the call log with realistic simulated traffic (source=demo)"),
    "health": ("health", "circuit breakers, unhealthy providers/models, and budgets"),
    "experiment": ("experiment", "A/B experiments across prompts and providers"),
    "simulate": ("simulate", "replay or synthesise traffic through policies in virtual time"),
    "serve": ("serve", "run the HTTP API (needs JWT_SECRET)"),
    "token": ("serve", "mint a JWT for the API, signed with JWT_SECRET (development, tests)"),
    "alerts": ("alerts", "budget and outage alerts to a Slack-compatible webhook"),
    "log": ("logrepair", "the call log: repair a damaged DuckDB file, copy a history across"),
}
_GLOBAL_WITH_VALUE = ("--policy", "--db")


class UsageError(Exception):
    """A command line argparse rejected: one sentence, exit code 2 (as JSON too under ``--json``)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override] - raises instead of exiting: main() says it
        where = f"taelio {self.prog.split()[-1]} --help" if " " in self.prog else "taelio --help"
        raise UsageError(f"{message} (see '{where}')")


def command_in(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first word that is not a global option or its value), if any."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _GLOBAL_WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (``command`` given) one whose other commands are named but not loaded."""
    parser = _Parser(prog="taelio", description="Route LLM generation across providers; inspect the call log.")
    parser.add_argument("--policy", help="policy name (seed, current) or TOML path; default $TAELIO_POLICY or seed")
    parser.add_argument("--db", help="call log path or duckdb:/// URL; default $DATABASE_URL or data/taelio.duckdb")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    if command is None:
        for name in COMMAND_MODULES:
            import_module(f"taelio_core.cli.{name}").register(subparsers)
        return parser
    wanted = COMMANDS[command][0] if command in COMMANDS else None
    loaded: set[str] = set()
    for name, (module, help_text) in COMMANDS.items():
        if module == wanted:
            if module not in loaded:
                import_module(f"taelio_core.cli.{module}").register(subparsers)
                loaded.add(module)
        else:
            subparsers.add_parser(name, help=help_text)
    return parser


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def emit_json(document: object) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(command_in(words) or "")      # "": no command module loaded (``taelio --help``)
        args = parser.parse_args(words)
    except UsageError as e:
        if "--json" in words:
            emit_json({"error": str(e), "error_class": "UsageError", "exit_code": EXIT_USAGE})
        sys.stderr.write(f"taelio: error: {e}\n")
        return EXIT_USAGE
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()                   # here, so a reader that went away is seen by the handler below
        return code
    except AllProvidersFailed as e:
        _error(args, e, EXIT_ALL_FAILED, extra={"attempts": [a.as_dict() for a in e.attempts]})
        return EXIT_ALL_FAILED
    except BudgetExceeded as e:
        _error(args, e, EXIT_BUDGET)
        return EXIT_BUDGET
    except InputError as e:
        if e.field and not str(e).startswith("--"):
            e = InputError(f"--{e.field}: {e}", field=e.field)
        _error(args, e, EXIT_USAGE)
        return EXIT_USAGE
    except ConfigError as e:
        _error(args, e, EXIT_USAGE)
        return EXIT_USAGE
    except TaelioError as e:
        _error(args, e, 1)
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("taelio: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (``taelio stats | head``): as for any Unix filter, that is not an error. Point
        # stdout at /dev/null so the interpreter's own flush at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # noqa: BLE001 - a bug must still read as one sentence
        if os.environ.get("TAELIO_DEBUG"):
            raise
        _error(args, TaelioError(f"internal error ({type(e).__name__}: {e}); "
                                 "rerun with TAELIO_DEBUG=1 for details"), 1)
        return 1


def _error(args: argparse.Namespace, err: TaelioError, code: int, extra: dict | None = None) -> None:
    if getattr(args, "json", False) and not getattr(args, "_json_written", False):
        emit_json({"error": str(err), "error_class": type(err).__name__, "exit_code": code, **(extra or {})})
    sys.stderr.write(f"taelio: {err}\n")
