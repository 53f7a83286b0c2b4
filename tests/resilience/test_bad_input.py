"""Section 8: each kind of bad input is one clear error, in the core and through the CLI (exit 2, no traceback).

The log-file cases (unwritable path, corrupted file) are the call log's tests; an empty prompt and a
malformed policy through the CLI are in tests/cli/test_cli_demo.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from taelio_core.config.settings import load_settings
from taelio_core.errors import ConfigError, InputError
from taelio_core.routing.inputs import MAX_PROMPT_CHARS
from taelio_core.routing.inputs import Inputs
from tests.resilience.support import policy, router, run

ROOT = Path(__file__).resolve().parents[2]


def taelio(*args: str | bytes, env: dict[str, str] | None = None, stdin: bytes | None = None) -> tuple[int, str, str]:
    full = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full.update({"PYTHONPATH": str(ROOT), "TAELIO_MODE": "demo", **(env or {})})
    out = subprocess.run([sys.executable.encode(), b"-m", b"taelio_core",
                          *[a if isinstance(a, bytes) else a.encode() for a in args]],
                         capture_output=True, env=full, input=stdin, timeout=120)
    return out.returncode, out.stdout.decode(errors="replace"), out.stderr.decode(errors="replace")


def assert_one_sentence(outcome: tuple[int, str, str], *needles: str) -> None:
    code, _out, err = outcome
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("taelio")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0]


def _generate(prompt: str):
    return run(router({}).agenerate("pro", "idea", Inputs(prompt=prompt)))


@pytest.mark.parametrize("prompt", ["", "   \n\t  "])
def test_empty_or_whitespace_prompt_core(prompt):
    with pytest.raises(InputError, match="^prompt is empty$"):
        _generate(prompt)


def test_whitespace_prompt_cli(tmp_path):
    assert_one_sentence(taelio("--db", str(tmp_path / "x.duckdb"), "generate", "--prompt", " \t "),
                        "--prompt: prompt is empty")


def test_a_one_megabyte_prompt_core():
    with pytest.raises(InputError) as info:
        _generate("x" * 1_048_576)
    assert str(info.value) == f"prompt is 1,048,576 characters; the limit is {MAX_PROMPT_CHARS:,}"


def test_a_one_megabyte_prompt_cli_from_a_file_and_stdin(tmp_path):
    big = tmp_path / "premise.txt"
    big.write_text("y" * 1_048_576)
    db = str(tmp_path / "x.duckdb")
    assert_one_sentence(taelio("--db", db, "generate", "--prompt-file", str(big)),
                        "premise.txt holds more than 32,000 characters (the prompt's limit)")
    assert_one_sentence(taelio("--db", db, "generate", "--prompt-file", "-", stdin=b"z" * 1_048_576),
                        "standard input holds more than 32,000 characters")
    code, out, _ = taelio("--db", db, "generate", "--prompt-file", "-", stdin="A lighthouse".encode())
    assert code == 0 and "status ok" in out


@pytest.mark.parametrize("prompt, message", [
    ("bad \ud800 surrogate", "prompt contains invalid Unicode (an unpaired surrogate)"),
    ("bell \x07 here", "prompt contains a control character (U+0007) at position 6"),
    ("nul \x00", "prompt contains a control character (U+0000) at position 5"),
])
def test_invalid_unicode_and_control_characters_core(prompt, message):
    with pytest.raises(InputError) as info:
        _generate(prompt)
    assert str(info.value) == message


def test_invalid_unicode_and_control_characters_cli(tmp_path):
    db = str(tmp_path / "x.duckdb")
    # Invalid UTF-8 in argv reaches Python as lone surrogates.
    assert_one_sentence(taelio("--db", db, "generate", "--prompt", b"caf\xff"), "invalid Unicode")
    assert_one_sentence(taelio("--db", db, "generate", "--prompt", "ring \x07 ring"), "U+0007")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café".encode("latin-1"))
    assert_one_sentence(taelio("--db", db, "generate", "--prompt-file", str(bad)), "is not valid UTF-8 (byte 4)")


@pytest.mark.parametrize("kw, message", [
    ({"tier": "gold"}, "unknown tier 'gold' (tiers: free, pro)"),
    ({"task": "poem"}, "unknown task 'poem' (tasks: idea)"),
    ({"provider": "opnai"}, "unknown provider 'opnai' (providers: a, b, c)"),
])
def test_unknown_tier_task_or_provider_core(kw, message):
    args = {"tier": "pro", "task": "idea", **kw}
    with pytest.raises(InputError) as info:
        run(router({}).agenerate(args["tier"], args["task"], Inputs(prompt="x"), provider=kw.get("provider")))
    assert str(info.value) == message


@pytest.mark.parametrize("flags, needle", [
    (["--tier", "gold"], "--tier: unknown tier 'gold'"),
    (["--task", "poem"], "--task: unknown task 'poem'"),
    (["--tier", "pro", "--provider", "opnai"], "--provider: unknown provider 'opnai'"),
])
def test_unknown_tier_task_or_provider_cli(tmp_path, flags, needle):
    assert_one_sentence(taelio("--db", str(tmp_path / "x.duckdb"), "generate", "--prompt", "x", *flags), needle)


def test_malformed_policy_file_core():
    with pytest.raises(ConfigError) as info:
        policy("[resilience\nmax_retries = 2\n")
    assert str(info.value).startswith("test.toml:")
    with pytest.raises(ConfigError, match="key 'resilience.max_retries'"):
        policy("[resilience]\nmax_retries = 'many'\n")


def test_bad_resilience_table_cli(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(policy().text + "\n[resilience]\ndeadline_s = -3\n")
    assert_one_sentence(taelio("--policy", str(path), "routes"), "p.toml:", "key 'resilience.deadline_s'")


@pytest.mark.parametrize("table", ["[budgets.tier]\npro = -5\n", "[budgets.provider.a]\nmonthly = \"a lot\"\n"])
def test_negative_or_non_numeric_budgets_cli(tmp_path, table):
    path = tmp_path / "p.toml"
    path.write_text(policy().text + "\n" + table)
    assert_one_sentence(taelio("--policy", str(path), "--db", str(tmp_path / "x.duckdb"), "health"),
                        "p.toml:", "budgets.")


def test_database_url_with_an_unknown_scheme_core():
    with pytest.raises(ConfigError, match="DATABASE_URL: unsupported scheme 'mysql': Taelio logs to DuckDB or "
                                          "PostgreSQL"):
        _ = load_settings(env={"DATABASE_URL": "mysql://u:pw@host/db"}).database


def test_database_url_with_an_unknown_scheme_cli():
    outcome = taelio("generate", "--prompt", "x", env={"DATABASE_URL": "mysql://root:hunter2@db/taelio"})
    assert_one_sentence(outcome, "DATABASE_URL: unsupported scheme 'mysql'")
    assert "hunter2" not in outcome[2]
