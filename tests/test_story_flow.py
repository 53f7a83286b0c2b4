"""The idea → story flow (``taelio_core.routing.story_flow``), the one the Generate page, the CLI and the API use."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from taelio_core.errors import InputError, ProviderUnavailable
from taelio_core.providers.function import FunctionProvider
from taelio_core.routing.generation import StreamEnd, TextDelta, Usage
from taelio_core.routing.router import Router
from taelio_core.routing.story_flow import (
    PartFinished,
    PartStarted,
    PartText,
    PartTruncated,
    StoryFinished,
    astream_story,
    flow_tasks,
    run_story,
    stream_story,
)
from taelio_core.routing.inputs import Inputs
from tests.policies import build_policy
from tests.test_router import INPUTS, POLICY, Sink, answer, fail, make_router


def events_of(router: Router, tier: str = "pro", inputs: Inputs = INPUTS) -> list:
    async def go() -> list:
        return [e async for e in astream_story(router, tier, inputs)]
    return asyncio.run(go())


def test_both_parts_stream_in_order_under_one_parent_id_and_the_idea_feeds_the_story() -> None:
    router, providers, sink = make_router()
    events = events_of(router)
    kinds = [type(e).__name__ for e in events]
    # heading, text, finish for the idea; the same for the story; the total last
    assert kinds[0] == "PartStarted" and kinds[-1] == "StoryFinished"
    starts = [i for i, e in enumerate(events) if isinstance(e, PartStarted)]
    ends = [i for i, e in enumerate(events) if isinstance(e, PartFinished)]
    assert [events[i].task for i in starts] == ["idea", "story"] and starts[0] < ends[0] < starts[1] < ends[1]
    idea_text = "".join(e.text for e in events[starts[0]:ends[0]] if isinstance(e, PartText))
    story = events[-1].result
    assert idea_text == story.idea.text == "An answer. (gpt-4)"       # pro/idea starts with openai:gpt-4
    assert story.idea.parent_id == story.story.parent_id == story.parent_id
    _model, request = providers["anthropic"].calls[-1]                # pro/story starts with anthropic
    assert story.idea.text in request.user
    assert [r.request_id for r in sink.results] == [story.idea.request_id, story.story.request_id]
    assert story.ok and story.status == "ok" and story.error is None


def test_the_total_is_the_sum_of_both_parts() -> None:
    router, _, _ = make_router()
    story = asyncio.run(run_story(router, "pro", INPUTS))
    assert story.cost_usd == story.idea.cost_usd + story.story.cost_usd and story.cost_usd > Decimal(0)
    assert story.input_tokens == story.idea.usage.input_tokens + story.story.usage.input_tokens == 200
    assert story.output_tokens == 100
    assert story.latency_ms >= story.idea.latency_ms + story.story.latency_ms
    total = story.as_dict()["total"]
    assert total == {"cost_usd": float(story.cost_usd), "latency_ms": round(story.latency_ms, 2),
                     "input_tokens": 200, "output_tokens": 100}


def test_a_failed_idea_writes_no_story_and_says_so() -> None:
    down = fail(ProviderUnavailable("down", http_status=503))
    router, providers, sink = make_router(gemini=down, openai=down, anthropic=down)
    story = asyncio.run(run_story(router, "pro", INPUTS))
    assert story.story is None and story.status == "failed" and not story.ok
    assert story.error.startswith("No story was written because the idea failed")
    assert len(sink.results) == 1 and sink.results[0].task == "idea"


def test_the_task_names_come_from_the_policy_task_that_needs_another() -> None:
    policy = build_policy(providers={"a": "simulated"}, routes={"pro": {"premise": ["a:m"], "tale": ["a:m"]}},
                          tasks={"tale": {"user": "Tale on {premise}", "needs": "premise"},
                                 "premise": {"user": "Premise: {prompt}"}})
    assert flow_tasks(policy) == ("premise", "tale")
    provider = FunctionProvider("a", answer("Seed"))
    sink = Sink()
    story = asyncio.run(run_story(Router(policy, {"a": provider}, sink=sink), "pro", INPUTS))
    assert (story.idea.task, story.story.task) == ("premise", "tale")
    assert provider.calls[-1][1].user == "Tale on Seed (m)"


def test_a_policy_without_a_task_that_needs_another_has_no_flow() -> None:
    policy = build_policy(providers={"a": "simulated"}, routes={"pro": {"idea": ["a:m"]}})
    router = Router(policy, {"a": FunctionProvider("a", answer())})
    assert flow_tasks(policy) is None
    with pytest.raises(InputError, match="no task that builds on another"):
        asyncio.run(run_story(router, "pro", INPUTS))


def test_a_provider_that_stops_mid_answer_is_announced_and_the_next_one_goes_on() -> None:
    end = StreamEnd(usage=Usage(input_tokens=10, output_tokens=3), finish_reason="stop")
    scripts = {"openai": [TextDelta(text="Half"), ProviderUnavailable("reset", http_status=None)],
               "anthropic": [TextDelta(text="Whole"), end], "gemini": [TextDelta(text="G"), end]}
    providers = {n: FunctionProvider(n, answer(), stream_fn=(lambda evs: lambda m, r: evs)(evs))
                 for n, evs in scripts.items()}
    events = events_of(Router(POLICY, providers))
    notice = next(e for e in events if isinstance(e, PartTruncated))
    assert (notice.task, notice.provider) == ("idea", "openai") and "stopped mid-answer" in notice.sentence
    story = events[-1].result
    assert story.idea.text == "Whole" and story.idea.ok


def test_the_blocking_twin_gives_the_same_events_from_a_thread() -> None:
    router, _, _ = make_router()
    events = list(stream_story(router, "free", INPUTS))
    assert isinstance(events[-1], StoryFinished) and events[-1].result.ok
    assert sum(isinstance(e, PartFinished) for e in events) == 2
