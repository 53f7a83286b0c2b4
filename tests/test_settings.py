from __future__ import annotations

from pathlib import Path

import pytest

from taelio_core.config.settings import DEFAULT_DB, database_path, load_settings
from taelio_core.errors import ConfigError, redact


def test_database_url_forms() -> None:
    assert database_path(None) == DEFAULT_DB == Path("data/taelio.duckdb")
    assert database_path("duckdb:///data/other.duckdb") == Path("data/other.duckdb")
    assert database_path("duckdb:////var/lib/taelio.duckdb") == Path("/var/lib/taelio.duckdb")
    with pytest.raises(ConfigError, match="DATABASE_URL: unsupported scheme 'sqlite'"):
        database_path("sqlite:///./taelio.db")


def test_mode_is_demo_without_keys_and_live_with_one() -> None:
    assert load_settings(env={}).mode == "demo"
    assert load_settings(env={"ANTHROPIC_API_KEY": "sk-ant-test-1234567890"}).mode == "live"
    assert load_settings(env={"TAELIO_MODE": "demo", "OPENAI_API_KEY": "sk-x-1234567890"}).mode == "demo"
    with pytest.raises(ConfigError, match="TAELIO_MODE"):
        _ = load_settings(env={"TAELIO_MODE": "staging"}).mode


def test_google_api_key_is_accepted_for_gemini() -> None:
    settings = load_settings(env={"GOOGLE_API_KEY": "AIzaSyTestTestTestTestTestTest123"})
    key = settings.key_for("gemini")
    assert key is not None and key.get().startswith("AIza")


def test_secrets_toml_is_read_and_env_wins(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('OPENAI_API_KEY = "from-secrets-file-1"\nANTHROPIC_API_KEY = "from-secrets-file-2"\n')
    settings = load_settings(env={"OPENAI_API_KEY": "from-env-1234"}, secrets_file=secrets)
    assert settings.key_for("openai").get() == "from-env-1234"
    assert settings.key_for("anthropic").get() == "from-secrets-file-2"


def test_malformed_secrets_file_is_a_config_error(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("OPENAI_API_KEY = \n")
    with pytest.raises(ConfigError, match="secrets.toml"):
        load_settings(env={}, secrets_file=secrets)


def test_keys_never_print_and_are_redacted_everywhere() -> None:
    settings = load_settings(env={"OPENAI_API_KEY": "plain-looking-key-0987654321"})
    key = settings.key_for("openai")
    assert "0987654321" not in repr(key) and "0987654321" not in str(key)
    assert "0987654321" not in redact("the server said: bad key plain-looking-key-0987654321")
    assert "[redacted]" in redact("Incorrect API key provided: sk-abcdefghijklmnop")
