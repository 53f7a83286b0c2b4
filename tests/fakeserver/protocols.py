"""The three providers' wire shapes, as the fake server writes them.

Each ``Protocol`` knows one API's request path, its JSON answer, its SSE
events, its error bodies and how it says "blocked". The shapes follow the
providers' public API references, so the real SDKs parse them exactly as
they would parse the real service.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

__all__ = ["PROTOCOLS", "AnthropicProtocol", "GeminiProtocol", "OpenAIProtocol", "Protocol", "Reply", "Usage",
           "protocol_for_path"]


@dataclass(frozen=True, kw_only=True)
class Usage:
    """What the fake reports. ``input_tokens`` includes ``cached_tokens``, as in OpenAI's and Gemini's APIs."""

    input_tokens: int = 42
    output_tokens: int = 17
    cached_tokens: int = 0


@dataclass(frozen=True, kw_only=True)
class Reply:
    status: int
    body: dict
    headers: tuple[tuple[str, str], ...] = ()


def _sse(data: dict | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


class Protocol:
    """One provider's API. ``events`` returns (content_events, final_events)."""

    name = ""
    malformed_json = b'{"id": "broken", "choices": [{"message": '
    malformed_event = b'data: {"delta": {"text": "half a JSO\n\n'

    def model_and_stream(self, path: str, body: dict) -> tuple[str, bool]:
        return str(body.get("model", "")), bool(body.get("stream"))

    def answer(self, model: str, text: str, usage: Usage) -> dict:
        raise NotImplementedError

    def events(self, model: str, chunks: list[str], usage: Usage, body: dict) -> tuple[list[bytes], list[bytes]]:
        raise NotImplementedError

    def blocked(self, model: str, usage: Usage, where: str = "response") -> dict:
        raise NotImplementedError

    def blocked_events(self, model: str, usage: Usage, body: dict, where: str = "response") -> list[bytes]:
        raise NotImplementedError

    def error(self, status: int, model: str, *, key: str = "", retry_after: float | None = None) -> Reply:
        raise NotImplementedError

    def auth_error(self, model: str, key: str) -> Reply:
        """What the real API answers to a wrong key."""
        return self.error(401, model, key=key)


def _retry_headers(retry_after: float | None) -> tuple[tuple[str, str], ...]:
    return (("retry-after", f"{retry_after:g}"),) if retry_after is not None else ()


class OpenAIProtocol(Protocol):
    """``POST /v1/chat/completions`` (also any OpenAI-compatible server)."""

    name = "openai"
    _ERRORS = {
        400: ("This model's maximum context length is 8192 tokens. However, your messages resulted in 9001 "
              "tokens. Please reduce the length of the messages.", "invalid_request_error", "context_length_exceeded"),
        403: ("Project does not have access to this model.", "invalid_request_error", "model_not_found"),
        409: ("Conflict.", "invalid_request_error", None),
        422: ("Unprocessable entity.", "invalid_request_error", None),
        500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
        503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    }

    def _envelope(self, model: str, obj: str) -> dict:
        return {"id": "chatcmpl-fake", "object": obj, "created": int(time.time()), "model": model,
                "system_fingerprint": "fp_fake"}

    def _usage(self, usage: Usage) -> dict:
        return {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                "total_tokens": usage.input_tokens + usage.output_tokens,
                "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}

    def answer(self, model: str, text: str, usage: Usage, finish: str = "stop") -> dict:
        message = {"role": "assistant", "content": text, "refusal": None}
        return {**self._envelope(model, "chat.completion"),
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": self._usage(usage)}

    def _chunk(self, model: str, delta: dict, finish: str | None = None) -> bytes:
        return _sse({**self._envelope(model, "chat.completion.chunk"),
                     "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    def _final(self, model: str, usage: Usage, body: dict, finish: str) -> list[bytes]:
        out = [self._chunk(model, {}, finish)]
        if (body.get("stream_options") or {}).get("include_usage"):
            out.append(_sse({**self._envelope(model, "chat.completion.chunk"), "choices": [],
                             "usage": self._usage(usage)}))
        return out + [b"data: [DONE]\n\n"]

    def events(self, model: str, chunks: list[str], usage: Usage, body: dict) -> tuple[list[bytes], list[bytes]]:
        content = [self._chunk(model, {"role": "assistant", "content": ""})]
        content += [self._chunk(model, {"content": c}) for c in chunks]
        return content, self._final(model, usage, body, "stop")

    def blocked(self, model: str, usage: Usage, where: str = "response") -> dict:
        return self.answer(model, "", usage, finish="content_filter")

    def blocked_events(self, model: str, usage: Usage, body: dict, where: str = "response") -> list[bytes]:
        return [self._chunk(model, {"role": "assistant", "content": ""})] + self._final(model, usage, body,
                                                                                        "content_filter")

    def error(self, status: int, model: str, *, key: str = "", retry_after: float | None = None) -> Reply:
        if status == 401:
            # The real API echoes (a masked form of) the key; the fake echoes it whole to test redaction.
            message, kind, code = (f"Incorrect API key provided: {key}. You can find your API key at "
                                   "https://platform.openai.com/account/api-keys.", "invalid_request_error",
                                   "invalid_api_key")
        elif status == 404:
            message, kind, code = (f"The model `{model}` does not exist or you do not have access to it.",
                                   "invalid_request_error", "model_not_found")
        elif status == 429:
            message, kind, code = (f"Rate limit reached for {model} on requests per min (RPM): Limit 3, Used 3, "
                                   "Requested 1.", "requests", "rate_limit_exceeded")
        else:
            message, kind, code = self._ERRORS.get(status, (f"HTTP {status}", "server_error", None))
        return Reply(status=status, body={"error": {"message": message, "type": kind, "param": None, "code": code}},
                     headers=_retry_headers(retry_after))


class AnthropicProtocol(Protocol):
    """``POST /v1/messages``. Its ``input_tokens`` excludes cache reads, which come as ``cache_read_input_tokens``."""

    name = "anthropic"
    malformed_event = b'event: content_block_delta\ndata: {"type": "content_block_delta", "ind\n\n'
    _ERRORS = {
        400: ("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
        401: ("authentication_error", "invalid x-api-key"),
        403: ("permission_error", "Your API key does not have permission to use the specified resource."),
        409: ("invalid_request_error", "Conflict."),
        413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        422: ("invalid_request_error", "Unprocessable entity."),
        429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
        500: ("api_error", "Internal server error"),
        503: ("api_error", "Service unavailable"),
        529: ("overloaded_error", "Overloaded"),
    }

    def _usage(self, usage: Usage, output_tokens: int) -> dict:
        return {"input_tokens": usage.input_tokens - usage.cached_tokens, "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": usage.cached_tokens}

    def _message(self, model: str, content: list, stop: str | None, usage: dict) -> dict:
        return {"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": stop, "stop_sequence": None, "usage": usage}

    def answer(self, model: str, text: str, usage: Usage, stop: str = "end_turn") -> dict:
        content = [{"type": "text", "text": text}] if text else []
        return self._message(model, content, stop, self._usage(usage, usage.output_tokens))

    def _start(self, model: str, usage: Usage) -> list[bytes]:
        start = self._message(model, [], None, self._usage(usage, 1))
        return [_sse({"type": "message_start", "message": start}, "message_start"),
                _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                     "content_block_start"),
                _sse({"type": "ping"}, "ping")]

    def _final(self, usage: Usage, stop: str) -> list[bytes]:
        return [_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                _sse({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                      "usage": {"output_tokens": usage.output_tokens}}, "message_delta"),
                _sse({"type": "message_stop"}, "message_stop")]

    def events(self, model: str, chunks: list[str], usage: Usage, body: dict) -> tuple[list[bytes], list[bytes]]:
        deltas = [_sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": c}},
                       "content_block_delta") for c in chunks]
        return self._start(model, usage) + deltas, self._final(usage, "end_turn")

    def blocked(self, model: str, usage: Usage, where: str = "response") -> dict:
        return self.answer(model, "", usage, stop="refusal")

    def blocked_events(self, model: str, usage: Usage, body: dict, where: str = "response") -> list[bytes]:
        return self._start(model, usage) + self._final(usage, "refusal")

    def error(self, status: int, model: str, *, key: str = "", retry_after: float | None = None) -> Reply:
        if status == 404:
            kind, message = "not_found_error", f"model: {model}"
        else:
            kind, message = self._ERRORS.get(status, ("api_error", f"HTTP {status}"))
        return Reply(status=status, body={"type": "error", "error": {"type": kind, "message": message}},
                     headers=_retry_headers(retry_after))


class GeminiProtocol(Protocol):
    """``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``."""

    name = "gemini"
    _PATH = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)")
    _STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
               504: "DEADLINE_EXCEEDED"}

    def model_and_stream(self, path: str, body: dict) -> tuple[str, bool]:
        match = self._PATH.search(path)
        return (match.group(1), match.group(2) == "streamGenerateContent") if match else ("", False)

    def _usage(self, usage: Usage, output: bool = True) -> dict:
        out = {"promptTokenCount": usage.input_tokens,
               "totalTokenCount": usage.input_tokens + (usage.output_tokens if output else 0)}
        if output:
            out["candidatesTokenCount"] = usage.output_tokens
        if usage.cached_tokens:
            out["cachedContentTokenCount"] = usage.cached_tokens
        return out

    def _response(self, model: str, text: str | None, finish: str | None, usage: dict | None) -> dict:
        candidate: dict = {"index": 0}
        if text is not None:
            candidate["content"] = {"parts": [{"text": text}], "role": "model"}
        if finish:
            candidate["finishReason"] = finish
        out: dict = {"candidates": [candidate], "modelVersion": model, "responseId": "fake-response"}
        if usage is not None:
            out["usageMetadata"] = usage
        return out

    def answer(self, model: str, text: str, usage: Usage) -> dict:
        return self._response(model, text, "STOP", self._usage(usage))

    def events(self, model: str, chunks: list[str], usage: Usage, body: dict) -> tuple[list[bytes], list[bytes]]:
        content = [_sse(self._response(model, c, None, self._usage(usage, output=False))) for c in chunks[:-1]]
        last = chunks[-1] if chunks else ""
        return content, [_sse(self._response(model, last, "STOP", self._usage(usage)))]

    def blocked(self, model: str, usage: Usage, where: str = "response") -> dict:
        if where == "prompt":
            return {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
                "usageMetadata": self._usage(usage, output=False), "modelVersion": model}
        out = self._response(model, None, "SAFETY", self._usage(usage, output=False))
        out["candidates"][0]["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                                                  "probability": "HIGH", "blocked": True}]
        return out

    def blocked_events(self, model: str, usage: Usage, body: dict, where: str = "response") -> list[bytes]:
        return [_sse(self.blocked(model, usage, where))]

    def error(self, status: int, model: str, *, key: str = "", retry_after: float | None = None) -> Reply:
        details: list[dict] = []
        if status == 401:
            message = "Request had invalid authentication credentials."
        elif status == 403:
            message = "Your API key was reported as leaked. Please use another API key."
        elif status == 404:
            message = (f"models/{model} is not found for API version v1beta, or is not supported for "
                       "generateContent. Call ListModels to see the list of available models and their "
                       "supported methods.")
        elif status == 429:
            message = "You exceeded your current quota, please check your plan and billing details."
            if retry_after is not None:
                details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}]
        elif status == 400:
            message = "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576)."
        elif status == 503:
            message = "The model is overloaded. Please try again later."
        else:
            message = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
        return self._error(status, message, details, retry_after)

    def auth_error(self, model: str, key: str) -> Reply:
        # The real API answers a wrong key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID (not 401).
        return self._error(400, "API key not valid. Please pass a valid API key.",
                           [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                             "domain": "googleapis.com"}], None)

    def _error(self, status: int, message: str, details: list[dict], retry_after: float | None) -> Reply:
        error = {"code": status, "message": message, "status": self._STATUS.get(status, "UNKNOWN")}
        if details:
            error["details"] = details
        return Reply(status=status, body={"error": error}, headers=_retry_headers(retry_after))


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (OpenAIProtocol(), AnthropicProtocol(), GeminiProtocol())}


def protocol_for_path(path: str) -> tuple[Protocol | None, str]:
    """The protocol a request path speaks, and the name faults are scripted under.

    ``/v1/chat/completions`` is "openai"; a prefix names an OpenAI-compatible
    server of its own: ``/ollama/v1/chat/completions`` is "ollama".
    """
    path = path.split("?", 1)[0]
    if path.endswith("/chat/completions"):
        prefix = path[: -len("/chat/completions")].removesuffix("/v1").strip("/")
        return PROTOCOLS["openai"], prefix or "openai"
    if path.endswith("/v1/messages"):
        return PROTOCOLS["anthropic"], "anthropic"
    if "/models/" in path and (path.endswith(":generateContent") or path.endswith(":streamGenerateContent")):
        return PROTOCOLS["gemini"], "gemini"
    return None, ""
