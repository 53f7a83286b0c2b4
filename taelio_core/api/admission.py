"""Who may call, and with what: the token, the tier, the per-user limits and the JSON body, in plain functions.

Every authenticated endpoint goes through ``admit`` (the tier comes from the
token and nowhere else). The three generation endpoints, the hot path, call
``admit`` and ``read_body`` themselves instead of declaring FastAPI
dependencies and a body parameter: FastAPI's per-request dependency solving
(header, path, body and two dependencies) cost about as much CPU as the rest
of the HTTP layer together. The body is read once (``BodyLimit`` has already
read and size-checked it and leaves it in the scope) and validated by
pydantic straight from its bytes. What FastAPI would have written into the
OpenAPI document for them, ``documented`` writes by hand, so ``/docs`` shows
the same bodies, parameters, security and errors; ``add_body_schemas`` puts
the bodies' schemas in its components.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from taelio_core.api.auth import Caller, Unauthorized
from taelio_core.api.limits import LimitExceeded
from taelio_core.api.problems import ApiProblem, validation_sentence
from taelio_core.api.service import ApiService

__all__ = ["ACCEPT_PARAMETER", "BODY_SCOPE_KEY", "add_body_schemas", "admit", "authed", "documented", "path_parameter",
           "read_body"]

BODY_SCOPE_KEY = "taelio.body"     # where BodyLimit leaves the body it read (ASGI allows extension keys)
BEARER_SCHEME = "HTTPBearer"       # the scheme FastAPI's HTTPBearer registers for the other endpoints
_QUERY_TOKENS = ("access_token", "token", "jwt", "api_key", "authorization")
_REF = "#/components/schemas/{model}"
Body = TypeVar("Body", bound=BaseModel)
bearer = HTTPBearer(auto_error=False, description="A JWT minted with `taelio token` (HS256, JWT_SECRET).")


def admit(service: ApiService, request: Request) -> Caller:
    """The caller of ``request``, counted against its per-minute limit: 401, 403 or 429 otherwise."""
    if request.scope["query_string"] and any(name in request.query_params for name in _QUERY_TOKENS):
        raise Unauthorized("A token in the query string is not accepted; send it as 'Authorization: Bearer <token>'.")
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("This endpoint needs 'Authorization: Bearer <token>'.")
    caller = service.tokens.verify(token)
    if caller.tier not in service.engine.policy.model.tiers:
        raise ApiProblem(403, f"The token's tier '{caller.tier}' is not a tier of the policy "
                              f"({', '.join(service.engine.policy.tiers)}).")
    try:
        service.limits.admit(caller.tier, caller.sub)
    except LimitExceeded as e:
        raise ApiProblem(429, e.detail, headers={"Retry-After": str(e.retry_after_s)}) from None
    return caller


async def authed(request: Request, _: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
    """``admit`` as the dependency of the endpoints off the hot path (``bearer`` documents the scheme)."""
    return admit(request.app.state.service, request)


async def read_body(request: Request, model: type[Body]) -> Body:
    """The JSON body as ``model``; a body that is not JSON, or not that shape, is a 422 in one sentence."""
    body = request.scope.get(BODY_SCOPE_KEY)
    if body is None:
        body = await request.body()
    content_type = request.headers.get("content-type")
    if content_type and not _is_json(content_type):
        raise ApiProblem(422, f"the body: must be JSON (Content-Type: application/json), not '{content_type}'.")
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        raise ApiProblem(422, validation_sentence(e.errors(include_url=False))) from None


def _is_json(content_type: str) -> bool:
    subtype = content_type.split(";", 1)[0].strip().lower().rpartition("/")[2]
    return subtype == "json" or subtype.endswith("+json")


def documented(body: type[BaseModel], *, parameters: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The ``openapi_extra`` of an endpoint that reads ``body`` itself: its body, parameters and bearer auth."""
    extra: dict[str, Any] = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "$ref": _REF.format(model=body.__name__)}}}},
        "security": [{BEARER_SCHEME: []}]}
    if parameters:
        extra["parameters"] = list(parameters)
    return extra


def path_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


ACCEPT_PARAMETER = {"name": "accept", "in": "header", "required": False,
                    "description": "`text/event-stream` for server-sent events; JSON otherwise",
                    "schema": {"anyOf": [{"type": "string"}, {"type": "null"}]}}


def add_body_schemas(openapi: Callable[[], dict[str, Any]], bodies: Sequence[type[BaseModel]]
                     ) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` with the schemas of ``bodies`` (and the models they use) among its components."""
    def with_bodies() -> dict[str, Any]:
        schema = openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if not all(model.__name__ in components for model in bodies):
            _, defs = models_json_schema([(model, "validation") for model in bodies], ref_template=_REF)
            components.update(defs.get("$defs", {}))
        return schema
    return with_bodies
