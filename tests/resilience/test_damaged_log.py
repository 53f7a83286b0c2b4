"""Issue 13 part 1: a damaged log never swallows requests.

Before the fix, a log with a dropped ``requests`` table, or a file truncated
mid-block, still took a ``generate``: "status ok", exit 0, nothing on stderr,
the request left only in the journal; then every read failed with a raw
CatalogException or IOException. An unrelated DuckDB file silently got
Taelio's tables added. Each case here is a real DuckDB file.
"""
from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from taelio_core.calllog import DuckDBCallLog
from taelio_core.calllog.journal import journal_dir
from taelio_core.cli import main
from taelio_core.errors import CallLogError, LogUnusable
from tests.calllog.test_errors import one_result
from tests.seeded_log import build_results, clock_now, seed_log


@pytest.fixture(scope="module")
def good_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log of several DuckDB blocks (a truncation has blocks to cut)."""
    path = tmp_path_factory.mktemp("good") / "good.duckdb"
    now = clock_now()
    seed_log(path, build_results(now=now, n=1500, days=5), now=now)
    return path


def _copy(src: Path, dst: Path, *statements: str) -> Path:
    dst.write_bytes(src.read_bytes())
    if statements:
        con = duckdb.connect(str(dst))
        for sql in statements:
            con.execute(sql)
        con.close()
    return dst


def _generate(db: Path, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setenv("TAELIO_MODE", "demo")
    capsys.readouterr()
    code = main(["--db", str(db), "generate", "--prompt", "A lighthouse"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("table", ["requests", "attempts"])
def test_a_log_with_a_dropped_table_is_refused_in_one_sentence_naming_the_file(
        good_log, tmp_path, monkeypatch, capsys, table):
    db = _copy(good_log, tmp_path / "d.duckdb", f"DROP TABLE {table}")
    code, err = _generate(db, monkeypatch, capsys)
    assert code == 1
    assert err.strip().splitlines() == [err.strip()]                   # one line, no traceback
    assert f"the log {db} is damaged: its table '{table}' is missing" in err
    assert f"mv {db} {db}.damaged" in err and "internal error" not in err
    assert not journal_dir(db).exists()                                # no request was taken, none stranded


def test_a_truncated_log_is_refused_before_a_request_is_taken(good_log, tmp_path, monkeypatch, capsys):
    db = _copy(good_log, tmp_path / "t.duckdb")
    os.truncate(db, db.stat().st_size // 2)
    code, err = _generate(db, monkeypatch, capsys)
    assert code == 1 and f"the log {db} is truncated" in err and "IOException" not in err
    assert not db.with_name(db.name + ".wal").exists()
    assert main(["--db", str(db), "stats"]) == 1


def test_an_unrelated_duckdb_file_is_refused_unless_adopted(tmp_path, monkeypatch, capsys):
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.close()
    code, err = _generate(db, monkeypatch, capsys)
    assert code == 1 and "holds other tables (customers) and no Taelio log" in err and "TAELIO_ADOPT_LOG=1" in err
    con = duckdb.connect(str(db))
    assert [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()] == ["customers"]
    con.close()
    monkeypatch.setenv("TAELIO_ADOPT_LOG", "1")
    assert _generate(db, monkeypatch, capsys)[0] == 0


def test_a_log_missing_a_column_of_its_recorded_migrations_names_the_column(good_log, tmp_path):
    db = _copy(good_log, tmp_path / "c.duckdb", "ALTER TABLE requests DROP COLUMN policy")
    with pytest.raises(LogUnusable, match="its table 'requests' lacks the column\\(s\\) policy"):
        DuckDBCallLog(db)


def test_a_writer_that_cannot_commit_makes_close_fail_and_says_where_the_requests_are(tmp_path):
    db = tmp_path / "w.duckdb"
    log = DuckDBCallLog(db, flush_interval=0.01, lock_timeout=1)
    log.write(lambda con: con.execute("DROP TABLE attempts"))         # damaged after the open check passed
    log.record(one_result())
    with pytest.raises(CallLogError) as info:
        log.close()
    message = str(info.value)
    assert message.startswith(f"1 request(s) could not be written to the log {db}")
    assert f"kept in the journal {journal_dir(db)}" in message
    assert list(journal_dir(db).glob("*.seg"))                        # and they really are there


def test_the_cli_exits_1_when_its_request_could_not_be_written(tmp_path, monkeypatch, capsys):
    """The journal keeps the request and the message says where (before: exit 0, nothing on stderr)."""
    db = tmp_path / "g.duckdb"
    DuckDBCallLog(db).close()
    from taelio_core.calllog import batch
    real = batch.insert_tables

    def disk_full(con, requests, attempts, *, skip_stored=False):
        raise duckdb.IOException("IO Error: No space left on device")
    monkeypatch.setattr(batch, "insert_tables", disk_full)
    code, err = _generate(db, monkeypatch, capsys)
    monkeypatch.setattr(batch, "insert_tables", real)
    assert code == 1
    assert "1 request(s) could not be written to the log" in err and "No space left on device" in err
    assert f"kept in the journal {journal_dir(db)}" in err
    reopened = DuckDBCallLog(db)                                       # the next open replays the journal
    try:
        assert reopened.replayed == 1 and reopened.count_requests() == 1
    finally:
        reopened.close()


def test_log_repair_moves_a_damaged_log_aside_and_writes_the_stranded_requests_into_a_new_one(tmp_path, capsys):
    db = tmp_path / "r.duckdb"
    log = DuckDBCallLog(db, flush_interval=0.01, lock_timeout=1)
    log.write(lambda con: con.execute("DROP TABLE requests"))
    log.record(one_result())
    with pytest.raises(CallLogError):
        log.close()                                                    # stranded in the journal
    capsys.readouterr()
    assert main(["--db", str(db), "log", "repair"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"the log {db} is damaged: its table 'requests' is missing: moved it to {db}.damaged-")
    assert out.rstrip().endswith("1 journalled request(s) written into it")
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("r.duckdb.damaged-")]
    assert len(moved) == 1 and moved[0].stat().st_size > 0           # the damaged bytes are kept
    repaired = DuckDBCallLog(db)
    try:
        assert repaired.count_requests() == 1
    finally:
        repaired.close()
    assert main(["--db", str(db), "log", "repair"]) == 0
    assert "passed the check: nothing to repair" in capsys.readouterr().out


def test_log_repair_never_moves_a_sound_file_that_is_not_a_taelio_log(tmp_path, capsys):
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.close()
    assert main(["--db", str(db), "log", "repair"]) == 1
    assert "holds other tables (customers)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]
