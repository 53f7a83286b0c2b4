"""Every error Taelio raises, in one tree.

Callers (the dashboard, the CLI) catch ``TaelioError`` and show ``str(err)``:
each message is one plain sentence that says what went wrong and where.
Provider adapters map their SDK's exceptions onto ``ProviderError``
subclasses in exactly one place per provider, so the router can decide
what to do (retry, fall back, stop) from the class alone::

    TaelioError
    ├── ConfigError            a mistake in policy/config/env: what and where (file, key, line)
    ├── InputError             a bad request from a user: empty prompt, unknown tier...
    ├── ProviderError          (provider, model, message, retryable, http_status)
    │   ├── RateLimited        429 (retry_after)
    │   ├── ProviderTimeout    no answer within the attempt's timeout
    │   ├── ProviderUnavailable   5xx, connection refused/reset
    │   ├── AuthFailed         401/403: key wrong or revoked
    │   ├── ModelNotFound      404: model retired or misspelt
    │   ├── BadRequest         400: e.g. context too long
    │   ├── ContentBlocked     safety/refusal stop
    │   └── BadResponse        malformed, empty, or a stream that ended without a finish reason
    ├── UnexpectedError        an exception no mapper knows: a Taelio (or SDK) bug, not the provider's
    │                          fault; breakers ignore it, its traceback goes to the process log
    ├── BudgetExceeded         a hard budget stopped the request
    ├── AllProvidersFailed     carries every attempt
    └── CallLogError           the log file cannot be opened or written
        └── LogUnusable        the file fails the open check: damaged, truncated, or not a Taelio log

A stream that breaks after text was shown raises nothing of its own: its
attempt ends with status ``truncated`` (``routing/attempts.py``).

Messages never contain API keys: adapters build them from status codes and
the provider's error text, which ``redact`` (``redaction.py``) scrubs of every registered secret
(any case, any run of 8+ of its characters) and anything key-shaped.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taelio_core.redaction import redact, register_secret

if TYPE_CHECKING:
    from taelio_core.routing.generation import Usage
    from taelio_core.routing.trace import Attempt

__all__ = [
    "AllProvidersFailed",
    "AuthFailed",
    "BadRequest",
    "BadResponse",
    "BudgetExceeded",
    "CallLogError",
    "ConfigError",
    "ContentBlocked",
    "InputError",
    "LogUnusable",
    "ModelNotFound",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimited",
    "TaelioError",
    "UnexpectedError",
    "redact",
    "register_secret",
]

class TaelioError(Exception):
    """Root of every error Taelio raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(TaelioError):
    """A mistake in a policy file, config or environment variable.

    ``source`` is the file (or variable) and ``key``/``line`` locate it.
    """

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None,
                 line: int | None = None) -> None:
        self.source, self.key, self.line = source, key, line
        where = []
        if source:
            where.append(str(source) + (f":{line}" if line else ""))
        if key:
            where.append(f"key '{key}'")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)


class InputError(TaelioError):
    """A request that cannot be served as asked: names the field that is wrong."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class ProviderError(TaelioError):
    """One provider attempt failed. Subclasses say how; ``retryable`` says whether trying again may help.

    ``sent`` is False when the request never left (connect failure, client
    setup), True when it was sent and no answer came, None when unknown.
    ``usage`` is what the provider reported before a stream broke (it bills
    that), or None.
    """

    retryable: bool = False
    error_type: str = "error"
    sent: bool | None = None
    usage: Usage | None = None

    def __init__(self, message: str, *, provider: str = "", model: str = "",
                 http_status: int | None = None) -> None:
        self.provider, self.model, self.http_status = provider, model, http_status
        super().__init__(message)


class RateLimited(ProviderError):
    retryable = True
    error_type = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ProviderTimeout(ProviderError):
    retryable = True
    error_type = "timeout"


class ProviderUnavailable(ProviderError):
    retryable = True
    error_type = "unavailable"


class AuthFailed(ProviderError):
    error_type = "auth_failed"


class ModelNotFound(ProviderError):
    error_type = "model_not_found"


class BadRequest(ProviderError):
    error_type = "bad_request"


class ContentBlocked(ProviderError):
    error_type = "content_blocked"


class BadResponse(ProviderError):
    retryable = True
    error_type = "bad_response"


class UnexpectedError(TaelioError):
    """An attempt ended in an exception that no adapter's mapper knows.

    That is a bug in Taelio or a change in an SDK, never evidence about the
    provider: circuit breakers do not count it (``error_type`` is not in
    ``[breakers] count``), the attempt is logged with its traceback to the
    process log (python ``logging``, not the call log), and the router falls
    back so the user still gets an answer. ``__cause__`` is the original.
    """

    error_type = "unexpected"
    retryable = False
    http_status: int | None = None

    def __init__(self, message: str, *, provider: str = "", model: str = "") -> None:
        self.provider, self.model = provider, model
        super().__init__(message)


class BudgetExceeded(TaelioError):
    def __init__(self, message: str, *, scope: str = "") -> None:
        self.scope = scope
        super().__init__(message)


class CallLogError(TaelioError):
    pass


class LogUnusable(CallLogError):
    """The log file fails the open check (``calllog/check.py``): says which file, what is wrong, how to recover."""

    def __init__(self, path: object, problem: str, *, recovery: str | None = None) -> None:
        self.path, self.problem = str(path), problem
        self.damaged = recovery is None          # False: a sound file that is not Taelio's (never moved aside)
        self.recovery = recovery or (f"move it aside (mv {path} {path}.damaged, or taelio log repair) and Taelio "
                                     "starts a new one; requests not yet written stay in its journal")
        super().__init__(f"the log {path} {problem}: {self.recovery}")


class AllProvidersFailed(TaelioError):
    """Every entry of the chain failed or was skipped. ``attempts`` has each one."""

    def __init__(self, message: str, *, attempts: Sequence[Attempt] = (), skipped: Sequence[Any] = (),
                 result: Any = None) -> None:
        self.attempts = list(attempts)
        self.skipped = list(skipped)
        self.result = result
        super().__init__(message)


# Plain words for the UI and CLI, keyed by ProviderError.error_type.
PLAIN_WORDS: dict[str, str] = {
    "rate_limited": "rate limited",
    "timeout": "timed out",
    "unavailable": "unavailable (server error or connection failed)",
    "auth_failed": "key rejected",
    "model_not_found": "model not found (retired or misspelt?)",
    "bad_request": "request rejected",
    "content_blocked": "blocked by the provider's safety filter",
    "bad_response": "malformed or empty response",
    "truncated": "stream cut off mid-answer",
    "cancelled": "cancelled (another entry answered first)",
    "caller_cancelled": "cancelled (the caller went away)",
    "unexpected": "failed on an unexpected error in Taelio (not counted against the provider)",
    "error": "failed",
}
