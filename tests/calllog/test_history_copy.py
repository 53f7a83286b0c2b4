"""``taelio log copy``: a history moved between DuckDB and a real PostgreSQL, whole, exact, and only once."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from taelio_core.calllog import DuckDBCallLog, PostgresCallLog
from taelio_core.cli import main
from tests.calllog.traffic import finished_results

# Every column, with money and times as text so the comparison is exact on both backends.
_REQUESTS = ("SELECT request_id, strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S.%f') AS ts, tier, task, status, "
             "provider, model, CAST(cost_usd AS VARCHAR) AS cost, input_tokens, output_tokens, prompt, output, "
             "prompt_sha256, trace, retries FROM requests ORDER BY request_id")
_PG_REQUESTS = _REQUESTS.replace("strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S.%f')",
                                 "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")
_ATTEMPTS = ("SELECT request_id, n, provider, model, status, error_type, CAST(cost_usd AS VARCHAR) AS cost, "
             "latency_ms, sent FROM attempts ORDER BY request_id, n")


def _rows(log, sql: str) -> list[tuple]:  # noqa: ANN001
    return [tuple(r) for r in log.query(sql).astype(object).itertuples(index=False)]


@pytest.fixture
def duck(tmp_path: Path) -> Path:
    path = tmp_path / "history.duckdb"
    log = DuckDBCallLog(path, flush_interval=0.05)
    for result in finished_results(45, seed=11):
        log.record(result)
    log.close()
    return path


def test_a_duckdb_history_is_copied_into_postgresql_exactly_and_a_second_run_adds_nothing(
        duck: Path, pg_url: str, tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    to = pg_url.replace("taelio@", "taelio:copy-pw-7@")
    assert main(["log", "copy", "--from", f"duckdb:///{duck}", "--to", to, "--batch", "7"]) == 0
    out, err = capsys.readouterr()
    assert "45 new, 0 already there" in out
    assert err.count("\n") == 1 + 7 and "45 of 45 requests read" in err.splitlines()[-1]   # progress per batch
    assert "copy-pw-7" not in out + err

    source, copied = DuckDBCallLog(duck), PostgresCallLog(pg_url, spool=tmp_path)
    assert _rows(copied, _PG_REQUESTS) == _rows(source, _REQUESTS)
    assert _rows(copied, _ATTEMPTS) == _rows(source, _ATTEMPTS)
    source.close()
    copied.close()

    assert main(["log", "copy", "--from", str(duck), "--to", to, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["read"], again["added"]) == (45, 0)


def test_a_postgresql_history_is_copied_back_into_a_new_duckdb_file(duck: Path, pg_url: str, tmp_path: Path,
                                                                   capsys, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    assert main(["log", "copy", "--from", str(duck), "--to", pg_url]) == 0
    back = tmp_path / "back.duckdb"
    assert main(["log", "copy", "--from", pg_url, "--to", str(back), "--batch", "10"]) == 0
    assert "45 new" in capsys.readouterr().out
    source, returned = DuckDBCallLog(duck), DuckDBCallLog(back)
    assert _rows(returned, _REQUESTS) == _rows(source, _REQUESTS)
    assert _rows(returned, _ATTEMPTS) == _rows(source, _ATTEMPTS)
    source.close()
    returned.close()


def test_copying_from_a_log_that_does_not_exist_is_one_sentence_and_creates_nothing(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    missing = tmp_path / "nope.duckdb"
    assert main(["log", "copy", "--from", str(missing), "--to", str(tmp_path / "to.duckdb")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"taelio: --from: there is no call log at {missing}"
    assert list(tmp_path.iterdir()) == []
