"""The fault matrix: each provider, through its real SDK, against the local protocol server, with each fault.

For every (provider P, fault, mode) the chain is ``[P, Q]`` (Q is the next of
the three providers, healthy) and the router's outcome is checked: which
attempts were made (retries included), with which ``error_type`` and
``http_status``, where it fell back, and the final status; the same rows
must be in a real DuckDB file. ``tests/resilience/test_fault_matrix.py``
runs it in CI; this module also prints it as a table for the report::

    /work/main/.venv/bin/python -m tests.resilience.fault_matrix
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from taelio_core.config.policy_parser import parse_policy
from taelio_core.config.settings import load_settings
from taelio_core.errors import TaelioError
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Truncated
from taelio_core.routing.trace import GenerationResult
from taelio_core.wiring import Taelio
from tests.fakeserver import FakeServer, Fault, closed_port

MODELS = {"openai": "gpt-4.1-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
NEXT = {"openai": "anthropic", "anthropic": "gemini", "gemini": "openai"}
KEYS = {"OPENAI_API_KEY": "sk-matrix-openai-0000000000", "ANTHROPIC_API_KEY": "sk-ant-matrix-0000000000",
        "GEMINI_API_KEY": "AIzaMatrixKey000000000000000000000"}
ATTEMPT_TIMEOUT_S = 1.0   # each SDK client is warmed up first, so a healthy call takes milliseconds
INPUTS = Inputs(prompt="A lighthouse keeper finds a message")
# Long enough that a cut after 6 events (Anthropic sends 3 before any text) leaves text shown and text unsent.
TEXT = " ".join(f"word{i}" for i in range(40))

# An attempt as the matrix describes it: (who, status, error_type, http_status, retry, hedge); who is P or Q.
Row = tuple[str, str, str | None, int | None, int, bool]


@dataclass(frozen=True, kw_only=True)
class Case:
    name: str                 # as the issue lists it
    fault: Fault | None       # None: connection refused (nothing listens)
    times: int | None         # how many of P's requests get the fault (None: all)
    attempts: tuple[Row, ...]
    status: str               # the request's final status
    served_by: str | None     # P, Q or None
    modes: tuple[str, ...] = ("json", "stream")
    hedge_after_ms: float | None = None


def _fallback(p_rows: list[Row]) -> tuple[Row, ...]:
    return (*p_rows, ("Q", "ok", None, None, 0, False))


def _two(error_type: str, status: int | None) -> list[Row]:
    return [("P", "error", error_type, status, 0, False), ("P", "error", error_type, status, 1, False)]


CASES = [
    Case(name="429, Retry-After fits", fault=Fault.rate_limited(retry_after=0.05), times=1,
         attempts=(("P", "error", "rate_limited", 429, 0, False), ("P", "ok", None, None, 1, False)),
         status="ok", served_by="P"),
    Case(name="429, Retry-After too long", fault=Fault.rate_limited(retry_after=60), times=None,
         attempts=_fallback([("P", "error", "rate_limited", 429, 0, False)]), status="ok", served_by="Q"),
    Case(name="500", fault=Fault.named("server_error"), times=None, attempts=_fallback(_two("unavailable", 500)),
         status="ok", served_by="Q"),
    Case(name="503", fault=Fault.named("unavailable"), times=None, attempts=_fallback(_two("unavailable", 503)),
         status="ok", served_by="Q"),
    Case(name="read timeout", fault=Fault.timeout(delay_s=2.5), times=None,
         attempts=_fallback(_two("timeout", None)), status="ok", served_by="Q"),
    Case(name="connection refused", fault=None, times=None, attempts=_fallback(_two("unavailable", None)),
         status="ok", served_by="Q"),
    Case(name="malformed JSON", fault=Fault.named("malformed"), times=None,
         attempts=_fallback([("P", "error", "bad_response", 200, 0, False)]), status="ok", served_by="Q"),
    Case(name="empty completion", fault=Fault.named("empty"), times=None,
         attempts=_fallback([("P", "error", "bad_response", 200, 0, False)]), status="ok", served_by="Q"),
    Case(name="content blocked", fault=Fault.named("blocked"), times=None,
         attempts=_fallback([("P", "error", "content_blocked", 200, 0, False)]), status="ok", served_by="Q"),
    Case(name="401", fault=Fault.named("auth"), times=None,
         attempts=_fallback([("P", "error", "auth_failed", 401, 0, False)]), status="ok", served_by="Q"),
    Case(name="404 model not found", fault=Fault.named("not_found"), times=None,
         attempts=_fallback([("P", "error", "model_not_found", 404, 0, False)]), status="ok", served_by="Q"),
    Case(name="stream cut mid-way", fault=Fault.stream_cut(after_chunks=6), times=None,
         attempts=(("P", "truncated", "truncated", None, 0, False),), status="truncated", served_by="P",
         modes=("stream",)),
    Case(name="stream ends quietly, no finish reason", fault=Fault.stream_cut(after_chunks=6, quiet=True),
         times=None, attempts=(("P", "truncated", "truncated", 200, 0, False),), status="truncated",
         served_by="P", modes=("stream",)),
    Case(name="slow first token (no hedging)", fault=Fault.slow_first_token(delay_s=0.3), times=None,
         attempts=(("P", "ok", None, None, 0, False),), status="ok", served_by="P"),
    Case(name="slow first token (hedged at 150 ms)", fault=Fault.slow_first_token(delay_s=0.8), times=None,
         attempts=(("P", "cancelled", "cancelled", None, 0, False), ("Q", "ok", None, None, 0, True)),
         status="ok", served_by="Q", hedge_after_ms=150),
]
# Where a provider's real protocol says it differently (Gemini answers a bad key with 400 API_KEY_INVALID).
STATUS_OVERRIDES = {("gemini", "401"): 400}


def expected_rows(case: Case, provider: str) -> list[Row]:
    override = STATUS_OVERRIDES.get((provider, case.name))
    return [(who, status, et, override if (who == "P" and override and et) else http, retry, hedge)
            for who, status, et, http, retry, hedge in case.attempts]


def policy_text(provider: str, case: Case, server: FakeServer) -> str:
    fallback = NEXT[provider]
    base = f"http://127.0.0.1:{closed_port()}" if case.fault is None else None
    lines = ['name = "fault-matrix"', "[defaults]", f"timeout_s = {ATTEMPT_TIMEOUT_S}", "max_tokens = 50"]
    for name in MODELS:
        lines += [f"[providers.{name}]", f'kind = "{name}"']
        if name == provider and base is not None:
            lines.append(f'base_url = "{base}/v1" ' if name == "openai" else f'base_url = "{base}/"')
    lines += ["[tasks.idea]", 'user = "Premise: {prompt}"', "[tiers.pro]", "[routes.pro]",
              f'idea = ["{provider}:{MODELS[provider]}", "{fallback}:{MODELS[fallback]}"]',
              "[resilience]", "deadline_s = 20", "max_retries = 1", "backoff_base_s = 0.01", "backoff_max_s = 0.02",
              "max_retry_after_s = 5", "[breakers]", "consecutive_failures = 50"]
    if case.hedge_after_ms is not None:
        lines += ["[hedging.pro]", f"after_ms = {case.hedge_after_ms}", "floor_ms = 0"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, kw_only=True)
class Outcome:
    result: GenerationResult
    rows: list[Row]                  # from the result, P/Q resolved
    logged: list[Row]                # the same, from DuckDB
    next_skip: str | None            # the reason P is skipped on the following request (health marks)
    escaped: str | None              # an exception that reached the caller (must be None)


def run_case(server: FakeServer, tmp: Path, provider: str, case: Case, mode: str) -> Outcome:
    server.reset()
    who = {provider: "P", NEXT[provider]: "Q"}
    db = tmp / f"{provider}-{abs(hash((case.name, mode)))}.duckdb"
    engine = Taelio.open(policy=parse_policy(policy_text(provider, case, server), source="matrix.toml"),
                         settings=load_settings(env=server.env(**KEYS)), database=db)
    escaped = None
    result: GenerationResult | None = None
    try:
        # Warm each SDK client on the router's loop: a cold first call (imports, TLS-less connect, client setup)
        # can take longer than the attempt timeout on a busy machine, and the matrix is about the faults.
        for name in (provider, NEXT[provider]):
            server.set_text(name, TEXT)
            if case.fault is not None or name != provider:
                engine.router.probe(name, "idea")
        if case.fault is not None:
            server.fail(provider, case.fault, times=case.times)
        try:
            if mode == "stream":
                stream = engine.router.stream("pro", "idea", INPUTS)
                for item in stream:
                    assert isinstance(item, str | Truncated)
                result = stream.result
            else:
                result = engine.router.generate("pro", "idea", INPUTS)
        except (TaelioError, Exception) as e:  # noqa: BLE001 - the matrix reports anything that escapes
            escaped = f"{type(e).__name__}: {e}"
            result = getattr(e, "result", None)
        next_skip = None
        if result is not None and any(a.error_type in ("auth_failed", "model_not_found") for a in result.attempts):
            again = engine.router.generate("pro", "idea", INPUTS)
            next_skip = next((s.reason for s in again.skipped if s.provider == provider), None)
        assert engine.log is not None
        engine.log.flush()
        assert result is not None, escaped
        logged = engine.log.query(
            "SELECT provider, status, error_type, http_status, retry, hedge FROM attempts WHERE request_id = ? "
            "ORDER BY n", [result.request_id])
    finally:
        engine.close()
    rows = [(who[a.provider], a.status, a.error_type, a.http_status, a.retry, a.hedge) for a in result.attempts]
    logged_rows = [(who[r.provider], r.status, _none(r.error_type), _int(r.http_status), int(r.retry), bool(r.hedge))
                   for r in logged.itertuples(index=False)]
    return Outcome(result=result, rows=rows, logged=logged_rows, next_skip=next_skip, escaped=escaped)


def _none(value: object) -> object:
    return None if pd.isna(value) else value


def _int(value: object) -> int | None:
    return None if pd.isna(value) else int(value)  # type: ignore[call-overload]


def describe(rows: list[Row], provider: str) -> str:
    names = {"P": provider, "Q": NEXT[provider]}
    out = []
    for who, status, error_type, http, retry, hedge in rows:
        what = "ok" if status == "ok" else (status if status != "error" else error_type)
        if status in ("truncated",) and error_type:
            what = f"truncated ({error_type})"
        extra = "".join([f" {http}" if http else "", " retry" if retry else "", " hedge" if hedge else ""])
        out.append(f"{names[who]}: {what}{extra}")
    return " → ".join(out)


def main() -> None:
    print("| fault | provider | mode | attempts (error type, HTTP status, retry/hedge) | final | served by |")
    print("|---|---|---|---|---|---|")
    failures = 0
    with FakeServer() as server, tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            for provider in MODELS:
                for mode in case.modes:
                    out = run_case(server, Path(tmp), provider, case, mode)
                    ok = out.rows == expected_rows(case, provider) == out.logged and out.escaped is None
                    failures += not ok
                    served = out.result.provider or "nobody"
                    flag = "" if ok else " **UNEXPECTED**"
                    print(f"| {case.name} | {provider} | {mode} | {describe(out.rows, provider)} | "
                          f"{out.result.status}{flag} | {served} |")
    print(f"\n{failures} unexpected outcome(s)")


if __name__ == "__main__":
    main()
