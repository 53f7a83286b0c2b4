"""Streams: transparent fallback before the first token, truncation after it, and silent stops."""
from __future__ import annotations

from taelio_core.errors import ProviderUnavailable
from taelio_core.routing.router import Truncated
from tests.resilience.support import INPUTS, router, run, streaming, words

NO_RETRY = "[resilience]\nmax_retries = 0\n"


async def _collect(stream):
    items = []
    async for item in stream:
        items.append(item)
    return items


def _fail_first():
    return [ProviderUnavailable("down", provider="a", model="a1", http_status=503)]


def test_a_failure_before_the_first_token_falls_back_transparently():
    r = router({"a": streaming("a", lambda m, q: _fail_first()), "b": streaming("b", lambda m, q: words("Hi", " there"))},
               extra=NO_RETRY)
    stream = r.astream("pro", "idea", INPUTS)
    items = run(_collect(stream))
    assert items == ["Hi", " there"]
    result = stream.result
    assert result.status == "ok" and result.text == "Hi there" and result.provider == "b"
    assert [(a.provider, a.status, a.http_status) for a in result.attempts] == [("a", "error", 503), ("b", "ok", None)]


def test_a_break_after_text_is_truncated_never_success():
    cut = lambda m, q: words("Once", " upon", finish=False) + [ProviderUnavailable("reset", provider="a", model=m)]  # noqa: E731
    r = router({"a": streaming("a", cut), "b": streaming("b", lambda m, q: words("B"))}, extra=NO_RETRY)
    stream = r.astream("pro", "idea", INPUTS)
    items = run(_collect(stream))
    assert items == ["Once", " upon"]
    result = stream.result
    assert result.status == "truncated" and not result.ok and result.text == "Once upon"
    # The status and error_type say it was cut (the class breakers count); the error text says why.
    assert [(a.provider, a.status, a.error_type) for a in result.attempts] == [("a", "truncated", "truncated")]
    assert "reset" in result.attempts[0].error
    assert "stopped mid-answer" in result.error
    assert stream.raise_for_status().status == "truncated"


def test_the_caller_can_continue_on_the_next_entry_after_a_truncation():
    cut = lambda m, q: words("Once", finish=False) + [ProviderUnavailable("reset", provider="a", model=m)]  # noqa: E731
    r = router({"a": streaming("a", cut), "b": streaming("b", lambda m, q: words("Again"))}, extra=NO_RETRY)
    stream = r.astream("pro", "idea", INPUTS, continue_on_truncation=True)
    items = run(_collect(stream))
    assert items[0] == "Once" and isinstance(items[1], Truncated) and items[1].provider == "a"
    assert items[2:] == ["Again"]
    assert stream.result.status == "ok" and stream.result.text == "Again"
    # The next call can also skip the entry that broke.
    again = r.astream("pro", "idea", INPUTS, exclude={"a:a1"})
    assert run(_collect(again)) == ["Again"]
    assert again.result.skipped[0].reason == "excluded by the caller"


def test_a_stream_that_stops_without_a_finish_reason_is_detected():
    # Before any text: a bad response, and the router falls back.
    r = router({"a": streaming("a", lambda m, q: []), "b": streaming("b", lambda m, q: words("B"))}, extra=NO_RETRY)
    stream = r.astream("pro", "idea", INPUTS)
    assert run(_collect(stream)) == ["B"]
    first = stream.result.attempts[0]
    assert (first.status, first.error_type, first.error) == (
        "error", "bad_response", "the stream ended without a finish reason")
    # After text: truncated.
    r = router({"a": streaming("a", lambda m, q: words("Half", finish=False))}, extra=NO_RETRY)
    stream = r.astream("pro", "idea", INPUTS)
    run(_collect(stream))
    assert stream.result.status == "truncated"
    assert "without a finish reason" in stream.result.attempts[0].error


def test_an_empty_stream_with_a_finish_reason_is_a_bad_response():
    r = router({"a": streaming("a", lambda m, q: words()), "b": streaming("b", lambda m, q: words("B"))},
               extra=NO_RETRY)
    stream = r.astream("pro", "idea", INPUTS)
    run(_collect(stream))
    assert stream.result.attempts[0].error == "the provider returned an empty completion"
    assert stream.result.provider == "b"


def test_a_stream_is_retried_only_before_text():
    calls = {"n": 0}

    def flaky(m, q):
        calls["n"] += 1
        return _fail_first() if calls["n"] == 1 else words("Second", " try")

    r = router({"a": streaming("a", flaky)}, extra="[resilience]\nmax_retries = 1\nbackoff_base_s = 0\n")
    stream = r.astream("pro", "idea", INPUTS)
    assert run(_collect(stream)) == ["Second", " try"]
    assert [(a.status, a.retry) for a in stream.result.attempts] == [("error", 0), ("ok", 1)]
