"""Shared pieces of CLI commands: opening the engine, small formatting."""
from __future__ import annotations

import argparse

from taelio_core.engine import Taelio
from taelio_core.formatting import money

__all__ = ["money", "open_engine"]


def open_engine(args: argparse.Namespace, *, log: bool = True) -> Taelio:
    return Taelio.open(policy=args.policy, database=args.db, log=log)
