"""``TAELIO_JOURNAL_DIR``: where a PostgreSQL call log keeps its crash journal, whatever the working directory.

Without it the journal sits in ``data/`` under the working directory, so a replica restarted from another
folder never replays the journal its killed predecessor left.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from taelio_core.calllog import open_call_log
from taelio_core.calllog.journal import Journal, encode_record, journal_dir
from taelio_core.calllog.postgres import spool_name
from taelio_core.calllog.rows import encode
from taelio_core.config.settings import load_settings
from taelio_core.errors import ConfigError
from tests.calllog.test_durability import _abandon
from tests.calllog.traffic import finished_results

pytestmark = pytest.mark.timeout(120)


def test_a_replica_restarted_from_another_folder_replays_the_journal_in_taelio_journal_dir(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "journals"
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("TAELIO_JOURNAL_DIR", str(shared))

    first = tmp_path / "first"
    first.mkdir()
    monkeypatch.chdir(first)
    log = open_call_log(load_settings())
    try:
        log.record(finished_results(1, seed=3)[0])
        assert journal_dir(shared / spool_name(pg_url)).is_dir()     # journalled in the named folder
    finally:
        log.close()
    assert not (first / "data").exists()                 # nothing went to the working directory

    # A replica killed with 10 requests journalled and not yet committed.
    results = finished_results(10, seed=11)
    dead = Journal(shared / spool_name(pg_url))
    for result in results:
        dead.append(encode_record(encode(result)))
    _abandon(dead)
    assert any(journal_dir(shared / spool_name(pg_url)).glob("*.seg"))

    second = tmp_path / "second"
    second.mkdir()
    monkeypatch.chdir(second)                            # restarted from another folder
    restarted = open_call_log(load_settings())
    try:
        assert restarted.replayed == 10
        assert restarted.count_requests() == 11
    finally:
        restarted.close()
    assert not any(journal_dir(shared / spool_name(pg_url)).glob("*.seg"))


def test_a_journal_dir_that_is_a_file_is_refused_naming_the_variable(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "journal.txt"
    a_file.write_text("not a folder")
    monkeypatch.setenv("TAELIO_JOURNAL_DIR", str(a_file))
    with pytest.raises(ConfigError) as caught:
        load_settings().journal_dir
    assert str(caught.value) == (f"TAELIO_JOURNAL_DIR: '{a_file}' is a file, not a folder: "
                                 "name a folder for the crash journal")


def test_a_journal_dir_that_cannot_be_created_is_refused_in_one_sentence(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "journal.txt"
    a_file.write_text("not a folder")
    monkeypatch.setenv("TAELIO_JOURNAL_DIR", str(a_file / "below"))
    with pytest.raises(ConfigError) as caught:
        load_settings().journal_dir
    message = str(caught.value)
    assert message.startswith(f"TAELIO_JOURNAL_DIR: cannot create the crash journal folder '{a_file / 'below'}'")
    assert "\n" not in message and "Traceback" not in message


def test_without_the_setting_the_journal_stays_in_data_under_the_working_directory(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAELIO_JOURNAL_DIR", raising=False)
    assert load_settings().journal_dir == Path("data")
