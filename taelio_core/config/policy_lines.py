"""Which line of a policy file defines a dotted key, so an error can name it."""
from __future__ import annotations

import re

__all__ = ["locate"]

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*=""")


def _split_dotted(key: str) -> tuple[str, ...]:
    parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([A-Za-z0-9_\-]+)', key)
    return tuple(a or b or c for a, b, c in parts)


def locate(text: str, loc: tuple[str, ...]) -> int | None:
    """The 1-based line where the dotted key ``loc`` is defined, or its nearest parent."""
    want = tuple(p for p in loc if not p.isdigit())
    best_line, best_len = None, 0
    first_inside: int | None = None
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _split_dotted(header.group(1))
            path = table
        else:
            key = _KEY.match(line)
            if not key:
                continue
            path = table + _split_dotted(key.group(1))
        common = 0
        for a, b in zip(path, want):
            if a != b:
                break
            common += 1
        if common == len(path) and common > best_len:
            best_line, best_len = number, common
            if common == len(want):
                return number
        if common == len(want) and first_inside is None:
            first_inside = number  # e.g. [splits.pro.idea.a] for the key splits.pro.idea
    return first_inside if first_inside is not None and best_len < len(want) else best_line
