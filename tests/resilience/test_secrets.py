"""Section 9: a planted key appears nowhere; SQL is parameterised; TAELIO_STORE_TEXT=hash stores hashes only.

The key is planted for all three providers, the fake server rejects it with
each provider's real 401 body (which echoes the key, as real APIs echo a
masked form of it), and then accepts it for normal traffic. The key must not
appear in the DuckDB file (any table, any column, nor the raw bytes), in
log output at DEBUG level, in exception text, nor in CLI JSON or stderr.
The dashboard's HTML is scanned by the dashboard's own tests.
"""
from __future__ import annotations

import ast
import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from taelio_core.calllog.rows import sha256
from taelio_core.config.settings import load_settings
from taelio_core.errors import AllProvidersFailed
from taelio_core.routing.inputs import Inputs
from taelio_core.wiring import Taelio
from tests.policies import policy_text
from tests.resilience.support import INPUTS, policy, scripted

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"OPENAI_API_KEY": "sk-proj-PLANTEDkey0123456789abcdef",
        "ANTHROPIC_API_KEY": "sk-ant-api03-PLANTEDkey0123456789",
        "GEMINI_API_KEY": "AIzaPLANTEDkey0123456789abcdefghij"}
# Shapes no redaction pattern knows: only the registered-secret list can catch these.
ODD_KEYS = {"OPENAI_API_KEY": "plain-PLANTED-0123456789", "ANTHROPIC_API_KEY": "zz9PLANTEDzz9PLANTED",
            "GEMINI_API_KEY": "x.PLANTED.9876543210"}
PROVIDER_OF = {"OPENAI_API_KEY": "openai", "ANTHROPIC_API_KEY": "anthropic", "GEMINI_API_KEY": "gemini"}

LIVE_POLICY = policy_text(
    name="live-test", providers={"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"},
    defaults={"timeout_s": 5, "max_tokens": 50}, resilience={"max_retries": 0},
    routes={"pro": {"idea": ["openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5", "gemini:gemini-2.5-flash"]}})


def scan_database(path: Path, needles: list[str]) -> list[str]:
    """Every place a needle appears: raw file bytes, or any column of any table."""
    found = []
    raw = path.read_bytes()
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        raw += wal.read_bytes()
    for needle in needles:
        if needle.encode() in raw:
            found.append(f"raw bytes contain {needle[:12]}...")
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()]
        for table in tables:
            columns = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()]
            for column in columns:
                for needle in needles:
                    n = con.execute(f'SELECT count(*) FROM "{table}" WHERE CAST("{column}" AS VARCHAR) LIKE ?',
                                    [f"%{needle}%"]).fetchone()[0]
                    if n:
                        found.append(f"{table}.{column} contains {needle[:12]}...")
    finally:
        con.close()
    return found


def _main(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str]) -> subprocess.CompletedProcess:
    """The CLI in this process (a subprocess imports three SDKs: ~30 s each on a busy machine)."""
    from taelio_core.cli import main
    with monkeypatch.context() as m:
        for name, value in env.items():
            m.setenv(name, value)
        capsys.readouterr()
        code = main(args)
        out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full.update({"PYTHONPATH": str(ROOT), **env})
    return subprocess.run([sys.executable, "-m", "taelio_core", *args], capture_output=True, text=True, env=full,
                          timeout=120)


@pytest.mark.parametrize("keys, every_command", [(KEYS, True), (ODD_KEYS, False)], ids=["key-shaped", "odd-shaped"])
def test_a_planted_key_appears_nowhere(fake_server, tmp_path, caplog, monkeypatch, capsys, keys, every_command):
    """The first CLI run is a real process; the others run ``main()`` in this one, for speed."""
    secrets = list(keys.values())
    env = fake_server.env(**keys)
    policy_file = tmp_path / "live.toml"
    policy_file.write_text(LIVE_POLICY)
    db = tmp_path / "log.duckdb"
    outputs: list[str] = []

    # 1. Every key rejected: the server's 401 bodies echo each key.
    for name in keys:
        fake_server.expected_keys[PROVIDER_OF[name]] = "the-right-key-is-something-else"
    with caplog.at_level(logging.DEBUG):
        engine = Taelio.open(policy=str(policy_file), settings=load_settings(env=env), database=db)
        try:
            with pytest.raises(AllProvidersFailed) as info:
                engine.router.generate("pro", "idea", INPUTS)
            err = info.value
            outputs += [str(err), repr(err), json.dumps(err.result.as_dict(), default=str)]
            outputs += [repr(a) for a in err.attempts] + [a.error or "" for a in err.attempts]
            assert [a.error_type for a in err.attempts] == ["auth_failed"] * 3
            stream = engine.router.stream("pro", "idea", INPUTS)
            outputs += [str(x) for x in stream]
            outputs.append(json.dumps(engine.health().as_dict(), default=str))
            outputs += [repr(p) for p in engine.providers.values()]
        finally:
            engine.close()
    outputs.append(caplog.text)
    common = ["--policy", str(policy_file), "--db", str(db)]
    cli_runs = [_cli([*common, "generate", "--tier", "pro", "--prompt", "x", "--json"], env)]
    if every_command:
        cli_runs += [_main([*common, "generate", "--tier", "pro", "--prompt", "x", "--stream"], env, monkeypatch,
                           capsys),
                     _main([*common, "test", "--provider", "anthropic", "--json"], env, monkeypatch, capsys)]
    assert {r.returncode for r in cli_runs} == {3}
    assert json.loads(cli_runs[0].stdout)["status"] == "failed"
    # 2. Keys accepted: ordinary traffic.
    fake_server.expected_keys.clear()
    if every_command:
        ok_runs = [_main([*common, cmd, *rest], env, monkeypatch, capsys) for cmd, *rest in (
            ("generate", "--tier", "pro", "--prompt", "x", "--json"), ("health", "--json"), ("providers", "--json"))]
        assert [r.returncode for r in ok_runs] == [0, 0, 0]
        cli_runs += ok_runs
    else:
        engine = Taelio.open(policy=str(policy_file), settings=load_settings(env=env), database=db)
        try:
            outputs.append(json.dumps(engine.router.generate("pro", "idea", INPUTS).as_dict(), default=str))
        finally:
            engine.close()
    for run_ in cli_runs:
        outputs += [run_.stdout, run_.stderr]
    # The server did receive the keys (so the scan is meaningful) and echoed them in its 401 bodies.
    sent = {r.key for r in fake_server.requests}
    assert set(secrets) <= sent
    leaks = [f"output {i} contains {s[:12]}..." for i, text in enumerate(outputs) for s in secrets if s in text]
    leaks += scan_database(db, secrets)
    assert leaks == []
    # And the failures were logged, with the provider's message, redacted.
    con = duckdb.connect(str(db), read_only=True)
    errors = [r[0] for r in con.execute("SELECT error FROM attempts WHERE error_type = 'auth_failed'").fetchall()]
    con.close()
    assert errors and all(e for e in errors)


# SQL fragments the analytics package composes from constants and "?" placeholders only (Filters.where,
# placeholder lists, column lists, time buckets from a fixed set, and _rate's constant keyword tables).
# test_analytics_resists_injection below checks the same code with hostile values at run time.
FRAGMENT_NAMES = {"where", "where_r", "where_a", "recent_where", "last_where", "marks_t", "marks_p", "cols", "b",
                  "time_col", "key", "total_as", "hit", "hits_as", "rate_as", "table", "order",
                  # the rollups (analytics/rollup.py): constant table/key lists, Filters.where on the rollups,
                  # and histogram-quantile SQL built from constant names and float literals
                  "rollup", "keys", "touched", "count", "rolled_where", "tail_where", "month", "pct", "spread",
                  # minute-grain twins of the rollups (analytics/rollup.py): a rollup's constant SQL, bounds bound
                  "minute_twin",
                  # the dialect's fragments (analytics/dialect.py: an exact quantile, the last n values) over
                  # constant column names; the health history's constant column list and insertion-order column
                  "d", "columns", "_inserted", "call_log",
                  # the Calls search (analytics/calls.py): columns from a constant tuple, pages of constant SQL
                  "c", "pages", "group",
                  # PostgreSQL: the COPY staging insert's constant column lists (calllog/postgres_copy.py) and a
                  # rollup's constant SQL at a grain from a closed set, over a constant sub-select (pg_rollup.py)
                  "r_cols", "a_cols", "sql", "grain", "rows",
                  # log copy (calllog/history_tables.py): the staging table, a constant prefix + a history table's
                  # constant name
                  "staged"}


def _is_placeholder_list(value: ast.expr) -> bool:
    """``", ".join("?" for _ in xs)``: as many ``?`` as values, the values themselves bound."""
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "join"
            and len(value.args) == 1 and isinstance(value.args[0], ast.GeneratorExp)
            and isinstance(value.args[0].elt, ast.Constant) and value.args[0].elt.value == "?")


def test_sql_is_parameterised():
    """No SQL string is built from values: f-strings in execute/query calls interpolate only constants
    or the named fragments above."""
    offenders = []
    for path in (ROOT / "taelio_core").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("execute", "executemany", "query", "sql") and node.args):
                continue
            sql = node.args[0]
            if isinstance(sql, ast.BinOp):  # "..." + "..." concatenations: check both sides
                parts = [sql.left, sql.right]
            else:
                parts = [sql]
            for part in parts:
                if isinstance(part, ast.JoinedStr):
                    for value in part.values:
                        if isinstance(value, ast.FormattedValue) and not _is_placeholder_list(value.value):
                            names = [n.id for n in ast.walk(value.value) if isinstance(n, ast.Name)]
                            if not names or any(not n.isupper() and n not in FRAGMENT_NAMES for n in names):
                                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                elif isinstance(part, ast.Call) and getattr(part.func, "attr", "") == "format":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                elif isinstance(part, ast.BinOp) and isinstance(part.op, ast.Mod):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_store_text_hash_keeps_only_hashes(tmp_path):
    pol = policy()
    db = tmp_path / "log.duckdb"
    prompt = "A secret premise about a lighthouse"
    engine = Taelio.open(policy=pol, settings=load_settings(env={"TAELIO_STORE_TEXT": "hash"}), database=db,
                         providers={"a": scripted("a", ["A private answer text"]), "b": scripted("b", ["x"]),
                                    "c": scripted("c", ["x"])})
    try:
        result = asyncio.run(engine.router.agenerate("pro", "idea", Inputs(prompt=prompt)))
    finally:
        engine.close()
    con = duckdb.connect(str(db), read_only=True)
    row = con.execute("SELECT prompt, output, prompt_sha256, output_sha256 FROM requests").fetchone()
    con.close()
    assert row[0] is None and row[1] is None
    assert row[2] == sha256(result.prompt) and row[3] == sha256("A private answer text")
    assert scan_database(db, [prompt, "A private answer text"]) == []


def test_analytics_resists_injection(tmp_path):
    """Every analytics query with hostile filter values and search text: no error, no effect on the data."""
    from datetime import date, datetime, timezone

    from taelio_core import analytics
    from taelio_core.calllog import DuckDBCallLog
    from taelio_core.config.policy_parser import load_policy
    from taelio_core.demo import generate_demo_data

    hostile = "x') OR 1=1; DROP TABLE requests; --"
    log = DuckDBCallLog(tmp_path / "inj.duckdb")
    try:
        policy = load_policy("seed")
        now = datetime(2026, 11, 20, tzinfo=timezone.utc)
        written = generate_demo_data(log, policy, days=3, requests=300, now=now)
        f = analytics.Filters(start=date(2026, 11, 1), end=date(2026, 11, 30), sources=(hostile,),
                              tiers=(hostile,), tasks=(hostile,), providers=(hostile,))
        called = 0
        for name in dir(analytics):
            fn = getattr(analytics, name)
            if not callable(fn) or name.startswith("_") or isinstance(fn, type):
                continue
            import inspect
            params = inspect.signature(fn).parameters
            if list(params)[:2] != ["log", "filters"]:
                continue
            kwargs = {}
            if "now" in params:
                kwargs["now"] = now
            if "budgets" in params:
                kwargs["budgets"] = policy.model.budgets
            if "policy" in params:
                kwargs["policy"] = policy
            if "search" in params:
                kwargs["search"] = hostile
            try:
                fn(log, f, **kwargs)
            except TypeError:
                continue   # needs arguments this generic sweep does not know
            called += 1
        assert called >= 5
        assert log.count_requests() == written
    finally:
        log.close()
