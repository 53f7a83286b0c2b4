"""The Sandbox page under AppTest, inside the whole app: the running engine's policy and call log.

Edit a chain, run A vs B on a preset scenario, see results, export TOML; Policy A is the policy the
dashboard runs (a custom TOML file included), and runs are saved in the engine's own call log.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from taelio_core.config.policy_parser import parse_policy
from tests.app.conftest import make_app
from tests.policies import fast_current_policy_text

ROOT = Path(__file__).resolve().parents[2]


def _page(tmp_path, monkeypatch) -> AppTest:
    """The Sandbox page of the app, on the call log ``tmp_path/sandbox.duckdb`` (by ``DATABASE_URL``)."""
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "sandbox.duckdb"))
    at = make_app()
    at.default_timeout = 120
    at.run()
    at.switch_page("pages/sandbox.py")
    return at


@pytest.fixture(autouse=True)
def _root_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))


def test_edit_a_chain_run_a_vs_b_on_a_scenario_and_export(tmp_path, monkeypatch) -> None:
    at = _page(tmp_path, monkeypatch)
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


def test_an_invalid_chain_edit_shows_the_loaders_message(tmp_path, monkeypatch) -> None:
    at = _page(tmp_path, monkeypatch)
    at.run()
    at.session_state["sandbox_chains_1"] = {"edited_rows": {1: {"entry_1": "opnai:gpt-4.1"}},
                                            "added_rows": [], "deleted_rows": []}
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("routes.free.story" in e and "unknown provider 'opnai'" in e for e in errors), errors
    assert at.button(key="sandbox_run").disabled


def test_cancel_is_only_offered_while_a_run_is_in_progress(tmp_path, monkeypatch) -> None:
    at = _page(tmp_path, monkeypatch)
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


def test_replay_last_week_with_fitted_models(tmp_path, monkeypatch) -> None:
    from datetime import datetime, timedelta, timezone

    from tests.sandbox.conftest import fill_log
    db = tmp_path / "sandbox.duckdb"
    fill_log(db, requests=90, start=datetime.now(timezone.utc) - timedelta(days=2), step_s=60)
    at = _page(tmp_path, monkeypatch)
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


def _run_small(at: AppTest) -> None:
    at.number_input(key="sandbox_n").set_value(500)
    at.number_input(key="sandbox_seeds").set_value(1)
    at.button(key="sandbox_run").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]


def test_policy_a_is_the_running_policy_by_its_real_name(tmp_path, monkeypatch) -> None:
    at = _page(tmp_path, monkeypatch)           # no TAELIO_POLICY: the app runs the built-in seed policy
    at.run()
    a = at.selectbox(key="sandbox_a")
    assert a.label == "Policy A" and a.value == "running"
    assert a.options == ["seed (the running policy)", "current (built in)", "A policy file (TOML)…"]


def test_a_custom_toml_policy_runs_as_a_and_b_is_exported_under_its_own_name(tmp_path, monkeypatch) -> None:
    custom = tmp_path / "ours.toml"
    custom.write_text(fast_current_policy_text().replace('name = "current"', 'name = "ours"', 1))
    assert 'name = "ours"' in custom.read_text()
    monkeypatch.setenv("TAELIO_POLICY", str(custom))
    at = _page(tmp_path, monkeypatch)
    at.run()
    a = at.selectbox(key="sandbox_a")
    assert a.value == "running"       # every built-in and a file can be chosen too
    assert a.options == ["ours (the running policy)", "seed (built in)", "current (built in)",
                         "A policy file (TOML)…"]
    assert at.text_input(key="sandbox_b_name_1").value == "ours-b"
    _run_small(at)
    report = at.session_state["sandbox_report"]
    assert report.policy_a.name == "ours" and report.policy_a.text == custom.read_text()
    assert report.policy_b.name == "ours-b"
    assert parse_policy(report.policy_b.text, source="b.toml").name == "ours-b"
    assert {d.proto.label for d in at.get("download_button")} >= {"Download policy B (TOML)"}
    assert any(t.label == "Policy A · ours" for t in at.tabs) and any(t.label == "Policy B · ours-b" for t in at.tabs)


def test_a_built_in_policy_can_be_chosen_for_b(tmp_path, monkeypatch) -> None:
    at = _page(tmp_path, monkeypatch)
    at.run()
    at.selectbox(key="sandbox_b_from").set_value("current")
    at.button(key="sandbox_reset").click()
    at.run()
    assert not at.exception and not at.error
    assert at.text_input(key="sandbox_b_name_2").value == "current"
    _run_small(at)
    assert at.session_state["sandbox_report"].policy_b.name == "current"


def test_the_page_uses_the_engines_call_log_and_opens_no_second_one(tmp_path, monkeypatch) -> None:
    from taelio_core.calllog import DuckDBCallLog
    opened: list[str] = []
    real_init = DuckDBCallLog.__init__

    def counting_init(self, *args, **kwargs):
        opened.append(str(args[0] if args else kwargs))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(DuckDBCallLog, "__init__", counting_init)
    at = _page(tmp_path, monkeypatch)
    at.run()
    _run_small(at)
    report = at.session_state["sandbox_report"]
    assert len(opened) == 1, opened            # the engine's, opened once for the app and the Sandbox alike
    import duckdb
    con = duckdb.connect(str(tmp_path / "sandbox.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM sandbox_runs WHERE run_id = ?", [report.run_id]).fetchone()[0] == 1
    con.close()


def test_results_of_an_earlier_configuration_are_marked_stale(tmp_path, monkeypatch) -> None:
    at = _page(tmp_path, monkeypatch)
    at.run()
    _run_small(at)
    assert not any("earlier configuration" in w.value for w in at.warning)
    at.number_input(key="sandbox_seeds").set_value(2).run()
    assert any("earlier configuration" in w.value for w in at.warning)
    at.number_input(key="sandbox_seeds").set_value(1).run()      # back to what ran: current again
    assert not any("earlier configuration" in w.value for w in at.warning)
