"""LLM output is untrusted: show it as text, never as HTML, and never load an image it names.

Markdown stays readable (paragraphs, lists, emphasis), but raw HTML tags
are escaped so they show as text, and image syntax ``![alt](url)`` is
defused into a plain link, so a model cannot make the browser fetch a
remote image (a tracking pixel, or a way to leak data through the URL).
"""
from __future__ import annotations

import re

__all__ = ["safe_markdown"]

_HTML = re.compile(r"[<>]")
_IMAGE = re.compile(r"!(?=\[)")


def safe_markdown(text: str) -> str:
    """Markdown for ``st.markdown`` with HTML escaped and images turned into links."""
    text = text.replace("\\", "\\\\")
    text = _HTML.sub(lambda m: "\\" + m.group(0), text)
    text = _IMAGE.sub(r"\\!", text)
    return text
