"""Runs a generation from the Generate page: streamed, traced, logged and remembered.

One task streams into the page as it is written. The full flow (the seed's
full-story-orchestrated) streams the idea first, then a story built on it;
both requests share one parent id. Every chunk of model text is escaped
before Streamlit sees it (see ``ui.text``). The finished results go into the
session's list of recent generations, so they can be opened again.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import streamlit as st

from taelio_core.engine import Taelio
from taelio_core.errors import TaelioError
from taelio_core.router import Truncated
from taelio_core.trace import GenerationResult, Inputs
from ui.engine import bump
from ui.text import escape_markdown
from ui.trace_view import render_trace, trace_from_result

__all__ = ["FULL", "Generation", "full_flow_tasks", "recent", "run_generation", "show_generation"]

FULL = "full"
RECENT_KEY = "recent_generations"
RECENT_MAX = 10


@dataclass(frozen=True, kw_only=True)
class Generation:
    """What one press of Generate produced: one result, or an idea and a story."""

    at: datetime
    tier: str
    task: str
    prompt: str
    parts: tuple[tuple[str, GenerationResult], ...]
    error: str | None = None

    @property
    def label(self) -> str:
        prompt = self.prompt if len(self.prompt) <= 40 else self.prompt[:39] + "…"
        return f"{self.at:%H:%M:%S} · {self.tier}/{self.task} · {prompt}"


def full_flow_tasks(engine: Taelio) -> tuple[str, str] | None:
    """(idea task, story task) when the policy has a task that builds on another."""
    for name, task in engine.policy.model.tasks.items():
        if task.needs:
            return task.needs, name
    return None


def recent() -> list[Generation]:
    return st.session_state.setdefault(RECENT_KEY, [])


def _stream(engine: Taelio, tier: str, task: str, inputs: Inputs, provider: str | None,
            parent_id: str | None) -> GenerationResult:
    stream = engine.router.stream(tier, task, inputs, provider=provider, parent_id=parent_id,
                                  continue_on_truncation=True)

    def chunks():  # noqa: ANN202 - a generator for st.write_stream
        for item in stream:
            if isinstance(item, Truncated):
                note = f"[{item.provider}:{item.model} stopped mid-answer ({item.reason}); trying the next provider]"
                yield "\n\n" + escape_markdown(note) + "\n\n"
            else:
                yield escape_markdown(item)

    st.write_stream(chunks())
    assert stream.result is not None
    return stream.result


def run_generation(engine: Taelio, *, tier: str, task: str, inputs: Inputs, provider: str | None) -> Generation:
    """Stream the answer(s) into the page, then show each trace; never raises a ``TaelioError``."""
    parts: list[tuple[str, GenerationResult]] = []
    error = None
    try:
        if task == FULL:
            idea_task, story_task = full_flow_tasks(engine) or ("idea", "story")
            parent_id = uuid.uuid4().hex
            st.markdown("#### Idea")
            idea = _stream(engine, tier, idea_task, inputs, provider, parent_id)
            parts.append(("Idea", idea))
            render_trace(trace_from_result(idea), title="Routing trace: idea")
            if idea.ok:
                st.markdown("#### Story")
                story = _stream(engine, tier, story_task, replace(inputs, idea=idea.text), provider, parent_id)
                parts.append(("Story", story))
                render_trace(trace_from_result(story), title="Routing trace: story")
            else:
                error = "No story was written because the idea failed."
        else:
            result = _stream(engine, tier, task, inputs, provider, None)
            parts.append((engine.policy.task(task).label or task, result))
            render_trace(trace_from_result(result))
    except TaelioError as e:
        error = str(e)
    if error:
        st.error(escape_markdown(error), icon=":material/error:")
    if parts:
        bump(engine)
    generation = Generation(at=datetime.now(UTC), tier=tier, task=task, prompt=inputs.prompt, parts=tuple(parts),
                            error=error)
    if parts:
        history = recent()
        history.insert(0, generation)
        del history[RECENT_MAX:]
    return generation


def show_generation(generation: Generation) -> None:
    """Re-open a finished generation: its text (escaped) and its trace."""
    for title, result in generation.parts:
        st.markdown(f"#### {escape_markdown(title)}")
        if result.text:
            st.markdown(escape_markdown(result.text))
        render_trace(trace_from_result(result), title=f"Routing trace: {title.lower()}")
    if generation.error:
        st.error(escape_markdown(generation.error), icon=":material/error:")
