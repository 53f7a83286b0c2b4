"""A cut stream is a failure, billed as it was billed (issue 13, B6).

Before the fix a stream the provider cut after text was reported ``status
truncated`` but the CLI exited 0, the attempt recorded 0 tokens and a NULL
cost although Anthropic's ``message_start`` (or Gemini's chunks) had already
reported the input tokens, and its ``error_type`` was ``bad_response``.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from taelio_core.config.policy_parser import parse_policy
from taelio_core.config.pricing import Pricer
from taelio_core.config.settings import load_settings
from taelio_core.providers import build_providers
from taelio_core.routing.router import Router
from tests.fakeserver import FakeServer, Fault
from tests.resilience.fault_matrix import INPUTS, KEYS, MODELS

# Providers whose wire protocol reports usage before the end of a stream; OpenAI only sends it last.
REPORTS_EARLY = ("anthropic", "gemini")
# Events sent before the cut: Anthropic's first three (message_start, content_block_start, ping) carry no text.
CUT_AFTER = {"openai": 2, "anthropic": 5, "gemini": 2}


def _router(fake_server: FakeServer, provider: str) -> Router:
    text = "\n".join(['name = "cut"', "[defaults]", "timeout_s = 5", "max_tokens = 50",
                      f"[providers.{provider}]", f'kind = "{provider}"', "[tasks.idea]", 'user = "Premise: {prompt}"',
                      "[tiers.pro]", "[routes.pro]", f'idea = ["{provider}:{MODELS[provider]}"]']) + "\n"
    policy = parse_policy(text, source="cut.toml")
    return Router(policy, build_providers(policy, load_settings(env=fake_server.env(**KEYS)), mode="live"))


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_a_cut_stream_is_truncated_billed_as_reported_and_not_a_success(fake_server: FakeServer,
                                                                         provider: str) -> None:
    fake_server.set_usage(provider, input_tokens=111, output_tokens=40)
    fake_server.fail(provider, Fault.stream_cut(after_chunks=CUT_AFTER[provider]))
    router = _router(fake_server, provider)
    stream = router.stream("pro", "idea", INPUTS)
    shown = "".join(x for x in stream if isinstance(x, str))
    result = stream.result
    assert shown and result.status == "truncated" and result.exit_code == 3
    [attempt] = result.attempts
    assert (attempt.status, attempt.error_type) == ("truncated", "truncated")  # the class breakers count
    if provider in REPORTS_EARLY:
        assert attempt.usage.input_tokens == 111
        expected = Pricer(router.policy.model.pricing, {provider: provider}).price(
            provider, MODELS[provider], attempt.usage, attempt.started_at).cost_usd
        assert expected and attempt.cost_usd == expected and result.cost_usd == expected
    else:  # nothing reported before the cut: no tokens, and no made-up price
        assert attempt.usage.input_tokens == 0 and attempt.cost_usd is None


def test_the_cli_exits_3_for_a_cut_answer_and_logs_its_cost(fake_server: FakeServer, tmp_path: Path) -> None:
    db = tmp_path / "cut.duckdb"
    fake_server.set_usage("anthropic", input_tokens=111, output_tokens=40)
    fake_server.fail("anthropic", Fault.stream_cut(after_chunks=CUT_AFTER["anthropic"]))
    policy = tmp_path / "p.toml"
    policy.write_text("\n".join(['name = "cut"', "[providers.anthropic]", 'kind = "anthropic"', "[tasks.idea]",
                                 'user = "Premise: {prompt}"', "[tiers.pro]", "[routes.pro]",
                                 f'idea = ["anthropic:{MODELS["anthropic"]}"]']) + "\n")
    out = subprocess.run([sys.executable, "-m", "taelio_core", "--db", str(db), "--policy", str(policy), "generate",
                          "--tier", "pro", "--task", "idea", "--prompt", "A lighthouse", "--stream"],
                         capture_output=True, text=True, timeout=120, env=fake_server.env(**KEYS))
    assert out.returncode == 3, out.stdout + out.stderr
    assert "status truncated" in out.stdout
    con = duckdb.connect(str(db), read_only=True)
    try:
        [(error_type, tokens, cost)] = con.execute("SELECT error_type, input_tokens, cost_usd FROM attempts").fetchall()
        [(request_cost,)] = con.execute("SELECT cost_usd FROM requests").fetchall()
    finally:
        con.close()
    assert (error_type, tokens) == ("truncated", 111) and cost and cost > 0 and request_cost == cost
