from __future__ import annotations

from pathlib import Path

import pytest
from genai_prices import calc_price
from genai_prices import Usage as PriceUsage

from taelio_core.config.policy_parser import BUILTIN_POLICIES, load_policy, parse_policy
from taelio_core.errors import ConfigError

SEED_TABLE = {
    ("free", "idea"): ["gemini:gemini-1.5-flash", "openai:gpt-3.5-turbo", "anthropic:claude-3-haiku-20240307"],
    ("free", "story"): ["gemini:gemini-1.5-flash", "openai:gpt-3.5-turbo", "anthropic:claude-3-haiku-20240307"],
    ("pro", "idea"): ["openai:gpt-4", "anthropic:claude-3-sonnet-20240229", "gemini:gemini-1.5-pro"],
    ("pro", "story"): ["anthropic:claude-3-sonnet-20240229", "openai:gpt-4", "gemini:gemini-1.5-pro"],
    ("admin", "idea"): ["anthropic:claude-3-sonnet-20240229", "openai:gpt-4", "gemini:gemini-1.5-pro"],
    ("admin", "story"): ["openai:gpt-4", "anthropic:claude-3-sonnet-20240229", "gemini:gemini-1.5-pro"],
}
SEED_TEXT = BUILTIN_POLICIES["seed"].read_text()


def test_seed_policy_reproduces_the_seed_table_exactly() -> None:
    policy = load_policy("seed")
    assert policy.tiers == ["free", "pro", "admin"]
    assert policy.tasks == ["idea", "story"]
    got = {key: [e.ref for e in chain] for key, chain in policy.chains.items()}
    assert got == SEED_TABLE


@pytest.mark.parametrize("name", ["seed", "current"])
def test_every_model_in_the_builtin_policies_has_a_catalogue_price(name: str) -> None:
    policy = load_policy(name)
    catalogue = {"gemini": "google", "openai": "openai", "anthropic": "anthropic"}
    for chain in policy.chains.values():
        for entry in chain:
            result = calc_price(PriceUsage(input_tokens=1000, output_tokens=1000), model_ref=entry.model,
                                provider_id=catalogue[entry.provider])
            assert result.total_price > 0


def test_current_policy_has_the_seed_structure_with_other_models() -> None:
    seed, current = load_policy("seed"), load_policy("current")
    assert current.tiers == seed.tiers and current.tasks == seed.tasks
    for key, chain in seed.chains.items():
        assert [e.provider for e in current.chains[key]] == [e.provider for e in chain]
    assert {e.model for c in current.chains.values() for e in c}.isdisjoint({e.model for c in seed.chains.values()
                                                                            for e in c})


def test_policy_env_var_and_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAELIO_POLICY", "current")
    assert load_policy().name == "current"
    custom = tmp_path / "mine.toml"
    custom.write_text(SEED_TEXT.replace('name = "seed"', 'name = "mine"'))
    assert load_policy(str(custom)).name == "mine"
    with pytest.raises(ConfigError, match="policy file not found"):
        load_policy(str(tmp_path / "missing.toml"))


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_policy(text, source="policies/mine.toml")
    return info.value


def test_unknown_provider_names_file_key_and_line() -> None:
    text = SEED_TEXT.replace('idea  = ["openai:gpt-4"', 'idea  = ["opnai:gpt-4"')
    err = _error(text)
    assert err.key == "routes.pro.idea"
    assert err.line == _line_of(text, '"opnai:gpt-4"')
    assert str(err).startswith(f"policies/mine.toml:{err.line}, key 'routes.pro.idea': unknown provider 'opnai'")


def test_empty_chain() -> None:
    text = SEED_TEXT.replace(
        'story = ["openai:gpt-4", "anthropic:claude-3-sonnet-20240229", "gemini:gemini-1.5-pro"]', "story = []")
    err = _error(text)
    assert err.key == "routes.admin.story" and "empty" in str(err)
    assert err.line == _line_of(text, "story = []")


def test_duplicate_entry() -> None:
    text = SEED_TEXT.replace('idea  = ["openai:gpt-4", "anthropic:claude-3-sonnet-20240229"',
                             'idea  = ["openai:gpt-4", "openai:gpt-4"')
    err = _error(text)
    assert err.key == "routes.pro.idea" and "duplicate entry 'openai:gpt-4'" in str(err)


def test_unknown_placeholder() -> None:
    text = SEED_TEXT.replace("Tone: {tone}\\nGive me one story idea.", "Tone: {mood}\\nGive me one story idea.")
    err = _error(text)
    assert err.key == "tasks.idea.user" and "{mood}" in str(err)
    assert err.line == _line_of(text, "{mood}")


def test_idea_placeholder_only_where_a_task_needs_it() -> None:
    text = SEED_TEXT.replace("Premise: {prompt}", "Premise: {idea}")
    assert "unknown placeholder '{idea}'" in str(_error(text))


def test_malformed_toml_names_the_line() -> None:
    text = SEED_TEXT.replace("[tiers.pro]", "[tiers.pro")
    err = _error(text)
    assert err.line == _line_of(text, "[tiers.pro") and "malformed TOML" in str(err)


def test_bad_value_types_name_the_key() -> None:
    err = _error(SEED_TEXT.replace("max_tokens = 1500", 'max_tokens = "lots"'))
    assert err.key == "tasks.story.max_tokens"
    err = _error(SEED_TEXT.replace("free = 50.0", "free = -5.0"))
    assert err.key == "budgets.tier.free.monthly"
    err = _error(SEED_TEXT.replace('kind = "openai"', 'kind = "openai"\ncolour = "blue"'))
    assert err.key == "providers.openai.colour" and "unknown key" in str(err)


def test_missing_route_for_a_new_tier_is_named() -> None:
    text = SEED_TEXT.replace("[tiers.admin]", '[tiers.enterprise]\nlabel = "Enterprise"\n\n[tiers.admin]')
    err = _error(text)
    assert "no route for tier 'enterprise' and task 'idea'" in str(err)


def test_adding_a_tier_and_a_task_is_config_only() -> None:
    text = SEED_TEXT + '''
[tasks.summary]
user = "Summarise in one line: {prompt}"
max_tokens = 80

[tiers.enterprise]
max_tokens = 4000
[tiers.enterprise.tasks.summary]
temperature = 0.1

[routes.enterprise]
idea = ["openai:gpt-4"]
story = ["anthropic:claude-3-sonnet-20240229"]
summary = ["gemini:gemini-1.5-flash", "openai:gpt-4"]
'''
    for tier in ("free", "pro", "admin"):
        text = text.replace(f"[routes.{tier}]\n", f'[routes.{tier}]\nsummary = ["openai:gpt-3.5-turbo"]\n')
    policy = parse_policy(text, source="x.toml")
    assert "enterprise" in policy.tiers and "summary" in policy.tasks
    s = policy.settings("enterprise", "summary")
    assert (s.max_tokens, s.temperature) == (4000, 0.1)   # tier beats task; tier.task beats tier
    assert policy.settings("free", "summary").max_tokens == 80
    assert [e.ref for e in policy.chain("enterprise", "summary")] == ["gemini:gemini-1.5-flash", "openai:gpt-4"]
