"""The seed's endpoints, exactly as the seed spells them, and ``POST /generate/{task}``.

All need ``Authorization: Bearer <JWT>``; the caller's tier comes from the
token. Both generation endpoints answer JSON, or server-sent events when
asked with ``Accept: text/event-stream`` (see ``sse``).
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from taelio_core.api.admission import ACCEPT_PARAMETER, admit, authed, documented, path_parameter, read_body
from taelio_core.api.auth import Caller
from taelio_core.api.problems import ApiProblem
from taelio_core.api.service import SOURCE, ApiService, get_service, service_of
from taelio_core.api.sse import EVENT_STREAM, single_events, story_events, wants_events
from taelio_core.config.policy import ChainEntry
from taelio_core.routing.inputs import MAX_FIELD_CHARS, MAX_IDEA_CHARS, MAX_PROMPT_CHARS
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.story_flow import PartStarted, StoryEvent, astream_story, run_story
from taelio_core.routing.streams import GenerationStream

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["router"]

router = APIRouter()
ERRORS = {401: {"description": "Missing, malformed, expired or badly signed token (problem+json)"},
          403: {"description": "Unknown tier, or an endpoint the tier may not use"},
          422: {"description": "A bad body or query"}, 429: {"description": "A per-user limit; see Retry-After"}}
GEN_ERRORS = {**ERRORS, 402: {"description": "A hard budget stopped the request"},
              502: {"description": "Every provider failed; the body lists every attempt"}}


class StoryBody(BaseModel):
    """The seed's body. The tier comes from the token: a ``tier`` field is refused."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"prompt": "A mysterious lighthouse keeper", "genre": "Mystery", "tone": "Dark and atmospheric"}]})
    prompt: str = Field(max_length=MAX_PROMPT_CHARS, description="The premise")
    genre: str = Field(default="", max_length=MAX_FIELD_CHARS)
    tone: str = Field(default="", max_length=MAX_FIELD_CHARS)


class GenerateBody(StoryBody):
    idea: str | None = Field(default=None, max_length=MAX_IDEA_CHARS,
                             description="For a task that builds on another (story): the idea (default: the prompt)")


BODIES = [StoryBody, GenerateBody]    # read by the endpoints themselves: their schemas go in the OpenAPI by hand


def _inputs(body: StoryBody) -> Inputs:
    return Inputs(prompt=body.prompt, genre=body.genre, tone=body.tone, idea=getattr(body, "idea", None))


# The generation endpoints come first: FastAPI tries routes in order, on every request.
@router.post("/multi-agent/full-story-orchestrated", tags=["generation"], responses=GEN_ERRORS,
             openapi_extra=documented(StoryBody, parameters=[ACCEPT_PARAMETER]))
async def full_story(request: Request):  # noqa: ANN201
    """The orchestrated idea → story for the caller's tier: both texts, who served each, cost, latency, trace.

    With ``Accept: text/event-stream``: ``text`` events labelled by part, ``truncated`` notices, each part's
    ``trace``, then a ``summary`` with the combined total.
    """
    service = service_of(request)
    caller = admit(service, request)
    inputs = _inputs(await read_body(request, StoryBody))
    kw = {"source": SOURCE, "user_id": service.user_id(caller)}
    if wants_events(request.headers.get("accept")):
        events = astream_story(service.router, caller.tier, inputs, **kw)
        first = await anext(events)          # raises a bad input or an unknown flow before any byte is sent
        return _event_response(_story_stream(service, caller, first, events), first)
    story = await run_story(service.router, caller.tier, inputs, **kw)
    for part in story.parts:
        service.finished(caller, part)
    doc = story.as_dict()
    headers = {"x-taelio-request-id": story.parent_id}
    failed = next((p for p in story.parts if not p.ok), None)
    if failed is not None and failed.status == "rejected":
        raise ApiProblem(402, failed.error or "A hard budget stopped the request.", extra={"result": doc})
    if failed is not None:
        raise ApiProblem(502, story.error or "Every provider failed.",
                         extra={"attempts": [a.as_dict() for a in failed.attempts], "result": doc})
    return JSONResponse(doc, headers=headers)


async def _story_stream(service: ApiService, caller: Caller, first: StoryEvent,
                        events: AsyncIterator[StoryEvent]) -> AsyncIterator[bytes]:
    """The flow's events as SSE. A client that disconnects cancels this generator: the core concludes and logs
    the part in flight as ``cancelled`` with its attempts; here it is only counted in the metrics."""
    current: PartStarted | None = None

    async def tracked() -> AsyncIterator[StoryEvent]:
        nonlocal current
        for item in (first,):
            if isinstance(item, PartStarted):
                current = item
            yield item
        async for item in events:
            if isinstance(item, PartStarted):
                current = item
            yield item

    try:
        async for chunk in story_events(tracked(), lambda result: service.finished(caller, result)):
            yield chunk
    finally:
        await events.aclose()
        stream = current.stream if current is not None else None
        if stream is not None and stream.result is not None and stream.result.status == "cancelled":
            service.finished(caller, stream.result)


@router.post("/generate/{task}", tags=["generation"], responses=GEN_ERRORS, openapi_extra=documented(
    GenerateBody, parameters=[path_parameter("task", "A task of the policy, e.g. idea"), ACCEPT_PARAMETER]))
async def generate(request: Request):  # noqa: ANN201
    """One task of the policy for the caller's tier: the answer, who served it, cost, latency and the trace."""
    service = service_of(request)
    caller = admit(service, request)
    inputs = _inputs(await read_body(request, GenerateBody))
    task: str = request.path_params["task"]
    if wants_events(request.headers.get("accept")):
        stream = service.stream(caller, task, inputs)
        return _event_response(_single_stream(service, caller, task, stream), None, request_id=stream.request_id)
    result = await service.generate(caller, task, inputs)
    return JSONResponse(result.as_dict(), headers=_served_headers(result.request_id, result.provider, result.model))


async def _single_stream(service: ApiService, caller: Caller, task: str,
                         stream: GenerationStream) -> AsyncIterator[bytes]:
    """One task as SSE. A client that disconnects cancels this generator: the core concludes and logs the
    request as ``cancelled`` with its attempts; here it is only counted in the metrics."""
    try:
        async for chunk in single_events(stream, task, lambda r: service.finished(caller, r)):
            yield chunk
    finally:
        if stream.result is not None and stream.result.status == "cancelled":
            service.finished(caller, stream.result)


@router.get("/providers/available", tags=["providers"], responses=ERRORS)
async def providers_available(service: ApiService = Depends(get_service),
                              caller: Caller = Depends(authed)) -> dict[str, object]:
    """Each provider: configured or not and why, the models the policy uses, and their breaker health."""
    engine = service.engine
    rows = []
    for name, cfg in engine.policy.providers.items():
        provider = engine.providers[name]
        availability = provider.availability()
        models = engine.policy.models_of(name)
        health = {m: (service.router.breakers.peek(ChainEntry(provider=name, model=m)) or "ok") for m in models}
        rows.append({"provider": name, "kind": cfg.kind, "configured": availability.available,
                     "reason": "" if availability.available else availability.reason,
                     "simulated": provider.simulated, "models": models, "health": health})
    return {"mode": engine.mode, "policy": engine.policy.name, "providers": rows}


@router.get("/providers/selection-info", tags=["providers"], responses=ERRORS)
async def selection_info(task: str = Query(description="A task of the policy, e.g. idea"),
                         tier: str | None = Query(default=None, description="Your own tier (admins: any tier)"),
                         service: ApiService = Depends(get_service),
                         caller: Caller = Depends(authed)) -> dict[str, object]:
    """The chain for tier × task, each entry available or not and why (the same data as ``taelio routes``)."""
    tier = tier or caller.tier
    if tier != caller.tier and not caller.admin:
        raise ApiProblem(403, f"A {caller.tier} token may ask about its own tier only, not '{tier}'.")
    chain = service.router.route(tier, task)
    return {"tier": tier, "task": task, "policy": service.engine.policy.name, "chain": [e.as_dict() for e in chain]}


@router.post("/providers/test", tags=["providers"], responses=ERRORS)
async def providers_test(provider: str = Query(description="A provider of the policy, e.g. openai"),
                         task: str = Query(default="idea"), service: ApiService = Depends(get_service),
                         caller: Caller = Depends(authed)) -> dict[str, object]:
    """A tiny live probe of one provider, logged with ``source=test``. Admin only: it spends money."""
    if not caller.admin:
        raise ApiProblem(403, "Testing a provider spends money, so only an admin token may do it.")
    result = await service.router.aprobe(provider, task)
    service.metrics.observe_result(result)
    return result.as_dict()


@router.get("/providers/health", tags=["providers"], responses=ERRORS)
async def providers_health(service: ApiService = Depends(get_service),
                           caller: Caller = Depends(authed)) -> dict[str, object]:
    """Breakers, their history and budgets (the same data as ``taelio health``), with latency and success."""
    report = await asyncio.to_thread(service.engine.health, history_limit=20)
    doc = report.as_dict()
    doc["providers"] = await asyncio.to_thread(_provider_stats, service)
    return doc


def _provider_stats(service: ApiService) -> list[dict[str, object]]:
    """Attempts, success and latency per provider over the last hour, in SQL both backends run."""
    from taelio_core.analytics import rollup
    log = service.engine.log
    if log is None:
        return []
    log.flush()
    since = datetime.now(UTC) - timedelta(hours=1)

    def stats(r: rollup.Reader) -> pd.DataFrame:
        d = r.dialect
        return r.query(f"""SELECT provider, count(*) AS attempts,
                                  avg(CASE WHEN status = 'ok' THEN 1.0 ELSE 0.0 END) AS success_rate,
                                  {d.quantile("latency_ms", 0.5)} AS p50_ms, {d.quantile("latency_ms", 0.95)} AS p95_ms
                           FROM attempts WHERE ts >= ? GROUP BY provider ORDER BY provider""", [since])
    frame = rollup.read(log, stats, rollups=False)
    return [{k: (None if v != v else v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _served_headers(request_id: str, provider: str | None, model: str | None) -> dict[str, str]:
    headers = {"x-taelio-request-id": request_id}
    if provider:
        headers["x-taelio-provider"] = f"{provider}:{model}"
    return headers


def _event_response(body: AsyncIterator[bytes], first: StoryEvent | None, *,
                    request_id: str | None = None) -> StreamingResponse:
    if isinstance(first, PartStarted):
        request_id = first.parent_id
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if request_id:
        headers["x-taelio-request-id"] = request_id
    return StreamingResponse(body, media_type=EVENT_STREAM, headers=headers)
