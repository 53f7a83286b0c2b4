"""``taelio stats`` and ``taelio demo-data`` against real DuckDB files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from taelio_core.calllog import DuckDBCallLog
from taelio_core.calllog.totals import parse_since
from taelio_core.cli import main
from taelio_core.config.policy_parser import load_policy
from taelio_core.demo import generate_demo_data
from taelio_core.routing.generation import Usage
from taelio_core.routing.trace import Attempt, GenerationResult

ROOT = Path(__file__).resolve().parents[2]


def taelio(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "taelio_core", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stats") / "log.duckdb"
    log = DuckDBCallLog(path)
    generate_demo_data(log, load_policy("seed"), days=14, requests=4000, seed=2)
    log.close()
    return path


def test_demo_data_cli_writes_and_reports_progress(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    done = taelio("--db", str(db), "demo-data", "--days", "5", "--requests", "1500", "--seed", "4", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)          # stdout is one JSON document, nothing else
    assert doc["written"] == 1500 and doc["days"] == 5 and doc["seed"] == 4 and doc["db"] == str(db)
    assert len(doc["outages"]) == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("demo-data:")]
    assert lines[0].startswith("demo-data:   0%") and "100% (1,500 of 1,500 requests)" in lines[-1]
    log = DuckDBCallLog(db)
    assert log.count_requests("demo") == 1500
    oldest = log.query("SELECT min(ts) AS t FROM requests")["t"].iloc[0]
    assert oldest >= datetime.now(UTC) - timedelta(days=5, minutes=5)


def test_demo_data_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", str(tmp_path / "t.duckdb"), "demo-data", "--days", "1"]) == 0
    out = capsys.readouterr().out
    assert "Wrote 400 simulated requests (source=demo" in out and "simulated outage:" in out


def test_stats_json_reconciles_with_the_log(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "--db", str(filled), "stats", "--since", "all")
    log = DuckDBCallLog(filled)
    total = doc["total"]
    assert total["requests"] == 4000 == log.count_requests()
    assert total["attempts"] == int(log.query("SELECT count(*) AS n FROM attempts")["n"].iloc[0])
    assert sum(t["requests"] for t in doc["by_tier"]) == 4000
    assert {t["name"] for t in doc["by_tier"]} == {"free", "pro", "admin"}
    assert sum(p["attempts"] for p in doc["by_provider"]) == total["attempts"]
    exact = Decimal(log.query("SELECT sum(cost_usd)::VARCHAR AS c FROM requests")["c"].iloc[0])
    assert Decimal(total["cost_usd"]) == exact
    assert sum(Decimal(t["cost_usd"]) for t in doc["by_tier"]) == exact
    ok = log.query("SELECT avg((status = 'ok')::INT) AS r FROM requests")["r"].iloc[0]
    assert total["ok_rate"] == pytest.approx(ok, abs=1e-4)
    for provider in doc["by_provider"]:
        assert 0 < provider["ok_rate"] <= 1 and 0 <= provider["fallback_rate"] < 1
        assert provider["p50_latency_ms"] < provider["p95_latency_ms"]


def test_stats_since_and_source_filter(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = DuckDBCallLog(filled)
    week = int(log.query("SELECT count(*) AS n FROM requests WHERE ts >= now() - INTERVAL 7 DAY")["n"].iloc[0])
    doc = run_json(capsys, "--db", str(filled), "stats")          # default: the last 7 days
    assert abs(doc["total"]["requests"] - week) <= 2 and 0 < week < 4000
    assert run_json(capsys, "--db", str(filled), "stats", "--since", "all", "--source", "live")["total"]["requests"] == 0
    both = run_json(capsys, "--db", str(filled), "stats", "--since", "all", "--source", "live,demo")
    assert both["total"]["requests"] == 4000 and both["sources"] == ["live", "demo"]


def test_stats_text_tables(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", str(filled), "stats", "--since", "30d"]) == 0
    out = capsys.readouterr().out
    assert "4,000 requests" in out
    assert "By provider" in out and "By tier" in out
    for name in ("gemini", "openai", "anthropic", "free", "pro", "admin"):
        assert f"\n  {name} " in out


def test_stats_shows_unpriced_as_unpriced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "unpriced.duckdb"
    log = DuckDBCallLog(db)
    now = datetime.now(UTC)
    attempt = Attempt(n=1, provider="ollama", model="llama3.2", status="ok", started_at=now, latency_ms=12.0,
                      usage=Usage(input_tokens=10, output_tokens=20), cost_usd=None, price_source=None)
    log.record(GenerationResult(request_id="r1", parent_id=None, tier="free", task="idea", policy="p",
                                source="live", status="ok", started_at=now, text="hi", provider="ollama",
                                model="llama3.2", latency_ms=12.0, ttft_ms=None, chain=(), attempts=(attempt,),
                                skipped=()))
    log.close()
    assert main(["--db", str(db), "stats"]) == 0
    out = capsys.readouterr().out
    assert "unpriced (1)" in out and "$0.0000" not in out
    doc = run_json(capsys, "--db", str(db), "stats")
    assert doc["total"]["unpriced"] == 1 and doc["by_provider"][0]["unpriced"] == 1


def test_stats_on_an_empty_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", str(tmp_path / "empty.duckdb"), "stats"]) == 0
    assert "No requests in this range" in capsys.readouterr().out
    doc = run_json(capsys, "--db", str(tmp_path / "empty.duckdb"), "stats")
    assert doc["total"]["requests"] == 0 and doc["by_provider"] == []


@pytest.mark.parametrize(("args", "flag"), [
    (["stats", "--since", "3x"], "--since"),
    (["stats", "--since", "yesterday"], "--since"),
    (["stats", "--source", "prod"], "--source"),
    (["demo-data", "--days", "0"], "--days"),
    (["demo-data", "--requests", "many"], "--requests"),
    (["demo-data", "--seed", "-1"], "--seed"),
])
def test_bad_flags_name_the_flag(tmp_path: Path, args: list[str], flag: str) -> None:
    done = taelio("--db", str(tmp_path / "x.duckdb"), *args)
    assert done.returncode == 2
    assert flag in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_parse_since() -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2w", now) == now - timedelta(weeks=2)
    assert parse_since("all", now) is None
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a time span"):
        parse_since("soon", now)
