"""An OpenAI-compatible surface: ``POST /v1/chat/completions`` (streaming and not) and ``GET /v1/models``.

An unmodified ``openai`` SDK client works with ``base_url=http://host:port/v1``
and ``api_key=<JWT>``; the token's tier picks the chain, as everywhere.

How a chat request maps onto a task:

- ``model`` names a task: ``taelio/story`` is the policy's ``story`` task (``GET /v1/models`` lists them);
- the last ``user`` message is the task's ``{prompt}``; earlier messages and ``system`` messages are not
  sent (the task's template has its own system prompt);
- ``genre``, ``tone`` and ``idea`` come from extra body fields (``extra_body={"genre": "Mystery"}`` in the
  SDK); OpenAI sampling fields (``temperature``, ``max_tokens``...) are ignored: the policy sets them;
- usage is the tokens the serving provider reported; ``x-taelio-request-id`` and ``x-taelio-provider``
  (``provider:model``) headers say who served the answer (a stream names the provider in its last chunk);
- errors use OpenAI's shape (``{"error": {"message", "type", "code"}}``) so SDK clients raise their usual
  exceptions (401 ``AuthenticationError``, 429 ``RateLimitError``, 502 ``InternalServerError``...).
"""
from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from taelio_core.api.admission import admit, authed, documented, read_body
from taelio_core.api.auth import Caller
from taelio_core.api.problems import ApiProblem, from_taelio_error
from taelio_core.api.service import ApiService, get_service, service_of
from taelio_core.api.sse import MARK, framed
from taelio_core.errors import AllProvidersFailed
from taelio_core.routing.inputs import MAX_FIELD_CHARS, MAX_IDEA_CHARS
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Truncated
from taelio_core.routing.trace import GenerationResult

__all__ = ["router"]

ERRORS = {401: {"description": "Missing or bad token (OpenAI error shape)"},
          403: {"description": "The token's tier is not in the policy"},
          404: {"description": "The model names no task"}, 422: {"description": "A bad body"},
          429: {"description": "A per-user limit; see Retry-After"}}
router = APIRouter(prefix="/v1", tags=["openai-compatible"], responses=ERRORS)
MODEL_PREFIX = "taelio/"


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):   # content parts: keep the text ones
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")   # OpenAI fields Taelio does not use are accepted and ignored
    model: str = Field(description="taelio/<task>, e.g. taelio/story")
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    genre: str = Field(default="", max_length=MAX_FIELD_CHARS)
    tone: str = Field(default="", max_length=MAX_FIELD_CHARS)
    idea: str | None = Field(default=None, max_length=MAX_IDEA_CHARS)


BODIES = [ChatCompletionRequest]   # read by the endpoint itself: its schema goes in the OpenAPI by hand


def _task_and_inputs(service: ApiService, body: ChatCompletionRequest) -> tuple[str, Inputs]:
    task = body.model.removeprefix(MODEL_PREFIX)
    if not body.model.startswith(MODEL_PREFIX) or task not in service.engine.policy.model.tasks:
        known = ", ".join(MODEL_PREFIX + t for t in service.engine.policy.tasks)
        raise ApiProblem(404, f"The model '{body.model}' does not exist; use one of {known}.")
    users = [m for m in body.messages if m.role == "user"]
    if not users:
        raise ApiProblem(422, "messages: there is no 'user' message to use as the prompt.")
    return task, Inputs(prompt=users[-1].text(), genre=body.genre, tone=body.tone, idea=body.idea)


@router.post("/chat/completions", responses={402: {"description": "A hard budget stopped the request"},
                                             502: {"description": "Every provider failed"}},
             openapi_extra=documented(ChatCompletionRequest))
async def chat_completions(request: Request):  # noqa: ANN201
    """A chat completion from the task named by ``model``, routed through the caller's tier's chain."""
    service = service_of(request)
    caller = admit(service, request)
    body = await read_body(request, ChatCompletionRequest)
    task, inputs = _task_and_inputs(service, body)
    created = int(time.time())
    if body.stream:
        stream = service.stream(caller, task, inputs)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = _chunks(service, caller, stream, body.model, created, include_usage)
        return StreamingResponse(chunks, media_type="text/event-stream",
                                 headers={"x-taelio-request-id": stream.request_id, "Cache-Control": "no-cache"})
    result = await service.generate(caller, task, inputs)
    doc = {"id": f"chatcmpl-{result.request_id}", "object": "chat.completion", "created": created,
           "model": body.model, "system_fingerprint": None,
           "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                        "finish_reason": _finish_reason(result), "logprobs": None}],
           "usage": _usage(result)}
    return JSONResponse(doc, headers={"x-taelio-request-id": result.request_id,
                                      "x-taelio-provider": f"{result.provider}:{result.model}"})


@router.get("/models")
async def models(service: ApiService = Depends(get_service), caller: Caller = Depends(authed)) -> dict[str, object]:
    """Each task of the policy as a model id (``taelio/<task>``)."""
    return {"object": "list", "data": [{"id": MODEL_PREFIX + task, "object": "model", "created": 0,
                                        "owned_by": "taelio"} for task in service.engine.policy.tasks]}


def _usage(result: GenerationResult) -> dict[str, int]:
    usage = result.usage
    return {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens}


def _finish_reason(result: GenerationResult) -> str:
    served = next((a for a in reversed(result.attempts) if a.ok), None)
    reason = served.finish_reason if served is not None else None
    return {"max_tokens": "length", "length": "length", "MAX_TOKENS": "length"}.get(reason or "", "stop")


def _data(doc: object) -> bytes:
    return b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n"


async def _chunks(service: ApiService, caller: Caller, stream, model: str, created: int,  # noqa: ANN001
                  include_usage: bool) -> AsyncIterator[bytes]:
    base = {"id": f"chatcmpl-{stream.request_id}", "object": "chat.completion.chunk", "created": created,
            "model": model, "system_fingerprint": None}

    def chunk(delta: dict[str, object]) -> Callable[[str], bytes]:
        return framed("data: ", {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None,
                                                      "logprobs": None}]})

    first: Callable[[str], bytes] | None = chunk({"role": "assistant", "content": MARK})
    rest = chunk({"content": MARK})
    try:
        async for item in stream:
            if isinstance(item, Truncated):
                continue   # the next provider goes on; the text so far stays (the trace records the cut)
            yield first(item) if first is not None else rest(item)
            first = None
    except BaseException:
        # A client that went away: the core logged the request as cancelled, with its attempts; count it.
        if stream.result is not None and stream.result.status == "cancelled":
            service.finished(caller, stream.result)
        raise
    result = stream.result
    service.finished(caller, result)
    if not result.ok:
        problem = from_taelio_error(AllProvidersFailed(result.error or "every provider failed",
                                                       attempts=result.attempts))
        if result.status == "rejected":
            problem = ApiProblem(402, result.error or "A hard budget stopped the request.")
        yield _data({"error": {"message": problem.detail, "type": "api_error", "code": problem.status}})
        return
    yield _data({**base, "provider": f"{result.provider}:{result.model}",
                 "choices": [{"index": 0, "delta": {}, "finish_reason": _finish_reason(result), "logprobs": None}]})
    if include_usage:
        yield _data({**base, "choices": [], "usage": _usage(result)})
    yield b"data: [DONE]\n\n"
