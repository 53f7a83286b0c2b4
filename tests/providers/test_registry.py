"""Providers register themselves: a new kind is one module, and every part of Taelio learns it from the registry."""
from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from taelio_core.config.pricing import Pricer, catalogue_provider
from taelio_core.config.settings import KEY_ENV, load_settings
from taelio_core.errors import ConfigError
from taelio_core.providers import build_providers
from taelio_core.providers.registry import find_kind, kind_names
from taelio_core.routing.generation import Usage
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Router
from tests.policies import build_policy

ROOT = Path(__file__).resolve().parents[2]


def test_a_kind_registered_in_one_module_is_parsed_keyed_priced_and_routed() -> None:
    from tests.providers import throwaway_kind  # the one module that defines the kind

    policy = build_policy(providers={"tw": {"kind": "throwaway"}}, routes={"pro": {"idea": ["tw:gpt-4o-mini"]}})
    settings = load_settings(env={"THROWAWAY_TOKEN": "tw-secret-key-123", "THROWAWAY_BASE_URL": "http://tw.local"},
                             secrets_file="/nonexistent")
    [provider] = build_providers(policy, settings, mode="live").values()
    assert isinstance(provider, throwaway_kind.ThrowawayProvider)
    assert provider.base_url == "http://tw.local" and provider.availability().available
    assert "THROWAWAY_API_KEY" in provider.key_env and settings.any_real_key  # its key counts: live mode
    assert KEY_ENV["throwaway"] == ("THROWAWAY_API_KEY", "THROWAWAY_TOKEN")
    assert throwaway_kind.ThrowawayProvider.facts is find_kind("throwaway")

    result = Router(policy, {"tw": provider}).generate("pro", "idea", Inputs(prompt="a lighthouse"))
    assert result.status == "ok" and result.provider == "tw"
    assert result.text.startswith("throwaway gpt-4o-mini via http://tw.local with key tw-")
    # Priced from the catalogue under the id the kind registered, like any built-in kind.
    expected = Pricer({}, {"tw": "openai"}).price("openai", "gpt-4o-mini", Usage(input_tokens=1000,
                                                                                output_tokens=2000),
                                                 result.attempts[0].started_at)
    assert result.cost_usd == expected.cost_usd and result.cost_usd > Decimal(0)


def test_a_kind_without_a_key_is_unavailable_and_names_its_variables() -> None:
    from tests.providers import throwaway_kind  # noqa: F401

    policy = build_policy(providers={"tw": "throwaway"}, routes={"pro": {"idea": ["tw:m"]}})
    [provider] = build_providers(policy, load_settings(env={}, secrets_file="/nonexistent"), mode="live").values()
    availability = provider.availability()
    assert not availability.available
    assert availability.reason == "no API key (set THROWAWAY_API_KEY or THROWAWAY_TOKEN)"


def test_an_unknown_kind_is_a_policy_error_naming_the_known_kinds_and_the_module_to_add() -> None:
    with pytest.raises(ConfigError) as caught:
        build_policy(providers={"co": "cohere"}, routes={"pro": {"idea": ["co:command-r"]}})
    message = str(caught.value)
    assert "unknown provider kind 'cohere'" in message and "providers.co.kind" in message
    assert "openai, anthropic" in message or "gemini, openai, anthropic" in message
    assert "taelio_core/providers/cohere.py" in message


def test_the_built_in_kinds_carry_the_facts_that_used_to_be_spread_over_four_modules() -> None:
    assert {"gemini", "openai", "anthropic", "openai_compatible", "simulated"} <= set(kind_names())
    assert KEY_ENV["gemini"] == ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    assert catalogue_provider("gemini") == "google" and catalogue_provider("openai_compatible") is None
    env = {"OPENAI_API_KEY": "sk-live-should-not-travel", "OPENAI_BASE_URL": "http://openai.local/v1"}
    policy = build_policy(providers={"openai": "openai", "ollama": {"kind": "openai_compatible",
                                                                    "base_url": "http://ollama.local/v1"}},
                          routes={"pro": {"idea": ["openai:gpt-4o", "ollama:llama3"]}})
    providers = build_providers(policy, load_settings(env=env, secrets_file="/nonexistent"), mode="live")
    assert providers["openai"].base_url == "http://openai.local/v1" and providers["openai"].has_key
    # An OpenAI-compatible server never gets the OpenAI key, nor OpenAI's base URL.
    assert not providers["ollama"].has_key and providers["ollama"].base_url == "http://ollama.local/v1"
    assert providers["ollama"].availability().available


def test_importing_the_registry_and_the_policy_imports_no_provider_sdk() -> None:
    code = ("import sys, taelio_core.config.policy_parser, taelio_core.config.settings, taelio_core.config.pricing, "
            "taelio_core.providers\n"
            "print(','.join(m for m in ('openai', 'anthropic', 'google.genai') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
