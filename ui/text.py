"""Showing numbers and untrusted text.

One format each, everywhere in the dashboard: money (``taelio_core.formatting``),
percentages with one decimal and a space (``92.3 %``), latency in whole
milliseconds (``1483 ms``, as the tables' ``PCT_FORMAT``/``MS_FORMAT`` columns
print them too), and column names in lower case but for acronyms (``TTFT p50``).

LLM output (and anything a user typed that is echoed back) is untrusted. It
is rendered through Markdown with every Markdown, HTML and Streamlit
directive character backslash-escaped, so it shows exactly as written: no
raw HTML, no links turned into images that a browser would fetch, no
colours or LaTeX. Escaping each character on its own means streamed chunks
stay safe when the pieces are joined.
"""
from __future__ import annotations

import re

from taelio_core.formatting import money  # one money format for the UI and the CLI

__all__ = ["MS_FORMAT", "PCT_FORMAT", "cost_text", "escape_markdown", "fmt_ms", "fmt_pct", "fmt_tokens", "money"]

MS_FORMAT = "%.0f ms"        # a NumberColumn of milliseconds, as fmt_ms prints one
PCT_FORMAT = "%.1f %%"       # a NumberColumn of percentages (0-100), as fmt_pct prints a share

# Every ASCII punctuation character CommonMark lets one escape, plus Streamlit's own ($ : ~ |).
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=\"'^%@/])")


def escape_markdown(text: str) -> str:
    """``text`` as literal Markdown: every special character escaped, line breaks kept."""
    escaped = _SPECIAL.sub(r"\\\1", text)
    # Markdown joins single newlines into one paragraph; keep the writer's line breaks.
    return escaped.replace("\r\n", "\n").replace("\n", "  \n")


def cost_text(value: object, *, status: str, tokens: int) -> str:
    """A request's or attempt's cost as a cell: "–" where nothing was billed, never "$0" for a failure.

    A failed call that used no tokens costs nothing and has nothing to price; "unpriced" is kept for a
    call that used tokens the catalogue has no price for.
    """
    if value is None or (isinstance(value, float) and value != value):
        return "unpriced" if tokens else "–"
    if status != "ok" and float(value) == 0:  # type: ignore[arg-type]
        return "–"
    return money(value)  # type: ignore[arg-type]


def fmt_ms(value: float | None) -> str:
    if value is None or value != value:
        return "–"
    return MS_FORMAT % value


def fmt_pct(value: float | None) -> str:
    """A share (0.923) as a percentage: ``92.3 %``."""
    if value is None or value != value:
        return "–"
    return PCT_FORMAT % (value * 100)


def fmt_tokens(value: int | float | None) -> str:
    if value is None or value != value:
        return "–"
    v = float(value)
    if v >= 1_000_000:
        return f"{v / 1_000_000:.2f} M"
    if v >= 10_000:
        return f"{v / 1000:.1f} k"
    return f"{int(v):,}"
