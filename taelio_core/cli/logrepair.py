"""``taelio log repair``: move a damaged call log aside and start a new one (``calllog/repair.py``)."""
from __future__ import annotations

import argparse
import sys

from taelio_core.cli import add_json_flag, emit_json


def register(subparsers: argparse._SubParsersAction) -> None:
    from taelio_core.cli.logcopy import add_copy_parser, run_copy
    p = subparsers.add_parser("log", help="the call log: repair a damaged DuckDB file, copy a history across")
    sub = p.add_subparsers(dest="log_command", metavar="ACTION", required=True)
    r = sub.add_parser("repair", help="move a log that fails the open check aside, start a new one, replay journals")
    add_json_flag(r)
    r.set_defaults(func=run_repair)
    c = add_copy_parser(sub)
    add_json_flag(c)
    c.set_defaults(func=run_copy)


def run_repair(args: argparse.Namespace) -> int:
    from taelio_core.calllog.repair import repair_log
    from taelio_core.config.settings import database_path, load_settings
    settings = load_settings()
    path = database_path(args.db, source="--db") if args.db else settings.database_path
    done = repair_log(path, store_text=settings.store_text)
    if args.json:
        emit_json(done.as_dict())
    else:
        sys.stdout.write(done.sentence() + "\n")
    return 0
