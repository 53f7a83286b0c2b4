"""A local server that speaks the real OpenAI, Anthropic and Gemini HTTP protocols, with scriptable faults.

The adapters are tested through the real SDKs, and the SDKs speak HTTP
through ``httpx2`` (which ``respx`` cannot intercept), so the honest fake is a
real server on 127.0.0.1. It answers:

=============================================  ==========================================================
``POST /v1/chat/completions``                  OpenAI: JSON, or SSE when ``"stream": true`` (a final
                                               usage chunk when ``stream_options.include_usage``)
``POST /<name>/v1/chat/completions``           the same, as an OpenAI-compatible server called ``<name>``
``POST /v1/messages``                          Anthropic: JSON, or SSE (message_start, content_block_*,
                                               message_delta, message_stop)
``POST /v1/models/{model}:generateContent``      Gemini JSON (also ``/v1beta/...``, or any version);
                                               ``:streamGenerateContent?alt=sse`` for SSE
=============================================  ==========================================================

In tests (fixtures in ``tests/fakeserver/fixtures.py``, registered by ``tests/conftest.py``)::

    def test_x(fake_server):                      # a fresh server per test, stopped afterwards
        fake_server.base_url("openai")            # "http://127.0.0.1:PORT/v1" (anthropic: bare, gemini: "/")
        fake_server.fail("openai", Fault.rate_limited(retry_after=7))       # the next openai request gets a 429
        fake_server.fail("gemini", "unavailable", model="gemini-2.5-pro", times=None)   # every request, until clear()
        fake_server.fail_every("gemini", "unavailable", 5)  # every 5th gemini request: 20%, never two in a row
        fake_server.set_usage("anthropic", input_tokens=1200, output_tokens=80, cached_tokens=1000)
        fake_server.set_text("openai", "Once upon a time")
        fake_server.requests[-1].body["model"]    # every request received: path, headers, body, model, key
        fake_server.expected_keys["openai"] = "sk-..."  # answer any other key as the real API does (401)
        fake_server.env(OPENAI_API_KEY="sk-...")  # env vars pointing all three SDKs here, for a CLI subprocess

    # Router-level tests through the real SDKs: build the providers from a policy, pointed here.
    settings = load_settings(env=fake_server.env(OPENAI_API_KEY="sk-test-1", ANTHROPIC_API_KEY="sk-ant-test-1",
                                                 GEMINI_API_KEY="AIza-test-key-000000000000"))
    router = Router(policy, build_providers(policy, settings, mode="live"))

Faults (``Fault.named(kind, **options)`` or the ``Fault.<kind>()`` shortcuts), queued per provider and,
optionally, per model; a model's faults are used before the provider-wide ones:

==================  =================================================================================
rate_limited        429 with ``Retry-After`` (``retry_after=``; Gemini also gets a RetryInfo detail)
server_error        500 with the provider's error body
unavailable         503 with the provider's error body
status              any status (``Fault.status_code(401)``, 403, 409, 529...) with the provider's body
auth                the provider's real answer to a wrong key (401; Gemini: 400 API_KEY_INVALID),
                    echoing the key so tests can prove it is redacted
not_found           404, model not found, each provider's real body
bad_request         400, context too long, each provider's real body
timeout             silence for ``delay_s`` (default 2 s; set it past the client's timeout), then an answer
slow_first_token    ``delay_s`` before the first event (streams) or the answer (JSON)
malformed           200 with broken JSON (or a broken SSE event)
empty               a normal answer with no text
blocked             each provider's safety stop: OpenAI ``content_filter``, Anthropic ``refusal``, Gemini
                    finishReason SAFETY (``where="prompt"``: promptFeedback.blockReason)
stream_cut          ``after_chunks`` text events, then the connection closes without the final event;
                    ``quiet=True`` ends the body cleanly instead, so only the missing finish reason shows
reset               the connection is reset (RST) before any response
echo_key            an error (``status=`` 401 by default; 400, 500...) whose message reflects the key
                    lowercased and split by a space (``echoed_key_shapes``), to test redaction
==================  =================================================================================

Connection refused needs no server: ``closed_port()`` gives a loopback port nothing listens on.

Standalone (benchmarks, manual runs): ``python -m tests.fakeserver --port 8765 [--zero-latency]``
prints ``READY http://127.0.0.1:PORT`` and serves until killed. The same scripting is available over
HTTP: ``POST /_fake/fail {"provider": "openai", "fault": "rate_limited", "times": 1}`` (or ``"fault":
{"kind": "timeout", "delay_s": 3}``), ``POST /_fake/usage {"provider", "input_tokens", "output_tokens",
"cached_tokens"}``, ``POST /_fake/text``, ``POST /_fake/reset``, ``GET /_fake/requests``.
``--zero-latency`` records nothing and adds no delay (the default adds none either unless
``--chunk-delay-ms`` is given).
"""
from __future__ import annotations

from tests.fakeserver.protocols import Usage
from tests.fakeserver.server import FAULT_KINDS, FakeServer, Fault, Recorded, closed_port

__all__ = ["FAULT_KINDS", "FakeServer", "Fault", "Recorded", "Usage", "closed_port"]
