"""The writer holds the file while traffic arrives, and lets another process in: when it waits, or once idle.

Also migration 005 (the key indexes dropped): an old file upgrades with its rows, and replay stays exactly-once.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from taelio_core.calllog import DuckDBCallLog
from taelio_core.calllog.arrow import ATTEMPT_SCHEMA, REQUEST_SCHEMA, rows_to_table
from taelio_core.calllog.journal import Journal, encode_record
from taelio_core.calllog.rows import encode
from taelio_core.calllog.schema import MIGRATIONS, migrate
from taelio_core.calllog.sharing import waiting_dir
from taelio_core.routing.trace import GenerationResult
from tests.calllog.traffic import finished_results, start_child

ROOT = Path(__file__).resolve().parents[2]
PLAIN_OPEN = """
import duckdb, sys, time
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        con = duckdb.connect(sys.argv[1])
        break
    except duckdb.IOException as e:
        if time.monotonic() > deadline:
            print("locked", flush=True)
            sys.exit(3)
        time.sleep(0.05)
print(con.execute("SELECT count(*) FROM requests").fetchone()[0], flush=True)
"""


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def plain_open(db: Path, patience: float) -> subprocess.CompletedProcess[str]:
    """A plain DuckDB client in another process (it cannot signal that it waits), retrying for ``patience`` s."""
    return subprocess.run([sys.executable, "-c", PLAIN_OPEN, str(db), str(patience)], capture_output=True, text=True,
                          timeout=120)


def _results(n: int, seed: int = 21) -> list[GenerationResult]:
    return finished_results(n, seed=seed)


def exactly_once(log: DuckDBCallLog) -> None:
    check = log.query("""SELECT (SELECT count(*) FROM requests) AS requests,
                                (SELECT count(DISTINCT request_id) FROM requests) AS distinct_requests,
                                (SELECT count(*) FROM attempts) AS attempts,
                                (SELECT count(DISTINCT (request_id, n)) FROM attempts) AS distinct_attempts,
                                (SELECT sum(n_attempts) FROM requests) AS expected_attempts""").iloc[0]
    assert check["requests"] == check["distinct_requests"]
    assert check["attempts"] == check["distinct_attempts"] == check["expected_attempts"]


@pytest.mark.timeout(180)
def test_the_writer_holds_the_file_until_a_taelio_process_waits_for_it(tmp_path: Path) -> None:
    db = tmp_path / "held.duckdb"
    log = DuckDBCallLog(db, idle_release=600)        # never idle-released within this test
    results = _results(20)
    for result in results[:10]:
        log.record(result)
    log.flush(timeout=60)
    assert log.commits >= 1 and log.opens == 1 and log.yields == 0

    plain = plain_open(db, patience=0)               # held: a plain client is locked out
    assert plain.returncode == 3 and plain.stdout.strip() == "locked"

    stats = subprocess.run([sys.executable, "-m", "taelio_core", "--db", str(db), "stats", "--since", "all", "--json"],
                           capture_output=True, text=True, env=env(), timeout=120)
    assert stats.returncode == 0, stats.stderr       # it waited, said so, and the writer let go
    assert json.loads(stats.stdout)["total"]["requests"] == 10
    assert log.yields >= 1
    assert not waiting_dir(db).exists()              # the CLI removed its waiting file once in

    for result in results[10:]:
        log.record(result)
    log.flush(timeout=60)                            # the writer opens the file again
    assert log.opens >= 2 and log.count_requests() == 20
    exactly_once(log)
    log.close()


@pytest.mark.timeout(180)
def test_an_idle_writer_lets_go_so_a_plain_client_gets_in(tmp_path: Path) -> None:
    db = tmp_path / "idle.duckdb"
    log = DuckDBCallLog(db, idle_release=0.1)
    for result in _results(5):
        log.record(result)
    log.flush(timeout=60)
    plain = plain_open(db, patience=60)              # no signal from it: only the idle release lets it in
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert plain.stdout.strip() == "5"
    assert log.yields == 0                           # nobody signalled: it was the idle release
    for result in _results(3, seed=22):              # and the log goes on working after letting go
        log.record(result)
    log.flush(timeout=60)
    assert log.count_requests() == 8 and log.opens >= 2
    log.close()


@pytest.mark.timeout(300)
def test_another_process_reads_and_writes_while_a_router_logs_at_a_low_rate(tmp_path: Path) -> None:
    db = tmp_path / "shared.duckdb"
    count = 240
    child = start_child(db, "--count", str(count), "--pause", "0.02")
    assert child.stdout is not None
    child_ids: list[str] = []
    mine: list[str] = []
    seen: list[int] = []
    results = _results(15, seed=23)
    for round_ in range(3):
        while len(child_ids) < 60 * (round_ + 1):    # let the child log for a while between our visits
            line = child.stdout.readline()
            assert line, "the child stopped early"
            child_ids.append(line.strip())
        other = DuckDBCallLog(db)                     # opens (migrate, replay check) while the child holds the file
        seen.append(other.count_requests())
        for result in results[5 * round_:5 * (round_ + 1)]:
            other.record(result)
            mine.append(result.request_id)
        other.flush(timeout=60)
        other.write(lambda con: con.execute("CREATE TABLE IF NOT EXISTS notes (n INTEGER)"))
        other.write(lambda con, n=round_: con.execute("INSERT INTO notes VALUES (?)", [n]))
        other.close()
    rest = child.stdout.read().strip().splitlines()
    assert child.wait(timeout=120) == 0
    child_ids += rest[:-1]
    stats = dict(item.split("=") for item in rest[-1].split()[2:])
    assert len(child_ids) == count
    assert int(stats["yields"]) >= 1                  # the child let go for us...
    assert int(stats["opens"]) < int(stats["commits"])   # ...and otherwise held one connection across flushes
    assert seen == sorted(seen) and seen[0] > 0

    log = DuckDBCallLog(db)
    stored = set(log.query("SELECT request_id FROM requests")["request_id"])
    assert set(child_ids) | set(mine) == stored and len(stored) == count + len(mine)
    assert sorted(log.query("SELECT n FROM notes")["n"]) == [0, 1, 2]
    exactly_once(log)
    log.close()


def test_migration_005_keeps_the_rows_and_drops_the_keys(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    results = _results(6, seed=24)
    rows = [encode(r) for r in results]
    keys = ("SELECT count(*) FROM duckdb_constraints() WHERE table_name IN ('requests', 'attempts') "
            "AND constraint_type = 'PRIMARY KEY'")
    con = duckdb.connect(str(db))
    migrate(con, MIGRATIONS[:4])                          # a file made before 005
    con.register("r", rows_to_table([r for r, _ in rows], REQUEST_SCHEMA))
    con.register("a", rows_to_table([a for _, atts in rows for a in atts], ATTEMPT_SCHEMA))
    # (the columns added by migration 012 did not exist then)
    con.execute("INSERT INTO requests SELECT * EXCLUDE (retries, pinned_provider) FROM r")
    con.execute("INSERT INTO attempts SELECT * EXCLUDE (wait_ms, sent) FROM a")
    assert con.execute(keys).fetchone()[0] == 2
    con.close()

    log = DuckDBCallLog(db)
    assert log.query(keys.replace("count(*)", "count(*) AS n"))["n"].iloc[0] == 0
    assert "005_requests_without_key_indexes" in set(log.query("SELECT name FROM _migrations")["name"])
    assert set(log.query("SELECT request_id FROM requests")["request_id"]) == {r.request_id for r in results}
    assert log.query("SELECT count(*) AS n FROM attempts")["n"].iloc[0] == sum(len(r.attempts) for r in results)
    nullable = log.query("SELECT is_nullable FROM information_schema.columns "
                         "WHERE table_name = 'requests' AND column_name = 'status'")["is_nullable"].iloc[0]
    assert nullable == "NO"                                # the other constraints survive the rebuild
    log.close()


def test_a_journal_replayed_twice_still_stores_each_request_once(tmp_path: Path) -> None:
    """A replay interrupted after its commit (before deleting the journal) runs again on the next open."""
    db = tmp_path / "log.duckdb"
    DuckDBCallLog(db).close()
    results = _results(12, seed=25)
    for _ in range(2):
        dead = Journal(db)
        for result in results:
            dead.append(encode_record(encode(result)))
        for fd, _path in dead.rotate():
            os.close(fd)
        assert dead._lock_fd is not None
        os.close(dead._lock_fd)                             # the crash: the lock goes, the files stay
        log = DuckDBCallLog(db)
        assert log.replayed == 12
        assert log.count_requests() == 12
        exactly_once(log)
        log.close()
