"""Every error the API answers, as one sentence: RFC 9457 problem documents, or OpenAI's shape under ``/v1``.

An error body never carries a traceback or a key: the detail is a sentence
this package wrote, or the text of a ``TaelioError`` (whose messages are
redacted where they are raised). Anything unexpected is logged with its
traceback to the process log and answered as a plain 500.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from taelio_core.api.auth import Unauthorized
from taelio_core.errors import AllProvidersFailed, BudgetExceeded, ConfigError, InputError, TaelioError

__all__ = ["ApiProblem", "PROBLEM_JSON", "install_handlers", "problem_response"]

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("taelio.api")

_TITLES = {400: "Bad request", 401: "Unauthorized", 402: "Budget reached", 403: "Forbidden", 404: "Not found",
           405: "Method not allowed", 413: "Request too large", 415: "Unsupported media type",
           422: "Invalid request", 429: "Too many requests", 500: "Internal error", 502: "Every provider failed",
           503: "Not ready"}
_OPENAI_TYPES = {401: "authentication_error", 402: "insufficient_quota", 403: "permission_error",
                 404: "not_found_error", 413: "invalid_request_error", 422: "invalid_request_error",
                 429: "rate_limit_error", 502: "api_error", 500: "api_error", 503: "api_error"}


class ApiProblem(Exception):
    """An answer other than success: status, one sentence, optional headers and extra members."""

    def __init__(self, status: int, detail: str, *, headers: Mapping[str, str] | None = None,
                 extra: Mapping[str, object] | None = None) -> None:
        detail = detail.strip()
        if not detail.endswith((".", "!", "?")):
            detail += "."        # every detail is one sentence
        super().__init__(detail)
        self.status, self.detail = status, detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def problem_response(request_path: str, problem: ApiProblem) -> JSONResponse:
    if request_path.startswith("/v1/"):
        body: dict[str, object] = {"error": {"message": problem.detail,
                                             "type": _OPENAI_TYPES.get(problem.status, "api_error"),
                                             "param": None, "code": problem.status}}
        return JSONResponse(body, status_code=problem.status, headers=problem.headers)
    body = {"type": "about:blank", "title": _TITLES.get(problem.status, "Error"), "status": problem.status,
            "detail": problem.detail, **problem.extra}
    return JSONResponse(body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON)


def from_taelio_error(e: TaelioError) -> ApiProblem:
    if isinstance(e, AllProvidersFailed):
        attempts = [a.as_dict() for a in e.attempts]
        extra: dict[str, object] = {"attempts": attempts}
        if e.result is not None:
            extra["result"] = e.result.as_dict()
        return ApiProblem(502, str(e), extra=extra)
    if isinstance(e, BudgetExceeded):
        return ApiProblem(402, str(e))
    if isinstance(e, InputError):
        where = f"{e.field}: " if e.field and not str(e).startswith(e.field) else ""
        return ApiProblem(422, f"{where}{e}")
    if isinstance(e, ConfigError):
        return ApiProblem(503, str(e))
    return ApiProblem(500, str(e))


def validation_sentence(errors: Sequence[Mapping[str, object]]) -> str:
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]  # type: ignore[union-attr]
    where = ".".join(loc) or "the body"
    msg = str(first.get("msg", "is not valid"))
    if first.get("type") == "extra_forbidden" and loc and loc[-1] == "tier":
        msg = "is not accepted: the tier comes from the bearer token"
    elif first.get("type") == "extra_forbidden":
        msg = "is not a field of this request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {msg}{more}."


def install_handlers(app) -> None:  # noqa: ANN001 - a FastAPI app
    @app.exception_handler(ApiProblem)
    async def _problem(request: Request, e: ApiProblem) -> JSONResponse:
        return problem_response(request.url.path, e)

    @app.exception_handler(Unauthorized)
    async def _unauthorized(request: Request, e: Unauthorized) -> JSONResponse:
        return problem_response(request.url.path, ApiProblem(401, str(e), headers=www_authenticate(str(e))))

    @app.exception_handler(TaelioError)
    async def _taelio(request: Request, e: TaelioError) -> JSONResponse:
        return problem_response(request.url.path, from_taelio_error(e))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        return problem_response(request.url.path, ApiProblem(422, validation_sentence(e.errors())))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, e: HTTPException) -> JSONResponse:
        detail = e.detail if isinstance(e.detail, str) else _TITLES.get(e.status_code, "Error")
        if e.status_code == 404 and detail == "Not Found":
            detail = f"There is no endpoint {request.method} {request.url.path}."
        elif e.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}."
        return problem_response(request.url.path, ApiProblem(e.status_code, detail, headers=e.headers))

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return problem_response(request.url.path, ApiProblem(500, "Internal error; the server log has the details."))


def www_authenticate(detail: str) -> dict[str, str]:
    safe = detail.replace('"', "'")
    return {"WWW-Authenticate": f'Bearer realm="taelio", error="invalid_token", error_description="{safe}"'}
