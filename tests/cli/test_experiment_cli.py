"""``taelio experiment``: create, run, status, results, list, with and without --json."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from taelio_core.cli import main
from taelio_core.cli.experiment import parse_variant
from taelio_core.errors import InputError
from tests.policies import fast_current_policy_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fast_policy(tmp_path: Path) -> Path:
    """The current policy with every provider simulated and 5 ms latencies."""
    path = tmp_path / "fast.toml"
    path.write_text(fast_current_policy_text(simulated=True))
    return path


def _cli(args: list[str], capsys) -> tuple[int, str, str]:  # noqa: ANN001
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_parse_variant_forms() -> None:
    v = parse_variant("terse=anthropic:claude-haiku-4-5;user=Briefly: {prompt};temperature=0.2")
    assert (v.label, v.model, v.user, v.temperature) == ("terse", "anthropic:claude-haiku-4-5", "Briefly: {prompt}", 0.2)
    assert parse_variant('{"model": "openai:gpt-4.1", "max_tokens": 50}').max_tokens == 50
    with pytest.raises(InputError, match="'colour=red' is not key=value with a key among"):
        parse_variant("openai:gpt-4.1;colour=red")
    with pytest.raises(InputError, match="temperature: Input should be less than or equal to 2"):
        parse_variant("openai:gpt-4.1;temperature=9")
    with pytest.raises(InputError, match="not of the form provider:model"):
        parse_variant("gpt-4.1")


def test_the_whole_flow_in_json(fast_policy: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    csv = tmp_path / "prompts.csv"
    csv.write_text("prompt,genre\nA lighthouse,Mystery\nA robot chef,Comedy\nA lost key,\n")
    base = ["--policy", str(fast_policy), "--db", str(tmp_path / "t.duckdb"), "experiment"]
    code, out, _ = _cli(base + ["create", "--name", "pilot", "--variant", "openai:gpt-4.1", "--variant",
                                "brief=gemini:gemini-2.5-flash;user=Briefly: {prompt}", "--csv", str(csv),
                                "--save-set", "three", "--cost-cap", "5", "--json"], capsys)
    assert code == 0
    created = json.loads(out)
    eid = created["experiment_id"]
    assert created["inputs"] == 3 and created["estimate"]["cells"] == 6
    code, out, err = _cli(base + ["run", eid, "--judge", "--json"], capsys)
    assert code == 0
    ran = json.loads(out)
    assert ran["state"] == "finished" and ran["done"] == 6 and ran["judge"]["pairs"] == 3
    assert "calls" in err                      # progress went to stderr, stdout stayed one JSON document
    code, out, _ = _cli(base + ["status", eid, "--json"], capsys)
    status = json.loads(out)
    assert (status["ok"], status["pending"], status["cost_cap_usd"]) == (6, 0, 5.0)
    code, out, _ = _cli(base + ["results", eid, "--json"], capsys)
    res = json.loads(out)
    assert [r["label"] for r in res["summary"]] == ["openai:gpt-4.1", "brief"]
    assert res["leaderboard_source"] == "judge" and res["judge_verdict"]
    code, out, _ = _cli(base + ["results", eid], capsys)
    assert "Ratings: Bradley-Terry on judge, Elo scale, 95% CI." in out and "votes: Not decided yet" in out
    # a second experiment from the saved set; rerunning the first does nothing
    code, out, _ = _cli(base + ["create", "--name", "again", "--variant", "openai:gpt-4.1", "--variant",
                                "anthropic:claude-haiku-4-5", "--set", "three", "--json"], capsys)
    assert code == 0 and json.loads(out)["inputs"] == 3
    code, out, _ = _cli(base + ["run", eid, "--estimate", "--json"], capsys)
    assert json.loads(out)["cells"] == 0
    code, out, _ = _cli(base + ["list", "--json"], capsys)
    assert {r["name"] for r in json.loads(out)} == {"pilot", "again"}


@pytest.mark.parametrize(("extra", "message"), [
    (["--variant", "openai:gpt-4.1", "--prompt", "x"], "--variant: give at least two variants"),
    (["--variant", "openai:gpt-4.1", "--variant", "opnai:gpt-4.1", "--prompt", "x"],
     "--variant: variant 2: unknown provider 'opnai'"),
    (["--variant", "openai:gpt-4.1", "--variant", "openai:gpt-4.1-mini", "--csv", "missing.csv"],
     "--csv: cannot read missing.csv"),
    (["--variant", "openai:gpt-4.1", "--variant", "openai:gpt-4.1-mini", "--prompt", "x", "--cost-cap", "lots"],
     "--cost-cap: 'lots' is not an amount in USD"),
    (["--variant", "openai:gpt-4.1", "--variant", "openai:gpt-4.1-mini", "--set", "nope"],
     "no saved input set 'nope'"),
])
def test_create_mistakes_are_one_sentence_and_exit_2(fast_policy: Path, tmp_path: Path, capsys, extra, message) -> None:  # noqa: ANN001
    code, out, err = _cli(["--policy", str(fast_policy), "--db", str(tmp_path / "t.duckdb"), "experiment",
                           "create", "--name", "x", *extra], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_unknown_experiment_is_named(fast_policy: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    code, _, err = _cli(["--policy", str(fast_policy), "--db", str(tmp_path / "t.duckdb"), "experiment",
                         "status", "exp-nope"], capsys)
    assert code == 2 and "no experiment 'exp-nope'" in err


def test_the_installed_entry_point_runs_the_command(fast_policy: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "taelio_core", "--policy", str(fast_policy), "--db",
                           str(tmp_path / "s.duckdb"), "experiment", "create", "--name", "s", "--variant",
                           "openai:gpt-4.1", "--variant", "gemini:gemini-2.5-flash", "--prompt", "A lighthouse",
                           "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["inputs"] == 1


def _ran(tmp_path: Path, capsys, monkeypatch) -> tuple[list[str], str]:  # noqa: ANN001
    """A two-variant experiment run in demo mode: the simulator stands in, priced as the real models."""
    priced = tmp_path / "priced.toml"
    priced.write_text(fast_current_policy_text())
    monkeypatch.setenv("TAELIO_MODE", "demo")
    base = ["--policy", str(priced), "--db", str(tmp_path / "t.duckdb"), "experiment"]
    code, out, _ = _cli(base + ["create", "--name", "pilot", "--variant", "openai:gpt-4.1", "--variant",
                                "brief=gemini:gemini-2.5-flash;user=Briefly: {prompt}", "--prompt", "A lighthouse",
                                "--json"], capsys)
    eid = json.loads(out)["experiment_id"]
    assert _cli(base + ["run", eid, "--json"], capsys)[0] == 0
    return base, eid


def test_results_print_a_formatted_table_with_no_raw_floats_or_nan(tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    base, eid = _ran(tmp_path, capsys, monkeypatch)
    code, out, _ = _cli(base + ["results", eid], capsys)
    assert code == 0
    header = next(line for line in out.splitlines() if line.startswith("Variant "))
    assert header.split() [:4] == ["Variant", "Model", "Calls", "Errors"]
    rows = out.split(header, 1)[1].splitlines()[2:4]
    assert [r.split()[0] for r in rows] == ["openai:gpt-4.1", "brief"]       # the experiment's order: no votes yet
    assert "NaN" not in out and "nan" not in out
    assert re.search(r"\$0\.\d{3,}", rows[0]) and " ms" in rows[0] and "0.0 %" in rows[0]
    assert not re.search(r"(?<![$\d])\d+\.\d{4,}", out), "no raw floats such as 0.0001459 or 1483.0158"
    code, out, _ = _cli(base + ["results", eid, "--json"], capsys)
    doc = json.loads(out)
    assert doc["verdict_detail"]["decided"] is False and doc["summary"][0]["cost_per_win_usd"] is None


def test_votes_from_the_cli_one_recorded_or_blind_from_stdin(tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    base, eid = _ran(tmp_path, capsys, monkeypatch)
    code, out, _ = _cli(base + ["vote", eid, "--input", "1", "--left", "v1", "--right", "v2", "--choice", "b",
                                "--voter", "ana", "--json"], capsys)
    assert code == 0 and json.loads(out)["choice"] == "right"
    monkeypatch.setattr("sys.stdin", io.StringIO("z\na\nq\n"))
    code, out, _ = _cli(base + ["vote", eid, "--voter", "bo"], capsys)
    assert code == 0
    shown_before_vote = out.split("recorded.")[0]
    assert "openai:gpt-4.1" not in shown_before_vote and "brief" not in shown_before_vote     # blind
    assert "'z' is not one of a, b, t, x, s, q" in out and "1 vote recorded" in out
    assert re.search(r"recorded\. A was (openai:gpt-4\.1|brief), B was (openai:gpt-4\.1|brief)\.", out)
    code, out, _ = _cli(base + ["results", eid, "--json"], capsys)
    assert json.loads(out)["votes"] == 2
    code, _, err = _cli(base + ["vote", eid, "--input", "1", "--left", "v1", "--right", "v9", "--choice", "a"], capsys)
    assert code == 2 and "--right: no variant 'v9' (variants: v1, v2)" in err
    code, _, err = _cli(base + ["vote", eid, "--input", "1"], capsys)
    assert code == 2 and "--input, --left, --right and --choice go together" in err


def test_checks_from_the_cli_are_stored_and_their_pass_rates_printed(tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("TAELIO_MODE", "demo")
    priced = tmp_path / "priced.toml"
    priced.write_text(fast_current_policy_text())
    base = ["--policy", str(priced), "--db", str(tmp_path / "c.duckdb"), "experiment"]
    code, out, _ = _cli(base + ["create", "--name", "checked", "--variant", "openai:gpt-4.1", "--variant",
                                "gemini:gemini-2.5-flash", "--prompt", "A lighthouse", "--check", "contains: gpt-4.1",
                                "--json"], capsys)
    eid = json.loads(out)["experiment_id"]
    assert _cli(base + ["run", eid, "--json"], capsys)[0] == 0
    code, out, _ = _cli(base + ["results", eid], capsys)
    header = next(line for line in out.splitlines() if line.startswith("Variant "))
    assert header.rstrip().endswith("Checks passed")
    rows = out.split(header, 1)[1].splitlines()[2:4]
    assert rows[0].endswith("100.0 %") and rows[1].endswith("0.0 %")
    code, _, err = _cli(base + ["create", "--name", "bad", "--variant", "openai:gpt-4.1", "--variant",
                                "gemini:gemini-2.5-flash", "--prompt", "x", "--check", "size: 3"], capsys)
    assert code == 2 and "--check line 1: 'size: 3' is not a check" in err
