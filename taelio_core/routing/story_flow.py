"""The seed's full-story-orchestrated flow: an idea, then a story built on it, streamed, under one parent id.

It exists once, here. The Generate page, ``taelio generate --task full`` and
the HTTP API's ``/multi-agent/full-story-orchestrated`` all iterate the same
events, so they agree on which tasks run, how the parts are linked and what
the combined total is.

The two tasks come from the policy: the second is the task whose ``needs``
names the first (``story`` needs ``idea`` in the built-in policies). Each
part is routed on its own, by ``Router.astream``, through its tier's chain;
the second part gets the first one's text as its ``{idea}``. When the first
part does not answer, the second is not attempted.

Events, in order: ``PartStarted``, then ``PartText`` chunks (and a
``PartTruncated`` notice when a provider stopped mid-answer and the next one
took over), then ``PartFinished`` with that part's ``GenerationResult``;
the same for the second part; and last ``StoryFinished`` with the
``StoryResult`` (both parts and their combined cost, latency and tokens).
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from decimal import Decimal

from taelio_core.config.policy import RoutingPolicy
from taelio_core.errors import InputError
from taelio_core.routing.chain_walk import Truncated
from taelio_core.routing.context import new_id
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Router
from taelio_core.routing.runtime import background_loop
from taelio_core.routing.streams import GenerationStream
from taelio_core.routing.trace import GenerationResult

__all__ = ["FULL", "PartFinished", "PartStarted", "PartText", "PartTruncated", "StoryEvent", "StoryFinished",
           "StoryResult", "astream_story", "flow_tasks", "run_story", "stream_story"]

FULL = "full"  # the name the CLI and the Generate page give this flow beside the policy's own tasks


def flow_tasks(policy: RoutingPolicy) -> tuple[str, str] | None:
    """(first task, second task): the first task the policy lists whose ``needs`` names another, and that one."""
    for name, task in policy.model.tasks.items():
        if task.needs:
            return task.needs, name
    return None


@dataclass(frozen=True, kw_only=True)
class PartStarted:
    task: str
    label: str
    request_id: str   # the id this part's request is logged under
    parent_id: str    # shared by both parts
    stream: GenerationStream | None = field(default=None, compare=False, repr=False)  # its result once it ends


@dataclass(frozen=True, kw_only=True)
class PartText:
    task: str
    text: str


@dataclass(frozen=True, kw_only=True)
class PartTruncated:
    """A provider stopped mid-answer after some text was shown; the next entry of the chain goes on."""

    task: str
    provider: str
    model: str
    reason: str

    @property
    def sentence(self) -> str:
        return f"{self.provider}:{self.model} stopped mid-answer ({self.reason}); trying the next provider"


@dataclass(frozen=True, kw_only=True)
class PartFinished:
    task: str
    result: GenerationResult


@dataclass(frozen=True, kw_only=True)
class StoryResult:
    """Both parts under one parent id, and their combined total.

    ``story`` is None when the idea failed (nothing was attempted). ``latency_ms`` is the whole flow's wall
    time; ``cost_usd`` is None when some attempt with tokens could not be priced.
    """

    parent_id: str
    idea: GenerationResult
    story: GenerationResult | None
    latency_ms: float
    error: str | None = None

    @property
    def parts(self) -> tuple[GenerationResult, ...]:
        return (self.idea,) if self.story is None else (self.idea, self.story)

    @property
    def ok(self) -> bool:
        return self.story is not None and self.idea.ok and self.story.ok

    @property
    def status(self) -> str:
        """ok, or the status of the part that did not answer (failed, truncated, rejected)."""
        for part in self.parts:
            if not part.ok:
                return part.status
        return "ok" if self.story is not None else "failed"

    @property
    def cost_usd(self) -> Decimal | None:
        costs = [part.cost_usd for part in self.parts]
        return None if any(c is None for c in costs) else sum(costs, Decimal(0))  # type: ignore[arg-type]

    @property
    def input_tokens(self) -> int:
        return sum(part.usage.input_tokens for part in self.parts)

    @property
    def output_tokens(self) -> int:
        return sum(part.usage.output_tokens for part in self.parts)

    def total_dict(self) -> dict[str, object]:
        cost = self.cost_usd
        return {"cost_usd": None if cost is None else float(cost), "latency_ms": round(self.latency_ms, 2),
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens}

    def as_dict(self) -> dict[str, object]:
        return {"parent_id": self.parent_id, "status": self.status, "error": self.error,
                "idea": self.idea.as_dict(), "story": None if self.story is None else self.story.as_dict(),
                "total": self.total_dict()}


@dataclass(frozen=True, kw_only=True)
class StoryFinished:
    result: StoryResult


StoryEvent = PartStarted | PartText | PartTruncated | PartFinished | StoryFinished


async def astream_story(router: Router, tier: str, inputs: Inputs, *, provider: str | None = None,
                        source: str | None = None, user_id: str | None = None) -> AsyncIterator[StoryEvent]:
    """The flow's events as they happen (see the module docstring).

    Raises ``InputError`` before anything runs when the policy has no such pair of tasks, or the tier, the
    provider or the inputs are wrong. A caller that stops iterating (or is cancelled) ends the part in flight
    as ``cancelled``: the chain walk concludes it with its attempts and it is logged (its
    ``PartStarted.stream.result``); the next part is not started.
    """
    tasks = flow_tasks(router.policy)
    if tasks is None:
        raise InputError("the policy has no task that builds on another (a task with 'needs'), "
                         "so there is no full flow", field="task")
    parent_id = new_id()
    t0 = router.clock.monotonic()
    results: list[GenerationResult] = []
    part_inputs = inputs
    for task in tasks:
        stream = router.astream(tier, task, part_inputs, provider=provider, parent_id=parent_id, source=source,
                                user_id=user_id, continue_on_truncation=True)
        yield PartStarted(task=task, label=router.policy.task(task).label or task, request_id=stream.request_id,
                          parent_id=parent_id, stream=stream)
        async with aclosing(aiter(stream)) as items:  # type: ignore[type-var]
            async for item in items:
                if isinstance(item, Truncated):
                    yield PartTruncated(task=task, provider=item.provider, model=item.model, reason=item.reason)
                else:
                    yield PartText(task=task, text=item)
        result = stream.result
        assert result is not None  # the router sets it for every outcome of a finished stream
        results.append(result)
        yield PartFinished(task=task, result=result)
        if not result.ok:
            break
        part_inputs = replace(inputs, idea=result.text)
    idea, story = results[0], (results[1] if len(results) > 1 else None)
    error = None
    if story is None:
        error = f"No {tasks[1]} was written because the {tasks[0]} failed: {idea.error or idea.status}."
    elif not story.ok:
        error = f"The {tasks[0]} was written, but no {tasks[1]}: {story.error or story.status}."
    yield StoryFinished(result=StoryResult(parent_id=parent_id, idea=idea, story=story, error=error,
                                           latency_ms=(router.clock.monotonic() - t0) * 1000.0))


def stream_story(router: Router, tier: str, inputs: Inputs, **kw: object) -> Iterator[StoryEvent]:
    """The same events for a plain thread (the Generate page, the CLI), run on the shared background loop."""
    return background_loop().iterate(astream_story(router, tier, inputs, **kw))  # type: ignore[arg-type]


async def run_story(router: Router, tier: str, inputs: Inputs, **kw: object) -> StoryResult:
    """The flow's result without its text chunks (the JSON answer of the HTTP API)."""
    async for event in astream_story(router, tier, inputs, **kw):  # type: ignore[arg-type]
        if isinstance(event, StoryFinished):
            return event.result
    raise AssertionError("the flow always ends with StoryFinished")
