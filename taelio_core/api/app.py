"""The HTTP API's application: FastAPI over the same engine the CLI and the dashboard open.

``create_app`` wires the engine (``Taelio.open()`` at startup unless one is
given), the auth settings, the per-user limits and the metrics; on shutdown
it closes the engine, which flushes the call log. ``app_from_env`` is the
factory ``taelio serve`` hands uvicorn (one per worker process).

Two pieces of plain ASGI middleware sit in front: a body limit (a body over
64 KiB is answered 413 before anything parses it; the body it read is left in
the scope, so the generation endpoints do not read it again) and the HTTP
metrics.
"""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from taelio_core.api import openai_compat, routes
from taelio_core.api.admission import BODY_SCOPE_KEY, add_body_schemas
from taelio_core.api.auth import AuthSettings
from taelio_core.api.limits import LimitStore, UserLimits
from taelio_core.api.metrics import CONTENT_TYPE_LATEST, ApiMetrics
from taelio_core.api.problems import PROBLEM_JSON, ApiProblem, install_handlers, problem_response
from taelio_core.api.service import ApiService, service_of
from taelio_core.wiring import Taelio

__all__ = ["MAX_BODY_BYTES", "app_from_env", "create_app"]

MAX_BODY_BYTES = 64 * 1024
Scope = dict[str, Any]


class BodyLimit:
    """Reads a request body up to ``limit`` bytes before the app sees it; more is a 413, never parsed."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._too_large(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._too_large(scope, receive, send)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False
        scope[BODY_SCOPE_KEY] = body

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Callable, send: Callable) -> None:
        problem = ApiProblem(413, f"The request body is larger than {self.limit // 1024} KiB.")
        await problem_response(scope["path"], problem)(scope, receive, send)


class HttpMetrics:
    """Counts every answer by route template (not raw path: bounded label values) and status."""

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe_http(scope["method"], route, status, time.perf_counter() - t0)


def create_app(*, auth: AuthSettings, engine: Taelio | None = None, open_engine: Callable[[], Taelio] = Taelio.open,
               limit_store: LimitStore | None = None, store_user: str | None = None) -> FastAPI:
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = engine if engine is not None else await asyncio.to_thread(open_engine)
        store = limit_store
        if store is None and opened.shared is not None:
            from taelio_core.api.redis_limits import RedisLimitStore
            store = RedisLimitStore(opened.shared)
        app.state.service = ApiService(opened, auth, limits=UserLimits(opened.policy, store),
                                       metrics=metrics, store_user=store_user)
        try:
            yield
        finally:
            if engine is None:
                await asyncio.to_thread(opened.close)   # flushes the call log
            elif opened.log is not None:
                await asyncio.to_thread(opened.log.flush)

    # FastAPI's own OpenTelemetry hooks are off: nothing here configures OpenTelemetry (``/metrics`` is the
    # Prometheus view), and asking whether it is configured costs CPU on every request.
    app = FastAPI(title="Taelio API", version="1", lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
                  description="Routes generation requests through each tier's chain of LLM providers, with "
                              "fallback, pricing and a call log. Every endpoint but the operations ones needs "
                              "`Authorization: Bearer <JWT>`; the token's `tier` claim picks the chain. Errors "
                              "are `application/problem+json` (RFC 9457), or OpenAI's error shape under `/v1`.")
    install_handlers(app)
    app.openapi = add_body_schemas(app.openapi, routes.BODIES + openai_compat.BODIES)  # type: ignore[method-assign]
    app.include_router(routes.router)
    app.include_router(openai_compat.router)
    app.get("/healthz", tags=["operations"])(healthz)
    app.get("/readyz", tags=["operations"], responses={503: {"description": "Not ready, with the reason"}})(readyz)
    app.get("/metrics", tags=["operations"], response_class=Response)(metrics_endpoint)
    app.add_middleware(HttpMetrics, metrics=metrics)
    app.add_middleware(BodyLimit)
    return app


async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


async def readyz(request: Request) -> JSONResponse:
    """Readiness: the policy is loaded and the call log is writable; else 503 with the reason. With REDIS_URL
    it also says whether the shared state is connected ("shared state unavailable since HH:MM ...")."""
    service: ApiService | None = getattr(request.app.state, "service", None)
    reason = None
    if service is None:
        reason = "The engine is still starting."
    elif service.engine.log is None:
        reason = "The call log is not open."
    elif getattr(service.engine.log, "last_error", None):
        reason = f"The call log cannot be written: {service.engine.log.last_error}"
    if reason is not None:
        return JSONResponse({"type": "about:blank", "title": "Not ready", "status": 503, "detail": reason},
                            status_code=503, media_type=PROBLEM_JSON)
    body = {"status": "ready", "policy": service.engine.policy.name, "mode": service.engine.mode}
    shared = service.engine.shared
    if shared is not None:
        # Still ready while Redis is away: requests flow on per-process state, so the replica stays in rotation.
        body["shared_state"] = shared.status()
    return JSONResponse(body)


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics: requests, attempts, fallbacks, errors by type, latency histograms, cost."""
    return Response(service_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


def app_from_env() -> FastAPI:
    """The app for ``taelio serve`` (uvicorn's factory): JWT_SECRET, the policy and the log from the environment."""
    return create_app(auth=AuthSettings.from_env(os.environ))
