"""How money, percentages and latency read everywhere Taelio shows them: the dashboard, the CLI, notes.

One rule, so a budget card, a headline and a table never disagree on the same
amount: a dollar or more is shown in cents with thousands separators
(``$1,234.50``); less than a dollar keeps three significant digits
(``$0.879``, ``$0.00703``), because per-request costs are fractions of a cent
and rounding them to cents would show ``$0.00``. A missing price is never
shown as ``$0``: the caller names what to say instead.

Percentages have one decimal and a space (``92.3 %``; differences of shares
in percentage points, ``+1.5 pp``); latency is whole milliseconds
(``1483 ms``). ``metric`` formats a figure by its column name, so a table of
results reads the same in the Sandbox and in ``taelio simulate``.
"""
from __future__ import annotations

import math
from decimal import Decimal

__all__ = ["MS_FORMAT", "PCT_FORMAT", "metric", "milliseconds", "money", "percent"]

MS_FORMAT = "%.0f ms"        # also the dashboard's number columns of milliseconds
PCT_FORMAT = "%.1f %%"       # also the dashboard's number columns of percentages (0-100)


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


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def percent(share: float | None) -> str:
    """A share (0.923) as ``92.3 %``; a dash when there is none."""
    return "–" if _missing(share) else PCT_FORMAT % (float(share) * 100)  # type: ignore[arg-type]


def milliseconds(value: float | None) -> str:
    """A latency as ``1483 ms``; a dash when there is none."""
    return "–" if _missing(value) else MS_FORMAT % float(value)  # type: ignore[arg-type]


def metric(name: str, value: float | None, *, signed: bool = False) -> str:
    """A figure by its column name: shares (``*_rate``, ``availability``, ``*_pct`` in 0-100, ``err_*``,
    ``share_*``), money (``*_usd``, ``cost_per_1k``), latency (``*_ms``), else a count. ``signed`` for a
    difference: ``+1.5 pp``, ``+$0.02``, ``+12 ms``, ``+3``."""
    if _missing(value):
        return "–"
    v = float(value)  # type: ignore[arg-type]
    if name in ("availability", "fallback_rate") or name.endswith(("_rate", "_pct")) or name.startswith(("err_", "share_")):
        share = v / 100 if name.endswith("_pct") else v
        return f"{share * 100:+.1f} pp" if signed else percent(share)
    if name.endswith("_usd") or name == "cost_per_1k":
        return ("+" if signed and v >= 0 else "") + money(v)
    if name.endswith("_ms"):
        return f"{v:+.0f} ms" if signed else milliseconds(v)
    return f"{v:+,.0f}" if signed else f"{v:,.0f}"
