"""Showing numbers and untrusted text.

One format each, everywhere in the dashboard: money (``taelio_core.formatting``),
percentages with one decimal and a space (``92.3 %``) and latency in whole
milliseconds (``1483 ms``), also in ``taelio_core.formatting`` (the tables'
``PCT_FORMAT``/``MS_FORMAT`` columns print them the same way); column names in
lower case but for acronyms (``TTFT p50``).

LLM output (and anything a user typed that is echoed back) is untrusted. It
is rendered through Markdown with every Markdown, HTML and Streamlit
directive character backslash-escaped, so it shows exactly as written: no
raw HTML, no links turned into images that a browser would fetch, no
colours or LaTeX. Escaping each character on its own means streamed chunks
stay safe when the pieces are joined.
"""
from __future__ import annotations

import re

from taelio_core.formatting import MS_FORMAT, PCT_FORMAT, milliseconds, money, percent  # one format, UI and CLI

__all__ = ["MS_FORMAT", "PCT_FORMAT", "code_span", "cost_text", "escape_markdown", "fmt_ms", "fmt_pct", "fmt_tokens", "money"]

# Every ASCII punctuation character CommonMark lets one escape, plus Streamlit's own ($ : ~ |).
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=\"'^%@/])")


def escape_markdown(text: str) -> str:
    """``text`` as literal Markdown: every special character escaped, line breaks kept."""
    escaped = _SPECIAL.sub(r"\\\1", text)
    # Markdown joins single newlines into one paragraph; keep the writer's line breaks.
    return escaped.replace("\r\n", "\n").replace("\n", "  \n")


def code_span(text: str) -> str:
    """``text`` as inline code, shown exactly as written: no backslashes, whatever backticks it holds."""
    one_line = " ".join(text.split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", one_line)), default=0) + 1)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    return f"{fence}{pad}{one_line}{pad}{fence}"


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


fmt_ms = milliseconds


fmt_pct = percent


def fmt_tokens(value: int | float | None) -> str:
    if value is None or value != value:
        return "–"
    v = float(value)
    if v >= 1_000_000:
        return f"{v / 1_000_000:.2f} M"
    if v >= 10_000:
        return f"{v / 1000:.1f} k"
    return f"{int(v):,}"
