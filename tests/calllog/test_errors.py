"""Bad configuration and damaged files: one clear error each, nothing overwritten; migrations; hash-only text."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from taelio_core.calllog import DuckDBCallLog, open_call_log, schema
from taelio_core.calllog.journal import journal_dir
from taelio_core.calllog.rows import sha256
from taelio_core.calllog.schema import MIGRATIONS, migrate
from taelio_core.config.settings import load_settings
from taelio_core.errors import AllProvidersFailed, CallLogError, ConfigError
from taelio_core.routing.inputs import Inputs
from tests.calllog.traffic import faulty_router

ROOT = Path(__file__).resolve().parents[2]


def taelio(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra_env}
    return subprocess.run([sys.executable, "-m", "taelio_core", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def one_result(seed: int = 3):
    router = faulty_router(None, fault_rate=0.0, seed=seed)
    try:
        return router.generate("free", "idea", Inputs(prompt="A secret premise about a lighthouse"))
    except AllProvidersFailed as e:  # pragma: no cover - fault_rate is 0
        return e.result


@pytest.mark.parametrize("url", ["oracle://db/taelio", "sqlite:///x.db", "mysql://root@localhost/x"])
def test_database_url_with_an_unknown_scheme(url: str) -> None:
    settings = load_settings(env={"DATABASE_URL": url})
    with pytest.raises(ConfigError) as caught:
        open_call_log(settings)
    message = str(caught.value)
    assert message.startswith("DATABASE_URL: unsupported scheme") and "duckdb:///" in message


def test_database_url_scheme_error_from_the_cli() -> None:
    done = taelio("stats", DATABASE_URL="mysql://db/taelio")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "DATABASE_URL" in done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_postgresql_log_is_one_sentence_from_the_cli_without_the_password() -> None:
    from tests.servers import free_port
    done = taelio("stats", DATABASE_URL=f"postgresql://taelio:pw-a1@127.0.0.1:{free_port()}/taelio")
    assert done.returncode == 1 and done.stderr.startswith("taelio: cannot connect to the log postgresql://127.0.0.1:")
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "pw-a1" not in done.stderr and "Traceback" not in done.stderr


def test_database_url_picks_the_file(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "log.duckdb"
    log = open_call_log(load_settings(env={"DATABASE_URL": f"duckdb:///{target}"}))
    assert Path(log.location) == target and target.exists()
    log.close()


def test_an_unwritable_log_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(CallLogError, match="cannot create the log's folder"):
        DuckDBCallLog(blocker / "logs" / "taelio.duckdb")
    folder = tmp_path / "a-folder.duckdb"
    folder.mkdir()
    with pytest.raises(CallLogError, match="is not a file"):
        DuckDBCallLog(folder)
    assert blocker.read_text() == "not a folder" and not any(folder.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_a_read_only_folder(tmp_path: Path) -> None:  # pragma: no cover - CI runs as root here
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(CallLogError, match="cannot open the log"):
            DuckDBCallLog(folder / "taelio.duckdb")
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("header", [b"", b"SQLite format 3\x00"], ids=["random-bytes", "looks-like-sqlite"])
def test_a_corrupted_log_file_is_one_error_and_left_untouched(tmp_path: Path, header: bytes) -> None:
    path = tmp_path / "taelio.duckdb"
    garbage = header + os.urandom(64 * 1024)
    path.write_bytes(garbage)
    with pytest.raises(CallLogError) as caught:
        DuckDBCallLog(path)
    assert str(caught.value).startswith(f"cannot open the log {path}:")
    assert "move it aside" in str(caught.value)
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taelio.duckdb"]
    done = taelio("--db", str(path), "stats")
    assert done.returncode == 1 and "cannot open the log" in done.stderr and "Traceback" not in done.stderr
    assert path.read_bytes() == garbage


def test_opening_an_older_file_applies_the_missing_migrations(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    assert migrate(con, MIGRATIONS[:1]) == [MIGRATIONS[0][0]]
    con.execute("INSERT INTO requests (request_id, ts, source, tier, task, policy, status) "
                "VALUES ('old-1', now(), 'live', 'free', 'idea', 'seed', 'ok')")
    con.close()
    later = ("999_test_only_column", "ALTER TABLE requests ADD COLUMN test_only_note VARCHAR")
    monkeypatch.setattr(schema, "MIGRATIONS", [*MIGRATIONS, later])
    log = DuckDBCallLog(path)
    names = list(log.query("SELECT name FROM _migrations ORDER BY name")["name"])
    assert names == sorted(name for name, _ in [*MIGRATIONS, later])
    columns = set(log.query("SELECT column_name FROM duckdb_columns() WHERE table_name = 'requests'")["column_name"])
    assert "test_only_note" in columns
    assert log.count_requests() == 1                           # the old rows survive the upgrade
    log.record(one_result())
    log.flush(timeout=30)                                      # writers name their columns: new ones are fine
    assert log.count_requests() == 2
    log.close()
    reopened = DuckDBCallLog(path)                             # nothing applied twice
    assert len(reopened.query("SELECT name FROM _migrations")) == len(MIGRATIONS) + 1
    reopened.close()


def test_migrations_are_named_once_and_in_order() -> None:
    names = [name for name, _ in MIGRATIONS]
    assert len(set(names)) == len(names)
    assert names == sorted(names)


def test_hash_only_setting_stores_no_text(tmp_path: Path) -> None:
    settings = load_settings(env={"TAELIO_STORE_TEXT": "hash"})
    log = open_call_log(settings, str(tmp_path / "hash.duckdb"))
    log.flush_interval = 30                                    # keep the rows in the journal for a look
    result = one_result()
    log.record(result)
    segments = list(journal_dir(Path(log.location)).glob("*.seg"))
    assert segments and all(b"lighthouse" not in p.read_bytes() for p in segments)
    log.flush(timeout=30)
    row = log.query("SELECT prompt, output, prompt_sha256, output_sha256 FROM requests").iloc[0]
    assert row["prompt"] is None and row["output"] is None
    assert row["prompt_sha256"] == sha256(result.prompt) and row["output_sha256"] == sha256(result.text)
    log.close()
    raw = Path(log.location).read_bytes()
    assert b"secret premise" not in raw


def test_full_text_setting_stores_text_and_hashes(tmp_path: Path) -> None:
    log = open_call_log(load_settings(env={}), str(tmp_path / "full.duckdb"))
    result = one_result()
    log.record(result)
    log.flush(timeout=30)
    row = log.query("SELECT prompt, output, prompt_sha256, output_sha256 FROM requests").iloc[0]
    assert row["prompt"] == result.prompt and row["output"] == result.text
    assert row["prompt_sha256"] == sha256(result.prompt) and row["output_sha256"] == sha256(result.text)
    log.close()


@pytest.mark.parametrize(("name", "value"), [("TAELIO_STORE_TEXT", "hashes"), ("TAELIO_JOURNAL", "sometimes")])
def test_unknown_setting_values_are_config_errors(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: must be"):
        open_call_log(load_settings(env={name: value}), str(tmp_path / "x.duckdb"))


def test_append_rows_names_a_missing_column(tmp_path: Path) -> None:
    import pyarrow as pa
    log = DuckDBCallLog(tmp_path / "x.duckdb")
    with pytest.raises(CallLogError, match="requests table lacks column"):
        log.append_rows(pa.table({"request_id": ["x"]}), pa.table({"request_id": ["x"]}))
    log.close()


def test_record_after_close_is_refused(tmp_path: Path) -> None:
    log = DuckDBCallLog(tmp_path / "x.duckdb")
    log.close()
    with pytest.raises(CallLogError, match="closed"):
        log.record(one_result())


def test_text_that_is_not_valid_utf8_is_stored_not_lost(tmp_path: Path) -> None:
    from dataclasses import replace
    log = DuckDBCallLog(tmp_path / "x.duckdb")
    result = replace(one_result(), text="broken \ud800 escape")
    log.record(result)
    log.flush(timeout=30)
    assert log.query("SELECT output FROM requests")["output"].iloc[0] == "broken ? escape"
    log.close()
