"""Checks on what a user typed, before anything is sent to a provider.

Each problem is one ``InputError`` naming the field. The limits are
documented in the README: a prompt, genre or tone may not be empty where
required, must be valid Unicode without control characters (newlines and
tabs are fine), and the prompt is at most ``MAX_PROMPT_CHARS`` characters.
"""
from __future__ import annotations

import unicodedata
from dataclasses import replace

from taelio_core.errors import InputError
from taelio_core.trace import Inputs

__all__ = ["MAX_FIELD_CHARS", "MAX_PROMPT_CHARS", "check_inputs", "check_text"]

MAX_PROMPT_CHARS = 32_000   # ~8k tokens: enough for any premise, far below every model's context
MAX_FIELD_CHARS = 200       # genre, tone
MAX_IDEA_CHARS = 64_000


def check_text(value: str, field: str, *, limit: int, required: bool) -> str:
    if not isinstance(value, str):
        raise InputError(f"{field} must be text", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{field} contains invalid Unicode (an unpaired surrogate)", field=field) from None
    for i, ch in enumerate(value):
        if ch in "\n\t\r":
            continue
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise InputError(f"{field} contains a control character (U+{ord(ch):04X}) at position {i + 1}",
                             field=field)
    value = value.strip()
    if required and not value:
        raise InputError(f"{field} is empty", field=field)
    if len(value) > limit:
        raise InputError(f"{field} is {len(value):,} characters; the limit is {limit:,}", field=field)
    return value


def check_inputs(inputs: Inputs) -> Inputs:
    return replace(
        inputs,
        prompt=check_text(inputs.prompt, "prompt", limit=MAX_PROMPT_CHARS, required=True),
        genre=check_text(inputs.genre, "genre", limit=MAX_FIELD_CHARS, required=False),
        tone=check_text(inputs.tone, "tone", limit=MAX_FIELD_CHARS, required=False),
        idea=None if inputs.idea is None else check_text(inputs.idea, "idea", limit=MAX_IDEA_CHARS, required=False),
    )
