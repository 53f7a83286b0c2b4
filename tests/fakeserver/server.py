"""The fake server itself: a threaded stdlib HTTP/1.1 server with scriptable faults.

See the package docstring (``tests/fakeserver/__init__.py``) for the
scripting API. Everything here runs on the server's own threads; the
scripting methods are safe to call from the test's thread while requests are
in flight.
"""
from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakeserver.protocols import Protocol, Reply, Usage, protocol_for_path

__all__ = ["FAULT_KINDS", "FakeServer", "Fault", "Recorded", "closed_port"]

FAULT_KINDS = ("rate_limited", "server_error", "unavailable", "timeout", "malformed", "empty", "blocked", "auth",
               "not_found", "bad_request", "status", "stream_cut", "slow_first_token", "reset", "echo_key")


@dataclass(frozen=True, kw_only=True)
class Fault:
    """What the server does instead of answering normally, for one request."""

    kind: str
    status: int | None = None
    retry_after: float | None = None
    delay_s: float = 0.0
    after_chunks: int = 2          # stream_cut: content events sent before the cut
    quiet: bool = False            # stream_cut: end the body cleanly (no error, just no finish event)
    where: str = "response"        # blocked (Gemini): "response" (finishReason SAFETY) or "prompt" (blockReason)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (kinds: {', '.join(FAULT_KINDS)})")

    @classmethod
    def named(cls, kind: str, **kw: Any) -> Fault:
        """A fault by name with sensible defaults: ``Fault.named("rate_limited", retry_after=3)``."""
        defaults: dict[str, dict[str, Any]] = {
            "rate_limited": {"status": 429, "retry_after": 1.0}, "server_error": {"status": 500},
            "unavailable": {"status": 503}, "not_found": {"status": 404}, "bad_request": {"status": 400},
            "timeout": {"delay_s": 2.0}, "slow_first_token": {"delay_s": 0.3}, "echo_key": {"status": 401},
        }
        return cls(kind=kind, **{**defaults.get(kind, {}), **kw})

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1.0) -> Fault:
        return cls.named("rate_limited", retry_after=retry_after)

    @classmethod
    def status_code(cls, status: int, retry_after: float | None = None) -> Fault:
        """Any HTTP status with the provider's error body for it (a literal 401, 403, 409, 529...)."""
        return cls(kind="status", status=status, retry_after=retry_after)

    @classmethod
    def timeout(cls, delay_s: float = 2.0) -> Fault:
        """Say nothing for ``delay_s`` (set it past the client's timeout), then answer normally."""
        return cls.named("timeout", delay_s=delay_s)

    @classmethod
    def slow_first_token(cls, delay_s: float = 0.3) -> Fault:
        return cls.named("slow_first_token", delay_s=delay_s)

    @classmethod
    def stream_cut(cls, after_chunks: int = 2, quiet: bool = False) -> Fault:
        return cls.named("stream_cut", after_chunks=after_chunks, quiet=quiet)


@dataclass(frozen=True, kw_only=True)
class Recorded:
    """One request as the server received it."""

    provider: str                  # the name faults are scripted under ("openai", "anthropic", "gemini", "ollama")
    protocol: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]        # lower-cased names
    body: dict
    model: str
    stream: bool
    key: str | None                # the API key as sent (bearer, x-api-key, x-goog-api-key or ?key=)
    fault: str | None
    at: float = field(default_factory=time.time)


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _split_text(text: str, words_per_chunk: int = 2) -> list[str]:
    words = text.split(" ")
    return [(" " if i else "") + " ".join(words[i:i + words_per_chunk]) for i in range(0, len(words), words_per_chunk)]


class FakeServer:
    """Speaks the OpenAI, Anthropic and Gemini protocols on 127.0.0.1, with faults queued per provider and model."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, record: bool = True,
                 chunk_delay_s: float = 0.0) -> None:
        self.record = record
        self.chunk_delay_s = chunk_delay_s
        self.expected_keys: dict[str, str] = {}
        self.requests: list[Recorded] = []
        self.abandoned = 0          # answers the client hung up on before they were complete
        self._faults: dict[tuple[str, str | None], deque[list]] = {}
        self._periodic: dict[tuple[str, str | None], list] = {}   # [fault, every, requests seen]
        self._usage: dict[tuple[str, str | None], Usage] = {}
        self._text: dict[tuple[str, str | None], str] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def base_url(self, provider: str) -> str:
        """The base URL each SDK wants: OpenAI ``.../v1``, Anthropic bare, Gemini with a trailing slash.

        Any other name is an OpenAI-compatible server mounted under its own prefix (``.../ollama/v1``).
        """
        if provider == "openai":
            return f"{self.url}/v1"
        if provider == "anthropic":
            return self.url
        if provider == "gemini":
            return f"{self.url}/"
        return f"{self.url}/{provider}/v1"

    def env(self, **keys: str) -> dict[str, str]:
        """Environment variables that point all three SDKs here, plus any keys given (``OPENAI_API_KEY=...``)."""
        return {"OPENAI_BASE_URL": self.base_url("openai"), "ANTHROPIC_BASE_URL": self.base_url("anthropic"),
                "GOOGLE_GEMINI_BASE_URL": self.base_url("gemini"), **keys}

    def start(self) -> FakeServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fakeserver-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- scripting -------------------------------------------------------------------
    def fail(self, provider: str, fault: Fault | str, *, model: str | None = None, times: int | None = 1,
             **kw: Any) -> None:
        """Queue ``fault`` for the next ``times`` requests to ``provider`` (and ``model``, if given).

        ``times=None`` repeats it until ``clear()``. Faults for a model are used before faults for any model.
        """
        if isinstance(fault, str):
            fault = Fault.named(fault, **kw)
        with self._lock:
            self._faults.setdefault((provider, model), deque()).append([fault, times])

    def fail_every(self, provider: str, fault: Fault | str, every: int, *, model: str | None = None) -> None:
        """``fault`` for every ``every``-th request to ``provider`` (and ``model``), until ``clear()``.

        Spread faults (``every=5``: 20%, never two in a row) for load tests, where a queue of ``times``
        faults would be spent by the first requests in one burst. Queued faults are used first.
        """
        if every < 1:
            raise ValueError(f"every must be at least 1, not {every}")
        if isinstance(fault, str):
            fault = Fault.named(fault)
        with self._lock:
            self._periodic[(provider, model)] = [fault, every, 0]

    def clear(self) -> None:
        """Drop every queued fault (usage, text and recorded requests stay)."""
        with self._lock:
            self._faults.clear()
            self._periodic.clear()

    def reset(self) -> None:
        """Back to a fresh server: no faults, default usage and text, no recorded requests."""
        with self._lock:
            self._faults.clear()
            self._periodic.clear()
            self._usage.clear()
            self._text.clear()
            self.requests.clear()

    def set_usage(self, provider: str, *, input_tokens: int, output_tokens: int, cached_tokens: int = 0,
                  model: str | None = None) -> None:
        """Tokens to report. ``input_tokens`` includes ``cached_tokens`` (Anthropic's wire form splits them)."""
        with self._lock:
            self._usage[(provider, model)] = Usage(input_tokens=input_tokens, output_tokens=output_tokens,
                                                   cached_tokens=cached_tokens)

    def set_text(self, provider: str, text: str, *, model: str | None = None) -> None:
        with self._lock:
            self._text[(provider, model)] = text

    def requests_for(self, provider: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.provider == provider]

    # ---- used by the handler -----------------------------------------------------------
    def _next_fault(self, provider: str, model: str) -> Fault | None:
        with self._lock:
            for key in ((provider, model), (provider, None)):
                queue = self._faults.get(key)
                if queue:
                    fault, times = queue[0]
                    if times is not None:
                        queue[0][1] = times - 1
                        if times - 1 <= 0:
                            queue.popleft()
                    return fault
            for key in ((provider, model), (provider, None)):
                periodic = self._periodic.get(key)
                if periodic is not None:
                    periodic[2] += 1
                    return periodic[0] if periodic[2] % periodic[1] == 0 else None
        return None

    def _lookup(self, table: dict, provider: str, model: str, default: Any) -> Any:
        with self._lock:
            return table.get((provider, model), table.get((provider, None), default))

    def usage_for(self, provider: str, model: str) -> Usage:
        return self._lookup(self._usage, provider, model, Usage())

    def text_for(self, provider: str, model: str) -> str:
        return self._lookup(self._text, provider, model,
                            f"A fake {provider} answer from {model}: a lighthouse keeper finds a message.")

    def _record(self, rec: Recorded) -> None:
        if self.record:
            with self._lock:
                self.requests.append(rec)


def echoed_key_shapes(key: str) -> list[str]:
    """The shapes an ``echo_key`` fault reflects the key in: lowercased, and split by a space (as sent)."""
    half = len(key) // 2
    return [key.lower(), f"{key[:half]} {key[half:]}"]


def _echoing(reply: Reply, key: str) -> Reply:
    """``reply`` with its error message reflecting ``key`` in each of ``echoed_key_shapes``."""
    lowered, split = echoed_key_shapes(key)
    error = dict(reply.body.get("error") or {})
    # First, since adapters keep the first sentence of a provider's message.
    error["message"] = f"Key {lowered!r} rejected (you sent '{split}'): {error.get('message', 'error')}"
    return Reply(status=reply.status, body={**reply.body, "error": error}, headers=reply.headers)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TaelioFake/1.0"

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle's algorithm and delayed ACKs add ~40 ms to every keep-alive call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    @property
    def fake(self) -> FakeServer:
        return self.server.fake  # type: ignore[attr-defined]

    # ---- plumbing --------------------------------------------------------------------------
    def _send_json(self, status: int, body: dict | bytes, headers: tuple[tuple[str, str], ...] = (),
                   *, cut: bool = False) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if cut:
            self.wfile.write(data[: len(data) // 2])
            self._hang_up()
            return
        self.wfile.write(data)

    def _send_reply(self, reply: Reply) -> None:
        self._send_json(reply.status, reply.body, reply.headers)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _send_events(self, events: list[bytes]) -> None:
        for event in events:
            if self.fake.chunk_delay_s:
                time.sleep(self.fake.chunk_delay_s)
            self._chunk(event)

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _hang_up(self, *, reset: bool = False) -> None:
        """Close the connection now: a FIN mid-body, or with ``reset`` an RST."""
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return  # the RST goes out when socketserver closes the socket
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- requests ---------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path.startswith("/_fake/requests"):
            with self.fake._lock:
                rows = [{**r.__dict__, "at": r.at} for r in self.fake.requests]
            self._send_json(200, {"requests": rows})
            return
        self._send_json(404, {"error": {"message": f"no route for GET {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(400, {"error": {"message": "request body is not JSON"}})
            return
        if self.path.startswith("/_fake/"):
            self._control(self.path, body)
            return
        protocol, provider = protocol_for_path(self.path)
        if protocol is None:
            self._send_json(404, {"error": {"message": f"no route for POST {self.path}"}})
            return
        try:
            self._serve(protocol, provider, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout fired)
            with self.fake._lock:
                self.fake.abandoned += 1

    def _key(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:]
        for name in ("x-api-key", "x-goog-api-key"):
            if self.headers.get(name):
                return self.headers[name]
        return (parse_qs(urlsplit(self.path).query).get("key") or [None])[0]

    def _serve(self, protocol: Protocol, provider: str, body: dict) -> None:
        fake = self.fake
        model, stream = protocol.model_and_stream(self.path, body)
        key = self._key()
        fault = fake._next_fault(provider, model)
        split = urlsplit(self.path)
        fake._record(Recorded(provider=provider, protocol=protocol.name, method="POST", path=split.path,
                              query=parse_qs(split.query), headers={k.lower(): v for k, v in self.headers.items()},
                              body=body, model=model, stream=stream, key=key, fault=fault.kind if fault else None))
        expected = fake.expected_keys.get(provider)
        if expected is not None and key != expected:
            self._send_reply(protocol.auth_error(model, key or ""))
            return
        usage = fake.usage_for(provider, model)
        kind = fault.kind if fault else None
        if kind == "reset":
            self._hang_up(reset=True)
            return
        if kind in ("timeout", "slow_first_token") and not (kind == "slow_first_token" and stream):
            if fake.stopping.wait(fault.delay_s):
                return
        if kind in ("rate_limited", "server_error", "unavailable", "not_found", "bad_request", "status"):
            self._send_reply(protocol.error(fault.status or 500, model, key=key or "", retry_after=fault.retry_after))
            return
        if kind == "auth":
            self._send_reply(protocol.auth_error(model, key or ""))
            return
        if kind == "echo_key":
            self._send_reply(_echoing(protocol.error(fault.status or 401, model, key=key or ""), key or ""))
            return
        text = "" if kind == "empty" else fake.text_for(provider, model)
        if not stream:
            self._answer(protocol, model, text, usage, fault)
            return
        self._start_stream()
        if kind == "slow_first_token" and fake.stopping.wait(fault.delay_s):
            return
        if kind == "blocked":
            self._send_events(protocol.blocked_events(model, usage, body, fault.where))
        elif kind == "malformed":
            self._send_events([protocol.malformed_event])
        else:
            content, final = protocol.events(model, _split_text(text) if text else [], usage, body)
            if kind == "stream_cut":
                self._send_events(content[: fault.after_chunks + 1])
                if not fault.quiet:
                    self._hang_up()
                    return
            else:
                self._send_events(content + final)
        self._end_stream()

    def _answer(self, protocol: Protocol, model: str, text: str, usage: Usage, fault: Fault | None) -> None:
        kind = fault.kind if fault else None
        if kind == "malformed":
            self._send_json(200, protocol.malformed_json)
        elif kind == "blocked":
            self._send_json(200, protocol.blocked(model, usage, fault.where))
        else:
            self._send_json(200, protocol.answer(model, text, usage), cut=kind == "stream_cut")

    def _control(self, path: str, body: dict) -> None:
        """The scripting API over HTTP, for a standalone server (``python -m tests.fakeserver``)."""
        fake = self.fake
        try:
            if path == "/_fake/fail":
                fault = Fault(**body["fault"]) if isinstance(body["fault"], dict) else Fault.named(body["fault"])
                fake.fail(body["provider"], fault, model=body.get("model"), times=body.get("times", 1))
            elif path == "/_fake/fail_every":
                fault = Fault(**body["fault"]) if isinstance(body["fault"], dict) else Fault.named(body["fault"])
                fake.fail_every(body["provider"], fault, int(body["every"]), model=body.get("model"))
            elif path == "/_fake/usage":
                fake.set_usage(body.pop("provider"), **body)
            elif path == "/_fake/text":
                fake.set_text(body["provider"], body["text"], model=body.get("model"))
            elif path == "/_fake/reset":
                fake.reset()
            else:
                self._send_json(404, {"error": {"message": f"no control endpoint {path}"}})
                return
        except (KeyError, TypeError, ValueError) as e:
            self._send_json(400, {"error": {"message": f"bad control request: {e}"}})
            return
        self._send_json(200, {"ok": True})
