"""How money reads everywhere Taelio shows it: the dashboard, the CLI and exported notes.

One rule, so a budget card, a headline and a table never disagree on the same
amount: a dollar or more is shown in cents with thousands separators
(``$1,234.50``); less than a dollar keeps three significant digits
(``$0.879``, ``$0.00703``), because per-request costs are fractions of a cent
and rounding them to cents would show ``$0.00``. A missing price is never
shown as ``$0``: the caller names what to say instead.
"""
from __future__ import annotations

import math
from decimal import Decimal

__all__ = ["money"]


def money(value: Decimal | float | None, *, unpriced: str = "unpriced") -> str:
    """``value`` in US dollars; ``unpriced`` when there is no value (``None`` or NaN)."""
    if value is None or (isinstance(value, float) and value != value):
        return unpriced
    v = float(value)
    sign = "-" if v < 0 else ""
    v = abs(v)
    if v == 0:
        return "$0.00"
    if v >= 0.9995:                    # would round to $1.00 or more
        return f"{sign}${v:,.2f}"
    digits = 2 - math.floor(math.log10(v))          # three significant digits
    text = f"{v:.{digits}f}".rstrip("0")
    if len(text.partition(".")[2]) < 2:               # keep cents: $0.50, not $0.5
        text = f"{v:.2f}"
    return f"{sign}${text}"
