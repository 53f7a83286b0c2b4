"""The values that cross the boundary between the router and a provider.

A provider receives a ``ChatRequest`` (already rendered from the task's
template) and returns a ``Completion``, or streams ``TextDelta`` events that
end with one ``StreamEnd``. Token counts always come from the provider's own
response; nothing here estimates them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ChatRequest",
    "Completion",
    "GenerationSettings",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "Usage",
]


@dataclass(frozen=True, kw_only=True)
class GenerationSettings:
    max_tokens: int = 1024
    temperature: float = 0.8
    timeout_s: float = 30.0


@dataclass(frozen=True, kw_only=True)
class ChatRequest:
    system: str
    user: str
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    # Set by the router so simulated providers can write text from the inputs.
    task: str = ""
    variables: tuple[tuple[str, str], ...] = ()

    def variable(self, name: str, default: str = "") -> str:
        return dict(self.variables).get(name, default)


@dataclass(frozen=True, kw_only=True)
class Usage:
    """Tokens as the provider reported them. ``input_tokens`` includes ``cached_tokens``."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(input_tokens=self.input_tokens + other.input_tokens,
                     output_tokens=self.output_tokens + other.output_tokens,
                     cached_tokens=self.cached_tokens + other.cached_tokens)


@dataclass(frozen=True, kw_only=True)
class Completion:
    text: str
    usage: Usage
    finish_reason: str
    response_model: str = ""


@dataclass(frozen=True, kw_only=True)
class TextDelta:
    text: str


@dataclass(frozen=True, kw_only=True)
class StreamEnd:
    """The last event of every complete stream. A stream without it was cut."""

    usage: Usage
    finish_reason: str
    response_model: str = ""


StreamEvent = TextDelta | StreamEnd
