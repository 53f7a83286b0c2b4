"""The CLI in demo mode (no keys): real subprocesses, real DuckDB files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.test_policy import SEED_TABLE

ROOT = Path(__file__).resolve().parents[2]


def taelio(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full_env.update({"PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run([sys.executable, "-m", "taelio_core", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=120)


def test_routes_json_reproduces_the_seed_table() -> None:
    out = taelio("routes", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    got = {(r["tier"], r["task"]): [f"{e['provider']}:{e['model']}" for e in r["chain"]] for r in doc["routes"]}
    assert got == SEED_TABLE
    assert set(doc["routes"][0]["chain"][0]) >= {"provider", "model", "available", "reason"}


def test_routes_filters_and_bad_flags() -> None:
    doc = json.loads(taelio("routes", "--tier", "pro", "--task", "story", "--json").stdout)
    assert [(r["tier"], r["task"]) for r in doc["routes"]] == [("pro", "story")]
    bad = taelio("routes", "--tier", "gold")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "taelio: --tier: unknown tier 'gold' (tiers: free, pro, admin)"


def test_routes_in_live_mode_show_missing_keys() -> None:
    pytest.importorskip("taelio_core.providers.gemini")
    doc = json.loads(taelio("routes", "--json", env={"OPENAI_API_KEY": "sk-test-abcdefghijkl"}).stdout)
    first = doc["routes"][0]["chain"]   # free/idea: gemini, openai, anthropic
    assert [(e["provider"], e["available"]) for e in first] == [("gemini", False), ("openai", True),
                                                                ("anthropic", False)]
    assert first[0]["reason"] == "no API key (set GEMINI_API_KEY or GOOGLE_API_KEY)"


def test_generate_in_demo_mode_says_so_and_logs(tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    out = taelio("--db", str(db), "generate", "--tier", "pro", "--task", "idea", "--prompt", "A lighthouse",
                 "--json")
    assert out.returncode == 0, out.stderr
    assert "demo mode" in out.stderr
    doc = json.loads(out.stdout)      # stdout is exactly one JSON document
    assert doc["status"] == "ok" and doc["simulated"] is True and doc["text"].startswith("[simulated")
    assert set(doc) >= {"request_id", "status", "text", "provider", "model", "cost_usd", "latency_ms", "attempts"}
    assert set(doc["attempts"][0]) >= {"provider", "model", "status", "error_type", "latency_ms", "input_tokens",
                                       "output_tokens", "cost_usd"}
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT source, status, provider, cost_usd FROM requests WHERE request_id = ?",
                          [doc["request_id"]]).fetchone()
        n_attempts = con.execute("SELECT count(*) FROM attempts WHERE request_id = ?", [doc["request_id"]]).fetchone()
    assert row[0] == "demo" and row[1] == "ok" and row[2] == doc["provider"]
    assert float(row[3]) == doc["cost_usd"] and n_attempts[0] == len(doc["attempts"])


def test_generate_full_streams_idea_then_story(tmp_path: Path) -> None:
    out = taelio("--db", str(tmp_path / "x.duckdb"), "generate", "--task", "full", "--tier", "admin",
                 "--prompt", "A lighthouse", "--stream", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["idea"]["status"] == "ok" and doc["story"]["status"] == "ok"
    assert doc["idea"]["parent_id"] == doc["story"]["parent_id"]
    # streamed text went to stderr, in order, each part's heading before its text
    err = out.stderr
    assert (err.index("=== idea ===") < err.index(doc["idea"]["text"][:30]) < err.index("=== story ===")
            < err.index(doc["story"]["text"][:30]))
    total = doc["total"]
    assert total["input_tokens"] == doc["idea"]["input_tokens"] + doc["story"]["input_tokens"]
    assert total["cost_usd"] == pytest.approx(doc["idea"]["cost_usd"] + doc["story"]["cost_usd"])


def test_generate_full_without_json_prints_each_heading_before_its_text_and_the_total(tmp_path: Path) -> None:
    out = taelio("--db", str(tmp_path / "x.duckdb"), "generate", "--task", "full", "--tier", "free",
                 "--prompt", "A lighthouse", "--stream")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    idea_at, story_at, total_at = text.index("=== idea ==="), text.index("=== story ==="), text.index("=== total ===")
    assert idea_at < text.index("[simulated", idea_at) < text.index("status ok", idea_at) < story_at < total_at
    assert text.count("[simulated") == 2 and "tokens; parent " in text[total_at:]


def test_bad_input_is_one_sentence_exit_2(tmp_path: Path) -> None:
    out = taelio("--db", str(tmp_path / "x.duckdb"), "generate", "--prompt", "   ")
    assert out.returncode == 2 and out.stderr.strip().endswith("taelio: --prompt: prompt is empty")
    assert "Traceback" not in out.stderr
    missing = taelio("generate")
    assert missing.returncode == 2 and "--prompt" in missing.stderr and "Traceback" not in missing.stderr


def test_bad_policy_file_is_named(tmp_path: Path) -> None:
    policy = tmp_path / "bad.toml"
    policy.write_text("name = 'x'\n[providers.openai]\nkind = 'openai'\n[tasks.idea\n")
    out = taelio("--policy", str(policy), "routes")
    assert out.returncode == 2
    assert "bad.toml:4: malformed TOML" in out.stderr and "Traceback" not in out.stderr


def test_help_lists_every_command() -> None:
    out = taelio("--help")
    assert out.returncode == 0
    for command in ("routes", "providers", "generate", "test"):
        assert command in out.stdout


def test_demo_data_remove_deletes_the_demo_rows_and_keeps_the_rest(tmp_path: Path) -> None:
    from tests.policies import fast_current_policy_text

    db = tmp_path / "log.duckdb"
    made = taelio("--db", str(db), "demo-data", "--days", "1", "--requests", "40", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["written"] == 40
    # One live request (live mode, over a policy whose providers are simulated): it must stay.
    policy = tmp_path / "simulated.toml"
    policy.write_text(fast_current_policy_text(simulated=True), encoding="utf-8")
    kept = taelio("--db", str(db), "--policy", str(policy), "generate", "--tier", "pro", "--task", "idea",
                  "--prompt", "A lighthouse", "--json", env={"TAELIO_MODE": "live"})
    assert kept.returncode == 0, kept.stderr

    gone = taelio("--db", str(db), "demo-data", "--remove", "--json")
    assert gone.returncode == 0, gone.stderr
    doc = json.loads(gone.stdout)
    assert doc["removed"] == 40 and doc["requests_left"] == 1
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT source, count(*) FROM requests GROUP BY 1").fetchall() == [("live", 1)]
        assert con.execute("SELECT count(*) FROM attempts WHERE source = 'demo'").fetchone() == (0,)
    again = taelio("--db", str(db), "demo-data", "--remove")
    assert again.returncode == 0 and again.stdout.startswith("Removed 0 demo requests from ")
    assert again.stdout.rstrip().endswith("1 other request stay.")
