"""Checks on what a user typed, before anything is sent to a provider.

Each problem is one ``InputError`` naming the field. The limits are
documented in the README: a prompt, genre or tone may not be empty where
required, must be valid Unicode without control characters (newlines and
tabs are fine), and the prompt is at most ``MAX_PROMPT_CHARS`` characters.
"""
from __future__ import annotations

import codecs
import re
from typing import BinaryIO
from functools import lru_cache
from dataclasses import dataclass, replace

from taelio_core.errors import InputError

__all__ = ["MAX_FIELD_CHARS", "MAX_PROMPT_CHARS", "Inputs", "check_inputs", "check_text", "read_prompt"]

MAX_PROMPT_CHARS = 32_000   # ~8k tokens: enough for any premise, far below every model's context
MAX_FIELD_CHARS = 200       # genre, tone
MAX_IDEA_CHARS = 64_000
# Unicode's Cc category is exactly U+0000-U+001F and U+007F-U+009F; newline, tab and CR are allowed.
# One regex search runs in C: the per-character loop it replaced cost ~3 ms on a 32k-character prompt.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True, kw_only=True)
class Inputs:
    """What the user typed. ``idea`` feeds tasks that build on another (story)."""

    prompt: str
    genre: str = ""
    tone: str = ""
    idea: str | None = None

    def variables(self, task_needs: str | None = None) -> dict[str, str]:
        out = {"prompt": self.prompt, "genre": self.genre or "any", "tone": self.tone or "any"}
        if task_needs:
            out[task_needs] = self.idea or self.prompt
        return out


def read_prompt(stream: BinaryIO, name: str, *, limit: int = MAX_PROMPT_CHARS) -> str:
    """Read UTF-8 text from ``stream``, at most ``limit`` + 1 characters: ``/dev/zero`` is refused, not read forever.

    ``InputError`` (field ``prompt-file``) when the text is longer than ``limit`` or not UTF-8.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    parts: list[str] = []
    count, offset = 0, 0
    while count <= limit:
        chunk = stream.read(min(65_536, (limit + 1 - count) * 4 + 4))
        held = len(decoder.getstate()[0])      # bytes of a character the last chunk cut in two
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as e:
            raise InputError(f"{name} is not valid UTF-8 (byte {offset - held + e.start + 1})",
                             field="prompt-file") from None
        offset += len(chunk)
        parts.append(text)
        count += len(text)
        if not chunk:
            break
    if count > limit:
        raise InputError(f"{name} holds more than {limit:,} characters (the prompt's limit)", field="prompt-file")
    return "".join(parts)


def check_text(value: str, field: str, *, limit: int, required: bool) -> str:
    if not isinstance(value, str):
        raise InputError(f"{field} must be text", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{field} contains invalid Unicode (an unpaired surrogate)", field=field) from None
    bad = _CONTROL.search(value)
    if bad is not None:
        raise InputError(f"{field} contains a control character (U+{ord(bad.group()):04X}) at position "
                         f"{bad.start() + 1}", field=field)
    value = value.strip()
    if required and not value:
        raise InputError(f"{field} is empty", field=field)
    if len(value) > limit:
        raise InputError(f"{field} is {len(value):,} characters; the limit is {limit:,}", field=field)
    return value


def check_inputs(inputs: Inputs) -> Inputs:
    """``inputs`` checked and stripped; the same object when nothing needed stripping.

    Cached: the same inputs come back often (a user retrying, an experiment's
    dataset, the sandbox's synthetic request); a bad one raises every time.
    """
    try:
        return _checked(inputs)
    except TypeError:  # an unhashable field (not text): the checks below name it
        return _check(inputs)


@lru_cache(maxsize=256)
def _checked(inputs: Inputs) -> Inputs:
    return _check(inputs)


def _check(inputs: Inputs) -> Inputs:
    prompt = check_text(inputs.prompt, "prompt", limit=MAX_PROMPT_CHARS, required=True)
    genre = check_text(inputs.genre, "genre", limit=MAX_FIELD_CHARS, required=False)
    tone = check_text(inputs.tone, "tone", limit=MAX_FIELD_CHARS, required=False)
    idea = None if inputs.idea is None else check_text(inputs.idea, "idea", limit=MAX_IDEA_CHARS, required=False)
    if prompt is inputs.prompt and genre is inputs.genre and tone is inputs.tone and idea is inputs.idea:
        return inputs
    return replace(inputs, prompt=prompt, genre=genre, tone=tone, idea=idea)
