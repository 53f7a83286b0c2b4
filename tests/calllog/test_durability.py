"""The journal: a ``kill -9`` loses nothing ``record()`` accepted, and replay is idempotent."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import duckdb
import pytest

from taelio_core.calllog import DuckDBCallLog
from taelio_core.calllog.journal import Journal, encode_record, journal_dir
from taelio_core.calllog.rows import encode
from taelio_core.routing.trace import GenerationResult
from tests.calllog.traffic import finished_results, start_child



def kill_after(child: subprocess.Popen[str], acknowledged: int) -> list[str]:
    """Read acknowledged ids until there are enough, SIGKILL the child, and return every id it printed."""
    assert child.stdout is not None
    ids = []
    while len(ids) < acknowledged:
        line = child.stdout.readline()
        assert line, "the child stopped early"
        ids.append(line.strip())
    os.kill(child.pid, signal.SIGKILL)
    rest = child.stdout.read()
    child.wait(timeout=30)
    ids += [line for line in rest.split("\n")[:-1] if line]   # a cut last line was never acknowledged
    return ids


def stored_ids(db: Path) -> set[str]:
    con = duckdb.connect(str(db))
    try:
        return {row[0] for row in con.execute("SELECT request_id FROM requests").fetchall()}
    finally:
        con.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("flush_interval", "acknowledged"), [("30", 400), ("0.02", 3000)],
                         ids=["nothing-flushed-yet", "killed-between-or-during-flushes"])
def test_kill_9_loses_no_acknowledged_request(tmp_path: Path, flush_interval: str, acknowledged: int) -> None:
    db = tmp_path / "log.duckdb"
    child = start_child(db, "--flush-interval", flush_interval)
    ids = kill_after(child, acknowledged)
    assert child.returncode == -signal.SIGKILL
    assert any(journal_dir(db).glob("*.seg")), "the dead child left no journal: nothing to prove"
    before = stored_ids(db)                     # the file opens cleanly: no replay yet
    if flush_interval == "30":
        assert before == set()                  # every acknowledged row was only in the journal

    log = DuckDBCallLog(db)                      # any later open replays the dead child's journal
    after = set(log.query("SELECT request_id FROM requests")["request_id"])
    assert set(ids) <= after
    assert log.replayed >= len(after) - len(before) >= len(set(ids) - before) > 0
    check = log.query("""SELECT (SELECT sum(n_attempts) FROM requests) AS expected,
                                (SELECT count(*) FROM attempts) AS actual""").iloc[0]
    assert check["expected"] == check["actual"]
    assert not journal_dir(db).exists() or not any(journal_dir(db).iterdir())
    log.close()

    again = DuckDBCallLog(db)                    # nothing left to replay; nothing doubled
    assert again.replayed == 0 and again.count_requests() == len(after)
    once = again.query("""SELECT (SELECT count(*) FROM attempts) AS attempts,
                                 (SELECT count(DISTINCT (request_id, n)) FROM attempts) AS distinct_attempts""").iloc[0]
    assert once["attempts"] == once["distinct_attempts"]
    again.close()


def _results(n: int) -> list[GenerationResult]:
    return finished_results(n, seed=5)


def _abandon(journal: Journal) -> None:
    """What a crash does: the lock goes with the process, the files stay."""
    for fd, _ in journal.rotate():
        os.close(fd)
    assert journal._lock_fd is not None
    os.close(journal._lock_fd)


def test_replay_skips_rows_already_committed(tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    results = _results(30)
    log = DuckDBCallLog(db)
    for result in results[:20]:
        log.record(result)
    log.flush()
    # A process that died after committing rows 0-19 but before deleting their journal, with 20-29 unflushed.
    dead = Journal(db)
    for result in results:
        dead.append(encode_record(encode(result)))
    _abandon(dead)
    reopened = DuckDBCallLog(db)
    assert reopened.replayed == 30
    assert reopened.count_requests() == 30
    attempts = reopened.query("SELECT count(*) AS n FROM attempts")["n"].iloc[0]
    assert attempts == sum(len(r.attempts) for r in results)
    log.close()
    reopened.close()


def test_a_torn_last_frame_is_skipped_and_reported(tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    DuckDBCallLog(db).close()
    dead = Journal(db)
    results = _results(5)
    for result in results:
        dead.append(encode_record(encode(result)))
    segment = dead.rotate()[0][1]
    _abandon(dead)
    with segment.open("ab") as f:
        f.write(b"\x40\x00\x00\x00garbage-half-frame")
    log = DuckDBCallLog(db)
    assert log.replayed == 5 and log.count_requests() == 5
    assert log.last_error is not None and "damaged bytes" in log.last_error
    log.close()


def test_a_live_process_journal_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    child = start_child(db, "--flush-interval", "30")
    assert child.stdout is not None
    first = child.stdout.readline().strip()
    try:
        other = DuckDBCallLog(db)                  # the child is alive: its journal is not ours to replay
        assert other.replayed == 0
        assert first not in set(other.query("SELECT request_id FROM requests")["request_id"])
        assert any(journal_dir(db).glob("*.seg"))
        other.close()
    finally:
        child.kill()
        child.wait(timeout=30)


def test_clean_close_leaves_no_journal(tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    log = DuckDBCallLog(db, flush_interval=30)
    for result in _results(10):
        log.record(result)
    assert any(journal_dir(db).glob("*.seg"))
    log.close()                                    # flushes now, despite the long interval
    assert not journal_dir(db).exists()
    assert DuckDBCallLog(db).count_requests() == 10


def test_journal_off_still_logs(tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    log = DuckDBCallLog(db, journal="off")
    for result in _results(10):
        log.record(result)
    assert not journal_dir(db).exists()
    log.flush()
    assert log.count_requests() == 10
    log.close()


def test_fsync_mode_logs(tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    log = DuckDBCallLog(db, journal="fsync")
    for result in _results(5):
        log.record(result)
    log.flush()
    assert log.count_requests() == 5
    log.close()


def test_a_malformed_request_is_set_aside_not_blocking_the_log(tmp_path: Path) -> None:
    from dataclasses import replace

    from taelio_core.calllog.journal import read_segment
    db = tmp_path / "log.duckdb"
    results = _results(11)
    poison = replace(results[5], status=None)          # status is NOT NULL in the schema
    log = DuckDBCallLog(db)
    for result in [*results[:5], poison, *results[6:]]:
        log.record(result)
    log.flush(timeout=60)
    assert log.count_requests() == 10 and log.rejected == 1
    assert log.last_error is not None and "set aside" in log.last_error
    aside = list((tmp_path / "log.duckdb.rejected").glob("*.seg"))
    records = [r for path in aside for r in read_segment(path)[0]]
    assert [r[0][0] for r in records] == [poison.request_id]       # kept, for a person to look at
    log.close()


def test_a_malformed_request_in_a_dead_journal_does_not_block_opening(tmp_path: Path) -> None:
    from dataclasses import replace
    db = tmp_path / "log.duckdb"
    DuckDBCallLog(db).close()
    results = _results(4)
    dead = Journal(db)
    for result in [results[0], replace(results[1], tier=None), results[2], results[3]]:
        dead.append(encode_record(encode(result)))
    _abandon(dead)
    log = DuckDBCallLog(db)
    assert log.count_requests() == 3 and log.rejected == 1
    log.close()
