"""The PostgreSQL call log against a real server: selection by DATABASE_URL, migrations under concurrency, kill -9
replay, secrets, and the other modules' tables (sandbox runs, alerts) in the same database."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from taelio_core.calllog import PostgresCallLog, open_call_log
from taelio_core.calllog.journal import Journal, encode_record, journal_dir
from taelio_core.calllog.postgres import spool_name
from taelio_core.calllog.postgres_schema import postgres_migrations
from taelio_core.calllog.postgres_sql import to_psycopg
from taelio_core.calllog.rows import encode
from taelio_core.calllog.schema import MIGRATIONS
from taelio_core.config.settings import PostgresTarget, database_target, load_settings
from taelio_core.errors import CallLogError, ConfigError
from tests.calllog.test_durability import _abandon, kill_after
from tests.calllog.traffic import arrow_batch, finished_results, start_child


# ---- placeholders (no server) ----------------------------------------------------------------
def test_question_marks_become_psycopg_placeholders_and_literal_percents_are_doubled() -> None:
    sql, params = to_psycopg("SELECT 'a?%' AS x, ? AS y -- what? 100%\nWHERE z LIKE '%?' AND w = ?", [1, 2])
    assert sql == "SELECT 'a?%%' AS x, %s AS y -- what? 100%%\nWHERE z LIKE '%%?' AND w = %s"
    assert params == [1, 2]


def test_numbered_placeholders_are_reordered_and_named_ones_keep_their_names() -> None:
    assert to_psycopg("SELECT $2, $1, $2", ["a", "b"]) == ("SELECT %s, %s, %s", ["b", "a", "b"])
    assert to_psycopg("SELECT $id, x::int FROM t WHERE y = $id", {"id": 7}) == (
        "SELECT %(id)s, x::int FROM t WHERE y = %(id)s", {"id": 7})


def test_a_placeholder_the_parameters_cannot_fill_is_named() -> None:
    with pytest.raises(ValueError, match=r"\$3"):
        to_psycopg("SELECT $3", ["a"])
    with pytest.raises(ValueError, match="mixes placeholder styles"):
        to_psycopg("SELECT ?, $1", ["a"])


# ---- selection and secrets ---------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_database_url_with_a_postgresql_scheme_selects_postgresql_and_hides_the_password(scheme: str) -> None:
    target = load_settings(env={"DATABASE_URL": f"{scheme}://taelio:pw1@db.internal:5433/calls"}).database
    assert isinstance(target, PostgresTarget)
    assert target.shown == f"{scheme}://db.internal:5433/calls" and "pw1" not in repr(target)
    assert isinstance(database_target(None), Path)                     # DuckDB stays the default


def test_a_postgresql_url_libpq_cannot_read_is_refused_in_one_sentence_without_its_password() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL: .* is not a PostgreSQL URL") as info:
        database_target("postgresql://u:hunter2pw@host/db?bogus=hunter2pw")
    assert "hunter2pw" not in str(info.value) and "\n" not in str(info.value)


def test_an_unreachable_or_refusing_server_is_one_sentence_without_the_password(pg_server, tmp_path) -> None:
    wrong_port = f"postgresql://taelio:pw@127.0.0.1:{_closed_port()}/postgres"
    # The host may be masked by the redaction other tests leave registered; the sentence and no password are what count.
    with pytest.raises(CallLogError, match="cannot connect to the log postgresql") as info:
        PostgresCallLog(wrong_port, spool=tmp_path)
    assert ":pw@" not in str(info.value)
    no_such_db = pg_server.url.rsplit("/", 1)[0].replace("taelio@", "taelio:s3cr3t-pass@") + "/nope"
    with pytest.raises(CallLogError, match='database "nope" does not exist') as info:
        PostgresCallLog(no_such_db, spool=tmp_path)
    assert "s3cr3t" not in str(info.value)


def _closed_port() -> int:
    from tests.servers import free_port
    return free_port()


def test_open_call_log_opens_postgresql_from_database_url(pg_url: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    log = open_call_log(load_settings(env={"DATABASE_URL": pg_url}))
    try:
        assert isinstance(log, PostgresCallLog) and log.location == pg_url.replace("taelio@", "")
        assert log.spool == Path("data") / spool_name(pg_url)
    finally:
        log.close()


# ---- schema --------------------------------------------------------------------------------------
def test_every_migration_has_a_postgresql_version_under_the_same_name_followed_by_postgresqls_own() -> None:
    from taelio_core.analytics.pg_rollup import MIGRATIONS as PG_ONLY
    assert [name for name, _ in postgres_migrations()] == [name for name, _ in MIGRATIONS] + [
        "postgres_rollup_triggers", "postgres_rollup_fold_hashed", "postgres_requests_parent_index",
        "postgres_latency_histogram_hourly_index", "postgres_attempt_rollup_simulated"]
    assert [name for name, _ in PG_ONLY] == ["postgres_rollup_triggers", "postgres_rollup_fold_hashed",
                                             "postgres_requests_parent_index",
                                             "postgres_latency_histogram_hourly_index",
                                             "postgres_attempt_rollup_simulated"]


def test_a_log_migrated_before_the_hashed_fold_gets_it_and_two_writers_folding_the_same_hours_sum_exactly(
        pg_url: str, tmp_path: Path) -> None:
    from taelio_core.calllog.postgres_copy import copy_tables
    from taelio_core.calllog.postgres_schema import migrate
    with psycopg.connect(pg_url, autocommit=True) as conn:     # a database as it was before the new migration
        names = [name for name, _ in postgres_migrations()]
        migrate(conn, postgres_migrations()[:names.index("postgres_rollup_fold_hashed")])
    log = PostgresCallLog(pg_url, spool=tmp_path)
    source = log.query("SELECT prosrc FROM pg_proc WHERE proname = 'taelio_fold_attempts'")["prosrc"].iloc[0]
    assert "MATERIALIZED" in source
    base = finished_results(200, seed=3)

    def write(k: int) -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            for round_ in range(3):
                copy_tables(conn, *arrow_batch(base, f"w{10 * k + round_}"))

    writers = [threading.Thread(target=write, args=(k,)) for k in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert log.count_requests() == 6 * len(base)
    folded = log.query("SELECT sum(requests) AS n, sum(cost_usd) AS cost FROM request_rollup").iloc[0]
    raw = log.query("SELECT count(*) AS n, sum(cost_usd) AS cost FROM requests").iloc[0]
    assert folded["n"] == raw["n"] and folded["cost"] == raw["cost"]
    hist = log.query("SELECT sum(n) AS n FROM latency_histogram WHERE metric = 'latency'")["n"].iloc[0]
    ok = log.query("SELECT count(*) AS n FROM attempts WHERE status = 'ok' AND latency_ms IS NOT NULL")["n"].iloc[0]
    tries = log.query("SELECT sum(attempts) AS n FROM attempt_rollup")["n"].iloc[0]
    assert hist == ok and tries == log.query("SELECT count(*) AS n FROM attempts")["n"].iloc[0]
    log.close()


def test_the_columns_and_their_types_match_duckdbs(pg_url: str, tmp_path: Path) -> None:
    from taelio_core.calllog import DuckDBCallLog
    duck = DuckDBCallLog(tmp_path / "log.duckdb")
    pg = PostgresCallLog(pg_url, spool=tmp_path)
    shown = {"VARCHAR": "text", "character varying": "text", "DOUBLE": "double", "double precision": "double",
             "BIGINT": "bigint", "INTEGER": "integer", "BOOLEAN": "boolean", "DECIMAL(18,10)": "numeric(18,10)",
             "numeric": "numeric", "TIMESTAMP WITH TIME ZONE": "timestamptz", "timestamp with time zone": "timestamptz",
             "JSON": "json", "json": "json", "TIMESTAMP": "timestamp", "timestamp without time zone": "timestamp",
             "DECIMAL(38,10)": "numeric(38,10)"}
    sql = ("SELECT table_name, column_name, {t} AS t FROM information_schema.columns "
           "WHERE table_schema = {s} AND table_name IN ('requests', 'attempts', 'experiments', 'sandbox_runs', "
           "'alerts', 'request_rollup', 'attempt_rollup') ORDER BY table_name, ordinal_position")
    d = duck.query(sql.format(t="data_type", s="'main'"))
    p = pg.query(sql.format(t="CASE WHEN data_type = 'numeric' THEN 'numeric(' || numeric_precision || ',' "
                              "|| numeric_scale || ')' ELSE data_type END", s="'public'"))
    d_types = [(r.table_name, r.column_name, shown.get(r.t, r.t)) for r in d.itertuples()]
    p_types = [(r.table_name, r.column_name, shown.get(r.t, r.t)) for r in p.itertuples()]
    assert len(p_types) > 100 and p_types == d_types
    duck.close()
    pg.close()


def test_several_processes_opening_a_fresh_database_at_once_apply_each_migration_once(pg_url: str,
                                                                                       tmp_path: Path) -> None:
    code = ("import sys; from taelio_core.calllog import PostgresCallLog; "
            "PostgresCallLog(sys.argv[1], spool=sys.argv[2]).close(); print('opened')")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    children = [subprocess.Popen([sys.executable, "-c", code, pg_url, str(tmp_path / f"s{i}")], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    errors: list[BaseException] = []

    def open_in_thread() -> None:
        try:
            PostgresCallLog(pg_url, spool=tmp_path / "t").close()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=open_in_thread) for _ in range(3)]
    for t in threads:
        t.start()
    outcomes = [c.communicate(timeout=120) for c in children]
    for t in threads:
        t.join()
    assert errors == [] and [out.strip() for out, _ in outcomes] == ["opened"] * 4, outcomes
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT name, count(*) FROM _migrations GROUP BY name ORDER BY name").fetchall()
    assert rows == [(name, 1) for name in sorted(n for n, _ in postgres_migrations())]


# ---- durability ------------------------------------------------------------------------------------
@pytest.mark.timeout(180)
def test_kill_9_loses_no_acknowledged_request_and_the_replay_lands_each_once(pg_url: str, tmp_path: Path) -> None:
    child = start_child(pg_url, "--flush-interval", "0.02", "--spool", str(tmp_path))
    ids = kill_after(child, 1500)
    assert child.returncode == -signal.SIGKILL
    spool = tmp_path / spool_name(pg_url)
    assert any(journal_dir(spool).glob("*.seg")), "the dead child left no journal: nothing to prove"

    log = PostgresCallLog(pg_url, spool=tmp_path)             # the next open from the same folder replays it
    stored = set(log.query("SELECT request_id FROM requests")["request_id"])
    assert set(ids) <= stored and log.replayed > 0
    check = log.query("SELECT (SELECT sum(n_attempts) FROM requests) AS expected, "
                      "(SELECT count(*) FROM attempts) AS actual").iloc[0]
    assert check["expected"] == check["actual"]
    log.close()
    again = PostgresCallLog(pg_url, spool=tmp_path)
    assert again.replayed == 0 and again.count_requests() == len(stored)
    again.close()


def test_a_journal_of_rows_already_committed_is_replayed_without_doubling_them(pg_url: str, tmp_path: Path) -> None:
    results = finished_results(30, seed=5)
    log = PostgresCallLog(pg_url, spool=tmp_path, flush_interval=0.05)
    for result in results[:20]:
        log.record(result)
    log.flush(timeout=60)
    dead = Journal(tmp_path / spool_name(pg_url))     # died after committing 0-19, before deleting their journal
    for result in results:
        dead.append(encode_record(encode(result)))
    _abandon(dead)
    reopened = PostgresCallLog(pg_url, spool=tmp_path)
    assert reopened.replayed == 30 and reopened.count_requests() == 30
    assert reopened.query("SELECT count(*) AS n FROM attempts")["n"].iloc[0] == sum(len(r.attempts) for r in results)
    log.close()
    reopened.close()


def test_requests_recorded_while_the_server_is_down_wait_and_are_written_when_it_returns(
        pg_server, pg_url: str, tmp_path: Path) -> None:
    results = finished_results(10, seed=8)
    log = PostgresCallLog(pg_url, spool=tmp_path, flush_interval=0.05)
    log.record(results[0])
    log.flush(timeout=60)
    pg_server.stop()
    try:
        for result in results[1:]:
            log.record(result)                         # never blocks on the server
        with pytest.raises(CallLogError):
            log.flush(timeout=1.5)
        assert log.writer_status().pending == 9 and log.writer_status().last_error
    finally:
        pg_server.start()
    log.flush(timeout=60)
    assert log.count_requests() == 10 and log.writer_status().last_error is None
    log.close()


# ---- other modules' tables ------------------------------------------------------------------------
def test_a_sandbox_run_is_saved_whole_in_postgresql(pg_url: str, tmp_path: Path) -> None:
    from taelio_core.config.policy_parser import load_policy
    from taelio_core.sandbox.models import models_from_policy
    from taelio_core.sandbox.simulation import simulate
    from taelio_core.sandbox.store import list_runs, load_summaries, save_report
    from taelio_core.sandbox.traffic import synthetic_traffic
    a, b = load_policy("current"), load_policy("seed")
    report = simulate(a, synthetic_traffic(requests=300, tiers=a.tiers, tasks=a.tasks, seed=1),
                      models_from_policy(a, b), policy_b=b, seeds=1)
    log = PostgresCallLog(pg_url, spool=tmp_path)
    run_id = save_report(log, report)
    assert list(list_runs(log)["run_id"]) == [run_id]
    summaries = load_summaries(log, run_id)
    requests = summaries.query("scope == 'tier' and key == 'all' and metric == 'requests'")
    assert sorted(zip(requests["arm"], requests["value"])) == [("A", 300.0), ("B", 300.0)]
    trace = json.loads(log.query("SELECT trace FROM sandbox_traces LIMIT 1")["trace"].iloc[0])
    assert trace["source"] == "sandbox" and log.count_requests() == 0
    assert log.query("SELECT count(DISTINCT provider) AS n FROM sandbox_series WHERE arm = 'A'")["n"].iloc[0] == 3
    log.close()


def test_an_alert_is_claimed_once_and_its_delivery_logged_in_postgresql(pg_url: str, tmp_path: Path) -> None:
    from taelio_core.monitoring.alerts import Alert, deliver
    log = PostgresCallLog(pg_url, spool=tmp_path)
    alert = Alert(kind="budget_alert", subject="tier:pro", period="2026-12", text="pro is at 80% of its budget")
    now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    first = deliver(log, [alert], None, now=lambda: now)
    second = deliver(log, [alert], None, now=lambda: now)
    assert [d.status for d in first + second] == ["no_webhook", "already_sent"]
    row = log.query("SELECT status, attempts, first_seen FROM alerts").iloc[0]
    assert (row["status"], row["attempts"], row["first_seen"]) == ("no_webhook", 1, now)
    log.close()
