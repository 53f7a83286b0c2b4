"""Shared pieces of CLI commands: opening the engine, small formatting."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from taelio_core.formatting import money

if TYPE_CHECKING:
    from taelio_core.wiring import Taelio

__all__ = ["money", "open_engine"]


def open_engine(args: argparse.Namespace, *, log: bool = True) -> Taelio:
    from taelio_core.wiring import Taelio      # imported when a command runs, not when the CLI parses
    return Taelio.open(policy=args.policy, database=args.db, log=log)
