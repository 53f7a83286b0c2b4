"""Issue 13 part 6: bad configuration is refused in one sentence (exit 2), never guessed.

Before the fix ``DATABASE_URL=nonsense taelio stats`` exited 0 and created a
file ``./nonsense``; ``duckdb:/abs/x.duckdb`` (one slash) created a folder
tree ``./duckdb:/abs/``; a blank value gave "internal error (ValueError...)";
and ``--prompt-file /dev/zero`` read until memory ran out.
"""
from __future__ import annotations

import io

import pytest

from taelio_core.cli import main
from taelio_core.config.settings import ACCEPTED_DB_FORMS, database_path
from taelio_core.errors import ConfigError, InputError
from taelio_core.routing.inputs import MAX_PROMPT_CHARS, read_prompt
from tests.resilience.test_bad_input import taelio


@pytest.mark.parametrize("value", ["nonsense", "duckdb:/abs/x.duckdb", "  ", "duckdb:///", "file:x.duckdb"])
def test_a_database_url_that_is_not_an_accepted_form_is_a_config_error_that_names_the_forms(
        value, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", value)
    monkeypatch.setenv("TAELIO_MODE", "demo")
    assert main(["stats"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("taelio: DATABASE_URL: ") and ACCEPTED_DB_FORMS in err
    assert len(err.strip().splitlines()) == 1 and "internal error" not in err
    assert list(tmp_path.iterdir()) == []                       # nothing created: no ./nonsense, no ./duckdb:


def test_a_postgresql_url_where_a_duckdb_file_is_needed_is_refused_without_echoing_the_password():
    with pytest.raises(ConfigError, match="names a PostgreSQL database, and this needs a DuckDB file") as info:
        database_path("postgres://taelio:hunter2secret@db/taelio")
    assert "hunter2secret" not in str(info.value)


def test_the_accepted_forms_still_work():
    assert str(database_path("duckdb:////var/x.duckdb")) == "/var/x.duckdb"
    assert str(database_path("duckdb:///data/x.duckdb")) == "data/x.duckdb"
    assert str(database_path(" logs/x.duckdb ")) == "logs/x.duckdb"
    assert str(database_path("anything-at-all", source="--db")) == "anything-at-all"   # --db names a file on purpose


def test_a_prompt_file_longer_than_the_limit_is_refused_after_reading_the_limit_plus_one_character():
    stream = io.BytesIO(b"a" * (MAX_PROMPT_CHARS * 10))
    with pytest.raises(InputError, match="holds more than 32,000 characters"):
        read_prompt(stream, "big.txt")
    assert stream.tell() <= (MAX_PROMPT_CHARS + 1) * 4 + 4
    assert read_prompt(io.BytesIO("é".encode() * MAX_PROMPT_CHARS), "ok.txt") == "é" * MAX_PROMPT_CHARS


def test_a_prompt_file_that_is_not_utf8_names_the_byte():
    with pytest.raises(InputError, match="bad.txt is not valid UTF-8 \\(byte 3\\)"):
        read_prompt(io.BytesIO(b"ab\xff"), "bad.txt")


def test_prompt_file_dev_zero_is_refused_in_one_sentence_with_exit_2():
    code, _out, err = taelio("generate", "--prompt-file", "/dev/zero")
    assert code == 2 and "MemoryError" not in err
    assert err.strip().splitlines()[-1] == ("taelio: --prompt-file: /dev/zero holds more than 32,000 characters "
                                            "(the prompt's limit)")
