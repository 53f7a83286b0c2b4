from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from taelio_core.config.policy_schema import PriceOverride
from taelio_core.config.pricing import CATALOGUE, Pricer
from taelio_core.routing.generation import Usage

KINDS = {"openai": "openai", "gemini": "gemini", "anthropic": "anthropic", "local": "openai_compatible"}
AT = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(("provider", "catalogue_id", "model"), [
    ("openai", "openai", "gpt-4"), ("gemini", "google", "gemini-1.5-flash"),
    ("anthropic", "anthropic", "claude-3-haiku-20240307"), ("anthropic", "anthropic", "claude-sonnet-4-5"),
    ("gemini", "google", "gemini-2.5-pro"), ("openai", "openai", "gpt-4.1-mini"),
])
def test_matches_genai_prices_including_cached_tokens(provider: str, catalogue_id: str, model: str) -> None:
    usage = Usage(input_tokens=12_000, output_tokens=800, cached_tokens=3_000)
    price = Pricer(kinds=KINDS).price(provider, model, usage, AT)
    expected = calc_price(PriceUsage(input_tokens=12_000, output_tokens=800, cache_read_tokens=3_000),
                          model_ref=model, provider_id=catalogue_id, genai_request_timestamp=AT).total_price
    assert price.cost_usd == expected
    assert price.source == CATALOGUE


@pytest.mark.parametrize("policy_name", ["seed", "current"])
@pytest.mark.parametrize("tokens", [(1_000, 200, 0), (150_000, 5_000, 20_000), (250_000, 9_000, 0)])
def test_every_builtin_model_matches_genai_prices_across_price_tiers(policy_name: str, tokens: tuple) -> None:
    from taelio_core.config.policy_parser import load_policy
    catalogue = {"gemini": "google", "openai": "openai", "anthropic": "anthropic"}
    inp, out, cached = tokens
    for chain in load_policy(policy_name).chains.values():
        for entry in chain:
            price = Pricer(kinds=KINDS).price(entry.provider, entry.model, Usage(
                input_tokens=inp, output_tokens=out, cached_tokens=cached), AT)
            expected = calc_price(PriceUsage(input_tokens=inp, output_tokens=out, cache_read_tokens=cached or None),
                                  model_ref=entry.model, provider_id=catalogue[entry.provider],
                                  genai_request_timestamp=AT).total_price
            assert price.cost_usd == expected, entry.ref


def test_unknown_model_is_unpriced_not_zero() -> None:
    price = Pricer(kinds=KINDS).price("openai", "my-finetune-7", Usage(input_tokens=10, output_tokens=10), AT)
    assert price.cost_usd is None and price.source is None and not price.priced
    local = Pricer(kinds=KINDS).price("local", "llama3.2", Usage(input_tokens=10, output_tokens=10), AT)
    assert local.cost_usd is None


def test_override_wins_and_says_so() -> None:
    pricer = Pricer({"openai:gpt-4": PriceOverride(input_per_mtok=Decimal("10"), output_per_mtok=Decimal("20"),
                                                  cached_input_per_mtok=Decimal("1"))}, KINDS)
    price = pricer.price("openai", "gpt-4", Usage(input_tokens=1_000_000, output_tokens=1_000_000,
                                                 cached_tokens=500_000), AT)
    assert price.source == "override"
    assert price.cost_usd == Decimal("5") + Decimal("0.5") + Decimal("20")


def test_unit_prices_for_worst_case_checks() -> None:
    assert Pricer(kinds=KINDS).unit_prices("openai", "gpt-4", AT) == (Decimal(30), Decimal(60))
    assert Pricer(kinds=KINDS).unit_prices("openai", "nope", AT) is None
