"""Keeping credentials out of every text Taelio shows or stores.

Why more than an exact match: providers echo a key back in their error bodies,
and not always verbatim. Seen: lowercased, split by a space, truncated to a
prefix. So a registered secret is found case-insensitively, and so is any run
of ``MIN_RUN`` (8) or more of its characters: "sk-proj-plantedkey01 23456789"
loses both halves. Runs shorter than that stay (they cannot identify a key,
and matching them would blank ordinary words).

Base URLs may carry credentials too (``http://admin:pw@host/v1?key=...``):
``safe_url`` is the only form of a URL that is shown anywhere (CLI, UI, logs,
errors, the call log), and ``register_url_secrets`` registers a URL's password
and query values so an SDK message that quotes the raw URL is redacted too.

Key shapes (``sk-...``, ``AIza...``, ``key=...``, a bearer token) are removed
even when nobody registered them.
"""
from __future__ import annotations

import re
import threading
from urllib.parse import parse_qsl, urlsplit

__all__ = ["MIN_RUN", "redact", "register_secret", "register_url_secrets", "register_webhook_secrets", "safe_url"]

MIN_RUN = 8
_KEY_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"AIza[0-9A-Za-z_\-]{20,}"),
]
_NAMED_KEY = re.compile(r"(?i)(api[_-]?key|x-goog-api-key|x-api-key|authorization|bearer)"
                        r"([\"']?\s*[:=]\s*[\"']?|\s+)([A-Za-z0-9_\-\.]{8,})")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#]*@")

_lock = threading.Lock()
_exact: set[str] = set()              # secrets shorter than MIN_RUN, lowercased: matched whole
_windows: set[str] = set()            # every MIN_RUN-long window of the longer ones, lowercased


def register_secret(value: str | None) -> None:
    """Remember a key (or password) so that ``redact`` removes it, and any long run of it, wherever it appears."""
    if not value or len(value) < 6:
        return
    lowered = value.lower()
    with _lock:
        if len(lowered) < MIN_RUN:
            _exact.add(lowered)
        else:
            _windows.update(lowered[i:i + MIN_RUN] for i in range(len(lowered) - MIN_RUN + 1))


def register_url_secrets(url: str | None) -> None:
    """Register a URL's password and its query values (``?key=...``) as secrets."""
    if not url:
        return
    try:
        parts = urlsplit(url.strip())
        register_secret(parts.password)
        for _name, value in parse_qsl(parts.query):
            register_secret(value)
    except ValueError:
        pass


def register_webhook_secrets(url: str | None) -> None:
    """Register what makes a webhook URL a credential: its password, query values and token-like path segments.

    Never the whole URL: every 8-character run of it would be redacted everywhere, so ``https://`` (or
    ``//127.0.0.1``) in any later message would be blanked. Nor a plain path word such as Slack's
    ``services``. A segment is token-like when it holds a digit or a capital letter, or is 16 characters or
    longer (``T0001ABC``, ``B0002XYZ``, the token itself).
    """
    if not url:
        return
    register_url_secrets(url)
    try:
        path = urlsplit(url.strip()).path
    except ValueError:
        return
    for segment in path.split("/"):
        if len(segment) >= 16 or any(c.isdigit() or c.isupper() for c in segment):
            register_secret(segment)


def safe_url(url: str | None) -> str:
    """``url`` without userinfo, query string or fragment: the only form of a base URL ever shown."""
    if not url:
        return ""
    text = url.strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return _USERINFO.sub(r"\1", text).split("?", 1)[0].split("#", 1)[0]
    if not parts.scheme or not parts.netloc:
        return _USERINFO.sub(r"\1", text).split("?", 1)[0].split("#", 1)[0]
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    return f"{parts.scheme}://{netloc}{parts.path}"


def _known_spans(text: str) -> list[tuple[int, int]]:
    lowered = text.lower()
    spans: list[tuple[int, int]] = []
    with _lock:
        windows = _windows
        exact = tuple(_exact)
        if windows:
            start = end = -1
            for i in range(len(lowered) - MIN_RUN + 1):
                if lowered[i:i + MIN_RUN] in windows:
                    if i > end:
                        if end > start:
                            spans.append((start, end))
                        start = i
                    end = i + MIN_RUN
            if end > start:
                spans.append((start, end))
    for secret in exact:
        at = lowered.find(secret)
        while at >= 0:
            spans.append((at, at + len(secret)))
            at = lowered.find(secret, at + len(secret))
    return spans


def redact(text: str) -> str:
    """``text`` with every registered secret (any case, any run of 8+ of its characters) and key shape removed."""
    if not text:
        return text
    spans = _known_spans(text)
    if spans:
        spans.sort()
        out, last = [], 0
        for start, end in spans:
            if end <= last:
                continue
            out.append(text[last:max(last, start)])
            out.append("[redacted]")
            last = end
        out.append(text[last:])
        text = "".join(out)
    text = _USERINFO.sub(r"\1[redacted]@", text)
    for pattern in _KEY_PATTERNS:
        text = pattern.sub("[redacted]", text)
    return _NAMED_KEY.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)
