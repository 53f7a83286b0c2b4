"""The Sandbox page under AppTest: edit a chain, run A vs B on a preset scenario, see results, export TOML."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from taelio_core.policy import parse_policy

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "sandbox.py")


def _page(tmp_path) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["sandbox_db"] = str(tmp_path / "sandbox.duckdb")
    return at


@pytest.fixture(autouse=True)
def _root_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))


def test_edit_a_chain_run_a_vs_b_on_a_scenario_and_export(tmp_path) -> None:
    at = _page(tmp_path)
    at.run()
    assert not at.exception
    at.selectbox(key="sandbox_a").set_value("current")
    at.number_input(key="sandbox_n").set_value(2000)
    at.run()
    # Edit policy B's chain for free/idea: put OpenAI's small model first.
    at.session_state["sandbox_chains_1"] = {"edited_rows": {0: {"entry_1": "openai:gpt-4.1-mini",
                                                                "entry_2": "gemini:gemini-2.5-flash"}},
                                            "added_rows": [], "deleted_rows": []}
    at.selectbox(key="sandbox_scenario").set_value("openai-down-30m")
    at.number_input(key="sandbox_seeds").set_value(2)
    at.button(key="sandbox_run").click()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    report = at.session_state["sandbox_report"]
    assert report.policy_b.chain("free", "idea")[0].ref == "openai:gpt-4.1-mini"
    assert report.scenario.name == "openai-down-30m" and report.seeds == [0, 1]
    tables = [t.value for t in at.dataframe]
    deltas = next(t for t in tables if "B − A" in t.columns)
    assert {"tier", "metric", "A", "B", "band across seeds", "verdict"} <= set(deltas.columns)
    assert set(deltas["tier"]) == {"free", "pro", "admin", "all"}
    charts = at.get("plotly_chart")
    assert len(charts) >= 2
    assert len(at.get("download_button")) == 2
    assert any("openai" in str(t) for t in tables)
    text = report.policy_b.text
    assert parse_policy(text, source="exported.toml").chain("free", "idea")[0].ref == "openai:gpt-4.1-mini"
    # The run is stored apart from live analytics.
    import duckdb
    con = duckdb.connect(str(tmp_path / "sandbox.duckdb"))
    assert con.execute("SELECT count(*) FROM sandbox_runs WHERE run_id = ?", [report.run_id]).fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM requests").fetchone()[0] == 0
    con.close()


def test_an_invalid_chain_edit_shows_the_loaders_message(tmp_path) -> None:
    at = _page(tmp_path)
    at.run()
    at.session_state["sandbox_chains_1"] = {"edited_rows": {1: {"entry_1": "opnai:gpt-4.1"}},
                                            "added_rows": [], "deleted_rows": []}
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("routes.free.story" in e and "unknown provider 'opnai'" in e for e in errors), errors
    assert at.button(key="sandbox_run").disabled


def test_cancel_is_only_offered_while_a_run_is_in_progress(tmp_path) -> None:
    at = _page(tmp_path)
    at.run()
    assert at.button(key="sandbox_cancel").disabled
    # A run the Cancel click interrupted leaves the running mark; the rerun reports it and clears it.
    at.session_state["sandbox_running"] = True
    at.run()  # as drawn during a run: Cancel enabled
    assert not at.button(key="sandbox_cancel").disabled
    at.session_state["sandbox_running"] = True
    at.button(key="sandbox_cancel").click()
    at.run()
    assert any("Cancelled" in i.value for i in at.info)
    assert at.session_state["sandbox_running"] is False
    assert "sandbox_report" not in at.session_state


def test_replay_last_week_with_fitted_models(tmp_path) -> None:
    from datetime import datetime, timedelta, timezone

    from tests.sandbox.conftest import fill_log
    db = tmp_path / "sandbox.duckdb"
    fill_log(db, requests=90, start=datetime.now(timezone.utc) - timedelta(days=2), step_s=60)
    at = _page(tmp_path)
    at.run()
    at.radio(key="sandbox_traffic").set_value("Replay the log")
    at.radio(key="sandbox_models").set_value("Fitted from the log (last 7 days)")
    at.run()
    assert not at.exception and not at.error
    assert any("90 logged requests" in c.value for c in at.caption), [c.value for c in at.caption] + [i.value for i in at.info]
    at.button(key="sandbox_run").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    report = at.session_state["sandbox_report"]
    assert len(report.traffic) == 90 and report.models.source == "log"
    assert int(report.tiers("A").set_index("tier").at["all", "requests"]) == 90
