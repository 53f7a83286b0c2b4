"""What every endpoint shares: the engine, the auth settings, the limits and the metrics.

Who is calling is ``admission``'s part (the token, the tier, the limits).
"""
from __future__ import annotations

import hashlib
import os

from fastapi import Request

from taelio_core.api.auth import AuthSettings, Caller, TokenCache
from taelio_core.api.limits import UserLimits
from taelio_core.api.metrics import ApiMetrics
from taelio_core.api.problems import from_taelio_error
from taelio_core.errors import AllProvidersFailed, BudgetExceeded
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Router
from taelio_core.routing.streams import GenerationStream
from taelio_core.routing.trace import GenerationResult
from taelio_core.wiring import Taelio

__all__ = ["ApiService", "SOURCE", "get_service", "service_of"]

SOURCE = "api"


class ApiService:
    def __init__(self, engine: Taelio, auth: AuthSettings, *, limits: UserLimits | None = None,
                 metrics: ApiMetrics | None = None, store_user: str | None = None) -> None:
        self.engine, self.auth = engine, auth
        self.tokens = TokenCache(auth)
        self.limits = limits or UserLimits(engine.policy)
        self.metrics = metrics or ApiMetrics()
        mode = (store_user if store_user is not None else os.environ.get("TAELIO_STORE_USER", "full")).lower()
        if mode not in ("full", "hash"):
            from taelio_core.errors import ConfigError
            raise ConfigError(f"TAELIO_STORE_USER must be 'full' or 'hash', not '{mode}'")
        self.hash_users = mode == "hash"

    @property
    def router(self) -> Router:
        return self.engine.router

    def user_id(self, caller: Caller) -> str:
        """The user as the call log stores it: the token's ``sub``, or its SHA-256 with TAELIO_STORE_USER=hash."""
        return hashlib.sha256(caller.sub.encode()).hexdigest() if self.hash_users else caller.sub

    def stream(self, caller: Caller, task: str, inputs: Inputs) -> GenerationStream:
        """One task for the caller, streamed (a bad task or input raises here, before any byte is sent)."""
        return self.router.astream(caller.tier, task, inputs, continue_on_truncation=True, source=SOURCE,
                                   user_id=self.user_id(caller))

    async def generate(self, caller: Caller, task: str, inputs: Inputs) -> GenerationResult:
        """One task for the caller; a failure is an ``ApiProblem`` (502 with every attempt, 402 for a budget)."""
        try:
            result = await self.router.agenerate(caller.tier, task, inputs, source=SOURCE,
                                                 user_id=self.user_id(caller))
        except (AllProvidersFailed, BudgetExceeded) as e:
            self.finished(caller, getattr(e, "result", None))
            raise from_taelio_error(e) from None
        self.finished(caller, result)
        return result

    def finished(self, caller: Caller, result: GenerationResult | None) -> None:
        if result is None:
            return
        self.metrics.observe_result(result)
        usage = result.usage
        self.limits.spend_tokens(caller.tier, caller.sub, usage.input_tokens + usage.output_tokens)


def service_of(request: Request) -> ApiService:
    return request.app.state.service


async def get_service(request: Request) -> ApiService:
    """The endpoints' dependency. Async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread,
    a thread hop on every request."""
    return request.app.state.service
