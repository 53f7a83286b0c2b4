"""``taelio log copy`` moves the whole history, not only requests: experiments, votes, judge verdicts, input
sets, Sandbox runs, breaker events, both ways between a real DuckDB file and a real PostgreSQL.

The source is filled through the product's own APIs (an experiment run by the router, votes, the judge, a
saved set, a saved Sandbox run, the breaker listener), never by hand-written SQL. The target must then read
the same through the same reads (experiment results, Sandbox runs, analytics), and a second copy adds nothing.
"""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import tests.analytics.test_postgres_parity as parity
from taelio_core.calllog import DuckDBCallLog, PostgresCallLog
from taelio_core.calllog.history_tables import BOOKKEEPING_TABLES, DERIVED_TABLES, HISTORY_TABLES
from taelio_core.calllog.journal import Journal, encode_record, journal_dir
from taelio_core.calllog.postgres import spool_name
from taelio_core.calllog.rows import encode
from taelio_core.cli import main
from taelio_core.config.policy_parser import load_policy, parse_policy
from taelio_core.experiments import ExperimentSpec, Experiments, ExperimentStore, VariantSpec, parse_csv, results
from taelio_core.experiments.assertions import parse_checks
from taelio_core.guards.breakers import BreakerEvent
from taelio_core.monitoring.health import BreakerEventLog
from taelio_core.providers import SimProfile, SimulatedProvider
from taelio_core.routing.clock import LoopClock
from taelio_core.routing.router import Router
from taelio_core.sandbox.models import models_from_policy
from taelio_core.sandbox.simulation import simulate
from taelio_core.sandbox.store import list_runs, load_summaries, save_report
from taelio_core.sandbox.traffic import synthetic_traffic
from tests.calllog.test_durability import _abandon
from tests.calllog.traffic import finished_results
from tests.experiments.conftest import LATENCY_MS, POLICY
from tests.experiments.virtual_time import run_virtual

pytestmark = pytest.mark.timeout(300)

RAW = {"requests", "attempts"}
ANALYTICS = ("headline", "spend_by", "cost_by_provider_tier", "latency_by_provider", "fallback_rate",
             "errors_by_type", "requests_by_source", "list_requests", "top_users")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A DuckDB log holding a bit of everything, made as the product makes it; and the experiment's id."""
    path = tmp_path_factory.mktemp("source") / "history.duckdb"
    log = DuckDBCallLog(path)
    start = datetime.now(timezone.utc) - timedelta(days=2)
    for result in finished_results(30, seed=5):
        log.record(result)

    policy = parse_policy(POLICY, source="exp-test.toml")
    sim = SimulatedProvider(name="sim", seed=3, profiles={
        m: SimProfile(latency_ms=ms, latency_sigma=0.0, output_tokens=60) for m, ms in LATENCY_MS.items()})
    router = Router(policy, {"sim": sim}, sink=log, clock=LoopClock(start), source="live")
    experiments = Experiments.open(router, log)
    spec = ExperimentSpec(name="copied", variants=[VariantSpec(model="sim:a", label="alpha"),
                                                   VariantSpec(model="sim:b", label="beta")],
                          assertions=parse_checks("contains: idea\nrubric: Vivid"))
    exp = experiments.store.create(spec, parse_csv("prompt\n" + "\n".join(f"idea {i}" for i in range(4))))
    run_virtual(experiments.runner.arun(exp.experiment_id))
    run_virtual(experiments.judge.arun(exp.experiment_id))
    for input_id in range(1, 5):
        experiments.store.add_vote(exp.experiment_id, input_id, "v2", "v1", "left", voter="ana")
    experiments.store.add_vote(exp.experiment_id, 1, "v1", "v2", "tie", voter="bo")
    experiments.store.save_set("premises", [{"prompt": "a lighthouse"}, {"prompt": "a comet"}])

    a, b = load_policy("current"), load_policy("seed")
    traffic = synthetic_traffic(requests=120, tiers=a.tiers, tasks=a.tasks, seed=1)
    save_report(log, simulate(a, traffic, models_from_policy(a, b), policy_b=b, seeds=1))

    events = BreakerEventLog(log)
    events(BreakerEvent(ts=start, provider="openai", model="gpt-4.1", from_state="closed", to_state="open",
                        reason="5 failures in a row", until=start + timedelta(seconds=30)))
    events(BreakerEvent(ts=start + timedelta(seconds=31), provider="openai", model="*", from_state="closed",
                        to_state="open", reason="key rejected"))
    events.close()
    log.close()
    return path, exp.experiment_id


def _counts(log) -> dict[str, int]:  # noqa: ANN001
    names = sorted(RAW | {t.name for t in HISTORY_TABLES})
    return {name: int(log.query(f"SELECT count(*) AS n FROM {name}")["n"].iloc[0]) for name in names}


def _reads_equal(want_log, got_log, experiment_id: str) -> None:  # noqa: ANN001
    """What the dashboard and the CLI read from each log: experiments, Sandbox runs, analytics."""
    policy = parse_policy(POLICY, source="exp-test.toml")
    want, got = ExperimentStore(want_log, policy), ExperimentStore(got_log, policy)
    a, b = results(want, experiment_id, n_boot=50), results(got, experiment_id, n_boot=50)
    assert a.n_votes == b.n_votes == 5 and a.n_judged == b.n_judged > 0
    parity._equal(a.as_dict(), b.as_dict(), "experiment results")
    parity._equal(a.matrix, b.matrix, "experiment matrix")
    for read, key in (("votes", ["vote_id"]), ("judgments", ["input_id", "variant_a", "variant_b"]),
                      ("grades", ["input_id", "variant_id", "assertion_id"])):
        # These reads keep the order rows were stored in, which a copy need not keep: compare them sorted.
        parity._equal(*(getattr(store, read)(experiment_id).sort_values(key, ignore_index=True)
                        for store in (want, got)), read)
    assert got.load_set("premises") == want.load_set("premises")
    runs = list_runs(want_log)
    parity._equal(runs, list_runs(got_log), "sandbox runs")
    parity._equal(load_summaries(want_log, runs["run_id"].iloc[0]), load_summaries(got_log, runs["run_id"].iloc[0]),
                  "sandbox summaries")
    for name in ANALYTICS:
        parity._equal(parity.COVERED[name](want_log, parity.FILTERS["all"]),
                      parity.COVERED[name](got_log, parity.FILTERS["all"]), name)


def test_the_whole_history_goes_to_postgresql_and_back_reads_the_same_and_a_second_run_adds_nothing(
        history: tuple[Path, str], pg_url: str, tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAELIO_JOURNAL_DIR", str(tmp_path / "journals"))
    duck, experiment_id = tmp_path / "history.duckdb", history[1]
    shutil.copy(history[0], duck)
    source = DuckDBCallLog(duck)
    want = _counts(source)
    source.close()
    assert [t.name for t in HISTORY_TABLES if not want[t.name]] == ["alerts"]    # the seed reached every kind

    assert main(["log", "copy", "--from", f"duckdb:///{duck}", "--to", pg_url, "--batch", "50"]) == 0
    out, err = capsys.readouterr()
    assert "Other history: experiments 1 (1 new); experiment_variants 2 (2 new)" in out
    assert f"sandbox_traces {want['sandbox_traces']:,} ({want['sandbox_traces']:,} new)" in out
    last = {line.split(":")[1].strip(): line for line in err.splitlines() if line.count(":") and "rows read" in line}
    assert set(last) == {t.name for t in HISTORY_TABLES if want[t.name]}           # progress for each table
    assert f"experiment_votes: 5 of 5 rows read from {duck}, 5 added to" in err

    pg = PostgresCallLog(pg_url, spool=tmp_path / "journals")
    source = DuckDBCallLog(duck)
    assert _counts(pg) == want
    _reads_equal(source, pg, experiment_id)
    source.close()
    pg.close()

    assert main(["log", "copy", "--from", str(duck), "--to", pg_url, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["added"] == 0 and again["read"] == want["requests"]
    assert {name: t["added"] for name, t in again["tables"].items()} == {t.name: 0 for t in HISTORY_TABLES}
    assert {name: t["read"] for name, t in again["tables"].items()} == {t.name: want[t.name] for t in HISTORY_TABLES}

    back = tmp_path / "back.duckdb"
    assert main(["log", "copy", "--from", pg_url, "--to", f"duckdb:///{back}", "--batch", "7"]) == 0
    assert f"{want['requests']} new, 0 already there" in capsys.readouterr().out
    assert main(["log", "copy", "--from", pg_url, "--to", str(back), "--json"]) == 0
    twice = json.loads(capsys.readouterr().out)
    assert twice["added"] == 0 and all(t["added"] == 0 for t in twice["tables"].values())
    pg, returned, source = PostgresCallLog(pg_url, spool=tmp_path / "journals"), DuckDBCallLog(back), DuckDBCallLog(duck)
    assert _counts(pg) == _counts(returned) == want
    _reads_equal(source, returned, experiment_id)
    for log in (pg, returned, source):
        log.close()


def _tables(log) -> set[str]:  # noqa: ANN001
    schema = "public" if isinstance(log, PostgresCallLog) else "main"
    return set(log.query("SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
                         "AND table_type = 'BASE TABLE'", [schema])["table_name"])


def test_every_table_the_migrations_create_is_copied_rebuilt_or_bookkeeping_on_both_backends(
        pg_url: str, tmp_path: Path) -> None:
    known = RAW | {t.name for t in HISTORY_TABLES} | DERIVED_TABLES | BOOKKEEPING_TABLES
    duck, pg = DuckDBCallLog(tmp_path / "fresh.duckdb"), PostgresCallLog(pg_url, spool=tmp_path)
    try:
        for log in (duck, pg):
            tables = _tables(log)
            assert tables - known == set(), f"{log.location}: say in history_tables.py how these are copied"
            assert {t.name for t in HISTORY_TABLES} <= tables
    finally:
        duck.close()
        pg.close()


def test_log_copy_replays_and_journals_under_taelio_journal_dir_not_the_working_directory(
        pg_url: str, tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    shared = tmp_path / "journals"
    monkeypatch.setenv("TAELIO_JOURNAL_DIR", str(shared))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    duck = tmp_path / "small.duckdb"
    log = DuckDBCallLog(duck)
    for result in finished_results(4, seed=2):
        log.record(result)
    log.close()
    # A replica of the destination killed with 3 requests journalled and not yet committed.
    dead = Journal(shared / spool_name(pg_url))
    for result in finished_results(3, seed=9):
        dead.append(encode_record(encode(result)))
    _abandon(dead)

    assert main(["log", "copy", "--from", str(duck), "--to", pg_url]) == 0
    assert "4 new" in capsys.readouterr().out
    assert not any(journal_dir(shared / spool_name(pg_url)).glob("*.seg"))    # the copy replayed it, once
    assert not (elsewhere / "data").exists()
    pg = PostgresCallLog(pg_url, spool=shared)
    try:
        assert pg.count_requests() == 4 + 3
    finally:
        pg.close()


@pytest.mark.parametrize(("flags", "said"), [
    (["--from", "mysql://u@h/db", "--to", "x.duckdb"], "taelio: --from: "),
    (["--from", "{duck}", "--to", "notes.txt"], "taelio: --to: 'notes.txt' is neither a duckdb:/// URL nor a "),
    (["--from", "{text}", "--to", "x.duckdb"], "taelio: --from: "),
    (["--from", "{duck}", "--to", "postgresql://taelio:pw-never-shown@127.0.0.1:1/none"],
     "taelio: --to: cannot connect to the log postgresql://127.0.0.1:1/none"),
])
def test_a_bad_from_or_to_is_one_sentence_naming_the_flag(flags: list[str], said: str, tmp_path: Path,
                                                          capsys, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    duck = tmp_path / "one.duckdb"
    DuckDBCallLog(duck).close()
    text = tmp_path / "notes.duckdb"
    text.write_text("not a database\n")
    assert main(["log", "copy", *(f.format(duck=duck, text=text) for f in flags)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(said) and err.count("\n") == 1, err
    assert "Traceback" not in err and "pw-never-shown" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.duckdb", "one.duckdb"]     # nothing created


def test_a_postgresql_database_without_a_log_is_refused_as_a_source_and_left_untouched(
        pg_url: str, tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    import psycopg
    monkeypatch.chdir(tmp_path)
    assert main(["log", "copy", "--from", pg_url, "--to", "back.duckdb"]) == 2
    shown = pg_url.replace("taelio@", "")
    assert capsys.readouterr().err == f"taelio: --from: there is no call log in {shown}\n"
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
                            ).fetchone()[0] == 0
    assert not (tmp_path / "back.duckdb").exists()
