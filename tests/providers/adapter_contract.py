"""What every adapter test shares: the request, the fault table, and exception-class walking.

Each ``test_<provider>.py`` drives its adapter through the real SDK against
the fake server with the faults below, and checks that every exception class
its mapper handles lands on a specific ``ProviderError`` subclass.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import httpx2
import pytest

from taelio_core.errors import (
    AuthFailed,
    BadRequest,
    BadResponse,
    ContentBlocked,
    ModelNotFound,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    UnexpectedError,
)
from taelio_core.providers.base import Provider
from taelio_core.routing.generation import ChatRequest, Completion, GenerationSettings, StreamEnd, TextDelta, Usage
from tests.fakeserver import FakeServer, Fault

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

SYSTEM = "You are a creative writing partner."
USER = "Premise: a lighthouse\nGive me one story idea."


def chat_request(timeout_s: float = 5.0, max_tokens: int = 321, temperature: float = 0.25) -> ChatRequest:
    return ChatRequest(system=SYSTEM, user=USER, task="idea",
                       settings=GenerationSettings(max_tokens=max_tokens, temperature=temperature,
                                                   timeout_s=timeout_s))


async def _closing(provider: Provider, coro: Awaitable[T]) -> T:
    """Run ``coro``, then close the provider's client for this loop (before ``asyncio.run`` closes the loop)."""
    try:
        return await coro
    finally:
        await provider.aclose()


async def _collect(provider: Provider, model: str, request: ChatRequest) -> tuple[Completion, list[str]]:
    deltas: list[str] = []
    end = None
    async for event in provider.stream(model, request):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        elif isinstance(event, StreamEnd):
            end = event
    assert end is not None, "the adapter's stream must end with a StreamEnd"
    return Completion(text="".join(deltas), usage=end.usage, finish_reason=end.finish_reason,
                      response_model=end.response_model), deltas


def call(provider: Provider, model: str, request: ChatRequest | None = None, *,
         streaming: bool = False) -> Completion:
    """One call through the adapter on a fresh event loop (a stream is gathered into a Completion)."""
    request = request or chat_request()
    if streaming:
        return asyncio.run(_closing(provider, _collect(provider, model, request)))[0]
    return asyncio.run(_closing(provider, provider.complete(model, request)))


def stream_deltas(provider: Provider, model: str, request: ChatRequest | None = None) -> tuple[Completion, list[str]]:
    return asyncio.run(_closing(provider, _collect(provider, model, request or chat_request())))


def failure(provider: Provider, model: str, request: ChatRequest | None = None, *,
            streaming: bool = False) -> ProviderError:
    """The ``ProviderError`` a call raises (fails the test if it raises nothing or something else)."""
    try:
        call(provider, model, request, streaming=streaming)
    except ProviderError as e:
        return e
    raise AssertionError("expected a ProviderError, the call succeeded")


@dataclass(frozen=True, kw_only=True)
class FaultCase:
    name: str
    fault: Fault
    error: type[ProviderError]
    http_status: int | None
    retry_after: float | None = None
    stream_only: bool = False


# The same wire fault means the same thing whichever provider sent it.
FAULT_CASES = [
    FaultCase(name="rate_limited", fault=Fault.rate_limited(retry_after=7), error=RateLimited, http_status=429,
              retry_after=7.0),
    FaultCase(name="server_error", fault=Fault.named("server_error"), error=ProviderUnavailable, http_status=500),
    FaultCase(name="unavailable", fault=Fault.named("unavailable"), error=ProviderUnavailable, http_status=503),
    FaultCase(name="overloaded_529", fault=Fault.status_code(529), error=ProviderUnavailable, http_status=529),
    FaultCase(name="timeout", fault=Fault.timeout(delay_s=3.0), error=ProviderTimeout, http_status=None),
    FaultCase(name="malformed", fault=Fault.named("malformed"), error=BadResponse, http_status=200),
    FaultCase(name="empty", fault=Fault.named("empty"), error=BadResponse, http_status=200),
    FaultCase(name="blocked", fault=Fault.named("blocked"), error=ContentBlocked, http_status=200),
    FaultCase(name="auth", fault=Fault.named("auth"), error=AuthFailed, http_status=401),
    FaultCase(name="forbidden", fault=Fault.status_code(403), error=AuthFailed, http_status=403),
    FaultCase(name="not_found", fault=Fault.named("not_found"), error=ModelNotFound, http_status=404),
    FaultCase(name="bad_request", fault=Fault.named("bad_request"), error=BadRequest, http_status=400),
    FaultCase(name="unprocessable", fault=Fault.status_code(422), error=BadRequest, http_status=422),
    FaultCase(name="reset", fault=Fault.named("reset"), error=ProviderUnavailable, http_status=None),
    FaultCase(name="stream_cut", fault=Fault.stream_cut(after_chunks=2), error=BadResponse, http_status=None,
              stream_only=True),
    FaultCase(name="stream_cut_quiet", fault=Fault.stream_cut(after_chunks=2, quiet=True), error=BadResponse,
              http_status=200, stream_only=True),
]
FAULT_TIMEOUT_S = 0.4  # the per-attempt timeout used with FAULT_CASES (the timeout fault waits 3 s)


def fault_params() -> list[tuple[FaultCase, bool]]:
    return [(case, streaming) for case in FAULT_CASES for streaming in (False, True)
            if streaming or not case.stream_only]


def fault_ids() -> list[str]:
    return [f"{case.name}-{'stream' if streaming else 'json'}" for case, streaming in fault_params()]


def check_fault(err: ProviderError, case: FaultCase, *, provider: str, model: str,
                http_status: int | None = None) -> None:
    assert type(err) is case.error, f"{case.name}: got {type(err).__name__}: {err}"
    assert err.http_status == (http_status if http_status is not None else case.http_status), str(err)
    assert (err.provider, err.model) == (provider, model)
    if case.retry_after is not None:
        assert err.retry_after == case.retry_after
    assert "\n" not in str(err) and str(err).endswith(".")


def all_subclasses(root: type) -> Iterator[type]:
    for sub in root.__subclasses__():
        yield sub
        yield from all_subclasses(sub)


def status_error(cls: type[E], status: int, *, body: object = None, **kw: object) -> E:
    """An SDK's HTTP status exception (openai and anthropic share the constructor) around a fake response."""
    return cls("synthetic", response=http_response(status, **kw), body=body)  # type: ignore[call-arg]


def bare_instance(cls: type[BaseException]) -> BaseException:
    """An instance of ``cls`` without calling its (SDK-specific) constructor."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, f"synthetic {cls.__name__}")
    return exc


def assert_specific(err: ProviderError, source: object) -> None:
    assert isinstance(err, ProviderError), source
    assert type(err) is not ProviderError, f"{source} landed on the bare ProviderError"


HTTP_REQUEST = httpx2.Request("POST", "http://127.0.0.1:9/v1/x")


def http_response(status: int, *, headers: dict[str, str] | None = None, body: object = None) -> httpx2.Response:
    return httpx2.Response(status, request=HTTP_REQUEST, headers=headers or {},
                           json=body if body is not None else {"error": {"message": "synthetic"}})


# Raw transport errors, as google-genai lets them escape (and any SDK does mid-stream).
TRANSPORT_CASES: list[tuple[BaseException, type[ProviderError]]] = [
    (httpx2.ConnectError("refused", request=HTTP_REQUEST), ProviderUnavailable),
    (httpx2.ConnectTimeout("slow connect", request=HTTP_REQUEST), ProviderTimeout),
    (httpx2.ReadTimeout("slow read", request=HTTP_REQUEST), ProviderTimeout),
    (httpx2.WriteTimeout("slow write", request=HTTP_REQUEST), ProviderTimeout),
    (httpx2.PoolTimeout("pool", request=HTTP_REQUEST), ProviderTimeout),
    (httpx2.ReadError("reset by peer", request=HTTP_REQUEST), ProviderUnavailable),
    (httpx2.WriteError("broken pipe", request=HTTP_REQUEST), ProviderUnavailable),
    (httpx2.CloseError("close", request=HTTP_REQUEST), ProviderUnavailable),
    (httpx2.RemoteProtocolError("Server disconnected without sending a response.", request=HTTP_REQUEST),
     ProviderUnavailable),
    (httpx2.ProxyError("proxy", request=HTTP_REQUEST), ProviderUnavailable),
    (httpx2.LocalProtocolError("bad header", request=HTTP_REQUEST), BadRequest),
    (httpx2.UnsupportedProtocol("ftp://", request=HTTP_REQUEST), BadRequest),
    (httpx2.DecodingError("gzip", request=HTTP_REQUEST), BadResponse),
    (httpx2.TooManyRedirects("loop", request=HTTP_REQUEST), BadResponse),
    (httpx2.HTTPStatusError("503", request=HTTP_REQUEST, response=http_response(503)), ProviderUnavailable),
    (httpx2.InvalidURL("bad url"), BadRequest),
    (httpx2.StreamConsumed(), BadResponse),
]


def check_transport_mapping(map_error: Callable[..., ProviderError]) -> None:
    """Every listed transport error maps as expected, every ``httpx2`` error class lands on a specific class,
    and a broken connection after a stream began is a ``BadResponse``."""
    for exc, expected in TRANSPORT_CASES:
        err = map_error(exc, provider="p", model="m")
        assert type(err) is expected, f"{type(exc).__name__} -> {type(err).__name__}"
    for cls in [httpx2.HTTPError, *all_subclasses(httpx2.HTTPError), *all_subclasses(httpx2.StreamError),
                httpx2.InvalidURL, httpx2.CookieConflict]:
        assert_specific(map_error(bare_instance(cls), provider="p", model="m"), cls)
    cut = map_error(httpx2.RemoteProtocolError("incomplete chunked read", request=HTTP_REQUEST), provider="p",
                    model="m", streaming=True)
    assert type(cut) is BadResponse


class AdapterContract:
    """Tests every adapter must pass; a ``Test<Provider>Contract`` subclass in each test file sets these."""

    name = ""                                # the fake server's name for the provider
    model = ""
    key = ""
    status_overrides: dict[str, int] = {}    # fault name -> http_status where a provider differs
    refused_suffix = ""                      # appended to a refused http://127.0.0.1:PORT to make a base URL
    map_error: Callable[..., ProviderError]  # the adapter module's map_error, as a staticmethod
    sdk_cases: list[tuple[BaseException, type[ProviderError]]] = []  # SDK exception -> the class it must land on
    sdk_roots: list[type[BaseException]] = []  # every subclass of these must land on a specific class
    min_sdk_classes = 1
    finish_reason = "stop"                   # the provider's own word for a normal end

    def make(self, base_url: str | None, key: str | None) -> Provider:
        raise NotImplementedError

    def base_url(self, fake: FakeServer) -> str:
        return fake.base_url(self.name)

    @pytest.fixture
    def provider(self, fake_server: FakeServer) -> Provider:
        return self.make(self.base_url(fake_server), self.key)

    def test_a_stream_yields_text_as_it_arrives_with_the_wire_usage(self, provider: Provider,
                                                                    fake_server: FakeServer) -> None:
        fake_server.set_usage(self.name, input_tokens=800, output_tokens=55, cached_tokens=512)
        completion, deltas = stream_deltas(provider, self.model)
        assert len(deltas) > 3 and "".join(deltas) == completion.text
        assert completion.usage == Usage(input_tokens=800, output_tokens=55, cached_tokens=512)
        assert completion.finish_reason == self.finish_reason
        [sent] = fake_server.requests
        assert sent.stream and sent.key == self.key

    @pytest.mark.parametrize(("case", "streaming"), fault_params(), ids=fault_ids())
    def test_each_fault_lands_on_its_class(self, provider: Provider, fake_server: FakeServer, case: FaultCase,
                                           streaming: bool) -> None:
        fake_server.fail(self.name, case.fault)
        err = failure(provider, self.model, chat_request(timeout_s=FAULT_TIMEOUT_S), streaming=streaming)
        check_fault(err, case, provider=provider.name, model=self.model,
                    http_status=self.status_overrides.get(case.name))

    @pytest.mark.parametrize("streaming", [False, True])
    def test_connection_refused_is_unavailable(self, refused_url: str, streaming: bool) -> None:
        provider = self.make(refused_url + self.refused_suffix, self.key)
        err = failure(provider, self.model, streaming=streaming)
        assert type(err) is ProviderUnavailable and err.http_status is None

    def test_a_slow_first_token_within_the_timeout_still_answers(self, provider: Provider,
                                                                 fake_server: FakeServer) -> None:
        fake_server.fail(self.name, Fault.slow_first_token(delay_s=0.2))
        completion, _ = stream_deltas(provider, self.model, chat_request(timeout_s=3.0))
        assert completion.text.startswith(f"A fake {self.name} answer")
        assert fake_server.requests[-1].fault == "slow_first_token"

    def test_sdk_retries_are_off(self, provider: Provider, fake_server: FakeServer) -> None:
        fake_server.fail(self.name, "unavailable", times=None)
        assert isinstance(failure(provider, self.model), ProviderUnavailable)
        fake_server.clear()
        fake_server.fail(self.name, "rate_limited", retry_after=0)
        assert isinstance(failure(provider, self.model, streaming=True), RateLimited)
        assert len(fake_server.requests) == 2  # one request per call: the SDK tried nothing again

    def test_the_key_never_appears_in_error_text(self, provider: Provider, fake_server: FakeServer) -> None:
        fake_server.fail(self.name, "auth")
        err = failure(provider, self.model)
        assert isinstance(err, AuthFailed)
        assert fake_server.requests[-1].key == self.key  # the key was sent...
        for text in (str(err), repr(err), str(err.args)):
            assert self.key not in text  # ...and appears in no error text

    def test_each_event_loop_gets_its_own_client(self, provider: Provider) -> None:
        for _ in range(2):  # asyncio.run makes a new loop each time; a client bound to the old one would fail
            assert call(provider, self.model).text

        async def two_gets() -> tuple[object, object]:
            clients = provider._clients  # type: ignore[attr-defined]
            return clients.get(), clients.get()

        first, again = asyncio.run(_closing(provider, two_gets()))
        other, _ = asyncio.run(_closing(provider, two_gets()))
        assert first is again and first is not other

    def test_a_stream_cut_after_text_is_a_bad_response(self, provider: Provider, fake_server: FakeServer) -> None:
        fake_server.fail(self.name, Fault.stream_cut(after_chunks=3))
        seen: list[str] = []

        async def consume() -> None:
            async for event in provider.stream(self.model, chat_request()):
                seen.append(getattr(event, "text", ""))

        with pytest.raises(BadResponse, match="cut the stream off"):
            asyncio.run(_closing(provider, consume()))
        assert "".join(seen).startswith("A fake")  # text had arrived before the cut

    def test_every_transport_error_lands_on_a_specific_subclass(self) -> None:
        check_transport_mapping(self.map_error)

    def test_each_listed_sdk_exception_lands_on_its_class(self) -> None:
        assert self.sdk_cases
        wrong = []
        for exc, expected in self.sdk_cases:
            got = self.map_error(exc, provider=self.name, model=self.model)
            if type(got) is not expected:
                wrong.append(f"{type(exc).__name__}({exc}) -> {type(got).__name__}, expected {expected.__name__}")
        assert not wrong, "; ".join(wrong)

    def test_every_sdk_exception_class_lands_on_a_specific_subclass(self) -> None:
        classes = [cls for root in self.sdk_roots for cls in (root, *all_subclasses(root))]
        assert len(classes) >= self.min_sdk_classes
        for cls in classes:
            assert_specific(self.map_error(bare_instance(cls), provider=self.name, model=self.model), cls)

    def test_an_unrelated_exception_does_not_pass_the_contract(self) -> None:
        """The contract can fail: an exception no mapper knows (our own bug) is an ``UnexpectedError`` around the
        original, never a provider fault, and the check every SDK class must pass rejects it."""
        for exc in (RuntimeError("our bug"), KeyError("choices"), ZeroDivisionError("division by zero"),
                    AttributeError("'NoneType' object has no attribute 'text'")):
            err = self.map_error(exc, provider=self.name, model=self.model)
            assert type(err) is UnexpectedError and err.__cause__ is exc and err.error_type == "unexpected"
            with pytest.raises(AssertionError):
                assert_specific(err, type(exc))  # type: ignore[arg-type]
