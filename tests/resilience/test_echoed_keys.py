"""Issue 13 part 4: no credential is printed, even when a provider echoes it back mangled or a URL carries one.

The fake server's ``echo_key`` fault reflects the key lowercased and split by a
space in 400, 401 and 500 bodies, through each provider's real SDK. Before the
fix, redaction matched keys exactly, so both shapes were stored in
``attempts.error`` and shown by ``--json`` and on Calls; and a base URL with a
password was printed whole by ``taelio providers``.
"""
from __future__ import annotations

import json

import duckdb
import pytest

from taelio_core.config.settings import load_settings
from taelio_core.errors import AllProvidersFailed
from taelio_core.redaction import redact, register_secret, safe_url
from taelio_core.wiring import Taelio
from tests.fakeserver.server import echoed_key_shapes
from tests.resilience.support import INPUTS
from tests.resilience.test_secrets import LIVE_POLICY, _main, scan_database

# Shapes no key pattern knows, so only the registered-secret matching can catch them.
KEYS = {"OPENAI_API_KEY": "Qx7PLANTEDopenaiKEY0123456789", "ANTHROPIC_API_KEY": "Zr4PLANTEDanthroKEY9876543210",
        "GEMINI_API_KEY": "Mv2PLANTEDgeminiKEY1357924680"}
PROVIDERS = ("openai", "anthropic", "gemini")


def _needles() -> list[str]:
    """Every shape of every key the server reflects, and each half of the split one (13+ characters)."""
    out = []
    for key in KEYS.values():
        lowered, split = echoed_key_shapes(key)
        out += [key, lowered, *split.split(" ")]
    return out


@pytest.mark.parametrize("status", [400, 401, 500])
def test_a_key_echoed_lowercased_or_split_by_a_space_is_stored_and_shown_nowhere(fake_server, tmp_path, status):
    policy_file = tmp_path / "live.toml"
    policy_file.write_text(LIVE_POLICY)
    db = tmp_path / "log.duckdb"
    for provider in PROVIDERS:
        fake_server.fail(provider, "echo_key", status=status)
    engine = Taelio.open(policy=str(policy_file), settings=load_settings(env=fake_server.env(**KEYS)), database=db)
    try:
        with pytest.raises(AllProvidersFailed) as info:
            engine.router.generate("pro", "idea", INPUTS)
        shown = [str(info.value), json.dumps(info.value.result.as_dict(), default=str)]
        shown += [a.error or "" for a in info.value.attempts]
    finally:
        engine.close()
    assert [r.fault for r in fake_server.requests] == ["echo_key"] * 3        # each SDK got the echoing body
    assert all("[redacted]" in (a.error or "") for a in info.value.attempts)
    needles = _needles()
    assert [n for n in needles for text in shown if n.lower() in text.lower()] == []
    assert scan_database(db, needles) == []
    con = duckdb.connect(str(db), read_only=True)
    try:
        stored = [r[0] for r in con.execute("SELECT lower(error) FROM attempts").fetchall()]
    finally:
        con.close()
    assert len(stored) == 3 and not [n for n in needles for e in stored if n.lower() in e]


def test_redaction_removes_any_run_of_eight_characters_of_a_key_in_any_case():
    register_secret("Hj5PLANTEDrunKEY24680")
    assert redact("a HJ5PLANTEDRUN b") == "a [redacted] b"
    assert redact("xx nkey2468 yy") == "xx [redacted] yy"          # a run from the key's middle
    assert redact("ok Hj5PLAN") == "ok Hj5PLAN"                     # 7 characters identify nothing


def test_a_base_url_is_shown_without_userinfo_or_query():
    assert safe_url("http://admin:PLANTEDurlpw@127.0.0.1:1/openai/v1?key=abc#f") == "http://127.0.0.1:1/openai/v1"
    assert safe_url("https://[::1]:8443/v1") == "https://[::1]:8443/v1"


def test_a_password_in_a_base_url_never_reaches_the_cli_or_an_error(fake_server, tmp_path, monkeypatch, capsys):
    url = fake_server.base_url("openai").replace("http://", "http://admin:PLANTEDurlpw@") + "?key=PLANTEDquerykey9"
    env = {**fake_server.env(**KEYS), "OPENAI_BASE_URL": url}
    policy_file = tmp_path / "live.toml"
    policy_file.write_text(LIVE_POLICY)
    common = ["--policy", str(policy_file), "--db", str(tmp_path / "log.duckdb")]
    runs = [_main([*common, "providers"], env, monkeypatch, capsys),
            _main([*common, "providers", "--json"], env, monkeypatch, capsys)]
    text = "".join(r.stdout + r.stderr for r in runs)
    assert "127.0.0.1" in text
    assert "PLANTEDurlpw" not in text and "PLANTEDquerykey9" not in text and "admin:" not in text
    # An error that quotes the raw URL (as SDK connection errors do) loses the password too.
    assert "PLANTEDurlpw" not in redact(f"cannot connect to {url}")
