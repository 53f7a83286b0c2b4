"""``taelio log copy --from X --to Y``: move a call log's history between DuckDB and PostgreSQL (``calllog/history_copy``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from taelio_core.cli import emit_json
from taelio_core.errors import ConfigError

__all__ = ["add_copy_parser", "run_copy"]


def add_copy_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    c = sub.add_parser("copy", help="copy a log's requests and attempts into another log (DuckDB <-> PostgreSQL); "
                                    "a second run adds nothing")
    c.add_argument("--from", dest="source", required=True, metavar="URL",
                   help="duckdb:///path.duckdb, a .duckdb path, or postgresql://user:password@host:5432/db")
    c.add_argument("--to", dest="destination", required=True, metavar="URL", help="the same forms as --from")
    c.add_argument("--batch", type=int, default=None, help="requests per transaction (default 20000)")
    return c


def _open(value: str, flag: str, *, must_exist: bool, store_text: bool) -> object:
    from taelio_core.calllog import DuckDBCallLog, PostgresCallLog
    from taelio_core.config.settings import PostgresTarget, database_target
    target = database_target(value, source=flag)
    if isinstance(target, PostgresTarget):
        return PostgresCallLog(target.url, store_text=store_text)
    path = Path(target)
    if must_exist and not path.is_file():
        raise ConfigError(f"there is no call log at {path}", source=flag)
    return DuckDBCallLog(path, store_text=store_text)


def run_copy(args: argparse.Namespace) -> int:
    from taelio_core.calllog.history_copy import BATCH, copy_history
    batch = BATCH if args.batch is None else args.batch
    if batch < 1:
        raise ConfigError(f"must be at least 1, not {batch}", source="--batch")
    source = _open(args.source, "--from", must_exist=True, store_text=True)
    try:
        destination = _open(args.destination, "--to", must_exist=False, store_text=True)
        try:
            if destination.location == source.location:       # type: ignore[attr-defined]
                raise ConfigError(f"is the same log as --from ({source.location})", source="--to")  # type: ignore[attr-defined]
            shown_from, shown_to = source.location, destination.location  # type: ignore[attr-defined]

            def say(p: object) -> None:
                sys.stderr.write(f"taelio: {p.sentence(shown_from, shown_to)}\n")  # type: ignore[attr-defined]
                sys.stderr.flush()
            done = copy_history(source, destination, batch=batch, progress=say)  # type: ignore[arg-type]
        finally:
            destination.close()  # type: ignore[attr-defined]
    finally:
        source.close()  # type: ignore[attr-defined]
    if args.json:
        emit_json({"from": shown_from, "to": shown_to, **done.as_dict()})
    else:
        sys.stdout.write(f"Copied {done.read:,} requests ({done.attempts:,} attempts) from {shown_from} to {shown_to}: "
                         f"{done.added:,} new, {done.read - done.added:,} already there.\n")
    return 0
