"""Runs a generation from the Generate page: streamed, traced, logged and remembered.

One task streams into the page as it is written. The full flow (the seed's
full-story-orchestrated) is the core's ``story_flow``: this module only draws
its events (a heading before each part's text, the part's trace after it,
and the combined total at the end). Every chunk of model text is escaped
before Streamlit sees it (see ``ui.text``). The finished results go into the
session's list of recent generations, so they can be opened again.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import streamlit as st

from taelio_core.errors import TaelioError
from taelio_core.routing.router import Truncated
from taelio_core.wiring import Taelio
from taelio_core.routing.story_flow import (
    FULL,
    PartFinished,
    PartStarted,
    PartText,
    PartTruncated,
    StoryEvent,
    StoryFinished,
    StoryResult,
    flow_tasks,
    stream_story,
)
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.trace import GenerationResult
from ui.cache import bump
from ui.text import cost_text, escape_markdown, fmt_ms
from ui.trace_view import render_trace, trace_from_result

__all__ = ["FULL", "Generation", "flow_tasks", "recent", "run_generation", "show_generation"]

RECENT_KEY = "recent_generations"
RECENT_MAX = 10


@dataclass(frozen=True, kw_only=True)
class Generation:
    """What one press of Generate produced: one result, or the full flow's parts and total."""

    at: datetime
    tier: str
    task: str
    prompt: str
    parts: tuple[tuple[str, GenerationResult], ...]
    story: StoryResult | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        prompt = self.prompt if len(self.prompt) <= 40 else self.prompt[:39] + "…"
        return f"{self.at:%H:%M:%S} · {self.tier}/{self.task} · {prompt}"


def recent() -> list[Generation]:
    return st.session_state.setdefault(RECENT_KEY, [])


def _truncation_note(provider: str, model: str, reason: str) -> str:
    note = f"[{provider}:{model} stopped mid-answer ({reason}); trying the next provider]"
    return "\n\n" + escape_markdown(note) + "\n\n"


def _stream_one(engine: Taelio, tier: str, task: str, inputs: Inputs, provider: str | None) -> GenerationResult:
    stream = engine.router.stream(tier, task, inputs, provider=provider, continue_on_truncation=True)

    def chunks() -> Iterator[str]:
        for item in stream:
            if isinstance(item, Truncated):
                yield _truncation_note(item.provider, item.model, item.reason)
            else:
                yield escape_markdown(item)

    st.write_stream(chunks())
    assert stream.result is not None
    return stream.result


def _part_chunks(events: Iterator[StoryEvent], finished: list[PartFinished]) -> Iterator[str]:
    """One part's text (escaped) from the flow's events, up to its ``PartFinished``, which goes in ``finished``."""
    for event in events:
        if isinstance(event, PartText):
            yield escape_markdown(event.text)
        elif isinstance(event, PartTruncated):
            yield _truncation_note(event.provider, event.model, event.reason)
        elif isinstance(event, PartFinished):
            finished.append(event)
            return


def _stream_full(engine: Taelio, tier: str, inputs: Inputs, provider: str | None,
                 parts: list[tuple[str, GenerationResult]]) -> StoryResult:
    events = stream_story(engine.router, tier, inputs, provider=provider)
    for event in events:
        if isinstance(event, PartStarted):
            st.markdown(f"#### {escape_markdown(event.label)}")
            finished: list[PartFinished] = []
            st.write_stream(_part_chunks(events, finished))
            result = finished[0].result
            parts.append((event.label, result))
            render_trace(trace_from_result(result), title=f"Routing trace: {escape_markdown(event.task)}")
        elif isinstance(event, StoryFinished):
            return event.result
    raise AssertionError("the story flow always ends with StoryFinished")


def render_total(story: StoryResult) -> None:
    """The full flow's combined total: cost, wall time and tokens of both parts."""
    st.markdown("##### Total for the full flow")
    tokens = story.input_tokens + story.output_tokens
    c1, c2, c3 = st.columns(3)
    c1.metric("Cost", cost_text(story.cost_usd, status=story.status, tokens=tokens))
    c2.metric("Latency", fmt_ms(story.latency_ms))
    c3.metric("Tokens in / out", f"{story.input_tokens:,} / {story.output_tokens:,}")
    st.caption(f"{len(story.parts)} request(s) under parent id `{story.parent_id}`.")


def run_generation(engine: Taelio, *, tier: str, task: str, inputs: Inputs, provider: str | None) -> Generation:
    """Stream the answer(s) into the page, then show each trace; never raises a ``TaelioError``."""
    parts: list[tuple[str, GenerationResult]] = []
    story = None
    error = None
    try:
        if task == FULL:
            story = _stream_full(engine, tier, inputs, provider, parts)
            render_total(story)
            error = story.error
        else:
            result = _stream_one(engine, tier, task, inputs, provider)
            parts.append((engine.policy.task(task).label or task, result))
            render_trace(trace_from_result(result))
    except TaelioError as e:
        error = str(e)
    if error:
        st.error(escape_markdown(error), icon=":material/error:")
    if parts:
        bump(engine)
    generation = Generation(at=datetime.now(UTC), tier=tier, task=task, prompt=inputs.prompt, parts=tuple(parts),
                            story=story, error=error)
    if parts:
        history = recent()
        history.insert(0, generation)
        del history[RECENT_MAX:]
    return generation


def show_generation(generation: Generation) -> None:
    """Re-open a finished generation: its text (escaped), its trace and, for the full flow, the total."""
    for title, result in generation.parts:
        st.markdown(f"#### {escape_markdown(title)}")
        if result.text:
            st.markdown(escape_markdown(result.text))
        render_trace(trace_from_result(result), title=f"Routing trace: {escape_markdown(result.task)}")
    if generation.story is not None:
        render_total(generation.story)
    if generation.error:
        st.error(escape_markdown(generation.error), icon=":material/error:")
