"""Server-sent events for the two generation endpoints (``Accept: text/event-stream``).

Events (each ``data`` is one JSON object):

- ``text``: ``{"part": task, "text": chunk}``, a piece of a part's answer;
- ``truncated``: ``{"part", "provider", "model", "reason", "message"}``, a provider stopped mid-answer and the
  next entry of the chain goes on;
- ``trace``: a part's whole ``GenerationResult`` (chain, attempts, cost, latency), when that part ends;
- ``summary``: the last event: the status and the total (for the full flow, both parts' combined total).

A client that disconnects cancels the provider call; the request is still logged, as ``cancelled``.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from taelio_core.routing.router import Truncated
from taelio_core.routing.story_flow import PartFinished, PartText, PartTruncated, StoryEvent, StoryFinished
from taelio_core.routing.streams import GenerationStream
from taelio_core.routing.trace import GenerationResult

__all__ = ["EVENT_STREAM", "MARK", "framed", "single_events", "story_events", "wants_events"]

EVENT_STREAM = "text/event-stream"
MARK = "\x00"          # the varying member of a ``framed`` document


def wants_events(accept: str | None) -> bool:
    return bool(accept) and EVENT_STREAM in accept.lower()  # type: ignore[union-attr]


def event(name: str, data: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n".encode()


def framed(prefix: str, doc: dict[str, object]) -> Callable[[str], bytes]:
    """The event ``prefix`` + ``doc`` as a function of the one string member of ``doc`` set to ``MARK``.

    A stream sends one event per text chunk, each the same document but for the text: the bytes around the
    text are encoded once per stream, and each chunk costs only its own string's encoding (the same bytes as
    encoding the whole document each time)."""
    whole = (prefix + json.dumps(doc, separators=(",", ":")) + "\n\n").encode()
    head, tail = whole.split(json.dumps(MARK).encode())     # exactly one MARK: two pieces, or this raises
    return lambda text: b"".join((head, json.dumps(text).encode(), tail))


def summary_of(result: GenerationResult) -> dict[str, object]:
    cost = result.cost_usd
    return {"request_id": result.request_id, "status": result.status, "provider": result.provider,
            "model": result.model, "error": result.error, "cost_usd": None if cost is None else float(cost),
            "latency_ms": round(result.latency_ms, 2), "input_tokens": result.usage.input_tokens,
            "output_tokens": result.usage.output_tokens}


async def single_events(stream: GenerationStream, task: str,
                        on_result: Callable[[GenerationResult], None]) -> AsyncIterator[bytes]:
    text = framed("event: text\ndata: ", {"part": task, "text": MARK})
    async for item in stream:
        if isinstance(item, Truncated):
            yield event("truncated", {"part": task, "provider": item.provider, "model": item.model,
                                      "reason": item.reason, "message": f"{item.provider}:{item.model} stopped "
                                                                        f"mid-answer; trying the next provider"})
        else:
            yield text(item)
    result = stream.result
    assert result is not None
    on_result(result)
    yield event("trace", result.as_dict())
    yield event("summary", summary_of(result))


async def story_events(events: AsyncIterator[StoryEvent],
                       on_result: Callable[[GenerationResult], None]) -> AsyncIterator[bytes]:
    texts: dict[str, Callable[[str], bytes]] = {}
    async for item in events:
        if isinstance(item, PartText):
            text = texts.get(item.task)
            if text is None:
                text = texts[item.task] = framed("event: text\ndata: ", {"part": item.task, "text": MARK})
            yield text(item.text)
        elif isinstance(item, PartTruncated):
            yield event("truncated", {"part": item.task, "provider": item.provider, "model": item.model,
                                      "reason": item.reason, "message": item.sentence})
        elif isinstance(item, PartFinished):
            on_result(item.result)
            yield event("trace", item.result.as_dict())
        elif isinstance(item, StoryFinished):
            story = item.result
            yield event("summary", {"parent_id": story.parent_id, "status": story.status, "error": story.error,
                                    "parts": [summary_of(p) for p in story.parts], "total": story.total_dict()})
