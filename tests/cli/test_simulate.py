"""``taelio simulate``: both --policy forms, synthetic and replayed traffic, JSON out, clear errors."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import duckdb

from tests.cli.test_cli_demo import taelio
from tests.sandbox.conftest import fill_log


def test_compare_two_policies_on_a_scenario_as_json(tmp_path) -> None:
    db = tmp_path / "log.duckdb"
    out = taelio("--db", str(db), "simulate", "--policy", "current", "--compare", "seed", "--requests", "800",
                 "--scenario", "openai-down-30m", "--seeds", "2", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["policy_a"] == "current" and doc["policy_b"] == "seed" and doc["seeds"] == [0, 1]
    assert doc["requests_simulated"] == 800 * 4 and doc["source"] == "sandbox"
    assert doc["scenario"]["name"] == "openai-down-30m"
    assert {r["tier"] for r in doc["a"]["tiers"]} == {"free", "pro", "admin", "all"}
    deltas = {(r["tier"], r["metric"]) for r in doc["comparison"]}
    assert ("all", "availability") in deltas and ("pro", "p95_ms") in deltas
    assert "simulating" in out.stderr  # progress goes to stderr, never into the JSON
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT run_id FROM sandbox_runs").fetchone()[0] == doc["run_id"]
    con.close()


def test_the_global_policy_flag_names_policy_a_too(tmp_path) -> None:
    out = taelio("--policy", "current", "simulate", "--requests", "200", "--no-save", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["policy_a"] == "current" and doc["policy_b"] is None and "comparison" not in doc
    both = taelio("--policy", "seed", "simulate", "--policy", "current", "--requests", "100", "--no-save", "--json")
    assert json.loads(both.stdout)["policy_a"] == "current"


def test_replay_of_the_last_week_keeps_every_request(tmp_path) -> None:
    db = tmp_path / "log.duckdb"
    fill_log(db, requests=120, start=datetime.now(timezone.utc) - timedelta(days=3), step_s=60)
    out = taelio("--db", str(db), "simulate", "--policy", "current", "--compare", "current", "--replay", "7d",
                 "--scenario", "model-retired", "--models", "log", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    con = duckdb.connect(str(db), read_only=True)
    logged = dict(con.execute("SELECT tier, count(*) FROM requests GROUP BY tier").fetchall())
    con.close()
    assert doc["traffic"]["requests"] == 120 and doc["traffic"]["tier_counts"] == logged
    assert {r["tier"]: r["requests"] for r in doc["a"]["tiers"] if r["tier"] != "all"} == logged
    assert doc["models"]["source"] == "log"
    # Same policy on both sides, same seeds: every delta is exactly zero.
    assert all(r["delta"] in (0, None) for r in doc["comparison"])


def test_bad_flags_get_one_clear_sentence() -> None:
    cases = [
        (["simulate", "--requests", "10", "--scenario", "openai-down"], "taelio: --scenario: unknown scenario"),
        (["simulate", "--requests", "0"], "taelio: --requests: must be between 1"),
        (["simulate", "--requests", "10", "--seeds", "50"], "taelio: --seeds: seeds must be between 1 and 20"),
        (["simulate", "--replay", "last week", "--no-save"], "taelio: --replay: 'last week' is not a window"),
        (["simulate", "--requests", "10", "--duration", "soon"], "taelio: --duration: 'soon' is not a duration"),
        (["simulate", "--requests", "10", "--compare", "nope.toml"], "policy file not found"),
    ]
    for args, message in cases:
        out = taelio(*args, "--no-save")
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    usage = taelio("simulate", "--policy", "current")
    assert usage.returncode == 2 and "one of the arguments --requests --replay is required" in usage.stderr
