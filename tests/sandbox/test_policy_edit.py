"""Policy B as tables and TOML: edits round-trip, mistakes get the config loader's messages."""
from __future__ import annotations

import pytest

from taelio_core.config.policy_parser import load_policy, parse_policy
from taelio_core.errors import ConfigError
from taelio_core.sandbox.policy_edit import (
    apply_chain_table,
    apply_settings_table,
    chain_table,
    policy_from_toml,
    policy_to_toml,
    settings_sections,
    settings_table,
)


def test_a_chain_edit_is_exported_as_toml_that_loads_live(tmp_path) -> None:
    policy = load_policy("current")
    table = chain_table(policy)
    row = table.index[(table["tier"] == "pro") & (table["task"] == "story")][0]
    table.loc[row, ["entry_1", "entry_2", "entry_3"]] = ["openai:gpt-4.1", "", "gemini:gemini-2.5-pro"]
    edited = apply_chain_table(policy, table)
    assert [e.ref for e in edited.chain("pro", "story")] == ["openai:gpt-4.1", "gemini:gemini-2.5-pro"]
    path = tmp_path / "b.toml"
    path.write_text(policy_to_toml(edited))
    live = load_policy(str(path))
    assert live.chains == edited.chains
    assert live.chain("free", "idea") == policy.chain("free", "idea")


def test_chain_mistakes_get_the_loaders_message_with_the_key() -> None:
    policy = load_policy("current")
    table = chain_table(policy)
    table.loc[0, "entry_1"] = "opnai:gpt-4.1"
    with pytest.raises(ConfigError, match=r"key 'routes.free.idea': unknown provider 'opnai' \(known: anthropic"):
        apply_chain_table(policy, table)
    table = chain_table(policy)
    table.loc[0, ["entry_1", "entry_2", "entry_3"]] = ["", "", ""]
    with pytest.raises(ConfigError, match="routes.free.idea.*the chain is empty"):
        apply_chain_table(policy, table)


def test_settings_edit_budgets_and_defaults_and_reject_bad_values() -> None:
    policy = load_policy("current")
    table = settings_table(policy)
    assert {"defaults", "budgets"} <= set(settings_sections())
    assert "budgets.tier.free.monthly" in set(table["setting"])
    table.loc[table["setting"] == "budgets.tier.free.monthly", "value"] = "20.0"
    table.loc[table["setting"] == "budgets.tier.free.hard", "value"] = "true"
    edited = apply_settings_table(policy, table)
    assert float(edited.model.budgets.tier["free"].monthly) == 20.0 and edited.model.budgets.tier["free"].hard
    table.loc[table["setting"] == "defaults.timeout_s", "value"] = "-1"
    with pytest.raises(ConfigError, match="key 'defaults.timeout_s': Input should be greater than 0"):
        apply_settings_table(policy, table)
    bad = settings_table(policy)
    bad.loc[len(bad)] = {"setting": "breakers.openai.threshold", "value": "3"}
    if "breakers" not in settings_sections():
        with pytest.raises(ConfigError, match="unknown setting section 'breakers'"):
            apply_settings_table(policy, bad)


def test_import_uses_the_config_loaders_validation() -> None:
    text = load_policy("current").text.replace('idea  = ["gemini:gemini-2.5-flash"', 'idea  = ["gemini"', 1)
    with pytest.raises(ConfigError) as err:
        policy_from_toml(text, source="upload.toml")
    with pytest.raises(ConfigError) as loader_err:
        parse_policy(text, source="upload.toml")
    assert str(err.value) == str(loader_err.value)
    assert "upload.toml" in str(err.value) and "provider:model" in str(err.value)
