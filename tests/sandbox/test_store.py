"""Saved runs live in the sandbox tables under their run id, never in the live requests table."""
from __future__ import annotations

import json

import duckdb

from taelio_core.calllog import DuckDBCallLog
from taelio_core.config.policy_parser import load_policy
from taelio_core.sandbox.models import models_from_policy, parse_scenario
from taelio_core.sandbox.simulation import simulate
from taelio_core.sandbox.store import list_runs, load_summaries, save_report
from taelio_core.sandbox.traffic import synthetic_traffic


def test_a_saved_run_is_stored_whole_and_apart_from_live_analytics(tmp_path) -> None:
    a, b = load_policy("current"), load_policy("seed")
    traffic = synthetic_traffic(requests=600, tiers=a.tiers, tasks=a.tasks, seed=1)
    report = simulate(a, traffic, models_from_policy(a, b), policy_b=b, scenario=parse_scenario("gemini-p95-x4"),
                      seeds=2)
    log = DuckDBCallLog(tmp_path / "log.duckdb")
    run_id = save_report(log, report)
    runs = list_runs(log)
    assert list(runs["run_id"]) == [run_id] and runs["seeds"].iloc[0] == 2
    summaries = load_summaries(log, run_id)
    requests = summaries[(summaries["scope"] == "tier") & (summaries["metric"] == "requests")
                         & (summaries["key"] == "all")]
    assert sorted(zip(requests["arm"], requests["seed"], requests["value"])) == [
        ("A", 0, 600.0), ("A", 1, 600.0), ("B", 0, 600.0), ("B", 1, 600.0)]
    a_cost = summaries.query("arm == 'A' and seed == 0 and scope == 'tier' and key == 'all' and metric == 'cost_usd'")
    assert abs(a_cost["value"].iloc[0] - float(report.a_runs[0].requests["cost_usd"].sum())) < 1e-9
    log.close()
    con = duckdb.connect(str(tmp_path / "log.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM requests").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM attempts").fetchone()[0] == 0
    row = con.execute("SELECT source, policy_a_toml, scenario FROM sandbox_runs").fetchone()
    assert row[0] == "sandbox" and row[1] == a.text and row[2] == "gemini-p95-x4"
    trace = json.loads(con.execute("SELECT trace FROM sandbox_traces LIMIT 1").fetchone()[0])
    assert trace["source"] == "sandbox" and trace["attempts"]
    assert con.execute("SELECT count(DISTINCT provider) FROM sandbox_series WHERE arm = 'A'").fetchone()[0] == 3
    con.close()
