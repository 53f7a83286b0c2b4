"""Shared pieces of CLI commands: opening the engine, small formatting."""
from __future__ import annotations

import argparse
from decimal import Decimal

from taelio_core.engine import Taelio

__all__ = ["money", "open_engine"]


def open_engine(args: argparse.Namespace, *, log: bool = True) -> Taelio:
    return Taelio.open(policy=args.policy, database=args.db, log=log)


def money(value: Decimal | float | None) -> str:
    if value is None:
        return "unpriced"
    value = float(value)
    return f"${value:.6f}" if value < 0.01 else f"${value:,.4f}"
