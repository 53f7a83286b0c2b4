"""Several processes on one DuckDB file: a long-running logger, CLI commands and queries, all at once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from taelio_core.calllog import DuckDBCallLog
from taelio_core.errors import CallLogError
from taelio_core.routing.trace import GenerationResult
from tests.calllog.traffic import finished_results
from tests.servers import wait_until

ROOT = Path(__file__).resolve().parents[2]
CHILD = ROOT / "tests" / "calllog" / "traffic.py"


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def taelio(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "taelio_core", *args], capture_output=True, text=True, env=env(),
                          timeout=120)


@pytest.mark.timeout(240)
def test_logger_cli_and_queries_share_one_file(tmp_path: Path) -> None:
    db = tmp_path / "shared.duckdb"
    count = 1500
    child = subprocess.Popen([sys.executable, str(CHILD), str(db), "--count", str(count), "--pause", "0.002"],
                             stdout=subprocess.PIPE, text=True, env=env())
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    acknowledged: list[str] = []
    reader = threading.Thread(target=lambda: acknowledged.extend(line.strip() for line in child.stdout))
    reader.start()

    generated, stats_runs, seen = [], 0, []
    log = DuckDBCallLog(db)                     # this process's own handle: queries while the child writes
    while child.poll() is None:
        done = taelio("--db", str(db), "generate", "--tier", "pro", "--task", "idea", "--prompt", "A harbour",
                      "--json")
        assert done.returncode == 0, done.stderr
        generated.append(json.loads(done.stdout)["request_id"])
        stats = taelio("--db", str(db), "stats", "--since", "all", "--json")
        assert stats.returncode == 0, stats.stderr
        stats_runs += 1
        seen.append(json.loads(stats.stdout)["total"]["requests"])
        seen.append(log.count_requests())
    reader.join()
    assert child.returncode == 0
    assert acknowledged[-1].startswith("done")
    ids = acknowledged[:-1]
    assert len(ids) == count and stats_runs >= 1
    assert seen == sorted(seen)                 # each later look sees at least as much

    final = log.query("""SELECT count(*) FILTER (WHERE source = 'test') AS test,
                                count(*) FILTER (WHERE source = 'demo') AS demo, sum(n_attempts) AS expected,
                                (SELECT count(*) FROM attempts) AS attempts FROM requests""").iloc[0]
    assert final["test"] == count and final["demo"] == len(generated)
    assert final["expected"] == final["attempts"]
    stored = set(log.query("SELECT request_id FROM requests")["request_id"])
    assert set(ids) <= stored and set(generated) <= stored
    log.close()


@pytest.fixture
def holder(tmp_path: Path):
    """Start a process that holds the file open (as a long DuckDB query would) for ``seconds``."""
    procs = []

    def hold(db: Path, seconds: float) -> subprocess.Popen[str]:
        code = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
                "time.sleep(float(sys.argv[2])); c.close()")
        proc = subprocess.Popen([sys.executable, "-c", code, str(db), str(seconds)], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait(timeout=30)


def _results(n: int) -> list[GenerationResult]:
    return finished_results(n, seed=9)


def test_lock_conflicts_are_retried_with_backoff(tmp_path: Path, holder) -> None:
    db = tmp_path / "locked.duckdb"
    log = DuckDBCallLog(db)
    results = _results(50)
    holding = holder(db, 1.5)
    for result in results:
        log.record(result)                     # returns at once: the rows wait in the queue
    assert log.pending == 50                   # nothing can be written while the file is held
    log.flush(timeout=30)                      # the writer retried until the holder let go
    assert holding.poll() is not None or holding.wait(timeout=30) == 0
    assert log.lock_waits > 0
    assert log.count_requests() == 50
    log.close()


def test_a_lock_held_too_long_is_one_clear_error_and_loses_nothing(tmp_path: Path, holder) -> None:
    db = tmp_path / "locked.duckdb"
    log = DuckDBCallLog(db, lock_timeout=0.3)
    results = _results(20)
    holding = holder(db, 120.0)                # held until the test lets go, however slow the machine
    for result in results:
        log.record(result)
    with pytest.raises(CallLogError, match=r"stayed locked by another process for 0\.3 s"):
        log.query("SELECT 1")
    with pytest.raises(CallLogError, match="could not be flushed within"):
        log.flush(timeout=0.5)
    wait_until(lambda: log.last_error is not None and "locked" in log.last_error, timeout=30)  # the writer says why
    assert log.pending == 20
    holding.terminate()
    holding.wait(timeout=30)
    log.flush(timeout=30)                      # the rows waited in the queue (and the journal)
    assert log.count_requests() == 20
    log.close()
